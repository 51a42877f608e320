// Next-hop resolution, its tracker and the offload manager, on a modelled host.
import { describe, expect, it } from 'vitest';

import { NextHopTracker, OffloadManager, readLinks, resolveNextHop, type NextHopResult, type TrackedInterface } from '../../src/net/index.js';
import { muxHost } from './fake-host.js';

const fast = { attempts: 3, initialDelayMs: 1 };

function resolved(result: NextHopResult): Extract<NextHopResult, { ok: true }> {
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result;
}

describe('resolveNextHop', () => {
  it('finds the router of the routes to the backends and its MAC, probing it when the entry is missing', async () => {
    const host = muxHost();
    const result = resolved(await resolveNextHop(host, { interface: 'eth0', targets: ['10.1.0.1', '10.1.0.2', 'fd01::1'] }, fast));
    expect(result.warnings).toEqual([]);
    expect(result.resolution).toEqual({
      interface: 'eth0',
      mac: '02:00:00:00:00:fe',
      source: 'routes',
      hops: [
        { address: '10.9.0.1', mac: '02:00:00:00:00:fe', state: 'REACHABLE', onLink: false, targets: 2 },
        { address: 'fd09::1', mac: '02:00:00:00:00:fe', state: 'REACHABLE', onLink: false, targets: 1 },
      ],
    });
    // One probe per missing neighbour, from the interface's address of that family.
    expect(host.probes).toEqual([
      { target: '10.9.0.1', source: '10.9.0.2', ifname: 'eth0' },
      { target: 'fd09::1', source: 'fd09::2', ifname: 'eth0' },
    ]);
    // All the route lookups in one ip -batch run.
    expect(host.commands.filter((c) => c.includes('batch'))).toHaveLength(1);
  });

  it('uses a known entry without probing, and refreshes a stale one', async () => {
    const host = muxHost();
    host.setNeighbour('eth0', { dst: '10.9.0.1', lladdr: '02:00:00:00:00:fe', state: ['REACHABLE'] });
    resolved(await resolveNextHop(host, { interface: 'eth0', targets: ['10.1.0.1'] }, fast));
    expect(host.probes).toEqual([]);
    host.setNeighbour('eth0', { dst: '10.9.0.1', lladdr: '02:00:00:00:00:fe', state: ['STALE'] });
    const stale = resolved(await resolveNextHop(host, { interface: 'eth0', targets: ['10.1.0.1'] }, fast));
    expect(stale.resolution.mac).toBe('02:00:00:00:00:fe');
    expect(host.probes).toHaveLength(1);
  });

  it('uses node.gateway instead of the routes, if it is on the link', async () => {
    const host = muxHost();
    host.answering.set('10.9.0.254', '02:00:00:00:00:aa');
    const result = resolved(await resolveNextHop(host, { interface: 'eth0', targets: ['10.1.0.1', '10.1.0.2'], gateway: '10.9.0.254' }, fast));
    expect(result.resolution).toMatchObject({ mac: '02:00:00:00:00:aa', source: 'gateway', hops: [{ address: '10.9.0.254', targets: 2 }] });
    expect(await resolveNextHop(host, { interface: 'eth0', targets: [], gateway: '10.1.0.1' }, fast)).toEqual({
      ok: false,
      errors: ['eth0: node.gateway 10.1.0.1 is not on the link of eth0 (the kernel reaches it via 10.9.0.1); give the address of a router on that link'],
    });
    expect(await resolveNextHop(host, { interface: 'eth0', targets: [], gateway: '172.16.0.1' }, fast)).toEqual({
      ok: false,
      errors: ['eth0: node.gateway 172.16.0.1: no route to it'],
    });
  });

  it('reports a next hop that does not answer, after retrying with backoff', async () => {
    const host = muxHost();
    host.answering.delete('10.9.0.1');
    host.setNeighbour('eth0', { dst: '10.9.0.1', state: ['FAILED'] });
    expect(await resolveNextHop(host, { interface: 'eth0', targets: ['10.1.0.1'] }, fast)).toEqual({
      ok: false,
      errors: ['eth0: no ARP answer from next hop 10.9.0.1 (neighbour state FAILED)'],
    });
    expect(host.probes).toHaveLength(3);
  });

  it('refuses next hops with different MACs: the dataplane sends to one', async () => {
    const host = muxHost();
    host.answering.set('fd09::1', '02:00:00:00:00:ef');
    const result = await resolveNextHop(host, { interface: 'eth0', targets: ['10.1.0.1', 'fd01::1'] }, fast);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.errors[0]).toBe(
      'eth0: the backends are reached through 2 next hops with different MACs (10.9.0.1 at 02:00:00:00:00:fe and fd09::1 at 02:00:00:00:00:ef), ' +
        'but l4mux sends every packet to one next-hop MAC: route every backend family through the same router, or set node.gateway',
    );
    host.answering.set('10.9.0.7', '02:00:00:00:00:07');
    host.answering.set('10.9.0.8', '02:00:00:00:00:08');
    const onLink = await resolveNextHop(host, { interface: 'eth0', targets: ['10.9.0.7', '10.9.0.8'] }, fast);
    expect(!onLink.ok && onLink.errors[0]).toMatch(/put the backends behind a router, or set node.gateway to a router on this link$/);
  });

  it('accepts a single backend on the link as its own next hop', async () => {
    const host = muxHost();
    host.answering.set('10.9.0.7', '02:00:00:00:00:07');
    const result = resolved(await resolveNextHop(host, { interface: 'eth0', targets: ['10.9.0.7'] }, fast));
    expect(result.resolution.hops).toEqual([{ address: '10.9.0.7', mac: '02:00:00:00:00:07', state: 'REACHABLE', onLink: true, targets: 1 }]);
  });

  it('warns about backends routed elsewhere while a next hop is found, and fails when none is', async () => {
    const host = muxHost();
    const result = resolved(await resolveNextHop(host, { interface: 'eth0', targets: ['10.1.0.1', '172.16.0.1', '172.16.0.2'] }, fast));
    expect(result.warnings).toEqual(['eth0: no route to backends 172.16.0.1 and 172.16.0.2 (their packets go to the next hop of the other backends)']);
    host.links.push({ name: 'eth1', mac: '02:00:00:00:01:01' });
    const other = await resolveNextHop(host, { interface: 'eth1', targets: ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4'] }, fast);
    expect(other).toEqual({
      ok: false,
      errors: [
        'eth1: backends 10.1.0.1, 10.1.0.2 and 2 more are routed via eth0, not eth1: l4mux sends encapsulated packets out of the interface that received them; route the backends via eth1 or set node.gateway',
      ],
    });
  });

  it('has nothing to resolve without backends, and reports a missing interface', async () => {
    const host = muxHost();
    expect(await resolveNextHop(host, { interface: 'eth0', targets: [] }, fast)).toEqual({
      ok: true,
      resolution: { interface: 'eth0', hops: [], source: 'none' },
      warnings: [],
    });
    expect(await resolveNextHop(host, { interface: 'eth7', targets: ['10.1.0.1'] }, fast)).toEqual({
      ok: false,
      errors: ['eth7: interface eth7 does not exist (did you mean "eth0"?)'],
    });
  });
});

describe('NextHopTracker', () => {
  async function tracked(): Promise<{ host: ReturnType<typeof muxHost>; tracker: NextHopTracker; initial: TrackedInterface }> {
    const host = muxHost();
    const result = resolved(await resolveNextHop(host, { interface: 'eth0', targets: ['10.1.0.1'] }, fast));
    const tracker = new NextHopTracker(host, { ...fast, intervalMs: 60_000 });
    const links = await readLinks(host);
    const initial: TrackedInterface = { link: links.find((l) => l.name === 'eth0')!, resolution: result.resolution };
    tracker.track({ interface: 'eth0', targets: ['10.1.0.1'] }, initial);
    return { host, tracker, initial };
  }

  it('emits a change when the next hop MAC changes, and nothing when nothing did', async () => {
    const { host, tracker } = await tracked();
    const changes: Array<[string, string | undefined, string | undefined]> = [];
    tracker.on('change', (name, now, before) => changes.push([name, before.resolution.mac, now.resolution.mac]));
    await tracker.refresh();
    expect(changes).toEqual([]);
    host.setNeighbour('eth0', { dst: '10.9.0.1', lladdr: '02:00:00:00:00:fd', state: ['REACHABLE'] });
    await tracker.refresh();
    expect(changes).toEqual([['eth0', '02:00:00:00:00:fe', '02:00:00:00:00:fd']]);
    expect(tracker.get('eth0')?.resolution.mac).toBe('02:00:00:00:00:fd');
  });

  it('emits a change when the link MTU changes', async () => {
    const { host, tracker } = await tracked();
    const mtus: number[] = [];
    tracker.on('change', (_name, now) => mtus.push(now.link.mtu));
    const eth0 = host.links.find((l) => l.name === 'eth0')!;
    eth0.mtu = 9000;
    await tracker.refresh();
    expect(mtus).toEqual([9000]);
  });

  it('keeps the last good state when a refresh fails, and says when it recovers', async () => {
    const { host, tracker, initial } = await tracked();
    const events: string[] = [];
    tracker.on('failure', (name, errors) => events.push(`failure ${name}: ${errors.join('; ')}`));
    tracker.on('recovered', (name) => events.push(`recovered ${name}`));
    host.answering.delete('10.9.0.1');
    host.setNeighbour('eth0', { dst: '10.9.0.1', state: ['FAILED'] });
    await tracker.refresh();
    expect(tracker.get('eth0')).toEqual(initial);
    host.answering.set('10.9.0.1', '02:00:00:00:00:fe');
    await tracker.refresh();
    expect(events).toEqual(['failure eth0: eth0: no ARP answer from next hop 10.9.0.1 (neighbour state FAILED)', 'recovered eth0']);
  });

  it('runs one refresh at a time', async () => {
    const { host, tracker } = await tracked();
    const before = host.commands.length;
    await Promise.all([tracker.refresh(), tracker.refresh(), tracker.refresh()]);
    expect(host.commands.slice(before).filter((c) => c === 'ip -j addr show')).toHaveLength(1);
    tracker.start();
    await tracker.stop();
  });
});

describe('OffloadManager', () => {
  it('turns GRO off, leaves fixed features alone, and turns back on only what it turned off', async () => {
    const host = muxHost();
    const manager = new OffloadManager(host);
    expect(await manager.disable('eth0')).toEqual({
      interface: 'eth0',
      turnedOff: ['generic-receive-offload'],
      alreadyOff: ['large-receive-offload', 'rx-gro-hw'],
      stillOn: [],
    });
    expect(host.features.get('eth0')?.['generic-receive-offload']?.active).toBe(false);
    expect(host.commands).toContain('ethtool -K eth0 generic-receive-offload off');
    expect(manager.pending()).toEqual(new Map([['eth0', ['generic-receive-offload']]]));
    expect(await manager.restore()).toEqual([]);
    expect(host.features.get('eth0')?.['generic-receive-offload']?.active).toBe(true);
    expect(host.commands.at(-1)).toBe('ethtool -K eth0 generic-receive-offload on');
    expect(manager.pending().size).toBe(0);
  });

  it('changes nothing when everything is off already', async () => {
    const host = muxHost();
    host.features.get('eth0')!['generic-receive-offload'] = { active: false };
    const manager = new OffloadManager(host);
    expect((await manager.disable('eth0')).turnedOff).toEqual([]);
    expect(host.commands.some((c) => c.startsWith('ethtool -K'))).toBe(false);
    expect(await manager.restore()).toEqual([]);
  });

  it('reports features that stay on: fixed on, or refused by the driver', async () => {
    const host = muxHost();
    host.features.set('eth0', { 'generic-receive-offload': { active: true }, 'large-receive-offload': { active: true, fixed: true } });
    host.ethtoolSetError = 'Could not change any device features';
    const report = await new OffloadManager(host).disable('eth0');
    expect(report.stillOn).toEqual(['generic-receive-offload (Could not change any device features)', 'large-receive-offload (fixed)']);
    expect(report.turnedOff).toEqual([]);
  });

  it('fails clearly for an interface ethtool does not know', async () => {
    await expect(new OffloadManager(muxHost()).disable('eth9')).rejects.toThrow(/ethtool -k eth9 failed/);
  });
});
