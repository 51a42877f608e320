// The daemon's building blocks in isolation: the service list's order and its undo of a failed
// start, and a served interface's push and rollback (fake engines, no host).
import { EventEmitter } from 'node:events';

import { describe, expect, it } from 'vitest';

import { parseConfig, type L4muxConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/daemon/logger.js';
import { ServedInterface, ServedInterfaces, type NextHop } from '../../src/daemon/served.js';
import { ServiceList, StartupError, type Service, type ServiceContext } from '../../src/daemon/service.js';
import type { LinkInfo } from '../../src/net/links.js';
import { PoolSupervisor, type HealthCheckerLike } from '../../src/pools/supervisor.js';
import { muxHost } from '../net/fake-host.js';
import { fakeEngines, FakeEngine } from './fake-engine.js';
import { daemonConfig, type Json } from './harness.js';

const logger = createLogger('silent');

class FakeChecker extends EventEmitter {
  update(): void {}
  snapshot(): [] {
    return [];
  }
  async stop(): Promise<void> {}
}

function configOf(doc: Json): L4muxConfig {
  const result = parseConfig(JSON.stringify(doc));
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

function poolsOf(config: L4muxConfig): PoolSupervisor {
  return new PoolSupervisor(config, logger, () => new FakeChecker() as unknown as HealthCheckerLike);
}

function link(name: string, n: number): LinkInfo {
  return { name, ifindex: n, mac: `02:00:00:00:00:0${n}`, mtu: 1500, adminUp: true, carrier: true, operstate: 'UP', linkType: 'ether', flags: ['UP', 'LOWER_UP'], addresses: [] };
}

function context(config: L4muxConfig, pools: PoolSupervisor, interfaces: ServedInterfaces): ServiceContext {
  return {
    logger,
    host: muxHost(),
    config: () => config,
    pools,
    interfaces,
    requestPush: () => undefined,
    serialize: (task) => task(),
    stopping: () => false,
  };
}

describe('the service list', () => {
  function recorder(log: string[], name: string, failStart?: string): Service {
    return {
      name,
      start: async () => {
        log.push(`start ${name}`);
        if (failStart !== undefined) throw new StartupError([failStart]);
      },
      stop: async () => {
        log.push(`stop ${name}`);
      },
      status: () => ({ name }),
    };
  }

  const ctx = {} as ServiceContext;

  it('starts in order and stops in reverse', async () => {
    const log: string[] = [];
    const list = new ServiceList([recorder(log, 'a'), recorder(log, 'b'), recorder(log, 'c')], logger);
    await list.start(ctx);
    expect(list.status()).toEqual({ a: { name: 'a' }, b: { name: 'b' }, c: { name: 'c' } });
    await list.stop();
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    // Stopping again does nothing.
    await list.stop();
    expect(log).toHaveLength(6);
  });

  it('a failed start stops it and the ones before it, in reverse, and never starts the rest', async () => {
    const log: string[] = [];
    const list = new ServiceList([recorder(log, 'a'), recorder(log, 'b', 'b: no'), recorder(log, 'c')], logger);
    await expect(list.start(ctx)).rejects.toThrow('b: no');
    expect(log).toEqual(['start a', 'start b', 'stop b', 'stop a']);
  });

  it('a stop that throws does not keep the others from stopping', async () => {
    const log: string[] = [];
    const bad: Service = { name: 'bad', start: async () => undefined, stop: async () => Promise.reject(new Error('stuck')) };
    const list = new ServiceList([recorder(log, 'a'), bad, recorder(log, 'c')], logger);
    await list.start(ctx);
    await list.stop();
    expect(log).toEqual(['start a', 'start c', 'stop c', 'stop a']);
  });

  it('refuses two services of one name', () => {
    const log: string[] = [];
    expect(() => new ServiceList([recorder(log, 'a'), recorder(log, 'a')], logger)).toThrow('two services are named a');
  });
});

describe('a served interface', () => {
  const config = configOf({ ...daemonConfig(), node: { ...daemonConfig().node, gatewayMac: '02:00:00:00:00:aa' } });
  const hop: NextHop = { request: { interface: 'eth0', targets: [] }, resolution: undefined };

  it('pushes a config only when it differs from the running one (built by prepare, swapped in by publish)', async () => {
    const engine = new FakeEngine({ interface: 'eth0', workers: 1, io: 'af_packet', conntrack: { maxFlows: 1024, timeouts: { tcpSynSeconds: 1, tcpEstablishedSeconds: 1, tcpClosingSeconds: 1, udpSeconds: 1, otherSeconds: 1 } } });
    const served = new ServedInterface('eth0', engine, link('eth0', 1), hop);
    const pools = poolsOf(config);
    expect(await served.push(config, pools)).toMatchObject({ changed: true, before: undefined });
    expect((await served.push(config, pools)).changed).toBe(false);
    expect(engine.events).toEqual(['prepare', 'publish']);
    pools.override('web', '10.1.0.2', { state: 'draining' });
    const result = await served.push(config, pools);
    expect(result.changed).toBe(true);
    expect(result.after.vips[0]?.backends[1]?.state).toBe('draining');
    expect(served.applied).toEqual(result.after);
    expect(engine.current).toEqual(result.after);
  });

  it('keeps the running config when the engine refuses; a rollback restores the one before the last push', async () => {
    const engine = new FakeEngine({ interface: 'eth0', workers: 1, io: 'af_packet', conntrack: { maxFlows: 1024, timeouts: { tcpSynSeconds: 1, tcpEstablishedSeconds: 1, tcpClosingSeconds: 1, udpSeconds: 1, otherSeconds: 1 } } });
    const served = new ServedInterface('eth0', engine, link('eth0', 1), hop);
    const pools = poolsOf(config);
    const first = (await served.push(config, pools)).after;

    pools.override('web', '10.1.0.1', { weight: 5 });
    engine.failNext = ['no memory'];
    await expect(served.push(config, pools)).rejects.toThrow('no memory');
    expect(served.applied).toEqual(first);

    const newHop: NextHop = { request: { interface: 'eth0', targets: ['10.1.0.1'] }, resolution: undefined };
    const second = (await served.push(config, pools, newHop)).after;
    expect(second.vips[0]?.backends[0]?.weight).toBe(5);
    expect(served.hop).toBe(newHop);
    expect(served.rollback()).toBe(true);
    expect(served.applied).toEqual(first);
    expect(engine.current).toEqual(first);
    expect(served.hop).toBe(hop);
    // One rollback per push.
    expect(served.rollback()).toBe(false);
  });
});

describe('the forwarding service', () => {
  it('pushes a config to every interface or to none', async () => {
    const doc = daemonConfig();
    doc.node.interfaces = ['eth0', 'eth1'];
    doc.node.gatewayMac = '02:00:00:00:00:aa';
    const config = configOf(doc);
    const pools = poolsOf(config);
    const fakes = fakeEngines();
    const interfaces = new ServedInterfaces({ links: [link('eth0', 1), link('eth1', 2)], workers: 1, createEngine: fakes.factory, host: muxHost() });
    await interfaces.start(context(config, pools, interfaces));
    const eth0 = fakes.engines.get('eth0')!;
    const eth1 = fakes.engines.get('eth1')!;
    expect(eth0.events).toEqual(['prepare', 'publish', 'start']);
    const before = [eth0.current, eth1.current];

    const next = configOf({ ...doc, node: { ...doc.node, seed: '0x1234' } });
    eth1.failNext = ['refused'];
    expect(await interfaces.pushAll(next, pools)).toEqual({ ok: false, errors: ['eth1: the dataplane refused the new config: refused'] });
    expect([eth0.current, eth1.current]).toEqual(before);
    expect(eth0.events.slice(-2)).toEqual(['start', 'prepare']); // built, never swapped in
    expect(interfaces.get('eth0')?.applied).toEqual(before[0]);

    eth1.failPublish = ['refused'];
    expect(await interfaces.pushAll(next, pools)).toEqual({ ok: false, errors: ['eth1: the dataplane refused the new config: refused (eth0 rolled back to the running config)'] });
    expect([eth0.current, eth1.current]).toEqual(before);

    expect(await interfaces.pushAll(next, pools)).toEqual({ ok: true });
    expect(eth0.current?.seed).toBe('0x0000000000001234');
    expect(eth1.current?.seed).toBe('0x0000000000001234');

    await interfaces.stop();
    expect(eth0.events.at(-1)).toBe('stop');
    expect(eth1.events.at(-1)).toBe('stop');
  });

  it('stops the engines it started when a later one cannot start', async () => {
    const doc = daemonConfig();
    doc.node.interfaces = ['eth0', 'eth1'];
    doc.node.gatewayMac = '02:00:00:00:00:aa';
    const config = configOf(doc);
    const fakes = fakeEngines();
    fakes.setup = (e) => {
      if (e.options.interface === 'eth1') e.failStart = 'no such queue';
    };
    const interfaces = new ServedInterfaces({ links: [link('eth0', 1), link('eth1', 2)], workers: 1, createEngine: fakes.factory, host: muxHost() });
    const list = new ServiceList([interfaces], logger);
    await expect(list.start(context(config, poolsOf(config), interfaces))).rejects.toThrow('eth1: cannot start forwarding: no such queue');
    expect(fakes.engines.get('eth0')?.events).toEqual(['prepare', 'publish', 'start', 'stop']);
    expect(fakes.engines.get('eth1')?.events).toEqual(['prepare', 'publish', 'start']);
  });
});
