// What a reload changes: VIPs, pools and backends added, removed or changed, node settings, and
// the node settings that only a restart can change.
import type { BackendConfig, L4muxConfig, NodeConfig, VipConfig } from '../config/types.js';

/** Node settings fixed for the daemon's lifetime (engines, their threads and tables). */
export const RESTART_SETTINGS = ['interfaces', 'io', 'xdpMode', 'workers', 'cpus', 'manageOffloads', 'conntrack'] as const;
export type RestartSetting = (typeof RESTART_SETTINGS)[number];

/** Node settings applied live with the next snapshot. */
const LIVE_SETTINGS = ['seed', 'gateway', 'sourceMac', 'gatewayMac', 'mtu', 'outerSource'] as const;

export interface ConfigDiff {
  /** One line per change that is applied. */
  changes: string[];
  /** One line per change of a setting that needs a restart ("node.workers: 2 -> 4 (requires restart)"). */
  restartRequired: string[];
}

function show(value: unknown): string {
  if (value === undefined) return '(unset)';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function describeVip(v: VipConfig): string {
  return `${v.address} ${v.protocol}/${v.port ?? '*'}, pool ${v.pool}, ${v.encapsulation}`;
}

/** Differences between the VIP fields of two versions of one VIP, as "field a -> b". */
function vipFieldChanges(a: VipConfig, b: VipConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  keys.delete('name');
  keys.delete('description');
  const out: string[] = [];
  for (const key of keys) {
    const x = (a as unknown as Record<string, unknown>)[key];
    const y = (b as unknown as Record<string, unknown>)[key];
    if (!same(x, y)) out.push(`${key} ${show(x)} -> ${show(y)}`);
  }
  return out;
}

function backendFieldChanges(a: BackendConfig, b: BackendConfig): string[] {
  const out: string[] = [];
  if (a.weight !== b.weight) out.push(`weight ${a.weight} -> ${b.weight}`);
  if (a.state !== b.state) out.push(`state ${a.state} -> ${b.state}`);
  if (!same(a.fallover, b.fallover)) out.push(`fallover ${show(a.fallover)} -> ${show(b.fallover)}`);
  return out;
}

/** `before` is the running config, `after` the new file. */
export function diffConfigs(before: L4muxConfig, after: L4muxConfig): ConfigDiff {
  const changes: string[] = [];
  const restartRequired: string[] = [];

  for (const key of RESTART_SETTINGS) {
    if (!same(before.node[key], after.node[key])) {
      restartRequired.push(`node.${key}: ${show(before.node[key])} -> ${show(after.node[key])} (requires restart)`);
    }
  }
  for (const key of LIVE_SETTINGS) {
    if (!same(before.node[key], after.node[key])) changes.push(`node.${key}: ${show(before.node[key])} -> ${show(after.node[key])}`);
  }
  if (before.metrics?.listen !== after.metrics?.listen) {
    restartRequired.push(`metrics.listen: ${show(before.metrics?.listen)} -> ${show(after.metrics?.listen)} (requires restart)`);
  }

  // Pools and their backends.
  for (const [name, pool] of Object.entries(after.pools)) {
    const old = Object.hasOwn(before.pools, name) ? before.pools[name] : undefined;
    if (old === undefined) {
      changes.push(`pool ${name} added (${pool.backends.length} ${pool.backends.length === 1 ? 'backend' : 'backends'})`);
      continue;
    }
    if (old.allDown !== pool.allDown) changes.push(`pool ${name}: allDown ${old.allDown} -> ${pool.allDown}`);
    const oldBackends = new Map(old.backends.map((b) => [b.address, b]));
    const newBackends = new Map(pool.backends.map((b) => [b.address, b]));
    for (const [address, backend] of newBackends) {
      const was = oldBackends.get(address);
      if (was === undefined) changes.push(`pool ${name}: backend ${address} added (weight ${backend.weight}${backend.state !== 'active' ? `, ${backend.state}` : ''})`);
      else {
        const fields = backendFieldChanges(was, backend);
        if (fields.length > 0) changes.push(`pool ${name}: backend ${address} ${fields.join(', ')}`);
      }
    }
    for (const address of oldBackends.keys()) {
      if (!newBackends.has(address)) changes.push(`pool ${name}: backend ${address} removed`);
    }
  }
  for (const name of Object.keys(before.pools)) {
    if (!Object.hasOwn(after.pools, name)) changes.push(`pool ${name} removed`);
  }

  // VIPs, by name (names are unique).
  const oldVips = new Map(before.vips.map((v) => [v.name, v]));
  const newVips = new Map(after.vips.map((v) => [v.name, v]));
  for (const [name, vip] of newVips) {
    const old = oldVips.get(name);
    if (old === undefined) changes.push(`vip ${name} added (${describeVip(vip)})`);
    else {
      const fields = vipFieldChanges(old, vip);
      if (fields.length > 0) changes.push(`vip ${name} changed: ${fields.join(', ')}`);
    }
  }
  for (const name of oldVips.keys()) {
    if (!newVips.has(name)) changes.push(`vip ${name} removed`);
  }

  // Health checks, by backend.
  const oldChecks = new Map(before.healthChecks.map((c) => [c.key, c]));
  const newChecks = new Map(after.healthChecks.map((c) => [c.key, c]));
  for (const [key, check] of newChecks) {
    const old = oldChecks.get(key);
    if (old === undefined) changes.push(`health check ${key} added (${check.kind})`);
    else if (!same(old, check)) changes.push(`health check ${key} changed`);
  }
  for (const key of oldChecks.keys()) {
    if (!newChecks.has(key)) changes.push(`health check ${key} removed`);
  }
  if (!same(before.cluster, after.cluster)) restartRequired.push('cluster: changed (requires restart)');
  // The store and the engines' tables are made at start.
  if (before.persistence === undefined && after.persistence !== undefined) {
    restartRequired.push('persistence: the running daemon has no persistence tables; the VIPs\' persistence applies after a restart (requires restart)');
  } else if (before.persistence !== undefined && !same(before.persistence, after.persistence)) {
    restartRequired.push(`persistence: ${show(before.persistence)} -> ${show(after.persistence)} (requires restart)`);
  }
  return { changes, restartRequired };
}

/**
 * The config to run after a reload: the new file, with the settings that need a restart kept as
 * they are running.
 */
export function effectiveConfig(running: L4muxConfig, next: L4muxConfig): L4muxConfig {
  const node: NodeConfig = { ...next.node };
  const record = node as unknown as Record<string, unknown>;
  for (const key of RESTART_SETTINGS) {
    const value = running.node[key];
    if (value === undefined) delete record[key];
    else record[key] = value;
  }
  // The cluster section (membership, keys, ports), the metrics endpoint and the persistence
  // store and tables change with a restart only; without tables, no VIP is persistent.
  const { cluster: _next, metrics: _metrics, persistence: _persistence, ...rest } = next;
  const vips = running.persistence !== undefined ? rest.vips : rest.vips.map(({ persistence: _p, ...v }) => v);
  return {
    ...rest,
    vips,
    node,
    ...(running.cluster !== undefined && { cluster: running.cluster }),
    ...(running.metrics !== undefined && { metrics: running.metrics }),
    ...(running.persistence !== undefined && { persistence: running.persistence }),
  };
}
