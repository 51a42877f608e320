// Typed wrapper of the native addon. The addon owns the fast path; this module only
// converts configuration in and counters out.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_CLUSTER_EXPORT_RING, DEFAULT_CLUSTER_PEER_FLOWS, defaultConntrackConfig } from '../config/defaults.js';
import { toConntrackSettings } from '../config/dataplane.js';
import type {
  BackendCounterName,
  ConntrackCounterName,
  CounterNames,
  SameKeys,
  SyncCounterName,
  VipCounterName,
  WorkerCounterName,
} from './counter-names.js';
import type { ClusterCapacity, ConntrackSettings, DataplaneConfig } from './types.js';
import type { PersistEntry, PersistenceApi } from './engine.js';

export type { ClusterCapacity, ConntrackSettings, DataplaneConfig, DataplaneCluster, DataplaneClusterMember } from './types.js';

/** A flow as records name it (see src/cluster/record.ts). */
export interface FlowIdentity {
  client: string;
  clientPort: number;
  vip: string;
  vipPort: number;
  /** 6 (TCP) or 17 (UDP). */
  protocol: number;
}

/** Indexes into DataplaneCluster.members; 255 when there is none (no cluster, no live member). */
export interface FlowOwners {
  owner: number;
  backup: number;
}

/** Opaque: what syncMark() returned, for syncDrained(). */
export type SyncMark = number[];

export interface SyncWorkerStats {
  exported: number;
  peerHits: number;
  redirected: number;
  /** No redirect tunnel to the owner (a member of the other address family): decided here. */
  redirectUnroutable: number;
  /** The redirect would exceed the MTU or the headroom: decided here. */
  redirectTooBig: number;
  redirectsReceived: number;
  teachSent: number;
  /** Records lost because the worker's export ring was full. */
  syncExportOverflow: number;
}

export interface SyncStats {
  polled: number;
  /** Polled records of flows this mux owns or backs, put into its own peer table. */
  selfInstalled: number;
  accepted: number;
  /** installFlows refusals by reason (the record decoder's, unknown_vip, unknown_backend, no_lifetime). */
  refused: Record<string, number>;
  peerTable: { capacity: number; live: number; installed: number; updated: number; removed: number; evicted: number };
  workers: SyncWorkerStats[];
  syncExportOverflow: number;
}

/**
 * The fast path's side of connection-table sync, on Engine (live) and Dataplane (tests,
 * replay). Records are 64 bytes each (src/cluster/record.ts).
 */
export interface FlowSyncApi {
  /** Drains the workers' export rings: n*64 bytes, owner and backup filled in. */
  pollFlowEvents(maxRecords?: number): Buffer;
  /** Peers' records into the peer-entry table (kind "end" removes). */
  installFlows(records: Buffer): { accepted: number; refused: number };
  /**
   * Transfers on a membership change: the peer-entry table's live entries as "new" records
   * (owner and backup under the current members), from `cursor` on; call again with the
   * returned cursor until it is 0.
   */
  dumpPeerFlows(cursor: number, maxRecords?: number): { records: Buffer; cursor: number };
  /** Commit-after-sync: the records published so far by every worker. */
  syncMark(): SyncMark;
  /** True once everything published before `mark` was polled (or lost to overflow, counted). */
  syncDrained(mark: SyncMark): boolean;
  /** Owner and backup of a flow under the current configuration. */
  owners(flow: FlowIdentity): FlowOwners;
  syncStats(): SyncStats;
}
export type { CaptureOptions, CaptureRecord, CaptureStats, FlowLookupReport, FlowQuery, WorkerFlowEntry } from './introspection.js';

export interface VipCounters {
  name: string;
  packets: number;
  bytes: number;
  newFlows: number;
  /** Packets dropped because no backend could take their new flow (every backend down). */
  noBackend: number;
  /** New flows forwarded by the Maglev table without an entry: the VIP was past its newFlowRate. */
  flowsUntracked: number;
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
  conntrack: ConntrackCounters;
}

/** Connection-table counters (summed over workers, or one worker's) and the tables' capacity. */
export interface ConntrackCounters {
  inserts: number;
  /** Live flows pushed out of a full bucket by a new flow. */
  evictions: number;
  expiredReused: number;
  /** Entries created mid-flow (no SYN seen), and those of them evicted or proven by a repeat. */
  unprovenInserts: number;
  unprovenEvicted: number;
  proven: number;
  /** Occupied entries (expired ones count until reused). */
  liveEntries: number;
  capacity: number;
}

