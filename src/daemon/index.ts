// The l4mux daemon (`l4mux run`).
export {
  DEFAULT_CONFIG_PATH,
  DEFAULT_COUNTERS_INTERVAL_S,
  DEFAULT_NEXT_HOP_INTERVAL_S,
  DEFAULT_RELOAD_TIMEOUT_S,
  Daemon,
  INTERFACES_REQUIRED,
  StartupError,
  backendAddresses,
  runDaemon,
  type DaemonDeps,
  type DaemonOptions,
  type SignalSource,
} from './daemon.js';
export { ServiceList, type Service, type ServiceContext } from './service.js';
export { ServedInterface, ServedInterfaces, type NextHop, type PushResult } from './served.js';
export { RESTART_SETTINGS, diffConfigs, effectiveConfig, type ConfigDiff } from './diff.js';
export { LOG_LEVELS, LOG_LEVEL_ENV, chooseLogLevel, createLogger, type LogLevel, type Logger } from './logger.js';
export { onlineCpus, parseCpuList, formatCpuList } from './cpus.js';
export { removePidfile, writePidfile } from './pidfile.js';
