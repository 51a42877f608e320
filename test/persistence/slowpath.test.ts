// The slow path against real stores: the embedded store's state file, and a throwaway etcd
// started by the test (loopback, fresh data directory). Engines are FakeTable stand-ins (the
// native table and punt queue have their own GoogleTests; the lab test drives real packets).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EmbeddedStore } from '../../src/persistence/embedded.js';
import { EtcdStore } from '../../src/persistence/etcd.js';
import { SlowPath } from '../../src/persistence/slowpath.js';
import type { RmcAnswer, RmcRequest } from '../../src/persistence/store.js';
import { hasEtcd, TestEtcd } from '../support/etcd.js';
import { FakeTable } from './fake-table.js';

const logger = pino({ level: 'silent' });
const B = ['10.1.0.1', '10.1.0.2', '10.1.0.3'];
const VIP = { name: 'web', timeoutSeconds: 300, maxEntries: 100_000 };

async function until(probe: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('slow path with the embedded store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-persist-'));
  const path = join(dir, 'state.log');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('records the proposal of a new client, answers the recorded one afterwards, and keeps it across a restart', async () => {
    const table = new FakeTable(B);
    const slow = new SlowPath({ store: new EmbeddedStore({ path }), logger });
    slow.setVips([VIP]);
    await slow.start([table]);
    const t1 = table.punt('web', '198.51.100.7', '10.1.0.2');
    await until(() => table.answerFor(t1) !== undefined);
    expect(table.answerFor(t1)).toBe('10.1.0.2');
    expect(table.lookup('web', '198.51.100.7')?.backend).toBe('10.1.0.2');
    // Another worker raced it with another proposal: the recorded one wins.
    table.table.clear();
    const t2 = table.punt('web', '198.51.100.7', '10.1.0.3');
    await until(() => table.answerFor(t2) !== undefined);
    expect(table.answerFor(t2)).toBe('10.1.0.2');
    await slow.stop();

    // Daemon restarted: the entry comes back from the state file into the fresh table.
    const fresh = new FakeTable(B);
    const again = new SlowPath({ store: new EmbeddedStore({ path }), logger });
    again.setVips([VIP]);
    await again.start([fresh]);
    expect(fresh.lookup('web', '198.51.100.7')?.backend).toBe('10.1.0.2');
    const t3 = fresh.punt('web', '198.51.100.7', '10.1.0.1');
    await until(() => fresh.answerFor(t3) !== undefined);
    expect(fresh.answerFor(t3)).toBe('10.1.0.2');
    await again.stop();
  });

  it('replaces an entry whose backend cannot take new flows (compare-and-set), and forgets a silent client after its timeout', async () => {
    const table = new FakeTable(B);
    const store = new EmbeddedStore({ path: join(dir, 'cas.log') });
    const slow = new SlowPath({ store, logger });
    slow.setVips([{ name: 'web', timeoutSeconds: 1, maxEntries: 10 }]);
    await slow.start([table]);
    const t1 = table.punt('web', '203.0.113.0/24', '10.1.0.1');
    await until(() => table.answerFor(t1) !== undefined);
    table.accepting.delete('10.1.0.1');  // drained
    const t2 = table.punt('web', '203.0.113.0/24', '10.1.0.3');
    await until(() => table.answerFor(t2) !== undefined);
    expect(table.answerFor(t2)).toBe('10.1.0.3');
    expect(store.get('web/203.0.113.0/24')?.backend).toBe('10.1.0.3');
    expect(slow.counters.replaced).toBe(1);

    // Silence longer than the timeout: the entry is gone and the client is scheduled anew.
    await new Promise((r) => setTimeout(r, 1100));
    await slow.housekeeping();
    expect(table.lookup('web', '203.0.113.0/24')).toBeNull();
    const t3 = table.punt('web', '203.0.113.0/24', '10.1.0.2');
    await until(() => table.answerFor(t3) !== undefined);
    expect(table.answerFor(t3)).toBe('10.1.0.2');
    await slow.stop();
  });

  it('bounds the entries of a VIP: beyond maxEntries clients are scheduled without one (counted)', async () => {
    const table = new FakeTable(B);
    const slow = new SlowPath({ store: new EmbeddedStore({ path: join(dir, 'bound.log') }), logger });
    slow.setVips([{ name: 'web', timeoutSeconds: 60, maxEntries: 5 }]);
    await slow.start([table]);
    const tickets = Array.from({ length: 8 }, (_, i) => table.punt('web', `10.9.0.${i}`, B[i % 3] as string));
    await until(() => tickets.every((t) => table.answerFor(t) !== undefined));
    expect(slow.entryCount('web')).toBe(5);
    expect(slow.counters.overLimit).toBe(3);
    await slow.stop();
  });
});

