// The bgp section of the VIP map: every problem as "path: reason" (and nothing of the file
// accepted), the normalized form, and the BIRD configuration generated from it, which BIRD
// itself must accept (`bird -p`).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { birdConfig } from '../../src/bgp/bird-config.js';
import { parseCommunity } from '../../src/bgp/communities.js';
import { DEFAULT_BIRD, DEFAULT_HOLD_TIME } from '../../src/bgp/defaults.js';
import { check, errorsOf, type Json } from '../config/helpers.js';

function withBgp(bgp: Json): (c: Json) => void {
  return (c) => {
    c.vips.push({ address: '2001:db8::10', protocol: 'udp', port: 53, pool: 'web6' });
    c.pools.web6 = { backends: [{ address: 'fd00::11' }] };
    c.node.outerSource.ipv6 = 'fd00::1';
    c.bgp = bgp;
  };
}

const good = (): Json => ({
  localAs: 65001,
  communities: ['65001:100'],
  neighbours: [
    { address: '10.0.0.254', as: 65000, password: 's3cret' },
    { name: 'router_v6', address: 'FD00::FE', as: 65000, holdTime: 3, bfd: true },
  ],
  vips: { '192.0.2.10': { med: 20, prepend: 2, communities: ['65001:7:9'] } },
});

