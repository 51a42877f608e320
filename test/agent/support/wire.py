#!/usr/bin/env python3
"""Sends one Ethernet frame on an interface and waits for a frame that matches.

Used by test/agent/netns.test.ts inside the client namespace: Node has no packet sockets.

    wire.py IFACE FRAME_HEX MATCH_JSON TIMEOUT_SECONDS

MATCH_JSON: {"src": "192.0.2.10", "dst": "198.51.100.7", "proto": 6, "sport": 8080, "dport": 40001}
(any field may be left out). Prints {"matched": true, "frame": HEX} or {"matched": false}.
"""
import ipaddress
import json
import socket
import sys
import time

ETH_P_ALL = 0x0003


def parse(frame):
    if len(frame) < 14:
        return None
    etype = int.from_bytes(frame[12:14], "big")
    ip = frame[14:]
    if etype == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        proto, src, dst, l4 = ip[9], ip[12:16], ip[16:20], ip[ihl:]
    elif etype == 0x86DD and len(ip) >= 40:
        proto, src, dst, l4 = ip[6], ip[8:24], ip[24:40], ip[40:]
    else:
        return None
    info = {"src": str(ipaddress.ip_address(src)), "dst": str(ipaddress.ip_address(dst)), "proto": proto}
    if proto in (6, 17) and len(l4) >= 4:
        info["sport"] = int.from_bytes(l4[0:2], "big")
        info["dport"] = int.from_bytes(l4[2:4], "big")
    return info


def main():
    iface, frame_hex, match_json, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    match = json.loads(match_json)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.send(bytes.fromhex(frame_hex))
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            break
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        info = parse(data)
        if info is not None and all(info.get(k) == v for k, v in match.items()):
            print(json.dumps({"matched": True, "frame": data.hex()}))
            return
    print(json.dumps({"matched": False}))


if __name__ == "__main__":
    main()
