// Routes and neighbours: `ip -j route get` (one address, or many through `ip -batch`) and
// `ip -j neigh show`.
import { parseAddress } from '../config/addresses.js';
import { oneLine, type NetHost } from './host.js';
import { parseIpJson } from './links.js';

export interface RouteLookup {
  /** The address looked up, canonical. */
  destination: string;
  /** The next-hop router; absent when the destination is on-link. */
  gateway?: string;
  /** Outgoing interface. */
  dev: string;
  /** Source address the kernel would use. */
  prefsrc?: string;
  /** Route type when not unicast ("local", "unreachable", "blackhole"...). */
  type?: string;
}

/** Canonical text of an address, or the text itself when it does not parse. */
export function canonicalAddress(text: string): string {
  const parsed = parseAddress(text.replace(/%.*$/, ''));
  return parsed.ok ? parsed.address.canonical : text;
}

/** Parses the output of `ip -j route get` (also several arrays, one per line, from -batch). */
export function parseRouteGet(text: string): RouteLookup[] {
  const out: RouteLookup[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    for (const entry of parseIpJson(line, 'ip -j route get')) {
      const dst = entry['dst'];
      const dev = entry['dev'];
      if (typeof dst !== 'string' || typeof dev !== 'string') continue;
      const gateway = entry['gateway'];
      const type = entry['type'];
      out.push({
        destination: canonicalAddress(dst),
        ...(typeof gateway === 'string' && { gateway: canonicalAddress(gateway) }),
        dev,
        ...(typeof entry['prefsrc'] === 'string' && { prefsrc: entry['prefsrc'] }),
        ...(typeof type === 'string' && type !== 'unicast' && { type }),
      });
    }
  }
  return out;
}

/**
 * Looks up the route to each destination (canonical addresses) in one `ip -batch` run. A
 * destination without a route ("Network is unreachable") is absent from the result.
 */
export async function routeGet(host: NetHost, destinations: readonly string[]): Promise<Map<string, RouteLookup>> {
  const result = new Map<string, RouteLookup>();
  if (destinations.length === 0) return result;
  const input = destinations.map((d) => `route get ${d}\n`).join('');
  // -force: keep going after a failed lookup.
  const run = await host.run('ip', ['-j', '-force', '-batch', '-'], input);
  const lookups = parseRouteGet(run.stdout);
  if (lookups.length === 0 && run.code !== 0 && !/unreachable|No route/i.test(run.stderr)) {
    throw new Error(`ip route get failed: ${oneLine(run.stderr)}`);
  }
  for (const lookup of lookups) result.set(lookup.destination, lookup);
  return result;
}

/** Neighbour states (NUD_*) in which the entry's link-layer address can be used. */
const USABLE_STATES = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

export interface Neighbour {
  address: string;
  dev?: string;
  /** Lowercase MAC, when the entry has one. */
  mac?: string;
  /** NUD states: REACHABLE, STALE, DELAY, PROBE, INCOMPLETE, FAILED, PERMANENT, NOARP. */
  states: string[];
  router: boolean;
}

export function parseNeighbours(text: string): Neighbour[] {
  return parseIpJson(text, 'ip -j neigh show').flatMap((entry): Neighbour[] => {
    const dst = entry['dst'];
    if (typeof dst !== 'string') return [];
    const lladdr = entry['lladdr'];
    const states = Array.isArray(entry['state']) ? entry['state'].filter((s): s is string => typeof s === 'string') : [];
    return [
      {
        address: canonicalAddress(dst),
        ...(typeof entry['dev'] === 'string' && { dev: entry['dev'] }),
        ...(typeof lladdr === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(lladdr) && { mac: lladdr.toLowerCase() }),
        states,
        router: entry['router'] !== undefined && entry['router'] !== false,
      },
    ];
  });
}

/** The MAC of a neighbour entry, if the entry is one the kernel would send to. */
export function usableMac(neighbour: Neighbour | undefined): string | undefined {
  if (neighbour?.mac === undefined) return undefined;
  return neighbour.states.some((s) => USABLE_STATES.has(s)) ? neighbour.mac : undefined;
}

/** Whether the entry should be refreshed (usable but not confirmed recently). */
export function isStale(neighbour: Neighbour | undefined): boolean {
  return neighbour !== undefined && neighbour.states.includes('STALE');
}

/** The neighbour entries of one interface. */
export async function readNeighbours(host: NetHost, dev: string): Promise<Neighbour[]> {
  const run = await host.run('ip', ['-j', 'neigh', 'show', 'dev', dev]);
  if (run.code !== 0) throw new Error(`ip -j neigh show dev ${dev} failed: ${oneLine(run.stderr)}`);
  return parseNeighbours(run.stdout);
}
