// The daemon's side of backend pools: runs the health checks of the config, keeps the pools'
// runtime state (PoolRuntime) and says when the dataplane should get a new snapshot. Health
// events arrive in bursts (a switch failing takes several backends at once), so changes are
// coalesced: one snapshot per turn of the event loop, however many backends moved.
import type { Logger } from 'pino';

import type { BackendView } from '../config/dataplane.js';
import { DEFAULT_GUE_PORT } from '../config/defaults.js';
import type { L4muxConfig } from '../config/types.js';
import { HealthChecker, type HealthCheckerOptions, type TunnelHook, type TunnelRequest } from '../health/index.js';
import { probeTunnelled, type TunnelPath } from '../health/probes/tunnelled.js';
import type { BackendHealth, CheckResultEvent, HealthCheckSpec, HealthTransition } from '../health/types.js';
import { PoolRuntime, type BackendOverride, type OverrideResult, type PoolStatus } from './runtime.js';

/** What the daemon needs of a health checker (HealthChecker; tests may substitute one). */
export type HealthCheckerLike = Pick<HealthChecker, 'update' | 'snapshot' | 'stop' | 'on'>;
export type HealthCheckerFactory = (options: HealthCheckerOptions) => HealthCheckerLike;

export const defaultHealthChecker: HealthCheckerFactory = (options) => new HealthChecker(options);

export interface PoolStatusWithChecks extends PoolStatus {
  checks: Array<Pick<BackendHealth, 'address' | 'kind' | 'state' | 'reason' | 'since' | 'checks' | 'localFaults'> & { lastLatencyMs: number | null }>;
}

export class PoolSupervisor {
  private readonly runtime: PoolRuntime;
  private readonly checker: HealthCheckerLike;
  private pending: NodeJS.Immediate | undefined;
  private listener: ((why: string) => void) | undefined;
  private reasons: string[] = [];
  private stopped = false;
  private config: L4muxConfig;

  constructor(
    config: L4muxConfig,
    private readonly logger: Logger,
    createChecker: HealthCheckerFactory = defaultHealthChecker,
  ) {
    this.config = config;
    this.runtime = new PoolRuntime(config);
    const tunnel: TunnelHook = {
      open: async (request) => {
        const path = this.tunnelPath(request);
        return { probe: (ctx) => probeTunnelled(path, ctx), close: () => undefined };
      },
    };
    this.checker = createChecker({ tunnel });
    this.checker.on('transition', (e) => {
      const level = e.to === 'down' ? 'warn' : 'info';
      this.logger[level]({ pool: e.pool, backend: e.address, from: e.from, to: e.to, reason: e.reason }, `pool ${e.pool}: backend ${e.address} ${e.from} -> ${e.to}: ${e.reason}`);
      this.runtime.setHealth(e.backend, e.to);
      this.changed(`backend ${e.backend} ${e.to}`);
    });
    this.checker.on('localFault', (e) => {
      if (e.cleared) {
        this.logger.info({ pool: e.pool, backend: e.address, errno: e.errno }, `pool ${e.pool}: backend ${e.address}: checks get through again (local fault ${e.errno} over)`);
      } else {
        this.logger.error(
          { pool: e.pool, backend: e.address, errno: e.errno, detail: e.detail },
          `pool ${e.pool}: backend ${e.address}: check failed for a local reason (${e.detail}); not counted against the backend, its state is kept`,
        );
      }
    });
    this.checker.on('weight', (e) => {
      this.logger.info({ pool: e.pool, backend: e.address, from: e.from, to: e.to }, `pool ${e.pool}: backend ${e.address} reports weight ${e.to} (was ${e.from})`);
      this.runtime.setReportedWeight(e.backend, e.to);
      this.changed(`backend ${e.backend} weight ${e.to}`);
    });
  }

