// Client persistence in the daemon (fake engines with a miniature persistence table, the real
// embedded store in the test's directory): the engines get their tables, the slow path answers
// their punts, `l4mux status` and `l4mux persistence` show the entries and counters, a reload
// changes the persistent VIPs and the backends, and a restarted daemon finds its entries again.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { sendControl } from '../../src/api/client.js';
import type { StatusResponse } from '../../src/api/protocol.js';
import type { CommandIo } from '../../src/cli/io.js';
import { runPersistence } from '../../src/cli/commands/persistence.js';
import { Daemon, runDaemon } from '../../src/daemon/index.js';
import type { FakeEngine } from './fake-engine.js';
import { daemonConfig, harness, type Harness, type Json } from './harness.js';

function captureIo(): CommandIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (line) => stdout.push(line), err: (line) => stderr.push(line) };
}

function persistentConfig(dir: string): Json {
  const doc = daemonConfig();
  doc.vips[0].persistence = { timeout: 600, granularity: '/24' };
  doc.vips.push({ name: 'plain', address: '192.0.2.11', protocol: 'tcp', port: 80, pool: 'web', tableSize: 251 });
  doc.persistence = { stateFile: join(dir, 'persistence.log'), tableEntries: 4096, puntSlots: 64 };
  return doc;
}

