// `l4mux run`: the daemon. It loads the config, runs the preflight checks (privileges, CPUs,
// interfaces), then starts its services in order (service.ts): the pid file, receive offloads
// off, the forwarding engines (one ServedInterface per interface, served.ts), next-hop tracking,
// health checks, the control socket, the counters line and the BGP speaker. While it runs it serializes every
// change that reaches the engines (reloads, pool changes, link and next-hop changes) and pushes
// each through the served interfaces. A reload reads, checks and builds its snapshots outside
// that queue (health and operator changes go through meanwhile), within a time limit, and
// queues only the swap. SIGHUP reloads; SIGTERM/SIGINT stop the services in reverse.
import type { Logger } from 'pino';

import type { BackendRequest, BackendResponse, CapturePackets, CaptureRequest, CaptureResponse, DrainRequest, DrainResponse, FlowRequest, FlowResponse, ReloadResponse, StatusReport } from '../api/protocol.js';
import type { BirdFactory } from '../bgp/index.js';
import type { SyncEngine } from '../cluster/service.js';
import { loadConfigFileWithDigest, type L4muxConfig } from '../config/index.js';
import type { EngineFactory } from '../dataplane/engine.js';
import { CAPABILITIES, type ProcessPrivileges } from '../net/capabilities.js';
import type { NetHost } from '../net/host.js';
import type { LinkInfo } from '../net/links.js';
import type { MetricsService } from '../metrics/service.js';
import type { ResolveOptions } from '../net/nexthop.js';
import { defaultHealthChecker, PoolSupervisor, type HealthCheckerFactory } from '../pools/supervisor.js';
import { diffConfigs, effectiveConfig } from './diff.js';
import { lookupFlow, runCapture } from './introspection.js';
import { preflight } from './preflight.js';
import { capabilitiesToKeep, type CapabilityDropper } from './privileges.js';
import { ServedInterfaces, type NextHop } from './served.js';
import { errorMessage, ServiceList, StartupError, type Service, type ServiceContext } from './service.js';
import { BgpService } from './services/bgp.js';
import { changesTables, ClusterDaemonService } from './services/cluster.js';
import { ControlSocketService } from './services/control.js';
import { CountersService } from './services/counters.js';
import { HealthCheckService } from './services/health.js';
import { ReceiveOffloadsService } from './services/offloads.js';
import { PersistenceService, type PersistenceStoreFactory } from './services/persistence.js';
import { PidfileService } from './services/pidfile.js';
import { NextHopService } from './services/tracker.js';
import { buildStatus, type LastReload } from './status.js';

export { StartupError } from './service.js';
export { backendAddresses } from './served.js';

export const DEFAULT_CONFIG_PATH = '/etc/l4mux/l4mux.json';
export const DEFAULT_COUNTERS_INTERVAL_S = 60;
export const DEFAULT_NEXT_HOP_INTERVAL_S = 5;
export const DEFAULT_RELOAD_TIMEOUT_S = 60;
export const INTERFACES_REQUIRED = 'node.interfaces: required to run the daemon (the interfaces that receive VIP traffic)';

export interface DaemonOptions {
  configPath: string;
  pidfile?: string;
  /** Path of the control socket; absent: none. */
  controlSocket?: string;
  /** Period of the counters log line; 0 turns it off. Default 60 s. */
  countersIntervalMs?: number;
  /** Period of next-hop and link re-resolution. Default 5 s. */
  nextHopIntervalMs?: number;
  /** Neighbour resolution retries. */
  resolve?: Omit<ResolveOptions, 'link'>;
  /**
   * How long a reload may take to read, check and build its config before it is abandoned (the
   * running config kept). Default 60 s.
   */
  reloadTimeoutMs?: number;
}

/** A reload past its time limit. */
class ReloadTimeout extends Error {}

/** Where signals come from: `process` in production. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

export interface DaemonDeps {
  logger: Logger;
  host: NetHost;
  createEngine: EngineFactory;
  readPrivileges: () => Promise<ProcessPrivileges>;
  onlineCpus: () => Promise<number[]>;
  signals: SignalSource;
  /** A line for the person who started the daemon (standard error). */
  printError: (line: string) => void;
  version?: string;
  /** Health checks of the pools; default: the real checker. */
  createHealthChecker?: HealthCheckerFactory;
  /** BIRD for the bgp section; default: the real one, a supervised child. */
  createBird?: BirdFactory;
  /** The persistence store; default: the config's (embedded state file, or etcd). */
  createPersistenceStore?: PersistenceStoreFactory;
  /**
   * Lowers the process's capabilities once everything is open (privileges.ts says what stays);
   * absent: they are left as they are (tests with fake engines).
   */
  dropCapabilities?: CapabilityDropper;
}

