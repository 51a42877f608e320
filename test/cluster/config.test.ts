// The `cluster` section of the VIP map: accepted and normalized, or refused as path: reason.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { CLUSTER_DEFAULTS, sortedMembers } from '../../src/cluster/config.js';
import { SCHEMA_PATH } from '../../src/config/index.js';
import { baseConfig, check, errorsOf, type Json } from '../config/helpers.js';

function withCluster(cluster: Json): Json {
  return { ...baseConfig(), cluster };
}

const good = (): Json => ({
  id: 'mux1',
  address: '10.201.1.2',
  peers: [{ id: 'mux2', address: '10.201.2.2', weight: 2 }, { id: 'mux0', address: '10.201.3.2' }],
  keyFile: '/etc/l4mux/cluster.key',
});

describe('cluster config', () => {
  it('a file without a cluster section has none', () => {
    const r = check(() => undefined);
    expect(r.ok && r.config.cluster).toBe(undefined);
  });

  it('normalizes a cluster with defaults; members sort by id', () => {
    const r = check(() => undefined, withCluster(good()));
    if (!r.ok) throw new Error(r.errors.join('\n'));
    const c = r.config.cluster;
    expect(c).toMatchObject({ self: { id: 'mux1', address: '10.201.1.2', weight: 1 }, keyFile: '/etc/l4mux/cluster.key', heartbeatIntervalMs: 200, deadAfter: 3, syncPort: 7946, redirectPort: 7947 });
    expect(c && sortedMembers(c).map((m) => `${m.id}:${m.weight}`)).toEqual(['mux0:1', 'mux1:1', 'mux2:2']);
  });

  it('reports every problem as path: reason', () => {
    const bad = good();
    bad['peers'][0].id = 'mux1';
    bad['peers'][1].address = '10.201.1.02';
    bad['peers'].push({ id: 'bad id', address: 'fd00::1' }, { id: 'mux9', address: '10.201.2.2' });
    bad['keyFile'] = 'relative.key';
    bad['redirectPort'] = 7946;
    bad['deadAfter'] = 1;
    bad['heartbeat'] = 5;
    const errors = errorsOf(check(() => undefined, withCluster(bad)));
    expect(errors).toEqual(
      expect.arrayContaining([
        'cluster.peers[0].id: member id "mux1" is used twice (first at cluster.id)',
        expect.stringMatching(/^cluster\.peers\[1\]\.address: "10\.201\.1\.02" is not an IPv4 or IPv6 address/),
        expect.stringMatching(/^cluster\.peers\[2\]\.id: "bad id" is not a valid member id/),
        expect.stringMatching(/^cluster\.peers\[2\]\.address: "fd00::1" is an IPv6 address, but cluster\.address is IPv4/),
        'cluster.peers[3].address: 10.201.2.2 is the address of another member (cluster.peers[0].address)',
        expect.stringMatching(/^cluster\.keyFile: "relative\.key" is not an absolute path/),
        expect.stringMatching(/^cluster\.redirectPort: 7946 is also the syncPort/),
        expect.stringMatching(/^cluster\.deadAfter: /),
        expect.stringMatching(/^cluster: unknown property "heartbeat" \(did you mean "heartbeatInterval"\?\)/),
      ]),
    );
    expect(errorsOf(check(() => undefined, withCluster({ id: 'x', address: '10.0.0.1', peers: [] })))).toContain('cluster.keyFile: required property is missing');
  });

  it('loopback members only when every member is on loopback (muxes of one host)', () => {
    const oneHost = good();
    oneHost['address'] = '127.0.0.2';
    oneHost['peers'] = [{ id: 'mux2', address: '127.0.0.3' }];
    expect(check(() => undefined, withCluster(oneHost)).ok).toBe(true);
    oneHost['peers'].push({ id: 'mux3', address: '10.0.0.3' });
    expect(errorsOf(check(() => undefined, withCluster(oneHost)))).toContain('cluster.address: "127.0.0.2" is a loopback address; a mux must be a unicast address reachable on the network');
  });

  it('the schema documents the defaults the code applies', () => {
    const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Json;
    const p = schema['$defs']['cluster'].properties;
    expect({
      weight: p.weight.default,
      heartbeatIntervalMs: p.heartbeatInterval.default,
      deadAfter: p.deadAfter.default,
      syncPort: p.syncPort.default,
      redirectPort: p.redirectPort.default,
      maxRate: p.maxRate.default,
      transferRate: p.transferRate.default,
      commitTimeoutMs: p.commitTimeout.default,
      maxEntries: p.maxEntries.default,
    }).toEqual(CLUSTER_DEFAULTS);
  });
});
