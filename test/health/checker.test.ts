// The scheduler and the state machine, with scripted probes and fake timers: exact counts,
// exact times, reloads, cancellation. (Real sockets: detection.test.ts and scale.test.ts.)
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  HealthChecker,
  NO_TUNNEL_HOOK,
  type HealthCheckSpec,
  type HealthTransition,
  type ProbeFactory,
  type ProbeResult,
  type ProbeTarget,
  type TunnelRequest,
  type WeightChange,
} from '../../src/health/index.js';
import { spec } from './support.js';

type Outcome = { ok: boolean; weight?: number; detail?: string; takesMs?: number };

/** Probes whose outcome each test decides, recording every start. */
class Scripted {
  readonly starts: Array<{ key: string; at: number; target: ProbeTarget }> = [];
  readonly outcome = new Map<string, Outcome | (() => Outcome)>();
  readonly running = new Map<string, number>();
  maxRunning = 0;
  aborted = 0;

  readonly factory: ProbeFactory = (s: HealthCheckSpec) => (target, ctx) => {
    this.starts.push({ key: s.key, at: Date.now(), target });
    const now = this.running.get(s.key) ?? 0;
    this.running.set(s.key, now + 1);
    this.maxRunning = Math.max(this.maxRunning, now + 1);
    const o = this.outcome.get(s.key) ?? { ok: true };
    const out = typeof o === 'function' ? o() : o;
    return new Promise<ProbeResult>((resolve) => {
      const done = (r: ProbeResult): void => {
        this.running.set(s.key, (this.running.get(s.key) ?? 1) - 1);
        resolve(r);
      };
      const timer = setTimeout(
        () => done({ ok: out.ok, latencyMs: out.takesMs ?? 1, detail: out.detail ?? (out.ok ? 'fine' : 'broken'), ...(out.weight !== undefined && { weight: out.weight }) }),
        out.takesMs ?? 1,
      );
      ctx.signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        this.aborted++;
        done({ ok: false, latencyMs: 0, detail: 'cancelled' });
      });
    });
  };

  startsOf(key: string): number[] {
    return this.starts.filter((s) => s.key === key).map((s) => s.at);
  }
}

function setup(options: { random?: () => number } = {}): {
  checker: HealthChecker;
  probes: Scripted;
  transitions: HealthTransition[];
  weights: WeightChange[];
} {
  const probes = new Scripted();
  const checker = new HealthChecker({ createProbe: probes.factory, now: () => Date.now(), random: options.random ?? (() => 0) });
  const transitions: HealthTransition[] = [];
  const weights: WeightChange[] = [];
  checker.on('transition', (e) => transitions.push(e));
  checker.on('weight', (e) => weights.push(e));
  return { checker, probes, transitions, weights };
}

const target = { address: '10.1.0.1', port: 80 };

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('health state machine (rise, fall)', () => {
  it('goes up on the first success, down after exactly `fall` failures, up after exactly `rise` successes', async () => {
    const { checker, probes, transitions } = setup();
    const script = [true, false, false, true, false, false, false, true, true, false, true, true];
    let i = 0;
    probes.outcome.set('web/a', () => ({ ok: script[i++] ?? true, detail: `result ${i}` }));
    checker.update([spec('web/a', { target, interval: 100, rise: 2, fall: 3 })]);
    await vi.advanceTimersByTimeAsync(100 * script.length);
    expect(i).toBeGreaterThanOrEqual(script.length);
    expect(transitions.map((t) => [t.from, t.to, t.reason])).toEqual([
      ['unknown', 'up', 'first check succeeded: result 1'],
      ['up', 'down', '3 failed checks in a row: result 7'],
      ['down', 'up', '2 successful checks in a row: result 9'],
      // result 10 fails once (fall 3): still up; 11, 12 succeed.
    ]);
    expect(transitions[0]).toMatchObject({ backend: 'web/a', pool: 'web', address: 'a' });
    await checker.stop();
  });

  it('goes from unknown to down after `fall` failures', async () => {
    const { checker, probes, transitions } = setup();
    probes.outcome.set('web/a', { ok: false, detail: 'refused' });
    checker.update([spec('web/a', { target, interval: 100, fall: 2 })]);
    await vi.advanceTimersByTimeAsync(50);
    expect(transitions).toEqual([]);
    expect(checker.get('web/a')).toMatchObject({ state: 'unknown', failuresInARow: 1 });
    await vi.advanceTimersByTimeAsync(100);
    expect(transitions.map((t) => [t.from, t.to, t.reason])).toEqual([['unknown', 'down', '2 failed checks in a row: refused']]);
    await checker.stop();
  });

  it('with rise 1 and fall 1 every change of result is a transition', async () => {
    const { checker, probes, transitions } = setup();
    let n = 0;
    probes.outcome.set('web/a', () => ({ ok: n++ % 2 === 0 }));
    checker.update([spec('web/a', { target, interval: 100, rise: 1, fall: 1 })]);
    await vi.advanceTimersByTimeAsync(450);
    expect(transitions.map((t) => t.to)).toEqual(['up', 'down', 'up', 'down', 'up']);
    await checker.stop();
  });
});

