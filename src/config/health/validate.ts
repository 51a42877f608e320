// Health checks of a config document: the checks the schema cannot express, and the
// resolution of every backend's check into a HealthCheckSpec (defaults, pool, backend merged;
// port and tunnel target chosen from the VIPs that use the pool).
//
// Problems are reported as "path: reason", like the rest of the config. A pool's healthCheck
// must be valid by itself (it is what its backends get); a backend's override is reported only
// for the problems it brings in itself.
import { parseUnicast } from '../addresses.js';
import { DEFAULT_WEIGHT } from '../defaults.js';
import { formatIssues, issue, makeIssueLookup, type Issue } from '../issues.js';
import { formatPath, isRecord, type PathSegment } from '../path.js';
import { defaultVipName } from '../semantic.js';
import { DEFAULT_EXEC_USER, DEFAULT_HEALTH, DEFAULT_HTTP, DEFAULT_ICMP_PAYLOAD, DEFAULT_PORTS } from './defaults.js';
import { lookupUser } from './users.js';
import { mergeHealthCheck } from './merge.js';
import { checkHealthSchema, healthCheckLocations } from './schema.js';
import { normalizeHex, parseStatusRanges, regexProblem } from './syntax.js';
import type { CheckKind, HealthCheckInput, HealthCheckSpec, HttpCheckOptions, ReplyMatch, WeightSource } from './types.js';

export interface HealthIssues {
  errors: Issue[];
  warnings: Issue[];
  /** The resolved checks; complete only when there are no errors. */
  checks: HealthCheckSpec[];
}

export type HealthConfigResult =
  | { ok: true; checks: HealthCheckSpec[]; warnings: string[] }
  | { ok: false; errors: string[] };

/**
 * Validates the health checks of a whole config document (schema fragment and semantic
 * checks) and resolves them: what the daemon hands to HealthChecker.update().
 */
export function validateHealthConfig(document: unknown): HealthConfigResult {
  const schemaIssues = checkHealthSchema(document);
  const semantic = checkHealthSemantics(document, schemaIssues);
  const errors = [...schemaIssues, ...semantic.errors];
  if (errors.length > 0) return { ok: false, errors: formatIssues(errors, document) };
  return { ok: true, checks: semantic.checks, warnings: formatIssues(semantic.warnings, document) };
}

interface VipInfo {
  index: number;
  name: string;
  address: string;
  port: number | undefined;
  pool: string;
}

/** Everything below the schema: run on the raw document, skipping what the schema flagged. */
export function checkHealthSemantics(document: unknown, schemaIssues: readonly Issue[] = []): HealthIssues {
  const result: HealthIssues = { errors: [], warnings: [], checks: [] };
  if (healthCheckLocations(document).length === 0) return result;
  const flagged = makeIssueLookup(schemaIssues);
  const vips = collectVips(document);
  const pools = isRecord(document) ? document['pools'] : undefined;
  if (!isRecord(pools)) return result;

  for (const [poolName, pool] of Object.entries(pools)) {
    if (!isRecord(pool)) continue;
    const poolPath: PathSegment[] = ['pools', poolName, 'healthCheck'];
    const poolCheck = isRecord(pool['healthCheck']) ? (pool['healthCheck'] as HealthCheckInput) : undefined;
    const poolFlagged = flagged(poolPath);
    const context: Context = { pool: poolName, vips, poolVips: vips.filter((v) => v.pool === poolName) };
    const poolProblems = new Set<string>();
    if (poolCheck !== undefined && !poolFlagged) {
      const resolved = resolveCheck(mergeHealthCheck(poolCheck), poolCheck, context);
      for (const p of resolved.errors) {
        poolProblems.add(problemKey(p));
        result.errors.push(issue([...poolPath, ...p.path], p.reason));
      }
      for (const p of resolved.warnings) {
        poolProblems.add(problemKey(p));
        result.warnings.push(issue([...poolPath, ...p.path], p.reason));
      }
    }

    const backends = pool['backends'];
    if (!Array.isArray(backends)) continue;
    const seen = new Set<string>();
    backends.forEach((backend: unknown, b) => {
      const backendPath: PathSegment[] = ['pools', poolName, 'backends', b, 'healthCheck'];
      if (!isRecord(backend)) return;
      const own = isRecord(backend['healthCheck']) ? (backend['healthCheck'] as HealthCheckInput) : undefined;
      if (own === undefined && poolCheck === undefined) return;
      if (poolFlagged || flagged(backendPath)) return;
      const address = typeof backend['address'] === 'string' ? parseUnicast(backend['address'], 'a backend') : undefined;
      if (address === undefined || !address.ok || seen.has(address.address.canonical)) return; // reported by the config checks
      seen.add(address.address.canonical);
      const resolved = resolveCheck(mergeHealthCheck(poolCheck, own), own ?? {}, context);
      if (own !== undefined) {
        for (const p of resolved.errors) if (!poolProblems.has(problemKey(p))) result.errors.push(issue([...backendPath, ...p.path], p.reason));
        for (const p of resolved.warnings) if (!poolProblems.has(problemKey(p))) result.warnings.push(issue([...backendPath, ...p.path], p.reason));
      }
      if (resolved.check === undefined) return;
      const weight = typeof backend['weight'] === 'number' ? backend['weight'] : DEFAULT_WEIGHT;
      const canonical = address.address.canonical;
      const { port, ...check } = resolved.check;
      result.checks.push({
        key: `${poolName}/${canonical}`,
        pool: poolName,
        backend: canonical,
        weight,
        ...check,
        target: { address: check.tunnel?.vipAddress ?? canonical, ...(port !== undefined && { port }) },
      });
    });
  }
  return result;
}

