// The l4mux command line: one module per subcommand under ./commands.
import { readFileSync } from 'node:fs';

import { Command } from 'commander';

import { agentCommand } from './commands/agent.js';
import { backendCommand } from './commands/backend.js';
import { captureCommand } from './commands/capture.js';
import { flowCommand } from './commands/flow.js';
import { persistenceCommand } from './commands/persistence.js';
import { drainCommand } from './commands/drain.js';
import { reloadCommand } from './commands/reload.js';
import { replayCommand } from './commands/replay.js';
import { runCommand } from './commands/run.js';
import { statusCommand } from './commands/status.js';
import { validateCommand } from './commands/validate.js';
import { processIo, type CommandIo } from './io.js';

export function packageVersion(): string {
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
  const version = packageVersion();
  return new Command('l4mux')
    .description('layer-4 load balancer: Maglev hashing, connection tracking, IP-in-IP/GRE/GUE with direct server return')
    .version(version)
    .addCommand(validateCommand(io))
    .addCommand(replayCommand(io))
    .addCommand(runCommand(io, version))
    .addCommand(reloadCommand(io))
    .addCommand(statusCommand(io))
    .addCommand(backendCommand(io))
    .addCommand(drainCommand(io))
    .addCommand(flowCommand(io))
    .addCommand(persistenceCommand(io))
    .addCommand(captureCommand(io))
    .addCommand(agentCommand(io));
}
