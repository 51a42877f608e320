// The next hop toward the backends, and its MAC, for one served interface.
//
// The dataplane writes one destination MAC in every frame it sends, so all the backends must be
// reached through one next hop (a router on the interface's link), or through next hops that
// share a MAC (the same router's IPv4 and IPv6 addresses). That next hop is node.gateway when the
// file gives one, else the gateway of the kernel's routes to the backends. Its MAC comes from
// the neighbour table; a missing or failed entry is resolved by sending the next hop a datagram
// (the kernel then sends ARP or neighbour solicitations) and reading the table again.
import { EventEmitter } from 'node:events';

import type { NetHost } from './host.js';
import { checkLink, preferredAddress, readLinks, type LinkInfo } from './links.js';
import { isStale, readNeighbours, routeGet, usableMac, type Neighbour } from './routes.js';

export type Family = 'ipv4' | 'ipv6';

export interface NextHopRequest {
  /** The served interface: the next hop must be on its link. */
  interface: string;
  /** Backend addresses (canonical), weight-0 ones included. */
  targets: readonly string[];
  /** node.gateway, canonical: used instead of the routes to the backends. */
  gateway?: string;
}

export interface ResolvedHop {
  /** The address whose MAC is used: a router, or a backend on the link. */
  address: string;
  mac: string;
  /** Neighbour state(s) when it was read. */
  state: string;
  /** True when `address` is a backend on the link rather than a router. */
  onLink: boolean;
  /** How many of the targets go through it (all of them with node.gateway). */
  targets: number;
}

export interface NextHopResolution {
  interface: string;
  /** The MAC to send to; absent when there is nothing to send to (no backends). */
  mac?: string;
  hops: ResolvedHop[];
  source: 'gateway' | 'routes' | 'none';
}

/**
 * Backends the kernel would not route through the resolved next hop (no route, another
 * interface, a local address) are warnings as long as some next hop is found: the frames for
 * them still go to that next hop's MAC, which may well know better. With none found they are
 * the errors.
 */
export type NextHopResult = { ok: true; resolution: NextHopResolution; warnings: string[] } | { ok: false; errors: string[] };

