// The Prometheus exporter on its own: counters of the real addon in, text format out, checked by
// promtool; a counter key nobody named still shows up; the endpoint and its config section.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { afterEach, describe, expect, it } from 'vitest';

import type { PoolStatusWithChecks } from '../../src/pools/supervisor.js';
import { Dataplane, type DataplaneConfig } from '../../src/dataplane/index.js';
import type { EngineCounters } from '../../src/dataplane/engine.js';
import { MetricsExporter, MetricsServer, parseListen, type MetricsSource } from '../../src/metrics/index.js';
import { check, errorsOf } from '../config/helpers.js';
import { flowPacket } from '../support/frames.js';

const PROMTOOL = '/usr/bin/promtool';

const config: DataplaneConfig = {
  seed: '0x1234',
  sourceMac: '02:00:00:00:00:01',
  gatewayMac: '02:00:00:00:00:fe',
  outerSourceV4: '10.0.0.1',
  vips: [
    {
      name: 'web',
      address: '192.0.2.10',
      protocol: 6,
      port: 80,
      encap: 'ipip',
      guePort: 6080,
      hashFields: '5-tuple',
      tableSize: 65537,
      icmpEcho: true,
      scheduler: 'maglev',
      backends: [
        { address: '10.1.0.1', weight: 1, state: 'active', healthy: true, fallover: [] },
        { address: '10.1.0.2', weight: 1, state: 'active', healthy: true, fallover: [] },
      ],
    },
  ],
};

/** Real pipeline counters after some traffic, with the engine's io and workers parts as the addon shapes them. */
function engineCounters(): EngineCounters {
  const dp = new Dataplane();
  dp.setConfig(config);
  const packets = [];
  for (let port = 40000; port < 40010; port++) packets.push({ frame: flowPacket('tcp', '198.51.100.1', '192.0.2.10', port, 80) });
  packets.push({ frame: flowPacket('tcp', '198.51.100.1', '192.0.2.10', 40000, 443) });
  dp.process(packets);
  const c = dp.counters();
  const io = { rxPackets: 11, rxKernelDrops: 0, rxOversized: 0, rxIgnored: 2, txPackets: 10, txErrors: 0, txRingFull: 0 };
  const worker = { rx: c.rx, tx: c.tx, passed: c.passed, dropped: c.dropped, io: { ...io }, conntrack: { ...c.conntrack }, description: 'af_packet eth0 worker 0' };
  return { ...c, io, workers: [worker] } as EngineCounters;
}

function pools(): Record<string, PoolStatusWithChecks> {
  return {
    web: {
      allDownPolicy: 'drop',
      allDown: false,
      allDownSince: null,
      allDownEpisodes: 0,
      servingLastHealthy: [],
      backends: [
        { address: '10.1.0.1', state: 'active', stateSource: 'config', health: 'up', healthy: true, configuredWeight: 1, weight: 1, weightSource: 'config', fallover: [] },
        { address: '10.1.0.2', state: 'draining', stateSource: 'runtime', health: 'down', healthy: false, configuredWeight: 1, weight: 3, weightSource: 'check', fallover: [] },
      ],
      checks: [{ address: '10.1.0.1', kind: 'http', state: 'up', reason: 'HTTP 200', since: 0, checks: 7, lastLatencyMs: 1.5 }],
    },
  };
}

function source(counters: EngineCounters | null): MetricsSource {
  return {
    interfaces: () => [{ name: 'eth0', counters, io: { mode: 'af_xdp', xdpMode: 'native', reason: 'requested', reported: true }, workers: 1 }],
    pools,
    reloads: () => ({ succeeded: 2, failed: 1, lastOk: false, lastSuccessAt: 1_700_000_000_000, configHash: 'ab'.repeat(32) }),
  };
}

