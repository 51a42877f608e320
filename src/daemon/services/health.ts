// The pools' health checks: each burst of health changes becomes one push to every interface.
import type { PoolSupervisor } from '../../pools/supervisor.js';
import type { Service, ServiceContext } from '../service.js';

export class HealthCheckService implements Service {
  readonly name = 'health checks';
  private pools: PoolSupervisor | undefined;

  async start(ctx: ServiceContext): Promise<void> {
    const config = ctx.config();
    this.pools = ctx.pools;
    ctx.pools.onChange((why) => ctx.requestPush(why));
    ctx.pools.setChecks(config.healthChecks);
    const n = config.healthChecks.length;
    if (n > 0) ctx.logger.info({ checks: n }, `health checks: ${n} ${n === 1 ? 'backend' : 'backends'} checked`);
  }

  async stop(): Promise<void> {
    await this.pools?.stop();
  }
}
