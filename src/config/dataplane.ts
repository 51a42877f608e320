// From the normalized config to what the dataplane addon is given.
import { availableParallelism } from 'node:os';

import type { ConntrackSettings, DataplaneConfig, DataplaneVip } from '../dataplane/types.js';
import { DEFAULT_GATEWAY_MAC, DEFAULT_GUE_PORT, DEFAULT_SOURCE_MAC } from './defaults.js';
import type { BackendAdminState } from '../dataplane/types.js';
import type { BackendConfig, ConntrackConfig, L4muxConfig, Protocol } from './types.js';

export const PROTOCOL_NUMBERS: Readonly<Record<Protocol, number>> = { tcp: 6, udp: 17 };

/**
 * What the host tells about the link an engine sends on, for the node settings the file leaves
 * out. An explicit value in the file wins over these; without either, `l4mux replay`'s defaults
 * apply (all-zero MACs, no MTU limit).
 */
export interface LinkFacts {
  /** MAC of the interface. */
  sourceMac?: string;
  /** MAC of the resolved next hop toward the backends. */
  gatewayMac?: string;
  /** MTU of the interface. */
  mtu?: number;
}

/** The runtime view of a backend: health and overrides. */
export interface BackendRuntime {
  healthy: boolean;
  weight: number;
  state: BackendAdminState;
}

/** How the daemon sees each backend now (src/pools); absent: healthy, as configured. */
export type BackendView = (pool: string, backend: BackendConfig) => BackendRuntime;

const asConfigured: BackendView = (_pool, b) => ({ healthy: true, weight: b.weight, state: b.state });

/** Resolves each VIP's pool into its backends (weight-0 backends included: they keep their flows). */
export function toDataplaneConfig(config: L4muxConfig, link: LinkFacts = {}, view: BackendView = asConfigured): DataplaneConfig {
  const { node } = config;
  // As the daemon resolves node.workers (src/daemon): the cpus list's length, else the CPUs.
  const workers = node.workers ?? node.cpus?.length ?? Math.min(64, availableParallelism());
  const vips = config.vips.map((v): DataplaneVip => {
    const pool = Object.hasOwn(config.pools, v.pool) ? config.pools[v.pool] : undefined;
    if (pool === undefined) throw new Error(`VIP "${v.name}": pool "${v.pool}" is not defined`);
    return {
      name: v.name,
      address: v.address,
      protocol: PROTOCOL_NUMBERS[v.protocol],
      port: v.port ?? 0,
      encap: v.encapsulation,
      ...(v.encapsulation === 'gre' && v.gre?.key !== undefined && { greKey: v.gre.key }),
      guePort: v.gue?.port ?? DEFAULT_GUE_PORT,
      hashFields: v.hashFields,
      tableSize: v.tableSize,
      icmpEcho: v.icmpEcho,
      scheduler: v.scheduler,
      // Each worker allows its share of the mux's rate.
      ...(v.newFlowRate !== undefined && { newFlowRatePerWorker: Math.max(1, Math.ceil(v.newFlowRate / workers)) }),
      ...(v.persistence !== undefined && { persistence: { ...v.persistence } }),
      backends: pool.backends.map((b) => {
        const now = view(v.pool, b);
        return { address: b.address, weight: now.weight, state: now.state, healthy: now.healthy, fallover: b.fallover };
      }),
    };
  });
  const mtu = node.mtu ?? link.mtu;
  return {
    seed: node.seed,
    sourceMac: node.sourceMac ?? link.sourceMac ?? DEFAULT_SOURCE_MAC,
    gatewayMac: node.gatewayMac ?? link.gatewayMac ?? DEFAULT_GATEWAY_MAC,
    ...(node.outerSource.ipv4 !== undefined && { outerSourceV4: node.outerSource.ipv4 }),
    ...(node.outerSource.ipv6 !== undefined && { outerSourceV6: node.outerSource.ipv6 }),
    ...(mtu !== undefined && { mtu }),
    vips,
  };
}

export function conntrackSettings(config: L4muxConfig): ConntrackSettings {
  return toConntrackSettings(config.node.conntrack);
}

/** A connection-table config (seconds) as the addon takes it. */
export function toConntrackSettings({ maxFlows, timeouts }: ConntrackConfig): ConntrackSettings {
  return {
    maxFlows,
    timeouts: {
      tcpSynSeconds: timeouts.tcpSyn,
      tcpEstablishedSeconds: timeouts.tcpEstablished,
      tcpClosingSeconds: timeouts.tcpClosing,
      udpSeconds: timeouts.udp,
      otherSeconds: timeouts.other,
      tcpUnprovenSeconds: timeouts.tcpUnproven,
    },
  };
}
