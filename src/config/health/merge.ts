// The one place where a backend's check is put together: defaults, then the pool's
// healthCheck, then the backend's, property by property.
//
// Blocks (http, udp, icmp, exec, http.tls, http.headers, exec.env) merge key by key; lists
// (exec.args) are replaced. Alternatives exclude each other across layers: a backend that says
// "sendHex" drops its pool's "send", "expectRegex" drops "expect"/"expectHex", and so on.
import { isRecord } from '../path.js';
import type { HealthCheckInput } from './types.js';

/** Properties of which one layer's choice replaces the others of the group from lower layers. */
const EXCLUSIVE: Record<string, string[][]> = {
  http: [['expectBody', 'expectBodyRegex']],
  udp: [
    ['send', 'sendHex'],
    ['expect', 'expectRegex', 'expectHex'],
  ],
};
const NESTED: Record<string, string[]> = { http: ['tls', 'headers'], exec: ['env'] };
const BLOCKS = ['http', 'udp', 'icmp', 'exec'];

/** `layers` merged, lowest first; undefined layers are skipped. Inputs are not modified. */
export function mergeHealthCheck(...layers: Array<HealthCheckInput | undefined>): HealthCheckInput {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!isRecord(layer)) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (BLOCKS.includes(key) && isRecord(value)) out[key] = mergeBlock(key, out[key], value);
      else out[key] = value;
    }
  }
  return out as HealthCheckInput;
}

function mergeBlock(name: string, lower: unknown, upper: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = isRecord(lower) ? { ...lower } : {};
  for (const group of EXCLUSIVE[name] ?? []) {
    if (group.some((k) => Object.hasOwn(upper, k))) for (const k of group) delete out[k];
  }
  for (const [key, value] of Object.entries(upper)) {
    if ((NESTED[name] ?? []).includes(key) && isRecord(value) && isRecord(out[key])) out[key] = { ...out[key], ...value };
    else out[key] = value;
  }
  return out;
}
