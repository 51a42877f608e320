// Golden replay cases: a VIP map and the packets sent at it. test/fixtures/golden/<name>/
// holds config.json, in.pcap (these packets) and expected.pcap (what the pipeline
// transmitted when the case was recorded; UPDATE_GOLDEN=1 records again).
import {
  ethernet,
  flowPacket,
  icmp6Echo,
  icmp6PacketTooBig,
  icmpEcho,
  icmpFragNeeded,
  ipv4,
  ipv6,
  ipv6FragmentHeader,
  ipv6Options,
  TCP,
  tcp,
  udp,
} from '../support/frames.js';

export interface GoldenCase {
  name: string;
  description: string;
  config: object;
  frames: Buffer[];
}

const node = {
  seed: '0x5eed0000cafe0001',
  sourceMac: '02:00:00:00:00:01',
  gatewayMac: '02:00:00:00:00:fe',
  outerSource: { ipv4: '10.0.0.1', ipv6: 'fd00::1' },
};

const pool4 = { backends: [{ address: '10.1.0.1' }, { address: '10.1.0.2' }, { address: '10.1.0.3' }] };
const pool6 = { backends: [{ address: 'fd00:1::1' }, { address: 'fd00:1::2' }, { address: 'fd00:1::3' }] };

function clients(n: number, proto: 'tcp' | 'udp', vip: string, port: number, v6 = false): Buffer[] {
  const frames: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const src = v6 ? `2001:db8:c::${(i + 1).toString(16)}` : `198.51.100.${i + 1}`;
    frames.push(flowPacket(proto, src, vip, 40000 + i, port, { flags: TCP.SYN }));
    frames.push(flowPacket(proto, src, vip, 40000 + i, port, { flags: TCP.ACK | TCP.PSH, payload: Buffer.from(`request ${i}`) }));
  }
  return frames;
}

