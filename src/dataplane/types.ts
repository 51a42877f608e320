// The dataplane's view of a configuration: what the native addon is given. Produced from a
// validated JSON VIP map by src/config; addresses are canonical strings, numbers are in range.

export type EncapKind = 'ipip' | 'gre' | 'gue';
export type HashFieldsName = '5-tuple' | '3-tuple' | 'src-ip' | 'src-ip-port';

/**
 * Administrative state of a backend (available / preparing for shutdown / offline):
 * `active` takes new flows and keeps its flows; `draining` takes no new flows and keeps the
 * ones it has until they end; `offline` takes no new flows and its flows are cut (TCP answered
 * with a RST, other packets dropped).
 */
export type BackendAdminState = 'active' | 'draining' | 'offline';

/**
 * How a VIP picks the backend of a new flow. `maglev` (and `source-hash`, Maglev keyed on the
 * client address) give every mux the same answer; `wrr`, `wlc` and `random` are decided by each
 * mux (and worker) alone, so flows keep their backend across muxes only with connection sync.
 */
export type SchedulerName = 'maglev' | 'source-hash' | 'wrr' | 'wlc' | 'random';

export interface DataplaneBackend {
  address: string;
  /** Share of new flows (any scale); 0 takes no new flows but keeps existing ones. */
  weight: number;
  state: BackendAdminState;
  /** false: down by health checks: no new flows, and its flows are rescheduled. */
  healthy: boolean;
  /**
   * Backends (addresses in the same VIP) that take this one's share of new flows while it
   * cannot (down, draining or offline): the first one able to, following their own fall-overs
   * in turn. Acyclic (validated by src/config).
   */
  fallover: string[];
}

export interface DataplanePersistence {
  /** Seconds of silence after which a client's entry is forgotten (1..31536000). */
  timeoutSeconds: number;
  /** 1..32 for an IPv4 VIP, 1..128 for an IPv6 one. */
  prefixLength: number;
  /** The VIP's share of the engine's persistence table (1..2^32-1). */
  maxEntries: number;
}

export interface DataplaneVip {
  name: string;
  address: string;
  /** IANA protocol number: 6 (TCP) or 17 (UDP). */
  protocol: number;
  /** 0 means every port of the protocol. */
  port: number;
  encap: EncapKind;
  /** GRE key, when the VIP uses keyed GRE. */
  greKey?: number;
  /** GUE destination UDP port. */
  guePort: number;
  hashFields: HashFieldsName;
  tableSize: number;
  /** Answer ICMP/ICMPv6 echo requests sent to the VIP address. */
  icmpEcho: boolean;
  scheduler: SchedulerName;
  /** New connection-table entries per second each worker makes for the VIP; absent: no limit. */
  newFlowRatePerWorker?: number;
  /**
   * Client persistence (issue 16); absent: none. `prefixLength` is the client granularity
   * (32 / 128: the client's address). The native side masks the client address to it.
   */
  persistence?: DataplanePersistence;
  backends: DataplaneBackend[];
}

export interface DataplaneConfig {
  /** Cluster-wide hash seed, 64 bits, as a decimal or 0x-prefixed hex string. */
  seed: string;
  sourceMac: string;
  gatewayMac: string;
  outerSourceV4?: string;
  outerSourceV6?: string;
  /** Egress link MTU (largest IP packet); absent = no limit, as in replay. */
  mtu?: number;
  vips: DataplaneVip[];
  /** Absent: no cluster; the mux decides alone, as a single mux does. */
  cluster?: DataplaneCluster;
}

/** A mux of the cluster as the dataplane sees it (see DataplaneCluster). */
export interface DataplaneClusterMember {
  id: string;
  /** The mux's own address: the outer destination of packets redirected to it. */
  address: string;
  /** Rendezvous weight (> 0): a mux of weight 2 owns twice the flows of one of weight 1. */
  weight: number;
  /** Only live members own flows; the others keep their index. */
  live: boolean;
  /**
   * Dead but still owning its flows (live) while the survivors' transfers come in: the backups
   * of its flows decide for it, and other muxes redirect to them. Default false.
   */
  leaving?: boolean;
}

/**
 * The cluster as the fast path needs it: who owns which flow (weighted rendezvous hashing
 * over the live members with `seed`) and where redirected packets go. Members come sorted
 * by id, identically on every mux (at most 255); records name members by index in this list.
 */
export interface DataplaneCluster {
  /** Index of this mux in `members`. */
  selfIndex: number;
  /** Cluster seed for the rendezvous scores, 64 bits, as a decimal or 0x-prefixed hex string. */
  seed: string;
  members: DataplaneClusterMember[];
  /** UDP port of mux-to-mux redirected packets (GUE-like: the inner IP packet after UDP). */
  redirectPort: number;
}

/**
 * Memory of the cluster's fast-path state, fixed for the life of an Engine or Dataplane
 * (allocated at construction). Absent: the defaults below.
 */
export interface ClusterCapacity {
  /** Entries the peer-entry table (flows peers sent us) holds; default 262144. */
  peerFlows: number;
  /** Records each worker's export ring holds (a power of two); default 65536. */
  exportRing: number;
}

export interface ConntrackSettings {
  maxFlows: number;
  timeouts: {
    tcpSynSeconds: number;
    tcpEstablishedSeconds: number;
    tcpClosingSeconds: number;
    udpSeconds: number;
    otherSeconds: number;
    /** TCP entries first seen mid-flow, until the flow repeats (default 10). */
    tcpUnprovenSeconds?: number;
  };
}