/** The value of the sample `series` (name{labels} exactly as printed). */
function valueOf(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics exporter', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('names every counter of the real addon and exports its value', async () => {
    const counters = engineCounters();
    const exporter = new MetricsExporter(source(counters), { version: '1.2.3' });
    const text = await exporter.render();
    expect(exporter.unnamed).toEqual([]);
    expect(valueOf(text, 'l4mux_packets_received_total{interface="eth0"}')).toBe(11);
    expect(valueOf(text, 'l4mux_vip_new_flows_total{interface="eth0",vip="web"}')).toBe(10);
    expect(valueOf(text, 'l4mux_drops_total{interface="eth0",reason="no_vip_for_port"}')).toBe(1);
    // Every drop reason of the native list is a series, zeros included.
    for (const reason of Object.keys(counters.drops)) expect(text).toContain(`l4mux_drops_total{interface="eth0",reason="${reason}"}`);
    const perBackend = counters.backends.map((b) => valueOf(text, `l4mux_backend_packets_total{interface="eth0",backend="${b.address}"}`) ?? 0);
    expect(perBackend.reduce((a, b) => a + b, 0)).toBe(10);
    expect(valueOf(text, 'l4mux_conntrack_inserts_total{interface="eth0"}')).toBe(10);
    expect(valueOf(text, 'l4mux_worker_packets_received_total{interface="eth0",worker="0"}')).toBe(11);
    expect(valueOf(text, 'l4mux_io_rx_ignored_total{interface="eth0"}')).toBe(2);
    expect(valueOf(text, 'l4mux_io_mode_info{interface="eth0",mode="af_xdp",xdp_mode="native"}')).toBe(1);
    expect(valueOf(text, 'l4mux_backend_admin_state{pool="web",backend="10.1.0.2",state="draining"}')).toBe(1);
    expect(valueOf(text, 'l4mux_backend_admin_state{pool="web",backend="10.1.0.2",state="active"}')).toBe(0);
    expect(valueOf(text, 'l4mux_backend_health_state{pool="web",backend="10.1.0.2",state="down"}')).toBe(1);
    expect(valueOf(text, 'l4mux_backend_weight{pool="web",backend="10.1.0.2"}')).toBe(3);
    expect(valueOf(text, 'l4mux_reloads_total{result="failure"}')).toBe(1);
    expect(valueOf(text, `l4mux_config_info{sha256="${'ab'.repeat(32)}"}`)).toBe(1);
    expect(valueOf(text, 'l4mux_build_info{version="1.2.3"}')).toBe(1);
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });

  it('a counter key nobody named still appears, under its mechanical name', async () => {
    const counters = engineCounters() as EngineCounters & Record<string, unknown>;
    counters['fooBarPackets'] = 5;
    (counters.io as unknown as Record<string, number>)['rxSomethingNew'] = 6;
    const exporter = new MetricsExporter(source(counters), { defaultMetrics: false });
    const text = await exporter.render();
    expect(valueOf(text, 'l4mux_foo_bar_packets_total{interface="eth0"}')).toBe(5);
    expect(valueOf(text, 'l4mux_io_rx_something_new_total{interface="eth0"}')).toBe(6);
    expect(exporter.unnamed).toEqual(['fooBarPackets', 'io.rxSomethingNew']);
  });

  it('feeds probe latencies into histograms and counts transitions', async () => {
    const exporter = new MetricsExporter(source(null), { defaultMetrics: false });
    const ref = { backend: 'web/10.1.0.1', pool: 'web', address: '10.1.0.1' };
    exporter.observeProbe({ ...ref, result: { ok: true, latencyMs: 3, detail: 'HTTP 200' }, state: 'up', at: 0 }, 'http');
    exporter.observeProbe({ ...ref, result: { ok: false, latencyMs: 700, detail: 'timeout' }, state: 'up', at: 0 }, 'http');
    exporter.countTransition({ ...ref, from: 'up', to: 'down', reason: 'x', at: 0 });
    const text = await exporter.render();
    expect(valueOf(text, 'l4mux_health_probe_duration_seconds_bucket{le="0.005",pool="web",backend="10.1.0.1",kind="http",result="success"}')).toBe(1);
    expect(valueOf(text, 'l4mux_health_probe_duration_seconds_count{pool="web",backend="10.1.0.1",kind="http",result="failure"}')).toBe(1);
    expect(valueOf(text, 'l4mux_health_transitions_total{pool="web",backend="10.1.0.1",from="up",to="down"}')).toBe(1);
    expect(valueOf(text, 'l4mux_engine_up{interface="eth0"}')).toBe(0);
  });

  it.skipIf(!existsSync(PROMTOOL))('passes promtool check metrics', async () => {
    const exporter = new MetricsExporter(source(engineCounters()));
    const text = await exporter.render();
    const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    // prom-client's own nodejs_active_*_total gauges are the only lint findings allowed.
    const problems = (r.stdout + r.stderr).split('\n').filter((l) => l !== '' && !/^nodejs_active_\w+_total non-counter/.test(l));
    expect(problems).toEqual([]);
    expect(r.error).toBeUndefined();
  });

  it('serves /metrics over HTTP and nothing else', async () => {
    const exporter = new MetricsExporter(source(engineCounters()), { defaultMetrics: false });
    server = await MetricsServer.listen({ host: '127.0.0.1', port: 0, listen: '127.0.0.1:0' }, exporter);
    const base = `http://127.0.0.1:${server.port}`;
    const r = await fetch(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    expect(await r.text()).toContain('l4mux_packets_received_total{interface="eth0"} 11');
    expect((await fetch(`${base}/other`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
    await expect(MetricsServer.listen({ host: '127.0.0.1', port: server.port, listen: `127.0.0.1:${server.port}` }, exporter)).rejects.toThrow(
      `metrics.listen 127.0.0.1:${server.port}: address already in use`,
    );
  });
});

describe('metrics config section', () => {
  it('parses listen addresses', () => {
    expect(parseListen('127.0.0.1:9641')).toMatchObject({ ok: true, host: '127.0.0.1', port: 9641 });
    expect(parseListen('[::1]:9641')).toMatchObject({ ok: true, host: '::1', canonical: '[::1]:9641' });
  });

  it('reports bad listen addresses as path: reason, defaults to loopback', () => {
    expect(errorsOf(check((c) => (c['metrics'] = { listen: 'localhost:9641' })))).toEqual([
      'metrics.listen: "localhost:9641": "localhost" is not an IPv4 or IPv6 address',
    ]);
    expect(errorsOf(check((c) => (c['metrics'] = { listen: '127.0.0.1:70000' })))).toEqual(['metrics.listen: "127.0.0.1:70000": port 70000 is not in 1..65535']);
    expect(errorsOf(check((c) => (c['metrics'] = { listen: '::1:9641' })))[0]).toMatch(/^metrics\.listen: "::1:9641" is not HOST:PORT/);
    expect(errorsOf(check((c) => (c['metrics'] = { port: 1 })))[0]).toMatch(/^metrics/);
    const ok = check((c) => (c['metrics'] = {}));
    expect(ok.ok && ok.config.metrics).toEqual({ listen: '127.0.0.1:9641', host: '127.0.0.1', port: 9641 });
    const none = check(() => undefined);
    expect(none.ok && none.config.metrics).toBeUndefined();
  }, 30_000);
});
