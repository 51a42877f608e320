// How long this process's event loop did not run, over a window of time: a timer that should
// fire every `period` ms records each late tick (the delay beyond the period is time the loop
// was blocked or the process was not scheduled). A probe that timed out while the loop was
// stalled for a good part of its timeout never had a fair chance to see the answer: that says
// something about this host, not the backend.
import { performance } from 'node:perf_hooks';

/** Tick of the sampler, ms. */
export const LOOP_LAG_PERIOD_MS = 10;
/** Late ticks remembered (each at most a few ms of bookkeeping; older ones fall out). */
const MAX_STALLS = 512;
/** Delays below this are scheduling noise and not recorded. */
const MIN_STALL_MS = 5;

export class LoopLag {
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  // Ring of stalls: each ended at `ends[i]` and lasted `lengths[i]` ms.
  private readonly ends = new Float64Array(MAX_STALLS);
  private readonly lengths = new Float64Array(MAX_STALLS);
  private next = 0;
  private count = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.lastTick = this.now();
    this.timer = setInterval(() => this.tick(), LOOP_LAG_PERIOD_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Milliseconds of [from, to] during which the loop was stalled, including a stall still in
   * progress (the sampler's tick is late right now: the caller runs just after the loop came back).
   */
  stalledWithin(from: number, to: number = this.now()): number {
    let total = 0;
    for (let i = 0; i < this.count; i++) total += overlap(this.ends[i]! - this.lengths[i]!, this.ends[i]!, from, to);
    if (this.timer !== undefined) {
      const pending = to - this.lastTick - LOOP_LAG_PERIOD_MS;
      if (pending >= MIN_STALL_MS) total += overlap(this.lastTick + LOOP_LAG_PERIOD_MS, to, from, to);
    }
    return total;
  }

  private tick(): void {
    const now = this.now();
    const late = now - this.lastTick - LOOP_LAG_PERIOD_MS;
    this.lastTick = now;
    if (late < MIN_STALL_MS) return;
    this.ends[this.next] = now;
    this.lengths[this.next] = late;
    this.next = (this.next + 1) % MAX_STALLS;
    if (this.count < MAX_STALLS) this.count++;
  }
}

function overlap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
}
