// The scheduler: runs every backend's check on its own period and turns results into health
// states, weights and events.
//
// - One timer for all checks (a heap of due times), so 1000 backends cost one timer, not 1000.
// - Checks are spread over time: a new check first runs at a uniformly random point of its
//   interval, and every later interval is drawn from interval × (1 ± jitter), so checks never
//   start in a burst. At most MAX_STARTS_PER_TURN start in one turn of the event loop.
// - At most one probe per backend is in flight: the next run is scheduled when a probe ends,
//   at start + jittered interval (or at once if the probe took longer than that).
// - update() replaces the set of checks: a backend that stays (same key) keeps its state and
//   streaks; one whose probe changed (kind, target, options) keeps its state but restarts its
//   streaks; removed ones are stopped and their in-flight probes cancelled.
// - stop() cancels everything: no timer, socket, process or tunnel route is left behind.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';

import { DEFAULT_MAX_CONCURRENT_EXEC, LOOP_STALL_FRACTION, LOOP_STALL_MIN_MS, MAX_STARTS_PER_TURN } from './defaults.js';
import { LoopLag } from './loop-lag.js';
import { createProbe as defaultCreateProbe, IcmpPinger, Limiter, type ProbeDeps, type ProbeFactory } from './probes/index.js';
import { describeError } from './probes/common.js';
import { DueQueue, type Scheduled } from './queue.js';
import { countResult, transitionReason, type Streaks } from './state.js';
import { NO_TUNNEL_HOOK, type TunnelHook, type TunnelRoute } from './tunnel.js';
import type { BackendHealth, HealthCheckSpec, HealthEvents, Probe, ProbeResult, ProbeTarget } from './types.js';

export interface HealthCheckerOptions {
  /** Source routes for tunnelled checks (from the dataplane). Without it they stay "unknown". */
  tunnel?: TunnelHook;
  /** Exec checks running at once. Default 16. */
  maxConcurrentExec?: number;
  /** Uniform random numbers in [0, 1) for offsets and jitter (tests make them predictable). */
  random?: () => number;
  /** Builds the probe of a check (tests substitute their own). */
  createProbe?: ProbeFactory;
  /** Monotonic milliseconds for scheduling. Default performance.now. */
  now?: () => number;
  /** Measures the event loop's stalls (tests substitute one). Default: a LoopLag of its own. */
  loopLag?: LoopLag;
}

interface Entry extends Scheduled {
  spec: HealthCheckSpec;
  fingerprint: string;
  probe: Probe;
  streaks: Streaks;
  since: number;
  reason: string;
  reportedWeight: number | undefined;
  checks: number;
  lastResult: (ProbeResult & { at: number }) | undefined;
  inFlight: AbortController | undefined;
  localFault: { errno: string; detail: string; since: number } | undefined;
  localFaults: number;
  /** performance.now() at the probe's start (the loop-lag monitor's clock). */
  startedReal: number;
  /** Results of probes started under an older generation are dropped. */
  generation: number;
  startedAt: number;
  removed: boolean;
  route: Promise<TunnelRoute> | undefined;
  /** Why the check does not run (it then stays unknown). */
  blocked: string | undefined;
}

export class HealthChecker extends EventEmitter<HealthEvents> {
  private readonly entries = new Map<string, Entry>();
  private readonly queue = new DueQueue<Entry>();
  private readonly running = new Set<Promise<void>>();
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly makeProbe: ProbeFactory;
  private readonly deps: ProbeDeps;
  private pinger: IcmpPinger | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;
  private immediate: NodeJS.Immediate | undefined;
  private stopped = false;
  private readonly loopLag: LoopLag;
  private stalls = 0;

  constructor(private readonly options: HealthCheckerOptions = {}) {
    super();
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.makeProbe = options.createProbe ?? defaultCreateProbe;
    this.loopLag = options.loopLag ?? new LoopLag();
    const limiter = new Limiter(options.maxConcurrentExec ?? DEFAULT_MAX_CONCURRENT_EXEC);
    this.deps = {
      pinger: () => (this.pinger ??= new IcmpPinger()),
      execLimiter: limiter,
    };
  }

