import { describe, expect, it } from 'vitest';

import { loadConfigFile } from '../../src/config/index.js';
import { check, fixture } from './helpers.js';

describe('warnings', () => {
  it('come separately from a valid config', async () => {
    const result = await loadConfigFile(fixture('warnings.json'));
    expect(result.ok).toBe(true);
    expect(result.ok && result.warnings).toEqual([
      'pools.drained: pool is not used by any VIP',
      'pools.empty: pool is not used by any VIP',
      'vips[0].pool: pool "web" has no backend with weight > 0, so this VIP cannot take new flows',
      'vips[1].pool: pool "dns" has no backend with weight > 0, so this VIP cannot take new flows',
    ]);
  });

  it('flag a Maglev table too small for even load', () => {
    const result = check((c) => {
      c.vips[0].tableSize = 257;
      c.pools.web.backends = [1, 2, 3, 4].map((n) => ({ address: `10.1.0.${n}`, weight: n === 4 ? 0 : 1 }));
    });
    expect(result.ok && result.warnings).toEqual([
      'vips[0].tableSize: 257 entries for the 3 backends of pool "web" will spread load unevenly; Maglev recommends at least 100 entries per backend (a prime of at least 300)',
    ]);
  });

  it('flag the default table size too, when a pool is large', () => {
    const result = check((c) => {
      c.pools.web.backends = Array.from({ length: 700 }, (_, i) => ({ address: `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}` }));
    });
    expect(result.ok && result.warnings).toEqual([
      'vips[0].tableSize: the default table size 65537 for the 700 backends of pool "web" will spread load unevenly; Maglev recommends at least 100 entries per backend (a prime of at least 70000)',
    ]);
  });

  it('flag icmpEcho false where another VIP on the address answers pings', () => {
    const result = check((c) => {
      c.vips.push({ address: '192.0.2.10', protocol: 'udp', port: 53, pool: 'web', icmpEcho: false });
      c.vips.push({ name: 'quiet', address: '192.0.2.11', protocol: 'udp', port: 53, pool: 'web', icmpEcho: false });
    });
    expect(result.ok && result.warnings).toEqual([
      'vips[1].icmpEcho: false has no effect: vips[0] ("192.0.2.10:tcp:80") on the same address answers pings (echo replies are per address)',
    ]);
  });

  it('flag a config without VIPs', () => {
    const result = check((c) => {
      c.vips = [];
      c.pools = {};
      delete c.node.outerSource;
    });
    expect(result.ok && result.warnings).toEqual(['vips: no VIPs are defined']);
  });

  it('are not returned with errors', () => {
    const result = check((c) => {
      c.pools.unused = { backends: [] };
      c.vips[0].address = 'bogus';
    });
    expect(result).toEqual({ ok: false, errors: ['vips[0].address: "bogus" is not an IPv4 or IPv6 address'] });
  });
});
