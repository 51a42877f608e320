// The cluster service of a mux: membership (heartbeats), the channel to the peers, and table
// sync. It polls the engines' flow events and sends each entry to the flow's owner and backup
// (teach records to the mux that asked), installs what peers send into the engines, gates
// backend-set and weight changes until the entries they could make divergent are
// acknowledged by their owners (or a bounded time passed), moves the entries whose owners
// changed when membership changes, and says when this mux is ready to be announced.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';

import type { Logger } from 'pino';

import type { DataplaneCluster } from '../dataplane/types.js';
import { Channel, type ChannelCounters, type PeerChannelStatus } from './channel.js';
import { sortedMembers, type ClusterConfig } from './config.js';
import { keyFingerprint } from './keys.js';
import { Membership, type PeerMembership } from './membership.js';
import { NO_MEMBER, Ownership } from './ownership.js';
import { FLOW_RECORD_SIZE } from './record.js';
import { EntryTable } from './table.js';
import { EntryClass, type EntryClassNumber } from './wire.js';

/** What the cluster needs of an engine (the addon's Engine; fakes in tests). */
export interface SyncEngine {
  /** Drains the workers' export rings: n*64 bytes of flow records. */
  pollFlowEvents(maxRecords?: number): Buffer;
  /** Records from peers into the peer-entry table. */
  installFlows(records: Buffer): { accepted: number; refused: number };
  /** Commit-after-sync: a mark of what the workers have exported so far... */
  syncMark?(): unknown;
  /** ...and whether all of it has been polled since. */
  syncDrained?(mark: unknown): boolean;
}

export interface ClusterServiceOptions {
  config: ClusterConfig;
  /** node.seed: the rendezvous hashing's seed (same on every mux). */
  seed: string;
  secret: Buffer;
  logger: Logger;
  /** The engines to poll and feed (may change while running). */
  engines: () => SyncEngine[];
  /** Live flags changed: give the engines a snapshot with `dataplane()`. */
  onMembershipChange: () => void;
  /** UDP port of each member's channel (tests run several muxes on one address). */
  portOf?: (id: string) => number;
  pollIntervalMs?: number;
  /** Longest wait for the peers' transfers before a joining mux says it is ready anyway. */
  readyTimeoutMs?: number;
}

export interface ClusterMemberStatus extends Partial<PeerMembership> {
  id: string;
  address: string;
  weight: number;
  self: boolean;
  live: boolean;
}

export interface ClusterSyncCounters {
  polled: number;
  /** Entries queued toward owners, backups and askers (one per destination). */
  queued: number;
  received: number;
  installed: number;
  installRefused: number;
  transferQueued: number;
  transfersDone: number;
  resyncs: number;
  commits: number;
  commitTimeouts: number;
  lastCommitWaitMs: number;
  /** Leaves applied after commitTimeout without every survivor's transfer. */
  leaveTimeouts: number;
}

export interface ClusterStatus {
  id: string;
  bootId: string;
  ready: boolean;
  readySince: string | null;
  keyFingerprint: string;
  configFingerprint: string;
  members: ClusterMemberStatus[];
  tableEntries: number;
  tableEvicted: number;
  sync: ClusterSyncCounters;
  channel: ChannelCounters;
  peers: PeerChannelStatus[];
}

export interface ClusterServiceEvents {
  ready: [];
  membership: [live: string[]];
  /** A peer joined or came back with a new boot (the persistence store sends it its entries). */
  peerUp: [peer: string];
  /** A peer was declared dead (the persistence store re-replicates what it owned). */
  peerDown: [peer: string];
}

const POLL_BATCH = 16384;

function fingerprintOf(config: ClusterConfig, seed: string): bigint {
  const members = sortedMembers(config).map((m) => [m.id, m.address, m.weight]);
  const text = JSON.stringify({ members, seed, syncPort: config.syncPort, redirectPort: config.redirectPort });
  return createHash('sha256').update(text).digest().readBigUInt64BE(0);
}

