// A client as a persistent VIP sees it: its address, or its prefix ("198.51.100.0/24",
// "2001:db8:1::/48") when the VIP's granularity is shorter than an address (the form the fast
// path's punts carry).
import { formatIpv6, parseAddress } from '../config/addresses.js';

/** The client key part for `address` under `prefixLength`; undefined when it is not an address. */
export function clientOf(address: string, prefixLength: number): { client: string; family: 'ipv4' | 'ipv6' } | undefined {
  const parsed = parseAddress(address);
  if (!parsed.ok) return undefined;
  const { family, bytes, canonical } = parsed.address;
  const bits = family === 'ipv4' ? 32 : 128;
  if (prefixLength >= bits) return { client: canonical, family };
  const masked = Uint8Array.from(bytes);
  for (let i = 0; i < masked.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLength - i * 8));
    masked[i] = (masked[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  const text = family === 'ipv4' ? masked.join('.') : formatIpv6(masked);
  return { client: `${text}/${prefixLength}`, family };
}
