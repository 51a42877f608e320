#!/usr/bin/env bash
# npm run bench:persistence-live (root): client persistence's slow path through one live mux
# (bench:persistence, slowpath.mjs, measures it in process against the cluster store).
#
#   gen (clients, l4mux_pktgen, router) --veth--> dut (l4mux run) --IPIP via gen--> sink
#   sink: `l4mux agent` (decapsulation) and a TCP server on the VIP; replies go straight to gen.
#
# For each store (embedded, then etcd started here in the dut's namespace):
#  1. First-packet delay: PERSIST_CLIENTS clients (their own addresses in gen) each connect
#     once (a new client: the SYN is held until the store answers), then each connects again
#     (a known client: the fast path). The connect times' median and p99 of both, and their
#     difference: the delay the slow path adds to a first packet.
#  2. New clients per second: l4mux_pktgen sends SYNs from distinct sources (each a new
#     client) at PERSIST_RATE for PERSIST_SECONDS, then at PERSIST_FLOOD_RATE (beyond what the
#     slow path can take: the punt queues overflow, counted). From `l4mux status`: clients the
#     slow path decided per second, and what became of the rest.
# Results: bench/results/persistence-<UTC time>.json.
#   PERSIST_IO (af_packet), PERSIST_CLIENTS (300), PERSIST_RATE (50000), PERSIST_SECONDS (4),
#   PERSIST_FLOOD_RATE (200000), PERSIST_STORES ("embedded etcd")
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "bench:persistence-live needs root (network namespaces)" >&2; exit 1; }

io=${PERSIST_IO:-af_packet}
clients=${PERSIST_CLIENTS:-300}
rate=${PERSIST_RATE:-50000}
seconds=${PERSIST_SECONDS:-4}
flood_rate=${PERSIST_FLOOD_RATE:-200000}
stores=${PERSIST_STORES:-embedded etcd}
vip=192.0.2.10

. bench/netns.sh
netns_up pb
l4mux() { local n=$1; shift; in_ns "$n" node "$root/dist/cli/main.js" "$@"; }
# gen routes: the mux's tunnel packets on to the sink, and the VIP to the mux. The sink's
# answers come from the VIP over g1 (direct server return): no reverse-path filter there.
in_ns gen sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.g1.rp_filter=0
ip -n "$P-gen" route add "$vip/32" via 10.9.0.2
# The clients of part 1: addresses of their own.
for ((i = 0; i < clients; i++)); do echo "addr add 10.7.$((i / 250)).$((i % 250 + 1))/32 dev lo"; done > "$run/addrs"
ip -n "$P-gen" -batch "$run/addrs"
in_ns sink ping -c1 -W1 10.9.1.1 >/dev/null

# The backend: decapsulation, and a TCP server on the VIP that closes what it accepts.
in_ns sink setsid node "$root/dist/cli/main.js" agent --interface s0 --tun l4tun0 --address 10.9.1.2 --vip "$vip" \
  --mux-source 10.9.0.2/32 --stats-interval 0 > "$run/agent.log" 2>&1 &
for _ in $(seq 100); do ip -n "$P-sink" addr show dev l4tun0 2>/dev/null | grep -q "$vip" && break; sleep 0.1; done
ip -n "$P-sink" addr show dev l4tun0 | grep -q "$vip" || { echo "agent did not start:" >&2; cat "$run/agent.log" >&2; exit 1; }
in_ns sink setsid node -e '
  require("net").createServer((s) => { s.on("error", () => {}); s.end(); }).listen(80, process.argv[1]);' "$vip" &

etcd_endpoint=http://127.0.0.1:23790
start_etcd() {
  in_ns dut setsid etcd --name bench --data-dir "$run/etcd" --listen-client-urls "$etcd_endpoint" \
    --advertise-client-urls "$etcd_endpoint" --listen-peer-urls http://127.0.0.1:23800 \
    --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster bench=http://127.0.0.1:23800 \
    --log-level error > "$run/etcd.log" 2>&1 &
  for _ in $(seq 100); do in_ns dut etcdctl --endpoints "$etcd_endpoint" endpoint health >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "etcd did not start:" >&2; cat "$run/etcd.log" >&2; exit 1
}

