#!/bin/bash
# Edge cases of issue 19's review (round 1), one test per defect: a
# blocking connect() the shim races whose fd another thread dup2()s over;
# a signal handler that jumps inside itself while getaddrinfo() is in a
# hook; closefrom() and a raw close_range between two connects; execve()
# with an environment too big for the kernel; SO_ERROR and poll() after a
# failed blocking race; fork() during a blocking race; the exec hand-over
# of many translated connections and of a NULL environment. The kernel is
# the reference: each case also runs without the shim, against B's real
# IPv4 address (black-holed, then lifted, where the shim's case waits for
# a slow race). tests/lab/shim_edges.c is the program; names come from
# the test DNS server in B through A's resolv.conf.
#
# EDGES_SHIM selects the shim (default: this build's), so the suite can
# be pointed at another build's library with this build's program:
#   EDGES_SHIM=/other/build/libdualstack-preload.so \
#     bash tests/shell/test_shim_edges.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=${EDGES_SHIM:-$DS_BUILD/libdualstack-preload.so}
PROG=$DS_BUILD/lab/shim_edges
# Every run is bounded: a hung one is killed by timeout(1) (status 124).
# The behaviours under test take 0-4 s.
HANG=10

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  # slowgood.test's AAAA comes 800 ms late: a blocking connect to its
  # synthetic address waits that long for its race (the race looks the
  # name up again) and wins then. silent.test is never answered.
  cat > "$LAB_TMP/dns.conf" <<'EOF'
