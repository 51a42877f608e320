// Defaults and limits of health checks. l4mux.schema.json says the same in its "default",
// "minimum" and "maximum" annotations (test/config/health.test.ts keeps them in step).
//
// Timing follows HAProxy's well-known defaults rather than keepalived's 60 s delay_loop, which
// is far too slow for a packet-level balancer: a check every 2 s, 1 s to answer, 2 successes to
// come back, 3 failures to go down. A stopped backend is taken out within
// fall × interval × (1 + jitter) + timeout = 3 × 2.2 + 1 = 7.6 s at worst.
import type { CheckKind, WeightSource } from './types.js';

export const DEFAULT_HEALTH = {
  enabled: true,
  kind: 'tcp' as CheckKind,
  /** Milliseconds between the starts of two checks of a backend. */
  interval: 2000,
  /** Milliseconds a probe may take; when not given, at most the interval. */
  timeout: 1000,
  rise: 2,
  fall: 3,
  /** Fraction of the interval: every interval is drawn from interval × (1 ± jitter). */
  jitter: 0.1,
  tunnelled: false,
  weightFrom: 'none' as WeightSource,
};

export const DEFAULT_HTTP = {
  method: 'GET',
  path: '/',
  /** Like keepalived's HTTP_GET: any 2xx. */
  expectStatus: '200-299',
  weightHeader: 'X-Load-Weight',
  verify: false,
};

/** Port of http/https checks when neither the check nor the pool's VIPs give one. */
export const DEFAULT_PORTS: Partial<Record<CheckKind, number>> = { http: 80, https: 443 };

/** The unprivileged user exec checks run as (exec.user). */
export const DEFAULT_EXEC_USER = 'nobody';

/** Echo payload bytes, as ping(8) sends. */
export const DEFAULT_ICMP_PAYLOAD = 56;

export const LIMITS = {
  interval: { min: 100, max: 3_600_000 },
  timeout: { min: 10, max: 600_000 },
  rise: { min: 1, max: 100 },
  fall: { min: 1, max: 100 },
  jitter: { min: 0, max: 0.5 },
  icmpPayload: { min: 0, max: 1400 },
  weight: { min: 0, max: 65535 },
};