// Each counter type has exactly the names of its native list (src/dataplane/counter-names.ts).
type Numeric<T> = { [K in keyof T]: T[K] extends number ? K : never }[keyof T];
const countersMatchLists: [
  SameKeys<Numeric<Omit<CountersSnapshot, 'drops' | 'vips' | 'backends' | 'conntrack'>>, WorkerCounterName>,
  SameKeys<Numeric<VipCounters>, VipCounterName>,
  SameKeys<Numeric<BackendCounters>, BackendCounterName>,
  SameKeys<Exclude<Numeric<ConntrackCounters>, 'capacity'>, ConntrackCounterName>,
  SameKeys<Exclude<Numeric<SyncWorkerStats>, 'syncExportOverflow'>, SyncCounterName>,
] = [true, true, true, true, true];
void countersMatchLists;

export interface ReplaySummary {
  packetsIn: number;
  packetsOut: number;
  counters: CountersSnapshot;
}

/** 'held': a persistent VIP's first packet, held for the slow path (see Dataplane.persistence). */
export type PacketVerdict = 'tx' | 'drop' | 'pass' | 'held';

export interface ProcessedPacket {
  verdict: PacketVerdict;
  /** Drop reason name when verdict is 'drop'. */
  reason?: string;
  /** The frame to transmit when verdict is 'tx'. */
  frame?: Buffer;
  /** The backend it was sent to, when verdict is 'tx' and it went to one. */
  backend?: string;
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
  pollFlowEvents(maxRecords?: number, nowNs?: bigint): Buffer;
  installFlows(records: Buffer, nowNs?: bigint): { accepted: number; refused: number };
  dumpPeerFlows(cursor: number, maxRecords?: number, nowNs?: bigint): { records: Buffer; cursor: number };
  syncMark(): SyncMark;
  syncDrained(mark: SyncMark): boolean;
  owners(flow: FlowIdentity): FlowOwners;
  syncStats(): SyncStats;
  onPunt?(callback: () => void): void;
  persistenceDrain?(max?: number): ReturnType<PersistenceApi['drain']>;
  persistenceAnswer?(answers: Parameters<PersistenceApi['answer']>[0]): number;
  persistenceInstall?(entries: Parameters<PersistenceApi['install']>[0]): ReturnType<PersistenceApi['install']>;
  persistenceRefresh?(entries: Parameters<PersistenceApi['refresh']>[0]): number;
  persistenceRemove?(entries: Parameters<PersistenceApi['remove']>[0]): number;
  persistenceExpire?(buckets?: number): ReturnType<PersistenceApi['expire']>;
  persistenceLookup?(vip: string, client: string): PersistEntry | null;
  persistenceEntries?(max?: number): PersistEntry[];
  persistenceAccepts?(vip: string, backend: string): boolean;
  persistenceStats?(): ReturnType<PersistenceApi['stats']>;
  persistenceArm?(): number;
  releaseHeld?(nowNs?: bigint): ProcessedPacket[];
}

/** Client persistence of a Dataplane: the table's entries and the worker's hold slots. */
export interface DataplanePersistenceOptions {
  entries: number;
  /** Hold slots (default 1024). */
  puntSlots?: number;
}

/** A VIP's Maglev table: each entry an index into `backends`, or -1 (no backend). */
export interface LookupTable {
  backends: string[];
  entries: Int32Array;
}

export interface NativeModule {
  Dataplane: new (settings: ConntrackSettings & { persistenceEntries?: number; puntSlots?: number }, cluster?: ClusterCapacity) => NativeDataplane;
  dropReasons(): string[];
  /** The names of every native counter list (counter-names.ts mirrors them). */
  counterNames(): CounterNames;
  /** Lowers every thread's capabilities to `keep` (native/addon/privileges.cc); absent from older builds. */
  dropCapabilities?(keep: number[]): CapabilityDropReport;
}

