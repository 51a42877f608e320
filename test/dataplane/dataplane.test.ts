// The addon through its TypeScript wrapper: configuration in, packets through, counters out.
import { describe, expect, it } from 'vitest';

import { Dataplane, type DataplaneConfig, dropReasons } from '../../src/dataplane/index.js';
import { ethernet, flowPacket, icmpEcho, ipv4, TCP } from '../support/frames.js';

function config(overrides: Partial<DataplaneConfig> = {}): DataplaneConfig {
  return {
    seed: '0x1234',
    sourceMac: '02:00:00:00:00:01',
    gatewayMac: '02:00:00:00:00:fe',
    outerSourceV4: '10.0.0.1',
    outerSourceV6: 'fd00::1',
    vips: [
      {
        name: 'web',
        address: '192.0.2.10',
        protocol: 6,
        port: 80,
        encap: 'ipip',
        guePort: 6080,
        hashFields: '5-tuple',
        tableSize: 65537,
        icmpEcho: true,
        backends: [
          { address: '10.1.0.1', weight: 1 },
          { address: '10.1.0.2', weight: 1 },
          { address: '10.1.0.3', weight: 2 },
        ],
      },
    ],
    ...overrides,
  };
}

describe('Dataplane', () => {
  it('names every drop reason', () => {
    const reasons = dropReasons();
    expect(reasons).toContain('no_vip_for_port');
    expect(reasons).toContain('ipv4_bad_total_length');
    expect(new Set(reasons).size).toBe(reasons.length);
  });

  it('encapsulates, passes and drops, and counts each', () => {
    const dp = new Dataplane();
    dp.setConfig(config());
    const results = dp.process([
      { frame: flowPacket('tcp', '198.51.100.1', '192.0.2.10', 40000, 80) },
      { frame: flowPacket('tcp', '198.51.100.1', '203.0.113.1', 40000, 80) },
      { frame: flowPacket('tcp', '198.51.100.1', '192.0.2.10', 40000, 443) },
      { frame: ethernet(ipv4({ src: '198.51.100.1', dst: '192.0.2.10', proto: 1, payload: icmpEcho(1, 1, Buffer.from('x')) })) },
    ]);
    expect(results.map((r) => r.verdict)).toEqual(['tx', 'pass', 'drop', 'tx']);
    expect(results[2]?.reason).toBe('no_vip_for_port');
    const frame = results[0]?.frame;
    expect(frame?.readUInt16BE(12)).toBe(0x0800);
    expect(frame?.[14 + 9]).toBe(4);
    const c = dp.counters();
    expect(c.rx).toBe(4);
    expect(c.tx).toBe(2);
    expect(c.passed).toBe(1);
    expect(c.drops['no_vip_for_port']).toBe(1);
    expect(c.echoReplies).toBe(1);
    expect(c.vips[0]).toMatchObject({ name: 'web', packets: 1, newFlows: 1 });
    expect(c.backends.reduce((n, b) => n + b.packets, 0)).toBe(1);
  });

  it('spreads flows by weight and keeps each flow on its backend', () => {
    const dp = new Dataplane();
    dp.setConfig(config());
    const share = new Map<string, number>();
    const first = new Map<number, string>();
    for (let port = 1024; port < 9024; port++) {
      const [r] = dp.process([{ frame: flowPacket('tcp', '198.51.100.2', '192.0.2.10', port, 80, { flags: TCP.SYN }) }]);
      const backend = r?.frame?.subarray(30, 34).join('.') ?? '';
      share.set(backend, (share.get(backend) ?? 0) + 1);
      first.set(port, backend);
    }
    // Weights 1:1:2 -> 25% / 25% / 50%, within a few percent over 8000 flows.
    expect((share.get('10.1.0.3') ?? 0) / 8000).toBeGreaterThan(0.45);
    expect((share.get('10.1.0.3') ?? 0) / 8000).toBeLessThan(0.55);
    for (const port of [1024, 2000, 5000, 9000]) {
      const [r] = dp.process([{ frame: flowPacket('tcp', '198.51.100.2', '192.0.2.10', port, 80, { flags: TCP.ACK }) }]);
      expect(r?.frame?.subarray(30, 34).join('.')).toBe(first.get(port));
    }
  });

  it('finalizes partial checksums when the receive path says so', () => {
    const dp = new Dataplane();
    dp.setConfig(config());
    const frame = flowPacket('tcp', '198.51.100.1', '192.0.2.10', 40000, 80);
    const good = frame.readUInt16BE(14 + 20 + 16);
    frame.writeUInt16BE(0x1234, 14 + 20 + 16);
    const [r] = dp.process([{ frame, checksumPartial: true }]);
    expect(r?.frame?.readUInt16BE(34 + 20 + 16)).toBe(good);
    expect(dp.counters().checksumsFinalized).toBe(1);
  });

  it('rejects a bad configuration and keeps the previous one', () => {
    const dp = new Dataplane();
    dp.setConfig(config());
    const bad = config();
    bad.vips[0] = { ...bad.vips[0]!, tableSize: 65536 };
    expect(() => dp.setConfig(bad)).toThrow(/VIP "web".*prime/);
    const bad2 = config({ gatewayMac: 'nope' });
    expect(() => dp.setConfig(bad2)).toThrow(/config.gatewayMac/);
    const [r] = dp.process([{ frame: flowPacket('tcp', '198.51.100.1', '192.0.2.10', 40000, 80) }]);
    expect(r?.verdict).toBe('tx');
  });

  it('refuses to process before it has a configuration', () => {
    const dp = new Dataplane();
    expect(() => dp.process([{ frame: flowPacket('tcp', '198.51.100.1', '192.0.2.10', 1, 80) }])).toThrow(/setConfig/);
  });
});