# status_figures STORE_NAME -> "decided punts overflow expired" from `l4mux status`
status_figures() {
  l4mux dut status --control "$run/mux.sock" | node -e '
    const s = JSON.parse(require("fs").readFileSync(0));
    const slow = s.services?.persistence?.slowPath;
    if (!slow) { console.error("no persistence slow path in status: " + JSON.stringify(s.services)); process.exit(1); }
    const c = slow.counters;
    const t = Object.values(s.services.persistence.tables)[0] ?? {};
    // Decided: the store answered (created or found), or the slow path decided locally.
    console.log([c.storeCreated + c.storeExisting + c.localDecisions, c.punts, t.puntOverflow ?? 0, t.expired ?? 0].join(" "));'
}

results=()
for store in $stores; do
  store_json='"store": "embedded", "stateFile": "'"$run/$store.state"'"'
  if [ "$store" = etcd ]; then
    start_etcd
    store_json='"store": "etcd", "etcd": { "endpoints": ["'"$etcd_endpoint"'"] }'
  fi
  cat > "$run/$store.json" <<EOF
{ "version": 1,
  "node": { "seed": "0xbe7c4", "interfaces": ["eth0"], "io": "$io", "workers": 1, "outerSource": { "ipv4": "10.9.0.2" } },
  "pools": { "sink": { "backends": [ { "address": "10.9.1.2" } ] } },
  "persistence": { $store_json, "tableEntries": 1048576, "puntSlots": 4096 },
  "vips": [
    { "name": "connect", "address": "$vip", "protocol": "tcp", "port": 80, "pool": "sink",
      "persistence": { "timeout": 3600, "granularity": "address" } },
    { "name": "flood", "address": "$vip", "protocol": "tcp", "port": 81, "pool": "sink",
      "persistence": { "timeout": 3600, "granularity": "address", "maxEntries": 1000000 } } ] }
