#!/usr/bin/env bash
# npm run lab: the l4mux lab on this machine (as root). Builds a topology of network
# namespaces (client, an ECMP router, three muxes forming a cluster, three backends), runs
# `l4mux run` on the muxes and `l4mux agent` + HTTP/UDP servers on the backends, sends real traffic to the
# VIPs, shows which backend served each request and that replies bypass the muxes, a
# backend failing and another drained, then a mux drained with `l4mux drain` (the router's
# BGP routes lose it, traffic continues through the other), then tears everything down.
# Nothing in the root namespace changes.
#   npm run lab [-- ipip|gre|gue]
set -euo pipefail
cd "$(dirname "$0")/../.."
encap=${1:-ipip}
PREFIX=lab$$
PREFIX=${PREFIX:0:8}
run=/tmp/$PREFIX

[ "$(id -u)" -eq 0 ] || { echo "npm run lab needs root (network namespaces)" >&2; exit 1; }
bash scripts/bootstrap.sh >/dev/null
[ -d node_modules ] || npm ci
[ -f dist/cli/main.js ] || npx tsc -p tsconfig.json

cleanup() { bash scripts/lab/topology.sh down "$PREFIX"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
client() { ip netns exec "$PREFIX-client" "$@"; }

say "topology $PREFIX: client -> router (ECMP) -> mux1, mux2, mux3 (a cluster) -> backend1..3 ($encap)"
bash scripts/lab/topology.sh up "$PREFIX" "$encap"
bash scripts/lab/start.sh "$PREFIX"
router_routes() {
  ip -n "$PREFIX-router" -4 route show 192.0.2.10 | sed 's/^/  /'
  ip -n "$PREFIX-router" -6 route show 2001:db8::10 | sed 's/^/  /'
}
say "the router's routes to the VIPs, learned over BGP from every mux (BIRD, merge paths)"
ip netns exec "$PREFIX-router" birdc -s "$run/router-bird.ctl" show protocols | sed 's/^/  /'
router_routes
for m in 1 2 3; do
  mode=$(ip netns exec "$PREFIX-mux$m" node dist/cli/main.js status --control "$run/mux$m.sock" |
    node -e 'const s=JSON.parse(require("fs").readFileSync(0));const i=s.interfaces[0].io;console.log(i.mode+(i.xdpMode?" ("+i.xdpMode+" XDP)":"")+(i.reason&&i.reason!=="configured"?" - "+i.reason:""))')
  echo "mux$m: l4mux running, packet I/O: $mode"
done

# Count the VIP's replies on every router port while the traffic runs (pcap, libpcap).
for port in rt-m1 rt-m2 rt-m3 rt-b1 rt-b2 rt-b3; do
  ip netns exec "$PREFIX-router" node scripts/lab/count.mjs "$port" 8 \
    "src host 192.0.2.10 or src host 2001:db8::10" > "$run/count-$port.json" 2>/dev/null &
done
sleep 1.5

say "HTTP to http://192.0.2.10/ and http://[2001:db8::10]/ (each request a new TCP connection)"
for i in 1 2 3 4 5 6; do client curl -s -m 5 http://192.0.2.10/; done
for i in 1 2 3 4; do client curl -s -m 5 "http://[2001:db8::10]/"; done

say "UDP echo on port 53"
client node -e '
  const d = require("dgram");
  let left = 6;
  for (const [fam, vip] of [["udp4", "192.0.2.10"], ["udp6", "2001:db8::10"]]) for (let i = 0; i < 3; i++) {
    const s = d.createSocket(fam);
    s.on("message", (m) => { console.log(`${vip}:53 -> ${m}`); s.close(); if (--left === 0) process.exit(0); });
    s.send(`hello ${i}`, 53, vip);
  }
  setTimeout(() => { console.log(`${left} datagram(s) unanswered`); process.exit(1); }, 3000);'

say "a 20 MB download"
client curl -s -m 30 -o /dev/null -D - "http://192.0.2.10/big?bytes=20000000" -w "%{size_download} bytes in %{time_total} s\n" |
  grep -iE "x-backend|bytes in"

wait
say "replies seen on the router's ports (direct server return: none through a mux)"
for port in rt-m1 rt-m2 rt-m3 rt-b1 rt-b2 rt-b3; do
  node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));console.log(`${r.interface.padEnd(6)} ${String(r.packets).padStart(6)} packets from the VIPs`)' "$run/count-$port.json"
done

