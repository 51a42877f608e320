// Receive offloads (GRO, LRO) turned off on the served interfaces while the daemon runs: the
// engines read frames as they were on the wire; merged super-frames would not fit a ring's
// frame. Restored at stop.
import type { Logger } from 'pino';

import type { LinkInfo } from '../../net/links.js';
import { OffloadManager } from '../../net/offloads.js';
import type { NetHost } from '../../net/host.js';
import { errorMessage, type Service, type ServiceContext } from '../service.js';

export class ReceiveOffloadsService implements Service {
  readonly name = 'receive offloads';
  private readonly offloads: OffloadManager;
  private logger: Logger | undefined;

  constructor(
    host: NetHost,
    private readonly links: readonly LinkInfo[],
  ) {
    this.offloads = new OffloadManager(host);
  }

  async start(ctx: ServiceContext): Promise<void> {
    const { logger } = ctx;
    this.logger = logger;
    for (const link of this.links) {
      try {
        const report = await this.offloads.disable(link.name);
        logger.info({ interface: link.name, turnedOff: report.turnedOff, alreadyOff: report.alreadyOff }, `${link.name}: receive offloads off${report.turnedOff.length > 0 ? ` (turned off ${report.turnedOff.join(', ')}; restored at stop)` : ' already'}`);
        if (report.stillOn.length > 0) {
          logger.warn({ interface: link.name, stillOn: report.stillOn }, `${link.name}: could not turn off ${report.stillOn.join(', ')}: merged super-frames will be dropped (counted as rxOversized)`);
        }
      } catch (e) {
        logger.warn({ interface: link.name, err: errorMessage(e) }, `${link.name}: cannot manage receive offloads: ${errorMessage(e)}`);
      }
    }
  }

  async stop(): Promise<void> {
    const pending = this.offloads.pending();
    const problems = await this.offloads.restore();
    for (const [ifname, features] of pending) {
      if (!problems.some((p) => p.startsWith(`${ifname}:`))) this.logger?.info({ interface: ifname, restored: features }, `${ifname}: turned ${features.join(', ')} back on`);
    }
    for (const problem of problems) this.logger?.error(problem);
  }
}