  /** Replaces the set of checks (see the top of this file). Throws on a repeated key. */
  update(specs: readonly HealthCheckSpec[]): void {
    if (this.stopped) throw new Error('the health checker is stopped');
    const next = new Map<string, HealthCheckSpec>();
    for (const spec of specs) {
      if (next.has(spec.key)) throw new Error(`health check ${spec.key} is given twice`);
      next.set(spec.key, spec);
    }
    for (const [key, entry] of this.entries) {
      if (!next.has(key)) this.remove(entry);
    }
    for (const spec of next.values()) {
      const entry = this.entries.get(spec.key);
      if (entry === undefined) this.add(spec);
      else this.reconfigure(entry, spec);
    }
    if (this.pinger !== undefined && ![...next.values()].some((s) => s.kind === 'icmp')) {
      this.pinger.close();
      this.pinger = undefined;
    }
    this.arm();
  }

  /** The health of every checked backend, in the order checks were added. */
  snapshot(): BackendHealth[] {
    return [...this.entries.values()].map((e) => this.describe(e));
  }

  get(key: string): BackendHealth | undefined {
    const entry = this.entries.get(key);
    return entry === undefined ? undefined : this.describe(entry);
  }

  /** Timed-out probes not counted against their backends because the event loop was stalled. */
  get loopStalls(): number {
    return this.stalls;
  }

  /** Number of probes in flight. */
  get inFlight(): number {
    return this.running.size;
  }

