// runAgent's lifecycle with a fake native agent and a recording fake system: what it
// configures, in which order, and that everything it added is removed on every way out.
import { describe, expect, it } from 'vitest';

import { runAgent, type AgentDeps, type AgentSettings, type NativeAgent, type SystemOps } from '../../src/agent/index.js';
import { runAgentCommand } from '../../src/cli/commands/agent.js';
import type { AgentCounters, NativeAgentOptions } from '../../src/agent/types.js';
import type { LinkAddress } from '../../src/net/links.js';

const settings: AgentSettings = {
  interface: 'eth0',
  tun: 'l4tun0',
  vips: ['192.0.2.10', '2001:db8::10'],
  addresses: { ipv4: '10.1.0.1' },
  guePorts: [6080],
  greKey: 7,
  statsIntervalSeconds: 0,
};

function counters(): AgentCounters {
  return {
    rxFrames: 3,
    rxBytes: 300,
    rxTruncated: 0,
    rxErrors: 0,
    kernelDrops: 0,
    decapsulated: 2,
    tunPackets: 2,
    tunBytes: 200,
    tunErrors: 0,
    tunDiscarded: 0,
    checksumsFinalized: 0,
    status: { decapsulated: 2, gre_wrong_key: 1, not_ip: 0 },
    encap: { ipip: 2, gre: 0, gue: 0 },
    tunnels: { '4in4': 2, '6in6': 0, '4in6': 0, '6in4': 0 },
  };
}

class FakeAgent implements NativeAgent {
  started = 0;
  stopped = 0;
  alive = false;
  failure: string | null = null;
  constructor(
    readonly options: NativeAgentOptions,
    private readonly startError?: string,
  ) {}
  start(): void {
    if (this.startError !== undefined) throw new Error(this.startError);
    this.started++;
    this.alive = true;
  }
  stop(): void {
    this.stopped++;
    this.alive = false;
  }
  running(): boolean {
    return this.alive;
  }
  error(): string | null {
    return this.failure;
  }
  tunName(): string {
    return this.options.tun;
  }
  counters(): AgentCounters {
    return counters();
  }
}

class FakeSystem implements SystemOps {
  calls: string[] = [];
  sysctls = new Map<string, string>([
    ['net/ipv4/conf/eth0/arp_ignore', '0'],
    ['net/ipv4/conf/eth0/arp_announce', '2'],
    ['net/ipv6/conf/l4tun0/disable_ipv6', '1'],
  ]);
  failOn?: string;
  onLink: LinkAddress[] = [
    { family: 'ipv4', address: '10.1.0.1', prefixLength: 24, scope: 'global' },
    { family: 'ipv6', address: 'fe80::1', prefixLength: 64, scope: 'link' },
  ];
  async interfaceAddresses(name: string): Promise<LinkAddress[]> {
    if (name !== 'eth0') throw new Error(`ip -j addr show dev ${name}: Device "${name}" does not exist.`);
    return this.onLink;
  }
  async ip(args: string[]): Promise<void> {
    const call = `ip ${args.join(' ')}`;
    this.calls.push(call);
    if (this.failOn !== undefined && call.includes(this.failOn)) throw new Error(`${call}: RTNETLINK answers: Permission denied`);
  }
  async readSysctl(key: string): Promise<string | undefined> {
    return this.sysctls.get(key);
  }
  async writeSysctl(key: string, value: string): Promise<void> {
    this.calls.push(`sysctl ${key}=${value}`);
    if (this.failOn !== undefined && key.includes(this.failOn)) throw new Error(`${key}: read-only file system`);
    this.sysctls.set(key, value);
  }
}

function harness(opts: { startError?: string } = {}) {
  const system = new FakeSystem();
  const agents: FakeAgent[] = [];
  let stop: (signal: string) => void = () => undefined;
  let disposed = 0;
  const deps: AgentDeps = {
    createAgent: (o) => {
      const a = new FakeAgent(o, opts.startError);
      agents.push(a);
      return a;
    },
    system,
    stopSignal: () => ({
      promise: new Promise<string>((r) => {
        stop = r;
      }),
      dispose: () => {
        disposed++;
      },
    }),
    now: () => new Date('2026-01-02T03:04:05.000Z'),
    healthIntervalMs: 5,
  };
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  return { system, agents, deps, io, out, err, stop: (s: string) => stop(s), disposed: () => disposed };
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));
const events = (lines: string[]) => lines.map((l) => (JSON.parse(l) as { event: string }).event);

