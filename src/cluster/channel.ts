// The cluster channel: authenticated, encrypted UDP datagrams between this mux and each peer
// (wire.ts), with per-stream replay windows, reliable delivery of entry batches (numbered,
// acknowledged, lost ones asked for and sent again; what can no longer be repaired is
// resynchronized), and a per-peer byte-rate cap that serves entry classes by priority.
// Everything it holds is bounded: queued and retained bytes per peer, tracked holes, keys.
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';

import { wireCodec } from './codec.js';
import { channelKey, memberTag } from './keys.js';
import {
  ALL_RECORDS,
  decodeAck,
  decodeHeartbeat,
  encodeAck,
  encodeHeartbeat,
  ENTRIES_ACK_NOW,
  ENTRIES_HEADER_BYTES,
  ENTRIES_TRANSFER_END,
  ENTRY_CLASSES,
  EntryClass,
  MAX_ENTRY_BYTES,
  MAX_PAYLOAD,
  MIN_WIRE_ENTRY_BYTES,
  MessageType,
  open,
  readEntriesHeader,
  readHeader,
  seal,
  selects,
  writeEntriesHeader,
  type EntryClassNumber,
  type Heartbeat,
  type MessageTypeNumber,
  type WireCodec,
  type WireSelect,
} from './wire.js';
import { ReliableReceiver, ReplayWindow } from './window.js';

export interface ChannelMember {
  id: string;
  address: string;
  /** UDP port it listens on (the cluster's syncPort; tests give each member its own). */
  port: number;
}

export interface ChannelOptions {
  self: ChannelMember;
  peers: ChannelMember[];
  secret: Buffer;
  /** Bytes per second to each peer. */
  maxRate: number;
  /** Bytes of entries queued per peer before the least urgent are dropped (counted). */
  maxQueuedBytes?: number;
  /** Bytes of sent, unacknowledged batches kept per peer for repair. */
  maxRetainedBytes?: number;
  /**
   * Bytes sent and not yet acknowledged, per peer, before the sender waits for acks: flow
   * control, so that a burst never overruns the receiver's socket buffer. Default 512 KiB.
   */
  windowBytes?: number;
  /** How often acks and repair requests go out while something is unacknowledged. */
  ackIntervalMs?: number;
  /** Fixed boot id (tests); default: now in ms << 16 | 16 random bits, so it grows across restarts. */
  bootId?: bigint;
  /** Sees every outgoing datagram and decides whether to send it (tests: loss). */
  sendHook?: (datagram: Buffer, send: () => void) => void;
  /** The entry codec (default: the addon's, else the TypeScript one; see codec.ts). */
  codec?: WireCodec;
}

/** Why a datagram was refused (counted by name). */
export const REFUSALS = ['truncated', 'oversized', 'bad_version', 'bad_type', 'unknown_peer', 'old_boot', 'bad_auth', 'replayed', 'stale', 'bad_payload', 'bad_entry'] as const;
export type Refusal = (typeof REFUSALS)[number];

export interface ChannelCounters {
  datagramsSent: number;
  datagramsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  entriesSent: number;
  entriesReceived: number;
  retransmitted: number;
  resyncsSent: number;
  resyncsReceived: number;
  queueDropped: number;
  sendErrors: number;
  persistSent: number;
  persistReceived: number;
  refused: Record<Refusal, number>;
}

export interface PeerChannelStatus {
  id: string;
  address: string;
  bootId: string | null;
  queuedEntries: number;
  queuedBytes: number;
  retainedBytes: number;
  lastSentRseq: string;
  ackedRseq: string;
  receivedRseq: string;
}

export interface ChannelEvents {
  heartbeat: [peer: string, heartbeat: Heartbeat, bootId: bigint];
  /** n*64 bytes of flow records, from-peer, owner indexes unset. */
  entries: [peer: string, records: Buffer, entryClass: number];
  transferEnd: [peer: string, forBoot: bigint];
  /** The peer started anew (new boot id): its old stream state is gone. */
  restart: [peer: string, bootId: bigint];
  /** The peer could not get what we sent it: every entry it should hold must be sent again. */
  resyncNeeded: [peer: string];
  refused: [reason: Refusal, from: string];
  /** A persist message (the cluster persistence store's; not part of the reliable stream). */
  persist: [peer: string, payload: Buffer];
}

