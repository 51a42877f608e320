// `l4mux agent` option validation (pure).
import { describe, expect, it } from 'vitest';

import { parseAgentOptions } from '../../src/agent/index.js';

const base = { interface: 'eth0', vip: ['192.0.2.10', '2001:DB8::10'], address: ['10.1.0.1'] };

function errors(input: Parameters<typeof parseAgentOptions>[0]): string[] {
  const r = parseAgentOptions(input);
  return r.ok ? [] : r.errors;
}

describe('parseAgentOptions', () => {
  it('fills defaults and canonicalizes addresses', () => {
    const r = parseAgentOptions({ ...base, address: ['10.1.0.1', 'FD00:1:0::1'] });
    expect(r).toEqual({
      ok: true,
      settings: {
        interface: 'eth0',
        tun: 'l4tun0',
        vips: ['192.0.2.10', '2001:db8::10'],
        addresses: { ipv4: '10.1.0.1', ipv6: 'fd00:1::1' },
        guePorts: [6080],
        statsIntervalSeconds: 60,
      },
    });
  });

  it('takes GUE ports, a GRE key (decimal or hex) and a stats interval', () => {
    const r = parseAgentOptions({ ...base, tun: 'dsr0', guePort: ['6080', '7777'], greKey: '0xdeadbeef', statsInterval: '0' });
    expect(r.ok && r.settings).toMatchObject({ tun: 'dsr0', guePorts: [6080, 7777], greKey: 0xdeadbeef, statsIntervalSeconds: 0 });
    const zero = parseAgentOptions({ ...base, greKey: '0' });
    expect(zero.ok && zero.settings.greKey).toBe(0);
  });

  it('takes --mux-source addresses and prefixes (canonical, host bits cleared) and "any"', () => {
    const r = parseAgentOptions({ ...base, muxSource: ['10.201.7.9/16', '10.0.0.5', 'FD00:201::77/32', '10.201.0.0/16'] });
    expect(r.ok && r.settings.muxSources).toEqual(['10.201.0.0/16', '10.0.0.5/32', 'fd00:201::/32']);
    const any = parseAgentOptions({ ...base, muxSource: ['any'] });
    expect(any.ok && any.settings.muxSources).toEqual(['0.0.0.0/0', '::/0']);
    expect(parseAgentOptions(base).ok && (parseAgentOptions(base) as { settings: { muxSources?: string[] } }).settings.muxSources).toBeUndefined();
    expect(errors({ ...base, muxSource: ['10.0.0.0/33', 'nope/8', '::/-1'] })).toEqual([
      '--mux-source "10.0.0.0/33": the prefix length must be 0-32',
      '--mux-source "nope/8" is not an address or prefix',
      '--mux-source "::/-1": the prefix length must be 0-128',
    ]);
  });

  it('names every problem at once', () => {
    const e = errors({
      interface: 'an-interface-name-too-long',
      tun: 'bad/name',
      vip: ['192.0.2.10', '192.0.2.10', 'nope'],
      address: ['10.1.0.1', '10.1.0.2', 'x'],
      guePort: ['0', '70000', '6080', '6080'],
      greKey: '4294967296',
      statsInterval: '-1',
    });
    expect(e).toEqual([
      '--interface an-interface-name-too-long: interface names have at most 15 bytes',
      '--tun bad/name: not a valid interface name',
      '--vip 192.0.2.10: given twice',
      '--vip nope: not an IPv4 or IPv6 address',
      '--address 10.1.0.2: one IPv4 address only (already 10.1.0.1)',
      '--address x: not an IPv4 or IPv6 address',
      '--gue-port 0: a port 1-65535 is expected',
      '--gue-port 70000: a port 1-65535 is expected',
      '--gue-port 6080: given twice',
      '--gre-key 4294967296: an integer 0-4294967295 is expected',
      '--stats-interval -1: seconds 0-86400 expected',
    ]);
  });

  it('requires VIPs, a tunnel address and distinct names', () => {
    expect(errors({ interface: 'eth0' })).toEqual([
      '--vip: at least one VIP is required',
      "--address: the backend's own tunnel address is required (one IPv4 and/or one IPv6)",
    ]);
    expect(errors({ ...base, tun: 'eth0' })).toEqual(['--tun eth0: must differ from --interface']);
    expect(errors({ ...base, vip: ['10.1.0.1'] })).toEqual([
      "--vip 10.1.0.1: is also the backend's tunnel --address; a VIP is not the tunnel endpoint",
    ]);
    expect(errors({ ...base, guePort: ['1', '2', '3', '4', '5', '6', '7', '8', '9'] })).toEqual(['--gue-port: at most 8 ports']);
    expect(errors({ ...base, greKey: '1.5' })).toEqual(['--gre-key 1.5: an integer 0-4294967295 is expected']);
  });
});
