// l4mux validate <file>: checks a config file and reports every problem in it.
import { Command } from 'commander';

import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';
import { describeCounts, loadAndReport } from '../report.js';

/** Errors (exit 1) or warnings go to stderr; "<file>: ok (N VIPs, M backends)" to stdout. */
export async function runValidate(file: string, io: CommandIo = processIo): Promise<number> {
  const result = await loadAndReport(file, io);
  if (result === undefined) return EXIT_FAILURE;
  io.out(`${file}: ok (${describeCounts(result.config)})`);
  return EXIT_OK;
}

export function validateCommand(io: CommandIo = processIo): Command {
  return new Command('validate')
    .description('check a config file: print every error (exit 1), or a summary and any warnings (exit 0)')
    .argument('<file>', 'JSON config file (version 1)')
    .action(async (file: string) => {
      process.exitCode = await runValidate(file, io);
    });
}