interface TransferJob {
  items: Array<{ peer: string; entryClass: EntryClassNumber; record: Buffer }>;
  next: number;
  /** Peers that get a transfer end (for their boot) when the job is done. */
  ends: Map<string, bigint>;
}

export class ClusterService extends EventEmitter<ClusterServiceEvents> {
  readonly channel: Channel;
  readonly membership: Membership;
  private readonly members: ReturnType<typeof sortedMembers>;
  private readonly selfIndex: number;
  private readonly indexOf = new Map<string, number>();
  private readonly table: EntryTable;
  private readonly fingerprint: bigint;
  private ownership: Ownership;
  private readonly keyOwnership = new Map<string, Ownership>();
  private pollTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readyTimer: NodeJS.Timeout | undefined;
  private transferTimer: NodeJS.Timeout | undefined;
  private readonly jobs: TransferJob[] = [];
  private pendingCommits = 0;
  private readonly startedAt = Date.now();
  private readySince: number | undefined;
  /** Live peers whose transfer to us (for this boot) is complete. */
  private readonly transferredFrom = new Set<string>();
  private stopped = false;
  private readonly pollFailed = new WeakSet<SyncEngine>();
  /**
   * Peers that left but are still live in the engines' view: the survivors first send each
   * other the entries they now own or back (a mux must not decide a flow it newly backs
   * before it holds the entry), then the view changes. Bounded by commitTimeout.
   */
  private readonly leaving = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  /** When each peer last ended a transfer to this mux (this boot). */
  private readonly transferEndAt = new Map<string, number>();
  readonly sync: ClusterSyncCounters = {
    polled: 0,
    queued: 0,
    received: 0,
    installed: 0,
    installRefused: 0,
    transferQueued: 0,
    transfersDone: 0,
    resyncs: 0,
    commits: 0,
    commitTimeouts: 0,
    lastCommitWaitMs: 0,
    leaveTimeouts: 0,
  };

  constructor(private readonly options: ClusterServiceOptions) {
    super();
    const { config } = options;
    this.members = sortedMembers(config);
    this.members.forEach((m, i) => this.indexOf.set(m.id, i));
    this.selfIndex = this.indexOf.get(config.self.id) as number;
    this.fingerprint = fingerprintOf(config, options.seed);
    this.table = new EntryTable(config.maxEntries);
    const portOf = options.portOf ?? ((): number => config.syncPort);
    this.channel = new Channel({
      self: { id: config.self.id, address: config.self.address, port: portOf(config.self.id) },
      peers: config.peers.map((p) => ({ id: p.id, address: p.address, port: portOf(p.id) })),
      secret: options.secret,
      maxRate: config.maxRate,
      ackIntervalMs: Math.min(10, config.heartbeatIntervalMs),
    });
    this.membership = new Membership(this.channel, {
      peers: config.peers.map((p) => p.id),
      intervalMs: config.heartbeatIntervalMs,
      deadAfter: config.deadAfter,
      fingerprint: this.fingerprint,
    });
    this.ownership = this.currentOwnership();
    this.channel.on('entries', (peer, records) => this.install(peer, records));
    this.channel.on('transferEnd', (peer, forBoot) => this.transferEnded(peer, forBoot));
    this.channel.on('resyncNeeded', (peer) => {
      this.sync.resyncs++;
      this.log.warn({ peer }, `cluster: ${peer} lost batches that can no longer be repaired: sending it its entries again`);
      this.transferTo(new Map([[peer, this.channel.peerBoot(peer)]]));
    });
    this.membership.on('join', (peer) => {
      this.log.info({ peer, live: this.membership.live() }, `cluster: ${peer} joined (live: ${this.liveIds().join(', ')})`);
      const leaving = this.leaving.get(peer);
      if (leaving !== undefined) {
        // Back before its leave reached the engines: they never saw it go.
        clearTimeout(leaving.timer);
        this.leaving.delete(peer);
      }
      this.membershipChanged(new Map([[peer, this.channel.peerBoot(peer)]]));
      this.emit('peerUp', peer);
    });
    this.membership.on('leave', (peer, silentMs) => {
      this.transferredFrom.delete(peer);
      this.channel.forget(peer);
      this.log.warn({ peer, silentMs, live: this.membership.live() }, `cluster: ${peer} left (not heard for ${silentMs} ms; live: ${this.liveIds().join(', ')})`);
      this.left(peer);
      this.emit('peerDown', peer);
    });
    this.membership.on('restart', (peer) => {
      this.transferredFrom.delete(peer);
      this.log.info({ peer }, `cluster: ${peer} restarted: sending it its entries again`);
      this.transferTo(new Map([[peer, this.channel.peerBoot(peer)]]));
      this.emit('peerUp', peer);
    });
    this.membership.on('mismatch', (peer) =>
      this.log.error({ peer }, `cluster: ${peer} runs another cluster config (members, weights, seed or ports differ): ownership disagrees until they match`),
    );
  }

