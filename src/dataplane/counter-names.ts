// The names of the fast path's counter sets, as the native lists define them (the X-macros in
// native/core/counters.h, conntrack.h, io/packet_io.h (I/O counters and ring levels), cluster/flow_sync.h; the addon's
// counterNames() returns them). The counter types are checked against these lists at compile
// time, the metrics exporter names a series for each, and test/metrics checks that the lists
// equal the addon's: a counter added natively fails that test until it is named here and in
// src/metrics/counters.ts.

/** A worker's (and an engine's summed) scalar counters. */
export const WORKER_COUNTERS = [
  'rx',
  'tx',
  'passed',
  'dropped',
  'echoReplies',
  'icmpErrorsForwarded',
  'checksumsFinalized',
  'icmpTooBigSent',
  'tcpResetsSent',
] as const;
export const VIP_COUNTERS = ['packets', 'bytes', 'newFlows', 'noBackend', 'flowsUntracked'] as const;
export const BACKEND_COUNTERS = ['packets', 'bytes', 'activeFlows', 'flowsCut'] as const;
export const CONNTRACK_COUNTERS = ['inserts', 'evictions', 'expiredReused', 'unprovenInserts', 'unprovenEvicted', 'proven', 'liveEntries'] as const;
export const IO_COUNTERS = ['rxPackets', 'rxKernelDrops', 'rxOversized', 'rxIgnored', 'txPackets', 'txErrors', 'txRingFull'] as const;
/** Fill levels of the I/O drivers' rings (gauges, in slots; native L4MUX_IO_RING_LEVELS). */
export const RING_LEVELS = ['rxUsed', 'rxSize', 'fillUsed', 'fillSize', 'txUsed', 'txSize', 'completionUsed', 'completionSize'] as const;
/** Cluster sync, per worker (syncStats().workers[]). */
export const SYNC_COUNTERS = ['exported', 'peerHits', 'redirected', 'redirectUnroutable', 'redirectTooBig', 'redirectsReceived', 'teachSent'] as const;

export type WorkerCounterName = (typeof WORKER_COUNTERS)[number];
export type VipCounterName = (typeof VIP_COUNTERS)[number];
export type BackendCounterName = (typeof BACKEND_COUNTERS)[number];
export type ConntrackCounterName = (typeof CONNTRACK_COUNTERS)[number];
export type IoCounterName = (typeof IO_COUNTERS)[number];
export type RingLevelName = (typeof RING_LEVELS)[number];
export type SyncCounterName = (typeof SYNC_COUNTERS)[number];

/** What the addon's counterNames() returns: each list, and the drop reasons. */
export interface CounterNames {
  worker: string[];
  vip: string[];
  backend: string[];
  conntrack: string[];
  io: string[];
  rings: string[];
  sync: string[];
  drops: string[];
}

/** The lists this module knows, by the set names of counterNames(). */
export const COUNTER_SETS: Readonly<Record<Exclude<keyof CounterNames, 'drops'>, readonly string[]>> = {
  worker: WORKER_COUNTERS,
  vip: VIP_COUNTERS,
  backend: BACKEND_COUNTERS,
  conntrack: CONNTRACK_COUNTERS,
  io: IO_COUNTERS,
  rings: RING_LEVELS,
  sync: SYNC_COUNTERS,
};

/** Compile-time check that an interface's numeric keys are exactly a list's names. */
export type SameKeys<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