good.test      AAAA 2001:db8::2
good.test      A    NODATA
slowgood.test  AAAA 2001:db8::2   delay=800
slowgood.test  A    NODATA
other.test     AAAA 2001:db8::5
other.test     A    NODATA
silent.test    *    DROP
EOF
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # An echo server on port 7 of both families that first says which
  # family the client came with. Nothing listens on port 9.
  lab_family_echo b 7
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Runs the program in A: $1 = shim|bare, then VAR=VALUE settings, then --
# and the program's arguments. Prints its output, then "status N" (124:
# hung, killed by timeout; 128+N: killed by signal N).
run() {
  local kind=$1 pre envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  envs+=(LAB_SH="$LAB_SH" LAB_NS_B="$LAB_NS_B")
  pre=$(ds_preload_c "$([ "$kind" = shim ] && echo "$SHIM")")
  [ "$kind" = shim ] && envs+=(DUALSTACK_TRACE="$LAB_TMP/trace")
  lab_run a env ${pre:+LD_PRELOAD="$pre"} "${envs[@]}" \
    timeout "$HANG" "$PROG" "$@" 2>&1
  echo "status $?"
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

# 1. Another thread dup2()s a fresh socket over the fd at 200 ms while a
# blocking connect() waits. The kernel: the connect goes on with the old
# socket, which it holds, and returns 0 when that connects (here after
# the black hole is lifted). The shim: the race (won at ~800 ms, when the
# AAAA answer comes) must end the connect with 0 within 3 s (was: the
# connect woke after ~133 s with EBADF).
test_dup2_over_a_waiting_connect_gets_the_race_result() {
  need_lab || return 0
  local out
  blackhole_b4
  out=$(run bare EDGES_THEN="$LIFT" -- dup2 "$LAB_B4" 7)
  assertEquals "kernel: dup2: $out" 0 "$(val dup2_rc "$out")"
  assertEquals "kernel: the old socket's connect returns 0: $out" 0 \
    "$(val connect "$out")"
  assertEquals "kernel: exit status" 0 "$(val status "$out")"
  lab_unfilter b

  out=$(run shim -- dup2 slowgood.test 7)
  check_synthetic shim "$out"
  assertEquals "shim: dup2: $out" 0 "$(val dup2_rc "$out")"
  assertEquals "shim: not hung: $out" 0 "$(val status "$out")"
  assertEquals "shim: connect returns 0 as the kernel's: $out" 0 \
    "$(val connect "$out")"
  assertBetween "shim: connect returned once the race was won" \
    "$(val connect_ms "$out")" 150 3000
}

# 2. SIGALRM every 100 ms (SA_RESTART) whose handler does a local
# setjmp/longjmp, then socket/connect/close, while the main thread is in
# getaddrinfo() of a name whose DNS never answers (timeout:2 attempts:1,
# from RES_OPTIONS). No crash (was: a double free, abort), and
# getaddrinfo fails as without the shim (EAI_AGAIN).
test_jump_inside_a_handler_during_getaddrinfo() {
  need_lab || return 0
  local out kernel
  out=$(run bare RES_OPTIONS="timeout:2 attempts:1" -- alarm silent.test)
  kernel=$(val gai "$out")
  assertEquals "kernel: getaddrinfo fails: $out" EAI_AGAIN "$kernel"
  assertEquals "kernel: exit status" 0 "$(val status "$out")"
  assertBetween "kernel: the handler ran" "$(val handlers "$out")" 5 1000

  out=$(run shim RES_OPTIONS="timeout:2 attempts:1" -- alarm silent.test)
  assertEquals "shim: exit status (134: abort, 139: SIGSEGV, 124: hung): $out" 0 \
    "$(val status "$out")"
  assertEquals "shim: getaddrinfo's error as the kernel's: $out" "$kernel" \
    "$(val gai "$out")"
  assertBetween "shim: the handler ran" "$(val handlers "$out")" 5 1000
}

# 3. closefrom(3) (glibc's, which makes the close_range system call
# itself) or syscall(SYS_close_range, 3, ~0U, 0) between two blocking
# connects: it takes the shim's own fds too. Both connects succeed and
# carry data, as without the shim (was: the second hung).
test_closefrom_between_two_connects() {
  need_lab || return 0
  local how out
  for how in glibc raw; do
    out=$(run bare -- closefrom $how "$LAB_B4" 7)
    assertEquals "kernel $how: first: $out" 0 "$(val connect1 "$out")"
    assertEquals "kernel $how: second: $out" 0 "$(val connect2 "$out")"
    assertEquals "kernel $how: data" "ipv4 hello" "$(val reply2 "$out")"

    out=$(run shim -- closefrom $how good.test 7)
    check_synthetic "shim $how" "$out"
    assertEquals "shim $how: not hung: $out" 0 "$(val status "$out")"
    assertEquals "shim $how: first connect: $out" 0 "$(val connect1 "$out")"
    assertEquals "shim $how: first data" "ipv6 hello" "$(val reply1 "$out")"
    assertEquals "shim $how: second connect: $out" 0 \
      "$(val connect2 "$out")"
    assertBetween "shim $how: second connect promptly" \
      "$(val connect2_ms "$out")" 0 3000
    assertEquals "shim $how: second data" "ipv6 hello" "$(val reply2 "$out")"
  done
  # The numbers of the shim's own fds (the trace's among them) taken by
  # the program after a raw close_range: no trace line goes there.
  out=$(run shim EDGES_TRAP="$LAB_TMP/trap" -- closefrom raw good.test 7)
  assertEquals "shim trap: second connect: $out" 0 "$(val connect2 "$out")"
  assertEquals "shim trap: nothing written into the program's fds" 0 \
    "$(val trap_bytes "$out")"
}

# 4. execve() with an environment of 3,000,000 entries "a=" once a
# translated connection exists (the exec hand-over would add
# DUALSTACK_PEERS): the kernel says E2BIG, and so must the shim's execve
# (was: SIGSEGV copying the environment onto the stack).
test_execve_with_a_huge_environment_fails_with_e2big() {
  need_lab || return 0
  local out kernel
  out=$(run bare -- bigenv 3000000 "$LAB_B4" 7)
  kernel=$(val execve "$out")
  assertEquals "kernel: connect: $out" 0 "$(val connect "$out")"
  assertEquals "kernel: execve: $out" E2BIG "$kernel"
  assertEquals "kernel: exit status" 0 "$(val status "$out")"

  out=$(run shim -- bigenv 3000000 good.test 7)
  check_synthetic shim "$out"
  assertEquals "shim: connect: $out" 0 "$(val connect "$out")"
  assertEquals "shim: exit status (139: SIGSEGV): $out" 0 \
    "$(val status "$out")"
  assertEquals "shim: execve's error as the kernel's: $out" "$kernel" \
    "$(val execve "$out")"
}

# 5. A blocking connect whose race fails: good.test's only address has
# nothing listening on port 9. connect() says ECONNREFUSED; then poll()
# for POLLOUT and SO_ERROR must say what the kernel says after a refused
# blocking connect (POLLOUT|POLLHUP, 0x14, and SO_ERROR 0; was: 0x1c with
# POLLERR and ECONNRESET, the stand-in's error).
test_failed_blocking_race_leaves_poll_and_so_error_as_the_kernel() {
  need_lab || return 0
  local out k_conn k_poll k_rev k_err
  out=$(run bare -- refused "$LAB_B4" 9)
  k_conn=$(val connect "$out") k_poll=$(val poll "$out")
  k_rev=$(val revents "$out") k_err=$(val so_error "$out")
  assertEquals "kernel: refused: $out" ECONNREFUSED "$k_conn"
  assertEquals "kernel: revents" 0x14 "$k_rev"
  assertEquals "kernel: SO_ERROR" 0 "$k_err"

  out=$(run shim -- refused good.test 9)
  check_synthetic shim "$out"
  assertEquals "shim: exit status: $out" 0 "$(val status "$out")"
  assertEquals "shim: connect as the kernel's: $out" "$k_conn" \
    "$(val connect "$out")"
  assertEquals "shim: poll count as the kernel's" "$k_poll" \
    "$(val poll "$out")"
  assertEquals "shim: revents as the kernel's" "$k_rev" \
    "$(val revents "$out")"
  assertEquals "shim: SO_ERROR as the kernel's" "$k_err" \
    "$(val so_error "$out")"
}

# 6. fork() at 200 ms while a thread is in a blocking connect. The kernel:
# parent and child share the socket; the child's connect waits for the
# same connection (0), the next says EISCONN. With the shim the race's
# winner goes onto the parent's fd only: the child's first connect gives a
# clear error (ECONNRESET), and the child gets a fresh socket of its own
# under the fd, so its next connect starts afresh at once (was: EALREADY
# for ever; then EALREADY until the parent's race ended). The parent's
# connect succeeds when its race is won, not later.
test_fork_during_a_blocking_race() {
  need_lab || return 0
  local out c2
  blackhole_b4
  out=$(run bare EDGES_THEN="$LIFT" -- fork "$LAB_B4" 7)
  assertEquals "kernel: parent's connect: $out" 0 "$(val connect "$out")"
  assertEquals "kernel: child's connect waits for it" 0 \
    "$(val child_connect1 "$out")"
  assertEquals "kernel: child's second connect" EISCONN \
    "$(val child_connect2 "$out")"
  assertEquals "kernel: data" "ipv4 hello" "$(val reply "$out")"
  lab_unfilter b

  out=$(run shim -- fork slowgood.test 7)
  check_synthetic shim "$out"
  assertEquals "shim: exit status: $out" 0 "$(val status "$out")"
  assertEquals "shim: child exit status" 0 "$(val child_status "$out")"
  assertEquals "shim: child's first connect: a clear error: $out" \
    ECONNRESET "$(val child_connect1 "$out")"
  c2=$(val child_connect2 "$out")
  case $c2 in
    0 | EISCONN) ;;
    *) fail "shim: child's later connect: '$c2' (EALREADY: for ever)" ;;
  esac
  assertBetween "shim: child connected within 4 s of the fork" \
    "$(val child_connect2_ms "$out")" 0 4000
  assertEquals "shim: no EALREADY in the child (a socket of its own)" 0 \
    "$(val child_ealready "$out")"
  assertEquals "shim: parent's connect: $out" 0 "$(val connect "$out")"
  # The race is won at ~800 ms (the AAAA answer's delay); a child that
  # connected its copy of the stand-in again held the parent's wait up
  # until the child's own race ended (~1600 ms).
  assertBetween "shim: parent's connect ended with its race" \
    "$(val connect_ms "$out")" 150 1400
  assertEquals "shim: parent's data" "ipv6 hello" "$(val reply "$out")"
}

