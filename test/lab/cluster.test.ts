// The cluster in the netns lab: three muxes behind the ECMP router, four backends. 300
// long-lived TCP connections (one request every 200 ms each, the answering backend checked)
// through three steps: (1) at once, the route moves from {mux1, mux2} to {mux2, mux3} and a
// fourth backend joins every mux's pool; (2) weights change and mux1 comes back; (3) a mux
// is SIGKILLed and the router drops it. With connection-table sync no connection breaks; the
// same run without the cluster section is the baseline (a quarter of the moved flows break at
// step 1). Then wrr and wlc flows that cross muxes, and bad sync input sent to a mux. Needs root; builds and removes its own namespaces.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { Connections } from '../support/connections.js';
import { isRoot, Lab, root, sleep, VIP4, waitUntil, type Mux } from '../support/lab.js';

type Json = Record<string, any>;
const MUXES: readonly Mux[] = [1, 2, 3];
const CONNECTIONS = 300;

/** Rewrites every mux's config with `change` and reloads them all at once. */
async function reloadAll(lab: Lab, muxes: readonly Mux[], change: (config: Json) => void): Promise<void> {
  for (const m of muxes) {
    const config = lab.muxConfig(m) as Json;
    change(config);
    lab.writeMuxConfig(m, config);
  }
  const results = await Promise.all(muxes.map((m) => lab.l4muxAsync(`mux${m}`, ['reload', '--control', `${lab.run}/mux${m}.sock`])));
  for (const r of results) expect(r.status, r.stderr).toBe(0);
}

/** What broke per step, of how many connections (300 long-lived ones, or 24 handshakes). */
const figures: Array<{ encap: string; sync: boolean; step: string; broken: number; of: number; reasons: Record<string, number> }> = [];

function clusterOf(lab: Lab, m: Mux): Json | undefined {
  const r = lab.l4mux(`mux${m}`, ['status', '--control', `${lab.run}/mux${m}.sock`]);
  if (r.status !== 0) return undefined;
  return (JSON.parse(r.stdout) as Json)['services']?.['cluster'] as Json | undefined;
}

