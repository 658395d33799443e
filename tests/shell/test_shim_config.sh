#!/bin/bash
# The shim's settings from the environment (DESIGN.md's table, client
# side): each one changes what a real client does, measured from the
# trace's attempt events and from what the server saw; bad values are
# named in the trace and the default is used.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  lab_run b ip addr add 2001:db8::3/64 dev "$LAB_IF_B" nodad
  cat > "$LAB_TMP/dns.conf" <<'EOF2'
v6only.test  AAAA 2001:db8::2
v6only.test  A    NODATA
both.test    A    192.0.2.2
both.test    AAAA 2001:db8::2
two6.test    A    192.0.2.2
two6.test    AAAA 2001:db8::2,2001:db8::3
late6.test   A    192.0.2.2
late6.test   AAAA 2001:db8::2 delay=300
EOF2
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  lab_bg b $PY -c '
import socket, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 7)); s.listen(64)
def serve(c, a):
    c.sendall(b"ipv4\n" if a[0].startswith("::ffff:") else b"ipv6\n")
    c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a)).start()'
  lab_wait_port b tcp 7
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Connects N times (in one process) to NAME port 7 under the shim with the
# given environment: go N NAME [VAR=VALUE...]. Prints per connect the
# family the server saw (or the error) and the ms it took.
go() {
  local n=$1 name=$2
  shift 2
  rm -f "$LAB_TMP/trace"
  lab_run a env LD_PRELOAD=$SHIM DUALSTACK_TRACE="$LAB_TMP/trace" "$@" \
    timeout 20 $PY -c '
import socket, sys, time
for i in range(int(sys.argv[2])):
    t = time.monotonic()
    try:
        a = socket.gethostbyname(sys.argv[1])
        s = socket.socket(); s.connect((a, 7))
        print(s.recv(10).decode().strip(), round((time.monotonic() - t) * 1000))
        s.close()
    except OSError as e:
        print(type(e).__name__, e.errno, round((time.monotonic() - t) * 1000))
' "$name" "$n" 2>&1
}

# Prints the attempts of the trace: "family t_ms" per line, per race in
# order of start.
attempts() {
  $PY - "$LAB_TMP/trace" <<'EOF2'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
for i in sorted({e["id"] for e in ev if e["event"] == "attempt"}):
    a = sorted((e for e in ev if e["event"] == "attempt" and e["id"] == i),
               key=lambda e: e["t_ms"])
    print(" ".join("%s@%d" % (e["family"], e["t_ms"]) for e in a))
EOF2
}

# Asserts the gap (ms) between the first two attempts of the only race
# lies in [lo, hi].
gap_between() {
  local g
  g=$(attempts | head -n 1 | sed 's/[a-z0-9]*@\([0-9]*\) [a-z0-9]*@\([0-9]*\).*/\2 - \1/')
  g=$(( g ))
  assertTrue "$1: attempt gap ${g} ms not in [$2, $3]" \
    "[ $g -ge $2 ] && [ $g -le $3 ]"
}

test_attempt_delay() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 7 tcp
  out=$(go 1 both.test)
  assertContains "default: IPv4 after the IPv6 attempt" "$out" "ipv4"
  gap_between "default 250" 245 400
  out=$(go 1 both.test DUALSTACK_ATTEMPT_DELAY_MS=100)
  assertContains "100 ms: IPv4" "$out" "ipv4"
  gap_between "100 ms" 95 200
}

test_prefer_ipv4() {
  need_lab || return 0
  out=$(go 1 both.test)
  assertContains "default prefers IPv6" "$out" "ipv6"
  out=$(go 1 both.test DUALSTACK_PREFER=ipv4)
  assertContains "ipv4 preferred" "$out" "ipv4"
  assertEquals "its first attempt is IPv4" ipv4 \
    "$(attempts | head -n 1 | cut -d@ -f1)"
}

test_family_count() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 7 tcp
  lab_blackhole b 2001:db8::3 7 tcp
  out=$(go 1 two6.test DUALSTACK_ATTEMPT_DELAY_MS=50)
  assertEquals "default: one IPv6, then IPv4" "ipv6 ipv4" \
    "$(attempts | head -n 1 | sed 's/@[0-9]*//g')"
  out=$(go 1 two6.test DUALSTACK_ATTEMPT_DELAY_MS=50 DUALSTACK_FAMILY_COUNT=2)
  assertEquals "2: two IPv6, then IPv4" "ipv6 ipv6 ipv4" \
    "$(attempts | head -n 1 | sed 's/@[0-9]*//g')"
  assertContains "IPv4 won" "$out" "ipv4"
}

