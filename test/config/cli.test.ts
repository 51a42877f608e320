import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runReplay, type EngineFactory } from '../../src/cli/commands/replay.js';
import { runValidate } from '../../src/cli/commands/validate.js';
import type { CommandIo } from '../../src/cli/io.js';
import type { ConntrackSettings, DataplaneConfig } from '../../src/dataplane/types.js';
import type { ReplaySummary } from '../../src/dataplane/index.js';
import { fixture, repoRoot } from './helpers.js';

function captureIo(): CommandIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (line) => stdout.push(line), err: (line) => stderr.push(line) };
}

describe('l4mux validate', () => {
  it('prints a summary and exits 0 for a valid file', async () => {
    const io = captureIo();
    const file = fixture('full.json');
    expect(await runValidate(file, io)).toBe(0);
    expect(io.stdout).toEqual([`${file}: ok (5 VIPs, 5 backends)`]);
    expect(io.stderr).toEqual([]);
  });

  it('prints warnings of a valid file to stderr', async () => {
    const io = captureIo();
    const file = fixture('warnings.json');
    expect(await runValidate(file, io)).toBe(0);
    expect(io.stdout).toEqual([`${file}: ok (2 VIPs, 3 backends)`]);
    expect(io.stderr).toEqual([
      'warning: pools.drained: pool is not used by any VIP',
      'warning: pools.empty: pool is not used by any VIP',
      'warning: vips[0].pool: pool "web" has no backend with weight > 0, so this VIP cannot take new flows',
      'warning: vips[1].pool: pool "dns" has no backend with weight > 0, so this VIP cannot take new flows',
    ]);
  });

  it('prints every error on its own line to stderr and exits 1', async () => {
    const io = captureIo();
    const file = fixture('bad.json');
    expect(await runValidate(file, io)).toBe(1);
    expect(io.stdout).toEqual([]);
    expect(io.stderr).toHaveLength(9);
    expect(io.stderr[3]).toBe('vips[0].pool: pool "api" is not defined (pools: web, dns)');
    expect(io.stderr[8]).toBe(`${file}: invalid (8 errors)`);
  });

  it('reports a syntax error with its position', async () => {
    const io = captureIo();
    const file = fixture('syntax-error.json');
    expect(await runValidate(file, io)).toBe(1);
    expect(io.stderr).toEqual([
      `${file}:5:5: expected ',' or '}' after a property value (missing comma?)`,
      `${file}: invalid (1 error)`,
    ]);
  });
});

