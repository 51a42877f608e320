// Checks the schema cannot express: address, MAC and seed syntax, references between VIPs and
// pools, uniqueness, Maglev table sizes, outer sources for the backend families in use.
//
// Runs on the raw document even when the schema found problems, so that one run reports as
// much as possible; a value the schema already complained about is not checked again.
import { familyName, parseUnicast, type ParsedAddress } from './addresses.js';
import {
  DEFAULT_ENCAPSULATION,
  DEFAULT_HASH_FIELDS,
  DEFAULT_ICMP_ECHO,
  DEFAULT_TABLE_SIZE,
  DEFAULT_WEIGHT,
  MAX_DISTINCT_BACKENDS,
  MAX_INTERFACE_NAME,
  MIN_IPV6_MTU,
  MAX_TABLE_SIZE,
  MIN_TABLE_SIZE,
  PER_MUX_SCHEDULERS,
  TABLE_ENTRIES_PER_BACKEND,
} from './defaults.js';
import { checkFallovers, type FalloverInput } from './fallover.js';
import { issue, makeIssueLookup, type Issue } from './issues.js';
import { isGroupMac, isZeroMac, parseMac } from './mac.js';
import { formatPath, isRecord, type PathSegment } from './path.js';
import { isPrime, nearestPrimes } from './prime.js';
import { parseSeed } from './seed.js';
import type { AddressFamily } from './types.js';

export const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const VIP_NAME = /^[\x21-\x7e]{1,128}$/;

export interface SemanticResult {
  errors: Issue[];
  warnings: Issue[];
}

/** The name a VIP gets when the file gives none: "<address>:<protocol>:<port or *>". */
export function defaultVipName(address: string, protocol: string, port: number | undefined): string {
  return `${address}:${protocol}:${port ?? '*'}`;
}

interface PoolSummary {
  /** Backends with a valid address and a weight above zero. */
  active: number;
}

interface VipSummary {
  index: number;
  name: string | undefined;
  explicitName: boolean;
  address: ParsedAddress | undefined;
  icmpEcho: boolean;
  icmpEchoExplicitFalse: boolean;
}

