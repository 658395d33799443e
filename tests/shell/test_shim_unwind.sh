#!/bin/bash
# The shim when a hook is left by something other than a return: alarm
# and longjmp or siglongjmp out of connect or a lookup (as `wget -T` and
# `nc -w` do), a signal handler on a sigaltstack that connects while its
# thread waits in a raced connect, a coroutine on a heap stack
# (swapcontext) after such a longjmp, and pthread_cancel of a thread in
# connect. Whatever unwound the hook, every later call is translated, what
# the abandoned call left running is closed, and nothing crashes or hangs.
# tests/lab/shim_unwind.c is the program (and shim_unwind_fortify.c the
# same built with _FORTIFY_SOURCE=2, where longjmp is __longjmp_chk).
#
# The lab: B serves "family echo" on port 7 of 192.0.2.2 and 2001:db8::2;
# 2001:db8::3 (also B's) drops every TCP packet. Names from the test DNS
# server in B:
#   v6only.test  working, IPv6-only (2001:db8::2)
#   black.test   black-holed, IPv6-only (2001:db8::3)
#   silent.test  the DNS server never answers
#   hedge.test   2001:db8::3 (black-holed) and 192.0.2.2: with
#                DUALSTACK_ATTEMPT_DELAY_MS=1500 the race connects over
#                IPv4 after ~1.5 s
#   working.test, blackholed.test: the same as v6only.test and black.test,
#                for wget
#   good4.test, black4.test, working4.test, blackholed4.test: IPv4-only
#                twins (192.0.2.2 and 192.0.2.3, black-holed), for the
#                same programs without the shim
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PROG=$DS_BUILD/lab/shim_unwind
FORTIFY=$DS_BUILD/lab/shim_unwind_fortify
PY=/usr/bin/python3

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  lab_addr b "$LAB_IF_B" 2001:db8::3/64 192.0.2.3/24
  cat > "$LAB_TMP/dns.conf" <<'EOF'
v6only.test      AAAA 2001:db8::2
v6only.test      A    NODATA
working.test     AAAA 2001:db8::2
working.test     A    NODATA
black.test       AAAA 2001:db8::3
black.test       A    NODATA
blackholed.test  AAAA 2001:db8::3
blackholed.test  A    NODATA
silent.test      A    DROP
silent.test      AAAA DROP
hedge.test       AAAA 2001:db8::3
hedge.test       A    192.0.2.2
working4.test    A    192.0.2.2
good4.test       A    192.0.2.2
black4.test      A    192.0.2.3
blackholed4.test A    192.0.2.3
EOF
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  lab_family_echo b 7
  lab_blackhole b 2001:db8::3 - tcp
  lab_blackhole b 192.0.2.3 - tcp
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Runs PROGRAM ARGS... in A under the shim (without it when NOSHIM is
# set), DUALSTACK_TRACE to $LAB_TMP/trace, bounded by 30 s. Sets OUT (stdout and stderr), STATUS
# and MS (wall time); shows the output.
run() {
  local prog=$1 pre t0
  shift
  pre=$(ds_preload_c "$SHIM")
  if [ -n "${NOSHIM:-}" ]; then pre=$(ds_preload_c ""); fi
  rm -f "$LAB_TMP/trace"
  t0=$(date +%s%N)
  OUT=$(lab_run a env ${pre:+LD_PRELOAD="$pre"} DUALSTACK_TRACE="$LAB_TMP/trace" \
    ${EXTRA_ENV:+"$EXTRA_ENV"} timeout 30 "$prog" "$@" 2>&1)
  STATUS=$?
  MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "    [$(basename "$prog") $*: status $STATUS, ${MS} ms]"
  echo "$OUT" | sed 's/^/    /'
}

# Prints the value of key $1 in $OUT.
val() {
  echo "$OUT" | sed -n "s/^$1 //p" | head -n 1
}

# The run ended by itself, soon, without a crash or a sanitizer report.
assert_clean_exit() {
  assertEquals "exit status (124: hung, 134/139: crashed)" 0 "$STATUS"
  assertTrue "done in ${MS} ms" "[ $MS -lt 20000 ]"
  assertNotContains "no sanitizer report" "$OUT" "runtime error"
  assertNotContains "no sanitizer report" "$OUT" "ERROR: AddressSanitizer"
}

# The alarm ended the first call at ~1 s (not at once, not at its end).
assert_first_timed_out() {
  local ms
  ms=$(val "first timeout")
  assertNotNull "the alarm ended the first call" "$ms"
  assertTrue "after ${ms:-?} ms" "[ ${ms:-0} -ge 900 ] && [ ${ms:-0} -lt 6000 ]"
}

# The later connect to the working IPv6-only name was translated: it
# connected, getpeername is the synthetic address asked, and the server
# saw IPv6.
assert_second_translated() {
  local asked
  asked=$(val second_asked)
  assertEquals "the later connect succeeded" ok "$(val second)"
  case $asked in
    10.170.*) ;;
    *) fail "the later connect asked a synthetic address, not '$asked'" ;;
  esac
  assertEquals "getpeername is the address asked" "$asked" "$(val second_peer)"
  assertEquals "bytes flowed over IPv6" "ipv6 x" "$(val second_reply)"
}

