// Health checks as configuration: the check of one backend resolved from the file (what the
// checker in src/health runs), and the `healthCheck` objects as written in the file.

export type CheckKind = 'tcp' | 'http' | 'https' | 'udp' | 'icmp' | 'exec';
export const CHECK_KINDS: readonly CheckKind[] = ['tcp', 'http', 'https', 'udp', 'icmp', 'exec'];

/**
 * Where a probe's dynamic weight comes from: `none`, the standard output of an exec check
 * (`stdout`), the response body of an http/https/udp check (`body`), or an HTTP response header
 * (`header`, named by `http.weightHeader`).
 */
export type WeightSource = 'none' | 'stdout' | 'body' | 'header';

// ---- Check options (normalized) ----

/** Inclusive ranges of accepted HTTP status codes. */
export type StatusRanges = ReadonlyArray<readonly [number, number]>;

export interface TlsOptions {
  /** Verify the certificate chain and name. Default false (like keepalived's SSL_GET). */
  verify: boolean;
  /** SNI and the name verified; default: `http.host` when it is a name, else none. */
  servername?: string;
  /** PEM file of the CA(s) to trust instead of the system store. */
  ca?: string;
}

export interface HttpCheckOptions {
  method: string;
  path: string;
  /** Host header; default: the target address (with the port when it is not the default). */
  host?: string;
  headers: Record<string, string>;
  /** As written, e.g. "200-299" or "200,301-302". */
  expectStatus: string;
  expectStatusRanges: StatusRanges;
  /** The body must contain this text. */
  expectBody?: string;
  /** The body must match this regular expression (JavaScript syntax, no flags). */
  expectBodyRegex?: string;
  /** Header read when `weightFrom` is "header". */
  weightHeader: string;
  tls: TlsOptions;
}

/** How a reply is matched: text it contains, a regular expression, or bytes (hex) it contains. */
export type ReplyMatch = { kind: 'any' } | { kind: 'text'; text: string } | { kind: 'regex'; source: string } | { kind: 'hex'; hex: string };

export interface UdpCheckOptions {
  /** The datagram sent, as lowercase hex. */
  payloadHex: string;
  expect: ReplyMatch;
}

export interface IcmpCheckOptions {
  /** Bytes of echo payload after the 8-byte ICMP header (at least 16 are always sent). */
  payloadSize: number;
}

export interface ExecCheckOptions {
  command: string;
  args: string[];
  /** Added to the daemon's environment, before the BACKEND_* variables. */
  env: Record<string, string>;
  /**
   * Who the command runs as (exec.user, resolved from /etc/passwd; never uid 0). Absent: as the
   * daemon (only specs built without the config do that).
   */
  user?: ExecUser;
}

export interface ExecUser {
  name: string;
  uid: number;
  /** The user's primary group; the command gets no supplementary groups. */
  gid: number;
}

/** The check of one backend, resolved from the config: what the scheduler runs. */
export interface HealthCheckSpec {
  /** Unique and stable across reloads: "<pool>/<backend address>". */
  key: string;
  pool: string;
  /** Canonical backend address. */
  backend: string;
  /** Configured weight of the backend (base of percentage weights). */
  weight: number;
  kind: CheckKind;
  /** Milliseconds between the starts of two checks. */
  interval: number;
  /** Milliseconds a probe may take. */
  timeout: number;
  /** Consecutive successes that bring a down backend up. */
  rise: number;
  /** Consecutive failures that bring an up (or unknown) backend down. */
  fall: number;
  /** Each interval is drawn from interval × (1 ± jitter). */
  jitter: number;
  /** Where probes go: the backend, or the VIP when `tunnel` is set. */
  target: { address: string; port?: number };
  /** Present for tunnelled checks: probes are aimed at the VIP through the tunnel to the backend. */
  tunnel?: { vip: string; vipAddress: string };
  weightFrom: WeightSource;
  http?: HttpCheckOptions;
  udp?: UdpCheckOptions;
  icmp?: IcmpCheckOptions;
  exec?: ExecCheckOptions;
}

// ---- As written in the config file ----

export interface HttpCheckInput {
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  expectStatus?: string;
  expectBody?: string;
  expectBodyRegex?: string;
  weightHeader?: string;
  tls?: { verify?: boolean; servername?: string; ca?: string };
}

export interface UdpCheckInput {
  send?: string;
  sendHex?: string;
  expect?: string;
  expectRegex?: string;
  expectHex?: string;
}

export interface ExecCheckInput {
  command?: string;
  args?: string[];
  env?: Record<string, string>;
  user?: string;
}

/**
 * `pools.<name>.healthCheck` and `pools.<name>.backends[i].healthCheck`: a backend's object
 * overrides its pool's, property by property (the http/udp/icmp/exec blocks too).
 */
export interface HealthCheckInput {
  enabled?: boolean;
  kind?: CheckKind;
  interval?: number;
  timeout?: number;
  rise?: number;
  fall?: number;
  jitter?: number;
  port?: number;
  tunnelled?: boolean;
  vip?: string;
  weightFrom?: WeightSource;
  http?: HttpCheckInput;
  udp?: UdpCheckInput;
  icmp?: { payloadSize?: number };
  exec?: ExecCheckInput;
}
