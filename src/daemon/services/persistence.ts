// Client persistence as a daemon service: present when the config has persistent VIPs (or the
// persistence section). It opens the store (embedded; embedded across the muxes when the config
// has a cluster, src/persistence/cluster-store.ts; or etcd), and runs the slow path against
// every served interface's engine (their persistence tables and punt queues). A reload hands
// it the new VIPs (added, removed, changed timeouts and bounds); stop closes the store after
// the slow path stopped taking punts. `l4mux status` shows the tables and the slow path under
// services.persistence; `l4mux persistence VIP CLIENT` shows one client's entry.
import type { PersistenceEntryRequest, PersistenceEntryResponse } from '../../api/protocol.js';
import type { L4muxConfig } from '../../config/types.js';
import type { PersistenceApi } from '../../dataplane/engine.js';
import { clientOf } from '../../persistence/client.js';
import type { ClusterService } from '../../cluster/service.js';
import { ClusterStore, clusterTransport } from '../../persistence/cluster-store.js';
import { EmbeddedStore, StateFileError } from '../../persistence/embedded.js';
import { SlowPath, type PersistentVip } from '../../persistence/slowpath.js';
import { clientKey, type PersistenceStore } from '../../persistence/store.js';
import type { ServedInterfaces } from '../served.js';
import { errorMessage, StartupError, type Service, type ServiceContext } from '../service.js';

/**
 * Makes the store the config asks for (the daemon's default: embedded file or etcd; embedded
 * with a cluster: the cluster store over `cluster`'s channel).
 */
export type PersistenceStoreFactory = (config: L4muxConfig, cluster?: ClusterService) => Promise<PersistenceStore>;

export const defaultPersistenceStore: PersistenceStoreFactory = async (config, cluster) => {
  const p = config.persistence;
  if (p === undefined) throw new Error('no persistence section');
  if (p.store === 'etcd') {
    if (p.etcd === undefined) throw new Error('persistence.etcd: required with "store": "etcd"');
    // Loaded only when used: the etcd client (grpc) costs start-up time.
    const { EtcdStore } = await import('../../persistence/etcd.js');
    return new EtcdStore(p.etcd);
  }
  if (config.cluster !== undefined && cluster !== undefined) {
    const { heartbeatIntervalMs, deadAfter } = config.cluster;
    return new ClusterStore({
      path: p.stateFile,
      transport: clusterTransport(cluster),
      timeoutMs: p.storeTimeoutMs,
      graceMs: heartbeatIntervalMs * (deadAfter + 1),
      syncTimeoutMs: Math.max(5000, heartbeatIntervalMs * deadAfter * 10),
    });
  }
  return new EmbeddedStore({ path: p.stateFile });
};

export function persistentVips(config: L4muxConfig): PersistentVip[] {
  return config.vips.flatMap((v) => (v.persistence === undefined ? [] : [{ name: v.name, timeoutSeconds: v.persistence.timeoutSeconds, maxEntries: v.persistence.maxEntries }]));
}

export class PersistenceService implements Service {
  readonly name = 'persistence';
  private slow: SlowPath | undefined;
  private interfaces: ServedInterfaces | undefined;
  private config: L4muxConfig | undefined;

  constructor(
    private readonly createStore: PersistenceStoreFactory = defaultPersistenceStore,
    /** The cluster, when the config has one (the embedded store then spans the muxes). */
    private readonly cluster?: () => ClusterService | undefined,
  ) {}

