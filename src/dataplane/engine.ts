// Typed wrapper of the addon's live forwarding engine: worker threads reading packets from one
// interface (AF_XDP or AF_PACKET), running the pipeline and sending the encapsulated packets
// back out. The JS event loop never sees a packet; this module only passes configuration in
// and counters and the chosen I/O mode out.
import type { IoCounterName, RingLevelName, SameKeys, WorkerCounterName } from './counter-names.js';
import { native, persistenceApi, type PersistenceNative, type ConntrackCounters, type CountersSnapshot, type FlowIdentity, type FlowOwners, type FlowSyncApi, type SyncMark, type SyncStats } from './index.js';
import type { CaptureOptions, CaptureRecord, CaptureStats, FlowLookupReport, FlowQuery } from './introspection.js';
import type { ClusterCapacity, ConntrackSettings, DataplaneConfig } from './types.js';

/** Packet I/O an engine can use. */
export type IoMode = 'af_packet' | 'af_xdp';
/** What may be asked for: a mode, or "auto" (AF_XDP when possible, else AF_PACKET). */
export type IoRequest = IoMode | 'auto';
/** How the XDP program is attached. */
export type XdpAttachMode = 'native' | 'generic';
export type XdpRequest = XdpAttachMode | 'auto';

/** What `new addon.Engine(options)` is given. */
export interface EngineOptions {
  /** Interface to receive VIP traffic on and send encapsulated packets out of. */
  interface: string;
  /** Worker threads (each with its own connection table). */
  workers: number;
  /** CPUs to pin workers to: worker i on cpus[i % cpus.length]. Absent: not pinned. */
  cpus?: number[];
  io: IoRequest;
  /** Only meaningful when AF_XDP is used. */
  xdpMode?: XdpRequest;
  /** Fixed for the engine's lifetime (the table's memory is allocated at construction). */
  conntrack: ConntrackSettings;
  /**
   * Cluster sync memory (export rings, peer-entry table), fixed for the engine's lifetime.
   * Absent: no sync state, and the engine acts as a lone mux whatever the config says.
   */
  cluster?: ClusterCapacity;
  /** Client persistence: entries of the engine's shared table (absent or 0: none). */
  persistenceEntries?: number;
  /** First packets each worker may hold for the slow path. */
  puntSlots?: number;
}

// ---- Client persistence (src/persistence): the slow path's view of the fast path ----

/** A first packet a worker holds until the slow path answers. */
export interface Punt {
  worker: number;
  slot: number;
  ticket: number;
  vip: string;
  /** The client as the VIP's granularity sees it: "198.51.100.7" or "198.51.100.0/24". */
  client: string;
  /** The VIP's scheduler's pick on the worker (absent: no backend can take the flow). */
  proposed?: string;
  /** The entry's backend when it could not take the new flow. */
  recorded?: string;
  /** Microseconds since the packet was held. */
  ageUs: number;
}

export interface PersistEntry {
  vip: string;
  client: string;
  backend: string;
  expiresInMs: number;
}

export interface PersistenceCounters {
  capacity: number;
  bytes: number;
  entries: number;
  installs: number;
  evictions: number;
  expired: number;
  held: number;
  hits: number;
  misses: number;
  repicks: number;
  punted: number;
  puntOverflow: number;
  puntTooLarge: number;
  puntExpired: number;
  released: number;
  releaseRefused: number;
  releaseUnsent: number;
  touches: number;
  touchesDropped: number;
}

export interface PersistenceApi {
  /** `handler` runs on the event loop when a worker punts after arm(). */
  onPunt(handler: () => void): void;
  drain(max?: number): { punts: Punt[]; touches: Array<{ vip: string; client: string }> };
  /** Releases held packets to `backend` (absent: they are dropped, counted). */
  answer(answers: ReadonlyArray<{ worker: number; slot: number; ticket: number; backend?: string }>): number;
  install(entries: ReadonlyArray<{ vip: string; client: string; backend: string; ttlMs: number }>): { installed: number; evicted: Array<{ vip: string; client: string }> };
  refresh(entries: ReadonlyArray<{ vip: string; client: string; ttlMs: number }>): number;
  remove(entries: ReadonlyArray<{ vip: string; client: string; backend?: string }>): number;
  expire(buckets?: number): Array<{ vip: string; client: string }>;
  lookup(vip: string, client: string): PersistEntry | null;
  entries(max?: number): PersistEntry[];
  /** Whether `backend` takes new flows of `vip` in the running snapshot. */
  accepts(vip: string, backend: string): boolean;
  stats(): PersistenceCounters & { workers: Array<Partial<PersistenceCounters>> };
  /** Re-arms the wakeup; how many punts wait (drain again when > 0). */
  arm(): number;
}

