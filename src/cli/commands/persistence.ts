// l4mux persistence VIP CLIENT [--control SOCKET] [--json]: a client's persistence entry in the
// running daemon: its backend and time left in every interface's table and in the slow path,
// and which store records it.
import { isIP } from 'node:net';

import { Command, InvalidArgumentError } from 'commander';

import { DEFAULT_CONTROL_SOCKET, sendControl } from '../../api/client.js';
import type { PersistenceEntryOk } from '../../api/protocol.js';
import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function formatPersistence(answer: PersistenceEntryOk): string[] {
  const lines = [`client ${answer.client} of VIP ${answer.vip} (timeout ${answer.timeoutSeconds} s, ${answer.store} store)`];
  const s = answer.slowPath;
  lines.push(s === null ? 'slow path: no entry' : `slow path: backend ${s.backend}, expires in ${seconds(s.expiresInMs)}${s.local ? ' (decided locally: the store did not answer; to be reconciled)' : ''}`);
  for (const i of answer.interfaces) {
    if (i.error !== undefined) lines.push(`${i.name}: ${i.error}`);
    else lines.push(i.backend === null ? `${i.name}: no entry` : `${i.name}: backend ${i.backend}, expires in ${seconds(i.expiresInMs ?? 0)}`);
  }
  return lines;
}

export async function runPersistence(control: string, vip: string, client: string, json: boolean, io: CommandIo = processIo): Promise<number> {
  let response;
  try {
    response = await sendControl(control, { cmd: 'persistence', vip, client }, 10_000);
  } catch (e) {
    io.err(`l4mux persistence: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
  if (!response.ok) {
    for (const line of response.errors) io.err(line);
    return EXIT_FAILURE;
  }
  const answer = response as PersistenceEntryOk;
  if (json) io.out(JSON.stringify(answer, null, 2));
  else for (const line of formatPersistence(answer)) io.out(line);
  return EXIT_OK;
}

export function persistenceCommand(io: CommandIo = processIo): Command {
  return new Command('persistence')
    .description('show a client\'s persistence entry in the running daemon (backend, time left, in every table)')
    .argument('<vip>', 'VIP name or address')
    .argument('<client>', 'the client\'s address', (t: string) => {
      if (isIP(t) === 0) throw new InvalidArgumentError('expected an IPv4 or IPv6 address');
      return t;
    })
    .option('--json', 'print the answer as JSON')
    .option('--control <socket>', 'control socket of the daemon', DEFAULT_CONTROL_SOCKET)
    .action(async (vip: string, client: string, options: { json?: boolean; control: string }) => {
      process.exitCode = await runPersistence(options.control, vip, client, options.json === true, io);
    });
}