// ---- one check ----

interface Context {
  pool: string;
  vips: VipInfo[];
  /** VIPs that use the pool. */
  poolVips: VipInfo[];
}

interface Problem {
  path: PathSegment[];
  reason: string;
}

type ResolvedCheck = Omit<HealthCheckSpec, 'key' | 'pool' | 'backend' | 'weight' | 'target'> & { port?: number };

interface Resolution {
  /** Undefined when there were errors, or when the check is disabled. */
  check: ResolvedCheck | undefined;
  errors: Problem[];
  warnings: Problem[];
}

const BLOCK_KINDS: Record<'http' | 'udp' | 'icmp' | 'exec', CheckKind[]> = {
  http: ['http', 'https'],
  udp: ['udp'],
  icmp: ['icmp'],
  exec: ['exec'],
};
const WEIGHT_KINDS: Record<Exclude<WeightSource, 'none'>, CheckKind[]> = {
  stdout: ['exec'],
  body: ['http', 'https', 'udp'],
  header: ['http', 'https'],
};
const PORT_KINDS: CheckKind[] = ['tcp', 'http', 'https', 'udp'];
// The mux builds a tunnelled probe's packets itself: a TCP handshake's first step, or a UDP
// request. HTTP through the tunnel would need a TCP stack of its own.
const TUNNEL_KINDS: CheckKind[] = ['tcp', 'udp'];
/** RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MANAGED_HEADERS = ['host', 'connection', 'content-length', 'transfer-encoding'];

/** Resolves `check` (already merged); `own` is what this level wrote, for the block checks. */
function resolveCheck(check: HealthCheckInput, own: HealthCheckInput, context: Context): Resolution {
  const errors: Problem[] = [];
  const warnings: Problem[] = [];
  const error = (path: PathSegment[], reason: string): void => void errors.push({ path, reason });
  const warn = (path: PathSegment[], reason: string): void => void warnings.push({ path, reason });
  const kind = check.kind ?? DEFAULT_HEALTH.kind;
  const quotedKind = JSON.stringify(kind);

  for (const block of ['http', 'udp', 'icmp', 'exec'] as const) {
    if (own[block] !== undefined && !BLOCK_KINDS[block].includes(kind)) {
      error([block], `"${block}" options are only used by ${listKinds(BLOCK_KINDS[block])} checks (this check is ${quotedKind})`);
    }
  }
  if (check.enabled === false) return { check: undefined, errors, warnings };

  const interval = check.interval ?? DEFAULT_HEALTH.interval;
  // Like HAProxy's "timeout check" defaulting to "inter": never longer than the interval.
  const timeout = check.timeout ?? Math.min(DEFAULT_HEALTH.timeout, interval);
  if (timeout > interval) {
    warn(['timeout'], `${timeout} ms is longer than the interval (${interval} ms): a slow backend is checked back to back, and failures are seen later than the interval suggests`);
  }

  const weightFrom = check.weightFrom ?? DEFAULT_HEALTH.weightFrom;
  if (weightFrom !== 'none' && !WEIGHT_KINDS[weightFrom].includes(kind)) {
    error(['weightFrom'], `"${weightFrom}" is only for ${listKinds(WEIGHT_KINDS[weightFrom])} checks (this check is ${quotedKind})`);
  }

  // Tunnel target.
  let tunnelVip: VipInfo | undefined;
  const tunnelled = check.tunnelled ?? DEFAULT_HEALTH.tunnelled;
  if (tunnelled) {
    if (!TUNNEL_KINDS.includes(kind)) {
      error(['tunnelled'], `tunnelled checks are ${listKinds(TUNNEL_KINDS)} checks (this check is ${quotedKind})`);
    } else if (check.vip !== undefined) {
      const vip = context.vips.find((v) => v.name === check.vip);
      if (vip === undefined) error(['vip'], `VIP ${JSON.stringify(check.vip)} is not defined`);
      else if (vip.pool !== context.pool) error(['vip'], `VIP ${JSON.stringify(check.vip)} (${formatPath(['vips', vip.index])}) uses pool ${JSON.stringify(vip.pool)}, not ${JSON.stringify(context.pool)}`);
      else tunnelVip = vip;
    } else if (context.poolVips.length === 1) {
      tunnelVip = context.poolVips[0];
    } else if (context.poolVips.length === 0) {
      error(['tunnelled'], `no VIP uses pool ${JSON.stringify(context.pool)}, so a tunnelled check has nothing to aim at`);
    } else {
      error(['vip'], `required for a tunnelled check: pool ${JSON.stringify(context.pool)} is used by ${context.poolVips.length} VIPs (${context.poolVips.map((v) => JSON.stringify(v.name)).join(', ')}); name the one to check`);
    }
  } else if (check.vip !== undefined) {
    warn(['vip'], 'has no effect without "tunnelled": true');
  }

  // Port.
  let port = check.port;
  if (kind === 'icmp' && port !== undefined) warn(['port'], 'has no effect on icmp checks');
  if (port === undefined && tunnelVip !== undefined) {
    port = tunnelVip.port;
    if (port === undefined) error(['port'], `required: VIP ${JSON.stringify(tunnelVip.name)} takes every port, so the check needs one`);
  }
  if (port === undefined && !tunnelled && (PORT_KINDS.includes(kind) || kind === 'exec')) {
    const ports = new Set(context.poolVips.map((v) => v.port));
    const only = ports.size === 1 ? [...ports][0] : undefined;
    port = only ?? DEFAULT_PORTS[kind];
    if (port === undefined && PORT_KINDS.includes(kind)) {
      const known = [...ports].filter((p): p is number => p !== undefined).sort((a, b) => a - b);
      const why =
        context.poolVips.length === 0
          ? `no VIP uses pool ${JSON.stringify(context.pool)}`
          : ports.has(undefined) && known.length === 0
            ? `the VIPs of pool ${JSON.stringify(context.pool)} take every port`
            : `the VIPs of pool ${JSON.stringify(context.pool)} use ${ports.has(undefined) ? 'every port and ' : ''}ports ${known.join(', ')}`;
      error(['port'], `required for a ${kind} check: ${why}`);
    }
  }

  const resolved: ResolvedCheck = {
    kind,
    interval,
    timeout,
    rise: check.rise ?? DEFAULT_HEALTH.rise,
    fall: check.fall ?? DEFAULT_HEALTH.fall,
    jitter: check.jitter ?? DEFAULT_HEALTH.jitter,
    weightFrom,
  };
  if (port !== undefined) resolved.port = port;
  if (tunnelVip !== undefined) resolved.tunnel = { vip: tunnelVip.name, vipAddress: tunnelVip.address };

  switch (kind) {
    case 'http':
    case 'https': {
      const http = resolveHttp(check, kind, error, warn);
      if (http !== undefined) resolved.http = http;
      break;
    }
    case 'udp': {
      const udp = resolveUdp(check, error);
      if (udp !== undefined) resolved.udp = udp;
      break;
    }
    case 'icmp':
      resolved.icmp = { payloadSize: check.icmp?.payloadSize ?? DEFAULT_ICMP_PAYLOAD };
      break;
    case 'exec': {
      const exec = check.exec;
      const name = exec?.user ?? DEFAULT_EXEC_USER;
      const user = lookupUser(name);
      if (!user.ok) error(['exec', 'user'], user.reason);
      if (exec?.command === undefined) error(['exec', 'command'], 'required for an exec check');
      else if (user.ok) resolved.exec = { command: exec.command, args: [...(exec.args ?? [])], env: { ...exec.env }, user: user.user };
      break;
    }
    case 'tcp':
      break;
  }
  return { check: errors.length === 0 ? resolved : undefined, errors, warnings };
}

