#!/bin/bash
# The shim and errno: bad input gets the kernel's errno (EBADF, ENOTSOCK,
# EINVAL), a hook that succeeds leaves errno as the application had it,
# and a hook reached inside another (a signal handler while the main
# thread waits in a lookup) refuses pool addresses with ENETUNREACH and a
# trace line. Each case runs with and without the shim in the same lab and
# the outputs are compared; tests/lab/shim_errno.c is the program.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PROG=$DS_BUILD/lab/shim_errno
PY=/usr/bin/python3

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  cat > "$LAB_TMP/dns.conf" <<'EOF2'
v6only.test  AAAA 2001:db8::2
v6only.test  A    NODATA
both.test    A    192.0.2.2
both.test    AAAA 2001:db8::2
slow.test    A    192.0.2.2     delay=1500
slow.test    AAAA NODATA
EOF2
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # A TCP server on port 7 of both families.
  lab_family_echo b 7
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Runs the program in A: $1 = "shim" or "plain", then its arguments.
# Under SANITIZE it is built with ASan, whose runtime must come first.
run() {
  local how=$1 pre
  shift
  pre=$(ds_preload_c "$([ "$how" = shim ] && echo "$SHIM")")
  lab_run a env ${pre:+LD_PRELOAD="$pre"} DUALSTACK_TRACE="$LAB_TMP/trace" \
    timeout 20 "$PROG" "$@" 2>&1
}

test_nc_listen_line_is_the_same_as_without_the_shim() {
  need_lab || return 0
  local plain shimmed
  plain=$(lab_run a timeout -s INT 1 nc.traditional -l -p 5001 -v 2>&1)
  shimmed=$(lab_run a env LD_PRELOAD="$SHIM" timeout -s INT 1 \
    nc.traditional -l -p 5002 -v 2>&1)
  assertContains "$plain" "listening on [any] 5001 ..."
  assertEquals "the same line, no stale errno" "$plain" \
    "$(echo "$shimmed" | sed 's/5002/5001/')"
  assertContains "widened" "$(cat "$LAB_TMP/trace" 2>/dev/null; \
    lab_run a env LD_PRELOAD="$SHIM" DUALSTACK_TRACE=stderr timeout -s INT 1 \
    nc.traditional -l -p 5003 2>&1)" '"widened":true'
}

test_bad_input_gets_the_kernels_errno() {
  need_lab || return 0
  local plain out
  plain=$(run plain bad 10.170.160.1)
  assertContains "$plain" "connect_badfd EBADF"
  assertContains "$plain" "connect_file ENOTSOCK"
  assertContains "$plain" "connect_short EINVAL"
  # A pool address without mapping, one the shim handed out for a name,
  # and a source-pool address: bad input is still the kernel's to judge.
  for addr in 10.170.160.1 v6only.test 172.21.112.1; do
    out=$(run shim bad "$addr")
    assertEquals "$addr" "$plain" "$out"
  done
}

test_success_leaves_errno_as_it_was() {
  need_lab || return 0
  local plain out
  plain=$(run plain keep both.test both.test 7)
  out=$(run shim keep both.test v6only.test 7)
  assertEquals "every call succeeded and left errno alone" \
    "" "$(echo "$plain" | grep -v ' ok 12345$')"
  assertEquals "as without the shim" "$plain" "$out"
  grep -q '"widened":true' "$LAB_TMP/trace"
  assertTrue "the bind was widened" $?
}

test_nested_connect_and_sendto_refuse_pool_addresses() {
  need_lab || return 0
  local plain out
  # Without the shim a 10.170.160.x address has no route in the lab.
  plain=$(run plain nested 10.170.160.1 slow.test 7)
  assertEquals "lookup ok
nested_connect ENETUNREACH
nested_sendto ENETUNREACH" "$plain"
  # Under the shim the handler runs while getaddrinfo(slow.test) holds the
  # guard: the synthetic address of v6only.test is refused, not
  # translated, and never sent (no route would also say ENETUNREACH, so
  # the trace must say why).
  out=$(run shim nested v6only.test slow.test 7)
  assertEquals "$plain" "$out"
  assertEquals "a trace line each" 2 \
    "$(grep -c '"reason":"nested call.*ENETUNREACH".*10\.170\.1[67]' \
      "$LAB_TMP/trace")"
}

ds_run_shunit
