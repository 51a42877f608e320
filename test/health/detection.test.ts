// The checker against real servers on loopback: how fast a stopped backend is marked down, that
// it comes back after exactly `rise` successes, that healthy backends under load are never
// marked down, and dynamic weights from exec output and HTTP headers.
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

import { afterAll, describe, expect, it } from 'vitest';

import { parseStatusRanges } from '../../src/config/health/index.js';
import { LoopLag } from '../../src/health/loop-lag.js';
import { HealthChecker, type HealthCheckSpec, type HealthTransition, type WeightChange } from '../../src/health/index.js';
import { hungListener, httpServer, script, sleep, spec, tcpServer, udpServer, waitFor, type Closable } from './support.js';

const INTERVAL = 200;
const TIMEOUT = 150;
const FALL = 3;
const RISE = 2;
/** The promise: down within interval × fall + timeout of the failure (jitter 0). */
const BOUND = INTERVAL * FALL + TIMEOUT;
/** Timers fire a little late; a few of them are on the path. */
const TIMER_SLACK = 100;

const http200 = parseStatusRanges('200-299');
if (!http200.ok) throw new Error('status');
const httpOptions = (path = '/'): NonNullable<HealthCheckSpec['http']> => ({
  method: 'GET',
  path,
  headers: {},
  expectStatus: '200-299',
  expectStatusRanges: http200.ranges,
  weightHeader: 'X-Load-Weight',
  tls: { verify: false },
});

const cleanups: Array<() => void | Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function watch(checker: HealthChecker): { transitions: HealthTransition[]; weights: WeightChange[] } {
  const transitions: HealthTransition[] = [];
  const weights: WeightChange[] = [];
  checker.on('transition', (e) => transitions.push(e));
  checker.on('weight', (e) => weights.push(e));
  return { transitions, weights };
}

/** A TCP listener that can be stopped and started again on the same port. */
async function restartableTcp(): Promise<{ port: number; stop(): Promise<void>; start(): Promise<void> }> {
  let server = await tcpServer();
  const port = server.port;
  return {
    port,
    stop: () => server.close(),
    start: async () => {
      const sockets = new Set<net.Socket>();
      const s = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
      });
      await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
      server = {
        port,
        accepted: () => 0,
        close: () =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            for (const socket of sockets) socket.destroy();
          }),
      };
    },
  };
}

