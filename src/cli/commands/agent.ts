// l4mux agent --interface eth0 --vip 192.0.2.10 --address 10.1.0.1 [...]: the backend side.
// Decapsulates the mux's IPIP / GRE / GUE packets into a TUN device carrying the VIPs, so
// that the backend's services answer clients directly. Runs until SIGTERM / SIGINT; logs
// JSON lines (stdout, errors on stderr).
import { Command } from 'commander';

import { parseAgentOptions, runAgent, type AgentDeps, type AgentOptionInput, realAgentDeps, DEFAULT_TUN } from '../../agent/index.js';
import { EXIT_FAILURE, processIo, type CommandIo } from '../io.js';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export async function runAgentCommand(options: AgentOptionInput, io: CommandIo = processIo, deps: AgentDeps = realAgentDeps): Promise<number> {
  const parsed = parseAgentOptions(options);
  if (!parsed.ok) {
    for (const e of parsed.errors) io.err(`l4mux agent: ${e}`);
    return EXIT_FAILURE;
  }
  return runAgent(parsed.settings, io, deps);
}

export function agentCommand(io: CommandIo = processIo): Command {
  return new Command('agent')
    .description('backend side: decapsulate the mux\'s tunnels into a TUN device carrying the VIPs (direct server return); runs until SIGTERM')
    .requiredOption('--interface <name>', 'interface the tunnel packets arrive on')
    .option('--tun <name>', 'TUN device to create (the VIPs are configured on it)', DEFAULT_TUN)
    .option('--vip <address>', 'a VIP served by this backend (repeatable)', collect)
    .option('--address <address>', "this backend's tunnel address, as the mux knows it (one IPv4 and/or one IPv6)", collect)
    .option('--mux-source <prefix>', 'accept tunnel packets only from this mux address or prefix (repeatable; "any": every source; default: the on-link prefixes of --address on --interface)', collect)
    .option('--gue-port <port>', 'accepted GUE port (repeatable; default 6080)', collect)
    .option('--gre-key <n>', 'accept only GRE packets with this key (default: only keyless GRE)')
    .option('--stats-interval <seconds>', 'seconds between counter log lines (0: none)', '60')
    .action(async (options: AgentOptionInput) => {
      process.exitCode = await runAgentCommand(options, io);
    });
}