type Report = (path: PathSegment[], reason: string) => void;

function resolveHttp(check: HealthCheckInput, kind: CheckKind, error: Report, warn: Report): HttpCheckOptions | undefined {
  const input = check.http ?? {};
  const at = (...rest: PathSegment[]): PathSegment[] => ['http', ...rest];
  const before = { errors: 0 };
  const fail: Report = (path, reason) => {
    before.errors++;
    error(path, reason);
  };
  const method = input.method ?? DEFAULT_HTTP.method;
  const path = input.path ?? DEFAULT_HTTP.path;
  if (!path.startsWith('/')) fail(at('path'), `${JSON.stringify(path)} does not start with "/"`);
  else if (/[\s\x00-\x1f\x7f]/.test(path)) fail(at('path'), `${JSON.stringify(path)} contains spaces or control characters; percent-encode them`);
  if (input.host !== undefined && /[\s\x00-\x1f\x7f]/.test(input.host)) fail(at('host'), `${JSON.stringify(input.host)} contains spaces or control characters`);
  const statusText = input.expectStatus ?? DEFAULT_HTTP.expectStatus;
  const status = parseStatusRanges(statusText);
  if (!status.ok) fail(at('expectStatus'), status.reason);
  if (input.expectBody !== undefined && input.expectBodyRegex !== undefined) {
    fail(at(), 'give expectBody or expectBodyRegex, not both');
  }
  if (input.expectBodyRegex !== undefined) {
    const problem = regexProblem(input.expectBodyRegex);
    if (problem !== undefined) fail(at('expectBodyRegex'), `not a valid regular expression: ${problem}`);
  }
  const weightFrom = check.weightFrom ?? DEFAULT_HEALTH.weightFrom;
  if (method === 'HEAD' && (input.expectBody !== undefined || input.expectBodyRegex !== undefined || weightFrom === 'body')) {
    fail(at('method'), 'a response to HEAD has no body to check');
  }
  for (const [name, value] of Object.entries(input.headers ?? {})) {
    if (!HEADER_NAME.test(name)) fail(at('headers', name), `${JSON.stringify(name)} is not a valid header name`);
    else if (/[\r\n\x00]/.test(value)) fail(at('headers', name), 'the value contains a line break or NUL');
    else if (MANAGED_HEADERS.includes(name.toLowerCase())) {
      fail(at('headers', name), name.toLowerCase() === 'host' ? 'set the Host header with http.host' : `${name} is set by the check itself`);
    }
  }
  const weightHeader = input.weightHeader ?? DEFAULT_HTTP.weightHeader;
  if (!HEADER_NAME.test(weightHeader)) fail(at('weightHeader'), `${JSON.stringify(weightHeader)} is not a valid header name`);
  else if (input.weightHeader !== undefined && weightFrom !== 'header') warn(at('weightHeader'), 'has no effect without "weightFrom": "header"');
  if (input.tls !== undefined && kind === 'http') warn(at('tls'), 'has no effect on an http check (did you mean "kind": "https"?)');
  if (before.errors > 0 || !status.ok) return undefined;
  const options: HttpCheckOptions = {
    method,
    path,
    headers: { ...input.headers },
    expectStatus: statusText,
    expectStatusRanges: status.ranges,
    weightHeader,
    tls: { verify: input.tls?.verify ?? DEFAULT_HTTP.verify },
  };
  if (input.host !== undefined) options.host = input.host;
  if (input.expectBody !== undefined) options.expectBody = input.expectBody;
  if (input.expectBodyRegex !== undefined) options.expectBodyRegex = input.expectBodyRegex;
  if (input.tls?.servername !== undefined) options.tls.servername = input.tls.servername;
  if (input.tls?.ca !== undefined) options.tls.ca = input.tls.ca;
  return options;
}

