// The control socket's protocol: a unix domain stream socket carrying JSON lines. Each request
// is one line, {"cmd": "reload"}, {"cmd": "status"}, {"cmd": "backend", ...}, {"cmd": "drain"},
// {"cmd": "flow", ...} or {"cmd": "capture", ...}; each gets one line back, a capture first a
// line per batch of packets ({"event": "packets", ...}) and then its final line.
import type { PoolStatusWithChecks } from '../pools/supervisor.js';
import type { BackendAdminState } from '../dataplane/types.js';
import type { EngineCounters, IoModeReport } from '../dataplane/engine.js';
import type { FlowLookupReport } from '../dataplane/introspection.js';

/** An operator's change to one backend: its state, its weight, or both. */
export interface BackendRequest {
  pool: string;
  address: string;
  state?: BackendAdminState;
  weight?: number;
}

/** `l4mux drain`: withdraw every VIP, keep forwarding for `waitSeconds` (default bgp.drainSeconds), then stop. */
export interface DrainRequest {
  waitSeconds?: number;
}

/** `l4mux flow`: a flow from a client to a VIP (by name or address). */
export interface FlowRequest {
  vip: string;
  protocol: 'tcp' | 'udp';
  src: string;
  srcPort: number;
  /** Absent: the VIP's address. */
  dst?: string;
  /** Absent: the VIP's port (required for an all-ports VIP). */
  dstPort?: number;
}

export interface FlowOk {
  ok: true;
  flow: { vip: string; protocol: 'tcp' | 'udp'; src: string; srcPort: number; dst: string; dstPort: number };
  /** One answer per served interface (each has its own engine and workers). */
  interfaces: Array<{ name: string } & FlowLookupReport>;
  /** The flow's owner and backup mux in a cluster; null on a single mux. */
  owner: string | null;
  backup: string | null;
}

export type FlowResponse = FlowOk | { ok: false; errors: string[] };

/** `l4mux persistence VIP CLIENT`: a client's persistence entry. */
export interface PersistenceEntryRequest {
  /** VIP name (or address). */
  vip: string;
  /** The client's address (masked to the VIP's granularity by the daemon). */
  client: string;
}

export interface PersistenceEntryOk {
  ok: true;
  vip: string;
  /** The client as the VIP's granularity sees it ("198.51.100.0/24"). */
  client: string;
  key: string;
  timeoutSeconds: number;
  store: 'embedded' | 'etcd';
  /** The slow path's record of it (null: none). */
  slowPath: { backend: string; expiresInMs: number; local: boolean } | null;
  /** Each served interface's table. */
  interfaces: Array<{ name: string; backend: string | null; expiresInMs: number | null; error?: string }>;
}

export type PersistenceEntryResponse = PersistenceEntryOk | { ok: false; errors: string[] };

/** `l4mux capture`: bounded in packets and seconds. */
export interface CaptureRequest {
  vip?: string;
  backend?: string;
  count: number;
  seconds: number;
  snaplen: number;
  sampleEvery: number;
}

/** One captured frame; `data` is base64. */
export interface CapturedFrame {
  interface: string;
  worker: number;
  packet: number;
  direction: 'received' | 'sent';
  verdict: 'tx' | 'pass' | 'drop';
  seconds: number;
  nanoseconds: number;
  originalLength: number;
  data: string;
}

export interface CapturePackets {
  event: 'packets';
  frames: CapturedFrame[];
}

export type CaptureResponse =
  | { ok: true; packets: number; frames: number; ringFull: number; stoppedBy: 'count' | 'time' | 'client' | 'daemon' }
  | { ok: false; errors: string[] };

export type ControlRequest =
  | { cmd: 'reload' }
  | { cmd: 'status' }
  | ({ cmd: 'backend' } & BackendRequest)
  | ({ cmd: 'flow' } & FlowRequest)
  | ({ cmd: 'persistence' } & PersistenceEntryRequest)
  | ({ cmd: 'capture' } & CaptureRequest)
  | ({ cmd: 'drain' } & DrainRequest);

export type DrainResponse =
  | { ok: true; withdrawn: string[]; waitedSeconds: number; stopping: true }
  | { ok: false; errors: string[] };

export type BackendResponse = { ok: true; changes: string[] } | { ok: false; errors: string[] };

export interface ReloadOk {
  ok: true;
  /** What was applied, one line each ("vip web added (...)", "pool web: backend 10.1.0.4 removed"). */
  changes: string[];
  /** Changed settings that wait for a restart; also listed in `changes`. */
  restartRequired: string[];
  /** Valid but suspicious: config warnings and next-hop warnings. */
  warnings: string[];
}

export interface ReloadFailed {
  ok: false;
  /** "path: reason" lines for an invalid file; other problems as sentences. Nothing was changed. */
  errors: string[];
}

export type ReloadResponse = ReloadOk | ReloadFailed;

export interface VipSummary {
  name: string;
  address: string;
  protocol: string;
  /** null for an all-ports VIP. */
  port: number | null;
  pool: string;
  encapsulation: string;
  scheduler: string;
  backends: number;
  /** Backends taking new flows now (active, up, weight > 0). */
  activeBackends: number;
  /** Every backend of its pool is down by health checks. */
  allDown: boolean;
}

export interface InterfaceStatus {
  name: string;
  ifindex: number;
  mac: string | null;
  mtu: number;
  /** What the dataplane is given (node.mtu or the interface's). */
  dataplaneMtu: number | null;
  sourceMac: string;
  gatewayMac: string;
  nextHop: { source: string; hops: { address: string; mac: string; state: string; onLink: boolean }[] } | null;
  io: IoModeReport;
  workers: number;
  counters: EngineCounters | null;
}

export interface StatusReport {
  pid: number;
  version: string;
  configFile: string;
  startedAt: string;
  uptimeSeconds: number;
  lastReload: { at: string; trigger: string; ok: boolean; changes?: string[]; errors?: string[] } | null;
  /** Settings changed in the file that wait for a restart. */
  restartRequired: string[];
  config: {
    seed: string;
    interfaces: string[];
    io: string;
    workers: number;
    vips: VipSummary[];
  };
  /** Backends by pool: state, health, weights, checks, all-down episodes. */
  pools: Record<string, PoolStatusWithChecks>;
  interfaces: InterfaceStatus[];
  /** Sums over the interfaces of the main counters. */
  totals: { rx: number; tx: number; dropped: number; passed: number };
  /** What the daemon's services report of themselves, by service name (absent: none does). */
  services?: Record<string, unknown>;
}

export type StatusResponse = { ok: true; status: StatusReport } | { ok: false; errors: string[] };

export type ControlResponse = ReloadResponse | StatusResponse | BackendResponse | DrainResponse | FlowResponse | CaptureResponse | PersistenceEntryResponse | { ok: false; errors: string[] };

/** Limits of one capture. */
export const CAPTURE_MAX_PACKETS = 1_000_000;
export const CAPTURE_MAX_SECONDS = 3600;

/** Longest request line accepted. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** Connections the control socket serves at once; more are answered with an error and closed. */
export const MAX_CONNECTIONS = 16;
/** Requests of one connection waiting for their answer; past it the connection is closed. */
export const MAX_PIPELINED_REQUESTS = 8;
