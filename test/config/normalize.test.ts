import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  conntrackSettings,
  loadConfigFile,
  parseConfig,
  toDataplaneConfig,
  validateConfig,
  type L4muxConfig,
} from '../../src/config/index.js';
import { baseConfig, fixture, repoRoot } from './helpers.js';

async function load(name: string): Promise<L4muxConfig> {
  const result = await loadConfigFile(fixture(name));
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

describe('a full config', () => {
  it('normalizes addresses, MACs, the seed and every default', async () => {
    const result = await loadConfigFile(fixture('full.json'));
    expect(result).toEqual({ ok: true, warnings: [], config: expect.anything() });
    const config = await load('full.json');
    expect(config).toEqual({
      version: 1,
      node: {
        seed: '0x5eed09130b0d2fcd', // 6840133386440093645
        interfaces: [],
        io: 'auto',
        xdpMode: 'auto',
        sourceMac: '02:00:00:00:00:01',
        gatewayMac: '02:00:00:00:00:fe',
        manageOffloads: true,
        outerSource: { ipv4: '10.0.0.1', ipv6: 'fd00::1' },
        conntrack: {
          maxFlows: 65536,
          timeouts: { tcpSyn: 10, tcpEstablished: 900, tcpClosing: 30, udp: 120, other: 30, tcpUnproven: 10 },
        },
      },
      pools: {
        web: {
          backends: [
            { address: '10.1.0.1', weight: 3, state: 'active', fallover: [] },
            { address: '10.1.0.2', weight: 1, state: 'active', fallover: [] },
            { address: '10.1.0.3', weight: 0, state: 'active', fallover: [] },
          ],
          allDown: 'drop',
        },
        dns: {
          description: 'resolvers',
          backends: [
            { address: '2001:db8::1:0:0:53', weight: 1, state: 'active', fallover: [] },
            { address: '10.2.0.53', weight: 1, state: 'active', fallover: [] },
          ],
          allDown: 'drop',
        },
      },
      vips: [
        {
          name: 'web-v4',
          address: '192.0.2.10',
          protocol: 'tcp',
          port: 80,
          pool: 'web',
          encapsulation: 'ipip',
          hashFields: '5-tuple',
          tableSize: 65537,
          icmpEcho: true,
          scheduler: 'maglev',
        },
        {
          name: '2001:db8::10:udp:53',
          description: 'anycast DNS',
          address: '2001:db8::10',
          protocol: 'udp',
          port: 53,
          pool: 'dns',
          encapsulation: 'gre',
          gre: { key: 4294967295 },
          hashFields: 'src-ip',
          tableSize: 251,
          icmpEcho: false,
          scheduler: 'maglev',
        },
        {
          name: '192.0.2.10:tcp:*',
          address: '192.0.2.10',
          protocol: 'tcp',
          pool: 'web',
          encapsulation: 'gue',
          gue: { port: 6080 },
          hashFields: '3-tuple',
          tableSize: 1000003,
          icmpEcho: true,
          scheduler: 'maglev',
        },
        {
          name: 'dns-v4',
          address: '192.0.2.53',
          protocol: 'udp',
          port: 53,
          pool: 'dns',
          encapsulation: 'gue',
          gue: { port: 7000 },
          hashFields: '5-tuple',
          tableSize: 65537,
          icmpEcho: true,
          scheduler: 'maglev',
        },
        {
          name: '192.0.2.54:udp:53',
          address: '192.0.2.54',
          protocol: 'udp',
          port: 53,
          pool: 'dns',
          encapsulation: 'gre',
          hashFields: '5-tuple',
          tableSize: 65537,
          icmpEcho: true,
          scheduler: 'maglev',
        },
      ],
      healthChecks: [],
    });
  });

  it('converts to the dataplane config: pools resolved, protocol numbers, port 0 for all ports', async () => {
    const dp = toDataplaneConfig(await load('full.json'));
    expect(dp.seed).toBe('0x5eed09130b0d2fcd');
    expect(dp.sourceMac).toBe('02:00:00:00:00:01');
    expect(dp.gatewayMac).toBe('02:00:00:00:00:fe');
    expect(dp.outerSourceV4).toBe('10.0.0.1');
    expect(dp.outerSourceV6).toBe('fd00::1');
    expect(dp.vips).toEqual([
      {
        name: 'web-v4',
        address: '192.0.2.10',
        protocol: 6,
        port: 80,
        encap: 'ipip',
        guePort: 6080,
        hashFields: '5-tuple',
        tableSize: 65537,
        icmpEcho: true,
        scheduler: 'maglev',
        backends: [
          { address: '10.1.0.1', weight: 3, state: 'active', healthy: true, fallover: [] },
          { address: '10.1.0.2', weight: 1, state: 'active', healthy: true, fallover: [] },
          { address: '10.1.0.3', weight: 0, state: 'active', healthy: true, fallover: [] },
        ],
      },
      {
        name: '2001:db8::10:udp:53',
        address: '2001:db8::10',
        protocol: 17,
        port: 53,
        encap: 'gre',
        greKey: 4294967295,
        guePort: 6080,
        hashFields: 'src-ip',
        tableSize: 251,
        icmpEcho: false,
        scheduler: 'maglev',
        backends: [
          { address: '2001:db8::1:0:0:53', weight: 1, state: 'active', healthy: true, fallover: [] },
          { address: '10.2.0.53', weight: 1, state: 'active', healthy: true, fallover: [] },
        ],
      },
      expect.objectContaining({ name: '192.0.2.10:tcp:*', protocol: 6, port: 0, encap: 'gue', guePort: 6080 }),
      expect.objectContaining({ name: 'dns-v4', protocol: 17, port: 53, encap: 'gue', guePort: 7000 }),
      expect.objectContaining({ name: '192.0.2.54:udp:53', encap: 'gre' }),
    ]);
    expect(dp.vips[4]).not.toHaveProperty('greKey'); // unkeyed GRE
  });

  it('gives the conntrack settings the dataplane is constructed with', async () => {
    expect(conntrackSettings(await load('full.json'))).toEqual({
      maxFlows: 65536,
      timeouts: {
        tcpSynSeconds: 10,
        tcpEstablishedSeconds: 900,
        tcpClosingSeconds: 30,
        udpSeconds: 120,
        otherSeconds: 30,
        tcpUnprovenSeconds: 10,
      },
    });
  });
});

describe('defaults', () => {
  it('fills in every optional value of a minimal config', async () => {
    const config = await load('minimal.json');
    expect(config).toEqual({
      version: 1,
      node: {
        seed: '0x0000000000000001',
        interfaces: [],
        io: 'auto',
        xdpMode: 'auto',
        gatewayMac: '02:00:00:00:00:fe',
        manageOffloads: true,
        outerSource: { ipv4: '10.0.0.1' },
        conntrack: {
          maxFlows: 262144,
          timeouts: { tcpSyn: 30, tcpEstablished: 900, tcpClosing: 30, udp: 60, other: 30, tcpUnproven: 10 },
        },
      },
      pools: { web: { backends: [{ address: '10.1.0.1', weight: 1, state: 'active', fallover: [] }], allDown: 'drop' } },
      vips: [
        {
          name: '192.0.2.10:tcp:80',
          address: '192.0.2.10',
          protocol: 'tcp',
          port: 80,
          pool: 'web',
          encapsulation: 'ipip',
          hashFields: '5-tuple',
          tableSize: 65537,
          icmpEcho: true,
          scheduler: 'maglev',
        },
      ],
      healthChecks: [],
    });
    const dp = toDataplaneConfig(config);
    expect(dp.sourceMac).toBe('00:00:00:00:00:00');
    expect(dp).not.toHaveProperty('mtu');
    expect(dp).not.toHaveProperty('outerSourceV6');
    expect(dp.vips[0]).not.toHaveProperty('greKey');
    expect(conntrackSettings(config)).toEqual({
      maxFlows: 262144,
      timeouts: { tcpSynSeconds: 30, tcpEstablishedSeconds: 900, tcpClosingSeconds: 30, udpSeconds: 60, otherSeconds: 30, tcpUnprovenSeconds: 10 },
    });
  });

  it('uses GUE port 6080 when a gue VIP gives no port, and an unkeyed GRE block stays unkeyed', () => {
    const base = baseConfig();
    base.vips = [
      { address: '192.0.2.10', protocol: 'udp', pool: 'web', encapsulation: 'gue' },
      { address: '192.0.2.11', protocol: 'udp', pool: 'web', encapsulation: 'gue', gue: {} },
      { address: '192.0.2.12', protocol: 'udp', pool: 'web', encapsulation: 'gre', gre: {} },
    ];
    const result = validateConfig(base);
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(result.config.vips.map((v) => [v.name, v.gue, v.gre])).toEqual([
      ['192.0.2.10:udp:*', { port: 6080 }, undefined],
      ['192.0.2.11:udp:*', { port: 6080 }, undefined],
      ['192.0.2.12:udp:*', undefined, {}],
    ]);
  });

  it('writes seeds canonically whatever their notation', () => {
    const seeds: Array<[string, string]> = [
      ['0', '0x0000000000000000'],
      ['18446744073709551615', '0xffffffffffffffff'],
      ['0X5EED', '0x0000000000005eed'],
      ['0x00000000000000000000000000000001', '0x0000000000000001'],
    ];
    for (const [input, canonical] of seeds) {
      const base = baseConfig();
      base.node.seed = input;
      const result = validateConfig(base);
      expect(result.ok && result.config.node.seed).toBe(canonical);
    }
  });

  it('writes IPv6 addresses as RFC 5952 text and accepts MACs with dashes', () => {
    const base = baseConfig();
    base.node.gatewayMac = '02-00-00-00-00-FE';
    base.node.outerSource.ipv6 = 'FD00:0000:0000:0000:0000:0000:0000:0001';
    base.pools.web.backends = [{ address: '2001:db8:0:1:1:1:1:1' }, { address: '2001:0:0:1:0:0:1:1' }];
    base.vips[0].address = '2001:DB8::0:10';
    const result = validateConfig(base);
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(result.config.node.gatewayMac).toBe('02:00:00:00:00:fe');
    expect(result.config.node.outerSource.ipv6).toBe('fd00::1');
    // A single zero group is not shortened to "::"; the first of two equal runs is.
    expect(result.config.pools['web']?.backends.map((b) => b.address)).toEqual(['2001:db8:0:1:1:1:1:1', '2001::1:0:0:1:1']);
    expect(result.config.vips[0]?.address).toBe('2001:db8::10');
    expect(result.config.vips[0]?.name).toBe('2001:db8::10:tcp:80');
  });

  it('allows backends of the other family than the VIP (IPv4 in IPv6 and the reverse)', () => {
    const base = baseConfig();
    base.node.outerSource.ipv6 = 'fd00::1';
    base.pools.web.backends.push({ address: 'fd00:1::1' });
    base.vips.push({ address: '2001:db8::10', protocol: 'tcp', port: 80, pool: 'web' });
    const result = validateConfig(base);
    expect(result.ok && result.warnings).toEqual([]);
  });
});

describe('the shipped example', () => {
  it('is valid, without warnings, with an IPv4 ipip VIP and an IPv6 gue VIP', async () => {
    const path = join(repoRoot, 'scripts/examples/l4mux.example.json');
    const result = parseConfig(readFileSync(path, 'utf8'), path);
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(result.warnings).toEqual([]);
    expect(result.config.vips.map((v) => [v.address, v.encapsulation])).toEqual([
      ['192.0.2.10', 'ipip'],
      ['2001:db8::10', 'gue'],
    ]);
  });
});
