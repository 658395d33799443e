#!/bin/bash
# A UDP server on 0.0.0.0 (no IP_PKTINFO: socat, dnsmasq --listen-address)
# on a host with two IPv6 addresses: asked at 2001:db8::2 by an IPv6
# client, the widened socket's reply leaves from 2001:db8::3 (the kernel's
# choice) and the client's connected socket drops it. Over IPv4 it works.
#   DS_BUILD=build tests/corpus/repro/udp-source.sh   (as root)
TOP=$(cd "$(dirname "$0")/../../.." && pwd)
. "$TOP/tests/lab/lab.sh"
T=$(mktemp -d); trap 'lab_cleanup; rm -rf "$T"' EXIT
lab_pair > /dev/null || exit 1
lab_addr b "$LAB_IF_B" 192.0.2.3/24 2001:db8::3/64 > /dev/null || exit 1
for h in 192.0.2.2 2001:db8::2; do
  lab_bg b env LD_PRELOAD=${DS_BUILD:-$TOP/build}/libdualstack-preload.so \
    python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5300))
d, peer = s.recvfrom(512)
s.sendto(b"reply\n", peer)'
  lab_wait_port b udp 5300 5
  echo "client to $h: $(lab_run a python3 -I "$TOP/tests/corpus/probe.py" --udp "$h" 5300 hi)"
  wait "$LAB_PID" 2> /dev/null
done
