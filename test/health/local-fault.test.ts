// A probe that fails for a reason local to the mux is no evidence against the backend. Real
// sockets: a TCP check run in a network namespace that has no route at all (the mux's link is
// gone: ENETUNREACH) keeps the backend's state; a check that reaches a closed port does not.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { localErrno } from '../../src/health/probes/common.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const checker = join(repo, 'dist', 'health', 'index.js');
const ready = process.getuid?.() === 0 && existsSync(checker) && spawnSync('ip', ['-V']).status === 0;

// Runs in the namespace: checks of two backends, fall 2, the first up before the link goes.
const SCRIPT = `
const { HealthChecker } = await import(${JSON.stringify(checker)});
const c = new HealthChecker({});
const events = [];
c.on('transition', (e) => events.push(['transition', e.address, e.to]));
c.on('localFault', (e) => events.push(['localFault', e.address, e.errno, e.cleared]));
const spec = (address, port) => ({ key: 'web/' + address, pool: 'web', backend: address, kind: 'tcp', target: { address, port },
  interval: 50, timeout: 200, rise: 1, fall: 2, jitter: 0, weight: 1, weightFrom: 'none' });
c.update([spec('10.99.0.1', 80), spec('127.0.0.1', 1)]);
await new Promise((r) => setTimeout(r, 400));
console.log(JSON.stringify({ events, unreachable: c.get('web/10.99.0.1'), refused: c.get('web/127.0.0.1').state }));
await c.stop();
`;

describe('local probe failures', () => {
  it('names the local errnos and not the backend ones', () => {
    expect(localErrno('connect to 10.1.0.1:80: ENETUNREACH')).toBe('ENETUNREACH');
    expect(localErrno('spawn /bin/true EMFILE')).toBe('EMFILE');
    expect(localErrno('connect to 10.1.0.1:80: EHOSTUNREACH')).toBeUndefined();
    expect(localErrno('connect to 10.1.0.1:80: ECONNREFUSED')).toBeUndefined();
  });

  it.skipIf(!ready)('a check without a route of our own keeps the backend state and reports the fault (netns, root)', () => {
    const ns = `l4h-lf-${process.pid}`;
    spawnSync('ip', ['netns', 'add', ns]);
    try {
      spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', SCRIPT], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { events: unknown[][]; unreachable: { state: string; failuresInARow: number; localFault?: { errno: string } }; refused: string };
      expect(out.unreachable.state).toBe('unknown');
      expect(out.unreachable.failuresInARow).toBe(0);
      expect(out.unreachable.localFault?.errno).toBe('ENETUNREACH');
      expect(out.events).toContainEqual(['localFault', '10.99.0.1', 'ENETUNREACH', false]);
      expect(out.events).not.toContainEqual(['transition', '10.99.0.1', 'down']);
      // A refused connection is the backend's answer: it goes down.
      expect(out.refused).toBe('down');
    } finally {
      spawnSync('ip', ['netns', 'del', ns]);
    }
  });
});
