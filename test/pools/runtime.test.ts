// The pools' runtime state: health, reported weights, operator overrides, the all-down policy.
import { describe, expect, it } from 'vitest';

import { validateConfig } from '../../src/config/index.js';
import type { L4muxConfig } from '../../src/config/types.js';
import { PoolRuntime } from '../../src/pools/runtime.js';

function config(allDown: 'drop' | 'keep-last' = 'drop', weights: number[] = [1, 1, 1]): L4muxConfig {
  const result = validateConfig({
    version: 1,
    node: { seed: '0x1', gatewayMac: '02:00:00:00:00:fe', outerSource: { ipv4: '10.0.0.1' } },
    pools: { web: { allDown, backends: weights.map((weight, i) => ({ address: `10.1.0.${i + 1}`, weight })) } },
    vips: [{ address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web' }],
  });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

function seen(runtime: PoolRuntime, cfg: L4muxConfig): Array<[string, boolean, number, string]> {
  const view = runtime.view();
  return (cfg.pools['web']?.backends ?? []).map((b) => {
    const r = view('web', b);
    return [b.address, r.healthy, r.weight, r.state];
  });
}

describe('PoolRuntime', () => {
  it('takes health, reported weights and overrides, in that order of precedence for weights', () => {
    const cfg = config();
    const runtime = new PoolRuntime(cfg);
    runtime.setHealth('web/10.1.0.2', 'down');
    runtime.setReportedWeight('web/10.1.0.3', 5);
    expect(seen(runtime, cfg)).toEqual([
      ['10.1.0.1', true, 1, 'active'],
      ['10.1.0.2', false, 1, 'active'],
      ['10.1.0.3', true, 5, 'active'],
    ]);
    expect(runtime.override('web', '10.1.0.3', { weight: 2, state: 'draining' })).toEqual({ ok: true, change: 'pool web: backend 10.1.0.3: state draining, weight 2 (runtime)' });
    expect(seen(runtime, cfg)[2]).toEqual(['10.1.0.3', true, 2, 'draining']);
    expect(runtime.status()['web']?.backends[2]).toMatchObject({ stateSource: 'runtime', weightSource: 'runtime', health: 'unchecked' });
  });

  it('refuses overrides of unknown pools and backends, and bad values', () => {
    const runtime = new PoolRuntime(config());
    expect(runtime.override('db', '10.1.0.1', { state: 'offline' })).toEqual({ ok: false, error: 'there is no pool db' });
    expect(runtime.override('web', '10.1.0.9', { state: 'offline' })).toEqual({ ok: false, error: 'pool web has no backend 10.1.0.9' });
    expect(runtime.override('web', '10.1.0.1', { weight: -1 })).toEqual({ ok: false, error: 'weight: -1 is not an integer in 0..65535 (as in the file)' });
    expect(runtime.override('web', '10.1.0.1', { weight: 65536 })).toEqual({ ok: false, error: 'weight: 65536 is not an integer in 0..65535 (as in the file)' });
  });

  it('drops an override once the file changes that value', () => {
    const runtime = new PoolRuntime(config());
    runtime.override('web', '10.1.0.1', { weight: 9 });
    expect(runtime.setConfig(config('drop', [1, 1, 1]))).toEqual([]);
    expect(runtime.status()['web']?.backends[0]?.weight).toBe(9);
    expect(runtime.setConfig(config('drop', [4, 1, 1]))).toEqual(['pool web: backend 10.1.0.1: the file now sets weight 4; the runtime weight override is dropped']);
    expect(runtime.status()['web']?.backends[0]).toMatchObject({ weight: 4, weightSource: 'config' });
  });

  it('all down with drop: nobody serves, the episode is counted', () => {
    const cfg = config('drop');
    const runtime = new PoolRuntime(cfg);
    for (const b of [1, 2, 3]) runtime.setHealth(`web/10.1.0.${b}`, 'down');
    expect(seen(runtime, cfg).map(([, healthy]) => healthy)).toEqual([false, false, false]);
    expect(runtime.status()['web']).toMatchObject({ allDown: true, allDownEpisodes: 1, servingLastHealthy: [] });
    expect(runtime.takeAllDownChanges()).toEqual([{ pool: 'web', to: 'down', policy: 'drop' }]);
    runtime.setHealth('web/10.1.0.2', 'up');
    expect(runtime.status()['web']).toMatchObject({ allDown: false, allDownEpisodes: 1 });
    expect(runtime.takeAllDownChanges()).toEqual([{ pool: 'web', to: 'up', policy: 'drop' }]);
  });

  it('all down with keep-last: the last backends up keep taking flows', () => {
    const cfg = config('keep-last');
    const runtime = new PoolRuntime(cfg);
    runtime.setHealth('web/10.1.0.1', 'down');
    runtime.setHealth('web/10.1.0.2', 'down');
    runtime.setHealth('web/10.1.0.3', 'down');  // 10.1.0.3 was the last one up
    expect(seen(runtime, cfg).map(([, healthy]) => healthy)).toEqual([false, false, true]);
    expect(runtime.status()['web']).toMatchObject({ allDown: true, servingLastHealthy: ['10.1.0.3'] });
  });
});
