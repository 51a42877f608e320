// The cluster service with fake engines on loopback: entries reach their owner and backup,
// teach records reach the asker, a joining mux gets the entries it now owns and is ready only
// after the transfers, a table change waits for the owners' acks (bounded), a dead peer's
// flows are handed on to their new backup.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';

import type { ClusterConfig } from '../../src/cluster/config.js';
import { NO_MEMBER, Ownership } from '../../src/cluster/ownership.js';
import { ClusterService, type SyncEngine } from '../../src/cluster/service.js';
import { flowKeyOf } from '../../src/cluster/table.js';
import { manyFlows, record } from './records.js';

const SEED = '0x1ab0000000c0ffee';
const IDS = ['mux1', 'mux2', 'mux3'];
const basePort = 43000 + (process.pid % 400) * 8;
const portOf = (id: string): number => basePort + IDS.indexOf(id);
const running: ClusterService[] = [];

class FakeEngine implements SyncEngine {
  exported: Buffer[] = [];
  installed = new Map<string, Buffer>();
  polledMarks = 0;
  pollFlowEvents(): Buffer {
    const out = Buffer.concat(this.exported);
    this.exported = [];
    this.polledMarks++;
    return out;
  }
  installFlows(records: Buffer): { accepted: number; refused: number } {
    for (let i = 0; i < records.length; i += 64) {
      const r = Buffer.from(records.subarray(i, i + 64));
      if (r[1] === 2) this.installed.delete(flowKeyOf(r));
      else this.installed.set(flowKeyOf(r), r);
    }
    return { accepted: records.length / 64, refused: 0 };
  }
  syncMark(): unknown {
    return this.polledMarks;
  }
  syncDrained(mark: unknown): boolean {
    return this.polledMarks > (mark as number);
  }
}

function configOf(id: string): ClusterConfig {
  const all = IDS.map((m) => ({ id: m, address: '127.0.0.1', weight: 1 }));
  return {
    self: all.find((m) => m.id === id) as ClusterConfig['self'],
    peers: all.filter((m) => m.id !== id),
    keyFile: '/dev/null',
    heartbeatIntervalMs: 100,
    deadAfter: 8,
    syncPort: 0,
    redirectPort: 7947,
    maxRate: 1e8,
    transferRate: 100_000,
    commitTimeoutMs: 150,
    maxEntries: 100_000,
  };
}

async function mux(id: string): Promise<{ service: ClusterService; engine: FakeEngine; changes: number[] }> {
  const engine = new FakeEngine();
  const changes: number[] = [];
  const service = new ClusterService({
    config: configOf(id),
    seed: SEED,
    secret: Buffer.alloc(32, 5),
    logger: pino({ level: process.env.DBG ? 'info' : 'silent' }),
    engines: () => [engine],
    onMembershipChange: () => changes.push(Date.now()),
    portOf,
    readyTimeoutMs: 5000,
  });
  await service.start();
  running.push(service);
  return { service, engine, changes };
}

