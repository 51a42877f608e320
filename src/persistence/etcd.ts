// The etcd store (etcd v3, the etcd3 package), for sites that run one: every mux records its
// new clients with a transaction that creates the key only if it does not exist
// (createRevision == 0) and otherwise reads it, so that two muxes seeing a client's first
// packets at once both get the backend the first transaction recorded (an atomic
// read-miss-create). The key carries a lease of the VIP's timeout; a touch re-puts it under a
// fresh lease, batched and at most once per quarter timeout per client. A watch on the prefix keeps every mux's table
// current with what the others record.
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';

import { StoreTimeout, type ClientKey, type PersistenceStore, type RmcAnswer, type RmcRequest, type StoreEntry, type StoreEvents, type TouchRequest } from './store.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix: string;
  /** Per transaction: beyond it the call fails and the slow path decides locally. */
  timeoutMs: number;
}

export { StoreTimeout };

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeout(`etcd: ${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results in order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** Transactions in flight per batch: enough to fill the connection, few enough to finish in time. */
const IN_FLIGHT = 64;

export class EtcdStore implements PersistenceStore {
  readonly kind = 'etcd';
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  /** Leases by TTL, each reused for a second: entries created in the same second share one. */
  private readonly leases = new Map<number, { id: Promise<string>; grantedAt: number }>();
  /** When each key was last (re)put by this mux, for batching touches. */
  private readonly putAt = new Map<ClientKey, number>();
  private counts = { rmc: 0, created: 0, replaced: 0, touches: 0, watchPuts: 0, watchDeletes: 0, errors: 0 };

  constructor(private readonly options: EtcdStoreOptions) {}

  private etcd(): Etcd3 {
    if (this.client === undefined) throw new Error('etcd store: not open');
    return this.client;
  }

  private key(k: ClientKey): string {
    return this.options.prefix + k;
  }

  async open(events: StoreEvents): Promise<StoreEntry[]> {
    this.client = new Etcd3({ hosts: this.options.endpoints, dialTimeout: this.options.timeoutMs });
    const prefix = this.options.prefix;
    const strip = (kv: IKeyValue): ClientKey => kv.key.toString().slice(prefix.length);
    // Loading may fail (etcd down at start): the daemon starts anyway and learns from the watch.
    let entries: StoreEntry[] = [];
    try {
      const all = await withTimeout(this.client.getAll().prefix(prefix).exec(), this.options.timeoutMs * 4, 'load');
      entries = all.kvs.map((kv) => ({ key: strip(kv), backend: kv.value.toString(), ttlMs: Number.POSITIVE_INFINITY }));
    } catch {
      this.counts.errors += 1;
    }
    const watcher = this.client.watch().prefix(prefix).watcher();
    watcher.on('put', (kv: IKeyValue) => {
      this.counts.watchPuts += 1;
      events.put({ key: strip(kv), backend: kv.value.toString(), ttlMs: Number.POSITIVE_INFINITY });
    });
    watcher.on('delete', (kv: IKeyValue) => {
      this.counts.watchDeletes += 1;
      events.removed(strip(kv));
    });
    watcher.on('error', () => {
      this.counts.errors += 1;
    });
    this.watcher = watcher;
    return entries;
  }

  private lease(ttlSeconds: number): Promise<string> {
    const now = Date.now();
    const cached = this.leases.get(ttlSeconds);
    if (cached !== undefined && now - cached.grantedAt < 1000) return cached.id;
    // One more second than the timeout: the lease is shared by the puts of a whole second.
    const id = this.etcd().lease(ttlSeconds + 1, { autoKeepAlive: false }).grant();
    id.catch(() => this.leases.delete(ttlSeconds));
    this.leases.set(ttlSeconds, { id, grantedAt: now });
    return id;
  }

  async rmc(requests: readonly RmcRequest[]): Promise<RmcAnswer[]> {
    const etcd = this.etcd();
    const run = async (r: RmcRequest): Promise<RmcAnswer> => {
      const key = this.key(r.key);
      const lease = await this.lease(r.timeoutSeconds);
      const res = await etcd
        .if(key, 'Create', '==', 0)
        .then(etcd.put(key).value(r.proposed).lease(lease))
        .else(etcd.get(key))
        .commit();
      this.counts.rmc += 1;
      if (res.succeeded) {
        this.counts.created += 1;
        this.putAt.set(r.key, Date.now());
        return { key: r.key, backend: r.proposed, created: true };
      }
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      // Deleted between the compare and the read cannot happen inside one transaction.
      return { key: r.key, backend: kv !== undefined ? kv.value.toString() : r.proposed, created: false };
    };
    try {
      // Each transaction has the whole timeout from the moment it is sent.
      return await mapLimited(requests, IN_FLIGHT, (r) => withTimeout(run(r), this.options.timeoutMs, 'read-miss-create'));
    } catch (e) {
      this.counts.errors += 1;
      throw e;
    }
  }

  async replace(key: ClientKey, expected: string, next: string, timeoutSeconds: number): Promise<string> {
    const etcd = this.etcd();
    const k = this.key(key);
    const run = async (): Promise<string> => {
      const lease = await this.lease(timeoutSeconds);
      // Compare-and-set on the value: only the mux that still sees `expected` replaces it.
      const res = await etcd.if(k, 'Value', '==', expected).then(etcd.put(k).value(next).lease(lease)).else(etcd.get(k)).commit();
      if (res.succeeded) {
        this.counts.replaced += 1;
        this.putAt.set(key, Date.now());
        return next;
      }
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      if (kv !== undefined) return kv.value.toString();
      // Gone meanwhile (expired): create it.
      const created = await etcd.if(k, 'Create', '==', 0).then(etcd.put(k).value(next).lease(lease)).else(etcd.get(k)).commit();
      return created.succeeded ? next : (created.responses[0]?.response_range?.kvs?.[0]?.value.toString() ?? next);
    };
    try {
      return await withTimeout(run(), this.options.timeoutMs, 'compare-and-set');
    } catch (e) {
      this.counts.errors += 1;
      throw e;
    }
  }

  async touch(keys: readonly TouchRequest[]): Promise<void> {
    const etcd = this.etcd();
    const now = Date.now();
    const due = keys.filter(({ key, timeoutSeconds }) => now - (this.putAt.get(key) ?? 0) >= (timeoutSeconds * 1000) / 4);
    if (due.length === 0) return;
    const run = async ({ key, backend, timeoutSeconds }: TouchRequest): Promise<void> => {
      const lease = await this.lease(timeoutSeconds);
      const k = this.key(key);
      // Only the entry this mux knows moves to the new lease (a replacement is left alone).
      await etcd.if(k, 'Value', '==', backend).then(etcd.put(k).value(backend).lease(lease)).commit();
      this.putAt.set(key, now);
      this.counts.touches += 1;
    };
    try {
      await mapLimited(due, IN_FLIGHT, (t) => withTimeout(run(t), this.options.timeoutMs, 'touch'));
    } catch (e) {
      this.counts.errors += 1;
      throw e;
    }
  }

  async remove(keys: readonly ClientKey[]): Promise<void> {
    // Leases remove the keys; this mux only forgets when it last put them.
    for (const k of keys) this.putAt.delete(k);
  }

  async close(): Promise<void> {
    try {
      await this.watcher?.cancel();
    } catch {
      // closing anyway
    }
    this.client?.close();
    this.client = undefined;
  }

  status(): Record<string, unknown> {
    return { kind: this.kind, endpoints: this.options.endpoints, prefix: this.options.prefix, ...this.counts };
  }
}