async function until(probe: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function stopped(h: Harness, daemon: Daemon): Promise<void> {
  h.signals.emit('SIGTERM');
  expect(await daemon.done).toBe(0);
}

function table(h: Harness): NonNullable<FakeEngine['persistence']> {
  const t = h.engines.get('eth0')?.persistence;
  if (t === undefined) throw new Error('eth0 has no persistence table');
  return t;
}

describe('persistence in the daemon', () => {
  it('gives the engines tables, answers punts, shows entries and counters, follows reloads, and keeps entries across a restart', async () => {
    const h = harness();
    const doc = persistentConfig(h.dir);
    h.writeConfig(doc);
    let daemon = await Daemon.start(h.options, h.deps);
    const control = h.options.controlSocket as string;
    try {
      const engine = h.engines.get('eth0') as FakeEngine;
      expect(engine.options.persistenceEntries).toBe(4096);
      expect(engine.options.puntSlots).toBe(64);
      expect(engine.current?.vips.map((v) => v.persistence)).toEqual([{ timeoutSeconds: 600, prefixLength: 24, maxEntries: 65536 }, undefined]);

      // A new client's first packet: the proposal is recorded, installed and the packet released to it.
      const t1 = table(h).punt('web', '198.51.100.0/24', '10.1.0.2');
      await until(() => table(h).answerFor(t1) !== undefined, 'answer');
      expect(table(h).answerFor(t1)).toBe('10.1.0.2');
      expect(table(h).lookup('web', '198.51.100.0/24')?.backend).toBe('10.1.0.2');

      // l4mux persistence VIP CLIENT: any address of the /24 is that client.
      const io = captureIo();
      expect(await runPersistence(control, 'web', '198.51.100.77', false, io)).toBe(0);
      expect(io.stdout[0]).toBe('client 198.51.100.0/24 of VIP web (timeout 600 s, embedded store)');
      expect(io.stdout[1]).toMatch(/^slow path: backend 10\.1\.0\.2, expires in (59\d\.\d|600\.0) s$/);
      expect(io.stdout[2]).toMatch(/^eth0: backend 10\.1\.0\.2, expires in (59\d\.\d|600\.0) s$/);
      const bad = captureIo();
      expect(await runPersistence(control, 'plain', '198.51.100.77', false, bad)).toBe(1);
      expect(bad.stderr).toEqual(['vip: plain has no persistence']);
      expect(await runPersistence(control, 'web', '2001:db8::1', false, bad)).toBe(1);
      expect(bad.stderr.at(-1)).toBe('client: 2001:db8::1 is not an IPv4 address, as the clients of web are');

      // l4mux status: the tables and the slow path's counters.
      const status = (await sendControl(control, { cmd: 'status' })) as StatusResponse;
      const p = status.status.services?.['persistence'] as { tables: Record<string, { entries: number }>; slowPath: { entries: number; counters: { punts: number; storeCreated: number }; store: { kind: string; available: boolean } } };
      expect(p.tables['eth0']?.entries).toBe(1);
      expect(p.slowPath.entries).toBe(1);
      expect(p.slowPath.counters.punts).toBe(1);
      expect(p.slowPath.counters.storeCreated).toBe(1);
      expect(p.slowPath.store).toMatchObject({ kind: 'embedded', available: true });

      // Reload: the recorded backend is removed from the pool; the client's next first packet
      // (the worker says its entry's backend cannot take it) is re-picked with a compare-and-set.
      doc.pools.web.backends = doc.pools.web.backends.filter((b: Json) => b.address !== '10.1.0.2');
      doc.vips[1].persistence = { timeout: 60 };
      h.writeConfig(doc);
      const reload = await sendControl(control, { cmd: 'reload' });
      expect(reload.ok).toBe(true);
      expect(engine.current?.vips[1]?.persistence).toEqual({ timeoutSeconds: 60, prefixLength: 32, maxEntries: 65536 });
      const t2 = table(h).punt('web', '198.51.100.0/24', '10.1.0.1');
      await until(() => table(h).answerFor(t2) !== undefined, 're-pick');
      expect(table(h).answerFor(t2)).toBe('10.1.0.1');
      expect(table(h).lookup('web', '198.51.100.0/24')?.backend).toBe('10.1.0.1');
      // The newly persistent VIP takes punts too.
      const t3 = table(h).punt('plain', '203.0.113.9', '10.1.0.1');
      await until(() => table(h).answerFor(t3) !== undefined, 'plain');
      expect(table(h).lookup('plain', '203.0.113.9')?.backend).toBe('10.1.0.1');

      // Reload turning a VIP's persistence off: its entries leave the tables.
      delete doc.vips[1].persistence;
      h.writeConfig(doc);
      expect((await sendControl(control, { cmd: 'reload' })).ok).toBe(true);
      expect(table(h).lookup('plain', '203.0.113.9')).toBeNull();
      expect(table(h).lookup('web', '198.51.100.0/24')?.backend).toBe('10.1.0.1');
    } finally {
      await stopped(h, daemon);
    }

    // Restarted: the state file gives the fresh engine's table the entry back.
    daemon = await Daemon.start(h.options, h.deps);
    try {
      expect(table(h).lookup('web', '198.51.100.0/24')?.backend).toBe('10.1.0.1');
      const t4 = table(h).punt('web', '198.51.100.0/24', '10.1.0.2');
      await until(() => table(h).answerFor(t4) !== undefined, 'after restart');
      expect(table(h).answerFor(t4)).toBe('10.1.0.1');
    } finally {
      await stopped(h, daemon);
    }
  });

  it('a daemon without persistent VIPs makes no tables and has no persistence service', async () => {
    const h = harness();
    const daemon = await Daemon.start(h.options, h.deps);
    try {
      expect(h.engines.get('eth0')?.options.persistenceEntries).toBeUndefined();
      expect(h.engines.get('eth0')?.persistence).toBeUndefined();
      const status = (await sendControl(h.options.controlSocket as string, { cmd: 'status' })) as StatusResponse;
      expect(status.status.services?.['persistence']).toBeUndefined();
      const io = captureIo();
      expect(await runPersistence(h.options.controlSocket as string, 'web', '198.51.100.7', false, io)).toBe(1);
      expect(io.stderr).toEqual(['no VIP has persistence in the running config']);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('a store that cannot be opened stops the start with the reason, and nothing is left running', async () => {
    const h = harness();
    const doc = persistentConfig(h.dir);
    // Its directory would be a regular file (the config): the store cannot be opened.
    doc.persistence.stateFile = join(h.configPath, 'state.log');
    h.writeConfig(doc);
    await expect(Daemon.start(h.options, h.deps)).rejects.toThrow(`persistence.stateFile: ${doc.persistence.stateFile}: ${h.configPath} is not a directory`);
    expect(h.engines.get('eth0')?.running).toBe(false);
  });

  // The start used to hang here: mkdirSync(..., { recursive: true }) loops forever under /proc.
  it('refuses to start, exit 1, when the state file cannot be created: persistence.stateFile: reason', async () => {
    const cases: Array<[string, string]> = [
      ['/proc/nonexistent/state.json', 'persistence.stateFile: /proc/nonexistent/state.json: cannot create the directory /proc/nonexistent (ENOENT: no such file or directory)'],
      ['/proc/nonexistent/a/b/state.json', 'persistence.stateFile: /proc/nonexistent/a/b/state.json: cannot create the directory /proc/nonexistent (ENOENT: no such file or directory)'],
      // An existing directory that takes no new files (as root, only such a file system refuses).
      ['/proc/self/state.json', 'persistence.stateFile: /proc/self/state.json: cannot write it (ENOENT: no such file or directory)'],
    ];
    for (const [stateFile, message] of cases) {
      const h = harness();
      const doc = persistentConfig(h.dir);
      doc.persistence.stateFile = stateFile;
      h.writeConfig(doc);
      expect(await runDaemon(h.options, h.deps)).toBe(1);
      expect(h.printed).toEqual([message]);
      // Startup undone: the engines stopped, pid file and control socket gone.
      expect(h.engines.get('eth0')?.running).toBe(false);
      expect(existsSync(h.options.pidfile!)).toBe(false);
      expect(existsSync(h.options.controlSocket!)).toBe(false);
    }
  });
});