# 7. The exec hand-over: 20 translated connections, then the program runs
# itself ("show"), which prints getpeername() of its fds. All 20 must show
# the synthetic IPv4 address they were connected to, as without the shim
# (was: only the first 16). Then the same through execve() with a NULL
# environment: the new image is started by the dynamic loader with
# --preload (so it has the shim without LD_PRELOAD) and must still see the
# synthetic peers (was: the real IPv6 peers; no DUALSTACK_PEERS).
test_exec_hands_over_every_translated_connection() {
  need_lab || return 0
  local out ldso
  ldso=$(ldd "$PROG" | awk '/ld-linux/ { print $1; exit }')
  out=$(run bare -- peers 20 "$LAB_B4" 7 execv)
  assertEquals "kernel: connected: $out" 20 "$(val connected "$out")"
  assertEquals "kernel: peers after exec" 20 "$(val peers "$out")"
  assertEquals "kernel: each the address asked" 20 \
    "$(val peers_match "$out")"

  out=$(run shim EDGES_OTHER=other.test -- peers 20 good.test 7 execv)
  check_synthetic "shim execv" "$out"
  assertEquals "shim execv: exit status: $out" 0 "$(val status "$out")"
  assertEquals "shim execv: connected" 20 "$(val connected "$out")"
  assertEquals "shim execv: peers after exec" 20 "$(val peers "$out")"
  assertEquals "shim execv: each the synthetic address: $out" 20 \
    "$(val peers_match "$out")"
  # The new image took the address for good.test: another name gets
  # another (was: the same, so a connect to it reached other.test's host).
  case $(val other_addr "$out") in
    10.170.16[0-9].* | 10.170.17[0-5].*) ;;
    *) fail "shim execv: other.test: '$(val other_addr "$out")'" ;;
  esac
  assertNotEquals "shim execv: other.test's address is its own" \
    "$(val asked "$out")" "$(val other_addr "$out")"

  if [ -z "$ldso" ] || [ ! -x "$ldso" ]; then
    fail "no dynamic loader found for $PROG"
    return 0
  fi
  out=$(run bare EDGES_LDSO="$ldso" -- peers 20 "$LAB_B4" 7 nullenv)
  assertEquals "kernel NULL envp: peers after exec: $out" 20 \
    "$(val peers "$out")"
  assertEquals "kernel NULL envp: each the address asked" 20 \
    "$(val peers_match "$out")"

  out=$(run shim EDGES_LDSO="$ldso" EDGES_PRELOAD="$(ds_preload_c "$SHIM")" \
    -- peers 20 good.test 7 nullenv)
  check_synthetic "shim NULL envp" "$out"
  assertEquals "shim NULL envp: exit status: $out" 0 "$(val status "$out")"
  assertEquals "shim NULL envp: the new image had the shim's record" set \
    "$(val show_env "$out")"
  assertEquals "shim NULL envp: peers after exec" 20 "$(val peers "$out")"
  assertEquals "shim NULL envp: each the synthetic address: $out" 20 \
    "$(val peers_match "$out")"
}

ds_run_shunit
