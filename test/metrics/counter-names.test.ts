// Every counter the native lists define reaches the scrape: the addon's counterNames() equals
// the TS lists (src/dataplane/counter-names.ts), and each name of each set is exported under its
// own metric name, by worker where the set is per worker, and none is left to a mechanical name.
import { describe, expect, it } from 'vitest';

import { COUNTER_SETS, type CounterNames } from '../../src/dataplane/counter-names.js';
import type { EngineCounters } from '../../src/dataplane/engine.js';
import { Dataplane, type DataplaneConfig, defaultConntrack, native } from '../../src/dataplane/index.js';
import { LEAVES } from '../../src/metrics/counters.js';
import { MetricsExporter } from '../../src/metrics/index.js';
import { flowPacket } from '../support/frames.js';

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
      tableSize: 251,
      icmpEcho: true,
      scheduler: 'maglev',
      backends: [{ address: '10.1.0.1', weight: 1, state: 'active', healthy: true, fallover: [] }],
    },
  ],
  cluster: {
    selfIndex: 0,
    seed: '0xc105e5',
    members: [
      { id: 'mux1', address: '10.0.0.1', weight: 1, live: true },
      { id: 'mux2', address: '10.0.0.2', weight: 1, live: true },
    ],
    redirectPort: 7947,
  },
};

/** Lines of the text format whose series is `name` and whose labels include `label="value"`. */
function series(text: string, name: string, label: string, value: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) && l.includes(`${label}="${value}"`));
}

describe('counter names', () => {
  const names: CounterNames = native().counterNames();

  it('the addon lists the same names as src/dataplane/counter-names.ts', () => {
    const { drops, ...sets } = names;
    expect(sets).toEqual(Object.fromEntries(Object.entries(COUNTER_SETS).map(([k, v]) => [k, [...v]])));
    expect(drops).toEqual(native().dropReasons());
  });

  it('every counter the addon lists shows up in the metrics output', async () => {
    const dp = new Dataplane(defaultConntrack, { peerFlows: 1024, exportRing: 1024 });
    dp.setConfig(config);
    dp.process([{ frame: flowPacket('tcp', '198.51.100.1', '192.0.2.10', 40000, 80) }]);
    const c = dp.counters();
    // What an engine adds to a Dataplane's counters (packet I/O, the workers), in the addon's
    // shape: every listed key present.
    const io = Object.fromEntries(names.io.map((n) => [n, 1]));
    const rings = Object.fromEntries(names.rings.map((n) => [n, 1]));
    const worker = { ...Object.fromEntries(names.worker.map((n) => [n, 1])), drops: c.drops, io, rings, conntrack: c.conntrack, description: 'test' };
    const counters = { ...c, io, rings, workers: [worker] } as unknown as EngineCounters;
    const sync = dp.syncStats();
    for (const n of names.sync) expect(sync.workers[0]).toHaveProperty(n);

    const exporter = new MetricsExporter(
      {
        interfaces: () => [{ name: 'eth0', counters, io: { mode: 'af_packet' }, workers: 1, sync }],
        pools: () => ({}),
        reloads: () => ({ succeeded: 0, failed: 0, lastOk: true, lastSuccessAt: 0, configHash: '' }),
      },
      { defaultMetrics: false },
    );
    const text = await exporter.render();
    expect(exporter.unnamed).toEqual([]);

    // Each set, where it appears in the counter objects, and the label of its element.
    const places: Array<[keyof CounterNames, string, string, string]> = [
      ['worker', '', 'interface', 'eth0'],
      ['worker', 'workers[].', 'worker', '0'],
      ['vip', 'vips[].', 'vip', 'web'],
      ['backend', 'backends[].', 'backend', '10.1.0.1'],
      ['conntrack', 'conntrack.', 'interface', 'eth0'],
      ['conntrack', 'workers[].conntrack.', 'worker', '0'],
      ['io', 'io.', 'interface', 'eth0'],
      ['io', 'workers[].io.', 'worker', '0'],
      ['rings', 'rings.', 'interface', 'eth0'],
      ['rings', 'workers[].rings.', 'worker', '0'],
      ['sync', 'sync.workers[].', 'worker', '0'],
    ];
    const missing: string[] = [];
    for (const [set, prefix, label, value] of places) {
      for (const n of names[set]) {
        const leaf = LEAVES[`${prefix}${n}`];
        if (leaf === undefined || series(text, `l4mux_${leaf.name}`, label, value).length !== 1) missing.push(`${prefix}${n}`);
      }
    }
    for (const [path, label] of [['drops.*', 'interface'], ['workers[].drops.*', 'worker']] as const) {
      const leaf = LEAVES[path];
      for (const reason of names.drops) {
        const lines = leaf === undefined ? [] : series(text, `l4mux_${leaf.name}`, 'reason', reason).filter((l) => l.includes(`${label}=`));
        if (lines.length !== 1) missing.push(`${path} ${reason}`);
      }
    }
    expect(missing).toEqual([]);
    // The values are the counters', not placeholders: the one forwarded packet.
    expect(series(text, 'l4mux_vip_packets_total', 'vip', 'web')[0]).toMatch(/ 1$/);
  });
});
