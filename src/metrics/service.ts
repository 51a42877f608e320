// The metrics endpoint as a daemon service (src/daemon/service.ts): placed after the health
// checks, so that the engines and the pools exist when it starts. Each scrape reads the
// served interfaces' engines and the pools through the service context; the health checker's
// events feed the probe histograms and transition counters as they happen.
import type { Logger } from 'pino';

import type { Service, ServiceContext } from '../daemon/service.js';
import type { EngineCounters, EngineLike } from '../dataplane/engine.js';
import type { SyncStats } from '../dataplane/index.js';
import type { CheckResultEvent, HealthTransition } from '../health/types.js';
import type { MetricsConfig } from './config.js';
import { MetricsExporter, type ReloadMetrics } from './exporter.js';
import { MetricsServer } from './server.js';

function hasSyncStats(engine: EngineLike): engine is EngineLike & { syncStats(): SyncStats } {
  return typeof (engine as Partial<{ syncStats: unknown }>).syncStats === 'function';
}

export class MetricsService implements Service {
  readonly name = 'metrics';
  private exporter: MetricsExporter | undefined;
  private server: MetricsServer | undefined;
  private kinds = new Map<string, string>();

  constructor(
    private readonly config: MetricsConfig,
    /** Reload outcomes and the running file's hash (the daemon keeps them). */
    private readonly reloads: () => ReloadMetrics,
    private readonly version?: string,
  ) {}

  /** Throws `metrics.listen ADDRESS: reason` when the address cannot be bound. */
  async start(ctx: ServiceContext): Promise<void> {
    const logger: Logger = ctx.logger;
    const exporter = new MetricsExporter(
      {
        interfaces: () =>
          ctx.interfaces.all().map((s) => {
            let counters: EngineCounters | null = null;
            let sync: SyncStats | null = null;
            try {
              counters = s.engine.counters();
              // Only engines made with cluster memory sync (the others' syncStats throws).
              if (s.engine.options.cluster !== undefined && hasSyncStats(s.engine)) sync = s.engine.syncStats();
            } catch (e) {
              logger.warn({ interface: s.name, err: e instanceof Error ? e.message : String(e) }, `${s.name}: cannot read counters`);
            }
            return { name: s.name, counters, io: s.io, workers: s.engine.options.workers, sync };
          }),
        pools: () => ctx.pools.status(),
        reloads: this.reloads,
      },
      { ...(this.version !== undefined && { version: this.version }) },
    );
    this.exporter = exporter;
    this.setCheckKinds(ctx.config().healthChecks);
    ctx.pools.onCheckEvents({ result: (e) => this.probe(e), transition: (e) => this.transition(e) });
    this.server = await MetricsServer.listen(this.config, exporter, logger);
    logger.info({ listen: this.config.listen }, `metrics: http://${this.config.listen}/metrics`);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.close();
  }

  status(): unknown {
    return { listen: this.config.listen };
  }

  /** The check kind of each checked backend ("pool/address" -> kind), for the probe histograms. */
  setCheckKinds(checks: ReadonlyArray<{ key: string; kind: string }>): void {
    this.kinds = new Map(checks.map((c) => [c.key, c.kind]));
  }

  private probe(e: CheckResultEvent): void {
    this.exporter?.observeProbe(e, this.kinds.get(e.backend) ?? 'unknown');
  }

  private transition(e: HealthTransition): void {
    this.exporter?.countTransition(e);
  }
}