describe.skipIf(!isRoot)('cluster lab: three muxes, four backends', () => {
  // One lab for every test here (building one takes long on a loaded machine). Its agents take
  // keyed GRE; the VIPs switch encapsulation by config.
  const lab = new Lab('clus');
  let base: Json[] = [];
  afterAll(() => {
    lab.down();
    if (figures.length === 0) return;
    console.log('connections broken per step (broken/of):');
    for (const f of figures) console.log(`  ${f.encap.padEnd(4)} sync ${f.sync ? 'on ' : 'off'}  ${f.step.padEnd(34)} ${`${f.broken}/${f.of}`.padStart(7)}  ${JSON.stringify(f.reasons)}`);
  });

  /** Every mux restarted with its config as the lab built it, `encap` on every VIP, with or without the cluster. */
  async function restart(encap: 'ipip' | 'gre' | 'gue', sync: boolean): Promise<void> {
    await lab.restartMuxes(MUXES, (config, m) => {
      for (const key of Object.keys(config)) delete config[key];
      Object.assign(config, structuredClone(base[m - 1]));
      for (const v of config['vips'] as Json[]) {
        v['encapsulation'] = encap;
        if (encap === 'gre') v['gre'] = { key: 42 };
        else delete v['gre'];
      }
      // No health checks: a new backend takes flows at once (the table change of step 1 is
      // immediate), and a loaded machine cannot mark a backend down, which would move its
      // flows for reasons these tests are not about.
      delete config['pools']['web4'].healthCheck;
      if (!sync) delete config['cluster'];
    });
    if (sync) expect(await waitUntil(() => MUXES.every((m) => clusterOf(lab, m)?.['ready'] === true), 20_000, 200)).toBe(true);
  }

  async function scenario(encap: 'ipip' | 'gre' | 'gue', sync: boolean): Promise<number[]> {
    await restart(encap, sync);
    lab.steer([1, 2]);
    const c = new Connections(lab, CONNECTIONS);
    try {
      const r = await c.allAnswered(CONNECTIONS);
      expect(r.answered, JSON.stringify(r)).toBe(CONNECTIONS);
      const broken: number[] = [];
      const step = async (name: string, act: () => Promise<void> | void, settleMs: number): Promise<void> => {
        await c.mark();
        await act();
        await sleep(settleMs);
        const { broken: n, reasons } = await c.settled();
        figures.push({ encap, sync, step: name, broken: n, of: CONNECTIONS, reasons });
        broken.push(n);
      };
      await step(
        'route {1,2}->{2,3} + 4th backend',
        async () => {
          // The route moves as soon as the muxes run the new table (the reloads return then).
          await reloadAll(lab, MUXES, (config) => config['pools']['web4'].backends.push({ address: '10.202.4.2' }));
          lab.steer([2, 3]);
        },
        4000,
      );
      await step(
        'weights change + mux1 back',
        async () => {
          await reloadAll(lab, MUXES, (config) => {
            const backends = config['pools']['web4'].backends as Json[];
            (backends[0] as Json)['weight'] = 3;
            (backends[3] as Json)['weight'] = 2;
          });
          lab.steer([1, 2, 3]);
        },
        3000,
      );
      await step(
        'mux2 SIGKILLed, router drops it',
        () => {
          lab.killMux(2);
          lab.steer([1, 3]);
        },
        4000,
      );
      return broken;
    } finally {
      c.close();
    }
  }

  it('builds the lab', () => {
    lab.up('gre', { cluster: true, backends: 4 });
    base = MUXES.map((m) => lab.muxConfig(m) as Json);
  }, 90_000);

  for (const encap of ['ipip', 'gre', 'gue'] as const) {
    it(`${encap}: 300 long-lived connections, (almost) none broken at any step with sync; the same run without sync breaks a fifth at step 1`, async () => {
      const withSync = await scenario(encap, true);
      const without = await scenario(encap, false);
      // The target is 0 at every step. The weights change broke none in every recorded run (here
      // and in the README); under a load average of 20 on two cores a few connections still break
      // at the route move and more at the SIGKILL (2026-12-04 at load 20-25: ipip 0, 0, 17; gre
      // 0, 0, 0; gue 1, 0, 0; every one an ECONNRESET at the client; the README's account of the
      // kill step: a mux deciding a flow it newly backs before the survivors' transfer came).
      const mine = JSON.stringify(figures.filter((f) => f.encap === encap && f.sync));
      expect(withSync[0], mine).toBeLessThanOrEqual(3);
      expect(withSync[1], mine).toBe(0);
      expect(withSync[2], mine).toBeLessThanOrEqual(20);
      // The baseline shows what the test can see: Maglev alone loses about a quarter of the
      // flows that change mux while the table changes.
      expect(without[0]).toBeGreaterThan(30);
    }, 240_000);
  }

  function setScheduler(scheduler: string): void {
    for (const m of MUXES) {
      const config = lab.muxConfig(m) as Json;
      for (const v of config['vips'] as Json[]) if (v['name'] === 'http4') v['scheduler'] = scheduler;
      lab.writeMuxConfig(m, config);
      const r = lab.reload(m);
      expect(r.status, r.stderr).toBe(0);
    }
  }

  it('wrr and wlc: connections whose packets reach two muxes stay on one backend', async () => {
    await restart('ipip', true);
    for (const scheduler of ['wrr', 'wlc'] as const) {
      setScheduler(scheduler);
      lab.steer([1]);
      const c = new Connections(lab, 24);
      try {
        let r = await c.allAnswered(24);
        expect(r.answered, JSON.stringify(r)).toBe(24);
        await c.mark();
        // Every mux decides wrr/wlc alone: without the entries, mux2 and mux3 would pick
        // backends of their own for these flows.
        lab.steer([2]);
        await sleep(1500);
        lab.steer([3]);
        await sleep(1500);
        r = await c.report();
        expect(r.step.broken, `${scheduler}: ${JSON.stringify(r.step)}`).toBe(0);
        expect(r.open).toBe(24);
      } finally {
        c.close();
      }
    }
  }, 150_000);

  // nftables in the lab's namespaces (table l4syn): sets of the client ports whose SYN a
  // namespace saw, and the client dropping the SYN-ACKs of the test's ports.
  const SYN_CONNECTIONS = 24;
  const nft = (ns: string, command: string): string => lab.exec(ns, ['nft', command]);
  function synSet(ns: string, hook: 'input' | 'forward', set: string, match: string, portRange: string): void {
    nft(ns, 'add table inet l4syn');
    nft(ns, `add chain inet l4syn ${hook} { type filter hook ${hook} priority 0 ; }`);
    nft(ns, `add set inet l4syn ${set} { type inet_service ; flags dynamic ; }`);
    nft(ns, `add rule inet l4syn ${hook} ${match} tcp dport 80 tcp sport ${portRange} tcp flags & (syn|ack) == syn add @${set} { tcp sport }`);
  }
  function ports(ns: string, set: string): Set<number> {
    const out = JSON.parse(lab.exec(ns, ['nft', '-j', `list set inet l4syn ${set}`])) as { nftables: Array<{ set?: { elem?: Array<number | { elem: { val: number } }> } }> };
    const elems = out.nftables.find((o) => o.set)?.set?.elem ?? [];
    return new Set(elems.map((e) => (typeof e === 'number' ? e : e.elem.val)));
  }

  /**
   * Opens SYN_CONNECTIONS connections from ports first.. through mux1 while the client drops every
   * SYN-ACK, moves the route to {mux2, mux3} before the client's first SYN retransmission,
   * then lets the SYN-ACKs through. Returns, per port, the backends that saw one of its SYNs
   * and the one that answered.
   */
  async function retransmittedSyns(first: number): Promise<Array<{ port: number; synAt: string[]; answeredBy: string; viaFirst: boolean; viaOther: boolean }>> {
    const backends = [1, 2, 3, 4];
    const count = SYN_CONNECTIONS;
    const portRange = `${first}-${first + count - 1}`;
    const synPorts = Array.from({ length: count }, (_, i) => first + i);
    for (const ns of ['client', 'router', ...backends.map((b) => `b${b}`)]) spawnSync('ip', ['netns', 'exec', `${lab.prefix}-${ns}`, 'nft', 'delete table inet l4syn'], { stdio: 'ignore' });
    for (const b of backends) synSet(`b${b}`, 'input', 'syns', 'iifname "l4tun0"', portRange);
    synSet('router', 'forward', 'via1', 'oifname "rt-m1"', portRange);
    nft('router', 'add set inet l4syn via23 { type inet_service ; flags dynamic ; }');
    nft('router', `add rule inet l4syn forward oifname { "rt-m2", "rt-m3" } tcp dport 80 tcp sport ${portRange} tcp flags & (syn|ack) == syn add @via23 { tcp sport }`);
    nft('client', 'add table inet l4syn');
    nft('client', 'add chain inet l4syn input { type filter hook input priority 0 ; }');
    nft('client', `add rule inet l4syn input tcp sport 80 tcp dport ${portRange} tcp flags & (syn|ack) == (syn|ack) drop`);
    lab.steer([1]);
    let stderr = '';
    const client = new Promise<Record<string, string>>((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', `${lab.prefix}-client`, 'node', join(root, 'scripts/lab/handshakes.mjs'), VIP4, String(first), String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('exit', () => {
        try {
          resolve(JSON.parse(out) as Record<string, string>);
        } catch {
          reject(new Error(`handshakes.mjs printed ${JSON.stringify(out)} ${stderr}`));
        }
      });
    });
    client.catch(() => undefined); // awaited below; a failure before that is the test's
    // The first SYNs go through mux1 and reach their backends (whose SYN-ACKs the client
    // drops); the client retransmits after 1 s, through mux2 or mux3 by then.
    const firstSyns = await waitUntil(() => ports('router', 'via1').size === count, 5000, 20);
    expect(firstSyns, `first SYNs through mux1: ${[...ports('router', 'via1')].join(' ')} ${stderr}`).toBe(true);
    lab.steer([2, 3]);
    expect(await waitUntil(() => ports('router', 'via23').size === count, 5000, 50), 'retransmitted SYNs through mux2/mux3').toBe(true);
    nft('client', 'delete table inet l4syn');
    const answers = await client;
    const seen = new Map(backends.map((b) => [b, ports(`b${b}`, 'syns')]));
    const via1 = ports('router', 'via1');
    const via23 = ports('router', 'via23');
    return synPorts.map((port) => ({
      port,
      synAt: backends.filter((b) => seen.get(b)?.has(port)).map((b) => `backend${b}`),
      answeredBy: answers[String(port)] ?? 'no answer',
      viaFirst: via1.has(port),
      viaOther: via23.has(port),
    }));
  }

  it('a SYN retransmitted through another mux during the handshake lands on the same backend (random scheduler); without the cluster it does not', async () => {
    const split = (rs: Awaited<ReturnType<typeof retransmittedSyns>>): number => rs.filter((r) => r.synAt.length !== 1).length;
    await restart('ipip', true);
    setScheduler('random');
    const withSync = await retransmittedSyns(61100);
    await restart('ipip', false);
    setScheduler('random');
    const without = await retransmittedSyns(61200);
    figures.push({ encap: 'ipip', sync: true, step: 'SYN retransmitted via another mux', broken: split(withSync), of: SYN_CONNECTIONS, reasons: {} });
    figures.push({ encap: 'ipip', sync: false, step: 'SYN retransmitted via another mux', broken: split(without), of: SYN_CONNECTIONS, reasons: {} });
    // Every connection's first SYN went through mux1 and its retransmission through another mux.
    for (const r of [...withSync, ...without]) expect(r.viaFirst && r.viaOther, JSON.stringify(r)).toBe(true);
    // With the cluster: all of a connection's SYNs reached one backend, which answered.
    for (const r of withSync) {
      expect(r.synAt, JSON.stringify(r)).toHaveLength(1);
      expect(r.answeredBy, JSON.stringify(r)).toBe(r.synAt[0]);
    }
    // Without it the mux the retransmission reaches picks at random: two thirds of the
    // connections (of 24; three backends) have SYNs at two backends.
    expect(split(without), JSON.stringify(without)).toBeGreaterThan(4);
    await restart('ipip', true);
  }, 120_000);

  it('refuses forged, truncated, unknown-peer and wrong-key sync datagrams, counts them, and keeps working', async () => {
    const refused = (): Record<string, number> => (clusterOf(lab, 1)?.['channel']?.['refused'] ?? {}) as Record<string, number>;
    const before = refused();
    // Sent from the client, as any host that can reach a mux could.
    const script = `
      const { seal } = await import(process.argv[1]);
      const { memberTag } = await import(process.argv[2]);
      const s = require('dgram').createSocket('udp4');
      const send = (b) => new Promise((r) => s.send(b, 7946, '10.201.1.2', r));
      const boot = BigInt(Date.now()) << 16n;
      await send(Buffer.from('not a sync datagram at all, far too short'));
      await send(Buffer.alloc(20));
      await send(seal(Buffer.alloc(32, 9), 1, memberTag('mux9'), boot, 1n, Buffer.alloc(36)));   // unknown peer
      await send(seal(Buffer.alloc(32, 9), 1, memberTag('mux2'), boot, 1n, Buffer.alloc(36)));   // wrong key
      const forged = seal(Buffer.alloc(32, 9), 2, memberTag('mux3'), boot, 2n, Buffer.alloc(100));
      forged[40] ^= 1;
      await send(forged);
      s.close();`;
    lab.exec('client', ['node', '--input-type=module', '-e', `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); ${script}`, join(root, 'dist/cluster/wire.js'), join(root, 'dist/cluster/keys.js')]);
    expect(await waitUntil(() => {
      const now = refused();
      const delta = (k: string): number => (now[k] ?? 0) - (before[k] ?? 0);
      return delta('unknown_peer') >= 1 && delta('bad_auth') >= 2 && delta('truncated') + delta('bad_version') + delta('bad_type') >= 2;
    }, 5000)).toBe(true);
    // The cluster is as it was: every peer live.
    const members = clusterOf(lab, 1)?.['members'] as Json[];
    expect(members.every((m) => m['live'] === true)).toBe(true);
  }, 30_000);
});
