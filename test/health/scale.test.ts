// 1000 backends checked over TCP every 500 ms for ~3 s against real listeners on loopback (a few
// ports, in a child process like real backends would be): the event loop must stay responsive,
// checks must not start in bursts, and no healthy backend may be marked down.
import { spawn, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createProbe, HealthChecker, type HealthTransition, type ProbeFactory } from '../../src/health/index.js';
import { sleep, spec } from './support.js';

const BACKENDS = 1000;
const INTERVAL_MS = 500;
const RUN_MS = 3000;
const WINDOW_MS = 50;
const LISTENERS = 4;

let listeners: ChildProcess;
let ports: number[] = [];

beforeAll(async () => {
  listeners = spawn(
    process.execPath,
    [
      '-e',
      `const net = require('net');
       const ports = [];
       for (let i = 0; i < ${LISTENERS}; i++) {
         const server = net.createServer((s) => { s.on('error', () => {}); s.resume(); });
         server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
           ports.push(server.address().port);
           if (ports.length === ${LISTENERS}) process.stdout.write(JSON.stringify(ports) + '\\n');
         });
       }
       setTimeout(() => process.exit(0), 120000).unref();
       process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  ports = await new Promise<number[]>((resolve, reject) => {
    let text = '';
    listeners.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) resolve(JSON.parse(text) as number[]);
    });
    listeners.on('exit', () => reject(new Error('listener process exited')));
  });
});

afterAll(() => {
  listeners.stdin?.end();
  listeners.kill();
});

describe('1000 backends, TCP checks every 500 ms', () => {
  it('keeps the event loop responsive, spreads checks evenly and marks every backend up', async () => {
    const starts: number[] = [];
    const counting: ProbeFactory = (s, deps) => {
      const probe = createProbe(s, deps);
      return (target, ctx) => {
        starts.push(performance.now());
        return probe(target, ctx);
      };
    };
    const checker = new HealthChecker({ createProbe: counting });
    const downs: HealthTransition[] = [];
    let failures = 0;
    let results = 0;
    checker.on('transition', (e) => {
      if (e.to === 'down') downs.push(e);
    });
    checker.on('result', (e) => {
      results++;
      if (!e.result.ok) failures++;
    });
    const specs = Array.from({ length: BACKENDS }, (_, i) =>
      spec(`scale/10.${(i >> 8) & 255}.${i & 255}.1`, {
        target: { address: '127.0.0.1', port: ports[i % LISTENERS] as number },
        interval: INTERVAL_MS,
        timeout: 400,
        jitter: 0.1,
      }),
    );

    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const t0 = performance.now();
    checker.update(specs);
    await sleep(RUN_MS);
    lag.disable();
    const snapshot = checker.snapshot();
    await checker.stop();

    // Checks started per 50 ms window over the run (expected: 1000 / 500 ms × 50 ms = 100).
    const windows = new Array<number>(Math.floor(RUN_MS / WINDOW_MS)).fill(0);
    for (const t of starts) {
      const w = Math.floor((t - t0) / WINDOW_MS);
      if (w >= 0 && w < windows.length) windows[w] = (windows[w] ?? 0) + 1;
    }
    const expectedPerWindow = (BACKENDS / INTERVAL_MS) * WINDOW_MS;
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
    const report = {
      checksStarted: starts.length,
      results,
      failures,
      down: downs.length,
      up: snapshot.filter((b) => b.state === 'up').length,
      lagMs: { p50: ms(lag.percentile(50)), p99: ms(lag.percentile(99)), max: ms(lag.max), mean: ms(lag.mean) },
      perWindow: { expected: expectedPerWindow, min: Math.min(...windows), max: Math.max(...windows) },
    };
    console.log(`[health scale] ${JSON.stringify(report)}`);

    expect(report.up, JSON.stringify(report)).toBe(BACKENDS);
    expect(downs, JSON.stringify(report)).toEqual([]);
    expect(failures, JSON.stringify(report)).toBe(0);
    // Every backend about RUN_MS / INTERVAL_MS times.
    expect(starts.length).toBeGreaterThan(BACKENDS * (RUN_MS / INTERVAL_MS) * 0.8);
    // Responsive: generous bounds (2 CPUs, other test files may run at the same time).
    // Event-loop lag is a measurement, reported here, not asserted: tests never assert on time.
    console.log(`1000 backends every ${INTERVAL_MS} ms: event-loop lag ${JSON.stringify(report.lagMs)} ms`);
    // No bursts: no 50 ms window gets more than twice its share, none is empty.
    expect(report.perWindow.max, JSON.stringify(report)).toBeLessThanOrEqual(2 * expectedPerWindow);
    expect(report.perWindow.min, JSON.stringify(report)).toBeGreaterThan(0);
  }, 30_000);
});
