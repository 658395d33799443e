#!/bin/bash
# Edge cases of issue 19's review (round 2), one test per defect: a
# signal handler on a sigaltstack above (or below) the main stack that
# jumps inside itself and looks a name up while getaddrinfo() is in a
# hook; a handler's longjmp into a makecontext coroutine's stack; the
# shim's fd numbers taken by the program after a raw close_range; a failed
# exec during a non-blocking race that outlives the exec's wait; connect()
# on a dup of a racing fd; the shim's helper killed by a raw close_range
# during a race. The kernel is the reference: each case also runs without
# the shim, against B's real IPv4 address (black-holed, then lifted, where
# the shim's case waits for a slow race). tests/lab/shim_edges2.c is the
# program (shim_edges2_fortify.c the same built with _FORTIFY_SOURCE=2);
# names come from the test DNS server in B through A's resolv.conf.
#
# EDGES_SHIM selects the shim (default: this build's), so the suite can
# be pointed at another build's library with this build's program:
#   EDGES_SHIM=/other/build/libdualstack-preload.so \
#     bash tests/shell/test_shim_edges2.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=${EDGES_SHIM:-$DS_BUILD/libdualstack-preload.so}
PROG=$DS_BUILD/lab/shim_edges2
FORTIFY=$DS_BUILD/lab/shim_edges2_fortify
# Every run is bounded: a hung one is killed by timeout(1) (status 124).
# The behaviours under test take 0-10 s.
HANG=25

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  # slowgood.test's AAAA comes 800 ms late, slow25.test's 2500 ms late
  # (longer than the 2 s an exec waits for a race): a race looks the name
  # up again, so it is won that long after the connect. silent.test is
  # never answered. v4.test has B's IPv4 address (the kernel's lookups).
  cat > "$LAB_TMP/dns.conf" <<'CONF'
good.test      AAAA 2001:db8::2
good.test      A    NODATA
slowgood.test  AAAA 2001:db8::2   delay=800
slowgood.test  A    NODATA
slow25.test    AAAA 2001:db8::2   delay=2500
slow25.test    A    NODATA
v4.test        A    192.0.2.2
v4.test        AAAA NODATA
silent.test    *    DROP
CONF
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # An echo server on port 7 of both families that first says which
  # family the client came with.
  lab_family_echo b 7
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Runs a program in A: $1 = shim|bare, $2 = the program, then VAR=VALUE
# settings, then -- and the program's arguments. Prints its output, then
# "status N" (124: hung, killed by timeout; 128+N: killed by signal N).
# Under the shim the trace goes to $LAB_TMP/trace unless a setting says
# otherwise.
runp() {
  local kind=$1 prog=$2 pre envs=()
  shift 2
  [ "$kind" = shim ] && envs+=(DUALSTACK_TRACE="$LAB_TMP/trace")
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  envs+=(LAB_SH="$LAB_SH" LAB_NS_B="$LAB_NS_B")
  pre=$(ds_preload_c "$([ "$kind" = shim ] && echo "$SHIM")")
  lab_run a env ${pre:+LD_PRELOAD="$pre"} "${envs[@]}" \
    timeout "$HANG" "$prog" "$@" 2>&1
  echo "status $?"
}

run() {
  local kind=$1
  shift
  runp "$kind" "$PROG" "$@"
}

# Prints the value of key $1 in output $2.
val() {
  echo "$2" | sed -n "s/^$1 //p" | head -n 1
}

# Asserts LO <= VALUE < HI (numbers): $1 message, $2 value, $3 lo, $4 hi.
assertBetween() {
  awk -v v="$2" -v lo="$3" -v hi="$4" \
    'BEGIN { exit !(v != "" && v + 0 >= lo && v + 0 < hi) }' ||
    fail "$1: '$2' not in [$3, $4)"
}

# The name gave a synthetic address (it is IPv6-only).
check_synthetic() {
  echo "$2" | grep -q '^asked 10\.170\.' ||
    fail "$1: not a synthetic address: $2"
}

