// A probe that times out while the checker's own event loop is stalled is no evidence against
// the backend (issue 12, item 2: under a SYN flood the starved host made every check time out
// and a pool went all-down). Real HTTP servers on loopback, real probes; the loop is blocked
// right after a probe started, the way a starved process does not run.
import { performance } from 'node:perf_hooks';

import { afterEach, describe, expect, it } from 'vitest';

import { parseStatusRanges } from '../../src/config/health/index.js';
import { HealthChecker, type HealthCheckSpec, type HealthTransition, type LocalFaultEvent } from '../../src/health/index.js';
import { createProbe } from '../../src/health/probes/index.js';
import { httpServer, spec, waitFor, type Closable } from './support.js';

const ranges = parseStatusRanges('200-299');
if (!ranges.ok) throw new Error('status');
const http: NonNullable<HealthCheckSpec['http']> = {
  method: 'GET',
  path: '/',
  headers: {},
  expectStatus: '200-299',
  expectStatusRanges: ranges.ranges,
  weightHeader: 'X-Load-Weight',
  tls: { verify: false },
};

function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the event loop does not run
  }
}

/** A checker whose next `blocked.count` probes block the loop for `blocked.ms` right after they start. */
function stallingChecker(): { checker: HealthChecker; blocked: { count: number; ms: number }; transitions: HealthTransition[]; faults: LocalFaultEvent[] } {
  const blocked = { count: 0, ms: 0 };
  const checker = new HealthChecker({
    createProbe: (s, deps) => {
      const real = createProbe(s, deps);
      return (target, ctx) => {
        const run = real(target, ctx);
        if (blocked.count > 0) {
          blocked.count--;
          block(blocked.ms);
        }
        return run;
      };
    },
  });
  const transitions: HealthTransition[] = [];
  const faults: LocalFaultEvent[] = [];
  checker.on('transition', (e) => transitions.push(e));
  checker.on('localFault', (e) => faults.push(e));
  return { checker, blocked, transitions, faults };
}

const check = (port: number): HealthCheckSpec => spec('web/127.0.0.1', { kind: 'http', http, interval: 100, timeout: 200, rise: 1, fall: 1, target: { address: '127.0.0.1', port } });

describe('probes timed out during an event-loop stall', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('get the time the loop lost back: a healthy backend stays up through stalls twice its timeout', async () => {
    let answered = 0;
    const server: Closable = await httpServer((_req, res) => {
      answered++;
      res.end('ok');
    });
    cleanups.push(() => server.close());
    const { checker, blocked, transitions } = stallingChecker();
    cleanups.push(() => checker.stop());
    checker.update([check(server.port)]);
    await waitFor(() => checker.get('web/127.0.0.1')?.state === 'up', 3000, 'up');
    const before = checker.get('web/127.0.0.1')!.checks;
    const answeredBefore = answered;

    // Three probes in a row: the loop stalls 400 ms (twice the timeout) right after each starts.
    blocked.ms = 400;
    blocked.count = 3;
    await waitFor(() => checker.get('web/127.0.0.1')!.checks >= before + 3, 5000, 'three stalled probes');
    expect(transitions.filter((t) => t.to === 'down')).toEqual([]);
    expect(checker.get('web/127.0.0.1')!.state).toBe('up');
    expect(checker.get('web/127.0.0.1')!.lastResult?.ok).toBe(true);
    expect(answered).toBeGreaterThanOrEqual(answeredBefore + 3);
  });

  it('while the loop hardly runs, a timeout is a local fault (LOOPSTALL): state kept, counted; once it runs, a silent backend goes down', async () => {
    let silent = false;
    const server: Closable = await httpServer((_req, res) => {
      if (!silent) res.end('ok');
    });
    cleanups.push(() => server.close());
    const { checker, transitions, faults } = stallingChecker();
    cleanups.push(() => checker.stop());
    checker.update([check(server.port)]);
    await waitFor(() => checker.get('web/127.0.0.1')?.state === 'up', 3000, 'up');

    // A starved process: the loop runs about 5 ms in 50. The backend goes silent meanwhile.
    silent = true;
    const starve = setInterval(() => block(45), 50);
    try {
      await waitFor(() => checker.loopStalls >= 2, 8000, 'two probes timed out in a stalled loop');
    } finally {
      clearInterval(starve);
    }
    expect(transitions.filter((t) => t.to === 'down')).toEqual([]);
    const held = checker.get('web/127.0.0.1')!;
    expect(held.state).toBe('up');
    expect(held.localFaults).toBeGreaterThanOrEqual(2);
    expect(faults[0]).toMatchObject({ errno: 'LOOPSTALL', cleared: false });
    expect(faults[0]!.detail).toMatch(/within 200 ms; this process's event loop was stalled \d+ ms of it and ran \d+ ms/);

    // The loop runs again and the backend still does not answer: it goes down.
    await waitFor(() => checker.get('web/127.0.0.1')?.state === 'down', 3000, 'down');
    expect(transitions.filter((t) => t.to === 'down')[0]!.reason).toMatch(/no HTTP response .* within 200 ms/);
  });

  it('do not excuse a backend that really does not answer (a silent server goes down through stalls in every probe)', async () => {
    let asked = 0;
    const server: Closable = await httpServer(() => {
      asked++; // never answers
    });
    cleanups.push(() => server.close());
    const { checker, blocked, transitions, faults } = stallingChecker();
    cleanups.push(() => checker.stop());
    // A stall of 300 ms in every probe: the deadline gives it back, and the silent server still does not answer.
    blocked.ms = 300;
    blocked.count = 1000;
    checker.update([check(server.port)]);
    await waitFor(() => checker.get('web/127.0.0.1')?.state === 'down', 3000, 'down');
    expect(transitions.map((t) => t.to)).toEqual(['down']);
    expect(transitions[0]!.reason).toMatch(/no HTTP response .* within 200 ms/);
    expect(faults).toEqual([]);
    expect(checker.loopStalls).toBe(0);
    expect(checker.get('web/127.0.0.1')!.localFaults).toBe(0);
    expect(asked).toBeGreaterThanOrEqual(1);
  });
});
