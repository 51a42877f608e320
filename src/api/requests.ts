// Checks of the flow and capture requests that arrive on the control socket (the CLI checks
// its arguments too; the daemon never trusts a line it is sent).
import { isIP } from 'node:net';

import { CAPTURE_MAX_SNAPLEN, CAPTURE_MIN_SNAPLEN } from '../config/defaults.js';
import { CAPTURE_MAX_PACKETS, CAPTURE_MAX_SECONDS, type CaptureRequest, type FlowRequest, type PersistenceEntryRequest } from './protocol.js';

const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535;
const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;

export function parseFlowRequest(r: Record<string, unknown>): FlowRequest | { errors: string[] } {
  const errors: string[] = [];
  const { vip, protocol, src, srcPort, dst, dstPort } = r;
  if (typeof vip !== 'string' || vip === '') errors.push('vip: expected a VIP name or address');
  if (protocol !== 'tcp' && protocol !== 'udp') errors.push('protocol: expected "tcp" or "udp"');
  if (typeof src !== 'string' || isIP(src) === 0) errors.push('src: expected an IPv4 or IPv6 address');
  if (!isPort(srcPort)) errors.push('srcPort: expected a port number');
  if (dst !== undefined && (typeof dst !== 'string' || isIP(dst) === 0)) errors.push('dst: expected an IPv4 or IPv6 address');
  if (dstPort !== undefined && !isPort(dstPort)) errors.push('dstPort: expected a port number');
  if (errors.length > 0) return { errors };
  return {
    vip: vip as string,
    protocol: protocol as 'tcp' | 'udp',
    src: src as string,
    srcPort: srcPort as number,
    ...(dst !== undefined && { dst: dst as string }),
    ...(dstPort !== undefined && { dstPort: dstPort as number }),
  };
}

export function parseCaptureRequest(r: Record<string, unknown>): CaptureRequest | { errors: string[] } {
  const errors: string[] = [];
  const { vip, backend, count, seconds, snaplen, sampleEvery } = r;
  if (vip !== undefined && (typeof vip !== 'string' || vip === '')) errors.push('vip: expected a VIP name or address');
  if (backend !== undefined && (typeof backend !== 'string' || isIP(backend) === 0)) errors.push('backend: expected an IPv4 or IPv6 address');
  if (!isInt(count, 1, CAPTURE_MAX_PACKETS)) errors.push(`count: expected an integer in 1..${CAPTURE_MAX_PACKETS}`);
  if (!isInt(seconds, 1, CAPTURE_MAX_SECONDS)) errors.push(`seconds: expected an integer in 1..${CAPTURE_MAX_SECONDS}`);
  if (!isInt(snaplen, CAPTURE_MIN_SNAPLEN, CAPTURE_MAX_SNAPLEN)) {
    errors.push(`snaplen: expected an integer in ${String(CAPTURE_MIN_SNAPLEN)}..${String(CAPTURE_MAX_SNAPLEN)}`);
  }
  if (!isInt(sampleEvery, 1, 1_000_000)) errors.push('sampleEvery: expected an integer in 1..1000000');
  if (errors.length > 0) return { errors };
  return {
    ...(vip !== undefined && { vip: vip as string }),
    ...(backend !== undefined && { backend: backend as string }),
    count: count as number,
    seconds: seconds as number,
    snaplen: snaplen as number,
    sampleEvery: sampleEvery as number,
  };
}

export function parsePersistenceRequest(r: Record<string, unknown>): PersistenceEntryRequest | { errors: string[] } {
  const errors: string[] = [];
  const { vip, client } = r;
  if (typeof vip !== 'string' || vip === '' || vip.length > 256) errors.push('vip: expected a VIP name or address');
  if (typeof client !== 'string' || isIP(client) === 0) errors.push('client: expected an IPv4 or IPv6 address');
  if (errors.length > 0) return { errors };
  return { vip: vip as string, client: client as string };
}
