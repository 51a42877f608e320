// What an engine answers about one flow (`l4mux flow`) and how it captures (`l4mux capture`).
// The workers answer between batches; nothing is stopped or slowed.

/** A flow as the client sends it: to the VIP (protocol number, addresses, ports). */
export interface FlowQuery {
  protocol: number;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
}

/** What one worker's connection table holds of the flow. */
export interface WorkerFlowEntry {
  worker: number;
  /** false: the worker did not answer in time (then `found` says nothing). */
  answered: boolean;
  found: boolean;
  backend?: string | null;
  /** The VIP the entry was scheduled under. */
  vip?: string;
  state?: 'syn-seen' | 'established' | 'closing' | 'udp' | 'other';
  /** Since the flow's last packet. */
  idleSeconds?: number;
  /** Until the entry expires without another packet. */
  expiresInSeconds?: number;
  /** What the running config does with the entry: keep it, cut it (offline), or reschedule. */
  fate?: 'keep' | 'cut' | 'reschedule';
}

export interface FlowLookupReport {
  /** 5-tuple hash keying the connection tables (hex). */
  flowHash: string;
  /** Name of the VIP the flow belongs to; null: no VIP. */
  vip: string | null;
  scheduler?: string;
  /** The fields the scheduler hashes. */
  hashFields?: string;
  /** Maglev (and source-hash): the table entry a new flow would take; null for per-worker schedulers. */
  table?: { hash: string; size: number; index: number; backend: string | null } | null;
  workers: WorkerFlowEntry[];
  /** Where the flow's next packet goes; null when nothing would take it. */
  backend: string | null;
  /** 'connection table', 'maglev table', 'source-hash table', 'decided per worker', 'no backend', 'no VIP'. */
  decidedBy: string;
}

export interface CaptureOptions {
  /** VIP name: frames addressed to it. */
  vip?: string;
  /** Backend address: frames sent to it. */
  backend?: string;
  /** Packets to capture (a received frame and its encapsulated copy count once). */
  count: number;
  /** Bytes kept of each frame (64..4096). */
  snaplen?: number;
  /** 1: every matching packet; N: one in N. */
  sampleEvery?: number;
}

export interface CaptureRecord {
  worker: number;
  /** Per-worker packet number: a packet's received and sent copies share it. */
  packet: number;
  direction: 'received' | 'sent';
  verdict: 'tx' | 'pass' | 'drop';
  seconds: number;
  nanoseconds: number;
  originalLength: number;
  data: Buffer;
}

export interface CaptureStats {
  packets: number;
  /** Copies skipped because the rings were full (the control plane drains them every few ms). */
  ringFull: number;
}
