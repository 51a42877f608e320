// l4mux run --config FILE [--pidfile FILE] [--control SOCKET] [--log-level LEVEL]
// [--reload-timeout SECONDS]: the daemon.
// Logs are JSON lines on standard output; startup errors are also printed on standard error.
import { Command, InvalidArgumentError } from 'commander';

import { DEFAULT_CONTROL_SOCKET } from '../../api/client.js';
import { createEngine } from '../../dataplane/engine.js';
import { native } from '../../dataplane/index.js';
import {
  DEFAULT_CONFIG_PATH,
  DEFAULT_COUNTERS_INTERVAL_S,
  DEFAULT_RELOAD_TIMEOUT_S,
  chooseLogLevel,
  createLogger,
  onlineCpus,
  runDaemon,
  type DaemonDeps,
  type DaemonOptions,
} from '../../daemon/index.js';
import { readProcessPrivileges } from '../../net/capabilities.js';
import { localHost } from '../../net/host.js';
import { EXIT_FAILURE, processIo, type CommandIo } from '../io.js';

export interface RunCommandOptions {
  config: string;
  pidfile?: string;
  /** false with --no-control. */
  control: string | false;
  logLevel?: string;
  countersInterval: number;
  reloadTimeout: number;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds (0 turns it off)');
  return n;
}

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

/** How long a stopped daemon may take to let go of the event loop before it is ended. */
const EXIT_GRACE_MS = 5000;

export async function runRun(options: RunCommandOptions, io: CommandIo = processIo, version?: string): Promise<number> {
  let level;
  try {
    level = chooseLogLevel(options.logLevel);
  } catch (e) {
    io.err(`l4mux run: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
  const logger = createLogger(level);
  const daemonOptions: DaemonOptions = {
    configPath: options.config,
    ...(options.pidfile !== undefined && { pidfile: options.pidfile }),
    ...(options.control !== false && { controlSocket: options.control }),
    countersIntervalMs: options.countersInterval * 1000,
    reloadTimeoutMs: options.reloadTimeout * 1000,
  };
  const deps: DaemonDeps = {
    logger,
    host: localHost,
    createEngine,
    readPrivileges: readProcessPrivileges,
    dropCapabilities: (keep) => {
      const addon = native();
      if (addon.dropCapabilities === undefined) throw new Error('this build of the addon has no dropCapabilities; rebuild it with `npm run build:native`');
      return addon.dropCapabilities(keep);
    },
    onlineCpus,
    signals: process,
    printError: (line) => io.err(line),
    ...(version !== undefined && { version }),
  };
  const code = await runDaemon(daemonOptions, deps);
  logger.flush();
  return code;
}

export function runCommand(io: CommandIo = processIo, version?: string): Command {
  return new Command('run')
    .description('run the load balancer on node.interfaces until SIGTERM/SIGINT (SIGHUP or `l4mux reload` re-reads the config)')
    .option('--config <file>', 'JSON config file (version 1)', DEFAULT_CONFIG_PATH)
    .option('--pidfile <file>', 'write the process id to this file while running')
    .option('--control <socket>', 'control socket for `l4mux reload` and `l4mux status`', DEFAULT_CONTROL_SOCKET)
    .option('--no-control', 'do not open a control socket')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default: $L4MUX_LOG_LEVEL, else info)')
    .option('--counters-interval <seconds>', 'log the counters every N seconds (0: never)', seconds, DEFAULT_COUNTERS_INTERVAL_S)
    .option('--reload-timeout <seconds>', 'abandon a reload that takes longer to read, check and build (the running config is kept)', positiveSeconds, DEFAULT_RELOAD_TIMEOUT_S)
    .action(async (options: RunCommandOptions) => {
      const code = await runRun(options, io, version);
      process.exitCode = code;
      // Native threads or a stuck handle must not keep a stopped daemon alive.
      setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
    });
}
