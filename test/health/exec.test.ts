import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { createExecProbe, Limiter, type ExecProbeOptions } from '../../src/health/index.js';
import { script, sleep } from './support.js';

const cleanups: Array<() => void> = [];
afterAll(() => cleanups.forEach((c) => c()));

function check(body: string, overrides: Partial<ExecProbeOptions> = {}): ReturnType<typeof createExecProbe> {
  const s = script(body);
  cleanups.push(s.cleanup);
  if (overrides.user !== undefined) chmodSync(dirname(s.path), 0o755); // the user may reach it
  return createExecProbe({ command: s.path, args: [], env: {}, weightFrom: 'none', pool: 'web', backend: '10.1.0.7', ...overrides });
}

const target = { address: '10.1.0.7', port: 8080 };

function processesMatching(pattern: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim().split('\n');
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe('exec probe', () => {
  it('is up on exit status 0', async () => {
    expect(await check('exit 0')(target, { timeoutMs: 2000 })).toMatchObject({ ok: true });
  });

  it('is down on another exit status, with what the command said', async () => {
    const result = await check('echo "db connection refused" >&2; exit 3')(target, { timeoutMs: 2000 });
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/check\.sh exited with 3: db connection refused$/);
  });

  it('passes arguments and the backend in the environment', async () => {
    const probe = check(
      'test "$1" = "--strict" && test "$BACKEND_ADDRESS" = 10.1.0.7 && test "$BACKEND_PORT" = 8080 && test "$POOL" = web && test "$BACKEND_WEIGHT" = 4 && test "$CHECK_TIMEOUT_MS" = 2000 && test "$EXTRA" = yes',
      { args: ['--strict'], env: { EXTRA: 'yes' } },
    );
    expect(await probe(target, { timeoutMs: 2000, baseWeight: 4 })).toMatchObject({ ok: true });
  });

  it('kills a command (and its children) that overstays the timeout', async () => {
    const probe = check('sleep 7.25 & echo started; wait');
    const result = await probe(target, { timeoutMs: 200 });
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/did not finish within 200 ms \(killed\)$/);
    expect(result.latencyMs).toBeLessThan(1000);
    // The background sleep was in the killed process group.
    await sleep(100);
    expect(processesMatching('sleep 7.25')).toEqual([]);
  });

  it('reads a dynamic weight from stdout: weight=N, a bare integer, or a percentage', async () => {
    const line = check('echo "load: 0.3"; echo "weight=25"; exit 0', { weightFrom: 'stdout' });
    expect(await line(target, { timeoutMs: 2000 })).toMatchObject({ ok: true, weight: 25 });
    const bare = check('echo 7', { weightFrom: 'stdout' });
    expect(await bare(target, { timeoutMs: 2000 })).toMatchObject({ ok: true, weight: 7 });
    const percent = check('echo 50%', { weightFrom: 'stdout' });
    expect(await percent(target, { timeoutMs: 2000, baseWeight: 30 })).toMatchObject({ ok: true, weight: 15 });
    const none = check('echo all good', { weightFrom: 'stdout' });
    const result = await none(target, { timeoutMs: 2000 });
    expect(result).toMatchObject({ ok: true });
    expect(result.weight).toBeUndefined();
  });

  it('ignores stdout weights unless asked to read them', async () => {
    const result = await check('echo weight=3')(target, { timeoutMs: 2000 });
    expect(result.weight).toBeUndefined();
  });

  it('is down when the command cannot run', async () => {
    const probe = createExecProbe({ command: '/nonexistent/check', args: [], env: {}, weightFrom: 'none', pool: 'p', backend: '10.0.0.1' });
    expect(await probe(target, { timeoutMs: 2000 })).toMatchObject({ ok: false, detail: 'cannot run /nonexistent/check: ENOENT' });
  });

  it('runs at most `limit` commands at once; the timeout starts when a command starts', async () => {
    const s = script('sleep 0.2');
    cleanups.push(s.cleanup);
    const limiter = new Limiter(2);
    const probe = createExecProbe({ command: s.path, args: [], env: {}, weightFrom: 'none', pool: 'p', backend: 'b' }, limiter);
    const started = Date.now();
    const results = await Promise.all([1, 2, 3, 4].map(() => probe(target, { timeoutMs: 1000 })));
    expect(results.every((r) => r.ok)).toBe(true);
    // Two waves of 200 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
  });

  it('runs as exec.user: its uid and primary group, no supplementary groups, in /', async () => {
    if (process.getuid?.() !== 0) return; // switching users needs root (CAP_SETUID, CAP_SETGID)
    const nobody = /^nobody:[^:]*:(\d+):(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'));
    expect(nobody).not.toBeNull();
    const user = { name: 'nobody', uid: Number(nobody![1]), gid: Number(nobody![2]) };
    // The check writes who it is into a file the user may write (a directory open to all).
    const dir = mkdtempSync(join(tmpdir(), 'l4mux-exec-user-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    chmodSync(dir, 0o1777);
    const out = join(dir, 'who');
    const probe = check('{ id -u; id -g; id -G; pwd; } > "$OUT"', { env: { OUT: out }, user });
    expect(await probe(target, { timeoutMs: 5000 })).toMatchObject({ ok: true });
    expect(readFileSync(out, 'utf8')).toBe(`${user.uid}\n${user.gid}\n${user.gid}\n/\n`);
    expect(statSync(out).uid).toBe(user.uid);
    // The same check without a user runs as the daemon (root here).
    const asDaemon = check('{ id -u; } > "$OUT"', { env: { OUT: out } });
    rmSync(out);
    expect(await asDaemon(target, { timeoutMs: 5000 })).toMatchObject({ ok: true });
    expect(readFileSync(out, 'utf8')).toBe('0\n');
  });

  it('kills a command that runs as exec.user and overstays the timeout', async () => {
    if (process.getuid?.() !== 0) return;
    const nobody = /^nobody:[^:]*:(\d+):(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'));
    const user = { name: 'nobody', uid: Number(nobody![1]), gid: Number(nobody![2]) };
    const result = await check('sleep 8.125 & wait', { user })(target, { timeoutMs: 200 });
    expect(result.detail).toMatch(/did not finish within 200 ms \(killed\)$/);
    await sleep(100);
    expect(processesMatching('sleep 8.125')).toEqual([]);
  });
});

