// npm run bench:reload-eventloop [-- VIPS]   (default 800)
// How long an 800-VIP reload with every Maglev table changed blocks the event loop: the
// synchronous setConfig (the build on the event loop, as before) and prepareConfig +
// publishConfig (the build on a libuv pool thread), in the same run, on one Engine that is
// never started (no packets: the build alone). The block is the largest gap between 1 ms
// ticks of a setInterval while each reload runs (maxTickGapMs). The largest delay of
// perf_hooks monitorEventLoopDelay is recorded too, but it misses one long synchronous block
// (it reported ~1-16 ms while the ticks stopped for 3 s), so maxTickGapMs is the figure.
// Writes bench/results/reload-eventloop-<UTC time>.json.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const addon = require('../../build/addon/Release/l4mux_addon.node');
const vipCount = Number(process.argv[2] ?? 800);
const TABLE = 65537;
const BACKENDS = 10;

const engine = new addon.Engine({ interface: 'lo', workers: 1, io: 'af_packet', conntrack: { maxFlows: 1024, timeouts: { tcpSynSeconds: 1, tcpEstablishedSeconds: 2, tcpClosingSeconds: 3, udpSeconds: 4, otherSeconds: 5 } } });

// A config whose every table differs from the last one's (the seed feeds every table).
function config(seed) {
  const vips = [];
  for (let v = 0; v < vipCount; v++) {
    vips.push({
      name: `v${v}`, address: `10.${100 + (v >> 8)}.${v & 255}.1`, protocol: 6, port: 80, encap: 'ipip', guePort: 6080,
      hashFields: '5-tuple', icmpEcho: false, scheduler: 'maglev', tableSize: TABLE,
      backends: Array.from({ length: BACKENDS }, (_, b) => ({ address: `10.${v >> 8}.${v & 255}.${b + 1}`, weight: 1, healthy: true, state: 'active', fallover: [] })),
    });
  }
  return { seed: seed, sourceMac: '02:00:00:00:00:01', gatewayMac: '02:00:00:00:00:02', outerSourceV4: '10.9.0.2', mtu: 1500, vips };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function measure(name, reload) {
  const next = config(`0x${(Math.random() * 2 ** 48).toString(16).split('.')[0]}`);
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  let last = performance.now();
  let maxGap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  await sleep(50);
  histogram.reset();
  maxGap = 0;
  const started = performance.now();
  await reload(next);
  const wallMs = performance.now() - started;
  await sleep(50);
  clearInterval(tick);
  histogram.disable();
  return { mode: name, wallMs: +wallMs.toFixed(1), eventLoopDelayMaxMs: +(histogram.max / 1e6).toFixed(1), maxTickGapMs: +maxGap.toFixed(1) };
}

engine.setConfig(config('0x1'));
const runs = [];
for (let round = 0; round < 2; round++) {
  runs.push(await measure('setConfig (build on the event loop)', async (c) => engine.setConfig(c)));
  runs.push(await measure('prepareConfig + publishConfig (build on a pool thread)', async (c) => engine.publishConfig(await engine.prepareConfig(c))));
}
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
const result = {
  time: stamp,
  host: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadAverageAtStart: os.loadavg().map((l) => +l.toFixed(2)), kernel: os.release() },
  vips: vipCount, backendsPerVip: BACKENDS, tableSize: TABLE, tablesChanged: 'all (new seed each reload)',
  runs,
};
const out = new URL(`../results/reload-eventloop-${stamp}.json`, import.meta.url);
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
for (const r of runs) console.log(`${r.mode.padEnd(56)} wall ${String(r.wallMs).padStart(8)} ms  event loop blocked (max delay) ${String(r.eventLoopDelayMaxMs).padStart(8)} ms  max tick gap ${r.maxTickGapMs} ms`);
console.log(`written to ${out.pathname}`);
