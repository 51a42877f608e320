// Tunnelled checks: the probe is aimed at the VIP and travels the way client traffic does
// (encapsulated to one particular backend), so that a check proves that the backend
// decapsulates and serves the VIP, not only that its own address answers (GLB's and
// Katran's "health checks through the tunnel").
//
// The health engine asks a hook for the route of one backend's checks; the daemon provides
// it from the config (the VIP's encapsulation, the mux's own address), and the route probes
// along it (probes/tunnelled.ts).
import type { ProbeContext, ProbeResult, UdpCheckOptions } from './types.js';

export interface TunnelRequest {
  /** The check's key, "<pool>/<backend address>". */
  key: string;
  pool: string;
  backend: string;
  vip: string;
  vipAddress: string;
  port?: number;
  protocol: 'tcp' | 'udp';
  /** UDP checks: the request and the expected reply. */
  udp?: UdpCheckOptions;
}

export interface TunnelRoute {
  /** One probe along the route. */
  probe(ctx: ProbeContext): Promise<ProbeResult>;
  /** Releases what the route holds; called when the check is removed or the checker stops. */
  close(): void | Promise<void>;
}

export interface TunnelHook {
  /** Prepares the path of one backend's tunnelled checks; a rejection fails the probe. */
  open(request: TunnelRequest): Promise<TunnelRoute>;
}

/** Why a check cannot run without a hook (shown as its reason; it stays "unknown"). */
export const NO_TUNNEL_HOOK = 'tunnelled check, but nothing provides tunnel routes here (only `l4mux run` does)';
