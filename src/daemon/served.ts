// The interfaces the daemon forwards on. A ServedInterface is one of them: its link, its next
// hop toward the backends, its engine and the dataplane config the engine runs. Every change
// that reaches the packet path (startup, a reload, a health or operator change of the pools, a
// link or next-hop change) goes through ServedInterface.push: build the interface's dataplane
// config from the running config, the pools and the interface's facts; when it differs from the
// one the engine runs, have the engine build its snapshot off the event loop (prepare) and swap
// it in (commit); remember the one before for a rollback.
//
// ServedInterfaces is the forwarding service: it creates and starts the engines, and pushes a
// reload to every interface or to none: every engine's snapshot is built before any is swapped
// in.
import type { Logger } from 'pino';

import { conntrackSettings, toDataplaneConfig, type L4muxConfig } from '../config/index.js';
import { DEFAULT_CLUSTER_EXPORT_RING } from '../config/defaults.js';
import type { DataplaneCluster, DataplaneConfig } from '../dataplane/types.js';
import type { EngineFactory, EngineLike, EngineOptions, IoModeReport, PreparedConfig } from '../dataplane/engine.js';
import type { NetHost } from '../net/host.js';
import type { LinkInfo } from '../net/links.js';
import { resolveNextHop, type NextHopRequest, type NextHopResolution, type ResolveOptions, type TrackedInterface } from '../net/nexthop.js';
import type { PoolSupervisor } from '../pools/supervisor.js';
import { errorMessage, StartupError, type Service, type ServiceContext } from './service.js';

/** The next hop an interface sends to: what was asked (from the config) and what was found. */
export interface NextHop {
  request: NextHopRequest;
  /** Absent when node.gatewayMac is given. */
  resolution: NextHopResolution | undefined;
}

/** What a push did. */
export interface PushResult {
  /** False when the engine already ran this config (nothing was sent to it). */
  changed: boolean;
  /** The config the engine ran before (undefined before the first push). */
  before: DataplaneConfig | undefined;
  after: DataplaneConfig;
}

export type PushAllResult = { ok: true } | { ok: false; errors: string[] };

/** A dataplane config whose snapshot the engine has built (absent: it runs this config already). */
export interface Prepared {
  dataplane: DataplaneConfig;
  hop: NextHop;
  snapshot: PreparedConfig | undefined;
}

/** A reload's snapshots, built for every interface and not yet swapped in. */
export interface PreparedReload {
  config: L4muxConfig;
  plans: Map<string, Prepared>;
}

export type PrepareAllResult = { ok: true; reload: PreparedReload } | { ok: false; errors: string[] };

