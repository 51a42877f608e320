// Whether this mux can serve a VIP now, and why (or why not): the forwarding engine runs, and
// the VIP's pool has a backend that takes new flows (or `allDown: keep-last` keeps sending to
// the last healthy ones). An address is announced while at least one of its VIPs can be served.
import type { L4muxConfig } from '../config/types.js';
import type { PoolStatus } from '../pools/runtime.js';

export interface Forwarding {
  running: boolean;
  /** "forwarding on eth0", or why not. */
  reason: string;
}

export interface VipEligibility {
  name: string;
  address: string;
  servable: boolean;
  reason: string;
}

/** Backends of a pool that take new flows now. */
export function backendsTakingFlows(pool: PoolStatus): string[] {
  const serving = (b: PoolStatus['backends'][number]): boolean => b.state === 'active' && b.healthy;
  // A weight-0 backend takes new flows as the fall-over of a backend that cannot.
  const spares = new Set<string>();
  for (const b of pool.backends) {
    if (b.weight > 0 && !serving(b)) for (const f of b.fallover) spares.add(f);
  }
  return pool.backends.filter((b) => serving(b) && (b.weight > 0 || spares.has(b.address))).map((b) => b.address);
}

function describePool(name: string, pool: PoolStatus | undefined): { servable: boolean; reason: string } {
  if (pool === undefined) return { servable: false, reason: `pool ${name} is not in the running config` };
  const taking = backendsTakingFlows(pool);
  const total = pool.backends.length;
  if (pool.allDown && pool.allDownPolicy === 'keep-last' && taking.length > 0) {
    return { servable: true, reason: `pool ${name}: every backend is down; allDown keep-last sends to ${taking.join(', ')}` };
  }
  if (taking.length > 0) return { servable: true, reason: `pool ${name}: ${taking.length} of ${total} ${total === 1 ? 'backend takes' : 'backends take'} new flows` };
  const counts = new Map<string, number>();
  for (const b of pool.backends) {
    const why = !b.healthy ? 'down' : b.state !== 'active' ? b.state : 'weight 0';
    counts.set(why, (counts.get(why) ?? 0) + 1);
  }
  const detail = [...counts].map(([why, n]) => `${n} ${why}`).join(', ');
  return { servable: false, reason: `pool ${name}: no backend takes new flows${total === 0 ? ' (no backends)' : ` (${detail})`}` };
}

export function vipEligibility(config: L4muxConfig, pools: Record<string, PoolStatus>, forwarding: Forwarding): VipEligibility[] {
  return config.vips.map((v) => {
    if (!forwarding.running) return { name: v.name, address: v.address, servable: false, reason: forwarding.reason };
    const pool = describePool(v.pool, Object.hasOwn(pools, v.pool) ? pools[v.pool] : undefined);
    return { name: v.name, address: v.address, ...pool };
  });
}
