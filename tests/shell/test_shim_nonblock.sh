#!/bin/bash
# The shim with non-blocking clients: connect() to a name returns
# EINPROGRESS at once, the race runs in the helper thread, and the
# application's epoll (registered before connect), poll or select wakes
# when it ends, with SO_ERROR 0 and the winner on the fd, or with the
# race's error. tests/lab/shim_nb.c is the client.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
NB=$DS_BUILD/lab/shim_nb
PY=/usr/bin/python3

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  cat > "$LAB_TMP/dns.conf" <<'EOF2'
v6only.test  AAAA 2001:db8::2
v6only.test  A    NODATA
both.test    A    192.0.2.2
both.test    AAAA 2001:db8::2
EOF2
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

# Runs the client in A under the shim: $1 = mode, $2 = name, $3 = port.
# Under SANITIZE the C client is built with ASan, whose runtime must be
# loaded first; the shim itself has UBSan only.
nb() {
  local pre
  pre=$(ds_preload_c "$SHIM")
  lab_run a env LD_PRELOAD="$pre" DUALSTACK_TRACE="$LAB_TMP/trace" \
    timeout 20 "$NB" "$1" "$2" "${3:-7}" 2>&1
}

# Prints the value of key $1 in output $2.
val() {
  echo "$2" | sed -n "s/^$1 //p" | head -n 1
}

# Asserts $1 < $2 (numbers with decimals).
assertLess() {
  awk -v a="$2" -v b="$3" 'BEGIN { exit !(a < b) }' ||
    fail "$1: $2 is not below $3"
}

check_ipv6_only() {
  local out
  out=$(nb "$1" v6only.test)
  assertEquals "EINPROGRESS at once ($1)" EINPROGRESS "$(val connect_errno "$out")"
  assertLess "connect returns at once ($1)" "$(val connect_ms "$out")" 100
  assertEquals "SO_ERROR ($1)" 0 "$(val so_error "$out")"
  assertEquals "getpeername: the synthetic address ($1)" \
    "$(val asked "$out"):7" "$(val peer "$out")"
  assertEquals "still non-blocking ($1)" 1 "$(val nonblocking "$out")"
  assertEquals "the server saw IPv6 and the bytes ($1)" "ipv6 hello" \
    "$(val reply "$out")"
  assertEquals "no fd left behind ($1)" "$(val fds_before "$out")" \
    "$(val fds_after "$out")"
  echo "$out" | grep -q '^asked 10\.170\.16' || fail "not synthetic: $out"
}

test_epoll_registered_before_connect_gets_the_winner() {
  need_lab || return 0
  local out
  check_ipv6_only epoll
  out=$(nb epoll v6only.test)
  assertEquals "EPOLLIN through the registration made before connect" 1 \
    "$(val epoll_in "$out")"
}

test_poll_and_select_wake_with_the_winner() {
  need_lab || return 0
  check_ipv6_only poll
  check_ipv6_only select
}

test_ipv6_blackholed_wakes_after_the_attempt_delay_over_ipv4() {
  need_lab || return 0
  local out ev
  lab_blackhole b "$LAB_B6" 7 tcp
  for mode in epoll poll; do
    out=$(nb $mode both.test)
    ev=$(val event_ms "$out")
    assertEquals "EINPROGRESS ($mode)" EINPROGRESS "$(val connect_errno "$out")"
    assertLess "connect returns at once ($mode)" "$(val connect_ms "$out")" 100
    # The IPv4 attempt starts 250 ms after the IPv6 one.
    assertLess "not before the attempt delay ($mode)" 240 "$ev"
    assertLess "soon after it ($mode)" "$ev" 1500
    assertEquals "IPv4 won ($mode)" "ipv4 hello" "$(val reply "$out")"
    assertEquals "peer is the real A ($mode)" "192.0.2.2:7" "$(val peer "$out")"
  done
}

test_every_address_refused_reports_econnrefused() {
  need_lab || return 0
  local out
  out=$(nb epoll both.test 9)
  assertEquals "EINPROGRESS" EINPROGRESS "$(val connect_errno "$out")"
  assertEquals "SO_ERROR is the race's" ECONNREFUSED "$(val so_error "$out")"
  assertLess "promptly" "$(val event_ms "$out")" 1000
  assertEquals "no fd left behind" "$(val fds_before "$out")" \
    "$(val fds_after "$out")"
  grep -q '"event":"connect".*"result":"ECONNREFUSED"' "$LAB_TMP/trace" ||
    fail "no failed connect traced: $(cat "$LAB_TMP/trace")"
}

