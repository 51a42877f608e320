// BGP in the netns lab: the router (BIRD, multipath) learns the VIPs from the muxes' own BIRDs,
// which `l4mux run` starts and supervises. Announce on start; withdraw when a pool has no
// backend taking new flows and announce again on recovery; a router that flaps its session, a
// neighbour that never comes up and a wrong password; `l4mux drain` with long-lived TCP
// connections (none may break); SIGTERM and SIGKILL of a mux. Each time until the router's
// route loses the mux is printed. Needs root; builds and removes its own namespaces.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sendControl } from '../../src/api/client.js';
import { isRoot, Lab, root, sleep, VIP4, VIP6, waitUntil } from '../support/lab.js';

type Json = Record<string, any>;
const B = ['10.202.1.2', '10.202.2.2', '10.202.3.2'];
/** The lab's mux hold time (topology.sh): the bound for every withdrawal. */
const HOLD_MS = 3000;

/** Mux numbers the router's kernel route to `vip` points at (ECMP next hops). */
function routerPaths(lab: Lab, vip: string): number[] {
  return lab.routerPaths(vip);
}

function routerBird(lab: Lab, command: string): string {
  return lab.exec('router', ['birdc', '-s', `${lab.run}/router-bird.ctl`, ...command.split(' ')]);
}

/** The daemon's status straight from its control socket (a unix socket: reachable from any namespace). */
async function status(lab: Lab, mux: 1 | 2): Promise<Json> {
  const response = await sendControl(`${lab.run}/mux${mux}.sock`, { cmd: 'status' }, 10_000);
  if (!response.ok || !('status' in response)) throw new Error(`status of mux${mux} failed: ${JSON.stringify(response)}`);
  return response.status as unknown as Json;
}

async function bgpStatus(lab: Lab, mux: 1 | 2): Promise<Json> {
  return (await status(lab, mux))['services']['bgp'] as Json;
}

async function neighbour(lab: Lab, mux: 1 | 2, name: string): Promise<Json | undefined> {
  return ((await bgpStatus(lab, mux))['neighbours'] as Json[]).find((n) => n['name'] === name);
}

