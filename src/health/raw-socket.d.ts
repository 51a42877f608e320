// Minimal typings for the parts of raw-socket (1.8.x) that src/health uses.
declare module 'raw-socket' {
  import type { EventEmitter } from 'node:events';

  namespace raw {
    interface SocketOptions {
      protocol?: number;
      addressFamily?: number;
      bufferSize?: number;
    }
    interface Socket extends EventEmitter {
      send(
        buffer: Buffer,
        offset: number,
        length: number,
        address: string,
        afterCallback: (error: Error | null, bytes: number) => void,
      ): Socket;
      setOption(level: number, option: number, value: Buffer | number, length?: number): void;
      close(): Socket;
      on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
      on(event: 'error', listener: (error: Error) => void): this;
      on(event: 'close', listener: () => void): this;
    }
  }
  const raw: {
    createSocket(options?: raw.SocketOptions): raw.Socket;
    createChecksum(...buffers: Array<Buffer | { buffer: Buffer; offset: number; length: number }>): number;
    writeChecksum(buffer: Buffer, offset: number, checksum: number): Buffer;
    AddressFamily: { IPv4: number; IPv6: number };
    Protocol: { None: number; ICMP: number; TCP: number; UDP: number; ICMPv6: number };
  };
  export = raw;
}
