// Tunnelled checks: the probe travels the way client traffic does. The mux itself builds the
// packet a client would send to the VIP (a TCP SYN, or the UDP check's request), wraps it the
// way the dataplane wraps traffic for this backend (IPIP, GRE with its key, or GUE), and sends
// it to the backend's address. Only a backend that decapsulates, holds the VIP and listens on
// the port answers, directly to the mux's own address (DSR): a SYN-ACK from VIP:port (seen on
// a raw TCP socket: no kernel socket owns the connection, so the kernel then resets it, which
// also frees the backend's half-open entry), or the UDP reply on a socket bound to the inner
// source. A RST from the VIP means "decapsulated, but nothing listens": down at once.
//
// Raw sockets (raw-socket, as ICMP checks): root or CAP_NET_RAW.
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket as createDgram, type Socket as DgramSocket } from 'node:dgram';
import { createRequire } from 'node:module';
import net from 'node:net';

import { parseAddress } from '../../config/addresses.js';
import type { ProbeContext, ProbeResult, ReplyMatch } from '../types.js';
import { compileMatch } from '../match.js';
import { describeError, runProbe } from './common.js';
import type rawSocket from 'raw-socket';

type RawModule = typeof rawSocket;
type RawSocket = rawSocket.Socket;

/** Everything a tunnelled probe needs to look like the dataplane's traffic for one backend. */
export interface TunnelPath {
  backend: string;
  vipAddress: string;
  port: number;
  protocol: 'tcp' | 'udp';
  encap: 'ipip' | 'gre' | 'gue';
  greKey?: number;
  guePort: number;
  /** The mux's own address in the VIP's family: the inner source the backend answers. */
  source: string;
  /** UDP: the request and what the reply must match. */
  udp?: { payload: Buffer; expect: ReplyMatch };
}

const IPPROTO_IPIP = 4;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_IPV6 = 41;
const IPPROTO_GRE = 47;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;

let rawModule: RawModule | undefined;

function loadRaw(): RawModule {
  rawModule ??= createRequire(import.meta.url)('raw-socket') as RawModule;
  return rawModule;
}

