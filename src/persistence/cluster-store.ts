// The embedded store across a cluster, without any external server: every client key has an
// owner mux and a backup mux (the cluster's weighted rendezvous hashing over the live members,
// of the key). The owner serializes the key's read-miss-creates and compare-and-sets, sends the
// entry to the backup and waits for its ack before it answers; the other muxes ask the owner
// over the cluster channel (persist messages, src/cluster/persist-wire.ts) and wait at most
// storeTimeout (then the slow path decides locally and reconciles later). Every entry an owner
// records also goes to the other muxes, so that their fast-path tables know the client before
// its packets arrive there (what etcd's watch does for the etcd store). Each mux keeps what it
// holds in its own state file (EmbeddedStore): a restarted mux finds it again.
//
// When the owner dies, the key's backup is its owner under the new membership and holds every
// entry the old owner answered. A mux that comes back (or joins) gets every entry from its
// peers; until those transfers are complete (or syncTimeout passed) it checks even the entries
// it has with the key's backup before answering, and the higher version wins (a version is the
// owner's hybrid clock when it wrote the entry). The backup keeps an entry it has when the owner
// creates one (the owner adopts it): an owner that lost or never had an entry cannot overwrite
// the one its backup holds.
import type { ClusterService } from '../cluster/service.js';
import { decodePersist, encodePersist, PersistOp, persistItem, type PersistItem, type PersistOpNumber } from '../cluster/persist-wire.js';
import { MAX_PAYLOAD } from '../cluster/wire.js';
import { EmbeddedStore, type EmbeddedEntry } from './embedded.js';
import { StoreTimeout, type ClientKey, type PersistenceStore, type RmcAnswer, type RmcRequest, type StoreEntry, type StoreEvents, type TouchRequest } from './store.js';

/** What the store needs of the cluster (ClusterService; fakes in tests). */
export interface PersistTransport {
  readonly selfId: string;
  /** Owner and backup of a key among the live members (or among `live` peers and this mux); undefined: none. */
  keyOwners(key: string, live?: readonly string[]): { owner: string | undefined; backup: string | undefined };
  livePeers(): string[];
  send(peer: string, payload: Buffer): boolean;
  /**
   * Persist messages from peers, peers that joined or restarted, peers declared dead; returns
   * the unsubscribe.
   */
  subscribe(onMessage: (peer: string, payload: Buffer) => void, onPeerUp: (peer: string) => void, onPeerDown: (peer: string) => void): () => void;
}

export interface ClusterStoreOptions {
  /** This mux's state file. */
  path: string;
  transport: PersistTransport;
  /** How long a caller waits for the owner (and the owner for the backup). */
  timeoutMs: number;
  /** Until this long after the start, the peers may not have been heard yet (heartbeats). */
  graceMs: number;
  /** Longest wait for the peers' transfers before this mux trusts its own entries anyway. */
  syncTimeoutMs?: number;
  syncIntervalMs?: number;
  now?: () => number;
}

const CREATED = 1;
const EXISTING = 0;
const UNAVAILABLE = 2;
const MODE_CREATE = 1;
const MODE_PUT = 2;
/** Sync batches in flight to one peer. */
const SYNC_WINDOW = 8;
/** The first resend of an unanswered request (then twice as long each time). */
const RESEND_MS = 50;
/** Items per sync message (they fit a datagram; acks are per message). */
const SYNC_BATCH = 24;

interface Pending {
  replies: Array<PersistItem | undefined>;
  left: number;
  done: (replies: Array<PersistItem | undefined> | undefined) => void;
}

interface Call {
  item: PersistItem;
  resolve: (reply: PersistItem | undefined) => void;
}

function isReply(op: number): boolean {
  return op === PersistOp.answer || op === PersistOp.replicated || op === PersistOp.ack;
}

/** Orders two versions of an entry: the higher version wins, the backend breaks a tie. */
function newer(a: EmbeddedEntry, b: EmbeddedEntry): boolean {
  return a.version !== b.version ? a.version > b.version : a.backend > b.backend;
}

