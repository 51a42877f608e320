// Interface facts from `ip -j addr show`: index, MAC, MTU, state and addresses.
import { closestMatch } from '../config/suggest.js';
import { oneLine, type NetHost } from './host.js';

export interface LinkAddress {
  family: 'ipv4' | 'ipv6';
  address: string;
  prefixLength: number;
  /** "global", "link", "host"... */
  scope: string;
}

export interface LinkInfo {
  name: string;
  ifindex: number;
  /** Lowercase colon-separated MAC; absent for links without one (tun, some tunnels). */
  mac?: string;
  mtu: number;
  /** Administratively up (flag UP). */
  adminUp: boolean;
  /** Carrier present (flag LOWER_UP). */
  carrier: boolean;
  operstate: string;
  /** "ether", "loopback", "none"... */
  linkType: string;
  flags: string[];
  addresses: LinkAddress[];
  /** The XDP program attached to the link, if any. */
  xdp?: AttachedXdp;
}

export interface AttachedXdp {
  /** How it is attached: `ip link set dev X xdpdrv|xdpgeneric|xdpoffload off` removes it. */
  mode: 'native' | 'generic' | 'offload' | 'multi';
  programId?: number;
  programName?: string;
}

const XDP_MODES: Record<number, AttachedXdp['mode']> = { 1: 'native', 2: 'generic', 3: 'offload', 4: 'multi' };

function attachedXdp(value: unknown): AttachedXdp | undefined {
  if (!isRecord(value) || typeof value['mode'] !== 'number') return undefined;
  const mode = XDP_MODES[value['mode']];
  if (mode === undefined) return undefined;
  const prog = isRecord(value['prog']) ? value['prog'] : {};
  return {
    mode,
    ...(typeof prog['id'] === 'number' && { programId: prog['id'] }),
    ...(typeof prog['name'] === 'string' && { programName: prog['name'] }),
  };
}

export class NetParseError extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses the JSON array `ip` prints (empty output means an empty list). */
export function parseIpJson(text: string, what: string): Record<string, unknown>[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    throw new NetParseError(`${what}: output is not JSON (is iproute2 older than 4.14?): ${trimmed.slice(0, 80)}`);
  }
  if (!Array.isArray(value)) throw new NetParseError(`${what}: expected a JSON array`);
  return value.filter(isRecord);
}

/** Parses `ip -j addr show` (or `ip -j link show`, which has no addresses). */
export function parseLinks(text: string): LinkInfo[] {
  return parseIpJson(text, 'ip -j addr show').flatMap((entry): LinkInfo[] => {
    const name = entry['ifname'];
    const ifindex = entry['ifindex'];
    if (typeof name !== 'string' || typeof ifindex !== 'number') return [];
    const flags = Array.isArray(entry['flags']) ? entry['flags'].filter((f): f is string => typeof f === 'string') : [];
    const mac = typeof entry['address'] === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(entry['address']) ? entry['address'].toLowerCase() : undefined;
    const addrInfo = Array.isArray(entry['addr_info']) ? entry['addr_info'].filter(isRecord) : [];
    const addresses = addrInfo.flatMap((a): LinkAddress[] => {
      const family = a['family'] === 'inet' ? 'ipv4' : a['family'] === 'inet6' ? 'ipv6' : undefined;
      if (family === undefined || typeof a['local'] !== 'string') return [];
      return [{ family, address: a['local'], prefixLength: typeof a['prefixlen'] === 'number' ? a['prefixlen'] : 0, scope: typeof a['scope'] === 'string' ? a['scope'] : 'global' }];
    });
    return [
      {
        name,
        ifindex,
        ...(mac !== undefined && { mac }),
        mtu: typeof entry['mtu'] === 'number' ? entry['mtu'] : 0,
        adminUp: flags.includes('UP'),
        carrier: flags.includes('LOWER_UP'),
        operstate: typeof entry['operstate'] === 'string' ? entry['operstate'] : 'UNKNOWN',
        linkType: typeof entry['link_type'] === 'string' ? entry['link_type'] : 'unknown',
        flags,
        addresses,
        ...((xdp) => (xdp !== undefined ? { xdp } : {}))(attachedXdp(entry['xdp'])),
      },
    ];
  });
}

/** Every interface of the host's network namespace, with its addresses. */
export async function readLinks(host: NetHost): Promise<LinkInfo[]> {
  const result = await host.run('ip', ['-j', 'addr', 'show']);
  if (result.code !== 0) throw new Error(`ip -j addr show failed: ${oneLine(result.stderr)}`);
  return parseLinks(result.stdout);
}

export type LinkCheck = { ok: true; link: LinkInfo } | { ok: false; reason: string };

/**
 * Whether `name` can carry VIP traffic: it exists, is an Ethernet link with a MAC, is up and
 * has a carrier. The reason completes "interface eth0 ...".
 */
export function checkLink(name: string, links: readonly LinkInfo[]): LinkCheck {
  const link = links.find((l) => l.name === name);
  if (link === undefined) {
    const guess = closestMatch(name, links.map((l) => l.name));
    const known = links.map((l) => l.name).join(', ');
    return { ok: false, reason: `does not exist${guess !== undefined ? ` (did you mean "${guess}"?)` : known !== '' ? ` (interfaces: ${known})` : ''}` };
  }
  if (link.linkType !== 'ether' || link.mac === undefined) {
    return { ok: false, reason: `is not an Ethernet interface (link type ${link.linkType}); l4mux sends Ethernet frames` };
  }
  if (!link.adminUp) return { ok: false, reason: `is down (ip link set ${name} up)` };
  if (!link.carrier) return { ok: false, reason: 'has no carrier (cable, peer or switch port down)' };
  return { ok: true, link };
}

/** The interface's first address of a family, preferring global scope. */
export function preferredAddress(link: LinkInfo, family: 'ipv4' | 'ipv6'): LinkAddress | undefined {
  const candidates = link.addresses.filter((a) => a.family === family);
  return candidates.find((a) => a.scope === 'global') ?? candidates[0];
}
