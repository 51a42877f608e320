// The netns lab (scripts/lab) for tests: unique prefix, processes started by the same
// scripts as `npm run lab`, and teardown that also runs after a failure.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const root = join(import.meta.dirname, '..', '..');
export const VIP4 = '192.0.2.10';
export const VIP6 = '2001:db8::10';
const cli = join(root, 'dist', 'cli', 'main.js');

export const isRoot = process.getuid?.() === 0;

export type Mux = 1 | 2 | 3;

export interface LabOptions {
  /** false: mux configs without a cluster section (every mux decides alone). Default true. */
  cluster?: boolean;
  /** Backends to build (the pools name the first three). Default 3. */
  backends?: number;
  /** Muxes in the lab (default 3). Tests written for two muxes behind the router ask for 2. */
  muxes?: number;
}

export class Lab {
  readonly prefix: string;
  readonly run: string;

  constructor(tag: string) {
    this.prefix = `${tag}${process.pid % 100000}`.slice(0, 8);
    this.run = `/tmp/${this.prefix}`;
  }

  up(encap: 'ipip' | 'gre' | 'gue', options: LabOptions = {}): void {
    this.down();
    const env = { ...process.env, L4MUX_LAB_CLUSTER: options.cluster === false ? '0' : '1', LAB_BACKENDS: String(options.backends ?? 3), LAB_MUXES: String(options.muxes ?? 3) };
    execFileSync('bash', [join(root, 'scripts/lab/topology.sh'), 'up', this.prefix, encap], { stdio: 'pipe', env });
    execFileSync('bash', [join(root, 'scripts/lab/start.sh'), this.prefix], { stdio: 'pipe', timeout: 60_000 });
  }

  down(): void {
    spawnSync('bash', [join(root, 'scripts/lab/topology.sh'), 'down', this.prefix], { stdio: 'pipe' });
  }

