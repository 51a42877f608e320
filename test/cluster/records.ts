// Raw 64-byte flow records for the cluster tests (layout: native/core/cluster/flow_record.h).
import { isIPv6 } from 'node:net';

import { parseAddress } from '../../src/config/addresses.js';

export interface TestFlow {
  kind?: number;
  client: string;
  clientPort: number;
  vip: string;
  vipPort?: number;
  backend?: string;
  protocol?: number;
  flags?: number;
  lifetime?: number;
  owner?: number;
  backup?: number;
  peer?: number;
}

function put(out: Buffer, at: number, text: string): void {
  const p = parseAddress(text);
  if (!p.ok) throw new Error(p.reason);
  if (p.address.family === 'ipv4') {
    out[at + 10] = 0xff;
    out[at + 11] = 0xff;
    out.set(p.address.bytes, at + 12);
  } else out.set(p.address.bytes, at);
}

export function record(f: TestFlow, out: Buffer = Buffer.alloc(64), at = 0): Buffer {
  out.fill(0, at, at + 64);
  out[at] = 1;
  out[at + 1] = f.kind ?? 1;
  out[at + 2] = isIPv6(f.client) ? 6 : 4;
  out[at + 3] = f.protocol ?? 6;
  out[at + 4] = f.flags ?? 0;
  out[at + 5] = f.owner ?? 255;
  out[at + 6] = f.backup ?? 255;
  out[at + 7] = f.peer ?? 255;
  put(out, at + 8, f.client);
  put(out, at + 24, f.vip);
  if (f.backend !== undefined) put(out, at + 40, f.backend);
  out.writeUInt16BE(f.clientPort, at + 56);
  out.writeUInt16BE(f.vipPort ?? 80, at + 58);
  out.writeUInt32BE(f.lifetime ?? 900, at + 60);
  return out;
}

export function records(flows: TestFlow[]): Buffer {
  const out = Buffer.alloc(flows.length * 64);
  flows.forEach((f, i) => record(f, out, i * 64));
  return out;
}

/** n distinct IPv4 flows to 192.0.2.10:80. */
export function manyFlows(n: number, backend = '10.202.1.2'): TestFlow[] {
  return Array.from({ length: n }, (_, i) => ({ client: `10.200.${(i >> 16) & 255}.${(i >> 8) & 255}`, clientPort: 1024 + (i & 0xff) * 200 + ((i >> 8) % 200), vip: '192.0.2.10', backend }));
}
