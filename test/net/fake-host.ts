// A NetHost that answers the `ip` and `ethtool` commands src/net runs from a small model of a
// host: links, routes, neighbours, offload features. Probes can make a neighbour appear.
import type { ExecResult, NetHost } from '../../src/net/host.js';

export interface FakeLink {
  name: string;
  ifindex?: number;
  mac?: string;
  mtu?: number;
  up?: boolean;
  carrier?: boolean;
  linkType?: string;
  addresses?: Array<{ family: 'inet' | 'inet6'; local: string; prefixlen: number; scope?: string }>;
  /** An attached XDP program as `ip -j` shows it (mode 1 native, 2 generic). */
  xdp?: { mode: number; prog: { id: number; name: string } };
}

export interface FakeRoute {
  gateway?: string;
  dev: string;
  type?: string;
}

export interface FakeNeighbour {
  dst: string;
  lladdr?: string;
  state: string[];
}

export interface FakeFeature {
  active: boolean;
  fixed?: boolean;
}

export class FakeHost implements NetHost {
  links: FakeLink[] = [];
  /** Route lookup by destination address (canonical text); undefined = unreachable. */
  route: (dst: string) => FakeRoute | undefined = () => undefined;
  neighbours = new Map<string, FakeNeighbour[]>();
  features = new Map<string, Record<string, FakeFeature>>();
  /** Called for each probe; by default a probe to a router in `answering` resolves it. */
  answering = new Map<string, string>();
  readonly probes: Array<{ target: string; source: string | undefined; ifname: string }> = [];
  readonly commands: string[] = [];
  /** Makes ethtool -K fail with this message. */
  ethtoolSetError: string | undefined;
  sysctls = new Map<string, string>([
    ['net.ipv4.ip_forward', '0'],
    ['net.ipv6.conf.all.forwarding', '0'],
  ]);

  async sysctl(name: string): Promise<string | undefined> {
    return this.sysctls.get(name);
  }

  async run(file: string, args: readonly string[], input?: string): Promise<ExecResult> {
    this.commands.push([file, ...args].join(' '));
    const a = args.join(' ');
    if (file === 'ip') {
      if (a === '-j addr show') return ok(JSON.stringify(this.links.map((l, i) => linkJson(l, i))));
      if (a === '-j -force -batch -') return this.batch(input ?? '');
      const xdpOff = /^link set dev (\S+) (xdpdrv|xdpgeneric|xdpoffload) off$/.exec(a);
      if (xdpOff !== null) {
        const link = this.links.find((l) => l.name === xdpOff[1]);
        if (link !== undefined) delete link.xdp;
        return ok('');
      }
      const neigh = /^-j neigh show dev (\S+)$/.exec(a);
      if (neigh !== null) return ok(JSON.stringify(this.neighbours.get(neigh[1] ?? '') ?? []));
    }
    if (file === 'ethtool') {
      const read = /^--json -k (\S+)$/.exec(a);
      if (read !== null) {
        const f = this.features.get(read[1] ?? '');
        if (f === undefined) return { code: 1, stdout: '', stderr: 'netlink error: no device matches name' };
        const entry: Record<string, unknown> = { ifname: read[1] };
        for (const [name, s] of Object.entries(f)) entry[name] = { active: s.active, fixed: s.fixed === true, requested: s.active };
        return ok(JSON.stringify([entry]));
      }
      if (args[0] === '-K') {
        const f = this.features.get(args[1] ?? '');
        if (f === undefined) return { code: 1, stdout: '', stderr: 'netlink error: no device matches name' };
        if (this.ethtoolSetError !== undefined) return { code: 1, stdout: '', stderr: this.ethtoolSetError };
        for (let i = 2; i + 1 < args.length; i += 2) {
          const feature = f[args[i] ?? ''];
          if (feature !== undefined && feature.fixed !== true) feature.active = args[i + 1] === 'on';
        }
        return ok('');
      }
    }
    return { code: 1, stdout: '', stderr: `fake host: unknown command ${file} ${a}` };
  }

