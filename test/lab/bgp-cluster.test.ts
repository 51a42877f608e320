// BGP and the cluster together in the netns lab: three muxes announce the VIPs to the router
// (BIRD, ECMP), share their connection tables, and one of them is SIGKILLed. Its BIRD dies with
// it, the router drops its routes, and the flows it carried arrive at the other two, which hold
// their entries: no long-lived connection breaks. The scheduler is `random`, so a mux without
// the entries picks another backend for most of them: the same run without the cluster section
// is the baseline that shows the test can see a broken connection. Needs root; builds and
// removes its own namespaces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Connections } from '../support/connections.js';
import { isRoot, Lab, sleep, VIP4, VIP6, waitUntil, type Mux } from '../support/lab.js';

type Json = Record<string, any>;
const MUXES: readonly Mux[] = [1, 2, 3];
const CONNECTIONS = 60;

describe.skipIf(!isRoot)('BGP with the cluster: a mux SIGKILLed', () => {
  const lab = new Lab('lbgc');
  let base: Json[] = [];
  const measured: string[] = [];
  beforeAll(() => {
    lab.up('ipip', { muxes: 3, cluster: true });
    base = MUXES.map((m) => lab.muxConfig(m) as Json);
  }, 120_000);
  afterAll(() => {
    lab.down();
    if (measured.length > 0) console.log(`BGP + cluster, SIGKILL of mux2 (${CONNECTIONS} long-lived connections):\n  ${measured.join('\n  ')}`);
  });

  const newFlows = (m: Mux): number => lab.status(m).interfaces[0]?.counters.vips.find((v) => v.name === 'http4')?.newFlows ?? 0;
  const clusterReady = (m: Mux): boolean => {
    const r = lab.l4mux(`mux${m}`, ['status', '--control', `${lab.run}/mux${m}.sock`]);
    return r.status === 0 && (JSON.parse(r.stdout) as Json)['services']?.['cluster']?.['ready'] === true;
  };
  const announcedByAll = (): boolean => [VIP4, VIP6].every((vip) => lab.routerPaths(vip).join() === '1,2,3');

  async function killScenario(sync: boolean): Promise<{ broken: number; reasons: Record<string, number>; withdrawnMs: number; viaMux2: number }> {
    await lab.restartMuxes(MUXES, (config, m) => {
      for (const key of Object.keys(config)) delete config[key];
      Object.assign(config, structuredClone(base[m - 1]));
      for (const v of config['vips'] as Json[]) if (v['name'] === 'http4') v['scheduler'] = 'random';
      // No health checks: on a loaded machine a late probe would move flows for reasons that
      // are not this test's.
      delete config['pools']['web4'].healthCheck;
      if (!sync) delete config['cluster'];
    });
    if (sync) expect(await waitUntil(() => MUXES.every(clusterReady), 30_000, 200), 'cluster ready').toBe(true);
    expect(await waitUntil(announcedByAll, 30_000, 100), 'the router learns the VIPs from all three muxes').toBe(true);
    const before = newFlows(2);
    const c = new Connections(lab, CONNECTIONS);
    try {
      const r = await c.allAnswered(CONNECTIONS);
      expect(r.answered, JSON.stringify(r)).toBe(CONNECTIONS);
      const viaMux2 = newFlows(2) - before;
      await c.mark();
      const start = Date.now();
      lab.killMux(2);
      const dropped = await waitUntil(() => !lab.routerPaths(VIP4).includes(2), 10_000, 10);
      const withdrawnMs = dropped ? Date.now() - start : -1;
      await sleep(3000);
      const { broken, reasons } = await c.settled();
      measured.push(`sync ${sync ? 'on ' : 'off'}: ${viaMux2} connections started on mux2; route withdrawn after ${withdrawnMs} ms; ${broken} broken ${JSON.stringify(reasons)}`);
      return { broken, reasons, withdrawnMs, viaMux2 };
    } finally {
      c.close();
    }
  }

  it('with the cluster: the router drops the killed mux within the hold time and no connection breaks; without it, connections break', async () => {
    const withSync = await killScenario(true);
    const without = await killScenario(false);
    // BIRD dies with the daemon, so the session closes at once (well inside the 3 s hold time).
    expect(withSync.withdrawnMs).toBeGreaterThanOrEqual(0);
    expect(withSync.withdrawnMs).toBeLessThan(3000);
    expect(withSync.viaMux2, 'connections that reached the killed mux').toBeGreaterThan(0);
    expect(withSync.broken, JSON.stringify(withSync.reasons)).toBe(0);
    // The baseline: random scheduling on the survivors moves most of mux2's flows.
    expect(without.viaMux2).toBeGreaterThan(0);
    expect(without.broken, 'sync off: connections of the killed mux broken').toBeGreaterThan(0);
  }, 200_000);
});
