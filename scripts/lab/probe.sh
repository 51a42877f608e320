#!/usr/bin/env bash
# Hardening probes (issue 12) on a lab of their own, bounded in packets and time, removed on
# exit (also after a failure or Ctrl-C). Needs root, a built tree (npm run build) and, for
# synflood, the packet generator:
#   cmake -S native -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DL4MUX_BENCH=ON
#   cmake --build build/bench --target l4mux_pktgen
#
#   scripts/lab/probe.sh synflood   20 long-lived client connections through the VIP while the
#                                   client sends COUNT spoofed TCP SYNs to VIP4:80 (65536 flows,
#                                   none the client's own: from PROBE_SOURCES distinct addresses
#                                   from 198.18.0.1 on, or with PROBE_SOURCES=0 from
#                                   198.18.0.1-198.18.0.16 x 4096 ports); counts the connections
#                                   broken and the muxes' all-down episodes
#   scripts/lab/probe.sh restart    20 long-lived connections, SIGKILL to mux1's daemon, the
#                                   daemon started again as start.sh does; counts those kept
#
# Settings (environment): PROBE_PREFIX (lab name, default probe<pid>), PROBE_ENCAP (ipip),
# LAB_MUXES (2; start.sh waits for multipath routes, so at least 2), L4MUX_LAB_CLUSTER (0), PROBE_CONNS (20),
# PROBE_SOURCES (65536),
# PROBE_SYNS (300000), PROBE_SECONDS (60: the flood stops at whichever of SYNS or SECONDS
# comes first), PROBE_RATE (packets/s, 0 = as fast as it goes), PROBE_STALL_MS (connection
# counted broken after this long without an answer; 20000: a restart takes seconds).
# Prints one JSON line: the figures, and the muxes' counters that show the probe reached them.
set -euo pipefail
cd "$(dirname "$0")/../.."

probe=${1:-}
case "$probe" in
  synflood) default_muxes=2 ;;
  restart) default_muxes=2 ;;
  *) echo "usage: scripts/lab/probe.sh synflood|restart" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "probe: needs root (network namespaces)" >&2; exit 2; }
[ -f dist/cli/main.js ] || { echo "probe: run npm run build first" >&2; exit 2; }

PREFIX=${PROBE_PREFIX:-probe$(($$ % 100000))}
PREFIX=${PREFIX:0:8}
run=/tmp/$PREFIX
conns=${PROBE_CONNS:-20}
syns=${PROBE_SYNS:-300000}
seconds=${PROBE_SECONDS:-60}
rate=${PROBE_RATE:-0}
stall=${PROBE_STALL_MS:-20000}
sources=${PROBE_SOURCES:-65536}
export LAB_MUXES=${LAB_MUXES:-$default_muxes}
export L4MUX_LAB_CLUSTER=${L4MUX_LAB_CLUSTER:-0}
pktgen=build/bench/l4mux_pktgen
if [ "$probe" = synflood ] && [ ! -x "$pktgen" ]; then echo "probe: $pktgen not built (see the header)" >&2; exit 2; fi

