// Minimal pcap (not pcapng) reader and writer for test fixtures, microsecond timestamps.
import { readFileSync, writeFileSync } from 'node:fs';

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const LINKTYPE_ETHERNET = 1;

export interface PcapRecord {
  timeNs: bigint;
  frame: Buffer;
}

export function writePcap(path: string, records: PcapRecord[]): void {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(MAGIC_US, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  const parts = [header];
  for (const r of records) {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Number(r.timeNs / 1_000_000_000n), 0);
    h.writeUInt32LE(Number((r.timeNs % 1_000_000_000n) / 1000n), 4);
    h.writeUInt32LE(r.frame.length, 8);
    h.writeUInt32LE(r.frame.length, 12);
    parts.push(h, r.frame);
  }
  writeFileSync(path, Buffer.concat(parts));
}

export function readPcap(path: string): PcapRecord[] {
  const buf = readFileSync(path);
  const magic = buf.readUInt32LE(0);
  if (magic !== MAGIC_US && magic !== MAGIC_NS) throw new Error(`${path}: not a little-endian pcap file`);
  const scale = magic === MAGIC_NS ? 1n : 1000n;
  const records: PcapRecord[] = [];
  for (let off = 24; off + 16 <= buf.length; ) {
    const sec = BigInt(buf.readUInt32LE(off));
    const frac = BigInt(buf.readUInt32LE(off + 4));
    const caplen = buf.readUInt32LE(off + 8);
    records.push({ timeNs: sec * 1_000_000_000n + frac * scale, frame: buf.subarray(off + 16, off + 16 + caplen) });
    off += 16 + caplen;
  }
  return records;
}
