// The slow path of client persistence: the fast path serves clients it knows on its own; a
// client's first packet comes here, where the store's atomic read-miss-create picks its backend
// once for every mux.
//
// Workers punt the first packet of a client that has no live entry (or whose entry's backend
// can no longer take new flows) and hold it. This drains the punts in batches, one group per
// client: the backend the worker's scheduler proposed is offered to the store's read-miss-create,
// whose answer (the backend already recorded, or the proposal now recorded) is installed in every
// engine's table, and the held packets are released to it. A recorded backend that cannot take
// new flows is replaced by the proposal with a compare-and-set.
//
// Faults: when the store fails or is slower than `storeTimeoutMs`, the proposal is taken locally
// (counted; logged once per episode) and installed, so that traffic keeps flowing and the
// punt queues stay short; the local decisions are offered to the store again once it answers
// (reconciliation), and the fast path follows the store's answer from then on.
import type { Logger } from 'pino';

import type { PersistenceApi, Punt } from '../dataplane/engine.js';
import { clientKey, splitClientKey, type ClientKey, type PersistenceStore, type StoreEntry } from './store.js';

export interface PersistentVip {
  name: string;
  timeoutSeconds: number;
  maxEntries: number;
}

/** What the slow path knows of an entry (mirrors the engines' tables). */
interface Known {
  vip: string;
  client: string;
  backend: string;
  /** Wall-clock milliseconds. */
  expiresAt: number;
  /** Decided while the store could not answer: to be offered to it again. */
  local: boolean;
}

export interface SlowPathCounters {
  batches: number;
  punts: number;
  clients: number;
  storeCreated: number;
  storeExisting: number;
  replaced: number;
  localDecisions: number;
  reconciled: number;
  reconcileChanged: number;
  overLimit: number;
  noBackend: number;
  touches: number;
  expired: number;
  storeErrors: number;
  /** Store calls that did not answer within `storeTimeoutMs` (also counted in storeErrors). */
  storeTimeouts: number;
  watchInstalls: number;
  watchRemovals: number;
}

export interface SlowPathOptions {
  store: PersistenceStore;
  logger: Logger;
  now?: () => number;
  /**
   * Milliseconds a store call (read-miss-create, compare-and-set, touch, reconciliation) may
   * take; past it the call counts as failed and the slow path decides locally (the store's
   * late answer is dropped; reconciliation offers the local decision again). While the store
   * is down (a call failed or timed out), new clients are decided locally at once, without
   * waiting for it; one batch a second (and the reconciliation) tries it again. Absent: only the store's own
   * timeouts bound its calls (the daemon always passes persistence.storeTimeout).
   */
  storeTimeoutMs?: number;
}

/** A store call that did not answer within storeTimeoutMs. */
export class StoreTimeoutError extends Error {}

export class SlowPath {
  private readonly engines = new Set<PersistenceApi>();
  private vips = new Map<string, PersistentVip>();
  private readonly known = new Map<ClientKey, Known>();
  private readonly perVip = new Map<string, number>();
  private running = false;
  private again = false;
  private storeDown = false;
  private storeDownSince = 0;
  /** While the store is down: when a call last tried it (one try a second probes it). */
  private lastProbe = 0;
  private pendingTouches = new Map<ClientKey, { vip: string; client: string }>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly counters: SlowPathCounters = {
    batches: 0, punts: 0, clients: 0, storeCreated: 0, storeExisting: 0, replaced: 0, localDecisions: 0, reconciled: 0,
    reconcileChanged: 0, overLimit: 0, noBackend: 0, touches: 0, expired: 0, storeErrors: 0, storeTimeouts: 0, watchInstalls: 0, watchRemovals: 0,
  };
  /** Wall-clock ms of each first packet's delay, the last few thousand (status, bench). */
  readonly delaysUs: number[] = [];
  private readonly now: () => number;
  private readonly storeTimeoutMs: number | undefined;

  constructor(private readonly options: SlowPathOptions) {
    this.now = options.now ?? Date.now;
    this.storeTimeoutMs = options.storeTimeoutMs;
  }

