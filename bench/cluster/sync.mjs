// npm run bench:cluster: the cluster channel between two muxes, each its own process on
// loopback (as two daemons would run it): entries synced per second (queued at one, received,
// authenticated, decoded and - with an addon that has cluster sync - installed into a peer-entry
// table at the other), bytes per entry on the wire, and (latency.mjs) the time from a flow's
// first packet (a SYN through the sending mux's pipeline) to its entry at the owner. JSON in
// bench/results. Each side's CPU time is recorded too (entries per CPU-second: what one core
// would carry, independent of how loaded the machine is).
//   node bench/cluster/sync.mjs [ENTRIES=2000000] [RUNS=3]
// BENCH_ROOT=/another/checkout measures that checkout's build (a same-run baseline); the
// results still go to this checkout's bench/results, naming the commit measured.
import { execFileSync, fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.BENCH_ROOT ?? join(here, '..', '..');
const dist = (p) => join(root, 'dist', p);
const { Channel } = await import(dist('cluster/channel.js'));
const { EntryClass } = await import(dist('cluster/wire.js'));

const SECRET = Buffer.alloc(32, 0x5a);
const PORT_A = 47101;
const PORT_B = 47102;
const role = process.argv[2];

/** n distinct IPv4 TCP flow records (64 bytes each) to 192.0.2.10:80. */
function flowRecords(n, salt = 0) {
  const out = Buffer.alloc(n * 64);
  for (let i = 0; i < n; i++) {
    const at = i * 64;
    out[at] = 1;
    out[at + 1] = 1;
    out[at + 2] = 4;
    out[at + 3] = 6;
    out[at + 5] = 1;
    out[at + 6] = 255;
    out[at + 7] = 255;
    out[at + 18] = 0xff;
    out[at + 19] = 0xff;
    out.writeUInt32BE((10 << 24) | ((salt & 0xff) << 16) | (i >>> 8), at + 20);
    out[at + 34] = 0xff;
    out[at + 35] = 0xff;
    out.writeUInt32BE(0xc000020a, at + 36);
    out[at + 50] = 0xff;
    out[at + 51] = 0xff;
    out.writeUInt32BE(0x0aca0102 + (i % 3) * 256, at + 52);
    out.writeUInt16BE(1024 + (i & 0xff), at + 56);
    out.writeUInt16BE(80, at + 58);
    out.writeUInt32BE(900, at + 60);
  }
  return out;
}

async function addonSink() {
  // The receiving mux installs into a real peer-entry table when the addon can.
  try {
    const { Dataplane } = await import(dist('dataplane/index.js'));
    const dp = new Dataplane(undefined, { peerFlows: 1 << 22, exportRing: 1024 });
    if (typeof dp.installFlows !== 'function') return undefined;
    dp.setConfig({
      seed: '0x1', sourceMac: '02:00:00:00:00:01', gatewayMac: '02:00:00:00:00:02', outerSourceV4: '10.201.2.2',
      vips: [{ name: 'v', address: '192.0.2.10', protocol: 6, port: 80, encap: 'ipip', guePort: 6080, hashFields: '5-tuple', tableSize: 251, icmpEcho: false, scheduler: 'maglev',
        backends: [0, 1, 2].map((k) => ({ address: `10.202.${1 + k}.2`, weight: 1, state: 'active', healthy: true, fallover: [] })) }],
      cluster: { selfIndex: 1, seed: '0x1', redirectPort: 7947, members: [{ id: 'a', address: '10.201.1.2', weight: 1, live: true }, { id: 'b', address: '10.201.2.2', weight: 1, live: true }] },
    });
    return dp;
  } catch {
    return undefined;
  }
}

if (role === 'receiver') {
  const b = new Channel({ self: { id: 'b', address: '127.0.0.1', port: PORT_B }, peers: [{ id: 'a', address: '127.0.0.1', port: PORT_A }], secret: SECRET, maxRate: 1e10 });
  await b.start();
  const sink = await addonSink();
  let received = 0;
  let installed = 0;
  let first = 0;
  let want = Infinity;
  let cpu0 = process.cpuUsage();
  b.on('entries', (_peer, records) => {
    if (first === 0) first = performance.now();
    received += records.length / 64;
    if (sink) installed += sink.installFlows(records).accepted;
    if (received >= want) {
      const cpu = process.cpuUsage(cpu0);
      process.send({ done: true, received, installed, ms: performance.now() - first, cpuMs: (cpu.user + cpu.system) / 1000, counters: b.counters });
      want = Infinity;
    }
  });
  process.on('message', (m) => {
    if (m.expect !== undefined) {
      want = m.expect;
      received = 0;
      installed = 0;
      first = 0;
      cpu0 = process.cpuUsage();
      process.send({ ready: true, installing: sink !== undefined });
    }
    if (m.quit) b.close().then(() => process.exit(0));
  });
  process.send({ ready: true, installing: sink !== undefined });
} else {
  const entries = Number(process.argv[2] ?? 2_000_000);
  const runs = Number(process.argv[3] ?? 3);
  const child = fork(fileURLToPath(import.meta.url), ['receiver']);
  const next = () => new Promise((resolve) => child.once('message', resolve));
  const hello = await next();
  const a = new Channel({ self: { id: 'a', address: '127.0.0.1', port: PORT_A }, peers: [{ id: 'b', address: '127.0.0.1', port: PORT_B }], secret: SECRET, maxRate: 1e10, ...(process.env.BENCH_WINDOW && { windowBytes: Number(process.env.BENCH_WINDOW) }) });
  await a.start();
  const results = [];
  for (let run = 0; run < runs; run++) {
    const records = flowRecords(entries, run);
    child.send({ expect: entries });
    await next();
    const sentBefore = { ...a.counters };
    const load = loadavg()[0];
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const done = next();
    // Queued in slices of what one poll of the flow events returns (the service's
    // POLL_BATCH), each in one call as the service queues a poll's records for a peer, so
    // that the channel sends while it fills.
    for (let i = 0; i < entries; i += 16384) {
      const end = Math.min(entries, i + 16384);
      if (typeof a.queueRecords === 'function') a.queueRecords('b', EntryClass.fresh, records.subarray(i * 64, end * 64));
      else for (let k = i; k < end; k++) a.queue('b', EntryClass.fresh, records, k * 64); // builds before queueRecords
      await new Promise((r) => setImmediate(r));
    }
    const heartbeat = setInterval(() => a.heartbeat('b', 0n, true), 20);
    const r = await done;
    clearInterval(heartbeat);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const senderCpuMs = (cpu.user + cpu.system) / 1000;
    const datagrams = a.counters.datagramsSent - sentBefore.datagramsSent;
    const bytes = a.counters.bytesSent - sentBefore.bytesSent;
    results.push({
      entries,
      seconds: ms / 1000,
      entriesPerSecond: Math.round(entries / (ms / 1000)),
      installedAtPeer: r.installed,
      bytesPerEntryPayload: +(bytes / entries).toFixed(2),
      bytesPerEntryWithIpUdp: +((bytes + datagrams * 28) / entries).toFixed(2),
      datagrams,
      retransmitted: a.counters.retransmitted - sentBefore.retransmitted,
      senderCpuMs: Math.round(senderCpuMs),
      receiverCpuMs: Math.round(r.cpuMs),
      senderEntriesPerCpuSecond: Math.round(entries / (senderCpuMs / 1000)),
      receiverEntriesPerCpuSecond: Math.round(entries / (r.cpuMs / 1000)),
      loadAverageAtStart: load,
    });
    console.log(JSON.stringify(results[results.length - 1]));
  }
  child.send({ quit: true });
  await a.close();
  const sorted = results.map((r) => r.entriesPerSecond).sort((x, y) => x - y);
  const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  // First packet to entry at the owner: real services over the addon's pipeline.
  let firstPacketToOwner;
  try {
    firstPacketToOwner = JSON.parse(execFileSync(process.execPath, [join(here, 'latency.mjs'), '2000'], { env: { ...process.env, BENCH_ROOT: root }, encoding: 'utf8', timeout: 120_000 }).trim().split('\n').pop());
  } catch (e) {
    firstPacketToOwner = { error: String(e).slice(0, 200) };
  }
  console.log(`first packet to owner: ${JSON.stringify(firstPacketToOwner)}`);
  const summary = {
    bench: 'cluster-sync',
    at: new Date().toISOString(),
    commit: (() => {
      try {
        return execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      } catch {
        return null;
      }
    })(),
    node: process.version,
    cpus: cpus().length,
    loadAverage: loadavg(),
    cpuMHz: (() => {
      try {
        return Number(/cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]) || null;
      } catch {
        return null;
      }
    })(),
    receiverInstalls: hello.installing,
    medianEntriesPerSecond: sorted[Math.floor(sorted.length / 2)],
    medianSenderEntriesPerCpuSecond: median(results.map((r) => r.senderEntriesPerCpuSecond)),
    medianReceiverEntriesPerCpuSecond: median(results.map((r) => r.receiverEntriesPerCpuSecond)),
    firstPacketToOwner,
    runs: results,
  };
  const out = join(here, '..', 'results', `cluster-sync-${summary.at.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
  console.log(`median ${summary.medianEntriesPerSecond} entries/s; results in ${out}`);
}
