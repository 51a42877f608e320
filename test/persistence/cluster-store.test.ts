// Two and three muxes' persistence in processes of their own (test/persistence/fixtures/
// persist-mux.mjs: the compiled slow path over a miniature table), on loopback: the cluster
// store (each mux a ClusterService on its own 127.0.0.x address, the store's requests over the
// authenticated channel) and the etcd store (a real etcd, test/support/etcd.ts). A client's first
// packet reaches two muxes at the same wall-clock moment, each proposing another backend: every
// client ends with one backend on both; with the addon's pipeline, the same with real SYN frames
// (held, released to the answer, decoded). The owner of a client key is SIGKILLed: its backups
// answer with the entries it recorded; restarted, it finds them again (state file, transfers).
import { fork, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { hasEtcd, TestEtcd } from '../support/etcd.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const dist = join(repoRoot, 'build', 'test-dist-persistence-cluster');
const fixture = fileURLToPath(new URL('./fixtures/persist-mux.mjs', import.meta.url));
const port = 46000 + (process.pid % 500) * 2;
const members = { a: '127.0.0.2', b: '127.0.0.3', c: '127.0.0.4' };
const BACKENDS = ['10.1.0.1', '10.1.0.2', '10.1.0.3'];

type Json = Record<string, unknown>;

class Mux {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly exited: Promise<number | null>;
  stderr = '';

  constructor(
    readonly id: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
      if (m.id === undefined) return;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(`${this.id}: ${m.error}`));
      else w?.resolve(m.result);
    });
    void this.exited.then(() => {
      for (const w of this.waiting.values()) w.reject(new Error(`${this.id} exited\n${this.stderr}`));
      this.waiting.clear();
    });
  }

  call<T>(cmd: string, args: Json = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, cmd, ...args });
    });
  }

  status(): Promise<{ live: string[]; store: Json; slow: Json }> {
    return this.call('status');
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

const running: Mux[] = [];
const dirs: string[] = [];

async function spawnMux(options: Json & { id: string }, env: Record<string, string> = {}): Promise<Mux> {
  const child = fork(fixture, [JSON.stringify({ dist, port, members, storeTimeoutMs: 5000, ...options })], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, ...env } });
  const mux = new Mux(options.id, child);
  running.push(mux);
  await new Promise<void>((resolve, reject) => {
    child.on('message', (m: { ready?: boolean }) => m.ready === true && resolve());
    void mux.exited.then((code) => reject(new Error(`${options.id} exited (${code}) before it was ready\n${mux.stderr}`)));
  });
  return mux;
}

async function until(probe: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every mux sees the others live, and its store has the transfers of all of them. */
async function clusterUp(muxes: Mux[]): Promise<void> {
  await until(async () => {
    const s = await Promise.all(muxes.map((m) => m.status()));
    return s.every((x, i) => x.live.length === muxes.length - 1 && x.store['synced'] === true && muxes.every((o, j) => i === j || x.live.includes(o.id)));
  }, 'cluster up and synced');
}

function clients(n: number, from = 0): string[] {
  return Array.from({ length: n }, (_, i) => `198.18.${(from + i) >> 8}.${(from + i) & 255}`);
}

/** Each mux proposes another backend for every client (without an atomic RMC they would all disagree). */
function proposals(list: string[], shift: number): Array<{ client: string; proposed: string }> {
  return list.map((client, i) => ({ client, proposed: BACKENDS[(i + shift) % BACKENDS.length] as string }));
}

async function puntAtOnce(muxes: Mux[], list: string[]): Promise<string[][]> {
  const at = Date.now() + 300;
  const results = await Promise.all(muxes.map((m, k) => m.call<{ backends: string[]; local: number }>('punt', { at, clients: proposals(list, k) })));
  for (const r of results) expect(r.local).toBe(0);
  return results.map((r) => r.backends);
}

function agreeing(a: string[], b: string[]): number {
  return a.filter((x, i) => x === b[i] && BACKENDS.includes(x)).length;
}

function workDir(): { dir: string; keyFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-persist-cluster-'));
  dirs.push(dir);
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  return { dir, keyFile };
}

beforeAll(() => {
  try {
    execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--outDir', dist], { cwd: repoRoot, stdio: 'pipe' });
  } catch (e) {
    // Type errors elsewhere in the tree still emit.
    if (!existsSync(join(dist, 'persistence', 'cluster-store.js'))) throw e;
  }
}, 180_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((m) => m.kill()));
});

afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the cluster store (embedded store across muxes), in separate processes', { timeout: 120_000 }, () => {
  it('1000 clients whose first packets reach two muxes at once: both muxes give each the same backend; entries reach the other mux; compare-and-set', async () => {
    const { dir, keyFile } = workDir();
    const a = await spawnMux({ id: 'a', members: { a: members.a, b: members.b }, keyFile, stateFile: join(dir, 'a.log') });
    const b = await spawnMux({ id: 'b', members: { a: members.a, b: members.b }, keyFile, stateFile: join(dir, 'b.log') });
    await clusterUp([a, b]);

    const list = clients(1000);
    const [ra, rb] = await puntAtOnce([a, b], list);
    expect(agreeing(ra as string[], rb as string[])).toBe(1000);
    const [sa, sb] = await Promise.all([a.status(), b.status()]);
    // Each mux owned some of the keys and asked the other for the rest.
    for (const s of [sa, sb]) {
      expect(s.store['forwarded']).toBeGreaterThan(100);
      expect(s.store['ownerRemote']).toBeGreaterThan(100);
      expect(s.store['timeouts']).toBe(0);
    }
    expect((sa.store['created'] as number) + (sb.store['created'] as number)).toBe(1000);

    // The entries reached both muxes' tables, with the backend they answered.
    const keys = list.map((c) => `web/${c}`);
    await until(async () => {
      const [ta, tb] = await Promise.all([a.call<string[]>('table', { keys }), b.call<string[]>('table', { keys })]);
      return ta.every((x, i) => x === ra?.[i]) && tb.every((x, i) => x === ra?.[i]);
    }, 'entries in both tables');

    // Compare-and-set from both muxes at once (the recorded backend went down): one wins, both see it.
    const k0 = keys[0] as string;
    const [ca, cb] = await Promise.all([a.call<string>('replace', { key: k0, expected: ra?.[0], next: '10.1.0.8', timeoutSeconds: 600 }), b.call<string>('replace', { key: k0, expected: ra?.[0], next: '10.1.0.9', timeoutSeconds: 600 })]);
    expect(ca).toBe(cb);
    expect(['10.1.0.8', '10.1.0.9']).toContain(ca);
    const again = await Promise.all([a, b].map((m) => m.call<string[]>('rmc', { requests: [{ key: k0, proposed: '10.1.0.1', timeoutSeconds: 600 }] })));
    expect(again).toEqual([[ca], [ca]]);
  });

  it('real SYN frames through two muxes\' pipelines (the addon, each mux its own Maglev seed): 1000 new clients at both at once leave on one backend each; clients first seen on one mux are fast-path hits on the other', async () => {
    const { dir, keyFile } = workDir();
    const two = { a: members.a, b: members.b };
    const env = { L4MUX_ADDON: join(repoRoot, 'build', 'addon', 'Release', 'l4mux_addon.node') };
    const a = await spawnMux({ id: 'a', members: two, keyFile, stateFile: join(dir, 'a.log'), dataplane: true, seed: '0x1111', backends: BACKENDS }, env);
    const b = await spawnMux({ id: 'b', members: two, keyFile, stateFile: join(dir, 'b.log'), dataplane: true, seed: '0x2222', backends: BACKENDS }, env);
    await clusterUp([a, b]);
    type Syn = { backends: Array<string | null>; verdicts: Record<string, number>; proposals: Array<string | null>; local: number };
    const syn = (m: Mux, list: string[], port: number, at = 0): Promise<Syn> => m.call<Syn>('syn', { at, clients: list, port });

    const list = clients(1000);
    // In rounds of 100 (each at both muxes at the same moment): a round's answers must come
    // within the pipeline's 2 s hold bound even on a loaded machine.
    const rounds: Syn[][] = [];
    for (let r = 0; r < 10; r++) {
      const part = list.slice(r * 100, (r + 1) * 100);
      const at = Date.now() + 300;
      rounds.push(await Promise.all([syn(a, part, 40000, at), syn(b, part, 40000, at)]));
    }
    const merge = (k: number): Syn => ({
      backends: rounds.flatMap((r) => (r[k] as Syn).backends),
      proposals: rounds.flatMap((r) => (r[k] as Syn).proposals),
      // A mux that runs late may find the other's answer already in its table (a hit, "tx").
      verdicts: { heldOrHit: rounds.reduce((n, r) => n + ((r[k] as Syn).verdicts['held'] ?? 0) + ((r[k] as Syn).verdicts['tx'] ?? 0), 0) },
      local: (rounds[9]?.[k] as Syn).local,
    });
    const [sa, sb] = [merge(0), merge(1)];
    for (const s of [sa, sb]) {
      expect(s.verdicts).toEqual({ heldOrHit: 1000 });
      expect(s.local).toBe(0);
    }
    // The two schedulers disagree on many clients: the store decides.
    const differing = list.filter((_, i) => sa.proposals[i] !== null && sb.proposals[i] !== null && sa.proposals[i] !== sb.proposals[i]).length;
    expect(differing).toBeGreaterThan(300);
    expect(agreeing(sa.backends as string[], sb.backends as string[])).toBe(1000);

    // 500 more clients only through b; their entries reach a's table, so their SYNs at a leave at once.
    const more = clients(500, 1000);
    const sb2 = await syn(b, more, 41000);
    expect(sb2.verdicts).toEqual({ held: 500 });
    await until(async () => (await a.call<Array<string | null>>('lookup', { clients: more })).every((x, i) => x === sb2.backends[i]), 'b\'s entries in a\'s table');
    const sa2 = await syn(a, more, 42000);
    expect(sa2.verdicts).toEqual({ tx: 500 });
    expect(sa2.backends).toEqual(sb2.backends);
  });

  it('a quarter of the persist datagrams lost both ways: requests are sent again, 500 clients at both muxes at once still agree, none decided locally', async () => {
    const { dir, keyFile } = workDir();
    const two = { a: members.a, b: members.b };
    const a = await spawnMux({ id: 'a', members: two, keyFile, stateFile: join(dir, 'a.log'), lossEvery: 4 });
    const b = await spawnMux({ id: 'b', members: two, keyFile, stateFile: join(dir, 'b.log'), lossEvery: 4 });
    await clusterUp([a, b]);
    const list = clients(500);
    const [ra, rb] = await puntAtOnce([a, b], list);
    expect(agreeing(ra as string[], rb as string[])).toBe(500);
    const [sa, sb] = await Promise.all([a.status(), b.status()]);
    expect((sa.store['resent'] as number) + (sb.store['resent'] as number)).toBeGreaterThan(0);
    expect(sa.store['timeouts']).toBe(0);
    expect(sb.store['timeouts']).toBe(0);
  });

  it('the owner SIGKILLed: its backups answer with the entries it recorded; new clients still agree; restarted, it has them all', async () => {
    const { dir, keyFile } = workDir();
    const opts = (id: 'a' | 'b' | 'c'): Json & { id: string } => ({ id, members, keyFile, stateFile: join(dir, `${id}.log`) });
    const a = await spawnMux(opts('a'));
    let b = await spawnMux(opts('b'));
    const c = await spawnMux(opts('c'));
    await clusterUp([a, b, c]);

    const list = clients(300);
    const keys = list.map((x) => `web/${x}`);
    const [ra, rc] = await puntAtOnce([a, c], list);
    expect(agreeing(ra as string[], rc as string[])).toBe(300);
    const owners = await a.call<Array<{ owner: string; backup: string }>>('owners', { keys });
    const ownedByB = owners.filter((o) => o.owner === 'b').length;
    expect(ownedByB).toBeGreaterThan(50);
    // Every entry in b's state file before it dies (the puts of a and c reach it a little later
    // than the answers: on a loaded machine 28 were still on their way when b was killed).
    await until(async () => ((await b.status()).store['entries'] as number) >= 300, 'every entry in b\'s store');

    await b.kill();
    await until(async () => (await Promise.all([a.status(), c.status()])).every((s) => !s.live.includes('b')), 'b declared dead');
    const before = (await c.status()).store;
    // Fresh proposals that nobody recorded: the answers must be the recorded backends.
    const ask = (m: Mux, ks: string[], proposed: string): Promise<string[]> => m.call<string[]>('rmc', { requests: ks.map((key) => ({ key, proposed, timeoutSeconds: 600 })) });
    const [aa, ac] = await Promise.all([ask(a, keys, '10.1.0.7'), ask(c, keys, '10.1.0.6')]);
    expect(aa).toEqual(ra);
    expect(ac).toEqual(ra);
    const after = (await c.status()).store;
    expect((after['ownerLocal'] as number) + (after['ownerRemote'] as number)).toBeGreaterThan((before['ownerLocal'] as number) + (before['ownerRemote'] as number));

    // New clients while b is down: a and c still agree.
    const fresh = clients(100, 300);
    const [fa, fc] = await puntAtOnce([a, c], fresh);
    expect(agreeing(fa as string[], fc as string[])).toBe(100);

    // b restarts with its state file and gets the entries recorded while it was down.
    b = await spawnMux(opts('b'));
    // Its state file holds the 300 clients of before (the transfers bring only what is newer).
    expect(((await b.status()).slow['entries'] as number)).toBeGreaterThanOrEqual(300);
    await clusterUp([a, b, c]);
    // The transfers brought only what b did not have: the 100 clients of its absence.
    const transferred = (await b.status()).store['putsApplied'] as number;
    expect(transferred).toBeGreaterThanOrEqual(1);
    expect(transferred).toBeLessThanOrEqual(100);
    const allKeys = [...keys, ...fresh.map((x) => `web/${x}`)];
    const [ba, bb] = await Promise.all([ask(b, allKeys, '10.1.0.5'), ask(a, allKeys, '10.1.0.4')]);
    expect(ba).toEqual([...(ra as string[]), ...(fa as string[])]);
    expect(bb).toEqual(ba);
  });

  it('a dead owner\'s keys: their new owner sends the entries to their new backup (here the dead owner\'s puts never reached it); that backup answers once the new owner dies too', async () => {
    const { dir, keyFile } = workDir();
    const opts = (id: 'a' | 'b' | 'c', extra: Json = {}): Json & { id: string } => ({ id, members, keyFile, stateFile: join(dir, `${id}.log`), ...extra });
    const a = await spawnMux(opts('a'));
    const b = await spawnMux(opts('b', { dropPuts: true }));
    const c = await spawnMux(opts('c'));
    await clusterUp([a, b, c]);
    const list = clients(300);
    const keys = list.map((x) => `web/${x}`);
    const [ra] = await puntAtOnce([a], list);
    const owners = await a.call<Array<{ owner: string; backup: string }>>('owners', { keys });
    // Owned by b, backed up by a: c heard of them from nobody.
    const picked = keys.map((k, i) => ({ k, i })).filter(({ i }) => owners[i]?.owner === 'b' && owners[i]?.backup === 'a');
    expect(picked.length).toBeGreaterThan(20);
    const pickedKeys = picked.map(({ k }) => k);
    const recorded = picked.map(({ i }) => ra?.[i]);
    expect(await c.call<Array<string | null>>('stored', { keys: pickedKeys })).toEqual(picked.map(() => null));

    await b.kill();
    // a owns them now, with c as their backup: a sends them to c.
    await until(async () => JSON.stringify(await c.call('stored', { keys: pickedKeys })) === JSON.stringify(recorded), 'the entries at their new backup');
    expect((await a.status()).store['rereplicated']).toBeGreaterThanOrEqual(picked.length);

    await a.kill();
    await until(async () => (await c.status()).live.length === 0, 'a and b declared dead');
    const answers = await c.call<string[]>('rmc', { requests: pickedKeys.map((key) => ({ key, proposed: '10.1.0.7', timeoutSeconds: 600 })) });
    expect(answers).toEqual(recorded);
  });
});

describe.skipIf(!hasEtcd)('the etcd store, in separate processes', { timeout: 120_000 }, () => {
  const etcd = new TestEtcd();
  beforeAll(async () => {
    await etcd.start();
  }, 30_000);
  afterAll(async () => {
    await etcd.remove();
  });

  it('1000 clients whose first packets reach two muxes at once: both muxes give each the same backend', async () => {
    const prefix = `/l4mux-test-${process.pid}/`;
    // The slow path's limit covers a whole batch (1000 transactions, 64 at a time) on a loaded machine.
    const a = await spawnMux({ id: 'a', store: 'etcd', etcd: etcd.endpoint, prefix, storeTimeoutMs: 20_000 });
    const b = await spawnMux({ id: 'b', store: 'etcd', etcd: etcd.endpoint, prefix, storeTimeoutMs: 20_000 });
    const list = clients(1000);
    const [ra, rb] = await puntAtOnce([a, b], list);
    expect(agreeing(ra as string[], rb as string[])).toBe(1000);
    const [sa, sb] = await Promise.all([a.status(), b.status()]);
    expect((sa.store['created'] as number) + (sb.store['created'] as number)).toBe(1000);
  });
});
