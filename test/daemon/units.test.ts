// Pieces of the daemon: config diffs, CPU lists, log levels, the pid file.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { validateConfig, type L4muxConfig } from '../../src/config/index.js';
import { chooseLogLevel, diffConfigs, effectiveConfig, formatCpuList, parseCpuList, removePidfile, writePidfile } from '../../src/daemon/index.js';
import { daemonConfig, type Json } from './harness.js';

function config(mutate: (c: Json) => void = () => {}): L4muxConfig {
  const doc = daemonConfig();
  mutate(doc);
  const result = validateConfig(doc);
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

describe('diffConfigs', () => {
  it('finds nothing between equal configs', () => {
    expect(diffConfigs(config(), config())).toEqual({ changes: [], restartRequired: [] });
  });

  it('lists VIP, pool, backend and node changes, and what needs a restart', () => {
    const after = config((c) => {
      c.node.seed = '0x1';
      c.node.gatewayMac = '02:00:00:00:00:aa';
      c.node.workers = 4;
      c.node.manageOffloads = false;
      c.pools.web.backends[1].weight = 5;
      c.pools.dns = { backends: [] };
      c.vips[0].encapsulation = 'gue';
      c.vips[0].port = 8080;
      c.vips[0].name = 'web';
      c.vips.push({ address: '192.0.2.53', protocol: 'udp', port: 53, pool: 'dns' });
    });
    expect(diffConfigs(config(), after)).toEqual({
      changes: [
        'node.seed: 0x0000000000005eed -> 0x0000000000000001',
        'node.gatewayMac: (unset) -> 02:00:00:00:00:aa',
        'pool web: backend 10.1.0.2 weight 1 -> 5',
        'pool dns added (0 backends)',
        'vip web changed: port 80 -> 8080, encapsulation ipip -> gue, gue (unset) -> {"port":6080}',
        'vip 192.0.2.53:udp:53 added (192.0.2.53 udp/53, pool dns, ipip)',
      ],
      restartRequired: ['node.workers: (unset) -> 4 (requires restart)', 'node.manageOffloads: true -> false (requires restart)'],
    });
    expect(diffConfigs(after, config()).changes).toContain('vip 192.0.2.53:udp:53 removed');
    expect(diffConfigs(after, config()).changes).toContain('pool dns removed');
  });

  it('keeps the running values of restart-only settings in the effective config', () => {
    const running = config();
    const next = config((c) => {
      c.node.workers = 4;
      c.node.io = 'af_packet';
      c.node.mtu = 1400;
    });
    const effective = effectiveConfig(running, next);
    expect(effective.node).not.toHaveProperty('workers');
    expect(effective.node.io).toBe('auto');
    expect(effective.node.mtu).toBe(1400);
    expect(diffConfigs(effective, next)).toMatchObject({ changes: [] });
  });
});

describe('CPU lists', () => {
  it('parse and format the kernel notation', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('0')).toEqual([0]);
    expect(() => parseCpuList('zero')).toThrow(/not a CPU list/);
    expect(formatCpuList([5, 0, 1, 2, 7])).toBe('0-2,5,7');
  });
});

describe('log level', () => {
  it('comes from --log-level, else L4MUX_LOG_LEVEL, else info', () => {
    expect(chooseLogLevel('debug', { L4MUX_LOG_LEVEL: 'warn' })).toBe('debug');
    expect(chooseLogLevel(undefined, { L4MUX_LOG_LEVEL: 'WARN' })).toBe('warn');
    expect(chooseLogLevel(undefined, {})).toBe('info');
    expect(() => chooseLogLevel('verbose', {})).toThrow('--log-level: unknown log level "verbose" (levels: fatal, error, warn, info, debug, trace, silent)');
    expect(() => chooseLogLevel(undefined, { L4MUX_LOG_LEVEL: 'loud' })).toThrow(/^L4MUX_LOG_LEVEL: unknown log level "loud"/);
  });
});

describe('pid file', () => {
  it('is written, replaced when stale, refused when live, and removed only by its owner', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'l4mux-pid-')), 'l4mux.pid');
    await writePidfile(path);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    writeFileSync(path, '999999999\n'); // no such process
    await writePidfile(path);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    // Another program now has the stale file's pid (pid 1 is init, not l4mux): not a reason to stay down.
    writeFileSync(path, '1\n');
    await writePidfile(path);
    expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
    // A live l4mux holds it.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', '/usr/lib/node_modules/l4mux/dist/cli/main.js', 'run'], { stdio: 'ignore' });
    try {
      await new Promise((r) => other.once('spawn', r));
      writeFileSync(path, `${other.pid}\n`);
      await expect(writePidfile(path)).rejects.toThrow(`pid file ${path}: l4mux is already running as pid ${other.pid}`);
      await removePidfile(path);
      expect(readFileSync(path, 'utf8')).toBe(`${other.pid}\n`);
    } finally {
      other.kill('SIGKILL');
      rmSync(dirname(path), { recursive: true, force: true });
    }
  });
});