describe('runAgent', () => {
  it('starts, configures, logs JSON lines, and undoes everything on SIGTERM', async () => {
    const h = harness();
    const done = runAgent(settings, h.io, h.deps);
    await tick();
    expect(h.agents).toHaveLength(1);
    const agent = h.agents[0]!;
    expect(agent.options).toEqual({
      interface: 'eth0',
      tun: 'l4tun0',
      addresses: { ipv4: '10.1.0.1' },
      // By default the backend's on-link prefix: the muxes (or their gateway) are there.
      muxSources: ['10.1.0.0/24'],
      vips: ['192.0.2.10', '2001:db8::10'],
      guePorts: [6080],
      greKey: 7,
      suppressIcmp: true,
    });
    expect(agent.started).toBe(1);
    // ARP first (before any VIP exists), then the TUN device's settings, then the VIPs.
    expect(h.system.calls).toEqual([
      'sysctl net/ipv6/conf/l4tun0/disable_ipv6=0',
      'sysctl net/ipv4/conf/eth0/arp_ignore=1',
      'sysctl net/ipv4/conf/l4tun0/rp_filter=2',
      'ip addr replace 192.0.2.10/32 dev l4tun0',
      'ip -6 addr replace 2001:db8::10/128 dev l4tun0 nodad',
    ]);
    const started = JSON.parse(h.out[0]!) as Record<string, unknown>;
    expect(started).toMatchObject({
      time: '2026-01-02T03:04:05.000Z',
      level: 'info',
      event: 'agent.started',
      tun: 'l4tun0',
      vips: settings.vips,
      greKey: 7,
      icmpSuppression: 'sink sockets',
    });
    expect(started['changes']).toContain('net.ipv4.conf.eth0.arp_ignore=1 (was 0)');

    h.system.calls = [];
    h.stop('SIGTERM');
    expect(await done).toBe(0);
    expect(agent.stopped).toBe(1);
    expect(h.disposed()).toBe(1);
    // Newest first; arp_announce was already 2 and is left alone.
    expect(h.system.calls).toEqual([
      'ip -6 addr del 2001:db8::10/128 dev l4tun0',
      'ip addr del 192.0.2.10/32 dev l4tun0',
      'sysctl net/ipv4/conf/eth0/arp_ignore=0',
    ]);
    expect(events(h.out)).toEqual(['agent.started', 'agent.stopped']);
    const stopped = JSON.parse(h.out[1]!) as { signal: string; counters: { status: Record<string, number> } };
    expect(stopped.signal).toBe('SIGTERM');
    expect(stopped.counters.status).toEqual({ decapsulated: 2, gre_wrong_key: 1 });
    expect(h.err).toEqual([]);
  });

  it('reports a native start failure and configures nothing', async () => {
    const h = harness({ startError: 'agent: interface eth0 not found in this network namespace: No such device' });
    expect(await runAgent(settings, h.io, h.deps)).toBe(1);
    expect(h.system.calls).toEqual([]);
    expect(JSON.parse(h.err[0]!)).toMatchObject({ level: 'error', event: 'agent.start_failed', error: expect.stringContaining('No such device') });
  });

  it('undoes a half-done configuration and stops the native agent', async () => {
    const h = harness();
    h.system.failOn = '2001:db8::10';
    expect(await runAgent(settings, h.io, h.deps)).toBe(1);
    expect(h.agents[0]!.stopped).toBe(1);
    expect(h.system.calls.slice(-2)).toEqual(['ip addr del 192.0.2.10/32 dev l4tun0', 'sysctl net/ipv4/conf/eth0/arp_ignore=0']);
    expect(JSON.parse(h.err[0]!)).toMatchObject({ event: 'agent.configure_failed', error: expect.stringContaining('Permission denied') });
  });

  it('exits 1 and cleans up when the packet loop dies', async () => {
    const h = harness();
    const done = runAgent(settings, h.io, h.deps);
    await tick();
    const agent = h.agents[0]!;
    agent.failure = 'interface eth0 is gone (Network is down)';
    agent.alive = false;
    expect(await done).toBe(1);
    expect(h.system.calls).toContain('ip addr del 192.0.2.10/32 dev l4tun0');
    expect(JSON.parse(h.err[0]!)).toMatchObject({ event: 'agent.failed', error: 'interface eth0 is gone (Network is down)' });
  });

  it('logs counters periodically when asked', async () => {
    const h = harness();
    const done = runAgent({ ...settings, statsIntervalSeconds: 0.02 }, h.io, h.deps);
    await tick(70);
    h.stop('SIGINT');
    expect(await done).toBe(0);
    expect(events(h.out).filter((e) => e === 'agent.stats').length).toBeGreaterThanOrEqual(1);
  });

  it('takes --mux-source prefixes as given, and refuses to guess when the address has no on-link prefix', async () => {
    const h = harness();
    const done = runAgent({ ...settings, muxSources: ['10.201.0.0/16'] }, h.io, h.deps);
    await tick();
    expect(h.agents[0]!.options.muxSources).toEqual(['10.201.0.0/16']);
    expect(JSON.parse(h.out[0]!)).toMatchObject({ muxSources: ['10.201.0.0/16'], muxSourcesFrom: '--mux-source' });
    h.stop('SIGTERM');
    expect(await done).toBe(0);

    const lone = harness();
    lone.system.onLink = [{ family: 'ipv4', address: '10.1.0.1', prefixLength: 32, scope: 'global' }];
    expect(await runAgent(settings, lone.io, lone.deps)).toBe(1);
    expect(lone.agents).toHaveLength(0);
    expect(JSON.parse(lone.err[0]!)).toMatchObject({ event: 'agent.start_failed', error: expect.stringContaining('--mux-source is required: 10.1.0.1 is a host address (/32) on eth0') });
  });

  it('refuses bad options before touching anything (command level)', async () => {
    const h = harness();
    expect(await runAgentCommand({ interface: 'eth0', vip: ['x'], address: ['10.1.0.1'] }, h.io, h.deps)).toBe(1);
    expect(h.err).toEqual(['l4mux agent: --vip x: not an IPv4 or IPv6 address']);
    expect(h.agents).toHaveLength(0);
  });
});
