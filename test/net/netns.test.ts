// src/net against a real kernel: a network namespace with a veth pair to a router namespace.
// Root only (skipped otherwise); nothing is changed in the root namespace.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NextHopTracker, OffloadManager, checkLink, readFeatures, readLinks, resolveNextHop, type TrackedInterface } from '../../src/net/index.js';
import { readNeighbours } from '../../src/net/routes.js';
import { canUseNetns, createLab, type Lab } from './netns.js';

describe.skipIf(!canUseNetns())('src/net in a network namespace', { timeout: 30_000 }, () => {
  let lab: Lab;

  beforeAll(() => {
    lab = createLab('net');
  });

  afterAll(() => {
    lab?.destroy();
  });

  it('reads the interface: index, MAC, MTU, state and addresses', async () => {
    const links = await readLinks(lab.host);
    const check = checkLink('m0', links);
    if (!check.ok) throw new Error(check.reason);
    expect(check.link).toMatchObject({ name: 'm0', mac: lab.muxMac, mtu: lab.mtu, adminUp: true, carrier: true, linkType: 'ether' });
    expect(check.link.ifindex).toBeGreaterThan(1);
    expect(check.link.addresses.map((a) => a.address)).toEqual(expect.arrayContaining([lab.muxV4, lab.muxV6]));
    expect(checkLink('lo', links).ok).toBe(false);
  });

  it('resolves the router toward IPv4 and IPv6 backends: route, probe, ARP and neighbour discovery', async () => {
    expect((await readNeighbours(lab.host, 'm0')).filter((n) => n.mac !== undefined)).toEqual([]);
    const result = await resolveNextHop(lab.host, { interface: 'm0', targets: [lab.backendV4(1), lab.backendV4(2), lab.backendV6(1)] });
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(result.warnings).toEqual([]);
    expect(result.resolution.mac).toBe(lab.routerMac);
    expect(result.resolution.hops.map((h) => [h.address, h.mac, h.onLink, h.targets])).toEqual([
      [lab.routerV4, lab.routerMac, false, 2],
      [lab.routerV6, lab.routerMac, false, 1],
    ]);
    const neighbours = await readNeighbours(lab.host, 'm0');
    expect(neighbours.find((n) => n.address === lab.routerV4)?.mac).toBe(lab.routerMac);
  });

  it('resolves node.gateway, and reports one that nobody answers for', async () => {
    const ok = await resolveNextHop(lab.host, { interface: 'm0', targets: [lab.backendV4(1)], gateway: lab.routerV4 });
    expect(ok.ok && ok.resolution.mac).toBe(lab.routerMac);
    const silent = await resolveNextHop(lab.host, { interface: 'm0', targets: [lab.backendV4(1)], gateway: '10.200.0.77' }, { attempts: 3, initialDelayMs: 100 });
    expect(silent).toEqual({ ok: false, errors: [expect.stringMatching(/^m0: no ARP answer from next hop 10\.200\.0\.77 \(neighbour state (INCOMPLETE|FAILED)\)$/)] });
  });

  it('tracks a next hop whose MAC changes', async () => {
    const links = await readLinks(lab.host);
    const request = { interface: 'm0', targets: [lab.backendV4(1)] };
    const first = await resolveNextHop(lab.host, request);
    if (!first.ok) throw new Error(first.errors.join('\n'));
    const tracker = new NextHopTracker(lab.host, { intervalMs: 60_000 });
    const initial: TrackedInterface = { link: links.find((l) => l.name === 'm0')!, resolution: first.resolution };
    tracker.track(request, initial);
    const changes: string[] = [];
    tracker.on('change', (_name, now) => changes.push(now.resolution.mac ?? ''));
    lab.ip(lab.mux, 'neigh', 'replace', lab.routerV4, 'lladdr', '02:00:00:00:20:09', 'dev', 'm0', 'nud', 'permanent');
    try {
      await tracker.refresh();
      expect(changes).toEqual(['02:00:00:00:20:09']);
    } finally {
      lab.ip(lab.mux, 'neigh', 'del', lab.routerV4, 'dev', 'm0');
      await tracker.stop();
    }
  });

  it('turns GRO off on the veth and back on', async () => {
    lab.exec(lab.mux, 'ethtool', '-K', 'm0', 'gro', 'on');
    const manager = new OffloadManager(lab.host);
    const report = await manager.disable('m0');
    expect(report.turnedOff).toEqual(['generic-receive-offload']);
    expect((await readFeatures(lab.host, 'm0')).get('generic-receive-offload')?.active).toBe(false);
    expect(await manager.restore()).toEqual([]);
    expect((await readFeatures(lab.host, 'm0')).get('generic-receive-offload')?.active).toBe(true);
  });
});
