// The node settings `l4mux run` uses: interfaces, I/O mode, workers, CPUs, next hop, MTU,
// offloads. All optional, so replay configs stay valid.
import { describe, expect, it } from 'vitest';

import { toDataplaneConfig, validateConfig, type L4muxConfig } from '../../src/config/index.js';
import { baseConfig, check, errorsOf, type Json } from './helpers.js';

function valid(mutate: (c: Json) => void): { config: L4muxConfig; warnings: string[] } {
  const result = check(mutate);
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result;
}

describe('node settings for live operation', () => {
  it('are all optional: a replay config stays valid and gets the defaults', () => {
    const { config, warnings } = valid(() => {});
    expect(warnings).toEqual([]);
    expect(config.node).toEqual({
      seed: '0x0000000000000001',
      interfaces: [],
      io: 'auto',
      xdpMode: 'auto',
      gatewayMac: '02:00:00:00:00:fe',
      manageOffloads: true,
      outerSource: { ipv4: '10.0.0.1' },
      conntrack: expect.anything(),
    });
  });

  it('normalizes every setting given', () => {
    const { config, warnings } = valid((c) => {
      Object.assign(c.node, {
        interfaces: ['eth0', 'ens1f0np0'],
        io: 'af_xdp',
        xdpMode: 'native',
        workers: 4,
        cpus: [2, 3, 4, 5],
        gateway: 'FD00:0:0::FE',
        sourceMac: '02-00-00-00-00-AA',
        mtu: 9000,
        manageOffloads: false,
      });
      delete c.node.gatewayMac;
    });
    expect(warnings).toEqual([]);
    expect(config.node).toEqual({
      seed: '0x0000000000000001',
      interfaces: ['eth0', 'ens1f0np0'],
      io: 'af_xdp',
      xdpMode: 'native',
      workers: 4,
      cpus: [2, 3, 4, 5],
      gateway: 'fd00::fe',
      sourceMac: '02:00:00:00:00:aa',
      mtu: 9000,
      manageOffloads: false,
      outerSource: { ipv4: '10.0.0.1' },
      conntrack: expect.anything(),
    });
  });

  it('leaves gatewayMac and sourceMac out when the file does (resolved when running)', () => {
    const { config } = valid((c) => {
      delete c.node.gatewayMac;
      c.node.interfaces = ['eth0'];
    });
    expect(config.node).not.toHaveProperty('gatewayMac');
    expect(config.node).not.toHaveProperty('sourceMac');
  });
});

describe('conversion to the dataplane config', () => {
  const config = (mutate: (c: Json) => void): L4muxConfig => valid(mutate).config;

  it('uses the all-zero MACs and no MTU limit without link facts (replay)', () => {
    const dp = toDataplaneConfig(config((c) => delete c.node.gatewayMac));
    expect(dp.sourceMac).toBe('00:00:00:00:00:00');
    expect(dp.gatewayMac).toBe('00:00:00:00:00:00');
    expect(dp).not.toHaveProperty('mtu');
  });

  it('fills in what the file leaves out from the link facts', () => {
    const dp = toDataplaneConfig(config((c) => delete c.node.gatewayMac), {
      sourceMac: '02:00:00:00:00:01',
      gatewayMac: '02:00:00:00:00:02',
      mtu: 1500,
    });
    expect([dp.sourceMac, dp.gatewayMac, dp.mtu]).toEqual(['02:00:00:00:00:01', '02:00:00:00:00:02', 1500]);
  });

  it('lets explicit values in the file override the link facts', () => {
    const dp = toDataplaneConfig(
      config((c) => Object.assign(c.node, { sourceMac: '02:00:00:00:00:aa', mtu: 1400 })),
      { sourceMac: '02:00:00:00:00:01', gatewayMac: '02:00:00:00:00:02', mtu: 1500 },
    );
    expect([dp.sourceMac, dp.gatewayMac, dp.mtu]).toEqual(['02:00:00:00:00:aa', '02:00:00:00:00:fe', 1400]);
  });
});

