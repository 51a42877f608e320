#!/usr/bin/env bash
# `npm test`: everything from a fresh clone to a full test run.
#   system packages -> npm dependencies -> addon (cmake-js and node-gyp) -> C++ unit tests
#   (Release and ASan/UBSan) -> short fuzz runs -> vitest (addon, replay, config, CLI).
# Build directories under build/ are reused, so a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

step() { printf '\n== %s\n' "$*"; }

step "system packages"
bash scripts/bootstrap.sh

step "npm dependencies"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci
else
  echo "node_modules up to date"
fi

step "addon (cmake-js) and TypeScript"
npm run --silent build:native
npm run --silent build:ts

step "addon (node-gyp fallback build)"
npm run --silent build:gyp >/dev/null
L4MUX_ADDON="$root/build/Release/l4mux_addon.node" node -e '
  const a = require(process.env.L4MUX_ADDON);
  if (typeof a.Dataplane !== "function" || a.dropReasons().length < 10) process.exit(1);
  console.log("node-gyp addon loads:", a.dropReasons().length, "drop reasons");'

step "C++ unit tests (Release)"
cmake -S native -B build/native -G Ninja -DCMAKE_BUILD_TYPE=Release -DL4MUX_TESTS=ON -DL4MUX_BENCH=ON >/dev/null
cmake --build build/native -j "$jobs"
ctest --test-dir build/native --output-on-failure -j "$jobs"

step "C++ unit tests (ASan + UBSan)"
cmake -S native -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DL4MUX_TESTS=ON -DL4MUX_SANITIZE=ON >/dev/null
cmake --build build/asan -j "$jobs"
ctest --test-dir build/asan --output-on-failure -j "$jobs"

step "fuzz targets (short bounded runs; scripts/fuzz.sh SECONDS for long ones)"
bash scripts/fuzz.sh "${L4MUX_FUZZ_SECONDS:-15}"

step "vitest"
# One file at a time: the namespace tests move real packets and must not starve each other.
npx vitest run --no-file-parallelism
