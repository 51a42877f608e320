// What the slow path needs of a persistence store: an atomic read-miss-create (read the entry,
// create it when missing, in one step)
// per client, a compare-and-set to replace an entry whose backend can no longer take clients,
// batched touches that push the timeout back, and (for shared stores) a feed of the entries
// other muxes record.

/** The store did not answer within its time limit (the slow path then decides locally). */
export class StoreTimeout extends Error {}

/** A client of a persistent VIP: "<vip name>/<client address or prefix>". */
export type ClientKey = string;

export function clientKey(vip: string, client: string): ClientKey {
  return `${vip}/${client}`;
}

/** Splits a key at the VIP name's end (VIP names have no spaces but may have '/'; clients start after the last VIP '/'). */
export function splitClientKey(key: ClientKey, vips: ReadonlySet<string>): { vip: string; client: string } | undefined {
  for (let i = key.indexOf('/'); i !== -1; i = key.indexOf('/', i + 1)) {
    const vip = key.slice(0, i);
    if (vips.has(vip)) return { vip, client: key.slice(i + 1) };
  }
  return undefined;
}

export interface RmcRequest {
  key: ClientKey;
  /** The backend this mux's scheduler picked, recorded when the client has no entry. */
  proposed: string;
  /** Seconds of silence after which the entry is forgotten. */
  timeoutSeconds: number;
}

export interface TouchRequest {
  key: ClientKey;
  /** The backend this mux has for it (an entry replaced meanwhile is left alone). */
  backend: string;
  timeoutSeconds: number;
}

export interface RmcAnswer {
  key: ClientKey;
  /** The recorded backend: the existing one, or `proposed` when this call created it. */
  backend: string;
  created: boolean;
}

/** An entry another mux (or a previous run) recorded. */
export interface StoreEntry {
  key: ClientKey;
  backend: string;
  /** Milliseconds left until it expires (as far as the store tells). */
  ttlMs: number;
}

export interface StoreEvents {
  /** An entry was created or replaced elsewhere. */
  put(entry: StoreEntry): void;
  /** An entry expired or was removed elsewhere. */
  removed(key: ClientKey): void;
}

export interface PersistenceStore {
  readonly kind: 'embedded' | 'etcd';
  /** Opens the store; the entries it holds (to fill the fast path's tables). */
  open(events: StoreEvents): Promise<StoreEntry[]>;
  /** Read-miss-create, atomically per key. Rejects when the store cannot answer. */
  rmc(requests: readonly RmcRequest[]): Promise<RmcAnswer[]>;
  /** Replaces `expected` by `next` if the entry still names `expected`; the recorded backend afterwards. */
  replace(key: ClientKey, expected: string, next: string, timeoutSeconds: number): Promise<string>;
  /** The clients were seen: their timeouts start again (batched by the caller). */
  touch(keys: readonly TouchRequest[]): Promise<void>;
  /** Entries that expired here. */
  remove(keys: readonly ClientKey[]): Promise<void>;
  close(): Promise<void>;
  status(): Record<string, unknown>;
}
