// Client persistence with real packets through real `l4mux run` daemons (AF_PACKET I/O, AF_XDP
// in the last step) in the lab's namespaces: two muxes behind the router, four backends, the
// persistent VIP sticky4 (192.0.2.10 TCP 8080), clients with addresses of their own on the
// client's interface.
// The store is a real etcd run in the router's namespace (both muxes reach it), then each mux's
// embedded store for the restart. Bounded: every flood has a packet count and a duration.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sendControl } from '../../src/api/client.js';
import type { ControlRequest } from '../../src/api/protocol.js';
import { Connections } from '../support/connections.js';
import { hasEtcd, TestEtcd } from '../support/etcd.js';
import { isRoot, Lab, root, sleep, VIP4, waitUntil, type Mux } from '../support/lab.js';

type Json = Record<string, any>;
const pktgen = join(root, 'build/bench/l4mux_pktgen');
const PUNT_SLOTS = 256;
const PREFIX = '/lab/persistence/';

/** The client addresses 10.200.0.FIRST .. FIRST + n - 1. */
const clients = (first: number, n: number): string[] => Array.from({ length: n }, (_, i) => `10.200.0.${first + i}`);

describe.skipIf(!isRoot || !hasEtcd)('client persistence in the lab (real daemons, real connections)', () => {
  const lab = new Lab('lpers');
  const etcd = new TestEtcd({ netns: `${lab.prefix}-router`, address: '10.201.1.1' });

  /** Restarts the muxes with AF_PACKET (or AF_XDP), the etcd store (or the embedded one) and sticky4's timeout. */
  async function configure(store: 'etcd' | 'embedded', timeout: number, muxes: readonly Mux[] = [1, 2], io: 'af_packet' | 'af_xdp' = 'af_packet'): Promise<void> {
    await lab.restartMuxes(muxes, (config, m) => {
      config['node']['io'] = io;
      // Health checks that a loaded machine does not fail (a backend marked down moves its clients).
      Object.assign(config['pools']['web4']['healthCheck'] as Json, { timeout: 1000, fall: 3 });
      const p = config['persistence'] as Json;
      p['store'] = store;
      p['storeTimeout'] = 500;
      if (store === 'etcd') p['etcd'] = { endpoints: [`http://10.201.${m}.1:2379`], prefix: PREFIX, timeout: 500 };
      else delete p['etcd'];
      for (const v of config['vips'] as Json[]) if (v['name'] === 'sticky4') v['persistence']['timeout'] = timeout;
    });
  }

  /** One connection after the other from each address (in parallel over the addresses): who answered. */
  function requests(addresses: readonly string[], per: number): Record<string, string[]> {
    const out = lab.exec('client', ['node', join(root, 'scripts/lab/requests.mjs'), VIP4, '8080', String(per), ...addresses], 60_000);
    return (JSON.parse(out) as { backends: Record<string, string[]> }).backends;
  }

  const sock = (m: Mux): string => `${lab.run}/mux${m}.sock`;
  async function control(m: Mux, request: ControlRequest): Promise<Json> {
    const r = (await sendControl(sock(m), request)) as Json;
    if (r['ok'] !== true) throw new Error(`mux${m} ${request.cmd}: ${JSON.stringify(r)}`);
    return r;
  }
  /**
   * The backend mux m's table has for each client ('' when none), as "backendN". One request
   * after the other: the daemon serves at most 16 control connections at once and refuses the
   * rest (20 in parallel were refused, and the ones still open then refused the next reload).
   */
  async function tableBackends(m: Mux, of: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const client of of) {
      const e = await control(m, { cmd: 'persistence', vip: 'sticky4', client });
      const b = (e['interfaces'] as Json[])[0]?.['backend'] as string | null | undefined;
      out.push(b === null || b === undefined ? '' : `backend${b.split('.')[2]}`);
    }
    return out;
  }
  const tableBackend = async (m: Mux, client: string): Promise<string> => (await tableBackends(m, [client]))[0] as string;
  /** etcd's backend for each client, as "backendN" ('' when none). */
  const stored = (of: readonly string[]): string[] => {
    const keys = etcd.entries(PREFIX);
    return of.map((c) => {
      const b = keys.get(`sticky4/${c}`);
      return b === undefined ? '' : `backend${b.split('.')[2]}`;
    });
  };

  const persistence = async (m: Mux): Promise<Json> => (await control(m, { cmd: 'status' }))['status']['services']['persistence'] as Json;
  const table = async (m: Mux): Promise<Json> => (await persistence(m))['tables']['eth0'] as Json;
  const slowPath = async (m: Mux): Promise<Json> => (await persistence(m))['slowPath'] as Json;

  /**
   * Polls `probe` (async) every `everyMs` until it is true; false after `timeoutMs`. A probe that
   * throws (etcd restarting) counts as not yet, but a refusal by a mux's control socket fails at
   * once: it is the test's fault, not the state it waits for.
   */
  async function eventually(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (await probe()) return true;
      } catch (e) {
        if (e instanceof Error && e.message.includes('too many control connections')) throw e;
      }
      if (Date.now() >= deadline) return false;
      await sleep(everyMs);
    }
  }

  /** A backend's weight on both muxes (the control socket: no process to start on a loaded machine). */
  async function setWeight(address: string, weight: number): Promise<void> {
    await Promise.all(([1, 2] as const).map((m) => control(m, { cmd: 'backend', pool: 'web4', address, weight })));
  }

  /** sticky4's timeout, by a reload of both muxes (entries made from now on take it). */
  function setStickyTimeout(seconds: number): void {
    for (const m of [1, 2] as const) {
      const config = lab.muxConfig(m) as Json;
      for (const v of config['vips'] as Json[]) if (v['name'] === 'sticky4') v['persistence']['timeout'] = seconds;
      lab.writeMuxConfig(m, config);
      const r = lab.reload(m);
      if (r.status !== 0) throw new Error(`l4mux reload: ${r.stdout} ${r.stderr}`);
    }
  }

  beforeAll(async () => {
    lab.up('ipip', { muxes: 2, backends: 4, cluster: false });
    // The clients: addresses of their own on the client's interface.
    for (const a of clients(10, 110)) lab.exec('client', ['ip', 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
    await etcd.start();
    await configure('etcd', 30);
    lab.steer([1]);
  }, 180_000);

  afterAll(async () => {
    // L4MUX_LAB_KEEP_LOGS=DIR: the daemons' logs are copied there first (for a failed run).
    const keep = process.env['L4MUX_LAB_KEEP_LOGS'];
    if (keep !== undefined) spawnSync('bash', ['-c', `mkdir -p ${keep} && cp ${lab.run}/*.log ${keep}/`], { stdio: 'ignore' });
    lab.down();
    await etcd.remove();
  });

  it('keeps each client on one backend over time and over both muxes while a backend is added and weights change', async () => {
    const old = clients(10, 20);
    const first = requests(old, 2);
    const home = old.map((c) => first[c]?.[0] ?? '');
    old.forEach((c, i) => {
      expect(home[i], `${c} was answered`).toMatch(/^backend[123]$/);
      expect(first[c], c).toEqual([home[i], home[i]]);
    });
    expect(stored(old)).toEqual(home);
    // The other mux learns the entries from etcd (the watch) before it sees the clients.
    expect(await eventually(async () => JSON.stringify(await tableBackends(2, old)) === JSON.stringify(home), 20_000)).toBe(true);

    lab.steer([2]);
    const hits2 = (await table(2))['hits'] as number;
    const viaMux2 = requests(old, 2);
    old.forEach((c, i) => expect(viaMux2[c], c).toEqual([home[i], home[i]]));
    expect(((await table(2))['hits'] as number) - hits2).toBeGreaterThanOrEqual(2 * old.length);  // decided by mux2's table

    // A fourth backend joins the pool, with a weight that would take most new clients.
    for (const m of [1, 2] as const) {
      const config = lab.muxConfig(m) as Json;
      (config['pools']['web4']['backends'] as Json[]).push({ address: '10.202.4.2', weight: 30 });
      lab.writeMuxConfig(m, config);
      expect(lab.reload(m).status).toBe(0);
    }
    const healthy = (m: Mux): boolean => lab.status(m).pools['web4']?.backends.find((b) => b.address === '10.202.4.2')?.healthy === true;
    expect(await waitUntil(() => healthy(1) && healthy(2), 30_000, 250)).toBe(true);
    await setWeight('10.202.2.2', 10);

    lab.steer([1, 2]);  // the router's ECMP over both muxes (L4 hash: per connection)
    const hits = [(await table(1))['hits'] as number, (await table(2))['hits'] as number];
    const later = requests(old, 3);
    old.forEach((c, i) => expect(later[c], c).toEqual([home[i], home[i], home[i]]));
    expect(((await table(1))['hits'] as number) - (hits[0] as number)).toBeGreaterThan(0);
    expect(((await table(2))['hits'] as number) - (hits[1] as number)).toBeGreaterThan(0);
    // New clients do see the new pool: most go to the new backend.
    const fresh = requests(clients(40, 20), 1);
    const newcomers = Object.values(fresh).map((b) => b[0]);
    expect(newcomers.every((b) => /^backend[1-4]$/.test(b ?? ''))).toBe(true);
    expect(newcomers.filter((b) => b === 'backend4').length).toBeGreaterThan(0);
    await setWeight('10.202.2.2', 1);
  }, 150_000);

  it('schedules a client anew after `timeout` of silence (it can move then), counted from its last connection\'s end', async () => {
    setStickyTimeout(5);  // new entries take it (short; 3 s left too little room at load 27)
    const group = clients(60, 20);
    await setWeight('10.202.4.2', 1);
    const before = requests(group, 1);
    const home = group.map((c) => before[c]?.[0] ?? '');
    group.forEach((c, i) => expect(home[i], c).toMatch(/^backend[1-4]$/));
    // Now backend1 would take nearly every new client; entries hold while they are live.
    await setWeight('10.202.1.2', 40);
    const still = requests(group, 1);
    group.forEach((c, i) => expect(still[c], c).toEqual([home[i]]));

    // Silence: the entries go from both muxes' tables and from etcd (the lease).
    const none = group.map(() => '');
    const gone = async (): Promise<boolean> =>
      JSON.stringify(await tableBackends(1, group)) === JSON.stringify(none) &&
      JSON.stringify(await tableBackends(2, group)) === JSON.stringify(none) &&
      JSON.stringify(stored(group)) === JSON.stringify(none);
    expect(await eventually(gone, 20_000)).toBe(true);
    const after = requests(group, 1);
    const moved = group.filter((c, i) => after[c]?.[0] !== home[i]);
    for (const c of group) expect(after[c]?.[0], c).toMatch(/^backend[1-4]$/);
    expect(moved.length, JSON.stringify({ home, after })).toBeGreaterThan(0);
    expect(group.filter((c) => after[c]?.[0] === 'backend1').length).toBeGreaterThan(group.length / 2);
    await setWeight('10.202.1.2', 1);

    // Open connections count as activity: longer than the timeout without a new connection,
    // their packets keep the client's entry on both muxes; it expires `timeout` after their end.
    lab.steer([1, 2]);
    const conns = new Connections(lab, 10, 8080);
    let own = '';
    try {
      expect((await conns.allAnswered(10)).answered).toBe(10);
      own = await tableBackend(1, '10.200.0.2');
      expect(own).toMatch(/^backend[1-4]$/);
      await sleep(7000);  // longer than the timeout
      expect(await tableBackend(1, '10.200.0.2')).toBe(own);
      expect(await tableBackend(2, '10.200.0.2')).toBe(own);
      expect(Object.keys((await conns.report()).backends)).toEqual([own]);
    } finally {
      conns.close();
    }
    const closed = Date.now();
    await sleep(1000);
    expect(await tableBackend(1, '10.200.0.2')).toBe(own);  // a second after their end: still there
    expect(await eventually(async () => (await tableBackend(1, '10.200.0.2')) === '' && (await tableBackend(2, '10.200.0.2')) === '', 15_000, 200)).toBe(true);
    expect(Date.now() - closed).toBeGreaterThanOrEqual(4000);
  }, 150_000);

  it('etcd stopped under load: traffic flows, decisions are local and counted; etcd back: every entry converges', async () => {
    setStickyTimeout(30);  // the local decisions outlive the outage
    lab.steer([1, 2]);
    const conns = new Connections(lab, 20, 8080);
    try {
      expect((await conns.allAnswered(20)).answered).toBe(20);
      await conns.mark();
      const local = [(await slowPath(1))['counters']['localDecisions'] as number, (await slowPath(2))['counters']['localDecisions'] as number];
      await etcd.stop();

      // New clients, each seen by both muxes while the store is away: each decides alone.
      const group = clients(85, 15);
      lab.steer([1]);
      const via1 = requests(group, 1);
      lab.steer([2]);
      const via2 = requests(group, 1);
      lab.steer([1, 2]);
      for (const c of group) {
        expect(via1[c]?.[0], c).toMatch(/^backend[1-4]$/);
        expect(via2[c]?.[0], c).toMatch(/^backend[1-4]$/);
      }
      const during = [await slowPath(1), await slowPath(2)];
      expect((during[0]?.['counters']['localDecisions'] as number) - (local[0] as number)).toBeGreaterThanOrEqual(group.length);
      expect((during[1]?.['counters']['localDecisions'] as number) - (local[1] as number)).toBeGreaterThanOrEqual(group.length);
      expect(during[0]?.['store']['available']).toBe(false);
      expect(during[1]?.['store']['available']).toBe(false);
      expect(during[0]?.['localPending']).toBeGreaterThanOrEqual(group.length);

      await etcd.start();
      // Reconciled: etcd, mux1's and mux2's tables name one backend for every client.
      let last = '';
      const converged = async (): Promise<boolean> => {
        const [inEtcd, on1, on2] = [stored(group), await tableBackends(1, group), await tableBackends(2, group)];
        last = JSON.stringify({ inEtcd, on1, on2 });
        return inEtcd.every((b) => b !== '') && JSON.stringify(inEtcd) === JSON.stringify(on1) && JSON.stringify(on1) === JSON.stringify(on2);
      };
      expect(await eventually(converged, 30_000), last).toBe(true);
      const agreed = stored(group);
      // Every local decision (these and any other client's) is offered to etcd within seconds.
      expect(await eventually(async () => (await slowPath(1))['localPending'] === 0 && (await slowPath(2))['localPending'] === 0, 15_000)).toBe(true);
      const after = [await slowPath(1), await slowPath(2)];
      expect(after[0]?.['store']['available']).toBe(true);
      expect(after[1]?.['store']['available']).toBe(true);
      expect((after[0]?.['counters']['reconciled'] as number) + (after[1]?.['counters']['reconciled'] as number)).toBeGreaterThanOrEqual(2 * group.length);
      // Their next connections, through either mux, go to the agreed backend.
      const next = requests(group, 2);
      group.forEach((c, i) => expect(next[c], c).toEqual([agreed[i], agreed[i]]));

      const settled = await conns.settled();
      expect(settled.broken, JSON.stringify(settled.reasons)).toBe(0);
    } finally {
      conns.close();
    }
  }, 150_000);

  it.skipIf(!existsSync(pktgen))('a SYN flood from 65536 spoofed clients stays bounded (overflow counted); established flows and clients with entries are unaffected', async () => {
    lab.steer([1, 2]);
    const conns = new Connections(lab, 20, 8080);
    try {
      expect((await conns.allAnswered(20)).answered).toBe(20);
      await conns.mark();
      const known = clients(20, 10);
      const home = requests(known, 1);
      // Both muxes have their entries before the flood (the one that did not decide learns them
      // from etcd's watch, which the flood may slow down).
      const want = known.map((c) => home[c]?.[0] ?? '');
      expect(await eventually(async () => JSON.stringify(await tableBackends(1, known)) === JSON.stringify(want) && JSON.stringify(await tableBackends(2, known)) === JSON.stringify(want), 20_000)).toBe(true);
      const before = await table(1);

      const mac = (ns: string, dev: string): string => (JSON.parse(lab.exec(ns, ['ip', '-j', 'link', 'show', 'dev', dev])) as Json[])[0]?.['address'] as string;
      // Straight onto mux1's link from the router's side: 20000 SYNs at most, 4 s at most
      // (5000 a second: far more new clients than the slow path takes in, little enough that
      // the backends' health checks still answer on this shared machine).
      const flood = spawn('ip', ['netns', 'exec', `${lab.prefix}-router`, pktgen, '--interface', 'rt-m1', '--dst-mac', mac('mux1', 'eth0'), '--src-mac', mac('router', 'rt-m1'),
        '--src', '10.210.0.0', '--sources', '65536', '--flows', '65536', '--dst', VIP4, '--dport', '8080', '--rate', '5000', '--count', '20000', '--duration', '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let report = '';
      flood.stdout.on('data', (d: Buffer) => (report += d.toString()));
      let running = true;
      const done = new Promise<void>((resolve) => flood.on('exit', () => {
        running = false;
        resolve();
      }));
      // Meanwhile the held packets never exceed the punt slots, and known clients keep their backends.
      let maxHeld = 0;
      const during: Array<Record<string, string[]>> = [];
      while (running) {
        maxHeld = Math.max(maxHeld, (await table(1))['held'] as number);
        during.push(requests(known, 1));
      }
      await done;
      const sent = JSON.parse(report) as { sent: number; seconds: number };
      expect(sent.sent).toBeGreaterThan(5000);
      expect(sent.sent).toBeLessThanOrEqual(20_000);

      const after = await table(1);
      expect(maxHeld).toBeLessThanOrEqual(PUNT_SLOTS);
      expect((after['punted'] as number) - (before['punted'] as number)).toBeGreaterThan(0);
      const overflow = (after['puntOverflow'] as number) - (before['puntOverflow'] as number);
      const drops = lab.status(1).interfaces[0]?.counters.drops ?? {};
      expect(overflow, JSON.stringify({ after, drops })).toBeGreaterThan(0);
      expect(drops['persistence_punt_overflow'] ?? 0).toBeGreaterThan(0);
      expect(during.length).toBeGreaterThan(0);
      for (const round of during) for (const c of known) expect(round[c], `${c}: ${JSON.stringify({ after, slow: await slowPath(1) })}`).toEqual(home[c]);
      const settled = await conns.settled();
      expect(settled.broken, JSON.stringify({ reasons: settled.reasons, mux1: lab.status(1).interfaces[0] })).toBe(0);
      // And the mux still takes new clients.
      const fresh = requests(clients(35, 3), 1);
      for (const b of Object.values(fresh)) expect(b[0]).toMatch(/^backend[1-4]$/);
    } finally {
      conns.close();
    }
  }, 150_000);

  it('a restarted daemon (embedded store) still has the client\'s entry and sends its next connection to the same backend', async () => {
    await configure('embedded', 60, [1]);
    lab.steer([1]);
    const group = clients(100, 10);
    const before = requests(group, 1);
    const home = group.map((c) => before[c]?.[0] ?? '');
    group.forEach((c, i) => expect(home[i], c).toMatch(/^backend[1-4]$/));
    // Restarted (from the same config): the state file has the entries.
    await configure('embedded', 60, [1]);
    expect(await tableBackends(1, group)).toEqual(home);
    // As the operator sees it.
    const cli = lab.l4mux('mux1', ['persistence', 'sticky4', group[0] as string, '--json', '--control', sock(1)]);
    expect(cli.status, cli.stderr).toBe(0);
    const shown = JSON.parse(cli.stdout) as Json;
    expect(shown['store']).toBe('embedded');
    expect(shown['slowPath']['backend']).toBe(`10.202.${(home[0] as string).slice(7)}.2`);
    const after = requests(group, 2);
    group.forEach((c, i) => expect(after[c], c).toEqual([home[i], home[i]]));
  }, 150_000);

  it('with AF_XDP on both muxes: a new client is decided once (etcd) and its next connections hit either mux\'s table', async () => {
    await configure('etcd', 30, [1, 2], 'af_xdp');
    for (const m of [1, 2] as const) expect(lab.status(m).interfaces[0]?.io.mode, `mux${m}`).toBe('af_xdp');
    const group = clients(110, 10);
    lab.steer([1]);
    const punted = (await table(1))['punted'] as number;
    const first = requests(group, 1);
    const home = group.map((c) => first[c]?.[0] ?? '');
    group.forEach((c, i) => expect(home[i], c).toMatch(/^backend[1-4]$/));
    expect(((await table(1))['punted'] as number) - punted).toBeGreaterThanOrEqual(group.length);  // through the slow path
    expect(stored(group)).toEqual(home);
    expect(await eventually(async () => JSON.stringify(await tableBackends(2, group)) === JSON.stringify(home), 20_000)).toBe(true);
    lab.steer([1, 2]);
    const hits = [(await table(1))['hits'] as number, (await table(2))['hits'] as number];
    const later = requests(group, 3);
    group.forEach((c, i) => expect(later[c], c).toEqual([home[i], home[i], home[i]]));
    // Decided by the tables (the known clients' SYNs are hits, not punts), on both muxes.
    expect(((await table(1))['hits'] as number) - (hits[0] as number)).toBeGreaterThan(0);
    expect(((await table(2))['hits'] as number) - (hits[1] as number)).toBeGreaterThan(0);
  }, 150_000);
});
