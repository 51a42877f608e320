// The operator surface on a live mux of the netns lab: its metrics scraped by a real Prometheus
// server (and checked by promtool), counters against `l4mux status` and the traffic sent, the
// Grafana dashboard's queries against the real metric names, `l4mux flow` against the backends
// that really served connections, and `l4mux capture` decoded by tshark. Needs root.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sendControl } from '../../src/api/client.js';
import type { FlowOk, StatusResponse } from '../../src/api/protocol.js';
import { isRoot, Lab, root, VIP4, waitUntil } from '../support/lab.js';
import { tsharkFields } from '../support/tshark.js';

const CLIENT = '10.200.0.2';
const backendAddress = (name: string): string => `10.202.${name.replace('backend', '')}.2`;
const cli = join(root, 'dist', 'cli', 'main.js');

/** Metric names a PromQL expression uses (l4mux_*, process_*, nodejs_*). */
export function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b((?:l4mux|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1] as string))];
}

/** Every query of a Grafana dashboard, with Grafana's variables replaced for Prometheus itself. */
export function dashboardQueries(path: string): string[] {
  const dashboard = JSON.parse(readFileSync(path, 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
  return dashboard.panels
    .flatMap((p) => p.targets ?? [])
    .map((t) => t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1h').replaceAll('$instance', '.*'));
}

describe.skipIf(!isRoot)('operator surface on a lab mux', () => {
  const lab = new Lab('lopr');
  const sock = (): string => `${lab.run}/mux1.sock`;
  let prometheus: ChildProcess | undefined;

  const router = (args: string[]): string => lab.exec('router', ['ip', ...args]);
  type PromAnswer = { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> }; error?: string };
  /** Prometheus answers to `queries`, asked from inside mux1's namespace in one process. */
  const promQueries = (queries: string[]): PromAnswer[] => {
    const script = `Promise.all(JSON.parse(process.argv[1]).map((q) => fetch('http://127.0.0.1:9090/api/v1/query?query=' + encodeURIComponent(q)).then((r) => r.json())))
      .then((a) => process.stdout.write(JSON.stringify(a)), (e) => { console.error(String(e)); process.exit(1); })`;
    return JSON.parse(lab.exec('mux1', ['node', '-e', script, JSON.stringify(queries)])) as PromAnswer[];
  };
  const promQuery = (query: string): PromAnswer => promQueries([query])[0] as PromAnswer;
  const scrape = (): string => lab.exec('mux1', ['curl', '-sS', '-m', '5', 'http://127.0.0.1:9641/metrics']);
  // The control socket is a file: the test talks to it directly, without a CLI process per question.
  const status = async (): Promise<StatusResponse & { ok: true }> => (await sendControl(sock(), { cmd: 'status' })) as StatusResponse & { ok: true };
  const flow = async (vip: string, protocol: 'tcp' | 'udp', srcPort: number): Promise<FlowOk> => {
    const r = await sendControl(sock(), { cmd: 'flow', vip, protocol, src: CLIENT, srcPort });
    if (!r.ok) throw new Error(JSON.stringify(r));
    return r as FlowOk;
  };

  beforeAll(async () => {
    // One mux deciding alone: the cluster would redirect some packets to their owner mux, and
    // this test counts what mux1 itself sees and decides.
    lab.up('ipip', { cluster: false });
    // Checks that survive a loaded test machine: a flapping backend would change the answers.
    const config = lab.muxConfig(1) as { pools: Record<string, { healthCheck?: Record<string, unknown> }> };
    Object.assign(config.pools['web4']?.healthCheck ?? {}, { interval: 1000, timeout: 2000, fall: 20 });
    lab.writeMuxConfig(1, config);
    const reloaded = await sendControl(`${lab.run}/mux1.sock`, { cmd: 'reload' });
    if (!reloaded.ok) throw new Error(JSON.stringify(reloaded));
    // Every VIP packet through mux1, so that its counters see all the traffic sent.
    router(['route', 'replace', `${VIP4}/32`, 'via', '10.201.1.2']);
    const dir = `${lab.run}/prometheus`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      `${dir}/prometheus.yml`,
      'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: l4mux\n    static_configs:\n      - targets: ["127.0.0.1:9641"]\n',
    );
    prometheus = spawn(
      'ip',
      ['netns', 'exec', `${lab.prefix}-mux1`, '/usr/bin/prometheus', `--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`, '--web.listen-address=127.0.0.1:9090', '--log.level=warn'],
      { stdio: 'ignore' },
    );
  }, 90_000);

  afterAll(() => {
    prometheus?.kill('SIGKILL');
    lab.down();
  });

  it('is scraped by Prometheus; counters match l4mux status and the connections sent; promtool accepts the text', async () => {
    const newFlows = async (): Promise<number> => (await status()).status.interfaces[0]?.counters?.vips.find((v) => v.name === 'http4')?.newFlows ?? -1;
    const before = await newFlows();
    lab.exec('client', ['sh', '-c', `for i in 1 2 3 4 5 6 7 8 9 10; do curl -sS -m 10 -o /dev/null http://${VIP4}/; done`]);
    const after = await newFlows();
    expect(after - before).toBe(10);

    const text = scrape();
    expect(text).toContain(`l4mux_vip_new_flows_total{interface="eth0",vip="http4"} ${after}`);
    const lint = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect((lint.stdout + lint.stderr).split('\n').filter((l) => l !== '' && !/^nodejs_active_\w+_total non-counter/.test(l))).toEqual([]);

    const inPrometheus = (): number => Number(promQuery('l4mux_vip_new_flows_total{vip="http4"}').data.result[0]?.value[1] ?? -1);
    expect(await waitUntil(() => inPrometheus() === after, 20_000, 250), `Prometheus has ${inPrometheus()}, status ${after}`).toBe(true);
    // The health checks of web4 feed the probe histograms (HTTP /healthz every 500 ms).
    expect(Number(promQuery('sum(l4mux_health_probe_duration_seconds_count{pool="web4",result="success"})').data.result[0]?.value[1])).toBeGreaterThan(0);
    expect(promQuery('l4mux_backend_healthy{pool="web4"}').data.result.map((r) => r.value[1])).toEqual(['1', '1', '1']);
  }, 60_000);

  it('every metric the Grafana dashboard uses exists in a real scrape, and Prometheus runs every query', () => {
    const text = scrape();
    const series = new Set(text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0]));
    const queries = dashboardQueries(join(root, 'scripts/monitoring/grafana-dashboard.json'));
    expect(queries.length).toBeGreaterThan(15);
    const answers = promQueries(queries);
    queries.forEach((query, i) => {
      for (const name of metricNames(query)) expect(series.has(name), `${name} (in ${query}) is not in the scrape`).toBe(true);
      expect(answers[i]?.status, `${query}: ${answers[i]?.error ?? ''}`).toBe('success');
    });
  }, 30_000);

  it('l4mux flow names the backend that really served each connection and datagram', async () => {
    const ports = [45001, 45002, 45003, 45004, 45005, 45006];
    const out = lab.exec('client', ['sh', '-c', ports.map((p) => `curl -sS -m 10 --local-port ${p} http://${VIP4}/`).join('; ')]);
    const servedBy = [...out.matchAll(/backend=(backend[123]) /g)].map((m) => m[1] as string);
    expect(servedBy).toHaveLength(ports.length);
    for (const [i, port] of ports.entries()) {
      const served = servedBy[i] ?? '';
      const answer = await flow('http4', 'tcp', port);
      const eth0 = answer.interfaces[0];
      expect(eth0?.backend).toBe(backendAddress(served));
      expect(eth0?.decidedBy).toBe('connection table');
      expect(eth0?.table.backend).toBe(backendAddress(served));  // Maglev agrees with the table entry
      const held = eth0?.workers.find((w) => w.found);
      expect(held?.backend).toBe(backendAddress(served));
      expect(held?.state).toBe('closing');  // curl closed the connection: FIN seen
      expect(answer.owner).toBeNull();
    }
    const served = lab.udpFlows(VIP4, 45100, 8);
    for (const [i, name] of served.entries()) {
      const answer = await flow('echo4', 'udp', 45100 + i);
      expect(answer.interfaces[0]?.backend).toBe(backendAddress(name));
      expect(answer.interfaces[0]?.workers.find((w) => w.found)?.state).toBe('udp');
    }
    // The command itself, once: by VIP address, with the destination port, printed for people.
    const r = lab.l4mux('mux1', ['flow', VIP4, 'udp', `${CLIENT}:45100`, '53', '--control', sock()]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`eth0: backend ${backendAddress(served[0] ?? '')} (connection table)`);
    expect(r.stdout).toMatch(/worker 0: udp to /);
    const bad = lab.l4mux('mux1', ['flow', 'nosuch', 'tcp', `${CLIENT}:1`, '--control', sock()]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('no VIP named "nosuch"');
  }, 60_000);

  it('l4mux capture writes the received and the encapsulated copy of each packet; tshark decodes them', async () => {
    const file = `${lab.run}/capture.pcap`;
    const capture = spawn('ip', ['netns', 'exec', `${lab.prefix}-mux1`, 'node', cli, 'capture', '--vip', 'echo4', '--count', '8', '--seconds', '30', '-w', file, '--control', sock()], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    capture.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => capture.on('exit', resolve));
    expect(await waitUntil(() => stderr.includes('capturing'), 10_000), stderr).toBe(true);
    // Health checks and TCP traffic are not the VIP echo4: the filter leaves them out.
    lab.curl(`http://${VIP4}/`);
    const served = lab.udpFlows(VIP4, 45200, 8);
    expect(await exited, stderr).toBe(0);
    const rows = tsharkFields(file, ['ip.proto', 'ip.dst', 'udp.srcport', 'udp.dstport']);
    expect(stderr).toContain('8 packets (16 frames');

    expect(rows).toHaveLength(16);
    const received = rows.filter((r) => r[0] === '17');
    const sent = rows.filter((r) => r[0] === '4|17');
    expect(received.map((r) => Number(r[2])).sort()).toEqual(served.map((_, i) => 45200 + i));
    expect(received.every((r) => r[1] === VIP4 && r[3] === '53')).toBe(true);
    expect(sent).toHaveLength(8);
    for (const r of sent) {
      const port = Number(r[2]);
      expect(r[1]).toBe(`${backendAddress(served[port - 45200] ?? '')}|${VIP4}`);
    }
  }, 60_000);
});
