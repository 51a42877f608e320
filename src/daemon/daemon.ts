// `l4mux run`: the daemon. It validates the config, checks privileges and interfaces, turns off
// receive offloads, resolves the next hop toward the backends, starts one forwarding engine per
// interface, and then keeps them configured: reloads (SIGHUP or the control socket), next-hop
// and link changes, periodic counters, and a clean stop on SIGTERM/SIGINT.
import type { Logger } from 'pino';

import { ControlServer } from '../api/server.js';
import type {
  BackendRequest,
  BackendResponse,
  InterfaceStatus,
  ReloadResponse,
  StatusReport,
  StatusResponse,
  VipSummary,
} from '../api/protocol.js';
import { conntrackSettings, loadConfigFile, toDataplaneConfig, type L4muxConfig } from '../config/index.js';
import { MAX_WORKERS } from '../config/defaults.js';
import type { DataplaneConfig } from '../dataplane/types.js';
import type { EngineCounters, EngineFactory, EngineLike, EngineOptions, IoModeReport } from '../dataplane/engine.js';
import { checkCapabilities, type ProcessPrivileges } from '../net/capabilities.js';
import type { NetHost } from '../net/host.js';
import { checkLink, readLinks, type LinkInfo } from '../net/links.js';
import {
  NextHopTracker,
  resolveNextHop,
  type NextHopRequest,
  type NextHopResolution,
  type ResolveOptions,
  type TrackedInterface,
} from '../net/nexthop.js';
import { OffloadManager } from '../net/offloads.js';
import { formatCpuList } from './cpus.js';
import { diffConfigs, effectiveConfig } from './diff.js';
import { removePidfile, writePidfile } from './pidfile.js';
import { defaultHealthChecker, PoolSupervisor, type HealthCheckerFactory } from './pools.js';

export const DEFAULT_CONFIG_PATH = '/etc/l4mux/l4mux.json';
export const DEFAULT_COUNTERS_INTERVAL_S = 60;
export const DEFAULT_NEXT_HOP_INTERVAL_S = 5;
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
}

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
}

/** Why the daemon did not start: one line per problem. */
export class StartupError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
  }
}

interface Served {
  name: string;
  engine: EngineLike;
  link: LinkInfo;
  /** Absent when node.gatewayMac is given. */
  resolution: NextHopResolution | undefined;
  request: NextHopRequest;
  /** The last config the engine accepted. */
  applied: DataplaneConfig;
  io: IoModeReport;
  started: boolean;
}

