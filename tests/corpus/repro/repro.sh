#!/bin/bash
# Runs a reproduction in a lab: client A resolving through dnsd on B,
# v6only.test AAAA 2001:db8::2, a dual-stack echo on B port 7.
#   DS_BUILD=build tests/corpus/repro/repro.sh CMD ARGS...  (as root)
set -u
TOP=$(cd "$(dirname "$0")/../../.." && pwd)
. "$TOP/tests/lab/lab.sh"
trap lab_cleanup EXIT
lab_pair > /dev/null || exit 1
T=$(mktemp -d); trap 'lab_cleanup; rm -rf "$T"' EXIT
echo 'v6only.test AAAA 2001:db8::2' > "$T/dns.conf"
lab_dns b 192.0.2.2 "$T/dns.conf" "$T/dns.log" a > /dev/null || exit 1
lab_family_echo b 7 > /dev/null || exit 1
for pre in "" "LD_PRELOAD=${DS_BUILD:-$TOP/build}/libdualstack-preload.so"; do
  echo "--- ${pre:-without the shim}"
  lab_run a env $pre "$@"
done
