// Wire format of the cluster channel (version 2): UDP datagrams between muxes, each sealed
// with ChaCha20-Poly1305. Version 2 added type 5 (persist); a version-1 mux refuses version-2
// datagrams (bad_version) and the other way round: upgrade every mux of a cluster together.
// Layout (network byte order):
//
//   datagram  off size
//              0   1   version (2)
//              1   1   type: 1 heartbeat, 2 entries, 3 ack, 4 resync, 5 persist
//              2   2   reserved, 0
//              4   4   sender tag (first 4 bytes of SHA-256 of "l4mux member\0" + sender id)
//              8   8   sender boot id (milliseconds since the epoch << 16 | 16 random bits)
//             16   8   sequence number of this datagram in the stream sender -> receiver
//             24   n   ciphertext of the payload
//           24+n  16   Poly1305 tag
//   The 24 header bytes are the AEAD's associated data; the nonce is 4 zero bytes and the
//   sequence number. The key is per (secret, sender, boot id, receiver): see keys.ts.
//
//   heartbeat   fingerprint 8 (cluster config) | flags 1 (bit0 ready) | 3 zero |
//               lastRseq 8 (last reliable message sent to you) | ackBoot 8 | ackRseq 8
//   entries     rseq 8 | class 1 | flags 1 (bit0 ack now, bit1 transfer end) | count 2 |
//               forBoot 8 (transfer end: the receiver's boot it completes) | count entries
//   ack         ackBoot 8 | ackRseq 8 (all reliable messages up to it received) |
//               ranges 2 | ranges x (from 8, to 8) missing, to be sent again
//   resync      fromRseq 8: what is below it cannot be repaired; the stream restarts there and
//               the sender re-sends the receiver's entries from its table
//   persist     the cluster persistence store's requests and replies (persist-wire.ts):
//               op 1 | flags 1 | count 2 | request id 4 | first item 2 | zero 2 | count items;
//               not part of the reliable stream (the store retries until answered)
//
//   entry (24 bytes for IPv4, 60 for IPv6; IPv4 with an IPv6 backend 36)
//              0   1   kind (as the flow record: 1 new, 2 end, 3 refresh, 4 teach)
//              1   1   flags: bits 0-2 as the record's (proven, must-sync, from-peer),
//                      bit5 no backend (end only), bit6 backend IPv6, bit7 flow IPv6
//              2   1   protocol
//              3   1   zero
//              4   4   remaining lifetime, seconds
//              8   2   client port
//             10   2   VIP port
//             12 4|16  client address, then VIP address, then backend address (0|4|16)
import { createCipheriv, createDecipheriv } from 'node:crypto';

import { clusterNative, type NativeAead } from './native.js';

export const WIRE_VERSION = 2;
export const HEADER_BYTES = 24;
export const TAG_BYTES = 16;
export const OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES;
/** Datagrams fit one 1500-byte link with IPv6 and UDP headers. */
export const MAX_DATAGRAM = 1400;
export const MAX_PAYLOAD = MAX_DATAGRAM - OVERHEAD_BYTES;
export const ENTRIES_HEADER_BYTES = 20;
export const MAX_ENTRY_BYTES = 60;
/** An end without a backend, IPv4. */
export const MIN_WIRE_ENTRY_BYTES = 20;

export const MessageType = { heartbeat: 1, entries: 2, ack: 3, resync: 4, persist: 5 } as const;
export type MessageTypeNumber = (typeof MessageType)[keyof typeof MessageType];

/** Priority classes of entries, most urgent first. */
export const EntryClass = { precommit: 0, fresh: 1, refresh: 2, transfer: 3 } as const;
export type EntryClassNumber = (typeof EntryClass)[keyof typeof EntryClass];
export const ENTRY_CLASSES = 4;

export const ENTRIES_ACK_NOW = 1;
export const ENTRIES_TRANSFER_END = 2;

export interface Header {
  version: number;
  type: number;
  senderTag: number;
  bootId: bigint;
  seq: bigint;
}

