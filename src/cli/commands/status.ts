// l4mux status [--control SOCKET]: the running daemon's config summary, interfaces, I/O mode,
// next hops and counters, as JSON.
import { Command } from 'commander';

import { DEFAULT_CONTROL_SOCKET, sendControl } from '../../api/client.js';
import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';

export async function runStatus(control: string, io: CommandIo = processIo): Promise<number> {
  let response;
  try {
    response = await sendControl(control, { cmd: 'status' }, 10_000);
  } catch (e) {
    io.err(`l4mux status: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
  if (!response.ok) {
    for (const line of response.errors) io.err(line);
    return EXIT_FAILURE;
  }
  io.out(JSON.stringify('status' in response ? response.status : response, null, 2));
  return EXIT_OK;
}

export function statusCommand(io: CommandIo = processIo): Command {
  return new Command('status')
    .description('print the running daemon\'s status (config summary, interfaces, I/O mode, next hops, counters) as JSON')
    .option('--control <socket>', 'control socket of the daemon', DEFAULT_CONTROL_SOCKET)
    .action(async (options: { control: string }) => {
      process.exitCode = await runStatus(options.control, io);
    });
}
