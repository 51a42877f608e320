// The daemon with a cluster section: two daemons (fake engines that export and install flow
// records) on loopback addresses. The engines' snapshots carry the cluster view and its live
// flags; membership shows in `l4mux status`; a reload that adds a backend is committed only
// after the peer holds the entries exported before it; a bad key file stops the start;
// a changed cluster section waits for a restart. No cluster section: no cluster service.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { sendControl } from '../../src/api/client.js';
import { Daemon } from '../../src/daemon/index.js';
import type { DataplaneConfig } from '../../src/dataplane/types.js';
import { record } from '../cluster/records.js';
import type { FakeEngine } from './fake-engine.js';
import { daemonConfig, harness, type Harness, type Json } from './harness.js';

const port = 44000 + (process.pid % 500) * 2;
const running: Daemon[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop()));
});

interface SyncFake {
  exported: Buffer[];
  installed: Buffer[];
  /** What happened, in order: "setConfig <n backends>" and "install". */
  events: string[];
  /** The flows owners() was asked about. */
  ownersAsked: unknown[];
}

function clusterHarness(self: 'a' | 'b', key: Buffer, edit?: (doc: Json, dir: string) => void): { h: Harness; sync: SyncFake } {
  const doc = daemonConfig();
  const addresses = { a: '127.0.0.2', b: '127.0.0.3' };
  const other = self === 'a' ? 'b' : 'a';
  const h = harness(doc);
  const keyFile = join(h.dir, 'cluster.key');
  writeFileSync(keyFile, key, { mode: 0o600 });
  doc['cluster'] = { id: self, address: addresses[self], peers: [{ id: other, address: addresses[other] }], keyFile, heartbeatInterval: 50, deadAfter: 4, syncPort: port, commitTimeout: 2000 };
  edit?.(doc, h.dir);
  h.writeConfig(doc);
  const sync: SyncFake = { exported: [], installed: [], events: [], ownersAsked: [] };
  h.setupEngine((e: FakeEngine) => {
    const engine = e as FakeEngine & Record<string, unknown>;
    const publishConfig = e.publishConfig.bind(e);
    engine.publishConfig = (prepared) => {
      sync.events.push(`setConfig ${(prepared as unknown as { config: DataplaneConfig }).config.vips[0]?.backends.length}`);
      publishConfig(prepared);
    };
    engine['pollFlowEvents'] = (): Buffer => {
      const out = Buffer.concat(sync.exported);
      sync.exported = [];
      return out;
    };
    // The flow lookup of `l4mux flow`: owners() answers member indices (b owns, a backs up).
    engine['owners'] = (flow: unknown): { owner: number; backup: number } => {
      sync.ownersAsked.push(flow);
      return { owner: 1, backup: 0 };
    };
    engine['lookupFlow'] = async (): Promise<unknown> => ({ flowHash: '0', vip: 'web', workers: [], backend: null });
    engine['installFlows'] = (records: Buffer): { accepted: number; refused: number } => {
      sync.installed.push(Buffer.from(records));
      sync.events.push('install');
      return { accepted: records.length / 64, refused: 0 };
    };
  });
  return { h, sync };
}

async function start(h: Harness): Promise<Daemon> {
  const d = await Daemon.start(h.options, h.deps);
  running.push(d);
  return d;
}