describe('l4mux replay', () => {
  const summary: ReplaySummary = {
    packetsIn: 3,
    packetsOut: 2,
    counters: {
      rx: 3, tx: 2, passed: 0, dropped: 1, echoReplies: 0, icmpErrorsForwarded: 0, checksumsFinalized: 0,
      drops: { no_vip: 1 },
      vips: [], backends: [],
      conntrack: { inserts: 2, evictions: 0, expiredReused: 0, capacity: 262144 },
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-replay-'));
  const inPcap = join(dir, 'in.pcap');
  writeFileSync(inPcap, '');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function fakeEngine(calls: unknown[], fail?: string): EngineFactory {
    return (settings: ConntrackSettings) => {
      calls.push(['new', settings]);
      return {
        setConfig: (config: DataplaneConfig) => {
          calls.push(['setConfig', config.vips.map((v) => v.name)]);
        },
        replay: (i: string, o: string) => {
          calls.push(['replay', i, o]);
          if (fail !== undefined) throw new Error(fail);
          return summary;
        },
      };
    };
  }

  it('configures a dataplane from the file and prints the summary as JSON', async () => {
    const io = captureIo();
    const calls: unknown[] = [];
    const out = join(dir, 'out.pcap');
    const code = await runReplay({ config: fixture('minimal.json'), in: inPcap, out }, io, fakeEngine(calls));
    expect(code).toBe(0);
    expect(calls).toEqual([
      ['new', { maxFlows: 262144, timeouts: { tcpSynSeconds: 30, tcpEstablishedSeconds: 900, tcpClosingSeconds: 30, udpSeconds: 60, otherSeconds: 30, tcpUnprovenSeconds: 10 } }],
      ['setConfig', ['192.0.2.10:tcp:80']],
      ['replay', inPcap, out],
    ]);
    expect(io.stdout).toEqual([JSON.stringify(summary, null, 2)]);
    expect(io.stderr).toEqual([]);
  });

  it('warns that frames go to the all-zero MAC when the file has no gatewayMac', async () => {
    const io = captureIo();
    const calls: unknown[] = [];
    const config = join(dir, 'no-gateway-mac.json');
    const document = JSON.parse(readFileSync(fixture('minimal.json'), 'utf8')) as { node: Record<string, unknown> };
    delete document.node['gatewayMac'];
    writeFileSync(config, JSON.stringify(document));
    const out = join(dir, 'out2.pcap');
    expect(await runReplay({ config, in: inPcap, out }, io, fakeEngine(calls))).toBe(0);
    expect(io.stderr).toEqual([
      'warning: node.gatewayMac: not set; replay sends every frame to 00:00:00:00:00:00 (l4mux run resolves the next hop\'s MAC)',
    ]);
    expect(calls).toContainEqual(['setConfig', ['192.0.2.10:tcp:80']]);
  });

  it('does not touch the dataplane when the config is invalid', async () => {
    const io = captureIo();
    const calls: unknown[] = [];
    const code = await runReplay({ config: fixture('bad.json'), in: inPcap, out: join(dir, 'x.pcap') }, io, fakeEngine(calls));
    expect(code).toBe(1);
    expect(calls).toEqual([]);
    expect(io.stderr).toContain('vips[2].address: "300.1.1.1" is not an IPv4 or IPv6 address');
  });

  it('reports dataplane errors and a missing input on stderr', async () => {
    let io = captureIo();
    const calls: unknown[] = [];
    expect(await runReplay({ config: fixture('minimal.json'), in: inPcap, out: join(dir, 'y.pcap') }, io, fakeEngine(calls, 'bad pcap magic'))).toBe(1);
    expect(io.stderr).toEqual(['l4mux replay: bad pcap magic']);
    io = captureIo();
    const missing = join(dir, 'missing.pcap');
    expect(await runReplay({ config: fixture('minimal.json'), in: missing, out: join(dir, 'z.pcap') }, io, fakeEngine(calls))).toBe(1);
    expect(io.stderr).toEqual([`l4mux replay: cannot read --in ${missing}`]);
    io = captureIo();
    expect(await runReplay({ config: fixture('minimal.json'), in: inPcap, out: inPcap }, io, fakeEngine(calls))).toBe(1);
    expect(io.stderr).toEqual([`l4mux replay: --in and --out are the same file (${inPcap})`]);
  });
});

describe('the built executable', () => {
  const main = join(repoRoot, 'dist', 'cli', 'main.js');
  const run = promisify(execFile);

  beforeAll(() => {
    // Emits even if files outside src/config and src/cli fail to type-check mid-edit.
    try {
      execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
        cwd: repoRoot,
        stdio: 'pipe',
      });
    } catch (e) {
      if (!existsSync(main)) throw e;
    }
  }, 120_000);

  it('validate: exit 0 and the summary for a valid file', async () => {
    const file = join(repoRoot, 'scripts', 'examples', 'l4mux.example.json');
    const { stdout, stderr } = await run(process.execPath, [main, 'validate', file]);
    expect(stdout).toBe(`${file}: ok (2 VIPs, 7 backends)\n`);
    expect(stderr).toBe('');
  });

  it('validate: exit 1 and the errors on stderr for an invalid file', async () => {
    const file = fixture('bad.json');
    const failure = await run(process.execPath, [main, 'validate', file]).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stdout).toBe('');
    const lines = failure?.stderr.trimEnd().split('\n') ?? [];
    expect(lines[0]).toBe('node.gatewayMac: "zz:00" is not a MAC address (expected six hex pairs like 02:00:00:00:00:fe)');
    expect(lines).toHaveLength(9);
  });

  it('replay: an invalid config stops before the dataplane is loaded', async () => {
    const failure = await run(process.execPath, [main, 'replay', '--config', fixture('bad.json'), '--in', 'in.pcap', '--out', 'out.pcap']).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain('vips[0].pool: pool "api" is not defined (pools: web, dns)');
  });

  it('starts with a shebang', async () => {
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(main, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
  });
});
