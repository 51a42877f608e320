// The small languages of health-check options: accepted HTTP status codes, written like
// keepalived's status_code and HAProxy's "http-check expect status" ("200", "200-299",
// "200,204,301-302"); hex payloads; regular expressions.
import type { StatusRanges } from './types.js';

export type StatusParse = { ok: true; ranges: StatusRanges } | { ok: false; reason: string };

export function parseStatusRanges(text: string): StatusParse {
  const ranges: Array<readonly [number, number]> = [];
  const parts = text.split(',').map((p) => p.trim());
  for (const part of parts) {
    const match = /^(\d{3})(?:\s*-\s*(\d{3}))?$/.exec(part);
    if (match === null) {
      return { ok: false, reason: `${JSON.stringify(text)} is not a list of status codes (write e.g. "200", "200-299" or "200,301-302")` };
    }
    const low = Number(match[1]);
    const high = match[2] === undefined ? low : Number(match[2]);
    for (const code of [low, high]) {
      if (code < 100 || code > 599) return { ok: false, reason: `${code} is not an HTTP status code (100..599)` };
    }
    if (high < low) return { ok: false, reason: `"${part}" is an empty range (${low} is above ${high})` };
    ranges.push([low, high]);
  }
  return { ok: true, ranges };
}

/**
 * Hex as written in a config: pairs of hex digits, optionally separated by spaces or colons,
 * optionally prefixed with 0x. Returns lowercase hex, or undefined when it is not hex.
 */
export function normalizeHex(text: string): string | undefined {
  const compact = text.trim().replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (compact.length === 0 || compact.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(compact)) return undefined;
  return compact.toLowerCase();
}

/** Why `source` is not a valid regular expression, if it is not. */
export function regexProblem(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message.replace(/^Invalid regular expression: /, '') : String(e);
  }
}