export const CASES: GoldenCase[] = [
  {
    name: 'ipip-v4',
    description: 'TCP and UDP over IPv4 VIPs, IPv4-in-IPv4 toward three backends',
    config: {
      version: 1,
      node,
      pools: { web: pool4 },
      vips: [
        { name: 'web', address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web' },
        { name: 'dns', address: '192.0.2.10', protocol: 'udp', port: 53, pool: 'web' },
      ],
    },
    frames: [...clients(8, 'tcp', '192.0.2.10', 80), ...clients(4, 'udp', '192.0.2.10', 53)],
  },
  {
    name: 'ipip-v6',
    description: 'IPv6-in-IPv6, and IPv4-in-IPv6 for an IPv4 VIP with IPv6 backends',
    config: {
      version: 1,
      node,
      pools: { web6: pool6 },
      vips: [
        { name: 'web6', address: '2001:db8::10', protocol: 'tcp', port: 443, pool: 'web6' },
        { name: 'web4over6', address: '192.0.2.20', protocol: 'tcp', port: 80, pool: 'web6' },
      ],
    },
    frames: [...clients(6, 'tcp', '2001:db8::10', 443, true), ...clients(4, 'tcp', '192.0.2.20', 80)],
  },
  {
    name: 'gre',
    description: 'GRE with a key (IPv4 outer) and without (IPv6 outer)',
    config: {
      version: 1,
      node,
      pools: { web: pool4, web6: pool6 },
      vips: [
        { name: 'gre-key', address: '192.0.2.30', protocol: 'tcp', port: 80, pool: 'web', encapsulation: 'gre', gre: { key: 4242 } },
        { name: 'gre6', address: '2001:db8::30', protocol: 'udp', port: 53, pool: 'web6', encapsulation: 'gre' },
      ],
    },
    frames: [...clients(4, 'tcp', '192.0.2.30', 80), ...clients(4, 'udp', '2001:db8::30', 53, true)],
  },
  {
    name: 'gue',
    description: 'GUE (UDP 6080 and a custom port) over IPv4 and IPv6 outer headers',
    config: {
      version: 1,
      node,
      pools: { web: pool4, web6: pool6 },
      vips: [
        { name: 'gue4', address: '192.0.2.40', protocol: 'udp', port: 53, pool: 'web', encapsulation: 'gue' },
        { name: 'gue6', address: '2001:db8::40', protocol: 'tcp', port: 443, pool: 'web6', encapsulation: 'gue', gue: { port: 7777 } },
      ],
    },
    frames: [...clients(4, 'udp', '192.0.2.40', 53), ...clients(4, 'tcp', '2001:db8::40', 443, true)],
  },
  {
    name: 'icmp',
    description: 'echo to VIPs answered (v4, v6); fragmentation-needed and packet-too-big sent to the flow backend',
    config: {
      version: 1,
      node,
      pools: { web: pool4, web6: pool6 },
      vips: [
        { name: 'web', address: '192.0.2.50', protocol: 'tcp', port: 80, pool: 'web' },
        { name: 'web6', address: '2001:db8::50', protocol: 'tcp', port: 443, pool: 'web6' },
        { name: 'quiet', address: '192.0.2.51', protocol: 'tcp', port: 80, pool: 'web', icmpEcho: false },
      ],
    },
    frames: [
      ethernet(ipv4({ src: '198.51.100.1', dst: '192.0.2.50', proto: 1, payload: icmpEcho(7, 1, Buffer.from('ping')) })),
      ethernet(ipv6({ src: '2001:db8:c::1', dst: '2001:db8::50', proto: 58, payload: icmp6Echo('2001:db8:c::1', '2001:db8::50', 7, 1, Buffer.from('ping6')) })),
      ethernet(ipv4({ src: '198.51.100.1', dst: '192.0.2.51', proto: 1, payload: icmpEcho(7, 2, Buffer.from('ping')) })),
      // A client's connection, then the router's complaint about the backend's reply to it.
      flowPacket('tcp', '198.51.100.9', '192.0.2.50', 45000, 80, { flags: TCP.SYN }),
      ethernet(
        ipv4({
          src: '203.0.113.1',
          dst: '192.0.2.50',
          proto: 1,
          payload: icmpFragNeeded(
            1400,
            ipv4({ src: '192.0.2.50', dst: '198.51.100.9', proto: 6, payload: tcp('192.0.2.50', '198.51.100.9', { sport: 80, dport: 45000, flags: TCP.SYN | TCP.ACK }) }),
          ),
        }),
      ),
      flowPacket('tcp', '2001:db8:c::9', '2001:db8::50', 45001, 443, { flags: TCP.SYN }),
      ethernet(
        ipv6({
          src: '2001:db8:ff::1',
          dst: '2001:db8::50',
          proto: 58,
          payload: icmp6PacketTooBig(
            '2001:db8:ff::1',
            '2001:db8::50',
            1280,
            ipv6({ src: '2001:db8::50', dst: '2001:db8:c::9', proto: 6, payload: tcp('2001:db8::50', '2001:db8:c::9', { sport: 443, dport: 45001, flags: TCP.SYN | TCP.ACK }) }),
          ),
        }),
      ),
    ],
  },
  {
    name: 'fragments',
    description: 'IPv4 and IPv6 fragments of UDP datagrams to 3-tuple VIPs: all fragments to one backend',
    config: {
      version: 1,
      node,
      pools: { web: pool4, web6: pool6 },
      vips: [
        { name: 'frag4', address: '192.0.2.60', protocol: 'udp', port: 53, pool: 'web', hashFields: '3-tuple' },
        { name: 'frag6', address: '2001:db8::60', protocol: 'udp', port: 53, pool: 'web6', hashFields: '3-tuple' },
      ],
    },
    frames: (() => {
      const frames: Buffer[] = [];
      for (let i = 1; i <= 4; i++) {
        const src4 = `198.51.100.${i}`;
        const dgram4 = udp(src4, '192.0.2.60', 5000 + i, 53, Buffer.alloc(48, i));
        frames.push(ethernet(ipv4({ src: src4, dst: '192.0.2.60', proto: 17, payload: dgram4.subarray(0, 32), df: false, moreFragments: true, id: 100 + i })));
        frames.push(ethernet(ipv4({ src: src4, dst: '192.0.2.60', proto: 17, payload: dgram4.subarray(32), df: false, fragmentOffset: 32, id: 100 + i })));
        const src6 = `2001:db8:c::${i}`;
        const dgram6 = udp(src6, '2001:db8::60', 5000 + i, 53, Buffer.alloc(48, i));
        frames.push(ethernet(ipv6({ src: src6, dst: '2001:db8::60', proto: 17, payload: dgram6.subarray(0, 32), extensions: [ipv6FragmentHeader(0, true, 200 + i)] })));
        frames.push(ethernet(ipv6({ src: src6, dst: '2001:db8::60', proto: 17, payload: dgram6.subarray(32), extensions: [ipv6FragmentHeader(32, false, 200 + i)] })));
      }
      return frames;
    })(),
  },
  {
    name: 'edge',
    description: 'VLAN tag, IPv4 options, IPv6 extension headers, all-ports VIP, not-for-us, unknown port, malformed',
    config: {
      version: 1,
      node,
      pools: { web: pool4, web6: pool6 },
      vips: [
        { name: 'web', address: '192.0.2.70', protocol: 'tcp', port: 80, pool: 'web' },
        { name: 'any', address: '192.0.2.71', protocol: 'tcp', pool: 'web' },
        { name: 'web6', address: '2001:db8::70', protocol: 'udp', port: 53, pool: 'web6' },
      ],
    },
    frames: [
      flowPacket('tcp', '198.51.100.1', '192.0.2.70', 41000, 80, { vlan: 42 }),
      ethernet(
        ipv4({
          src: '198.51.100.2',
          dst: '192.0.2.70',
          proto: 6,
          options: Buffer.from([0x01, 0x01, 0x01, 0x00]), // NOP NOP NOP EOL
          payload: tcp('198.51.100.2', '192.0.2.70', { sport: 41001, dport: 80 }),
        }),
      ),
      ethernet(
        ipv6({
          src: '2001:db8:c::2',
          dst: '2001:db8::70',
          proto: 17,
          extensions: [ipv6Options(0), ipv6Options(60, 2)],
          payload: udp('2001:db8:c::2', '2001:db8::70', 41002, 53, Buffer.from('query')),
        }),
      ),
      flowPacket('tcp', '198.51.100.3', '192.0.2.71', 41003, 2222),
      flowPacket('tcp', '198.51.100.4', '203.0.113.200', 41004, 80), // not a VIP: passed
      flowPacket('tcp', '198.51.100.5', '192.0.2.70', 41005, 81), // VIP address, no VIP on 81
      flowPacket('tcp', '198.51.100.6', '192.0.2.70', 41006, 80).subarray(0, 30), // truncated IPv4
      (() => {
        const f = flowPacket('udp', '198.51.100.7', '192.0.2.70', 41007, 80);
        f.writeUInt16BE(4000, 16); // IPv4 total length larger than the frame
        return f;
      })(),
    ],
  },
];