function nonceOf(seq: bigint): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(seq, 4);
  return nonce;
}

// The AEAD of each key: the addon's (its cipher context set up once per key; keys are
// derived once per stream and never changed) when it has one, else node:crypto's per call.
const aeads = new WeakMap<Buffer, NativeAead>();

function aeadOf(key: Buffer): NativeAead | undefined {
  const Aead = clusterNative()?.Aead;
  if (Aead === undefined) return undefined;
  let aead = aeads.get(key);
  if (aead === undefined) {
    aead = new Aead(key);
    aeads.set(key, aead);
  }
  return aead;
}

/** Header + encrypted payload + tag, in one buffer. */
export function seal(key: Buffer, type: MessageTypeNumber, senderTag: number, bootId: bigint, seq: bigint, payload: Buffer, crypto: 'auto' | 'node' = 'auto'): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length + TAG_BYTES);
  out[0] = WIRE_VERSION;
  out[1] = type;
  out.writeUInt16BE(0, 2);
  out.writeUInt32BE(senderTag, 4);
  out.writeBigUInt64BE(bootId, 8);
  out.writeBigUInt64BE(seq, 16);
  const aead = crypto === 'auto' ? aeadOf(key) : undefined;
  if (aead !== undefined) {
    payload.copy(out, HEADER_BYTES);
    aead.seal(out, HEADER_BYTES + payload.length);
    return out;
  }
  const cipher = createCipheriv('chacha20-poly1305', key, nonceOf(seq), { authTagLength: TAG_BYTES });
  cipher.setAAD(out.subarray(0, HEADER_BYTES), { plaintextLength: payload.length });
  const body = cipher.update(payload);
  body.copy(out, HEADER_BYTES);
  cipher.final();
  cipher.getAuthTag().copy(out, HEADER_BYTES + payload.length);
  return out;
}

export type HeaderParse = { ok: true; header: Header } | { ok: false; reason: 'truncated' | 'bad_version' | 'bad_type' | 'oversized' };

/** The cleartext header; nothing in it is trusted until `open` authenticated the datagram. */
export function readHeader(datagram: Buffer): HeaderParse {
  if (datagram.length < OVERHEAD_BYTES) return { ok: false, reason: 'truncated' };
  if (datagram.length > MAX_DATAGRAM) return { ok: false, reason: 'oversized' };
  if (datagram[0] !== WIRE_VERSION) return { ok: false, reason: 'bad_version' };
  const type = datagram[1] ?? 0;
  if (type < MessageType.heartbeat || type > MessageType.persist || datagram.readUInt16BE(2) !== 0) return { ok: false, reason: 'bad_type' };
  return {
    ok: true,
    header: { version: WIRE_VERSION, type, senderTag: datagram.readUInt32BE(4), bootId: datagram.readBigUInt64BE(8), seq: datagram.readBigUInt64BE(16) },
  };
}

/** The payload, or undefined when the datagram does not authenticate under `key`. */
export function open(key: Buffer, datagram: Buffer, seq: bigint, crypto: 'auto' | 'node' = 'auto'): Buffer | undefined {
  const bodyEnd = datagram.length - TAG_BYTES;
  if (bodyEnd < HEADER_BYTES) return undefined;
  // The nonce is the header's sequence number: the addon reads it from there.
  const aead = crypto === 'auto' && datagram.readBigUInt64BE(16) === seq ? aeadOf(key) : undefined;
  if (aead !== undefined) {
    const out = Buffer.allocUnsafe(bodyEnd - HEADER_BYTES);
    return aead.open(datagram, out) ? out : undefined;
  }
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, nonceOf(seq), { authTagLength: TAG_BYTES });
    decipher.setAAD(datagram.subarray(0, HEADER_BYTES), { plaintextLength: bodyEnd - HEADER_BYTES });
    decipher.setAuthTag(datagram.subarray(bodyEnd));
    const plain = decipher.update(datagram.subarray(HEADER_BYTES, bodyEnd));
    decipher.final();
    return plain;
  } catch {
    return undefined;
  }
}

