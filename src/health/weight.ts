// Dynamic weights reported by backends, in the forms keepalived's MISC_CHECK (misc_dynamic) and
// HAProxy's agent-check made familiar:
//   weight=N   anywhere in the text, on a line of its own ("weight = 20" and "WEIGHT=20" too)
//   N          the whole text is one integer
//   N%         a percentage of the backend's configured weight (either form)
// Weights are clamped to 0..65535; 0 means "drain" (no new flows).
import { LIMITS } from '../config/health/defaults.js';

export type WeightReading = { ok: true; weight: number } | { ok: false; reason: string } | undefined;

const WEIGHT_LINE = /^\s*weight\s*[=:]\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/im;
const BARE = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/;

/**
 * The weight `text` reports; undefined when it reports none. `base` is the configured weight,
 * the base of percentages.
 */
export function parseWeightText(text: string, base: number): WeightReading {
  const match = WEIGHT_LINE.exec(text) ?? BARE.exec(text);
  if (match === null) return undefined;
  return weightFrom(match[1] ?? '', match[2] === '%', base);
}

/** A header value: "N" or "N%". */
export function parseWeightValue(value: string, base: number): WeightReading {
  const match = BARE.exec(value);
  if (match === null) return { ok: false, reason: `${JSON.stringify(value.slice(0, 40))} is not a weight (an integer, or a percentage like "50%")` };
  return weightFrom(match[1] ?? '', match[2] === '%', base);
}

function weightFrom(number: string, percent: boolean, base: number): WeightReading {
  const value = Number(number);
  if (!Number.isFinite(value)) return { ok: false, reason: `${number} is not a number` };
  if (!percent && !Number.isInteger(value)) return { ok: false, reason: `${number} is not an integer weight` };
  const raw = percent ? Math.round((base * value) / 100) : value;
  return { ok: true, weight: Math.min(LIMITS.weight.max, Math.max(LIMITS.weight.min, raw)) };
}
