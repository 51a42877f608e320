// The fast path's counters as Prometheus families. The exporter does not list the counters: it
// walks the counter objects the addon returns (one key per counter of the native X-macro lists,
// see native/addon/counters_js.cc) and names each leaf by the table below. The tables are keyed
// by the lists' names (src/dataplane/counter-names.ts), so a list name without a metric name
// does not compile. A key the tables do not know still becomes a series under a mechanical name
// (`l4mux_<path>_total`) and is reported in `unnamed`, so a counter added in native code can
// never be missing from a scrape.
import type {
  BackendCounterName,
  ConntrackCounterName,
  IoCounterName,
  RingLevelName,
  SyncCounterName,
  VipCounterName,
  WorkerCounterName,
} from '../dataplane/counter-names.js';
import type { EngineCounters } from '../dataplane/engine.js';
import type { SyncStats } from '../dataplane/index.js';

export type MetricType = 'counter' | 'gauge';

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  /** Full name, `l4mux_` prefix included. */
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

export const PREFIX = 'l4mux_';

interface Leaf {
  /** Name without the prefix; counters end in _total. */
  name: string;
  help: string;
  type: MetricType;
}

const counter = (name: string, help: string): Leaf => ({ name: `${name}_total`, help, type: 'counter' });
const gauge = (name: string, help: string): Leaf => ({ name, help, type: 'gauge' });

// Counter sets by where they appear; the same set under `workers[]` gets a `worker_` prefix.
const PIPELINE: Record<WorkerCounterName, Leaf> = {
  rx: counter('packets_received', 'Frames the fast path received.'),
  tx: counter('packets_transmitted', 'Frames the fast path sent (encapsulated packets, echo replies, ICMP errors, resets).'),
  passed: counter('packets_passed', 'Frames handed to the kernel (not VIP traffic: ARP, ND, BGP, SSH).'),
  dropped: counter('packets_dropped', 'Frames dropped, all reasons (see l4mux_drops_total).'),
  echoReplies: counter('icmp_echo_replies', 'ICMP/ICMPv6 echo replies sent for VIP addresses.'),
  icmpErrorsForwarded: counter('icmp_errors_forwarded', 'ICMP errors about VIP flows forwarded to their backend.'),
  checksumsFinalized: counter('checksums_finalized', 'Partial L4 checksums (CHECKSUM_PARTIAL) completed before encapsulation.'),
  icmpTooBigSent: counter('icmp_too_big_sent', 'ICMP fragmentation-needed / packet-too-big errors sent to clients.'),
  tcpResetsSent: counter('tcp_resets_sent', 'TCP resets sent to clients of flows cut because their backend went offline.'),
};

const IO: Record<IoCounterName, Leaf> = {
  rxPackets: counter('io_rx_packets', 'Frames read from the receive rings.'),
  rxKernelDrops: counter('io_rx_kernel_drops', 'Frames the kernel dropped because a receive ring was full.'),
  rxOversized: counter('io_rx_oversized', 'Frames larger than a ring slot (GRO/LRO super-frames), dropped.'),
  rxIgnored: counter('io_rx_ignored', 'Frames not for the fast path (broadcast, multicast, outgoing), left to the kernel.'),
  txPackets: counter('io_tx_packets', 'Frames queued on the transmit rings.'),
  txErrors: counter('io_tx_errors', 'Transmits the kernel refused.'),
  txRingFull: counter('io_tx_ring_full', 'Frames dropped because no transmit slot was free.'),
};

// Fill levels as read at the scrape (used / size is the fill ratio).
const RINGS: Record<RingLevelName, Leaf> = {
  rxUsed: gauge('io_rx_ring_used_slots', 'Receive ring slots holding frames not yet processed (AF_XDP descriptors, AF_PACKET blocks).'),
  rxSize: gauge('io_rx_ring_size_slots', 'Receive ring slots (AF_XDP descriptors, AF_PACKET blocks).'),
  fillUsed: gauge('io_fill_ring_used_slots', 'AF_XDP fill ring slots holding frames the kernel can receive into (low: receive drops ahead).'),
  fillSize: gauge('io_fill_ring_size_slots', 'AF_XDP fill ring slots.'),
  txUsed: gauge('io_tx_ring_used_slots', 'AF_XDP transmit ring slots holding frames not yet sent.'),
  txSize: gauge('io_tx_ring_size_slots', 'AF_XDP transmit ring slots.'),
  completionUsed: gauge('io_completion_ring_used_slots', 'AF_XDP completion ring slots holding sent frames not yet reclaimed.'),
  completionSize: gauge('io_completion_ring_size_slots', 'AF_XDP completion ring slots.'),
};