/** The embedded store whose read-miss-create hangs while `stalled` (a store that stopped answering). */
class StallingStore extends EmbeddedStore {
  stalled = false;
  calls = 0;
  private readonly waiting: Array<() => void> = [];
  override async rmc(requests: readonly RmcRequest[]): Promise<RmcAnswer[]> {
    this.calls += 1;
    if (this.stalled) await new Promise<void>((resolve) => this.waiting.push(resolve));
    return super.rmc(requests);
  }
  /** Answers again; the calls that hung complete now (late). */
  unstall(): void {
    this.stalled = false;
    for (const w of this.waiting.splice(0)) w();
  }
}

describe('slow path with a store that stalls', () => {
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-persist-stall-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decides locally once storeTimeoutMs has passed, does not wait for the store while it is down, and reconciles when it answers', async () => {
    const table = new FakeTable(B);
    const store = new StallingStore({ path: join(dir, 'stall.log') });
    const slow = new SlowPath({ store, logger, storeTimeoutMs: 150 });
    slow.setVips([VIP]);
    await slow.start([table]);
    store.stalled = true;
    const started = Date.now();
    const t1 = table.punt('web', '192.0.2.1', '10.1.0.1');
    await until(() => table.answerFor(t1) !== undefined, 5000);
    const waited = Date.now() - started;
    expect(table.answerFor(t1)).toBe('10.1.0.1');  // the local proposal
    expect(waited).toBeGreaterThanOrEqual(140);  // it did wait for the store first
    expect(slow.counters.storeTimeouts).toBe(1);
    expect(slow.counters.localDecisions).toBe(1);
    expect(slow.storeAvailable()).toBe(false);
    expect(table.lookup('web', '192.0.2.1')?.backend).toBe('10.1.0.1');

    // Down: the next new client is decided locally without another call to the store.
    const calls = store.calls;
    const t2 = table.punt('web', '192.0.2.2', '10.1.0.3');
    await until(() => table.answerFor(t2) !== undefined, 5000);
    expect(table.answerFor(t2)).toBe('10.1.0.3');
    expect(store.calls).toBe(calls);
    expect(slow.counters.localDecisions).toBe(2);
    // A second later a batch tries the store again (a probe): still stalled, decided locally.
    await new Promise((r) => setTimeout(r, 1050));
    const t3 = table.punt('web', '192.0.2.3', '10.1.0.2');
    await until(() => table.answerFor(t3) !== undefined, 5000);
    expect(table.answerFor(t3)).toBe('10.1.0.2');
    expect(store.calls).toBeGreaterThan(calls);
    expect(slow.storeAvailable()).toBe(false);

    // Reconciliation while stalled times out too; once the store answers, the local
    // decisions are recorded in it and the store is available again.
    await slow.housekeeping();
    expect(slow.counters.storeTimeouts).toBeGreaterThanOrEqual(2);
    expect(slow.status()['localPending']).toBe(3);
    store.unstall();
    await slow.housekeeping();
    expect(slow.storeAvailable()).toBe(true);
    expect(slow.status()['localPending']).toBe(0);
    expect(store.get('web/192.0.2.1')?.backend).toBe('10.1.0.1');
    expect(store.get('web/192.0.2.2')?.backend).toBe('10.1.0.3');
    expect(store.get('web/192.0.2.3')?.backend).toBe('10.1.0.2');
    await slow.stop();
  });
});