export class Daemon {
  private config!: L4muxConfig;
  private workers = 0;
  private pools!: PoolSupervisor;
  private interfaces!: ServedInterfaces;
  private tracker: NextHopService | undefined;
  private cluster: ClusterDaemonService | undefined;
  private services: ServiceList | undefined;
  private bgp: BgpService | undefined;
  private persistence: PersistenceService | undefined;
  private draining = false;
  private serial: Promise<unknown> = Promise.resolve();
  /** Reloads, one at a time (apart from `serial`: a reload being built holds no update). */
  private reloading: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private stopped = false;
  private running = false;
  private readonly startedAt = new Date();
  private lastReload: LastReload | null = null;
  private restartRequired: string[] = [];
  private metrics: MetricsService | undefined;
  /** What lowerPrivileges did, for `l4mux status` (services.privileges). */
  private privileges: Record<string, unknown> | undefined;
  /** For the metrics: reload outcomes and the file the running config came from. */
  private readonly reloads = { succeeded: 0, failed: 0, lastOk: true, lastSuccessAt: Date.now(), configHash: '' };
  private resolveDone!: (code: number) => void;
  /** Resolves with the exit status once the daemon has stopped. */
  readonly done: Promise<number>;
  private readonly signalHandlers: Array<[NodeJS.Signals, () => void]>;

  private constructor(
    private readonly options: DaemonOptions,
    private readonly deps: DaemonDeps,
  ) {
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.signalHandlers = [
      ['SIGHUP', () => void this.reload('SIGHUP')],
      ['SIGTERM', () => this.requestStop('SIGTERM')],
      ['SIGINT', () => this.requestStop('SIGINT')],
    ];
  }

  private get log(): Logger {
    return this.deps.logger;
  }

  /** Starts the daemon; throws StartupError (after undoing what it did) when it cannot. */
  static async start(options: DaemonOptions, deps: DaemonDeps): Promise<Daemon> {
    const daemon = new Daemon(options, deps);
    for (const [signal, handler] of daemon.signalHandlers) deps.signals.on(signal, handler);
    try {
      await daemon.serialize(() => daemon.startup());
    } catch (e) {
      const error = e instanceof StartupError ? e : new StartupError([errorMessage(e)]);
      for (const line of error.lines) deps.logger.error(line);
      await daemon.teardown();
      throw error;
    }
    daemon.running = true;
    return daemon;
  }