# The reference: the same program without the shim, over IPv4 names,
# gets from the kernel and glibc what the tests below ask of the shim.
test_reference_without_the_shim_over_ipv4() {
  need_lab || return 0
  local args
  for args in "jump longjmp" "jump siglongjmp" "swapctx" "cancel"; do
    # shellcheck disable=SC2086
    NOSHIM=1 run "$PROG" $args black4.test good4.test 7
    assert_clean_exit
    assertEquals "$args: later connect" ok "$(val second)"
    assertEquals "$args: bytes flowed" "ipv4 x" "$(val second_reply)"
    case $args in
      cancel)
        assertEquals "cancelled in connect" cancelled "$(val join | cut -d' ' -f1)"
        assertEquals "only the cancelled thread's socket stays" 1 \
          "$(val fds_extra)" ;;
      *)
        assert_first_timed_out
        assertEquals "$args: no fd left" 0 "$(val fds_leaked)" ;;
    esac
  done
  for args in gai ghbn; do
    NOSHIM=1 run "$PROG" lookup $args silent.test good4.test 7
    assert_clean_exit
    assert_first_timed_out
    assertEquals "lookup $args: later lookup" 192.0.2.2:7 \
      "$(val second_lookup)"
    assertEquals "lookup $args: bytes flowed" "ipv4 x" "$(val second_reply)"
  done
}

# (1) alarm + longjmp out of a blocking connect to a black-holed name,
# then a connect from deeper on the stack than that one.
check_jump() {
  local prog=$1 kind=$2
  run "$prog" jump "$kind" black.test v6only.test 7
  assert_clean_exit
  assert_first_timed_out
  assertEquals "the later connect ran deeper on the stack" 1 "$(val deeper)"
  assert_second_translated
  assertEquals "no fd of the abandoned race left" 0 "$(val fds_leaked)"
}

test_longjmp_out_of_connect_then_deeper_connect_is_translated() {
  need_lab || return 0
  check_jump "$PROG" longjmp
}

test_siglongjmp_out_of_connect_then_deeper_connect_is_translated() {
  need_lab || return 0
  check_jump "$PROG" siglongjmp
}

# The same built as distributions build programs: longjmp and siglongjmp
# are __longjmp_chk.
test_fortified_longjmp_chk_out_of_connect_then_deeper_connect() {
  need_lab || return 0
  local lvl
  lvl=$("$FORTIFY" info | sed -n 's/^fortify //p')
  if [ "${lvl:-0}" = 0 ]; then
    ds_skip "built without optimization: no _FORTIFY_SOURCE, no __longjmp_chk"
    return 0
  fi
  nm -D "$FORTIFY" | grep -q ' U __longjmp_chk'
  assertTrue "the fortified build calls __longjmp_chk" $?
  if nm -D "$FORTIFY" | grep -Eq ' U (sig)?longjmp@'; then
    fail "the fortified build still calls longjmp or siglongjmp"
  fi
  check_jump "$FORTIFY" longjmp
  check_jump "$FORTIFY" siglongjmp
}

