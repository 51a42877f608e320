// Client persistence in the config: vips[].persistence and the persistence section, their
// errors (path: reason), defaults, normalization to the dataplane and the memory estimate.
import { describe, expect, it } from 'vitest';

import { toDataplaneConfig } from '../../src/config/dataplane.js';
import {
  DEFAULT_PERSISTENCE_PUNT_SLOTS,
  DEFAULT_PERSISTENCE_STATE_FILE,
  DEFAULT_PERSISTENCE_STORE_TIMEOUT_MS,
  DEFAULT_PERSISTENCE_TABLE_ENTRIES,
  DEFAULT_PERSISTENCE_TIMEOUT,
  DEFAULT_PERSISTENCE_VIP_MAX_ENTRIES,
} from '../../src/config/defaults.js';
import { estimateMemory, PERSIST_ENTRY_BYTES, PUNT_SLOT_BYTES } from '../../src/config/memory.js';
import { loadSchema } from '../../src/config/schema.js';
import { diffConfigs, effectiveConfig } from '../../src/daemon/diff.js';
import { check, errorsOf, type Json } from './helpers.js';

const okConfig = (mutate: (c: Json) => void) => {
  const r = check(mutate);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r;
};

describe('vips[].persistence', () => {
  it('normalizes "address" to the full length of the VIP family and fills the defaults', () => {
    const r = okConfig((c) => {
      c.vips[0].persistence = {};
      c.vips.push({ address: '2001:db8::10', protocol: 'tcp', port: 443, pool: 'web', persistence: { timeout: 60, granularity: '/56', maxEntries: 1000 } });
      c.node.outerSource.ipv6 = '2001:db8::1';
    });
    expect(r.config.vips[0]?.persistence).toEqual({ timeoutSeconds: DEFAULT_PERSISTENCE_TIMEOUT, prefixLength: 32, maxEntries: DEFAULT_PERSISTENCE_VIP_MAX_ENTRIES });
    expect(r.config.vips[1]?.persistence).toEqual({ timeoutSeconds: 60, prefixLength: 56, maxEntries: 1000 });
    // The section's defaults come with the first persistent VIP.
    expect(r.config.persistence).toEqual({
      store: 'embedded', stateFile: DEFAULT_PERSISTENCE_STATE_FILE, tableEntries: DEFAULT_PERSISTENCE_TABLE_ENTRIES,
      puntSlots: DEFAULT_PERSISTENCE_PUNT_SLOTS, storeTimeoutMs: DEFAULT_PERSISTENCE_STORE_TIMEOUT_MS,
    });
    // The dataplane gets it per VIP; a VIP without it has none.
    const dp = toDataplaneConfig(r.config);
    expect(dp.vips[0]?.persistence).toEqual({ timeoutSeconds: 300, prefixLength: 32, maxEntries: 65536 });
    expect(dp.vips[1]?.persistence).toEqual({ timeoutSeconds: 60, prefixLength: 56, maxEntries: 1000 });
  });

  it('without any persistence: no section, no dataplane field, no memory', () => {
    const r = okConfig(() => undefined);
    expect(r.config.persistence).toBeUndefined();
    expect(toDataplaneConfig(r.config).vips[0]).not.toHaveProperty('persistence');
    expect(estimateMemory(r.config).persistenceBytes).toBe(0);
  });

  it('refuses a prefix that does not fit the VIP family, bad granularity text, bad timeouts, with path: reason', () => {
    expect(errorsOf(check((c) => (c.vips[0].persistence = { granularity: '/33' })))).toEqual([
      'vips[0].persistence.granularity: "/33" is not a prefix of an IPv4 client (this VIP is 192.0.2.10): use "address" or "/1" to "/32"',
    ]);
    expect(errorsOf(check((c) => (c.vips[0].persistence = { granularity: '/0' })))).toEqual([
      'vips[0].persistence.granularity: "/0" is not a prefix of an IPv4 client (this VIP is 192.0.2.10): use "address" or "/1" to "/32"',
    ]);
    const v6 = errorsOf(check((c) => {
      c.node.outerSource.ipv6 = '2001:db8::1';
      c.vips[0] = { address: '2001:db8::10', protocol: 'tcp', port: 80, pool: 'web', persistence: { granularity: '/129' } };
    }));
    expect(v6).toEqual(['vips[0].persistence.granularity: "/129" is not a prefix of an IPv6 client (this VIP is 2001:db8::10): use "address" or "/1" to "/128"']);
    const text = errorsOf(check((c) => (c.vips[0].persistence = { granularity: '24' })));
    expect(text).toHaveLength(1);
    expect(text[0]).toMatch(/^vips\[0\]\.persistence\.granularity: /);
    const timeout = errorsOf(check((c) => (c.vips[0].persistence = { timeout: 0 })));
    expect(timeout).toHaveLength(1);
    expect(timeout[0]).toMatch(/^vips\[0\]\.persistence\.timeout: .*1/);
    const unknown = errorsOf(check((c) => (c.vips[0].persistence = { ttl: 10 })));
    expect(unknown).toEqual(['vips[0].persistence: unknown property "ttl" (allowed: timeout, granularity, maxEntries)']);
  });

  it('refuses a VIP maxEntries larger than the table', () => {
    expect(errorsOf(check((c) => {
      c.vips[0].persistence = { maxEntries: 5000 };
      c.persistence = { tableEntries: 4096 };
    }))).toEqual(['vips[0].persistence.maxEntries: 5000 entries do not fit in the persistence table of 4096 entries (persistence.tableEntries)']);
  });
});