export interface ResolveOptions {
  /** Neighbour reads after the first, each preceded by a probe. Default 6. */
  attempts?: number;
  /** Wait before the first re-read, doubled after each. Default 50 ms (50+100+...+1600 = 3.15 s). */
  initialDelayMs?: number;
  /** The interface's facts, when the caller has just read them. */
  link?: LinkInfo;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function familyOf(address: string): Family {
  return address.includes(':') ? 'ipv6' : 'ipv4';
}

/** "10.1.0.1", "10.1.0.1 and 10.1.0.2", "10.1.0.1, 10.1.0.2 and 5 more". */
function listSome(items: readonly string[], max = 3): string {
  if (items.length <= 1) return items.join('');
  if (items.length <= max) return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
  return `${items.slice(0, max - 1).join(', ')} and ${items.length - max + 1} more`;
}

/** Resolves the next hop of one interface; every problem found is reported. */
export async function resolveNextHop(host: NetHost, request: NextHopRequest, options: ResolveOptions = {}): Promise<NextHopResult> {
  const dev = request.interface;
  let link = options.link;
  if (link === undefined) {
    const check = checkLink(dev, await readLinks(host));
    if (!check.ok) return { ok: false, errors: [`${dev}: interface ${dev} ${check.reason}`] };
    link = check.link;
  }

  // Which addresses must answer ARP / neighbour discovery, and for how many backends each.
  const hops = new Map<string, { onLink: boolean; targets: number }>();
  const errors: string[] = [];
  const anomalies: string[] = [];
  let source: NextHopResolution['source'];
  if (request.gateway !== undefined) {
    source = 'gateway';
    const route = (await routeGet(host, [request.gateway])).get(request.gateway);
    if (route === undefined) errors.push(`${dev}: node.gateway ${request.gateway}: no route to it`);
    else if (route.dev !== dev) errors.push(`${dev}: node.gateway ${request.gateway} is reached via ${route.dev}, not ${dev}: the gateway must be on the link of the interface that sends to it`);
    else if (route.gateway !== undefined) errors.push(`${dev}: node.gateway ${request.gateway} is not on the link of ${dev} (the kernel reaches it via ${route.gateway}); give the address of a router on that link`);
    else if (route.type !== undefined) errors.push(`${dev}: node.gateway ${request.gateway} is a ${route.type} address, not a router`);
    else hops.set(request.gateway, { onLink: false, targets: request.targets.length });
  } else if (request.targets.length === 0) {
    return { ok: true, resolution: { interface: dev, hops: [], source: 'none' }, warnings: [] };
  } else {
    source = 'routes';
    const routes = await routeGet(host, request.targets);
    const noRoute: string[] = [];
    const elsewhere = new Map<string, string[]>();
    const special = new Map<string, string[]>();
    for (const target of request.targets) {
      const route = routes.get(target);
      if (route === undefined) noRoute.push(target);
      else if (route.type !== undefined) special.set(route.type, [...(special.get(route.type) ?? []), target]);
      else if (route.dev !== dev) elsewhere.set(route.dev, [...(elsewhere.get(route.dev) ?? []), target]);
      else {
        const hop = route.gateway ?? target;
        const entry = hops.get(hop) ?? { onLink: route.gateway === undefined, targets: 0 };
        entry.targets++;
        hops.set(hop, entry);
      }
    }
    if (noRoute.length > 0) anomalies.push(`${dev}: no route to ${noRoute.length === 1 ? 'backend' : 'backends'} ${listSome(noRoute)}`);
    for (const [type, targets] of special) {
      anomalies.push(`${dev}: ${targets.length === 1 ? 'backend' : 'backends'} ${listSome(targets)}: the route is of type ${type}`);
    }
    for (const [other, targets] of elsewhere) {
      anomalies.push(
        `${dev}: ${targets.length === 1 ? 'backend' : 'backends'} ${listSome(targets)} ${targets.length === 1 ? 'is' : 'are'} routed via ${other}, not ${dev}: ` +
          `l4mux sends encapsulated packets out of the interface that received them; route the backends via ${dev} or set node.gateway`,
      );
    }
  }
  if (hops.size === 0) errors.push(...anomalies);
  if (errors.length > 0) return { ok: false, errors };
  const warnings = hops.size > 0 ? anomalies.map((a) => `${a} (their packets go to the next hop of the other backends)`) : [];

  // The MAC of each next hop.
  const resolved: ResolvedHop[] = [];
  for (const [address, info] of hops) {
    const found = await neighbourMac(host, link, address, options);
    if (found.mac === undefined) {
      const protocol = familyOf(address) === 'ipv4' ? 'ARP' : 'neighbour discovery';
      const what = info.onLink ? `backend ${address} (on the link, no router)` : `next hop ${address}`;
      errors.push(`${dev}: no ${protocol} answer from ${what} (neighbour state ${found.state})`);
    } else {
      resolved.push({ address, mac: found.mac, state: found.state, onLink: info.onLink, targets: info.targets });
    }
  }
  if (errors.length > 0) return { ok: false, errors };

  const macs = new Set(resolved.map((h) => h.mac));
  if (macs.size > 1) {
    const described = listSome(resolved.map((h) => `${h.address} at ${h.mac}`), 4);
    const onLink = resolved.some((h) => h.onLink);
    return {
      ok: false,
      errors: [
        `${dev}: the backends are reached through ${resolved.length} next hops with different MACs (${described}), but l4mux sends every packet to one next-hop MAC: ` +
          (onLink ? 'put the backends behind a router, or set node.gateway to a router on this link' : 'route every backend family through the same router, or set node.gateway'),
      ],
    };
  }
  const mac = resolved[0]?.mac;
  return { ok: true, resolution: { interface: dev, ...(mac !== undefined && { mac }), hops: resolved, source }, warnings };
}

/** Reads the neighbour entry; probes and re-reads with backoff while it is not usable. */
async function neighbourMac(host: NetHost, link: LinkInfo, address: string, options: ResolveOptions): Promise<{ mac?: string; state: string }> {
  const attempts = options.attempts ?? 6;
  let delay = options.initialDelayMs ?? 50;
  const source = preferredAddress(link, familyOf(address))?.address;
  const read = async (): Promise<Neighbour | undefined> => (await readNeighbours(host, link.name)).find((n) => n.address === address);
  let entry = await read();
  for (let attempt = 0; usableMac(entry) === undefined && attempt < attempts; attempt++) {
    await host.probe(address, source, link.name);
    await sleep(delay);
    delay *= 2;
    entry = await read();
  }
  const mac = usableMac(entry);
  // A stale entry still has the right MAC most of the time; have the kernel confirm it.
  if (mac !== undefined && isStale(entry)) await host.probe(address, source, link.name);
  return { ...(mac !== undefined && { mac }), state: entry === undefined ? 'none' : entry.states.join(',') || 'none' };
}

// ---- Keeping it fresh ----

/** What the tracker knows of one interface. */
export interface TrackedInterface {
  link: LinkInfo;
  resolution: NextHopResolution;
}

export interface TrackerEvents {
  /** The link's MAC or MTU, or the next hop's address or MAC, changed. */
  change: [name: string, now: TrackedInterface, before: TrackedInterface];
  /** A refresh failed; the last good state is kept. */
  failure: [name: string, errors: string[]];
  /** A refresh succeeded after failures. */
  recovered: [name: string];
}

export interface TrackerOptions extends Omit<ResolveOptions, 'link'> {
  /** Time between refreshes. Default 5 s. */
  intervalMs?: number;
}

/**
 * Re-reads the served interfaces and re-resolves their next hops every few seconds, and emits
 * "change" when something the dataplane config depends on changed, so that the daemon pushes a
 * new snapshot. Refreshes never overlap.
 */
export class NextHopTracker extends EventEmitter<TrackerEvents> {
  private readonly requests = new Map<string, NextHopRequest>();
  private readonly state = new Map<string, TrackedInterface>();
  private readonly failing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly host: NetHost,
    private readonly options: TrackerOptions = {},
  ) {
    super();
  }

