// Golden pcap replays: `l4mux replay` (the real pipeline, through the CLI) on committed
// captures, compared byte for byte with the recorded output, and the output decoded by
// tshark to check the facts that matter independently of our own code.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ReplaySummary } from '../../src/dataplane/index.js';
import { readPcap, writePcap } from '../support/pcap.js';
import { tsharkFields } from '../support/tshark.js';
import { CASES, type GoldenCase } from './cases.js';

const root = join(import.meta.dirname, '..', '..');
const goldenDir = join(root, 'test', 'fixtures', 'golden');
const cli = join(root, 'dist', 'cli', 'main.js');
const update = process.env['UPDATE_GOLDEN'] === '1';
const GOOD = '1'; // tshark checksum status "Good"

let scratch = '';
const outputs = new Map<string, { out: string; summary: ReplaySummary }>();

function caseDir(c: GoldenCase): string {
  return join(goldenDir, c.name);
}

function replay(c: GoldenCase): { out: string; summary: ReplaySummary } {
  const cached = outputs.get(c.name);
  if (cached) return cached;
  const dir = caseDir(c);
  const out = join(scratch, `${c.name}.pcap`);
  const stdout = execFileSync(
    'node',
    [cli, 'replay', '--config', join(dir, 'config.json'), '--in', join(dir, 'in.pcap'), '--out', out],
    { encoding: 'utf8' },
  );
  const result = { out, summary: JSON.parse(stdout) as ReplaySummary };
  outputs.set(c.name, result);
  return result;
}

function byName(name: string): GoldenCase {
  const c = CASES.find((k) => k.name === name);
  if (!c) throw new Error(`no case ${name}`);
  return c;
}

/** Splits tshark's multi-occurrence cell: [outer, inner]. */
function layers(cell: string | undefined): string[] {
  return (cell ?? '').split('|').filter((s) => s.length > 0);
}

beforeAll(() => {
  if (!existsSync(cli)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  scratch = mkdtempSync(join(tmpdir(), 'l4mux-golden-'));
  for (const c of CASES) {
    const dir = caseDir(c);
    const records = c.frames.map((frame, i) => ({ timeNs: 1_700_000_000_000_000_000n + BigInt(i) * 1_000_000n, frame }));
    if (update) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'config.json'), `${JSON.stringify(c.config, null, 2)}\n`);
      writePcap(join(dir, 'in.pcap'), records);
    } else {
      // The committed input must still be what the case describes.
      const generated = join(scratch, `${c.name}.in.pcap`);
      writePcap(generated, records);
      expect(readFileSync(join(dir, 'in.pcap')).equals(readFileSync(generated)), `${c.name}/in.pcap is stale`).toBe(true);
    }
  }
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('golden replays', () => {
  for (const c of CASES) {
    it(`${c.name}: output matches expected.pcap (${c.description})`, () => {
      const { out, summary } = replay(c);
      const expected = join(caseDir(c), 'expected.pcap');
      if (update) writeFileSync(expected, readFileSync(out));
      expect(summary.packetsIn).toBe(c.frames.length);
      const got = readPcap(out);
      const want = readPcap(expected);
      expect(got.length).toBe(want.length);
      got.forEach((r, i) => expect(r.frame.toString('hex'), `frame ${i + 1}`).toBe(want[i]?.frame.toString('hex')));
    });
  }
});