describe('failure detection against real servers', () => {
  it(`marks stopped or silent backends down within interval × fall + timeout (${BOUND} ms)`, async () => {
    // Several backends of each kind and way of failing; all fail at the same moment.
    const tcp = await Promise.all([1, 2, 3].map(() => tcpServer()));
    let httpHung = false;
    const httpRefused = await Promise.all([1, 2].map(() => httpServer((_req, res) => res.end('ok'))));
    const httpSilent = await Promise.all(
      [1, 2].map(() =>
        httpServer((_req, res) => {
          if (!httpHung) res.end('ok'); // once "hung", requests are never answered
        }),
      ),
    );
    let udpMute = false;
    const udp = await Promise.all([1, 2].map(() => udpServer(() => (udpMute ? undefined : 'pong'))));
    const udpClosed = await Promise.all([1, 2].map(() => udpServer(() => 'pong')));
    const flag = script('test ! -e "$FLAG"');
    const flagFile = `${flag.path}.down`;
    cleanups.push(flag.cleanup);

    const common = { interval: INTERVAL, timeout: TIMEOUT, fall: FALL, rise: RISE, jitter: 0 };
    const at = (port: number): { address: string; port: number } => ({ address: '127.0.0.1', port });
    const specs: HealthCheckSpec[] = [
      ...tcp.map((s, i) => spec(`tcp/refused-${i}`, { ...common, target: at(s.port) })),
      ...httpRefused.map((s, i) => spec(`http/refused-${i}`, { ...common, kind: 'http', http: httpOptions(), target: at(s.port) })),
      ...httpSilent.map((s, i) => spec(`http/silent-${i}`, { ...common, kind: 'http', http: httpOptions(), target: at(s.port) })),
      ...udp.map((s, i) => spec(`udp/silent-${i}`, { ...common, kind: 'udp', udp: { payloadHex: '70696e67', expect: { kind: 'text', text: 'pong' } }, target: at(s.port) })),
      ...udpClosed.map((s, i) => spec(`udp/refused-${i}`, { ...common, kind: 'udp', udp: { payloadHex: '70696e67', expect: { kind: 'any' } }, target: at(s.port) })),
      ...[0, 1].map((i) => spec(`exec/fails-${i}`, { ...common, timeout: 1000, kind: 'exec', exec: { command: flag.path, args: [], env: { FLAG: flagFile } }, target: { address: `10.9.0.${i}` } })),
    ];
    const checker = new HealthChecker();
    cleanups.push(() => checker.stop());
    const { transitions } = watch(checker);
    checker.update(specs);
    await waitFor(() => checker.snapshot().every((b) => b.state === 'up'), 3000, 'every backend up');

    // A probe's deadline gives back the time this process's event loop lost (a starved host):
    // the bound is in time the loop ran.
    const lag = new LoopLag();
    lag.start();
    cleanups.push(() => lag.stop());
    const t0 = performance.now();
    await Promise.all([...tcp, ...httpRefused, ...udpClosed].map((s) => s.close()));
    httpHung = true;
    udpMute = true;
    writeFileSync(flagFile, '');
    const downAt = new Map<string, number>();
    const lostAt = new Map<string, number>();
    checker.on('transition', (e) => {
      if (e.to === 'down') {
        downAt.set(e.backend, performance.now() - t0);
        lostAt.set(e.backend, lag.stalledWithin(t0));
      }
    });
    await waitFor(() => downAt.size === specs.length, BOUND + 2000, 'every backend down');
    const detection = Object.fromEntries([...downAt].map(([k, v]) => [k, Math.round(v)]));
    const slowest = Math.max(...downAt.values());
    console.log(`[health detection] bound ${BOUND} ms; slowest ${Math.round(slowest)} ms; ${JSON.stringify(detection)}`);
    for (const [key, ms] of downAt) {
      const lost = lostAt.get(key) ?? 0;
      expect(ms, `${key} went down after ${ms} ms (the loop stalled ${lost} ms)`).toBeLessThanOrEqual(BOUND + TIMER_SLACK + lost);
    }
    // Exactly `fall` failures each: the transition names them.
    for (const t of transitions.filter((e) => e.to === 'down')) expect(t.reason).toMatch(/^3 failed checks in a row: /);
    await checker.stop();
    await Promise.all([...httpSilent, ...udp].map((s) => s.close()));
  }, 20_000);

  it('brings a backend back after exactly `rise` successful checks once its server returns', async () => {
    const server = await restartableTcp();
    const checker = new HealthChecker();
    cleanups.push(() => checker.stop());
    const { transitions } = watch(checker);
    const oks: boolean[] = [];
    checker.on('result', (e) => oks.push(e.result.ok));
    checker.update([spec('p/a', { target: { address: '127.0.0.1', port: server.port }, interval: 100, timeout: 100, fall: 3, rise: 3, jitter: 0 })]);
    await waitFor(() => transitions.length === 1, 2000, 'up');
    await server.stop();
    await waitFor(() => transitions.length === 2, 2000, 'down');
    const resultsWhenDown = oks.length;
    await server.start();
    await waitFor(() => transitions.length === 3, 2000, 'up again');
    expect(transitions.map((t) => t.to)).toEqual(['up', 'down', 'up']);
    // Results after the down transition: some failures while stopped, then exactly 3 successes.
    const after = oks.slice(resultsWhenDown);
    expect(after.slice(-3)).toEqual([true, true, true]);
    expect(after.slice(0, -3).every((ok) => !ok)).toBe(true);
    expect(transitions[2]?.reason).toMatch(/^3 successful checks in a row: connected to 127\.0\.0\.1:\d+$/);
    await checker.stop();
    await server.stop();
  }, 10_000);

  it('marks nothing down while healthy servers are under load', async () => {
    // 30 healthy backends (tcp, http, udp) checked every 100 ms for 3 s while a client process
    // hammers the same HTTP servers and this process burns CPU in short bursts.
    const httpServers = await Promise.all(Array.from({ length: 10 }, () => httpServer((_req, res) => res.end('ok'))));
    const tcpServers = await Promise.all(Array.from({ length: 10 }, () => tcpServer()));
    const udpServers = await Promise.all(Array.from({ length: 10 }, () => udpServer(() => 'pong')));
    const common = { interval: 100, timeout: 500, fall: 1, rise: 1, jitter: 0.1 };
    const at = (port: number): { address: string; port: number } => ({ address: '127.0.0.1', port });
    const checker = new HealthChecker();
    cleanups.push(() => checker.stop());
    const { transitions } = watch(checker);
    let failures = 0;
    let results = 0;
    const latencies: number[] = [];
    checker.on('result', (e) => {
      results++;
      latencies.push(e.result.latencyMs);
      if (!e.result.ok) failures++;
    });
    checker.update([
      ...httpServers.map((s, i) => spec(`load/http-${i}`, { ...common, kind: 'http', http: httpOptions(), target: at(s.port) })),
      ...tcpServers.map((s, i) => spec(`load/tcp-${i}`, { ...common, target: at(s.port) })),
      ...udpServers.map((s, i) => spec(`load/udp-${i}`, { ...common, kind: 'udp', udp: { payloadHex: '70696e67', expect: { kind: 'text', text: 'pong' } }, target: at(s.port) })),
    ]);

    const ports = JSON.stringify(httpServers.map((s) => s.port));
    const load = spawn(
      process.execPath,
      [
        '-e',
        `const http = require('http');
         const ports = ${ports};
         const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
         const until = Date.now() + 3000;
         let done = 0;
         function loop(i) {
           if (Date.now() > until || done > 200000) return;
           http.get({ host: '127.0.0.1', port: ports[i % ports.length], path: '/', agent }, (res) => {
             res.resume(); res.on('end', () => { done++; loop(i + 1); });
           }).on('error', () => setTimeout(() => loop(i + 1), 10));
         }
         for (let c = 0; c < 64; c++) loop(c);
         setTimeout(() => { console.log(done); process.exit(0); }, 3200);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let requests = '';
    load.stdout?.on('data', (chunk: Buffer) => (requests += chunk.toString()));
    const loadDone = new Promise<void>((resolve) => load.on('exit', () => resolve()));
    cleanups.push(() => void load.kill());
    // CPU bursts in this process: 20 ms of busy work every 100 ms.
    const burner = setInterval(() => {
      const end = performance.now() + 20;
      while (performance.now() < end) {
        // busy
      }
    }, 100);
    await loadDone;
    clearInterval(burner);
    const snapshot = checker.snapshot();
    await checker.stop();
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
    console.log(`[health load] ${results} checks, ${failures} failed, ${Number(requests.trim())} load requests served, check latency p99 ${p99} ms`);
    expect(Number(requests.trim())).toBeGreaterThan(1000);
    expect(results).toBeGreaterThan(500);
    expect(failures).toBe(0);
    expect(transitions.filter((t) => t.to === 'down')).toEqual([]);
    expect(snapshot.every((b) => b.state === 'up')).toBe(true);
    await Promise.all([...httpServers, ...tcpServers, ...udpServers].map((s) => s.close()));
  }, 20_000);
});

describe('dynamic weights through the checker', () => {
  it('follows the weight an exec check prints', async () => {
    const state = script('cat "$WEIGHT_FILE"');
    const weightFile = `${state.path}.weight`;
    cleanups.push(state.cleanup);
    writeFileSync(weightFile, 'weight=30\n');
    const checker = new HealthChecker();
    cleanups.push(() => checker.stop());
    const { weights } = watch(checker);
    checker.update([
      spec('p/10.1.0.5', {
        kind: 'exec',
        exec: { command: state.path, args: [], env: { WEIGHT_FILE: weightFile } },
        weightFrom: 'stdout',
        weight: 10,
        interval: 100,
        timeout: 1000,
        target: { address: '10.1.0.5' },
      }),
    ]);
    await waitFor(() => weights.length === 1, 3000, 'first weight');
    writeFileSync(weightFile, '50%\n');
    await waitFor(() => weights.length === 2, 3000, 'second weight');
    writeFileSync(weightFile, '0\n');
    await waitFor(() => weights.length === 3, 3000, 'drain');
    expect(weights.map((w) => [w.from, w.to])).toEqual([
      [10, 30],
      [30, 5],
      [5, 0],
    ]);
    expect(weights[0]?.reason).toBe(`reported by the backend: ${state.path} exited with 0, weight 30`);
    expect(checker.get('p/10.1.0.5')).toMatchObject({ state: 'up', weight: 0, reportedWeight: 0 });
    await checker.stop();
  }, 15_000);

  it('follows the weight an HTTP server puts in X-Load-Weight', async () => {
    let weight = '80';
    const server: Closable = await httpServer((_req, res) => {
      res.writeHead(200, { 'X-Load-Weight': weight });
      res.end();
    });
    cleanups.push(() => server.close());
    const checker = new HealthChecker();
    cleanups.push(() => checker.stop());
    const { weights } = watch(checker);
    checker.update([
      spec('p/a', { kind: 'http', http: httpOptions(), weightFrom: 'header', weight: 100, interval: 100, target: { address: '127.0.0.1', port: server.port } }),
    ]);
    await waitFor(() => weights.length === 1, 3000, 'first weight');
    weight = '25%';
    await waitFor(() => weights.length === 2, 3000, 'second weight');
    await sleep(300); // unchanged reports make no events
    expect(weights.map((w) => [w.from, w.to])).toEqual([
      [100, 80],
      [80, 25],
    ]);
    await checker.stop();
  }, 15_000);
});

describe('a real probe that is slower than the interval', () => {
  it('runs checks of one backend back to back, never two at once', async () => {
    let open = 0;
    let maxOpen = 0;
    const server = await httpServer((_req, res) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      setTimeout(() => {
        open--;
        res.end('ok');
      }, 150);
    });
    cleanups.push(() => server.close());
    const checker = new HealthChecker();
    const results: number[] = [];
    checker.on('result', (e) => results.push(e.at));
    checker.update([spec('p/slow', { kind: 'http', http: httpOptions(), interval: 100, timeout: 400, target: { address: '127.0.0.1', port: server.port } })]);
    await sleep(1000);
    await checker.stop();
    expect(maxOpen).toBe(1);
    expect(results.length).toBeGreaterThanOrEqual(4);
    expect(results.length).toBeLessThanOrEqual(7);
  });
});

describe('stop', () => {
  it('leaves no socket, timer or process behind, even with probes in flight', async () => {
    const hung = await hungListener();
    cleanups.push(() => hung.close());
    const slow = await httpServer(() => {}); // never answers
    cleanups.push(() => slow.close());
    const silent = await udpServer(() => undefined);
    cleanups.push(() => silent.close());
    const sleeper = script('sleep 9.75');
    cleanups.push(sleeper.cleanup);
    const count = (): Record<string, number> => {
      const counts: Record<string, number> = {};
      for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
      return counts;
    };
    await sleep(50);
    const before = count();
    const checker = new HealthChecker();
    const common = { interval: 100, timeout: 5000, jitter: 0 };
    checker.update([
      spec('s/tcp', { ...common, target: { address: '127.0.0.1', port: hung.port } }),
      spec('s/http', { ...common, kind: 'http', http: httpOptions(), target: { address: '127.0.0.1', port: slow.port } }),
      spec('s/udp', { ...common, kind: 'udp', udp: { payloadHex: '00', expect: { kind: 'any' } }, target: { address: '127.0.0.1', port: silent.port } }),
      spec('s/exec', { ...common, kind: 'exec', exec: { command: sleeper.path, args: [], env: {} }, target: { address: '10.9.9.9' } }),
    ]);
    await waitFor(() => checker.inFlight === 4, 2000, 'four probes in flight');
    await sleep(100);
    await checker.stop();
    await sleep(50);
    const after = count();
    for (const kind of ['ConnectWrap', 'TCPSocketWrap', 'TCPWRAP', 'UDPWrap', 'UDPWRAP', 'Timeout', 'ProcessWrap', 'PROCESSWRAP', 'PipeWrap', 'PIPEWRAP']) {
      expect(after[kind] ?? 0, `${kind}: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`).toBeLessThanOrEqual(before[kind] ?? 0);
    }
    const left = (() => {
      try {
        return execFileSync('pgrep', ['-f', 'sleep 9.75'], { encoding: 'utf8' }).trim();
      } catch {
        return '';
      }
    })();
    expect(left).toBe('');
  }, 15_000);
});