  /** Every probe's outcome and every health transition, as they happen (metrics). */
  onCheckEvents(listeners: { result: (e: CheckResultEvent) => void; transition: (e: HealthTransition) => void }): void {
    this.checker.on('result', listeners.result);
    this.checker.on('transition', listeners.transition);
  }

  /** Called (once per burst of changes) when the dataplane should be given a new snapshot. */
  onChange(listener: (why: string) => void): void {
    this.listener = listener;
  }

  /** Starts (or, after a reload, replaces) the health checks. */
  setChecks(checks: readonly HealthCheckSpec[]): void {
    this.checker.update(checks);
  }

  /** A reloaded config: checks replaced, overrides the file superseded dropped. */
  setConfig(config: L4muxConfig): void {
    this.config = config;
    for (const note of this.runtime.setConfig(config)) this.logger.warn({ note }, note);
    this.checker.update(config.healthChecks);
    this.logAllDown();
  }

  override(pool: string, address: string, change: BackendOverride): OverrideResult {
    const result = this.runtime.override(pool, address, change);
    if (result.ok) {
      this.logger.info({ pool, backend: address, ...change }, result.change);
      this.changed(result.change);
    }
    return result;
  }

  view(): BackendView {
    return this.runtime.view();
  }

  status(): Record<string, PoolStatusWithChecks> {
    const checks = this.checker.snapshot();
    const pools = this.runtime.status();
    return Object.fromEntries(
      Object.entries(pools).map(([name, pool]) => [
        name,
        {
          ...pool,
          checks: checks
            .filter((c) => c.pool === name)
            .map((c) => ({ address: c.address, kind: c.kind, state: c.state, reason: c.reason, since: c.since, checks: c.checks, localFaults: c.localFaults, lastLatencyMs: c.lastResult?.latencyMs ?? null })),
        },
      ]),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pending !== undefined) clearImmediate(this.pending);
    await this.checker.stop();
  }

  /** How the dataplane sends this VIP's traffic to the backend, for its tunnelled checks. */
  private tunnelPath(request: TunnelRequest): TunnelPath {
    const vip = this.config.vips.find((v) => v.name === request.vip);
    if (vip === undefined) throw new Error(`VIP ${request.vip} is not in the running config`);
    const source = vip.address.includes(':') ? this.config.node.outerSource.ipv6 : this.config.node.outerSource.ipv4;
    if (source === undefined) throw new Error(`node.outerSource has no address of VIP ${vip.name}'s family to receive answers on`);
    const port = request.port ?? vip.port;
    if (port === undefined) throw new Error(`VIP ${vip.name} takes every port: the check needs one`);
    return {
      backend: request.backend,
      vipAddress: vip.address,
      port,
      protocol: request.protocol,
      encap: vip.encapsulation,
      ...(vip.gre?.key !== undefined && { greKey: vip.gre.key }),
      guePort: vip.gue?.port ?? DEFAULT_GUE_PORT,
      source,
      ...(request.udp !== undefined && { udp: { payload: Buffer.from(request.udp.payloadHex, 'hex'), expect: request.udp.expect } }),
    };
  }

  private changed(why: string): void {
    if (this.stopped) return;
    this.reasons.push(why);
    this.pending ??= setImmediate(() => {
      this.pending = undefined;
      const reasons = this.reasons;
      this.reasons = [];
      this.logAllDown();
      this.listener?.(reasons.join(', '));
    });
  }

  private logAllDown(): void {
    for (const change of this.runtime.takeAllDownChanges()) {
      if (change.to === 'down') {
        this.logger.error(
          { pool: change.pool, policy: change.policy },
          change.policy === 'drop'
            ? `pool ${change.pool}: every backend is down: its VIPs drop new flows (allDown: drop)`
            : `pool ${change.pool}: every backend is down: its VIPs keep sending to the last healthy backends (allDown: keep-last)`,
        );
      } else {
        this.logger.info({ pool: change.pool }, `pool ${change.pool}: a backend is up again`);
      }
    }
  }
}
