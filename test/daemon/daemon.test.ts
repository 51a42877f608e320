// The daemon's lifecycle, in-process: start, reloads (SIGHUP and the control socket), next-hop
// changes, status, counters, and a clean stop; fake engines on a modelled host.
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { sendControl } from '../../src/api/client.js';
import type { ReloadResponse, StatusResponse } from '../../src/api/protocol.js';
import { runBackend } from '../../src/cli/commands/backend.js';
import { runReload } from '../../src/cli/commands/reload.js';
import { runStatus } from '../../src/cli/commands/status.js';
import type { CommandIo } from '../../src/cli/io.js';
import { Daemon, INTERFACES_REQUIRED, runDaemon } from '../../src/daemon/index.js';
import type { HealthCheckerLike } from '../../src/pools/supervisor.js';
import type { BackendHealth, HealthCheckSpec } from '../../src/health/types.js';
import { daemonConfig, harness, type Harness, type Json } from './harness.js';

function captureIo(): CommandIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (line) => stdout.push(line), err: (line) => stderr.push(line) };
}

async function started(h: Harness): Promise<Daemon> {
  return Daemon.start(h.options, h.deps);
}

async function stopped(h: Harness, daemon: Daemon): Promise<void> {
  h.signals.emit('SIGTERM');
  expect(await daemon.done).toBe(0);
}