describe.skipIf(!hasEtcd)('slow path with etcd', () => {
  const etcd = new TestEtcd();
  beforeAll(() => etcd.start(), 30_000);
  afterAll(() => etcd.remove());

  // Agreement is what is tested, not speed: a loaded machine may take seconds per transaction.
  const mux = async (prefix = '/test/', timeoutMs = 30_000): Promise<{ table: FakeTable; slow: SlowPath }> => {
    const table = new FakeTable(B);
    const slow = new SlowPath({ store: new EtcdStore({ endpoints: [etcd.endpoint], prefix, timeoutMs }), logger });
    slow.setVips([VIP]);
    await slow.start([table]);
    return { table, slow };
  };

  it('1000 clients whose first packets reach two muxes at once: both muxes answer the same backend for every one', async () => {
    const [a, b] = await Promise.all([mux(), mux()]);
    const tickets: Array<[number, number]> = [];
    for (let i = 0; i < 1000; i++) {
      const client = `10.${i >> 8}.${i & 255}.1`;
      // Different proposals on the two muxes (per-mux schedulers, or different pool views).
      tickets.push([a.table.punt('web', client, B[i % 3] as string), b.table.punt('web', client, B[(i + 1) % 3] as string)]);
    }
    await until(() => tickets.every(([ta, tb]) => a.table.answerFor(ta) !== undefined && b.table.answerFor(tb) !== undefined), 90_000);
    const agree = tickets.filter(([ta, tb]) => a.table.answerFor(ta) === b.table.answerFor(tb)).length;
    expect(agree, JSON.stringify([a.slow.status(), b.slow.status()])).toBe(1000);
    expect(a.slow.counters.storeCreated + b.slow.counters.storeCreated).toBe(1000);
    // The watch gives each mux the entries the other one recorded.
    await until(() => a.table.table.size === 1000 && b.table.table.size === 1000, 10_000);
    await Promise.all([a.slow.stop(), b.slow.stop()]);
  }, 120_000);

  it('etcd stopped: new clients are decided locally (counted); etcd back: the local decisions are reconciled', async () => {
    const { table, slow } = await mux('/outage/', 2000);
    await etcd.stop();
    const tickets = Array.from({ length: 50 }, (_, i) => table.punt('web', `172.16.0.${i}`, B[i % 3] as string));
    await until(() => tickets.every((t) => table.answerFor(t) !== undefined), 60_000);
    expect(tickets.map((t, i) => table.answerFor(t) === B[i % 3]).every(Boolean)).toBe(true);
    expect(slow.counters.localDecisions, JSON.stringify(slow.status())).toBe(50);
    expect(slow.storeAvailable()).toBe(false);
    expect(table.table.size).toBe(50);  // known clients keep their backend meanwhile

    await etcd.start();
    await until(() => {
      void slow.housekeeping();
      return slow.counters.reconciled >= 50;
    }, 30_000);
    expect(slow.storeAvailable()).toBe(true);
    expect(slow.status()['localPending']).toBe(0);
    // What this mux decided alone is now what etcd holds: another mux gets the same answers.
    const other = await mux('/outage/');
    const again = Array.from({ length: 50 }, (_, i) => other.table.punt('web', `172.16.0.${i}`, '10.1.0.9'));
    await until(() => again.every((t) => other.table.answerFor(t) !== undefined), 20_000);
    expect(again.map((t, i) => other.table.answerFor(t) === B[i % 3]).every(Boolean)).toBe(true);
    await Promise.all([slow.stop(), other.slow.stop()]);
  }, 150_000);
});
