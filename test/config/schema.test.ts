import { describe, expect, it } from 'vitest';

import {
  DEFAULT_ENCAPSULATION,
  DEFAULT_GUE_PORT,
  DEFAULT_HASH_FIELDS,
  DEFAULT_ICMP_ECHO,
  DEFAULT_IO,
  DEFAULT_MANAGE_OFFLOADS,
  DEFAULT_TABLE_SIZE,
  DEFAULT_WEIGHT,
  DEFAULT_XDP_MODE,
  MAX_TABLE_SIZE,
  MAX_WORKERS,
  MIN_TABLE_SIZE,
  defaultConntrackConfig,
} from '../../src/config/index.js';
import { MAX_INTERFACE_NAME, MIN_IPV6_MTU } from '../../src/config/defaults.js';
import { isPrime, nearestPrimes } from '../../src/config/prime.js';
import { loadSchema } from '../../src/config/schema.js';
import { closestMatch } from '../../src/config/suggest.js';

type Schema = { [key: string]: any };

describe('the shipped JSON Schema', () => {
  const schema: Schema = loadSchema();
  const defs: Schema = schema['$defs'];

  it('is draft 2020-12 and rejects unknown properties in every object', () => {
    expect(schema['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
    const objects: Schema[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (typeof node === 'object' && node !== null) {
        const s = node as Schema;
        if (s['type'] === 'object') objects.push(s);
        Object.values(s).forEach(walk);
      }
    };
    walk(schema);
    expect(objects.length).toBeGreaterThanOrEqual(10);
    for (const object of objects) {
      // Maps (names to pools, VIP addresses to BGP attributes, HTTP header names to values, environment variables) are open by
      // nature, each to values of one kind; every other object is closed.
      if (object['additionalProperties'] === false) continue;
      expect([{ $ref: '#/$defs/pool' }, { $ref: '#/$defs/bgpRoute' }, { type: 'string', maxLength: 1024 }, { type: 'string' }]).toContainEqual(object['additionalProperties']);
    }
  });

  it('documents the same defaults and limits the code applies', () => {
    const conntrack = defaultConntrackConfig();
    const node = defs['node'].properties;
    expect(node.sourceMac.default).toBeUndefined(); // the interface's MAC when running
    expect(node.io.default).toBe(DEFAULT_IO);
    expect(node.xdpMode.default).toBe(DEFAULT_XDP_MODE);
    expect(node.manageOffloads.default).toBe(DEFAULT_MANAGE_OFFLOADS);
    expect(node.workers.maximum).toBe(MAX_WORKERS);
    expect(node.interfaces.items.maxLength).toBe(MAX_INTERFACE_NAME);
    expect(node.mtu.minimum).toBeLessThan(MIN_IPV6_MTU);
    expect(defs['conntrack'].properties.maxFlows.default).toBe(conntrack.maxFlows);
    const timeouts = defs['conntrack'].properties.timeouts.properties;
    expect(Object.fromEntries(Object.entries(timeouts).map(([k, v]) => [k, (v as Schema)['default']]))).toEqual(conntrack.timeouts);
    expect(defs['backend'].properties.weight.default).toBe(DEFAULT_WEIGHT);
    const vip = defs['vip'].properties;
    expect(vip.encapsulation.default).toBe(DEFAULT_ENCAPSULATION);
    expect(vip.gue.properties.port.default).toBe(DEFAULT_GUE_PORT);
    expect(vip.hashFields.default).toBe(DEFAULT_HASH_FIELDS);
    expect(vip.tableSize.default).toBe(DEFAULT_TABLE_SIZE);
    expect(vip.tableSize.minimum).toBe(MIN_TABLE_SIZE);
    expect(vip.tableSize.maximum).toBe(MAX_TABLE_SIZE);
    expect(vip.icmpEcho.default).toBe(DEFAULT_ICMP_ECHO);
    expect(isPrime(DEFAULT_TABLE_SIZE) && isPrime(MIN_TABLE_SIZE) && isPrime(MAX_TABLE_SIZE)).toBe(true);
  });
});

describe('helpers', () => {
  it('isPrime and nearestPrimes', () => {
    expect([2, 3, 5, 251, 65537, 1000003].every(isPrime)).toBe(true);
    expect([0, 1, 4, 9, 65536, 1000001, 2.5].some(isPrime)).toBe(false);
    expect(nearestPrimes(65536, 251, 1000003)).toEqual([65521, 65537]);
    expect(nearestPrimes(1000000, 251, 1000003)).toEqual([999983, 1000003]);
  });

  it('closestMatch suggests plausible typos only', () => {
    const vipKeys = ['name', 'address', 'protocol', 'port', 'pool', 'encapsulation', 'hashFields', 'tableSize', 'icmpEcho'];
    expect(closestMatch('encap', vipKeys)).toBe('encapsulation');
    expect(closestMatch('table_size', vipKeys)).toBe('tableSize');
    expect(closestMatch('adress', vipKeys)).toBe('address');
    expect(closestMatch('proto', vipKeys)).toBe('protocol');
    expect(closestMatch('zzz', vipKeys)).toBeUndefined();
  });
});
