#!/bin/bash
# Signals and SO_SNDTIMEO around a blocking connect() the shim races
# (DESIGN, "Process lifecycle"; issue 19 item 1): an AF_INET socket
# connecting to a synthetic address of an IPv6-only name, or to the real
# IPv4 address of a dual-stack name. The kernel is the reference
# (socket(7), signal(7), __inet_stream_connect): a handler without
# SA_RESTART makes connect() fail with EINTR when it returns, SA_RESTART
# restarts it, the connection goes on after EINTR (a later connect()
# waits again, or says EALREADY on a non-blocking socket, then 0 or
# EISCONN, or the error; poll() says when), and SO_SNDTIMEO's expiry
# gives EINPROGRESS with the connection going on. Each behaviour is
# checked twice with the same program: without the shim against a
# black-holed IPv4 address (the kernel's answer; the black hole is lifted
# mid-connect so that the kernel's SYN retransmission at 1 s wins), and
# with the shim against names whose race is slow (never ends, or is won
# by a second IPv6 address after a 1500 ms Connection Attempt Delay).
# tests/lab/shim_signals.c is the C client; Perl's and Python's alarm
# timeouts are the real programs of the last test. Names come from the
# test DNS server in B through A's resolv.conf.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
SIG=$DS_BUILD/lab/shim_signals
PY=/usr/bin/python3
# Every run is bounded: a connect that ignores the signal is killed by
# timeout(1) after this long (the behaviours under test take 0.3-1.5 s).
HANG=6

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  # A second IPv6 address on B, for two6.test's winning attempt.
  lab_addr b "$LAB_IF_B" 2001:db8::3/64
  cat > "$LAB_TMP/dns.conf" <<'EOF'
v6only.test  AAAA 2001:db8::2
v6only.test  A    NODATA
two6.test    AAAA 2001:db8::2,2001:db8::3
two6.test    A    NODATA
both.test    A    192.0.2.2
both.test    AAAA 2001:db8::2
EOF
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

# Black-holes port 7 of B's first addresses, 2001:db8::2 and 192.0.2.2
# (2001:db8::3 still answers): v6only.test and both.test never connect,
# two6.test connects by its second address once the race tries it.
blackhole() {
  lab_unfilter b
  lab_blackhole b "$LAB_B6" 7 tcp
  lab_blackhole b "$LAB_B4" 7 tcp
}

# The shell command that lifts the black holes (SIG_THEN; expanded by
# the sh that system() starts in A), and the one that turns them into
# refusals (TCP resets).
# shellcheck disable=SC2016
LIFT='"$LAB_SH" unfilter "$LAB_NS_B"'
# shellcheck disable=SC2016
REFUSE="$LIFT"'; "$LAB_SH" refuse "$LAB_NS_B" 2001:db8::2 7 tcp
"$LAB_SH" refuse "$LAB_NS_B" 192.0.2.2 7 tcp'

# Runs the C client in A: $1 = shim|bare, then VAR=VALUE settings for it,
# then --, MODE and NAME (port 7). With the shim the Connection Attempt
# Delay is 1500 ms. Prints its output, then "status N" (124: killed by
# timeout, i.e. hung).
sig() {
  local kind=$1 envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  # SIG_THEN's command runs in A (without the shim): it needs the lab's
  # names, which the lab exports.
  envs+=(LAB_SH="$LAB_SH" LAB_NS_B="$LAB_NS_B")
  if [ "$kind" = shim ]; then
    envs+=(LD_PRELOAD="$(ds_preload_c "$SHIM")" DUALSTACK_ATTEMPT_DELAY_MS=1500
      DUALSTACK_TRACE="$LAB_TMP/trace")
  fi
  lab_run a env "${envs[@]}" timeout $HANG "$SIG" "$1" "$2" 7 2>&1
  echo "status $?"
}

# Prints the value of key $1 in output $2.
val() {
  echo "$2" | sed -n "s/^$1 //p" | head -n 1
}

# Asserts LO <= VALUE < HI (numbers with decimals): $1 message, $2 value,
# $3 lo, $4 hi.
assertBetween() {
  awk -v v="$2" -v lo="$3" -v hi="$4" \
    'BEGIN { exit !(v != "" && v + 0 >= lo && v + 0 < hi) }' ||
    fail "$1: '$2' not in [$3, $4)"
}

# The checks every run shares: $1 label, $2 output. Not hung, and no fd
# left behind once the program closed its socket.
check_common() {
  assertEquals "$1: not killed by timeout (hung): $2" 0 "$(val status "$2")"
  assertEquals "$1: no fd left behind" "$(val fds_before "$2")" \
    "$(val fds_after "$2")"
}

