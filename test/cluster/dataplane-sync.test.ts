// Cluster sync through the addon: three Dataplanes stand for three muxes of one cluster
// (each with its own selfIndex). Flow records leave one, are decoded in TypeScript, and go
// into another; redirected frames built by one are fed to the owner.
import { describe, expect, it } from 'vitest';

import { decodeFlowRecords, encodeFlowRecords, type FlowRecord, NO_MEMBER } from '../../src/cluster/record.js';
import { Dataplane, type DataplaneConfig, defaultConntrack } from '../../src/dataplane/index.js';
import { flowPacket, TCP } from '../support/frames.js';

const MEMBERS = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
const REDIRECT_PORT = 6666;
const CAPACITY = { peerFlows: 4096, exportRing: 1024 };

function config(self: number, live: boolean[] = [true, true, true]): DataplaneConfig {
  const backends = ['10.1.0.1', '10.1.0.2', '10.1.0.3'].map((address) => ({ address, weight: 1 }));
  const vip = { protocol: 6, port: 80, encap: 'ipip' as const, guePort: 6080, hashFields: '5-tuple' as const, tableSize: 251, icmpEcho: true, backends };
  return {
    seed: '0x1234',
    sourceMac: '02:00:00:00:00:01',
    gatewayMac: '02:00:00:00:00:fe',
    outerSourceV4: MEMBERS[self],
    vips: [
      { ...vip, name: 'maglev', address: '192.0.2.10', scheduler: 'maglev' },
      { ...vip, name: 'wrr', address: '192.0.2.20', scheduler: 'wrr' },
    ],
    cluster: {
      selfIndex: self,
      seed: '0xc105e5',
      members: MEMBERS.map((address, i) => ({ id: `mux${i + 1}`, address, weight: 1, live: live[i] ?? true })),
      redirectPort: REDIRECT_PORT,
    },
  };
}

function muxes(): Dataplane[] {
  return MEMBERS.map((_, i) => {
    const dp = new Dataplane(defaultConntrack, CAPACITY);
    dp.setConfig(config(i));
    return dp;
  });
}

const outerDst = (frame: Buffer | undefined): string => frame?.subarray(30, 34).join('.') ?? '';
const outerProto = (frame: Buffer | undefined): number => frame?.[23] ?? -1;
const udpDport = (frame: Buffer | undefined): number => frame?.readUInt16BE(36) ?? -1;

function poll(dp: Dataplane): FlowRecord[] {
  const { records, refused } = decodeFlowRecords(dp.pollFlowEvents());
  expect(refused).toEqual([]);
  return records;
}

// A client port whose flow (to `vip`:80) has owner and backup other than `not`.
function flowNotOwnedBy(dp: Dataplane, vip: string, not: number, from = 30000): { port: number; owner: number; backup: number } {
  for (let port = from; ; port++) {
    const o = dp.owners({ client: '198.51.100.7', clientPort: port, vip, vipPort: 80, protocol: 6 });
    if (o.owner !== not && o.backup !== not) return { port, ...o };
  }
}