const CONNTRACK: Record<ConntrackCounterName | 'capacity', Leaf> = {
  inserts: counter('conntrack_inserts', 'Flows added to the connection tables.'),
  evictions: counter('conntrack_evictions', 'Live flows pushed out of a full bucket by a new flow.'),
  expiredReused: counter('conntrack_expired_reused', 'Expired entries whose place a new flow took.'),
  unprovenInserts: counter('conntrack_unproven_inserts', 'Entries created for flows first seen mid-flow (no SYN), kept briefly until the flow repeats.'),
  unprovenEvicted: counter('conntrack_unproven_evictions', 'Evictions that took an entry of a flow first seen mid-flow.'),
  proven: counter('conntrack_proven', 'Entries of flows first seen mid-flow whose flow repeated (then kept like any other).'),
  capacity: gauge('conntrack_capacity_entries', 'Entries the connection tables can hold.'),
  liveEntries: gauge('conntrack_entries', 'Occupied connection-table entries (expired ones count until reused or swept).'),
};

const VIP: Record<VipCounterName, Leaf> = {
  packets: counter('vip_packets', 'Packets forwarded for the VIP.'),
  bytes: counter('vip_bytes', 'Bytes of the forwarded packets (inner IP packets) for the VIP.'),
  newFlows: counter('vip_new_flows', 'New flows scheduled on the VIP.'),
  noBackend: counter('vip_no_backend_drops', 'Packets of new flows dropped because no backend could take them.'),
  flowsUntracked: counter('vip_untracked_flows', 'New flows forwarded by the Maglev table without a connection-table entry (the VIP was past its new-flow rate: flood mode).'),
};

const BACKEND: Record<BackendCounterName, Leaf> = {
  packets: counter('backend_packets', 'Packets sent to the backend.'),
  bytes: counter('backend_bytes', 'Bytes sent to the backend (encapsulated frames).'),
  activeFlows: gauge('backend_active_flows', 'Open flows toward the backend in the connection tables (IPVS ActiveConn).'),
  flowsCut: counter('backend_flows_cut', 'Flows cut because the backend was set offline.'),
};

const SYNC_WORKER: Record<SyncCounterName | 'syncExportOverflow', Leaf> = {
  exported: counter('sync_records_exported', 'Flow records the workers put in their export rings (new flows, ends, refreshes).'),
  peerHits: counter('sync_peer_hits', 'Packets of flows found in the peer-entry table (flows a peer taught us).'),
  redirected: counter('sync_redirected', 'Packets of new flows redirected to the mux that owns them.'),
  redirectUnroutable: counter('sync_redirect_unroutable', 'Redirects decided here because no tunnel reaches the owner (other address family).'),
  redirectTooBig: counter('sync_redirect_too_big', 'Redirects decided here because the redirect would exceed the MTU or the headroom.'),
  redirectsReceived: counter('sync_redirects_received', 'Packets other muxes redirected to this one.'),
  teachSent: counter('sync_teach_sent', 'Records sent to teach the owner a flow this mux decided.'),
  syncExportOverflow: counter('sync_export_overflow', 'Flow records lost because an export ring was full.'),
};

const SYNC: Record<string, Leaf> = {
  polled: counter('sync_records_polled', 'Flow records drained from the export rings.'),
  selfInstalled: counter('sync_records_self_installed', 'Polled records of flows this mux owns or backs, put into its own peer-entry table.'),
  accepted: counter('sync_records_accepted', 'Records from peers installed into the peer-entry table.'),
  syncExportOverflow: counter('sync_export_overflow', 'Flow records lost because an export ring was full.'),
  'peerTable.capacity': gauge('sync_peer_table_capacity_entries', 'Entries the peer-entry table can hold.'),
  'peerTable.live': gauge('sync_peer_table_entries', 'Live entries of the peer-entry table.'),
  'peerTable.installed': counter('sync_peer_table_installed', 'Entries added to the peer-entry table.'),
  'peerTable.updated': counter('sync_peer_table_updated', 'Peer-entry table entries updated by a newer record.'),
  'peerTable.removed': counter('sync_peer_table_removed', 'Peer-entry table entries removed (flow ends).'),
  'peerTable.evicted': counter('sync_peer_table_evicted', 'Live peer-entry table entries pushed out by a new one.'),
};

function withPrefix(table: Record<string, Leaf>, path: string, name: string, help: string): Record<string, Leaf> {
  return Object.fromEntries(
    Object.entries(table).map(([key, leaf]) => [`${path}${key}`, { ...leaf, name: `${name}${leaf.name}`, help: `${help}${leaf.help}` }]),
  );
}

const DROP_LEAF = counter('drops', 'Frames dropped, by reason (every reason of the native list, zeros included).');

