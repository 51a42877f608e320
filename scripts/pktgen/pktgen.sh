#!/usr/bin/env bash
# Blasts TCP SYNs or UDP datagrams with varied source ports at a VIP, for load tests of a mux
# on production hosts. Uses the kernel's pktgen (/proc/net/pktgen) when the kernel has it,
# otherwise the bundled generator (build/bench/l4mux_pktgen). Always bounded: a packet count
# is required, and the bundled generator also stops at --duration.
#
#   scripts/pktgen/pktgen.sh --interface eth0 --dst-mac 02:00:00:00:00:01 --dst 192.0.2.10 \
#       --count 1000000 [--dport 80] [--proto tcp|udp] [--src 10.8.0.1] [--size 64] [--rate PPS]
#
# Only ever point it at a mux you run, on a network you own.
set -euo pipefail
cd "$(dirname "$0")/../.."

iface="" dst_mac="" dst="" count="" dport=80 proto=tcp src=10.8.0.1 size=64 rate=0 duration=60
while [ $# -gt 0 ]; do
  case "$1" in
    --interface) iface=$2 ;; --dst-mac) dst_mac=$2 ;; --dst) dst=$2 ;; --count) count=$2 ;;
    --dport) dport=$2 ;; --proto) proto=$2 ;; --src) src=$2 ;; --size) size=$2 ;;
    --rate) rate=$2 ;; --duration) duration=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
if [ -z "$iface" ] || [ -z "$dst_mac" ] || [ -z "$dst" ] || [ -z "$count" ]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi

kernel_pktgen() {
  [ -d /proc/net/pktgen ] || modprobe pktgen 2>/dev/null || return 1
  [ -w /proc/net/pktgen/kpktgend_0 ] || return 1
  local pg=/proc/net/pktgen dev="$iface@0"
  pgset() { echo "$1" > "$2"; }
  pgset "rem_device_all" "$pg/kpktgend_0"
  pgset "add_device $dev" "$pg/kpktgend_0"
  local d="$pg/$dev"
  pgset "count $count" "$d"
  pgset "clone_skb 0" "$d"
  pgset "pkt_size $size" "$d"
  pgset "dst_mac $dst_mac" "$d"
  pgset "dst $dst" "$d"
  pgset "src_min $src" "$d"
  pgset "src_max $src" "$d"
  [ "$rate" != 0 ] && pgset "ratep $rate" "$d"
  # Kernel pktgen sends UDP only; vary the source port so flows spread.
  [ "$proto" = tcp ] && echo "kernel pktgen sends UDP only: sending UDP" >&2
  pgset "udp_dst_min $dport" "$d"
  pgset "udp_dst_max $dport" "$d"
  pgset "udp_src_min 1024" "$d"
  pgset "udp_src_max 65000" "$d"
  pgset "flag UDPSRC_RND" "$d"
  echo "kernel pktgen: $count packets to $dst on $iface" >&2
  pgset "start" "$pg/pgctrl"
  grep -A2 "Result" "$d" || true
}

if kernel_pktgen; then exit 0; fi
echo "kernel pktgen unavailable: using the bundled generator" >&2
if [ ! -x build/bench/l4mux_pktgen ]; then
  cmake -S native -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DL4MUX_BENCH=ON >/dev/null
  cmake --build build/bench --target l4mux_pktgen >/dev/null
fi
exec build/bench/l4mux_pktgen --interface "$iface" --dst-mac "$dst_mac" --dst "$dst" --src "$src" \
  --dport "$dport" --proto "$proto" --size "$size" --rate "$rate" --count "$count" --duration "$duration"
