// Membership: who of the configured peers is alive. Heartbeats go to every peer each
// interval over the authenticated channel; a peer is live once heard and dead after
// `deadAfter` intervals without a heartbeat. Joins, leaves and restarts are events (the
// cluster service logs them, changes ownership and transfers entries).
import { EventEmitter } from 'node:events';

import type { Channel } from './channel.js';
import type { Heartbeat } from './wire.js';

export type PeerState = 'unknown' | 'live' | 'dead';

export interface PeerMembership {
  id: string;
  state: PeerState;
  /** ISO time of the last state change; null while never heard. */
  since: string | null;
  /** Milliseconds since the last heartbeat; null while never heard. */
  lastHeardMsAgo: number | null;
  /** The peer says its transfer is complete (it may be announced). */
  ready: boolean;
  /** The peer's cluster config differs from ours (members, weights, seed or ports). */
  configMismatch: boolean;
  joins: number;
  leaves: number;
}

export interface MembershipOptions {
  peers: string[];
  intervalMs: number;
  deadAfter: number;
  /** Of this mux's cluster config: peers compare them. */
  fingerprint: bigint;
  now?: () => number;
}

export interface MembershipEvents {
  join: [peer: string];
  leave: [peer: string, silentMs: number];
  /** A live peer came back with a new boot id (it restarted between two heartbeats). */
  restart: [peer: string];
  mismatch: [peer: string, theirs: bigint];
}

interface Peer {
  state: PeerState;
  since: number | undefined;
  lastHeard: number | undefined;
  ready: boolean;
  fingerprint: bigint | undefined;
  joins: number;
  leaves: number;
}

export class Membership extends EventEmitter<MembershipEvents> {
  private readonly peers = new Map<string, Peer>();
  private beatTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** This mux's readiness, told to the peers. */
  ready = false;

  constructor(
    private readonly channel: Channel,
    private readonly options: MembershipOptions,
  ) {
    super();
    this.now = options.now ?? Date.now;
    for (const id of options.peers) this.peers.set(id, { state: 'unknown', since: undefined, lastHeard: undefined, ready: false, fingerprint: undefined, joins: 0, leaves: 0 });
    channel.on('heartbeat', (peer, hb) => this.heard(peer, hb));
    channel.on('restart', (peer) => {
      if (this.peers.get(peer)?.state === 'live') this.emit('restart', peer);
    });
  }

  start(): void {
    this.beat();
    this.beatTimer = setInterval(() => this.beat(), this.options.intervalMs);
  }

  stop(): void {
    if (this.beatTimer !== undefined) clearInterval(this.beatTimer);
    this.beatTimer = undefined;
  }

  isLive(peer: string): boolean {
    return this.peers.get(peer)?.state === 'live';
  }

  live(): string[] {
    return [...this.peers].filter(([, p]) => p.state === 'live').map(([id]) => id);
  }

  /** Sends a heartbeat to every peer now and checks who fell silent. */
  beat(): void {
    for (const id of this.peers.keys()) this.channel.heartbeat(id, this.options.fingerprint, this.ready);
    this.checkSilence();
  }

  checkSilence(): void {
    const now = this.now();
    const limit = this.options.intervalMs * this.options.deadAfter;
    for (const [id, p] of this.peers) {
      if (p.state !== 'live' || p.lastHeard === undefined || now - p.lastHeard <= limit) continue;
      p.state = 'dead';
      p.since = now;
      p.ready = false;
      p.leaves++;
      this.emit('leave', id, now - p.lastHeard);
    }
  }

  private heard(id: string, hb: Heartbeat): void {
    const p = this.peers.get(id);
    if (p === undefined) return;
    const now = this.now();
    p.lastHeard = now;
    p.ready = hb.ready;
    if (p.fingerprint !== hb.fingerprint) {
      p.fingerprint = hb.fingerprint;
      if (hb.fingerprint !== this.options.fingerprint) this.emit('mismatch', id, hb.fingerprint);
    }
    if (p.state !== 'live') {
      p.state = 'live';
      p.since = now;
      p.joins++;
      this.emit('join', id);
    }
  }

  status(): PeerMembership[] {
    const now = this.now();
    return [...this.peers].map(([id, p]) => ({
      id,
      state: p.state,
      since: p.since === undefined ? null : new Date(p.since).toISOString(),
      lastHeardMsAgo: p.lastHeard === undefined ? null : now - p.lastHeard,
      ready: p.ready,
      configMismatch: p.fingerprint !== undefined && p.fingerprint !== this.options.fingerprint,
      joins: p.joins,
      leaves: p.leaves,
    }));
  }
}