/** Every known leaf by its path (`io.rxPackets`, `vips[].bytes`, `workers[].conntrack.liveEntries`, `drops.*`). */
export const LEAVES: Readonly<Record<string, Leaf>> = {
  ...withPrefix(PIPELINE, '', '', ''),
  ...withPrefix(IO, 'io.', '', ''),
  ...withPrefix(RINGS, 'rings.', '', ''),
  ...withPrefix(CONNTRACK, 'conntrack.', '', ''),
  ...withPrefix(VIP, 'vips[].', '', ''),
  ...withPrefix(BACKEND, 'backends[].', '', ''),
  'drops.*': DROP_LEAF,
  ...withPrefix(PIPELINE, 'workers[].', 'worker_', 'Per worker. '),
  ...withPrefix(IO, 'workers[].io.', 'worker_', 'Per worker. '),
  ...withPrefix(RINGS, 'workers[].rings.', 'worker_', 'Per worker. '),
  ...withPrefix(CONNTRACK, 'workers[].conntrack.', 'worker_', 'Per worker. '),
  'workers[].drops.*': { ...DROP_LEAF, name: `worker_${DROP_LEAF.name}`, help: `Per worker. ${DROP_LEAF.help}` },
  ...withPrefix(SYNC, 'sync.', '', ''),
  'sync.refused.*': counter('sync_records_refused', 'Records from peers refused, by reason.'),
  ...withPrefix(SYNC_WORKER, 'sync.workers[].', 'worker_', 'Per worker. '),
};

/** Arrays of objects: the label each element gets, and the key it comes from ('#': the index). */
const ARRAY_LABELS: Record<string, { label: string; key: string }> = {
  vips: { label: 'vip', key: 'name' },
  backends: { label: 'backend', key: 'address' },
  workers: { label: 'worker', key: '#' },
  'sync.workers': { label: 'worker', key: '#' },
};

/** Objects whose keys are label values (a counter per name). */
const MAP_LABELS: Record<string, string> = {
  drops: 'reason',
  'workers[].drops': 'reason',
  'sync.refused': 'reason',
};

function snake(path: string): string {
  return path
    .replace(/\[\]/g, '')
    .replace(/\.\*$/, '')
    .replace(/[.]/g, '_')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9_]/g, '_')
    .toLowerCase();
}

/** Accumulates samples into families by name. */
export class FamilySet {
  private readonly families = new Map<string, Family>();
  /** Leaf paths that had no name in LEAVES (named mechanically). */
  readonly unnamed = new Set<string>();

  add(name: string, help: string, type: MetricType, labels: Record<string, string>, value: number): void {
    const full = `${PREFIX}${name}`;
    let family = this.families.get(full);
    if (family === undefined) {
      family = { name: full, help, type, samples: [] };
      this.families.set(full, family);
    }
    family.samples.push({ labels, value });
  }

  list(): Family[] {
    return [...this.families.values()];
  }
}

/**
 * Adds one interface's engine counters: every numeric leaf of `counters`, labelled with the
 * interface and, inside arrays and maps, with the element's VIP, backend, worker or reason.
 */
export function addEngineCounters(out: FamilySet, counters: EngineCounters, labels: Record<string, string>): void {
  walk(out, counters as unknown as Record<string, unknown>, '', labels);
}

/** Adds one interface's cluster sync counters (Engine.syncStats()), labelled like the engine's. */
export function addSyncCounters(out: FamilySet, sync: SyncStats, labels: Record<string, string>): void {
  walk(out, sync as unknown as Record<string, unknown>, 'sync.', labels);
}

function walk(out: FamilySet, object: Record<string, unknown>, prefix: string, labels: Record<string, string>): void {
  for (const [key, value] of Object.entries(object)) {
    const path = `${prefix}${key}`;
    if (typeof value === 'number') {
      leaf(out, path, value, labels);
    } else if (Array.isArray(value)) {
      const spec = ARRAY_LABELS[path] ?? { label: snake(path), key: '#' };
      value.forEach((element: unknown, i) => {
        if (typeof element !== 'object' || element === null) return;
        const record = element as Record<string, unknown>;
        const labelValue = spec.key === '#' ? String(i) : String(record[spec.key] ?? i);
        walk(out, record, `${path}[].`, { ...labels, [spec.label]: labelValue });
      });
    } else if (typeof value === 'object' && value !== null) {
      const label = MAP_LABELS[path];
      if (label === undefined) {
        walk(out, value as Record<string, unknown>, `${path}.`, labels);
        continue;
      }
      for (const [name, n] of Object.entries(value as Record<string, unknown>)) {
        if (typeof n === 'number') leaf(out, `${path}.*`, n, { ...labels, [label]: name });
      }
    }
    // Strings (names, addresses, descriptions) are labels or text, not samples.
  }
}

function leaf(out: FamilySet, path: string, value: number, labels: Record<string, string>): void {
  const known = LEAVES[path];
  if (known !== undefined) {
    out.add(known.name, known.help, known.type, labels, value);
    return;
  }
  out.unnamed.add(path);
  out.add(`${snake(path)}_total`, `Fast-path counter ${path} (named after its key: give it a name in src/metrics/counters.ts).`, 'counter', labels, value);
}