interface Chunk {
  entryClass: EntryClassNumber;
  body: Buffer;
  used: number;
  count: number;
  flags: number;
  forBoot: bigint;
  rseq?: bigint;
  /** When it was last sent (repairs wait a round trip before sending it again). */
  sentAt?: number;
}

interface Barrier {
  chunks: Chunk[];
  upTo: bigint;
  resolve: (acked: boolean) => void;
}

class PeerStream {
  readonly tag: number;
  // Sending.
  seq = 0n;
  sendKey: Buffer;
  nextRseq = 1n;
  acked = 0n;
  ackedBoot = 0n;
  readonly queues: Chunk[][] = Array.from({ length: ENTRY_CLASSES }, () => []);
  queuedBytes = 0;
  queuedEntries = 0;
  readonly retained = new Map<bigint, Chunk>();
  retainedBytes = 0;
  tokens: number;
  tokensAt = Date.now();
  barriers: Barrier[] = [];
  /** A resync told the receiver to skip everything below this. */
  resyncedTo = 0n;
  /** The receiver's boot id as its heartbeats tell (for transfer ends). */
  // Receiving.
  bootId = 0n;
  recvKey: Buffer | undefined;
  window = new ReplayWindow();
  reliable = new ReliableReceiver();
  ackDue = false;
  /** Batches received since the last ack. */
  unacked = 0;

  constructor(
    readonly member: ChannelMember,
    readonly secret: Buffer,
    readonly selfId: string,
    readonly selfBoot: bigint,
    burst: number,
  ) {
    this.tag = memberTag(member.id);
    this.sendKey = channelKey(secret, selfBoot, selfId, member.id);
    this.tokens = burst;
  }
}

/** Batches received before an ack goes out without waiting for the ack tick. */
const ACK_EVERY = 16;
/** A batch is sent again at most once in this long. */
const REPAIR_HOLDOFF_MS = 30;
const RECORD_BYTES = 64;
const EVERY_RECORD: WireSelect = { member: ALL_RECORDS, refresh: false };

export function newBootId(): bigint {
  return (BigInt(Date.now()) << 16n) | BigInt(randomBytes(2).readUInt16BE(0));
}

export class Channel extends EventEmitter<ChannelEvents> {
  readonly bootId: bigint;
  readonly selfTag: number;
  private readonly peers = new Map<string, PeerStream>();
  private readonly byTag = new Map<number, PeerStream>();
  private socket: Socket | undefined;
  private flushScheduled = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private readonly maxQueuedBytes: number;
  private readonly maxRetainedBytes: number;
  private readonly burst: number;
  private readonly windowBytes: number;
  private readonly codec: WireCodec;
  readonly counters: ChannelCounters = {
    datagramsSent: 0,
    datagramsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    entriesSent: 0,
    entriesReceived: 0,
    retransmitted: 0,
    resyncsSent: 0,
    resyncsReceived: 0,
    queueDropped: 0,
    sendErrors: 0,
    persistSent: 0,
    persistReceived: 0,
    refused: Object.fromEntries(REFUSALS.map((r) => [r, 0])) as Record<Refusal, number>,
  };

  constructor(private readonly options: ChannelOptions) {
    super();
    this.bootId = options.bootId ?? newBootId();
    this.selfTag = memberTag(options.self.id);
    this.maxQueuedBytes = options.maxQueuedBytes ?? 64 << 20;
    this.maxRetainedBytes = options.maxRetainedBytes ?? 16 << 20;
    this.windowBytes = options.windowBytes ?? 512 << 10;
    this.codec = options.codec ?? wireCodec();
    // 20 ms worth of the rate, at least two full datagrams.
    this.burst = Math.max(2 * 1400, Math.floor(options.maxRate / 50));
    for (const member of options.peers) {
      const stream = new PeerStream(member, options.secret, options.self.id, this.bootId, this.burst);
      if (stream.tag === this.selfTag || this.byTag.has(stream.tag)) throw new Error(`cluster member ids ${member.id} and another hash to the same tag: rename one`);
      this.peers.set(member.id, stream);
      this.byTag.set(stream.tag, stream);
    }
  }

