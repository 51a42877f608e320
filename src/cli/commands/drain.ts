// l4mux drain [--wait SECONDS] [--control SOCKET]: maintenance stop. The daemon withdraws every
// VIP from BGP, keeps forwarding what still arrives while the routers move the traffic to the
// other muxes, then stops. Returns when the wait is over.
import { Command, InvalidArgumentError } from 'commander';

import { DEFAULT_CONTROL_SOCKET, sendControl } from '../../api/client.js';
import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';

export async function runDrain(control: string, waitSeconds: number | undefined, io: CommandIo = processIo): Promise<number> {
  let response;
  try {
    // The answer comes after the wait.
    response = await sendControl(control, { cmd: 'drain', ...(waitSeconds !== undefined && { waitSeconds }) }, ((waitSeconds ?? 3600) + 30) * 1000);
  } catch (e) {
    io.err(`l4mux drain: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
  if (!response.ok) {
    for (const line of response.errors) io.err(line);
    return EXIT_FAILURE;
  }
  if (!('withdrawn' in response)) {
    io.err('l4mux drain: unexpected answer from the daemon');
    return EXIT_FAILURE;
  }
  io.out(response.withdrawn.length > 0 ? `withdrawn: ${response.withdrawn.join(', ')}` : 'withdrawn: nothing was announced');
  io.out(`forwarded what still arrived for ${response.waitedSeconds} s; l4mux is stopping`);
  return EXIT_OK;
}

function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 3600) throw new InvalidArgumentError('expected seconds from 0 to 3600');
  return n;
}

export function drainCommand(io: CommandIo = processIo): Command {
  return new Command('drain')
    .description('withdraw every VIP from BGP, keep forwarding while the routers move the traffic away, then stop the daemon')
    .option('--wait <seconds>', 'how long to keep forwarding after the withdrawal (default: bgp.drainSeconds)', seconds)
    .option('--control <socket>', 'control socket of the daemon', DEFAULT_CONTROL_SOCKET)
    .action(async (options: { control: string; wait?: number }) => {
      process.exitCode = await runDrain(options.control, options.wait, io);
    });
}