  /** Stops every check and waits until their probes have let go of their sockets and processes. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.loopLag.stop();
    this.queue.clear();
    const entries = [...this.entries.values()];
    this.entries.clear();
    for (const entry of entries) {
      entry.removed = true;
      entry.inFlight?.abort();
    }
    await Promise.allSettled([...this.running]);
    this.pinger?.close();
    this.pinger = undefined;
    await Promise.allSettled(entries.map((e) => closeRoute(e)));
  }

  // ---- set of checks ----

  private add(spec: HealthCheckSpec): void {
    const entry: Entry = {
      spec,
      fingerprint: probeFingerprint(spec),
      probe: this.makeProbe(spec, this.deps),
      streaks: { state: 'unknown', successes: 0, failures: 0 },
      since: Date.now(),
      reason: 'not checked yet',
      reportedWeight: undefined,
      checks: 0,
      lastResult: undefined,
      inFlight: undefined,
      localFault: undefined,
      localFaults: 0,
      startedReal: 0,
      generation: 0,
      startedAt: 0,
      removed: false,
      route: undefined,
      blocked: undefined,
      dueAt: 0,
      heapIndex: -1,
    };
    this.entries.set(spec.key, entry);
    this.block(entry);
    if (entry.blocked === undefined) this.queue.schedule(entry, this.now() + this.random() * spec.interval);
  }

  private reconfigure(entry: Entry, spec: HealthCheckSpec): void {
    const old = entry.spec;
    const oldWeight = effectiveWeight(entry);
    entry.spec = spec;
    const fingerprint = probeFingerprint(spec);
    let restart = old.interval !== spec.interval;
    if (fingerprint !== entry.fingerprint) {
      // Another probe: what the old one finds no longer counts, streaks start over.
      entry.fingerprint = fingerprint;
      entry.probe = this.makeProbe(spec, this.deps);
      entry.generation++;
      entry.inFlight?.abort();
      entry.inFlight = undefined;
      entry.streaks.successes = 0;
      entry.streaks.failures = 0;
      void closeRoute(entry);
      restart = true;
    }
    if (spec.weightFrom === 'none') entry.reportedWeight = undefined;
    const weight = effectiveWeight(entry);
    if (weight !== oldWeight) {
      this.emitWeight(entry, oldWeight, weight, entry.reportedWeight === undefined ? 'configured weight' : 'configured weight changed');
    }
    const wasBlocked = entry.blocked !== undefined;
    this.block(entry);
    if (entry.blocked !== undefined) {
      this.queue.remove(entry);
      return;
    }
    if (entry.inFlight !== undefined) return; // rescheduled when the probe ends
    if (restart || wasBlocked || entry.heapIndex < 0) this.queue.schedule(entry, this.now() + this.random() * spec.interval);
  }

  private remove(entry: Entry): void {
    entry.removed = true;
    this.queue.remove(entry);
    entry.inFlight?.abort();
    this.entries.delete(entry.spec.key);
    void closeRoute(entry);
  }

  private block(entry: Entry): void {
    entry.blocked = entry.spec.tunnel !== undefined && this.options.tunnel === undefined ? NO_TUNNEL_HOOK : undefined;
    if (entry.blocked !== undefined && entry.streaks.state === 'unknown') entry.reason = entry.blocked;
  }

  // ---- timing ----

  private arm(): void {
    if (this.stopped || this.immediate !== undefined) return;
    const next = this.queue.peek();
    if (next === undefined) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerDue = Infinity;
      return;
    }
    if (this.timer !== undefined && this.timerDue <= next.dueAt) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDue = next.dueAt;
    this.timer = setTimeout(() => this.fire(), Math.max(0, Math.ceil(next.dueAt - this.now())));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerDue = Infinity;
    this.immediate = undefined;
    if (this.stopped) return;
    // Timers have millisecond resolution: what is due within the next millisecond runs now.
    const now = this.now() + 1;
    let started = 0;
    for (let entry = this.queue.popDue(now); entry !== undefined; entry = this.queue.popDue(now)) {
      this.start(entry);
      if (++started >= MAX_STARTS_PER_TURN && this.queue.peek() !== undefined && (this.queue.peek() as Entry).dueAt <= now) {
        // Let I/O in before starting more.
        this.immediate = setImmediate(() => this.fire());
        return;
      }
    }
    this.arm();
  }

  private start(entry: Entry): void {
    const controller = new AbortController();
    const generation = entry.generation;
    entry.inFlight = controller;
    entry.startedAt = this.now();
    this.loopLag.start();
    entry.startedReal = performance.now();
    const run = this.probeOnce(entry, controller.signal)
      .catch((e: unknown): ProbeResult => ({ ok: false, latencyMs: 0, detail: `probe failed: ${describeError(e)}` }))
      .then((result) => {
        if (entry.inFlight === controller) entry.inFlight = undefined;
        if (this.stopped || entry.removed || generation !== entry.generation) return;
        this.complete(entry, result);
      })
      .finally(() => this.running.delete(run));
    this.running.add(run);
  }

  private async probeOnce(entry: Entry, signal: AbortSignal): Promise<ProbeResult> {
    const { spec } = entry;
    const ctx = { timeoutMs: spec.timeout, signal, baseWeight: spec.weight, loopLag: this.loopLag };
    if (spec.tunnel !== undefined && this.options.tunnel !== undefined) {
      const hook = this.options.tunnel;
      entry.route ??= hook.open({
        key: spec.key,
        pool: spec.pool,
        backend: spec.backend,
        vip: spec.tunnel.vip,
        vipAddress: spec.tunnel.vipAddress,
        ...(spec.target.port !== undefined && { port: spec.target.port }),
        protocol: spec.kind === 'udp' ? 'udp' : 'tcp',
        ...(spec.udp !== undefined && { udp: spec.udp }),
      });
      let route: TunnelRoute;
      try {
        route = await entry.route;
      } catch (e) {
        entry.route = undefined; // try again next time
        return { ok: false, latencyMs: 0, detail: `tunnel route: ${describeError(e)}` };
      }
      return route.probe(ctx);
    }
    const target: ProbeTarget = { address: spec.target.address };
    if (spec.target.port !== undefined) target.port = spec.target.port;
    return entry.probe(target, ctx);
  }

  private complete(entry: Entry, probed: ProbeResult): void {
    const { spec } = entry;
    const at = Date.now();
    const result = this.judgeStall(entry, probed);
    if (result.localFault !== undefined) entry.localFaults++;
    entry.checks++;
    entry.lastResult = { ...result, at };
    const from = entry.streaks.state;
    // A failure for a local reason says nothing about the backend: the state and the streaks
    // stay as they were (a flap of our own link must not take every backend down), and the
    // fault is reported until a probe gets through again.
    if (result.localFault !== undefined) {
      if (entry.localFault?.errno !== result.localFault) {
        entry.localFault = { errno: result.localFault, detail: result.detail, since: at };
        this.safeEmit('localFault', { ...ref(entry), errno: result.localFault, detail: result.detail, at, cleared: false });
      }
    } else if (entry.localFault !== undefined) {
      this.safeEmit('localFault', { ...ref(entry), errno: entry.localFault.errno, detail: result.detail, at, cleared: true });
      entry.localFault = undefined;
    }
    const to = result.localFault !== undefined ? undefined : countResult(entry.streaks, result.ok, spec.rise, spec.fall);
    if (to !== undefined) {
      entry.streaks.state = to;
      entry.since = at;
      entry.reason = transitionReason(to, entry.streaks, from, result.detail);
      this.safeEmit('transition', { ...ref(entry), from, to, reason: entry.reason, at });
    }
    if (result.ok && result.weight !== undefined && spec.weightFrom !== 'none') {
      const before = effectiveWeight(entry);
      entry.reportedWeight = result.weight;
      if (result.weight !== before) this.emitWeight(entry, before, result.weight, `reported by the backend: ${result.detail}`);
    }
    this.safeEmit('result', { ...ref(entry), result, state: entry.streaks.state, at });
    // The next start: one jittered interval after this one started, and not before now.
    const interval = spec.interval * (1 + spec.jitter * (2 * this.random() - 1));
    this.queue.schedule(entry, Math.max(entry.startedAt + interval, this.now()));
    this.arm();
  }

  /**
   * A probe's deadline already gives back time the event loop lost (up to one more timeout,
   * runProbe). One that still timed out with the loop running for less than
   * (1 - LOOP_STALL_FRACTION) of its timeout (a starved host: a flood's softirq load, a long
   * synchronous task) had no fair chance to read the answer: a local fault (LOOPSTALL), the
   * backend's state is kept.
   */
  private judgeStall(entry: Entry, result: ProbeResult): ProbeResult {
    if (result.ok || result.timedOut !== true || result.localFault !== undefined) return result;
    const now = performance.now();
    const stalled = this.loopLag.stalledWithin(entry.startedReal, now);
    const ran = now - entry.startedReal - stalled;
    if (stalled < LOOP_STALL_MIN_MS || ran >= entry.spec.timeout * (1 - LOOP_STALL_FRACTION)) return result;
    this.stalls++;
    return { ...result, localFault: 'LOOPSTALL', detail: `${result.detail}; this process's event loop was stalled ${Math.round(stalled)} ms of it and ran ${Math.round(ran)} ms` };
  }

