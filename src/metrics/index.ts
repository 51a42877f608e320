// Prometheus metrics: the `metrics` config section, the exporter and its HTTP endpoint.
export { DEFAULT_METRICS_LISTEN, METRICS_PATH, parseListen, type MetricsConfig } from './config.js';
export { addEngineCounters, FamilySet, LEAVES, PREFIX, type Family } from './counters.js';
export { MetricsExporter, PROBE_BUCKETS, type ExporterOptions, type InterfaceMetrics, type MetricsSource, type ReloadMetrics } from './exporter.js';
export { MetricsServer } from './server.js';
export { MetricsService } from './service.js';