function same(a: DataplaneConfig | undefined, b: DataplaneConfig | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Every distinct backend address of the config (weight 0 included: they keep their flows). */
export function backendAddresses(config: L4muxConfig): string[] {
  return [...new Set(Object.values(config.pools).flatMap((p) => p.backends.map((b) => b.address)))];
}

/** What the next hop of interface `name` must reach under `config`. */
export function nextHopRequest(config: L4muxConfig, name: string): NextHopRequest {
  return {
    interface: name,
    targets: config.node.gatewayMac !== undefined ? [] : backendAddresses(config),
    ...(config.node.gateway !== undefined && config.node.gatewayMac === undefined && { gateway: config.node.gateway }),
  };
}

function sameRequest(a: NextHopRequest, b: NextHopRequest): boolean {
  return a.interface === b.interface && a.gateway === b.gateway && JSON.stringify([...a.targets].sort()) === JSON.stringify([...b.targets].sort());
}

/** The next hop as the startup log line shows it. */
function describeHop(resolution: NextHopResolution | undefined, config: L4muxConfig): Record<string, unknown> {
  if (config.node.gatewayMac !== undefined) return { gatewayMac: config.node.gatewayMac, source: 'node.gatewayMac' };
  if (resolution === undefined || resolution.mac === undefined) return { source: 'none (no backends)' };
  return { gatewayMac: resolution.mac, source: resolution.source === 'gateway' ? 'node.gateway' : 'routes', hops: resolution.hops.map((h) => `${h.address} (${h.state})`) };
}

export class ServedInterface {
  io: IoModeReport = { mode: 'unknown', reason: 'not started', reported: false };
  started = false;
  private current: DataplaneConfig | undefined;
  /** The state before the last push, until the next one. */
  private previous: { applied: DataplaneConfig | undefined; hop: NextHop; changed: boolean } | undefined;

  constructor(
    readonly name: string,
    readonly engine: EngineLike,
    public link: LinkInfo,
    public hop: NextHop,
    /** The cluster view every snapshot carries (DataplaneConfig.cluster); absent: no cluster. */
    private readonly clusterView: () => DataplaneCluster | undefined = () => undefined,
  ) {}

  /** The config the engine runs (the last one it accepted). */
  get applied(): DataplaneConfig {
    if (this.current === undefined) throw new Error(`${this.name}: no config pushed yet`);
    return this.current;
  }

  /**
   * The config this engine gets: the file's values, else the interface's and the next hop's;
   * backends as the pools see them now (health, runtime states and weights). Throws on a config
   * the dataplane cannot take; pure otherwise.
   */
  build(config: L4muxConfig, pools: PoolSupervisor, hop: NextHop = this.hop): DataplaneConfig {
    const cluster = this.clusterView();
    const dataplane = toDataplaneConfig(
      config,
      {
        ...(this.link.mac !== undefined && { sourceMac: this.link.mac }),
        ...(hop.resolution?.mac !== undefined && { gatewayMac: hop.resolution.mac }),
        mtu: this.link.mtu,
      },
      pools.view(),
    );
    return cluster === undefined ? dataplane : { ...dataplane, cluster };
  }

  /** The config the engine runs, undefined before the first push. */
  get appliedOrNone(): DataplaneConfig | undefined {
    return this.current;
  }

  /**
   * Builds this interface's config and gives it to the engine when it differs from the running
   * one; `hop` (a reload's new next hop) becomes the interface's. Throws when the build fails or
   * the engine refuses: then nothing changed.
   */
  async push(config: L4muxConfig, pools: PoolSupervisor, hop: NextHop = this.hop): Promise<PushResult> {
    return this.commit(await this.prepare(this.build(config, pools, hop), hop));
  }

  /** Has the engine build the snapshot of `dataplane` (none when it runs that config already). */
  async prepare(dataplane: DataplaneConfig, hop: NextHop = this.hop): Promise<Prepared> {
    return { dataplane, hop, snapshot: same(dataplane, this.current) ? undefined : await this.engine.prepareConfig(dataplane) };
  }

  /**
   * Swaps a prepared snapshot in. The engine's config must not have changed since the prepare
   * (the daemon's update queue sees to it): a snapshot prepared from another base is refused.
   */
  commit(prepared: Prepared): PushResult {
    const before = this.current;
    const changed = prepared.snapshot !== undefined;
    if (changed) this.engine.publishConfig(prepared.snapshot as PreparedConfig);
    else if (!same(prepared.dataplane, before)) throw new Error(`${this.name}: the running config changed since the prepare`);
    this.previous = { applied: before, hop: this.hop, changed };
    this.current = prepared.dataplane;
    this.hop = prepared.hop;
    return { changed, before, after: prepared.dataplane };
  }

  /**
   * Back to the state before the last push. True when the engine was given its previous config
   * again (false: the push had not changed it). Throws when the engine refuses it.
   */
  rollback(): boolean {
    const previous = this.previous;
    if (previous === undefined) return false;
    this.previous = undefined;
    this.hop = previous.hop;
    if (!previous.changed || previous.applied === undefined) return false;
    this.engine.setConfig(previous.applied);
    this.current = previous.applied;
    return true;
  }

  /** The tracker saw the link or the next hop change: the facts the next push is built from. */
  observe(now: TrackedInterface, config: L4muxConfig): void {
    this.link = now.link;
    if (config.node.gatewayMac === undefined) this.hop = { ...this.hop, resolution: now.resolution };
  }

  async start(): Promise<void> {
    await this.engine.start();
    this.started = true;
    this.io = this.engine.ioMode();
  }
}

export interface ServedInterfacesOptions {
  /** The usable interfaces found by the preflight checks, in the config's order. */
  links: readonly LinkInfo[];
  workers: number;
  createEngine: EngineFactory;
  host: NetHost;
  /** Neighbour resolution retries. */
  resolve?: Omit<ResolveOptions, 'link'>;
  /** The cluster view for every snapshot; absent: no cluster. */
  cluster?: () => DataplaneCluster | undefined;
}

export type HopPlan = { ok: true; hops: Map<string, NextHop>; warnings: string[] } | { ok: false; errors: string[] };

/** The forwarding service: one engine per usable interface. */
export class ServedInterfaces implements Service {
  readonly name = 'forwarding';
  private readonly served = new Map<string, ServedInterface>();
  private logger: Logger | undefined;

  constructor(private readonly options: ServedInterfacesOptions) {}

  get(name: string): ServedInterface | undefined {
    return this.served.get(name);
  }

  names(): string[] {
    return [...this.served.keys()];
  }

  all(): ServedInterface[] {
    return [...this.served.values()];
  }

  /** Resolves every interface's next hop, creates its engine, pushes its config and starts it. */
  async start(ctx: ServiceContext): Promise<void> {
    const { logger } = ctx;
    this.logger = logger;
    const config = ctx.config();
    const { links, workers } = this.options;

    // Next hops: every problem of every interface reported at once.
    const errors: string[] = [];
    const hops = new Map<string, NextHop>();
    for (const link of links) {
      const request = nextHopRequest(config, link.name);
      if (config.node.gatewayMac !== undefined) {
        hops.set(link.name, { request, resolution: undefined });
        continue;
      }
      const result = await resolveNextHop(this.options.host, request, { ...this.options.resolve, link });
      if (!result.ok) errors.push(...result.errors);
      else {
        for (const warning of result.warnings) logger.warn({ interface: link.name, warning }, warning);
        hops.set(link.name, { request, resolution: result.resolution });
      }
    }
    if (errors.length > 0) throw new StartupError(errors);

    // Engines.
    for (const link of links) {
      if (config.node.mtu !== undefined && config.node.mtu > link.mtu) {
        logger.warn({ interface: link.name }, `node.mtu ${config.node.mtu} is above the MTU of ${link.name} (${link.mtu}): the interface drops the bigger frames`);
      }
      const engineOptions: EngineOptions = {
        interface: link.name,
        workers,
        ...(config.node.cpus !== undefined && { cpus: config.node.cpus }),
        io: config.node.io,
        ...(config.node.io !== 'af_packet' && { xdpMode: config.node.xdpMode }),
        conntrack: conntrackSettings(config),
        // The cluster's fast-path memory (export rings, peer-entry table), fixed at construction.
        ...(config.cluster !== undefined && { cluster: { peerFlows: config.cluster.maxEntries, exportRing: DEFAULT_CLUSTER_EXPORT_RING } }),
        // The persistence table and punt slots, fixed at construction too.
        ...(config.persistence !== undefined && { persistenceEntries: config.persistence.tableEntries, puntSlots: config.persistence.puntSlots }),
      };
      const hop = hops.get(link.name) as NextHop;
      let engine: EngineLike;
      try {
        engine = this.options.createEngine(engineOptions);
      } catch (e) {
        throw new StartupError([`${link.name}: cannot create the forwarding engine: ${errorMessage(e)}`]);
      }
      const served = new ServedInterface(link.name, engine, link, hop, this.options.cluster);
      this.served.set(link.name, served);
      let dataplane: DataplaneConfig;
      try {
        dataplane = (await served.push(config, ctx.pools)).after;
      } catch (e) {
        throw new StartupError([`${link.name}: the dataplane refused the config: ${errorMessage(e)}`]);
      }
      try {
        await served.start();
      } catch (e) {
        throw new StartupError([`${link.name}: cannot start forwarding: ${errorMessage(e)}`]);
      }
      logger.info(
        { interface: link.name, io: served.io, workers, cpus: config.node.cpus, mtu: dataplane.mtu, sourceMac: dataplane.sourceMac, nextHop: describeHop(hop.resolution, config) },
        `${link.name}: forwarding with ${served.io.mode}${served.io.xdpMode !== undefined ? ` (${served.io.xdpMode} XDP)` : ''}, ${workers} ${workers === 1 ? 'worker' : 'workers'}: ${served.io.reason}`,
      );
    }
  }

  /** Stops the started engines, last first. */
  async stop(): Promise<void> {
    for (const s of this.all().reverse()) {
      if (!s.started) continue;
      try {
        await s.engine.stop();
        s.started = false;
        this.logger?.info({ interface: s.name }, `${s.name}: forwarding stopped`);
      } catch (e) {
        this.logger?.error({ interface: s.name, err: errorMessage(e) }, `${s.name}: stopping the engine failed: ${errorMessage(e)}`);
      }
    }
  }

  /**
   * The next hop of every interface under `config`: the current one where the request (backends,
   * gateway) is unchanged, resolved anew elsewhere. Changes nothing.
   */
  async planHops(config: L4muxConfig): Promise<HopPlan> {
    const errors: string[] = [];
    const warnings: string[] = [];
    const hops = new Map<string, NextHop>();
    for (const served of this.served.values()) {
      const request = nextHopRequest(config, served.name);
      let resolution: NextHopResolution | undefined;
      if (config.node.gatewayMac === undefined) {
        if (served.hop.resolution !== undefined && sameRequest(request, served.hop.request)) resolution = served.hop.resolution;
        else {
          const result = await resolveNextHop(this.options.host, request, { ...this.options.resolve, link: served.link });
          if (!result.ok) errors.push(...result.errors);
          else {
            resolution = result.resolution;
            warnings.push(...result.warnings);
          }
        }
      }
      hops.set(served.name, { request, resolution });
    }
    return errors.length > 0 ? { ok: false, errors } : { ok: true, hops, warnings };
  }

  /**
   * Builds `config`'s snapshot (with each interface's planned next hop) on every interface, off
   * the event loop; swaps nothing in. Fails when one engine refuses it.
   */
  async prepareAll(config: L4muxConfig, pools: PoolSupervisor, hops: ReadonlyMap<string, NextHop> = new Map()): Promise<PrepareAllResult> {
    const plans = new Map<string, Prepared>();
    const builds: Array<Promise<string | undefined>> = [];
    for (const served of this.served.values()) {
      const hop = hops.get(served.name) ?? served.hop;
      let dataplane: DataplaneConfig;
      try {
        dataplane = served.build(config, pools, hop);
      } catch (e) {
        return { ok: false, errors: [`${served.name}: ${errorMessage(e)}`] };
      }
      builds.push(
        served.prepare(dataplane, hop).then(
          (prepared) => {
            plans.set(served.name, prepared);
            return undefined;
          },
          (e: unknown) => `${served.name}: the dataplane refused the new config: ${errorMessage(e)}`,
        ),
      );
    }
    const errors = (await Promise.all(builds)).filter((e): e is string => e !== undefined);
    return errors.length > 0 ? { ok: false, errors } : { ok: true, reload: { config, plans } };
  }

  /**
   * A prepared reload brought up to date with the pools and next hops as they are now (health
   * and operator changes go on while a reload is built): the interfaces whose config differs
   * from the prepared one are built again. Fails when one engine refuses it.
   */
  async refresh(reload: PreparedReload, pools: PoolSupervisor): Promise<PrepareAllResult> {
    const hops = new Map<string, NextHop>();
    for (const served of this.served.values()) {
      const planned = reload.plans.get(served.name);
      if (planned === undefined) return { ok: false, errors: [`${served.name}: not prepared`] };
      // An unchanged request keeps the tracker's newest answer.
      hops.set(served.name, sameRequest(planned.hop.request, served.hop.request) ? { ...planned.hop, resolution: served.hop.resolution } : planned.hop);
    }
    const plans = new Map<string, Prepared>();
    const stale: string[] = [];
    for (const served of this.served.values()) {
      const planned = reload.plans.get(served.name) as Prepared;
      const hop = hops.get(served.name) as NextHop;
      let dataplane: DataplaneConfig;
      try {
        dataplane = served.build(reload.config, pools, hop);
      } catch (e) {
        return { ok: false, errors: [`${served.name}: ${errorMessage(e)}`] };
      }
      // Still valid when the build would be the same and the engine's base is the same.
      const base = planned.snapshot === undefined ? same(planned.dataplane, served.appliedOrNone) : true;
      if (same(dataplane, planned.dataplane) && base) plans.set(served.name, { ...planned, hop });
      else stale.push(served.name);
    }
    if (stale.length === 0) return { ok: true, reload: { config: reload.config, plans } };
    const again = await this.prepareAll(reload.config, pools, hops);
    if (!again.ok) return again;
    for (const name of stale) plans.set(name, again.reload.plans.get(name) as Prepared);
    return { ok: true, reload: { config: reload.config, plans } };
  }

  /**
   * Swaps a prepared reload in on every interface, or on none: when an engine refuses, the ones
   * already given the new config are rolled back.
   */
  commitAll(reload: PreparedReload): PushAllResult {
    const done: ServedInterface[] = [];
    for (const served of this.served.values()) {
      const plan = reload.plans.get(served.name) as Prepared;
      try {
        served.commit(plan);
        done.push(served);
      } catch (e) {
        const rolledBack: string[] = [];
        for (const d of done) {
          try {
            if (d.rollback()) rolledBack.push(d.name);
          } catch (e2) {
            this.logger?.fatal({ interface: d.name, err: errorMessage(e2) }, `${d.name}: rollback to the running config failed: its engine runs the new config while others run the old one`);
          }
        }
        return { ok: false, errors: [`${served.name}: the dataplane refused the new config: ${errorMessage(e)}${rolledBack.length > 0 ? ` (${rolledBack.join(', ')} rolled back to the running config)` : ''}`] };
      }
    }
    return { ok: true };
  }

  /** prepareAll then commitAll: every interface or none. */
  async pushAll(config: L4muxConfig, pools: PoolSupervisor, hops: ReadonlyMap<string, NextHop> = new Map()): Promise<PushAllResult> {
    const prepared = await this.prepareAll(config, pools, hops);
    return prepared.ok ? this.commitAll(prepared.reload) : prepared;
  }
}
