// A throwaway etcd for tests: Debian's etcd-server binary on loopback, a fresh data directory,
// free ports; stopped and removed afterwards. Debian's package never starts etcd by itself.
// With `netns`, it runs inside that network namespace instead (the lab's router), listening on
// every address there at ports 2379/2380, for daemons in other namespaces to reach.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const hasEtcd = ((): boolean => {
  try {
    return spawn('etcd', ['--version']).pid !== undefined;
  } catch {
    return false;
  }
})();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface TestEtcdOptions {
  /** A network namespace to run in (ip netns exec). */
  netns?: string;
  /** With netns: the address the daemons reach it at (advertised). */
  address?: string;
}

export class TestEtcd {
  private child: ChildProcess | undefined;
  private dir: string | undefined;
  private clientPort = 0;
  private peerPort = 0;

  constructor(private readonly options: TestEtcdOptions = {}) {}

  get endpoint(): string {
    return `http://${this.options.address ?? '127.0.0.1'}:${this.clientPort}`;
  }

  async start(): Promise<void> {
    const netns = this.options.netns;
    if (this.dir === undefined) {
      this.dir = mkdtempSync(join(tmpdir(), 'l4mux-etcd-'));
      this.clientPort = netns === undefined ? await freePort() : 2379;
      this.peerPort = netns === undefined ? await freePort() : 2380;
    }
    const host = netns === undefined ? '127.0.0.1' : '0.0.0.0';
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const args = [
      '--name', 'test', '--data-dir', this.dir,
      '--listen-client-urls', `http://${host}:${this.clientPort}`, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `test=${peer}`,
      '--log-level', 'error',
    ];
    // ip netns exec execs etcd itself: the child's pid is etcd's.
    this.child = netns === undefined ? spawn('etcd', args, { stdio: 'ignore' }) : spawn('ip', ['netns', 'exec', netns, 'etcd', ...args], { stdio: 'ignore' });
    // Ready when the client port answers /health.
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (netns !== undefined) {
        if (this.curl(['-sf', '-m', '2', `${this.endpoint}/health`]) !== undefined) return;
      } else {
        try {
          const r = await fetch(`${this.endpoint}/health`);
          if (r.ok) return;
        } catch {
          // not yet
        }
      }
      if (Date.now() > deadline) throw new Error('etcd did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private curl(args: string[]): string | undefined {
    const netns = this.options.netns;
    try {
      return execFileSync(netns === undefined ? 'curl' : 'ip', [...(netns === undefined ? [] : ['netns', 'exec', netns, 'curl']), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    } catch {
      return undefined;
    }
  }

  /** Every key under `prefix` (without it) and its value (etcd's JSON gateway, /v3/kv/range). */
  entries(prefix: string): Map<string, string> {
    const b64 = (t: string): string => Buffer.from(t).toString('base64');
    // The range end of a prefix: its last byte plus one.
    const end = Buffer.from(prefix);
    end[end.length - 1] = (end[end.length - 1] as number) + 1;
    const body = JSON.stringify({ key: b64(prefix), range_end: end.toString('base64') });
    const out = this.curl(['-sf', '-m', '5', '-X', 'POST', '-d', body, `${this.endpoint}/v3/kv/range`]);
    if (out === undefined) throw new Error('etcd does not answer');
    const kvs = (JSON.parse(out) as { kvs?: Array<{ key: string; value: string }> }).kvs ?? [];
    return new Map(kvs.map((kv) => [Buffer.from(kv.key, 'base64').toString().slice(prefix.length), Buffer.from(kv.value, 'base64').toString()]));
  }

  /** Stops the process; the data stays for a restart. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  async remove(): Promise<void> {
    await this.stop();
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}