export class ClusterStore implements PersistenceStore {
  readonly kind = 'embedded';
  private readonly local: EmbeddedStore;
  private readonly now: () => number;
  private events: StoreEvents | undefined;
  private unsubscribe: (() => void) | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly batches = new Map<string, { peer: string; op: PersistOpNumber; calls: Call[] }>();
  private batchScheduled = false;
  private readonly locks = new Map<ClientKey, Promise<void>>();
  private clock = 0;
  private startedAt = 0;
  private readonly syncedFrom = new Set<string>();
  private synced = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly counts = {
    /** Read-miss-creates and compare-and-sets this mux served as the key's owner (own / for peers). */
    ownerLocal: 0, ownerRemote: 0,
    /** ...sent to the owner. */
    forwarded: 0,
    created: 0, existing: 0, replaced: 0,
    /** Entries the backup already had when the owner created or checked one. */
    backupWon: 0,
    backupWrites: 0, backupRefusedStale: 0,
    putsSent: 0, putsApplied: 0, touchesSent: 0, touchesReceived: 0,
    syncSent: 0, syncReceived: 0, syncEnds: 0,
    /** Entries sent to a key's new backup after a peer died. */
    rereplicated: 0,
    /** Request messages sent again within an attempt. */
    resent: 0,
    /** Attempts that got no answer in time (retried until storeTimeout). */
    attemptTimeouts: 0,
    /** Calls that failed: no owner or backup answered within storeTimeout. */
    timeouts: 0,
    badMessages: 0,
  };

  constructor(private readonly options: ClusterStoreOptions) {
    this.now = options.now ?? Date.now;
    this.local = new EmbeddedStore({ path: options.path, ...(options.syncIntervalMs !== undefined && { syncIntervalMs: options.syncIntervalMs }), now: this.now });
  }

  private get self(): string {
    return this.options.transport.selfId;
  }

  /** One attempt's wait: a few attempts fit storeTimeout. */
  private get attemptMs(): number {
    return Math.max(25, Math.floor(this.options.timeoutMs / 3));
  }