/** Packet I/O counters of an engine, summed over its workers (or one worker's). */
export interface IoCounters {
  rxPackets: number;
  /** Packets the kernel dropped because a ring was full (the workers did not keep up). */
  rxKernelDrops: number;
  /** Frames larger than the ring's frame size (GRO/LRO super-frames), dropped. */
  rxOversized: number;
  /** Frames not for the fast path (broadcast, multicast, outgoing), left to the kernel. */
  rxIgnored: number;
  txPackets: number;
  txErrors: number;
  /** Packets not sent because the TX ring was full. */
  txRingFull: number;
}

/**
 * How full the I/O driver's rings are now, in slots (AF_XDP: descriptors of the rx, fill, tx
 * and completion rings; AF_PACKET: blocks of the receive ring, no tx ring).
 */
export type IoRingLevels = Record<RingLevelName, number>;

/** One worker of an engine: its own counters (WORKER_COUNTERS), drops, I/O and connection table. */
export type EngineWorkerCounters = Record<WorkerCounterName, number> & {
  drops: Record<string, number>;
  io: IoCounters;
  rings: IoRingLevels;
  conntrack: ConntrackCounters;
  /** The I/O driver and queue (empty while stopped). */
  description: string;
};

/** The pipeline counters of all workers plus their packet I/O counters, and each worker's. */
export interface EngineCounters extends CountersSnapshot {
  io: IoCounters;
  /** Ring fill levels summed over the workers; absent from engines without rings (test doubles). */
  rings?: IoRingLevels;
  /** Absent from engines that do not report per worker (test doubles). */
  workers?: EngineWorkerCounters[];
}

const ioMatchesList: SameKeys<keyof IoCounters, IoCounterName> = true;
void ioMatchesList;

/** What I/O an engine ended up with, and why. */
export interface IoModeReport {
  /** "unknown" when the addon does not tell and "auto" was asked for. */
  mode: IoMode | 'unknown';
  /** With AF_XDP: how the XDP program is attached, when known. */
  xdpMode?: XdpAttachMode;
  /** Why this mode: "requested", or why "auto" chose it (for instance a fallback's cause). */
  reason: string;
  /** False when the addon has no ioMode() and the report is derived from the options. */
  reported: boolean;
}

/** A snapshot an engine built and has not published yet (opaque; see EngineLike.prepareConfig). */
export type PreparedConfig = { readonly __preparedConfig: true };

/**
 * What the daemon needs of an engine. The real one is `Engine`; tests inject fakes.
 * setConfig is atomic: it throws on bad input and then nothing was applied.
 */
export interface EngineLike {
  readonly options: Readonly<EngineOptions>;
  setConfig(config: DataplaneConfig): void;
  /**
   * The build half of setConfig, off the event loop (the Maglev tables are the heavy part);
   * rejects on bad input, nothing applied. Builds may run side by side.
   */
  prepareConfig(config: DataplaneConfig): Promise<PreparedConfig>;
  /** Swaps a prepared snapshot in (cheap); each one once. */
  publishConfig(prepared: PreparedConfig): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  counters(): EngineCounters;
  ioMode(): IoModeReport;
  /** Introspection (`l4mux flow`, `l4mux capture`); absent from engines that cannot. */
  lookupFlow?(query: FlowQuery): Promise<FlowLookupReport>;
  /** A flow's owner and backup as member indices of the engine's cluster view (`l4mux flow`). */
  owners?(flow: FlowIdentity): FlowOwners;
  startCapture?(options: CaptureOptions): void;
  drainCapture?(): CaptureRecord[];
  stopCapture?(): CaptureStats;
  /** Present when the engine was made with persistenceEntries. */
  readonly persistence?: PersistenceApi;
}

export type EngineFactory = (options: EngineOptions) => EngineLike;

// ---- The addon's side ----