const hasBird = ((): boolean => {
  try {
    execFileSync(DEFAULT_BIRD, ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();

describe('the bgp section', () => {
  it('normalizes a valid section: router id from the outer source, canonical addresses, defaults', () => {
    const result = check(withBgp(good()));
    expect(errorsOf(result)).toEqual([]);
    if (!result.ok) return;
    expect(result.warnings).toEqual([]);
    const bgp = result.config.bgp;
    expect(bgp).toMatchObject({ localAs: 65001, routerId: '10.0.0.1', holdTime: DEFAULT_HOLD_TIME, drainSeconds: 10, runDirectory: '/run/l4mux/bird' });
    expect(bgp?.neighbours).toEqual([
      { name: 'n_10_0_0_254', address: '10.0.0.254', family: 'ipv4', as: 65000, password: 's3cret', holdTime: DEFAULT_HOLD_TIME },
      { name: 'router_v6', address: 'fd00::fe', family: 'ipv6', as: 65000, holdTime: 3, bfd: { interval: 100, multiplier: 3 } },
    ]);
    expect(bgp?.routes['192.0.2.10']).toEqual({
      med: 20,
      prepend: 2,
      communities: [
        { kind: 'standard', parts: [65001, 100] },
        { kind: 'large', parts: [65001, 7, 9] },
      ],
    });
  });

  it('reports every problem as path: reason', () => {
    const result = check(
      withBgp({
        localAs: 0,
        routerId: 'fd00::1',
        holdTime: 1,
        communities: ['70000:1', 'x'],
        neighbours: [
          { address: '300.1.1.1', as: 65000 },
          { address: '10.0.0.254', as: 65000, password: 'a"b', sourceAddress: 'fd00::1' },
          { address: '10.0.0.254', as: 65000, name: '9x' },
          { address: '10.0.0.253', as: 65000, password: 'x'.repeat(81), unknown: 1 },
        ],
        vips: { '192.0.2.99': {}, '192.0.2.10': { med: -1 } },
      }),
    );
    expect(errorsOf(result)).toEqual([
      'bgp.localAs: 0 is out of range (1..4294967295)',
      'bgp.routerId: "fd00::1" is an IPv6 address; a BGP router id is written as an IPv4 address',
      'bgp.holdTime: 1 is out of range (3..65535)',
      'bgp.communities[0]: "70000:1": both parts of a standard community are 0-65535 (a 4-byte AS needs a large community "AS:value:value")',
      'bgp.communities[1]: "x" is not a community (write "AS:value", e.g. "65001:100", or a large community "AS:value:value")',
      'bgp.neighbours[0].address: "300.1.1.1" is not an IPv4 or IPv6 address',
      'bgp.neighbours[1].password: use printable ASCII characters other than \'"\' and \'\\\'',
      'bgp.neighbours[1].sourceAddress: "fd00::1" is an IPv6 address; the neighbour is IPv4',
      'bgp.neighbours[2].address: 10.0.0.254 is already bgp.neighbours[1]',
      'bgp.neighbours[2].name: "9x" is not a neighbour name (1-32 letters, digits or \'_\', not starting with a digit)',
      'bgp.neighbours[3]: unknown property "unknown" (allowed: name, address, as, password, holdTime, bfd, multihop, sourceAddress)',
      'bgp.neighbours[3].password: 81 characters; a TCP MD5 key has 1-80',
      'bgp.vips["192.0.2.99"]: "192.0.2.99" is not the address of any VIP',
      'bgp.vips["192.0.2.10"].med: -1 is out of range (0..4294967295)',
    ]);
  });

  it('needs a router id when there is no IPv4 outer source, and neighbours', () => {
    const result = check((c) => {
      delete c.node.outerSource.ipv4;
      c.node.outerSource.ipv6 = 'fd00::1';
      c.pools.web.backends = [{ address: 'fd00::11' }];
      c.bgp = { localAs: 65001, neighbours: [] };
    });
    expect(errorsOf(result)).toEqual([
      'bgp.routerId: required when node.outerSource.ipv4 is not set (the router id defaults to it)',
      'bgp.neighbours: an empty list; give at least one entry, or leave the property out',
    ]);
  });

  it('warns about a family without a session and a session without VIPs of its family', () => {
    const result = check((c) => {
      c.bgp = { localAs: 65001, neighbours: [{ address: 'fd00::fe', as: 65000 }] };
    });
    expect(result.ok && result.warnings).toEqual([
      'vips[0].address: no BGP neighbour is IPv4: the IPv4 VIPs are never announced',
      'bgp.neighbours[0].address: an IPv6 session, but no VIP is IPv6: nothing is announced to this neighbour',
    ]);
  });

  it('parses standard and large communities', () => {
    expect(parseCommunity('0:65535')).toEqual({ ok: true, community: { kind: 'standard', parts: [0, 65535] } });
    expect(parseCommunity('4200000000:1:2')).toEqual({ ok: true, community: { kind: 'large', parts: [4200000000, 1, 2] } });
    expect(parseCommunity('1:2:3:4').ok).toBe(false);
    expect(parseCommunity('01:2').ok).toBe(false);
    expect(parseCommunity('1:4294967296:0').ok).toBe(false);
  });
});

describe('the generated BIRD configuration', () => {
  const config = (): NonNullable<Extract<ReturnType<typeof check>, { ok: true }>['config']['bgp']> => {
    const result = check(withBgp(good()));
    if (!result.ok || result.config.bgp === undefined) throw new Error('test config invalid');
    return result.config.bgp;
  };

  it('announces exactly the given addresses, with their attributes, to the sessions of their family', () => {
    const text = birdConfig({ bgp: config(), announce: ['192.0.2.10', '2001:db8::10'] });
    expect(text).toContain('router id 10.0.0.1;');
    expect(text).toMatch(/protocol static l4mux_vips4 \{\n {2}ipv4;\n {2}route 192\.0\.2\.10\/32 blackhole;\n\}/);
    expect(text).toMatch(/protocol static l4mux_vips6 \{\n {2}ipv6;\n {2}route 2001:db8::10\/128 blackhole;\n\}/);
    expect(text).toContain(
      'if net = 192.0.2.10/32 then { bgp_med = 20; bgp_path.prepend(65001); bgp_path.prepend(65001); bgp_community.add((65001, 100)); bgp_large_community.add((65001, 7, 9)); }',
    );
    expect(text).toContain('if net = 2001:db8::10/128 then { bgp_community.add((65001, 100)); }');
    expect(text).toMatch(/protocol bgp n_10_0_0_254 \{[^}]*neighbor 10\.0\.0\.254 as 65000;[^}]*hold time 9;[^}]*password "s3cret";[^}]*ipv4 \{/);
    expect(text).toMatch(/protocol bgp router_v6 \{[^}]*neighbor fd00::fe as 65000;[^}]*hold time 3;[^}]*keepalive time 1;[^}]*bfd on;[^}]*ipv6 \{/);
    expect(text).toContain('protocol bfd l4mux_bfd');
    const withdrawn = birdConfig({ bgp: config(), announce: [] });
    expect(withdrawn).not.toContain('route ');
    expect(withdrawn).not.toContain('if net =');
  });

  it.skipIf(!hasBird)('is accepted by BIRD (bird -p)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4mux-bird-'));
    try {
      for (const announce of [[], ['192.0.2.10', '2001:db8::10']]) {
        const file = join(dir, 'bird.conf');
        writeFileSync(file, birdConfig({ bgp: config(), announce }));
        expect(() => execFileSync(DEFAULT_BIRD, ['-p', '-c', file], { stdio: 'pipe' })).not.toThrow();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