async function until(probe: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const clusterStatus = (d: Daemon): Json => (d.status() as unknown as Json)['services']['cluster'] as Json;

describe('daemon with a cluster', () => {
  it('pushes the live flags, shows membership, and commits a backend change after the peer holds the entries', async () => {
    const key = Buffer.alloc(32, 0x42);
    const a = clusterHarness('a', key);
    const b = clusterHarness('b', key);
    const da = await start(a.h);
    const engineA = a.h.engines.get('eth0') as FakeEngine;
    expect(engineA.configs[0]?.cluster).toMatchObject({ selfIndex: 0, members: [{ id: 'a', live: true }, { id: 'b', live: false }], redirectPort: 7947 });
    const db = await start(b.h);
    await until(() => engineA.configs.at(-1)?.cluster?.members[1]?.live === true);
    await until(() => clusterStatus(da)['ready'] === true && clusterStatus(db)['ready'] === true);
    expect(clusterStatus(da)['members']).toMatchObject([
      { id: 'a', self: true, live: true },
      { id: 'b', self: false, live: true, state: 'live', joins: 1 },
    ]);
    expect(a.h.messages()).toContain('cluster: b joined (live: a, b)');

    // A flow a's engine exported (owned by b), then a reload that adds a backend.
    const r = record({ client: '10.0.0.7', clientPort: 4000, vip: '192.0.2.10', backend: '10.1.0.1' });
    r[5] = 1;
    r[6] = 0;
    a.sync.exported.push(r);
    const doc = JSON.parse(JSON.stringify(daemonConfig())) as Json;
    const running = JSON.parse(readFileSync(a.h.configPath, 'utf8')) as Json;
    doc['cluster'] = running['cluster'];
    doc['pools']['web'].backends.push({ address: '10.1.0.3' });
    a.h.writeConfig(doc);
    const result = await da.reload('test');
    expect(result.ok, JSON.stringify(result)).toBe(true);
    expect(a.sync.events.at(-1)).toBe('setConfig 3');
    // b held the entry before a's engines got the new table.
    expect(b.sync.installed.length).toBeGreaterThan(0);
    expect(clusterStatus(da)['sync']).toMatchObject({ commits: 1, commitTimeouts: 0 });
  });

  it('l4mux flow names the flow\'s owner and backup mux by id, as the engine computes them', async () => {
    const a = clusterHarness('a', Buffer.alloc(32, 0x44));
    await start(a.h);
    const answer = (await sendControl(a.h.options.controlSocket, { cmd: 'flow', vip: 'web', protocol: 'tcp', src: '198.51.100.7', srcPort: 40000 }, 5000)) as unknown as Json;
    expect(answer['ok'], JSON.stringify(answer)).toBe(true);
    expect(answer).toMatchObject({ owner: 'b', backup: 'a' });
    expect(a.sync.ownersAsked).toEqual([{ client: '198.51.100.7', clientPort: 40000, vip: '192.0.2.10', vipPort: 80, protocol: 6 }]);
  });

  it('leaves: a silent peer is dead after deadAfter beats, its flag pushed', async () => {
    const key = Buffer.alloc(32, 0x43);
    const a = clusterHarness('a', key);
    const b = clusterHarness('b', key);
    const da = await start(a.h);
    const db = await start(b.h);
    const engineA = a.h.engines.get('eth0') as FakeEngine;
    await until(() => engineA.configs.at(-1)?.cluster?.members[1]?.live === true);
    await db.stop();
    running.splice(running.indexOf(db), 1);
    await until(() => engineA.configs.at(-1)?.cluster?.members[1]?.live === false);
    expect(a.h.messages().some((m) => /^cluster: b left \(not heard for \d+ ms; live: a\)$/.test(m))).toBe(true);
    expect(clusterStatus(da)['members'][1]).toMatchObject({ state: 'dead', leaves: 1 });
  });

  it('does not start with an unusable key file; reports a changed cluster section as needing a restart', async () => {
    const a = clusterHarness('a', Buffer.from('too short'));
    await expect(Daemon.start(a.h.options, a.h.deps)).rejects.toThrow(/cluster\.keyFile: .* holds 9 bytes; the cluster key needs at least 32/);

    const ok = clusterHarness('a', Buffer.alloc(32, 1));
    const d = await start(ok.h);
    const doc = JSON.parse(readFileSync(ok.h.configPath, 'utf8')) as Json;
    doc['cluster'].heartbeatInterval = 77;
    ok.h.writeConfig(doc);
    const r = await d.reload('test');
    expect(r.ok && r.restartRequired).toEqual(['cluster: changed (requires restart)']);
  });

  it('with persistence, the embedded store spans the daemons: clients punted on both at once get one backend, recorded in both state files', async () => {
    const key = Buffer.alloc(32, 0x45);
    const persistent = (doc: Json, dir: string): void => {
      doc['vips'][0].persistence = { timeout: 600 };
      doc['persistence'] = { stateFile: join(dir, 'persistence.log'), tableEntries: 4096, puntSlots: 64, storeTimeout: 2000 };
    };
    const a = clusterHarness('a', key, persistent);
    const b = clusterHarness('b', key, persistent);
    const da = await start(a.h);
    const db = await start(b.h);
    const persistence = (d: Daemon): Json => (d.status() as unknown as Json)['services']['persistence']['slowPath'] as Json;
    await until(() => [da, db].every((d) => persistence(d)['store']['synced'] === true && clusterStatus(d)['members'].every((m: Json) => m['live'] === true)));
    expect(persistence(da)['store']).toMatchObject({ kind: 'embedded', cluster: true });
    const tableOf = (h: Harness): NonNullable<FakeEngine['persistence']> => (h.engines.get('eth0') as FakeEngine).persistence as NonNullable<FakeEngine['persistence']>;
    const clients = Array.from({ length: 50 }, (_, i) => `198.51.100.${i}`);
    // Every client's first packet on both at once, a proposing one backend and b the other.
    const ta = clients.map((c, i) => tableOf(a.h).punt('web', c, i % 2 === 0 ? '10.1.0.1' : '10.1.0.2'));
    const tb = clients.map((c, i) => tableOf(b.h).punt('web', c, i % 2 === 0 ? '10.1.0.2' : '10.1.0.1'));
    await until(() => ta.every((t) => tableOf(a.h).answerFor(t) !== undefined) && tb.every((t) => tableOf(b.h).answerFor(t) !== undefined));
    const answersA = ta.map((t) => tableOf(a.h).answerFor(t));
    expect(tb.map((t) => tableOf(b.h).answerFor(t))).toEqual(answersA);
    expect(persistence(da)['counters']).toMatchObject({ localDecisions: 0 });
    expect(persistence(db)['counters']).toMatchObject({ localDecisions: 0 });
    // Both state files hold every client, with the answered backend.
    await until(() => [a.h, b.h].every((h) => readFileSync(join(h.dir, 'persistence.log'), 'utf8').trim().split('\n').length >= clients.length));
    for (const h of [a.h, b.h]) {
      const lines = readFileSync(join(h.dir, 'persistence.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { k: string; b: string });
      const last = new Map(lines.map((l) => [l.k, l.b]));
      expect(clients.map((c) => last.get(`web/${c}`))).toEqual(answersA);
    }
  });

  it('a config without a cluster section runs no cluster service and gives no cluster view', async () => {
    const h = harness();
    const d = await start(h);
    expect((h.engines.get('eth0') as FakeEngine).configs[0]?.cluster).toBeUndefined();
    expect((d.status() as unknown as Json)['services']?.['cluster']).toBeUndefined();
  });
});