interface NativeEngine extends PersistenceNative {
  setConfig(config: DataplaneConfig): void;
  /** Absent from older builds (then the wrapper builds on the event loop at publish). */
  prepareConfig?(config: DataplaneConfig): Promise<unknown>;
  publishConfig?(prepared: unknown): void;
  start(): unknown;
  stop(): unknown;
  counters(): Partial<EngineCounters> & CountersSnapshot;
  ioMode?(): unknown;
  pollFlowEvents?(maxRecords?: number): Buffer;
  installFlows?(records: Buffer): { accepted: number; refused: number };
  dumpPeerFlows?(cursor: number, maxRecords?: number): { records: Buffer; cursor: number };
  syncMark?(): SyncMark;
  syncDrained?(mark: SyncMark): boolean;
  owners?(flow: FlowIdentity): FlowOwners;
  syncStats?(): SyncStats;
  lookupFlow?(query: FlowQuery): Promise<FlowLookupReport>;
  startCapture?(options: CaptureOptions): void;
  drainCapture?(): CaptureRecord[];
  stopCapture?(): CaptureStats;
}

export type NativeEngineConstructor = new (options: EngineOptions) => NativeEngine;

/** The part of the addon module this wrapper uses (Engine is absent from older builds). */
export interface EngineModule {
  Engine?: NativeEngineConstructor;
}

const ZERO_IO: IoCounters = { rxPackets: 0, rxKernelDrops: 0, rxOversized: 0, rxIgnored: 0, txPackets: 0, txErrors: 0, txRingFull: 0 };

export class Engine implements EngineLike, FlowSyncApi {
  readonly options: Readonly<EngineOptions>;
  readonly persistence?: PersistenceApi;
  private readonly impl: NativeEngine;
  private puntHandler: (() => void) | undefined;

  /** Creates the workers' state; nothing is received until start(). */
  constructor(options: EngineOptions, module: EngineModule = native() as unknown as EngineModule) {
    const Native = module.Engine;
    if (typeof Native !== 'function') {
      throw new Error('this build of the l4mux addon has no Engine (live forwarding); rebuild it with `npm run build:native`');
    }
    this.options = Object.freeze({ ...options, ...(options.cpus !== undefined && { cpus: [...options.cpus] }) });
    this.impl = new Native({ ...this.options, ...(this.options.cpus !== undefined && { cpus: [...this.options.cpus] }) } as EngineOptions);
    if ((options.persistenceEntries ?? 0) > 0) {
      const api = persistenceApi(this.impl);
      // The wakeup must exist before the workers start; the handler comes later (the slow path).
      api.onPunt(() => this.puntHandler?.());
      this.persistence = {
        ...api,
        onPunt: (handler) => {
          this.puntHandler = handler;
        },
      };
    }
  }

  /** Builds a snapshot and swaps it in on every worker; throws (and applies nothing) on bad input. */
  setConfig(config: DataplaneConfig): void {
    this.impl.setConfig(config);
  }

  /** Builds a snapshot on a pool thread; publishConfig swaps it in. */
  async prepareConfig(config: DataplaneConfig): Promise<PreparedConfig> {
    const prepare = this.impl.prepareConfig;
    if (prepare === undefined) return { config } as unknown as PreparedConfig;
    return { native: await prepare.call(this.impl, config) } as unknown as PreparedConfig;
  }

  publishConfig(prepared: PreparedConfig): void {
    const p = prepared as unknown as { native?: unknown; config?: DataplaneConfig };
    if (p.config !== undefined) this.impl.setConfig(p.config);
    else (this.impl.publishConfig as (prepared: unknown) => void).call(this.impl, p.native);
  }

  async start(): Promise<void> {
    await this.impl.start();
  }

  async stop(): Promise<void> {
    await this.impl.stop();
  }

  counters(): EngineCounters {
    const raw = this.impl.counters();
    return { ...raw, io: { ...ZERO_IO, ...raw.io } };
  }

  /** Which backend the flow gets now, and what every worker's table holds of it. */
  lookupFlow(query: FlowQuery): Promise<FlowLookupReport> {
    return this.introspection('lookupFlow').call(this.impl, query);
  }

  /** Starts copying matching frames into the workers' capture rings; throws if one runs. */
  startCapture(options: CaptureOptions): void {
    this.introspection('startCapture').call(this.impl, options);
  }

