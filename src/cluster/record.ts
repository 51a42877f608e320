// Flow records: the fixed 64-byte unit in which connection-table entries leave the fast path
// (Engine.pollFlowEvents) and enter it (installFlows), and the basis of the entries the
// cluster channel carries. Mirror of native/core/cluster/flow_record.h; the layout is
// documented there and tested on both sides against the same bytes.
import { formatIpv6, parseAddress } from '../config/addresses.js';

export const FLOW_RECORD_SIZE = 64;
export const FLOW_RECORD_VERSION = 1;
/** Member index meaning "none" (owner, backup or peer). */
export const NO_MEMBER = 255;

export const RecordKind = {
  /** A new entry, or an update of one (its backend or flags changed). */
  new: 1,
  /** The flow ended: FIN/RST seen, or its entry expired. The backend may be unspecified. */
  end: 2,
  /** The flow is still alive (its remaining lifetime renewed). */
  refresh: 3,
  /** An owner answering a redirected packet: the entry is meant for member `peer`. */
  teach: 4,
} as const;
export type RecordKindName = keyof typeof RecordKind;

export interface FlowRecord {
  kind: RecordKindName;
  family: 4 | 6;
  /** 6 (TCP) or 17 (UDP). */
  protocol: 6 | 17;
  /** Two-way progress (or a repeat) seen: not a one-packet guess. */
  proven: boolean;
  /** Placed by wrr/wlc/random/persistence, or made divergent by a pending table change. */
  mustSync: boolean;
  /** Installed from a peer, not decided by the exporting mux. */
  fromPeer: boolean;
  /** Indexes into DataplaneCluster.members of the snapshot that produced it; NO_MEMBER = none. */
  owner: number;
  backup: number;
  /** For kind "teach": the member that asked; otherwise NO_MEMBER. */
  peer: number;
  /** Canonical text (dotted quad, RFC 5952). */
  client: string;
  vip: string;
  /** The backend by address; "" only in an "end" record that does not name it. */
  backend: string;
  clientPort: number;
  /** The flow's destination port (also for an all-ports VIP). */
  vipPort: number;
  lifetimeSeconds: number;
}

export type RecordDecode = { ok: true; record: FlowRecord } | { ok: false; reason: string };

const FLAG_PROVEN = 1;
const FLAG_MUST_SYNC = 2;
const FLAG_FROM_PEER = 4;
const KNOWN_FLAGS = FLAG_PROVEN | FLAG_MUST_SYNC | FLAG_FROM_PEER;
const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
const KIND_BY_NUMBER = new Map<number, RecordKindName>(
  (Object.entries(RecordKind) as Array<[RecordKindName, number]>).map(([name, n]) => [n, name]),
);

function writeAddress(text: string, out: Buffer, offset: number, where: string): 4 | 6 {
  const parsed = parseAddress(text);
  if (!parsed.ok) throw new RangeError(`${where}: ${parsed.reason}`);
  if (parsed.address.family === 'ipv4') {
    MAPPED_PREFIX.copy(out, offset);
    out.set(parsed.address.bytes, offset + 12);
    return 4;
  }
  out.set(parsed.address.bytes, offset);
  return 6;
}

function isMapped(buf: Buffer, offset: number): boolean {
  return buf.compare(MAPPED_PREFIX, 0, 12, offset, offset + 12) === 0;
}

function readAddress(buf: Buffer, offset: number): string {
  if (isMapped(buf, offset)) return Array.from(buf.subarray(offset + 12, offset + 16)).join('.');
  return formatIpv6(buf.subarray(offset, offset + 16));
}

function member(n: number, where: string): number {
  if (!Number.isInteger(n) || n < 0 || n > NO_MEMBER) throw new RangeError(`${where}: ${n} is not a member index (0..255)`);
  return n;
}

function u16(n: number, where: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError(`${where}: ${n} is not a port (0..65535)`);
  return n;
}

