// Turns a document that passed the schema and the semantic checks into the normalized
// L4muxConfig: defaults filled in, addresses, MACs and the seed in canonical form.
import { parseAddress } from './addresses.js';
import {
  DEFAULT_ALL_DOWN,
  DEFAULT_BACKEND_STATE,
  DEFAULT_ENCAPSULATION,
  DEFAULT_GUE_PORT,
  DEFAULT_HASH_FIELDS,
  DEFAULT_ICMP_ECHO,
  DEFAULT_IO,
  DEFAULT_MANAGE_OFFLOADS,
  DEFAULT_SCHEDULER,
  DEFAULT_TABLE_SIZE,
  DEFAULT_WEIGHT,
  DEFAULT_XDP_MODE,
  defaultConntrackConfig,
} from './defaults.js';
import { normalizeCluster } from '../cluster/config.js';
import { parseMac } from './mac.js';
import { parseSeed } from './seed.js';
import { defaultVipName } from './semantic.js';
import type { HealthCheckSpec } from './health/types.js';
import { normalizeMetrics } from '../metrics/config.js';
import { normalizePersistence, normalizeVipPersistence } from '../persistence/config.js';
import type { L4muxConfig, L4muxConfigInput, PoolConfig, VipConfig } from './types.js';

/**
 * Only for validated input: throws if a value turns out to be invalid after all.
 * `healthChecks` are the checks the health validation resolved from the same document.
 */
export function normalize(input: L4muxConfigInput, healthChecks: HealthCheckSpec[] = []): L4muxConfig {
  const { node } = input;
  const defaults = defaultConntrackConfig();
  const outerSource: L4muxConfig['node']['outerSource'] = {};
  if (node.outerSource?.ipv4 !== undefined) outerSource.ipv4 = address(node.outerSource.ipv4);
  if (node.outerSource?.ipv6 !== undefined) outerSource.ipv6 = address(node.outerSource.ipv6);

  const pools: Record<string, PoolConfig> = {};
  for (const [name, pool] of Object.entries(input.pools)) {
    pools[name] = {
      ...(pool.description !== undefined && { description: pool.description }),
      backends: pool.backends.map((b) => ({
        address: address(b.address),
        weight: b.weight ?? DEFAULT_WEIGHT,
        state: b.state ?? DEFAULT_BACKEND_STATE,
        fallover: (b.fallover ?? []).map(address),
      })),
      allDown: pool.allDown ?? DEFAULT_ALL_DOWN,
    };
  }

  const vips = input.vips.map((v): VipConfig => {
    const vipAddress = address(v.address);
    const encapsulation = v.encapsulation ?? DEFAULT_ENCAPSULATION;
    // Keys in the order of the file format, so that a printed config reads like the input.
    return {
      name: v.name ?? defaultVipName(vipAddress, v.protocol, v.port),
      ...(v.description !== undefined && { description: v.description }),
      address: vipAddress,
      protocol: v.protocol,
      ...(v.port !== undefined && { port: v.port }),
      pool: v.pool,
      encapsulation,
      ...(encapsulation === 'gre' && v.gre !== undefined && { gre: v.gre.key !== undefined ? { key: v.gre.key } : {} }),
      ...(encapsulation === 'gue' && { gue: { port: v.gue?.port ?? DEFAULT_GUE_PORT } }),
      hashFields: v.hashFields ?? DEFAULT_HASH_FIELDS,
      tableSize: v.tableSize ?? DEFAULT_TABLE_SIZE,
      icmpEcho: v.icmpEcho ?? DEFAULT_ICMP_ECHO,
      scheduler: v.scheduler ?? DEFAULT_SCHEDULER,
      ...(v.newFlowRate !== undefined && { newFlowRate: v.newFlowRate }),
      ...(v.persistence !== undefined && { persistence: normalizeVipPersistence(v.persistence, must(parseAddress(v.address), v.address).address.family) }),
    };
  });

  return {
    version: 1,
    node: {
      seed: must(parseSeed(node.seed), 'seed').canonical,
      interfaces: [...(node.interfaces ?? [])],
      io: node.io ?? DEFAULT_IO,
      xdpMode: node.xdpMode ?? DEFAULT_XDP_MODE,
      ...(node.workers !== undefined && { workers: node.workers }),
      ...(node.cpus !== undefined && { cpus: [...node.cpus] }),
      ...(node.gateway !== undefined && { gateway: address(node.gateway) }),
      ...(node.sourceMac !== undefined && { sourceMac: must(parseMac(node.sourceMac), 'sourceMac').canonical }),
      ...(node.gatewayMac !== undefined && { gatewayMac: must(parseMac(node.gatewayMac), 'gatewayMac').canonical }),
      ...(node.mtu !== undefined && { mtu: node.mtu }),
      manageOffloads: node.manageOffloads ?? DEFAULT_MANAGE_OFFLOADS,
      ...(node.memoryBudgetMiB !== undefined && { memoryBudgetMiB: node.memoryBudgetMiB }),
      outerSource,
      conntrack: {
        maxFlows: node.conntrack?.maxFlows ?? defaults.maxFlows,
        timeouts: { ...defaults.timeouts, ...node.conntrack?.timeouts },
      },
    },
    pools,
    vips,
    healthChecks,
    ...(input.cluster !== undefined && { cluster: normalizeCluster(input.cluster, address) }),
    ...(input.metrics !== undefined && { metrics: normalizeMetrics(input.metrics) }),
    ...((input.persistence !== undefined || vips.some((v) => v.persistence !== undefined)) && { persistence: normalizePersistence(input.persistence) }),
  };
}

function address(text: string): string {
  return must(parseAddress(text), text).address.canonical;
}

function must<T extends { ok: boolean }>(result: T, what: string): Extract<T, { ok: true }> {
  if (!result.ok) throw new Error(`internal error: ${what} passed validation but does not parse`);
  return result as Extract<T, { ok: true }>;
}