// ---- Payloads ----

export interface Heartbeat {
  fingerprint: bigint;
  ready: boolean;
  lastRseq: bigint;
  ackBoot: bigint;
  ackRseq: bigint;
}
export const HEARTBEAT_BYTES = 36;

export function encodeHeartbeat(h: Heartbeat): Buffer {
  const b = Buffer.alloc(HEARTBEAT_BYTES);
  b.writeBigUInt64BE(h.fingerprint, 0);
  b[8] = h.ready ? 1 : 0;
  b.writeBigUInt64BE(h.lastRseq, 12);
  b.writeBigUInt64BE(h.ackBoot, 20);
  b.writeBigUInt64BE(h.ackRseq, 28);
  return b;
}

export function decodeHeartbeat(b: Buffer): Heartbeat | undefined {
  if (b.length !== HEARTBEAT_BYTES || (b[8] ?? 0) > 1) return undefined;
  return { fingerprint: b.readBigUInt64BE(0), ready: b[8] === 1, lastRseq: b.readBigUInt64BE(12), ackBoot: b.readBigUInt64BE(20), ackRseq: b.readBigUInt64BE(28) };
}

export interface EntriesHeader {
  rseq: bigint;
  entryClass: number;
  flags: number;
  count: number;
  forBoot: bigint;
}

export function writeEntriesHeader(b: Buffer, h: EntriesHeader): void {
  b.writeBigUInt64BE(h.rseq, 0);
  b[8] = h.entryClass;
  b[9] = h.flags;
  b.writeUInt16BE(h.count, 10);
  b.writeBigUInt64BE(h.forBoot, 12);
}

export function readEntriesHeader(b: Buffer): EntriesHeader | undefined {
  if (b.length < ENTRIES_HEADER_BYTES) return undefined;
  const entryClass = b[8] ?? 255;
  const flags = b[9] ?? 255;
  if (entryClass >= ENTRY_CLASSES || (flags & ~(ENTRIES_ACK_NOW | ENTRIES_TRANSFER_END)) !== 0) return undefined;
  return { rseq: b.readBigUInt64BE(0), entryClass, flags, count: b.readUInt16BE(10), forBoot: b.readBigUInt64BE(12) };
}

export interface Ack {
  ackBoot: bigint;
  ackRseq: bigint;
  /** Inclusive ranges of reliable sequence numbers to send again. */
  missing: Array<[bigint, bigint]>;
}
export const MAX_ACK_RANGES = 64;

export function encodeAck(a: Ack): Buffer {
  const ranges = a.missing.slice(0, MAX_ACK_RANGES);
  const b = Buffer.alloc(18 + ranges.length * 16);
  b.writeBigUInt64BE(a.ackBoot, 0);
  b.writeBigUInt64BE(a.ackRseq, 8);
  b.writeUInt16BE(ranges.length, 16);
  ranges.forEach(([from, to], i) => {
    b.writeBigUInt64BE(from, 18 + i * 16);
    b.writeBigUInt64BE(to, 26 + i * 16);
  });
  return b;
}

export function decodeAck(b: Buffer): Ack | undefined {
  if (b.length < 18) return undefined;
  const n = b.readUInt16BE(16);
  if (n > MAX_ACK_RANGES || b.length !== 18 + n * 16) return undefined;
  const missing: Array<[bigint, bigint]> = [];
  for (let i = 0; i < n; i++) {
    const from = b.readBigUInt64BE(18 + i * 16);
    const to = b.readBigUInt64BE(26 + i * 16);
    if (to < from) return undefined;
    missing.push([from, to]);
  }
  return { ackBoot: b.readBigUInt64BE(0), ackRseq: b.readBigUInt64BE(8), missing };
}

// ---- Entries: 64-byte flow records <-> compact wire entries ----

const REC_SIZE = 64;
const F_NO_BACKEND = 0x20;
const F_BACKEND_V6 = 0x40;
const F_FLOW_V6 = 0x80;
const RECORD_FLAGS = 0x07;
export const FROM_PEER = 0x04;
const NO_MEMBER = 255;

