#!/usr/bin/env bash
# Builds every libFuzzer target (native/fuzz/*_fuzz.cc) with clang and runs each for a
# bounded time from its seed corpus. Exits non-zero if any target crashes, times out or
# runs out of memory.
#
#   scripts/fuzz.sh [SECONDS]      seconds per target: the argument, else $FUZZ_SECONDS, else 60
#
# Seeds live in native/fuzz/corpus/<target without _fuzz>/ and are copied into
# build/fuzz/corpus/<target>/ first, so that the inputs libFuzzer adds never land in the
# repository (the scratch corpus is kept between runs: later runs start where earlier ones
# stopped). Logs go to build/fuzz/logs/, crashing inputs to build/fuzz/artifacts/<target>/;
# reproduce one with build/fuzz/<target> FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${FUZZ_SECONDS:-60}}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi

build=build/fuzz
max_len=2048

shopt -s nullglob
targets=()
for src in native/fuzz/*_fuzz.cc; do
  targets+=("$(basename "$src" .cc)")
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no native/fuzz/*_fuzz.cc targets" >&2
  exit 1
fi

echo "fuzz: building ${targets[*]} (clang, ASan + UBSan + libFuzzer) in $build"
cmake -S native -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DL4MUX_FUZZ=ON >/dev/null
cmake --build "$build" --target "${targets[@]}"

mkdir -p "$build/logs"
failed=()
for target in "${targets[@]}"; do
  name=${target%_fuzz}
  seeds=native/fuzz/corpus/$name
  corpus=$build/corpus/$target
  artifacts=$build/artifacts/$target
  log=$build/logs/$target.log
  mkdir -p "$corpus" "$artifacts"
  if [ -d "$seeds" ]; then
    cp -R "$seeds/." "$corpus/"
  else
    echo "fuzz: warning: no seed corpus $seeds for $target; starting from nothing" >&2
  fi

  echo "fuzz: $target for ${seconds}s (corpus $corpus, log $log)"
  status=0
  # -timeout: one input taking this long is a hang, reported like a crash.
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
    "$build/$target" "$corpus" -max_total_time="$seconds" -max_len="$max_len" -timeout=25 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?

  # Summary: executions and the coverage of the last status line.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1 || true)
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target FAILED (exit $status); last lines of $log:" >&2
    tail -n 60 "$log" >&2
    echo "fuzz: crashing inputs in $artifacts/:" >&2
    ls -l "$artifacts" >&2
    failed+=("$target")
  else
    echo "fuzz: $target ok: ${execs:-?} executions, ${cov:-no coverage line}"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a crash"
