// Whether an HTTP status is among a check's accepted ones (parsed with the config,
// src/config/health/syntax.ts).
import type { StatusRanges } from './types.js';

export function statusAccepted(status: number, ranges: StatusRanges): boolean {
  return ranges.some(([low, high]) => status >= low && status <= high);
}