function isMapped(b: Buffer, at: number): boolean {
  for (let i = 0; i < 10; i++) if (b[at + i] !== 0) return false;
  return b[at + 10] === 0xff && b[at + 11] === 0xff;
}

function isZero(b: Buffer, at: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[at + i] !== 0) return false;
  return true;
}

/** Bytes the wire entry of the record at `at` takes. */
export function wireEntrySize(record: Buffer, at: number): number {
  const v6 = record[at + 2] === 6;
  const noBackend = isZero(record, at + 40, 16);
  const backendV6 = !noBackend && !isMapped(record, at + 40);
  return 12 + (v6 ? 32 : 8) + (noBackend ? 0 : backendV6 ? 16 : 4);
}

// Byte loops: Buffer.copy costs more than these few bytes (measured: 1 us per entry with
// copy() and closures, about a tenth of that like this).
function copyBytes(from: Buffer, f: number, to: Buffer, t: number, n: number): void {
  for (let i = 0; i < n; i++) to[t + i] = from[f + i] as number;
}

/** Writes the record at `record[at]` as a wire entry at `out[o]`; returns the bytes written. */
export function encodeWireEntry(record: Buffer, at: number, out: Buffer, o: number): number {
  const v6 = record[at + 2] === 6;
  const noBackend = isZero(record, at + 40, 16);
  const backendV6 = !noBackend && !isMapped(record, at + 40);
  out[o] = record[at + 1] as number;
  out[o + 1] = ((record[at + 4] as number) & RECORD_FLAGS) | (noBackend ? F_NO_BACKEND : 0) | (backendV6 ? F_BACKEND_V6 : 0) | (v6 ? F_FLOW_V6 : 0);
  out[o + 2] = record[at + 3] as number;
  out[o + 3] = 0;
  copyBytes(record, at + 60, out, o + 4, 4);
  copyBytes(record, at + 56, out, o + 8, 4);
  let p = o + 12;
  if (v6) {
    copyBytes(record, at + 8, out, p, 32);
    p += 32;
  } else {
    copyBytes(record, at + 20, out, p, 4);
    copyBytes(record, at + 36, out, p + 4, 4);
    p += 8;
  }
  if (!noBackend) {
    if (backendV6) {
      copyBytes(record, at + 40, out, p, 16);
      p += 16;
    } else {
      copyBytes(record, at + 52, out, p, 4);
      p += 4;
    }
  }
  return p - o;
}

export type EntryDecode = { ok: true; bytes: number } | { ok: false; reason: 'truncated' | 'bad_entry' };

function putMapped(b: Buffer, from: number, out: Buffer, to: number): void {
  for (let i = 0; i < 10; i++) out[to + i] = 0;
  out[to + 10] = 0xff;
  out[to + 11] = 0xff;
  copyBytes(b, from, out, to + 12, 4);
}

/**
 * Reads the wire entry at `b[o]` into a 64-byte flow record at `out[at]` (marked from-peer,
 * no owner indexes: the receiver's dataplane recomputes them).
 */