describe('starting', () => {
  it('configures one engine per interface from the file, the interface and the resolved next hop, and starts it', async () => {
    const h = harness();
    const daemon = await started(h);
    try {
      const engine = h.engines.get('eth0');
      expect(engine?.options).toEqual({
        interface: 'eth0',
        workers: 2, // the number of online CPUs
        io: 'auto',
        xdpMode: 'auto',
        conntrack: { maxFlows: 262144, timeouts: { tcpSynSeconds: 30, tcpEstablishedSeconds: 900, tcpClosingSeconds: 30, udpSeconds: 60, otherSeconds: 30, tcpUnprovenSeconds: 10 } },
      });
      expect(engine?.events).toEqual(['prepare', 'publish', 'start']);
      expect(engine?.current).toMatchObject({
        seed: '0x0000000000005eed',
        sourceMac: '02:00:00:00:00:01', // eth0's MAC
        gatewayMac: '02:00:00:00:00:fe', // the router's, resolved by ARP
        mtu: 1500, // eth0's MTU
        outerSourceV4: '10.9.0.2',
        vips: [expect.objectContaining({ name: 'web', backends: [{ address: '10.1.0.1', weight: 1, state: 'active', healthy: true, fallover: [] }, { address: '10.1.0.2', weight: 1, state: 'active', healthy: true, fallover: [] }] })],
      });
      // GRO turned off, the pid file and the control socket in place.
      expect(h.host.features.get('eth0')?.['generic-receive-offload']?.active).toBe(false);
      expect(readFileSync(h.options.pidfile!, 'utf8')).toBe(`${process.pid}\n`);
      expect(existsSync(h.options.controlSocket!)).toBe(true);
      // The I/O mode and why, logged.
      const io = h.logs.find((l) => /^eth0: forwarding with/.test(l.msg));
      expect(io?.msg).toBe('eth0: forwarding with af_xdp (generic XDP), 2 workers: native XDP refused by the driver (fake)');
      expect(io?.['io']).toEqual({ mode: 'af_xdp', xdpMode: 'generic', reason: 'native XDP refused by the driver (fake)', reported: true });
      expect(h.messages()).toContain('l4mux running on eth0: 1 VIP');
      expect(h.logs.every((l) => typeof l.level === 'string' && typeof l['time'] === 'string')).toBe(true);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('passes workers, CPUs, I/O mode and explicit node values through', async () => {
    const doc = daemonConfig();
    Object.assign(doc.node, { io: 'af_packet', workers: 3, cpus: [1], gatewayMac: '02:00:00:00:00:aa', sourceMac: '02:00:00:00:00:bb', mtu: 1400, manageOffloads: false });
    const h = harness(doc);
    const daemon = await started(h);
    try {
      const engine = h.engines.get('eth0')!;
      expect(engine.options).toMatchObject({ workers: 3, cpus: [1], io: 'af_packet' });
      expect(engine.options).not.toHaveProperty('xdpMode');
      expect(engine.current).toMatchObject({ gatewayMac: '02:00:00:00:00:aa', sourceMac: '02:00:00:00:00:bb', mtu: 1400 });
      expect(h.host.probes).toEqual([]); // an explicit gatewayMac: nothing to resolve
      expect(h.host.features.get('eth0')?.['generic-receive-offload']?.active).toBe(true); // not managed
    } finally {
      await stopped(h, daemon);
    }
    expect(h.host.commands.some((c) => c.startsWith('ethtool'))).toBe(false);
  });

  it('warns about a VIP address on a served interface and about a forwarding kernel', async () => {
    const h = harness();
    h.host.links.find((l) => l.name === 'eth0')!.addresses!.push({ family: 'inet', local: '192.0.2.10', prefixlen: 32 });
    h.host.sysctls.set('net.ipv4.ip_forward', '1');
    const daemon = await started(h);
    try {
      expect(h.logs.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
        'VIP address 192.0.2.10 is configured on eth0: the kernel will answer its clients itself (TCP resets); remove it from the interface (backends hold VIPs, the mux does not)',
        'net.ipv4.ip_forward is 1: the kernel forwards the VIP packets l4mux does not take (all of them with AF_PACKET, which only copies; with AF_XDP whenever the mux is down) back toward the router, duplicates or a loop; set net.ipv4.ip_forward=0 on a dedicated mux',
      ]);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('detaches an l4mux XDP program a crashed mux left attached, whatever the I/O mode, and leaves others alone', async () => {
    const doc = daemonConfig();
    doc.node.io = 'af_packet';
    const h = harness(doc);
    h.host.links.find((l) => l.name === 'eth0')!.xdp = { mode: 2, prog: { id: 77, name: 'l4mux_xdp' } };
    const daemon = await started(h);
    try {
      expect(h.host.commands).toContain('ip link set dev eth0 xdpgeneric off');
      expect(h.host.links.find((l) => l.name === 'eth0')!.xdp).toBeUndefined();
      expect(h.logs.some((l) => l.level === 'warn' && /eth0: detached a leftover l4mux XDP program \(id 77, generic\)/.test(String(l.msg)))).toBe(true);
    } finally {
      await stopped(h, daemon);
    }
    const other = harness(doc);
    other.host.links.find((l) => l.name === 'eth0')!.xdp = { mode: 1, prog: { id: 5, name: 'firewall' } };
    const d2 = await started(other);
    try {
      expect(other.host.commands.some((c) => c.includes('xdpdrv off'))).toBe(false);
    } finally {
      await stopped(other, d2);
    }
  });

  it('warns about a forwarding kernel with AF_XDP too (a crashed mux leaves the VIP packets to it)', async () => {
    const doc = daemonConfig();
    doc.node.io = 'af_xdp';
    const h = harness(doc);
    h.host.sysctls.set('net.ipv4.ip_forward', '1');
    const daemon = await started(h);
    try {
      expect(h.logs.filter((l) => l.level === 'warn').map((l) => l.msg)).toContain('net.ipv4.ip_forward is 1: the kernel forwards the VIP packets l4mux does not take (all of them with AF_PACKET, which only copies; with AF_XDP whenever the mux is down) back toward the router, duplicates or a loop; set net.ipv4.ip_forward=0 on a dedicated mux');
    } finally {
      await stopped(h, daemon);
    }
  });

  it('serves the usable interfaces and logs the others', async () => {
    const doc = daemonConfig();
    doc.node.interfaces = ['eth1', 'eth0'];
    doc.node.gatewayMac = '02:00:00:00:00:aa';
    const h = harness(doc);
    h.host.links.push({ name: 'eth1', mac: '02:00:00:00:01:01', up: false });
    const daemon = await started(h);
    try {
      expect([...h.engines.keys()]).toEqual(['eth0']);
      expect(h.logs.find((l) => l.level === 'error')?.msg).toBe('interface eth1 is down (ip link set eth1 up): not served');
    } finally {
      await stopped(h, daemon);
    }
  });
});

describe('refusing to start', () => {
  async function failure(h: Harness): Promise<string[]> {
    expect(await runDaemon(h.options, h.deps)).toBe(1);
    // Whatever was done is undone.
    expect(existsSync(h.options.pidfile!)).toBe(false);
    expect(existsSync(h.options.controlSocket!)).toBe(false);
    expect(h.signals.eventNames()).toEqual([]);
    expect(h.logs.at(-1)?.msg).toBe('l4mux did not start');
    for (const line of h.printed) expect(h.logs.some((l) => l.msg === line && l.level === 'error')).toBe(true);
    return h.printed;
  }

  it('without a usable interface', async () => {
    const doc = daemonConfig();
    doc.node.interfaces = ['eth7', 'lo'];
    expect(await failure(harness(doc))).toEqual([
      'interface eth7 does not exist (did you mean "eth0"?)',
      'interface lo is not an Ethernet interface (link type loopback); l4mux sends Ethernet frames',
      'no usable interface: none of node.interfaces (eth7, lo) can receive VIP traffic',
    ]);
  });

  it('without node.interfaces', async () => {
    const doc = daemonConfig();
    delete doc.node.interfaces;
    expect(await failure(harness(doc))).toEqual([INTERFACES_REQUIRED]);
  });

  it('with an invalid config: every error', async () => {
    const doc = daemonConfig();
    doc.vips[0].address = '300.1.1.1';
    doc.node.workers = 0;
    const h = harness(doc);
    expect(await failure(h)).toEqual([
      'node.workers: 0 is out of range (1..64)',
      'vips[0].address: "300.1.1.1" is not an IPv4 or IPv6 address',
      `${h.configPath}: invalid (2 errors)`,
    ]);
    expect(h.engines.size).toBe(0);
  });

  it('without the capabilities it needs', async () => {
    const h = harness();
    h.privileges = { uid: 1000, effective: 1n << 13n };
    const printed = await failure(h);
    expect(printed).toHaveLength(1);
    expect(printed[0]).toMatch(/^l4mux lacks CAP_NET_ADMIN: live forwarding needs them/);
  });

  it('with CPUs that are not online', async () => {
    const doc = daemonConfig();
    doc.node.cpus = [0, 5, 6, 7];
    expect(await failure(harness(doc))).toEqual(['node.cpus: CPUs 5-7 are not online (online: 0-1)']);
  });

  it('when the next hop does not answer, turning GRO back on', async () => {
    const h = harness();
    h.host.answering.clear();
    expect(await failure(h)).toEqual(['eth0: no ARP answer from next hop 10.9.0.1 (neighbour state none)']);
    expect(h.host.features.get('eth0')?.['generic-receive-offload']?.active).toBe(true);
  });

  it('when an engine cannot start, stopping the others', async () => {
    const doc = daemonConfig();
    doc.node.interfaces = ['eth0', 'eth1'];
    doc.node.gatewayMac = '02:00:00:00:00:aa';
    const h = harness(doc);
    h.host.links.push({ name: 'eth1', mac: '02:00:00:00:01:01' });
    h.setupEngine((e) => {
      if (e.options.interface === 'eth1') e.failStart = 'AF_XDP: cannot attach the XDP program';
    });
    expect(await failure(h)).toEqual(['eth1: cannot start forwarding: AF_XDP: cannot attach the XDP program']);
    expect(h.engines.get('eth0')?.events).toEqual(['prepare', 'publish', 'start', 'stop']);
    expect(h.host.features.get('eth0')?.['generic-receive-offload']?.active).toBe(true);
  });

  it('when another daemon holds the pid file or the control socket', async () => {
    const first = harness();
    const daemon = await started(first);
    try {
      const second = harness();
      second.options.controlSocket = first.options.controlSocket!;
      expect(await runDaemon(second.options, second.deps)).toBe(1);
      expect(second.printed).toEqual([`control socket ${first.options.controlSocket}: another l4mux is listening on it`]);
      const third = harness();
      third.options.pidfile = first.options.pidfile!;
      // A live process whose command line is l4mux's (pid 1 would be init: not l4mux, not a reason to refuse).
      const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', '/usr/bin/l4mux', 'run'], { stdio: 'ignore' });
      try {
        await new Promise((r) => other.once('spawn', r));
        writeFileSync(first.options.pidfile!, `${other.pid}\n`);
        expect(await runDaemon(third.options, third.deps)).toBe(1);
        expect(third.printed).toEqual([`pid file ${first.options.pidfile}: l4mux is already running as pid ${other.pid}`]);
      } finally {
        other.kill('SIGKILL');
      }
      writeFileSync(first.options.pidfile!, `${process.pid}\n`);
    } finally {
      await stopped(first, daemon);
    }
  });
});

describe('reloading', () => {
  it('SIGHUP with a good file: applies it and logs what changed', async () => {
    const h = harness();
    const daemon = await started(h);
    try {
      const doc = daemonConfig();
      doc.pools.web.backends = [{ address: '10.1.0.1', weight: 0 }, { address: '10.1.0.3' }];
      doc.pools.api = { backends: [{ address: '10.1.0.9' }] };
      doc.vips.push({ name: 'api', address: '192.0.2.11', protocol: 'tcp', port: 443, pool: 'api', tableSize: 251 });
      h.writeConfig(doc);
      const mark = h.logs.length;
      h.signals.emit('SIGHUP');
      await h.waitForLog(/^reload done/, mark);
      expect(h.logs.slice(mark).map((l) => l.msg)).toEqual([
        'reload (SIGHUP)',
        'reload: pool web: backend 10.1.0.1 weight 1 -> 0',
        'reload: pool web: backend 10.1.0.3 added (weight 1)',
        'reload: pool web: backend 10.1.0.2 removed',
        'reload: pool api added (1 backend)',
        'reload: vip api added (192.0.2.11 tcp/443, pool api, ipip)',
        'reload done: 5 changes applied',
      ]);
      const engine = h.engines.get('eth0')!;
      expect(engine.configs).toHaveLength(2);
      expect(engine.current?.vips.map((v) => [v.name, v.backends])).toEqual([
        ['web', [{ address: '10.1.0.1', weight: 0, state: 'active', healthy: true, fallover: [] }, { address: '10.1.0.3', weight: 1, state: 'active', healthy: true, fallover: [] }]],
        ['api', [{ address: '10.1.0.9', weight: 1, state: 'active', healthy: true, fallover: [] }]],
      ]);
      expect(engine.current?.gatewayMac).toBe('02:00:00:00:00:fe');
    } finally {
      await stopped(h, daemon);
    }
  });

  it('SIGHUP with a bad file: changes nothing and logs every error', async () => {
    const h = harness();
    const daemon = await started(h);
    try {
      const doc = daemonConfig();
      doc.vips[0].pool = 'nope';
      doc.node.seed = 'x';
      h.writeConfig(doc);
      const mark = h.logs.length;
      h.signals.emit('SIGHUP');
      await h.waitForLog(/^reload failed: nothing was changed/, mark);
      expect(h.logs.slice(mark).filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
        'reload failed: node.seed: "x" is not a 64-bit number (expected decimal digits, or 0x and hex digits like "0x5eed0000cafef00d")',
        'reload failed: vips[0].pool: pool "nope" is not defined (pools: web)',
        'reload failed: nothing was changed',
      ]);
      expect(h.engines.get('eth0')?.configs).toHaveLength(1);
      h.writeConfig('{ "version": 1, ');
      const syntax = await daemon.reload('test');
      expect(syntax).toEqual({ ok: false, errors: [`${h.configPath}:1:17: unexpected end of file (expected a property name in double quotes; '{' at line 1, column 1 is never closed with '}')`] });
      expect(h.engines.get('eth0')?.configs).toHaveLength(1);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('reports node settings that need a restart, keeps them, and applies the rest', async () => {
    const h = harness();
    const daemon = await started(h);
    try {
      const doc = daemonConfig();
      Object.assign(doc.node, { workers: 1, io: 'af_packet', conntrack: { maxFlows: 1048576 }, interfaces: ['eth0', 'eth1'], mtu: 1400 });
      h.writeConfig(doc);
      const result = await sendControl(h.options.controlSocket!, { cmd: 'reload' });
      expect(result).toEqual({
        ok: true,
        changes: [
          'node.mtu: (unset) -> 1400',
          'node.interfaces: ["eth0"] -> ["eth0","eth1"] (requires restart)',
          'node.io: auto -> af_packet (requires restart)',
          'node.workers: (unset) -> 1 (requires restart)',
          expect.stringMatching(/^node.conntrack: \{"maxFlows":262144,.*\} -> \{"maxFlows":1048576,.*\} \(requires restart\)$/),
        ],
        restartRequired: [expect.stringMatching(/^node.interfaces/), expect.stringMatching(/^node.io/), expect.stringMatching(/^node.workers/), expect.stringMatching(/^node.conntrack/)],
        warnings: [],
      });
      expect(h.engines.get('eth0')?.current?.mtu).toBe(1400);
      expect([...h.engines.keys()]).toEqual(['eth0']);
      const status = (await sendControl(h.options.controlSocket!, { cmd: 'status' })) as StatusResponse;
      expect(status.ok && status.status.restartRequired).toHaveLength(4);
      expect(status.ok && status.status.config).toMatchObject({ io: 'auto', workers: 2, interfaces: ['eth0'] });
      // The same file again: nothing applied, the restart still pending.
      const again = (await sendControl(h.options.controlSocket!, { cmd: 'reload' })) as ReloadResponse;
      expect(again.ok && again.restartRequired).toHaveLength(4);
      expect(h.engines.get('eth0')?.configs).toHaveLength(2);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('resolves the next hop again when the backends change, and refuses a config it cannot reach', async () => {
    const h = harness();
    const daemon = await started(h);
    try {
      const doc = daemonConfig();
      doc.node.outerSource.ipv6 = 'fd09::2';
      doc.pools.web.backends.push({ address: 'fd01::1' });
      h.writeConfig(doc);
      const probes = h.host.probes.length;
      expect(await daemon.reload('test')).toMatchObject({ ok: true });
      expect(h.host.probes.slice(probes).map((p) => p.target)).toEqual(['fd09::1']);
      doc.node.gateway = '10.9.0.77'; // nobody answers
      h.writeConfig(doc);
      expect(await daemon.reload('test')).toEqual({ ok: false, errors: ['eth0: no ARP answer from next hop 10.9.0.77 (neighbour state none)'] });
      expect(h.engines.get('eth0')?.configs).toHaveLength(2);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('builds every engine\'s snapshot before swapping any in: one refusing the build changes nothing', async () => {
    const doc = daemonConfig();
    doc.node.interfaces = ['eth0', 'eth1'];
    doc.node.gatewayMac = '02:00:00:00:00:aa';
    const h = harness(doc);
    h.host.links.push({ name: 'eth1', mac: '02:00:00:00:01:01' });
    h.host.features.set('eth1', { 'generic-receive-offload': { active: false } });
    const daemon = await started(h);
    try {
      const eth0 = h.engines.get('eth0')!;
      const eth1 = h.engines.get('eth1')!;
      const before = eth0.current;
      const next: Json = structuredClone(doc);
      next.pools.web.backends.push({ address: '10.1.0.3' });
      h.writeConfig(next);
      eth1.failNext = ['Maglev table build failed: out of memory'];
      const result = await sendControl(h.options.controlSocket!, { cmd: 'reload' });
      expect(result).toEqual({ ok: false, errors: ['eth1: the dataplane refused the new config: Maglev table build failed: out of memory'] });
      expect(eth0.events).toEqual(['prepare', 'publish', 'start', 'prepare']);
      expect(eth0.current).toEqual(before);
      expect(eth1.events).toEqual(['prepare', 'publish', 'start', 'prepare', 'prepare!']);
      // The next reload of the same file goes through on both.
      expect(await daemon.reload('test')).toMatchObject({ ok: true, changes: ['pool web: backend 10.1.0.3 added (weight 1)'] });
      expect(eth0.current?.vips[0]?.backends).toHaveLength(3);
      expect(eth1.current?.vips[0]?.backends).toHaveLength(3);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('rolls the other engines back when one refuses the swap', async () => {
    const doc = daemonConfig();
    doc.node.interfaces = ['eth0', 'eth1'];
    doc.node.gatewayMac = '02:00:00:00:00:aa';
    const h = harness(doc);
    h.host.links.push({ name: 'eth1', mac: '02:00:00:00:01:01' });
    h.host.features.set('eth1', { 'generic-receive-offload': { active: false } });
    const daemon = await started(h);
    try {
      const eth0 = h.engines.get('eth0')!;
      const eth1 = h.engines.get('eth1')!;
      const before = eth0.current;
      const next: Json = structuredClone(doc);
      next.pools.web.backends.push({ address: '10.1.0.3' });
      h.writeConfig(next);
      eth1.failPublish = ['I/O refused the VIP list'];
      const result = await daemon.reload('test');
      expect(result).toEqual({ ok: false, errors: ['eth1: the dataplane refused the new config: I/O refused the VIP list (eth0 rolled back to the running config)'] });
      expect(eth0.events).toEqual(['prepare', 'publish', 'start', 'prepare', 'publish', 'setConfig']);
      expect(eth0.current).toEqual(before);
      expect(eth1.current?.vips[0]?.backends).toHaveLength(2);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('serializes reloads that arrive together', async () => {
    const h = harness();
    const daemon = await started(h);
    try {
      const doc = daemonConfig();
      doc.pools.web.backends.push({ address: '10.1.0.3' });
      h.writeConfig(doc);
      const results = await Promise.all([daemon.reload('a'), daemon.reload('b'), sendControl(h.options.controlSocket!, { cmd: 'reload' })]);
      expect(results.map((r) => r.ok && 'changes' in r && r.changes.length)).toEqual([1, 0, 0]);
      expect(h.engines.get('eth0')?.configs).toHaveLength(2);
    } finally {
      await stopped(h, daemon);
    }
  });
});

describe('keeping the next hop fresh', () => {
  it('pushes a new snapshot when the router MAC or the link MTU changes', async () => {
    const h = harness();
    h.options.nextHopIntervalMs = 20;
    const daemon = await started(h);
    try {
      const engine = h.engines.get('eth0')!;
      h.host.setNeighbour('eth0', { dst: '10.9.0.1', lladdr: '02:00:00:00:00:fd', state: ['REACHABLE'] });
      await h.waitForLog(/^eth0: next hop or link changed/);
      expect(engine.current?.gatewayMac).toBe('02:00:00:00:00:fd');
      const mark = h.logs.length;
      h.host.links.find((l) => l.name === 'eth0')!.mtu = 9000;
      await h.waitForLog(/^eth0: next hop or link changed/, mark);
      expect(engine.current?.mtu).toBe(9000);
      // A next hop that stops answering: warned once, the last good MAC kept.
      h.host.answering.clear();
      h.host.setNeighbour('eth0', { dst: '10.9.0.1', state: ['FAILED'] });
      await h.waitForLog(/^eth0: next-hop refresh failed, keeping the last good next hop/);
      expect(engine.current?.gatewayMac).toBe('02:00:00:00:00:fd');
    } finally {
      await stopped(h, daemon);
    }
    expect(h.messages().filter((m) => m.startsWith('eth0: next-hop refresh failed'))).toHaveLength(1);
  });
});

describe('the control socket', () => {
  it('answers status with the config summary, interfaces and counters', async () => {
    const h = harness();
    const daemon = await started(h);
    try {
      h.engines.get('eth0')!.packets = 42;
      const response = await sendControl(h.options.controlSocket!, { cmd: 'status' });
      if (!response.ok || !('status' in response)) throw new Error(JSON.stringify(response));
      const { status } = response;
      expect(status).toMatchObject({
        pid: process.pid,
        version: '0.0.0-test',
        configFile: h.configPath,
        lastReload: null,
        restartRequired: [],
        config: {
          seed: '0x0000000000005eed',
          interfaces: ['eth0'],
          io: 'auto',
          workers: 2,
          vips: [{ name: 'web', address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web', encapsulation: 'ipip', scheduler: 'maglev', backends: 2, activeBackends: 2, allDown: false }],
        },
        pools: {
          web: expect.objectContaining({
            allDown: false,
            allDownPolicy: 'drop',
            backends: [expect.objectContaining({ address: '10.1.0.1', state: 'active', health: 'unchecked', healthy: true }), expect.objectContaining({ address: '10.1.0.2' })],
          }),
        },
        totals: { rx: 42, tx: 42, dropped: 0, passed: 0 },
      });
      expect(status.interfaces).toEqual([
        {
          name: 'eth0',
          ifindex: 2,
          mac: '02:00:00:00:00:01',
          mtu: 1500,
          dataplaneMtu: 1500,
          sourceMac: '02:00:00:00:00:01',
          gatewayMac: '02:00:00:00:00:fe',
          nextHop: { source: 'routes', hops: [{ address: '10.9.0.1', mac: '02:00:00:00:00:fe', state: 'REACHABLE', onLink: false }] },
          io: { mode: 'af_xdp', xdpMode: 'generic', reason: 'native XDP refused by the driver (fake)', reported: true },
          workers: 2,
          counters: expect.objectContaining({ rx: 42, io: expect.objectContaining({ rxPackets: 42 }) }),
        },
      ]);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('answers bad requests with an error and keeps the connection usable', async () => {
    const h = harness();
    const daemon = await started(h);
    try {
      const { createConnection } = await import('node:net');
      const socket = createConnection(h.options.controlSocket!);
      socket.setEncoding('utf8');
      let received = '';
      socket.on('data', (d: string) => (received += d));
      socket.write('nonsense\n{"cmd":"shutdown"}\n{"cmd":"status"}\n');
      for (let i = 0; i < 200 && received.split('\n').length < 4; i++) await new Promise((r) => setTimeout(r, 10));
      socket.destroy();
      const lines = received.trim().split('\n').map((l) => JSON.parse(l) as Json);
      expect(lines[0]).toEqual({ ok: false, errors: ['request is not JSON (send one JSON object per line, e.g. {"cmd":"status"})'] });
      expect(lines[1]).toEqual({ ok: false, errors: ['unknown command "shutdown" (commands: reload, status, backend, drain, flow, capture, persistence)'] });
      expect(lines[2]?.['ok']).toBe(true);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('serves `l4mux reload` and `l4mux status`', async () => {
    const h = harness();
    const daemon = await started(h);
    const socket = h.options.controlSocket!;
    try {
      let io = captureIo();
      expect(await runReload(socket, io)).toBe(0);
      expect(io.stdout).toEqual(['reloaded: no changes']);

      const doc = daemonConfig();
      doc.vips[0].tableSize = 257;
      doc.pools.web.backends.push({ address: '10.1.0.3' });
      h.writeConfig(doc);
      io = captureIo();
      expect(await runReload(socket, io)).toBe(0);
      expect(io.stdout).toEqual(['pool web: backend 10.1.0.3 added (weight 1)', 'vip web changed: tableSize 251 -> 257']);
      expect(io.stderr).toEqual([
        'warning: vips[0].tableSize: 257 entries for the 3 backends of pool "web" will spread load unevenly; Maglev recommends at least 100 entries per backend (a prime of at least 300)',
      ]);

      doc.vips[0].address = 'nope';
      h.writeConfig(doc);
      io = captureIo();
      expect(await runReload(socket, io)).toBe(1);
      expect(io.stderr).toEqual(['vips[0].address: "nope" is not an IPv4 or IPv6 address', 'l4mux reload: failed (1 error); the running config is unchanged']);

      io = captureIo();
      expect(await runStatus(socket, io)).toBe(0);
      const status = JSON.parse(io.stdout.join('\n')) as Json;
      expect(status['lastReload']).toMatchObject({ trigger: 'control', ok: false, errors: ['vips[0].address: "nope" is not an IPv4 or IPv6 address'] });
      expect(status['pools'].web.backends).toHaveLength(3);
    } finally {
      await stopped(h, daemon);
    }
    const io = captureIo();
    expect(await runReload(socket, io)).toBe(1);
    expect(io.stderr).toEqual([`l4mux reload: cannot connect to the control socket ${socket}: is l4mux running? (l4mux run --control PATH)`]);
    const statusIo = captureIo();
    expect(await runStatus(join(h.dir, 'missing.sock'), statusIo)).toBe(1);
  });
});

describe('stopping', () => {
  it('on SIGTERM: stops the engines, restores offloads, removes the pid file and the socket, exits 0', async () => {
    const h = harness();
    const daemon = await started(h);
    expect(h.host.features.get('eth0')?.['generic-receive-offload']?.active).toBe(false);
    h.signals.emit('SIGTERM');
    h.signals.emit('SIGTERM'); // a second one while stopping is harmless
    expect(await daemon.done).toBe(0);
    expect(h.engines.get('eth0')?.events).toEqual(['prepare', 'publish', 'start', 'stop']);
    expect(h.host.features.get('eth0')?.['generic-receive-offload']?.active).toBe(true);
    expect(existsSync(h.options.pidfile!)).toBe(false);
    expect(existsSync(h.options.controlSocket!)).toBe(false);
    expect(h.signals.eventNames()).toEqual([]);
    expect(h.messages()).toEqual(expect.arrayContaining(['SIGTERM: stopping', 'already stopping', 'eth0: forwarding stopped', 'eth0: turned generic-receive-offload back on', 'l4mux stopped']));
    expect(h.messages().at(-1)).toBe('l4mux stopped');
  });

  it('on SIGINT too, and refuses reloads once stopping', async () => {
    const h = harness();
    const daemon = await started(h);
    h.signals.emit('SIGINT');
    expect(await daemon.reload('late')).toEqual({ ok: false, errors: ['l4mux is stopping'] });
    expect(await daemon.done).toBe(0);
    expect(h.engines.get('eth0')?.running).toBe(false);
  });

  it('logs the counters periodically, and once more at the end', async () => {
    const h = harness();
    h.options.countersIntervalMs = 20;
    const daemon = await started(h);
    h.engines.get('eth0')!.packets = 1000;
    const line = await h.waitForLog(/^counters$/);
    expect(line['counters']).toMatchObject({ eth0: { rx: 1000, tx: 1000, dropped: 0, drops: {}, io: { rxPackets: 1000 } } });
    await h.waitForLog(/^counters$/, h.logs.indexOf(line) + 1);
    await stopped(h, daemon);
    expect(h.logs.filter((l) => l.msg === 'counters (final)')).toHaveLength(1);
  });
});

describe('pools at runtime', () => {
  /** A health checker the test drives: the daemon's listeners, and the checks it was given. */
  class FakeChecker extends EventEmitter {
    updates: HealthCheckSpec[][] = [];
    update(specs: readonly HealthCheckSpec[]): void {
      this.updates.push([...specs]);
    }
    snapshot(): BackendHealth[] {
      return [];
    }
    async stop(): Promise<void> {}
  }

  function withChecker(h: Harness): FakeChecker {
    const checker = new FakeChecker();
    h.deps.createHealthChecker = () => checker as unknown as HealthCheckerLike;
    return checker;
  }

  const backendsOf = (h: Harness): Array<{ address: string; healthy: boolean; state: string; weight: number }> =>
    h.engines.get('eth0')?.current?.vips[0]?.backends ?? [];

  it('a backend marked down by its check gets a new snapshot at once; back up, another', async () => {
    const doc = daemonConfig();
    doc.pools.web.healthCheck = { kind: 'tcp', interval: 500 };
    const h = harness(doc);
    const checker = withChecker(h);
    const daemon = await started(h);
    try {
      expect(checker.updates[0]?.map((c) => c.key)).toEqual(['web/10.1.0.1', 'web/10.1.0.2']);
      const transition = (address: string, from: string, to: string): void => {
        checker.emit('transition', { backend: `web/${address}`, pool: 'web', address, from, to, reason: 'test', at: Date.now() });
      };
      transition('10.1.0.2', 'up', 'down');
      await h.waitForLog(/backends changed \(backend web\/10\.1\.0\.2 down\): new snapshot applied/);
      expect(backendsOf(h).map((b) => b.healthy)).toEqual([true, false]);
      transition('10.1.0.2', 'down', 'up');
      await h.waitForLog(/backends changed \(backend web\/10\.1\.0\.2 up\)/);
      expect(backendsOf(h).map((b) => b.healthy)).toEqual([true, true]);

      checker.emit('weight', { backend: 'web/10.1.0.1', pool: 'web', address: '10.1.0.1', from: 1, to: 5, reason: 'reported', at: Date.now() });
      await h.waitForLog(/backend web\/10\.1\.0\.1 weight 5/);
      expect(backendsOf(h).map((b) => b.weight)).toEqual([5, 1]);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('every backend down: the pool is all down in status and the error is logged', async () => {
    const doc = daemonConfig();
    doc.pools.web.healthCheck = { kind: 'tcp' };
    const h = harness(doc);
    const checker = withChecker(h);
    const daemon = await started(h);
    try {
      for (const address of ['10.1.0.1', '10.1.0.2']) {
        checker.emit('transition', { backend: `web/${address}`, pool: 'web', address, from: 'up', to: 'down', reason: 'test', at: Date.now() });
      }
      await h.waitForLog(/pool web: every backend is down: its VIPs drop new flows/);
      const status = daemon.status();
      expect(status.pools['web']).toMatchObject({ allDown: true, allDownEpisodes: 1 });
      expect(status.config.vips[0]).toMatchObject({ allDown: true, activeBackends: 0 });
    } finally {
      await stopped(h, daemon);
    }
  });

  it('a reload stuck in its build holds no update: a backend going down and `l4mux backend` reach the engine first; the reload then applies with them', async () => {
    const doc = daemonConfig();
    doc.pools.web.healthCheck = { kind: 'tcp', interval: 500 };
    doc.pools.web.backends.push({ address: '10.1.0.3' });
    const h = harness(doc);
    const checker = withChecker(h);
    const daemon = await started(h);
    try {
      const engine = h.engines.get('eth0')!;
      // The next build of a config with a fourth backend waits until released.
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let holding = false;
      engine.holdPrepare = async (config) => {
        if (config.vips[0]?.backends.length !== 4) return;
        holding = true;
        await held;
      };
      const next: Json = structuredClone(doc);
      next.pools.web.backends.push({ address: '10.1.0.4' });
      h.writeConfig(next);
      let reloaded: ReloadResponse | undefined;
      const reload = daemon.reload('test').then((r) => (reloaded = r));
      for (let i = 0; i < 500 && !holding; i++) await new Promise((r) => setTimeout(r, 10));
      expect(holding).toBe(true);

      checker.emit('transition', { backend: 'web/10.1.0.2', pool: 'web', address: '10.1.0.2', from: 'up', to: 'down', reason: 'test', at: Date.now() });
      await h.waitForLog(/backends changed \(backend web\/10\.1\.0\.2 down\): new snapshot applied/);
      expect(backendsOf(h).map((b) => [b.address, b.healthy])).toEqual([['10.1.0.1', true], ['10.1.0.2', false], ['10.1.0.3', true]]);
      const io = captureIo();
      expect(await runBackend(h.options.controlSocket!, { pool: 'web', address: '10.1.0.3', state: 'draining' }, io)).toBe(0);
      expect(backendsOf(h).map((b) => b.state)).toEqual(['active', 'active', 'draining']);
      expect(reloaded).toBeUndefined();

      release();
      await reload;
      expect(reloaded).toMatchObject({ ok: true, changes: ['pool web: backend 10.1.0.4 added (weight 1)', 'health check web/10.1.0.4 added (tcp)'] });
      // The reload's snapshot carries what happened while it was built.
      expect(backendsOf(h).map((b) => [b.address, b.healthy, b.state])).toEqual([
        ['10.1.0.1', true, 'active'],
        ['10.1.0.2', false, 'active'],
        ['10.1.0.3', true, 'draining'],
        ['10.1.0.4', true, 'active'],
      ]);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('a reload whose build passes the time limit is abandoned, the running config kept; updates and the next reload go through', async () => {
    const doc = daemonConfig();
    doc.pools.web.healthCheck = { kind: 'tcp', interval: 500 };
    const h = harness(doc);
    h.options.reloadTimeoutMs = 300;
    const checker = withChecker(h);
    const daemon = await started(h);
    try {
      const engine = h.engines.get('eth0')!;
      const running = engine.current;
      engine.holdPrepare = async (config) => {
        if (config.vips[0]?.backends.length === 3) await new Promise(() => undefined); // never done
      };
      const next: Json = structuredClone(doc);
      next.pools.web.backends.push({ address: '10.1.0.3' });
      h.writeConfig(next);
      const result = await daemon.reload('test');
      expect(result).toEqual({ ok: false, errors: ['reload abandoned after 0.3 s (building the snapshots took too long); the running config is kept'] });
      expect(engine.current).toEqual(running);
      expect(daemon.status().lastReload).toMatchObject({ ok: false, trigger: 'test' });

      checker.emit('transition', { backend: 'web/10.1.0.1', pool: 'web', address: '10.1.0.1', from: 'up', to: 'down', reason: 'test', at: Date.now() });
      await h.waitForLog(/backends changed \(backend web\/10\.1\.0\.1 down\): new snapshot applied/);
      expect(backendsOf(h).map((b) => b.healthy)).toEqual([false, true]);

      engine.holdPrepare = undefined;
      expect(await daemon.reload('again')).toMatchObject({ ok: true, changes: ['pool web: backend 10.1.0.3 added (weight 1)', 'health check web/10.1.0.3 added (tcp)'] });
      expect(backendsOf(h).map((b) => [b.address, b.healthy])).toEqual([['10.1.0.1', false], ['10.1.0.2', true], ['10.1.0.3', true]]);
    } finally {
      await stopped(h, daemon);
    }
  });

  it('`l4mux backend` drains, takes offline and reweighs a backend at once, and refuses unknown ones', async () => {
    const h = harness();
    const daemon = await started(h);
    const socket = h.options.controlSocket!;
    try {
      let io = captureIo();
      expect(await runBackend(socket, { pool: 'web', address: '10.1.0.2', state: 'draining' }, io)).toBe(0);
      expect(io.stdout).toEqual(['pool web: backend 10.1.0.2: state draining (runtime)']);
      expect(backendsOf(h).map((b) => b.state)).toEqual(['active', 'draining']);
      io = captureIo();
      expect(await runBackend(socket, { pool: 'web', address: '10.1.0.1', state: 'offline', weight: 3 }, io)).toBe(0);
      expect(backendsOf(h)[0]).toMatchObject({ state: 'offline', weight: 3 });
      io = captureIo();
      expect(await runBackend(socket, { pool: 'web', address: '10.9.9.9', state: 'offline' }, io)).toBe(1);
      expect(io.stderr).toEqual(['pool web has no backend 10.9.9.9']);
      expect(daemon.status().pools['web']?.backends[1]).toMatchObject({ state: 'draining', stateSource: 'runtime' });
    } finally {
      await stopped(h, daemon);
    }
  });
});
