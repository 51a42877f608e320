// Payload of the cluster channel's persist messages (wire.ts, type 5): the requests and replies
// of the cluster persistence store (src/persistence/cluster-store.ts). Network byte order:
//
//   message   off size
//              0   1   op (below)
//              1   1   zero
//              2   2   count of items
//              4   4   request id (a reply carries its request's)
//              8   2   index of the first item in the request (a long reply is split)
//             10   2   zero
//             12   .   items
//
//   item       0   1   flag (per op, below)
//              1   4   milliseconds (a timeout or the time an entry has left)
//              5   8   version of the entry (the owner's hybrid clock; 0 none)
//             13   .   key, backend, other: each a 2-byte length and UTF-8 bytes
//
//   op  1 rmc         non-owner -> owner: key, backend = proposed, ms = the VIP's timeout
//       2 replace     compare-and-set: key, backend = next, other = expected, ms = timeout
//       3 replicate   owner -> backup: flag 1 create (keep an entry the backup has) or 2 put
//                     (the higher version wins); key, backend, version, ms left
//       4 put         owner -> the other muxes (their fast-path tables) and a joining mux's
//                     transfer: key, backend, version, ms left
//       5 touch       the client was seen: key, backend, ms = timeout (no reply)
//       6 syncEnd     the transfer to a joining mux is complete: version = its boot id
//       7 answer      reply to rmc and replace, one item per request item: flag 1 created,
//                     0 existing, 2 unavailable (no backup answered); backend, version, ms left
//       8 replicated  reply to replicate: the entry the backup holds now (flag 0)
//       9 ack         reply to put and syncEnd (no items)
export const PersistOp = { rmc: 1, replace: 2, replicate: 3, put: 4, touch: 5, syncEnd: 6, answer: 7, replicated: 8, ack: 9 } as const;
export type PersistOpNumber = (typeof PersistOp)[keyof typeof PersistOp];

export const PERSIST_HEADER_BYTES = 12;
const ITEM_FIXED_BYTES = 13;
/** Longest key, backend or other string (bytes). */
export const MAX_PERSIST_STRING = 512;

export interface PersistItem {
  flag: number;
  ms: number;
  version: number;
  key: string;
  backend: string;
  other: string;
}

export interface PersistMessage {
  op: PersistOpNumber;
  id: number;
  first: number;
  items: PersistItem[];
}

export function persistItem(fields: Partial<PersistItem>): PersistItem {
  return { flag: 0, ms: 0, version: 0, key: '', backend: '', other: '', ...fields };
}

function itemBytes(i: PersistItem): number {
  return ITEM_FIXED_BYTES + 6 + Buffer.byteLength(i.key) + Buffer.byteLength(i.backend) + Buffer.byteLength(i.other);
}

function clampMs(ms: number): number {
  return Math.max(0, Math.min(0xffffffff, Math.round(Number.isFinite(ms) ? ms : 0xffffffff)));
}

/**
 * The items as messages of at most `maxBytes` each (every one with the same id and its first
 * item's index). Throws for an item that cannot fit one message (a string over
 * MAX_PERSIST_STRING bytes).
 */
export function encodePersist(op: PersistOpNumber, id: number, items: readonly PersistItem[], maxBytes: number): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  const flush = (end: number, bytes: number): void => {
    const b = Buffer.alloc(bytes);
    b[0] = op;
    b.writeUInt16BE(end - start, 2);
    b.writeUInt32BE(id >>> 0, 4);
    b.writeUInt16BE(start, 8);
    let o = PERSIST_HEADER_BYTES;
    for (let k = start; k < end; k++) {
      const it = items[k] as PersistItem;
      b[o] = it.flag;
      b.writeUInt32BE(clampMs(it.ms), o + 1);
      b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(it.version))), o + 5);
      o += ITEM_FIXED_BYTES;
      for (const s of [it.key, it.backend, it.other]) {
        const n = b.write(s, o + 2, 'utf8');
        b.writeUInt16BE(n, o);
        o += 2 + n;
      }
    }
    out.push(b);
    start = end;
  };
  let bytes = PERSIST_HEADER_BYTES;
  items.forEach((it, k) => {
    for (const s of [it.key, it.backend, it.other]) if (Buffer.byteLength(s) > MAX_PERSIST_STRING) throw new Error(`persist item: a string of more than ${MAX_PERSIST_STRING} bytes`);
    const n = itemBytes(it);
    if (bytes + n > maxBytes) {
      flush(k, bytes);
      bytes = PERSIST_HEADER_BYTES;
    }
    bytes += n;
  });
  if (items.length > start || out.length === 0) flush(items.length, bytes);
  return out;
}

/** The message, or undefined when it is malformed (it is authenticated: a peer's bug). */
export function decodePersist(b: Buffer): PersistMessage | undefined {
  if (b.length < PERSIST_HEADER_BYTES || b[1] !== 0 || b.readUInt16BE(10) !== 0) return undefined;
  const op = b[0] as number;
  if (op < PersistOp.rmc || op > PersistOp.ack) return undefined;
  const count = b.readUInt16BE(2);
  const items: PersistItem[] = [];
  let o = PERSIST_HEADER_BYTES;
  for (let k = 0; k < count; k++) {
    if (b.length - o < ITEM_FIXED_BYTES) return undefined;
    const flag = b[o] as number;
    const ms = b.readUInt32BE(o + 1);
    const version = Number(b.readBigUInt64BE(o + 5));
    o += ITEM_FIXED_BYTES;
    const strings: string[] = [];
    for (let s = 0; s < 3; s++) {
      if (b.length - o < 2) return undefined;
      const n = b.readUInt16BE(o);
      if (n > MAX_PERSIST_STRING || b.length - o - 2 < n) return undefined;
      strings.push(b.toString('utf8', o + 2, o + 2 + n));
      o += 2 + n;
    }
    items.push({ flag, ms, version, key: strings[0] as string, backend: strings[1] as string, other: strings[2] as string });
  }
  if (o !== b.length) return undefined;
  return { op: op as PersistOpNumber, id: b.readUInt32BE(4), first: b.readUInt16BE(8), items };
}
