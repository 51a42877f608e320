// l4mux replay --config <file> --in <in.pcap> --out <out.pcap>: runs a capture through one
// dataplane pipeline configured from the file and writes what it transmits.
import { access, constants } from 'node:fs/promises';
import { resolve } from 'node:path';

import { Command } from 'commander';

import { DEFAULT_GATEWAY_MAC, conntrackSettings, toDataplaneConfig } from '../../config/index.js';
import { Dataplane, type ConntrackSettings, type DataplaneConfig, type ReplaySummary } from '../../dataplane/index.js';
import { EXIT_FAILURE, EXIT_OK, processIo, type CommandIo } from '../io.js';
import { loadAndReport } from '../report.js';

export interface ReplayOptions {
  config: string;
  in: string;
  out: string;
}

/** What replay needs of the dataplane (tests substitute a fake). */
export interface ReplayEngine {
  setConfig(config: DataplaneConfig): void;
  replay(inPath: string, outPath: string): ReplaySummary;
}

export type EngineFactory = (settings: ConntrackSettings) => ReplayEngine;

const realEngine: EngineFactory = (settings) => new Dataplane(settings);

export async function runReplay(
  options: ReplayOptions,
  io: CommandIo = processIo,
  createEngine: EngineFactory = realEngine,
): Promise<number> {
  const loaded = await loadAndReport(options.config, io);
  if (loaded === undefined) return EXIT_FAILURE;
  if (loaded.config.node.gatewayMac === undefined) {
    io.err(`warning: node.gatewayMac: not set; replay sends every frame to ${DEFAULT_GATEWAY_MAC} (l4mux run resolves the next hop's MAC)`);
  }
  if (resolve(options.in) === resolve(options.out)) {
    io.err(`l4mux replay: --in and --out are the same file (${options.in})`);
    return EXIT_FAILURE;
  }
  try {
    await access(options.in, constants.R_OK);
  } catch {
    io.err(`l4mux replay: cannot read --in ${options.in}`);
    return EXIT_FAILURE;
  }
  try {
    const engine = createEngine(conntrackSettings(loaded.config));
    engine.setConfig(toDataplaneConfig(loaded.config));
    const summary = engine.replay(options.in, options.out);
    io.out(JSON.stringify(summary, null, 2));
    return EXIT_OK;
  } catch (e) {
    io.err(`l4mux replay: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
}

export function replayCommand(io: CommandIo = processIo): Command {
  return new Command('replay')
    .description('run a pcap capture through the dataplane; print the summary as JSON')
    .requiredOption('--config <file>', 'JSON config file (version 1)')
    .requiredOption('--in <pcap>', 'capture to read')
    .requiredOption('--out <pcap>', 'capture to write the transmitted frames to')
    .action(async (options: ReplayOptions) => {
      process.exitCode = await runReplay(options, io);
    });
}