/** Polls an async probe every `everyMs` until it holds; false after `timeoutMs`. */
async function eventually(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** `l4mux backend` / `l4mux reload`, sent straight to the control socket. */
async function control(lab: Lab, mux: 1 | 2, request: Parameters<typeof sendControl>[1]): Promise<Json> {
  return (await sendControl(`${lab.run}/mux${mux}.sock`, request, 30_000)) as unknown as Json;
}

async function http4NewFlows(lab: Lab, mux: 1 | 2): Promise<number> {
  return (await status(lab, mux))['interfaces'][0]['counters']['vips'].find((v: Json) => v['name'] === 'http4')['newFlows'] as number;
}

/** Polls until the router's routes to both VIPs lack `mux`; milliseconds since `start`, or -1. */
async function timeUntilRouterDrops(lab: Lab, mux: number, start: number, timeoutMs: number): Promise<number> {
  const ok = await waitUntil(() => !routerPaths(lab, VIP4).includes(mux) && !routerPaths(lab, VIP6).includes(mux), timeoutMs, 10);
  return ok ? Date.now() - start : -1;
}

function muxPid(lab: Lab, mux: 1 | 2): number {
  return Number(readFileSync(`${lab.run}/mux${mux}.pid`, 'utf8'));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `l4mux run` on a mux again (as start.sh does); resolves once the router has its routes. */
async function startMux(lab: Lab, mux: 1 | 2): Promise<number> {
  const started = Date.now();
  const child = spawn(
    'sh',
    ['-c', `exec ip netns exec ${lab.prefix}-mux${mux} setsid node ${join(root, 'dist/cli/main.js')} run --config ${lab.run}/mux${mux}.json --control ${lab.run}/mux${mux}.sock --pidfile ${lab.run}/mux${mux}.pid >> ${lab.run}/mux${mux}.log 2>&1`],
    { stdio: 'ignore', detached: true },
  );
  child.unref();
  const back = await waitUntil(() => routerPaths(lab, VIP4).includes(mux) && routerPaths(lab, VIP6).includes(mux), 20_000, 50);
  if (!back) throw new Error(`mux${mux} restarted but the router did not learn its routes:\n${readFileSync(`${lab.run}/mux${mux}.log`, 'utf8').slice(-2000)}`);
  return Date.now() - started;
}

/**
 * Long-lived TCP connections from the client to VIP4:80, each sending an HTTP request every
 * 100 ms on the same connection for `seconds`. Reports per connection what it sent and got,
 * and whether it broke (error, close, or a request unanswered at the end).
 */
function longLivedConnections(lab: Lab, count: number, seconds: number): Promise<Array<{ sent: number; got: number; broke: string | null; backends: string[]; lastReplyAt: number }>> {
  const script = `
    const net = require('net');
    const [vip, count, seconds] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
    const conns = [];
    for (let i = 0; i < count; i++) {
      const c = { sent: 0, got: 0, broke: null, backends: new Set(), lastReplyAt: 0, buffer: '' };
      c.socket = net.connect(80, vip);
      c.socket.setNoDelay(true);
      c.socket.on('data', (d) => {
        c.buffer += d;
        let m;
        while ((m = /backend=(backend\\d)[^\\n]*\\n/.exec(c.buffer))) {
          c.got++; c.backends.add(m[1]); c.lastReplyAt = Date.now();
          c.buffer = c.buffer.slice(m.index + m[0].length);
        }
      });
      c.socket.on('error', (e) => { c.broke ??= e.code || e.message; });
      c.socket.on('close', () => { c.broke ??= 'closed'; });
      conns.push(c);
    }
    const tick = setInterval(() => {
      for (const c of conns) if (!c.broke && c.sent === c.got) { c.sent++; c.socket.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\n\\r\\n'); }
    }, 100);
    setTimeout(() => {
      clearInterval(tick);
      // The last request of each connection gets up to 5 s: on this 2-core machine a mux's exit
      // can stall everything for a second, and a stall is not a broken connection (a broken one
      // is reset, closed, or never answers).
      const finishBy = Date.now() + 5000;
      const finish = setInterval(() => {
        if (Date.now() < finishBy && conns.some((c) => !c.broke && c.got < c.sent)) return;
        clearInterval(finish);
        const out = conns.map((c) => ({ sent: c.sent, got: c.got, broke: c.broke ?? (c.got < c.sent ? 'unanswered' : null), backends: [...c.backends], lastReplyAt: c.lastReplyAt }));
        for (const c of conns) c.socket.destroy();
        process.stdout.write(JSON.stringify(out));
        process.exit(0);
      }, 50);
    }, seconds * 1000);`;
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', `${lab.prefix}-client`, 'node', '-e', script, VIP4, String(count), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', () => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`long-lived client printed ${JSON.stringify(out)} ${err}`));
      }
    });
  });
}

