// Types of the backend agent (`l4mux agent`): what the native addon takes and reports.

/** The backend's own tunnel endpoint addresses (outer destination of the mux's packets). */
export interface AgentAddresses {
  ipv4?: string;
  ipv6?: string;
}

/** Options of the addon's `Agent` (native/addon/agent_binding.cc). */
export interface NativeAgentOptions {
  /** Interface the tunnel packets arrive on. */
  interface: string;
  /** TUN device to create; decapsulated packets are injected there. */
  tun: string;
  addresses: AgentAddresses;
  /** Accepted GUE destination ports (at most 8). */
  guePorts: number[];
  /** With a key, only GRE packets carrying it are accepted; without, only keyless ones. */
  greKey?: number;
  /** Outer sources accepted (the muxes), as prefixes "address/length"; at least one. */
  muxSources: string[];
  /** Inner destinations delivered (the VIPs); at least one. */
  vips: string[];
  /** Sink sockets that keep the kernel from answering tunnel packets with ICMP errors (default true). */
  suppressIcmp?: boolean;
}

export type EncapName = 'ipip' | 'gre' | 'gue';
export type TunnelName = '4in4' | '6in6' | '4in6' | '6in4';

export interface AgentCounters {
  /** Frames the packet socket's filter let through. */
  rxFrames: number;
  rxBytes: number;
  /** Frames larger than a receive slot (GRO super-frames above 64 KiB): dropped. */
  rxTruncated: number;
  rxErrors: number;
  /** The kernel could not queue frames for the packet socket. */
  kernelDrops: number;
  decapsulated: number;
  /** Inner packets written to the TUN device. */
  tunPackets: number;
  tunBytes: number;
  tunErrors: number;
  /** Packets the kernel routed into the TUN device (nothing should be): read and dropped. */
  tunDiscarded: number;
  checksumsFinalized: number;
  /** Every received frame by decapsulation outcome ("decapsulated", "gre_wrong_key", ...). */
  status: Record<string, number>;
  encap: Record<EncapName, number>;
  tunnels: Record<TunnelName, number>;
}

/** What `l4mux agent` was asked to do, validated. */
export interface AgentSettings {
  interface: string;
  tun: string;
  /** VIPs the backend serves: configured on the TUN device. */
  vips: string[];
  addresses: AgentAddresses;
  guePorts: number[];
  greKey?: number;
  /** Seconds between counter log lines; 0 disables them. */
  statsIntervalSeconds: number;
  /** `--mux-source` prefixes; absent: the on-link prefixes of `addresses` on `interface`. */
  muxSources?: string[];
}
