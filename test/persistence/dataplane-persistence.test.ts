// Client persistence through the addon: a Dataplane with a persistence table holds the first
// packets of new clients, and releases them to the backend the control plane answers; clients
// with an entry go to its backend at once. Frames are decoded from the pipeline's output.
import { describe, expect, it } from 'vitest';

import { Dataplane, defaultConntrack, type DataplaneConfig } from '../../src/dataplane/index.js';
import type { PersistenceApi } from '../../src/dataplane/engine.js';
import { flowPacket, TCP } from '../support/frames.js';

const BACKENDS = ['10.1.0.1', '10.1.0.2', '10.1.0.3'];
const SEC = 1_000_000_000n;

type Persistence = DataplaneConfig['vips'][number]['persistence'];
function config(persistence: Persistence | null = { timeoutSeconds: 60, prefixLength: 24, maxEntries: 100 }): DataplaneConfig {
  return {
    seed: '0x1234',
    sourceMac: '02:00:00:00:00:01',
    gatewayMac: '02:00:00:00:00:fe',
    outerSourceV4: '10.0.0.1',
    vips: [
      {
        name: 'web', address: '192.0.2.10', protocol: 6, port: 80, encap: 'ipip', guePort: 6080, hashFields: '5-tuple',
        tableSize: 251, icmpEcho: true, scheduler: 'maglev', ...(persistence !== null && persistence !== undefined && { persistence }),
        backends: BACKENDS.map((address) => ({ address, weight: 1 })),
      },
    ],
  };
}

// IPIP output: outer IPv4 header after Ethernet; the inner packet follows it.
const outerDst = (frame: Buffer | undefined): string => frame?.subarray(30, 34).join('.') ?? '';
const inner = (frame: Buffer): Buffer => frame.subarray(14 + 20);

function make(puntSlots?: number): { dp: Dataplane; p: PersistenceApi } {
  const dp = new Dataplane(defaultConntrack, undefined, { entries: 1024, ...(puntSlots !== undefined && { puntSlots }) });
  dp.setConfig(config());
  if (dp.persistence === undefined) throw new Error('no persistence');
  return { dp, p: dp.persistence };
}