/** What dropCapabilities did (sets as hex bit masks of the calling thread, afterwards). */
export interface CapabilityDropReport {
  /** Threads lowered, the caller included. */
  threads: number;
  /** Threads that block the signal it uses (or never answered): their sets are unchanged. */
  unreachable: Array<{ tid: number; name: string }>;
  /** The bounding set was lowered too (the process had CAP_SETPCAP). */
  boundingDropped: boolean;
  effective: string;
  permitted: string;
  boundingSet: string;
  errors: string[];
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

export const defaultConntrack: ConntrackSettings = toConntrackSettings(defaultConntrackConfig());

/** Cluster sync memory when none is given. */
export const defaultClusterCapacity: ClusterCapacity = { peerFlows: DEFAULT_CLUSTER_PEER_FLOWS, exportRing: DEFAULT_CLUSTER_EXPORT_RING };

/**
 * One pipeline (one worker's state) driven from the calling thread: replay and tests. With
 * `cluster`, it exports flow records and reads a peer-entry table like an engine's worker;
 * the sync methods then take the same clock as process() (nowNs).
 */
export class Dataplane {
  private readonly impl: NativeDataplane;
  /**
   * With `persistence`: the engine's PersistenceApi over this pipeline, on the clock of the
   * last process() call; answered packets come out of releaseHeld().
   */
  readonly persistence?: PersistenceApi;

  constructor(settings: ConntrackSettings = defaultConntrack, cluster?: ClusterCapacity, persistence?: DataplanePersistenceOptions) {
    const s = persistence === undefined ? settings : { ...settings, persistenceEntries: persistence.entries, ...(persistence.puntSlots !== undefined && { puntSlots: persistence.puntSlots }) };
    this.impl = cluster === undefined ? new (native().Dataplane)(s) : new (native().Dataplane)(s, cluster);
    if (persistence !== undefined) this.persistence = persistenceApi(this.impl);
  }

  /** The answered held packets, re-injected (and those held too long dropped), at `nowNs`. */
  releaseHeld(nowNs?: bigint): ProcessedPacket[] {
    if (this.impl.releaseHeld === undefined) throw new Error('this build of the l4mux addon has no persistence');
    return nowNs === undefined ? this.impl.releaseHeld() : this.impl.releaseHeld(nowNs);
  }

  pollFlowEvents(maxRecords?: number, nowNs = 0n): Buffer {
    return this.impl.pollFlowEvents(maxRecords, nowNs);
  }

  installFlows(records: Buffer, nowNs = 0n): { accepted: number; refused: number } {
    return this.impl.installFlows(records, nowNs);
  }

  dumpPeerFlows(cursor: number, maxRecords?: number, nowNs = 0n): { records: Buffer; cursor: number } {
    return this.impl.dumpPeerFlows(cursor, maxRecords, nowNs);
  }

  syncMark(): SyncMark {
    return this.impl.syncMark();
  }

  syncDrained(mark: SyncMark): boolean {
    return this.impl.syncDrained(mark);
  }

  owners(flow: FlowIdentity): FlowOwners {
    return this.impl.owners(flow);
  }

  syncStats(): SyncStats {
    return this.impl.syncStats();
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

/** The persistence methods of an addon object (Engine or Dataplane) as a PersistenceApi. */
export function persistenceApi(i: PersistenceNative): PersistenceApi {
  const need = <T>(f: T | undefined): T => {
    if (f === undefined) throw new Error('this build of the l4mux addon has no persistence; rebuild it with `npm run build:native`');
    return f;
  };
  return {
    onPunt: (handler) => need(i.onPunt).call(i, handler),
    drain: (max) => need(i.persistenceDrain).call(i, max),
    answer: (answers) => need(i.persistenceAnswer).call(i, answers),
    install: (entries) => need(i.persistenceInstall).call(i, entries),
    refresh: (entries) => need(i.persistenceRefresh).call(i, entries),
    remove: (entries) => need(i.persistenceRemove).call(i, entries),
    expire: (buckets) => need(i.persistenceExpire).call(i, buckets),
    lookup: (vip, client) => need(i.persistenceLookup).call(i, vip, client),
    entries: (max) => need(i.persistenceEntries).call(i, max),
    accepts: (vip, backend) => need(i.persistenceAccepts).call(i, vip, backend),
    stats: () => need(i.persistenceStats).call(i),
    arm: () => need(i.persistenceArm).call(i),
  };
}

export type PersistenceNative = Pick<NativeDataplane, 'onPunt' | 'persistenceDrain' | 'persistenceAnswer' | 'persistenceInstall' | 'persistenceRefresh' | 'persistenceRemove' | 'persistenceExpire' | 'persistenceLookup' | 'persistenceEntries' | 'persistenceAccepts' | 'persistenceStats' | 'persistenceArm'>;
