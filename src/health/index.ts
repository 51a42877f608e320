// Active health checks of backends: probes (tcp, http, https, udp, icmp, exec) and the
// scheduler that runs them and turns results into up/down transitions and dynamic weights. The
// checks it runs (HealthCheckSpec) come from the config: src/config/health.
//
// The pool supervisor's use (src/pools/supervisor.ts):
//   const checker = new HealthChecker({ tunnel });            // once
//   checker.on('transition', (e) => ...);                      // up/down/unknown changes
//   checker.on('weight', (e) => ...);                          // dynamic weight changes
//   checker.update(config.healthChecks);                       // at start and on every reload;
//                                                              // keeps the state of backends that stay
//   await checker.stop();                                      // on shutdown
export { HealthChecker, type HealthCheckerOptions } from './checker.js';
export { DEFAULT_MAX_CONCURRENT_EXEC } from './defaults.js';
export { countResult, type Streaks } from './state.js';
export { parseWeightText, parseWeightValue } from './weight.js';
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
