// `l4mux agent` end to end, as root, in two network namespaces joined by a veth pair:
// the real CLI runs in the backend namespace, real TCP and UDP servers listen on the VIPs,
// and the client namespace plays the mux: it sends encapsulated packets (IPIP 4in4, 6in6,
// 4in6, GRE with key, GUE) built here, independently of the C++ encapsulation, and
// expects the answers to come straight from the VIP (direct server return): a SYN-ACK for
// a SYN, an echo for a datagram. Skipped unless root, with iproute2, python3 and a built CLI
// (dist/, or L4MUX_CLI). Namespaces are uniquely named and always deleted.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ethernet, ipv4, ipv6, TCP, tcp, udp } from '../support/frames.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = process.env['L4MUX_CLI'] ?? join(repo, 'dist', 'cli', 'main.js');
const wire = join(dirname(fileURLToPath(import.meta.url)), 'support', 'wire.py');

function available(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

const isRoot = process.getuid?.() === 0;
const ready =
  isRoot && existsSync('/dev/net/tun') && existsSync(join(dirname(cli), 'commands', 'agent.js')) && available('ip', ['-V']) && available('python3', ['-V']);

const tag = `${process.pid}-${Date.now() % 100000}`;
const CLIENT = `l4agent-ts-c-${tag}`;
const BACKEND = `l4agent-ts-b-${tag}`;
const CLIENT_MAC = '02:78:00:00:00:01';
const BACKEND_MAC = '02:78:00:00:00:02';
const MUX4 = '10.78.0.1';
const MUX6 = 'fd78::1';
const BACKEND4 = '10.78.0.2';
const BACKEND6 = 'fd78::2';
const CLIENT4 = '198.51.100.7';
const CLIENT6 = '2001:db8:c::7';
const VIP4 = '192.0.2.10';
const VIP6 = '2001:db8::10';
// Outside the backend's on-link prefixes: not a mux.
const SPOOF4 = '10.79.0.66';
const SPOOF6 = 'fd79::66';
// How long to wait for an answer that must not come (an answer comes within milliseconds).
const REFUSED_WAIT = 0.5;
const GRE_KEY = 4660;

function sh(args: string[], allowFailure = false): string {
  const r = spawnSync(args[0] ?? '', args.slice(1), { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0 && !allowFailure) throw new Error(`${args.join(' ')}: ${r.stderr || r.error?.message || `status ${r.status}`}`);
  return r.stdout;
}

const inNs = (ns: string, ...args: string[]): string[] => ['ip', 'netns', 'exec', ns, ...args];

function sysctl(ns: string, key: string): string {
  return sh(inNs(ns, 'cat', `/proc/sys/${key}`)).trim();
}

/** ICMP errors the backend kernel sent (per namespace counters). */
function icmpErrors(): Record<string, number> {
  const snmp = sh(inNs(BACKEND, 'cat', '/proc/net/snmp')).split('\n').filter((l) => l.startsWith('Icmp: '));
  const names = (snmp[0] ?? '').split(/\s+/);
  const values = (snmp[1] ?? '').split(/\s+/);
  const out: Record<string, number> = { OutDestUnreachs: Number(values[names.indexOf('OutDestUnreachs')]) };
  for (const line of sh(inNs(BACKEND, 'cat', '/proc/net/snmp6')).split('\n')) {
    const [name, value] = line.split(/\s+/);
    if (name === 'Icmp6OutDestUnreachs' || name === 'Icmp6OutParmProblems') out[name] = Number(value);
  }
  return out;
}

function greHeader(innerIsV6: boolean, key?: number): Buffer {
  const h = Buffer.alloc(key === undefined ? 4 : 8);
  h.writeUInt16BE(key === undefined ? 0 : 0x2000, 0);
  h.writeUInt16BE(innerIsV6 ? 0x86dd : 0x0800, 2);
  if (key !== undefined) h.writeUInt32BE(key, 4);
  return h;
}

type Kind = 'ipip' | 'gre' | 'gue';

/** The mux's frame: Ethernet + outer IP (+ GRE / UDP) + the inner packet. */
function encapsulate(kind: Kind, outerV6: boolean, inner: Buffer, outerSource?: string): Buffer {
  const innerIsV6 = (inner[0] ?? 0) >> 4 === 6;
  const src = outerSource ?? (outerV6 ? MUX6 : MUX4);
  const dst = outerV6 ? BACKEND6 : BACKEND4;
  let proto: number;
  let payload: Buffer;
  switch (kind) {
    case 'ipip':
      proto = innerIsV6 ? 41 : 4;
      payload = inner;
      break;
    case 'gre':
      proto = 47;
      payload = Buffer.concat([greHeader(innerIsV6, GRE_KEY), inner]);
      break;
    case 'gue':
      proto = 17;
      payload = udp(src, dst, 50_000, 6080, inner);
      break;
  }
  const outer = outerV6 ? ipv6({ src, dst, proto, payload }) : ipv4({ src, dst, proto, payload });
  return ethernet(outer, { src: CLIENT_MAC, dst: BACKEND_MAC });
}

interface Reply {
  matched: boolean;
  frame?: string;
}

/** Sends a frame from the client namespace and waits for the matching reply there. */
function exchange(frame: Buffer, match: Record<string, string | number>, seconds = 2): Buffer | undefined {
  const out = sh(inNs(CLIENT, 'python3', wire, 'veth0', frame.toString('hex'), JSON.stringify(match), String(seconds)));
  const reply = JSON.parse(out) as Reply;
  return reply.matched && reply.frame !== undefined ? Buffer.from(reply.frame, 'hex') : undefined;
}

function l4Of(frame: Buffer): Buffer {
  const etype = frame.readUInt16BE(12);
  const ip = frame.subarray(14);
  return etype === 0x0800 ? ip.subarray(((ip[0] ?? 0) & 0x0f) * 4) : ip.subarray(40);
}

interface Running {
  child: ChildProcess;
  lines: string[];
  exit: Promise<number | null>;
}

function start(args: string[]): Running {
  const child = spawn(args[0] ?? '', args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  const lines: string[] = [];
  let partial = '';
  const onData = (chunk: Buffer): void => {
    partial += chunk.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.filter((l) => l !== ''));
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exit };
}

async function waitFor(what: string, r: Running, predicate: (line: string) => boolean, ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const line = r.lines.find(predicate);
    if (line !== undefined) return line;
    if (r.child.exitCode !== null) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`${what} did not happen; output:\n${r.lines.join('\n')}`);
}

const SERVERS = `
const net = require('node:net'), dgram = require('node:dgram');
let pending = 4;
const up = () => { if (--pending === 0) console.log('ready'); };
for (const vip of ['${VIP4}', '${VIP6}']) {
  net.createServer((s) => s.on('data', (d) => s.end(d))).listen(8080, vip, up);
  const u = dgram.createSocket(vip.includes(':') ? 'udp6' : 'udp4');
  u.on('message', (m, from) => u.send(Buffer.concat([Buffer.from('echo '), m]), from.port, from.address));
  u.bind(9090, vip, up);
}
process.on('SIGTERM', () => process.exit(0));
`;

describe.skipIf(!ready)('l4mux agent in network namespaces (root)', () => {
  let agent: Running | undefined;
  let servers: Running | undefined;
  let arpIgnoreBefore = '';

  beforeAll(async () => {
    sh(['ip', 'netns', 'add', CLIENT]);
    sh(['ip', 'netns', 'add', BACKEND]);
    // No duplicate address detection: while the veths' link-local addresses are tentative,
    // neighbour discovery goes unanswered and the first IPv6 exchange can time out.
    for (const ns of [CLIENT, BACKEND]) {
      sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    }
    const c = ['ip', '-n', CLIENT];
    const b = ['ip', '-n', BACKEND];
    // Created in the client namespace with the peer placed straight into the backend one.
    sh([...c, 'link', 'add', 'veth0', 'address', CLIENT_MAC, 'type', 'veth', 'peer', 'name', 'veth0', 'address', BACKEND_MAC, 'netns', BACKEND]);
    for (const ns of [c, b]) {
      sh([...ns, 'link', 'set', 'lo', 'up']);
      sh([...ns, 'link', 'set', 'veth0', 'up']);
    }
    sh([...c, 'addr', 'add', `${MUX4}/24`, 'dev', 'veth0']);
    sh([...c, '-6', 'addr', 'add', `${MUX6}/64`, 'dev', 'veth0', 'nodad']);
    sh([...c, 'addr', 'add', `${CLIENT4}/32`, 'dev', 'lo']);
    sh([...c, '-6', 'addr', 'add', `${CLIENT6}/128`, 'dev', 'lo', 'nodad']);
    sh([...b, 'addr', 'add', `${BACKEND4}/24`, 'dev', 'veth0']);
    sh([...b, '-6', 'addr', 'add', `${BACKEND6}/64`, 'dev', 'veth0', 'nodad']);
    sh([...b, 'route', 'add', '198.51.100.0/24', 'via', MUX4]);
    sh([...b, '-6', 'route', 'add', '2001:db8:c::/64', 'via', MUX6]);
    // Strict reverse-path filtering in the backend namespace: the agent must cope with it.
    sh(inNs(BACKEND, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter'));
    arpIgnoreBefore = sysctl(BACKEND, 'net/ipv4/conf/veth0/arp_ignore');

    agent = start(
      inNs(BACKEND, process.execPath, cli, 'agent', '--interface', 'veth0', '--vip', VIP4, '--vip', VIP6, '--address', BACKEND4,
        '--address', BACKEND6, '--gre-key', String(GRE_KEY), '--stats-interval', '0'),
    );
    await waitFor('agent.started', agent, (l) => l.includes('"agent.started"'));
    servers = start(inNs(BACKEND, process.execPath, '-e', SERVERS));
    await waitFor('servers ready', servers, (l) => l === 'ready');
  }, 40_000);

  afterAll(async () => {
    for (const r of [servers, agent]) {
      if (r !== undefined && r.child.exitCode === null && r.child.pid !== undefined) {
        r.child.kill('SIGKILL');
        await r.exit;
      }
    }
    sh(['ip', 'netns', 'del', CLIENT], true);
    sh(['ip', 'netns', 'del', BACKEND], true);
  }, 20_000);

  it('configured the VIPs on the TUN device and the ARP / rp_filter settings', () => {
    const addrs = sh(['ip', '-n', BACKEND, '-o', 'addr', 'show', 'dev', 'l4tun0']);
    expect(addrs).toContain(`${VIP4}/32`);
    expect(addrs).toContain(`${VIP6}/128`);
    expect(sysctl(BACKEND, 'net/ipv4/conf/l4tun0/rp_filter')).toBe('2');
    expect(Number(sysctl(BACKEND, 'net/ipv4/conf/veth0/arp_ignore'))).toBeGreaterThanOrEqual(1);
  });

  const cases: Array<{ name: string; kind: Kind; outerV6: boolean; innerV6: boolean }> = [
    { name: 'ipip 4in4', kind: 'ipip', outerV6: false, innerV6: false },
    { name: 'ipip 6in6', kind: 'ipip', outerV6: true, innerV6: true },
    { name: 'ipip 4in6', kind: 'ipip', outerV6: true, innerV6: false },
    { name: 'gre with key 4in4', kind: 'gre', outerV6: false, innerV6: false },
    { name: 'gre with key 6in6', kind: 'gre', outerV6: true, innerV6: true },
    { name: 'gue 4in4', kind: 'gue', outerV6: false, innerV6: false },
    { name: 'gue 6in6', kind: 'gue', outerV6: true, innerV6: true },
  ];

  cases.forEach((c, i) => {
    it(`${c.name}: the SYN draws a SYN-ACK and the datagram an echo, straight from the VIP`, () => {
      const client = c.innerV6 ? CLIENT6 : CLIENT4;
      const vip = c.innerV6 ? VIP6 : VIP4;
      const ip = c.innerV6 ? ipv6 : ipv4;
      const sport = 40_001 + i;

      const syn = ip({ src: client, dst: vip, proto: 6, payload: tcp(client, vip, { sport, dport: 8080, flags: TCP.SYN, seq: 1000 }) });
      const synAck = exchange(encapsulate(c.kind, c.outerV6, syn), { src: vip, dst: client, proto: 6, sport: 8080, dport: sport });
      expect(synAck, 'no SYN-ACK from the VIP').toBeDefined();
      const th = l4Of(synAck ?? Buffer.alloc(64));
      expect((th[13] ?? 0) & (TCP.SYN | TCP.ACK)).toBe(TCP.SYN | TCP.ACK);
      expect(th.readUInt32BE(8)).toBe(1001); // acknowledges our SYN
      // Direct server return: a plain packet from the VIP, not a tunnel back through a mux.
      expect(synAck?.readUInt16BE(12)).toBe(c.innerV6 ? 0x86dd : 0x0800);

      const dgram = ip({ src: client, dst: vip, proto: 17, payload: udp(client, vip, sport, 9090, Buffer.from(c.name)) });
      const echo = exchange(encapsulate(c.kind, c.outerV6, dgram), { src: vip, dst: client, proto: 17, sport: 9090, dport: sport });
      expect(echo, 'no UDP echo from the VIP').toBeDefined();
      expect(l4Of(echo ?? Buffer.alloc(64)).subarray(8).toString()).toBe(`echo ${c.name}`);
    });
  });

  it('draws no ICMP error from the backend kernel for tunnel packets, and a keyless GRE packet is refused', () => {
    const before = icmpErrors();
    // A fresh client port each time: the backend retransmits SYN-ACKs of earlier half-open
    // connections, which must not be taken for answers.
    let sport = 41_000;
    const syn = (port: number): Buffer =>
      ipv4({ src: CLIENT4, dst: VIP4, proto: 6, payload: tcp(CLIENT4, VIP4, { sport: port, dport: 8080 }) });
    for (const kind of ['ipip', 'gue'] as const) {
      for (const outerV6 of [false, true]) {
        sport++;
        expect(exchange(encapsulate(kind, outerV6, syn(sport)), { src: VIP4, dst: CLIENT4, proto: 6, sport: 8080, dport: sport })).toBeDefined();
      }
    }
    sport++;
    const keyless = ethernet(ipv4({ src: MUX4, dst: BACKEND4, proto: 47, payload: Buffer.concat([greHeader(false), syn(sport)]) }), {
      src: CLIENT_MAC,
      dst: BACKEND_MAC,
    });
    expect(exchange(keyless, { src: VIP4, dst: CLIENT4, proto: 6, sport: 8080, dport: sport })).toBeUndefined();
    expect(icmpErrors()).toEqual(before);
  }, 15_000);

  it('refuses tunnel packets from outside its mux prefix and inner packets not addressed to a VIP', () => {
    // The default mux sources are the interface's prefixes holding the backend's addresses
    // (10.78.0.0/24, fd78::/64): a host elsewhere cannot inject packets through the tunnel.
    let sport = 42_000;
    const syn4 = (dst: string, port: number, dport = 8080): Buffer =>
      ipv4({ src: CLIENT4, dst, proto: 6, payload: tcp(CLIENT4, dst, { sport: port, dport }) });
    const syn6 = (port: number): Buffer => ipv6({ src: CLIENT6, dst: VIP6, proto: 6, payload: tcp(CLIENT6, VIP6, { sport: port, dport: 8080 }) });
    for (const [kind, outerV6] of [['ipip', false], ['gre', true], ['gue', false]] as const) {
      sport++;
      const refused = outerV6
        ? exchange(encapsulate(kind, true, syn6(sport), SPOOF6), { src: VIP6, dst: CLIENT6, proto: 6, sport: 8080, dport: sport }, REFUSED_WAIT)
        : exchange(encapsulate(kind, false, syn4(VIP4, sport), SPOOF4), { src: VIP4, dst: CLIENT4, proto: 6, sport: 8080, dport: sport }, REFUSED_WAIT);
      expect(refused, `${kind} from a spoofed outer source was delivered`).toBeUndefined();
    }
    // From the mux, but to the backend's own address (its SSH, its kernel's RST): refused.
    sport++;
    expect(exchange(encapsulate('ipip', false, syn4(BACKEND4, sport, 22)), { src: BACKEND4, dst: CLIENT4, proto: 6, dport: sport }, REFUSED_WAIT)).toBeUndefined();
    // The same packets from the mux to the VIP still work.
    sport++;
    expect(exchange(encapsulate('ipip', false, syn4(VIP4, sport)), { src: VIP4, dst: CLIENT4, proto: 6, sport: 8080, dport: sport })).toBeDefined();
  }, 15_000);

  it('stops on SIGTERM, logs its counters and removes what it added', async () => {
    const running = agent;
    if (running === undefined) throw new Error('agent not started');
    running.child.kill('SIGTERM');
    expect(await running.exit).toBe(0);
    const stopped = JSON.parse(await waitFor('agent.stopped', running, (l) => l.includes('"agent.stopped"'))) as {
      counters: { decapsulated: number; tunErrors: number; status: Record<string, number>; encap: Record<string, number>; tunnels: Record<string, number> };
    };
    expect(stopped.counters.decapsulated).toBeGreaterThanOrEqual(2 * cases.length + 4);
    expect(stopped.counters.tunErrors).toBe(0);
    expect(stopped.counters.status['gre_wrong_key']).toBe(1);
    expect(stopped.counters.status['outer_source_not_mux']).toBe(3);
    expect(stopped.counters.status['inner_not_vip']).toBe(1);
    // The log line lists the non-zero counters: every kind and the three families used.
    expect(stopped.counters.encap).toEqual({ ipip: expect.any(Number), gre: expect.any(Number), gue: expect.any(Number) });
    expect(stopped.counters.tunnels).toEqual({ '4in4': expect.any(Number), '6in6': expect.any(Number), '4in6': expect.any(Number) });
    expect(stopped.counters.encap['gre']).toBeGreaterThanOrEqual(4);
    // The TUN device is gone with the VIPs on it; the ARP setting is back.
    expect(sh(['ip', '-n', BACKEND, '-o', 'link', 'show'])).not.toContain('l4tun0');
    expect(sh(['ip', '-n', BACKEND, '-o', 'addr', 'show'])).not.toContain(VIP4);
    expect(sysctl(BACKEND, 'net/ipv4/conf/veth0/arp_ignore')).toBe(arpIgnoreBefore);
  }, 15_000);
});
