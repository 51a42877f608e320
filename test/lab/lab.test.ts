// Live forwarding in the netns lab: ECMP router, two `l4mux run` muxes, three backends with
// `l4mux agent` and real servers. Needs root; builds and removes its own namespaces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isRoot, Lab, sleep, VIP4, VIP6 } from '../support/lab.js';

const BACKENDS = /^backend=(backend[123]) /;
const REPLIES = `src host ${VIP4} or src host ${VIP6}`;

function backendOf(response: string): string {
  const m = BACKENDS.exec(response);
  if (!m?.[1]) throw new Error(`not a backend answer: ${JSON.stringify(response)}`);
  return m[1];
}

for (const encap of ['ipip', 'gre', 'gue'] as const) {
  describe.skipIf(!isRoot)(`lab with ${encap}`, () => {
    const lab = new Lab(`l${encap.slice(0, 2)}`);
    beforeAll(() => lab.up(encap, { muxes: 2, cluster: false }), 90_000);
    afterAll(() => lab.down());

    it('serves HTTP and UDP on the IPv4 and IPv6 VIPs from several backends, replies bypassing the muxes', async () => {
      const onMuxes = Promise.all([lab.countOnRouter('rt-m1', 6, REPLIES), lab.countOnRouter('rt-m2', 6, REPLIES)]);
      const onBackends = Promise.all([1, 2, 3].map((b) => lab.countOnRouter(`rt-b${b}`, 6, REPLIES)));
      await sleep(1500);
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add(backendOf(lab.curl(`http://${VIP4}/`)));
      for (let i = 0; i < 8; i++) seen.add(backendOf(lab.curl(`http://[${VIP6}]/`)));
      expect(seen.size).toBeGreaterThan(1);
      expect(lab.udp(VIP4, 'ping4')).toMatch(/^backend[123]: ping4$/);
      expect(lab.udp(VIP6, 'ping6')).toMatch(/^backend[123]: ping6$/);
      const [m1, m2] = await onMuxes;
      const perBackend = await onBackends;
      expect(m1 + m2, 'replies seen on mux links').toBe(0);
      expect(perBackend.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(16 * 3);
    }, 60_000);

    it('carries a 12 MB transfer intact', () => {
      const out = lab.curl(`http://${VIP4}/big?bytes=12000000`, ['-o', '/dev/null', '-w', '%{size_download} %{http_code}']);
      expect(out).toBe('12000000 200');
      const out6 = lab.curl(`http://[${VIP6}]/big?bytes=12000000`, ['-o', '/dev/null', '-w', '%{size_download} %{http_code}']);
      expect(out6).toBe('12000000 200');
    }, 60_000);
  });
}

describe.skipIf(!isRoot)('lab: ECMP, reload, bad input', () => {
  const lab = new Lab('lops');
  beforeAll(() => lab.up('ipip', { muxes: 2, cluster: false }), 90_000);
  afterAll(() => lab.down());

  it('the router spreads flows over both muxes', () => {
    for (let i = 0; i < 24; i++) lab.curl(`http://${VIP4}/`);
    const flows = ([1, 2] as const).map((m) => lab.status(m).interfaces[0]?.counters.vips.reduce((n, v) => n + v.newFlows, 0) ?? 0);
    expect(flows[0]).toBeGreaterThan(0);
    expect(flows[1]).toBeGreaterThan(0);
  }, 20_000);  // 24 curls one after another: 4 s at load 14, more than the 5 s default on a busier host

  it('a flow reaches the same backend through either mux (same config, same seed)', () => {
    const router = (args: string[]): string => lab.exec('router', ['ip', ...args]);
    try {
      for (const port of [41001, 41002, 41003, 41004]) {
        router(['route', 'replace', `${VIP4}/32`, 'via', '10.201.1.2']);
        const viaMux1 = lab.udp(VIP4, 'a', port);
        router(['route', 'replace', `${VIP4}/32`, 'via', '10.201.2.2']);
        const viaMux2 = lab.udp(VIP4, 'b', port);
        expect(viaMux1.split(':')[0]).toMatch(/^backend[123]$/);
        expect(viaMux2.split(':')[0]).toBe(viaMux1.split(':')[0]);
      }
    } finally {
      // The test's own route (metric 0) goes; the router's BGP route (BIRD's, metric 32) is back.
      router(['route', 'del', `${VIP4}/32`, 'metric', '0']);
    }
  }, 60_000);

  it('counts packets for ports no VIP serves', () => {
    const drops = (): number =>
      ([1, 2] as const).reduce((n, m) => n + (lab.status(m).interfaces[0]?.counters.drops['no_vip_for_port'] ?? 0), 0);
    const before = drops();
    lab.exec('client', ['node', '-e', `require('net').connect(81, '${VIP4}').on('error', () => {}); setTimeout(() => process.exit(0), 500)`]);
    expect(drops() - before).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it('a long transfer survives a reload that adds a VIP and a backend', async () => {
    const { spawn } = await import('node:child_process');
    // 8 MB at 2 MB/s: about four seconds on the wire, reloads in the middle.
    const transfer = spawn('ip', ['netns', 'exec', `${lab.prefix}-client`, 'curl', '-sS', '-m', '30', '--limit-rate', '2M', '-o', '/dev/null', '-w', '%{size_download}', `http://${VIP4}/big?bytes=8000000`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    transfer.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const done = new Promise<number | null>((resolve) => transfer.on('exit', resolve));
    const originals = [lab.muxConfig(1), lab.muxConfig(2)];
    await sleep(1500);
    for (const m of [1, 2] as const) {
      const config = lab.muxConfig(m) as { pools: Record<string, { backends: Array<{ address: string }> }>; vips: Array<Record<string, unknown>> };
      config.pools['web4']?.backends.push({ address: '10.202.9.2' });
      config.vips.push({ name: 'http4-alt', address: '192.0.2.11', protocol: 'tcp', port: 8080, pool: 'web4' });
      lab.writeMuxConfig(m, config);
      const r = lab.l4mux(`mux${m}`, ['reload', '--control', `${lab.run}/mux${m}.sock`]);
      expect(r.status, r.stderr).toBe(0);
      expect(lab.status(m).interfaces[0]?.counters.vips.some((v) => v.name === 'http4-alt')).toBe(true);
    }
    expect(await done).toBe(0);
    expect(out).toBe('8000000');
    // Back to the lab's own config: 10.202.9.2 exists only on paper, later tests need real backends.
    for (const m of [1, 2] as const) {
      lab.writeMuxConfig(m, originals[m - 1]);
      expect(lab.l4mux(`mux${m}`, ['reload', '--control', `${lab.run}/mux${m}.sock`]).status).toBe(0);
    }
  }, 60_000);

  it('a bad file at reload changes nothing and is reported as path: reason', () => {
    const good = lab.muxConfig(1);
    const bad = structuredClone(good) as { vips: Array<Record<string, unknown>> };
    if (bad.vips[0]) bad.vips[0]['address'] = '300.1.1.1';
    lab.writeMuxConfig(1, bad);
    try {
      const r = lab.l4mux('mux1', ['reload', '--control', `${lab.run}/mux1.sock`]);
      expect(r.status).toBe(1);
      expect(r.stdout + r.stderr).toContain('vips[0].address: "300.1.1.1" is not an IPv4 or IPv6 address');
      expect(backendOf(lab.curl(`http://${VIP4}/`))).toMatch(/^backend[123]$/);
    } finally {
      lab.writeMuxConfig(1, good);
    }
  });

  it('refuses to start with a bad config or without a usable interface', () => {
    const bad = structuredClone(lab.muxConfig(2)) as { node: Record<string, unknown> };
    bad.node['seed'] = 'nope';
    lab.writeMuxConfig(2, bad);
    const second = lab.l4mux('mux2', ['run', '--config', `${lab.run}/mux2.json`, '--no-control']);
    expect(second.status).toBe(1);
    expect(second.stderr).toContain('node.seed:');

    const noInterface = structuredClone(lab.muxConfig(1)) as { node: Record<string, unknown> };
    noInterface.node['interfaces'] = ['nosuch0'];
    lab.writeMuxConfig(2, noInterface);
    const third = lab.l4mux('mux2', ['run', '--config', `${lab.run}/mux2.json`, '--no-control']);
    expect(third.status).toBe(1);
    expect(third.stderr).toMatch(/nosuch0/);
  }, 60_000);  // two daemon start-ups
});