function resolveUdp(check: HealthCheckInput, error: Report): HealthCheckSpec['udp'] {
  const input = check.udp ?? {};
  let problems = 0;
  const fail: Report = (path, reason) => {
    problems++;
    error(path, reason);
  };
  let payloadHex: string | undefined;
  if (input.send !== undefined && input.sendHex !== undefined) fail(['udp'], 'give send or sendHex, not both');
  else if (input.send !== undefined) payloadHex = Buffer.from(input.send, 'utf8').toString('hex');
  else if (input.sendHex !== undefined) {
    payloadHex = normalizeHex(input.sendHex);
    if (payloadHex === undefined) fail(['udp', 'sendHex'], `${JSON.stringify(input.sendHex)} is not hex (pairs of hex digits, spaces or colons between bytes allowed)`);
  } else {
    fail(['udp'], 'required for a udp check: what to send (udp.send or udp.sendHex)');
  }
  const given = (['expect', 'expectRegex', 'expectHex'] as const).filter((k) => input[k] !== undefined);
  let expect: ReplyMatch = { kind: 'any' };
  if (given.length > 1) fail(['udp'], `give one of expect, expectRegex and expectHex, not ${given.join(' and ')}`);
  else if (input.expect !== undefined) expect = { kind: 'text', text: input.expect };
  else if (input.expectRegex !== undefined) {
    const problem = regexProblem(input.expectRegex);
    if (problem !== undefined) fail(['udp', 'expectRegex'], `not a valid regular expression: ${problem}`);
    expect = { kind: 'regex', source: input.expectRegex };
  } else if (input.expectHex !== undefined) {
    const hex = normalizeHex(input.expectHex);
    if (hex === undefined) fail(['udp', 'expectHex'], `${JSON.stringify(input.expectHex)} is not hex (pairs of hex digits, spaces or colons between bytes allowed)`);
    expect = { kind: 'hex', hex: hex ?? '' };
  }
  if (problems > 0 || payloadHex === undefined) return undefined;
  return { payloadHex, expect };
}

