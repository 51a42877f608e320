#!/usr/bin/env bash
# The l4mux lab: network namespaces on this machine, nothing in the root namespace.
#
#   scripts/lab/topology.sh up PREFIX [ENCAP]   build it; writes configs into /tmp/PREFIX/
#   scripts/lab/topology.sh down PREFIX         remove it (idempotent, works after a crash)
#
#   client (10.200.0.2, fd00:200::2)
#      |  MTU 1500
#   router  -- kernel ECMP with L4 hashing for the VIPs --> mux1, mux2, mux3
#      |  MTU 1600 (room for the tunnel headers)          (no VIP on the muxes)
#      |  BIRD (AS 65000, multipath): the ECMP routes to the VIPs are what the muxes
#      |  (AS 65001, each its own BIRD run by `l4mux run`) announce over BGP, one IPv4
#      |  and one IPv6 session per mux; no static routes.
#   backend1..3 (LAB_BACKENDS=4: a fourth one, in no pool yet): the `l4mux agent`
#                decapsulates into a TUN device holding the VIPs; replies go straight
#                back through the router, never through a mux.
#
# VIPs: 192.0.2.10 and 2001:db8::10, TCP 80 (HTTP) and UDP 53 (echo); sticky4, 192.0.2.10
# TCP 8080 (the same HTTP servers), with client persistence (30 s, the embedded store: across
# the muxes when they form a cluster, each mux alone without one).
# The muxes form a cluster (connection-table sync, key in /tmp/PREFIX/cluster.key);
# L4MUX_LAB_CLUSTER=0 writes configs without it (every mux decides alone).
set -euo pipefail

readonly VIP4=192.0.2.10
readonly VIP6=2001:db8::10
mapfile -t MUXES < <(seq "${LAB_MUXES:-3}")  # LAB_MUXES=2: the two-mux lab of the older tests
readonly MUXES
mapfile -t BACKENDS < <(seq "${LAB_BACKENDS:-3}")
readonly BACKENDS

ns() { echo "$PREFIX-$1"; }
in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }

