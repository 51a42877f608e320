// ICMP echo probes need root (raw sockets). Up: loopback in this namespace. Down and timeout:
// icmp.netns.test.ts, run here inside a namespace of its own (unshare -n) where echo requests
// are ignored and nothing is routed, so the root namespace is left as it is.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { HealthChecker, IcmpPinger, probeIcmp } from '../../src/health/index.js';
import { isRoot, spec, waitFor } from './support.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

describe.skipIf(!isRoot)('ICMP echo probe (root)', () => {
  it('is up on an echo reply over IPv4', async () => {
    const result = await probeIcmp({ address: '127.0.0.1' }, { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: true, detail: 'echo reply from 127.0.0.1' });
    expect(result.latencyMs).toBeLessThan(1000);
  });

  it('is up on an echo reply over IPv6', async () => {
    const result = await probeIcmp({ address: '::1' }, { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: true, detail: 'echo reply from ::1' });
  });

  it('matches each reply to its request (identifier, sequence, token, source) with many in flight', async () => {
    const pinger = new IcmpPinger();
    const other = new IcmpPinger(); // another user of raw ICMP sockets in the same process
    try {
      const targets = Array.from({ length: 40 }, (_, i) => (i % 4 === 3 ? '::1' : `127.0.0.${1 + (i % 20)}`));
      const results = await Promise.all([
        ...targets.map((address) => pinger.ping({ address }, { timeoutMs: 2000 })),
        ...targets.slice(0, 10).map((address) => other.ping({ address }, { timeoutMs: 2000 })),
      ]);
      results.forEach((r, i) => {
        const address = i < targets.length ? targets[i] : targets[i - targets.length];
        expect(r).toMatchObject({ ok: true, detail: `echo reply from ${address}` });
      });
    } finally {
      pinger.close();
      other.close();
    }
  });

  it('runs ICMP checks in the checker over one shared pinger', async () => {
    const checker = new HealthChecker();
    try {
      checker.update([
        spec('p/127.0.0.1', { kind: 'icmp', icmp: { payloadSize: 56 }, target: { address: '127.0.0.1' } }),
        spec('p/::1', { kind: 'icmp', icmp: { payloadSize: 0 }, target: { address: '::1' } }),
      ]);
      await waitFor(() => checker.snapshot().every((b) => b.state === 'up' && b.checks >= 3), 3000, 'ICMP checks up');
      expect(checker.get('p/::1')?.lastResult).toMatchObject({ ok: true, detail: 'echo reply from ::1' });
    } finally {
      await checker.stop();
    }
  });

  it('fails pending pings when closed', async () => {
    const pinger = new IcmpPinger();
    pinger.close();
    expect(await pinger.ping({ address: '127.0.0.1' }, { timeoutMs: 1000 })).toMatchObject({ ok: false, detail: 'the pinger is closed' });
  });

  it('is down on timeout and on unreachable destinations (inside a namespace of its own)', async () => {
    const command = [
      'ip link set lo up',
      'sysctl -qw net.ipv4.icmp_echo_ignore_all=1',
      'sysctl -qw net.ipv6.icmp.echo_ignore_all=1',
      'exec npx vitest run test/health/icmp.netns.test.ts',
    ].join(' && ');
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile('unshare', ['--net', 'sh', '-c', command], { cwd: repoRoot, env: { ...process.env, L4MUX_ICMP_NETNS: '1', NO_COLOR: '1' }, timeout: 120_000 }, (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, output: `${stdout}${stderr}` });
      });
    });
    expect(output, output).toMatch(/Tests\s+.*4 passed/);
    expect(code, output).toBe(0);
  }, 130_000);
});

describe.skipIf(isRoot)('ICMP echo probe without privileges', () => {
  it('explains that raw sockets need root or CAP_NET_RAW', async () => {
    const result = await probeIcmp({ address: '127.0.0.1' }, { timeoutMs: 500 });
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/root or CAP_NET_RAW/);
  });
});
