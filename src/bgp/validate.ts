// The `bgp` section: the checks the schema cannot express (addresses, router id, names,
// passwords, communities, references to VIP addresses) and its normalization. Runs on the raw
// document like the rest of the config, skipping what the schema already flagged; problems are
// "path: reason" issues.
import { familyName, parseAddress, parseUnicast } from '../config/addresses.js';
import { issue, makeIssueLookup, type Issue } from '../config/issues.js';
import { isRecord, type PathSegment } from '../config/path.js';
import type { AddressFamily } from '../config/types.js';
import { formatCommunity, parseCommunity } from './communities.js';
import { DEFAULT_BFD, DEFAULT_BIRD, DEFAULT_DRAIN_SECONDS, DEFAULT_HOLD_TIME, DEFAULT_RUN_DIRECTORY, MAX_PASSWORD_LENGTH, NEIGHBOUR_NAME } from './defaults.js';
import type { BfdTimers, BgpConfig, BgpInput, BgpNeighbour, BgpRoute, Community } from './types.js';

export interface BgpIssues {
  errors: Issue[];
  warnings: Issue[];
  /** Present when the document has a valid `bgp` section. */
  config?: BgpConfig;
}

const PASSWORD = /^[\x20-\x7e]+$/;

function get(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** The neighbour's name when the file gives none: its address in BIRD's protocol name syntax. */
export function defaultNeighbourName(address: string): string {
  return `n_${address.replace(/[^A-Za-z0-9]/g, '_')}`;
}

export function checkBgpSemantics(document: unknown, schemaIssues: readonly Issue[] = []): BgpIssues {
  const result: BgpIssues = { errors: [], warnings: [] };
  if (!isRecord(document) || !Object.hasOwn(document, 'bgp')) return result;
  const bgp = document['bgp'];
  const flagged = makeIssueLookup(schemaIssues);
  const str = (value: unknown, path: PathSegment[]): string | undefined => (typeof value === 'string' && !flagged(path) ? value : undefined);
  const { errors, warnings } = result;

  // Router id: an IPv4 address, by default the mux's own IPv4 outer source.
  let routerId: string | undefined;
  const routerIdText = str(get(bgp, 'routerId'), ['bgp', 'routerId']);
  if (routerIdText !== undefined) {
    const parsed = parseAddress(routerIdText);
    if (!parsed.ok) errors.push(issue(['bgp', 'routerId'], parsed.reason));
    else if (parsed.address.family !== 'ipv4') errors.push(issue(['bgp', 'routerId'], `${JSON.stringify(routerIdText)} is an IPv6 address; a BGP router id is written as an IPv4 address`));
    else routerId = parsed.address.canonical;
  } else if (get(bgp, 'routerId') === undefined) {
    const outer = get(get(get(document, 'node'), 'outerSource'), 'ipv4');
    const parsed = typeof outer === 'string' ? parseAddress(outer) : undefined;
    if (parsed?.ok === true) routerId = parsed.address.canonical;
    else if (parsed === undefined) errors.push(issue(['bgp', 'routerId'], 'required when node.outerSource.ipv4 is not set (the router id defaults to it)'));
  }

  // The VIP addresses, canonical, with where they are.
  const vipFamilies = new Map<AddressFamily, number>();
  const vipAddresses = new Set<string>();
  const vips = get(document, 'vips');
  if (Array.isArray(vips)) {
    vips.forEach((v: unknown, i) => {
      const text = get(v, 'address');
      const parsed = typeof text === 'string' ? parseAddress(text) : undefined;
      if (parsed?.ok !== true) return;
      vipAddresses.add(parsed.address.canonical);
      if (!vipFamilies.has(parsed.address.family)) vipFamilies.set(parsed.address.family, i);
    });
  }

  // Communities for every VIP.
  const communitiesAt = (value: unknown, path: PathSegment[]): Community[] => {
    if (!Array.isArray(value)) return [];
    const out: Community[] = [];
    value.forEach((c: unknown, i) => {
      const text = str(c, [...path, i]);
      if (text === undefined) return;
      const parsed = parseCommunity(text);
      if (!parsed.ok) errors.push(issue([...path, i], parsed.reason));
      else out.push(parsed.community);
    });
    return out;
  };
  const common = communitiesAt(get(bgp, 'communities'), ['bgp', 'communities']);

  // BFD timers: false / absent = off, true = defaults.
  const bfdRaw = get(bgp, 'bfd');
  const bfdTimers = (value: unknown): BfdTimers | undefined =>
    value === true ? { ...DEFAULT_BFD } : isRecord(value) ? { interval: Number(value['interval'] ?? DEFAULT_BFD.interval), multiplier: Number(value['multiplier'] ?? DEFAULT_BFD.multiplier) } : undefined;
  const bfd = bfdTimers(bfdRaw);

  // Neighbours.
  const holdTime = typeof get(bgp, 'holdTime') === 'number' ? (get(bgp, 'holdTime') as number) : DEFAULT_HOLD_TIME;
  const neighbours: BgpNeighbour[] = [];
  const byAddress = new Map<string, number>();
  const byName = new Map<string, number>();
  const raw = get(bgp, 'neighbours');
  const families = new Set<AddressFamily>();
  if (Array.isArray(raw)) {
    raw.forEach((n: unknown, i) => {
      const path: PathSegment[] = ['bgp', 'neighbours', i];
      const addressText = str(get(n, 'address'), [...path, 'address']);
      if (addressText === undefined) return;
      const parsed = parseUnicast(addressText, 'a BGP neighbour');
      if (!parsed.ok) {
        errors.push(issue([...path, 'address'], parsed.reason));
        return;
      }
      const address = parsed.address.canonical;
      const family = parsed.address.family;
      families.add(family);
      const earlier = byAddress.get(address);
      if (earlier !== undefined) errors.push(issue([...path, 'address'], `${address} is already bgp.neighbours[${earlier}]`));
      byAddress.set(address, i);

      const nameRaw = get(n, 'name');
      const nameText = str(nameRaw, [...path, 'name']);
      let name = defaultNeighbourName(address);
      if (nameText !== undefined) {
        if (!NEIGHBOUR_NAME.test(nameText)) {
          errors.push(issue([...path, 'name'], `${JSON.stringify(nameText)} is not a neighbour name (1-32 letters, digits or '_', not starting with a digit)`));
        }
        name = nameText;
      }
      const sameName = byName.get(name);
      if (sameName !== undefined) errors.push(issue([...path, nameText !== undefined ? 'name' : 'address'], `name ${name} is already taken by bgp.neighbours[${sameName}]`));
      byName.set(name, i);

      const password = str(get(n, 'password'), [...path, 'password']);
      if (password !== undefined) {
        if (password.length === 0 || password.length > MAX_PASSWORD_LENGTH) {
          errors.push(issue([...path, 'password'], `${password.length} characters; a TCP MD5 key has 1-${MAX_PASSWORD_LENGTH}`));
        } else if (!PASSWORD.test(password) || password.includes('"') || password.includes('\\')) {
          errors.push(issue([...path, 'password'], 'use printable ASCII characters other than \'"\' and \'\\\''));
        }
      }

      const sourceText = str(get(n, 'sourceAddress'), [...path, 'sourceAddress']);
      let sourceAddress: string | undefined;
      if (sourceText !== undefined) {
        const src = parseUnicast(sourceText, 'a source address');
        if (!src.ok) errors.push(issue([...path, 'sourceAddress'], src.reason));
        else if (src.address.family !== family) {
          errors.push(issue([...path, 'sourceAddress'], `${JSON.stringify(sourceText)} is an ${familyName(src.address.family)} address; the neighbour is ${familyName(family)}`));
        } else sourceAddress = src.address.canonical;
      }

      const ownBfd = get(n, 'bfd');
      const neighbourBfd = ownBfd === undefined ? bfd : ownBfd === true ? (bfd ?? { ...DEFAULT_BFD }) : undefined;
      const ownHold = get(n, 'holdTime');
      const multihop = get(n, 'multihop');
      neighbours.push({
        name,
        address,
        family,
        as: Number(get(n, 'as')),
        ...(password !== undefined && { password }),
        holdTime: typeof ownHold === 'number' ? ownHold : holdTime,
        ...(neighbourBfd !== undefined && { bfd: neighbourBfd }),
        ...(typeof multihop === 'number' && { multihop }),
        ...(sourceAddress !== undefined && { sourceAddress }),
      });
      if (!vipFamilies.has(family) && vipAddresses.size > 0) {
        warnings.push(issue([...path, 'address'], `an ${familyName(family)} session, but no VIP is ${familyName(family)}: nothing is announced to this neighbour`));
      }
    });
  }
  for (const [family, index] of vipFamilies) {
    if (Array.isArray(raw) && raw.length > 0 && !families.has(family) && neighbours.length === raw.length) {
      warnings.push(issue(['vips', index, 'address'], `no BGP neighbour is ${familyName(family)}: the ${familyName(family)} VIPs are never announced`));
    }
  }

  // Per-address attributes.
  const routes: Record<string, BgpRoute> = {};
  const routeInputs = get(bgp, 'vips');
  const seen = new Map<string, string>();
  if (isRecord(routeInputs)) {
    for (const [key, value] of Object.entries(routeInputs)) {
      const path: PathSegment[] = ['bgp', 'vips', key];
      const parsed = parseAddress(key);
      if (!parsed.ok) {
        errors.push(issue(path, parsed.reason));
        continue;
      }
      const address = parsed.address.canonical;
      if (!vipAddresses.has(address)) {
        errors.push(issue(path, `${JSON.stringify(key)} is not the address of any VIP`));
        continue;
      }
      const twin = seen.get(address);
      if (twin !== undefined) {
        errors.push(issue(path, `the same address as bgp.vips[${JSON.stringify(twin)}]`));
        continue;
      }
      seen.set(address, key);
      const own = communitiesAt(get(value, 'communities'), [...path, 'communities']);
      const med = get(value, 'med');
      const prepend = get(value, 'prepend');
      routes[address] = {
        ...(typeof med === 'number' && { med }),
        prepend: typeof prepend === 'number' ? prepend : 0,
        communities: unique([...common, ...own]),
      };
    }
  }

  if (errors.length > 0 || schemaIssues.some((i) => i.path[0] === 'bgp') || routerId === undefined) return result;
  const input = bgp as BgpInput;
  result.config = {
    localAs: input.localAs,
    routerId,
    holdTime,
    ...(bfd !== undefined && { bfd }),
    drainSeconds: input.drainSeconds ?? DEFAULT_DRAIN_SECONDS,
    runDirectory: input.runDirectory ?? DEFAULT_RUN_DIRECTORY,
    bird: input.bird ?? DEFAULT_BIRD,
    neighbours,
    routes,
    communities: unique(common),
  };
  return result;
}

function unique(list: Community[]): Community[] {
  const seen = new Set<string>();
  return list.filter((c) => {
    const k = `${c.kind}:${formatCommunity(c)}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
