// The cluster as a daemon service: present only when the config has a `cluster` section. It
// is made before the forwarding service (the engines' first snapshot already carries the
// cluster view, with only this mux live) and started after it (it polls and feeds the
// engines). Membership changes become pushes; `l4mux status` shows it under services.cluster;
// `ready` tells when a joining mux may be announced (the BGP speaker waits for it).
import { EventEmitter } from 'node:events';

import type { ClusterConfig } from '../../cluster/config.js';
import { readKeyFile } from '../../cluster/keys.js';
import { ClusterService, type ClusterStatus, type SyncEngine } from '../../cluster/service.js';
import type { DataplaneCluster, DataplaneConfig } from '../../dataplane/types.js';
import { errorMessage, StartupError, type Service, type ServiceContext } from '../service.js';

export interface ClusterReadiness {
  /** True once this mux's transfer is complete (at once for a mux without a cluster). */
  readonly ready: boolean;
  on(event: 'ready', listener: () => void): unknown;
}

/** Does going from `before` to `after` change what a new flow is given (backend sets, weights)? */
export function changesTables(before: DataplaneConfig | undefined, after: DataplaneConfig): boolean {
  return before !== undefined && JSON.stringify(before.vips) !== JSON.stringify(after.vips);
}

export class ClusterDaemonService extends EventEmitter<{ ready: [] }> implements Service, ClusterReadiness {
  readonly name = 'cluster';
  private service: ClusterService | undefined;

  private constructor(private readonly cluster: ClusterService) {
    super();
    cluster.on('ready', () => this.emit('ready'));
  }

  /** Reads the key file; throws a StartupError when it is unusable. */
  static async create(config: ClusterConfig, seed: string, ctx: Pick<ServiceContext, 'logger'>, engines: () => SyncEngine[], onChange: () => void): Promise<ClusterDaemonService> {
    const key = await readKeyFile(config.keyFile);
    if (!key.ok || key.secret === undefined) throw new StartupError([key.error ?? 'cluster.keyFile: unusable']);
    if (key.warning !== undefined) ctx.logger.warn(key.warning);
    const service = new ClusterService({ config, seed, secret: key.secret, logger: ctx.logger, engines, onMembershipChange: onChange });
    return new ClusterDaemonService(service);
  }

  /** The cluster itself (the persistence store's transport). */
  get clusterService(): ClusterService {
    return this.cluster;
  }

  get ready(): boolean {
    return this.cluster.ready;
  }

  /** What every engine's snapshot carries as DataplaneConfig.cluster. */
  dataplane(): DataplaneCluster {
    return this.cluster.dataplane();
  }

  /** Commit-after-sync, before a push that changes backend sets or weights. */
  beforeTableChange(): Promise<boolean> {
    return this.service === undefined ? Promise.resolve(true) : this.service.beforeTableChange();
  }

  async start(ctx: ServiceContext): Promise<void> {
    try {
      await this.cluster.start();
    } catch (e) {
      throw new StartupError([`cluster: cannot listen on ${ctx.config().cluster?.self.address}:${ctx.config().cluster?.syncPort}: ${errorMessage(e)}`]);
    }
    this.service = this.cluster;
  }

  async stop(): Promise<void> {
    const service = this.service;
    this.service = undefined;
    await service?.stop();
  }

  status(): ClusterStatus {
    return this.cluster.status();
  }
}
