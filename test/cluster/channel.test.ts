// The cluster channel on loopback: entries delivered intact, refused input counted (forged,
// truncated, replayed, unknown peer, wrong key, old boot), loss repaired, priorities under the
// rate cap, bounded queues, barriers (acks) and resync when repair is impossible.
import { createSocket } from 'node:dgram';

import { afterEach, describe, expect, it } from 'vitest';

import { Channel, type ChannelOptions } from '../../src/cluster/channel.js';
import { wireCodec } from '../../src/cluster/codec.js';
import { clusterNative } from '../../src/cluster/native.js';
import { ALL_RECORDS, EntryClass, decodeWireEntry, encodeWireEntry, jsWireCodec, MessageType, open as openDatagram, seal, WIRE_VERSION, wireEntrySize } from '../../src/cluster/wire.js';
import { manyFlows, record, records } from './records.js';

const SECRET = Buffer.alloc(32, 7);
let nextPort = 39000 + (process.pid % 500) * 8;
const open: Channel[] = [];

function pair(overrides: { a?: Partial<ChannelOptions>; b?: Partial<ChannelOptions> } = {}): [Channel, Channel] {
  const pa = nextPort++;
  const pb = nextPort++;
  const a = new Channel({ self: { id: 'a', address: '127.0.0.1', port: pa }, peers: [{ id: 'b', address: '127.0.0.1', port: pb }], secret: SECRET, maxRate: 1e9, ...overrides.a });
  const b = new Channel({ self: { id: 'b', address: '127.0.0.1', port: pb }, peers: [{ id: 'a', address: '127.0.0.1', port: pa }], secret: SECRET, maxRate: 1e9, ...overrides.b });
  open.push(a, b);
  return [a, b];
}

function collect(ch: Channel): Buffer[] {
  const got: Buffer[] = [];
  ch.on('entries', (_peer, recs) => {
    for (let i = 0; i < recs.length; i += 64) got.push(Buffer.from(recs.subarray(i, i + 64)));
  });
  return got;
}

