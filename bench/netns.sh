# Sourced (from the repository's root) by the benches that run a live mux between network
# namespaces: bench/e2e/run.sh, bench/persistence/live.sh. Needs root.
#
#   gen  10.9.0.1 g0 --veth-- eth0 10.9.0.2  dut    (dut: default route via gen)
#   gen  10.9.1.1 g1 --veth-- s0   10.9.1.2  sink   (sink: default route via gen)
#
# netns_up PREFIX builds l4mux_pktgen (build/bench) and dist/ (when missing), sets P (the
# namespaces' prefix: PREFIX and this shell's pid, at most 8 characters) and run (a scratch
# directory, /tmp/$P), removes both on exit, and sets up the topology: gen forwards, no ICMP
# redirects from gen's g0 or the dut's eth0, IPv6 DAD off. gen_mac (g0) and dut_mac (eth0) are
# set for l4mux_pktgen. Each bench adds its own routes for the VIP and its own sysctls.
# in_ns NS CMD...: CMD in namespace $P-NS.

in_ns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

netns_cleanup() {
  for n in gen dut sink; do ip netns pids "$P-$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; done
  for n in gen dut sink; do ip netns del "$P-$n" 2>/dev/null || true; done
  rm -rf "$run"
}

link_mac() {  # NS DEV -> the device's MAC address
  ip -n "$P-$1" -j link show "$2" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0))[0].address)'
}

netns_up() {
  P=$1$$
  P=${P:0:8}
  run=/tmp/$P

  cmake -S native -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DL4MUX_BENCH=ON >/dev/null
  cmake --build build/bench --target l4mux_pktgen >/dev/null
  [ -f dist/cli/main.js ] || npx tsc -p tsconfig.json

  trap netns_cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$run"

  for n in gen dut sink; do
    ip netns add "$P-$n"
    ip -n "$P-$n" link set lo up
    in_ns "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  ip -n "$P-gen" link add g0 type veth peer name eth0 netns "$P-dut"
  ip -n "$P-gen" link add g1 type veth peer name s0 netns "$P-sink"
  ip -n "$P-gen" addr add 10.9.0.1/24 dev g0
  ip -n "$P-gen" addr add 10.9.1.1/24 dev g1
  ip -n "$P-dut" addr add 10.9.0.2/24 dev eth0
  ip -n "$P-sink" addr add 10.9.1.2/24 dev s0
  for l in "gen g0" "gen g1" "dut eth0" "sink s0"; do set -- $l; ip -n "$P-$1" link set "$2" up; done
  ip -n "$P-dut" route add default via 10.9.0.1
  ip -n "$P-sink" route add default via 10.9.1.1
  in_ns gen sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.g0.send_redirects=0
  in_ns dut sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
  in_ns dut ping -c1 -W1 10.9.0.1 >/dev/null
  gen_mac=$(link_mac gen g0)
  dut_mac=$(link_mac dut eth0)
}
