// Parsers of `ip -j` and `ethtool` output, on output captured from a real host (network
// namespaces with veth pairs), and of /proc/self/status.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import {
  checkCapabilities,
  checkLink,
  parseFeaturesJson,
  parseFeaturesText,
  parseLinks,
  parseNeighbours,
  parseProcStatus,
  parseRouteGet,
  preferredAddress,
  usableMac,
} from '../../src/net/index.js';
import { isStale } from '../../src/net/routes.js';

const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url)), 'utf8');

describe('ip -j addr show', () => {
  const links = parseLinks(fixture('ip-addr-show.json'));

  it('gives every link with its index, MAC, MTU, state and addresses', () => {
    expect(links.map((l) => l.name)).toEqual(['lo', 'm0', 'm1p', 'm1', 'm2p', 'm2']);
    const m0 = links.find((l) => l.name === 'm0');
    expect(m0).toEqual({
      name: 'm0',
      ifindex: 2,
      mac: '82:8c:68:83:b5:c4',
      mtu: 1500,
      adminUp: true,
      carrier: true,
      operstate: 'UP',
      linkType: 'ether',
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      addresses: [
        { family: 'ipv4', address: '10.9.0.2', prefixLength: 24, scope: 'global' },
        { family: 'ipv6', address: 'fd09::2', prefixLength: 64, scope: 'global' },
        { family: 'ipv6', address: 'fe80::808c:68ff:fe83:b5c4', prefixLength: 64, scope: 'link' },
      ],
    });
    expect(m0 && preferredAddress(m0, 'ipv6')?.address).toBe('fd09::2');
  });

  it('tells usable interfaces from missing, down, carrier-less and non-Ethernet ones', () => {
    expect(checkLink('m0', links).ok).toBe(true);
    expect(checkLink('m1', links)).toEqual({ ok: false, reason: 'has no carrier (cable, peer or switch port down)' });
    expect(checkLink('m2', links)).toEqual({ ok: false, reason: 'is down (ip link set m2 up)' });
    expect(checkLink('lo', links)).toEqual({ ok: false, reason: 'is not an Ethernet interface (link type loopback); l4mux sends Ethernet frames' });
    expect(checkLink('m9', links)).toEqual({ ok: false, reason: 'does not exist (did you mean "m0"?)' });
    expect(checkLink('uplink', links)).toEqual({ ok: false, reason: 'does not exist (interfaces: lo, m0, m1p, m1, m2p, m2)' });
  });

  it('reads empty output as no links and refuses output that is not JSON', () => {
    expect(parseLinks('')).toEqual([]);
    expect(() => parseLinks('1: lo: <LOOPBACK,UP>')).toThrow(/not JSON/);
  });
});

describe('ip -j route get (batch)', () => {
  it('gives the gateway (or none when on-link), the device and the route type', () => {
    // 10.1.0.1 via a router, 10.7.0.1 unreachable (absent), fd01::5 via a router, 10.9.0.7
    // on-link, 10.9.0.2 local.
    expect(parseRouteGet(fixture('ip-route-get-batch.txt'))).toEqual([
      { destination: '10.1.0.1', gateway: '10.9.0.1', dev: 'm0', prefsrc: '10.9.0.2' },
      { destination: 'fd01::5', gateway: 'fd09::1', dev: 'm0', prefsrc: 'fd09::2' },
      { destination: '10.9.0.7', dev: 'm0', prefsrc: '10.9.0.2' },
      { destination: '10.9.0.2', dev: 'lo', prefsrc: '10.9.0.2', type: 'local' },
    ]);
  });
});

