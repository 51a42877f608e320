// Runs the daemon in-process against a modelled host and fake engines.
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll } from 'vitest';

import { createLogger, type DaemonDeps, type DaemonOptions } from '../../src/daemon/index.js';
import type { ProcessPrivileges } from '../../src/net/capabilities.js';
import { muxHost, type FakeHost } from '../net/fake-host.js';
import { fakeEngines, type FakeEngine } from './fake-engine.js';

export type Json = { [key: string]: any };

/** eth0 served; two IPv4 backends behind the router of muxHost(). */
export function daemonConfig(): Json {
  return {
    version: 1,
    node: { seed: '0x5eed', interfaces: ['eth0'], outerSource: { ipv4: '10.9.0.2' } },
    pools: { web: { backends: [{ address: '10.1.0.1' }, { address: '10.1.0.2' }] } },
    vips: [{ name: 'web', address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web', tableSize: 251 }],
  };
}

export interface LogEntry {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface Harness {
  dir: string;
  configPath: string;
  writeConfig(doc: Json | string): void;
  host: FakeHost;
  engines: Map<string, FakeEngine>;
  setupEngine(fn: (e: FakeEngine) => void): void;
  signals: EventEmitter;
  logs: LogEntry[];
  printed: string[];
  privileges: ProcessPrivileges;
  options: DaemonOptions;
  deps: DaemonDeps;
  /** Waits until a log entry matches (by message regexp); returns it. */
  waitForLog(pattern: RegExp, from?: number): Promise<LogEntry>;
  messages(): string[];
}

// The directories of this file's harnesses, removed when the file's tests are done.
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function harness(doc: Json = daemonConfig()): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-daemon-'));
  dirs.push(dir);
  const configPath = join(dir, 'l4mux.json');
  const writeConfig = (d: Json | string): void => writeFileSync(configPath, typeof d === 'string' ? d : JSON.stringify(d, null, 2));
  writeConfig(doc);
  const host = muxHost();
  const fakes = fakeEngines();
  const logs: LogEntry[] = [];
  const logger = createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line) as LogEntry) });
  const signals = new EventEmitter();
  const printed: string[] = [];
  const h: Harness = {
    dir,
    configPath,
    writeConfig,
    host,
    engines: fakes.engines,
    setupEngine: (fn) => {
      fakes.setup = fn;
    },
    signals,
    logs,
    printed,
    privileges: { uid: 0, effective: (1n << 41n) - 1n },
    options: {
      configPath,
      pidfile: join(dir, 'l4mux.pid'),
      controlSocket: join(dir, 'control.sock'),
      countersIntervalMs: 0,
      nextHopIntervalMs: 3_600_000,
      resolve: { attempts: 3, initialDelayMs: 1 },
    },
    deps: undefined as unknown as DaemonDeps,
    async waitForLog(pattern, from = 0) {
      for (let i = 0; i < 500; i++) {
        const found = logs.slice(from).find((l) => pattern.test(l.msg));
        if (found !== undefined) return found;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no log line matches ${pattern}; got:\n${logs.map((l) => l.msg).join('\n')}`);
    },
    messages: () => logs.map((l) => l.msg),
  };
  h.deps = {
    logger,
    host,
    createEngine: fakes.factory,
    readPrivileges: async () => h.privileges,
    onlineCpus: async () => [0, 1],
    signals,
    printError: (line) => printed.push(line),
    version: '0.0.0-test',
  };
  return h;
}