  async start(): Promise<void> {
    const socket = createSocket({ type: isIPv6(this.options.self.address) ? 'udp6' : 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.options.self.port, this.options.self.address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('message', (msg, rinfo) => this.receive(msg, `${rinfo.address}:${rinfo.port}`));
    socket.on('error', () => this.counters.sendErrors++);
    this.socket = socket;
    this.ackTimer = setInterval(() => this.sendDueAcks(), this.options.ackIntervalMs ?? 10);
  }

  async close(): Promise<void> {
    if (this.ackTimer !== undefined) clearInterval(this.ackTimer);
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    for (const p of this.peers.values()) for (const b of p.barriers) b.resolve(false);
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  peerIds(): string[] {
    return [...this.peers.keys()];
  }

  /** The peer's current boot id, 0 before it was heard. */
  peerBoot(peer: string): bigint {
    return this.peers.get(peer)?.bootId ?? 0n;
  }

  // ---- Sending ----

  heartbeat(peer: string, fingerprint: bigint, ready: boolean): void {
    const p = this.peers.get(peer);
    if (p === undefined) return;
    const hb: Heartbeat = { fingerprint, ready, lastRseq: p.nextRseq - 1n, ackBoot: p.bootId, ackRseq: p.reliable.contiguous };
    this.sendRaw(p, MessageType.heartbeat, encodeHeartbeat(hb));
  }

  /**
   * Sends one persist message to `peer` at once (sealed like every datagram, outside the
   * reliable stream and the rate cap: the persistence store retries until answered). false
   * for an unknown peer or a payload too large for one datagram.
   */
  sendPersist(peer: string, payload: Buffer): boolean {
    const p = this.peers.get(peer);
    if (p === undefined || payload.length > MAX_PAYLOAD) return false;
    this.counters.persistSent++;
    this.sendRaw(p, MessageType.persist, payload);
    return true;
  }

  /**
   * Queues the 64-byte record at `records[at]` for `peer` in `entryClass`. false when the
   * queue is full of more urgent entries (the entry is dropped, counted).
   */
  queue(peer: string, entryClass: EntryClassNumber, records: Buffer, at: number): boolean {
    return this.queueRecords(peer, entryClass, at === 0 && records.length === RECORD_BYTES ? records : records.subarray(at, at + RECORD_BYTES)) === 1;
  }

  /**
   * Queues the records of `records` (n*64 bytes) that `select` picks (default: all) for
   * `peer` in `entryClass`, in order, encoded straight into the batches that will be sent.
   * Returns how many were queued; the rest did not fit under maxQueuedBytes beside more
   * urgent entries (dropped, counted).
   */
  queueRecords(peer: string, entryClass: EntryClassNumber, records: Buffer, select: WireSelect = EVERY_RECORD): number {
    const p = this.peers.get(peer);
    if (p === undefined) return 0;
    const n = Math.floor(records.length / RECORD_BYTES);
    const q = p.queues[entryClass] as Chunk[];
    let queued = 0;
    let from = 0;
    let chunk = q[q.length - 1];
    if (chunk !== undefined && (chunk.flags !== 0 || chunk.rseq !== undefined)) chunk = undefined;
    while (from < n) {
      if (chunk === undefined) {
        chunk = { entryClass, body: Buffer.allocUnsafe(MAX_PAYLOAD - ENTRIES_HEADER_BYTES), used: 0, count: 0, flags: 0, forBoot: 0n };
        q.push(chunk);
      }
      // Bounded memory: what is queued stays under maxQueuedBytes, less urgent batches
      // dropped to make room when needed.
      const want = chunk.body.length - chunk.used;
      if (p.queuedBytes + want > this.maxQueuedBytes) this.makeRoom(p, entryClass, want);
      const room = Math.max(0, Math.min(want, this.maxQueuedBytes - p.queuedBytes));
      const r = this.codec.encodeWireEntries(records, from, select.member, select.refresh, chunk.body, chunk.used, chunk.used + room);
      p.queuedBytes += r.end - chunk.used;
      p.queuedEntries += r.count;
      chunk.used = r.end;
      chunk.count += r.count;
      queued += r.count;
      from = r.next;
      if (from >= n || room < want) break; // all queued, or the rest does not fit in memory
      chunk = undefined; // this batch is full
    }
    if (chunk !== undefined && chunk.count === 0) q.splice(q.indexOf(chunk), 1);
    if (from < n) {
      let dropped = 0;
      for (let i = from; i < n; i++) if (selects(select, records, i * RECORD_BYTES)) dropped++;
      this.counters.queueDropped += dropped;
    }
    if (queued > 0) this.scheduleFlush();
    return queued;
  }

  /** After everything queued for `peer` so far: tells it the transfer for its boot `forBoot` is complete. */
  transferEnd(peer: string, forBoot: bigint): void {
    const p = this.peers.get(peer);
    if (p === undefined) return;
    const q = p.queues[EntryClass.transfer] as Chunk[];
    q.push({ entryClass: EntryClass.transfer, body: Buffer.alloc(0), used: 0, count: 0, flags: ENTRIES_TRANSFER_END | ENTRIES_ACK_NOW, forBoot });
    this.scheduleFlush();
  }

  /**
   * Resolves true once every entry queued for `peer` before this call (and every sent one)
   * has been acknowledged; false when `timeoutMs` passed first or the channel closed.
   */
  barrier(peer: string, timeoutMs: number, classes: readonly EntryClassNumber[] = [EntryClass.precommit, EntryClass.fresh]): Promise<boolean> {
    const p = this.peers.get(peer);
    if (p === undefined) return Promise.resolve(true);
    const chunks: Chunk[] = [];
    for (const c of classes) {
      const q = p.queues[c] as Chunk[];
      const last = q[q.length - 1];
      if (last !== undefined) last.flags |= ENTRIES_ACK_NOW;
      chunks.push(...q);
    }
    const upTo = p.nextRseq - 1n;
    if (chunks.length === 0 && p.acked >= upTo) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        p.barriers = p.barriers.filter((b) => b !== barrier);
        resolve(false);
      }, timeoutMs);
      const barrier: Barrier = {
        chunks,
        upTo,
        resolve: (ok) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
      p.barriers.push(barrier);
      this.scheduleFlush();
    });
  }

