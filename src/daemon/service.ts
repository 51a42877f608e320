// The daemon is an ordered list of services. Each one owns one piece of the running daemon (the
// pid file, receive offloads, the forwarding engines, next-hop tracking, health checks, the
// control socket, the counters line; later the cluster, the persistence store, the BGP speaker,
// the metrics exporter). The daemon starts them in order after the config is loaded and the
// host checked, and stops them in reverse. A service that fails to start undoes the daemon's
// start: every service started before it, and itself, are stopped in reverse.
//
// Adding a feature to the daemon means writing one Service and placing it in the list built by
// Daemon.services(): after what it needs (the forwarding service for interfaces, the health
// checks for pool states), before what needs it.
import type { Logger } from 'pino';

import type { L4muxConfig } from '../config/types.js';
import type { NetHost } from '../net/host.js';
import type { PoolSupervisor } from '../pools/supervisor.js';
import type { ServedInterfaces } from './served.js';

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Why the daemon did not start: one line per problem (thrown by startup checks and services). */
export class StartupError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
  }
}

/** What a service sees of the running daemon. */
export interface ServiceContext {
  readonly logger: Logger;
  readonly host: NetHost;
  /** The running config: the file's, replaced by each successful reload. */
  config(): L4muxConfig;
  /** Backends of the pools: health, operator overrides, reported weights. */
  readonly pools: PoolSupervisor;
  /** The interfaces the daemon forwards on (filled by the forwarding service's start). */
  readonly interfaces: ServedInterfaces;
  /**
   * Asks for a new snapshot on every served interface with the running config and the pools as
   * they are now; queued behind reloads and other pushes, a no-op where nothing changed. `why`
   * goes into the log line.
   */
  requestPush(why: string): void;
  /**
   * Runs `task` after every queued task (startup, reloads, pushes, stop). A service that changes
   * what a snapshot is built from does it in here, so that it never races a reload.
   */
  serialize<T>(task: () => Promise<T>): Promise<T>;
  /** True once the daemon has begun to stop: no new work. */
  stopping(): boolean;
}

export interface Service {
  /** Short and unique: "forwarding", "control socket"; used in logs and the status report. */
  readonly name: string;
  /**
   * Starts the service; throws (preferably a StartupError) when it cannot. stop() is called
   * even after a failed start, so it must cope with a half-done one.
   */
  start(ctx: ServiceContext): Promise<void>;
  /** Undoes start; never throws (logs instead); safe to call on a service that did not start. */
  stop(): Promise<void>;
  /** The service's part of `l4mux status` (under `services.<name>`); absent: none. */
  status?(): unknown;
}

/** Services started in order, stopped in reverse. */
export class ServiceList {
  private readonly services: Service[] = [];
  /** The services whose start was called, in order. */
  private readonly started: Service[] = [];

  constructor(
    services: readonly Service[],
    private readonly logger: Logger,
  ) {
    const names = new Set<string>();
    for (const service of services) {
      if (names.has(service.name)) throw new Error(`two services are named ${service.name}`);
      names.add(service.name);
      this.services.push(service);
    }
  }

  names(): string[] {
    return this.services.map((s) => s.name);
  }

  /** Starts every service in order; when one throws, stops the started ones (and it) and rethrows. */
  async start(ctx: ServiceContext): Promise<void> {
    for (const service of this.services) {
      this.started.push(service);
      try {
        await service.start(ctx);
      } catch (e) {
        await this.stop();
        throw e;
      }
    }
  }

  /** Stops the started services in reverse order; never throws. */
  async stop(): Promise<void> {
    while (this.started.length > 0) {
      const service = this.started.pop() as Service;
      try {
        await service.stop();
      } catch (e) {
        this.logger.error({ service: service.name, err: errorMessage(e) }, `stopping ${service.name} failed: ${errorMessage(e)}`);
      }
    }
  }

  /** Every started service's status(), by name (the ones without status() left out). */
  status(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const service of this.started) {
      if (service.status !== undefined) out[service.name] = service.status();
    }
    return out;
  }
}
