// The Prometheus exporter: a prom-client registry holding the process and event-loop metrics
// (collectDefaultMetrics), the health-check histograms and transition counters (fed by events),
// and families collected on each scrape from the daemon: the engines' counters (read from the
// workers' relaxed atomics, workers never stopped), pools, I/O mode and reloads.
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

import type { PoolStatusWithChecks } from '../pools/supervisor.js';
import type { EngineCounters, IoModeReport } from '../dataplane/engine.js';
import type { CheckResultEvent, HealthTransition } from '../health/types.js';
import { ADMIN_STATES } from '../pools/runtime.js';
import type { SyncStats } from '../dataplane/index.js';
import { addEngineCounters, addSyncCounters, FamilySet, PREFIX, type Family } from './counters.js';

export interface InterfaceMetrics {
  name: string;
  /** null when the engine could not be read. */
  counters: EngineCounters | null;
  io: IoModeReport;
  workers: number;
  /** Cluster sync counters of the engine (Engine.syncStats()), when it syncs. */
  sync?: SyncStats | null;
}

export interface ReloadMetrics {
  succeeded: number;
  failed: number;
  /** Whether the last reload (or the start) applied its file. */
  lastOk: boolean;
  /** Date.now() of the last config applied (start or reload). */
  lastSuccessAt: number;
  /** SHA-256 (hex) of the file of the running config. */
  configHash: string;
}

/** What the exporter reads on each scrape (the daemon; tests give fakes). */
export interface MetricsSource {
  interfaces(): InterfaceMetrics[];
  pools(): Record<string, PoolStatusWithChecks>;
  reloads(): ReloadMetrics;
}

export interface ExporterOptions {
  version?: string;
  /** process_* and nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
}

const HEALTH_STATES = ['up', 'down', 'unknown', 'unchecked'] as const;
export const PROBE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One collected family as prom-client wants it from a registered metric. */
class CollectedFamily {
  readonly type: string;
  private values: Array<{ labels: Record<string, string>; value: number }> = [];

  constructor(
    readonly name: string,
    readonly help: string,
    type: string,
  ) {
    this.type = type;
  }

  set(family: Family): void {
    this.values = family.samples;
  }

  get(): { name: string; help: string; type: string; values: Array<{ labels: Record<string, string>; value: number }>; aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.values, aggregator: 'sum' };
  }

  reset(): void {
    this.values = [];
  }
}

export class MetricsExporter {
  readonly registry = new Registry();
  private readonly probeDuration: Histogram<'pool' | 'backend' | 'kind' | 'result'>;
  private readonly transitions: Counter<'pool' | 'backend' | 'from' | 'to'>;
  private readonly collected = new Map<string, CollectedFamily>();
  /** Counter paths the last scrape had to name mechanically (see counters.ts). */
  unnamed: string[] = [];

