// The memory budget at validation: a map that validates must also fit.
import { describe, expect, it } from 'vitest';

import { check, errorsOf } from './helpers.js';

describe('memory budget', () => {
  it('refuses 4096 VIPs with 1M-entry tables (about 32 GB while a snapshot is replaced), with the reason', () => {
    const r = check((c) => {
      c.node.workers = 2;
      c.node.interfaces = ['eth0'];
      c.vips = Array.from({ length: 4096 }, (_, i) => ({ address: '192.0.2.10', protocol: 'tcp', port: i + 1, pool: 'web', tableSize: 1000003 }));
    });
    const errors = errorsOf(r);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^vips: this configuration needs about 3\d{4} MiB \(Maglev tables 3\d{4} MiB for 4096 VIPs, largest tableSize 1000003; connection tables 36 MiB for 2 workers x 1 interfaces; AF_XDP buffers 128 MiB\), more than the budget of 8192 MiB/);
  }, 30_000);  // validating 4096 VIPs takes a few seconds on a loaded machine

  it('takes node.memoryBudgetMiB, and names it when it is what is exceeded', () => {
    const small = (budget: number) =>
      check((c) => {
        c.node.workers = 1;
        c.node.memoryBudgetMiB = budget;
      });
    expect(small(4096).ok).toBe(true);
    expect(errorsOf(small(64))[0]).toMatch(/^node\.memoryBudgetMiB: this configuration needs about 83 MiB .* more than the budget of 64 MiB/);
  });
});
