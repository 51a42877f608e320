// Minimal typings for the parts of ip6addr (0.2.x) that src/config uses.
declare module 'ip6addr' {
  namespace ip6addr {
    interface ToStringOptions {
      format?: 'auto' | 'v4' | 'v4-mapped' | 'v6';
      zeroElide?: boolean;
      zeroPad?: boolean;
    }
    interface Addr {
      /** 'ipv4' for plain and IPv4-mapped addresses. */
      kind(): 'ipv4' | 'ipv6';
      toString(opts?: ToStringOptions): string;
      /** The 16 bytes of the IPv6 (or IPv4-mapped) form. */
      toBuffer(buf?: Buffer): Buffer;
      compare(other: Addr | string): number;
    }
    interface CIDR {
      contains(input: Addr | string): boolean;
    }
  }
  const ip6addr: {
    /** Throws an Error for an invalid address. */
    parse(input: string | number): ip6addr.Addr;
    compare(a: ip6addr.Addr | string, b: ip6addr.Addr | string): number;
    createCIDR(addr: string, prefixLength?: number): ip6addr.CIDR;
  };
  export = ip6addr;
}
