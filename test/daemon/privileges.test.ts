// Least privilege: the addon's dropCapabilities lowers every thread of a Node process (libuv's
// pool, V8's workers, worker threads, threads made later), and the daemon keeps what its later
// work needs. The native part runs in a child process (it cannot be undone in this one).
import { spawnSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { validateConfig } from '../../src/config/index.js';
import { capabilitiesToKeep, capabilityMask } from '../../src/daemon/privileges.js';
import { CAPABILITIES } from '../../src/net/capabilities.js';
import { Daemon } from '../../src/daemon/index.js';
import type { CapabilityDropReport } from '../../src/daemon/privileges.js';
import { daemonConfig, harness } from './harness.js';

const isRoot = process.getuid?.() === 0;

// In the child: threads of every kind, the drop, then each thread's sets from /proc, and a
// thread made afterwards.
const CHILD = `
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
const { native } = await import(process.argv[1]);
const keep = JSON.parse(process.argv[2]);
const status = (path) => {
  const s = fs.readFileSync(path, 'utf8');
  const f = (k) => new RegExp('^' + k + ':\\\\s+(\\\\S+)', 'm').exec(s)[1];
  return { eff: f('CapEff'), prm: f('CapPrm'), inh: f('CapInh'), bnd: f('CapBnd'), blk: f('SigBlk') };
};
await fs.promises.readFile('/etc/passwd');
const busy = new Worker('setInterval(() => {}, 1000)', { eval: true });
await new Promise((r) => busy.once('online', r));
const report = native().dropCapabilities(keep);
const threads = {};
for (const t of fs.readdirSync('/proc/self/task')) threads[t] = status('/proc/self/task/' + t + '/status');
const later = new Worker("import fs from 'node:fs'; import { parentPort } from 'node:worker_threads'; parentPort.postMessage(fs.readFileSync('/proc/thread-self/status', 'utf8'))", { eval: true });
const laterStatus = await new Promise((r) => later.once('message', r));
await busy.terminate();
let again;
try { native().dropCapabilities(keep); } catch (e) { again = e.message; }
process.stdout.write(JSON.stringify({ report, threads, later: /CapEff:\\s+(\\S+)/.exec(laterStatus)[1], again }));
`;

describe('capabilities', () => {
  it.skipIf(!isRoot)('dropCapabilities lowers every thread that takes its signal, reports the others, once', () => {
    const keep = [CAPABILITIES.CAP_NET_ADMIN, CAPABILITIES.CAP_NET_RAW, CAPABILITIES.CAP_KILL];
    const mask = capabilityMask(['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_KILL']);
    // The built module (npm run build:ts), as the daemon loads it.
    const dataplane = new URL('../../dist/dataplane/index.js', import.meta.url).pathname;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, dataplane, JSON.stringify(keep)], { encoding: 'utf8', timeout: 30_000 });
    expect(run.stderr).toBe('');
    const out = JSON.parse(run.stdout) as {
      report: { threads: number; unreachable: Array<{ tid: number }>; boundingDropped: boolean; effective: string; boundingSet: string; errors: string[] };
      threads: Record<string, { eff: string; prm: string; inh: string; bnd: string; blk: string }>;
      later: string;
      again: string;
    };
    expect(out.report.errors).toEqual([]);
    expect(out.report.boundingDropped).toBe(true);
    expect(BigInt(`0x${out.report.effective}`)).toBe(mask);
    expect(BigInt(`0x${out.report.boundingSet}`)).toBe(mask);
    // The signal is SIGRTMAX - 2 (62 with glibc): a thread blocking it is out of reach.
    const blocks = (blk: string): boolean => ((BigInt(`0x${blk}`) >> 61n) & 1n) === 1n;
    const reachable = Object.entries(out.threads).filter(([, s]) => !blocks(s.blk));
    const blocking = Object.entries(out.threads).filter(([, s]) => blocks(s.blk)).map(([tid]) => Number(tid));
    expect(reachable.length).toBeGreaterThanOrEqual(5); // main, libuv pool, V8 workers, the worker thread
    for (const [tid, s] of reachable) {
      expect([tid, BigInt(`0x${s.eff}`), BigInt(`0x${s.prm}`), BigInt(`0x${s.bnd}`)]).toEqual([tid, mask, mask, mask]);
      expect(BigInt(`0x${s.inh}`) & ~mask).toBe(0n);
    }
    expect(out.report.threads).toBeGreaterThanOrEqual(reachable.length);
    expect(out.report.unreachable.map((t) => t.tid).sort()).toEqual(blocking.sort());
    expect(BigInt(`0x${out.later}`)).toBe(mask);
    expect(out.again).toBe('dropCapabilities: already called in this process');
  });

  it('keeps what later work needs: ICMP/tunnelled checks, exec users, stop; BIRD with bgp; CAP_BPF with AF_XDP', () => {
    const r = validateConfig(daemonConfig());
    if (!r.ok) throw new Error(r.errors.join('\n'));
    const base = ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SETUID', 'CAP_SETGID', 'CAP_KILL'];
    expect(capabilitiesToKeep(r.config, ['af_packet'], 40)).toEqual(base);
    expect(capabilitiesToKeep(r.config, ['af_packet', 'af_xdp'], 40)).toEqual([...base, 'CAP_BPF']);
    expect(capabilitiesToKeep(r.config, ['af_xdp'], 37)).toEqual([...base, 'CAP_SYS_ADMIN']);
    const withBgp = { ...r.config, bgp: {} as NonNullable<typeof r.config.bgp> };
    expect(capabilitiesToKeep(withBgp, ['af_packet'], 40)).toEqual([...base, 'CAP_NET_BIND_SERVICE']);
  });

  it('the daemon lowers them once everything is started, says so in l4mux status, and runs on when it cannot', async () => {
    const h = harness();
    const calls: number[][] = [];
    let startedWhenCalled = false;
    h.deps.dropCapabilities = (keep): CapabilityDropReport => {
      calls.push(keep);
      startedWhenCalled = [...h.engines.values()].every((e) => e.running) && h.engines.size > 0;
      return { threads: 9, unreachable: [{ tid: 42, name: 'node' }], boundingDropped: true, effective: '34e0', permitted: '34e0', boundingSet: '34e0', errors: [] };
    };
    const daemon = await Daemon.start(h.options, h.deps);
    try {
      expect(calls).toEqual([[12, 13, 7, 6, 5, 39]]); // the fake engines report AF_XDP: CAP_BPF stays
      expect(startedWhenCalled).toBe(true);
      expect(daemon.status().services?.['privileges']).toEqual({
        lowered: true, kept: ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SETUID', 'CAP_SETGID', 'CAP_KILL', 'CAP_BPF'], effective: '34e0', boundingSet: '34e0', boundingDropped: true, threads: 9, unreachableThreads: [{ tid: 42, name: 'node' }],
      });
      expect(h.messages()).toContain('capabilities lowered to CAP_NET_ADMIN CAP_NET_RAW CAP_SETUID CAP_SETGID CAP_KILL CAP_BPF in 9 threads and the bounding set');
    } finally {
      await daemon.stop();
    }

    const refused = harness();
    refused.deps.dropCapabilities = () => {
      throw new Error('capset: Operation not permitted (errno 1)');
    };
    const running = await Daemon.start(refused.options, refused.deps);
    try {
      expect(running.status().services?.['privileges']).toEqual({ lowered: false, error: 'capset: Operation not permitted (errno 1)' });
      expect(refused.messages()).toContain('capabilities not lowered: capset: Operation not permitted (errno 1)');
    } finally {
      await running.stop();
    }
  });
});