EOF
  # (not through in_ns: $! is then the daemon itself, which SIGTERM stops cleanly)
  # shellcheck disable=SC2086 # PERSIST_DAEMON_NODE_ARGS: e.g. "--cpu-prof --cpu-prof-dir=DIR"
  ip netns exec "$P-dut" node ${PERSIST_DAEMON_NODE_ARGS:-} "$root/dist/cli/main.js" run --config "$run/$store.json" --control "$run/mux.sock" --counters-interval 0 > "$run/mux-$store.log" 2>&1 &
  daemon=$!
  for _ in $(seq 100); do l4mux dut status --control "$run/mux.sock" >/dev/null 2>&1 && break; sleep 0.2; done
  if ! kill -0 "$daemon" 2>/dev/null; then echo "l4mux ($store) did not start:" >&2; cat "$run/mux-$store.log" >&2; exit 1; fi

  echo "$store: $clients new clients connect, then again as known clients..." >&2
  delays=$(in_ns gen node -e '
    const net = require("net");
    const [vip, n] = [process.argv[1], Number(process.argv[2])];
    const addr = (i) => `10.7.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    const connect = (i) => new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      const s = net.connect({ host: vip, port: 80, localAddress: addr(i), timeout: 5000 });
      s.on("connect", () => { resolve(Number(process.hrtime.bigint() - t0) / 1e6); s.destroy(); });
      s.on("timeout", () => { resolve(NaN); s.destroy(); });
      s.on("error", () => resolve(NaN));
    });
    const q = (xs, f) => { const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b); return s.length ? +s[Math.min(s.length - 1, Math.floor(f * s.length))].toFixed(3) : null; };
    (async () => {
      const out = {};
      for (const pass of ["newClient", "knownClient"]) {
        const ms = [];
        for (let i = 0; i < n; i++) ms.push(await connect(i));  // one at a time: delay, not queueing
        out[pass] = { connects: n, failed: ms.filter(Number.isNaN).length, medianMs: q(ms, 0.5), p99Ms: q(ms, 0.99) };
      }
      out.addedMedianMs = +(out.newClient.medianMs - out.knownClient.medianMs).toFixed(3);
      out.addedP99Ms = +(out.newClient.p99Ms - out.knownClient.medianMs).toFixed(3);
      console.log(JSON.stringify(out));
    })();' "$vip" "$clients")

  # Part 2: distinct sources per run (a /12 each), so that every SYN is a new client.
  throughput=()
  base=0
  for r in "$rate" "$flood_rate"; do
    count=$((r * seconds))
    [ "$count" -gt 1000000 ] && count=1000000
    echo "$store: $count new clients at $r/s..." >&2
    read -r c0 p0 o0 e0 <<< "$(status_figures)"
    t0=$(date +%s.%N)
    gen=$(in_ns gen "$root/build/bench/l4mux_pktgen" --interface g0 --dst-mac "$dut_mac" --src-mac "$gen_mac" \
      --src "10.$((64 + base * 16)).0.1" --sources "$count" --flows "$count" --dst "$vip" --dport 81 --rate "$r" --count "$count")
    base=$((base + 1))
    # Until the slow path has caught up (no change for a second), at most 60 s.
    last=-1; t_last=$t0
    for _ in $(seq 120); do
      read -r c p o e <<< "$(status_figures)"
      if [ "$c" != "$last" ]; then last=$c; t_last=$(date +%s.%N); elif node -e 'process.exit(Date.now() / 1000 - Number(process.argv[1]) > 1 ? 0 : 1)' "$t_last"; then break; fi
      sleep 0.25
    done
    throughput+=("$(node -e '
      const [g, t0, t1, c0, p0, o0, e0, c, p, o, e, offered] = process.argv.slice(1);
      const sent = JSON.parse(g).sent, secs = Number(t1) - Number(t0), decided = Number(c) - Number(c0);
      console.log(JSON.stringify({ offeredPerSecond: Number(offered), newClientsSent: sent, decided,
        seconds: +secs.toFixed(3), decidedPerSecond: Math.round(decided / secs), punted: Number(p) - Number(p0),
        puntOverflow: Number(o) - Number(o0), puntExpired: Number(e) - Number(e0), decidedFraction: +(decided / sent).toFixed(4) }));' \
      "$gen" "$t0" "$t_last" "$c0" "$p0" "$o0" "$e0" "$c" "$p" "$o" "$e" "$r")")
  done
  slow=$(l4mux dut status --control "$run/mux.sock" | node -e 'const s = JSON.parse(require("fs").readFileSync(0)).services.persistence.slowPath; console.log(JSON.stringify({ counters: s.counters, firstPacketDelayUs: s.firstPacketDelayUs }))')
  results+=("{\"store\": \"$store\", \"io\": \"$io\", \"firstPacket\": $delays, \"newClients\": [$(IFS=,; echo "${throughput[*]}")], \"slowPath\": $slow}")
  echo "  ${results[-1]}" >&2
  if ! kill -TERM "$daemon" 2>/dev/null; then echo "l4mux ($store) exited during the bench:" >&2; tail -20 "$run/mux-$store.log" >&2; exit 1; fi
  wait "$daemon" || true
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench/results/persistence-live-$stamp.json"
mkdir -p bench/results
node -e '
  const [out, stamp, load, ...stores] = process.argv.slice(1);
  const results = stores.map((s) => JSON.parse(s));
  const ghz = require("os").cpus().map((c) => c.speed);
  const doc = { time: stamp, host: { cores: ghz.length, mhz: ghz, loadAverageAtStart: load, kernel: require("os").release() },
    path: "gen -> dut (l4mux run) -> gen -> sink (l4mux agent) over veth", results };
  require("fs").writeFileSync(out, JSON.stringify(doc, null, 2) + "\n");
  for (const r of results) {
    const f = r.firstPacket;
    console.log(`${r.store}: first packet of a new client +${f.addedMedianMs} ms median, +${f.addedP99Ms} ms p99 (connect ${f.newClient.medianMs}/${f.newClient.p99Ms} ms new, ${f.knownClient.medianMs}/${f.knownClient.p99Ms} ms known; failed ${f.newClient.failed}+${f.knownClient.failed})`);
    for (const t of r.newClients) console.log(`${r.store}: offered ${t.offeredPerSecond}/s: ${t.decided} of ${t.newClientsSent} decided in ${t.seconds} s = ${t.decidedPerSecond}/s; punt overflow ${t.puntOverflow}, expired ${t.puntExpired}`);
  }
  console.log(`\nwritten to ${out}`);
' "$out" "$stamp" "$(cut -d' ' -f1-3 /proc/loadavg)" "${results[@]}"