async function until(probe: () => boolean, ms = 4000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

const owners = (live: boolean[]): Ownership => new Ownership(BigInt(SEED), IDS.map((id, i) => ({ id, weight: 1, live: live[i] ?? false })));

describe('cluster service', () => {
  it('sends each polled entry to its owner and backup, and a teach record to the asker', async () => {
    const [m1, m2, m3] = await Promise.all(IDS.map((id) => mux(id)));
    if (!m1 || !m2 || !m3) throw new Error('unreachable');
    await until(() => [m1, m2, m3].every((m) => m.service.membership.live().length === 2));
    expect(m1.service.dataplane().members.map((m) => m.live)).toEqual([true, true, true]);
    // As the native poll gives them: owner and backup filled in.
    const flows = manyFlows(60);
    const all = owners([true, true, true]);
    for (const f of flows) {
      const r = record(f);
      const o = all.owners(r);
      r[5] = o.owner;
      r[6] = o.backup;
      m1.engine.exported.push(r);
    }
    // Every entry at its owner and backup (a flap of membership under load may send more).
    const at = (m: { engine: FakeEngine }, index: number): boolean =>
      flows.every((f) => {
        const o = all.owners(record(f));
        return (o.owner !== index && o.backup !== index) || m.engine.installed.has(flowKeyOf(record(f)));
      });
    await until(() => at(m2, 1) && at(m3, 2));

    m2.engine.exported.push(record({ kind: 4, peer: 2, client: '10.9.0.1', clientPort: 7, vip: '192.0.2.10', backend: '10.202.4.2' }));
    await until(() => [...m3.engine.installed.values()].some((r) => r.readUInt16BE(56) === 7));
    expect([...m3.engine.installed.values()].find((r) => r.readUInt16BE(56) === 7)?.[1]).toBe(1);
  });

  it('transfers to a joining mux the entries it now owns or backs; it is ready only after that', async () => {
    const m1 = await mux('mux1');
    const m2 = await mux('mux2');
    await until(() => m1.service.membership.isLive('mux2') && m1.service.ready && m2.service.ready);
    const two = owners([true, true, false]);
    const three = owners([true, true, true]);
    const flows = manyFlows(300);
    for (const f of flows) {
      const r = record(f);
      const o = two.owners(r);
      r[5] = o.owner;
      r[6] = o.backup;
      m1.engine.exported.push(r);
    }
    await until(() => m1.service.status().sync.polled === 300);
    const m3 = await mux('mux3');
    expect(m3.service.ready).toBe(false);
    await until(() => m3.service.ready);
    const want = flows.filter((f) => {
      const o = three.owners(record(f));
      return o.owner === 2 || o.backup === 2;
    });
    expect(want.length).toBeGreaterThan(100);
    const got = new Set([...m3.engine.installed.keys()]);
    expect(want.every((f) => got.has(flowKeyOf(record(f))))).toBe(true);
    expect(m3.service.status().members.find((m) => m.id === 'mux3')?.live).toBe(true);
  });

  it('a table change waits for the owners to acknowledge; gives up after commitTimeout (counted)', async () => {
    const [m1, m2, m3] = await Promise.all(IDS.map((id) => mux(id)));
    if (!m1 || !m2 || !m3) throw new Error('unreachable');
    await until(() => m1.service.membership.live().length === 2);
    const r = record({ client: '10.7.0.1', clientPort: 1, vip: '192.0.2.10', backend: '10.202.1.2' });
    r[5] = 1;
    r[6] = 2;
    m1.engine.exported.push(r);
    expect(await m1.service.beforeTableChange()).toBe(true);
    // Acknowledged means installed at both.
    expect(m2.engine.installed.size).toBe(1);
    expect(m3.engine.installed.size).toBe(1);

    await m3.service.stop();
    running.splice(running.indexOf(m3.service), 1);
    const r2 = record({ client: '10.7.0.2', clientPort: 2, vip: '192.0.2.10', backend: '10.202.1.2' });
    r2[5] = 2;
    r2[6] = 1;
    m1.engine.exported.push(r2);
    expect(await m1.service.beforeTableChange()).toBe(false);
    expect(m1.service.status().sync.commitTimeouts).toBe(1);
  });

  it('a dead peer leaves: live flags pushed, its flows handed to their new backup', async () => {
    const [m1, m2, m3] = await Promise.all(IDS.map((id) => mux(id)));
    if (!m1 || !m2 || !m3) throw new Error('unreachable');
    await until(() => [m1, m2, m3].every((m) => m.service.membership.live().length === 2));
    const all = owners([true, true, true]);
    const after = owners([true, false, true]);
    // mux1's flows owned or backed by mux2: after mux2 dies, mux3 must hold those whose new
    // owner or backup it is.
    const flows = manyFlows(200);
    for (const f of flows) {
      const r = record(f);
      const o = all.owners(r);
      r[5] = o.owner;
      r[6] = o.backup;
      m1.engine.exported.push(r);
    }
    await until(() => m1.service.status().sync.polled === 200);
    const before3 = new Set(m3.engine.installed.keys());
    const changes = m1.changes.length;
    await m2.service.stop();
    running.splice(running.indexOf(m2.service), 1);
    await until(() => !m1.service.membership.isLive('mux2') && !m3.service.membership.isLive('mux2'));
    // The engines learn it once the survivors' transfers are in (or after commitTimeout).
    await until(() => m1.changes.length > changes && m1.service.dataplane().members[1]?.live === false);
    expect(m1.service.dataplane().members.map((m) => m.live)).toEqual([true, false, true]);
    const want = flows.filter((f) => {
      const o = after.owners(record(f));
      return (o.owner === 2 || o.backup === 2) && !before3.has(flowKeyOf(record(f)));
    });
    expect(want.length).toBeGreaterThan(0);
    await until(() => want.every((f) => m3.engine.installed.has(flowKeyOf(record(f)))));
    expect(after.owners(record(flows[0]!)).owner).not.toBe(NO_MEMBER);
  });
});
