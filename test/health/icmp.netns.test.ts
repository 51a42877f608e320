// Runs only inside the network namespace icmp.test.ts makes (L4MUX_ICMP_NETNS=1): loopback is
// up, echo requests are ignored, and no other address is routed.
import { describe, expect, it } from 'vitest';

import { probeIcmp } from '../../src/health/index.js';

describe.runIf(process.env['L4MUX_ICMP_NETNS'] === '1')('ICMP echo probe, down cases (own namespace)', () => {
  it('times out when echo requests go unanswered (IPv4)', async () => {
    const result = await probeIcmp({ address: '127.0.0.1' }, { timeoutMs: 200 });
    expect(result).toMatchObject({ ok: false, detail: 'no echo reply from 127.0.0.1 within 200 ms' });
    expect(result.latencyMs).toBeGreaterThanOrEqual(195);
  });

  it('times out when echo requests go unanswered (IPv6)', async () => {
    const result = await probeIcmp({ address: '::1' }, { timeoutMs: 200 });
    expect(result).toMatchObject({ ok: false, detail: 'no echo reply from ::1 within 200 ms' });
  });

  it('is down at once when the destination is unreachable (IPv4)', async () => {
    const result = await probeIcmp({ address: '198.51.100.1' }, { timeoutMs: 2000 });
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/^echo request to 198\.51\.100\.1: (ENETUNREACH|Network is unreachable)$/);
    expect(result.latencyMs).toBeLessThan(1000);
  });

  it('is down at once when the destination is unreachable (IPv6)', async () => {
    const result = await probeIcmp({ address: '2001:db8::1' }, { timeoutMs: 2000 });
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/^echo request to 2001:db8::1: (ENETUNREACH|EHOSTUNREACH|Network is unreachable|No route to host)/);
  });
});
