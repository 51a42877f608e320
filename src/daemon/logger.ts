// The daemon's log: pino JSON lines on standard output (journald or any collector reads them).
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_LEVEL_ENV = 'L4MUX_LOG_LEVEL';

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * The level to log at: the --log-level option, else $L4MUX_LOG_LEVEL, else info. Throws with a
 * readable message for an unknown level.
 */
export function chooseLogLevel(option: string | undefined, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const [value, origin] = option !== undefined ? [option, '--log-level'] : [env[LOG_LEVEL_ENV], LOG_LEVEL_ENV];
  if (value === undefined || value === '') return 'info';
  const lower = value.toLowerCase();
  if (!isLogLevel(lower)) throw new Error(`${origin}: unknown log level ${JSON.stringify(value)} (levels: ${LOG_LEVELS.join(', ')})`);
  return lower;
}

/** A logger writing JSON lines to `destination` (default: standard output, synchronously). */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      name: 'l4mux',
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
