// l4mux backend POOL ADDRESS [--state active|draining|offline] [--weight N] [--control SOCKET]:
// changes one backend of the running daemon at once (a new snapshot, flows in progress kept
// as the state says). The change lasts until the daemon stops or the file changes that value.
import { MAX_WEIGHT } from '../../config/defaults.js';
import { Command, InvalidArgumentError, Option } from 'commander';

import { DEFAULT_CONTROL_SOCKET, sendControl } from '../../api/client.js';
import type { BackendRequest } from '../../api/protocol.js';
import type { BackendAdminState } from '../../dataplane/types.js';
import { ADMIN_STATES } from '../../pools/runtime.js';
import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';

export async function runBackend(control: string, request: BackendRequest, io: CommandIo = processIo): Promise<number> {
  if (request.state === undefined && request.weight === undefined) {
    io.err('l4mux backend: nothing to change: give --state, --weight or both');
    return EXIT_FAILURE;
  }
  let response;
  try {
    response = await sendControl(control, { cmd: 'backend', ...request }, 10_000);
  } catch (e) {
    io.err(`l4mux backend: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
  if (!response.ok) {
    for (const line of response.errors) io.err(line);
    return EXIT_FAILURE;
  }
  for (const line of 'changes' in response ? response.changes : []) io.out(line);
  return EXIT_OK;
}

function weightArgument(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > MAX_WEIGHT) throw new InvalidArgumentError(`expected an integer in 0..${MAX_WEIGHT}`);
  return n;
}

export function backendCommand(io: CommandIo = processIo): Command {
  return new Command('backend')
    .description('set a backend of the running daemon active, draining (no new flows) or offline (flows cut with RST), or change its weight')
    .argument('<pool>', 'pool name')
    .argument('<address>', 'backend address')
    .addOption(new Option('--state <state>', 'administrative state').choices(ADMIN_STATES))
    .option('--weight <n>', 'weight (0 takes no new flows, keeps existing ones)', weightArgument)
    .option('--control <socket>', 'control socket of the daemon', DEFAULT_CONTROL_SOCKET)
    .action(async (pool: string, address: string, options: { state?: BackendAdminState; weight?: number; control: string }) => {
      process.exitCode = await runBackend(
        options.control,
        { pool, address, ...(options.state !== undefined && { state: options.state }), ...(options.weight !== undefined && { weight: options.weight }) },
        io,
      );
    });
}
