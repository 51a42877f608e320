// ICMP echo check over raw sockets (raw-socket; needs root or CAP_NET_RAW), IPv4 and IPv6.
//
// One pinger owns at most one raw socket per family, shared by all its probes. A raw socket
// sees every ICMP message the host receives, so replies are matched on everything the request
// carried: our identifier (random per pinger), the sequence number, a random token in the
// payload, and the address the reply comes from. Destination-unreachable and time-exceeded
// errors that quote one of our requests fail that probe at once. The sockets carry a kernel
// ICMP filter so that only echo replies and errors wake the process up.
import { randomBytes, randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import net from 'node:net';
import { endianness } from 'node:os';

import { parseAddress } from '../../config/addresses.js';
import type { ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { describeError, runProbe, type Finish } from './common.js';
import type rawSocket from 'raw-socket';

type RawModule = typeof rawSocket;
type RawSocket = rawSocket.Socket;
type Family = 4 | 6;

const TOKEN_BYTES = 8;
const ECHO_REQUEST = { 4: 8, 6: 128 } as const;
const ECHO_REPLY = { 4: 0, 6: 129 } as const;
const UNREACHABLE = { 4: 3, 6: 1 } as const;
const TIME_EXCEEDED = { 4: 11, 6: 3 } as const;
const SOL_RAW = 255;
const ICMP_FILTER = 1;
const IPPROTO_ICMPV6 = 58;
const ICMP6_FILTER = 1;

let rawModule: RawModule | undefined;
let rawLoadError: string | undefined;

/** raw-socket, loaded on first use so that the rest of the health engine works without it. */
function loadRaw(): RawModule | string {
  if (rawModule !== undefined) return rawModule;
  if (rawLoadError !== undefined) return rawLoadError;
  try {
    rawModule = createRequire(import.meta.url)('raw-socket') as RawModule;
    return rawModule;
  } catch (e) {
    rawLoadError = `ICMP checks need the raw-socket package (${describeError(e)})`;
    return rawLoadError;
  }
}

interface Pending {
  family: Family;
  address: string;
  token: Buffer;
  finish: Finish;
}

export class IcmpPinger {
  /** Echo identifier of this pinger's requests. */
  readonly id = randomInt(0, 0x10000);
  private seq = randomInt(0, 0x10000);
  private readonly sockets = new Map<Family, RawSocket>();
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  /** One echo request to `target.address`; up on the matching reply. */
  ping(target: ProbeTarget, ctx: ProbeContext, payloadSize = 56): Promise<ProbeResult> {
    const family: Family = net.isIPv6(target.address) ? 6 : 4;
    const address = canonical(target.address);
    return runProbe(ctx, `no echo reply from ${address} within ${ctx.timeoutMs} ms`, (finish) => {
      if (this.closed) {
        finish(false, 'the pinger is closed');
        return;
      }
      const socket = this.socket(family);
      if (typeof socket === 'string') {
        finish(false, socket);
        return;
      }
      const seq = this.nextSeq(family);
      if (seq === undefined) {
        finish(false, 'too many echo requests in flight');
        return;
      }
      const token = randomBytes(TOKEN_BYTES);
      const key = `${family}/${seq}`;
      this.pending.set(key, { family, address, token, finish });
      const packet = Buffer.alloc(8 + Math.max(payloadSize, TOKEN_BYTES + 8));
      packet[0] = ECHO_REQUEST[family];
      packet.writeUInt16BE(this.id, 4);
      packet.writeUInt16BE(seq, 6);
      token.copy(packet, 8);
      for (let i = 8 + TOKEN_BYTES; i < packet.length; i++) packet[i] = i & 0xff;
      // The kernel computes the ICMPv6 checksum (it covers a pseudo-header); ICMPv4 is ours.
      if (family === 4) (loadRaw() as RawModule).writeChecksum(packet, 2, (loadRaw() as RawModule).createChecksum(packet));
      socket.send(packet, 0, packet.length, address, (error) => {
        if (error) finish(false, `echo request to ${address}: ${describeError(error)}`);
      });
      return () => {
        this.pending.delete(key);
      };
    });
  }

  /** Closes the sockets; pending probes fail with "cancelled". */
  close(): void {
    this.closed = true;
    for (const p of [...this.pending.values()]) p.finish(false, 'cancelled');
    for (const socket of this.sockets.values()) closeQuietly(socket);
    this.sockets.clear();
  }

  private nextSeq(family: Family): number | undefined {
    for (let tries = 0; tries < 0x10000; tries++) {
      this.seq = (this.seq + 1) & 0xffff;
      if (!this.pending.has(`${family}/${this.seq}`)) return this.seq;
    }
    return undefined;
  }

  private socket(family: Family): RawSocket | string {
    const existing = this.sockets.get(family);
    if (existing !== undefined) return existing;
    const raw = loadRaw();
    if (typeof raw === 'string') return raw;
    let socket: RawSocket;
    try {
      socket = raw.createSocket({
        protocol: family === 4 ? raw.Protocol.ICMP : raw.Protocol.ICMPv6,
        addressFamily: family === 4 ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6,
      });
    } catch (e) {
      const why = describeError(e);
      return /not permitted|EPERM|EACCES/i.test(why) ? `ICMP checks need root or CAP_NET_RAW (${why})` : `cannot open a raw ICMP socket: ${why}`;
    }
    installFilter(socket, family);
    socket.on('message', (buffer, source) => this.receive(family, buffer, source));
    socket.on('error', (e) => {
      // raw-socket closes the socket after an error: fail what waits on it, reopen on next use.
      this.sockets.delete(family);
      for (const p of [...this.pending.values()]) if (p.family === family) p.finish(false, `raw socket: ${describeError(e)}`);
    });
    this.sockets.set(family, socket);
    return socket;
  }

  private receive(family: Family, buffer: Buffer, source: string): void {
    // IPv4 raw sockets deliver the IP header; IPv6 ones start at the ICMPv6 header.
    let offset = 0;
    if (family === 4) {
      if (buffer.length < 20) return;
      offset = ((buffer[0] ?? 0) & 0x0f) * 4;
    }
    if (buffer.length < offset + 8) return;
    const type = buffer[offset];
    if (type === ECHO_REPLY[family]) {
      if (buffer.readUInt16BE(offset + 4) !== this.id) return;
      const pending = this.pending.get(`${family}/${buffer.readUInt16BE(offset + 6)}`);
      if (pending === undefined) return;
      const token = buffer.subarray(offset + 8, offset + 8 + TOKEN_BYTES);
      if (!token.equals(pending.token) || canonical(source) !== pending.address) return;
      pending.finish(true, `echo reply from ${pending.address}`);
      return;
    }
    if (type === UNREACHABLE[family] || type === TIME_EXCEEDED[family]) {
      // The error quotes our request: its IP header, then (at least) the ICMP header.
      const inner = offset + 8;
      let quoted: number;
      if (family === 4) {
        if (buffer.length < inner + 20) return;
        quoted = inner + ((buffer[inner] ?? 0) & 0x0f) * 4;
      } else {
        if (buffer.length < inner + 40 || buffer[inner + 6] !== IPPROTO_ICMPV6) return;
        quoted = inner + 40;
      }
      if (buffer.length < quoted + 8 || buffer[quoted] !== ECHO_REQUEST[family] || buffer.readUInt16BE(quoted + 4) !== this.id) return;
      const pending = this.pending.get(`${family}/${buffer.readUInt16BE(quoted + 6)}`);
      if (pending === undefined) return;
      const what = type === UNREACHABLE[family] ? 'destination unreachable' : 'time exceeded';
      pending.finish(false, `ICMP ${what} (code ${buffer[offset + 1] ?? 0}) from ${canonical(source)}`);
    }
  }
}

/** One echo with a pinger of its own (for one-off use; the checker shares one pinger). */
export async function probeIcmp(target: ProbeTarget, ctx: ProbeContext, payloadSize?: number): Promise<ProbeResult> {
  const pinger = new IcmpPinger();
  try {
    return await pinger.ping(target, ctx, payloadSize);
  } finally {
    pinger.close();
  }
}

/** Lets through only echo replies and the errors that can quote a request. */
function installFilter(socket: RawSocket, family: Family): void {
  try {
    if (family === 4) {
      // struct icmp_filter: a 32-bit mask of the types to block.
      const pass = (1 << ECHO_REPLY[4]) | (1 << UNREACHABLE[4]) | (1 << TIME_EXCEEDED[4]);
      const mask = Buffer.alloc(4);
      writeHostU32(mask, ~pass >>> 0, 0);
      socket.setOption(SOL_RAW, ICMP_FILTER, mask, 4);
    } else {
      // struct icmp6_filter: 256 bits, a set bit blocks that type.
      const filter = Buffer.alloc(32, 0xff);
      for (const type of [ECHO_REPLY[6], UNREACHABLE[6], TIME_EXCEEDED[6]]) {
        const word = type >> 5;
        writeHostU32(filter, 0xffffffff & ~(1 << (type & 31)) & readHostU32(filter, word * 4), word * 4);
      }
      socket.setOption(IPPROTO_ICMPV6, ICMP6_FILTER, filter, 32);
    }
  } catch {
    // Without a filter the socket sees more traffic, and matching still sorts it out.
  }
}

// The kernel reads the filters as host-order 32-bit words.
const littleEndian = endianness() === 'LE';
function writeHostU32(buffer: Buffer, value: number, offset: number): void {
  if (littleEndian) buffer.writeUInt32LE(value >>> 0, offset);
  else buffer.writeUInt32BE(value >>> 0, offset);
}
function readHostU32(buffer: Buffer, offset: number): number {
  return littleEndian ? buffer.readUInt32LE(offset) : buffer.readUInt32BE(offset);
}

function canonical(address: string): string {
  const parsed = parseAddress(address);
  return parsed.ok ? parsed.address.canonical : address;
}

function closeQuietly(socket: RawSocket): void {
  try {
    socket.removeAllListeners('message');
    socket.on('error', () => {});
    socket.close();
  } catch {
    // already closed
  }
}