interface LastReload {
  at: string;
  trigger: string;
  ok: boolean;
  changes?: string[];
  errors?: string[];
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Every distinct backend address of the config (weight 0 included: they keep their flows). */
export function backendAddresses(config: L4muxConfig): string[] {
  return [...new Set(Object.values(config.pools).flatMap((p) => p.backends.map((b) => b.address)))];
}

function nextHopRequest(config: L4muxConfig, name: string): NextHopRequest {
  return {
    interface: name,
    targets: config.node.gatewayMac !== undefined ? [] : backendAddresses(config),
    ...(config.node.gateway !== undefined && config.node.gatewayMac === undefined && { gateway: config.node.gateway }),
  };
}

function sameRequest(a: NextHopRequest, b: NextHopRequest): boolean {
  return a.interface === b.interface && a.gateway === b.gateway && JSON.stringify([...a.targets].sort()) === JSON.stringify([...b.targets].sort());
}

/**
 * The config one engine gets: the file's values, else the interface's and the next hop's;
 * backends as the pools see them now (health, runtime states and weights).
 */
function dataplaneFor(config: L4muxConfig, link: LinkInfo, resolution: NextHopResolution | undefined, pools: PoolSupervisor): DataplaneConfig {
  return toDataplaneConfig(
    config,
    {
      ...(link.mac !== undefined && { sourceMac: link.mac }),
      ...(resolution?.mac !== undefined && { gatewayMac: resolution.mac }),
      mtu: link.mtu,
    },
    pools.view(),
  );
}

function describeHop(resolution: NextHopResolution | undefined, config: L4muxConfig): Record<string, unknown> {
  if (config.node.gatewayMac !== undefined) return { gatewayMac: config.node.gatewayMac, source: 'node.gatewayMac' };
  if (resolution === undefined || resolution.mac === undefined) return { source: 'none (no backends)' };
  return { gatewayMac: resolution.mac, source: resolution.source === 'gateway' ? 'node.gateway' : 'routes', hops: resolution.hops.map((h) => `${h.address} (${h.state})`) };
}

export class Daemon {
  private config!: L4muxConfig;
  private workers = 0;
  private readonly served = new Map<string, Served>();
  private readonly offloads: OffloadManager;
  private tracker: NextHopTracker | undefined;
  private pools!: PoolSupervisor;
  private control: ControlServer | undefined;
  private countersTimer: NodeJS.Timeout | undefined;
  private lastCounters = new Map<string, { at: number; rx: number; tx: number }>();
  private pidfileWritten = false;
  private serial: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private stopped = false;
  private running = false;
  private readonly startedAt = new Date();
  private lastReload: LastReload | null = null;
  private restartRequired: string[] = [];
  private resolveDone!: (code: number) => void;
  private readonly failureLogged = new Map<string, string>();
  /** Resolves with the exit status once the daemon has stopped. */
  readonly done: Promise<number>;
  private readonly signalHandlers: Array<[NodeJS.Signals, () => void]>;

  private constructor(
    private readonly options: DaemonOptions,
    private readonly deps: DaemonDeps,
  ) {
    this.offloads = new OffloadManager(deps.host);
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
      const error = e instanceof StartupError ? e : new StartupError([message(e)]);
      for (const line of error.lines) deps.logger.error(line);
      await daemon.teardown();
      throw error;
    }
    daemon.running = true;
    return daemon;
  }