  /** `call` of the store, failed (StoreTimeoutError) when it takes longer than storeTimeoutMs. */
  private bounded<T>(call: Promise<T>, what: string): Promise<T> {
    const ms = this.storeTimeoutMs;
    if (ms === undefined) return call;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.counters.storeTimeouts += 1;
        reject(new StoreTimeoutError(`${this.store.kind} store: ${what} took longer than ${ms} ms`));
      }, ms);
    });
    call.catch(() => undefined);  // a late rejection is nobody's business any more
    return Promise.race([call, late]).finally(() => clearTimeout(timer));
  }

  get store(): PersistenceStore {
    return this.options.store;
  }

  /** The persistent VIPs of the running config (called at start and on every reload). */
  setVips(vips: readonly PersistentVip[]): void {
    this.vips = new Map(vips.map((v) => [v.name, v]));
    // Entries of VIPs that are no longer persistent (removed, or persistence turned off) go.
    const gone: Array<{ vip: string; client: string; backend: string }> = [];
    for (const [key, k] of this.known) {
      if (this.vips.has(k.vip)) continue;
      gone.push({ vip: k.vip, client: k.client, backend: k.backend });
      this.forget(key);
    }
    this.perVip.forEach((_n, vip) => {
      if (!this.vips.has(vip)) this.perVip.delete(vip);
    });
    if (gone.length === 0) return;
    for (const engine of this.engines) {
      try {
        engine.remove(gone);
      } catch (err) {
        this.options.logger.warn({ err }, `persistence: removing the entries of ${new Set(gone.map((g) => g.vip)).size} VIPs failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** Loads the store's entries into `engines`, and takes their punts from now on. */
  async start(engines: readonly PersistenceApi[]): Promise<void> {
    const entries = await this.store.open({ put: (e) => this.fromStore(e), removed: (k) => this.removedInStore(k) });
    for (const e of engines) this.engines.add(e);
    this.installAll(entries.map((e) => ({ ...e, local: false })));
    for (const engine of engines) {
      engine.onPunt(() => this.wake());
      this.wake();
    }
    // Touches, expiry and reconciliation: batched, once a second.
    this.timer = setInterval(() => void this.housekeeping(), 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    for (const e of this.engines) e.onPunt(() => undefined);
    await this.store.close();
  }

  entry(vip: string, client: string): Known | undefined {
    for (const [k, v] of this.known) if (v.vip === vip && (v.client === client || k === clientKey(vip, client))) return { ...v };
    return undefined;
  }

  entryCount(vip?: string): number {
    return vip === undefined ? this.known.size : (this.perVip.get(vip) ?? 0);
  }

  storeAvailable(): boolean {
    return !this.storeDown;
  }

  private wake(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        this.again = false;
        let work = false;
        for (const engine of this.engines) {
          const { punts, touches } = engine.drain();
          for (const t of touches) this.pendingTouches.set(clientKey(t.vip, t.client), t);
          if (punts.length > 0) {
            work = true;
            await this.decide(engine, punts);
          }
        }
        if (this.stopped) return;
        // Armed after draining; punts that came meanwhile are drained once more.
        let waiting = 0;
        for (const engine of this.engines) waiting += engine.arm();
        if (!work && waiting === 0 && !this.again) return;
      }
    } catch (e) {
      this.options.logger.error({ err: e }, `persistence slow path: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.running = false;
    }
  }

  private async decide(engine: PersistenceApi, punts: Punt[]): Promise<void> {
    this.counters.batches += 1;
    this.counters.punts += punts.length;
    const now = this.now();
    const groups = new Map<ClientKey, Punt[]>();
    for (const p of punts) {
      const key = clientKey(p.vip, p.client);
      const g = groups.get(key);
      if (g === undefined) groups.set(key, [p]);
      else g.push(p);
    }
    this.counters.clients += groups.size;
    const answers = new Map<ClientKey, string | undefined>();
    const rmc: Array<{ key: ClientKey; proposed: string; timeoutSeconds: number }> = [];
    const repick: Array<{ key: ClientKey; expected: string; proposed: string; timeoutSeconds: number }> = [];
    const planned = new Map<string, number>();
    for (const [key, group] of groups) {
      const first = group[0] as Punt;
      const vip = this.vips.get(first.vip);
      const proposed = group.find((p) => p.proposed !== undefined)?.proposed;
      if (vip === undefined || proposed === undefined) {
        if (proposed === undefined) this.counters.noBackend += 1;
        answers.set(key, proposed);  // not persistent (any more), or nothing can take it
        continue;
      }
      const recorded = group.find((p) => p.recorded !== undefined)?.recorded;
      const known = this.known.get(key);
      if (recorded !== undefined && engine.accepts(vip.name, recorded)) {
        answers.set(key, recorded);  // it takes flows again
      } else if (recorded !== undefined) {
        repick.push({ key, expected: recorded, proposed, timeoutSeconds: vip.timeoutSeconds });
      } else if (known !== undefined && known.expiresAt > now && engine.accepts(vip.name, known.backend)) {
        answers.set(key, known.backend);  // installed since the worker looked
      } else if (known === undefined && (this.perVip.get(vip.name) ?? 0) + (planned.get(vip.name) ?? 0) >= vip.maxEntries) {
        this.counters.overLimit += 1;
        answers.set(key, proposed);  // scheduled without an entry
      } else {
        if (known === undefined) planned.set(vip.name, (planned.get(vip.name) ?? 0) + 1);
        rmc.push({ key, proposed, timeoutSeconds: vip.timeoutSeconds });
      }
    }

    const installs: Array<{ key: ClientKey; backend: string; local: boolean }> = [];
    // While the store is down, one batch a second tries it; the others are decided at once.
    let skipStore = (rmc.length > 0 || repick.length > 0) && this.storeDown && !this.probeDue(now);
    if (rmc.length > 0 && skipStore) {
      // Known down: this batch does not wait for it.
      for (const q of rmc) {
        this.counters.localDecisions += 1;
        answers.set(q.key, q.proposed);
        installs.push({ key: q.key, backend: q.proposed, local: true });
      }
    } else if (rmc.length > 0) {
      try {
        const results = await this.bounded(this.store.rmc(rmc), 'read-miss-create');
        this.storeAnswered();
        const asks = new Map(rmc.map((q) => [q.key, q]));
        const names = new Set(this.vips.keys());
        for (const r of results) {
          const asked = asks.get(r.key);
          if (r.created) this.counters.storeCreated += 1;
          else this.counters.storeExisting += 1;
          const parts = splitClientKey(r.key, names);
          if (!r.created && asked !== undefined && parts !== undefined && !engine.accepts(parts.vip, r.backend)) {
            repick.push({ key: r.key, expected: r.backend, proposed: asked.proposed, timeoutSeconds: asked.timeoutSeconds });
            continue;
          }
          answers.set(r.key, r.backend);
          installs.push({ key: r.key, backend: r.backend, local: false });
        }
      } catch (e) {
        this.storeFailed(e);
        skipStore = true;
        for (const q of rmc) {
          this.counters.localDecisions += 1;
          answers.set(q.key, q.proposed);
          installs.push({ key: q.key, backend: q.proposed, local: true });
        }
      }
    }
    for (const r of repick) {
      if (skipStore) {
        this.counters.localDecisions += 1;
        answers.set(r.key, r.proposed);
        installs.push({ key: r.key, backend: r.proposed, local: true });
        continue;
      }
      try {
        const backend = await this.bounded(this.store.replace(r.key, r.expected, r.proposed, r.timeoutSeconds), 'compare-and-set');
        this.storeAnswered();
        this.counters.replaced += 1;
        const parts = splitClientKey(r.key, new Set(this.vips.keys()));
        // Replaced by another mux with one that cannot take flows either: ours, locally.
        const usable = parts !== undefined && engine.accepts(parts.vip, backend) ? backend : r.proposed;
        answers.set(r.key, usable);
        installs.push({ key: r.key, backend: usable, local: usable !== backend });
      } catch (e) {
        this.storeFailed(e);
        skipStore = true;
        this.counters.localDecisions += 1;
        answers.set(r.key, r.proposed);
        installs.push({ key: r.key, backend: r.proposed, local: true });
      }
    }
    this.installAll(installs.map((i) => ({ key: i.key, backend: i.backend, ttlMs: Number.POSITIVE_INFINITY, local: i.local })));

    const released: Array<{ worker: number; slot: number; ticket: number; backend?: string }> = [];
    for (const [key, group] of groups) {
      const backend = answers.get(key);
      for (const p of group) {
        released.push({ worker: p.worker, slot: p.slot, ticket: p.ticket, ...(backend !== undefined && { backend }) });
        this.recordDelay(p.ageUs);
      }
    }
    engine.answer(released);
  }

  private recordDelay(ageUs: number): void {
    this.delaysUs.push(ageUs);
    if (this.delaysUs.length > 8192) this.delaysUs.splice(0, this.delaysUs.length - 4096);
  }

  /** Installs entries in every engine and the mirror. `ttlMs` infinite: the VIP's timeout. */
  private installAll(entries: ReadonlyArray<StoreEntry & { local: boolean }>): void {
    if (entries.length === 0) return;
    const now = this.now();
    const names = new Set(this.vips.keys());
    const batch: Array<{ vip: string; client: string; backend: string; ttlMs: number }> = [];
    for (const e of entries) {
      const parts = splitClientKey(e.key, names);
      if (parts === undefined) continue;  // a VIP that is not persistent here (any more)
      const vip = this.vips.get(parts.vip) as PersistentVip;
      const ttlMs = Math.min(e.ttlMs, vip.timeoutSeconds * 1000);
      if (ttlMs <= 0) continue;
      const previous = this.known.get(e.key);
      if (previous === undefined) this.perVip.set(parts.vip, (this.perVip.get(parts.vip) ?? 0) + 1);
      this.known.set(e.key, { vip: parts.vip, client: parts.client, backend: e.backend, expiresAt: now + ttlMs, local: e.local });
      batch.push({ vip: parts.vip, client: parts.client, backend: e.backend, ttlMs });
    }
    for (const engine of this.engines) {
      try {
        const r = engine.install(batch);
        for (const ev of r.evicted) this.forget(clientKey(ev.vip, ev.client));
      } catch (err) {
        // A backend the running snapshot no longer has: the next punt decides anew.
        this.options.logger.warn({ err }, `persistence: install refused: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  private forget(key: ClientKey): void {
    const k = this.known.get(key);
    if (k === undefined) return;
    this.known.delete(key);
    this.perVip.set(k.vip, Math.max(0, (this.perVip.get(k.vip) ?? 1) - 1));
  }

  private fromStore(e: StoreEntry): void {
    this.counters.watchInstalls += 1;
    const known = this.known.get(e.key);
    if (known !== undefined && known.backend === e.backend) {
      // Our own put, or a refresh by another mux: the entry lives on.
      const vip = this.vips.get(known.vip);
      if (vip !== undefined) {
        known.expiresAt = this.now() + vip.timeoutSeconds * 1000;
        for (const engine of this.engines) engine.refresh([{ vip: known.vip, client: known.client, ttlMs: vip.timeoutSeconds * 1000 }]);
      }
      return;
    }
    this.installAll([{ ...e, local: false }]);
  }

  private removedInStore(key: ClientKey): void {
    const k = this.known.get(key);
    if (k === undefined) return;
    // Still in use here (touched within the timeout): record it again rather than drop it.
    if (k.expiresAt > this.now() + 1000) {
      const vip = this.vips.get(k.vip);
      if (vip !== undefined) void this.store.rmc([{ key, proposed: k.backend, timeoutSeconds: vip.timeoutSeconds }]).catch(() => undefined);
      return;
    }
    this.counters.watchRemovals += 1;
    for (const engine of this.engines) engine.remove([{ vip: k.vip, client: k.client, backend: k.backend }]);
    this.forget(key);
  }

  private storeAnswered(): void {
    if (!this.storeDown) return;
    this.storeDown = false;
    this.options.logger.info({ store: this.store.kind, downForMs: this.now() - this.storeDownSince }, 'persistence store answers again: reconciling the local decisions');
  }

  /** While the store is down: whether this call should try it (at most once a second). */
  private probeDue(now: number): boolean {
    if (now - this.lastProbe < 1000) return false;
    this.lastProbe = now;
    return true;
  }

  private storeFailed(e: unknown): void {
    this.counters.storeErrors += 1;
    this.lastProbe = this.now();
    if (this.storeDown) return;
    this.storeDown = true;
    this.storeDownSince = this.now();
    // Once per episode: a store outage under load must not flood the log.
    this.options.logger.warn({ store: this.store.kind, err: e instanceof Error ? e.message : String(e) }, 'persistence store unreachable or slow: new clients are decided locally until it answers');
  }

  /** Touches (batched), expiry, reconciliation of local decisions. */
  async housekeeping(): Promise<void> {
    if (this.stopped) return;
    const now = this.now();
    // Touches the drain did not see yet.
    for (const engine of this.engines) {
      const { punts, touches } = engine.drain(0);
      for (const t of touches) this.pendingTouches.set(clientKey(t.vip, t.client), t);
      if (punts.length > 0) await this.decide(engine, punts);
    }
    const touched = this.pendingTouches;
    this.pendingTouches = new Map();
    const storeTouches: Array<{ key: ClientKey; backend: string; timeoutSeconds: number }> = [];
    const refresh: Array<{ vip: string; client: string; ttlMs: number }> = [];
    for (const [key, t] of touched) {
      const k = this.known.get(key);
      const vip = this.vips.get(t.vip);
      if (k === undefined || vip === undefined) continue;
      k.expiresAt = now + vip.timeoutSeconds * 1000;
      refresh.push({ vip: t.vip, client: t.client, ttlMs: vip.timeoutSeconds * 1000 });
      if (!k.local) storeTouches.push({ key, backend: k.backend, timeoutSeconds: vip.timeoutSeconds });
    }
    this.counters.touches += refresh.length;
    // Every engine learns the touch: a client's packets may arrive on another interface next.
    if (refresh.length > 0) for (const engine of this.engines) engine.refresh(refresh);
    if (storeTouches.length > 0 && (!this.storeDown || this.probeDue(now))) {
      try {
        await this.bounded(this.store.touch(storeTouches), 'touch');
        this.storeAnswered();
      } catch (e) {
        this.storeFailed(e);
      }
    }

    // Expiry: the engines free what timed out; the mirror and the store follow.
    const expired: ClientKey[] = [];
    for (const engine of this.engines) {
      for (const e of engine.expire(4096)) {
        const key = clientKey(e.vip, e.client);
        const k = this.known.get(key);
        if (k !== undefined && k.expiresAt <= now) expired.push(key);
      }
    }
    for (const [key, k] of this.known) if (k.expiresAt <= now && !expired.includes(key)) expired.push(key);
    for (const key of expired) this.forget(key);
    this.counters.expired += expired.length;
    if (expired.length > 0) {
      for (const engine of this.engines) {
        engine.remove(expired.map((key) => {
          const parts = splitClientKey(key, new Set(this.vips.keys()));
          return parts ?? { vip: '', client: '' };
        }).filter((p) => p.vip !== ''));
      }
      await this.store.remove(expired).catch(() => undefined);
    }

    await this.reconcile();
  }

  /** Offers the local decisions to the store; its answer wins from now on. */
  private async reconcile(): Promise<void> {
    const local = [...this.known].filter(([, k]) => k.local);
    if (local.length === 0) return;
    const requests = local.slice(0, 4096).map(([key, k]) => ({ key, proposed: k.backend, timeoutSeconds: this.vips.get(k.vip)?.timeoutSeconds ?? 1 }));
    try {
      const answers = await this.bounded(this.store.rmc(requests), 'reconciliation');
      this.storeAnswered();
      const changed: Array<StoreEntry & { local: boolean }> = [];
      for (const a of answers) {
        const k = this.known.get(a.key);
        if (k === undefined) continue;
        this.counters.reconciled += 1;
        k.local = false;
        if (a.backend !== k.backend) {
          this.counters.reconcileChanged += 1;
          changed.push({ key: a.key, backend: a.backend, ttlMs: Number.POSITIVE_INFINITY, local: false });
        }
      }
      this.installAll(changed);
    } catch (e) {
      this.storeFailed(e);
    }
  }

  status(): Record<string, unknown> {
    const sorted = [...this.delaysUs].sort((a, b) => a - b);
    const q = (f: number): number | undefined => (sorted.length > 0 ? sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] : undefined);
    return {
      store: { ...this.store.status(), available: !this.storeDown },
      entries: this.known.size,
      perVip: Object.fromEntries(this.perVip),
      localPending: [...this.known.values()].filter((k) => k.local).length,
      counters: { ...this.counters },
      firstPacketDelayUs: { median: q(0.5), p99: q(0.99), samples: sorted.length },
    };
  }
}
