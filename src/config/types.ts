// Types of the l4mux configuration file (version 1): the file as written (`L4muxConfigInput`)
// and the validated, normalized form every other module consumes (`L4muxConfig`).
import type { BackendAdminState, EncapKind, HashFieldsName, SchedulerName } from '../dataplane/types.js';
import type { ClusterConfig, ClusterConfigInput } from '../cluster/config.js';
import type { BgpConfig, BgpInput } from '../bgp/types.js';
import type { HealthCheckInput, HealthCheckSpec } from './health/types.js';
import type { MetricsConfig, MetricsInput } from '../metrics/config.js';
import type { PersistenceConfig, PersistenceInput, VipPersistence, VipPersistenceInput } from '../persistence/config.js';

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
  /** TCP entries first seen mid-flow, until the flow repeats. */
  tcpUnproven: number;
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

/** How the live engine reads and writes packets. */
export type IoChoice = 'auto' | 'af_packet' | 'af_xdp';
/** How the XDP program is attached when AF_XDP is used. */
export type XdpModeChoice = 'auto' | 'native' | 'generic';

export interface NodeConfig {
  /** 64-bit hash seed as 0x followed by 16 lowercase hex digits. */
  seed: string;
  /** Interfaces served by `l4mux run`, in file order; empty when the file names none. */
  interfaces: string[];
  io: IoChoice;
  xdpMode: XdpModeChoice;
  /** Workers per interface; absent: as many as `cpus`, else the number of CPUs. */
  workers?: number;
  /** CPUs workers are pinned to; absent: not pinned. */
  cpus?: number[];
  /** Canonical address of the next hop toward the backends; absent: from the kernel's routes. */
  gateway?: string;
  /** Lowercase, colon-separated; absent: the interface's MAC (run) or all-zero (replay). */
  sourceMac?: string;
  /** Lowercase, colon-separated; absent: resolved (run) or all-zero (replay). */
  gatewayMac?: string;
  /** Absent: the interface's MTU (run) or no limit (replay). */
  mtu?: number;
  manageOffloads: boolean;
  /** Refuse configurations whose estimated memory exceeds this (MiB); absent: the default. */
  memoryBudgetMiB?: number;
  outerSource: OuterSource;
  conntrack: ConntrackConfig;
}

export interface BackendConfig {
  /** Canonical address (dotted quad, or RFC 5952 IPv6). */
  address: string;
  weight: number;
  state: BackendAdminState;
  /** Canonical addresses of backends of the same pool; acyclic. */
  fallover: string[];
}

export type AllDownPolicy = 'drop' | 'keep-last';

export interface PoolConfig {
  description?: string;
  backends: BackendConfig[];
  allDown: AllDownPolicy;
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
  scheduler: SchedulerName;
  /** New entries per second this mux makes for the VIP; absent: no limit. */
  newFlowRate?: number;
  /** Client persistence; absent: none. */
  persistence?: VipPersistence;
}

export interface L4muxConfig {
  version: 1;
  node: NodeConfig;
  /** Pools by name, in file order. */
  pools: Record<string, PoolConfig>;
  vips: VipConfig[];
  /** The resolved health check of every checked backend (defaults, pool, backend merged). */
  healthChecks: HealthCheckSpec[];
  /** Connection-table sync with peer muxes; absent: this mux decides alone. */
  cluster?: ClusterConfig;
  /** BGP announcement of the VIPs; absent: none. */
  bgp?: BgpConfig;
  /** The Prometheus endpoint; absent: none. */
  metrics?: MetricsConfig;
  /** The persistence store and tables: present when a VIP has persistence or the file has the section. */
  persistence?: PersistenceConfig;
}

// ---- As written in the file (what the schema accepts) ----

export interface L4muxConfigInput {
  $schema?: string;
  version: 1;
  node: {
    seed: string;
    interfaces?: string[];
    io?: IoChoice;
    xdpMode?: XdpModeChoice;
    workers?: number;
    cpus?: number[];
    gateway?: string;
    sourceMac?: string;
    gatewayMac?: string;
    mtu?: number;
    manageOffloads?: boolean;
    memoryBudgetMiB?: number;
    outerSource?: OuterSource;
    conntrack?: {
      maxFlows?: number;
      timeouts?: Partial<ConntrackTimeouts>;
    };
  };
  pools: Record<
    string,
    {
      description?: string;
      allDown?: AllDownPolicy;
      healthCheck?: HealthCheckInput;
      backends: { address: string; weight?: number; state?: BackendAdminState; fallover?: string[]; healthCheck?: HealthCheckInput }[];
    }
  >;
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
    scheduler?: SchedulerName;
    newFlowRate?: number;
    persistence?: VipPersistenceInput;
  }[];
  cluster?: ClusterConfigInput;
  persistence?: PersistenceInput;
  bgp?: BgpInput;
  metrics?: MetricsInput;
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
