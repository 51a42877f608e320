// The `metrics` section of the VIP map: where the Prometheus endpoint listens.
//   "metrics": { "listen": "127.0.0.1:9641" }
// Absent: no endpoint. Present without `listen`: loopback only, port 9641. Host is an address
// literal (IPv6 in brackets), never a name: a root daemon should not bind what DNS says.
import { parseAddress } from '../config/addresses.js';
import { issue, type Issue } from '../config/issues.js';
import { isRecord, type PathSegment } from '../config/path.js';

export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9641';
export const METRICS_PATH = '/metrics';

export interface MetricsConfig {
  /** Canonical "host:port" ("[v6]:port" for IPv6). */
  listen: string;
  host: string;
  port: number;
}

export interface MetricsInput {
  listen?: string;
}

export type ListenParse = { ok: true; host: string; port: number; canonical: string } | { ok: false; reason: string };

/** Parses "HOST:PORT" or "[V6]:PORT"; the reason completes `"<text>" ...`. */
export function parseListen(text: string): ListenParse {
  const quoted = JSON.stringify(text);
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (m === null) return { ok: false, reason: `${quoted} is not HOST:PORT (write IPv6 addresses in brackets, e.g. "[::1]:9641")` };
  const hostText = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return { ok: false, reason: `${quoted}: port ${port} is not in 1..65535` };
  const parsed = parseAddress(hostText);
  if (!parsed.ok) return { ok: false, reason: `${quoted}: ${parsed.reason}` };
  const { family, canonical } = parsed.address;
  if (m[1] !== undefined && family !== 'ipv6') return { ok: false, reason: `${quoted}: brackets are only for IPv6 addresses` };
  return { ok: true, host: canonical, port, canonical: family === 'ipv6' ? `[${canonical}]:${port}` : `${canonical}:${port}` };
}

/** Semantic checks of the section (the schema checks its shape). */
export function checkMetricsSection(document: unknown): Issue[] {
  if (!isRecord(document) || !isRecord(document['metrics'])) return [];
  const listen = document['metrics']['listen'];
  if (typeof listen !== 'string') return [];
  const path: PathSegment[] = ['metrics', 'listen'];
  const parsed = parseListen(listen);
  return parsed.ok ? [] : [issue(path, parsed.reason)];
}

/** Only for validated input. */
export function normalizeMetrics(input: MetricsInput): MetricsConfig {
  const parsed = parseListen(input.listen ?? DEFAULT_METRICS_LISTEN);
  if (!parsed.ok) throw new Error(`internal error: metrics.listen passed validation but does not parse: ${parsed.reason}`);
  return { listen: parsed.canonical, host: parsed.host, port: parsed.port };
}