  /** Sets what to resolve for an interface, with its current known state. */
  track(request: NextHopRequest, current: TrackedInterface): void {
    this.requests.set(request.interface, { ...request, targets: [...request.targets] });
    this.state.set(request.interface, current);
  }

  get(name: string): TrackedInterface | undefined {
    return this.state.get(name);
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.refresh(), this.options.intervalMs ?? 5000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One refresh of every tracked interface (joins one in progress). */
  refresh(): Promise<void> {
    this.running ??= this.refreshAll().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async refreshAll(): Promise<void> {
    let links: LinkInfo[];
    try {
      links = await readLinks(this.host);
    } catch (e) {
      for (const name of this.requests.keys()) this.fail(name, [e instanceof Error ? e.message : String(e)]);
      return;
    }
    for (const [name, request] of this.requests) {
      const before = this.state.get(name);
      if (before === undefined) continue;
      const check = checkLink(name, links);
      if (!check.ok) {
        this.fail(name, [`${name}: interface ${name} ${check.reason}`]);
        continue;
      }
      let result: NextHopResult;
      try {
        result = await resolveNextHop(this.host, request, { ...this.options, link: check.link });
      } catch (e) {
        result = { ok: false, errors: [`${name}: ${e instanceof Error ? e.message : String(e)}`] };
      }
      if (!result.ok) {
        this.fail(name, result.errors);
        continue;
      }
      if (this.failing.delete(name)) this.emit('recovered', name);
      // A request replaced while this refresh ran wins over what it found.
      if (this.requests.get(name) !== request) continue;
      const now: TrackedInterface = { link: check.link, resolution: result.resolution };
      this.state.set(name, now);
      if (fingerprint(now) !== fingerprint(before)) this.emit('change', name, now, before);
    }
  }

  private fail(name: string, errors: string[]): void {
    this.failing.add(name);
    this.emit('failure', name, errors);
  }
}

/** What of the tracked state the dataplane config depends on. */
export function fingerprint(t: TrackedInterface): string {
  return JSON.stringify([t.link.mac, t.link.mtu, t.resolution.mac, t.resolution.hops.map((h) => h.address).sort()]);
}
