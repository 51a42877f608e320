import { describe, expect, it } from 'vitest';

import { loadConfigFile, validateConfig } from '../../src/config/index.js';
import { check, errorsOf, fixture, type Json } from './helpers.js';

/** [what, mutation of the base config, the one expected error]. */
const cases: Array<[string, (c: Json) => void, string]> = [
  // Schema: structure, types, ranges, enums, unknown properties.
  ['unknown property, with a suggestion', (c) => { c.vips[0].encap = 'gre'; },
    'vips[0]: unknown property "encap" (did you mean "encapsulation"?)'],
  ['unknown property, differently cased', (c) => { c.node.Seed = c.node.seed; delete c.node.seed; },
    'node: unknown property "Seed" (did you mean "seed"?)\nnode.seed: required property is missing'],
  ['unknown property, nothing close', (c) => { c.pools.web.backends[0].zone = 'a'; },
    'pools.web.backends[0]: unknown property "zone" (allowed: address, weight, state, fallover, healthCheck)'],
  ['unknown top-level property', (c) => { c.vip = []; },
    '(root): unknown property "vip" (did you mean "vips"?)'],
  ['missing required property', (c) => { delete c.vips[0].pool; },
    'vips[0].pool: required property is missing'],
  ['unsupported version', (c) => { c.version = 2; },
    'version: unsupported version 2 (this l4mux reads version 1)'],
  ['wrong type', (c) => { c.vips[0].port = '80'; },
    'vips[0].port: expected an integer from 1 to 65535, got the string "80"'],
  ['non-integer weight', (c) => { c.pools.web.backends[0].weight = 1.5; },
    'pools.web.backends[0].weight: expected an integer from 0 to 65535, got 1.5'],
  ['port 0', (c) => { c.vips[0].port = 0; },
    'vips[0].port: 0 is out of range (1..65535); omit "port" for an all-ports VIP'],
  ['port too large', (c) => { c.vips[0].port = 70000; },
    'vips[0].port: 70000 is out of range (1..65535)'],
  ['enum value, with a suggestion', (c) => { c.vips[0].protocol = 'TCP'; },
    'vips[0].protocol: "TCP" is not one of "tcp", "udp" (did you mean "tcp"?)'],
  ['enum value, nothing close', (c) => { c.vips[0].encapsulation = 'vxlan'; },
    'vips[0].encapsulation: "vxlan" is not one of "ipip", "gre", "gue"'],
  ['hash fields', (c) => { c.vips[0].hashFields = '5tuple'; },
    'vips[0].hashFields: "5tuple" is not one of "5-tuple", "3-tuple", "src-ip", "src-ip-port" (did you mean "5-tuple"?)'],
  ['maxFlows range', (c) => { c.node.conntrack = { maxFlows: 100 }; },
    'node.conntrack.maxFlows: 100 is out of range (1024..67108864)'],
  ['timeout range', (c) => { c.node.conntrack = { timeouts: { udp: 0 } }; },
    'node.conntrack.timeouts.udp: 0 is out of range (1..604800)'],
  ['GRE key range', (c) => { c.vips[0].encapsulation = 'gre'; c.vips[0].gre = { key: 4294967296 }; },
    'vips[0].gre.key: 4294967296 is out of range (0..4294967295)'],
  ['seed as a JSON number', (c) => { c.node.seed = 12345; },
    'node.seed: expected a string, got 12345; write the 64-bit seed as a string, e.g. "0x5eed0000cafef00d" (JSON numbers lose precision above 2^53)'],
  ['pools as an array', (c) => { c.pools = []; },
    'pools: expected an object, got an array'],
  ['a VIP that is not an object', (c) => { c.vips[0] = null; },
    'vips[0]: expected an object, got null'],

  // Semantic: values.
  ['invalid IPv4 address', (c) => { c.vips[0].address = '300.1.1.1'; },
    'vips[0].address: "300.1.1.1" is not an IPv4 or IPv6 address'],
  ['invalid IPv6 address', (c) => { c.pools.web.backends[0].address = 'fd00::1::2'; },
    'pools.web.backends[0].address: "fd00::1::2" is not an IPv4 or IPv6 address'],
  ['IPv4 with leading zeros', (c) => { c.vips[0].address = '192.0.2.010'; },
    'vips[0].address: "192.0.2.010" is not an IPv4 or IPv6 address (leading zeros in an IPv4 octet are ambiguous: some tools read them as octal)'],
  ['a prefix instead of an address', (c) => { c.vips[0].address = '192.0.2.0/24'; },
    'vips[0].address: "192.0.2.0/24" is not an IPv4 or IPv6 address (a single address is expected, not a prefix)'],
  ['IPv4-mapped VIP', (c) => { c.vips[0].address = '::ffff:192.0.2.1'; },
    'vips[0].address: "::ffff:192.0.2.1" is an IPv4-mapped IPv6 address; write the IPv4 address "192.0.2.1" instead'],
  ['IPv4-mapped backend in hex', (c) => { c.pools.web.backends[0].address = '::ffff:a01:1'; },
    'pools.web.backends[0].address: "::ffff:a01:1" is an IPv4-mapped IPv6 address; write the IPv4 address "10.1.0.1" instead'],
  ['multicast VIP', (c) => { c.vips[0].address = '239.1.1.1'; },
    'vips[0].address: "239.1.1.1" is a multicast address; a VIP must be a unicast address'],
  ['multicast IPv6 backend', (c) => { c.node.outerSource.ipv6 = 'fd00::1'; c.pools.web.backends[0].address = 'ff02::1'; },
    'pools.web.backends[0].address: "ff02::1" is a multicast address; a backend must be a unicast address'],
  ['unspecified backend', (c) => { c.pools.web.backends[0].address = '0.0.0.0'; },
    'pools.web.backends[0].address: "0.0.0.0" is the unspecified address; a backend must be a unicast address'],
  ['unspecified IPv6 VIP', (c) => { c.vips[0].address = '::'; },
    'vips[0].address: "::" is the unspecified address; a VIP must be a unicast address'],
  ['loopback backend', (c) => { c.pools.web.backends[0].address = '127.0.0.1'; },
    'pools.web.backends[0].address: "127.0.0.1" is a loopback address; a backend must be a unicast address reachable on the network'],
  ['outer source of the wrong family', (c) => { c.node.outerSource.ipv4 = 'fd00::1'; },
    'node.outerSource.ipv4: "fd00::1" is an IPv6 address; expected an IPv4 address'],
  ['bad MAC', (c) => { c.node.gatewayMac = 'zz:00'; },
    'node.gatewayMac: "zz:00" is not a MAC address (expected six hex pairs like 02:00:00:00:00:fe)'],
  ['multicast source MAC', (c) => { c.node.sourceMac = '01:00:5e:00:00:01'; },
    'node.sourceMac: "01:00:5e:00:00:01" is a multicast MAC address; a source MAC must be unicast'],
  ['broadcast gateway MAC', (c) => { c.node.gatewayMac = 'ff:ff:ff:ff:ff:ff'; },
    'node.gatewayMac: "ff:ff:ff:ff:ff:ff" is a broadcast MAC address; the next hop needs a unicast MAC'],
  ['all-zero gateway MAC', (c) => { c.node.gatewayMac = '00:00:00:00:00:00'; },
    'node.gatewayMac: "00:00:00:00:00:00" is the all-zero MAC address; give the MAC of the next hop toward the backends'],
  ['seed syntax', (c) => { c.node.seed = '0x5eed_cafe'; },
    'node.seed: "0x5eed_cafe" is not a 64-bit number (expected decimal digits, or 0x and hex digits like "0x5eed0000cafef00d")'],
  ['seed out of range (decimal)', (c) => { c.node.seed = '18446744073709551616'; },
    'node.seed: "18446744073709551616" does not fit in 64 bits (the largest seed is 0xffffffffffffffff)'],
  ['seed out of range (hex)', (c) => { c.node.seed = '0x10000000000000000'; },
    'node.seed: "0x10000000000000000" does not fit in 64 bits (the largest seed is 0xffffffffffffffff)'],
  ['table size not prime', (c) => { c.vips[0].tableSize = 65536; },
    'vips[0].tableSize: 65536 is not a prime number; Maglev needs a prime table size (nearest primes: 65521, 65537)'],
  ['table size below the minimum', (c) => { c.vips[0].tableSize = 250; },
    'vips[0].tableSize: 250 is out of range (251..1000003)'],
  ['invalid pool name', (c) => { c.pools['web pool'] = c.pools.web; delete c.pools.web; c.vips[0].pool = 'web pool'; },
    'pools["web pool"]: invalid pool name "web pool" (use 1-64 letters, digits, \'.\', \'_\' or \'-\', starting with a letter or digit)'],
  ['invalid VIP name', (c) => { c.vips[0].name = 'web v4'; },
    'vips[0].name: "web v4" is not a valid VIP name (use 1-128 printable characters without spaces)'],

  // Semantic: references and uniqueness.
  ['undefined pool', (c) => { c.pools.dns = { backends: [{ address: '10.2.0.1' }] }; c.vips.push({ address: '192.0.2.53', protocol: 'udp', port: 53, pool: 'dns' }); c.vips[0].pool = 'api'; },
    'vips[0].pool: pool "api" is not defined (pools: web, dns)'],
  ['undefined pool, no pools at all', (c) => { c.pools = {}; },
    'vips[0].pool: pool "web" is not defined (no pools are defined)'],
  ['duplicate backend in a pool', (c) => { c.pools.web.backends.push({ address: '10.1.0.2' }, { address: '10.1.0.1', weight: 5 }); },
    'pools.web.backends[2].address: backend 10.1.0.1 is listed twice (first at pools.web.backends[0])'],
  ['a backend at a VIP address', (c) => { c.pools.web.backends.push({ address: '192.0.2.10' }); },
    'pools.web.backends[1].address: 192.0.2.10 is the address of vips[0] ("192.0.2.10:tcp:80"): a backend cannot be a VIP (its packets would loop through the muxes)'],
  ['duplicate IPv6 backend written differently', (c) => { c.node.outerSource.ipv6 = 'fd00::1'; c.pools.web.backends = [{ address: 'fd00:1::1' }, { address: 'FD00:1:0::1' }]; },
    'pools.web.backends[1].address: backend fd00:1::1 is listed twice (first at pools.web.backends[0])'],
  ['duplicate (address, protocol, port)', (c) => { c.vips.push({ name: 'again', address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web' }); },
    'vips[1]: 192.0.2.10 tcp port 80 is already taken by vips[0] ("192.0.2.10:tcp:80")'],
  ['duplicate all-ports VIP', (c) => { delete c.vips[0].port; c.vips.push({ name: 'again', address: '192.0.2.10', protocol: 'tcp', pool: 'web' }); },
    'vips[1]: 192.0.2.10 tcp (all ports) is already taken by vips[0] ("192.0.2.10:tcp:*")'],
  ['duplicate VIP name', (c) => { c.vips[0].name = 'web'; c.vips.push({ name: 'web', address: '192.0.2.11', protocol: 'tcp', port: 80, pool: 'web' }); },
    'vips[1].name: "web" is already the name of vips[0]'],
  ['a default name taken by an explicit one', (c) => { c.vips[0].name = '192.0.2.11:tcp:80'; c.vips.push({ address: '192.0.2.11', protocol: 'tcp', port: 80, pool: 'web' }); },
    'vips[1]: its default name "192.0.2.11:tcp:80" is already the name of vips[0]; give this VIP a "name"'],
  ['missing outer source for a backend family', (c) => { c.pools.web.backends.push({ address: 'fd00:1::1' }); },
    'node.outerSource.ipv6: required for IPv6 backends (pools.web.backends[1] is fd00:1::1)'],
  ['missing outer source block', (c) => { delete c.node.outerSource; },
    'node.outerSource.ipv4: required for IPv4 backends (pools.web.backends[0] is 10.1.0.1)'],
  ['gre block without gre', (c) => { c.vips[0].gre = { key: 7 }; },
    'vips[0].gre: "gre" options are only allowed with "encapsulation": "gre" (this VIP uses "ipip")'],
  ['gue block with gre', (c) => { c.vips[0].encapsulation = 'gre'; c.vips[0].gue = { port: 6081 }; },
    'vips[0].gue: "gue" options are only allowed with "encapsulation": "gue" (this VIP uses "gre")'],
  ['table too small for the pool', (c) => {
    c.vips[0].tableSize = 251;
    c.pools.web.backends = Array.from({ length: 251 }, (_, i) => ({ address: `10.1.${i >> 8}.${(i & 255) + 1}` }));
  }, 'vips[0].tableSize: 251 entries cannot hold the 251 backends of pool "web"; Maglev needs more entries than backends (ideally 100 per backend)'],
];

describe('each kind of error has its message', () => {
  it.each(cases)('%s', (_what, mutate, expected) => {
    expect(errorsOf(check(mutate))).toEqual(expected.split('\n'));
  });

  it('covers many distinct messages', () => {
    expect(new Set(cases.map(([, , message]) => message)).size).toBeGreaterThanOrEqual(50);
  });
});

describe('a file with many problems', () => {
  it('reports them all together, in file order', async () => {
    expect(await loadConfigFile(fixture('bad.json'))).toEqual({
      ok: false,
      errors: [
        'node.gatewayMac: "zz:00" is not a MAC address (expected six hex pairs like 02:00:00:00:00:fe)',
        'node.outerSource.ipv6: required for IPv6 backends (pools.dns.backends[0] is fd00:1::53)',
        'pools.web.backends[1].address: backend 10.1.0.1 is listed twice (first at pools.web.backends[0])',
        'vips[0].pool: pool "api" is not defined (pools: web, dns)',
        'vips[1]: unknown property "encap" (did you mean "encapsulation"?)',
        'vips[1]: 192.0.2.10 tcp port 80 is already taken by vips[0] ("192.0.2.10:tcp:80")',
        'vips[2].address: "300.1.1.1" is not an IPv4 or IPv6 address',
        'vips[2].tableSize: 65536 is not a prime number; Maglev needs a prime table size (nearest primes: 65521, 65537)',
      ],
    });
  });

  it('reports a value once even when both the schema and a semantic rule would reject it', () => {
    const result = check((c) => {
      c.vips[0].tableSize = 4; // out of range and not prime: the range is what matters
      c.vips[0].address = 42; // wrong type: no address syntax check on top
      c.vips[0].pool = ['web']; // wrong type: no pool lookup on top
    });
    expect(errorsOf(result)).toEqual([
      'vips[0].address: expected a string, got 42',
      'vips[0].pool: expected a string, got an array',
      'vips[0].tableSize: 4 is out of range (251..1000003)',
    ]);
  });

  it('reports what is wrong with an empty object', () => {
    expect(errorsOf(validateConfig({}))).toEqual([
      'version: required property is missing',
      'node: required property is missing',
      'pools: required property is missing',
      'vips: required property is missing',
    ]);
    expect(errorsOf(validateConfig([]))).toEqual(['(root): expected an object, got an array']);
  });

  it('applies nothing of an invalid file: there is no config in the result', () => {
    const result = check((c) => { c.vips[0].address = 'nope'; });
    expect(result).toEqual({ ok: false, errors: ['vips[0].address: "nope" is not an IPv4 or IPv6 address'] });
    expect(result).not.toHaveProperty('config');
  });

  it('names an unreadable file', async () => {
    expect(await loadConfigFile(fixture('does-not-exist.json'))).toEqual({
      ok: false,
      errors: [`${fixture('does-not-exist.json')}: cannot read the file (no such file)`],
    });
  });
});
