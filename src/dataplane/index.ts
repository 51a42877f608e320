// Typed wrapper of the native addon. The addon owns the fast path; this module only
// converts configuration in and counters out.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ConntrackSettings, DataplaneConfig } from './types.js';

export type { ConntrackSettings, DataplaneConfig } from './types.js';

export interface VipCounters {
  name: string;
  packets: number;
  bytes: number;
  newFlows: number;
  /** Packets dropped because no backend could take their new flow (every backend down). */
  noBackend: number;
}

export interface BackendCounters {
  address: string;
  packets: number;
  bytes: number;
  /** Open flows in the connection tables toward this backend (IPVS's ActiveConn). */
  activeFlows: number;
  /** Flows cut because the backend was set offline. */
  flowsCut: number;
}

export interface CountersSnapshot {
  rx: number;
  tx: number;
  passed: number;
  dropped: number;
  echoReplies: number;
  icmpErrorsForwarded: number;
  checksumsFinalized: number;
  icmpTooBigSent: number;
  tcpResetsSent: number;
  drops: Record<string, number>;
  vips: VipCounters[];
  backends: BackendCounters[];
  conntrack: { inserts: number; evictions: number; expiredReused: number; capacity: number };
}

export interface ReplaySummary {
  packetsIn: number;
  packetsOut: number;
  counters: CountersSnapshot;
}

export type PacketVerdict = 'tx' | 'drop' | 'pass';

export interface ProcessedPacket {
  verdict: PacketVerdict;
  /** Drop reason name when verdict is 'drop'. */
  reason?: string;
  /** The frame to transmit when verdict is 'tx'. */
  frame?: Buffer;
}

export interface InputPacket {
  frame: Buffer;
  /** The NIC left the L4 checksum partial (TP_STATUS_CSUMNOTREADY): finalize it. */
  checksumPartial?: boolean;
}

interface NativeDataplane {
  setConfig(config: DataplaneConfig): void;
  process(packets: InputPacket[], nowNs: bigint): ProcessedPacket[];
  replay(inPath: string, outPath: string): ReplaySummary;
  counters(): CountersSnapshot;
  table(vipName: string): LookupTable;
}

/** A VIP's Maglev table: each entry an index into `backends`, or -1 (no backend). */
export interface LookupTable {
  backends: string[];
  entries: Int32Array;
}

export interface NativeModule {
  Dataplane: new (settings: ConntrackSettings) => NativeDataplane;
  dropReasons(): string[];
}

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

function loadAddon(): NativeModule {
  const require = createRequire(import.meta.url);
  const override = process.env['L4MUX_ADDON'];
  if (override) return require(override) as NativeModule;
  const candidates = [
    join(root, 'build', 'addon', 'Release', 'l4mux_addon.node'),
    join(root, 'build', 'addon', 'l4mux_addon.node'),
    join(root, 'build', 'Release', 'l4mux_addon.node'),
  ];
  for (const path of candidates) {
    if (existsSync(path)) return require(path) as NativeModule;
  }
  throw new Error(`l4mux native addon not built (looked in ${candidates.join(', ')}); run npm install`);
}

let addon: NativeModule | undefined;
/** The loaded addon (loaded once; L4MUX_ADDON overrides where it is loaded from). */
export function native(): NativeModule {
  addon ??= loadAddon();
  return addon;
}

export const defaultConntrack: ConntrackSettings = {
  maxFlows: 262144,
  timeouts: {
    tcpSynSeconds: 30,
    tcpEstablishedSeconds: 900,
    tcpClosingSeconds: 30,
    udpSeconds: 60,
    otherSeconds: 30,
  },
};

/** One pipeline (one worker's state) driven from the calling thread: replay and tests. */
export class Dataplane {
  private readonly impl: NativeDataplane;

  constructor(settings: ConntrackSettings = defaultConntrack) {
    this.impl = new (native().Dataplane)(settings);
  }

  /** Builds the snapshot (Maglev tables included) and swaps it in; throws on bad input. */
  setConfig(config: DataplaneConfig): void {
    this.impl.setConfig(config);
  }

  process(packets: InputPacket[], nowNs = 0n): ProcessedPacket[] {
    return this.impl.process(packets, nowNs);
  }

  /** Runs every packet of a pcap file through the pipeline; writes transmitted frames. */
  replay(inPath: string, outPath: string): ReplaySummary {
    return this.impl.replay(inPath, outPath);
  }

  counters(): CountersSnapshot {
    return this.impl.counters();
  }

  /** The current Maglev table of a VIP (by name), after health and fall-overs. */
  table(vipName: string): LookupTable {
    return this.impl.table(vipName);
  }
}

export function dropReasons(): string[] {
  return native().dropReasons();
}
