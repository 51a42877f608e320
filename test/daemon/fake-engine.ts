// A fake forwarding engine implementing the same interface as the addon's, recording what the
// daemon does with it.
import type { EngineCounters, EngineFactory, EngineLike, EngineOptions, IoModeReport, PreparedConfig } from '../../src/dataplane/engine.js';
import type { DataplaneConfig } from '../../src/dataplane/types.js';
import { FakeTable } from '../persistence/fake-table.js';

/** The fast path's persistence table in miniature; a backend takes new flows as the engine's config says. */
class EngineTable extends FakeTable {
  constructor(private readonly engine: FakeEngine) {
    super([]);
  }

  override accepts(vip: string, backend: string): boolean {
    const b = this.engine.current?.vips.find((v) => v.name === vip)?.backends.find((x) => x.address === backend);
    return b !== undefined && b.state === 'active' && b.healthy && b.weight > 0;
  }
}

export class FakeEngine implements EngineLike {
  readonly configs: DataplaneConfig[] = [];
  readonly events: string[] = [];
  running = false;
  /** Makes the next setConfig calls throw (one per entry). */
  failNext: string[] = [];
  failStart: string | undefined;
  /** Makes the next publishConfig calls throw (one per entry). */
  failPublish: string[] = [];
  packets = 0;
  /**
   * When set, each prepareConfig waits for the promise this returns before it builds (a slow
   * or stuck build); `config` is what it was asked to build.
   */
  holdPrepare: ((config: DataplaneConfig) => Promise<void>) | undefined;
  /** Present when the daemon asked for persistenceEntries. */
  readonly persistence?: FakeTable;

  constructor(readonly options: Readonly<EngineOptions>) {
    if ((options.persistenceEntries ?? 0) > 0) this.persistence = new EngineTable(this);
  }

  get current(): DataplaneConfig | undefined {
    return this.configs.at(-1);
  }

  setConfig(config: DataplaneConfig): void {
    const failure = this.failNext.shift();
    this.events.push(failure === undefined ? 'setConfig' : 'setConfig!');
    if (failure !== undefined) throw new Error(failure);
    this.configs.push(structuredClone(config));
  }

  async prepareConfig(config: DataplaneConfig): Promise<PreparedConfig> {
    const copy = structuredClone(config);
    this.events.push('prepare');
    if (this.holdPrepare !== undefined) await this.holdPrepare(copy);
    const failure = this.failNext.shift();
    if (failure !== undefined) {
      this.events.push('prepare!');
      throw new Error(failure);
    }
    return { config: copy, published: false } as unknown as PreparedConfig;
  }

  publishConfig(prepared: PreparedConfig): void {
    const p = prepared as unknown as { config: DataplaneConfig; published: boolean };
    if (p.published) throw new Error('already published');
    const failure = this.failPublish.shift();
    if (failure !== undefined) {
      this.events.push('publish!');
      throw new Error(failure);
    }
    p.published = true;
    this.events.push('publish');
    this.configs.push(p.config);
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
