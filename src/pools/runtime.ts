// The live state of backend pools: what the file says, changed at runtime by health checks
// (up/down, reported weights) and by the operator (`l4mux backend`: state and weight), and
// the pool's all-down policy. The daemon turns it into dataplane snapshots through view().
//
// Precedence for a backend's weight: operator override > weight reported by its check >
// configured. For its state: operator override > configured. An override lasts until the
// daemon stops, or until a reload changes that backend's value in the file (the file is then
// the newer word). Health: a backend without a check is up; a checked one counts as up until
// its checks say down (keepalived's default), and as down once they do.
import { MAX_WEIGHT } from '../config/defaults.js';
import { parseAddress } from '../config/addresses.js';
import type { BackendRuntime, BackendView } from '../config/dataplane.js';
import type { BackendConfig, L4muxConfig } from '../config/types.js';
import type { BackendAdminState } from '../dataplane/types.js';
import type { HealthState } from '../health/types.js';

export const ADMIN_STATES: readonly BackendAdminState[] = ['active', 'draining', 'offline'];

export interface BackendOverride {
  state?: BackendAdminState;
  weight?: number;
}

export interface BackendStatus {
  address: string;
  state: BackendAdminState;
  /** Where the state comes from. */
  stateSource: 'config' | 'runtime';
  /** 'unchecked' when the backend has no health check. */
  health: HealthState | 'unchecked';
  /** What the dataplane is given: false = no new flows, its flows rescheduled. */
  healthy: boolean;
  configuredWeight: number;
  weight: number;
  weightSource: 'config' | 'check' | 'runtime';
  fallover: string[];
}

export interface PoolStatus {
  allDownPolicy: 'drop' | 'keep-last';
  /** Every backend of the pool is down by its health checks. */
  allDown: boolean;
  allDownSince: string | null;
  /** How many times the pool went all down since the daemon started. */
  allDownEpisodes: number;
  /** With keep-last while all down: the backends still sent new flows. */
  servingLastHealthy: string[];
  backends: BackendStatus[];
}

/** A change the operator asked for, as a log / reply line. */
export type OverrideResult = { ok: true; change: string } | { ok: false; error: string };

const key = (pool: string, address: string): string => `${pool}/${address}`;

export interface AllDownChange {
  pool: string;
  to: 'down' | 'up';
  policy: 'drop' | 'keep-last';
}

interface AllDownEpisode {
  since: Date;
}

export class PoolRuntime {
  private config: L4muxConfig;
  private readonly overrides = new Map<string, BackendOverride>();
  private readonly health = new Map<string, HealthState>();
  private readonly reportedWeights = new Map<string, number>();
  /** Per pool: the backends that were up the last time at least one was. */
  private readonly lastHealthy = new Map<string, Set<string>>();
  private readonly allDown = new Map<string, AllDownEpisode>();
  private readonly episodes = new Map<string, number>();
  private pendingChanges: AllDownChange[] = [];

  constructor(config: L4muxConfig) {
    this.config = config;
    this.refresh();
  }

  /**
   * A reloaded config. Overrides of backends that left, or whose state / weight the file
   * changed, are dropped; returns a line for each dropped override.
   */
  setConfig(next: L4muxConfig): string[] {
    const notes: string[] = [];
    for (const [k, override] of this.overrides) {
      const [pool, address] = splitKey(k);
      const before = this.backend(this.config, pool, address);
      const after = this.backend(next, pool, address);
      if (after === undefined) {
        this.overrides.delete(k);
        continue;
      }
      if (override.state !== undefined && before?.state !== after.state) {
        delete override.state;
        notes.push(`pool ${pool}: backend ${address}: the file now sets state ${after.state}; the runtime state override is dropped`);
      }
      if (override.weight !== undefined && before?.weight !== after.weight) {
        delete override.weight;
        notes.push(`pool ${pool}: backend ${address}: the file now sets weight ${after.weight}; the runtime weight override is dropped`);
      }
      if (override.state === undefined && override.weight === undefined) this.overrides.delete(k);
    }
    this.config = next;
    const live = new Set(Object.entries(next.pools).flatMap(([pool, p]) => p.backends.map((b) => key(pool, b.address))));
    for (const map of [this.health, this.reportedWeights]) {
      for (const k of map.keys()) if (!live.has(k)) map.delete(k);
    }
    this.refresh();
    return notes;
  }

  /** The state a health check reached (its key is "<pool>/<address>"). */
  setHealth(checkKey: string, state: HealthState): void {
    this.health.set(checkKey, state);
    this.refresh();
  }

  /** Forgets a backend's check (removed from the config): it counts as up again. */
  clearHealth(checkKey: string): void {
    this.health.delete(checkKey);
    this.reportedWeights.delete(checkKey);
    this.refresh();
  }

  /** The weight a backend's check reported; undefined returns to the configured one. */
  setReportedWeight(checkKey: string, weight: number | undefined): void {
    if (weight === undefined) this.reportedWeights.delete(checkKey);
    else this.reportedWeights.set(checkKey, weight);
  }

