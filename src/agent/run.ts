// `l4mux agent` as a process: starts the native decapsulator, configures the backend around
// it, logs JSON lines, and on SIGTERM / SIGINT stops it and removes what it added.
import { createNativeAgent, type NativeAgent } from './native.js';
import { defaultMuxSources } from './mux-sources.js';
import { configureBackend, unconfigure, type UndoStep } from './netconfig.js';
import { realSystem, type SystemOps } from './system.js';
import type { AgentCounters, AgentSettings, NativeAgentOptions } from './types.js';

export interface AgentIo {
  /** One JSON log line (info). */
  out(line: string): void;
  /** One JSON log line (errors). */
  err(line: string): void;
}

export interface StopSignal {
  /** Resolves with the name of the signal that asked the agent to stop. */
  promise: Promise<string>;
  dispose(): void;
}

export interface AgentDeps {
  createAgent(options: NativeAgentOptions): NativeAgent;
  system: SystemOps;
  stopSignal(): StopSignal;
  now(): Date;
  /** How often the native loop's health is checked (ms). */
  healthIntervalMs: number;
}

export function processStopSignal(): StopSignal {
  let resolve: (signal: string) => void = () => undefined;
  const promise = new Promise<string>((r) => {
    resolve = r;
  });
  const handlers = (['SIGTERM', 'SIGINT'] as const).map((signal) => {
    const handler = (): void => resolve(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return {
    promise,
    dispose: () => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    },
  };
}

export const realAgentDeps: AgentDeps = {
  createAgent: createNativeAgent,
  system: realSystem,
  stopSignal: processStopSignal,
  now: () => new Date(),
  healthIntervalMs: 1000,
};

export function nativeOptions(settings: AgentSettings, muxSources: string[]): NativeAgentOptions {
  const options: NativeAgentOptions = {
    interface: settings.interface,
    tun: settings.tun,
    addresses: { ...settings.addresses },
    muxSources: [...muxSources],
    vips: [...settings.vips],
    guePorts: [...settings.guePorts],
    suppressIcmp: true,
  };
  if (settings.greKey !== undefined) options.greKey = settings.greKey;
  return options;
}

/** The counters worth a log line: totals, plus the outcomes that happened at all. */
export function summarizeCounters(c: AgentCounters): Record<string, unknown> {
  const nonzero = (r: Record<string, number>): Record<string, number> =>
    Object.fromEntries(Object.entries(r).filter(([, v]) => v !== 0));
  return {
    rxFrames: c.rxFrames,
    decapsulated: c.decapsulated,
    tunPackets: c.tunPackets,
    tunErrors: c.tunErrors,
    tunDiscarded: c.tunDiscarded,
    rxTruncated: c.rxTruncated,
    rxErrors: c.rxErrors,
    kernelDrops: c.kernelDrops,
    checksumsFinalized: c.checksumsFinalized,
    status: nonzero(c.status),
    encap: nonzero(c.encap),
    tunnels: nonzero(c.tunnels),
  };
}

async function resolveMuxSources(settings: AgentSettings, system: SystemOps): Promise<string[]> {
  const found = defaultMuxSources(settings.interface, settings.addresses, await system.interfaceAddresses(settings.interface));
  if (!found.ok) throw new Error(found.reason);
  return found.sources;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function runAgent(settings: AgentSettings, io: AgentIo, deps: AgentDeps = realAgentDeps): Promise<number> {
  const log = (level: 'info' | 'error', event: string, fields: Record<string, unknown> = {}): void => {
    const line = JSON.stringify({ time: deps.now().toISOString(), level, event, ...fields });
    if (level === 'error') io.err(line);
    else io.out(line);
  };

  let agent: NativeAgent;
  let muxSources: string[];
  try {
    muxSources = settings.muxSources ?? (await resolveMuxSources(settings, deps.system));
    agent = deps.createAgent(nativeOptions(settings, muxSources));
    agent.start();
  } catch (e) {
    log('error', 'agent.start_failed', { error: message(e) });
    return 1;
  }
  const tun = agent.tunName();

  const undo: UndoStep[] = [];
  const shutdown = async (): Promise<string[]> => {
    agent.stop();
    return unconfigure(undo);
  };

  let changes: string[];
  try {
    changes = await configureBackend(settings, tun, deps.system, undo);
  } catch (e) {
    const failures = await shutdown();
    log('error', 'agent.configure_failed', { error: message(e), ...(failures.length > 0 ? { undoFailures: failures } : {}) });
    return 1;
  }
  log('info', 'agent.started', {
    interface: settings.interface,
    tun,
    vips: settings.vips,
    addresses: settings.addresses,
    guePorts: settings.guePorts,
    muxSources,
    muxSourcesFrom: settings.muxSources !== undefined ? '--mux-source' : `on-link prefixes of ${settings.interface}`,
    ...(settings.greKey !== undefined ? { greKey: settings.greKey } : {}),
    icmpSuppression: 'sink sockets',
    changes,
  });

  const signal = deps.stopSignal();
  let health: ReturnType<typeof setInterval> | undefined;
  let stats: ReturnType<typeof setInterval> | undefined;
  const died = new Promise<string>((resolve) => {
    health = setInterval(() => {
      if (!agent.running()) resolve(agent.error() ?? 'the packet loop stopped');
    }, deps.healthIntervalMs);
  });
  if (settings.statsIntervalSeconds > 0) {
    stats = setInterval(() => log('info', 'agent.stats', summarizeCounters(agent.counters())), settings.statsIntervalSeconds * 1000);
  }

  const outcome = await Promise.race([
    signal.promise.then((name) => ({ kind: 'signal' as const, detail: name })),
    died.then((why) => ({ kind: 'died' as const, detail: why })),
  ]);
  clearInterval(health);
  clearInterval(stats);
  signal.dispose();

  const failures = await shutdown();
  const counters = summarizeCounters(agent.counters());
  if (outcome.kind === 'died') {
    log('error', 'agent.failed', { error: outcome.detail, counters, ...(failures.length > 0 ? { undoFailures: failures } : {}) });
    return 1;
  }
  if (failures.length > 0) {
    log('error', 'agent.stopped', { signal: outcome.detail, counters, undoFailures: failures });
    return 1;
  }
  log('info', 'agent.stopped', { signal: outcome.detail, counters });
  return 0;
}