  /** Runs `task` after every task queued before it (startup, reloads, pushes, stop). */
  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.serial.then(task, task);
    this.serial = run.catch(() => undefined);
    return run;
  }

  private async startup(): Promise<void> {
    const { logger } = this.deps;
    logger.info({ config: this.options.configPath, version: this.deps.version }, 'l4mux starting');

    const { result: loaded, sha256 } = await loadConfigFileWithDigest(this.options.configPath);
    this.reloads.configHash = sha256 ?? '';
    if (!loaded.ok) {
      const n = loaded.errors.length;
      throw new StartupError([...loaded.errors, `${this.options.configPath}: invalid (${n} ${n === 1 ? 'error' : 'errors'})`]);
    }
    for (const warning of loaded.warnings) logger.warn({ warning }, `config warning: ${warning}`);
    const config = loaded.config;
    if (config.node.interfaces.length === 0) throw new StartupError([INTERFACES_REQUIRED]);
    this.config = config;
    this.pools = new PoolSupervisor(config, logger, this.deps.createHealthChecker ?? defaultHealthChecker);

    const { workers, links } = await preflight(config, this.deps);
    this.workers = workers;
    if (config.cluster !== undefined) {
      const engines = (): SyncEngine[] => this.interfaces.all().map((s) => s.engine as unknown as SyncEngine);
      this.cluster = await ClusterDaemonService.create(config.cluster, config.node.seed, { logger }, engines, () => this.context().requestPush('cluster membership'));
    }
    const cluster = this.cluster;
    this.interfaces = new ServedInterfaces({
      links,
      workers,
      createEngine: this.deps.createEngine,
      host: this.deps.host,
      ...(this.options.resolve !== undefined && { resolve: this.options.resolve }),
      ...(cluster !== undefined && { cluster: () => cluster.dataplane() }),
    });
    this.tracker = new NextHopService(this.deps.host, { ...this.options.resolve, intervalMs: this.options.nextHopIntervalMs ?? DEFAULT_NEXT_HOP_INTERVAL_S * 1000 });
    if (config.metrics !== undefined) {
      // Loaded only when asked for: prom-client costs every other command's start-up time.
      const { MetricsService } = await import('../metrics/service.js');
      this.metrics = new MetricsService(config.metrics, () => ({ ...this.reloads }), this.deps.version);
    }
    this.services = new ServiceList(this.serviceList(config, links), logger);
    if (cluster !== undefined) {
      // Not announced before the peers' transfers of this mux's flows are in.
      void this.setBgpGate('cluster', cluster.ready, 'cluster: waiting for the peers\' transfers');
      cluster.on('ready', () => void this.setBgpGate('cluster', true, 'cluster: transfers complete'));
    }
    await this.services.start(this.context());
    this.lowerPrivileges(config);

    logger.info(
      { interfaces: this.interfaces.names(), vips: config.vips.length, pools: Object.keys(config.pools).length, control: this.options.controlSocket },
      `l4mux running on ${this.interfaces.names().join(', ')}: ${config.vips.length} ${config.vips.length === 1 ? 'VIP' : 'VIPs'}`,
    );
  }

  /** Packet sockets, XDP program, control socket and BIRD are in place: keep only what later work needs. */
  private lowerPrivileges(config: L4muxConfig): void {
    const drop = this.deps.dropCapabilities;
    if (drop === undefined) return;
    const keep = capabilitiesToKeep(config, this.interfaces.all().map((s) => s.io.mode));
    let report;
    try {
      report = drop(keep.map((name) => CAPABILITIES[name]));
    } catch (e) {
      this.log.error({ err: errorMessage(e) }, `capabilities not lowered: ${errorMessage(e)}`);
      this.privileges = { lowered: false, error: errorMessage(e) };
      return;
    }
    this.privileges = {
      lowered: true,
      kept: keep,
      effective: report.effective,
      boundingSet: report.boundingSet,
      boundingDropped: report.boundingDropped,
      threads: report.threads,
      unreachableThreads: report.unreachable,
    };
    this.log.info(
      { kept: keep, threads: report.threads, effective: report.effective, boundingSet: report.boundingSet, boundingDropped: report.boundingDropped },
      `capabilities lowered to ${keep.join(' ')} in ${report.threads} threads${report.boundingDropped ? ' and the bounding set' : ' (bounding set left as it is: no CAP_SETPCAP)'}`,
    );
    if (report.unreachable.length > 0) {
      this.log.warn({ unreachable: report.unreachable }, `capabilities: ${report.unreachable.length} threads block the signal that lowers them and keep theirs (${report.unreachable.map((t) => `${t.tid} ${t.name}`).join(', ')})`);
    }
    for (const error of report.errors) this.log.warn({ error }, `capabilities: ${error}`);
  }

  /**
   * The services, in the order they start (stopped in reverse). A service goes after the ones it
   * needs: the forwarding service fills ctx.interfaces, the health checks move the pools.
   */
  private serviceList(config: L4muxConfig, links: readonly LinkInfo[]): Service[] {
    const services: Service[] = [];
    if (this.options.pidfile !== undefined) services.push(new PidfileService(this.options.pidfile));
    if (config.node.manageOffloads) services.push(new ReceiveOffloadsService(this.deps.host, links));
    services.push(this.interfaces);
    if (this.cluster !== undefined) services.push(this.cluster);
    if (this.tracker !== undefined) services.push(this.tracker);
    services.push(new HealthCheckService());
    // After the engines (their tables) and the cluster (its channel), before the control socket.
    if (config.persistence !== undefined) {
      this.persistence = new PersistenceService(this.deps.createPersistenceStore, () => this.cluster?.clusterService);
      services.push(this.persistence);
    }
    if (this.options.controlSocket !== undefined) {
      services.push(
        new ControlSocketService(this.options.controlSocket, {
          reload: () => this.reload('control'),
          status: () => ({ ok: true, status: this.status() }),
          backend: (request) => this.setBackend(request),
          drain: (request) => this.drain(request),
          flow: (request) => this.flow(request),
          capture: (request, send, closed) => this.capture(request, send, closed),
          persistence: (request) => this.persistence?.entry(request) ?? { ok: false, errors: ['no VIP has persistence in the running config'] },
        }),
      );
    }
    if (this.metrics !== undefined) services.push(this.metrics);
    services.push(new CountersService(this.options.countersIntervalMs ?? DEFAULT_COUNTERS_INTERVAL_S * 1000));
    // Last: announces once everything that serves the VIPs runs; stopped (withdrawn) first.
    this.bgp = new BgpService(this.deps.createBird);
    services.push(this.bgp);
    return services;
  }

  private context(): ServiceContext {
    return {
      logger: this.deps.logger,
      host: this.deps.host,
      config: () => this.config,
      pools: this.pools,
      interfaces: this.interfaces,
      requestPush: (why) => void this.serialize(() => this.pushPools(why)),
      serialize: (task) => this.serialize(task),
      stopping: () => this.stopping,
    };
  }

  // ---- Reload ----

  /** Re-reads the config file and applies it to every engine, or changes nothing. */
  reload(trigger: string): Promise<ReloadResponse> {
    if (this.stopping || this.draining) return Promise.resolve({ ok: false, errors: [this.draining ? 'l4mux is draining' : 'l4mux is stopping'] });
    const run = this.reloading.then(() => this.doReload(trigger));
    this.reloading = run.catch(() => undefined);
    return run;
  }

  private async doReload(trigger: string): Promise<ReloadResponse> {
    const { logger } = this.deps;
    logger.info({ trigger, config: this.options.configPath }, `reload (${trigger})`);
    const fail = (errors: string[]): ReloadResponse => {
      this.reloads.failed++;
      this.reloads.lastOk = false;
      for (const error of errors) logger.error({ trigger, error }, `reload failed: ${error}`);
      logger.error({ trigger, errors: errors.length }, 'reload failed: nothing was changed');
      this.lastReload = { at: new Date().toISOString(), trigger, ok: false, errors };
      return { ok: false, errors };
    };
    if (this.stopping) return fail(['l4mux is stopping']);

    // Everything up to the swap, outside the update queue and within the time limit.
    const limitMs = this.options.reloadTimeoutMs ?? DEFAULT_RELOAD_TIMEOUT_S * 1000;
    const deadline = Date.now() + limitMs;
    let stage = 'reading the config';
    const timed = <T>(what: string, work: Promise<T>): Promise<T> => {
      stage = what;
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ReloadTimeout(what)), Math.max(0, left));
      });
      return Promise.race([work, expired]).finally(() => clearTimeout(timer));
    };
    try {
      const { result: loaded, sha256 } = await timed('reading the config', loadConfigFileWithDigest(this.options.configPath));
      if (!loaded.ok) return fail(loaded.errors);
      if (loaded.config.node.interfaces.length === 0) return fail([INTERFACES_REQUIRED]);
      const warnings = [...loaded.warnings];
      const diff = diffConfigs(this.config, loaded.config);
      const next = effectiveConfig(this.config, loaded.config);

      // Next hops for the new backends or gateway (the tracked ones when nothing changed there).
      const hops = await timed('resolving next hops', this.interfaces.planHops(next));
      if (!hops.ok) return fail(hops.errors);
      warnings.push(...hops.warnings);
      // BIRD checks its part before anything is applied.
      const bgp = (await timed('checking the bgp section', this.bgp?.planReload(next.bgp) ?? Promise.resolve(undefined))) ?? { ok: true as const, commit: async () => ({ changes: [], restartRequired: [] }) };
      if (!bgp.ok) return fail(bgp.errors);
      // The snapshots of every engine, off the event loop.
      const built = await timed('building the snapshots', this.interfaces.prepareAll(next, this.pools, hops.hops));
      if (!built.ok) return fail(built.errors);

      // The swap, in the update queue: every engine or none.
      return await this.serialize(async () => {
        if (this.stopping) return fail(['l4mux is stopping']);
        await this.beforeTableChange(next, hops.hops);
        // Health or operator changes made while it was built: those interfaces built again.
        const prepared = await timed('building the snapshots', this.interfaces.refresh(built.reload, this.pools));
        if (!prepared.ok) return fail(prepared.errors);
        const pushed = this.interfaces.commitAll(prepared.reload);
        if (!pushed.ok) return fail(pushed.errors);

        // Commit.
        for (const served of this.interfaces.all()) this.tracker?.follow(served);
        this.config = next;
        this.persistence?.reloaded(next);
        this.pools.setConfig(next); // new checks; an all-down policy may now apply: pushPools below
        const bgpChange = await bgp.commit();
        diff.changes.push(...bgpChange.changes);
        diff.restartRequired.push(...bgpChange.restartRequired);
        this.restartRequired = diff.restartRequired;
        for (const warning of warnings) logger.warn({ trigger, warning }, `config warning: ${warning}`);
        for (const change of diff.changes) logger.info({ trigger, change }, `reload: ${change}`);
        for (const change of diff.restartRequired) logger.warn({ trigger, change }, `reload: ${change}`);
        const changes = [...diff.changes, ...diff.restartRequired];
        logger.info(
          { trigger, changes: diff.changes.length, restartRequired: diff.restartRequired.length },
          diff.changes.length === 0 ? 'reload done: no changes' : `reload done: ${diff.changes.length} ${diff.changes.length === 1 ? 'change' : 'changes'} applied`,
        );
        this.lastReload = { at: new Date().toISOString(), trigger, ok: true, changes };
        Object.assign(this.reloads, { succeeded: this.reloads.succeeded + 1, lastOk: true, lastSuccessAt: Date.now(), configHash: sha256 ?? '' });
        this.metrics?.setCheckKinds(next.healthChecks);
        await this.pushPools('reload');
        return { ok: true, changes, restartRequired: diff.restartRequired, warnings };
      });
    } catch (e) {
      if (!(e instanceof ReloadTimeout)) throw e;
      return fail([`reload abandoned after ${limitMs / 1000} s (${stage} took too long); the running config is kept`]);
    }
  }

  /**
   * Commit-after-sync: when the snapshots `config` gives would change a backend set or weights,
   * waits (bounded) until the cluster's owners hold the entries it could make divergent.
   */
  private async beforeTableChange(config: L4muxConfig, hops?: ReadonlyMap<string, NextHop>): Promise<void> {
    if (this.cluster === undefined) return;
    const changing = this.interfaces.all().some((s) => {
      try {
        return changesTables(s.appliedOrNone, s.build(config, this.pools, hops?.get(s.name) ?? s.hop));
      } catch {
        return false;
      }
    });
    if (changing) await this.cluster.beforeTableChange();
  }

  /** Gives every engine the backends as the pools now see them (no-op where nothing changed). */
  private async pushPools(why: string): Promise<void> {
    if (this.stopping) return;
    await this.beforeTableChange(this.config);
    for (const served of this.interfaces.all()) {
      try {
        if (!(await served.push(this.config, this.pools)).changed) continue;
        this.log.info({ interface: served.name, why }, `${served.name}: backends changed (${why}): new snapshot applied`);
      } catch (e) {
        this.log.error({ interface: served.name, why, err: errorMessage(e) }, `${served.name}: backends changed (${why}) but the dataplane refused the snapshot: ${errorMessage(e)}`);
      }
    }
    // After the engines: a pool that recovered is announced once its snapshot is in place.
    void this.bgp?.refresh();
  }

  // ---- BGP ----

  /**
   * A readiness input for the announcements (the cluster's "ready": this mux is announced only
   * once its flow transfer is done). Does nothing without a bgp section.
   */
  setBgpGate(name: string, ready: boolean, reason: string): Promise<void> {
    return this.bgp?.setGate(name, ready, reason) ?? Promise.resolve();
  }

  /** `l4mux drain`: withdraw every VIP, keep forwarding for the wait, then stop. */
  private async drain(request: DrainRequest): Promise<DrainResponse> {
    if (this.stopping || this.draining) return { ok: false, errors: [this.draining ? 'l4mux is already draining' : 'l4mux is stopping'] };
    this.draining = true;
    const waitSeconds = request.waitSeconds ?? this.config.bgp?.drainSeconds ?? 0;
    const started = Date.now();
    const withdrawn = (await this.bgp?.withdrawAll('draining (l4mux drain)')) ?? [];
    this.log.warn({ withdrawn, waitSeconds }, `drain: ${withdrawn.length > 0 ? `withdrew ${withdrawn.join(', ')}` : 'nothing was announced'}; forwarding for ${waitSeconds} s, then stopping`);
    await new Promise((resolve) => setTimeout(resolve, waitSeconds * 1000));
    // Stop once the answer has gone out.
    setImmediate(() => this.requestStop('drain'));
    return { ok: true, withdrawn, waitedSeconds: Math.round((Date.now() - started) / 100) / 10, stopping: true };
  }

  /** `l4mux backend`: an operator's state or weight for one backend, applied at once. */
  private setBackend(request: BackendRequest): Promise<BackendResponse> {
    return this.serialize(async () => {
      if (this.stopping) return { ok: false, errors: ['l4mux is stopping'] };
      const result = this.pools.override(request.pool, request.address, {
        ...(request.state !== undefined && { state: request.state }),
        ...(request.weight !== undefined && { weight: request.weight }),
      });
      if (!result.ok) return { ok: false, errors: [result.error] };
      await this.pushPools(result.change);
      return { ok: true, changes: [result.change] };
    });
  }

  // ---- Flow lookup and capture ----

  /** `l4mux flow`: which backend a flow gets now on each interface, and which worker holds it. */
  private flow(request: FlowRequest): Promise<FlowResponse> {
    if (this.stopping) return Promise.resolve({ ok: false, errors: ['l4mux is stopping'] });
    return lookupFlow(this.config, this.interfaces.all(), request, this.cluster?.dataplane());
  }

  /** `l4mux capture`: not serialized with reloads (it changes nothing); ends when the daemon stops. */
  private capture(request: CaptureRequest, send: (packets: CapturePackets) => void, closed: AbortSignal): Promise<CaptureResponse> {
    if (this.stopping) return Promise.resolve({ ok: false, errors: ['l4mux is stopping'] });
    return runCapture(this.config, this.interfaces.all(), request, send, closed, () => this.stopping);
  }

  // ---- Status ----

  status(): StatusReport {
    return buildStatus({
      logger: this.log,
      version: this.deps.version ?? '0.0.0',
      configFile: this.options.configPath,
      startedAt: this.startedAt,
      config: this.config,
      workers: this.workers,
      pools: this.pools,
      interfaces: this.interfaces.all(),
      lastReload: this.lastReload,
      restartRequired: this.restartRequired,
      services: { ...(this.services?.status() ?? {}), ...(this.privileges !== undefined && { privileges: this.privileges }) },
    });
  }

  // ---- Stop ----

  private requestStop(signal: string): void {
    if (this.stopping) {
      this.log.info({ signal }, 'already stopping');
      return;
    }
    this.stopping = true;
    this.log.info({ signal }, `${signal}: stopping`);
    void this.serialize(async () => {
      // A stop requested during startup waits for it, then undoes it.
      await this.teardown();
      this.resolveDone(0);
    });
  }

  /** Stops as if sent SIGTERM; resolves with the exit status. */
  stop(): Promise<number> {
    this.requestStop('stop');
    return this.done;
  }

  /** Undoes everything startup did, in reverse; never throws. */
  private async teardown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopping = true;
    await this.services?.stop();
    for (const [signal, handler] of this.signalHandlers) this.deps.signals.off(signal, handler);
    this.log.info(this.running ? 'l4mux stopped' : 'startup undone');
  }
}

/**
 * Runs the daemon until SIGTERM or SIGINT; resolves with the exit status. A daemon that cannot
 * start logs and prints every reason and resolves with 1.
 */
export async function runDaemon(options: DaemonOptions, deps: DaemonDeps): Promise<number> {
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(options, deps);
  } catch (e) {
    // Daemon.start has logged them.
    for (const line of e instanceof StartupError ? e.lines : [errorMessage(e)]) deps.printError(line);
    deps.logger.fatal('l4mux did not start');
    return 1;
  }
  return daemon.done;
}
