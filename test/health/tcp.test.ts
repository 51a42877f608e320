import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { probeTcp } from '../../src/health/index.js';
import { closedPort, hungListener, tcpServer, type Closable } from './support.js';

describe('TCP connect probe', () => {
  let server: Closable & { accepted: () => number };
  beforeAll(async () => {
    server = await tcpServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('is up when the handshake completes', async () => {
    const before = server.accepted();
    const result = await probeTcp({ address: '127.0.0.1', port: server.port }, { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: true, detail: `connected to 127.0.0.1:${server.port}` });
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    expect(result.latencyMs).toBeLessThan(1000);
    await expect.poll(() => server.accepted()).toBe(before + 1);
  });

  it('works over IPv6', async () => {
    const v6 = await tcpServer('::1');
    try {
      const result = await probeTcp({ address: '::1', port: v6.port }, { timeoutMs: 1000 });
      expect(result).toMatchObject({ ok: true, detail: `connected to [::1]:${v6.port}` });
    } finally {
      await v6.close();
    }
  });

  it('is down when the port is closed (connection refused)', async () => {
    const port = await closedPort();
    const result = await probeTcp({ address: '127.0.0.1', port }, { timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: false, detail: `connect to 127.0.0.1:${port}: ECONNREFUSED` });
  });

  it('times out when SYNs go unanswered', async () => {
    const hung = await hungListener();
    try {
      const result = await probeTcp({ address: '127.0.0.1', port: hung.port }, { timeoutMs: 200 });
      expect(result).toMatchObject({ ok: false, detail: `no connection to 127.0.0.1:${hung.port} within 200 ms` });
      expect(result.latencyMs).toBeGreaterThanOrEqual(195);
      expect(result.latencyMs).toBeLessThan(1000);
    } finally {
      await hung.close();
    }
  });

  it('binds to the local address it is given (as a tunnel route would)', async () => {
    const result = await probeTcp({ address: '127.0.0.1', port: server.port, localAddress: '127.0.0.2' }, { timeoutMs: 1000 });
    expect(result.ok).toBe(true);
  });

  it('stops at once when cancelled', async () => {
    const hung = await hungListener();
    try {
      const controller = new AbortController();
      const pending = probeTcp({ address: '127.0.0.1', port: hung.port }, { timeoutMs: 5000, signal: controller.signal });
      setTimeout(() => controller.abort(), 20);
      const result = await pending;
      expect(result).toMatchObject({ ok: false, detail: 'cancelled' });
      expect(result.latencyMs).toBeLessThan(1000);
    } finally {
      await hung.close();
    }
  });
});
