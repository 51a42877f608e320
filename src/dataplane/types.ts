// The dataplane's view of a configuration: what the native addon is given. Produced from a
// validated JSON VIP map by src/config; addresses are canonical strings, numbers are in range.

export type EncapKind = 'ipip' | 'gre' | 'gue';
export type HashFieldsName = '5-tuple' | '3-tuple' | 'src-ip' | 'src-ip-port';

/**
 * Administrative state of a backend (Proto Balance's green / yellow / red):
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
}

export interface ConntrackSettings {
  maxFlows: number;
  timeouts: {
    tcpSynSeconds: number;
    tcpEstablishedSeconds: number;
    tcpClosingSeconds: number;
    udpSeconds: number;
    otherSeconds: number;
  };
}