  // ---- events and status ----

  private emitWeight(entry: Entry, from: number, to: number, reason: string): void {
    this.safeEmit('weight', { ...ref(entry), from, to, reason, at: Date.now() });
  }

  /** A throwing listener must not break the scheduler: its error surfaces on its own. */
  private safeEmit<K extends keyof HealthEvents>(event: K, ...args: HealthEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: HealthEvents[K]) => boolean)(event, ...args);
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  private describe(entry: Entry): BackendHealth {
    const health: BackendHealth = {
      ...ref(entry),
      kind: entry.spec.kind,
      state: entry.streaks.state,
      since: entry.since,
      reason: entry.blocked ?? entry.reason,
      weight: effectiveWeight(entry),
      successesInARow: entry.streaks.successes,
      failuresInARow: entry.streaks.failures,
      checks: entry.checks,
      inFlight: entry.inFlight !== undefined,
      localFaults: entry.localFaults,
    };
    if (entry.reportedWeight !== undefined) health.reportedWeight = entry.reportedWeight;
    if (entry.lastResult !== undefined) health.lastResult = entry.lastResult;
    if (entry.localFault !== undefined) health.localFault = { ...entry.localFault };
    return health;
  }
}

function ref(entry: Entry): { backend: string; pool: string; address: string } {
  return { backend: entry.spec.key, pool: entry.spec.pool, address: entry.spec.backend };
}

function effectiveWeight(entry: Entry): number {
  return entry.reportedWeight ?? entry.spec.weight;
}

/** What makes a probe: a change here starts the backend's streaks over. */
function probeFingerprint(spec: HealthCheckSpec): string {
  const { kind, target, tunnel, weightFrom, http, udp, icmp, exec } = spec;
  return JSON.stringify({ kind, target, tunnel, weightFrom, http, udp, icmp, exec });
}

async function closeRoute(entry: Entry): Promise<void> {
  const route = entry.route;
  entry.route = undefined;
  if (route === undefined) return;
  try {
    await (await route).close();
  } catch {
    // a route that failed to open has nothing to close
  }
}