describe('ip -j neigh show', () => {
  const neighbours = parseNeighbours(fixture('ip-neigh-show.json'));

  it('gives each entry with its MAC and NUD state', () => {
    expect(neighbours.map((n) => [n.address, n.mac, n.states.join(',')])).toEqual([
      ['10.9.0.99', undefined, 'FAILED'],
      ['10.9.0.55', undefined, 'INCOMPLETE'],
      ['10.9.0.1', '3a:b2:7a:52:3e:5d', 'STALE'],
      ['fd09::1', '3a:b2:7a:52:3e:5d', 'STALE'],
      ['fe80::38b2:7aff:fe52:3e5d', '3a:b2:7a:52:3e:5d', 'STALE'],
    ]);
  });

  it('uses the MAC of usable entries only, and calls STALE ones stale', () => {
    const byAddress = new Map(neighbours.map((n) => [n.address, n]));
    expect(usableMac(byAddress.get('10.9.0.99'))).toBeUndefined();
    expect(usableMac(byAddress.get('10.9.0.55'))).toBeUndefined();
    expect(usableMac(byAddress.get('10.9.0.1'))).toBe('3a:b2:7a:52:3e:5d');
    expect(isStale(byAddress.get('10.9.0.1'))).toBe(true);
    expect(usableMac({ address: '10.0.0.1', mac: '02:00:00:00:00:01', states: ['REACHABLE'], router: false })).toBe('02:00:00:00:00:01');
    expect(usableMac({ address: '10.0.0.1', mac: '02:00:00:00:00:01', states: ['PERMANENT'], router: false })).toBe('02:00:00:00:00:01');
    expect(usableMac(undefined)).toBeUndefined();
  });
});

describe('ethtool -k', () => {
  const expected = {
    'generic-receive-offload': { active: true, fixed: false },
    'large-receive-offload': { active: false, fixed: true },
    'rx-gro-hw': { active: false, fixed: true },
  };
  const pick = (m: Map<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(Object.keys(expected).map((k) => [k, m.get(k)]));

  it('reads the JSON form (ethtool 6)', () => {
    const features = parseFeaturesJson(fixture('ethtool-k.json'));
    expect(pick(features)).toEqual(expected);
    expect(features.size).toBeGreaterThan(30);
  });

  it('reads the text form, the same', () => {
    const features = parseFeaturesText(fixture('ethtool-k.txt'));
    expect(pick(features)).toEqual(expected);
    expect([...features.keys()]).toEqual([...parseFeaturesJson(fixture('ethtool-k.json')).keys()].filter((k) => features.has(k)));
  });
});

describe('capabilities', () => {
  const status = (capEff: string, uid = 0): string =>
    `Name:\tnode\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;
  const bits = (...caps: number[]): string => caps.reduce((n, c) => n | (1n << BigInt(c)), 0n).toString(16).padStart(16, '0');

  it('reads uid and the effective set', () => {
    expect(parseProcStatus(status('000001fffeffffff'))).toEqual({ uid: 0, effective: 0x1fffeffffffn });
    expect(() => parseProcStatus('Name: x\n')).toThrow(/CapEff/);
  });

  it('accepts full root, and NET_RAW + NET_ADMIN for AF_PACKET', () => {
    expect(checkCapabilities(parseProcStatus(status('000001ffffffffff')), 'af_xdp')).toEqual({ ok: true, missing: [], message: '', warnings: [] });
    expect(checkCapabilities(parseProcStatus(status(bits(12, 13), 998)), 'af_packet').ok).toBe(true);
  });

  it('names what is missing', () => {
    const none = checkCapabilities(parseProcStatus(status(bits(), 1000)), 'af_packet');
    expect(none.ok).toBe(false);
    expect(none.missing).toEqual(['CAP_NET_RAW', 'CAP_NET_ADMIN']);
    expect(none.message).toMatch(/^l4mux lacks CAP_NET_RAW, CAP_NET_ADMIN: live forwarding needs them for packet sockets and interface settings\. Run it as root, or grant them/);
    const rootWithoutAdmin = checkCapabilities(parseProcStatus(status(bits(13, 39))), 'af_packet');
    expect(rootWithoutAdmin.message).toMatch(/^l4mux runs as root but lacks CAP_NET_ADMIN:/);
  });

  it('needs CAP_BPF or CAP_SYS_ADMIN for AF_XDP, and warns that auto falls back without them', () => {
    const netOnly = parseProcStatus(status(bits(12, 13), 998));
    expect(checkCapabilities(netOnly, 'af_xdp').missing).toEqual(['CAP_BPF (or CAP_SYS_ADMIN on kernels before 5.8)']);
    expect(checkCapabilities(netOnly, 'auto')).toMatchObject({ ok: true, warnings: [expect.stringMatching(/"io": "auto" will use AF_PACKET/)] });
    expect(checkCapabilities(parseProcStatus(status(bits(12, 13, 39), 998)), 'af_xdp').ok).toBe(true);
    expect(checkCapabilities(parseProcStatus(status(bits(12, 13, 21), 998)), 'af_xdp').ok).toBe(true);
  });
});
