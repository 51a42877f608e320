// Keeps the served interfaces' links and next hops fresh: a changed MAC, MTU or next hop becomes
// a push on that interface; a failed refresh keeps the last good next hop.
import type { Logger } from 'pino';

import { NextHopTracker, type ResolveOptions, type TrackedInterface } from '../../net/nexthop.js';
import type { NetHost } from '../../net/host.js';
import type { ServedInterface } from '../served.js';
import { errorMessage, type Service, type ServiceContext } from '../service.js';

export class NextHopService implements Service {
  readonly name = 'next-hop tracker';
  private tracker: NextHopTracker | undefined;
  private readonly failureLogged = new Map<string, string>();

  constructor(
    private readonly host: NetHost,
    private readonly options: Omit<ResolveOptions, 'link'> & { intervalMs: number },
  ) {}

  async start(ctx: ServiceContext): Promise<void> {
    const log = ctx.logger;
    const tracker = new NextHopTracker(this.host, this.options);
    this.tracker = tracker;
    for (const served of ctx.interfaces.all()) this.follow(served);
    tracker.on('change', (name, now) => void ctx.serialize(async () => this.onChange(ctx, name, now)));
    tracker.on('failure', (name, errors) => {
      const text = errors.join('; ');
      if (this.failureLogged.get(name) === text) return;
      this.failureLogged.set(name, text);
      log.warn({ interface: name, errors }, `${name}: next-hop refresh failed, keeping the last good next hop: ${text}`);
    });
    tracker.on('recovered', (name) => {
      this.failureLogged.delete(name);
      log.info({ interface: name }, `${name}: next-hop refresh works again`);
    });
    tracker.start();
  }

  /** Tracks the interface's current next-hop request (again, after a reload changed it). */
  follow(served: ServedInterface): void {
    this.tracker?.track(served.hop.request, { link: served.link, resolution: served.hop.resolution ?? { interface: served.name, hops: [], source: 'none' } });
  }

  async stop(): Promise<void> {
    await this.tracker?.stop();
  }

  /** The link or the next hop changed: push a snapshot with the new facts. */
  private async onChange(ctx: ServiceContext, name: string, now: TrackedInterface): Promise<void> {
    const served = ctx.interfaces.get(name);
    if (served === undefined || ctx.stopping()) return;
    const config = ctx.config();
    served.observe(now, config);
    const before = served.applied;
    let dataplane;
    try {
      dataplane = served.build(config, ctx.pools);
      if (!served.commit(await served.prepare(dataplane)).changed) return;
    } catch (e) {
      ctx.logger.error(
        { interface: name, gatewayMac: [before.gatewayMac, dataplane?.gatewayMac], sourceMac: [before.sourceMac, dataplane?.sourceMac], mtu: [before.mtu, dataplane?.mtu], err: errorMessage(e) },
        `${name}: next hop or link changed but the dataplane refused the update: ${errorMessage(e)}`,
      );
      return;
    }
    ctx.logger.info(
      { interface: name, gatewayMac: [before.gatewayMac, dataplane.gatewayMac], sourceMac: [before.sourceMac, dataplane.sourceMac], mtu: [before.mtu, dataplane.mtu] },
      `${name}: next hop or link changed (gateway MAC ${before.gatewayMac} -> ${dataplane.gatewayMac}, MTU ${before.mtu} -> ${dataplane.mtu}): new snapshot applied`,
    );
  }
}