async function until(probe: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

describe('wire entries', () => {
  it('round-trip IPv4, IPv6, 4-in-6 and an end without backend; 24 bytes for IPv4, 60 for IPv6', () => {
    const cases = [
      record({ client: '10.0.0.1', clientPort: 1234, vip: '192.0.2.10', backend: '10.1.0.1', flags: 3, lifetime: 77 }),
      record({ client: '2001:db8::1', clientPort: 5, vip: '2001:db8::10', vipPort: 53, backend: 'fd00::2', protocol: 17 }),
      record({ client: '10.0.0.1', clientPort: 9, vip: '192.0.2.10', backend: 'fd00::2' }),
      record({ kind: 2, client: '10.0.0.1', clientPort: 9, vip: '192.0.2.10' }),
    ];
    const sizes = cases.map((r) => wireEntrySize(r, 0));
    expect(sizes).toEqual([24, 60, 36, 20]);
    for (const r of cases) {
      const wire = Buffer.alloc(64);
      const n = encodeWireEntry(r, 0, wire, 0);
      const back = Buffer.alloc(64);
      expect(decodeWireEntry(wire.subarray(0, n), 0, back, 0)).toEqual({ ok: true, bytes: n });
      const expected = Buffer.from(r);
      expected[4] = (expected[4] ?? 0) | 4; // from-peer
      expect(back).toEqual(expected);
    }
  });

  // A mix of every kind, family, backend form, flag and owner/backup/peer index.
  function mixed(n: number): Buffer {
    const flows = Array.from({ length: n }, (_, i) => {
      const kind = 1 + (i % 4);
      const v6 = i % 5 === 0;
      const backend = kind === 2 && i % 3 === 0 ? undefined : i % 7 === 0 ? 'fd00::2' : `10.202.${i % 3}.2`;
      return {
        kind,
        client: v6 ? `2001:db8::${(i % 65535).toString(16)}` : `10.200.${(i >> 8) & 255}.${i & 255}`,
        clientPort: 1024 + i,
        vip: v6 ? '2001:db8::10' : '192.0.2.10',
        protocol: i % 2 === 0 ? 6 : 17,
        flags: i % 8 & 3,
        lifetime: 1 + i,
        backend,
        owner: i % 3,
        backup: (i + 1) % 3,
        peer: kind === 4 ? i % 3 : 255,
      };
    });
    return records(flows);
  }

  it("the addon's codec writes and reads the same bytes as the TypeScript one, selections included", () => {
    const codec = wireCodec();
    expect(codec).not.toBe(jsWireCodec); // the addon is built with one
    const recs = mixed(400);
    for (const [member, refresh] of [[ALL_RECORDS, false], [0, false], [1, true], [2, false], [2, true]] as const) {
      const outs = [codec, jsWireCodec].map((c) => {
        const batches: Buffer[] = [];
        for (let from = 0, n = 0; from < 400; n++) {
          const out = Buffer.alloc(1340);
          const r = c.encodeWireEntries(recs, from, member, refresh, out, 10, 1340);
          batches.push(Buffer.concat([Buffer.from([r.count]), out.subarray(10, r.end)]));
          if (r.count === 0) break;
          from = r.next;
          expect(n).toBeLessThan(400);
        }
        return batches;
      });
      expect(outs[0]).toEqual(outs[1]);
      for (const batch of outs[0] as Buffer[]) {
        const count = batch[0] as number;
        const decoded = [codec, jsWireCodec].map((c) => c.decodeWireEntries(batch, 1, count));
        expect(decoded[0]).toBeDefined();
        expect(decoded[0]).toEqual(decoded[1]);
      }
    }
    // Member 1 as a refresh target: exactly the refresh records naming it as owner or backup.
    const out = Buffer.alloc(65536);
    const r = codec.encodeWireEntries(recs, 0, 1, true, out, 0, out.length);
    let want = 0;
    for (let i = 0; i < 400; i++) if (recs[i * 64 + 1] === 3 && (recs[i * 64 + 5] === 1 || recs[i * 64 + 6] === 1)) want++;
    expect(r.count).toBe(want);
    expect(r.next).toBe(400);
  });

  it('refuses a malformed batch whole in either codec (bad entry, count and length disagreeing)', () => {
    const codec = wireCodec();
    const recs = mixed(20);
    const out = Buffer.alloc(2000);
    const r = codec.encodeWireEntries(recs, 0, ALL_RECORDS, false, out, 0, out.length);
    const wire = out.subarray(0, r.end);
    for (const c of [codec, jsWireCodec]) {
      expect(c.decodeWireEntries(wire, 0, r.count)?.length).toBe(r.count * 64);
      expect(c.decodeWireEntries(wire, 0, r.count - 1)).toBeUndefined(); // trailing bytes
      expect(c.decodeWireEntries(wire, 0, r.count + 1)).toBeUndefined(); // truncated
      expect(c.decodeWireEntries(wire.subarray(0, r.end - 1), 0, r.count)).toBeUndefined();
      expect(c.decodeWireEntries(wire, 0, 65535)).toBeUndefined();
      for (const [at, value] of [[0, 9], [2, 1], [3, 1], [1, 0x08]] as const) {
        const bad = Buffer.from(wire);
        bad[at] = value;
        expect(c.decodeWireEntries(bad, 0, r.count)).toBeUndefined();
      }
    }
  });
});

describe('datagram AEAD', () => {
  it("the addon's ChaCha20-Poly1305 seals the bytes node:crypto seals, and each opens what the other sealed", () => {
    expect(clusterNative()?.Aead).toBeDefined(); // the addon is built with one
    const key = Buffer.alloc(32, 9);
    for (const size of [0, 1, 36, 1340]) {
      const payload = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + size) & 255));
      const seq = BigInt(size) * 1000003n + 1n;
      const mine = seal(key, MessageType.entries, 0x01020304, 0x1122334455n, seq, payload);
      const node = seal(key, MessageType.entries, 0x01020304, 0x1122334455n, seq, payload, 'node');
      expect(mine).toEqual(node);
      expect(openDatagram(key, node, seq)).toEqual(payload);
      expect(openDatagram(key, mine, seq, 'node')).toEqual(payload);
    }
  });

  it('refuses in either implementation a datagram with a changed header, body or tag, or under another key', () => {
    const key = Buffer.alloc(32, 9);
    const payload = Buffer.alloc(100, 5);
    const d = seal(key, MessageType.entries, 7, 8n, 9n, payload);
    for (const crypto of ['auto', 'node'] as const) {
      expect(openDatagram(key, d, 9n, crypto)).toEqual(payload);
      for (const at of [1, 20, 24, 80, d.length - 1]) {
        const bad = Buffer.from(d);
        bad[at] = (bad[at] ?? 0) ^ 1;
        expect(openDatagram(key, bad, bad.readBigUInt64BE(16), crypto)).toBeUndefined();
      }
      expect(openDatagram(Buffer.alloc(32, 8), d, 9n, crypto)).toBeUndefined();
      expect(openDatagram(key, d.subarray(0, 39), 9n, crypto)).toBeUndefined();
    }
  });
});

