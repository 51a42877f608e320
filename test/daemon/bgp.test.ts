// The BGP service in the daemon, with fake engines and a recording stand-in for BIRD: the VIPs
// are announced once forwarding runs, follow `l4mux backend`, are withdrawn before the engines
// stop, `l4mux drain` withdraws, waits, refuses reloads meanwhile and stops; a bad bgp reload
// changes nothing; a BIRD that cannot start is a startup error that undoes everything.
import { describe, expect, it } from 'vitest';

import { sendControl } from '../../src/api/client.js';
import type { BirdReply } from '../../src/bgp/bird-control.js';
import type { BirdProcessStatus } from '../../src/bgp/bird-process.js';
import type { BirdLike } from '../../src/bgp/speaker.js';
import { Daemon, runDaemon } from '../../src/daemon/index.js';
import { daemonConfig, harness, type Json } from './harness.js';

class RecordingBird implements BirdLike {
  readonly configFile = '/nonexistent/bird.conf';
  readonly events: string[] = [];
  configs: string[] = [];
  running = false;
  constructor(private readonly failStart = false) {}
  async start(text: string): Promise<void> {
    if (this.failStart) throw new Error('BIRD did not start: exited with 1');
    this.running = true;
    this.configs.push(text);
    this.events.push(`start ${this.announced().join(',')}`);
  }
  async check(text: string): Promise<string | null> {
    return text.includes('as 666;') ? 'line 1: refused for the test' : null;
  }
  async configure(text: string): Promise<void> {
    this.configs.push(text);
    this.events.push(`configure ${this.announced().join(',')}`);
  }
  async stop(): Promise<void> {
    this.running = false;
    this.events.push('stop');
  }
  async command(): Promise<BirdReply> {
    return { code: 0, ok: true, lines: [] };
  }
  status(): BirdProcessStatus {
    return { state: this.running ? 'running' : 'stopped', pid: 1, configFile: this.configFile, socket: '', startedAt: null, restarts: 0, lastExit: null, lastError: null };
  }
  announced(): string[] {
    return [...(this.configs[this.configs.length - 1] ?? '').matchAll(/route (\S+) blackhole/g)].map((m) => m[1] as string);
  }
}

function withBgp(): Json {
  const doc = daemonConfig();
  doc['bgp'] = { localAs: 65001, neighbours: [{ name: 'router', address: '10.9.0.1', as: 65000 }], drainSeconds: 0.2 };
  return doc;
}

async function started(bird: RecordingBird, doc = withBgp()): Promise<{ daemon: Daemon; h: ReturnType<typeof harness> }> {
  const h = harness(doc);
  h.deps = { ...h.deps, createBird: () => bird };
  return { daemon: await Daemon.start(h.options, h.deps), h };
}

describe('the BGP service in the daemon', () => {
  it('announces once forwarding runs, follows the pool, and withdraws before the engines stop', async () => {
    const bird = new RecordingBird();
    const { daemon, h } = await started(bird);
    expect(bird.events[0]).toBe('start ');
    expect(bird.announced()).toEqual(['192.0.2.10/32']);
    const control = h.options.controlSocket as string;
    for (const address of ['10.1.0.1', '10.1.0.2']) await sendControl(control, { cmd: 'backend', pool: 'web', address, state: 'offline' });
    await new Promise((r) => setTimeout(r, 50));
    expect(bird.announced()).toEqual([]);
    const status = await sendControl(control, { cmd: 'status' });
    const bgp = status.ok && 'status' in status ? (status.status.services?.['bgp'] as Json) : undefined;
    expect(bgp?.['announcements'][0]).toMatchObject({ prefix: '192.0.2.10/32', announced: false, reason: 'withdrawn: no VIP on this address can be served (web: pool web: no backend takes new flows (2 offline))' });
    await sendControl(control, { cmd: 'backend', pool: 'web', address: '10.1.0.1', state: 'active' });
    await new Promise((r) => setTimeout(r, 50));
    expect(bird.announced()).toEqual(['192.0.2.10/32']);

    const engine = h.engines.get('eth0');
    expect(await daemon.stop()).toBe(0);
    expect(bird.events.slice(-2)).toEqual(['configure ', 'stop']);
    // BIRD was told (withdrawn) before the engine stopped.
    expect(engine?.events.at(-1)).toBe('stop');
    const withdrawAt = h.logs.findIndex((l) => l.msg === 'bgp: withdrawing every VIP: stopping');
    const engineStopAt = h.logs.findIndex((l) => l.msg === 'eth0: forwarding stopped');
    expect(withdrawAt).toBeGreaterThanOrEqual(0);
    expect(withdrawAt).toBeLessThan(engineStopAt);
  });

  it('l4mux drain: withdraws, keeps forwarding for the wait (reloads refused), then stops', async () => {
    const bird = new RecordingBird();
    const { daemon, h } = await started(bird);
    const control = h.options.controlSocket as string;
    const engine = h.engines.get('eth0');
    const drain = sendControl(control, { cmd: 'drain' });
    await h.waitForLog(/^drain: withdrew 192\.0\.2\.10; forwarding for 0\.2 s, then stopping$/);
    expect(bird.announced()).toEqual([]);
    expect(engine?.running).toBe(true);
    expect(await sendControl(control, { cmd: 'reload' })).toEqual({ ok: false, errors: ['l4mux is draining'] });
    expect(await drain).toEqual({ ok: true, withdrawn: ['192.0.2.10'], waitedSeconds: expect.any(Number), stopping: true });
    expect(await daemon.done).toBe(0);
    expect(engine?.running).toBe(false);
    expect(bird.events.at(-1)).toBe('stop');
  });

  it('a reload BIRD refuses changes nothing; a good one reports the bgp changes', async () => {
    const bird = new RecordingBird();
    const { daemon, h } = await started(bird);
    const doc = withBgp();
    doc['bgp'].neighbours[0].as = 666;
    doc['pools'].web.backends.push({ address: '10.1.0.3' });
    h.writeConfig(doc);
    const refused = await sendControl(h.options.controlSocket as string, { cmd: 'reload' });
    expect(refused).toEqual({ ok: false, errors: ['bgp: BIRD refuses the new configuration: line 1: refused for the test'] });
    expect(h.engines.get('eth0')?.configs.length).toBe(1);
    doc['bgp'].neighbours[0].as = 65002;
    h.writeConfig(doc);
    const reloaded = await sendControl(h.options.controlSocket as string, { cmd: 'reload' });
    expect(reloaded.ok && 'changes' in reloaded && reloaded.changes).toContain('bgp: neighbour router changed (its session restarts)');
    expect(bird.configs.at(-1)).toContain('neighbor 10.9.0.1 as 65002;');
    await daemon.stop();
  });

  it('a BIRD that cannot start is a startup error, and nothing stays running', async () => {
    const bird = new RecordingBird(true);
    const h = harness(withBgp());
    h.deps = { ...h.deps, createBird: () => bird };
    expect(await runDaemon(h.options, h.deps)).toBe(1);
    expect(h.printed).toContain('bgp: BIRD did not start: exited with 1');
    expect(h.engines.get('eth0')?.running).toBe(false);
  });
});