# Black-holes TCP port 7 of B's IPv4 address; LIFT (run by the program
# through system(), in A) removes it, so that the kernel's connect
# completes with a SYN retransmission.
blackhole_b4() {
  lab_unfilter b
  lab_blackhole b "$LAB_B4" 7 tcp
}
# shellcheck disable=SC2016 # expanded by the sh that system() starts
LIFT='"$LAB_SH" unfilter "$LAB_NS_B"'

# 1. SIGALRM every 100 ms (SA_RESTART | SA_ONSTACK), its handler on a
# sigaltstack mapped above the main stack (or malloc'd, below it), while
# the main thread is in getaddrinfo() of a name whose DNS never answers
# (timeout:2 attempts:1). The handler does a local setjmp/longjmp, then
# getaddrinfo() of v4.test. No crash (was, with the stack above: SIGSEGV
# or a double free); getaddrinfo fails as without the shim (EAI_AGAIN);
# every lookup in the handler gives B's address, as without the shim;
# the lookup after (good.test) gives a synthetic address (the shim's
# state for the interrupted lookup was released). Without the shim
# glibc's resolver gives up at the handler's first return (its nested
# lookup used the same resolver state), so the kernel's handler runs
# once; the shim's lookup runs its 2 s. Both again with the program
# built with _FORTIFY_SOURCE=2.
test_altstack_handler_jumps_and_looks_up_during_getaddrinfo() {
  need_lab || return 0
  local out kernel where prog tag h
  assertEquals "the fortified build" 2 \
    "$("$FORTIFY" info | sed -n 's/^fortify //p')"
  for where in above below; do
    out=$(run bare RES_OPTIONS="timeout:2 attempts:1" -- \
      altstack $where silent.test v4.test v4.test)
    kernel=$(val gai "$out")
    assertEquals "kernel $where: the stack: $out" $where \
      "$(val altstack "$out")"
    assertEquals "kernel $where: getaddrinfo fails: $out" EAI_AGAIN "$kernel"
    assertEquals "kernel $where: exit status" 0 "$(val status "$out")"
    h=$(val handlers "$out")
    assertBetween "kernel $where: the handler ran" "$h" 1 1000
    assertEquals "kernel $where: every handler lookup succeeded" "$h" \
      "$(val handler_ok "$out")"
    assertEquals "kernel $where: the handler's address" "$LAB_B4" \
      "$(val handler_addr "$out")"

    for prog in "$PROG" "$FORTIFY"; do
      tag="shim $where $(basename "$prog")"
      out=$(runp shim "$prog" RES_OPTIONS="timeout:2 attempts:1" -- \
        altstack $where silent.test v4.test good.test)
      assertEquals "$tag: the stack: $out" $where "$(val altstack "$out")"
      assertEquals "$tag: exit status (134: abort, 139: SIGSEGV, 124: hung): $out" \
        0 "$(val status "$out")"
      assertEquals "$tag: getaddrinfo's error as the kernel's" "$kernel" \
        "$(val gai "$out")"
      h=$(val handlers "$out")
      assertBetween "$tag: the handler ran" "$h" 1 1000
      assertEquals "$tag: every handler lookup succeeded" "$h" \
        "$(val handler_ok "$out")"
      assertEquals "$tag: the handler's address as the kernel's" "$LAB_B4" \
        "$(val handler_addr "$out")"
      assertEquals "$tag: lookup after" 0 "$(val after "$out")"
      case $(val after_addr "$out") in
        10.170.*) ;;
        *) fail "$tag: address after: '$(val after_addr "$out")'" ;;
      esac
    done
  done
}