function get(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

export function checkSemantics(document: unknown, schemaIssues: readonly Issue[]): SemanticResult {
  const errors: Issue[] = [];
  const warnings: Issue[] = [];
  const flagged = makeIssueLookup(schemaIssues);
  /** The value at `path` if it is a string the schema had no complaint about. */
  const str = (value: unknown, path: PathSegment[]): string | undefined =>
    typeof value === 'string' && !flagged(path) ? value : undefined;
  const int = (value: unknown, path: PathSegment[]): number | undefined =>
    typeof value === 'number' && Number.isInteger(value) && !flagged(path) ? value : undefined;

  // ---- node ----
  const node = get(document, 'node');
  const seed = str(get(node, 'seed'), ['node', 'seed']);
  if (seed !== undefined) {
    const parsed = parseSeed(seed);
    if (!parsed.ok) errors.push(issue(['node', 'seed'], parsed.reason));
  }
  const sourceMac = str(get(node, 'sourceMac'), ['node', 'sourceMac']);
  if (sourceMac !== undefined) {
    const mac = parseMac(sourceMac);
    if (!mac.ok) errors.push(issue(['node', 'sourceMac'], mac.reason));
    else if (isGroupMac(mac.bytes)) {
      errors.push(issue(['node', 'sourceMac'], `${JSON.stringify(sourceMac)} is a ${macGroupKind(mac.bytes)} MAC address; a source MAC must be unicast`));
    }
  }
  const gatewayMac = str(get(node, 'gatewayMac'), ['node', 'gatewayMac']);
  if (gatewayMac !== undefined) {
    const mac = parseMac(gatewayMac);
    if (!mac.ok) errors.push(issue(['node', 'gatewayMac'], mac.reason));
    else if (isGroupMac(mac.bytes)) {
      errors.push(issue(['node', 'gatewayMac'], `${JSON.stringify(gatewayMac)} is a ${macGroupKind(mac.bytes)} MAC address; the next hop needs a unicast MAC`));
    } else if (isZeroMac(mac.bytes)) {
      errors.push(issue(['node', 'gatewayMac'], `${JSON.stringify(gatewayMac)} is the all-zero MAC address; give the MAC of the next hop toward the backends`));
    }
  }
  const nodeSettings = checkNodeSettings(node, str, int, errors, warnings);
  const outerSource = get(node, 'outerSource');
  const outerPresent: Record<AddressFamily, boolean> = { ipv4: false, ipv6: false };
  for (const family of ['ipv4', 'ipv6'] as const) {
    const path = ['node', 'outerSource', family];
    const raw = get(outerSource, family);
    if (raw !== undefined) outerPresent[family] = true;
    const text = str(raw, path);
    if (text === undefined) continue;
    const parsed = parseUnicast(text, 'an outer source');
    if (!parsed.ok) errors.push(issue(path, parsed.reason));
    else if (parsed.address.family !== family) {
      errors.push(issue(path, `${JSON.stringify(text)} is an ${familyName(parsed.address.family)} address; expected an ${familyName(family)} address`));
    }
  }

  // ---- pools ----
  const pools = get(document, 'pools');
  const poolNames = isRecord(pools) ? Object.keys(pools) : [];
  const poolSummaries = new Map<string, PoolSummary>();
  const firstBackendOfFamily = new Map<AddressFamily, { path: PathSegment[]; address: string }>();
  const distinctBackends = new Set<string>();
  const backendPaths: Array<{ address: string; path: PathSegment[] }> = [];
  for (const name of poolNames) {
    const poolPath: PathSegment[] = ['pools', name];
    if (!POOL_NAME.test(name)) {
      errors.push(issue(poolPath, `invalid pool name ${JSON.stringify(name)} (use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit)`));
    }
    const summary: PoolSummary = { active: 0 };
    poolSummaries.set(name, summary);
    const backends = get(get(pools, name), 'backends');
    if (!Array.isArray(backends)) continue;
    const seen = new Map<string, number>();
    const fallovers: FalloverInput[] = [];
    backends.forEach((backend: unknown, b) => {
      const path: PathSegment[] = [...poolPath, 'backends', b, 'address'];
      const fallover: FalloverInput = { address: undefined, fallover: get(backend, 'fallover'), path: [...poolPath, 'backends', b] };
      fallovers.push(fallover);
      const text = str(get(backend, 'address'), path);
      if (text === undefined) return;
      const parsed = parseUnicast(text, 'a backend');
      if (!parsed.ok) {
        errors.push(issue(path, parsed.reason));
        return;
      }
      const { canonical, family } = parsed.address;
      fallover.address = canonical;
      const first = seen.get(canonical);
      if (first !== undefined) {
        errors.push(issue(path, `backend ${canonical} is listed twice (first at ${formatPath([...poolPath, 'backends', first])})`));
        return;
      }
      seen.set(canonical, b);
      distinctBackends.add(canonical);
      backendPaths.push({ address: canonical, path });
      if (!firstBackendOfFamily.has(family)) firstBackendOfFamily.set(family, { path: [...poolPath, 'backends', b], address: canonical });
      const weight = get(backend, 'weight') ?? DEFAULT_WEIGHT;
      if (typeof weight === 'number' && weight > 0) summary.active++;
    });
    errors.push(...checkFallovers(name, fallovers));
  }
  if (distinctBackends.size > MAX_DISTINCT_BACKENDS) {
    errors.push(issue(['pools'], `${distinctBackends.size} distinct backend addresses, more than the ${MAX_DISTINCT_BACKENDS} the dataplane can hold`));
  }
  if (isRecord(node)) {
    for (const [family, first] of firstBackendOfFamily) {
      if (outerPresent[family]) continue;
      errors.push(issue(['node', 'outerSource', family], `required for ${familyName(family)} backends (${formatPath(first.path)} is ${first.address})`));
    }
  }

  // ---- vips ----
  const vips = get(document, 'vips');
  const vipList: unknown[] = Array.isArray(vips) ? vips : [];
  if (Array.isArray(vips) && vips.length === 0) warnings.push(issue(['vips'], 'no VIPs are defined'));
  const usedPools = new Set<string>();
  const byTuple = new Map<string, VipSummary>();
  const byName = new Map<string, VipSummary>();
  const byAddress = new Map<string, VipSummary[]>();
  vipList.forEach((vip: unknown, i) => {
    const at = (...rest: PathSegment[]): PathSegment[] => ['vips', i, ...rest];
    if (!isRecord(vip)) return;

    const nameText = str(get(vip, 'name'), at('name'));
    if (nameText !== undefined && !VIP_NAME.test(nameText)) {
      errors.push(issue(at('name'), `${JSON.stringify(nameText)} is not a valid VIP name (use 1-128 printable characters without spaces)`));
    }

    let address: ParsedAddress | undefined;
    const addressText = str(get(vip, 'address'), at('address'));
    if (addressText !== undefined) {
      const parsed = parseUnicast(addressText, 'a VIP');
      if (parsed.ok) address = parsed.address;
      else errors.push(issue(at('address'), parsed.reason));
    }
    const protocol = str(get(vip, 'protocol'), at('protocol'));
    const rawPort = get(vip, 'port');
    const port = int(rawPort, at('port'));
    const portOk = rawPort === undefined || port !== undefined;

    // Pool reference.
    const poolName = str(get(vip, 'pool'), at('pool'));
    let pool: PoolSummary | undefined;
    if (poolName !== undefined) {
      pool = isRecord(pools) && Object.hasOwn(pools, poolName) ? poolSummaries.get(poolName) : undefined;
      if (pool === undefined && isRecord(pools)) {
        const known = poolNames.length > 0 ? `pools: ${poolNames.join(', ')}` : 'no pools are defined';
        errors.push(issue(at('pool'), `pool ${JSON.stringify(poolName)} is not defined (${known})`));
      }
      usedPools.add(poolName);
    }

    // Encapsulation options.
    const rawEncap = get(vip, 'encapsulation');
    const encap = rawEncap === undefined ? DEFAULT_ENCAPSULATION : str(rawEncap, at('encapsulation'));
    if (encap !== undefined) {
      for (const kind of ['gre', 'gue'] as const) {
        if (get(vip, kind) !== undefined && encap !== kind) {
          errors.push(issue(at(kind), `"${kind}" options are only allowed with "encapsulation": "${kind}" (this VIP uses "${encap}")`));
        }
      }
    }

    // Maglev table size.
    const rawTableSize = get(vip, 'tableSize');
    const tableSize = rawTableSize === undefined ? DEFAULT_TABLE_SIZE : int(rawTableSize, at('tableSize'));
    if (tableSize !== undefined) {
      const which = rawTableSize === undefined ? `the default table size ${tableSize}` : `${tableSize} entries`;
      if (!isPrime(tableSize)) {
        const near = nearestPrimes(tableSize, MIN_TABLE_SIZE, MAX_TABLE_SIZE).join(', ');
        errors.push(issue(at('tableSize'), `${tableSize} is not a prime number; Maglev needs a prime table size (nearest primes: ${near})`));
      } else if (pool !== undefined && pool.active >= tableSize) {
        errors.push(issue(at('tableSize'), `${which} cannot hold the ${pool.active} backends of pool ${JSON.stringify(poolName)}; Maglev needs more entries than backends (ideally ${TABLE_ENTRIES_PER_BACKEND} per backend)`));
      } else if (pool !== undefined && tableSize < pool.active * TABLE_ENTRIES_PER_BACKEND) {
        warnings.push(issue(at('tableSize'), `${which} for the ${pool.active} backends of pool ${JSON.stringify(poolName)} will spread load unevenly; Maglev recommends at least ${TABLE_ENTRIES_PER_BACKEND} entries per backend (a prime of at least ${pool.active * TABLE_ENTRIES_PER_BACKEND})`));
      }
    }
    // Scheduler.
    const scheduler = str(get(vip, 'scheduler'), at('scheduler'));
    const hashFields = str(get(vip, 'hashFields'), at('hashFields'));
    if (scheduler === 'source-hash' && hashFields !== undefined && hashFields !== DEFAULT_HASH_FIELDS && hashFields !== 'src-ip') {
      errors.push(issue(at('hashFields'), `${JSON.stringify(hashFields)} contradicts "scheduler": "source-hash", which hashes the client address only (omit hashFields)`));
    }
    if (scheduler !== undefined && (PER_MUX_SCHEDULERS as readonly string[]).includes(scheduler)) {
      warnings.push(issue(at('scheduler'), `${JSON.stringify(scheduler)} is decided by each mux alone: a flow keeps its backend when the router moves it to another mux only with connection-table sync (maglev and source-hash need none)`));
    }

    if (pool !== undefined && pool.active === 0) {
      warnings.push(issue(at('pool'), `pool ${JSON.stringify(poolName)} has no backend with weight > 0, so this VIP cannot take new flows`));
    }

    // Uniqueness of (address, protocol, port) and of names.
    const rawEcho = get(vip, 'icmpEcho');
    const summary: VipSummary = {
      index: i,
      name: nameText,
      explicitName: nameText !== undefined,
      address,
      icmpEcho: typeof rawEcho === 'boolean' ? rawEcho : DEFAULT_ICMP_ECHO,
      icmpEchoExplicitFalse: rawEcho === false,
    };
    if (address !== undefined && protocol !== undefined && portOk) {
      summary.name ??= get(vip, 'name') === undefined ? defaultVipName(address.canonical, protocol, port) : undefined;
      const tuple = `${address.canonical}|${protocol}|${port ?? '*'}`;
      const other = byTuple.get(tuple);
      if (other !== undefined) {
        const what = port === undefined ? `${address.canonical} ${protocol} (all ports)` : `${address.canonical} ${protocol} port ${port}`;
        errors.push(issue(at(), `${what} is already taken by ${describeVip(other)}`));
      } else {
        byTuple.set(tuple, summary);
      }
      const group = byAddress.get(address.canonical) ?? [];
      group.push(summary);
      byAddress.set(address.canonical, group);
    }
    if (summary.name !== undefined && VIP_NAME.test(summary.name)) {
      const other = byName.get(summary.name);
      if (other === undefined) byName.set(summary.name, summary);
      else if (summary.explicitName) {
        errors.push(issue(at('name'), `${JSON.stringify(summary.name)} is already the name of ${formatPath(['vips', other.index])}`));
      } else if (other.explicitName) {
        errors.push(issue(at(), `its default name ${JSON.stringify(summary.name)} is already the name of ${formatPath(['vips', other.index])}; give this VIP a "name"`));
      }
      // Both default names: the same (address, protocol, port), reported above.
    }
  });

  // A backend at a VIP's address: the mux would tunnel the VIP's packets to the VIP, i.e. to
  // itself and its peers (a loop), never to a host that serves it.
  for (const b of backendPaths) {
    const vip = byAddress.get(b.address)?.[0];
    if (vip !== undefined) {
      errors.push(issue(b.path, `${b.address} is the address of ${describeVip(vip)}: a backend cannot be a VIP (its packets would loop through the muxes)`));
    }
  }

  // Echo replies are decided per address: one VIP answering makes the address answer.
  for (const group of byAddress.values()) {
    const answering = group.find((v) => v.icmpEcho);
    if (answering === undefined) continue;
    for (const v of group) {
      if (!v.icmpEchoExplicitFalse) continue;
      warnings.push(issue(['vips', v.index, 'icmpEcho'], `false has no effect: ${describeVip(answering)} on the same address answers pings (echo replies are per address)`));
    }
  }

  for (const name of poolNames) {
    if (!usedPools.has(name)) warnings.push(issue(['pools', name], 'pool is not used by any VIP'));
  }

  // An explicit MTU must leave room for IPv6 when IPv6 is in use.
  if (nodeSettings.mtu !== undefined && nodeSettings.mtu < MIN_IPV6_MTU) {
    const ipv6Backend = firstBackendOfFamily.get('ipv6');
    const ipv6Vip = [...byAddress.values()].flat().find((v) => v.address?.family === 'ipv6');
    const user = ipv6Backend !== undefined ? formatPath(ipv6Backend.path) : ipv6Vip !== undefined ? formatPath(['vips', ipv6Vip.index]) : undefined;
    if (user !== undefined) {
      errors.push(issue(['node', 'mtu'], `${nodeSettings.mtu} is below ${MIN_IPV6_MTU}, the smallest MTU IPv6 allows (${user} is IPv6)`));
    }
  }

  return { errors, warnings };
}

interface NodeSettingsSummary {
  /** The explicit MTU, when valid. */
  mtu: number | undefined;
}

type StringAt = (value: unknown, path: PathSegment[]) => string | undefined;
type IntegerAt = (value: unknown, path: PathSegment[]) => number | undefined;

/** The settings of node that `l4mux run` uses: interfaces, I/O, workers, CPUs, next hop, MTU. */
function checkNodeSettings(node: unknown, str: StringAt, int: IntegerAt, errors: Issue[], warnings: Issue[]): NodeSettingsSummary {
  const interfaces = get(node, 'interfaces');
  if (Array.isArray(interfaces)) {
    const seen = new Map<string, number>();
    interfaces.forEach((raw: unknown, i) => {
      const path: PathSegment[] = ['node', 'interfaces', i];
      const name = str(raw, path);
      if (name === undefined) return;
      const reason = interfaceNameProblem(name);
      if (reason !== undefined) {
        errors.push(issue(path, reason));
        return;
      }
      const first = seen.get(name);
      if (first !== undefined) errors.push(issue(path, `${JSON.stringify(name)} is listed twice (first at ${formatPath(['node', 'interfaces', first])})`));
      else seen.set(name, i);
    });
  }

  const io = get(node, 'io');
  if (get(node, 'xdpMode') !== undefined && io === 'af_packet') {
    warnings.push(issue(['node', 'xdpMode'], 'has no effect with "io": "af_packet" (no XDP program is attached)'));
  }

  const cpus = get(node, 'cpus');
  let cpuCount: number | undefined;
  if (Array.isArray(cpus)) {
    const seen = new Map<number, number>();
    cpus.forEach((raw: unknown, i) => {
      const path: PathSegment[] = ['node', 'cpus', i];
      const cpu = int(raw, path);
      if (cpu === undefined) return;
      const first = seen.get(cpu);
      if (first !== undefined) errors.push(issue(path, `CPU ${cpu} is listed twice (first at ${formatPath(['node', 'cpus', first])})`));
      else seen.set(cpu, i);
    });
    if (seen.size === cpus.length) cpuCount = cpus.length;
  }
  const workers = int(get(node, 'workers'), ['node', 'workers']);
  if (workers !== undefined && cpuCount !== undefined && workers !== cpuCount) {
    const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
    warnings.push(
      issue(
        ['node', 'workers'],
        workers > cpuCount
          ? `${plural(workers, 'worker')} per interface on ${plural(cpuCount, 'CPU')} (node.cpus): some CPUs run more than one worker`
          : `${plural(workers, 'worker')} per interface use only the first ${workers} of the ${cpuCount} CPUs of node.cpus`,
      ),
    );
  }

  const gatewayPath: PathSegment[] = ['node', 'gateway'];
  const gateway = str(get(node, 'gateway'), gatewayPath);
  if (gateway !== undefined) {
    const parsed = parseUnicast(gateway, 'a gateway');
    if (!parsed.ok) errors.push(issue(gatewayPath, parsed.reason));
    else if (get(node, 'gatewayMac') !== undefined) {
      warnings.push(issue(gatewayPath, 'not used: node.gatewayMac is set, and an explicit MAC overrides next-hop resolution'));
    }
  }

  return { mtu: int(get(node, 'mtu'), ['node', 'mtu']) };
}

/** Why the kernel would refuse `name` as an interface name (dev_valid_name), if it would. */
export function interfaceNameProblem(name: string): string | undefined {
  const quoted = JSON.stringify(name);
  if (name === '.' || name === '..') return `${quoted} is not a valid interface name`;
  if (/[\s/:]/.test(name)) return `${quoted} is not a valid interface name (no spaces, '/' or ':')`;
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_INTERFACE_NAME) return `${quoted} is ${bytes} bytes long; interface names have at most ${MAX_INTERFACE_NAME}`;
  return undefined;
}

function describeVip(vip: VipSummary): string {
  const where = formatPath(['vips', vip.index]);
  return vip.name !== undefined ? `${where} (${JSON.stringify(vip.name)})` : where;
}

function macGroupKind(bytes: readonly number[]): string {
  return bytes.every((b) => b === 0xff) ? 'broadcast' : 'multicast';
}