cleanup() {
  [ -n "${CONNS_PID:-}" ] && kill "$CONNS_PID" 2>/dev/null || true
  bash scripts/lab/topology.sh down "$PREFIX" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

bash scripts/lab/topology.sh down "$PREFIX" >/dev/null 2>&1 || true
bash scripts/lab/topology.sh up "$PREFIX" "${PROBE_ENCAP:-ipip}" >/dev/null
timeout 90 bash scripts/lab/start.sh "$PREFIX" >/dev/null

in_ns() { local n=$1; shift; ip netns exec "$PREFIX-$n" "$@"; }
status() { in_ns "mux$1" node dist/cli/main.js status --control "$run/mux$1.sock"; }

# The connections, held by one process in the client's namespace; commands on its stdin.
coproc CONNS { exec ip netns exec "$PREFIX-client" node scripts/lab/conns.mjs 192.0.2.10 "$conns" 200 "$stall"; }
ask() { echo "$1" >&"${CONNS[1]}"; local line; IFS= read -r -t 30 line <&"${CONNS[0]}"; echo "$line"; }
# Until every connection has been answered (at most 30 s), then count from here.
for _ in $(seq 60); do
  before=$(ask report)
  [ "$(echo "$before" | node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); process.stdout.write(String(r.answered))')" -ge "$conns" ] && break
  sleep 0.5
done
# Health-driven changes in the muxes' logs from here on: pool pushes and all-down episodes.
log_count() { grep -c "$1" "$run/mux$2.log" || true; }
declare -A pushes_before alldown_before
for m in $(cat "$run/muxes"); do
  pushes_before[$m]=$(log_count 'backends changed' "$m")
  alldown_before[$m]=$(log_count 'every backend is down' "$m")
done
ask mark >/dev/null
started=$(date +%s.%N)

case "$probe" in
  synflood)
    router_mac=$(in_ns router cat /sys/class/net/rt-cl/address)
    client_mac=$(in_ns client cat /sys/class/net/eth0/address)
    source_args=()
    if [ "$sources" -gt 0 ]; then source_args=(--sources "$sources"); fi
    flood=$(timeout $((seconds + 30)) ip netns exec "$PREFIX-client" "$pktgen" --interface eth0 --dst-mac "$router_mac" --src-mac "$client_mac" \
      --src 198.18.0.1 "${source_args[@]}" --dst 192.0.2.10 --dport 80 --proto tcp \
      --flows 65536 --rate "$rate" --count "$syns" --duration "$seconds")
    sleep 5  # the connections' next requests after the flood
    ;;
  restart)
    pid=$(cat "$run/mux1.pid")
    kill -KILL "$pid"
    killed=$(date +%s.%N)
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    in_ns mux1 setsid node "$PWD/dist/cli/main.js" run --config "$run/mux1.json" --control "$run/mux1.sock" \
      --pidfile "$run/mux1.pid" >> "$run/mux1.log" 2>&1 < /dev/null &
    deadline=$((SECONDS + 60))
    until status 1 >/dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] || { echo "probe: mux1 did not start again (see $run/mux1.log)" >&2; exit 1; }
      sleep 0.2
    done
    answering=$(date +%s.%N)
    # Until the router has the VIP from mux1 again (BGP), then the connections' next requests.
    deadline=$((SECONDS + 30))
    until ip -n "$PREFIX-router" -4 route show 192.0.2.10 | grep -q 'via 10.201.1.2'; do
      [ $SECONDS -lt $deadline ] || break
      sleep 0.2
    done
    sleep 5
    flood=$(awk -v s="$started" -v k="$killed" -v a="$answering" 'BEGIN { printf "{\"killedAfterS\": %.2f, \"statusAgainAfterS\": %.2f}", k - s, a - k }')
    ;;
esac

after=$(ask report)
muxes=""
for m in $(cat "$run/muxes"); do
  s=$(status "$m" | node -e '
    const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const i = s.interfaces[0];
    const c = i.counters;
    const newFlows = c.vips.reduce((n, v) => n + v.newFlows, 0);
    process.stdout.write(JSON.stringify({ io: i.io.mode, rx: c.rx, tx: c.tx, newFlows, dropped: c.dropped, drops: Object.fromEntries(Object.entries(c.drops).filter(([, n]) => n > 0)), conntrack: c.conntrack }));')
  pushes=$(( $(log_count 'backends changed' "$m") - ${pushes_before[$m]:-0} ))
  alldown=$(( $(log_count 'every backend is down' "$m") - ${alldown_before[$m]:-0} ))
  muxes+="${muxes:+, }\"mux$m\": {\"counters\": $s, \"healthPushes\": $pushes, \"allDownEpisodes\": $alldown}"
done
node -e '
  const [probe, before, after, extra, muxes, conns] = process.argv.slice(1);
  const b = JSON.parse(before), a = JSON.parse(after);
  const out = { probe, connections: Number(conns), openBefore: b.open, broken: a.step.broken, kept: a.open, reasons: a.step.reasons, silent: a.silent, backends: a.backends, run: JSON.parse(extra), muxes: JSON.parse(`{${muxes}}`) };
  console.log(JSON.stringify(out));' "$probe" "$before" "$after" "$flood" "$muxes" "$conns"
ask quit >/dev/null 2>&1 || true