describe.skipIf(!isRoot)('BGP in the lab', () => {
  const lab = new Lab('lbgp');
  const measured: string[] = [];
  beforeAll(async () => {
    lab.up('ipip', { muxes: 2, cluster: false });
    // The lab's checks (300 ms timeout, fall 2) see a whole pool down when this shared machine
    // stalls for half a second, and that rightly withdraws the VIP: slower checks here, so that
    // only what a test does moves the announcements.
    for (const mux of [1, 2] as const) {
      const config = lab.muxConfig(mux) as Json;
      Object.assign(config['pools']['web4']['healthCheck'], { interval: 1000, timeout: 2000, fall: 5 });
      lab.writeMuxConfig(mux, config);
      const reloaded = await control(lab, mux, { cmd: 'reload' });
      if (reloaded['ok'] !== true) throw new Error(`reload of mux${mux} failed: ${JSON.stringify(reloaded)}`);
    }
  }, 90_000);
  afterAll(() => {
    lab.down();
    if (measured.length > 0) console.log(`BGP withdrawal times (hold time ${HOLD_MS} ms):\n  ${measured.join('\n  ')}`);
  });

  it('announces every VIP from both muxes on start: the router has ECMP routes learned over BGP', async () => {
    expect(routerPaths(lab, VIP4)).toEqual([1, 2]);
    expect(routerPaths(lab, VIP6)).toEqual([1, 2]);
    expect(routerBird(lab, 'show route')).toMatch(/192\.0\.2\.10\/32\s+unicast \[mux\d_v4/);
    for (const mux of [1, 2] as const) {
      // Health checks run on a shared machine: give a check that timed out once time to recover.
      // The speaker polls BIRD for session states: the router may see a session up before the
      // mux's status does.
      await eventually(async () => {
        const now = await bgpStatus(lab, mux);
        return (now['announcements'] as Json[]).every((a) => a['announced'] === true) && (now['neighbours'] as Json[]).every((n) => n['state'] === 'Established');
      }, 5000);
      const bgp = await bgpStatus(lab, mux);
      expect(bgp['neighbours'].map((n: Json) => [n['name'], n['state'], n['exportedRoutes']])).toEqual([
        ['router_v4', 'Established', 1],
        ['router_v6', 'Established', 1],
      ]);
      expect(bgp['announcements'].map((a: Json) => [a['prefix'], a['announced']])).toEqual([
        ['192.0.2.10/32', true],
        ['2001:db8::10/128', true],
      ]);
      expect(bgp['bird']['state']).toBe('running');
    }
    expect(lab.curl(`http://${VIP4}/`)).toMatch(/^backend=backend\d /);
  });

  it('withdraws a VIP whose pool has no backend taking new flows, and announces it again on recovery', async () => {
    for (const b of B) expect((await control(lab, 1, { cmd: 'backend', pool: 'web4', address: b, state: 'draining' }))['ok']).toBe(true);
    const start = Date.now();
    expect(await waitUntil(() => !routerPaths(lab, VIP4).includes(1), HOLD_MS, 10)).toBe(true);
    measured.push(`pool without usable backend on mux1: route withdrawn after ${Date.now() - start} ms`);
    expect(routerPaths(lab, VIP4)).toEqual([2]);
    expect(routerPaths(lab, VIP6)).toEqual([1, 2]);
    const ann = (await bgpStatus(lab, 1))['announcements'] as Json[];
    expect(ann[0]).toMatchObject({ prefix: '192.0.2.10/32', announced: false });
    expect(ann[0]?.['reason']).toContain('pool web4: no backend takes new flows (3 draining)');
    for (let i = 0; i < 4; i++) expect(lab.curl(`http://${VIP4}/`)).toMatch(/^backend=backend\d /);

    for (const b of B) expect((await control(lab, 1, { cmd: 'backend', pool: 'web4', address: b, state: 'active' }))['ok']).toBe(true);
    expect(await waitUntil(() => routerPaths(lab, VIP4).includes(1), HOLD_MS, 10)).toBe(true);
    expect(routerPaths(lab, VIP4)).toEqual([1, 2]);
  }, 30_000);

  it('survives a router that flaps its session: clear state in status, forwarding unaffected', async () => {
    routerBird(lab, 'disable mux2_v4');
    try {
      expect(await eventually(async () => (await neighbour(lab, 2, 'router_v4'))?.['state'] !== 'Established', 5000)).toBe(true);
      const down = (await neighbour(lab, 2, 'router_v4')) as Json;
      expect(down['established']).toBe(false);
      expect(String(down['lastError'])).toMatch(/Administrative shutdown|Connection refused|Connection reset/);
      expect(routerPaths(lab, VIP4)).toEqual([1]);
      for (let i = 0; i < 4; i++) expect(lab.curl(`http://${VIP4}/`)).toMatch(/^backend=backend\d /);
    } finally {
      routerBird(lab, 'enable mux2_v4');
    }
    expect(await eventually(async () => (await neighbour(lab, 2, 'router_v4'))?.['state'] === 'Established', 10_000)).toBe(true);
    expect(await waitUntil(() => routerPaths(lab, VIP4).includes(2), 5000, 50)).toBe(true);
  }, 30_000);

  it('a neighbour that never comes up, a wrong password and a bad bgp section: clear status, nothing else changes', async () => {
    const original = lab.muxConfig(2);
    const bad = structuredClone(original) as Json;
    bad['bgp']['localAs'] = 'x';
    bad['bgp']['neighbours'][0]['password'] = 'a"b';
    lab.writeMuxConfig(2, bad);
    const refused = await control(lab, 2, { cmd: 'reload' });
    expect(refused['ok']).toBe(false);
    expect(refused['errors']).toContain('bgp.localAs: expected an integer from 1 to 4294967295, got the string "x"');
    expect(refused['errors']).toContain('bgp.neighbours[0].password: use printable ASCII characters other than \'"\' and \'\\\'');
    expect((await neighbour(lab, 2, 'router_v4'))?.['state']).toBe('Established');

    const wrong = structuredClone(original) as Json;
    wrong['bgp']['neighbours'][0]['password'] = 'not-the-routers';
    wrong['bgp']['neighbours'].push({ name: 'nobody', address: '10.201.2.99', as: 65099 });
    lab.writeMuxConfig(2, wrong);
    const reloaded = await control(lab, 2, { cmd: 'reload' });
    expect(reloaded['ok'], JSON.stringify(reloaded)).toBe(true);
    expect(reloaded['changes']).toContain('bgp: neighbour nobody (10.201.2.99 AS65099) added');
    expect(reloaded['changes']).toContain('bgp: neighbour router_v4 changed (its session restarts)');
    expect(await waitUntil(() => !routerPaths(lab, VIP4).includes(2), HOLD_MS, 20)).toBe(true);
    await sleep(2500);
    const v4 = (await neighbour(lab, 2, 'router_v4')) as Json;
    const nobody = (await neighbour(lab, 2, 'nobody')) as Json;
    expect(v4).toMatchObject({ established: false, password: true });
    expect(nobody).toMatchObject({ established: false, address: '10.201.2.99', as: 65099 });
    expect(['Idle', 'Connect', 'Active']).toContain(nobody['state']);
    expect((await neighbour(lab, 2, 'router_v6'))?.['state']).toBe('Established');
    expect(routerPaths(lab, VIP6)).toEqual([1, 2]);
    // mux2 still forwards what reaches it: IPv6 through both muxes.
    for (let i = 0; i < 4; i++) expect(lab.curl(`http://[${VIP6}]/`)).toMatch(/^backend=backend\d /);
    expect(alive(muxPid(lab, 2))).toBe(true);

    lab.writeMuxConfig(2, original);
    expect((await control(lab, 2, { cmd: 'reload' }))['ok']).toBe(true);
    expect(await waitUntil(() => routerPaths(lab, VIP4).includes(2), 10_000, 50)).toBe(true);
    expect(await neighbour(lab, 2, 'nobody')).toBeUndefined();
  }, 40_000);

  it('a silent mux (its BIRD stopped, sessions open): dropped after the hold time, and with BFD after interval x multiplier', async () => {
    const silence = async (label: string, boundMs: number): Promise<void> => {
      const birdPid = ((await bgpStatus(lab, 2))['bird'] as Json)['pid'] as number;
      const start = Date.now();
      process.kill(birdPid, 'SIGSTOP');
      try {
        const ms = await timeUntilRouterDrops(lab, 2, start, boundMs + 2000);
        measured.push(`${label}: route withdrawn after ${ms} ms`);
        expect(ms).toBeGreaterThanOrEqual(0);
        expect(ms).toBeLessThan(boundMs + 2000);
        // Forwarding on mux2 is not BIRD's: what still reaches it is forwarded.
        expect(alive(muxPid(lab, 2))).toBe(true);
      } finally {
        process.kill(birdPid, 'SIGCONT');
      }
      expect(await waitUntil(() => routerPaths(lab, VIP4).includes(2) && routerPaths(lab, VIP6).includes(2), 15_000, 50)).toBe(true);
    };
    await silence('silent mux, no BFD', HOLD_MS);

    const original = lab.muxConfig(2);
    const withBfd = structuredClone(original) as Json;
    withBfd['bgp']['bfd'] = { interval: 100, multiplier: 3 };
    lab.writeMuxConfig(2, withBfd);
    try {
      expect((await control(lab, 2, { cmd: 'reload' }))['ok']).toBe(true);
      expect(await eventually(async () => ((await bgpStatus(lab, 2))['neighbours'] as Json[]).every((n) => n['bfd'] === true && n['established'] === true && n['bfdState'] === 'Up'), 15_000)).toBe(true);
      // The router's BFD sessions to mux2 are up before the test silences it.
      expect(await waitUntil(() => /10\.201\.2\.2\s+rt-m2\s+Up/.test(routerBird(lab, 'show bfd sessions')), 10_000, 100)).toBe(true);
      await silence('silent mux, BFD 100 ms x 3', 300);
    } finally {
      lab.writeMuxConfig(2, original);
      expect((await control(lab, 2, { cmd: 'reload' }))['ok']).toBe(true);
    }
    expect(await waitUntil(() => routerPaths(lab, VIP4).includes(2), 15_000, 50)).toBe(true);
  }, 60_000);

  it('l4mux drain: the router drops the mux at once, long-lived connections keep going through the other (0 broken)', async () => {
    const before = await http4NewFlows(lab, 1);
    const clients = longLivedConnections(lab, 16, 6);
    await sleep(1500);
    const through1 = (await http4NewFlows(lab, 1)) - before;
    const pid = muxPid(lab, 1);
    // The request `l4mux drain --wait 2` sends (the CLI itself takes seconds to load here).
    const start = Date.now();
    const drain = sendControl(`${lab.run}/mux1.sock`, { cmd: 'drain', waitSeconds: 2 }, 30_000);
    const dropped = await timeUntilRouterDrops(lab, 1, start, HOLD_MS);
    measured.push(`l4mux drain: route withdrawn after ${dropped} ms`);
    expect(dropped).toBeGreaterThanOrEqual(0);
    expect(await drain).toEqual({ ok: true, withdrawn: ['192.0.2.10', '2001:db8::10'], waitedSeconds: expect.any(Number), stopping: true });
    expect(await waitUntil(() => !alive(pid), 10_000, 50)).toBe(true);
    const drainedAt = Date.now();
    const results = await clients;
    measured.push(`l4mux drain: ${results.length} long-lived connections (${through1} started on mux1), ${results.reduce((n, r) => n + r.got, 0)} requests answered, ${results.filter((r) => r.broke !== null).length} broken`);
    expect(through1, 'connections that started on mux1').toBeGreaterThan(0);
    expect(results.filter((r) => r.broke !== null)).toEqual([]);
    // Every connection still got answers after mux1 had stopped.
    expect(results.filter((r) => r.lastReplyAt < drainedAt)).toEqual([]);
    expect(routerPaths(lab, VIP4)).toEqual([2]);
  }, 40_000);

  it('SIGTERM and SIGKILL of a mux: the router loses its route within the hold time, and BIRD dies with the daemon', async () => {
    measured.push(`mux1 restarted: announced again after ${await startMux(lab, 1)} ms`);
    let start = Date.now();
    process.kill(muxPid(lab, 1), 'SIGTERM');
    const term = await timeUntilRouterDrops(lab, 1, start, HOLD_MS);
    measured.push(`SIGTERM: route withdrawn after ${term} ms`);
    expect(term).toBeGreaterThanOrEqual(0);
    expect(await waitUntil(() => !existsSync(`${lab.run}/mux1.sock`), 10_000, 50)).toBe(true);

    await startMux(lab, 1);
    const birdPid = ((await bgpStatus(lab, 1))['bird'] as Json)['pid'] as number;
    expect(alive(birdPid)).toBe(true);
    start = Date.now();
    process.kill(muxPid(lab, 1), 'SIGKILL');
    const kill = await timeUntilRouterDrops(lab, 1, start, HOLD_MS);
    measured.push(`SIGKILL: route withdrawn after ${kill} ms`);
    expect(kill).toBeGreaterThanOrEqual(0);
    expect(await waitUntil(() => !alive(birdPid), 2000, 20)).toBe(true);
    for (let i = 0; i < 4; i++) expect(lab.curl(`http://${VIP4}/`)).toMatch(/^backend=backend\d /);
  }, 60_000);
});
