// Active health checks of backends: probes (tcp, http, https, udp, icmp, exec), the scheduler
// that runs them and turns results into up/down transitions and dynamic weights, and the
// "healthCheck" configuration of pools and backends (schema fragment, validation, resolution).
//
// The daemon's use:
//   const checker = new HealthChecker({ tunnel });            // once
//   checker.on('transition', (e) => ...);                      // up/down/unknown changes
//   checker.on('weight', (e) => ...);                          // dynamic weight changes
//   const r = validateHealthConfig(document);                  // at start and on every reload
//   if (r.ok) checker.update(r.checks);                        // keeps the state of backends that stay
//   await checker.stop();                                      // on shutdown
export { HealthChecker, type HealthCheckerOptions } from './checker.js';
export { validateHealthConfig, checkHealthSemantics, type HealthConfigResult, type HealthIssues } from './validate.js';
export { checkHealthSchema, healthCheckLocations, healthSchemaDefs } from './schema.js';
export { mergeHealthCheck } from './merge.js';
export { DEFAULT_HEALTH, DEFAULT_HTTP, DEFAULT_ICMP_PAYLOAD, DEFAULT_MAX_CONCURRENT_EXEC, DEFAULT_PORTS, LIMITS } from './defaults.js';
export { countResult, type Streaks } from './state.js';
export { parseWeightText, parseWeightValue } from './weight.js';
export { parseStatusRanges } from './status.js';
export { NO_TUNNEL_HOOK, type TunnelHook, type TunnelRequest, type TunnelRoute } from './tunnel.js';
export {
  createExecProbe,
  createHttpProbe,
  createProbe,
  createUdpProbe,
  IcmpPinger,
  Limiter,
  probeIcmp,
  probeTcp,
  type ExecProbeOptions,
  type HttpProbeOptions,
  type UdpProbeOptions,
  type ProbeDeps,
  type ProbeFactory,
} from './probes/index.js';
export type * from './types.js';
export { CHECK_KINDS } from './types.js';