  constructor(
    private readonly source: MetricsSource,
    private readonly options: ExporterOptions = {},
  ) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.probeDuration = new Histogram({
      name: `${PREFIX}health_probe_duration_seconds`,
      help: 'Duration of health probes, by backend, check kind and result.',
      labelNames: ['pool', 'backend', 'kind', 'result'],
      buckets: PROBE_BUCKETS,
      registers: [this.registry],
    });
    this.transitions = new Counter({
      name: `${PREFIX}health_transitions_total`,
      help: 'Health state changes of backends (from, to).',
      labelNames: ['pool', 'backend', 'from', 'to'],
      registers: [this.registry],
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** A health probe finished (HealthChecker 'result'). */
  observeProbe(e: CheckResultEvent, kind: string): void {
    this.probeDuration.observe({ pool: e.pool, backend: e.address, kind, result: e.result.ok ? 'success' : 'failure' }, e.result.latencyMs / 1000);
  }

  /** A backend changed health state (HealthChecker 'transition'). */
  countTransition(e: HealthTransition): void {
    this.transitions.inc({ pool: e.pool, backend: e.address, from: e.from, to: e.to });
  }

  /** The text of one scrape. */
  async render(): Promise<string> {
    const families = this.collect();
    this.unnamed = [...families.unnamed].sort();
    const seen = new Set<string>();
    for (const family of families.list()) {
      seen.add(family.name);
      let metric = this.collected.get(family.name);
      if (metric === undefined) {
        metric = new CollectedFamily(family.name, family.help, family.type);
        this.collected.set(family.name, metric);
        this.registry.registerMetric(metric as never);
      }
      metric.set(family);
    }
    // Families that have no samples any more (a VIP or interface gone) leave the scrape.
    for (const [name, metric] of this.collected) {
      if (seen.has(name)) continue;
      metric.reset();
      this.registry.removeSingleMetric(name);
      this.collected.delete(name);
    }
    return this.registry.metrics();
  }

  private collect(): FamilySet {
    const out = new FamilySet();
    out.add('build_info', 'l4mux version (always 1).', 'gauge', { version: this.options.version ?? '0.0.0' }, 1);

    for (const i of this.source.interfaces()) {
      const labels = { interface: i.name };
      out.add('io_mode_info', 'Packet I/O of the interface (always 1): af_xdp or af_packet, and the XDP attach mode.', 'gauge', { ...labels, mode: i.io.mode, xdp_mode: i.io.xdpMode ?? '' }, 1);
      out.add('workers', 'Worker threads serving the interface.', 'gauge', labels, i.workers);
      out.add('engine_up', 'Whether the interface\'s engine counters could be read (1) or not (0).', 'gauge', labels, i.counters === null ? 0 : 1);
      if (i.counters !== null) addEngineCounters(out, i.counters, labels);
      if (i.sync !== undefined && i.sync !== null) addSyncCounters(out, i.sync, labels);
    }

    for (const [pool, status] of Object.entries(this.source.pools())) {
      out.add('pool_all_down', 'Every backend of the pool is down by health checks (1) or not (0).', 'gauge', { pool }, status.allDown ? 1 : 0);
      out.add('pool_all_down_episodes_total', 'Times the pool went all down since the daemon started.', 'counter', { pool }, status.allDownEpisodes);
      for (const b of status.backends) {
        const labels = { pool, backend: b.address };
        out.add('backend_healthy', 'Whether the dataplane may give the backend new flows by health (1) or not (0).', 'gauge', labels, b.healthy ? 1 : 0);
        for (const state of HEALTH_STATES) {
          out.add('backend_health_state', 'Health state of the backend (1 for the current one): up, down, unknown, unchecked.', 'gauge', { ...labels, state }, b.health === state ? 1 : 0);
        }
        for (const state of ADMIN_STATES) {
          out.add('backend_admin_state', 'Administrative state of the backend (1 for the current one): active, draining, offline.', 'gauge', { ...labels, state }, b.state === state ? 1 : 0);
        }
        out.add('backend_weight', 'Effective weight of the backend (operator > reported by its check > configured).', 'gauge', labels, b.weight);
        out.add('backend_configured_weight', 'Weight of the backend in the config file.', 'gauge', labels, b.configuredWeight);
      }
      for (const c of status.checks) {
        const labels = { pool, backend: c.address, kind: c.kind };
        out.add('health_probes_total', 'Health probes run, by backend and kind.', 'counter', labels, c.checks);
        if (c.lastLatencyMs !== null) out.add('health_last_probe_duration_seconds', 'Duration of the latest probe of the backend.', 'gauge', labels, c.lastLatencyMs / 1000);
      }
    }

    const r = this.source.reloads();
    out.add('reloads_total', 'Reloads of the config file, by result (success: applied; failure: nothing changed).', 'counter', { result: 'success' }, r.succeeded);
    out.add('reloads_total', 'Reloads of the config file, by result (success: applied; failure: nothing changed).', 'counter', { result: 'failure' }, r.failed);
    out.add('config_last_reload_successful', 'Whether the last reload applied its file (1) or was refused (0).', 'gauge', {}, r.lastOk ? 1 : 0);
    out.add('config_last_success_timestamp_seconds', 'Unix time the running config was applied (start or reload).', 'gauge', {}, r.lastSuccessAt / 1000);
    out.add('config_info', 'SHA-256 of the file of the running (last good) config (always 1).', 'gauge', { sha256: r.configHash }, 1);
    return out;
  }
}
