// npm run bench:persistence [-- CLIENTS=20000]: new clients through the persistence slow path,
// per mux, with real SYN frames through the addon's pipeline (a Dataplane with a persistence
// table: held, answered by the slow path, released by releaseHeld(), polled on every turn of
// the event loop). Same run, three setups:
//   embedded       one mux, the embedded store (its state file): the baseline
//   cluster-one    two mux processes on loopback, the cluster store; every client through mux a
//                  (the keys b owns are asked of b, and every entry is replicated to its backup)
//   cluster-both   the same two muxes; every client's SYN through both at the same moment
// For each: the rate of new clients in a closed loop (batches of 512 SYNs, the next batch when
// the previous is released), and the first packet's delay (process() to release) for clients
// arriving one per millisecond. Needs `npm run build:ts` and the addon. Writes
// bench/results/persistence-<UTC time>.json and prints it.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (p) => join(root, 'dist', p);
const BACKENDS = ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4'];
const BATCH = 512;
const now = () => performance.timeOrigin + performance.now();

function checksum(b, from, to, initial = 0) {
  let sum = initial;
  for (let i = from; i < to; i += 2) sum += (b[i] << 8) | (i + 1 < to ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Ethernet + IPv4 + TCP SYN from client (a 32-bit number) port 40000 to 192.0.2.10:80. */
function syn(client) {
  const f = Buffer.alloc(54);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40, 16);
  f[22] = 64;
  f[23] = 6;
  f.writeUInt32BE(client >>> 0, 26);
  Buffer.from([192, 0, 2, 10]).copy(f, 30);
  f.writeUInt16BE(checksum(f, 14, 34), 24);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(80, 36);
  f.writeUInt32BE(1, 38);
  f[46] = 0x50;
  f[47] = 0x02;
  f.writeUInt16BE(65535, 48);
  return f;
}

// ---- A mux process ----

async function mux(o) {
  const { Dataplane, defaultConntrack } = await import(dist('dataplane/index.js'));
  const { SlowPath } = await import(dist('persistence/slowpath.js'));
  const { EmbeddedStore } = await import(dist('persistence/embedded.js'));
  const { pino } = await import('pino');
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const dp = new Dataplane(defaultConntrack, undefined, { entries: 1 << 18, puntSlots: 4096 });
  dp.setConfig({
    seed: o.seed, sourceMac: '02:00:00:00:00:01', gatewayMac: '02:00:00:00:00:fe', outerSourceV4: '10.0.0.1',
    vips: [{ name: 'web', address: '192.0.2.10', protocol: 6, port: 80, encap: 'ipip', guePort: 6080, hashFields: '5-tuple', tableSize: 251,
      icmpEcho: false, scheduler: 'maglev', persistence: { timeoutSeconds: 600, prefixLength: 32, maxEntries: 1 << 18 },
      backends: BACKENDS.map((address) => ({ address, weight: 1 })) }],
  });
  let store;
  let cluster;
  if (o.store === 'cluster') {
    const { ClusterService } = await import(dist('cluster/service.js'));
    const { ClusterStore, clusterTransport } = await import(dist('persistence/cluster-store.js'));
    const peers = Object.entries(o.members).filter(([id]) => id !== o.id).map(([id, address]) => ({ id, address, weight: 1 }));
    const config = { self: { id: o.id, address: o.members[o.id], weight: 1 }, peers, keyFile: o.keyFile, heartbeatIntervalMs: 100, deadAfter: 10, syncPort: o.port, redirectPort: o.port + 1, maxRate: 125_000_000, transferRate: 200_000, commitTimeoutMs: 500, maxEntries: 1 << 16 };
    cluster = new ClusterService({ config, seed: '0x5eed', secret: o.secret, logger, engines: () => [], onMembershipChange: () => undefined });
    await cluster.start();
    store = new ClusterStore({ path: o.stateFile, transport: clusterTransport(cluster), timeoutMs: 1000, graceMs: 1100, syncTimeoutMs: 5000 });
  } else {
    store = new EmbeddedStore({ path: o.stateFile });
  }
  const slow = new SlowPath({ store, logger, storeTimeoutMs: 1000 });
  slow.setVips([{ name: 'web', timeoutSeconds: 600, maxEntries: 1 << 18 }]);
  await slow.start([dp.persistence]);

  // Held SYNs waiting for release, by client address (the inner source of the released frame).
  const waiting = new Map();
  let polling = false;
  async function poll() {
    polling = true;
    while (waiting.size > 0) {
      await new Promise((r) => setImmediate(r));
      const released = dp.releaseHeld(process.hrtime.bigint());
      const t = now();
      for (const r of released) {
        if (r.verdict !== 'tx') continue;
        const client = r.frame.readUInt32BE(14 + 20 + 12);
        const w = waiting.get(client);
        if (w === undefined) continue;
        waiting.delete(client);
        w.resolve(t - w.t0);
      }
    }
    polling = false;
  }

  /** SYNs of `clients` (numbers) in one process() call; each one's delay (ms) to its release. */
  function send(clients) {
    const t0 = now();
    const out = dp.process(clients.map((c) => ({ frame: syn(c) })), process.hrtime.bigint());
    const delays = out.map((r, i) => (r.verdict === 'held' ? new Promise((resolve) => waiting.set(clients[i], { t0, resolve })) : Promise.resolve(now() - t0)));
    if (!polling) void poll();
    return Promise.all(delays);
  }

  const sleepUntil = (at) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
  process.on('message', async (m) => {
    if (m.cmd === 'live') return process.send({ id: m.id, result: cluster === undefined || (cluster.membership.live().length === Object.keys(o.members).length - 1 && store.status().synced === true) });
    if (m.cmd === 'rate') {
      await sleepUntil(m.at);
      const started = now();
      for (let i = 0; i < m.count; i += BATCH) await send(Array.from({ length: Math.min(BATCH, m.count - i) }, (_, k) => m.first + i + k));
      const elapsedMs = now() - started;
      return process.send({ id: m.id, result: { clients: m.count, elapsedMs, perSecond: Math.round((m.count * 1000) / elapsedMs), local: slow.counters.localDecisions, ...(o.store === 'cluster' && { attemptTimeouts: store.status().attemptTimeouts, resent: store.status().resent, batches: slow.counters.batches }) } });
    }
    if (m.cmd === 'delay') {
      await sleepUntil(m.at);
      const started = Date.now();
      const waits = [];
      for (let i = 0; i < m.count; i++) {
        // One new client per millisecond.
        await sleepUntil(started + i);
        waits.push(send([m.first + i]));
      }
      const delays = (await Promise.all(waits)).flat().sort((a, b) => a - b);
      const q = (f) => +delays[Math.min(delays.length - 1, Math.floor(f * delays.length))].toFixed(3);
      return process.send({ id: m.id, result: { clients: m.count, medianMs: q(0.5), p99Ms: q(0.99), maxMs: q(1), local: slow.counters.localDecisions } });
    }
    if (m.cmd === 'stop') {
      await slow.stop();
      await cluster?.stop();
      process.send({ id: m.id, result: true });
      process.exit(0);
    }
  });
  process.send({ ready: true });
}

// ---- The driver ----

function spawnMux(o) {
  const child = fork(fileURLToPath(import.meta.url), ['mux', JSON.stringify(o)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let next = 1;
  const waiting = new Map();
  child.on('message', (m) => {
    if (m.id !== undefined) {
      waiting.get(m.id)?.(m.result);
      waiting.delete(m.id);
    }
  });
  const ready = new Promise((r) => child.on('message', (m) => m.ready && r()));
  const call = (cmd, args = {}) => new Promise((resolve) => {
    const id = next++;
    waiting.set(id, resolve);
    child.send({ id, cmd, ...args });
  });
  return ready.then(() => ({ call }));
}

async function driver() {
  const clients = Number(process.argv.find((a) => a.startsWith('CLIENTS='))?.slice(8) ?? 20000);
  const delayClients = 2000;
  const dir = mkdtempSync(join(tmpdir(), 'l4mux-bench-persist-'));
  const keyFile = join(dir, 'cluster.key');
  const secretHex = randomBytes(32);
  writeFileSync(keyFile, secretHex, { mode: 0o600 });
  const members = { a: '127.0.0.2', b: '127.0.0.3' };
  const port = 47300 + (process.pid % 300) * 2;
  const results = {};
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  let base = 0x0a000000;  // client addresses 10.x.y.z, fresh for every measurement
  const fresh = (n) => {
    const first = base;
    base += n;
    return first;
  };
  try {
    const e = await spawnMux({ store: 'embedded', stateFile: join(dir, 'embedded.log'), seed: '0x1', members: {} });
    results.embedded = { rate: await e.call('rate', { first: fresh(clients), count: clients, at: 0 }), delay: await e.call('delay', { first: fresh(delayClients), count: delayClients, at: 0 }) };
    await e.call('stop');

    const secret = { type: 'Buffer', data: [...secretHex] };
    const a = await spawnMux({ store: 'cluster', id: 'a', members, port, keyFile, secret, stateFile: join(dir, 'a.log'), seed: '0x1' });
    const b = await spawnMux({ store: 'cluster', id: 'b', members, port, keyFile, secret, stateFile: join(dir, 'b.log'), seed: '0x2' });
    for (;;) {
      if ((await a.call('live')) && (await b.call('live'))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    results['cluster-one'] = { rate: await a.call('rate', { first: fresh(clients), count: clients, at: 0 }), delay: await a.call('delay', { first: fresh(delayClients), count: delayClients, at: 0 }) };
    const both = async (cmd, count) => {
      const first = fresh(count);
      const at = Date.now() + 200;
      const [ra, rb] = await Promise.all([a.call(cmd, { first, count, at }), b.call(cmd, { first, count, at })]);
      return { a: ra, b: rb };
    };
    results['cluster-both'] = { rate: await both('rate', clients), delay: await both('delay', delayClients) };
    await Promise.all([a.call('stop'), b.call('stop')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const out = {
    time: stamp,
    host: { cores: cpus().length, loadAverageAtStart: load, kernel: release() },
    setup: { clients, batch: BATCH, delayClients, delayArrival: 'one new client per ms', release: 'releaseHeld() polled on every turn of the event loop', storeTimeoutMs: 1000 },
    results,
  };
  const path = join(root, 'bench', 'results', `persistence-${stamp}.json`);
  writeFileSync(path, JSON.stringify(out, null, 2) + '\n');
  console.log(JSON.stringify(out, null, 2));
  console.log(`wrote ${path}`);
  process.exit(0);
}

if (process.argv[2] === 'mux') {
  const o = JSON.parse(process.argv[3]);
  if (o.secret !== undefined) o.secret = Buffer.from(o.secret.data);
  await mux(o);
} else {
  await driver();
}