test_close_during_the_race_leaves_nothing_behind() {
  need_lab || return 0
  local out
  lab_blackhole b "$LAB_B6" 7 tcp
  lab_blackhole b "$LAB_B4" 7 tcp
  out=$(nb close both.test)
  assertEquals "EINPROGRESS" EINPROGRESS "$(val connect_errno "$out")"
  # The helper thread's own fds (its reactor, the stand-in listener) stay;
  # the race's attempt sockets must be gone.
  out2=$(lab_run a env LD_PRELOAD=$SHIM $PY -c '
import os, socket, time
def fds(): return len(os.listdir("/proc/self/fd"))
socket.gethostbyname("both.test")
s = socket.socket(); s.setblocking(False)
try: s.connect(("both.test", 7))
except BlockingIOError: pass
time.sleep(0.6); base = fds()  # both of its attempts started
for i in range(20):
    s2 = socket.socket(); s2.setblocking(False)
    try: s2.connect(("both.test", 7))
    except BlockingIOError: pass
    s2.close()
time.sleep(1.0)
print("delta", fds() - base)' 2>&1)
  assertEquals "attempt sockets closed with the fd" "delta 0" "$out2"
}

test_eight_threads_of_non_blocking_connects() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 60 $PY -c '
import os, select, socket, threading
def fds(): return len([f for f in os.listdir("/proc/self/fd") if int(f) < 500])
a = socket.gethostbyname("v6only.test")
ok = []
def worker():
    n = 0
    for i in range(25):
        s = socket.socket(); s.setblocking(False)
        try: s.connect((a, 7))
        except BlockingIOError: pass
        select.select([], [s], [], 10)
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            s.setblocking(True); s.settimeout(5)
            s.sendall(b"x")
            if s.recv(10) == b"ipv6 x": n += 1
        s.close()
    ok.append(n)
base = fds()
ts = [threading.Thread(target=worker) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print("ok", sum(ok), "fds", fds() - base)' 2>&1)
  assertEquals "200 connects over IPv6, no fd left" "ok 200 fds 0" "$out"
}

test_connect_again_behaves_as_the_kernel() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 20 $PY -c '
import errno, select, socket
a = socket.gethostbyname("v6only.test")
s = socket.socket(); s.connect((a, 7))
print("blocking again", errno.errorcode[s.connect_ex((a, 7))])
s = socket.socket(); s.setblocking(False)
print("first", errno.errorcode[s.connect_ex((a, 9))])
select.select([], [s], [], 5)
print("refused", errno.errorcode.get(s.connect_ex((a, 9)), 0))
print("anew", errno.errorcode.get(s.connect_ex((a, 9)), 0))
' 2>&1)
  assertContains "blocking: EISCONN" "$out" "blocking again EISCONN"
  assertContains "non-blocking: EINPROGRESS" "$out" "first EINPROGRESS"
  assertContains "then the race's error, once" "$out" "refused ECONNREFUSED"
  assertContains "then a new connect" "$out" "anew EINPROGRESS"
}

test_options_set_during_the_race_are_kept() {
  need_lab || return 0
  lab_blackhole b "$LAB_B6" 7 tcp
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 20 $PY -c '
import select, socket
a = socket.gethostbyname("both.test")
s = socket.socket(); s.setblocking(False)
s.connect_ex((a, 7))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
select.select([], [s], [], 5)
print("won", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), s.getpeername()[0])
print("nodelay", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
print("keepalive", s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
' 2>&1)
  assertContains "IPv4 won after the attempt delay" "$out" "won 0 192.0.2.2"
  assertContains "TCP_NODELAY kept" "$out" "nodelay 1"
  assertContains "SO_KEEPALIVE kept" "$out" "keepalive 1"
}

test_fork_while_other_threads_use_the_shim() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 60 $PY -c '
import os, select, signal, socket, threading
a = socket.gethostbyname("v6only.test")
s = socket.socket(); s.connect((a, 7))
stop = False
def churn():
    # dup and close of a socket the shim knows: its table locks.
    while not stop:
        d = s.dup(); d.close()
        t = socket.socket(); t.setblocking(False); t.connect_ex((a, 7))
        t.close()
threading.Thread(target=churn, daemon=True).start()
hung = 0
for i in range(200):
    p = os.fork()
    if p == 0:
        signal.alarm(3)
        d = s.dup(); d.close()
        t = socket.socket(); t.connect((a, 7)); t.close()
        os._exit(0)
    _, st = os.waitpid(p, 0)
    if st != 0: hung += 1
stop = True
print("children stuck or failed", hung)' 2>&1)
  assertEquals "every child ran" "children stuck or failed 0" "$out"
}

test_the_shims_own_fds_survive_a_close_loop() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 20 $PY -c '
import os, select, socket
a = socket.gethostbyname("v6only.test")
def nb():
    s = socket.socket(); s.setblocking(False); s.connect_ex((a, 7))
    select.select([], [s], [], 5)
    r = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    s.close(); return r
print("before", nb())
for fd in range(3, 1024):  # as daemons do
    try: os.close(fd)
    except OSError: pass
os.closerange(3, 65536)
print("after", nb())' 2>&1)
  assertEquals "races still work" "before 0
after 0" "$out"
}

test_trace_records_attempts_with_the_connect_id() {
  need_lab || return 0
  lab_blackhole b "$LAB_B6" 7 tcp
  nb epoll both.test >/dev/null
  $PY - "$LAB_TMP/trace" <<'EOF2' >"$LAB_TMP/check" 2>&1
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
c = [e for e in ev if e["event"] == "connect"]
a = sorted((e for e in ev if e["event"] == "attempt"),
           key=lambda e: e["t_ms"])
assert len(c) == 1, c
assert c[0]["result"] == "ok" and c[0]["nonblocking"], c
assert [x["family"] for x in a] == ["ipv6", "ipv4"], a
assert all(x["id"] == c[0]["id"] for x in a), (a, c)
assert a[1]["result"] == "ok" and a[0]["result"] == "ECANCELED", a
assert a[1]["t_ms"] - a[0]["t_ms"] >= 240, a
print("ok")
EOF2
  assertEquals "trace" ok "$(cat "$LAB_TMP/check")"
}

ds_run_shunit