describe('persistence in the dataplane', () => {
  it('holds a new client\'s SYN, wakes the slow path, and releases it to the answered backend', async () => {
    const { dp, p } = make();
    let woken = 0;
    const wake = new Promise<void>((resolve) => p.onPunt(() => {
      woken += 1;
      resolve();
    }));
    const syn = flowPacket('tcp', '198.51.100.7', '192.0.2.10', 40000, 80, { flags: TCP.SYN });
    const [r] = dp.process([{ frame: syn }], 1n * SEC);
    expect(r?.verdict).toBe('held');
    await wake;
    expect(woken).toBe(1);

    const { punts } = p.drain();
    expect(punts).toHaveLength(1);
    const punt = punts[0]!;
    expect(punt).toMatchObject({ worker: 0, vip: 'web', client: '198.51.100.0/24' });
    expect(BACKENDS).toContain(punt.proposed);
    expect(punt.recorded).toBeUndefined();
    // Answer with a backend other than the proposal: the answer decides.
    const answered = BACKENDS.find((b) => b !== punt.proposed)!;
    expect(p.answer([{ worker: punt.worker, slot: punt.slot, ticket: punt.ticket, backend: answered }])).toBe(1);
    const released = dp.releaseHeld(1n * SEC + 1000n);
    expect(released).toHaveLength(1);
    expect(released[0]?.verdict).toBe('tx');
    expect(outerDst(released[0]?.frame)).toBe(answered);
    // The client's own SYN inside: its addresses and ports as sent.
    const held = inner(released[0]!.frame!);
    expect(held.subarray(12, 24).equals(syn.subarray(14 + 12, 14 + 24))).toBe(true);
    expect(held[20 + 13]).toBe(TCP.SYN);
    expect(p.stats()).toMatchObject({ punted: 1, released: 1, held: 0, misses: 1 });

    // The flow's next packets follow its connection entry, without the persistence table.
    const ack = flowPacket('tcp', '198.51.100.7', '192.0.2.10', 40000, 80, { flags: TCP.ACK });
    const [next] = dp.process([{ frame: ack }], 2n * SEC);
    expect(next?.verdict).toBe('tx');
    expect(outerDst(next?.frame)).toBe(answered);
    expect(p.stats()).toMatchObject({ misses: 1, hits: 0 });
    // A second answer to the same ticket is refused (the slot is free).
    p.answer([{ worker: 0, slot: punt.slot, ticket: punt.ticket, backend: answered }]);
    expect(dp.releaseHeld()).toHaveLength(0);
    expect(p.stats().releaseRefused).toBe(1);
  });

  it('sends clients with a live entry to its backend at once, touches them, and punts again after expiry', () => {
    const { dp, p } = make();
    dp.process([], 10n * SEC);  // the table's clock
    expect(p.install([{ vip: 'web', client: '198.51.100.0/24', backend: '10.1.0.2', ttlMs: 5000 }])).toEqual({ installed: 1, evicted: [] });
    expect(p.lookup('web', '198.51.100.0/24')).toMatchObject({ backend: '10.1.0.2', expiresInMs: 5000 });
    expect(p.lookup('web', '198.51.100.77')).toMatchObject({ client: '198.51.100.0/24', backend: '10.1.0.2' });
    const frames = Array.from({ length: 20 }, (_, i) => ({ frame: flowPacket('tcp', `198.51.100.${i + 1}`, '192.0.2.10', 41000 + i, 80) }));
    const out = dp.process(frames, 11n * SEC);
    expect(out.map((r) => outerDst(r.frame))).toEqual(frames.map(() => '10.1.0.2'));
    expect(p.stats()).toMatchObject({ hits: 20, punted: 0 });
    // One touch per client prefix per second, for the slow path's batched refresh.
    expect(p.drain().touches).toEqual([{ vip: 'web', client: '198.51.100.0/24' }]);
    // Another prefix has no entry.
    expect(dp.process([{ frame: flowPacket('tcp', '198.51.101.1', '192.0.2.10', 42000, 80) }], 11n * SEC)[0]?.verdict).toBe('held');

    // Past the deadline: the entry is gone for the fast path, expire() frees it and says so.
    expect(dp.process([{ frame: flowPacket('tcp', '198.51.100.200', '192.0.2.10', 43000, 80) }], 16n * SEC)[0]?.verdict).toBe('held');
    expect(p.expire()).toEqual([{ vip: 'web', client: '198.51.100.0/24' }]);
    expect(p.stats().entries).toBe(0);
  });

  it('refreshes the client\'s entry from its established flows and their end, not only from new connections (IPVS: the timeout counts from the last packet)', () => {
    const { dp, p } = make();
    dp.process([], 10n * SEC);
    p.install([{ vip: 'web', client: '198.51.100.0/24', backend: '10.1.0.2', ttlMs: 5000 }]);
    const packet = (flags: number, at: bigint): string => outerDst(dp.process([{ frame: flowPacket('tcp', '198.51.100.7', '192.0.2.10', 40000, 80, { flags }) }], at)[0]?.frame);
    expect(packet(TCP.SYN, 10n * SEC)).toBe('10.1.0.2');
    expect(p.drain().touches).toEqual([{ vip: 'web', client: '198.51.100.0/24' }]);  // the new connection
    // Packets of the established flow: a touch once the flow's own deadline moves (about a
    // second apart), none for the packets in between.
    expect(packet(TCP.ACK, 10n * SEC + SEC / 10n)).toBe('10.1.0.2');
    expect(p.drain().touches).toEqual([]);
    expect(packet(TCP.ACK, 12n * SEC)).toBe('10.1.0.2');
    expect(p.drain().touches).toEqual([{ vip: 'web', client: '198.51.100.0/24' }]);
    expect(packet(TCP.ACK, 12n * SEC + SEC / 10n)).toBe('10.1.0.2');
    expect(p.drain().touches).toEqual([]);
    // Its end (FIN) a while later: touched again, so the timeout runs from the connection's end.
    expect(packet(TCP.FIN | TCP.ACK, 14n * SEC)).toBe('10.1.0.2');
    expect(p.drain().touches).toEqual([{ vip: 'web', client: '198.51.100.0/24' }]);
    expect(p.stats().hits).toBe(1);  // one new connection; the rest were the flow's own packets
  });

  it('punts again when the recorded backend drains, naming it', () => {
    const { dp, p } = make();
    p.install([{ vip: 'web', client: '198.51.100.0/24', backend: '10.1.0.1', ttlMs: 60000 }]);
    const cfg = config();
    cfg.vips[0]!.backends[0]!.state = 'draining';
    dp.setConfig(cfg);
    expect(p.accepts('web', '10.1.0.1')).toBe(false);
    expect(p.accepts('web', '10.1.0.2')).toBe(true);
    expect(dp.process([{ frame: flowPacket('tcp', '198.51.100.9', '192.0.2.10', 44000, 80) }])[0]?.verdict).toBe('held');
    const [punt] = p.drain().punts;
    expect(punt?.recorded).toBe('10.1.0.1');
    expect(punt?.proposed).not.toBe('10.1.0.1');
    expect(p.stats().repicks).toBe(1);
  });

  it('bounds the held packets: overflow and expiry are counted drops', () => {
    const { dp, p } = make(16);
    const frames = Array.from({ length: 40 }, (_, i) => ({ frame: flowPacket('tcp', `203.0.${i}.1`, '192.0.2.10', 45000 + i, 80) }));
    const out = dp.process(frames, 1n * SEC);
    expect(out.filter((r) => r.verdict === 'held')).toHaveLength(16);
    expect(out.filter((r) => r.verdict === 'drop' && r.reason === 'persistence_punt_overflow')).toHaveLength(24);
    expect(p.stats()).toMatchObject({ punted: 16, puntOverflow: 24, held: 16 });
    // A client with an entry is unaffected by the full queue.
    p.install([{ vip: 'web', client: '198.51.100.0/24', backend: '10.1.0.3', ttlMs: 60000 }]);
    expect(outerDst(dp.process([{ frame: flowPacket('tcp', '198.51.100.5', '192.0.2.10', 47000, 80) }], 1n * SEC)[0]?.frame)).toBe('10.1.0.3');
    expect(dp.releaseHeld(4n * SEC)).toHaveLength(0);  // past the 2 s hold bound
    expect(p.stats()).toMatchObject({ puntExpired: 16, held: 0 });
    expect(dp.counters().drops['persistence_punt_expired']).toBe(16);
  });

  it('refuses a bad persistence setting with its path, applying nothing', () => {
    const { dp } = make();
    expect(() => dp.setConfig(config({ timeoutSeconds: 60, prefixLength: 33, maxEntries: 10 }))).toThrow(/config\.vips\[0\]\.persistence\.prefixLength: expected an integer in 1\.\.32/);
    expect(() => dp.setConfig(config({ timeoutSeconds: 0, prefixLength: 24, maxEntries: 10 }))).toThrow(/config\.vips\[0\]\.persistence\.timeoutSeconds/);
    // Without persistence the VIP schedules at once.
    dp.setConfig(config(null));
    expect(dp.process([{ frame: flowPacket('tcp', '198.51.100.7', '192.0.2.10', 46000, 80) }])[0]?.verdict).toBe('tx');
  });
});
