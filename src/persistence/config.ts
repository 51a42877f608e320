// The configuration of client persistence: a VIP's `persistence` option (timeout, granularity,
// maxEntries) and the top-level `persistence` section (the store, the tables' capacity, the
// punt queues, timeouts). Checks the schema cannot express as "path: reason" issues, and the
// normalized form.
import { parseAddress } from '../config/addresses.js';
import {
  DEFAULT_PERSISTENCE_ETCD_PREFIX,
  DEFAULT_PERSISTENCE_GRANULARITY,
  DEFAULT_PERSISTENCE_PUNT_SLOTS,
  DEFAULT_PERSISTENCE_STATE_FILE,
  DEFAULT_PERSISTENCE_STORE,
  DEFAULT_PERSISTENCE_STORE_TIMEOUT_MS,
  DEFAULT_PERSISTENCE_TABLE_ENTRIES,
  DEFAULT_PERSISTENCE_TIMEOUT,
  DEFAULT_PERSISTENCE_VIP_MAX_ENTRIES,
} from '../config/defaults.js';
import { issue, makeIssueLookup, type Issue } from '../config/issues.js';
import { isRecord, type PathSegment } from '../config/path.js';

export type PersistenceStoreKind = 'embedded' | 'etcd';

/** A VIP's persistence, normalized. */
export interface VipPersistence {
  timeoutSeconds: number;
  /** The client's prefix length: 32 / 128 for "address" granularity. */
  prefixLength: number;
  maxEntries: number;
}

export interface EtcdConfig {
  endpoints: string[];
  prefix: string;
  /** Per transaction; past it the slow path decides locally. */
  timeoutMs: number;
}

export interface PersistenceConfig {
  store: PersistenceStoreKind;
  /** The embedded store's state file. */
  stateFile: string;
  /** Present with store "etcd". */
  etcd?: EtcdConfig;
  /** Entries of each engine's persistence table (every persistent VIP shares it). */
  tableEntries: number;
  /** First packets each worker holds for the slow path. */
  puntSlots: number;
  /** Milliseconds the slow path waits for the store (or the owner mux) before deciding locally. */
  storeTimeoutMs: number;
}

export interface VipPersistenceInput {
  timeout?: number;
  granularity?: string;
  maxEntries?: number;
}

export interface PersistenceInput {
  store?: PersistenceStoreKind;
  stateFile?: string;
  etcd?: { endpoints: string[]; prefix?: string; timeout?: number };
  tableEntries?: number;
  puntSlots?: number;
  storeTimeout?: number;
}

