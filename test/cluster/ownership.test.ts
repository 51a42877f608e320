// The control plane's copy of the rendezvous hashing (transfers on membership changes) gives
// the same owner and backup as the fast path, for equal and unequal weights and any live set.
import { describe, expect, it } from 'vitest';

import { negLog2Fixed, Ownership } from '../../src/cluster/ownership.js';
import { Dataplane, type DataplaneConfig, defaultConntrack } from '../../src/dataplane/index.js';
import { record } from './records.js';

const IDS = ['mux-a', 'mux-b', 'mux-c', 'mux-d'];

function dataplane(weights: number[], live: boolean[]): Dataplane {
  const dp = new Dataplane(defaultConntrack, { peerFlows: 1024, exportRing: 1024 });
  const config: DataplaneConfig = {
    seed: '0x77',
    sourceMac: '02:00:00:00:00:01',
    gatewayMac: '02:00:00:00:00:fe',
    outerSourceV4: '10.0.0.1',
    outerSourceV6: 'fd00::1',
    vips: [],
    cluster: { selfIndex: 0, seed: '0x1ab0000000c0ffee', redirectPort: 7947, members: IDS.map((id, i) => ({ id, address: `10.0.0.${i + 1}`, weight: weights[i] ?? 1, live: live[i] ?? true })) },
  };
  dp.setConfig(config);
  return dp;
}

describe('ownership', () => {
  for (const [name, weights, live] of [
    ['equal weights, all live', [1, 1, 1, 1], [true, true, true, true]],
    ['equal weights, one dead', [1, 1, 1, 1], [true, false, true, true]],
    ['weights 1 2 3 1, one dead', [1, 2, 3, 1], [true, true, true, false]],
  ] as const) {
    it(`agrees with the fast path: ${name}`, () => {
      const dp = dataplane([...weights], [...live]);
      const ts = new Ownership(0x1ab0000000c0ffeen, IDS.map((id, i) => ({ id, weight: weights[i] ?? 1, live: live[i] ?? true })));
      for (let i = 0; i < 400; i++) {
        const v6 = i % 4 === 3;
        const flow = { client: v6 ? `2001:db8::${i + 1}` : `198.51.100.${i % 250}`, clientPort: 1024 + i * 7, vip: v6 ? '2001:db8::10' : '192.0.2.10', vipPort: i % 2 ? 80 : 443, protocol: i % 5 === 0 ? 17 : 6 };
        const rec = record({ client: flow.client, clientPort: flow.clientPort, vip: flow.vip, vipPort: flow.vipPort, protocol: flow.protocol, backend: '10.1.0.1' });
        expect(ts.owners(rec), JSON.stringify(flow)).toEqual(dp.owners(flow));
      }
    });
  }

  it('scores weights with the fast path\'s integer logarithm: the same known vectors as native/tests/cluster_test.cc', () => {
    const vectors: Array<[bigint, bigint]> = [
      [0x0n, 231928233984n],
      [0x800n, 225120871879n],
      [0xabcdefn, 174270187892n],
      [0x123456789abcdef0n, 16380065493n],
      [0x7fffffffffffffffn, 4294967298n],
      [0x8000000000000000n, 4294967296n],
      [0xdeadbeefcafef00dn, 864062720n],
      [0xffffffffffffffffn, 2n],
    ];
    for (const [d, expected] of vectors) expect(negLog2Fixed(d), d.toString(16)).toBe(expected);
    // Within a few units of 2^-32 of the true -log2(u), u = (2 * (d >> 11) + 1) / 2^54.
    let d = 0x9e3779b97f4a7c15n;
    for (let n = 0; n < 2000; n++) {
      d = (d * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
      const x = Number(((d >> 11n) << 1n) | 1n);
      expect(Math.abs(Number(negLog2Fixed(d)) - (54 - Math.log2(x)) * 2 ** 32)).toBeLessThan(8);
    }
  });
});