describe('independent decoding with tshark', () => {
  it('ipip-v4: outer 10.0.0.1 -> a pool backend, inner intact, every checksum good, flows stick', () => {
    const c = byName('ipip-v4');
    const { out, summary } = replay(c);
    const rows = tsharkFields(out, ['ip.src', 'ip.dst', 'ip.proto', 'ip.checksum.status', 'tcp.srcport', 'udp.srcport', 'tcp.checksum.status', 'udp.checksum.status']);
    expect(rows.length).toBe(c.frames.length);
    const backendOfFlow = new Map<string, string>();
    for (const [src, dst, proto, ipsum, tsport, usport, tsum, usum] of rows) {
      const [outerSrc, innerSrc] = layers(src);
      const [outerDst, innerDst] = layers(dst);
      expect(outerSrc).toBe('10.0.0.1');
      expect(['10.1.0.1', '10.1.0.2', '10.1.0.3']).toContain(outerDst);
      expect(innerDst).toBe('192.0.2.10');
      expect(layers(proto)[0]).toBe('4');
      expect(layers(ipsum)).toEqual([GOOD, GOOD]);
      expect(tsum || usum).toBe(GOOD);
      const flow = `${innerSrc}:${tsport ? 'tcp' : 'udp'}:${tsport || usport}`;
      const seen = backendOfFlow.get(flow);
      if (seen) expect(outerDst, `flow ${flow} changed backend`).toBe(seen);
      backendOfFlow.set(flow, outerDst ?? '');
    }
    expect(new Set(backendOfFlow.values()).size).toBeGreaterThan(1);
    expect(summary.counters.dropped).toBe(0);
  });

  it('ipip-v6: IPv6-in-IPv6 and IPv4-in-IPv6 toward IPv6 backends', () => {
    const { out } = replay(byName('ipip-v6'));
    const rows = tsharkFields(out, ['ipv6.src', 'ipv6.dst', 'ipv6.nxt', 'ip.dst', 'tcp.checksum.status']);
    expect(rows.length).toBe(20);
    for (const [src, dst, nxt, ip4dst, tsum] of rows) {
      expect(layers(src)[0]).toBe('fd00::1');
      expect(['fd00:1::1', 'fd00:1::2', 'fd00:1::3']).toContain(layers(dst)[0]);
      if (ip4dst) {
        expect(layers(nxt)[0]).toBe('4');
        expect(ip4dst).toBe('192.0.2.20');
      } else {
        expect(layers(nxt)[0]).toBe('41');
        expect(layers(dst)[1]).toBe('2001:db8::10');
      }
      expect(tsum).toBe(GOOD);
    }
  });

  it('gre: key carried when configured, protocol type of the inner packet', () => {
    const { out } = replay(byName('gre'));
    const rows = tsharkFields(out, ['gre.key', 'gre.proto', 'ip.dst', 'ipv6.dst']);
    expect(rows.length).toBe(16);
    const keyed = rows.filter(([key]) => key);
    expect(keyed.length).toBe(8);
    for (const [key, proto, ipdst] of keyed) {
      expect(Number(key)).toBe(4242);
      expect(proto).toBe('0x0800');
      expect(layers(ipdst)[1]).toBe('192.0.2.30');
    }
    for (const [, proto, , ip6dst] of rows.filter(([key]) => !key)) {
      expect(proto).toBe('0x86dd');
      expect(layers(ip6dst)[1]).toBe('2001:db8::30');
    }
  });

  it('gue: UDP to the configured port, outer IPv6 UDP checksum good, inner packet decodes', () => {
    const { out } = replay(byName('gue'));
    const rows = tsharkFields(out, ['udp.srcport', 'udp.dstport', 'udp.checksum.status', 'ipv6.dst', 'udp.payload']);
    expect(rows.length).toBe(16);
    const inner: Buffer[] = [];
    for (const [sport, dport, sum, ip6dst, payload] of rows) {
      const outerSport = Number(layers(sport)[0]);
      expect(outerSport).toBeGreaterThanOrEqual(49152);
      if (ip6dst) {
        expect(layers(dport)[0]).toBe('7777');
        expect(layers(sum)[0]).toBe(GOOD);
      } else {
        expect(layers(dport)[0]).toBe('6080');
      }
      inner.push(Buffer.from(layers(payload)[0] ?? '', 'hex'));
    }
    // Re-frame the UDP payloads as Ethernet and let tshark decode the inner packets.
    const reframed = join(scratch, 'gue-inner.pcap');
    writePcap(
      reframed,
      inner.map((ipPacket, i) => {
        const eth = Buffer.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0, 0]);
        eth.writeUInt16BE((ipPacket[0] ?? 0) >> 4 === 6 ? 0x86dd : 0x0800, 12);
        return { timeNs: BigInt(i), frame: Buffer.concat([eth, ipPacket]) };
      }),
    );
    const innerRows = tsharkFields(reframed, ['ip.dst', 'ipv6.dst', 'udp.checksum.status', 'tcp.checksum.status']);
    expect(innerRows.filter(([d]) => d === '192.0.2.40').length).toBe(8);
    expect(innerRows.filter(([, d]) => d === '2001:db8::40').length).toBe(8);
    for (const [, , usum, tsum] of innerRows) expect(usum || tsum).toBe(GOOD);
  });

  it('icmp: echo answered from the VIP; PMTU errors reach the backend of the quoted flow', () => {
    const { out, summary } = replay(byName('icmp'));
    const rows = tsharkFields(out, ['ip.src', 'ip.dst', 'icmp.type', 'icmp.code', 'icmpv6.type', 'ipv6.dst', 'icmp.checksum.status', 'icmpv6.checksum.status']);
    // Outputs in order: echo reply, ICMPv6 echo reply, the SYN and the fragmentation-needed
    // (both encapsulated), the IPv6 SYN and the packet-too-big (both encapsulated).
    expect(rows.map((r) => `${r[2]}/${r[4]}`)).toEqual(['0/', '/129', '/', '3/', '/', '/2']);
    const [echo, echo6, syn, fragNeeded, syn6, ptb] = rows;
    expect(layers(echo?.[0])).toEqual(['192.0.2.50']);
    expect(layers(echo?.[1])).toEqual(['198.51.100.1']);
    expect(echo?.[6]).toBe(GOOD);
    expect(echo6?.[7]).toBe(GOOD);
    expect(layers(fragNeeded?.[1])[0]).toBe(layers(syn?.[1])[0]);
    expect(layers(fragNeeded?.[3])[0]).toBe('4');
    expect(layers(ptb?.[5])[0]).toBe(layers(syn6?.[5])[0]);
    expect(summary.counters.echoReplies).toBe(2);
    expect(summary.counters.icmpErrorsForwarded).toBe(2);
    expect(summary.counters.drops['icmp_echo_disabled']).toBe(1);
  });

  it('fragments: both fragments of each datagram reach the same backend', () => {
    const { out } = replay(byName('fragments'));
    const rows = tsharkFields(out, ['ip.dst', 'ipv6.dst', 'ip.id', 'ipv6.fraghdr.ident']);
    expect(rows.length).toBe(16);
    const backendOf = new Map<string, string>();
    for (const [ipdst, ip6dst, ipid, fragid] of rows) {
      const key = ipdst ? `v4:${layers(ipid)[1]}` : `v6:${fragid}`;
      const backend = ipdst ? layers(ipdst)[0] : layers(ip6dst)[0];
      const seen = backendOf.get(key);
      if (seen) expect(backend, key).toBe(seen);
      backendOf.set(key, backend ?? '');
    }
    expect(backendOf.size).toBe(8);
  });

  it('edge: VLAN removed, options and extension headers kept, drops counted by reason', () => {
    const { out, summary } = replay(byName('edge'));
    const rows = tsharkFields(out, ['vlan.id', 'ip.hdr_len', 'ipv6.nxt', 'ip.dst', 'ipv6.dst', 'tcp.dstport']);
    expect(rows.length).toBe(4);
    expect(rows.every(([vlan]) => !vlan)).toBe(true);
    expect(layers(rows[1]?.[1])).toEqual(['20', '24']);
    expect(layers(rows[2]?.[2])).toEqual(['41', '0']);
    expect(rows[3]?.[5]).toBe('2222');
    expect(summary.counters.passed).toBe(1);
    expect(summary.counters.drops['no_vip_for_port']).toBe(1);
    expect(summary.counters.drops['ipv4_truncated']).toBe(1);
    expect(summary.counters.drops['ipv4_bad_total_length']).toBe(1);
  });
});
