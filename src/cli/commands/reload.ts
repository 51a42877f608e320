// l4mux reload [--control SOCKET]: asks the running daemon to re-read its config file and
// prints what changed, or every error (exit 1; the daemon then changed nothing).
import { Command } from 'commander';

import { DEFAULT_CONTROL_SOCKET, sendControl } from '../../api/client.js';
import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';

export async function runReload(control: string, io: CommandIo = processIo): Promise<number> {
  let response;
  try {
    response = await sendControl(control, { cmd: 'reload' });
  } catch (e) {
    io.err(`l4mux reload: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
  if (!response.ok) {
    for (const line of response.errors) io.err(line);
    const n = response.errors.length;
    io.err(`l4mux reload: failed (${n} ${n === 1 ? 'error' : 'errors'}); the running config is unchanged`);
    return EXIT_FAILURE;
  }
  if (!('warnings' in response)) {
    io.err('l4mux reload: unexpected answer from the daemon');
    return EXIT_FAILURE;
  }
  for (const line of response.warnings) io.err(`warning: ${line}`);
  if (response.changes.length === 0) io.out('reloaded: no changes');
  else for (const line of response.changes) io.out(line);
  return EXIT_OK;
}

export function reloadCommand(io: CommandIo = processIo): Command {
  return new Command('reload')
    .description('make the running daemon re-read its config: prints the changes, or the errors (exit 1, nothing changed)')
    .option('--control <socket>', 'control socket of the daemon', DEFAULT_CONTROL_SOCKET)
    .action(async (options: { control: string }) => {
      process.exitCode = await runReload(options.control, io);
    });
}