# (2) alarm + siglongjmp out of a lookup the DNS server never answers,
# then, deeper, getaddrinfo and connect of a working name.
check_lookup() {
  run "$PROG" lookup "$1" silent.test v6only.test 7
  assert_clean_exit
  assert_first_timed_out
  assertEquals "the later lookup ran deeper on the stack" 1 "$(val deeper)"
  case $(val second_lookup) in
    10.170.*) ;;
    *) fail "the later lookup gave a synthetic address, not '$(val second_lookup)'" ;;
  esac
  assert_second_translated
  assertEquals "no fd of the abandoned lookup left" 0 "$(val fds_leaked)"
}

test_siglongjmp_out_of_getaddrinfo_then_lookup_and_connect_translated() {
  need_lab || return 0
  check_lookup gai
  grep -q ' silent.test ' "$LAB_TMP/dns.log"
  assertTrue "silent.test was asked (and dropped)" $?
}

test_siglongjmp_out_of_gethostbyname_then_lookup_and_connect_translated() {
  need_lab || return 0
  check_lookup ghbn
}

# (3) SIGALRM with SA_ONSTACK|SA_RESTART fires 300 ms into a raced connect
# to hedge.test (which connects over IPv4 at ~1.5 s); the handler, on a
# sigaltstack, connects a fresh socket to v6only.test's synthetic address.
# The handler's connect either works or is refused with ENETUNREACH and a
# "refused" trace line (never sent to the network); the main connect ends
# as it would have: connected over IPv4, peer as asked.
check_altstack() {
  local where=$1 h res ms
  EXTRA_ENV=DUALSTACK_ATTEMPT_DELAY_MS=1500 \
    run "$PROG" altstack "$where" hedge.test v6only.test 7
  assert_clean_exit
  assertEquals "the handler ran on the alternate stack" 1 \
    "$(val handler_onstack)"
  h=$(val handler_connect)
  case $h in
    ok) ;;
    ENETUNREACH)
      grep -q '"reason":"[^"]*refused[^"]*".*10\.170\.' "$LAB_TMP/trace"
      assertTrue "ENETUNREACH in the handler comes with a 'refused' trace line" $?
      ;;
    *) fail "the handler's connect: '$h' (ok or ENETUNREACH)" ;;
  esac
  read -r res ms <<< "$(val main)"
  assertEquals "the main connect completed" ok "$res"
  assertTrue "the main connect waited for the race (${ms:-?} ms)" \
    "[ ${ms:-0} -ge 1000 ]"
  assertEquals "main getpeername is the address asked" "$(val main_asked)" \
    "$(val main_peer)"
  assertEquals "main bytes flowed (IPv4 won)" "ipv4 x" "$(val main_reply)"
  assertEquals "later connect on the main stack" ok "$(val after)"
  assertEquals "later connect translated" "ipv6 x" "$(val after_reply)"
}

test_handler_on_heap_sigaltstack_connects_during_raced_connect() {
  need_lab || return 0
  check_altstack heap
}

# The alternate stack lies in main's frame, above the shim's frames in the
# interrupted connect (it is a stack-depth heuristic's worst case).
test_handler_on_sigaltstack_above_the_connect_connects_during_race() {
  need_lab || return 0
  check_altstack frame
  assertEquals "the alternate stack lay above the connect" above \
    "$(val altstack_is)"
}