describe('cluster sync in the dataplane', () => {
  it('gives every flow the same owner and backup on every mux, spread over all members', () => {
    const [a, b, c] = muxes();
    const count = [0, 0, 0];
    for (let port = 1024; port < 4024; port++) {
      const flow = { client: '198.51.100.9', clientPort: port, vip: '192.0.2.10', vipPort: 80, protocol: 6 };
      const o = a!.owners(flow);
      expect(b!.owners(flow)).toEqual(o);
      expect(c!.owners(flow)).toEqual(o);
      expect(o.owner).not.toBe(o.backup);
      count[o.owner]! += 1;
    }
    for (const n of count) expect(n / 3000).toBeGreaterThan(0.28);
    // Without a cluster there is no owner.
    const lone = new Dataplane(defaultConntrack, CAPACITY);
    lone.setConfig({ ...config(0), cluster: undefined });
    expect(lone.owners({ client: '198.51.100.9', clientPort: 1, vip: '192.0.2.10', vipPort: 80, protocol: 6 })).toEqual({ owner: NO_MEMBER, backup: NO_MEMBER });
  });

  it('exports a new entry with its backend and owners, and its end on FIN', () => {
    const [a] = muxes();
    const mark = a!.syncMark();
    const [r] = a!.process([{ frame: flowPacket('tcp', '198.51.100.7', '192.0.2.10', 40000, 80, { flags: TCP.SYN }) }]);
    expect(r?.verdict).toBe('tx');
    expect(a!.syncDrained(mark)).toBe(true); // nothing was published before the mark
    const after = a!.syncMark();
    expect(a!.syncDrained(after)).toBe(false);
    const [rec, ...rest] = poll(a!);
    expect(a!.syncDrained(after)).toBe(true);
    expect(rest).toEqual([]);
    const owners = a!.owners({ client: '198.51.100.7', clientPort: 40000, vip: '192.0.2.10', vipPort: 80, protocol: 6 });
    expect(rec).toMatchObject({
      kind: 'new', family: 4, protocol: 6, client: '198.51.100.7', clientPort: 40000, vip: '192.0.2.10', vipPort: 80,
      backend: outerDst(r?.frame), mustSync: false, fromPeer: false, owner: owners.owner, backup: owners.backup, peer: NO_MEMBER,
    });
    expect(rec?.lifetimeSeconds).toBe(30); // SYN seen: the SYN timeout

    a!.process([{ frame: flowPacket('tcp', '198.51.100.7', '192.0.2.10', 40000, 80, { flags: TCP.ACK | TCP.FIN }) }]);
    expect(poll(a!)).toMatchObject([{ kind: 'end', backend: '', clientPort: 40000 }]);
  });

  it('marks entries placed by wrr as must-sync', () => {
    const [a] = muxes();
    const { port } = flowNotOwnedBy(a!, '192.0.2.20', -1);
    // Owned or backed here, or not: pick a flow this mux owns so that it decides itself.
    let p = port;
    while (a!.owners({ client: '198.51.100.7', clientPort: p, vip: '192.0.2.20', vipPort: 80, protocol: 6 }).owner !== 0) p++;
    a!.process([{ frame: flowPacket('tcp', '198.51.100.7', '192.0.2.20', p, 80, { flags: TCP.SYN }) }]);
    expect(poll(a!)).toMatchObject([{ kind: 'new', mustSync: true, owner: 0 }]);
  });

  it('forwards a moved flow to the backend a peer sent, not to its own choice', () => {
    const [a] = muxes();
    const flow = flowNotOwnedBy(a!, '192.0.2.10', -1);
    // Where this mux's Maglev would send the flow, and a record naming another backend.
    const probe = new Dataplane(defaultConntrack);
    probe.setConfig(config(0));
    const [own] = probe.process([{ frame: flowPacket('tcp', '198.51.100.7', '192.0.2.10', flow.port, 80, { flags: TCP.SYN }) }]);
    const other = ['10.1.0.1', '10.1.0.2', '10.1.0.3'].find((b) => b !== outerDst(own?.frame)) ?? '';
    const record: FlowRecord = {
      kind: 'new', family: 4, protocol: 6, proven: true, mustSync: true, fromPeer: false, owner: flow.owner, backup: flow.backup,
      peer: NO_MEMBER, client: '198.51.100.7', vip: '192.0.2.10', backend: other, clientPort: flow.port, vipPort: 80, lifetimeSeconds: 900,
    };
    expect(a!.installFlows(encodeFlowRecords([record]), 1_000_000_000n)).toEqual({ accepted: 1, refused: 0 });
    const [r] = a!.process([{ frame: flowPacket('tcp', '198.51.100.7', '192.0.2.10', flow.port, 80, { flags: TCP.ACK }) }], 2_000_000_000n);
    expect(outerDst(r?.frame)).toBe(other);
    expect(a!.syncStats().workers[0]).toMatchObject({ peerHits: 1, redirected: 0 });
    // Adopted locally: exported as from-peer, so that the owner's copy stays refreshed.
    expect(poll(a!)).toMatchObject([{ kind: 'new', fromPeer: true, backend: other }]);
    // A later end removes the peer entry: a fresh ACK elsewhere is no longer steered by it.
    expect(a!.installFlows(encodeFlowRecords([{ ...record, kind: 'end', backend: '', lifetimeSeconds: 0 }]), 3_000_000_000n)).toEqual({ accepted: 1, refused: 0 });
    expect(a!.syncStats().peerTable).toMatchObject({ live: 0, removed: 1 });
  });

  it('redirects a miss to the owner once, and the owner forwards it and teaches the asker', () => {
    const dps = muxes();
    // A wrr flow that mux 3 (index 2) neither owns nor backs.
    const flow = flowNotOwnedBy(dps[2]!, '192.0.2.20', 2);
    const owner = dps[flow.owner]!;
    const asker = dps[2]!;
    const syn = flowPacket('tcp', '198.51.100.7', '192.0.2.20', flow.port, 80, { flags: TCP.SYN });
    const ack = flowPacket('tcp', '198.51.100.7', '192.0.2.20', flow.port, 80, { flags: TCP.ACK });
    const inner = ack.subarray(14, 14 + ack.readUInt16BE(16)); // the IP packet, without Ethernet padding

    // The SYN reached the owner, which decided.
    const [placed] = owner.process([{ frame: syn }]);
    const backend = outerDst(placed?.frame);
    expect(poll(owner)).toMatchObject([{ kind: 'new', owner: flow.owner, mustSync: true }]);

    // The ACK reaches mux 3: no entry anywhere it can see, so to the owner, in GUE on the redirect port.
    const [redirected] = asker.process([{ frame: ack }]);
    expect(redirected?.verdict).toBe('tx');
    expect(outerDst(redirected?.frame)).toBe(MEMBERS[flow.owner]);
    expect(outerProto(redirected?.frame)).toBe(17);
    expect(udpDport(redirected?.frame)).toBe(REDIRECT_PORT);
    expect(redirected?.frame?.subarray(14 + 20 + 8).equals(inner)).toBe(true);
    expect(asker.syncStats().workers[0]).toMatchObject({ redirected: 1 });

    // The owner forwards it to the flow's backend and teaches mux 3.
    const [forwarded] = owner.process([{ frame: redirected!.frame! }]);
    expect(outerDst(forwarded?.frame)).toBe(backend);
    expect(forwarded?.frame?.subarray(34).equals(inner)).toBe(true);
    // The ACK also establishes the owner's entry: a refresh (the established timeout) for its
    // copies, then the teach.
    const records = poll(owner);
    expect(records).toMatchObject([{ kind: 'refresh', backend, clientPort: flow.port }, { kind: 'teach', peer: 2, backend, clientPort: flow.port }]);
    const teach = records.filter((r) => r.kind === 'teach');
    expect(owner.syncStats().workers[0]).toMatchObject({ redirectsReceived: 1, teachSent: 1 });

    // Taught, mux 3 forwards the flow's packets itself.
    expect(asker.installFlows(encodeFlowRecords(teach))).toEqual({ accepted: 1, refused: 0 });
    const [local] = asker.process([{ frame: ack }]);
    expect(outerDst(local?.frame)).toBe(backend);
    expect(asker.syncStats().workers[0]).toMatchObject({ redirected: 1, peerHits: 1 });
  });

  it('never redirects a redirected packet again', () => {
    const dps = muxes();
    const flow = flowNotOwnedBy(dps[2]!, '192.0.2.10', 2);
    const ack = flowPacket('tcp', '198.51.100.7', '192.0.2.10', flow.port, 80, { flags: TCP.ACK });
    const [redirected] = dps[2]!.process([{ frame: ack }]);
    expect(outerDst(redirected?.frame)).toBe(MEMBERS[flow.owner]);
    // The owner's view has changed meanwhile: it believes itself dead, so neither owner nor
    // backup. It still decides the redirected packet itself rather than send it on.
    const stale = new Dataplane(defaultConntrack, CAPACITY);
    const live = [true, true, true];
    live[flow.owner] = false;
    stale.setConfig(config(flow.owner, live));
    const [r] = stale.process([{ frame: redirected!.frame! }]);
    expect(r?.verdict).toBe('tx');
    expect(outerProto(r?.frame)).toBe(4); // IP-in-IP to a backend, not UDP to a mux
    expect(['10.1.0.1', '10.1.0.2', '10.1.0.3']).toContain(outerDst(r?.frame));
    expect(stale.syncStats().workers[0]).toMatchObject({ redirected: 0, redirectsReceived: 1 });
  });

  it('walks its peer table for transfers, with owners under the current members', () => {
    const [a] = muxes();
    const base: FlowRecord = {
      kind: 'new', family: 4, protocol: 6, proven: true, mustSync: true, fromPeer: false, owner: 0, backup: 1,
      peer: NO_MEMBER, client: '198.51.100.7', vip: '192.0.2.10', backend: '10.1.0.2', clientPort: 0, vipPort: 80, lifetimeSeconds: 600,
    };
    const ports = [1001, 1002, 1003, 1004, 1005];
    a!.installFlows(encodeFlowRecords(ports.map((clientPort) => ({ ...base, clientPort }))), 0n);
    const seen: FlowRecord[] = [];
    let cursor = 0;
    do {
      const page = a!.dumpPeerFlows(cursor, 2, 10_000_000_000n);
      expect(page.records.length).toBeLessThanOrEqual(2 * 64);
      seen.push(...decodeFlowRecords(page.records).records);
      cursor = page.cursor;
    } while (cursor !== 0);
    expect(seen.map((r) => r.clientPort).sort()).toEqual(ports);
    for (const r of seen) {
      const o = a!.owners({ client: r.client, clientPort: r.clientPort, vip: r.vip, vipPort: 80, protocol: 6 });
      expect(r).toMatchObject({ kind: 'new', backend: '10.1.0.2', mustSync: true, fromPeer: true, owner: o.owner, backup: o.backup });
      expect(r.lifetimeSeconds).toBe(590);
    }
  });

  it('refuses bad records, unknown VIPs and unknown backends, and counts each', () => {
    const [a] = muxes();
    const good: FlowRecord = {
      kind: 'new', family: 4, protocol: 6, proven: true, mustSync: false, fromPeer: false, owner: 0, backup: 1,
      peer: NO_MEMBER, client: '198.51.100.7', vip: '192.0.2.10', backend: '10.1.0.1', clientPort: 1, vipPort: 80, lifetimeSeconds: 60,
    };
    const buf = encodeFlowRecords([good, { ...good, vip: '192.0.2.99' }, { ...good, backend: '10.9.9.9' }, { ...good, lifetimeSeconds: 0 }]);
    const garbage = Buffer.concat([buf, Buffer.alloc(64, 0xff), Buffer.alloc(10)]);
    expect(a!.installFlows(garbage)).toEqual({ accepted: 1, refused: 5 });
    expect(a!.syncStats().refused).toMatchObject({ unknown_vip: 1, unknown_backend: 1, no_lifetime: 1, bad_version: 1, truncated: 1 });
    // A redirect from an address that is no member is dropped, never forwarded.
    const flow = flowNotOwnedBy(a!, '192.0.2.10', 0);
    const [redirected] = a!.process([{ frame: flowPacket('tcp', '198.51.100.7', '192.0.2.10', flow.port, 80, { flags: TCP.ACK }) }]);
    const forged = Buffer.from(redirected!.frame!);
    forged.set([10, 0, 0, 99], 26); // outer source: not a member (checksum ignored by the pipeline)
    const owner = muxes()[flow.owner]!;
    expect(owner.process([{ frame: forged }])[0]).toMatchObject({ verdict: 'drop', reason: 'redirect_unknown_peer' });
  });
});