  private get log(): Logger {
    return this.options.logger;
  }

  get ready(): boolean {
    return this.readySince !== undefined;
  }

  async start(): Promise<void> {
    await this.channel.start();
    this.membership.start();
    const interval = this.options.pollIntervalMs ?? 2;
    const poll = (): void => {
      if (this.stopped) return;
      const full = this.pollOnce();
      this.pollTimer = full ? setTimeout(poll, 0) : setTimeout(poll, interval);
    };
    this.pollTimer = setTimeout(poll, interval);
    this.sweepTimer = setInterval(() => this.table.sweep(), 5000);
    this.readyTimer = setInterval(() => this.checkReady(), Math.max(10, this.options.config.heartbeatIntervalMs / 2));
    this.log.info(
      { id: this.options.config.self.id, boot: this.channel.bootId.toString(16), members: this.members.map((m) => m.id), key: keyFingerprint(this.options.secret) },
      `cluster: ${this.options.config.self.id} listening on ${this.options.config.self.address}:${this.options.config.syncPort}, ${this.members.length} members`,
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.pollTimer, this.transferTimer]) if (t !== undefined) clearTimeout(t);
    for (const l of this.leaving.values()) clearTimeout(l.timer);
    for (const t of [this.sweepTimer, this.readyTimer]) if (t !== undefined) clearInterval(t);
    this.membership.stop();
    await this.channel.close();
  }

  /** What the engines get as DataplaneConfig.cluster. */
  dataplane(): DataplaneCluster {
    return {
      selfIndex: this.selfIndex,
      seed: this.options.seed,
      members: this.members.map((m, i) => ({ id: m.id, address: m.address, weight: m.weight, live: i === this.selfIndex || this.membership.isLive(m.id) || this.leaving.has(m.id), leaving: this.leaving.has(m.id) })),
      redirectPort: this.options.config.redirectPort,
    };
  }

  get selfId(): string {
    return this.options.config.self.id;
  }

  /**
   * Owner and backup (member ids) of a persistence client key among the members membership
   * calls live now (a member that is leaving is not asked): the weighted rendezvous hashing of
   * the flows, over the key. undefined: none (no backup without a second live member).
   * `peers`: over these peers (and this mux) instead.
   */
  keyOwners(key: string, peers?: readonly string[]): { owner: string | undefined; backup: string | undefined } {
    const live = this.members.map((m, i) => i === this.selfIndex || (peers === undefined ? this.membership.isLive(m.id) : peers.includes(m.id)));
    const signature = live.map((l) => (l ? '1' : '0')).join('');
    let ownership = this.keyOwnership.get(signature);
    if (ownership === undefined) {
      // A few live sets at a time (now, and before a change).
      if (this.keyOwnership.size >= 8) this.keyOwnership.clear();
      ownership = new Ownership(BigInt(this.options.seed), this.members.map((m, i) => ({ id: m.id, weight: m.weight, live: live[i] === true })));
      this.keyOwnership.set(signature, ownership);
    }
    const { owner, backup } = ownership.keyOwners(key);
    return { owner: this.members[owner]?.id, backup: this.members[backup]?.id };
  }

  private liveIds(): string[] {
    return this.members.filter((m, i) => i === this.selfIndex || this.membership.isLive(m.id)).map((m) => m.id);
  }

  private currentOwnership(): Ownership {
    return new Ownership(BigInt(this.options.seed), this.dataplane().members);
  }

  /** Ownership over the members membership calls live (without the ones still leaving). */
  private membershipOwnership(): Ownership {
    return new Ownership(BigInt(this.options.seed), this.members.map((m, i) => ({ id: m.id, weight: m.weight, live: i === this.selfIndex || this.membership.isLive(m.id) })));
  }

  private left(peer: string): void {
    const before = this.ownership;
    const after = this.membershipOwnership();
    const ends = new Map(this.membership.live().map((p) => [p, this.channel.peerBoot(p)]));
    this.transferBetween(before, after, ends);
    this.ownership = after;
    const timer = setTimeout(() => this.release(peer, true), Math.max(1, this.options.config.commitTimeoutMs));
    this.leaving.set(peer, { at: Date.now(), timer });
    this.checkLeaves();
    // Still leaving: the engines learn that the backups of its flows now stand in for it.
    if (this.leaving.has(peer)) this.options.onMembershipChange();
  }

  /** Releases the leaves whose survivors' transfers have all come in. */
  private checkLeaves(): void {
    const { heartbeatIntervalMs, deadAfter } = this.options.config;
    for (const [peer, leaving] of this.leaving) {
      // A survivor that saw the leave a little earlier may have finished its transfer first.
      const since = leaving.at - heartbeatIntervalMs * deadAfter;
      if (this.membership.live().every((p) => (this.transferEndAt.get(p) ?? 0) >= since)) this.release(peer, false);
    }
  }

  private release(peer: string, timedOut: boolean): void {
    const leaving = this.leaving.get(peer);
    if (leaving === undefined) return;
    clearTimeout(leaving.timer);
    this.leaving.delete(peer);
    if (timedOut) this.sync.leaveTimeouts++;
    this.log.info({ peer, waitedMs: Date.now() - leaving.at, timedOut }, `cluster: ${peer}'s flows now go to their backups${timedOut ? ' (without every survivor\'s transfer: commitTimeout)' : ''}`);
    this.options.onMembershipChange();
    this.emit('membership', this.liveIds());
  }

  // ---- Sync ----

  /** Drains every engine once; true when a batch came back full (poll again at once). */
  pollOnce(): boolean {
    let full = false;
    for (const engine of this.options.engines()) {
      let records: Buffer;
      try {
        records = engine.pollFlowEvents(POLL_BATCH);
      } catch (e) {
        // Once per engine: an engine without cluster sync fails every poll the same way.
        if (!this.pollFailed.has(engine)) this.log.error({ err: String(e) }, `cluster: polling flow events failed: ${String(e)}`);
        this.pollFailed.add(engine);
        continue;
      }
      if (records.length >= POLL_BATCH * FLOW_RECORD_SIZE) full = true;
      this.route(records);
    }
    return full;
  }

  private route(records: Buffer): void {
    const n = Math.floor(records.length / FLOW_RECORD_SIZE);
    if (n === 0) return;
    this.sync.polled += n;
    for (let i = 0; i < n; i++) this.table.apply(records, i * FLOW_RECORD_SIZE, true);
    // Each live peer gets, in one pass per class, the records naming it as owner or backup
    // (teach records: as the member that asked), encoded without JavaScript per entry.
    const fresh = this.pendingCommits > 0 ? EntryClass.precommit : EntryClass.fresh;
    this.members.forEach((m, index) => {
      if (index === this.selfIndex || !this.membership.isLive(m.id)) return;
      this.sync.queued += this.channel.queueRecords(m.id, fresh, records, { member: index, refresh: false });
      this.sync.queued += this.channel.queueRecords(m.id, EntryClass.refresh, records, { member: index, refresh: true });
    });
  }

  private install(peer: string, records: Buffer): void {
    const n = records.length / FLOW_RECORD_SIZE;
    this.sync.received += n;
    for (let i = 0; i < n; i++) this.table.apply(records, i * FLOW_RECORD_SIZE, false);
    for (const engine of this.options.engines()) {
      try {
        const r = engine.installFlows(records);
        this.sync.installed += r.accepted;
        this.sync.installRefused += r.refused;
      } catch (e) {
        this.log.error({ peer, err: String(e) }, `cluster: installing entries from ${peer} failed`);
      }
    }
  }

  /**
   * Commit-after-sync: call before giving the engines a snapshot that changes a backend set
   * or weights. Waits until everything the workers exported so far has been polled and the
   * owners acknowledged it, at most commitTimeout; false when it gave up waiting (counted).
   */
  async beforeTableChange(): Promise<boolean> {
    const started = Date.now();
    const deadline = started + this.options.config.commitTimeoutMs;
    this.pendingCommits++;
    let complete = true;
    try {
      const engines = this.options.engines();
      const marks = engines.map((e) => (typeof e.syncMark === 'function' ? e.syncMark() : undefined));
      for (;;) {
        this.pollOnce();
        const drained = engines.every((e, i) => typeof e.syncDrained !== 'function' || e.syncDrained(marks[i]));
        if (drained) break;
        if (Date.now() >= deadline) {
          complete = false;
          break;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      const peers = this.membership.live();
      const acks = await Promise.all(peers.map((p) => this.channel.barrier(p, Math.max(1, deadline - Date.now()), [EntryClass.precommit, EntryClass.fresh])));
      // A peer that left meanwhile needs no ack: its flows have new owners.
      complete &&= acks.every((ok, i) => ok || !this.membership.isLive(peers[i] as string));
    } finally {
      this.pendingCommits--;
    }
    this.sync.commits++;
    this.sync.lastCommitWaitMs = Date.now() - started;
    if (!complete) {
      this.sync.commitTimeouts++;
      this.log.warn({ waitedMs: this.sync.lastCommitWaitMs }, `cluster: table change committed after ${this.sync.lastCommitWaitMs} ms without every owner's ack (commitTimeout)`);
    }
    return complete;
  }

  // ---- Membership changes and transfers ----

  private membershipChanged(joined: Map<string, bigint>): void {
    const before = this.ownership;
    this.ownership = this.currentOwnership();
    this.options.onMembershipChange();
    this.emit('membership', this.liveIds());
    this.transferBetween(before, this.ownership, joined);
  }

  /** Entries whose owner or backup is new under `after`, to those new owners. */
  private transferBetween(before: Ownership, after: Ownership, ends: Map<string, bigint>): void {
    const job: TransferJob = { items: [], next: 0, ends };
    const live = new Set(this.membership.live());
    for (const e of this.table.live()) {
      const was = before.owners(e.record);
      const now = after.owners(e.record);
      const oldOwnerGone = was.owner === NO_MEMBER || !live.has(this.members[was.owner]?.id ?? '');
      const mine = e.local || was.owner === this.selfIndex || (oldOwnerGone && was.backup === this.selfIndex);
      if (!mine) continue;
      for (const target of [now.owner, now.backup]) {
        if (target === NO_MEMBER || target === this.selfIndex || target === was.owner || target === was.backup) continue;
        const id = this.members[target]?.id;
        if (id !== undefined && live.has(id)) job.items.push({ peer: id, entryClass: EntryClass.transfer, record: e.record });
      }
    }
    this.enqueue(job);
  }

  /**
   * Every entry `peers` should hold (as owner or backup), to them: after a restart or an
   * unrepairable loss. Sent by every mux that holds it as its own flow, owner or backup.
   */
  private transferTo(peers: Map<string, bigint>): void {
    const job: TransferJob = { items: [], next: 0, ends: peers };
    for (const e of this.table.live()) {
      const now = this.ownership.owners(e.record);
      if (!(e.local || now.owner === this.selfIndex || now.backup === this.selfIndex)) continue;
      for (const target of [now.owner, now.backup]) {
        const id = target === NO_MEMBER ? undefined : this.members[target]?.id;
        if (id !== undefined && peers.has(id)) job.items.push({ peer: id, entryClass: EntryClass.transfer, record: e.record });
      }
    }
    this.enqueue(job);
  }

  private enqueue(job: TransferJob): void {
    this.sync.transferQueued += job.items.length;
    if (job.items.length > 0 || job.ends.size > 0) {
      this.log.info({ entries: job.items.length, to: [...new Set(job.items.map((i) => i.peer))], ends: [...job.ends.keys()] }, `cluster: transferring ${job.items.length} entries`);
    }
    this.jobs.push(job);
    if (this.transferTimer === undefined) this.runTransfers();
  }

  /** Feeds the jobs to the channel at transferRate entries per second (per peer, roughly). */
  private runTransfers(): void {
    this.transferTimer = undefined;
    const tickMs = 10;
    let budget = Math.max(1, Math.floor((this.options.config.transferRate * tickMs) / 1000) * Math.max(1, this.options.config.peers.length));
    while (budget > 0 && this.jobs.length > 0) {
      const job = this.jobs[0] as TransferJob;
      while (budget > 0 && job.next < job.items.length) {
        const item = job.items[job.next++] as TransferJob['items'][number];
        if (this.membership.isLive(item.peer)) this.channel.queue(item.peer, item.entryClass, item.record, 0);
        budget--;
      }
      if (job.next < job.items.length) break;
      this.jobs.shift();
      for (const [peer, boot] of job.ends) if (this.membership.isLive(peer)) this.channel.transferEnd(peer, boot);
      this.sync.transfersDone++;
    }
    if (this.jobs.length > 0 && !this.stopped) this.transferTimer = setTimeout(() => this.runTransfers(), tickMs);
  }

  private transferEnded(peer: string, forBoot: bigint): void {
    if (forBoot !== this.channel.bootId) return;
    this.transferredFrom.add(peer);
    this.transferEndAt.set(peer, Date.now());
    this.checkReady();
    this.checkLeaves();
  }

  /** Ready once the peers had time to be heard and every live one finished its transfer to us. */
  private checkReady(): void {
    if (this.ready || this.stopped) return;
    const { heartbeatIntervalMs, deadAfter } = this.options.config;
    const elapsed = Date.now() - this.startedAt;
    if (elapsed < heartbeatIntervalMs * (deadAfter + 1)) return;
    const waiting = this.membership.live().filter((p) => !this.transferredFrom.has(p));
    const timeout = this.options.readyTimeoutMs ?? Math.max(10_000, heartbeatIntervalMs * deadAfter * 10);
    if (waiting.length > 0 && elapsed < timeout) return;
    this.readySince = Date.now();
    this.membership.ready = true;
    if (waiting.length > 0) this.log.warn({ waiting }, `cluster: ready after ${elapsed} ms without the transfers of ${waiting.join(', ')}`);
    else this.log.info({ elapsedMs: elapsed, from: [...this.transferredFrom] }, `cluster: ready (transfers complete after ${elapsed} ms)`);
    this.emit('ready');
  }

  status(): ClusterStatus {
    const peers = new Map(this.membership.status().map((p) => [p.id, p]));
    return {
      id: this.options.config.self.id,
      bootId: this.channel.bootId.toString(16),
      ready: this.ready,
      readySince: this.readySince === undefined ? null : new Date(this.readySince).toISOString(),
      keyFingerprint: keyFingerprint(this.options.secret),
      configFingerprint: this.fingerprint.toString(16).padStart(16, '0'),
      members: this.members.map((m, i) => ({
        id: m.id,
        address: m.address,
        weight: m.weight,
        self: i === this.selfIndex,
        live: i === this.selfIndex || this.membership.isLive(m.id),
        ...peers.get(m.id),
      })),
      tableEntries: this.table.size,
      tableEvicted: this.table.evicted,
      sync: { ...this.sync },
      channel: structuredClone(this.channel.counters),
      peers: this.channel.status(),
    };
  }
}
