// IP address parsing, classification and canonical formatting for config values.
import ip6addr from 'ip6addr';

import type { AddressFamily } from './types.js';

export interface ParsedAddress {
  family: AddressFamily;
  /** Dotted quad for IPv4; RFC 5952 text (lowercase, longest zero run as ::) for IPv6. */
  canonical: string;
  /** 4 bytes for IPv4, 16 for IPv6. */
  bytes: Uint8Array;
}

export type AddressParse = { ok: true; address: ParsedAddress } | { ok: false; reason: string };

/**
 * Parses an IPv4 or IPv6 address literal. `text` is quoted in any reason, which completes the
 * sentence `"<text>" ...`.
 */
export function parseAddress(text: string): AddressParse {
  const quoted = JSON.stringify(text);
  const notAnAddress = (detail?: string): AddressParse => ({
    ok: false,
    reason: `${quoted} is not an IPv4 or IPv6 address${detail === undefined ? '' : ` (${detail})`}`,
  });
  if (text.includes('/')) return notAnAddress('a single address is expected, not a prefix');
  if (text.includes('%')) return notAnAddress('zone indexes such as %eth0 are not supported');
  if (text.startsWith('[') && text.endsWith(']')) return notAnAddress('write IPv6 addresses without brackets');
  const isV6Literal = text.includes(':');
  // ip6addr accepts a few forms that inet_pton (and most tools) reject; refuse them first.
  if (!isV6Literal && /(^|\.)0[0-9]/.test(text)) {
    return notAnAddress('leading zeros in an IPv4 octet are ambiguous: some tools read them as octal');
  }
  if (isV6Literal && text.split(':').some((group) => /^[0-9a-fA-F]{5,}$/.test(group))) {
    return notAnAddress('an IPv6 group has at most four hex digits');
  }
  let addr: ip6addr.Addr;
  try {
    addr = ip6addr.parse(text);
  } catch (e) {
    if (isV6Literal && /dotted-quad/.test(e instanceof Error ? e.message : '')) {
      return notAnAddress('dotted-quad notation is accepted only for IPv4 and IPv4-mapped addresses; write the rest in hex');
    }
    return notAnAddress();
  }
  const bytes16 = new Uint8Array(addr.toBuffer(Buffer.alloc(16)));
  if (!isV6Literal) {
    const bytes = bytes16.slice(12);
    return { ok: true, address: { family: 'ipv4', canonical: bytes.join('.'), bytes } };
  }
  return { ok: true, address: { family: 'ipv6', canonical: formatIpv6(bytes16), bytes: bytes16 } };
}

/** RFC 5952 section 4 text form of 16 bytes. */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // Longest run of two or more zero groups; the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** What kind of special address this is, if any; undefined for an ordinary unicast address. */
export type SpecialAddressKind = 'unspecified' | 'loopback' | 'multicast' | 'broadcast' | 'ipv4-mapped';

export function specialKind(address: ParsedAddress): SpecialAddressKind | undefined {
  const b = address.bytes;
  if (address.family === 'ipv4') {
    if (b.every((x) => x === 0)) return 'unspecified';
    if (b[0] === 127) return 'loopback';
    if (((b[0] ?? 0) & 0xf0) === 0xe0) return 'multicast';
    if (b.every((x) => x === 255)) return 'broadcast';
    return undefined;
  }
  if (b.every((x) => x === 0)) return 'unspecified';
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return 'loopback';
  if (b[0] === 0xff) return 'multicast';
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return 'ipv4-mapped';
  return undefined;
}

/**
 * Parses an address that must be an ordinary unicast address (a VIP, a backend, an outer
 * source). `role` names it in the reason: "a VIP", "a backend", "an outer source".
 */
export function parseUnicast(text: string, role: string): AddressParse {
  const parsed = parseAddress(text);
  if (!parsed.ok) return parsed;
  const kind = specialKind(parsed.address);
  if (kind === undefined) return parsed;
  const quoted = JSON.stringify(text);
  const why = `${role} must be a unicast address`;
  switch (kind) {
    case 'unspecified':
      return { ok: false, reason: `${quoted} is the unspecified address; ${why}` };
    case 'loopback':
      return { ok: false, reason: `${quoted} is a loopback address; ${why} reachable on the network` };
    case 'multicast':
      return { ok: false, reason: `${quoted} is a multicast address; ${why}` };
    case 'broadcast':
      return { ok: false, reason: `${quoted} is the broadcast address; ${why}` };
    case 'ipv4-mapped': {
      const v4 = Array.from(parsed.address.bytes.slice(12)).join('.');
      return { ok: false, reason: `${quoted} is an IPv4-mapped IPv6 address; write the IPv4 address "${v4}" instead` };
    }
  }
}

export function familyName(family: AddressFamily): string {
  return family === 'ipv4' ? 'IPv4' : 'IPv6';
}