function get(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** The prefix length `granularity` gives for a VIP of `family` (undefined: not valid for it). */
export function prefixLength(granularity: string, family: 'ipv4' | 'ipv6'): number | undefined {
  const bits = family === 'ipv4' ? 32 : 128;
  if (granularity === 'address') return bits;
  const m = /^\/(\d{1,3})$/.exec(granularity);
  if (m === null) return undefined;
  const n = Number(m[1]);
  return n >= 1 && n <= bits ? n : undefined;
}

/** Semantic checks of every vips[i].persistence and of the persistence section. */
export function checkPersistenceSemantics(document: unknown, schemaIssues: readonly Issue[]): { errors: Issue[]; warnings: Issue[] } {
  const errors: Issue[] = [];
  const warnings: Issue[] = [];
  const flagged = makeIssueLookup(schemaIssues);
  const section = get(document, 'persistence');
  const rawTable = get(section, 'tableEntries');
  const tableEntries = typeof rawTable === 'number' && !flagged(['persistence', 'tableEntries']) ? rawTable : DEFAULT_PERSISTENCE_TABLE_ENTRIES;

  let persistentVips = 0;
  const vips = get(document, 'vips');
  if (Array.isArray(vips)) {
    vips.forEach((vip: unknown, i) => {
      const p = get(vip, 'persistence');
      if (!isRecord(p)) return;
      persistentVips++;
      const at = (...rest: PathSegment[]): PathSegment[] => ['vips', i, 'persistence', ...rest];
      const granularity = get(p, 'granularity');
      const address = get(vip, 'address');
      const parsed = typeof address === 'string' && !flagged(['vips', i, 'address']) ? parseAddress(address) : undefined;
      if (typeof granularity === 'string' && !flagged(at('granularity')) && parsed?.ok === true) {
        const family = parsed.address.family;
        if (prefixLength(granularity, family) === undefined) {
          const bits = family === 'ipv4' ? 32 : 128;
          errors.push(issue(at('granularity'), `${JSON.stringify(granularity)} is not a prefix of an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} client (this VIP is ${parsed.address.canonical}): use "address" or "/1" to "/${bits}"`));
        }
      }
      const maxEntries = get(p, 'maxEntries');
      if (typeof maxEntries === 'number' && !flagged(at('maxEntries')) && maxEntries > tableEntries) {
        errors.push(issue(at('maxEntries'), `${maxEntries} entries do not fit in the persistence table of ${tableEntries} entries (persistence.tableEntries)`));
      }
      const protocol = get(vip, 'protocol');
      const hashFields = get(vip, 'hashFields');
      if (protocol === 'tcp' && hashFields === 'src-ip') {
        warnings.push(issue(['vips', i, 'hashFields'], '"src-ip" is not needed with persistence: a client keeps its backend through its entry, even when the pool changes'));
      }
    });
  }

  if (!isRecord(section)) return { errors, warnings };
  if (persistentVips === 0) warnings.push(issue(['persistence'], 'no VIP has "persistence": the section has no effect'));
  const store = get(section, 'store') ?? DEFAULT_PERSISTENCE_STORE;
  const etcd = get(section, 'etcd');
  if (store === 'etcd' && etcd === undefined && !flagged(['persistence', 'store'])) {
    errors.push(issue(['persistence', 'etcd'], 'required with "store": "etcd" (at least the endpoints)'));
  }
  if (store === 'embedded' && etcd !== undefined) {
    warnings.push(issue(['persistence', 'etcd'], 'not used: "store" is "embedded"'));
  }
  const stateFile = get(section, 'stateFile');
  if (typeof stateFile === 'string' && !flagged(['persistence', 'stateFile']) && !stateFile.startsWith('/')) {
    errors.push(issue(['persistence', 'stateFile'], `${JSON.stringify(stateFile)} is not an absolute path (the daemon does not resolve relative paths)`));
  }
  if (store === 'etcd' && stateFile !== undefined) warnings.push(issue(['persistence', 'stateFile'], 'not used: "store" is "etcd"'));
  const endpoints = get(etcd, 'endpoints');
  if (Array.isArray(endpoints)) {
    endpoints.forEach((e: unknown, i) => {
      const path: PathSegment[] = ['persistence', 'etcd', 'endpoints', i];
      if (typeof e !== 'string' || flagged(path)) return;
      let url: URL | undefined;
      try {
        url = new URL(e);
      } catch {
        url = undefined;
      }
      if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.pathname !== '/' || url.search !== '') {
        errors.push(issue(path, `${JSON.stringify(e)} is not an etcd endpoint (write http://host:port or https://host:port)`));
      }
    });
  }
  return { errors, warnings };
}

/** Only for validated input: a VIP's persistence for a VIP of `family`. */
export function normalizeVipPersistence(input: VipPersistenceInput, family: 'ipv4' | 'ipv6'): VipPersistence {
  const length = prefixLength(input.granularity ?? DEFAULT_PERSISTENCE_GRANULARITY, family);
  if (length === undefined) throw new Error(`internal error: persistence granularity ${String(input.granularity)} passed validation`);
  return {
    timeoutSeconds: input.timeout ?? DEFAULT_PERSISTENCE_TIMEOUT,
    prefixLength: length,
    maxEntries: input.maxEntries ?? DEFAULT_PERSISTENCE_VIP_MAX_ENTRIES,
  };
}

/** Only for validated input (absent section: the defaults). */
export function normalizePersistence(input: PersistenceInput | undefined): PersistenceConfig {
  const store = input?.store ?? DEFAULT_PERSISTENCE_STORE;
  return {
    store,
    stateFile: input?.stateFile ?? DEFAULT_PERSISTENCE_STATE_FILE,
    ...(store === 'etcd' && input?.etcd !== undefined && {
      etcd: {
        endpoints: [...input.etcd.endpoints],
        prefix: input.etcd.prefix ?? DEFAULT_PERSISTENCE_ETCD_PREFIX,
        timeoutMs: input.etcd.timeout ?? input.storeTimeout ?? DEFAULT_PERSISTENCE_STORE_TIMEOUT_MS,
      },
    }),
    tableEntries: input?.tableEntries ?? DEFAULT_PERSISTENCE_TABLE_ENTRIES,
    puntSlots: input?.puntSlots ?? DEFAULT_PERSISTENCE_PUNT_SLOTS,
    storeTimeoutMs: input?.storeTimeout ?? DEFAULT_PERSISTENCE_STORE_TIMEOUT_MS,
  };
}
