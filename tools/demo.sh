#!/bin/bash
# make demo: the shim's main job, shown in a private network lab.
#
# As root: two network namespaces (tests/lab/lab.sh), a name server, an
# IPv6-only service v6only.demo, a dual-stack service dual.demo whose IPv6
# is black-holed, the real IPv4-only client nc.traditional run through
# dualstack-compare against each, and the legacy server nc.traditional -l
# reached over IPv6 through the shim. Without root: what works on loopback,
# and a list of what was skipped.
#
# Nothing leaves the lab: the namespaces have no route out, and are removed
# on exit, also on failure or Ctrl-C. Timelines go to $DS_BUILD/demo/.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
DS_TOP=$top
DS_BUILD=${DS_BUILD:-$top/build}
case $DS_BUILD in /*) ;; *) DS_BUILD=$top/$DS_BUILD ;; esac
export DS_TOP DS_BUILD
RUN=$top/tools/dualstack-run
COMPARE=$top/tools/dualstack-compare
CONNECT=$DS_BUILD/dualstack-connect
LISTEN=$DS_BUILD/dualstack-listen
OUT=$DS_BUILD/demo
t_start=$(date +%s)
skipped=()

say() { printf '\n== %s\n\n' "$*"; }
note() { printf '%s\n' "$*" | fold -s -w 79; }

for f in "$DS_BUILD/libdualstack-preload.so" "$CONNECT" "$LISTEN"; do
  if [ ! -e "$f" ]; then
    echo "demo: $f is missing: run make first" >&2
    exit 1
  fi
done
for p in nc.traditional /usr/bin/python3; do
  if ! command -v "$p" > /dev/null; then
    echo "demo: $p is missing (apt-get install netcat-traditional python3)" >&2
    exit 1
  fi
done
# Timelines go to build/demo, or to a temporary directory for a user who
# cannot write there.
if ! { mkdir -p "$OUT" && [ -w "$OUT" ]; } 2>/dev/null; then
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/dualstack-demo.XXXXXX") || exit 1
fi
rm -f "$OUT"/*.svg

# Prints a connection's outcome from dualstack-compare --json on stdin:
# "before: ... / after: ..." for the first connect row.
summary() {
  /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
def one(c):
    if c is None:
        return "no connection"
    return "%s %s %s in %.1f ms" % (c["family"], c["addr"], c["result"],
                                     c["ms"])
rows = [r for r in d["rows"] if r["kind"] == "connect"]
for run in ("before", "after"):
    st = d["runs"][run]
    c = rows[0][run] if rows else None
    print("  %-6s %s; exit %s" % (run + ":", one(c), st["exit"]))'
}

loopback_demo() {
  say "On loopback (no root: no private lab)"
  note "An IPv6 literal where an IPv4-only program expects an IPv4 address:
nc.traditional cannot use [::1], with the shim it can."
  local tmp port_file
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/dualstack-demo.XXXXXX") || return
  port_file=$tmp/port
  /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET6)
s.bind(("::1", 0)); s.listen(16)
open(sys.argv[1], "w").write("%d\n" % s.getsockname()[1])
time.sleep(30)' "$port_file" &
  local srv=$! i
  for i in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
  local port
  port=$(cat "$port_file" 2>/dev/null)
  if [ -z "$port" ]; then
    echo "demo: could not listen on [::1]"
    skipped+=("loopback: no IPv6 on loopback")
  else
    echo "\$ dualstack-compare -- nc.traditional -z -w 3 ::1 $port"
    "$COMPARE" --timeout 10 --svg "$OUT/loopback.svg" -- \
      nc.traditional -z -w 3 ::1 "$port" < /dev/null
  fi
  kill "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null
  rm -rf "$tmp"
  skipped+=("the private lab (needs root for network namespaces): v6only.demo, dual.demo with black-holed IPv6, the legacy server")
}

lab_demo() {
  # shellcheck disable=SC1091
  . "$top/tests/lab/lab.sh"
  if ! lab_available; then
    echo "demo: the lab cannot run: $LAB_WHY"
    loopback_demo
    return
  fi
  trap 'lab_cleanup' EXIT
  trap 'lab_cleanup; exit 130' INT TERM
  say "Setting up a private lab"
  lab_pair > /dev/null || { echo "demo: lab setup failed"; exit 1; }
  lab_addr b eth0 2001:db8::3/64
  cat > "$LAB_TMP/dns.conf" <<'EOF'
v6only.demo  AAAA  2001:db8::3
v6only.demo  A     NODATA
dual.demo    A     192.0.2.2
dual.demo    AAAA  2001:db8::2
EOF
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  lab_bg b "$LISTEN" -k --echo 80 > /dev/null 2>&1
  lab_wait_port b tcp 80
  lab_blackhole b 2001:db8::2 80 tcp
  note "Namespace A (client: 192.0.2.1, 2001:db8::1) and B (server:
192.0.2.2, 2001:db8::2, 2001:db8::3), a name server in B, no route out.
v6only.demo has only an AAAA record (2001:db8::3); dual.demo has A
192.0.2.2 and AAAA 2001:db8::2, and packets to 2001:db8::2 port 80 are
dropped (a black hole, as on a network with broken IPv6). B runs an echo
service on port 80 of every address."

  say "1. An IPv6-only service, v6only.demo"
  note "nc.traditional resolves with gethostbyname (IPv4 only). Before: no
address. After: the shim answers a synthetic IPv4 address and connects
over IPv6."
  echo
  echo "\$ dualstack-compare -- nc.traditional -z -w 5 v6only.demo 80"
  lab_run a "$COMPARE" --timeout 15 --svg "$OUT/v6only.svg" -- \
    nc.traditional -z -w 5 v6only.demo 80 < /dev/null

  say "2. A dual-stack service with broken IPv6, dual.demo"
  note "Before: nc uses IPv4 and never sees IPv6. After: the shim races
IPv6 first (RFC 8305), and IPv4 wins 250 ms later instead of waiting for
TCP to give up on the black hole (over two minutes)."
  echo
  echo "\$ dualstack-compare -- nc.traditional -z -w 5 dual.demo 80"
  lab_run a "$COMPARE" --timeout 15 --svg "$OUT/dual.svg" -- \
    nc.traditional -z -w 5 dual.demo 80 < /dev/null

  say "3. A legacy server reached over IPv6"
  note "nc.traditional -l -p 8080 binds 0.0.0.0: IPv4 only. A client in A
connects to [2001:db8::2]:8080 with dualstack-connect -6."
  local got
  lab_bg b nc.traditional -l -p 8080 > "$LAB_TMP/plain.out" 2>&1
  lab_wait_port b tcp 8080
  echo
  echo "without the shim:"
  got=$(echo "hello over IPv6" |
        lab_run a timeout 5 "$CONNECT" -6 2001:db8::2 8080 2>&1)
  echo "  $got"
  lab_kill "$LAB_PID"
  lab_bg b "$RUN" --trace "$LAB_TMP/server.json" -- \
    nc.traditional -l -p 8080 > "$LAB_TMP/shim.out" 2>&1
  lab_wait_port b tcp 8080
  echo "with the shim (dualstack-run -- nc.traditional -l -p 8080):"
  echo "hello over IPv6" |
    lab_run a timeout 5 "$CONNECT" -6 2001:db8::2 8080 > /dev/null 2>&1
  sleep 0.3
  if grep -q "hello over IPv6" "$LAB_TMP/shim.out"; then
    echo "  the server printed: $(cat "$LAB_TMP/shim.out")"
    grep '"bind"' "$LAB_TMP/server.json" | sed 's/^/  trace: /'
  else
    echo "  not reached: this build's shim does not widen a 0.0.0.0 bind yet"
    grep '"bind"' "$LAB_TMP/server.json" 2>/dev/null | sed 's/^/  trace: /'
    skipped+=("the legacy server over IPv6 (server side of the shim missing)")
  fi
  lab_kill "$LAB_PID" 2> /dev/null
  lab_cleanup
  trap - EXIT INT TERM
}

if [ "$(id -u)" = 0 ]; then
  lab_demo
else
  loopback_demo
fi

say "Done"
for f in "$OUT"/*.svg; do
  [ -e "$f" ] && echo "timeline: $f (open it in a browser)"
done
for s in "${skipped[@]}"; do echo "skipped: $s"; done
echo "demo: done in $(( $(date +%s) - t_start )) s"
