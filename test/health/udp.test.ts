import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createUdpProbe, type UdpProbeOptions } from '../../src/health/index.js';
import { closedPort, udpServer, type Closable } from './support.js';

const text = (s: string): string => Buffer.from(s).toString('hex');

function options(overrides: Partial<UdpProbeOptions> = {}): UdpProbeOptions {
  return { payloadHex: text('ping'), expect: { kind: 'any' }, weightFrom: 'none', ...overrides };
}

describe('UDP probe', () => {
  let server: Closable & { received: () => number };
  beforeAll(async () => {
    server = await udpServer((message) => {
      const m = message.toString();
      if (m === 'ping') return 'pong from server 7';
      if (m === 'binary') return Buffer.from([0x00, 0xca, 0xfe, 0x01]);
      if (m === 'agent') return 'up\nweight=12\n';
      return undefined; // silence
    });
  });
  afterAll(async () => {
    await server.close();
  });
  const target = (): { address: string; port: number } => ({ address: '127.0.0.1', port: server.port });

  it('is up on any reply when nothing is expected', async () => {
    const result = await createUdpProbe(options())(target(), { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: true, detail: `reply of 18 bytes from 127.0.0.1:${server.port}` });
  });

  it('matches a substring, a regular expression or hex bytes', async () => {
    expect((await createUdpProbe(options({ expect: { kind: 'text', text: 'pong' } }))(target(), { timeoutMs: 1000 })).ok).toBe(true);
    expect((await createUdpProbe(options({ expect: { kind: 'regex', source: '^pong .* \\d+$' } }))(target(), { timeoutMs: 1000 })).ok).toBe(true);
    const hex = createUdpProbe(options({ payloadHex: text('binary'), expect: { kind: 'hex', hex: 'cafe' } }));
    expect((await hex(target(), { timeoutMs: 1000 })).ok).toBe(true);
  });

  it('is down on a reply that does not match', async () => {
    const result = await createUdpProbe(options({ expect: { kind: 'text', text: 'PONG' } }))(target(), { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: false, detail: `reply of 18 bytes from 127.0.0.1:${server.port} does not contain "PONG"` });
    const hex = await createUdpProbe(options({ payloadHex: text('binary'), expect: { kind: 'hex', hex: 'beef' } }))(target(), { timeoutMs: 1000 });
    expect(hex).toMatchObject({ ok: false, detail: `reply of 4 bytes from 127.0.0.1:${server.port} does not contain 0xbeef` });
  });

  it('times out when no reply comes', async () => {
    const before = server.received();
    const result = await createUdpProbe(options({ payloadHex: text('hello?') }))(target(), { timeoutMs: 150 });
    expect(result).toMatchObject({ ok: false, detail: `no reply from 127.0.0.1:${server.port} within 150 ms` });
    expect(server.received()).toBe(before + 1);
  });

  it('is down at once on ICMP port unreachable', async () => {
    const port = await closedPort();
    const result = await createUdpProbe(options())({ address: '127.0.0.1', port }, { timeoutMs: 2000 });
    expect(result).toMatchObject({ ok: false, detail: `127.0.0.1:${port}: port unreachable (ECONNREFUSED)` });
    expect(result.latencyMs).toBeLessThan(1000);
  });

  it('reads a weight from the reply', async () => {
    const result = await createUdpProbe(options({ payloadHex: text('agent'), weightFrom: 'body' }))(target(), { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: true, weight: 12 });
  });

  it('works over IPv6', async () => {
    const v6 = await udpServer(() => 'pong', '::1');
    try {
      const result = await createUdpProbe(options({ expect: { kind: 'text', text: 'pong' } }))({ address: '::1', port: v6.port }, { timeoutMs: 1000 });
      expect(result).toMatchObject({ ok: true, detail: `reply of 4 bytes from [::1]:${v6.port}` });
    } finally {
      await v6.close();
    }
  });

  it('binds to the local address it is given', async () => {
    const result = await createUdpProbe(options())({ ...target(), localAddress: '127.0.0.3' }, { timeoutMs: 1000 });
    expect(result.ok).toBe(true);
  });
});