// ---- helpers ----

function collectVips(document: unknown): VipInfo[] {
  const vips = isRecord(document) ? document['vips'] : undefined;
  if (!Array.isArray(vips)) return [];
  const out: VipInfo[] = [];
  vips.forEach((vip: unknown, index) => {
    if (!isRecord(vip) || typeof vip['address'] !== 'string' || typeof vip['pool'] !== 'string') return;
    const parsed = parseUnicast(vip['address'], 'a VIP');
    if (!parsed.ok) return;
    const port = typeof vip['port'] === 'number' && Number.isInteger(vip['port']) && vip['port'] >= 1 && vip['port'] <= 65535 ? vip['port'] : undefined;
    const protocol = typeof vip['protocol'] === 'string' ? vip['protocol'] : '?';
    const name = typeof vip['name'] === 'string' ? vip['name'] : defaultVipName(parsed.address.canonical, protocol, port);
    out.push({ index, name, address: parsed.address.canonical, port, pool: vip['pool'] });
  });
  return out;
}

function problemKey(p: Problem): string {
  return `${formatPath(p.path)}\u0000${p.reason}`;
}

function listKinds(kinds: readonly CheckKind[]): string {
  if (kinds.length === 1) return kinds[0] ?? '';
  return `${kinds.slice(0, -1).join(', ')} or ${kinds[kinds.length - 1] ?? ''}`;
}