  async probe(target: string, source: string | undefined, ifname: string): Promise<void> {
    this.probes.push({ target, source, ifname });
    const mac = this.answering.get(target);
    if (mac === undefined) return;
    this.setNeighbour(ifname, { dst: target, lladdr: mac, state: ['REACHABLE'] });
  }

  setNeighbour(dev: string, entry: FakeNeighbour): void {
    const list = (this.neighbours.get(dev) ?? []).filter((n) => n.dst !== entry.dst);
    list.push(entry);
    this.neighbours.set(dev, list);
  }

  private batch(input: string): ExecResult {
    const out: string[] = [];
    let code = 0;
    let stderr = '';
    for (const line of input.split('\n')) {
      const m = /^route get (\S+)$/.exec(line.trim());
      if (m === null) continue;
      const dst = m[1] ?? '';
      const r = this.route(dst);
      if (r === undefined) {
        code = 1;
        stderr += 'RTNETLINK answers: Network is unreachable\n';
        continue;
      }
      out.push(JSON.stringify([{ ...(r.type !== undefined && { type: r.type }), dst, ...(r.gateway !== undefined && { gateway: r.gateway }), dev: r.dev, flags: [] }]));
    }
    return { code, stdout: out.map((l) => `${l}\n`).join(''), stderr };
  }
}

function ok(stdout: string): ExecResult {
  return { code: 0, stdout, stderr: '' };
}

function linkJson(l: FakeLink, i: number): Record<string, unknown> {
  const up = l.up ?? true;
  const carrier = l.carrier ?? true;
  const flags = ['BROADCAST', 'MULTICAST', ...(up ? ['UP'] : []), ...(up && carrier ? ['LOWER_UP'] : [])];
  return {
    ifindex: l.ifindex ?? i + 1,
    ifname: l.name,
    flags,
    mtu: l.mtu ?? 1500,
    operstate: up && carrier ? 'UP' : 'DOWN',
    link_type: l.linkType ?? 'ether',
    ...(l.mac !== undefined && { address: l.mac }),
    addr_info: (l.addresses ?? []).map((a) => ({ ...a, scope: a.scope ?? 'global' })),
    ...(l.xdp !== undefined && { xdp: l.xdp }),
  };
}

/**
 * A mux host: eth0 (10.9.0.2/24, fd09::2/64) with a router at 10.9.0.1 / fd09::1
 * (02:00:00:00:00:fe) that answers probes, routes to 10.1.0.0/16 and fd01::/32 via it, and GRO on.
 */
export function muxHost(): FakeHost {
  const host = new FakeHost();
  host.links = [
    { name: 'lo', mac: '00:00:00:00:00:00', mtu: 65536, linkType: 'loopback' },
    {
      name: 'eth0',
      mac: '02:00:00:00:00:01',
      mtu: 1500,
      addresses: [
        { family: 'inet', local: '10.9.0.2', prefixlen: 24 },
        { family: 'inet6', local: 'fd09::2', prefixlen: 64 },
      ],
    },
  ];
  host.route = (dst) => {
    if (dst.startsWith('10.1.')) return { gateway: '10.9.0.1', dev: 'eth0' };
    if (dst.startsWith('fd01:')) return { gateway: 'fd09::1', dev: 'eth0' };
    if (dst.startsWith('10.9.0.')) return { dev: 'eth0' };
    if (dst.startsWith('fd09:')) return { dev: 'eth0' };
    return undefined;
  };
  host.answering.set('10.9.0.1', '02:00:00:00:00:fe');
  host.answering.set('fd09::1', '02:00:00:00:00:fe');
  host.features.set('eth0', {
    'generic-receive-offload': { active: true },
    'large-receive-offload': { active: false, fixed: true },
    'rx-gro-hw': { active: false, fixed: true },
  });
  return host;
}