new_ns() {
  local n; n=$(ns "$1")
  ip netns add "$n"
  ip -n "$n" link set lo up
  # No duplicate address detection: tentative addresses would delay the first packets.
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# link A IFA B IFB MTU: a veth pair between two namespaces
link() {
  ip -n "$(ns "$1")" link add "$2" mtu "$5" type veth peer name "$4" mtu "$5" netns "$(ns "$3")"
  ip -n "$(ns "$1")" link set "$2" up
  ip -n "$(ns "$3")" link set "$4" up
}

addr() { ip -n "$(ns "$1")" addr add "$3" dev "$2"; }

up() {
  local encap=${1:-ipip}
  new_ns client
  new_ns router
  for m in "${MUXES[@]}"; do new_ns "mux$m"; done
  for b in "${BACKENDS[@]}"; do new_ns "b$b"; done

  in_ns router sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1

  link client eth0 router rt-cl 1500
  addr client eth0 10.200.0.2/24; addr client eth0 fd00:200::2/64
  addr router rt-cl 10.200.0.1/24; addr router rt-cl fd00:200::1/64
  ip -n "$(ns client)" route add default via 10.200.0.1
  ip -n "$(ns client)" -6 route add default via fd00:200::1

  for m in "${MUXES[@]}"; do
    link router "rt-m$m" "mux$m" eth0 1600
    addr router "rt-m$m" "10.201.$m.1/24"; addr router "rt-m$m" "fd00:201:$m::1/64"
    addr "mux$m" eth0 "10.201.$m.2/24"; addr "mux$m" eth0 "fd00:201:$m::2/64"
    ip -n "$(ns "mux$m")" route add default via "10.201.$m.1"
    ip -n "$(ns "mux$m")" -6 route add default via "fd00:201:$m::1"
  done

  for b in "${BACKENDS[@]}"; do
    link router "rt-b$b" "b$b" eth0 1600
    addr router "rt-b$b" "10.202.$b.1/24"; addr router "rt-b$b" "fd00:202:$b::1/64"
    addr "b$b" eth0 "10.202.$b.2/24"; addr "b$b" eth0 "fd00:202:$b::2/64"
    ip -n "$(ns "b$b")" route add default via "10.202.$b.1"
    ip -n "$(ns "b$b")" -6 route add default via "fd00:202:$b::1"
  done

  write_configs "$encap"
}

write_configs() {
  local encap=$1 run=/tmp/$PREFIX
  mkdir -p "$run"
  local extra=""
  [ "$encap" = gre ] && extra=', "gre": { "key": 42 }'
  head -c 32 /dev/urandom > "$run/cluster.key" && chmod 600 "$run/cluster.key"
  for m in "${MUXES[@]}"; do
    local cluster=""
    if [ "${L4MUX_LAB_CLUSTER:-1}" != 0 ]; then
      local peers="" p
      for p in "${MUXES[@]}"; do
        [ "$p" = "$m" ] || peers+="${peers:+, }{ \"id\": \"mux$p\", \"address\": \"10.201.$p.2\" }"
      done
      cluster=",
  \"cluster\": { \"id\": \"mux$m\", \"address\": \"10.201.$m.2\", \"peers\": [ $peers ], \"keyFile\": \"$run/cluster.key\", \"heartbeatInterval\": 200, \"deadAfter\": 5, \"commitTimeout\": 2000 }"
    fi
    cat > "$run/mux$m.json" <<EOF
{
  "version": 1,
  "node": {
    "seed": "0x1ab0000000c0ffee",
    "interfaces": ["eth0"],
    "io": "${L4MUX_LAB_IO:-auto}",
    "workers": 1,
    "outerSource": { "ipv4": "10.201.$m.2", "ipv6": "fd00:201:$m::2" }
  },
  "metrics": { "listen": "127.0.0.1:9641" },
  "pools": {
    "web4": {
      "healthCheck": { "kind": "http", "port": 9090, "interval": 500, "timeout": 300, "fall": 2, "rise": 2, "http": { "path": "/healthz" } },
      "backends": [ { "address": "10.202.1.2" }, { "address": "10.202.2.2" }, { "address": "10.202.3.2" } ]
    },
    "web6": { "backends": [ { "address": "fd00:202:1::2" }, { "address": "fd00:202:2::2" }, { "address": "fd00:202:3::2" } ] }
  },
  "vips": [
    { "name": "http4", "address": "$VIP4", "protocol": "tcp", "port": 80, "pool": "web4", "encapsulation": "$encap"$extra },
    { "name": "echo4", "address": "$VIP4", "protocol": "udp", "port": 53, "pool": "web4", "encapsulation": "$encap"$extra },
    { "name": "http6", "address": "$VIP6", "protocol": "tcp", "port": 80, "pool": "web6", "encapsulation": "$encap"$extra },
    { "name": "echo6", "address": "$VIP6", "protocol": "udp", "port": 53, "pool": "web6", "encapsulation": "$encap"$extra },
    { "name": "sticky4", "address": "$VIP4", "protocol": "tcp", "port": 8080, "pool": "web4", "encapsulation": "$encap"$extra,
      "persistence": { "timeout": 30, "maxEntries": 8192 } }
  ],
  "persistence": { "store": "embedded", "stateFile": "$run/mux$m-persistence.log", "tableEntries": 16384, "puntSlots": 256 },
  "bgp": {
    "localAs": 65001,
    "routerId": "10.201.$m.2",
    "holdTime": 3,
    "drainSeconds": 2,
    "runDirectory": "$run/mux$m-bird",
    "neighbours": [
      { "name": "router_v4", "address": "10.201.$m.1", "as": 65000 },
      { "name": "router_v6", "address": "fd00:201:$m::1", "as": 65000 }
    ]
  }$cluster
}
EOF
  done
  router_bird_config > "$run/router-bird.conf"
  for b in "${BACKENDS[@]}"; do
    local key=""
    [ "$encap" = gre ] && key="--gre-key 42"
    # The muxes reach the backends through the router: name their prefixes (not on-link here).
    echo "--interface eth0 --tun l4tun0 --address 10.202.$b.2 --address fd00:202:$b::2 --vip $VIP4 --vip $VIP6 --mux-source 10.201.0.0/16 --mux-source fd00:201::/32 $key" > "$run/agent$b.args"
  done
  echo "$encap" > "$run/encap"
  echo "${MUXES[*]}" > "$run/muxes"
  echo "${BACKENDS[*]}" > "$run/backends"
}

# The router's BIRD: learns the VIPs from every mux and installs them as multipath routes.
router_bird_config() {
  cat <<EOF
router id 10.200.0.1;
protocol device {}
protocol kernel kernel4 { ipv4 { import none; export all; }; merge paths on; }
protocol kernel kernel6 { ipv6 { import none; export all; }; merge paths on; }
# BFD for the muxes that ask for it (bgp.bfd); a session without a BFD peer is unaffected.
protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
template bgp mux {
  local as 65000;
  bfd on;
  hold time 9;
  connect delay time 1;
  connect retry time 5;
  error wait time 1, 5;
}
EOF
  for m in "${MUXES[@]}"; do
    echo "protocol bgp mux${m}_v4 from mux { neighbor 10.201.$m.2 as 65001; ipv4 { import all; export none; }; }"
    echo "protocol bgp mux${m}_v6 from mux { neighbor fd00:201:$m::2 as 65001; ipv6 { import all; export none; }; }"
  done
}

down() {
  local n
  for n in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true); do
    # Processes left in the namespace (daemons of a crashed run) go first.
    ip netns pids "$n" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
  done
  sleep 0.3
  for n in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "/tmp/$PREFIX"
}

cmd=${1:-}; PREFIX=${2:-}
if [ -z "$cmd" ] || [ -z "$PREFIX" ] || [[ ! "$PREFIX" =~ ^[a-z0-9]{1,8}$ ]]; then
  echo "usage: $0 up|down PREFIX [ipip|gre|gue]   (PREFIX: 1-8 lowercase letters/digits)" >&2
  exit 2
fi
case "$cmd" in
  up) up "${3:-ipip}" ;;
  down) down ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
