// Turns a resolved check into a probe function: one place that knows every kind.
import type { HealthCheckSpec, Probe } from '../types.js';
import { createExecProbe, Limiter } from './exec.js';
import { createHttpProbe } from './http.js';
import type { IcmpPinger } from './icmp.js';
import { probeTcp } from './tcp.js';
import { createUdpProbe } from './udp.js';
import { DEFAULT_HTTP, DEFAULT_ICMP_PAYLOAD } from '../../config/health/defaults.js';

export { probeTcp } from './tcp.js';
export { createHttpProbe, type HttpProbeOptions } from './http.js';
export { createUdpProbe, type UdpProbeOptions } from './udp.js';
export { IcmpPinger, probeIcmp } from './icmp.js';
export { createExecProbe, Limiter, type ExecProbeOptions } from './exec.js';

/** What probes share within one checker. */
export interface ProbeDeps {
  /** The checker's ICMP pinger (one raw socket per family for all ICMP checks). */
  pinger: () => IcmpPinger;
  /** Bounds the exec checks running at once. */
  execLimiter: Limiter;
}

export type ProbeFactory = (spec: HealthCheckSpec, deps: ProbeDeps) => Probe;

export const createProbe: ProbeFactory = (spec, deps) => {
  switch (spec.kind) {
    case 'tcp':
      return probeTcp;
    case 'http':
    case 'https':
      return createHttpProbe({
        ...(spec.http ?? defaultHttp()),
        tlsEnabled: spec.kind === 'https',
        weightFrom: spec.weightFrom,
      });
    case 'udp':
      if (spec.udp === undefined) return async () => ({ ok: false, latencyMs: 0, detail: 'udp check without udp options' });
      return createUdpProbe({ ...spec.udp, weightFrom: spec.weightFrom });
    case 'icmp': {
      const size = spec.icmp?.payloadSize ?? DEFAULT_ICMP_PAYLOAD;
      return (target, ctx) => deps.pinger().ping(target, ctx, size);
    }
    case 'exec':
      if (spec.exec === undefined) return async () => ({ ok: false, latencyMs: 0, detail: 'exec check without a command' });
      return createExecProbe({ ...spec.exec, weightFrom: spec.weightFrom, pool: spec.pool, backend: spec.backend }, deps.execLimiter);
  }
};

function defaultHttp(): NonNullable<HealthCheckSpec['http']> {
  return {
    method: DEFAULT_HTTP.method,
    path: DEFAULT_HTTP.path,
    headers: {},
    expectStatus: DEFAULT_HTTP.expectStatus,
    expectStatusRanges: [[200, 299]],
    weightHeader: DEFAULT_HTTP.weightHeader,
    tls: { verify: DEFAULT_HTTP.verify },
  };
}