describe('channel', () => {
  it('delivers batches of entries intact and in classes', async () => {
    const [a, b] = pair();
    await Promise.all([a.start(), b.start()]);
    const got = collect(b);
    const flows = manyFlows(500);
    const buf = records(flows);
    for (let i = 0; i < flows.length; i++) expect(a.queue('b', EntryClass.fresh, buf, i * 64)).toBe(true);
    await until(() => got.length === 500);
    const expected = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const r = Buffer.from(buf.subarray(i * 64, i * 64 + 64));
      r[4] = (r[4] ?? 0) | 4;
      expected.add(r.toString('hex'));
    }
    expect(new Set(got.map((r) => r.toString('hex')))).toEqual(expected);
    expect(a.counters.entriesSent).toBe(500);
    expect(b.counters.entriesReceived).toBe(500);
    // 500 IPv4 entries of 24 bytes in datagrams of at most 1400 bytes, 40 bytes of overhead each.
    expect(a.counters.bytesSent / 500).toBeLessThan(27);
  });

  it('carries full batches of the smallest entries (ends without a backend)', async () => {
    const [a, b] = pair();
    await Promise.all([a.start(), b.start()]);
    const got = collect(b);
    const ends = records(manyFlows(300).map((f) => ({ ...f, kind: 2, backend: undefined })));
    for (let i = 0; i < 300; i++) a.queue('b', EntryClass.fresh, ends, i * 64);
    await until(() => got.length === 300);
    expect(b.counters.refused.bad_payload).toBe(0);
  });

  it('refuses forged, truncated, replayed, unknown-peer, wrong-key and old-boot datagrams, and counts them', async () => {
    const captured: Buffer[] = [];
    const [a, b] = pair({ a: { sendHook: (d, send) => (captured.push(Buffer.from(d)), send()) } });
    await Promise.all([a.start(), b.start()]);
    const got = collect(b);
    a.queue('b', EntryClass.fresh, record({ client: '10.0.0.1', clientPort: 1, vip: '192.0.2.10', backend: '10.1.0.1' }), 0);
    await until(() => got.length === 1);
    const good = captured.find((d) => d[1] === 2) as Buffer;

    b.receive(good, 'test'); // replayed
    const forged = Buffer.from(good);
    forged[30] = (forged[30] ?? 0) ^ 1;
    forged.writeBigUInt64BE(forged.readBigUInt64BE(16) + 1n, 16);
    b.receive(forged, 'test');
    b.receive(good.subarray(0, 30), 'test'); // truncated
    const stranger = Buffer.from(good);
    stranger.writeUInt32BE(0xdeadbeef, 4);
    b.receive(stranger, 'test');
    const oldBoot = Buffer.from(good);
    oldBoot.writeBigUInt64BE(1n, 8);
    b.receive(oldBoot, 'test');
    const badVersion = Buffer.from(good);
    badVersion[0] = 9;
    b.receive(badVersion, 'test');

    // A sender configured like a (same id) but with another key.
    const wrong = new Channel({ bootId: a.bootId + 1n, self: { id: 'a', address: '127.0.0.1', port: nextPort++ }, peers: [{ id: 'b', address: '127.0.0.1', port: 0 }], secret: Buffer.alloc(32, 8), maxRate: 1e9, sendHook: (d) => b.receive(d, 'wrong') });
    await wrong.start();
    open.push(wrong);
    wrong.queue('b', EntryClass.fresh, record({ client: '10.0.0.9', clientPort: 9, vip: '192.0.2.10', backend: '10.1.0.9' }), 0);
    await until(() => b.counters.refused.bad_auth >= 2);

    expect(b.counters.refused).toMatchObject({ replayed: 1, truncated: 1, unknown_peer: 1, old_boot: 1, bad_version: 1, bad_auth: 2 });
    expect(got.length).toBe(1);
    // Nothing of the refused input changed what b holds: a's next batch still arrives.
    a.queue('b', EntryClass.fresh, record({ client: '10.0.0.2', clientPort: 2, vip: '192.0.2.10', backend: '10.1.0.1' }), 0);
    await until(() => got.length === 2);
  });

  it('refuses a datagram from an unconfigured sender over the network', async () => {
    const [, b] = pair();
    await b.start();
    const s = createSocket('udp4');
    const junk = Buffer.alloc(100, 1);
    junk[0] = WIRE_VERSION;
    await new Promise<void>((r) => s.send(junk, (b as unknown as { options: ChannelOptions }).options.self.port, '127.0.0.1', () => r()));
    // A version-1 datagram (a mux not yet upgraded) is refused by its version.
    const v1 = Buffer.alloc(100, 0);
    v1[0] = 1;
    v1[1] = 1;
    await new Promise<void>((r) => s.send(v1, (b as unknown as { options: ChannelOptions }).options.self.port, '127.0.0.1', () => r()));
    await until(() => Object.values(b.counters.refused).reduce((x, y) => x + y, 0) >= 2);
    s.close();
    expect(b.counters.refused.bad_type).toBe(1);
    expect(b.counters.refused.bad_version).toBe(1);
  });

  it('carries persist messages, sealed, outside the reliable stream; refuses ones too large for a datagram', async () => {
    const [a, b] = pair();
    await Promise.all([a.start(), b.start()]);
    const got: Array<[string, Buffer]> = [];
    b.on('persist', (peer, payload) => got.push([peer, Buffer.from(payload)]));
    expect(a.sendPersist('b', Buffer.from('hello persistence'))).toBe(true);
    expect(a.sendPersist('b', Buffer.alloc(2000))).toBe(false);
    expect(a.sendPersist('nobody', Buffer.alloc(10))).toBe(false);
    await until(() => got.length === 1);
    expect(got[0]?.[0]).toBe('a');
    expect(got[0]?.[1].toString()).toBe('hello persistence');
    expect(a.counters.persistSent).toBe(1);
    expect(b.counters.persistReceived).toBe(1);
    expect(b.status()[0]?.receivedRseq).toBe('0');
  });

  it('repairs lost batches (acks name the holes, the sender sends them again)', async () => {
    let n = 0;
    const [a, b] = pair({ a: { sendHook: (d, send) => (d[1] === 2 && n++ % 3 === 1 ? undefined : send()) } });
    await Promise.all([a.start(), b.start()]);
    const got = collect(b);
    const buf = records(manyFlows(2000));
    for (let i = 0; i < 2000; i++) a.queue('b', EntryClass.fresh, buf, i * 64);
    // Heartbeats tell b how far a has sent (the last batch may be the lost one).
    const beats = setInterval(() => a.heartbeat('b', 0n, true), 20);
    try {
      await until(() => got.length === 2000, 5000);
    } finally {
      clearInterval(beats);
    }
    expect(a.counters.retransmitted).toBeGreaterThan(0);
    expect(new Set(got.map((r) => r.toString('hex'))).size).toBe(2000);
  });

  it('asks for a resync when a lost batch is no longer retained', async () => {
    let n = 0;
    const [a, b] = pair({ a: { maxRetainedBytes: 2000, sendHook: (d, send) => (d[1] === 2 && n++ === 0 ? undefined : send()) } });
    await Promise.all([a.start(), b.start()]);
    const resyncs: string[] = [];
    a.on('resyncNeeded', (p) => resyncs.push(p));
    const got = collect(b);
    const buf = records(manyFlows(600));
    for (let i = 0; i < 600; i++) a.queue('b', EntryClass.fresh, buf, i * 64);
    await until(() => got.length > 0);
    a.heartbeat('b', 0n, true);
    await until(() => resyncs.length === 1 && b.counters.resyncsReceived === 1);
    // b skipped the hole: later batches are acknowledged again.
    a.queue('b', EntryClass.fresh, buf, 0);
    expect(await a.barrier('b', 2000)).toBe(true);
  });

  it('sends the most urgent class first under the rate cap', async () => {
    const [a, b] = pair({ a: { maxRate: 200_000 } });
    await Promise.all([a.start(), b.start()]);
    const order: number[] = [];
    b.on('entries', (_p, recs, cls) => order.push(cls, recs.length / 64));
    const refresh = records(manyFlows(300));
    for (let i = 0; i < 300; i++) a.queue('b', EntryClass.refresh, refresh, i * 64);
    a.queue('b', EntryClass.precommit, record({ client: '10.9.9.9', clientPort: 9, vip: '192.0.2.10', backend: '10.1.0.1' }), 0);
    a.queue('b', EntryClass.fresh, record({ client: '10.9.9.8', clientPort: 9, vip: '192.0.2.10', backend: '10.1.0.1' }), 0);
    await until(() => order.length >= 6);
    expect(order.slice(0, 4)).toEqual([EntryClass.precommit, 1, EntryClass.fresh, 1]);
  });

  it('bounds the queue: a flood of entries is dropped (counted), more urgent entries push out less urgent ones', async () => {
    const [a] = pair({ a: { maxQueuedBytes: 24 * 1000, maxRate: 10_000 } });
    await a.start();
    const flood = records(manyFlows(5000));
    let accepted = 0;
    for (let i = 0; i < 5000; i++) if (a.queue('b', EntryClass.refresh, flood, i * 64)) accepted++;
    expect(accepted).toBeLessThanOrEqual(1000);
    expect(a.counters.queueDropped).toBe(5000 - accepted);
    expect(a.queue('b', EntryClass.precommit, flood, 0)).toBe(true);
    const [status] = a.status();
    expect(status?.queuedBytes).toBeLessThanOrEqual(24 * 1000);
  });

  it('barrier: resolves once the peer acknowledged what was queued, false on timeout without one', async () => {
    const [a, b] = pair();
    await Promise.all([a.start(), b.start()]);
    const buf = records(manyFlows(100));
    for (let i = 0; i < 100; i++) a.queue('b', EntryClass.precommit, buf, i * 64);
    expect(await a.barrier('b', 2000)).toBe(true);
    await b.close();
    a.queue('b', EntryClass.precommit, buf, 0);
    expect(await a.barrier('b', 200)).toBe(false);
  });
});
