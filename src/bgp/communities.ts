// BGP communities as written in the config: "AS:value" (standard, RFC 1997) or
// "AS:value1:value2" (large, RFC 8092).
import type { Community } from './types.js';

const DECIMAL = /^(0|[1-9][0-9]{0,9})$/;

export type CommunityParse = { ok: true; community: Community } | { ok: false; reason: string };

export function parseCommunity(text: string): CommunityParse {
  const parts = text.split(':');
  const quoted = JSON.stringify(text);
  if ((parts.length !== 2 && parts.length !== 3) || !parts.every((p) => DECIMAL.test(p))) {
    return { ok: false, reason: `${quoted} is not a community (write "AS:value", e.g. "65001:100", or a large community "AS:value:value")` };
  }
  const numbers = parts.map(Number);
  if (numbers.length === 2) {
    const [as, value] = numbers as [number, number];
    if (as > 0xffff || value > 0xffff) {
      return { ok: false, reason: `${quoted}: both parts of a standard community are 0-65535 (a 4-byte AS needs a large community "AS:value:value")` };
    }
    return { ok: true, community: { kind: 'standard', parts: [as, value] } };
  }
  if (numbers.some((n) => n > 0xffffffff)) return { ok: false, reason: `${quoted}: each part of a large community is 0-4294967295` };
  return { ok: true, community: { kind: 'large', parts: numbers as [number, number, number] } };
}

export function formatCommunity(c: Community): string {
  return c.parts.join(':');
}