  async start(ctx: ServiceContext): Promise<void> {
    const config = ctx.config();
    this.config = config;
    this.interfaces = ctx.interfaces;
    let store: PersistenceStore;
    try {
      store = await this.createStore(config, this.cluster?.());
    } catch (e) {
      throw new StartupError([`persistence: cannot create the ${config.persistence?.store ?? 'embedded'} store: ${errorMessage(e)}`]);
    }
    const slow = new SlowPath({ store, logger: ctx.logger, ...(config.persistence !== undefined && { storeTimeoutMs: config.persistence.storeTimeoutMs }) });
    slow.setVips(persistentVips(config));
    const engines = this.tables().map((t) => t.table);
    if (engines.length === 0) ctx.logger.warn('persistence: no engine has a persistence table (this build of the addon has none): persistent VIPs are scheduled without entries');
    try {
      await slow.start(engines);
    } catch (e) {
      await store.close().catch(() => undefined);
      // The state file is the config's persistence.stateFile: named as a config error is.
      if (e instanceof StateFileError) throw new StartupError([`persistence.stateFile: ${e.message}`]);
      throw new StartupError([`persistence: cannot open the ${store.kind} store: ${errorMessage(e)}`]);
    }
    this.slow = slow;
    ctx.logger.info({ store: store.kind, vips: persistentVips(config).map((v) => v.name), entries: slow.entryCount() }, `persistence: ${store.kind} store open, ${slow.entryCount()} entries loaded`);
  }

  /** A reload committed `config`: the slow path follows its persistent VIPs. */
  reloaded(config: L4muxConfig): void {
    this.config = config;
    this.slow?.setVips(persistentVips(config));
  }

  async stop(): Promise<void> {
    const slow = this.slow;
    this.slow = undefined;
    await slow?.stop();
  }

  private tables(): Array<{ name: string; table: PersistenceApi }> {
    return (this.interfaces?.all() ?? []).flatMap((s) => (s.engine.persistence === undefined ? [] : [{ name: s.name, table: s.engine.persistence }]));
  }

  status(): Record<string, unknown> {
    const tables: Record<string, unknown> = {};
    for (const { name, table } of this.tables()) {
      try {
        const { workers: _workers, ...totals } = table.stats();
        tables[name] = totals;
      } catch (e) {
        tables[name] = { error: errorMessage(e) };
      }
    }
    return { tables, slowPath: this.slow?.status() ?? null };
  }

  /** `l4mux persistence VIP CLIENT`: the client's entry in every table, the slow path and the store. */
  entry(request: PersistenceEntryRequest): PersistenceEntryResponse {
    const config = this.config;
    if (config === undefined || this.slow === undefined) return { ok: false, errors: ['persistence is not running'] };
    const vip = config.vips.find((v) => v.name === request.vip) ?? config.vips.find((v) => v.address === request.vip && v.persistence !== undefined);
    if (vip === undefined) return { ok: false, errors: [`vip: no VIP is named ${JSON.stringify(request.vip)} (VIPs: ${config.vips.map((v) => v.name).join(', ')})`] };
    if (vip.persistence === undefined) return { ok: false, errors: [`vip: ${vip.name} has no persistence`] };
    const client = clientOf(request.client, vip.persistence.prefixLength);
    if (client === undefined) return { ok: false, errors: [`client: ${JSON.stringify(request.client)} is not an IPv4 or IPv6 address`] };
    const vipFamily = vip.address.includes(':') ? 'ipv6' : 'ipv4';
    if (client.family !== vipFamily) return { ok: false, errors: [`client: ${request.client} is not an ${vipFamily === 'ipv4' ? 'IPv4' : 'IPv6'} address, as the clients of ${vip.name} are`] };
    const interfaces = this.tables().map(({ name, table }) => {
      try {
        const e = table.lookup(vip.name, client.client);
        return { name, backend: e?.backend ?? null, expiresInMs: e?.expiresInMs ?? null };
      } catch (err) {
        return { name, backend: null, expiresInMs: null, error: errorMessage(err) };
      }
    });
    const known = this.slow.entry(vip.name, client.client);
    return {
      ok: true,
      vip: vip.name,
      client: client.client,
      key: clientKey(vip.name, client.client),
      timeoutSeconds: vip.persistence.timeoutSeconds,
      store: this.slow.store.kind,
      slowPath: known === undefined ? null : { backend: known.backend, expiresInMs: Math.max(0, known.expiresAt - Date.now()), local: known.local },
      interfaces,
    };
  }
}