# (4) siglongjmp out of connect on the main stack, then a coroutine on a
# heap stack looks up and connects a working name.
test_coroutine_on_heap_stack_after_longjmp_out_of_connect() {
  need_lab || return 0
  run "$PROG" swapctx black.test v6only.test 7
  assert_clean_exit
  assert_first_timed_out
  assertEquals "the coroutine ran below the main stack" below \
    "$(val coroutine_stack)"
  case $(val second_lookup) in
    10.170.*) ;;
    *) fail "the coroutine's lookup gave a synthetic address, not '$(val second_lookup)'" ;;
  esac
  assert_second_translated
  assertEquals "back on the main stack" 1 "$(val back_on_main)"
  assertEquals "no fd of the abandoned race left" 0 "$(val fds_leaked)"
}

# (5) pthread_cancel of a thread blocked in a raced connect: the cancel
# takes effect (connect is a cancellation point), then another thread's
# connect is translated, and only the cancelled thread's own socket stays.
test_pthread_cancel_in_connect_then_another_thread_is_translated() {
  need_lab || return 0
  run "$PROG" cancel black.test v6only.test 7
  assert_clean_exit
  local res ms extra
  read -r res ms <<< "$(val join)"
  assertEquals "the thread was cancelled in connect" cancelled "$res"
  assertTrue "joined within 5 s (${ms:-?} ms)" "[ ${ms:-99999} -lt 5000 ]"
  assert_second_translated
  extra=$(val fds_extra)
  assertNotNull "fds counted" "$extra"
  assertTrue "fds left: ${extra:-?} (at most the cancelled thread's socket)" \
    "[ ${extra:-99} -le 1 ]"
}

# (6) wget -T 1 with two URLs: the first (black-holed) times out through
# wget's alarm + siglongjmp, the second is fetched over IPv6 with the shim.
# Without the shim (the reference) wget -4 reaches neither.
test_wget_timeout_then_second_url_is_fetched_over_ipv6() {
  need_lab || return 0
  command -v wget > /dev/null || { ds_skip "no wget"; return 0; }
  local www=$LAB_TMP/www t0 ms plain out status
  mkdir -p "$www"
  echo "hello-unwind" > "$www/index.html"
  lab_bg b sh -c "cd '$www' && exec $PY -u -m http.server --bind :: 80 \
    > '$LAB_TMP/http.log' 2>&1"
  lab_wait_port b tcp 80
  # The reference: the same wget without the shim. IPv6-only names give
  # it nothing; their IPv4 twins show what wget itself does (the first
  # URL times out at ~1 s, the second is fetched).
  plain=$(lab_run a timeout 60 wget -4 -T 1 --tries=1 -O - \
    http://blackholed.test:80/ http://working.test:80/ 2>&1)
  echo "$plain" | sed 's/^/    reference: /'
  assertNotContains "without the shim wget -4 fetches nothing" "$plain" \
    "hello-unwind"
  plain=$(lab_run a timeout 60 wget -4 -T 1 --tries=1 -O - \
    http://blackholed4.test:80/ http://working4.test:80/ 2>&1)
  echo "$plain" | sed 's/^/    reference (IPv4 twins): /'
  assertContains "reference: the first URL timed out" "$plain" "timed out"
  assertContains "reference: the second URL was fetched" "$plain" \
    "hello-unwind"
  : > "$LAB_TMP/http.log"
  t0=$(date +%s%N)
  out=$(lab_run a env LD_PRELOAD="$SHIM" timeout 60 \
    wget -4 -T 1 --tries=1 -O - \
    http://blackholed.test:80/ http://working.test:80/ 2>&1)
  status=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$out" | sed "s/^/    shim (${ms} ms, status $status): /"
  sed 's/^/    server: /' "$LAB_TMP/http.log"
  assertNotEquals "wget did not hang" 124 "$status"
  assertTrue "done in ${ms} ms" "[ $ms -lt 20000 ]"
  assertContains "the first URL timed out" "$out" "timed out"
  assertContains "the second URL was fetched" "$out" "hello-unwind"
  grep -q '^2001:db8::1 .*"GET / ' "$LAB_TMP/http.log"
  assertTrue "the server saw A's IPv6 address" $?
}

ds_run_shunit