  /** Runs `task` after every task queued before it (startup, reloads, next-hop updates, stop). */
  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.serial.then(task, task);
    this.serial = run.catch(() => undefined);
    return run;
  }

  private async startup(): Promise<void> {
    const { logger } = this.deps;
    logger.info({ config: this.options.configPath, version: this.deps.version }, 'l4mux starting');

    // The config.
    const loaded = await loadConfigFile(this.options.configPath);
    if (!loaded.ok) {
      const n = loaded.errors.length;
      throw new StartupError([...loaded.errors, `${this.options.configPath}: invalid (${n} ${n === 1 ? 'error' : 'errors'})`]);
    }
    for (const warning of loaded.warnings) logger.warn({ warning }, `config warning: ${warning}`);
    const config = loaded.config;
    if (config.node.interfaces.length === 0) throw new StartupError([INTERFACES_REQUIRED]);
    this.config = config;
    this.pools = new PoolSupervisor(config, logger, this.deps.createHealthChecker ?? defaultHealthChecker);

    // Privileges.
    const caps = checkCapabilities(await this.deps.readPrivileges(), config.node.io);
    if (!caps.ok) throw new StartupError([caps.message]);
    for (const warning of caps.warnings) logger.warn(warning);

    // Workers and CPUs.
    const online = await this.deps.onlineCpus();
    if (config.node.cpus !== undefined) {
      const offline = config.node.cpus.filter((c) => !online.includes(c));
      if (offline.length > 0) {
        throw new StartupError([`node.cpus: ${offline.length === 1 ? 'CPU' : 'CPUs'} ${formatCpuList(offline)} ${offline.length === 1 ? 'is' : 'are'} not online (online: ${formatCpuList(online)})`]);
      }
    }
    this.workers = config.node.workers ?? config.node.cpus?.length ?? Math.max(1, Math.min(MAX_WORKERS, online.length));

    if (this.options.pidfile !== undefined) {
      await writePidfile(this.options.pidfile);
      this.pidfileWritten = true;
    }

    // Interfaces.
    const links = await readLinks(this.deps.host);
    const usable: LinkInfo[] = [];
    const unusable: string[] = [];
    for (const name of config.node.interfaces) {
      const check = checkLink(name, links);
      if (check.ok) usable.push(check.link);
      else {
        unusable.push(`interface ${name} ${check.reason}`);
        logger.error({ interface: name, reason: check.reason }, `interface ${name} ${check.reason}: not served`);
      }
    }
    if (usable.length === 0) {
      throw new StartupError([...unusable, `no usable interface: none of node.interfaces (${config.node.interfaces.join(', ')}) can receive VIP traffic`]);
    }
    this.warnAboutAddresses(usable);
    await this.warnAboutForwarding();

    // Receive offloads.
    if (config.node.manageOffloads) {
      for (const link of usable) {
        try {
          const report = await this.offloads.disable(link.name);
          logger.info({ interface: link.name, turnedOff: report.turnedOff, alreadyOff: report.alreadyOff }, `${link.name}: receive offloads off${report.turnedOff.length > 0 ? ` (turned off ${report.turnedOff.join(', ')}; restored at stop)` : ' already'}`);
          if (report.stillOn.length > 0) {
            logger.warn({ interface: link.name, stillOn: report.stillOn }, `${link.name}: could not turn off ${report.stillOn.join(', ')}: merged super-frames will be dropped (counted as rxOversized)`);
          }
        } catch (e) {
          logger.warn({ interface: link.name, err: message(e) }, `${link.name}: cannot manage receive offloads: ${message(e)}`);
        }
      }
    }

    // Next hops.
    const errors: string[] = [];
    const resolutions = new Map<string, NextHopResolution | undefined>();
    for (const link of usable) {
      const request = nextHopRequest(config, link.name);
      if (config.node.gatewayMac !== undefined) {
        resolutions.set(link.name, undefined);
        continue;
      }
      const result = await resolveNextHop(this.deps.host, request, { ...this.options.resolve, link });
      if (!result.ok) errors.push(...result.errors);
      else {
        for (const warning of result.warnings) logger.warn({ interface: link.name, warning }, warning);
        resolutions.set(link.name, result.resolution);
      }
    }
    if (errors.length > 0) throw new StartupError(errors);

    // Engines.
    for (const link of usable) {
      if (config.node.mtu !== undefined && config.node.mtu > link.mtu) {
        logger.warn({ interface: link.name }, `node.mtu ${config.node.mtu} is above the MTU of ${link.name} (${link.mtu}): the interface drops the bigger frames`);
      }
      const engineOptions: EngineOptions = {
        interface: link.name,
        workers: this.workers,
        ...(config.node.cpus !== undefined && { cpus: config.node.cpus }),
        io: config.node.io,
        ...(config.node.io !== 'af_packet' && { xdpMode: config.node.xdpMode }),
        conntrack: conntrackSettings(config),
      };
      const resolution = resolutions.get(link.name);
      const dataplane = dataplaneFor(config, link, resolution, this.pools);
      let engine: EngineLike;
      try {
        engine = this.deps.createEngine(engineOptions);
      } catch (e) {
        throw new StartupError([`${link.name}: cannot create the forwarding engine: ${message(e)}`]);
      }
      const served: Served = {
        name: link.name,
        engine,
        link,
        resolution,
        request: nextHopRequest(config, link.name),
        applied: dataplane,
        io: { mode: 'unknown', reason: 'not started', reported: false },
        started: false,
      };
      this.served.set(link.name, served);
      try {
        engine.setConfig(dataplane);
      } catch (e) {
        throw new StartupError([`${link.name}: the dataplane refused the config: ${message(e)}`]);
      }
      try {
        await engine.start();
        served.started = true;
      } catch (e) {
        throw new StartupError([`${link.name}: cannot start forwarding: ${message(e)}`]);
      }
      served.io = engine.ioMode();
      logger.info(
        { interface: link.name, io: served.io, workers: this.workers, cpus: config.node.cpus, mtu: dataplane.mtu, sourceMac: dataplane.sourceMac, nextHop: describeHop(resolution, config) },
        `${link.name}: forwarding with ${served.io.mode}${served.io.xdpMode !== undefined ? ` (${served.io.xdpMode} XDP)` : ''}, ${this.workers} ${this.workers === 1 ? 'worker' : 'workers'}: ${served.io.reason}`,
      );
    }

    // Keeping the next hops and links fresh.
    const tracker = new NextHopTracker(this.deps.host, { ...this.options.resolve, intervalMs: this.options.nextHopIntervalMs ?? DEFAULT_NEXT_HOP_INTERVAL_S * 1000 });
    for (const s of this.served.values()) {
      tracker.track(s.request, { link: s.link, resolution: s.resolution ?? { interface: s.name, hops: [], source: 'none' } });
    }
    tracker.on('change', (name, now) => void this.serialize(() => this.onTrackedChange(name, now)));
    tracker.on('failure', (name, errors) => {
      const text = errors.join('; ');
      if (this.failureLogged.get(name) === text) return;
      this.failureLogged.set(name, text);
      this.log.warn({ interface: name, errors }, `${name}: next-hop refresh failed, keeping the last good next hop: ${text}`);
    });
    tracker.on('recovered', (name) => {
      this.failureLogged.delete(name);
      this.log.info({ interface: name }, `${name}: next-hop refresh works again`);
    });
    tracker.start();
    this.tracker = tracker;

    // Health checks: each burst of changes becomes one new snapshot.
    this.pools.onChange((why) => void this.serialize(() => this.applyPools(why)));
    this.pools.setChecks(config.healthChecks);
    if (config.healthChecks.length > 0) {
      logger.info({ checks: config.healthChecks.length }, `health checks: ${config.healthChecks.length} ${config.healthChecks.length === 1 ? 'backend' : 'backends'} checked`);
    }

    if (this.options.controlSocket !== undefined) {
      this.control = await ControlServer.listen(this.options.controlSocket, {
        reload: () => this.reload('control'),
        status: () => this.statusResponse(),
        backend: (request) => this.setBackend(request),
      }, logger);
    }

    const interval = this.options.countersIntervalMs ?? DEFAULT_COUNTERS_INTERVAL_S * 1000;
    if (interval > 0) {
      this.countersTimer = setInterval(() => this.logCounters(), interval);
      this.countersTimer.unref();
    }
    logger.info(
      { interfaces: [...this.served.keys()], vips: config.vips.length, pools: Object.keys(config.pools).length, control: this.options.controlSocket },
      `l4mux running on ${[...this.served.keys()].join(', ')}: ${config.vips.length} ${config.vips.length === 1 ? 'VIP' : 'VIPs'}`,
    );
  }

  /** VIP addresses configured on a served interface make the kernel answer VIP clients itself. */
  private warnAboutAddresses(links: readonly LinkInfo[]): void {
    const vipAddresses = new Set(this.config.vips.map((v) => v.address));
    for (const link of links) {
      for (const a of link.addresses) {
        if (!vipAddresses.has(a.address)) continue;
        this.log.warn(
          { interface: link.name, address: a.address },
          `VIP address ${a.address} is configured on ${link.name}: the kernel will answer its clients itself (TCP resets); remove it from the interface (backends hold VIPs, the mux does not)`,
        );
      }
    }
  }

  /**
   * A kernel that forwards also routes the VIP packets a packet socket reads (they are not for
   * one of its addresses): copies go back toward its own next hop. AF_XDP takes them away from
   * the kernel, AF_PACKET does not.
   */
  private async warnAboutForwarding(): Promise<void> {
    if (this.config.node.io === 'af_xdp') return;
    for (const name of ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']) {
      if ((await this.deps.host.sysctl(name)) !== '1') continue;
      this.log.warn(
        { sysctl: name },
        `${name} is 1: with AF_PACKET the kernel also forwards the VIP packets l4mux reads (duplicates, or loops back through the router); set ${name}=0 on a dedicated mux`,
      );
    }
  }

  // ---- Reload ----

  /** Re-reads the config file and applies it to every engine, or changes nothing. */
  reload(trigger: string): Promise<ReloadResponse> {
    if (this.stopping) return Promise.resolve({ ok: false, errors: ['l4mux is stopping'] });
    return this.serialize(() => this.doReload(trigger));
  }

  private async doReload(trigger: string): Promise<ReloadResponse> {
    const { logger } = this.deps;
    logger.info({ trigger, config: this.options.configPath }, `reload (${trigger})`);
    const fail = (errors: string[]): ReloadResponse => {
      for (const error of errors) logger.error({ trigger, error }, `reload failed: ${error}`);
      logger.error({ trigger, errors: errors.length }, 'reload failed: nothing was changed');
      this.lastReload = { at: new Date().toISOString(), trigger, ok: false, errors };
      return { ok: false, errors };
    };
    if (this.stopping) return fail(['l4mux is stopping']);

    const loaded = await loadConfigFile(this.options.configPath);
    if (!loaded.ok) return fail(loaded.errors);
    if (loaded.config.node.interfaces.length === 0) return fail([INTERFACES_REQUIRED]);
    const warnings = [...loaded.warnings];
    const diff = diffConfigs(this.config, loaded.config);
    const next = effectiveConfig(this.config, loaded.config);

    // Next hops for the new backends or gateway (the tracked ones when nothing changed there).
    const errors: string[] = [];
    const plans: Array<{ served: Served; request: NextHopRequest; resolution: NextHopResolution | undefined; dataplane?: DataplaneConfig }> = [];
    for (const served of this.served.values()) {
      const request = nextHopRequest(next, served.name);
      let resolution: NextHopResolution | undefined;
      if (next.node.gatewayMac === undefined) {
        if (served.resolution !== undefined && sameRequest(request, served.request)) resolution = served.resolution;
        else {
          const result = await resolveNextHop(this.deps.host, request, { ...this.options.resolve, link: served.link });
          if (!result.ok) errors.push(...result.errors);
          else {
            resolution = result.resolution;
            warnings.push(...result.warnings);
          }
        }
      }
      plans.push({ served, request, resolution });
    }
    if (errors.length > 0) return fail(errors);
    for (const plan of plans) {
      try {
        plan.dataplane = dataplaneFor(next, plan.served.link, plan.resolution, this.pools);
      } catch (e) {
        return fail([`${plan.served.name}: ${message(e)}`]);
      }
    }

    // Apply to every engine, or to none: roll back the ones done when one refuses.
    const done: typeof plans = [];
    for (const plan of plans) {
      const dataplane = plan.dataplane as DataplaneConfig;
      if (JSON.stringify(dataplane) === JSON.stringify(plan.served.applied)) {
        done.push(plan);
        continue;
      }
      try {
        plan.served.engine.setConfig(dataplane);
        done.push(plan);
      } catch (e) {
        const rolledBack: string[] = [];
        for (const d of done) {
          if (JSON.stringify(d.dataplane) === JSON.stringify(d.served.applied)) continue;
          try {
            d.served.engine.setConfig(d.served.applied);
            rolledBack.push(d.served.name);
          } catch (e2) {
            logger.fatal({ interface: d.served.name, err: message(e2) }, `${d.served.name}: rollback to the running config failed: its engine runs the new config while others run the old one`);
          }
        }
        return fail([`${plan.served.name}: the dataplane refused the new config: ${message(e)}${rolledBack.length > 0 ? ` (${rolledBack.join(', ')} rolled back to the running config)` : ''}`]);
      }
    }

    // Commit.
    for (const plan of plans) {
      plan.served.applied = plan.dataplane as DataplaneConfig;
      plan.served.resolution = plan.resolution;
      plan.served.request = plan.request;
      this.tracker?.track(plan.request, { link: plan.served.link, resolution: plan.resolution ?? { interface: plan.served.name, hops: [], source: 'none' } });
    }
    this.config = next;
    this.pools.setConfig(next);  // new checks; an all-down policy may now apply: applyPools below
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
    await this.applyPools('reload');
    return { ok: true, changes, restartRequired: diff.restartRequired, warnings };
  }

  /** Gives every engine the backends as the pools now see them (no-op when nothing changed). */
  private async applyPools(why: string): Promise<void> {
    if (this.stopping) return;
    for (const served of this.served.values()) {
      const dataplane = dataplaneFor(this.config, served.link, served.resolution, this.pools);
      if (JSON.stringify(dataplane) === JSON.stringify(served.applied)) continue;
      try {
        served.engine.setConfig(dataplane);
        served.applied = dataplane;
        this.log.info({ interface: served.name, why }, `${served.name}: backends changed (${why}): new snapshot applied`);
      } catch (e) {
        this.log.error({ interface: served.name, why, err: message(e) }, `${served.name}: backends changed (${why}) but the dataplane refused the snapshot: ${message(e)}`);
      }
    }
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
      await this.applyPools(result.change);
      return { ok: true, changes: [result.change] };
    });
  }

  /** The tracker saw the link or the next hop change: push a snapshot with the new facts. */
  private async onTrackedChange(name: string, now: TrackedInterface): Promise<void> {
    const served = this.served.get(name);
    if (served === undefined || this.stopping) return;
    const before = served.applied;
    served.link = now.link;
    if (this.config.node.gatewayMac === undefined) served.resolution = now.resolution;
    const dataplane = dataplaneFor(this.config, served.link, served.resolution, this.pools);
    if (JSON.stringify(dataplane) === JSON.stringify(before)) return;
    const what = { interface: name, gatewayMac: [before.gatewayMac, dataplane.gatewayMac], sourceMac: [before.sourceMac, dataplane.sourceMac], mtu: [before.mtu, dataplane.mtu] };
    try {
      served.engine.setConfig(dataplane);
      served.applied = dataplane;
      this.log.info(what, `${name}: next hop or link changed (gateway MAC ${before.gatewayMac} -> ${dataplane.gatewayMac}, MTU ${before.mtu} -> ${dataplane.mtu}): new snapshot applied`);
    } catch (e) {
      this.log.error({ ...what, err: message(e) }, `${name}: next hop or link changed but the dataplane refused the update: ${message(e)}`);
    }
  }

  // ---- Status and counters ----

  private statusResponse(): StatusResponse {
    return { ok: true, status: this.status() };
  }

  status(): StatusReport {
    const config = this.config;
    const pools = this.pools.status();
    const vips: VipSummary[] = config.vips.map((v) => {
      const pool = pools[v.pool];
      const backends = pool?.backends ?? [];
      return {
        name: v.name,
        address: v.address,
        protocol: v.protocol,
        port: v.port ?? null,
        pool: v.pool,
        encapsulation: v.encapsulation,
        scheduler: v.scheduler,
        backends: backends.length,
        activeBackends: backends.filter((b) => b.state === 'active' && b.healthy && b.weight > 0).length,
        allDown: pool?.allDown ?? false,
      };
    });
    const totals = { rx: 0, tx: 0, dropped: 0, passed: 0 };
    const interfaces: InterfaceStatus[] = [...this.served.values()].map((s) => {
      let counters: EngineCounters | null = null;
      try {
        counters = s.engine.counters();
        totals.rx += counters.rx;
        totals.tx += counters.tx;
        totals.dropped += counters.dropped;
        totals.passed += counters.passed;
      } catch (e) {
        this.log.warn({ interface: s.name, err: message(e) }, `${s.name}: cannot read counters`);
      }
      return {
        name: s.name,
        ifindex: s.link.ifindex,
        mac: s.link.mac ?? null,
        mtu: s.link.mtu,
        dataplaneMtu: s.applied.mtu ?? null,
        sourceMac: s.applied.sourceMac,
        gatewayMac: s.applied.gatewayMac,
        nextHop:
          s.resolution === undefined
            ? null
            : { source: s.resolution.source, hops: s.resolution.hops.map((h) => ({ address: h.address, mac: h.mac, state: h.state, onLink: h.onLink })) },
        io: s.io,
        workers: s.engine.options.workers,
        counters,
      };
    });
    return {
      pid: process.pid,
      version: this.deps.version ?? '0.0.0',
      configFile: this.options.configPath,
      startedAt: this.startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
      lastReload: this.lastReload,
      restartRequired: this.restartRequired,
      config: { seed: config.node.seed, interfaces: config.node.interfaces, io: config.node.io, workers: this.workers, vips },
      pools,
      interfaces,
      totals,
    };
  }

  /** One log line with every interface's counters and rates since the previous line. */
  logCounters(final = false): void {
    const now = Date.now();
    const interfaces: Record<string, unknown> = {};
    for (const s of this.served.values()) {
      let c: EngineCounters;
      try {
        c = s.engine.counters();
      } catch (e) {
        interfaces[s.name] = { error: message(e) };
        continue;
      }
      const previous = this.lastCounters.get(s.name);
      const seconds = previous === undefined ? 0 : (now - previous.at) / 1000;
      const rate = (value: number, before: number | undefined): number | undefined =>
        seconds > 0 && before !== undefined ? Math.round((value - before) / seconds) : undefined;
      this.lastCounters.set(s.name, { at: now, rx: c.rx, tx: c.tx });
      interfaces[s.name] = {
        rx: c.rx,
        tx: c.tx,
        dropped: c.dropped,
        passed: c.passed,
        rxPps: rate(c.rx, previous?.rx),
        txPps: rate(c.tx, previous?.tx),
        drops: Object.fromEntries(Object.entries(c.drops).filter(([, n]) => n > 0)),
        io: c.io,
        conntrack: c.conntrack,
      };
    }
    this.log.info({ counters: interfaces, final }, final ? 'counters (final)' : 'counters');
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
    const { logger } = this.deps;
    if (this.countersTimer !== undefined) {
      clearInterval(this.countersTimer);
      this.countersTimer = undefined;
      this.logCounters(true);
    }
    await this.tracker?.stop();
    await this.pools?.stop();
    if (this.control !== undefined) {
      await this.control.close().catch((e: unknown) => logger.warn({ err: message(e) }, 'closing the control socket failed'));
    }
    for (const s of [...this.served.values()].reverse()) {
      if (!s.started) continue;
      try {
        await s.engine.stop();
        logger.info({ interface: s.name }, `${s.name}: forwarding stopped`);
      } catch (e) {
        logger.error({ interface: s.name, err: message(e) }, `${s.name}: stopping the engine failed: ${message(e)}`);
      }
    }
    const pending = this.offloads.pending();
    const problems = await this.offloads.restore();
    for (const [ifname, features] of pending) {
      if (!problems.some((p) => p.startsWith(`${ifname}:`))) logger.info({ interface: ifname, restored: features }, `${ifname}: turned ${features.join(', ')} back on`);
    }
    for (const problem of problems) logger.error(problem);
    if (this.pidfileWritten && this.options.pidfile !== undefined) await removePidfile(this.options.pidfile);
    for (const [signal, handler] of this.signalHandlers) this.deps.signals.off(signal, handler);
    logger.info(this.running ? 'l4mux stopped' : 'startup undone');
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
    for (const line of e instanceof StartupError ? e.lines : [message(e)]) deps.printError(line);
    deps.logger.fatal('l4mux did not start');
    return 1;
  }
  return daemon.done;
}