# Asserts the connection the program ended with carried data: $1 label,
# $2 output, $3 family the server saw, $4 the peer expected.
check_data() {
  assertEquals "$1: getpeername" "$4" "$(val peer "$2")"
  assertEquals "$1: data flows ($3)" "$3 hello" "$(val reply "$2")"
}

# A synthetic address was asked (the name is IPv6-only).
check_synthetic() {
  echo "$2" | grep -q '^asked 10\.170\.' ||
    fail "$1: not a synthetic address: $2"
}

# (a) A SIGALRM handler installed without SA_RESTART (what alarm-based
# connect timeouts do: Perl and Python handlers, C programs calling
# sigaction with sa_flags 0) interrupts the connect: EINTR when the
# handler returns, promptly after the signal at 300 ms. The program then
# gives up and closes the socket: no fd is left behind.
check_eintr() {
  local out=$2
  assertEquals "$1: EINTR: $out" EINTR "$(val connect1 "$out")"
  assertBetween "$1: connect returned after the signal at 300 ms" \
    "$(val connect1_ms "$out")" 250 1500
  assertBetween "$1: promptly after the handler ran" \
    "$(awk -v a="$(val connect1_ms "$out")" -v b="$(val signal_ms "$out")" \
      'BEGIN { print a - b }')" 0 700
  assertEquals "$1: one signal" 1 "$(val signals "$out")"
  check_common "$1" "$out"
}

test_a_signal_without_sa_restart_interrupts_the_connect() {
  need_lab || return 0
  local out name
  blackhole
  out=$(sig bare -- eintr both.test)
  check_eintr "kernel, both.test's IPv4 black-holed" "$out"
  for name in v6only.test both.test; do
    out=$(sig shim -- eintr $name)
    [ $name = v6only.test ] && check_synthetic "shim, $name" "$out"
    check_eintr "shim, $name (race never ends)" "$out"
  done
}

# (b) With SA_RESTART (glibc's signal(), or a periodic timer tick the
# program does not mean to stop anything: SIGALRM every 200 ms from
# 300 ms) the connect is restarted and ends with the connection's result:
# connected once an address answers, or still waiting (a watchdog
# thread looks at 1500 ms).
test_b_sa_restart_restarts_the_connect() {
  need_lab || return 0
  local out
  blackhole
  out=$(sig bare SIG_THEN_MS=200 SIG_THEN="$LIFT" -- restart both.test)
  assertEquals "kernel: connected: $out" 0 "$(val connect1 "$out")"
  assertBetween "kernel: at the SYN retransmission" \
    "$(val connect1_ms "$out")" 700 $((HANG * 1000))
  assertBetween "kernel: the ticks were seen" "$(val signals "$out")" 2 1000
  check_data kernel "$out" ipv4 192.0.2.2:7
  check_common kernel "$out"
  blackhole
  out=$(sig bare SIG_WATCH_MS=1500 -- restart both.test)
  assertNotNull "kernel: still waiting at 1500 ms: $out" \
    "$(val blocked_ms "$out")"
  assertNull "kernel: connect did not return" "$(val connect1 "$out")"
  assertBetween "kernel: the ticks were seen" "$(val signals "$out")" 3 1000

  out=$(sig shim -- restart two6.test)
  check_synthetic "shim, two6.test" "$out"
  assertEquals "shim: connected: $out" 0 "$(val connect1 "$out")"
  assertBetween "shim: when the second address answered" \
    "$(val connect1_ms "$out")" 1400 $((HANG * 1000))
  assertBetween "shim: the ticks were seen" "$(val signals "$out")" 3 1000
  check_data shim "$out" ipv6 "$(val asked "$out")"
  check_common shim "$out"
  out=$(sig shim SIG_WATCH_MS=1500 -- restart v6only.test)
  assertNotNull "shim: still waiting at 1500 ms: $out" \
    "$(val blocked_ms "$out")"
  assertNull "shim: connect did not return" "$(val connect1 "$out")"
  assertBetween "shim: the ticks were seen" "$(val signals "$out")" 3 1000
}