  /** Runs a command in one of the lab's namespaces; returns stdout. */
  exec(ns: string, args: string[], timeoutMs = 30_000): string {
    return execFileSync('ip', ['netns', 'exec', `${this.prefix}-${ns}`, ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  curl(url: string, extra: string[] = []): string {
    return this.exec('client', ['curl', '-sS', '-m', '20', ...extra, url]);
  }

  /** One UDP datagram from the client (optionally from a fixed source port); the echo or ''. */
  udp(vip: string, payload: string, sourcePort = 0): string {
    const script = `
      const s = require('dgram').createSocket(process.argv[1].includes(':') ? 'udp6' : 'udp4');
      s.bind(Number(process.argv[3]), () => s.send(process.argv[2], 53, process.argv[1]));
      s.on('message', (m) => { process.stdout.write(String(m)); process.exit(0); });
      setTimeout(() => process.exit(0), 2000);`;
    return this.exec('client', ['node', '-e', script, vip, payload, String(sourcePort)]);
  }

  /**
   * One UDP datagram from each of `count` source ports (firstPort, firstPort + 1, ...) to the
   * VIP's echo, all at once from one process; the backend that answered each port ('' if none).
   */
  udpFlows(vip: string, firstPort: number, count: number): string[] {
    const script = `
      const dgram = require('dgram');
      const [vip, first, count] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
      const got = new Array(count).fill('');
      let left = count;
      const sockets = [];
      for (let i = 0; i < count; i++) {
        const s = dgram.createSocket(vip.includes(':') ? 'udp6' : 'udp4');
        sockets.push(s);
        s.bind(first + i, () => s.send('who', 53, vip));
        s.on('message', (m) => { got[i] = String(m).split(':')[0]; if (--left === 0) done(); });
      }
      const done = () => { process.stdout.write(JSON.stringify(got)); process.exit(0); };
      setTimeout(done, 3000);`;
    return JSON.parse(this.exec('client', ['node', '-e', script, vip, String(firstPort), String(count)])) as string[];
  }

  /**
   * Sends the VIPs' traffic to exactly these muxes (ECMP over them), whatever the main table
   * holds: a routing rule on the router points the VIPs to a table of the test's own.
   */
  steer(muxes: readonly Mux[]): void {
    const router = (args: string[]): string => this.exec('router', ['ip', ...args]);
    if (!router(['rule', 'show']).includes('lookup 100')) {
      router(['rule', 'add', 'to', `${VIP4}/32`, 'lookup', '100', 'pref', '100']);
      router(['-6', 'rule', 'add', 'to', `${VIP6}/128`, 'lookup', '100', 'pref', '100']);
    }
    router(['route', 'replace', `${VIP4}/32`, 'table', '100', ...muxes.flatMap((m) => ['nexthop', 'via', `10.201.${m}.2`])]);
    router(['-6', 'route', 'replace', `${VIP6}/128`, 'table', '100', ...muxes.flatMap((m) => ['nexthop', 'via', `fd00:201:${m}::2`])]);
  }

  /**
   * Stops every mux's daemon, rewrites its config with `configure`, and starts it again; resolves
   * once all answer `l4mux status`. An XDP program a killed daemon left behind is removed first.
   */
  async restartMuxes(muxes: readonly Mux[], configure: (config: Record<string, any>, mux: Mux) => void): Promise<void> {
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (const m of muxes) {
      let pid = 0;
      try {
        pid = Number(readFileSync(`${this.run}/mux${m}.pid`, 'utf8'));
      } catch {
        // not running
      }
      if (pid > 0 && alive(pid)) process.kill(pid, 'SIGTERM');
      if (pid > 0 && !(await waitUntil(() => !alive(pid), 10_000))) process.kill(pid, 'SIGKILL');
    }
    for (const m of muxes) {
      for (const mode of ['xdp', 'xdpgeneric']) spawnSync('ip', ['-n', `${this.prefix}-mux${m}`, 'link', 'set', 'dev', 'eth0', mode, 'off'], { stdio: 'ignore' });
      const config = this.muxConfig(m) as Record<string, any>;
      configure(config, m);
      this.writeMuxConfig(m, config);
      const child = spawn(
        'bash',
        ['-c', `exec ip netns exec ${this.prefix}-mux${m} setsid node ${cli} run --config ${this.run}/mux${m}.json --control ${this.run}/mux${m}.sock --pidfile ${this.run}/mux${m}.pid >> ${this.run}/mux${m}.log 2>&1`],
        { stdio: 'ignore', detached: true },
      );
      child.unref();
    }
    for (const m of muxes) {
      const up = await waitUntil(() => this.l4mux(`mux${m}`, ['status', '--control', `${this.run}/mux${m}.sock`]).status === 0, 30_000, 200);
      if (!up) throw new Error(`mux${m} did not start again: see ${this.run}/mux${m}.log`);
    }
  }

  /** The muxes the router's route to `vip` goes through (learned over BGP, or steered). */
  routerPaths(vip: string): number[] {
    const out = execFileSync('ip', ['-n', `${this.prefix}-router`, vip.includes(':') ? '-6' : '-4', 'route', 'show', vip], { encoding: 'utf8' });
    return [...out.matchAll(/via (?:10\.201\.(\d)\.2|fd00:201:(\d)::2)/g)].map((m) => Number(m[1] ?? m[2])).sort();
  }

  /** SIGKILL to mux m's daemon. */
  killMux(m: Mux): void {
    process.kill(Number(readFileSync(`${this.run}/mux${m}.pid`, 'utf8')), 'SIGKILL');
  }

  /** Stops the HTTP/UDP/health servers of backend b (as if the service died). */
  stopServers(b: 1 | 2 | 3): void {
    const pid = Number(readFileSync(`${this.run}/backend${b}.pid`, 'utf8'));
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** Starts backend b's servers again. */
  startServers(b: 1 | 2 | 3): void {
    const child = spawn(
      'ip',
      ['netns', 'exec', `${this.prefix}-b${b}`, 'env', `LAB_STATE=${this.run}`, 'setsid', 'node', join(root, 'scripts/lab/servers.mjs'), `backend${b}`, VIP4, VIP6],
      { stdio: 'ignore', detached: true },
    );
    child.unref();
  }

  /** The load report backend b's health endpoint gives (x-weight); undefined removes it. */
  setReportedWeight(b: 1 | 2 | 3, weight: number | undefined): void {
    const file = `${this.run}/backend${b}.weight`;
    if (weight === undefined) rmSync(file, { force: true });
    else writeFileSync(file, String(weight));
  }

  /** `l4mux backend` on a mux. */
  backend(mux: Mux, pool: string, address: string, options: string[]): { status: number | null; stdout: string; stderr: string } {
    return this.l4mux(`mux${mux}`, ['backend', pool, address, ...options, '--control', `${this.run}/mux${mux}.sock`]);
  }

  reload(mux: Mux): { status: number | null; stdout: string; stderr: string } {
    return this.l4mux(`mux${mux}`, ['reload', '--control', `${this.run}/mux${mux}.sock`]);
  }

  l4mux(ns: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', `${this.prefix}-${ns}`, 'node', cli, ...args], { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** l4mux() without blocking the test's event loop (several muxes at once). */
  l4muxAsync(ns: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', `${this.prefix}-${ns}`, 'node', cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (status) => resolve({ status, stdout, stderr }));
    });
  }

  status(mux: Mux): MuxStatus {
    const r = this.l4mux(`mux${mux}`, ['status', '--control', `${this.run}/mux${mux}.sock`]);
    if (r.status !== 0) throw new Error(`l4mux status failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as MuxStatus;
  }

  muxConfig(mux: Mux): Record<string, unknown> {
    return JSON.parse(readFileSync(`${this.run}/mux${mux}.json`, 'utf8')) as Record<string, unknown>;
  }

  writeMuxConfig(mux: Mux, config: unknown): void {
    writeFileSync(`${this.run}/mux${mux}.json`, JSON.stringify(config, null, 2));
  }

  /** Counts packets matching `filter` on a router port for `seconds` (the pcap package). */
  countOnRouter(port: string, seconds: number, filter: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', `${this.prefix}-router`, 'node', join(root, 'scripts/lab/count.mjs'), port, String(seconds), filter], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('exit', () => {
        try {
          resolve((JSON.parse(out) as { packets: number }).packets);
        } catch {
          reject(new Error(`count.mjs on ${port} printed ${JSON.stringify(out)}`));
        }
      });
    });
  }
}

export interface MuxBackendStatus {
  address: string;
  state: string;
  health: string;
  healthy: boolean;
  weight: number;
  weightSource: string;
}

export interface MuxStatus {
  pools: Record<string, { allDown: boolean; allDownEpisodes: number; backends: MuxBackendStatus[] }>;
  interfaces: Array<{
    io: { mode: string; xdpMode?: string; reason?: string };
    counters: {
      rx: number;
      tx: number;
      dropped: number;
      drops: Record<string, number>;
      vips: Array<{ name: string; packets: number; newFlows: number; noBackend: number }>;
      backends: Array<{ address: string; packets: number; activeFlows: number; flowsCut: number }>;
      tcpResetsSent: number;
    };
  }>;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` every `everyMs` until it returns true; false after `timeoutMs`. */
export async function waitUntil(probe: () => boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (probe()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}
