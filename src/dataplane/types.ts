// The dataplane's view of a configuration: what the native addon is given. Produced from a
// validated JSON VIP map by src/config; addresses are canonical strings, numbers are in range.

export type EncapKind = 'ipip' | 'gre' | 'gue';
export type HashFieldsName = '5-tuple' | '3-tuple' | 'src-ip' | 'src-ip-port';

export interface DataplaneBackend {
  address: string;
  weight: number;
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