function addressBytes(text: string): Buffer {
  const parsed = parseAddress(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return Buffer.from(parsed.address.bytes);
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function sum16(buffer: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buffer.length; i += 2) sum += buffer.readUInt16BE(i);
  if (buffer.length % 2 === 1) sum += (buffer[buffer.length - 1] as number) << 8;
  return sum;
}

/** The inner IP packet: `l4` (TCP or UDP, checksum field zero) from src to dst. */
export function innerPacket(src: Buffer, dst: Buffer, proto: number, l4: Buffer): Buffer {
  const v4 = src.length === 4;
  const pseudo = Buffer.alloc(v4 ? 12 : 40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, src.length);
  if (v4) {
    pseudo[9] = proto;
    pseudo.writeUInt16BE(l4.length, 10);
  } else {
    pseudo.writeUInt32BE(l4.length, 32);
    pseudo[39] = proto;
  }
  const checksumAt = proto === IPPROTO_TCP ? 16 : 6;
  let checksum = fold(sum16(l4, sum16(pseudo)));
  if (proto === IPPROTO_UDP && checksum === 0) checksum = 0xffff;
  l4.writeUInt16BE(checksum, checksumAt);
  if (v4) {
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip.writeUInt16BE(randomInt(0, 0x10000), 4);
    ip.writeUInt16BE(0x4000, 6);
    ip[8] = 64;
    ip[9] = proto;
    src.copy(ip, 12);
    dst.copy(ip, 16);
    ip.writeUInt16BE(fold(sum16(ip)), 10);
    return Buffer.concat([ip, l4]);
  }
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(l4.length, 4);
  ip[6] = proto;
  ip[7] = 64;
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return Buffer.concat([ip, l4]);
}

function tcpSyn(sourcePort: number, port: number, seq: number): Buffer {
  const tcp = Buffer.alloc(24);
  tcp.writeUInt16BE(sourcePort, 0);
  tcp.writeUInt16BE(port, 2);
  tcp.writeUInt32BE(seq, 4);
  tcp[12] = 6 << 4;
  tcp[13] = TCP_SYN;
  tcp.writeUInt16BE(64240, 14);
  tcp[20] = 2;  // MSS option, small enough for any tunnel
  tcp[21] = 4;
  tcp.writeUInt16BE(1360, 22);
  return tcp;
}

function udpDatagram(sourcePort: number, port: number, payload: Buffer): Buffer {
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(sourcePort, 0);
  udp.writeUInt16BE(port, 2);
  udp.writeUInt16BE(udp.length, 4);
  payload.copy(udp, 8);
  return udp;
}

/**
 * Sends `inner` to the backend as the dataplane would: IPIP and GRE through raw sockets (the
 * kernel adds the outer header from this host's address), GUE as a UDP datagram.
 */
function sendEncapsulated(path: TunnelPath, inner: Buffer, done: (error: Error | null) => void): () => void {
  const backendV6 = net.isIPv6(path.backend);
  const innerV6 = (inner[0] as number) >> 4 === 6;
  if (path.encap === 'gue') {
    const socket = createDgram(backendV6 ? 'udp6' : 'udp4');
    socket.on('error', (e) => done(e));
    socket.send(inner, path.guePort, path.backend, (e) => done(e ?? null));
    return () => socket.close();
  }
  const raw = loadRaw();
  let payload = inner;
  let protocol = innerV6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
  if (path.encap === 'gre') {
    const gre = Buffer.alloc(path.greKey !== undefined ? 8 : 4);
    if (path.greKey !== undefined) {
      gre.writeUInt16BE(0x2000, 0);
      gre.writeUInt32BE(path.greKey, 4);
    }
    gre.writeUInt16BE(innerV6 ? 0x86dd : 0x0800, 2);
    payload = Buffer.concat([gre, inner]);
    protocol = IPPROTO_GRE;
  }
  const socket = raw.createSocket({ protocol, addressFamily: backendV6 ? raw.AddressFamily.IPv6 : raw.AddressFamily.IPv4 });
  socket.on('error', (e) => done(e));
  socket.send(payload, 0, payload.length, path.backend, (e) => done(e));
  return () => socket.close();
}

/** Listens for the VIP's answer to our SYN on a raw TCP socket. */
function listenForSynAck(path: TunnelPath, sourcePort: number, seq: number, answer: (ok: boolean, detail: string) => void): RawSocket {
  const raw = loadRaw();
  const v6 = net.isIPv6(path.vipAddress);
  const vip = addressBytes(path.vipAddress);
  const socket = raw.createSocket({ protocol: IPPROTO_TCP, addressFamily: v6 ? raw.AddressFamily.IPv6 : raw.AddressFamily.IPv4 });
  socket.on('message', (buffer: Buffer, source: string) => {
    // IPv4 raw sockets deliver the IP header, IPv6 ones only the payload.
    let tcp = buffer;
    if (!v6) {
      if (buffer.length < 20 || !buffer.subarray(12, 16).equals(vip)) return;
      tcp = buffer.subarray(((buffer[0] as number) & 0x0f) * 4);
    } else if (!addressBytes(source).equals(vip)) {
      return;
    }
    if (tcp.length < 20 || tcp.readUInt16BE(0) !== path.port || tcp.readUInt16BE(2) !== sourcePort) return;
    const flags = tcp[13] as number;
    const acked = tcp.readUInt32BE(8) === ((seq + 1) >>> 0);
    if ((flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK) && acked) answer(true, `SYN-ACK from ${path.vipAddress}:${path.port} via ${path.backend}`);
    else if ((flags & TCP_RST) !== 0) answer(false, `${path.backend} decapsulated but nothing listens on ${path.vipAddress}:${path.port} (RST)`);
  });
  socket.on('error', (e: Error) => answer(false, `raw TCP socket: ${describeError(e)}`));
  return socket;
}

/** One tunnelled probe along `path`. */
export function probeTunnelled(path: TunnelPath, ctx: ProbeContext): Promise<ProbeResult> {
  const through = `${path.encap} to ${path.backend}`;
  return runProbe(ctx, `no answer from ${path.vipAddress}:${path.port} ${path.protocol} through ${through} within ${ctx.timeoutMs} ms`, (finish) => {
    const cleanups: Array<() => void> = [];
    const sent = (error: Error | null): void => {
      if (error) finish(false, `sending through ${through}: ${describeError(error)}`);
    };
    try {
      const src = addressBytes(path.source);
      const dst = addressBytes(path.vipAddress);
      if (path.protocol === 'tcp') {
        const sourcePort = randomInt(32768, 61000);
        const seq = randomBytes(4).readUInt32BE(0);
        const listener = listenForSynAck(path, sourcePort, seq, (ok, detail) => finish(ok, detail));
        cleanups.push(() => listener.close());
        cleanups.push(sendEncapsulated(path, innerPacket(src, dst, IPPROTO_TCP, tcpSyn(sourcePort, path.port, seq)), sent));
      } else {
        const udp = path.udp ?? { payload: Buffer.from('l4mux health check\n'), expect: { kind: 'any' } as ReplyMatch };
        const socket: DgramSocket = createDgram(net.isIPv6(path.source) ? 'udp6' : 'udp4');
        cleanups.push(() => socket.close());
        socket.on('error', (e) => finish(false, `UDP socket: ${describeError(e)}`));
        socket.on('message', (message, from) => {
          if (from.port !== path.port || !addressBytes(from.address).equals(dst)) return;
          if (compileMatch(udp.expect)(message)) finish(true, `reply from ${path.vipAddress}:${path.port} via ${path.backend}`);
          else finish(false, `unexpected reply from ${path.vipAddress}:${path.port} via ${path.backend}`);
        });
        socket.bind(0, path.source, () => {
          const inner = innerPacket(src, dst, IPPROTO_UDP, udpDatagram(socket.address().port, path.port, udp.payload));
          cleanups.push(sendEncapsulated(path, inner, sent));
        });
      }
    } catch (e) {
      finish(false, describeError(e));
    }
    return () => {
      for (const cleanup of cleanups) cleanup();
    };
  });
}
