#!/usr/bin/env bash
# npm run bench:snapshot [-- --quick]   (BENCH_CPU=N to pin another core)
# What a health flap costs the control thread: snapshot builds with 100 VIPs x 1000 backends,
# Maglev table reuse off (every table rebuilt, the behaviour before reuse) and on, in the same
# run. Writes bench/results/snapshot-<UTC time>.json and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)

build=${BENCH_BUILD:-build/bench}  # any Release build with -DL4MUX_BENCH=ON
cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DL4MUX_BENCH=ON >/dev/null
cmake --build "$build" --target snapshot_bench >/dev/null

pin=(taskset -c "${BENCH_CPU:-$(($(nproc) - 1))}")
command -v taskset >/dev/null || pin=()

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench/results/snapshot-$stamp.json"
load=$(cut -d' ' -f1-3 /proc/loadavg)
result=$("${pin[@]}" "$build/snapshot_bench" "${quick[@]}")

node -e '
  const [result, stamp, load, cpu, out] = process.argv.slice(1);
  const r = { time: stamp, host: { cpu, cores: require("os").cpus().length, loadAverageAtStart: load, kernel: require("os").release() }, ...JSON.parse(result) };
  require("fs").writeFileSync(out, JSON.stringify(r, null, 2) + "\n");
  const f = r.snapshot_flap;
  console.log(`${f.vips} VIPs x ${f.backends_per_vip} backends, M=${f.table_size}: one backend down or up, build ms (median of ${2 * f.flaps})`);
  for (const m of ["reuse_off", "reuse_on", "reuse_off_again"])
    console.log(`${m.padEnd(16)} flap ${f[m].flap_build_ms_median.toFixed(1).padStart(8)} ms  (tables built ${f[m].flap_tables_built}, reused ${f[m].flap_tables_reused}); first build ${f[m].first_build_ms.toFixed(1)} ms, unchanged ${f[m].unchanged_rebuild_ms.toFixed(1)} ms`);
  console.log(`flap speedup: ${f.flap_speedup}x\nwritten to ${out}`);
' "$result" "$stamp" "$load" "$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)" "$out"
