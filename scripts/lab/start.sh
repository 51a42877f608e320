#!/usr/bin/env bash
# Starts the lab's processes in a topology built by topology.sh: the agent and the servers on
# each backend, the router's BIRD, then `l4mux run` on each mux. Returns when all of them
# answer and the router has learned the VIPs from every mux over BGP.
#   scripts/lab/start.sh PREFIX
set -euo pipefail
cd "$(dirname "$0")/../.."
PREFIX=$1
run=/tmp/$PREFIX
l4mux=(node "$PWD/dist/cli/main.js")
read -ra muxes < "$run/muxes"
read -ra backends < "$run/backends"

in_ns() { local n=$1; shift; ip netns exec "$PREFIX-$n" "$@"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "lab: timed out waiting for $what" >&2; return 1; fi
    sleep 0.2
  done
}

for b in "${backends[@]}"; do
  # shellcheck disable=SC2046
  in_ns "b$b" setsid "${l4mux[@]}" agent $(cat "$run/agent$b.args") --stats-interval 0 > "$run/agent$b.log" 2>&1 &
done
for b in "${backends[@]}"; do
  wait_for 15 "agent on backend$b" sh -c "ip -n $PREFIX-b$b addr show dev l4tun0 | grep -q 192.0.2.10"
  in_ns "b$b" env LAB_STATE="$run" setsid node scripts/lab/servers.mjs "backend$b" 192.0.2.10 2001:db8::10 > "$run/servers$b.log" 2>&1 &
done
in_ns router bird -c "$run/router-bird.conf" -s "$run/router-bird.ctl"
for m in "${muxes[@]}"; do
  in_ns "mux$m" setsid "${l4mux[@]}" run --config "$run/mux$m.json" --control "$run/mux$m.sock" \
    --pidfile "$run/mux$m.pid" > "$run/mux$m.log" 2>&1 &
done
for b in "${backends[@]}"; do
  wait_for 10 "servers on backend$b" sh -c "ip netns exec $PREFIX-b$b ss -ltn | grep -q ':80 '"
done
for m in "${muxes[@]}"; do
  wait_for 20 "mux$m" in_ns "mux$m" "${l4mux[@]}" status --control "$run/mux$m.sock"
done
# Each mux's announcement of both VIPs in the router's kernel table (one next hop per mux).
routes_from_all_muxes() {
  [ "$(ip -n "$PREFIX-router" -4 route show 192.0.2.10 | grep -c 'nexthop via')" -eq "${#muxes[@]}" ] &&
    [ "$(ip -n "$PREFIX-router" -6 route show 2001:db8::10 | grep -c 'nexthop via')" -eq "${#muxes[@]}" ]
}
wait_for 20 "the router's BGP routes to the VIPs from every mux" routes_from_all_muxes