# (c) The connection goes on after EINTR. What programs do next: call
# connect() again on the blocking socket (it waits for the result and
# returns 0, then EISCONN), poll() for POLLOUT and read SO_ERROR (POSIX:
# "the connection shall be established asynchronously"), or make the
# socket non-blocking and call connect() until it stops saying EALREADY
# (the kernel then says 0 once, EISCONN after; the error if it failed).
# $1 label, $2 mode, $3 output, $4 family, $5 peer, $6 lower bound of
# the win (ms).
check_after_eintr() {
  local out=$3
  assertEquals "$1 $2: EINTR first: $out" EINTR "$(val connect1 "$out")"
  assertBetween "$1 $2: at the signal" "$(val connect1_ms "$out")" 250 1500
  case $2 in
    retry)
      assertEquals "$1 $2: the second connect waits, then 0" 0 \
        "$(val connect2 "$out")"
      assertBetween "$1 $2: when the connection is made" \
        "$(val connect2_ms "$out")" "$6" $((HANG * 1000))
      assertEquals "$1 $2: a third says EISCONN" EISCONN \
        "$(val connect3 "$out")" ;;
    retry_poll)
      assertEquals "$1 $2: POLLOUT" "1 revents OUT" "$(val poll "$out")"
      assertBetween "$1 $2: when the connection is made" \
        "$(val event_ms "$out")" "$6" $((HANG * 1000))
      assertEquals "$1 $2: SO_ERROR" 0 "$(val so_error "$out")" ;;
    retry_nb)
      assertEquals "$1 $2: EALREADY while it runs" EALREADY \
        "$(val connect2 "$out")"
      assertBetween "$1 $2: at once" "$(awk -v a="$(val connect2_ms "$out")" \
        -v b="$(val connect1_ms "$out")" 'BEGIN { print a - b }')" 0 200
      assertBetween "$1 $2: EALREADY until then" "$(val ealready "$out")" \
        1 100000
      # The kernel says 0 here (the socket was still "connecting");
      # DESIGN says EISCONN: programs take either as connected.
      case "$(val connect3 "$out")" in
        0|EISCONN) ;;
        *) fail "$1 $2: connected: 0 or EISCONN: '$(val connect3 "$out")'" ;;
      esac
      assertBetween "$1 $2: when the connection is made" \
        "$(val connect3_ms "$out")" "$6" $((HANG * 1000))
      assertEquals "$1 $2: then EISCONN" EISCONN "$(val connect4 "$out")" ;;
  esac
  check_data "$1 $2" "$out" "$4" "$5"
  check_common "$1 $2" "$out"
}

test_c_the_connection_goes_on_after_eintr() {
  need_lab || return 0
  local out mode
  for mode in retry retry_poll retry_nb; do
    blackhole
    out=$(sig bare SIG_THEN_MS=200 SIG_THEN="$LIFT" -- $mode both.test)
    check_after_eintr kernel $mode "$out" ipv4 192.0.2.2:7 700
    blackhole
    out=$(sig shim -- $mode two6.test)
    check_synthetic "shim $mode" "$out"
    check_after_eintr shim $mode "$out" ipv6 "$(val asked "$out")" 1400
  done
  # The connection fails after EINTR (the black hole turns into a reset
  # at 200 ms; the retransmission at 1 s meets it): the non-blocking
  # retry gets the error, ECONNREFUSED, where it got EALREADY before.
  blackhole
  out=$(sig bare SIG_THEN_MS=200 SIG_THEN="$REFUSE" -- retry_nb both.test)
  assertEquals "kernel refused: EINTR first" EINTR "$(val connect1 "$out")"
  assertEquals "kernel refused: EALREADY" EALREADY "$(val connect2 "$out")"
  assertEquals "kernel refused: the error" ECONNREFUSED \
    "$(val connect3 "$out")"
  check_common "kernel refused" "$out"
  blackhole
  out=$(sig shim SIG_THEN_MS=200 SIG_THEN="$REFUSE" -- retry_nb v6only.test)
  assertEquals "shim refused: EINTR first: $out" EINTR \
    "$(val connect1 "$out")"
  assertEquals "shim refused: EALREADY" EALREADY "$(val connect2 "$out")"
  assertEquals "shim refused: the race's error" ECONNREFUSED \
    "$(val connect3 "$out")"
  assertBetween "shim refused: when the reset came" \
    "$(val connect3_ms "$out")" 700 $((HANG * 1000))
  check_common "shim refused" "$out"
}

