// A fake forwarding engine implementing the same interface as the addon's, recording what the
// daemon does with it.
import type { EngineCounters, EngineFactory, EngineLike, EngineOptions, IoModeReport } from '../../src/dataplane/engine.js';
import type { DataplaneConfig } from '../../src/dataplane/types.js';

export class FakeEngine implements EngineLike {
  readonly configs: DataplaneConfig[] = [];
  readonly events: string[] = [];
  running = false;
  /** Makes the next setConfig calls throw (one per entry). */
  failNext: string[] = [];
  failStart: string | undefined;
  packets = 0;

  constructor(readonly options: Readonly<EngineOptions>) {}

  get current(): DataplaneConfig | undefined {
    return this.configs.at(-1);
  }

  setConfig(config: DataplaneConfig): void {
    const failure = this.failNext.shift();
    this.events.push(failure === undefined ? 'setConfig' : 'setConfig!');
    if (failure !== undefined) throw new Error(failure);
    this.configs.push(structuredClone(config));
  }

  async start(): Promise<void> {
    this.events.push('start');
    if (this.failStart !== undefined) throw new Error(this.failStart);
    this.running = true;
  }

  async stop(): Promise<void> {
    this.events.push('stop');
    this.running = false;
  }

  counters(): EngineCounters {
    const n = this.packets;
    return {
      rx: n,
      tx: n,
      passed: 0,
      dropped: 0,
      echoReplies: 0,
      icmpErrorsForwarded: 0,
      checksumsFinalized: 0,
      icmpTooBigSent: 0,
      drops: { no_vip: 0 },
      vips: [],
      backends: [],
      conntrack: { inserts: 0, evictions: 0, expiredReused: 0, capacity: this.options.conntrack.maxFlows },
      io: { rxPackets: n, rxKernelDrops: 0, rxOversized: 0, txPackets: n, txErrors: 0, txRingFull: 0 },
    };
  }

  ioMode(): IoModeReport {
    return this.options.io === 'af_xdp' || this.options.io === 'auto'
      ? { mode: 'af_xdp', xdpMode: 'generic', reason: 'native XDP refused by the driver (fake)', reported: true }
      : { mode: 'af_packet', reason: 'requested', reported: true };
  }
}

/** A factory that keeps the engines it made, by interface. */
export function fakeEngines(): { factory: EngineFactory; engines: Map<string, FakeEngine>; setup?: (e: FakeEngine) => void } {
  const engines = new Map<string, FakeEngine>();
  const holder: { factory: EngineFactory; engines: Map<string, FakeEngine>; setup?: (e: FakeEngine) => void } = {
    engines,
    factory: (options) => {
      const engine = new FakeEngine(options);
      holder.setup?.(engine);
      engines.set(options.interface, engine);
      return engine;
    },
  };
  return holder;
}
