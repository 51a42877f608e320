// Backend states, fall-over chains, the all-down policy, schedulers and health checks as the
// config sees them: every problem as "path: reason", and what the dataplane is given.
import { describe, expect, it } from 'vitest';

import { toDataplaneConfig } from '../../src/config/index.js';
import { check, errorsOf, type Json } from './helpers.js';

const three = (c: Json): void => {
  c.pools.web.backends = [{ address: '10.1.0.11' }, { address: '10.1.0.12' }, { address: '10.1.0.13' }];
};

describe('fall-over chains', () => {
  it.each<[string, (c: Json) => void, string[]]>([
    ['a fall-over outside the pool', (c) => { three(c); c.pools.web.backends[1].fallover = ['10.0.0.9']; },
      ['pools.web.backends[1].fallover[0]: "10.0.0.9" is not a backend of pool "web"']],
    ['a backend naming itself', (c) => { three(c); c.pools.web.backends[0].fallover = ['10.1.0.11']; },
      ['pools.web.backends[0].fallover[0]: "10.1.0.11" is this backend itself']],
    ['the same fall-over twice, spelled differently', (c) => {
      c.node.outerSource.ipv6 = 'fd00::1';
      c.pools.web.backends = [{ address: 'fd00:1::1', fallover: ['fd00:1::2', 'FD00:1:0::2'] }, { address: 'fd00:1::2' }];
    }, ['pools.web.backends[0].fallover[1]: "FD00:1:0::2" is listed twice']],
    ['not an address', (c) => { three(c); c.pools.web.backends[0].fallover = ['backend-2']; },
      ['pools.web.backends[0].fallover[0]: "backend-2" is not an IPv4 or IPv6 address']],
    ['a loop of two', (c) => { three(c); c.pools.web.backends[0].fallover = ['10.1.0.12']; c.pools.web.backends[1].fallover = ['10.1.0.11']; },
      ['pools.web.backends[0].fallover: fall-over loop 10.1.0.11 -> 10.1.0.12 -> 10.1.0.11']],
    ['a loop of three, reported once', (c) => {
      three(c);
      c.pools.web.backends[0].fallover = ['10.1.0.12'];
      c.pools.web.backends[1].fallover = ['10.1.0.13'];
      c.pools.web.backends[2].fallover = ['10.1.0.11'];
    }, ['pools.web.backends[0].fallover: fall-over loop 10.1.0.11 -> 10.1.0.12 -> 10.1.0.13 -> 10.1.0.11']],
  ])('%s', (_what, mutate, expected) => {
    expect(errorsOf(check(mutate))).toEqual(expected);
  });

  it('accepts chains of several steps and normalizes the addresses', () => {
    const result = check((c) => {
      c.node.outerSource.ipv6 = 'fd00::1';
      c.pools.web.backends = [{ address: '10.1.0.11', fallover: ['FD00:1:0::2'] }, { address: 'fd00:1::2', fallover: ['10.1.0.13'] }, { address: '10.1.0.13' }];
    });
    expect(result.ok, JSON.stringify(result)).toBe(true);
    if (!result.ok) return;
    expect(result.config.pools['web']?.backends.map((b) => b.fallover)).toEqual([['fd00:1::2'], ['10.1.0.13'], []]);
  });
});

describe('backend states, allDown and schedulers', () => {
  it('default to active, drop and maglev', () => {
    const result = check(() => undefined);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.pools['web']?.allDown).toBe('drop');
    expect(result.config.pools['web']?.backends[0]?.state).toBe('active');
    expect(result.config.vips[0]?.scheduler).toBe('maglev');
  });

  it('reject unknown values', () => {
    expect(errorsOf(check((c) => { c.pools.web.backends[0].state = 'down'; }))).toEqual([
      'pools.web.backends[0].state: "down" is not one of "active", "draining", "offline"',
    ]);
    expect(errorsOf(check((c) => { c.pools.web.allDown = 'keep'; }))[0]).toMatch(/^pools\.web\.allDown: "keep" is not one of "drop", "keep-last"/);
    expect(errorsOf(check((c) => { c.vips[0].scheduler = 'lc'; }))[0]).toMatch(/^vips\[0\]\.scheduler: "lc" is not one of /);
  });

  it('source-hash contradicts other hash fields', () => {
    expect(errorsOf(check((c) => { c.vips[0].scheduler = 'source-hash'; c.vips[0].hashFields = '3-tuple'; }))).toEqual([
      'vips[0].hashFields: "3-tuple" contradicts "scheduler": "source-hash", which hashes the client address only (omit hashFields)',
    ]);
  });

  it('per-mux schedulers come with a warning about connection-table sync', () => {
    const result = check((c) => { c.vips[0].scheduler = 'wlc'; });
    expect(result.ok && result.warnings).toEqual([
      'vips[0].scheduler: "wlc" is decided by each mux alone: a flow keeps its backend when the router moves it to another mux only with connection-table sync (maglev and source-hash need none)',
    ]);
  });

  it('reach the dataplane, with the runtime view of each backend', () => {
    const result = check((c) => {
      three(c);
      c.pools.web.allDown = 'keep-last';
      c.pools.web.backends[0].state = 'draining';
      c.pools.web.backends[0].fallover = ['10.1.0.13'];
      c.vips[0].scheduler = 'wrr';
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const plain = toDataplaneConfig(result.config);
    expect(plain.vips[0]?.scheduler).toBe('wrr');
    expect(plain.vips[0]?.backends[0]).toEqual({ address: '10.1.0.11', weight: 1, state: 'draining', healthy: true, fallover: ['10.1.0.13'] });
    const viewed = toDataplaneConfig(result.config, {}, (pool, b) => ({ healthy: b.address !== '10.1.0.12', weight: pool === 'web' ? 7 : 0, state: 'offline' }));
    expect(viewed.vips[0]?.backends[1]).toEqual({ address: '10.1.0.12', weight: 7, state: 'offline', healthy: false, fallover: [] });
  });
});

describe('health checks', () => {
  it('are validated with the rest of the file and resolved per backend', () => {
    const bad = check((c) => { c.pools.web.healthCheck = { kind: 'http', interval: 5 }; });
    expect(errorsOf(bad)[0]).toMatch(/^pools\.web\.healthCheck\.interval: /);
    const good = check((c) => { three(c); c.pools.web.healthCheck = { kind: 'tcp', interval: 500 }; c.pools.web.backends[2].healthCheck = { enabled: false }; });
    expect(good.ok, JSON.stringify(good)).toBe(true);
    if (!good.ok) return;
    expect(good.config.healthChecks.map((h) => [h.key, h.kind, h.interval, h.target.port])).toEqual([
      ['web/10.1.0.11', 'tcp', 500, 80],
      ['web/10.1.0.12', 'tcp', 500, 80],
    ]);
  });
});
