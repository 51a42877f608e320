// Builds Ethernet frames for tests: written independently of the C++ parser so that the two
// check each other. Checksums are computed here; tshark checks them again.
import { isIPv4 } from 'node:net';

export const MUX_MAC = '02:00:00:00:00:01';
export const ROUTER_MAC = '02:00:00:00:00:fe';

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function ipBytes(addr: string): Buffer {
  if (isIPv4(addr)) return Buffer.from(addr.split('.').map(Number));
  // Expand "::" then parse the eight groups.
  const [head = '', tail] = addr.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(tail !== undefined ? missing : 0).fill('0'), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function onesSum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2 === 1) sum += (buf[buf.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

export function checksum(buf: Buffer, initial = 0): number {
  return ~onesSum(buf, initial) & 0xffff;
}

function pseudoSum(src: string, dst: string, proto: number, len: number): number {
  const s = ipBytes(src);
  const d = ipBytes(dst);
  const tail = Buffer.alloc(8);
  tail.writeUInt32BE(len, 0);
  tail.writeUInt32BE(proto, 4);
  return onesSum(Buffer.concat([s, d, tail]));
}

export interface TcpSpec {
  sport: number;
  dport: number;
  flags?: number; // default SYN
  seq?: number;
  payload?: Buffer;
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export function tcp(src: string, dst: string, t: TcpSpec): Buffer {
  const payload = t.payload ?? Buffer.alloc(0);
  const h = Buffer.alloc(20);
  h.writeUInt16BE(t.sport, 0);
  h.writeUInt16BE(t.dport, 2);
  h.writeUInt32BE(t.seq ?? 1000, 4);
  h.writeUInt32BE(0, 8);
  h[12] = 5 << 4;
  h[13] = t.flags ?? TCP.SYN;
  h.writeUInt16BE(65535, 14);
  const seg = Buffer.concat([h, payload]);
  seg.writeUInt16BE(checksum(seg, pseudoSum(src, dst, 6, seg.length)), 16);
  return seg;
}

export function udp(src: string, dst: string, sport: number, dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  const seg = Buffer.concat([h, payload]);
  let c = checksum(seg, pseudoSum(src, dst, 17, seg.length));
  if (c === 0) c = 0xffff;
  seg.writeUInt16BE(c, 6);
  return seg;
}

export function icmpEcho(id: number, seq: number, payload: Buffer): Buffer {
  const m = Buffer.alloc(8);
  m[0] = 8;
  m.writeUInt16BE(id, 4);
  m.writeUInt16BE(seq, 6);
  const msg = Buffer.concat([m, payload]);
  msg.writeUInt16BE(checksum(msg), 2);
  return msg;
}

/** ICMP "fragmentation needed" quoting `original` (an IPv4 packet). */
export function icmpFragNeeded(mtu: number, original: Buffer): Buffer {
  const m = Buffer.alloc(8);
  m[0] = 3;
  m[1] = 4;
  m.writeUInt16BE(mtu, 6);
  const msg = Buffer.concat([m, original]);
  msg.writeUInt16BE(checksum(msg), 2);
  return msg;
}

export function icmp6(src: string, dst: string, type: number, code: number, rest: Buffer, body: Buffer): Buffer {
  const m = Buffer.alloc(4);
  m[0] = type;
  m[1] = code;
  const msg = Buffer.concat([m, rest, body]);
  msg.writeUInt16BE(checksum(msg, pseudoSum(src, dst, 58, msg.length)), 2);
  return msg;
}

export function icmp6Echo(src: string, dst: string, id: number, seq: number, payload: Buffer): Buffer {
  const rest = Buffer.alloc(4);
  rest.writeUInt16BE(id, 0);
  rest.writeUInt16BE(seq, 2);
  return icmp6(src, dst, 128, 0, rest, payload);
}

export function icmp6PacketTooBig(src: string, dst: string, mtu: number, original: Buffer): Buffer {
  const rest = Buffer.alloc(4);
  rest.writeUInt32BE(mtu, 0);
  return icmp6(src, dst, 2, 0, rest, original);
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  proto: number;
  payload: Buffer;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  moreFragments?: boolean;
  fragmentOffset?: number; // in bytes, multiple of 8
  options?: Buffer; // multiple of 4 bytes
}

export function ipv4(p: Ipv4Spec): Buffer {
  const options = p.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + options.length);
  h[0] = 0x40 | ((20 + options.length) / 4);
  h[1] = p.tos ?? 0;
  h.writeUInt16BE(h.length + p.payload.length, 2);
  h.writeUInt16BE(p.id ?? 0x1234, 4);
  const flags = (p.df ?? true ? 0x4000 : 0) | (p.moreFragments ? 0x2000 : 0);
  h.writeUInt16BE(flags | ((p.fragmentOffset ?? 0) / 8), 6);
  h[8] = p.ttl ?? 64;
  h[9] = p.proto;
  ipBytes(p.src).copy(h, 12);
  ipBytes(p.dst).copy(h, 16);
  options.copy(h, 20);
  h.writeUInt16BE(checksum(h), 10);
  return Buffer.concat([h, p.payload]);
}

export interface Ipv6Spec {
  src: string;
  dst: string;
  proto: number; // next header of the last header
  payload: Buffer;
  hopLimit?: number;
  trafficClass?: number;
  /** Extension headers, in order: each is [type, body]; body excludes next-header byte handling. */
  extensions?: Array<{ type: number; data: Buffer }>;
}

/** Extension header bytes (next header filled in by ipv6()). `data` is the whole header. */
export function ipv6FragmentHeader(offset: number, more: boolean, id: number): { type: number; data: Buffer } {
  const d = Buffer.alloc(8);
  d.writeUInt16BE((offset & ~7) | (more ? 1 : 0), 2);
  d.writeUInt32BE(id, 4);
  return { type: 44, data: d };
}

export function ipv6Options(type: 0 | 60, len8 = 1): { type: number; data: Buffer } {
  const d = Buffer.alloc(len8 * 8);
  d[1] = len8 - 1;
  d[2] = 1; // PadN
  d[3] = d.length - 4;
  return { type, data: d };
}

export function ipv6(p: Ipv6Spec): Buffer {
  const exts = p.extensions ?? [];
  const chain: Buffer[] = [];
  exts.forEach((e, i) => {
    const next = i + 1 < exts.length ? (exts[i + 1]?.type ?? p.proto) : p.proto;
    const data = Buffer.from(e.data);
    data[0] = next;
    chain.push(data);
  });
  const body = Buffer.concat([...chain, p.payload]);
  const h = Buffer.alloc(40);
  h.writeUInt32BE((6 << 28) | ((p.trafficClass ?? 0) << 20), 0);
  h.writeUInt16BE(body.length, 4);
  h[6] = exts.length > 0 ? (exts[0]?.type ?? p.proto) : p.proto;
  h[7] = p.hopLimit ?? 64;
  ipBytes(p.src).copy(h, 8);
  ipBytes(p.dst).copy(h, 24);
  return Buffer.concat([h, body]);
}

export function ethernet(ip: Buffer, opts: { vlan?: number; src?: string; dst?: string } = {}): Buffer {
  const type = (ip[0] ?? 0) >> 4 === 6 ? 0x86dd : 0x0800;
  const parts = [macBytes(opts.dst ?? MUX_MAC), macBytes(opts.src ?? ROUTER_MAC)];
  if (opts.vlan !== undefined) {
    const tag = Buffer.alloc(4);
    tag.writeUInt16BE(0x8100, 0);
    tag.writeUInt16BE(opts.vlan, 2);
    parts.push(tag);
  }
  const t = Buffer.alloc(2);
  t.writeUInt16BE(type, 0);
  parts.push(t, ip);
  const frame = Buffer.concat(parts);
  // Ethernet minimum frame (without FCS) is 60 bytes: pad like a NIC would.
  return frame.length < 60 ? Buffer.concat([frame, Buffer.alloc(60 - frame.length)]) : frame;
}

/** A TCP or UDP packet over IPv4 or IPv6 in one call. */
export function flowPacket(
  proto: 'tcp' | 'udp',
  src: string,
  dst: string,
  sport: number,
  dport: number,
  opts: { flags?: number; payload?: Buffer; vlan?: number } = {},
): Buffer {
  const payload = opts.payload ?? Buffer.from('hello');
  const l4 =
    proto === 'tcp'
      ? tcp(src, dst, { sport, dport, flags: opts.flags ?? TCP.SYN, payload })
      : udp(src, dst, sport, dport, payload);
  const protoNum = proto === 'tcp' ? 6 : 17;
  const ip = isIPv4(src)
    ? ipv4({ src, dst, proto: protoNum, payload: l4 })
    : ipv6({ src, dst, proto: protoNum, payload: l4 });
  return ethernet(ip, opts.vlan !== undefined ? { vlan: opts.vlan } : {});
}
