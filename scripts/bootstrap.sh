#!/usr/bin/env bash
# Installs the Debian packages l4mux needs to build, test and run. Idempotent: when every
# package is already there it only checks and exits (no network, well under a second).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config python3   # native build (cmake-js, node-gyp)
  clang lld libclang-rt-14-dev                          # libFuzzer targets, BPF programs
  libgtest-dev libgmock-dev                             # C++ unit tests
  libpcap-dev                                           # pcap replay, the `pcap` npm package
  libbpf-dev libxdp-dev                                 # AF_XDP
  tshark tcpdump                                        # independent decoding in tests
  iproute2 ethtool procps iputils-ping curl             # the netns lab
  nftables                                              # lab tests: drop and watch chosen packets
  bird2                                                 # BGP speaker of the muxes and the lab router
  etcd-server etcd-client                               # the etcd persistence store (tests start it)
  prometheus                                            # promtool and a real scrape in the metrics tests
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: missing packages: ${missing[*]}" >&2
  echo "bootstrap: run as root (sudo $0) to install them" >&2
  exit 1
fi

echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