test_connect_timeout() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 7 tcp
  lab_blackhole b 192.0.2.2 7 tcp
  out=$(go 1 both.test DUALSTACK_CONNECT_TIMEOUT_MS=700)
  ms=${out##* }
  assertContains "ETIMEDOUT" "$out" "TimeoutError 110"
  assertTrue "700 ms bound: took $ms ms" "[ $ms -ge 690 ] && [ $ms -lt 1500 ]"
}

test_family_memory() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 7 tcp
  go 2 both.test >/dev/null
  assertEquals "default: the second race starts with IPv4" "ipv6 ipv4
ipv4" "$(attempts | sed 's/@[0-9]*//g')"
  go 2 both.test DUALSTACK_MEMORY_S=0 >/dev/null
  assertEquals "0: no memory" "ipv6 ipv4
ipv6 ipv4" "$(attempts | sed 's/@[0-9]*//g')"
}

test_resolution_delay() {
  need_lab || return 0
  # AAAA answers 300 ms after A: by default the lookup does not wait for
  # it and the name is used as IPv4-only; a longer Resolution Delay waits.
  out=$(go 1 late6.test)
  assertContains "default 50 ms: IPv4" "$out" "ipv4"
  out=$(go 1 late6.test DUALSTACK_RESOLUTION_DELAY_MS=1000)
  assertContains "1000 ms: the AAAA is in time, IPv6 wins" "$out" "ipv6"
}

test_pool() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_POOL=10.99.0.0/24 $PY -c '
import socket; print(socket.gethostbyname("v6only.test"))')
  assertEquals "synthetic from the pool given" 10.99.0.1 "$out"
}

# A /8 pool costs what a /20 costs: memory and work follow the names in
# use, not the pool's size. Counted in page faults of the lookup, which
# do not depend on the machine's load (a table sized by the pool, 16 M
# entries, took over a million faults and about a second to scan).
test_pool_of_a_slash8_costs_what_a_slash20_costs() {
  need_lab || return 0
  local prog='
import resource, socket
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = socket.gethostbyname("v6only.test")
print(a, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)'
  set -- $(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_POOL=10.0.0.0/8 $PY -c "$prog")
  assertEquals "/8: the pool's first address" 10.0.0.1 "$1"
  local big=$2
  set -- $(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_POOL=10.99.0.0/20 $PY -c "$prog")
  assertEquals "/20: the pool's first address" 10.99.0.1 "$1"
  [ -n "$big" ] && [ -n "$2" ] && [ "$big" -lt $(($2 + 2000)) ] ||
    fail "page faults of the first lookup: /8 $big, /20 $2"
}

# A daemon that closed its stdin expects its next open() to be fd 0. The
# shim starts later (its first lookup), with no room for its own fds at
# their floor (half of a small RLIMIT_NOFILE): its trace and its resolver
# must not take fd 0 (tests/lab/shim_stdin.c).
test_closed_stdin_stays_the_programs() {
  need_lab || return 0
  # Under SANITIZE the C program is built with ASan, whose runtime must be
  # loaded first; the shim itself has UBSan only.
  local pre
  pre=$(ds_preload_c "$SHIM")
  out=$(lab_run a $DS_BUILD/lab/shim_stdin v6only.test)
  assertContains "without the shim" "$out" "reopened 0"
  out=$(lab_run a env LD_PRELOAD="$pre" DUALSTACK_TRACE=$LAB_TMP/trace \
    $DS_BUILD/lab/shim_stdin v6only.test)
  assertContains "the shim answered" "$out" "lookup 0"
  assertContains "with the shim" "$out" "reopened 0"
  grep -q '"event":"lookup"' "$LAB_TMP/trace" ||
    fail "no trace written: $(cat "$LAB_TMP/trace" 2>&1)"
}

test_bad_values_are_named_and_the_default_used() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 7 tcp
  out=$(go 1 both.test DUALSTACK_ATTEMPT_DELAY_MS=abc DUALSTACK_PREFER=ipv5 \
    DUALSTACK_FAMILY_COUNT=-1 DUALSTACK_POOL_LEASE_S=1d)
  assertContains "still works" "$out" "ipv4"
  gap_between "default 250" 245 400
  grep -q 'DUALSTACK_ATTEMPT_DELAY_MS=abc: not a number from 10 to 2000' \
    "$LAB_TMP/trace" || fail "attempt delay not named: $(cat "$LAB_TMP/trace")"
  grep -q 'DUALSTACK_PREFER=ipv5: not ipv4 or ipv6' "$LAB_TMP/trace" ||
    fail "prefer not named"
  grep -q 'DUALSTACK_FAMILY_COUNT=-1' "$LAB_TMP/trace" ||
    fail "family count not named"
  grep -q 'DUALSTACK_POOL_LEASE_S=1d: not a number from 0 to 86400' \
    "$LAB_TMP/trace" || fail "pool lease not named"
}

ds_run_shunit
