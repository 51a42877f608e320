// A pcap file (nanosecond-resolution variant, magic 0xa1b23c4d; Ethernet link type) as
// tcpdump, tshark and Wireshark read it. Records are written as they come.
import { openSync, writeSync, closeSync } from 'node:fs';

const MAGIC_NANOSECONDS = 0xa1b23c4d;
const LINKTYPE_ETHERNET = 1;

export class PcapWriter {
  private readonly fd: number;
  records = 0;

  constructor(path: string, snaplen = 65535) {
    this.fd = openSync(path, 'w', 0o600);
    const header = Buffer.alloc(24);
    header.writeUInt32LE(MAGIC_NANOSECONDS, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeInt32LE(0, 8);
    header.writeUInt32LE(0, 12);
    header.writeUInt32LE(snaplen, 16);
    header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    writeSync(this.fd, header);
  }

  write(seconds: number, nanoseconds: number, originalLength: number, data: Buffer): void {
    const record = Buffer.alloc(16);
    record.writeUInt32LE(seconds >>> 0, 0);
    record.writeUInt32LE(nanoseconds >>> 0, 4);
    record.writeUInt32LE(data.length, 8);
    record.writeUInt32LE(originalLength, 12);
    writeSync(this.fd, Buffer.concat([record, data]));
    this.records++;
  }

  close(): void {
    closeSync(this.fd);
  }
}
