// l4mux flow VIP PROTO SRC:PORT [DST:PORT] [--control SOCKET] [--json]: which backend the running
// daemon gives this flow now (scheduler, hash fields, Maglev table entry), and whether a worker's
// connection table holds it (state, idle time, expiry).
import { Command, InvalidArgumentError } from 'commander';

import { DEFAULT_CONTROL_SOCKET, sendControl } from '../../api/client.js';
import type { FlowOk, FlowRequest } from '../../api/protocol.js';
import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';

/** "ADDR:PORT" or "[V6]:PORT" (or a bare PORT when `portOnly` is allowed). */
export function parseEndpoint(text: string, portOnly = false): { address?: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text) ?? (portOnly ? /^()()(\d{1,5})$/.exec(text) : null);
  const port = Number(m?.[3]);
  if (m === null || port > 65535) throw new InvalidArgumentError(`${JSON.stringify(text)}: expected ADDRESS:PORT (IPv6 in brackets: [2001:db8::1]:443)${portOnly ? ' or PORT' : ''}`);
  const address = m[1] ?? (m[2] !== '' ? m[2] : undefined);
  return { ...(address !== undefined && address !== '' && { address }), port };
}

export function formatFlow(answer: FlowOk): string[] {
  const f = answer.flow;
  const lines = [`flow ${f.protocol} ${f.src}:${f.srcPort} -> ${f.dst}:${f.dstPort} (VIP ${f.vip})`];
  for (const i of answer.interfaces) {
    lines.push(`${i.name}: backend ${i.backend ?? 'none'} (${i.decidedBy})`);
    lines.push(`  scheduler ${i.scheduler ?? '-'}, hash fields ${i.hashFields ?? '-'}, flow hash ${i.flowHash}`);
    if (i.table) lines.push(`  table entry ${i.table.index} of ${i.table.size} (hash ${i.table.hash}) -> ${i.table.backend ?? 'no backend'}`);
    for (const w of i.workers) {
      if (!w.answered) lines.push(`  worker ${w.worker}: no answer`);
      else if (!w.found) lines.push(`  worker ${w.worker}: not in its connection table`);
      else {
        lines.push(`  worker ${w.worker}: ${w.state} to ${w.backend ?? '?'}, idle ${w.idleSeconds?.toFixed(1)} s, expires in ${w.expiresInSeconds?.toFixed(1)} s (${w.fate})`);
      }
    }
  }
  lines.push(`owner mux: ${answer.owner ?? '- (single mux)'}, backup: ${answer.backup ?? '-'}`);
  return lines;
}

export async function runFlow(control: string, request: FlowRequest, json: boolean, io: CommandIo = processIo): Promise<number> {
  let response;
  try {
    response = await sendControl(control, { cmd: 'flow', ...request }, 10_000);
  } catch (e) {
    io.err(`l4mux flow: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
  if (!response.ok) {
    for (const line of response.errors) io.err(line);
    return EXIT_FAILURE;
  }
  const answer = response as FlowOk;
  if (json) io.out(JSON.stringify(answer, null, 2));
  else for (const line of formatFlow(answer)) io.out(line);
  return EXIT_OK;
}

export function flowCommand(io: CommandIo = processIo): Command {
  return new Command('flow')
    .description('show which backend the running daemon gives a flow now, and which worker\'s connection table holds it')
    .argument('<vip>', 'VIP name or address')
    .argument('<proto>', 'tcp or udp', (p: string) => {
      if (p !== 'tcp' && p !== 'udp') throw new InvalidArgumentError('expected tcp or udp');
      return p;
    })
    .argument('<src>', 'client ADDRESS:PORT', (t: string) => parseEndpoint(t))
    .argument('[dst]', 'VIP ADDRESS:PORT or PORT (default: the VIP\'s address and port)', (t: string) => parseEndpoint(t, true))
    .option('--json', 'print the answer as JSON')
    .option('--control <socket>', 'control socket of the daemon', DEFAULT_CONTROL_SOCKET)
    .action(async (vip: string, proto: 'tcp' | 'udp', src: { address?: string; port: number }, dst: { address?: string; port: number } | undefined, options: { json?: boolean; control: string }) => {
      const request: FlowRequest = {
        vip,
        protocol: proto,
        src: src.address ?? '',
        srcPort: src.port,
        ...(dst?.address !== undefined && { dst: dst.address }),
        ...(dst !== undefined && { dstPort: dst.port }),
      };
      process.exitCode = await runFlow(options.control, request, options.json === true, io);
    });
}