describe('the persistence section', () => {
  it('etcd: endpoints required, URLs checked, prefix and timeout defaulted', () => {
    expect(errorsOf(check((c) => {
      c.vips[0].persistence = {};
      c.persistence = { store: 'etcd' };
    }))).toEqual(['persistence.etcd: required with "store": "etcd" (at least the endpoints)']);
    expect(errorsOf(check((c) => {
      c.vips[0].persistence = {};
      c.persistence = { store: 'etcd', etcd: { endpoints: ['http://127.0.0.1:2379', '127.0.0.1:2379', 'ftp://x:1'] } };
    }))).toEqual([
      'persistence.etcd.endpoints[1]: "127.0.0.1:2379" is not an etcd endpoint (write http://host:port or https://host:port)',
      'persistence.etcd.endpoints[2]: "ftp://x:1" is not an etcd endpoint (write http://host:port or https://host:port)',
    ]);
    const r = okConfig((c) => {
      c.vips[0].persistence = {};
      c.persistence = { store: 'etcd', storeTimeout: 50, etcd: { endpoints: ['http://127.0.0.1:2379'] } };
    });
    expect(r.config.persistence?.etcd).toEqual({ endpoints: ['http://127.0.0.1:2379'], prefix: '/l4mux/persistence/', timeoutMs: 50 });
  });

  it('stateFile must be absolute; settings that have no effect are warned about', () => {
    expect(errorsOf(check((c) => {
      c.vips[0].persistence = {};
      c.persistence = { stateFile: 'state.log' };
    }))).toEqual(['persistence.stateFile: "state.log" is not an absolute path (the daemon does not resolve relative paths)']);
    const r = okConfig((c) => (c.persistence = { etcd: { endpoints: ['http://127.0.0.1:2379'] } }));
    expect(r.warnings).toEqual(['persistence: no VIP has "persistence": the section has no effect', 'persistence.etcd: not used: "store" is "embedded"']);
    expect(errorsOf(check((c) => (c.persistence = { store: 'redis' })))[0]).toMatch(/^persistence\.store: /);
  });

  it('counts the tables and punt slots into the memory estimate, and names them when over budget', () => {
    const base = (c: Json): void => {
      c.node.workers = 2;
      c.node.interfaces = ['eth0', 'eth1'];
      c.node.io = 'af_packet';
      c.vips[0].persistence = {};
      c.persistence = { tableEntries: 1_000_000, puntSlots: 4096 };
    };
    const r = okConfig(base);
    expect(estimateMemory(r.config).persistenceBytes).toBe(2 * 1_000_000 * PERSIST_ENTRY_BYTES + 4 * 4096 * PUNT_SLOT_BYTES);
    const over = errorsOf(check((c) => {
      base(c);
      c.persistence.tableEntries = 100_000_000;
      c.vips[0].persistence.maxEntries = 1000;
    }));
    expect(over).toHaveLength(1);
    expect(over[0]).toMatch(/^vips: this configuration needs about \d+ MiB .*; persistence tables and punt slots 122\d\d MiB \(persistence\.tableEntries, persistence\.puntSlots\)\), more than the budget of 8192 MiB/);
  });

  it('the schema documents the defaults the code applies', () => {
    const defs = loadSchema()['$defs'] as Json;
    const vip = defs['vipPersistence'].properties;
    expect(vip.timeout.default).toBe(DEFAULT_PERSISTENCE_TIMEOUT);
    expect(vip.granularity.default).toBe('address');
    expect(vip.maxEntries.default).toBe(DEFAULT_PERSISTENCE_VIP_MAX_ENTRIES);
    const section = defs['persistence'].properties;
    expect(section.store.default).toBe('embedded');
    expect(section.stateFile.default).toBe(DEFAULT_PERSISTENCE_STATE_FILE);
    expect(section.tableEntries.default).toBe(DEFAULT_PERSISTENCE_TABLE_ENTRIES);
    expect(section.puntSlots.default).toBe(DEFAULT_PERSISTENCE_PUNT_SLOTS);
    expect(section.storeTimeout.default).toBe(DEFAULT_PERSISTENCE_STORE_TIMEOUT_MS);
    expect(defs['persistenceEtcd'].properties.prefix.default).toBe('/l4mux/persistence/');
  });
});

