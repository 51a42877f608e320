// Which outer sources the agent accepts tunnel packets from (the muxes): `--mux-source`
// prefixes, or by default the on-link prefixes of the backend's tunnel addresses on its
// interface (where its muxes or its gateway toward them are). Anything else that reaches the
// backend is not a mux, and the agent refuses its tunnel packets (counted).
import { formatIpv6, parseAddress } from '../config/addresses.js';
import type { LinkAddress } from '../net/links.js';

import type { AgentAddresses } from './types.js';

export type PrefixParse = { ok: true; prefix: string } | { ok: false; reason: string };

/** The network of `bytes` under a prefix of `length` bits (host bits cleared). */
function network(bytes: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let bit = length; bit < out.length * 8; bit++) {
    const i = bit >> 3;
    out[i] = (out[i] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return out;
}

function formatNetwork(family: 'ipv4' | 'ipv6', bytes: Uint8Array, length: number): string {
  const net = network(bytes, length);
  return `${family === 'ipv4' ? net.join('.') : formatIpv6(net)}/${length}`;
}

/** "10.0.0.0/8", "fd00::/16" or a single address (a host prefix), canonical, host bits cleared. */
export function parsePrefix(text: string): PrefixParse {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const parsed = parseAddress(addressText);
  if (!parsed.ok) return { ok: false, reason: `${JSON.stringify(text)} is not an address or prefix` };
  const max = parsed.address.family === 'ipv4' ? 32 : 128;
  let length = max;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(digits) || Number(digits) > max) {
      return { ok: false, reason: `${JSON.stringify(text)}: the prefix length must be 0-${max}` };
    }
    length = Number(digits);
  }
  return { ok: true, prefix: formatNetwork(parsed.address.family, parsed.address.bytes, length) };
}

export type DefaultSources = { ok: true; sources: string[] } | { ok: false; reason: string };

/**
 * The on-link prefixes of the backend's tunnel addresses on its interface: each address must
 * be configured there, with a prefix length below its host length.
 */
export function defaultMuxSources(iface: string, addresses: AgentAddresses, onInterface: readonly LinkAddress[]): DefaultSources {
  const sources: string[] = [];
  for (const address of [addresses.ipv4, addresses.ipv6]) {
    if (address === undefined) continue;
    const parsed = parseAddress(address);
    if (!parsed.ok) return { ok: false, reason: parsed.reason };
    const own = onInterface.find((a) => {
      const p = parseAddress(a.address);
      return p.ok && p.address.canonical === parsed.address.canonical;
    });
    const host = parsed.address.family === 'ipv4' ? 32 : 128;
    if (own === undefined || own.prefixLength >= host) {
      return {
        ok: false,
        reason:
          `--mux-source is required: ${address} is ${own === undefined ? `not configured on ${iface}` : `a host address (/${host}) on ${iface}`}, ` +
          'so there is no on-link prefix to take the muxes from (give the muxes\' addresses or prefixes; "any" accepts every source)',
      };
    }
    sources.push(formatNetwork(parsed.address.family, parsed.address.bytes, own.prefixLength));
  }
  return { ok: true, sources };
}