/** Writes `record` as 64 bytes into `out` at `offset` (a new buffer when absent). */
export function encodeFlowRecord(record: FlowRecord, out: Buffer = Buffer.alloc(FLOW_RECORD_SIZE), offset = 0): Buffer {
  if (offset < 0 || offset + FLOW_RECORD_SIZE > out.length) throw new RangeError(`offset ${offset}: no room for a 64-byte record`);
  out.fill(0, offset, offset + FLOW_RECORD_SIZE);
  out[offset] = FLOW_RECORD_VERSION;
  out[offset + 1] = RecordKind[record.kind];
  out[offset + 2] = record.family;
  out[offset + 3] = record.protocol;
  out[offset + 4] = (record.proven ? FLAG_PROVEN : 0) | (record.mustSync ? FLAG_MUST_SYNC : 0) | (record.fromPeer ? FLAG_FROM_PEER : 0);
  out[offset + 5] = member(record.owner, 'owner');
  out[offset + 6] = member(record.backup, 'backup');
  out[offset + 7] = member(record.peer, 'peer');
  if (writeAddress(record.client, out, offset + 8, 'client') !== record.family) throw new RangeError(`client: ${record.client} is not an IPv${record.family} address`);
  if (writeAddress(record.vip, out, offset + 24, 'vip') !== record.family) throw new RangeError(`vip: ${record.vip} is not an IPv${record.family} address`);
  if (record.backend !== '') writeAddress(record.backend, out, offset + 40, 'backend');
  out.writeUInt16BE(u16(record.clientPort, 'clientPort'), offset + 56);
  out.writeUInt16BE(u16(record.vipPort, 'vipPort'), offset + 58);
  if (!Number.isInteger(record.lifetimeSeconds) || record.lifetimeSeconds < 0 || record.lifetimeSeconds > 0xffffffff) {
    throw new RangeError(`lifetimeSeconds: ${record.lifetimeSeconds} is not a 32-bit count of seconds`);
  }
  out.writeUInt32BE(record.lifetimeSeconds, offset + 60);
  return out;
}

/**
 * Reads the record at `offset`. Refuses (with a reason, as the native decoder does) a wrong
 * version, kind, family or protocol, unknown flag bits, a peer index on a non-teach record
 * (or none on a teach record), addresses not of the flow's family, and a missing backend
 * outside an "end" record.
 */
export function decodeFlowRecord(buf: Buffer, offset = 0): RecordDecode {
  const fail = (reason: string): RecordDecode => ({ ok: false, reason });
  if (offset < 0 || buf.length - offset < FLOW_RECORD_SIZE) return fail('truncated');
  if (buf[offset] !== FLOW_RECORD_VERSION) return fail('bad_version');
  const kind = KIND_BY_NUMBER.get(buf[offset + 1] ?? 0);
  if (kind === undefined) return fail('bad_kind');
  const family = buf[offset + 2];
  if (family !== 4 && family !== 6) return fail('bad_family');
  const protocol = buf[offset + 3];
  if (protocol !== 6 && protocol !== 17) return fail('bad_protocol');
  const flags = buf[offset + 4] ?? 0;
  if ((flags & ~KNOWN_FLAGS) !== 0) return fail('bad_flags');
  const peer = buf[offset + 7] ?? NO_MEMBER;
  if ((kind === 'teach') !== (peer !== NO_MEMBER)) return fail('bad_member');
  const ofFamily = (at: number): boolean => (family === 4) === isMapped(buf, offset + at);
  if (!ofFamily(8) || !ofFamily(24)) return fail('bad_address');
  const noBackend = buf.subarray(offset + 40, offset + 56).every((b) => b === 0);
  if (noBackend && kind !== 'end') return fail('bad_address');
  return {
    ok: true,
    record: {
      kind,
      family,
      protocol,
      proven: (flags & FLAG_PROVEN) !== 0,
      mustSync: (flags & FLAG_MUST_SYNC) !== 0,
      fromPeer: (flags & FLAG_FROM_PEER) !== 0,
      owner: buf[offset + 5] ?? NO_MEMBER,
      backup: buf[offset + 6] ?? NO_MEMBER,
      peer,
      client: readAddress(buf, offset + 8),
      vip: readAddress(buf, offset + 24),
      backend: noBackend ? '' : readAddress(buf, offset + 40),
      clientPort: buf.readUInt16BE(offset + 56),
      vipPort: buf.readUInt16BE(offset + 58),
      lifetimeSeconds: buf.readUInt32BE(offset + 60),
    },
  };
}

/** Every record of a buffer of n*64 bytes (what pollFlowEvents returns), refused ones apart. */
export function decodeFlowRecords(buf: Buffer): { records: FlowRecord[]; refused: Array<{ index: number; reason: string }> } {
  const records: FlowRecord[] = [];
  const refused: Array<{ index: number; reason: string }> = [];
  const whole = Math.floor(buf.length / FLOW_RECORD_SIZE);
  for (let i = 0; i < whole; i++) {
    const r = decodeFlowRecord(buf, i * FLOW_RECORD_SIZE);
    if (r.ok) records.push(r.record);
    else refused.push({ index: i, reason: r.reason });
  }
  if (buf.length % FLOW_RECORD_SIZE !== 0) refused.push({ index: whole, reason: 'truncated' });
  return { records, refused };
}

/** Many records into one buffer of n*64 bytes (what installFlows takes). */
export function encodeFlowRecords(records: readonly FlowRecord[]): Buffer {
  const out = Buffer.alloc(records.length * FLOW_RECORD_SIZE);
  records.forEach((r, i) => encodeFlowRecord(r, out, i * FLOW_RECORD_SIZE));
  return out;
}
