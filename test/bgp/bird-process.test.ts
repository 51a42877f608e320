// BIRD as the daemon's supervised child, with the real BIRD: started, reconfigured through its
// control socket, a refused configuration leaving the running one in place, restarted after it
// is killed, stopped. The configuration has no BGP session (nothing listens, nothing is sent).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';

import { BirdProcess } from '../../src/bgp/bird-process.js';
import { DEFAULT_BIRD } from '../../src/bgp/defaults.js';
import { sleep, waitUntil } from '../support/lab.js';

const hasBird = ((): boolean => {
  try {
    execFileSync(DEFAULT_BIRD, ['--version'], { stdio: 'pipe' });
    execFileSync('setpriv', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();

const config = (route: string): string => `router id 10.0.0.1;\nprotocol device {}\nprotocol static s4 { ipv4; route ${route} blackhole; }\n`;

describe.skipIf(!hasBird)('BIRD as a supervised child', () => {
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-bird-'));
  const bird = new BirdProcess({ bird: DEFAULT_BIRD, runDirectory: join(dir, 'run'), logger: pino({ level: 'silent' }), restartDelayMs: 100 });
  afterAll(async () => {
    await bird.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const routes = async (): Promise<string> => (await bird.command('show route')).lines.map((l) => l.text).join('\n');

  it('starts, and changes its routes on configure', async () => {
    expect(await bird.check(config('192.0.2.1/32'))).toBeNull();
    await bird.start(config('192.0.2.1/32'));
    expect(bird.status()).toMatchObject({ state: 'running', restarts: 0 });
    expect(await routes()).toContain('192.0.2.1/32');
    await bird.configure(config('192.0.2.2/32'));
    expect(await routes()).toContain('192.0.2.2/32');
    expect(await routes()).not.toContain('192.0.2.1/32');
  });

  it('refuses a configuration BIRD rejects and keeps the running one', async () => {
    expect(await bird.check('router id 10.0.0.1;\nprotocol nonsense {}\n')).toMatch(/syntax error|unknown|nonsense/i);
    await expect(bird.configure('router id 10.0.0.1;\nprotocol nonsense {}\n')).rejects.toThrow(/BIRD refused the configuration/);
    expect(await routes()).toContain('192.0.2.2/32');
  });

  it('restarts a BIRD that was killed, with the newest configuration', async () => {
    const pid = bird.status().pid as number;
    await bird.configure(config('192.0.2.3/32'));
    process.kill(pid, 'SIGKILL');
    expect(await waitUntil(() => bird.status().state === 'running' && bird.status().pid !== pid, 10_000, 20)).toBe(true);
    expect(bird.status()).toMatchObject({ restarts: 1, lastExit: 'killed by SIGKILL' });
    await sleep(50);
    expect(await routes()).toContain('192.0.2.3/32');
  });

  it('stops, and the process is gone', async () => {
    const pid = bird.status().pid as number;
    await bird.stop();
    expect(bird.status().state).toBe('stopped');
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
