// Part of npm run bench:cluster: the time from a flow's first packet at one mux to its entry
// at the owner. Two processes on loopback, each a real ClusterService over a Dataplane (the
// addon's pipeline with cluster sync): mux "a" processes a SYN, its service polls the flow
// event (every 2 ms, as in the daemon) and sends it; mux "b"'s service installs it into its
// peer-entry table. Times are taken with performance.timeOrigin + now() on both sides.
//   node bench/cluster/latency.mjs [FLOWS=2000]   (prints one JSON line)
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.BENCH_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (p) => join(root, 'dist', p);
const { ClusterService } = await import(dist('cluster/service.js'));
const { Dataplane, defaultConntrack } = await import(dist('dataplane/index.js'));
const { pino } = await import('pino');

const role = process.argv[2] === 'owner' ? 'b' : 'a';
const PORTS = { a: 47201, b: 47202 };
const now = () => performance.timeOrigin + performance.now();

function dataplane(self) {
  const dp = new Dataplane(defaultConntrack, { peerFlows: 1 << 16, exportRing: 1 << 14 });
  dp.setConfig({
    seed: '0x1', sourceMac: '02:00:00:00:00:01', gatewayMac: '02:00:00:00:00:02', outerSourceV4: self === 0 ? '10.201.1.2' : '10.201.2.2',
    vips: [{ name: 'v', address: '192.0.2.10', protocol: 6, port: 80, encap: 'ipip', guePort: 6080, hashFields: '5-tuple', tableSize: 251, icmpEcho: false, scheduler: 'maglev',
      backends: [1, 2, 3].map((k) => ({ address: `10.202.${k}.2`, weight: 1, state: 'active', healthy: true, fallover: [] })) }],
    cluster: { selfIndex: self, seed: '0x1', redirectPort: 7947, members: [{ id: 'a', address: '10.201.1.2', weight: 1, live: true }, { id: 'b', address: '10.201.2.2', weight: 1, live: true }] },
  });
  return dp;
}

function service(id, dp) {
  const config = {
    self: { id, address: '127.0.0.1', weight: 1 },
    peers: [{ id: id === 'a' ? 'b' : 'a', address: '127.0.0.1', weight: 1 }],
    keyFile: '/dev/null', heartbeatIntervalMs: 100, deadAfter: 10, syncPort: 0, redirectPort: 7947,
    maxRate: 1e9, transferRate: 1e6, commitTimeoutMs: 500, maxEntries: 1 << 16,
  };
  return new ClusterService({ config, seed: '0x1', secret: Buffer.alloc(32, 3), logger: pino({ level: 'silent' }), engines: () => [dp], onMembershipChange: () => undefined, portOf: (m) => PORTS[m] });
}

/** An Ethernet + IPv4 + TCP SYN from 198.51.100.7:port to 192.0.2.10:80 (checksums left 0). */
function syn(port) {
  const f = Buffer.alloc(54);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40, 16);
  f[22] = 64;
  f[23] = 6;
  Buffer.from([198, 51, 100, 7]).copy(f, 26);
  Buffer.from([192, 0, 2, 10]).copy(f, 30);
  f.writeUInt16BE(port, 34);
  f.writeUInt16BE(80, 36);
  f.writeUInt32BE(1, 38);
  f[46] = 0x50;
  f[47] = 0x02;
  f.writeUInt16BE(65535, 48);
  return f;
}

const dp = dataplane(role === 'a' ? 0 : 1);
const svc = service(role, dp);
if (role === 'b') {
  const arrived = new Map();
  // Installed: the service calls installFlows when entries arrive; note each flow's arrival.
  const install = dp.installFlows.bind(dp);
  dp.installFlows = (records) => {
    const t = now();
    for (let i = 0; i < records.length; i += 64) arrived.set(records.readUInt16BE(i + 56), t);
    return install(records);
  };
  await svc.start();
  process.on('message', (m) => {
    if (m.done) {
      process.send({ arrived: [...arrived] });
      svc.stop().then(() => process.exit(0));
    }
  });
  process.send({ ready: true });
} else {
  const flows = Number(process.argv[2] ?? 2000);
  const child = fork(fileURLToPath(import.meta.url), ['owner']);
  await new Promise((r) => child.once('message', r));
  await svc.start();
  while (!svc.membership.isLive('b')) await new Promise((r) => setTimeout(r, 20));
  const sent = new Map();
  let port = 1024;
  for (let n = 0; n < flows; port++) {
    // Only flows b owns or backs travel to b.
    const o = dp.owners({ client: '198.51.100.7', clientPort: port, vip: '192.0.2.10', vipPort: 80, protocol: 6 });
    if (o.owner !== 1 && o.backup !== 1) continue;
    sent.set(port, now());
    dp.process([{ frame: syn(port) }], process.hrtime.bigint());
    n++;
    if (n % 10 === 0) await new Promise((r) => setTimeout(r, 1)); // about 10 new flows per ms
  }
  await new Promise((r) => setTimeout(r, 500));
  child.send({ done: true });
  const { arrived } = await new Promise((r) => child.once('message', r));
  await svc.stop();
  const lat = arrived.filter(([p]) => sent.has(p)).map(([p, t]) => t - sent.get(p)).sort((x, y) => x - y);
  const q = (f) => +(lat[Math.min(lat.length - 1, Math.floor(f * lat.length))] ?? NaN).toFixed(3);
  console.log(JSON.stringify({ flows, arrived: lat.length, medianMs: q(0.5), p99Ms: q(0.99), maxMs: q(1) }));
}
