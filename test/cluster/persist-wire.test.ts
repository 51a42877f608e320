// The persist messages of the cluster channel (the cluster persistence store's requests and
// replies) and the ownership of client keys: items survive encoding, long lists are split into
// datagram-sized messages with their first item's index, malformed input is refused; a key's
// owner and backup are two live members, spread by weight, and the backup owns the key once the
// owner is gone (the failover the store relies on).
import { describe, expect, it } from 'vitest';

import { Ownership } from '../../src/cluster/ownership.js';
import { decodePersist, encodePersist, PERSIST_HEADER_BYTES, PersistOp, persistItem } from '../../src/cluster/persist-wire.js';
import { MAX_PAYLOAD } from '../../src/cluster/wire.js';

describe('persist messages', () => {
  it('encode and decode items; split long lists at datagram size with each message\'s first index', () => {
    const items = Array.from({ length: 300 }, (_, i) => persistItem({ flag: i % 3, ms: 600_000 - i, version: 1_800_000_000_000 * 1024 + i, key: `web/198.51.${i >> 8}.${i & 255}`, backend: `10.1.0.${i % 7}`, other: i % 2 ? 'é' : '' }));
    const messages = encodePersist(PersistOp.rmc, 0xfeedbeef, items, MAX_PAYLOAD);
    expect(messages.length).toBeGreaterThan(1);
    const decoded = messages.map((m) => {
      expect(m.length).toBeLessThanOrEqual(MAX_PAYLOAD);
      return decodePersist(m);
    });
    expect(decoded.every((d) => d?.op === PersistOp.rmc && d.id === 0xfeedbeef)).toBe(true);
    let next = 0;
    for (const d of decoded) {
      expect(d?.first).toBe(next);
      next += d?.items.length ?? 0;
    }
    expect(decoded.flatMap((d) => d?.items ?? [])).toEqual(items);
    // An empty list is one message (an ack, a transfer end).
    const empty = encodePersist(PersistOp.ack, 7, [], MAX_PAYLOAD);
    expect(empty.length).toBe(1);
    expect(decodePersist(empty[0] as Buffer)).toEqual({ op: PersistOp.ack, id: 7, first: 0, items: [] });
  });

  it('refuses malformed messages and strings too long for one', () => {
    const [good] = encodePersist(PersistOp.put, 1, [persistItem({ key: 'web/1.2.3.4', backend: '10.1.0.1', ms: 5 })], MAX_PAYLOAD);
    const g = good as Buffer;
    expect(decodePersist(g)).toBeDefined();
    expect(decodePersist(g.subarray(0, PERSIST_HEADER_BYTES - 1))).toBeUndefined();
    expect(decodePersist(g.subarray(0, g.length - 1))).toBeUndefined();  // truncated string
    expect(decodePersist(Buffer.concat([g, Buffer.alloc(1)]))).toBeUndefined();  // trailing bytes
    const badOp = Buffer.from(g);
    badOp[0] = 42;
    expect(decodePersist(badOp)).toBeUndefined();
    const moreItems = Buffer.from(g);
    moreItems.writeUInt16BE(2, 2);
    expect(decodePersist(moreItems)).toBeUndefined();
    expect(() => encodePersist(PersistOp.put, 1, [persistItem({ key: 'x'.repeat(513) })], MAX_PAYLOAD)).toThrow(/512 bytes/);
  });
});

describe('client key ownership', () => {
  const members = (live: boolean[], weights = [1, 1, 1]): Array<{ id: string; weight: number; live: boolean }> => ['a', 'b', 'c'].map((id, i) => ({ id, weight: weights[i] ?? 1, live: live[i] ?? true }));
  const keys = Array.from({ length: 3000 }, (_, i) => `web/198.51.${i >> 8}.${i & 255}`);

  it('owner and backup are two different live members, spread by weight; the backup owns the key once its owner is gone', () => {
    const all = new Ownership(0x5eedn, members([true, true, true], [1, 1, 2]));
    const counts = [0, 0, 0];
    for (const k of keys) {
      const { owner, backup } = all.keyOwners(k);
      expect(owner).not.toBe(backup);
      expect([0, 1, 2]).toContain(owner);
      expect([0, 1, 2]).toContain(backup);
      counts[owner] = (counts[owner] ?? 0) + 1;
      // Without the owner: the backup owns it, as every mux computes.
      const without = new Ownership(0x5eedn, members([0, 1, 2].map((i) => i !== owner), [1, 1, 2]));
      expect(without.keyOwners(k).owner).toBe(backup);
    }
    // Weight 2 owns about half.
    expect(counts[2]).toBeGreaterThan(1300);
    expect(counts[2]).toBeLessThan(1700);
    // Alone: owner, no backup.
    expect(new Ownership(0x5eedn, members([true, false, false])).keyOwners('web/1.2.3.4')).toEqual({ owner: 0, backup: 255 });
    // Keys, not flows: another seed purpose than the flow hash, the same on every mux.
    expect(new Ownership(0x5eedn, members([true, true, true])).keyOwners(keys[0] as string)).toEqual(new Ownership(0x5eedn, members([true, true, true])).keyOwners(keys[0] as string));
  });
});