# (d) SO_SNDTIMEO as a connect timeout (what programs without alarm()
# do): its expiry makes the blocking connect fail with EINPROGRESS, as
# the kernel's does for a fresh connect, and the connection goes on: a
# later poll() for POLLOUT wakes when it is made (SO_ERROR 0, connect()
# then 0), and a program that calls connect() again gets EALREADY at
# each expiry until it returns 0.
test_d_so_sndtimeo_bounds_the_connect_and_the_connection_goes_on() {
  need_lab || return 0
  local kind out name lo then=() seq
  for kind in bare shim; do
    if [ $kind = bare ]; then
      name=both.test lo=700 then=(SIG_THEN_MS=200 "SIG_THEN=$LIFT")
    else
      name=two6.test lo=1400 then=()
    fi
    blackhole
    out=$(sig $kind SIG_SNDTIMEO_MS=500 "${then[@]}" -- sndtimeo $name)
    assertEquals "$kind: EINPROGRESS at expiry: $out" EINPROGRESS \
      "$(val connect1 "$out")"
    assertBetween "$kind: after 500 ms" "$(val connect1_ms "$out")" 450 1400
    assertEquals "$kind: POLLOUT" "1 revents OUT" "$(val poll "$out")"
    assertBetween "$kind: when the connection is made" \
      "$(val event_ms "$out")" $lo $((HANG * 1000))
    assertEquals "$kind: SO_ERROR" 0 "$(val so_error "$out")"
    # The kernel says 0 (still "connecting"); EISCONN also means connected.
    case "$(val connect2 "$out")" in
      0|EISCONN) ;;
      *) fail "$kind: then connect: 0 or EISCONN: '$(val connect2 "$out")'" ;;
    esac
    if [ $kind = bare ]; then
      check_data "$kind" "$out" ipv4 192.0.2.2:7
    else
      check_synthetic "$kind" "$out"
      check_data "$kind" "$out" ipv6 "$(val asked "$out")"
    fi
    check_common "$kind" "$out"

    # connect() again after the expiry, 400 ms each.
    blackhole
    out=$(sig $kind SIG_SNDTIMEO_MS=400 "${then[@]}" -- sndtimeo_retry $name)
    seq=$(val sequence "$out")
    echo "$seq" | grep -Eq '^EINPROGRESS( EALREADY)+ (0|EISCONN)$' ||
      fail "$kind retry: EINPROGRESS, EALREADY per expiry, 0: '$seq': $out"
    assertBetween "$kind retry: when the connection is made" \
      "$(val last_ms "$out")" $lo 3900
    if [ $kind = bare ]; then
      check_data "$kind retry" "$out" ipv4 192.0.2.2:7
    else
      check_data "$kind retry" "$out" ipv6 "$(val asked "$out")"
    fi
    check_common "$kind retry" "$out"
  done
}

# (e) The reported program: Perl's alarm + die around IO::Socket::INET
# (its %SIG handlers have no SA_RESTART; the die runs once connect fails
# with EINTR), and Python's equivalent (signal.setitimer with a handler
# that raises), to a black-holed name: they give up after 1 s, with the
# shim as without it.
PERL_ALARM='
use IO::Socket::INET; use Time::HiRes qw(time);
my $t0 = time; my $s;
eval {
  local $SIG{ALRM} = sub { die "alarm\n" };
  alarm 1;
  $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 7,
                             Proto => "tcp");
  alarm 0;
};
printf "result %s\nms %d\n", $@ eq "alarm\n" ? "alarm" :
  $s ? "connected" : "error $@", (time - $t0) * 1000;'
PY_ALARM='
import signal, socket, sys, time
def on_alarm(sig, frame): raise TimeoutError("alarm")
signal.signal(signal.SIGALRM, on_alarm)
a = socket.gethostbyname(sys.argv[1])
t0 = time.monotonic()
try:
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    socket.socket(socket.AF_INET).connect((a, 7))
    print("result connected")
except TimeoutError:
    print("result alarm")
except OSError as e:
    print("result error", e)
print("ms %d" % ((time.monotonic() - t0) * 1000))'

test_e_perl_alarm_die_around_a_connect_to_a_black_holed_name() {
  need_lab || return 0
  local out name
  blackhole
  out=$(lab_run a timeout $HANG perl -e "$PERL_ALARM" both.test 2>&1)
  assertEquals "kernel perl: alarm: $out" alarm "$(val result "$out")"
  assertBetween "kernel perl: after 1 s" "$(val ms "$out")" 950 2500
  out=$(lab_run a timeout $HANG $PY -c "$PY_ALARM" both.test 2>&1)
  assertEquals "kernel python: alarm: $out" alarm "$(val result "$out")"
  assertBetween "kernel python: after 1 s" "$(val ms "$out")" 950 2500
  for name in v6only.test both.test; do
    out=$(lab_run a env LD_PRELOAD=$SHIM timeout $HANG \
      perl -e "$PERL_ALARM" $name 2>&1; echo "status $?")
    assertEquals "shim perl $name: not hung" 0 "$(val status "$out")"
    assertEquals "shim perl $name: alarm: $out" alarm "$(val result "$out")"
    assertBetween "shim perl $name: after 1 s" "$(val ms "$out")" 950 2500
  done
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout $HANG \
    $PY -c "$PY_ALARM" v6only.test 2>&1; echo "status $?")
  assertEquals "shim python: not hung" 0 "$(val status "$out")"
  assertEquals "shim python: alarm: $out" alarm "$(val result "$out")"
  assertBetween "shim python: after 1 s" "$(val ms "$out")" 950 2500
}

ds_run_shunit