say "the cluster as mux1 sees it (l4mux status: services.cluster)"
ip netns exec "$PREFIX-mux1" node dist/cli/main.js status --control "$run/mux1.sock" | node -e '
  const c = JSON.parse(require("fs").readFileSync(0)).services?.cluster;
  if (!c) { console.log("  no cluster"); process.exit(0); }
  for (const m of c.members) console.log(`  ${m.id.padEnd(5)} ${m.self ? "self" : (m.state ?? "?").padEnd(4)}  live ${m.live}`);
  console.log(`  ready ${c.ready}; entries synced: sent ${c.sync.queued}, received ${c.sync.received}; refused datagrams ${Object.values(c.channel.refused).reduce((a, b) => a + b, 0)}`);'

say "mux counters"
for m in 1 2 3; do
  ip netns exec "$PREFIX-mux$m" node dist/cli/main.js status --control "$run/mux$m.sock" | node -e '
    const s = JSON.parse(require("fs").readFileSync(0)); const c = s.interfaces[0].counters;
    const drops = Object.entries(c.drops ?? {}).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`).join(" ") || "none";
    console.log(`mux'"$m"': rx ${c.rx}  tx ${c.tx}  passed to kernel ${c.passed}  dropped ${c.dropped} (${drops})  new flows ${c.vips.reduce((n, v) => n + v.newFlows, 0)}`);'
done
say "metrics: Prometheus text at http://127.0.0.1:9641/metrics in mux1's namespace (a few of its series)"
ip netns exec "$PREFIX-mux1" curl -s http://127.0.0.1:9641/metrics | grep -E '^l4mux_(vip_new_flows_total|backend_packets_total)' | grep -v ' 0$' | head -8
status() { ip netns exec "$PREFIX-mux$1" node dist/cli/main.js status --control "$run/mux$1.sock"; }
health_of() {  # health_of MUX ADDRESS
  status "$1" | node -e 'const s=JSON.parse(require("fs").readFileSync(0));console.log(s.pools.web4.backends.find((b)=>b.address===process.argv[1]).health)' "$2"
}
who() { for i in $(seq "$1"); do client curl -s -m 5 http://192.0.2.10/ | cut -d' ' -f1; done | sort | uniq -c | sed 's/^/  /'; }

say "failover: backend2's service stops (the muxes check /healthz on each backend every 500 ms)"
kill -9 "$(cat "$run/backend2.pid")"
start=$(date +%s%N)
until [ "$(health_of 1 10.202.2.2)" = down ] && [ "$(health_of 2 10.202.2.2)" = down ] && [ "$(health_of 3 10.202.2.2)" = down ]; do
  if [ $(( ($(date +%s%N) - start) / 1000000 )) -gt 5000 ]; then echo "backend2 not marked down within 5 s" >&2; exit 1; fi
  sleep 0.05
done
echo "backend2 marked down by all three muxes after $(( ($(date +%s%N) - start) / 1000000 )) ms; 12 new requests:"
who 12

say "drain: l4mux backend web4 10.202.3.2 --state draining (no new flows; existing ones continue)"
for m in 1 2 3; do ip netns exec "$PREFIX-mux$m" node dist/cli/main.js backend web4 10.202.3.2 --state draining --control "$run/mux$m.sock"; done
echo "12 new requests:"
who 12
status 1 | node -e '
  const s = JSON.parse(require("fs").readFileSync(0));
  for (const b of s.pools.web4.backends) console.log(`  mux1 pool web4: ${b.address.padEnd(11)} state ${b.state.padEnd(8)} health ${b.health}`);'

say "maintenance: l4mux drain on mux1 while a client keeps requesting (the router drops mux1)"
pid1=$(cat "$run/mux1.pid")
client sh -c 'ok=0; fail=0; end=$(($(date +%s) + 6)); while [ "$(date +%s)" -lt "$end" ]; do
  if curl -s -m 2 -o /dev/null http://192.0.2.10/; then ok=$((ok + 1)); else fail=$((fail + 1)); fi; sleep 0.05; done
  echo "during the drain: $ok requests answered, $fail failed"' &
sleep 0.5
ip netns exec "$PREFIX-mux1" node dist/cli/main.js drain --wait 2 --control "$run/mux1.sock" | sed 's/^/  mux1: /'
wait
while kill -0 "$pid1" 2>/dev/null; do sleep 0.1; done
echo "mux1 has stopped; the router's routes now:"
router_routes
echo "12 new requests:"
who 12

say "done: tearing the lab down"