/** [what, mutation of the base config, the expected errors]. */
const errorCases: Array<[string, (c: Json) => void, string]> = [
  ['interfaces not a list', (c) => { c.node.interfaces = 'eth0'; },
    'node.interfaces: expected an array, got the string "eth0"'],
  ['empty interface list', (c) => { c.node.interfaces = []; },
    'node.interfaces: an empty list; give at least one entry, or leave the property out'],
  ['empty interface name', (c) => { c.node.interfaces = ['']; },
    'node.interfaces[0]: an empty string'],
  ['interface name too long', (c) => { c.node.interfaces = ['eth0', 'averyveryverylongname']; },
    'node.interfaces[1]: 21 characters long, more than the 15 allowed'],
  ['interface name too long in bytes', (c) => { c.node.interfaces = ['ethé-uplink-é1']; },
    'node.interfaces[0]: "ethé-uplink-é1" is 16 bytes long; interface names have at most 15'],
  ['interface name with a slash', (c) => { c.node.interfaces = ['eth0/1']; },
    'node.interfaces[0]: "eth0/1" is not a valid interface name (no spaces, \'/\' or \':\')'],
  ['interface name with a space', (c) => { c.node.interfaces = ['eth 0']; },
    'node.interfaces[0]: "eth 0" is not a valid interface name (no spaces, \'/\' or \':\')'],
  ['interface name ..', (c) => { c.node.interfaces = ['..']; },
    'node.interfaces[0]: ".." is not a valid interface name'],
  ['interface listed twice', (c) => { c.node.interfaces = ['eth0', 'eth1', 'eth0']; },
    'node.interfaces[2]: "eth0" is listed twice (first at node.interfaces[0])'],
  ['io mode', (c) => { c.node.io = 'af-xdp'; },
    'node.io: "af-xdp" is not one of "auto", "af_packet", "af_xdp" (did you mean "af_xdp"?)'],
  ['xdp mode', (c) => { c.node.xdpMode = 'skb'; },
    'node.xdpMode: "skb" is not one of "auto", "native", "generic"'],
  ['workers 0', (c) => { c.node.workers = 0; },
    'node.workers: 0 is out of range (1..64)'],
  ['too many workers', (c) => { c.node.workers = 65; },
    'node.workers: 65 is out of range (1..64)'],
  ['workers as a string', (c) => { c.node.workers = 'auto'; },
    'node.workers: expected an integer from 1 to 64, got the string "auto"'],
  ['negative CPU id', (c) => { c.node.cpus = [0, -1]; },
    'node.cpus[1]: -1 is out of range (0..4095)'],
  ['CPU listed twice', (c) => { c.node.cpus = [0, 1, 1]; },
    'node.cpus[2]: CPU 1 is listed twice (first at node.cpus[1])'],
  ['empty CPU list', (c) => { c.node.cpus = []; },
    'node.cpus: an empty list; give at least one entry, or leave the property out'],
  ['gateway not an address', (c) => { c.node.gateway = 'router1'; },
    'node.gateway: "router1" is not an IPv4 or IPv6 address'],
  ['multicast gateway', (c) => { c.node.gateway = '224.0.0.1'; },
    'node.gateway: "224.0.0.1" is a multicast address; a gateway must be a unicast address'],
  ['MTU too small', (c) => { c.node.mtu = 500; },
    'node.mtu: 500 is out of range (576..65535)'],
  ['MTU too small for IPv6 backends', (c) => { c.node.mtu = 1200; c.node.outerSource.ipv6 = 'fd00::1'; c.pools.web.backends.push({ address: 'fd00:1::1' }); },
    'node.mtu: 1200 is below 1280, the smallest MTU IPv6 allows (pools.web.backends[1] is IPv6)'],
  ['MTU too small for an IPv6 VIP', (c) => { c.node.mtu = 1200; c.vips.push({ address: '2001:db8::10', protocol: 'tcp', port: 80, pool: 'web' }); },
    'node.mtu: 1200 is below 1280, the smallest MTU IPv6 allows (vips[1] is IPv6)'],
  ['manageOffloads not a boolean', (c) => { c.node.manageOffloads = 'yes'; },
    'node.manageOffloads: expected true or false, got the string "yes"'],
  ['unknown node property, with a suggestion', (c) => { c.node.interface = ['eth0']; },
    'node: unknown property "interface" (did you mean "interfaces"?)'],
];

describe('errors in node settings', () => {
  it.each(errorCases)('%s', (_what, mutate, expected) => {
    expect(errorsOf(check(mutate))).toEqual(expected.split('\n'));
  });

  it('IPv4-only configs may use a small MTU', () => {
    expect(valid((c) => { c.node.mtu = 576; }).config.node.mtu).toBe(576);
  });

  it('are reported together with the other errors, in file order', () => {
    const base = baseConfig();
    base.node = { interfaces: ['eth0', 'eth0'], seed: 'x', workers: 0, gatewayMac: 'nope', outerSource: { ipv4: '10.0.0.1' } };
    expect(errorsOf(validateConfig(base))).toEqual([
      'node.interfaces[1]: "eth0" is listed twice (first at node.interfaces[0])',
      'node.seed: "x" is not a 64-bit number (expected decimal digits, or 0x and hex digits like "0x5eed0000cafef00d")',
      'node.workers: 0 is out of range (1..64)',
      'node.gatewayMac: "nope" is not a MAC address (expected six hex pairs like 02:00:00:00:00:fe)',
    ]);
  });
});

describe('warnings about node settings', () => {
  const warningsOf = (mutate: (c: Json) => void): string[] => valid(mutate).warnings;

  it('xdpMode without AF_XDP', () => {
    expect(warningsOf((c) => Object.assign(c.node, { io: 'af_packet', xdpMode: 'native' }))).toEqual([
      'node.xdpMode: has no effect with "io": "af_packet" (no XDP program is attached)',
    ]);
    expect(warningsOf((c) => Object.assign(c.node, { io: 'auto', xdpMode: 'generic' }))).toEqual([]);
  });

  it('more workers than pinned CPUs, and fewer', () => {
    expect(warningsOf((c) => Object.assign(c.node, { workers: 4, cpus: [0, 1] }))).toEqual([
      'node.workers: 4 workers per interface on 2 CPUs (node.cpus): some CPUs run more than one worker',
    ]);
    expect(warningsOf((c) => Object.assign(c.node, { workers: 1, cpus: [0, 1] }))).toEqual([
      'node.workers: 1 worker per interface use only the first 1 of the 2 CPUs of node.cpus',
    ]);
    expect(warningsOf((c) => Object.assign(c.node, { workers: 2, cpus: [0, 1] }))).toEqual([]);
  });

  it('a gateway that an explicit gatewayMac makes useless', () => {
    expect(warningsOf((c) => { c.node.gateway = '10.0.0.254'; })).toEqual([
      'node.gateway: not used: node.gatewayMac is set, and an explicit MAC overrides next-hop resolution',
    ]);
    expect(warningsOf((c) => { c.node.gateway = '10.0.0.254'; delete c.node.gatewayMac; })).toEqual([]);
  });
});