# 2. SIGALRM at 1 s interrupts getaddrinfo() of a name never answered, on
# the main stack; the handler longjmps to a jmp_buf a makecontext
# coroutine (malloc'd stack, below the main one) saved; the coroutine then
# looks up an IPv6-only name: a synthetic address (was: EAI_NODATA, the
# lookup guard left held). The kernel's reference looks up v4.test there.
# Built without _FORTIFY_SOURCE (__longjmp_chk refuses that jump).
test_jump_into_a_coroutine_out_of_getaddrinfo() {
  need_lab || return 0
  local out
  assertEquals "program built without _FORTIFY_SOURCE" 0 \
    "$("$PROG" info | sed -n 's/^fortify //p')"
  out=$(run bare -- coroutine silent.test v4.test)
  assertEquals "kernel: exit status: $out" 0 "$(val status "$out")"
  assertEquals "kernel: the coroutine's lookup" 0 "$(val co_gai "$out")"
  assertEquals "kernel: the address" "$LAB_B4" "$(val co_addr "$out")"

  out=$(run shim -- coroutine silent.test good.test)
  assertEquals "shim: exit status: $out" 0 "$(val status "$out")"
  assertEquals "shim: the coroutine's lookup: $out" 0 "$(val co_gai "$out")"
  case $(val co_addr "$out") in
    10.170.*) ;;
    *) fail "shim: the coroutine's address: '$(val co_addr "$out")'" ;;
  esac
}

# 3. A non-blocking connect (a race under the shim), then
# syscall(SYS_close_range, 3, ~0U, 0), which the shim does not see. The
# program then puts pipes' write ends at the numbers the shim's fds had
# (from 300 up) and at 600-610, writes a byte, close()s each: the read
# end must give the byte and EOF, as without the shim (was: close()
# returned 0 but spared the fd; no EOF). With the trace in a file and on
# stderr.
test_close_reaches_the_program_fds_at_the_shims_old_numbers() {
  need_lab || return 0
  local out n trace
  out=$(run bare -- fdreuse "$LAB_B4" 7)
  n=$(val targets "$out")
  assertEquals "kernel: connect: $out" EINPROGRESS "$(val connect "$out")"
  assertEquals "kernel: no fds from 300 up" none "$(val shim_fds "$out")"
  assertEquals "kernel: every close gave EOF" "$n" "$(val eof "$out")"
  assertEquals "kernel: close" 0 "$(val close_failed "$out")"

  for trace in "$LAB_TMP/trace" stderr; do
    out=$(run shim DUALSTACK_TRACE="$trace" -- fdreuse good.test 7)
    check_synthetic "shim $trace" "$out"
    n=$(val targets "$out")
    assertEquals "shim $trace: exit status: $out" 0 "$(val status "$out")"
    assertEquals "shim $trace: the race: $out" 0 "$(val so_error "$out")"
    assertNotEquals "shim $trace: the shim had fds from 300 up" none \
      "$(val shim_fds "$out")"
    assertEquals "shim $trace: close returns 0" 0 \
      "$(val close_failed "$out")"
    assertEquals "shim $trace: every close gave EOF (not: $(val no_eof_fds "$out"))" \
      "$n" "$(val eof "$out")"
  done
}

# 4. A non-blocking connect to slow25.test (its race is won ~2.5 s
# later), then execv("/nonexistent/nope"): ENOENT after the exec's 2 s
# wait for the race; the race must go on and complete: poll POLLOUT,
# SO_ERROR 0, data flows (was: ECONNRESET, the race cancelled). The
# kernel: the exec fails at once; the connect to B's black-holed IPv4
# address, lifted then, completes with the SYN retransmission.
test_failed_exec_leaves_the_race_running() {
  need_lab || return 0
  local out
  blackhole_b4
  out=$(run bare EDGES_THEN="$LIFT" -- execfail "$LAB_B4" 7)
  assertEquals "kernel: connect: $out" EINPROGRESS "$(val connect "$out")"
  assertEquals "kernel: exec" ENOENT "$(val exec "$out")"
  assertEquals "kernel: poll" 1 "$(val poll "$out")"
  assertEquals "kernel: revents" 0x4 "$(val revents "$out")"
  assertEquals "kernel: SO_ERROR" 0 "$(val so_error "$out")"
  assertEquals "kernel: data" "ipv4 hello" "$(val reply "$out")"
  lab_unfilter b

  out=$(run shim -- execfail slow25.test 7)
  check_synthetic shim "$out"
  assertEquals "shim: exit status: $out" 0 "$(val status "$out")"
  assertEquals "shim: connect" EINPROGRESS "$(val connect "$out")"
  assertEquals "shim: exec's error as the kernel's" ENOENT \
    "$(val exec "$out")"
  assertBetween "shim: the exec outlived by the race" \
    "$(val exec_ms "$out")" 0 2500
  assertEquals "shim: poll: $out" 1 "$(val poll "$out")"
  assertEquals "shim: revents as the kernel's" 0x4 "$(val revents "$out")"
  assertEquals "shim: SO_ERROR as the kernel's" 0 "$(val so_error "$out")"
  assertEquals "shim: data" "ipv6 hello" "$(val reply "$out")"
}