export function decodeWireEntry(b: Buffer, o: number, out: Buffer, at: number): EntryDecode {
  if (b.length - o < 12) return { ok: false, reason: 'truncated' };
  const kind = b[o] as number;
  const flags = b[o + 1] as number;
  const protocol = b[o + 2] as number;
  if (kind < 1 || kind > 4 || (protocol !== 6 && protocol !== 17) || b[o + 3] !== 0 || (flags & 0x18) !== 0) return { ok: false, reason: 'bad_entry' };
  const v6 = (flags & F_FLOW_V6) !== 0;
  const noBackend = (flags & F_NO_BACKEND) !== 0;
  const backendV6 = (flags & F_BACKEND_V6) !== 0;
  if (noBackend && (backendV6 || kind !== 2)) return { ok: false, reason: 'bad_entry' };
  const size = 12 + (v6 ? 32 : 8) + (noBackend ? 0 : backendV6 ? 16 : 4);
  if (b.length - o < size) return { ok: false, reason: 'truncated' };
  out[at] = 1;
  // A teach record reaches the member it was meant for: here it is an ordinary entry.
  out[at + 1] = kind === 4 ? 1 : kind;
  out[at + 2] = v6 ? 6 : 4;
  out[at + 3] = protocol;
  out[at + 4] = (flags & RECORD_FLAGS) | FROM_PEER;
  out[at + 5] = NO_MEMBER;
  out[at + 6] = NO_MEMBER;
  out[at + 7] = NO_MEMBER;
  copyBytes(b, o + 4, out, at + 60, 4);
  copyBytes(b, o + 8, out, at + 56, 4);
  let p = o + 12;
  if (v6) {
    copyBytes(b, p, out, at + 8, 32);
    p += 32;
  } else {
    putMapped(b, p, out, at + 8);
    putMapped(b, p + 4, out, at + 24);
    p += 8;
  }
  if (noBackend) for (let i = 0; i < 16; i++) out[at + 40 + i] = 0;
  else if (backendV6) copyBytes(b, p, out, at + 40, 16);
  else putMapped(b, p, out, at + 40);
  return { ok: true, bytes: size };
}

// ---- Whole batches: what the channel calls (codec.ts picks the addon's, same contract) ----

/** Which records go into one peer's queue of one class (native/core/cluster/wire_entry.h). */
export interface WireSelect {
  /** ALL_RECORDS: every record. Otherwise the member index whose entries these are. */
  member: number;
  /** The refresh class (refresh records) rather than the other (new, end, teach). */
  refresh: boolean;
}
export const ALL_RECORDS = 255;

export function selects(select: WireSelect, rec: Buffer, at: number): boolean {
  if (select.member === ALL_RECORDS) return true;
  const kind = rec[at + 1];
  if (kind === 4) return !select.refresh && rec[at + 7] === select.member;
  if ((kind === 3) !== select.refresh) return false;
  return rec[at + 5] === select.member || rec[at + 6] === select.member;
}

export interface WireEncodeResult {
  /** The first record not looked at. */
  next: number;
  /** Entries written. */
  count: number;
  /** Where the written bytes end in `out`. */
  end: number;
}

export interface WireCodec {
  /**
   * Encodes the selected records among records[from..] (64 bytes each) into out[outStart,
   * outEnd) in order, until the next selected one does not fit or the records end.
   */
  encodeWireEntries(records: Buffer, from: number, member: number, refresh: boolean, out: Buffer, outStart: number, outEnd: number): WireEncodeResult;
  /** Exactly `count` entries taking exactly payload[start..]: count*64 bytes of records, or undefined (malformed). */
  decodeWireEntries(payload: Buffer, start: number, count: number): Buffer | undefined;
}

/** The codec in TypeScript: the reference the addon's is tested against, and the fallback. */
export const jsWireCodec: WireCodec = {
  encodeWireEntries(records, from, member, refresh, out, outStart, outEnd) {
    const n = Math.floor(records.length / REC_SIZE);
    const select = { member, refresh };
    let o = outStart;
    let count = 0;
    let i = from;
    for (; i < n; i++) {
      const at = i * REC_SIZE;
      if (!selects(select, records, at)) continue;
      if (o + wireEntrySize(records, at) > outEnd) break;
      o += encodeWireEntry(records, at, out, o);
      count++;
    }
    return { next: i, count, end: o };
  },
  decodeWireEntries(payload, start, count) {
    if (count * MIN_WIRE_ENTRY_BYTES > payload.length - start) return undefined;
    const records = Buffer.alloc(count * REC_SIZE);
    let o = start;
    for (let i = 0; i < count; i++) {
      const r = decodeWireEntry(payload, o, records, i * REC_SIZE);
      if (!r.ok) return undefined;
      o += r.bytes;
    }
    return o === payload.length ? records : undefined;
  },
};

