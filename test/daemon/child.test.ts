// `l4mux run` as a real process inside a network namespace (root only): the built CLI, the real
// ip/ethtool/probe code on a veth pair to a router namespace, and a stand-in addon given through
// L4MUX_ADDON (the addon loader's override) whose Engine records what it is asked to do.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sendControl } from '../../src/api/client.js';
import { canUseNetns, createLab, type Lab } from '../net/netns.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const outDir = join(repoRoot, 'build', 'test-dist-daemon');
const main = join(outDir, 'cli', 'main.js');
const fakeAddon = fileURLToPath(new URL('./fixtures/fake-addon.cjs', import.meta.url));

interface Recorded {
  call: string;
  interface?: string;
  options?: Record<string, unknown>;
  config?: Record<string, unknown> & { vips: Array<{ name: string; backends: unknown[] }> };
}

describe.skipIf(!canUseNetns())('l4mux run in a network namespace', { timeout: 30_000 }, () => {
  let lab: Lab;
  let dir: string;
  let child: ChildProcess | undefined;
  let exited: Promise<number | null>;
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  const paths = { config: '', pidfile: '', control: '', engineLog: '' };

  const config = (backends: string[]): object => ({
    version: 1,
    node: { seed: '0x5eed', interfaces: ['m0'], outerSource: { ipv4: '10.200.0.2' }, workers: 1 },
    pools: { web: { backends: backends.map((address) => ({ address })) } },
    vips: [{ name: 'web', address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web', tableSize: 251 }],
  });
  const recorded = (): Recorded[] =>
    existsSync(paths.engineLog) ? readFileSync(paths.engineLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Recorded) : [];
  const gro = (): string => /generic-receive-offload: (on|off)/.exec(lab.exec(lab.mux, 'ethtool', '-k', 'm0'))?.[1] ?? '?';
  async function waitForLog(pattern: RegExp, from = 0): Promise<Record<string, unknown>> {
    for (let i = 0; i < 1000; i++) {
      const found = logs.slice(from).find((l) => pattern.test(String(l['msg'])));
      if (found !== undefined) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no log line matches ${pattern}:\n${logs.map((l) => l['msg']).join('\n')}\n${stderr}`);
  }

  beforeAll(() => {
    // Compile to a directory of its own (other tests build dist/).
    try {
      execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--outDir', outDir], { cwd: repoRoot, stdio: 'pipe' });
    } catch (e) {
      // Type errors elsewhere in the tree still emit.
      if (!existsSync(main)) throw e;
    }
    dir = mkdtempSync(join(tmpdir(), 'l4mux-child-'));
    paths.config = join(dir, 'l4mux.json');
    paths.pidfile = join(dir, 'l4mux.pid');
    paths.control = join(dir, 'l4mux.sock');
    paths.engineLog = join(dir, 'engine.jsonl');
    lab = createLab('run');
    lab.exec(lab.mux, 'ethtool', '-K', 'm0', 'gro', 'on');
  }, 180_000);

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    lab?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('starts: offloads off, next hop resolved by ARP, the engine configured and started', async () => {
    writeFileSync(paths.config, JSON.stringify(config([lab.backendV4(1), lab.backendV4(2)])));
    child = spawn(
      'ip',
      ['netns', 'exec', lab.mux, process.execPath, main, 'run', '--config', paths.config, '--pidfile', paths.pidfile, '--control', paths.control, '--counters-interval', '0'],
      { env: { ...process.env, L4MUX_ADDON: fakeAddon, L4MUX_FAKE_ENGINE_LOG: paths.engineLog, L4MUX_LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    exited = new Promise((resolve) => child?.once('exit', (code) => resolve(code)));
    let buffer = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        logs.push(JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>);
        buffer = buffer.slice(nl + 1);
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

    await waitForLog(/^l4mux running on m0/);
    expect(readFileSync(paths.pidfile, 'utf8')).toBe(`${child.pid}\n`);
    expect(gro()).toBe('off');
    const calls = recorded();
    expect(calls.map((c) => c.call)).toEqual(['new', 'setConfig', 'start']);
    expect(calls[0]?.options).toMatchObject({ interface: 'm0', workers: 1, io: 'auto', xdpMode: 'auto' });
    expect(calls[1]?.config).toMatchObject({ sourceMac: lab.muxMac, gatewayMac: lab.routerMac, mtu: lab.mtu, outerSourceV4: '10.200.0.2' });
    expect((await waitForLog(/^m0: forwarding with/))['msg']).toBe('m0: forwarding with af_packet, 1 worker: fake addon: no packet I/O');
    expect(stderr).toBe('');
  });

  it('reloads on SIGHUP and through `l4mux reload`; a bad file changes nothing', async () => {
    writeFileSync(paths.config, JSON.stringify(config([lab.backendV4(1), lab.backendV4(2), lab.backendV4(3)])));
    const mark = logs.length;
    child?.kill('SIGHUP');
    await waitForLog(/^reload done/, mark);
    expect(logs.slice(mark).map((l) => l['msg'])).toContain('reload: pool web: backend 10.201.0.3 added (weight 1)');
    expect(recorded().filter((c) => c.call === 'setConfig').at(-1)?.config?.vips[0]?.backends).toHaveLength(3);

    const run = promisify(execFile);
    writeFileSync(paths.config, JSON.stringify(config([lab.backendV4(1)])));
    const good = await run(process.execPath, [main, 'reload', '--control', paths.control]);
    expect(good.stdout).toBe('pool web: backend 10.201.0.2 removed\npool web: backend 10.201.0.3 removed\n');

    writeFileSync(paths.config, JSON.stringify({ ...config([lab.backendV4(1)]), vips: [{ address: 'nope', protocol: 'tcp', pool: 'web' }] }));
    const bad = await run(process.execPath, [main, 'reload', '--control', paths.control]).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(bad?.code).toBe(1);
    expect(bad?.stderr).toBe('vips[0].address: "nope" is not an IPv4 or IPv6 address\nl4mux reload: failed (1 error); the running config is unchanged\n');
    expect(recorded().filter((c) => c.call === 'setConfig')).toHaveLength(3);
  });

  it('answers status on the control socket and through `l4mux status`', async () => {
    const response = await sendControl(paths.control, { cmd: 'status' });
    expect(response.ok).toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, [main, 'status', '--control', paths.control]);
    const status = JSON.parse(stdout) as { pid: number; interfaces: Array<Record<string, unknown>>; lastReload: Record<string, unknown> };
    expect(status.pid).toBe(child?.pid);
    expect(status.interfaces[0]).toMatchObject({ name: 'm0', mac: lab.muxMac, mtu: lab.mtu, gatewayMac: lab.routerMac, io: { mode: 'af_packet', reported: true } });
    expect(status.lastReload).toMatchObject({ ok: false, trigger: 'control' });
  });

  it('stops on SIGTERM: engine stopped, GRO back on, pid file and socket removed, exit 0', async () => {
    child?.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(recorded().at(-1)).toEqual({ call: 'stop', interface: 'm0' });
    expect(gro()).toBe('on');
    expect(existsSync(paths.pidfile)).toBe(false);
    expect(existsSync(paths.control)).toBe(false);
    expect(logs.at(-1)?.['msg']).toBe('l4mux stopped');
  });
});
