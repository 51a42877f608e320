// Types of the health-checking engine: what a probe returns, and the checker's events and
// status. The checks themselves (HealthCheckSpec and its options) are configuration, defined in
// src/config/health/types.ts and re-exported here.
import type { CheckKind } from '../config/health/types.js';

export type * from '../config/health/types.js';
export { CHECK_KINDS } from '../config/health/types.js';

/** Health of a backend as the checker sees it. `unknown` until the first verdict. */
export type HealthState = 'up' | 'down' | 'unknown';

// ---- Probes ----

/** The outcome of one probe. Probes never throw: every problem is `ok: false` with a detail. */
export interface ProbeResult {
  ok: boolean;
  /** Time from the start of the probe to its verdict, in milliseconds. */
  latencyMs: number;
  /** One line for humans: "HTTP 200", "connect ECONNREFUSED", "no reply within 500 ms"... */
  detail: string;
  /** Dynamic weight reported by the backend (absolute, 0..65535), when the check reads one. */
  weight?: number;
  /**
   * The probe failed for a reason local to this mux (no route of our own, no file descriptors,
   * no source address...): the errno. Such a failure is no evidence against the backend.
   */
  localFault?: string;
  /** The probe ran out of its timeout (no answer, as opposed to an answer that was wrong). */
  timedOut?: boolean;
}

/** Where a probe goes. */
export interface ProbeTarget {
  /** IPv4 or IPv6 literal: the backend, or the VIP for a tunnelled check. */
  address: string;
  /** TCP/UDP port (tcp, http, https, udp; optional for exec). */
  port?: number;
  /** Source address to bind to (set by a tunnel route so that the probe takes the tunnel). */
  localAddress?: string;
}

/** Per-run parameters of a probe. */
export interface ProbeContext {
  timeoutMs: number;
  /** Aborts the probe (its result is then `ok: false`, "cancelled"); sockets are closed at once. */
  signal?: AbortSignal;
  /** The backend's configured weight: the base of weights reported as a percentage ("75%"). */
  baseWeight?: number;
  /** Stalls of the event loop since a moment (performance.now()): the deadline gives them back. */
  loopLag?: { stalledWithin(from: number): number };
}

/** A ready-to-run probe of one backend. */
export type Probe = (target: ProbeTarget, ctx: ProbeContext) => Promise<ProbeResult>;

// ---- Events and status ----

interface BackendRef {
  /** The check's key, "<pool>/<backend address>". */
  backend: string;
  pool: string;
  address: string;
}

/** A change of health state. */
export interface HealthTransition extends BackendRef {
  from: HealthState;
  to: HealthState;
  reason: string;
  /** Date.now() of the verdict. */
  at: number;
}

/** A change of a backend's effective weight (the reported weight, else the configured one). */
export interface WeightChange extends BackendRef {
  from: number;
  to: number;
  reason: string;
  at: number;
}

/** Every probe's outcome (for metrics and debugging). */
export interface CheckResultEvent extends BackendRef {
  result: ProbeResult;
  state: HealthState;
  at: number;
}

/** A check's probes fail (or no longer fail) for a local reason: no verdict on the backend. */
export interface LocalFaultEvent extends BackendRef {
  errno: string;
  detail: string;
  at: number;
  /** true: a probe got through again. */
  cleared: boolean;
}

export interface HealthEvents {
  transition: [HealthTransition];
  weight: [WeightChange];
  result: [CheckResultEvent];
  localFault: [LocalFaultEvent];
}

/** What the checker knows about one backend. */
export interface BackendHealth extends BackendRef {
  kind: CheckKind;
  state: HealthState;
  /** Date.now() of the last transition (or of the check's creation). */
  since: number;
  reason: string;
  /** Reported weight if any, else the configured weight. */
  weight: number;
  reportedWeight?: number;
  successesInARow: number;
  failuresInARow: number;
  checks: number;
  lastResult?: ProbeResult & { at: number };
  inFlight: boolean;
  /** A local fault keeps this check from judging the backend (state kept as it was). */
  localFault?: { errno: string; detail: string; since: number };
  /**
   * Probes not counted against the backend because they failed for a local reason (a local
   * errno, or a timeout while this process's event loop was stalled: LOOPSTALL).
   */
  localFaults: number;
}
