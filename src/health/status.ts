// Accepted HTTP status codes, written like keepalived's status_code and HAProxy's
// "http-check expect status": "200", "200-299", "200,204,301-302".
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

export function statusAccepted(status: number, ranges: StatusRanges): boolean {
  return ranges.some(([low, high]) => status >= low && status <= high);
}