describe('reload', () => {
  it('a VIP turned persistent is live when the daemon has tables; the section itself needs a restart', () => {
    const running = okConfig((c) => {
      c.vips[0].persistence = {};
      c.vips.push({ address: '192.0.2.11', protocol: 'tcp', port: 80, pool: 'web' });
    }).config;
    const next = okConfig((c) => {
      c.vips[0].persistence = { timeout: 30 };
      c.vips.push({ address: '192.0.2.11', protocol: 'tcp', port: 80, pool: 'web', persistence: {} });
      c.persistence = { tableEntries: 4096 };
    }).config;
    const diff = diffConfigs(running, next);
    expect(diff.changes.some((l) => l.startsWith('vip 192.0.2.10:tcp:80 changed: persistence '))).toBe(true);
    expect(diff.restartRequired.some((l) => l.startsWith('persistence: ') && l.endsWith('(requires restart)'))).toBe(true);
    const effective = effectiveConfig(running, next);
    expect(effective.persistence?.tableEntries).toBe(DEFAULT_PERSISTENCE_TABLE_ENTRIES);
    expect(effective.vips.map((v) => v.persistence?.timeoutSeconds)).toEqual([30, 300]);
  });

  it('without tables (started without persistence) the VIPs stay without it until a restart', () => {
    const running = okConfig(() => undefined).config;
    const next = okConfig((c) => (c.vips[0].persistence = {})).config;
    expect(diffConfigs(running, next).restartRequired).toEqual([
      "persistence: the running daemon has no persistence tables; the VIPs' persistence applies after a restart (requires restart)",
    ]);
    const effective = effectiveConfig(running, next);
    expect(effective.persistence).toBeUndefined();
    expect(effective.vips[0]).not.toHaveProperty('persistence');
  });
});