  /** An operator's change of a backend's state and/or weight. */
  override(pool: string, addressText: string, change: BackendOverride): OverrideResult {
    const parsed = parseAddress(addressText);
    if (!parsed.ok) return { ok: false, error: `address: ${parsed.reason}` };
    const address = parsed.address.canonical;
    const backend = this.backend(this.config, pool, address);
    if (backend === undefined) {
      return Object.hasOwn(this.config.pools, pool)
        ? { ok: false, error: `pool ${pool} has no backend ${address}` }
        : { ok: false, error: `there is no pool ${pool}` };
    }
    if (change.state !== undefined && !ADMIN_STATES.includes(change.state)) {
      return { ok: false, error: `state: "${String(change.state)}" is not one of ${ADMIN_STATES.join(', ')}` };
    }
    if (change.weight !== undefined && !(Number.isInteger(change.weight) && change.weight >= 0 && change.weight <= MAX_WEIGHT)) {
      return { ok: false, error: `weight: ${String(change.weight)} is not an integer in 0..${MAX_WEIGHT} (as in the file)` };
    }
    const k = key(pool, address);
    const current = { ...this.overrides.get(k), ...change };
    this.overrides.set(k, current);
    const parts: string[] = [];
    if (change.state !== undefined) parts.push(`state ${change.state}`);
    if (change.weight !== undefined) parts.push(`weight ${change.weight}`);
    return { ok: true, change: `pool ${pool}: backend ${address}: ${parts.join(', ')} (runtime)` };
  }

  /** How toDataplaneConfig sees each backend now. */
  view(): BackendView {
    return (pool: string, backend: BackendConfig): BackendRuntime => {
      const k = key(pool, backend.address);
      return { healthy: this.isServing(pool, backend.address), weight: this.weightOf(k, backend).weight, state: this.stateOf(k, backend).state };
    };
  }

  status(): Record<string, PoolStatus> {
    return Object.fromEntries(
      Object.entries(this.config.pools).map(([pool, p]): [string, PoolStatus] => {
        const episode = this.allDown.get(pool);
        const servingLastHealthy = episode !== undefined && p.allDown === 'keep-last' ? [...(this.lastHealthy.get(pool) ?? [])] : [];
        return [
          pool,
          {
            allDownPolicy: p.allDown,
            allDown: episode !== undefined,
            allDownSince: episode?.since.toISOString() ?? null,
            allDownEpisodes: this.episodes.get(pool) ?? 0,
            servingLastHealthy,
            backends: p.backends.map((b): BackendStatus => {
              const k = key(pool, b.address);
              const state = this.stateOf(k, b);
              const weight = this.weightOf(k, b);
              return {
                address: b.address,
                state: state.state,
                stateSource: state.source,
                health: this.health.get(k) ?? 'unchecked',
                healthy: this.isServing(pool, b.address),
                configuredWeight: b.weight,
                weight: weight.weight,
                weightSource: weight.source,
                fallover: b.fallover,
              };
            }),
          },
        ];
      }),
    );
  }

  /** Pools that went all down ("down") or came back ("up") since the last call, for logging. */
  takeAllDownChanges(): AllDownChange[] {
    const changes = this.pendingChanges;
    this.pendingChanges = [];
    return changes;
  }

  private isUp(pool: string, address: string): boolean {
    return this.health.get(key(pool, address)) !== 'down';
  }

  private isServing(pool: string, address: string): boolean {
    if (this.isUp(pool, address)) return true;
    const p = this.config.pools[pool];
    return p?.allDown === 'keep-last' && this.allDown.has(pool) && (this.lastHealthy.get(pool)?.has(address) ?? false);
  }

  private stateOf(k: string, b: BackendConfig): { state: BackendAdminState; source: 'config' | 'runtime' } {
    const state = this.overrides.get(k)?.state;
    return state !== undefined ? { state, source: 'runtime' } : { state: b.state, source: 'config' };
  }

  private weightOf(k: string, b: BackendConfig): { weight: number; source: 'config' | 'check' | 'runtime' } {
    const override = this.overrides.get(k)?.weight;
    if (override !== undefined) return { weight: override, source: 'runtime' };
    const reported = this.reportedWeights.get(k);
    if (reported !== undefined) return { weight: reported, source: 'check' };
    return { weight: b.weight, source: 'config' };
  }

  /** Tracks all-down episodes and the last healthy set of every pool. */
  private refresh(): void {
    for (const pool of [...this.allDown.keys(), ...this.lastHealthy.keys()]) {
      if (!Object.hasOwn(this.config.pools, pool)) {
        this.allDown.delete(pool);
        this.lastHealthy.delete(pool);
      }
    }
    for (const [pool, p] of Object.entries(this.config.pools)) {
      const up = p.backends.filter((b) => this.isUp(pool, b.address)).map((b) => b.address);
      const down = p.backends.length > 0 && up.length === 0;
      if (!down) {
        this.lastHealthy.set(pool, new Set(up));
        if (this.allDown.delete(pool)) this.pendingChanges.push({ pool, to: 'up', policy: p.allDown });
      } else if (!this.allDown.has(pool)) {
        this.allDown.set(pool, { since: new Date() });
        this.episodes.set(pool, (this.episodes.get(pool) ?? 0) + 1);
        this.pendingChanges.push({ pool, to: 'down', policy: p.allDown });
      }
    }
  }

  private backend(config: L4muxConfig, pool: string, address: string): BackendConfig | undefined {
    const p = Object.hasOwn(config.pools, pool) ? config.pools[pool] : undefined;
    return p?.backends.find((b) => b.address === address);
  }
}

function splitKey(k: string): [string, string] {
  const i = k.indexOf('/');
  return [k.slice(0, i), k.slice(i + 1)];
}
