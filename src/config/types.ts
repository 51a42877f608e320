// Types of the l4mux configuration file (version 1): the file as written (`L4muxConfigInput`)
// and the validated, normalized form every other module consumes (`L4muxConfig`).
import type { EncapKind, HashFieldsName } from '../dataplane/types.js';

export type Protocol = 'tcp' | 'udp';
export type Encapsulation = EncapKind;
export type HashFields = HashFieldsName;
export type AddressFamily = 'ipv4' | 'ipv6';

// ---- Normalized: defaults filled in, addresses/MACs/seed in canonical form ----

export interface ConntrackTimeouts {
  tcpSyn: number;
  tcpEstablished: number;
  tcpClosing: number;
  udp: number;
  other: number;
}

export interface ConntrackConfig {
  maxFlows: number;
  /** Idle timeouts in seconds. */
  timeouts: ConntrackTimeouts;
}

export interface OuterSource {
  ipv4?: string;
  ipv6?: string;
}

export interface NodeConfig {
  /** 64-bit hash seed as 0x followed by 16 lowercase hex digits. */
  seed: string;
  /** Lowercase, colon-separated. */
  sourceMac: string;
  gatewayMac: string;
  outerSource: OuterSource;
  conntrack: ConntrackConfig;
}

export interface BackendConfig {
  /** Canonical address (dotted quad, or RFC 5952 IPv6). */
  address: string;
  weight: number;
}

export interface PoolConfig {
  description?: string;
  backends: BackendConfig[];
}

export interface VipConfig {
  name: string;
  description?: string;
  address: string;
  protocol: Protocol;
  /** Absent for an all-ports VIP. */
  port?: number;
  pool: string;
  encapsulation: Encapsulation;
  /** Present only with encapsulation "gre" when given in the file. */
  gre?: { key?: number };
  /** Present exactly when encapsulation is "gue". */
  gue?: { port: number };
  hashFields: HashFields;
  tableSize: number;
  icmpEcho: boolean;
}

export interface L4muxConfig {
  version: 1;
  node: NodeConfig;
  /** Pools by name, in file order. */
  pools: Record<string, PoolConfig>;
  vips: VipConfig[];
}

// ---- As written in the file (what the schema accepts) ----

export interface L4muxConfigInput {
  $schema?: string;
  version: 1;
  node: {
    seed: string;
    sourceMac?: string;
    gatewayMac: string;
    outerSource?: OuterSource;
    conntrack?: {
      maxFlows?: number;
      timeouts?: Partial<ConntrackTimeouts>;
    };
  };
  pools: Record<string, { description?: string; backends: { address: string; weight?: number }[] }>;
  vips: {
    name?: string;
    description?: string;
    address: string;
    protocol: Protocol;
    port?: number;
    pool: string;
    encapsulation?: Encapsulation;
    gre?: { key?: number };
    gue?: { port?: number };
    hashFields?: HashFields;
    tableSize?: number;
    icmpEcho?: boolean;
  }[];
}

// ---- Results ----

export interface ConfigOk {
  ok: true;
  config: L4muxConfig;
  /** "path: reason" lines about a config that is valid but probably not what was meant. */
  warnings: string[];
}

export interface ConfigError {
  ok: false;
  /** "path: reason" lines (or "source:line:column: reason" for JSON syntax errors). */
  errors: string[];
}

export type ConfigResult = ConfigOk | ConfigError;