  /** The records waiting in the rings (call every few milliseconds while capturing). */
  drainCapture(): CaptureRecord[] {
    return this.introspection('drainCapture').call(this.impl);
  }

  stopCapture(): CaptureStats {
    return this.introspection('stopCapture').call(this.impl);
  }

  private introspection<K extends 'lookupFlow' | 'startCapture' | 'drainCapture' | 'stopCapture'>(name: K): NonNullable<NativeEngine[K]> {
    const method = this.impl[name];
    if (typeof method !== 'function') throw new Error(`this build of the l4mux addon has no ${name}; rebuild it with \`npm run build:native\``);
    return method as NonNullable<NativeEngine[K]>;
  }

  ioMode(): IoModeReport {
    if (typeof this.impl.ioMode !== 'function') return requestedIoMode(this.options);
    return parseIoMode(this.impl.ioMode(), this.options);
  }

  // ---- Cluster sync (FlowSyncApi): records of 64 bytes, see src/cluster/record.ts ----

  private sync(): Required<Pick<NativeEngine, 'pollFlowEvents' | 'installFlows' | 'dumpPeerFlows' | 'syncMark' | 'syncDrained' | 'owners' | 'syncStats'>> {
    const i = this.impl;
    if (!i.pollFlowEvents || !i.installFlows || !i.dumpPeerFlows || !i.syncMark || !i.syncDrained || !i.owners || !i.syncStats) {
      throw new Error('this build of the l4mux addon has no cluster sync; rebuild it with `npm run build:native`');
    }
    return i as Required<NativeEngine>;
  }

  pollFlowEvents(maxRecords?: number): Buffer {
    return this.sync().pollFlowEvents(maxRecords);
  }

  installFlows(records: Buffer): { accepted: number; refused: number } {
    return this.sync().installFlows(records);
  }

  dumpPeerFlows(cursor: number, maxRecords?: number): { records: Buffer; cursor: number } {
    return this.sync().dumpPeerFlows(cursor, maxRecords);
  }

  syncMark(): SyncMark {
    return this.sync().syncMark();
  }

  syncDrained(mark: SyncMark): boolean {
    return this.sync().syncDrained(mark);
  }

  owners(flow: FlowIdentity): FlowOwners {
    return this.sync().owners(flow);
  }

  syncStats(): SyncStats {
    return this.sync().syncStats();
  }
}

/** The real engine factory. */
export const createEngine: EngineFactory = (options) => new Engine(options);

/** What can be said about the I/O mode from the options alone. */
export function requestedIoMode(options: Pick<EngineOptions, 'io' | 'xdpMode'>): IoModeReport {
  if (options.io === 'auto') return { mode: 'unknown', reason: 'auto (this addon does not report its choice)', reported: false };
  const xdp = options.io === 'af_xdp' && options.xdpMode !== undefined && options.xdpMode !== 'auto' ? { xdpMode: options.xdpMode } : {};
  return { mode: options.io, ...xdp, reason: 'requested', reported: false };
}

/** Reads the addon's ioMode() answer: a mode name, or an object with mode/io, xdpMode and reason. */
export function parseIoMode(raw: unknown, options: Pick<EngineOptions, 'io' | 'xdpMode'>): IoModeReport {
  const isMode = (v: unknown): v is IoMode => v === 'af_packet' || v === 'af_xdp';
  const isXdp = (v: unknown): v is XdpAttachMode => v === 'native' || v === 'generic';
  if (isMode(raw)) return { mode: raw, reason: options.io === 'auto' ? 'chosen by auto' : 'requested', reported: true };
  if (typeof raw === 'object' && raw !== null) {
    const r = raw as Record<string, unknown>;
    const mode = isMode(r['mode']) ? r['mode'] : isMode(r['io']) ? r['io'] : undefined;
    if (mode !== undefined) {
      const xdpMode = r['xdpMode'];
      const reason = typeof r['reason'] === 'string' && r['reason'] !== '' ? r['reason'] : options.io === 'auto' ? 'chosen by auto' : 'requested';
      return { mode, ...(mode === 'af_xdp' && isXdp(xdpMode) && { xdpMode }), reason, reported: true };
    }
  }
  return { ...requestedIoMode(options), reason: `the addon reported ${JSON.stringify(raw)}, which is not an I/O mode` };
}