  async open(events: StoreEvents): Promise<StoreEntry[]> {
    this.events = events;
    const entries = await this.local.open(events);
    for (const [, e] of this.local.live()) this.observe(e.version);
    this.startedAt = this.now();
    this.unsubscribe = this.options.transport.subscribe(
      (peer, payload) => this.receive(peer, payload),
      (peer) => void this.sendSync(peer),
      (peer) => void this.rereplicate(peer),
    );
    for (const peer of this.options.transport.livePeers()) void this.sendSync(peer);
    this.syncTimer = setInterval(() => this.checkSynced(), 50);
    this.syncTimer.unref();
    this.checkSynced();
    return entries;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.syncTimer !== undefined) clearInterval(this.syncTimer);
    this.unsubscribe?.();
    for (const p of this.pending.values()) p.done(undefined);
    this.pending.clear();
    await this.local.close();
  }

  // ---- The slow path's calls ----

  async rmc(requests: readonly RmcRequest[]): Promise<RmcAnswer[]> {
    const deadline = this.now() + this.options.timeoutMs;
    const answers = await Promise.all(
      requests.map((r) => this.toOwner(r.key, PersistOp.rmc, persistItem({ key: r.key, backend: r.proposed, ms: r.timeoutSeconds * 1000 }), deadline)),
    );
    const missing = answers.filter((a) => a === undefined).length;
    if (missing > 0) {
      this.counts.timeouts += missing;
      throw new StoreTimeout(`cluster store: ${missing} of ${requests.length} read-miss-creates got no owner's answer within ${this.options.timeoutMs} ms`);
    }
    return answers.map((a, i) => ({ key: (requests[i] as RmcRequest).key, backend: (a as PersistItem).backend, created: (a as PersistItem).flag === CREATED }));
  }

  async replace(key: ClientKey, expected: string, next: string, timeoutSeconds: number): Promise<string> {
    const a = await this.toOwner(key, PersistOp.replace, persistItem({ key, backend: next, other: expected, ms: timeoutSeconds * 1000 }), this.now() + this.options.timeoutMs);
    if (a === undefined) {
      this.counts.timeouts += 1;
      throw new StoreTimeout(`cluster store: the compare-and-set got no owner's answer within ${this.options.timeoutMs} ms`);
    }
    return a.backend;
  }

  async touch(keys: readonly TouchRequest[]): Promise<void> {
    await this.local.touch(keys);
    const items = keys.map((t) => persistItem({ key: t.key, backend: t.backend, ms: t.timeoutSeconds * 1000 }));
    // No reply, no retry: a touch that is lost is the next one's (the slow path touches each
    // quarter timeout while the client is active).
    for (const peer of this.options.transport.livePeers()) {
      for (const m of encodePersist(PersistOp.touch, 0, items, MAX_PAYLOAD)) if (this.options.transport.send(peer, m)) this.counts.touchesSent += 1;
    }
  }

  async remove(keys: readonly ClientKey[]): Promise<void> {
    await this.local.remove(keys);
  }

  status(): Record<string, unknown> {
    return { ...this.local.status(), cluster: true, synced: this.synced, syncedFrom: [...this.syncedFrom], pending: this.pending.size, ...this.counts };
  }

  /** The entry this mux holds (tests). */
  get(key: ClientKey): EmbeddedEntry | undefined {
    return this.local.peek(key);
  }

  // ---- Owner and backup ----

  /** Sends the call to the key's owner (itself included) until it answers or `deadline`. */
  private async toOwner(key: ClientKey, op: PersistOpNumber, item: PersistItem, deadline: number): Promise<PersistItem | undefined> {
    for (;;) {
      const { owner } = this.options.transport.keyOwners(key);
      let a: PersistItem | undefined;
      if (owner === undefined || owner === this.self) {
        this.counts.ownerLocal += 1;
        a = await this.serve(op, item, false, deadline);
      } else {
        this.counts.forwarded += 1;
        a = await this.call(owner, op, item);
        // The owner's answer is an entry like its puts: this mux's file holds it too.
        if (a !== undefined && a.flag !== UNAVAILABLE && a.version > 0) await this.applyPut(persistItem({ key, backend: a.backend, version: a.version, ms: a.ms }), false);
      }
      if (a !== undefined && a.flag !== UNAVAILABLE) return a;
      if (this.closed || this.now() >= deadline) return undefined;
      // The owner could not reach its backup: ownership may be about to change.
      if (a !== undefined) await new Promise((r) => setTimeout(r, Math.min(10, Math.max(1, deadline - this.now()))));
    }
  }

  private tick(): number {
    this.clock = Math.max(this.now() * 1024, this.clock + 1);
    return this.clock;
  }

  private observe(version: number): void {
    if (version > this.clock) this.clock = version;
  }

  private withLock<T>(key: ClientKey, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return run;
  }

  private answerOf(e: EmbeddedEntry, flag: number): PersistItem {
    return persistItem({ flag, backend: e.backend, version: e.version, ms: e.expiresAt - this.now() });
  }

  /** A read-miss-create or compare-and-set as the key's owner, serialized per key. */
  private serve(op: PersistOpNumber, item: PersistItem, remote: boolean, deadline: number): Promise<PersistItem> {
    return this.withLock(item.key, async () => {
      if (remote) this.counts.ownerRemote += 1;
      const now = this.now();
      let e = this.local.peek(item.key);
      if (e !== undefined && !this.synced) {
        // Came back or joined: what the backup has may be newer than this mux's file.
        const checked = await this.replicate(item.key, e, MODE_PUT, deadline);
        if (checked === undefined) return persistItem({ flag: UNAVAILABLE });
        e = this.adopt(item.key, e, checked, remote);
      }
      if (op === PersistOp.rmc && e !== undefined) {
        this.counts.existing += 1;
        return this.answerOf(e, EXISTING);
      }
      if (op === PersistOp.replace && e !== undefined && e.backend !== item.other) return this.answerOf(e, EXISTING);
      const candidate: EmbeddedEntry = { backend: item.backend, expiresAt: now + item.ms, version: this.tick() };
      const winner = await this.replicate(item.key, candidate, op === PersistOp.rmc ? MODE_CREATE : MODE_PUT, deadline);
      if (winner === undefined) return persistItem({ flag: UNAVAILABLE });
      const recorded = this.adopt(item.key, e, winner, remote);
      const mine = recorded.version === candidate.version && recorded.backend === candidate.backend;
      if (!mine) this.counts.backupWon += 1;
      else if (op === PersistOp.rmc) this.counts.created += 1;
      else this.counts.replaced += 1;
      return this.answerOf(recorded, mine && op === PersistOp.rmc ? CREATED : EXISTING);
    });
  }

  /** Records `winner` when it differs from `had`; tells this mux's tables and the other muxes. */
  private adopt(key: ClientKey, had: EmbeddedEntry | undefined, winner: EmbeddedEntry, remote: boolean): EmbeddedEntry {
    this.observe(winner.version);
    if (had !== undefined && had.version === winner.version && had.backend === winner.backend) return had;
    this.local.write(key, winner);
    // The slow path that asked installs the answer itself; a peer's request is news here.
    if (remote || had !== undefined) this.events?.put({ key, backend: winner.backend, ttlMs: winner.expiresAt - this.now() });
    this.broadcast(key, winner);
    return winner;
  }

  /** The entry to the key's backup (create: it keeps one it has; put: the newer wins); its answer. */
  private async replicate(key: ClientKey, entry: EmbeddedEntry, mode: number, deadline: number): Promise<EmbeddedEntry | undefined> {
    for (;;) {
      const { backup } = this.options.transport.keyOwners(key);
      if (backup === undefined || backup === this.self) return entry;  // alone: nobody to ask
      const reply = await this.call(backup, PersistOp.replicate, persistItem({ flag: mode, key, backend: entry.backend, version: entry.version, ms: entry.expiresAt - this.now() }));
      if (reply !== undefined) return { backend: reply.backend, version: reply.version, expiresAt: this.now() + reply.ms };
      if (this.closed || this.now() >= deadline) return undefined;
    }
  }

  /** As the key's backup: the owner's entry, or the one this mux has. */
  private backupOf(item: PersistItem): Promise<PersistItem> {
    return this.withLock(item.key, async () => {
      const e = this.local.peek(item.key);
      const incoming: EmbeddedEntry = { backend: item.backend, version: item.version, expiresAt: this.now() + item.ms };
      this.observe(item.version);
      const keep = e !== undefined && (item.flag === MODE_CREATE || newer(e, incoming) || (e.version === incoming.version && e.backend === incoming.backend));
      if (keep) {
        if (!(e.version === incoming.version && e.backend === incoming.backend)) this.counts.backupRefusedStale += 1;
        return this.answerOf(e, EXISTING);
      }
      this.local.write(item.key, incoming);
      this.counts.backupWrites += 1;
      this.events?.put({ key: item.key, backend: incoming.backend, ttlMs: item.ms });
      return this.answerOf(incoming, EXISTING);
    });
  }

  /**
   * An entry from its owner (or a peer's transfer, or the owner's answer): kept when newer than
   * this mux's; `tell`: this mux's tables learn it (not for an answer: the slow path installs it).
   */
  private applyPut(item: PersistItem, tell = true): Promise<void> {
    return this.withLock(item.key, async () => {
      const e = this.local.peek(item.key);
      const incoming: EmbeddedEntry = { backend: item.backend, version: item.version, expiresAt: this.now() + item.ms };
      this.observe(item.version);
      if (item.ms <= 0 || (e !== undefined && !newer(incoming, e))) return;
      this.local.write(item.key, incoming);
      if (!tell) return;
      this.counts.putsApplied += 1;
      this.events?.put({ key: item.key, backend: incoming.backend, ttlMs: item.ms });
    });
  }

  /** The owner's new entry to every live peer but its backup (which has it), best effort with retries. */
  private broadcast(key: ClientKey, e: EmbeddedEntry): void {
    const { backup } = this.options.transport.keyOwners(key);
    const item = persistItem({ key, backend: e.backend, version: e.version, ms: e.expiresAt - this.now() });
    for (const peer of this.options.transport.livePeers()) {
      if (peer === backup) continue;
      this.counts.putsSent += 1;
      void this.callUntil(peer, PersistOp.put, item, this.now() + 4 * this.options.timeoutMs);
    }
  }

  // ---- Joining: transfers ----

  private transferDeadline(): number {
    return this.now() + Math.max(this.options.syncTimeoutMs ?? 5000, 4 * this.options.timeoutMs);
  }

  /** Every entry this mux holds, to a peer that joined or restarted, then the transfer's end. */
  private async sendSync(peer: string): Promise<void> {
    const deadline = this.transferDeadline();
    await this.transfer(peer, this.local.live(), deadline);
    for (;;) {
      if (this.closed || this.now() >= deadline) return;
      const r = await this.ask(peer, PersistOp.syncEnd, [persistItem({ other: '' })]);
      if (r !== undefined) return;
    }
  }

  /**
   * A peer died: for the keys this mux owns now whose backup is new (it was neither their owner
   * nor their backup before), the entry goes to that backup, which may have missed the dead
   * owner's put.
   */
  private async rereplicate(dead: string): Promise<void> {
    const before = [...this.options.transport.livePeers(), dead];
    const to = new Map<string, Array<[ClientKey, EmbeddedEntry]>>();
    for (const [key, e] of this.local.live()) {
      const now = this.options.transport.keyOwners(key);
      if (now.owner !== this.self || now.backup === undefined) continue;
      const old = this.options.transport.keyOwners(key, before);
      if (now.backup === old.owner || now.backup === old.backup) continue;
      const list = to.get(now.backup) ?? [];
      list.push([key, e]);
      to.set(now.backup, list);
    }
    const deadline = this.transferDeadline();
    await Promise.all([...to].map(([peer, entries]) => {
      this.counts.rereplicated += entries.length;
      return this.transfer(peer, entries, deadline);
    }));
  }

  /** Entries to a peer as puts (it keeps the newer), a window of batches in flight, each retried until acked or `deadline`. */
  private async transfer(peer: string, entries: ReadonlyArray<[ClientKey, EmbeddedEntry]>, deadline: number): Promise<void> {
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < entries.length && !this.closed) {
        const batch = entries.slice(next, next + SYNC_BATCH);
        next += SYNC_BATCH;
        const items = batch.map(([key, e]) => persistItem({ key, backend: e.backend, version: e.version, ms: e.expiresAt - this.now() }));
        this.counts.syncSent += items.length;
        for (;;) {
          const r = await this.ask(peer, PersistOp.put, items);
          if (r !== undefined || this.closed || this.now() >= deadline) break;
        }
      }
    };
    await Promise.all(Array.from({ length: SYNC_WINDOW }, lane));
  }

  private checkSynced(): void {
    if (this.synced) return;
    const elapsed = this.now() - this.startedAt;
    const live = this.options.transport.livePeers();
    const complete = elapsed >= this.options.graceMs && live.every((p) => this.syncedFrom.has(p));
    if (complete || elapsed >= (this.options.syncTimeoutMs ?? 5000)) {
      this.synced = true;
      if (this.syncTimer !== undefined) clearInterval(this.syncTimer);
    }
  }

  // ---- Messages ----

  /** `call` again until answered or `deadline`. */
  private async callUntil(peer: string, op: PersistOpNumber, item: PersistItem, deadline: number): Promise<PersistItem | undefined> {
    for (;;) {
      const r = await this.call(peer, op, item);
      if (r !== undefined || this.closed || this.now() >= deadline || !this.options.transport.livePeers().includes(peer)) return r;
    }
  }

  /** One attempt: the item goes with the others for the same peer and op in this tick. */
  private call(peer: string, op: PersistOpNumber, item: PersistItem): Promise<PersistItem | undefined> {
    return new Promise((resolve) => {
      const id = `${peer}\0${op}`;
      let b = this.batches.get(id);
      if (b === undefined) {
        b = { peer, op, calls: [] };
        this.batches.set(id, b);
      }
      b.calls.push({ item, resolve });
      if (!this.batchScheduled) {
        this.batchScheduled = true;
        setImmediate(() => this.flushCalls());
      }
    });
  }

  private flushCalls(): void {
    this.batchScheduled = false;
    const batches = [...this.batches.values()];
    this.batches.clear();
    for (const b of batches) {
      // One message per ask: an ack covers the message it answers.
      const perMessage = b.op === PersistOp.put ? SYNC_BATCH : 4096;
      for (let i = 0; i < b.calls.length; i += perMessage) {
        const calls = b.calls.slice(i, i + perMessage);
        void this.ask(b.peer, b.op, calls.map((c) => c.item)).then((replies) => {
          if (replies === undefined) this.counts.attemptTimeouts += 1;
          calls.forEach((c, k) => c.resolve(replies?.[k]));
        });
      }
    }
  }

  /**
   * Sends a request; its replies (one per item; an ack fills them all), or undefined after
   * attemptMs. Messages not answered yet are sent again after 50 ms, then 100, 200, ... within
   * the attempt (a lost datagram costs a few round trips, not the attempt): the owner and the
   * backup answer a repeated request as the first (read-miss-create, compare-and-set and puts
   * are idempotent).
   */
  private ask(peer: string, op: PersistOpNumber, items: PersistItem[]): Promise<Array<PersistItem | undefined> | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const messages = encodePersist(op, id, items, MAX_PAYLOAD);
    return new Promise((resolve) => {
      let resendTimer: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        if (resendTimer !== undefined) clearTimeout(resendTimer);
        this.pending.delete(id);
        resolve(undefined);
      }, this.attemptMs);
      const pending: Pending = {
        replies: new Array<PersistItem | undefined>(items.length).fill(undefined),
        left: items.length,
        done: (r) => {
          clearTimeout(timer);
          if (resendTimer !== undefined) clearTimeout(resendTimer);
          this.pending.delete(id);
          resolve(r);
        },
      };
      this.pending.set(id, pending);
      for (const m of messages) this.options.transport.send(peer, m);
      let wait = RESEND_MS;
      const resend = (): void => {
        if (!this.pending.has(id) || this.closed) return;
        for (const m of messages) {
          const first = m.readUInt16BE(8);
          const count = m.readUInt16BE(2);
          if (count > 0 && pending.replies.slice(first, first + count).every((r) => r !== undefined)) continue;
          this.counts.resent += 1;
          this.options.transport.send(peer, m);
        }
        wait *= 2;
        resendTimer = setTimeout(resend, wait);
      };
      resendTimer = setTimeout(resend, wait);
    });
  }

  private reply(peer: string, op: PersistOpNumber, id: number, first: number, items: PersistItem[]): void {
    const messages = encodePersist(op, id, items, MAX_PAYLOAD);
    let at = first;
    for (const m of messages) {
      m.writeUInt16BE(at, 8);
      at += m.readUInt16BE(2);
      this.options.transport.send(peer, m);
    }
  }

  private receive(peer: string, payload: Buffer): void {
    if (this.closed) return;
    const m = decodePersist(payload);
    if (m === undefined) {
      this.counts.badMessages += 1;
      return;
    }
    if (isReply(m.op)) {
      const p = this.pending.get(m.id);
      if (p === undefined) return;  // answered already, or given up
      if (m.op === PersistOp.ack) return p.done(p.replies.map(() => persistItem({})));
      m.items.forEach((it, k) => {
        const at = m.first + k;
        if (at < p.replies.length && p.replies[at] === undefined) {
          p.replies[at] = it;
          p.left -= 1;
        }
      });
      if (p.left <= 0) p.done(p.replies);
      return;
    }
    const deadline = this.now() + this.options.timeoutMs;
    switch (m.op) {
      case PersistOp.rmc:
      case PersistOp.replace:
        void Promise.all(m.items.map((it) => this.serve(m.op, it, true, deadline))).then((answers) => this.reply(peer, PersistOp.answer, m.id, m.first, answers));
        return;
      case PersistOp.replicate:
        void Promise.all(m.items.map((it) => this.backupOf(it))).then((answers) => this.reply(peer, PersistOp.replicated, m.id, m.first, answers));
        return;
      case PersistOp.put:
        this.counts.syncReceived += m.items.length;
        void Promise.all(m.items.map((it) => this.applyPut(it))).then(() => this.reply(peer, PersistOp.ack, m.id, m.first, []));
        return;
      case PersistOp.touch:
        this.counts.touchesReceived += m.items.length;
        void this.local.touch(m.items.map((it) => ({ key: it.key, backend: it.backend, timeoutSeconds: it.ms / 1000 })));
        return;
      case PersistOp.syncEnd:
        this.counts.syncEnds += 1;
        this.syncedFrom.add(peer);
        this.checkSynced();
        this.reply(peer, PersistOp.ack, m.id, m.first, []);
        return;
    }
  }
}

/** The transport over a running cluster service: its channel, membership and key ownership. */
export function clusterTransport(cluster: ClusterService): PersistTransport {
  return {
    selfId: cluster.selfId,
    keyOwners: (key, live) => cluster.keyOwners(key, live),
    livePeers: () => cluster.membership.live(),
    send: (peer, payload) => cluster.channel.sendPersist(peer, payload),
    subscribe(onMessage, onPeerUp, onPeerDown) {
      cluster.channel.on('persist', onMessage);
      cluster.on('peerUp', onPeerUp);
      cluster.on('peerDown', onPeerDown);
      return () => {
        cluster.channel.off('persist', onMessage);
        cluster.off('peerUp', onPeerUp);
        cluster.off('peerDown', onPeerDown);
      };
    },
  };
}