describe('scheduling', () => {
  it('spreads first checks over the interval, then runs every interval exactly without jitter', async () => {
    const offsets = [0.1, 0.5, 0.9];
    let r = 0;
    const { checker, probes } = setup({ random: () => offsets[r++ % offsets.length] ?? 0 });
    const t0 = Date.now();
    checker.update(['p/a', 'p/b', 'p/c'].map((k) => spec(k, { target, interval: 1000 })));
    await vi.advanceTimersByTimeAsync(3000);
    expect(probes.startsOf('p/a').map((t) => t - t0)).toEqual([100, 1100, 2100]);
    expect(probes.startsOf('p/b').map((t) => t - t0)).toEqual([500, 1500, 2500]);
    expect(probes.startsOf('p/c').map((t) => t - t0)).toEqual([900, 1900, 2900]);
    await checker.stop();
  });

  it('draws every interval from interval × (1 ± jitter)', async () => {
    const { checker, probes } = setup({ random: Math.random });
    checker.update([spec('p/a', { target, interval: 1000, jitter: 0.2 })]);
    await vi.advanceTimersByTimeAsync(60_000);
    const starts = probes.startsOf('p/a');
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] ?? 0));
    expect(gaps.length).toBeGreaterThan(45);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(800);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(1201);
    expect(new Set(gaps).size).toBeGreaterThan(10); // not in step
    await checker.stop();
  });

  it('never has two probes of a backend in flight: a slow probe delays the next one', async () => {
    const { checker, probes } = setup();
    probes.outcome.set('p/slow', { ok: true, takesMs: 250 });
    checker.update([spec('p/slow', { target, interval: 100, timeout: 300 })]);
    await vi.advanceTimersByTimeAsync(2000);
    const starts = probes.startsOf('p/slow');
    expect(probes.maxRunning).toBe(1);
    expect(starts.length).toBeGreaterThanOrEqual(7);
    for (let i = 1; i < starts.length; i++) expect((starts[i] ?? 0) - (starts[i - 1] ?? 0)).toBeGreaterThanOrEqual(250);
    await checker.stop();
  });

  it('uses one timer for any number of backends', async () => {
    const { checker } = setup({ random: Math.random });
    checker.update(Array.from({ length: 500 }, (_, i) => spec(`p/${i}`, { target, interval: 1000 })));
    expect(vi.getTimerCount()).toBe(1);
    await checker.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('reloads (update)', () => {
  it('keeps the state and streaks of backends that stay, adds new ones as unknown, stops removed ones', async () => {
    const { checker, probes, transitions } = setup();
    probes.outcome.set('p/b', { ok: false });
    checker.update([spec('p/a', { target, interval: 100 }), spec('p/b', { target, interval: 100, fall: 2 })]);
    await vi.advanceTimersByTimeAsync(250);
    expect(checker.get('p/a')?.state).toBe('up');
    expect(checker.get('p/b')?.state).toBe('down');
    const seen = transitions.length;

    // Same keys with new timing and rise/fall, one added, none removed.
    checker.update([
      spec('p/a', { target, interval: 200, rise: 5 }),
      spec('p/b', { target, interval: 200, fall: 2 }),
      spec('p/c', { target, interval: 200 }),
    ]);
    expect(checker.get('p/a')).toMatchObject({ state: 'up' });
    expect(checker.get('p/b')).toMatchObject({ state: 'down' });
    expect(checker.get('p/c')).toMatchObject({ state: 'unknown', reason: 'not checked yet' });
    expect(transitions.length).toBe(seen);

    // b recovers: rise is still 2 for b.
    probes.outcome.set('p/b', { ok: true });
    await vi.advanceTimersByTimeAsync(450);
    expect(transitions.slice(seen).map((t) => `${t.backend}:${t.from}->${t.to}`)).toEqual(['p/c:unknown->up', 'p/b:down->up']);

    // Remove a: its probes stop, b and c go on.
    const aStarts = probes.startsOf('p/a').length;
    checker.update([spec('p/b', { target, interval: 200 }), spec('p/c', { target, interval: 200 })]);
    expect(checker.get('p/a')).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1000);
    expect(probes.startsOf('p/a').length).toBe(aStarts);
    expect(probes.startsOf('p/c').length).toBeGreaterThan(3);
    await checker.stop();
  });

  it('cancels the in-flight probe of a removed backend and ignores its result', async () => {
    const { checker, probes } = setup();
    const results: string[] = [];
    checker.on('result', (e) => results.push(e.backend));
    probes.outcome.set('p/a', { ok: true, takesMs: 500 });
    checker.update([spec('p/a', { target, interval: 1000, timeout: 900 })]);
    await vi.advanceTimersByTimeAsync(10);
    expect(checker.get('p/a')?.inFlight).toBe(true);
    checker.update([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(probes.aborted).toBe(1);
    expect(results).toEqual([]);
    await checker.stop();
  });

  it('restarts the streaks (not the state) when the probe itself changes', async () => {
    const { checker, probes, transitions } = setup();
    probes.outcome.set('p/a', { ok: false });
    checker.update([spec('p/a', { target, interval: 100, fall: 3 })]);
    await vi.advanceTimersByTimeAsync(150);
    expect(checker.get('p/a')).toMatchObject({ state: 'unknown', failuresInARow: 2 });
    checker.update([spec('p/a', { target: { ...target, port: 8080 }, interval: 100, fall: 3 })]);
    expect(checker.get('p/a')).toMatchObject({ state: 'unknown', failuresInARow: 0 });
    await vi.advanceTimersByTimeAsync(150);
    expect(transitions).toEqual([]);
    await vi.advanceTimersByTimeAsync(100);
    expect(transitions.map((t) => t.to)).toEqual(['down']);
    expect(probes.starts.at(-1)?.target).toEqual({ address: '10.1.0.1', port: 8080 });
    await checker.stop();
  });

  it('refuses a set with a key given twice', () => {
    const { checker } = setup();
    expect(() => checker.update([spec('p/a', { target }), spec('p/a', { target })])).toThrow('health check p/a is given twice');
  });
});

describe('dynamic weights', () => {
  it('emits a weight change when the reported weight changes, and falls back to the configured weight', async () => {
    const { checker, probes, weights } = setup();
    let reported: number | undefined = 40;
    probes.outcome.set('p/a', () => ({ ok: true, ...(reported !== undefined && { weight: reported }) }));
    checker.update([spec('p/a', { target, interval: 100, weight: 10, weightFrom: 'header' })]);
    await vi.advanceTimersByTimeAsync(350);
    expect(weights.map((w) => [w.from, w.to])).toEqual([[10, 40]]);
    expect(checker.get('p/a')).toMatchObject({ weight: 40, reportedWeight: 40 });
    reported = 0; // drain
    await vi.advanceTimersByTimeAsync(100);
    expect(weights.map((w) => [w.from, w.to])).toEqual([[10, 40], [40, 0]]);
    reported = undefined; // no header: the last reported weight stays
    await vi.advanceTimersByTimeAsync(300);
    expect(checker.get('p/a')?.weight).toBe(0);
    checker.update([spec('p/a', { target, interval: 100, weight: 10, weightFrom: 'none' })]);
    expect(weights.at(-1)).toMatchObject({ from: 0, to: 10, reason: 'configured weight' });
    await checker.stop();
  });

  it('does not take weights from failed checks', async () => {
    const { checker, probes, weights } = setup();
    probes.outcome.set('p/a', { ok: false, weight: 99 });
    checker.update([spec('p/a', { target, interval: 100, weightFrom: 'stdout' })]);
    await vi.advanceTimersByTimeAsync(500);
    expect(weights).toEqual([]);
    await checker.stop();
  });
});

describe('tunnelled checks', () => {
  const tunnel = { vip: 'www', vipAddress: '192.0.2.10' };

  it('stay unknown, with the reason, when no tunnel hook is given', async () => {
    const { checker, probes } = setup();
    checker.update([spec('p/a', { target: { address: '192.0.2.10', port: 80 }, tunnel, interval: 100 })]);
    await vi.advanceTimersByTimeAsync(500);
    expect(probes.starts).toEqual([]);
    expect(checker.get('p/a')).toMatchObject({ state: 'unknown', reason: NO_TUNNEL_HOOK });
    await checker.stop();
  });

  it('open a route once per backend, probe along it, and close it when the check goes', async () => {
    const probes = new Scripted();
    const opened: TunnelRequest[] = [];
    let routed = 0;
    let closed = 0;
    const checker = new HealthChecker({
      createProbe: probes.factory,
      now: () => Date.now(),
      random: () => 0,
      tunnel: {
        open: async (request) => {
          opened.push(request);
          return { probe: async () => ({ ok: true, latencyMs: 1, detail: `probe ${++routed}` }), close: () => void closed++ };
        },
      },
    });
    checker.update([spec('p/10.1.0.1', { target: { address: '192.0.2.10', port: 80 }, tunnel, interval: 100 })]);
    await vi.advanceTimersByTimeAsync(350);
    expect(opened).toEqual([{ key: 'p/10.1.0.1', pool: 'p', backend: '10.1.0.1', vip: 'www', vipAddress: '192.0.2.10', port: 80, protocol: 'tcp' }]);
    expect(routed).toBeGreaterThanOrEqual(3);
    expect(probes.starts).toEqual([]);  // the route probes, not the kind's own probe
    expect(checker.get('p/10.1.0.1')?.state).toBe('up');
    checker.update([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(closed).toBe(1);
    await checker.stop();
  });

  it('count a route that cannot be opened as a failed check', async () => {
    const probes = new Scripted();
    const checker = new HealthChecker({
      createProbe: probes.factory,
      now: () => Date.now(),
      random: () => 0,
      tunnel: { open: async () => Promise.reject(new Error('no free source address')) },
    });
    checker.update([spec('p/a', { target: { address: '192.0.2.10', port: 80 }, tunnel, interval: 100, fall: 2 })]);
    await vi.advanceTimersByTimeAsync(250);
    expect(checker.get('p/a')).toMatchObject({ state: 'down', lastResult: { ok: false, detail: 'tunnel route: no free source address' } });
    await checker.stop();
  });
});

describe('stop', () => {
  it('cancels probes in flight, leaves no timer, and runs nothing afterwards', async () => {
    const { checker, probes } = setup({ random: Math.random });
    for (let i = 0; i < 20; i++) probes.outcome.set(`p/${i}`, { ok: true, takesMs: 80 });
    checker.update(Array.from({ length: 20 }, (_, i) => spec(`p/${i}`, { target, interval: 100 })));
    await vi.advanceTimersByTimeAsync(250);
    expect(checker.inFlight).toBeGreaterThan(0);
    const inFlight = checker.inFlight;
    const stopping = checker.stop();
    await vi.advanceTimersByTimeAsync(0);
    await stopping;
    expect(probes.aborted).toBe(inFlight);
    expect(checker.inFlight).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    const count = probes.starts.length;
    await vi.advanceTimersByTimeAsync(1000);
    expect(probes.starts.length).toBe(count);
    expect(() => checker.update([])).toThrow('stopped');
  });

  it('survives a listener that throws', async () => {
    const { checker, probes } = setup();
    const errors: unknown[] = [];
    const onError = (e: unknown): void => void errors.push(e);
    process.on('uncaughtException', onError);
    try {
      checker.on('transition', () => {
        throw new Error('listener bug');
      });
      checker.update([spec('p/a', { target, interval: 100 })]);
      await vi.advanceTimersByTimeAsync(350);
      expect(probes.startsOf('p/a').length).toBeGreaterThanOrEqual(3);
    } finally {
      process.off('uncaughtException', onError);
      await checker.stop();
    }
  });
});