  /** Drops every queued entry and retained batch of `peer` (it left, or restarted). */
  forget(peer: string): void {
    const p = this.peers.get(peer);
    if (p === undefined) return;
    for (const q of p.queues) q.length = 0;
    p.queuedBytes = 0;
    p.queuedEntries = 0;
    p.retained.clear();
    p.retainedBytes = 0;
    for (const b of p.barriers) b.resolve(false);
    p.barriers = [];
  }

  private makeRoom(p: PeerStream, entryClass: number, size: number): boolean {
    for (let c = ENTRY_CLASSES - 1; c > entryClass && p.queuedBytes + size > this.maxQueuedBytes; c--) {
      const q = p.queues[c] as Chunk[];
      while (q.length > 0 && p.queuedBytes + size > this.maxQueuedBytes) {
        const dropped = q.pop() as Chunk;
        p.queuedBytes -= dropped.used;
        p.queuedEntries -= dropped.count;
        this.counters.queueDropped += dropped.count;
      }
    }
    return p.queuedBytes + size <= this.maxQueuedBytes;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    let wait = 0;
    for (const p of this.peers.values()) {
      const now = Date.now();
      p.tokens = Math.min(this.burst, p.tokens + ((now - p.tokensAt) * this.options.maxRate) / 1000);
      p.tokensAt = now;
      for (;;) {
        const chunk = this.nextChunk(p);
        if (chunk === undefined) break;
        const cost = chunk.used + ENTRIES_HEADER_BYTES + 68;
        // The window: acks reopen it (onAck flushes again).
        if (p.retainedBytes + chunk.used > this.windowBytes && p.retainedBytes > 0) break;
        if (p.tokens < cost) {
          wait = Math.max(wait, Math.ceil(((cost - p.tokens) * 1000) / this.options.maxRate));
          break;
        }
        (p.queues[chunk.entryClass] as Chunk[]).shift();
        p.queuedBytes -= chunk.used;
        p.queuedEntries -= chunk.count;
        p.tokens -= cost;
        this.sendChunk(p, chunk);
      }
      this.checkBarriers(p);
    }
    if (wait > 0 && this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, Math.max(1, wait));
    }
  }

  private nextChunk(p: PeerStream): Chunk | undefined {
    for (const q of p.queues) if (q.length > 0) return q[0];
    return undefined;
  }

  private sendChunk(p: PeerStream, chunk: Chunk): void {
    if (chunk.rseq === undefined) {
      chunk.rseq = p.nextRseq++;
      // Bounded repair memory: the oldest retained batches go first (a later request for
      // them gets a resync).
      p.retained.set(chunk.rseq, chunk);
      p.retainedBytes += chunk.used;
      for (const [rseq, old] of p.retained) {
        if (p.retainedBytes <= this.maxRetainedBytes) break;
        p.retained.delete(rseq);
        p.retainedBytes -= old.used;
      }
    }
    chunk.sentAt = Date.now();
    const payload = Buffer.allocUnsafe(ENTRIES_HEADER_BYTES + chunk.used);
    writeEntriesHeader(payload, { rseq: chunk.rseq, entryClass: chunk.entryClass, flags: chunk.flags, count: chunk.count, forBoot: chunk.forBoot });
    chunk.body.copy(payload, ENTRIES_HEADER_BYTES, 0, chunk.used);
    this.counters.entriesSent += chunk.count;
    this.sendRaw(p, MessageType.entries, payload);
  }

  private sendRaw(p: PeerStream, type: MessageTypeNumber, payload: Buffer): void {
    const socket = this.socket;
    if (socket === undefined) return;
    p.seq++;
    const datagram = seal(p.sendKey, type, this.selfTag, this.bootId, p.seq, payload);
    this.counters.datagramsSent++;
    this.counters.bytesSent += datagram.length;
    const send = (): void =>
      socket.send(datagram, p.member.port, p.member.address, (err) => {
        if (err) this.counters.sendErrors++;
      });
    if (this.options.sendHook !== undefined) this.options.sendHook(datagram, send);
    else send();
  }

  private sendDueAcks(): void {
    for (const p of this.peers.values()) {
      if (!p.ackDue || p.bootId === 0n) continue;
      p.ackDue = false;
      this.sendAck(p);
    }
  }

  private sendAck(p: PeerStream): void {
    p.unacked = 0;
    const missing = p.reliable.missing();
    this.sendRaw(p, MessageType.ack, encodeAck({ ackBoot: p.bootId, ackRseq: p.reliable.contiguous, missing }));
  }

  private checkBarriers(p: PeerStream): void {
    if (p.barriers.length === 0) return;
    p.barriers = p.barriers.filter((b) => {
      let upTo = b.upTo;
      for (const c of b.chunks) {
        if (c.rseq === undefined) return true;
        if (c.rseq > upTo) upTo = c.rseq;
      }
      if (p.acked < upTo) return true;
      b.resolve(true);
      return false;
    });
  }

  // ---- Receiving ----

  /** One datagram from the network (public for tests that forge input). */
  receive(msg: Buffer, from: string): void {
    this.counters.datagramsReceived++;
    this.counters.bytesReceived += msg.length;
    const refuse = (reason: Refusal): void => {
      this.counters.refused[reason]++;
      this.emit('refused', reason, from);
    };
    const parsed = readHeader(msg);
    if (!parsed.ok) return refuse(parsed.reason);
    const { header } = parsed;
    const p = this.byTag.get(header.senderTag);
    if (p === undefined) return refuse('unknown_peer');
    if (header.bootId < p.bootId) return refuse('old_boot');
    const newBoot = header.bootId > p.bootId;
    if (!newBoot) {
      const verdict = p.window.check(header.seq);
      if (verdict !== 'new') return refuse(verdict);
    }
    const key = newBoot ? channelKey(this.options.secret, header.bootId, p.member.id, this.options.self.id) : (p.recvKey as Buffer);
    const payload = open(key, msg, header.seq);
    if (payload === undefined) return refuse('bad_auth');
    if (newBoot) {
      const first = p.bootId === 0n;
      p.bootId = header.bootId;
      p.recvKey = key;
      p.window = new ReplayWindow();
      p.reliable = new ReliableReceiver();
      if (!first) this.forget(p.member.id);
      // A restarted receiver starts from nothing: what we sent its previous run is gone.
      if (!first && p.nextRseq > 1n) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(p.nextRseq);
        this.sendRaw(p, MessageType.resync, b);
      }
      this.emit('restart', p.member.id, header.bootId);
    }
    p.window.accept(header.seq);
    switch (header.type) {
      case MessageType.heartbeat: {
        const hb = decodeHeartbeat(payload);
        if (hb === undefined) return refuse('bad_payload');
        p.reliable.announce(hb.lastRseq);
        if (p.reliable.announced > p.reliable.contiguous) p.ackDue = true;
        this.onAck(p, hb.ackBoot, hb.ackRseq);
        this.emit('heartbeat', p.member.id, hb, header.bootId);
        return;
      }
      case MessageType.entries:
        return this.onEntries(p, payload, refuse);
      case MessageType.ack: {
        const ack = decodeAck(payload);
        if (ack === undefined) return refuse('bad_payload');
        this.onAck(p, ack.ackBoot, ack.ackRseq);
        if (ack.ackBoot === this.bootId) this.repair(p, ack.missing);
        return;
      }
      case MessageType.persist:
        this.counters.persistReceived++;
        this.emit('persist', p.member.id, payload);
        return;
      case MessageType.resync: {
        if (payload.length !== 8) return refuse('bad_payload');
        this.counters.resyncsReceived++;
        p.reliable.restartAt(payload.readBigUInt64BE(0));
        p.ackDue = true;
        return;
      }
    }
  }

  private onEntries(p: PeerStream, payload: Buffer, refuse: (r: Refusal) => void): void {
    const h = readEntriesHeader(payload);
    // The smallest entry (an end without backend) is 20 bytes.
    if (h === undefined || h.rseq === 0n || h.count > Math.floor(MAX_PAYLOAD / MIN_WIRE_ENTRY_BYTES) || ((h.flags & ENTRIES_TRANSFER_END) !== 0 && h.count !== 0)) return refuse('bad_payload');
    // Decoded whole: a batch with one bad entry is refused whole.
    const records = this.codec.decodeWireEntries(payload, ENTRIES_HEADER_BYTES, h.count);
    if (records === undefined) return refuse('bad_entry');
    const fresh = p.reliable.receive(h.rseq);
    p.ackDue = true;
    // Acks every few batches keep the sender's window moving between ack ticks.
    if ((h.flags & ENTRIES_ACK_NOW) !== 0 || ++p.unacked >= ACK_EVERY) {
      p.ackDue = false;
      this.sendAck(p);
    }
    if (!fresh) return;
    this.counters.entriesReceived += h.count;
    if (h.count > 0) this.emit('entries', p.member.id, records, h.entryClass);
    if ((h.flags & ENTRIES_TRANSFER_END) !== 0) this.emit('transferEnd', p.member.id, h.forBoot);
  }

  private onAck(p: PeerStream, ackBoot: bigint, ackRseq: bigint): void {
    if (ackBoot !== this.bootId || ackRseq <= p.acked) return;
    if (ackRseq >= p.nextRseq) return; // acks what was never sent: ignore
    for (let r = p.acked + 1n; r <= ackRseq; r++) {
      const c = p.retained.get(r);
      if (c === undefined) continue;
      p.retained.delete(r);
      p.retainedBytes -= c.used;
    }
    p.acked = ackRseq;
    this.checkBarriers(p);
    if (p.queuedEntries > 0 || p.queues.some((q) => q.length > 0)) this.scheduleFlush();
  }

  private repair(p: PeerStream, missing: Array<[bigint, bigint]>): void {
    let unrepairable: bigint | undefined;
    const now = Date.now();
    for (const [from, to] of missing) {
      const last = to < p.nextRseq ? to : p.nextRseq - 1n;
      for (let r = from; r <= last; r++) {
        const c = p.retained.get(r);
        if (c === undefined) {
          if (r > p.acked) unrepairable = r;
          continue;
        }
        // Sent again less than a round trip ago: that copy may still be on its way.
        if (c.sentAt !== undefined && now - c.sentAt < REPAIR_HOLDOFF_MS) continue;
        this.counters.retransmitted++;
        this.counters.entriesSent -= c.count; // counted once, when first sent
        this.sendChunk(p, c);
      }
    }
    if (unrepairable !== undefined && unrepairable >= p.resyncedTo) {
      p.resyncedTo = unrepairable + 1n;
      // Lost for good: the receiver skips ahead, and gets its entries again from the table.
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(unrepairable + 1n);
      this.counters.resyncsSent++;
      this.sendRaw(p, MessageType.resync, b);
      this.emit('resyncNeeded', p.member.id);
    }
  }

  status(): PeerChannelStatus[] {
    return [...this.peers.values()].map((p) => ({
      id: p.member.id,
      address: p.member.address,
      bootId: p.bootId === 0n ? null : p.bootId.toString(16),
      queuedEntries: p.queuedEntries,
      queuedBytes: p.queuedBytes,
      retainedBytes: p.retainedBytes,
      lastSentRseq: (p.nextRseq - 1n).toString(),
      ackedRseq: p.acked.toString(),
      receivedRseq: p.reliable.contiguous.toString(),
    }));
  }
}

export { MAX_ENTRY_BYTES };
