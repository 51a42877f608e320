// Default values and limits of the version 1 format. The schema's "default"/"minimum"/
// "maximum" annotations say the same (a test keeps them in step).
import type { BackendAdminState, SchedulerName } from '../dataplane/types.js';
import type { AllDownPolicy, ConntrackConfig, Encapsulation, HashFields, IoChoice, XdpModeChoice } from './types.js';

export const CONFIG_VERSION = 1;

/** The MACs `l4mux replay` puts in frames when the file gives none (no interface to ask). */
export const DEFAULT_SOURCE_MAC = '00:00:00:00:00:00';
export const DEFAULT_GATEWAY_MAC = '00:00:00:00:00:00';
export const DEFAULT_IO: IoChoice = 'auto';
export const DEFAULT_XDP_MODE: XdpModeChoice = 'auto';
export const DEFAULT_MANAGE_OFFLOADS = true;
export const MAX_WORKERS = 64;
/** Linux interface names are at most IFNAMSIZ - 1 = 15 bytes. */
export const MAX_INTERFACE_NAME = 15;
/** The smallest link MTU IPv6 allows (RFC 8200). */
export const MIN_IPV6_MTU = 1280;
export const DEFAULT_WEIGHT = 1;
/** The largest backend weight, in the file (schema) and at runtime (`l4mux backend --weight`). */
export const MAX_WEIGHT = 65535;
export const DEFAULT_ENCAPSULATION: Encapsulation = 'ipip';
export const DEFAULT_GUE_PORT = 6080;
export const DEFAULT_HASH_FIELDS: HashFields = '5-tuple';
export const DEFAULT_TABLE_SIZE = 65537;
export const DEFAULT_ICMP_ECHO = true;
export const DEFAULT_SCHEDULER: SchedulerName = 'maglev';
/** Schedulers that decide per mux (and per worker): consistent across muxes only with sync. */
export const PER_MUX_SCHEDULERS: readonly SchedulerName[] = ['wrr', 'wlc', 'random'];
export const DEFAULT_BACKEND_STATE: BackendAdminState = 'active';
export const DEFAULT_ALL_DOWN: AllDownPolicy = 'drop';

export const MIN_TABLE_SIZE = 251;
export const MAX_TABLE_SIZE = 1000003;
/** Maglev (NSDI 2016) keeps load within ~1% of ideal with at least this many entries per backend. */
export const TABLE_ENTRIES_PER_BACKEND = 100;
/** Distinct backend addresses the dataplane can hold (its backend slot registry). */
export const MAX_DISTINCT_BACKENDS = 65536;

// ---- Fast-path memory the file does not set (native/core/defaults.h has the same fallbacks) ----

/**
 * Cluster sync: peer-entry table entries (cluster.maxEntries) and records per worker export ring
 * (about a quarter second of new flows at 250k/s).
 */
export const DEFAULT_CLUSTER_PEER_FLOWS = 262144;
export const DEFAULT_CLUSTER_EXPORT_RING = 65536;
/** AF_XDP UMEM per worker: frames of bytes (16384 x 4096 B = 64 MiB). */
export const AF_XDP_FRAME_COUNT = 16384;
export const AF_XDP_FRAME_SIZE = 4096;

// ---- Live capture (l4mux capture; native/core/defaults.h) ----

export const CAPTURE_DEFAULT_SNAPLEN = 2048;
export const CAPTURE_MIN_SNAPLEN = 64;
export const CAPTURE_MAX_SNAPLEN = 4096;

export function defaultConntrackConfig(): ConntrackConfig {
  return {
    maxFlows: 262144,
    timeouts: { tcpSyn: 30, tcpEstablished: 900, tcpClosing: 30, udp: 60, other: 30, tcpUnproven: 10 },
  };
}

// ---- Client persistence (vips[].persistence and the top-level persistence section) ----

/** Seconds of silence after which a client's entry is forgotten (IPVS's -p default). */
export const DEFAULT_PERSISTENCE_TIMEOUT = 300;
export const MAX_PERSISTENCE_TIMEOUT = 604800;
export const DEFAULT_PERSISTENCE_GRANULARITY = 'address';
/** Entries a VIP may hold on a mux. */
export const DEFAULT_PERSISTENCE_VIP_MAX_ENTRIES = 65536;
export const DEFAULT_PERSISTENCE_STORE = 'embedded';
export const DEFAULT_PERSISTENCE_STATE_FILE = '/var/lib/l4mux/persistence.log';
/** Entries of each engine's shared persistence table (all VIPs). */
export const DEFAULT_PERSISTENCE_TABLE_ENTRIES = 262144;
/** First packets each worker may hold for the slow path. */
export const DEFAULT_PERSISTENCE_PUNT_SLOTS = 1024;
/** Milliseconds the slow path waits for the store before it decides locally. */
export const DEFAULT_PERSISTENCE_STORE_TIMEOUT_MS = 200;
export const DEFAULT_PERSISTENCE_ETCD_PREFIX = '/l4mux/persistence/';
