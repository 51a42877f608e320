#!/usr/bin/env bash
# npm run bench:cluster-fastpath [-- --quick]   (BENCH_CPU=N to pin another core)
# Builds and runs bench/native/cluster_bench.cc on one core: the new-flow rate with cluster
# sync on and off in the same run, established flows on and off, the control side's poll and
# install rates, bytes per record and per peer-table entry. Writes
# bench/results/cluster-<UTC time>.json and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)

cmake -S native -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DL4MUX_BENCH=ON >/dev/null
cmake --build build/bench --target cluster_bench >/dev/null

pin=(taskset -c "${BENCH_CPU:-$(($(nproc) - 1))}")
command -v taskset >/dev/null || pin=()

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench/results/cluster-$stamp.json"
load=$(cut -d' ' -f1-3 /proc/loadavg)
result=$("${pin[@]}" build/bench/cluster_bench "${quick[@]}")
node -e '
  const [result, stamp, load, out] = process.argv.slice(1);
  const r = { time: stamp, host: { cores: require("os").cpus().length, loadAverageAtStart: load, kernel: require("os").release() }, ...JSON.parse(result) };
  require("fs").writeFileSync(out, JSON.stringify(r, null, 2) + "\n");
  console.log(JSON.stringify(r, null, 2));
  console.log(`wrote ${out}`);
' "$result" "$stamp" "$load" "$out"
