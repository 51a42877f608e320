// The l4mux command line: one module per subcommand under ./commands.
import { readFileSync } from 'node:fs';

import { Command } from 'commander';

import { replayCommand } from './commands/replay.js';
import { validateCommand } from './commands/validate.js';
import { processIo, type CommandIo } from './io.js';

function packageVersion(): string {
  try {
    // src/cli and dist/cli are both two levels below the package root.
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const version = typeof pkg === 'object' && pkg !== null && 'version' in pkg ? pkg.version : undefined;
    return typeof version === 'string' ? version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(io: CommandIo = processIo): Command {
  return new Command('l4mux')
    .description('layer-4 load balancer: Maglev hashing, connection tracking, IP-in-IP/GRE/GUE with direct server return')
    .version(packageVersion())
    .addCommand(validateCommand(io))
    .addCommand(replayCommand(io));
}
