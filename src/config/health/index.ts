// Health checks as configuration: the "healthCheck" objects of pools and backends (schema
// fragment, validation, merging of pool and backend layers, defaults and limits), resolved to
// one HealthCheckSpec per checked backend. The checker that runs them is in src/health.
//
//   const r = validateHealthConfig(document);   // at start and on every reload
//   if (r.ok) checker.update(r.checks);         // src/health's HealthChecker
export { validateHealthConfig, checkHealthSemantics, type HealthConfigResult, type HealthIssues } from './validate.js';
export { checkHealthSchema, healthCheckLocations, healthSchemaDefs } from './schema.js';
export { mergeHealthCheck } from './merge.js';
export { DEFAULT_HEALTH, DEFAULT_HTTP, DEFAULT_ICMP_PAYLOAD, DEFAULT_PORTS, LIMITS } from './defaults.js';
export { normalizeHex, parseStatusRanges, regexProblem, type StatusParse } from './syntax.js';
export type * from './types.js';
export { CHECK_KINDS } from './types.js';
