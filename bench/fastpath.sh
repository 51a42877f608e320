#!/usr/bin/env bash
# npm run bench:fastpath [-- --quick]   (BENCH_CPU=N to pin another core)
# Builds the C++ benchmarks (Release, LTO) and runs the in-memory pipeline and Maglev
# benchmarks on one core. Writes bench/results/fastpath-<UTC time>.json and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)

cmake -S native -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DL4MUX_BENCH=ON >/dev/null
cmake --build build/bench --target fastpath_bench maglev_bench >/dev/null

# One core, the same one for every run: the figures are per core. BENCH_CPU picks it (default:
# the last); the core clock printed at the end shows whether the host was taking it.
pin=(taskset -c "${BENCH_CPU:-$(($(nproc) - 1))}")
command -v taskset >/dev/null || pin=()

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench/results/fastpath-$stamp.json"
load=$(cut -d' ' -f1-3 /proc/loadavg)
fastpath=$("${pin[@]}" build/bench/fastpath_bench "${quick[@]}")
maglev=$("${pin[@]}" build/bench/maglev_bench "${quick[@]}")

node -e '
  const [fastpath, maglev, stamp, load, cpu, out] = process.argv.slice(1);
  const result = {
    time: stamp,
    host: { cpu, cores: require("os").cpus().length, loadAverageAtStart: load, kernel: require("os").release() },
    fastpath: JSON.parse(fastpath),
    maglev: JSON.parse(maglev).maglev,
  };
  require("fs").writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  console.log("scenario                             Mpps (median)   ns/packet");
  for (const s of result.fastpath.scenarios)
    console.log(`${s.name.padEnd(36)} ${s.mpps_median.toFixed(2).padStart(13)} ${s.ns_per_packet_median.toFixed(1).padStart(11)}`);
  if (result.fastpath.established_tcp4_ipip_sweep) {
    console.log("\nestablished_tcp4_ipip by flows and table size");
    console.log("flows    table entries  table MB   Mpps (median)");
    for (const p of result.fastpath.established_tcp4_ipip_sweep)
      console.log(`${String(p.flows).padEnd(8)} ${String(p.table_entries).padStart(13)} ${p.table_mb.toFixed(1).padStart(9)} ${p.mpps_median.toFixed(2).padStart(15)}`);
  }
  const clock = result.fastpath.core_clock_ghz;
  console.log(`\ncore clock (dependent adds per ns): ${clock.start.toFixed(2)} GHz at start, ${clock.end.toFixed(2)} at end`);
  console.log("\nMaglev M      N   build ms (median)  max/ideal  disruption % (1% removed)");
  for (const m of result.maglev)
    console.log(`${String(m.table_size).padEnd(9)} ${String(m.backends).padStart(4)} ${m.build_ms_median.toFixed(2).padStart(17)} ${m.max_over_ideal.toFixed(4).padStart(10)} ${m.disruption_pct_1pct_removed.toFixed(2).padStart(10)}`);
  console.log(`\nwritten to ${out}`);
' "$fastpath" "$maglev" "$stamp" "$load" "$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)" "$out"
