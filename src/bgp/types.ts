// Types of the `bgp` section of the VIP map: as written in the file, and normalized (defaults
// filled in, addresses canonical, communities parsed) for the speaker.
import type { AddressFamily } from '../config/types.js';

export interface BgpBfdInput {
  interval?: number;
  multiplier?: number;
}

export interface BgpNeighbourInput {
  name?: string;
  address: string;
  as: number;
  password?: string;
  holdTime?: number;
  bfd?: boolean;
  multihop?: number;
  sourceAddress?: string;
}

export interface BgpRouteInput {
  med?: number;
  prepend?: number;
  communities?: string[];
}

export interface BgpInput {
  localAs: number;
  routerId?: string;
  holdTime?: number;
  bfd?: boolean | BgpBfdInput;
  communities?: string[];
  drainSeconds?: number;
  runDirectory?: string;
  bird?: string;
  neighbours: BgpNeighbourInput[];
  vips?: Record<string, BgpRouteInput>;
}

/** A BGP community: standard (RFC 1997, two 16-bit halves) or large (RFC 8092, three 32-bit parts). */
export type Community = { kind: 'standard'; parts: [number, number] } | { kind: 'large'; parts: [number, number, number] };

export interface BfdTimers {
  /** Milliseconds, transmit and receive. */
  interval: number;
  multiplier: number;
}

export interface BgpNeighbour {
  /** Unique; also the BIRD protocol name. */
  name: string;
  /** Canonical address. */
  address: string;
  family: AddressFamily;
  as: number;
  password?: string;
  holdTime: number;
  /** Absent: no BFD on this session. */
  bfd?: BfdTimers;
  multihop?: number;
  sourceAddress?: string;
}

/** The announcement attributes of one VIP address. */
export interface BgpRoute {
  med?: number;
  prepend: number;
  /** bgp.communities followed by the address's own, without repeats. */
  communities: Community[];
}

export interface BgpConfig {
  localAs: number;
  routerId: string;
  holdTime: number;
  /** Absent: BFD off unless a neighbour turns it on (then the default timers). */
  bfd?: BfdTimers;
  /** Seconds. */
  drainSeconds: number;
  runDirectory: string;
  bird: string;
  neighbours: BgpNeighbour[];
  /** By canonical VIP address; only addresses with attributes are present. */
  routes: Record<string, BgpRoute>;
  communities: Community[];
}
