// The `cluster` section of the VIP map: this mux's id and address, its peers, the shared key
// file and the channel's timing and rate settings. Checks the schema cannot express (ids,
// addresses, uniqueness, ports) as "path: reason" issues, and the normalized form.
import { familyName, parseAddress, parseUnicast, specialKind } from '../config/addresses.js';
import { DEFAULT_CLUSTER_PEER_FLOWS } from '../config/defaults.js';
import { issue, makeIssueLookup, type Issue } from '../config/issues.js';
import { formatPath, isRecord, type PathSegment } from '../config/path.js';

export const MEMBER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Owner indexes travel in one byte and 255 means "none". */
export const MAX_MEMBERS = 64;

export const CLUSTER_DEFAULTS = {
  weight: 1,
  heartbeatIntervalMs: 200,
  deadAfter: 3,
  syncPort: 7946,
  redirectPort: 7947,
  maxRate: 125_000_000,
  transferRate: 200_000,
  commitTimeoutMs: 500,
  maxEntries: DEFAULT_CLUSTER_PEER_FLOWS,
} as const;

export interface ClusterMemberConfig {
  id: string;
  /** Canonical address. */
  address: string;
  weight: number;
}

export interface ClusterConfig {
  /** This mux. */
  self: ClusterMemberConfig;
  /** The other muxes, in file order. */
  peers: ClusterMemberConfig[];
  keyFile: string;
  heartbeatIntervalMs: number;
  deadAfter: number;
  syncPort: number;
  redirectPort: number;
  /** Bytes per second to each peer. */
  maxRate: number;
  /** Entries per second to each peer during a membership transfer. */
  transferRate: number;
  commitTimeoutMs: number;
  maxEntries: number;
}

export interface ClusterConfigInput {
  id: string;
  address: string;
  weight?: number;
  peers: Array<{ id: string; address: string; weight?: number }>;
  keyFile: string;
  heartbeatInterval?: number;
  deadAfter?: number;
  syncPort?: number;
  redirectPort?: number;
  maxRate?: number;
  transferRate?: number;
  commitTimeout?: number;
  maxEntries?: number;
}

function get(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** Semantic checks of `document.cluster` (absent: none). Skips values the schema flagged. */
export function checkClusterSemantics(document: unknown, schemaIssues: readonly Issue[]): Issue[] {
  const cluster = get(document, 'cluster');
  if (!isRecord(cluster)) return [];
  const errors: Issue[] = [];
  const flagged = makeIssueLookup(schemaIssues);
  const str = (path: PathSegment[], value: unknown): string | undefined => (typeof value === 'string' && !flagged(path) ? value : undefined);

  // Members all on loopback addresses are muxes of one host (tests, a lab on one machine);
  // anywhere else a loopback member could not be reached by the others.
  const memberTexts = [get(cluster, 'address'), ...(Array.isArray(get(cluster, 'peers')) ? (get(cluster, 'peers') as unknown[]).map((p) => get(p, 'address')) : [])];
  const oneHost = memberTexts.every((t) => {
    const parsed = typeof t === 'string' ? parseAddress(t) : undefined;
    return parsed?.ok === true && specialKind(parsed.address) === 'loopback';
  });
  const ids = new Map<string, PathSegment[]>();
  const addresses = new Map<string, PathSegment[]>();
  let family: { name: 'ipv4' | 'ipv6'; path: PathSegment[] } | undefined;
  const member = (at: PathSegment[], value: unknown): void => {
    const id = str([...at, 'id'], get(value, 'id'));
    if (id !== undefined) {
      if (!MEMBER_ID.test(id)) {
        errors.push(issue([...at, 'id'], `${JSON.stringify(id)} is not a valid member id (use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit)`));
      } else {
        const first = ids.get(id);
        if (first !== undefined) errors.push(issue([...at, 'id'], `member id ${JSON.stringify(id)} is used twice (first at ${formatPath(first)})`));
        else ids.set(id, [...at, 'id']);
      }
    }
    const text = str([...at, 'address'], get(value, 'address'));
    if (text === undefined) return;
    const parsed = oneHost ? parseAddress(text) : parseUnicast(text, 'a mux');
    if (!parsed.ok) {
      errors.push(issue([...at, 'address'], parsed.reason));
      return;
    }
    const { canonical } = parsed.address;
    const first = addresses.get(canonical);
    if (first !== undefined) errors.push(issue([...at, 'address'], `${canonical} is the address of another member (${formatPath(first)})`));
    else addresses.set(canonical, [...at, 'address']);
    if (family === undefined) family = { name: parsed.address.family, path: [...at, 'address'] };
    else if (family.name !== parsed.address.family) {
      errors.push(issue([...at, 'address'], `${JSON.stringify(text)} is an ${familyName(parsed.address.family)} address, but ${formatPath(family.path)} is ${familyName(family.name)}: members talk over one family`));
    }
  };
  member(['cluster'], cluster);
  const peers = get(cluster, 'peers');
  if (Array.isArray(peers)) peers.forEach((peer: unknown, i) => member(['cluster', 'peers', i], peer));

  const syncPort = get(cluster, 'syncPort') ?? CLUSTER_DEFAULTS.syncPort;
  const redirectPort = get(cluster, 'redirectPort') ?? CLUSTER_DEFAULTS.redirectPort;
  if (syncPort === redirectPort && !flagged(['cluster', 'redirectPort']) && !flagged(['cluster', 'syncPort'])) {
    errors.push(issue(['cluster', 'redirectPort'], `${String(redirectPort)} is also the syncPort: redirected packets and the sync channel need their own ports`));
  }
  const keyFile = str(['cluster', 'keyFile'], get(cluster, 'keyFile'));
  if (keyFile !== undefined && !keyFile.startsWith('/')) {
    errors.push(issue(['cluster', 'keyFile'], `${JSON.stringify(keyFile)} is not an absolute path (the daemon does not resolve relative paths)`));
  }
  return errors;
}

/** Only for validated input. `canonical` turns an address into its canonical text. */
export function normalizeCluster(input: ClusterConfigInput, canonical: (address: string) => string): ClusterConfig {
  const d = CLUSTER_DEFAULTS;
  return {
    self: { id: input.id, address: canonical(input.address), weight: input.weight ?? d.weight },
    peers: input.peers.map((p) => ({ id: p.id, address: canonical(p.address), weight: p.weight ?? d.weight })),
    keyFile: input.keyFile,
    heartbeatIntervalMs: input.heartbeatInterval ?? d.heartbeatIntervalMs,
    deadAfter: input.deadAfter ?? d.deadAfter,
    syncPort: input.syncPort ?? d.syncPort,
    redirectPort: input.redirectPort ?? d.redirectPort,
    maxRate: input.maxRate ?? d.maxRate,
    transferRate: input.transferRate ?? d.transferRate,
    commitTimeoutMs: input.commitTimeout ?? d.commitTimeoutMs,
    maxEntries: input.maxEntries ?? d.maxEntries,
  };
}

/** Every member (self included), sorted by id: the order ownership indexes refer to. */
export function sortedMembers(config: ClusterConfig): ClusterMemberConfig[] {
  return [config.self, ...config.peers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
