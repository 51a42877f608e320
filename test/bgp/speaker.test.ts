// The speaker's decisions with a recording stand-in for BIRD: what each input (pools, the
// forwarding engine, readiness gates, drain/stop) does to the configuration BIRD is given, and
// the parsing of BIRD's control-socket replies (text as BIRD 2.0.12 sends it).
import pino from 'pino';
import { describe, expect, it } from 'vitest';

import { parseBfdSessions, parseProtocols, parseReplyLines, type BirdReply } from '../../src/bgp/bird-control.js';
import type { BirdProcessStatus } from '../../src/bgp/bird-process.js';
import { vipEligibility } from '../../src/bgp/eligibility.js';
import { BgpSpeaker, type BirdLike } from '../../src/bgp/speaker.js';
import type { BgpConfig } from '../../src/bgp/types.js';
import { parseConfig } from '../../src/config/index.js';
import { PoolRuntime } from '../../src/pools/runtime.js';

const SHOW_PROTOCOLS = [
  '0001 BIRD 2.0.12 ready.',
  '2002-Name       Proto      Table      State  Since         Info',
  '1002-device1    Device     ---        up     16:45:49.580  ',
  '1002-router_v4  BGP        ---        up     16:45:49.982  Established   ',
  '1006-  BGP state:          Established',
  '     Neighbor address: 10.9.0.1',
  '     Neighbor AS:      65000',
  '   Channel ipv4',
  '     Routes:         0 imported, 1 exported, 0 preferred',
  ' ',
  '1002-router_v6  BGP        ---        start  16:45:34.302  Active        Socket: Connection refused',
  '1006-  BGP state:          Active',
  '     Neighbor address: fd00::1',
  '     Neighbor AS:      65000',
  '     Last error:       Socket: Connection refused',
  ' ',
  '0000 ',
  '',
].join('\n');

function reply(text: string): BirdReply {
  const greeting = parseReplyLines(text);
  const body = parseReplyLines(greeting.rest);
  const last = body.lines[body.lines.length - 1];
  return { code: last?.code ?? 0, ok: true, lines: body.lines };
}

describe("BIRD's control-socket replies", () => {
  it('splits lines by code, continuation and final line', () => {
    const parsed = parseReplyLines('0002-Reading configuration from m.conf\n0003 Reconfigured\n0001 next');
    expect(parsed.final).toBe(true);
    expect(parsed.lines).toEqual([
      { code: 2, text: 'Reading configuration from m.conf' },
      { code: 3, text: 'Reconfigured' },
    ]);
    expect(parsed.rest).toBe('0001 next');
  });

  it('reads BFD session states by neighbour address', () => {
    const text = [
      '0001 BIRD 2.0.12 ready.',
      '1020-l4mux_bfd:',
      '     IP address                Interface  State      Since         Interval  Timeout',
      '     10.201.2.1                eth0       Up         18:20:01.123    0.100    0.300',
      '     FD00:201:2::1             eth0       Down       18:20:01.123    1.000    0.000',
      '0000 ',
      '',
    ].join('\n');
    expect([...parseBfdSessions(reply(text))]).toEqual([
      ['10.201.2.1', 'Up'],
      ['fd00:201:2::1', 'Down'],
    ]);
  });

  it('reads session states, errors and exported routes from show protocols all', () => {
    const protocols = parseProtocols(reply(SHOW_PROTOCOLS));
    expect(protocols.map((p) => [p.name, p.proto, p.state])).toEqual([
      ['device1', 'Device', 'up'],
      ['router_v4', 'BGP', 'up'],
      ['router_v6', 'BGP', 'start'],
    ]);
    expect(protocols[1]).toMatchObject({ bgpState: 'Established', neighborAddress: '10.9.0.1', neighborAs: 65000, routes: { imported: 0, exported: 1 } });
    expect(protocols[2]).toMatchObject({ bgpState: 'Active', info: 'Active        Socket: Connection refused', lastError: 'Socket: Connection refused' });
  });
});

class RecordingBird implements BirdLike {
  readonly configFile = '/nonexistent/bird.conf';
  configs: string[] = [];
  running = false;
  async start(text: string): Promise<void> {
    this.running = true;
    this.configs.push(text);
  }
  async check(): Promise<string | null> {
    return null;
  }
  /** Makes the next configure calls fail (one per entry). */
  failNext: string[] = [];
  async configure(text: string): Promise<void> {
    const failure = this.failNext.shift();
    if (failure !== undefined) throw new Error(failure);
    if (this.configs[this.configs.length - 1] !== text) this.configs.push(text);
  }
  async stop(): Promise<void> {
    this.running = false;
  }
  async command(): Promise<BirdReply> {
    return reply(SHOW_PROTOCOLS);
  }
  status(): BirdProcessStatus {
    return { state: this.running ? 'running' : 'stopped', pid: 1, configFile: this.configFile, socket: '', startedAt: null, restarts: 0, lastExit: null, lastError: null };
  }
  /** The prefixes the newest configuration announces. */
  announced(): string[] {
    return [...(this.configs[this.configs.length - 1] ?? '').matchAll(/route (\S+) blackhole/g)].map((m) => m[1] as string);
  }
}

