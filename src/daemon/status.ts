// The status read model: what `l4mux status` shows, built from the running daemon's parts.
// Reads only; an engine whose counters cannot be read shows null counters.
import type { Logger } from 'pino';

import type { InterfaceStatus, StatusReport, VipSummary } from '../api/protocol.js';
import type { L4muxConfig } from '../config/types.js';
import type { EngineCounters } from '../dataplane/engine.js';
import type { PoolSupervisor } from '../pools/supervisor.js';
import type { ServedInterface } from './served.js';
import { errorMessage } from './service.js';

export interface LastReload {
  at: string;
  trigger: string;
  ok: boolean;
  changes?: string[];
  errors?: string[];
}

export interface StatusSources {
  logger: Logger;
  version: string;
  configFile: string;
  startedAt: Date;
  config: L4muxConfig;
  workers: number;
  pools: PoolSupervisor;
  interfaces: readonly ServedInterface[];
  lastReload: LastReload | null;
  restartRequired: string[];
  /** The services' own status, by service name. */
  services: Record<string, unknown>;
}

function vipSummaries(config: L4muxConfig, pools: StatusReport['pools']): VipSummary[] {
  return config.vips.map((v) => {
    const pool = pools[v.pool];
    const backends = pool?.backends ?? [];
    return {
      name: v.name,
      address: v.address,
      protocol: v.protocol,
      port: v.port ?? null,
      pool: v.pool,
      encapsulation: v.encapsulation,
      scheduler: v.scheduler,
      backends: backends.length,
      activeBackends: backends.filter((b) => b.state === 'active' && b.healthy && b.weight > 0).length,
      allDown: pool?.allDown ?? false,
    };
  });
}

export function buildStatus(from: StatusSources): StatusReport {
  const { config } = from;
  const pools = from.pools.status();
  const totals = { rx: 0, tx: 0, dropped: 0, passed: 0 };
  const interfaces: InterfaceStatus[] = from.interfaces.map((s) => {
    let counters: EngineCounters | null = null;
    try {
      counters = s.engine.counters();
      totals.rx += counters.rx;
      totals.tx += counters.tx;
      totals.dropped += counters.dropped;
      totals.passed += counters.passed;
    } catch (e) {
      from.logger.warn({ interface: s.name, err: errorMessage(e) }, `${s.name}: cannot read counters`);
    }
    const applied = s.applied;
    const resolution = s.hop.resolution;
    return {
      name: s.name,
      ifindex: s.link.ifindex,
      mac: s.link.mac ?? null,
      mtu: s.link.mtu,
      dataplaneMtu: applied.mtu ?? null,
      sourceMac: applied.sourceMac,
      gatewayMac: applied.gatewayMac,
      nextHop: resolution === undefined ? null : { source: resolution.source, hops: resolution.hops.map((h) => ({ address: h.address, mac: h.mac, state: h.state, onLink: h.onLink })) },
      io: s.io,
      workers: s.engine.options.workers,
      counters,
    };
  });
  return {
    pid: process.pid,
    version: from.version,
    configFile: from.configFile,
    startedAt: from.startedAt.toISOString(),
    uptimeSeconds: Math.round((Date.now() - from.startedAt.getTime()) / 1000),
    lastReload: from.lastReload,
    restartRequired: from.restartRequired,
    config: { seed: config.node.seed, interfaces: config.node.interfaces, io: config.node.io, workers: from.workers, vips: vipSummaries(config, pools) },
    pools,
    interfaces,
    totals,
    ...(Object.keys(from.services).length > 0 && { services: from.services }),
  };
}
