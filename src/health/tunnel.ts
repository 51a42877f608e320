// Tunnelled checks: the probe is aimed at the VIP, and the dataplane makes it travel the way
// client traffic does (encapsulated to one particular backend), so that a check proves that
// the backend decapsulates and serves the VIP, not only that its own address answers
// (GLB's and Katran's "health checks through the tunnel").
//
// The health engine only needs a source address per backend: the dataplane (later) installs a
// rule "packets from <that source> to <the VIP> are encapsulated to <that backend>", hands the
// address out through this hook, and removes the rule when the route is closed. TCP, HTTP(S)
// and UDP probes bind to `localAddress` and connect to the VIP's address and port.

export interface TunnelRequest {
  /** The check's key, "<pool>/<backend address>". */
  key: string;
  pool: string;
  backend: string;
  vip: string;
  vipAddress: string;
  port?: number;
  protocol: 'tcp' | 'udp';
}

export interface TunnelRoute {
  /** Source address the probes bind to. */
  localAddress: string;
  /** Undoes the route; called when the check is removed or the checker stops. */
  close(): void | Promise<void>;
}

export interface TunnelHook {
  /** Prepares the path of one backend's tunnelled checks; a rejection fails the probe. */
  open(request: TunnelRequest): Promise<TunnelRoute>;
}

/** Why a check cannot run without a hook (shown as its reason; it stays "unknown"). */
export const NO_TUNNEL_HOOK = 'tunnelled check, but the dataplane provides no tunnel route yet';
