// The periodic counters line: every interface's counters and rates since the previous line; a
// last one at stop.
import type { Logger } from 'pino';

import type { EngineCounters } from '../../dataplane/engine.js';
import type { ServedInterfaces } from '../served.js';
import { errorMessage, type Service, type ServiceContext } from '../service.js';

export class CountersService implements Service {
  readonly name = 'counters';
  private timer: NodeJS.Timeout | undefined;
  private readonly last = new Map<string, { at: number; rx: number; tx: number }>();
  private logger: Logger | undefined;
  private interfaces: ServedInterfaces | undefined;

  /** `intervalMs` 0: no line at all. */
  constructor(private readonly intervalMs: number) {}

  async start(ctx: ServiceContext): Promise<void> {
    this.logger = ctx.logger;
    this.interfaces = ctx.interfaces;
    if (this.intervalMs <= 0) return;
    this.timer = setInterval(() => this.log(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.log(true);
  }

  /** One log line with every interface's counters and rates since the previous line. */
  log(final = false): void {
    const now = Date.now();
    const interfaces: Record<string, unknown> = {};
    for (const s of this.interfaces?.all() ?? []) {
      let c: EngineCounters;
      try {
        c = s.engine.counters();
      } catch (e) {
        interfaces[s.name] = { error: errorMessage(e) };
        continue;
      }
      const previous = this.last.get(s.name);
      const seconds = previous === undefined ? 0 : (now - previous.at) / 1000;
      const rate = (value: number, before: number | undefined): number | undefined =>
        seconds > 0 && before !== undefined ? Math.round((value - before) / seconds) : undefined;
      this.last.set(s.name, { at: now, rx: c.rx, tx: c.tx });
      interfaces[s.name] = {
        rx: c.rx,
        tx: c.tx,
        dropped: c.dropped,
        passed: c.passed,
        rxPps: rate(c.rx, previous?.rx),
        txPps: rate(c.tx, previous?.tx),
        drops: Object.fromEntries(Object.entries(c.drops).filter(([, n]) => n > 0)),
        io: c.io,
        conntrack: c.conntrack,
      };
    }
    this.logger?.info({ counters: interfaces, final }, final ? 'counters (final)' : 'counters');
  }
}
