// Where commands write: the process's streams in production, buffers in tests.
export interface CommandIo {
  /** Writes one line to standard output. */
  out(line: string): void;
  /** Writes one line to standard error. */
  err(line: string): void;
}

export const processIo: CommandIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** Exit statuses of l4mux commands. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