const CONFIG = {
  version: 1,
  node: { seed: '0x1', gatewayMac: '02:00:00:00:00:fe', outerSource: { ipv4: '10.0.0.1', ipv6: 'fd00::1' } },
  pools: {
    web: { backends: [{ address: '10.1.0.1' }, { address: '10.1.0.2', weight: 0 }] },
    last: { allDown: 'keep-last', backends: [{ address: '10.1.0.3' }] },
    web6: { backends: [{ address: 'fd00::11' }] },
  },
  vips: [
    { name: 'http', address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web' },
    { name: 'dns', address: '192.0.2.20', protocol: 'udp', port: 53, pool: 'last' },
    { name: 'http6', address: '2001:db8::10', protocol: 'tcp', port: 80, pool: 'web6' },
  ],
  bgp: { localAs: 65001, neighbours: [{ name: 'router_v4', address: '10.9.0.1', as: 65000 }, { name: 'router_v6', address: 'fd00::fe', as: 65000 }] },
};

async function setup(): Promise<{ speaker: BgpSpeaker; bird: RecordingBird; pools: PoolRuntime; update: (running?: boolean) => Promise<void> }> {
  const result = parseConfig(JSON.stringify(CONFIG));
  if (!result.ok) throw new Error(result.errors.join('\n'));
  const config = result.config;
  const bird = new RecordingBird();
  const speaker = await BgpSpeaker.start(config.bgp as BgpConfig, { logger: pino({ level: 'silent' }), createBird: () => bird, pollIntervalMs: 60_000 });
  const pools = new PoolRuntime(config);
  const update = (running = true): Promise<void> =>
    speaker.update(vipEligibility(config, pools.status(), running ? { running: true, reason: 'forwarding on eth0' } : { running: false, reason: 'the forwarding engine is not running' }));
  return { speaker, bird, pools, update };
}

describe('the speaker', () => {
  it('starts BIRD with nothing announced, then announces what can be served', async () => {
    const { speaker, bird, update } = await setup();
    expect(bird.announced()).toEqual([]);
    await update();
    expect(bird.announced()).toEqual(['192.0.2.10/32', '192.0.2.20/32', '2001:db8::10/128']);
    const status = speaker.status();
    expect(status.announcements.find((a) => a.prefix === '192.0.2.10/32')).toMatchObject({ announced: true, reason: 'announced: http: pool web: 1 of 2 backends take new flows' });
    await speaker.stop();
  });

  it('withdraws an address whose pool has no backend taking new flows, and announces it again on recovery', async () => {
    const { speaker, bird, pools, update } = await setup();
    await update();
    pools.setHealth('web/10.1.0.1', 'down');
    await update();
    expect(bird.announced()).toEqual(['192.0.2.20/32', '2001:db8::10/128']);
    expect(speaker.status().announcements[0]?.reason).toBe('withdrawn: no VIP on this address can be served (http: pool web: no backend takes new flows (1 down, 1 weight 0))');
    pools.setHealth('web/10.1.0.1', 'up');
    pools.override('web', '10.1.0.1', { state: 'draining' });
    await update();
    expect(bird.announced()).not.toContain('192.0.2.10/32');
    pools.override('web', '10.1.0.1', { state: 'active' });
    await update();
    expect(bird.announced()).toContain('192.0.2.10/32');
    await speaker.stop();
  });

  it('keeps an all-down keep-last pool announced', async () => {
    const { speaker, bird, pools, update } = await setup();
    pools.setHealth('last/10.1.0.3', 'down');
    await update();
    expect(bird.announced()).toContain('192.0.2.20/32');
    expect(speaker.status().announcements.find((a) => a.address === '192.0.2.20')?.reason).toBe('announced: dns: pool last: every backend is down; allDown keep-last sends to 10.1.0.3');
    await speaker.stop();
  });

  it('withdraws everything while forwarding is down, while a gate is closed, and for good on drain', async () => {
    const { speaker, bird, update } = await setup();
    await update(false);
    expect(bird.announced()).toEqual([]);
    expect(speaker.status().announcements[0]?.reason).toContain('the forwarding engine is not running');
    await speaker.setGate('cluster', false, 'flow transfer in progress');
    await update(true);
    expect(bird.announced()).toEqual([]);
    expect(speaker.status().announcements[0]?.reason).toBe('withdrawn: waiting for cluster (flow transfer in progress)');
    await speaker.setGate('cluster', true, 'transfer done');
    expect(bird.announced()).toHaveLength(3);
    await speaker.withdrawAll('draining (l4mux drain)');
    expect(bird.announced()).toEqual([]);
    await update(true);
    expect(bird.announced()).toEqual([]);
    expect(speaker.status().withdrawnBecause).toBe('draining (l4mux drain)');
    await speaker.stop();
    expect(bird.running).toBe(false);
  });

  it('shows what BIRD runs when a configure fails, and tries again', async () => {
    const { speaker, bird, update } = await setup();
    bird.failNext.push('BIRD did not answer "configure" within 10000 ms');
    await update();
    expect(bird.announced()).toEqual([]);
    expect(speaker.status()).toMatchObject({ lastApplyError: 'BIRD did not answer "configure" within 10000 ms' });
    expect(speaker.status().announcements.every((a) => !a.announced)).toBe(true);
    await new Promise((r) => setTimeout(r, 1200));
    expect(bird.announced()).toEqual(['192.0.2.10/32', '192.0.2.20/32', '2001:db8::10/128']);
    expect(speaker.status().lastApplyError).toBeNull();
    await speaker.stop();
  });
});
