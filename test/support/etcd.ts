// A throwaway etcd for tests: Debian's etcd-server binary on loopback, a fresh data directory,
// free ports; stopped and removed afterwards. Debian's package never starts etcd by itself.
import { spawn, type ChildProcess } from 'node:child_process';
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

export class TestEtcd {
  private child: ChildProcess | undefined;
  private dir: string | undefined;
  private clientPort = 0;
  private peerPort = 0;

  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  async start(): Promise<void> {
    if (this.dir === undefined) {
      this.dir = mkdtempSync(join(tmpdir(), 'l4mux-etcd-'));
      this.clientPort = await freePort();
      this.peerPort = await freePort();
    }
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.child = spawn('etcd', [
      '--name', 'test', '--data-dir', this.dir,
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `test=${peer}`,
      '--log-level', 'error',
    ], { stdio: 'ignore' });
    // Ready when the client port answers /health.
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const r = await fetch(`${this.endpoint}/health`);
        if (r.ok) return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error('etcd did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
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