# 5. A non-blocking connect to slowgood.test (race won at ~800 ms), then
# connect() on a dup of the fd, twice: EALREADY, as the kernel says for
# its in-progress connect (black-holed, lifted after); the connection
# completes and exactly one reaches B (was: ECONNRESET, then a second
# race and a second connection).
test_connect_on_a_dup_of_a_racing_fd() {
  need_lab || return 0
  local out
  blackhole_b4
  out=$(run bare EDGES_THEN="$LIFT" -- dupconnect "$LAB_B4" 7)
  assertEquals "kernel: connect: $out" EINPROGRESS "$(val connect "$out")"
  assertEquals "kernel: connect on the dup" EALREADY \
    "$(val dup_connect "$out")"
  assertEquals "kernel: again" EALREADY "$(val dup_connect2 "$out")"
  assertEquals "kernel: SO_ERROR" 0 "$(val so_error "$out")"
  assertEquals "kernel: data" "ipv4 hello" "$(val reply "$out")"
  assertEquals "kernel: connections at B" 1 "$(val established "$out")"
  lab_unfilter b

  out=$(run shim -- dupconnect slowgood.test 7)
  check_synthetic shim "$out"
  assertEquals "shim: exit status: $out" 0 "$(val status "$out")"
  assertEquals "shim: connect" EINPROGRESS "$(val connect "$out")"
  assertEquals "shim: connect on the dup as the kernel's" EALREADY \
    "$(val dup_connect "$out")"
  assertEquals "shim: again, as the kernel's" EALREADY \
    "$(val dup_connect2 "$out")"
  assertEquals "shim: SO_ERROR" 0 "$(val so_error "$out")"
  assertEquals "shim: data" "ipv6 hello" "$(val reply "$out")"
  assertEquals "shim: connections at B as the kernel's" 1 \
    "$(val established "$out")"
}

# 6. A non-blocking connect to slowgood.test, then at 200 ms
# syscall(SYS_close_range, fd + 1, ~0U, 0), which takes the shim's helper
# fds behind its back; connect() again every 100 ms: EALREADY must end
# within ~3 s (was: EALREADY for ever), with ECONNABORTED, as README
# says such races end (a first fix said ECONNRESET, the stand-in's own
# error, taking the fd for a forked child's copy). The kernel's connect
# (black-holed, lifted then) is not touched: it completes.
test_race_helper_killed_by_close_range() {
  need_lab || return 0
  local out r
  blackhole_b4
  out=$(run bare EDGES_THEN="$LIFT" -- killhelper "$LAB_B4" 7)
  assertEquals "kernel: connect: $out" EINPROGRESS "$(val connect "$out")"
  r=$(val result "$out")
  case $r in
    0 | EISCONN) ;;
    *) fail "kernel: the connect after close_range: '$r'" ;;
  esac
  lab_unfilter b

  out=$(run shim -- killhelper slowgood.test 7)
  check_synthetic shim "$out"
  assertEquals "shim: exit status: $out" 0 "$(val status "$out")"
  assertEquals "shim: connect" EINPROGRESS "$(val connect "$out")"
  r=$(val result "$out")
  assertNotEquals "shim: EALREADY ends" EALREADY "$r"
  assertBetween "shim: EALREADY for at most ~3 s" \
    "$(val result_ms "$out")" 0 3600
  assertEquals "shim: the documented error" ECONNABORTED "$r"
}

ds_run_shunit
