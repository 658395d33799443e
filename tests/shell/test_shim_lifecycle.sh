#!/bin/bash
# The shim across process lifecycle events in real IPv4-only programs:
# children started with Python's subprocess (vfork, then close_range,
# close and dup2 in the child before exec), os.posix_spawn and os.system
# (glibc's clone(CLONE_VM|CLONE_VFORK)), and fork. A vfork child runs in
# its parent's memory: whatever the shim does there must leave the
# parent's view of its sockets as it was. Names come from the test DNS
# server in B through A's resolv.conf.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3

# How each mode starts its child, in the Python programs below: "run"
# (subprocess.run, close_fds=True: vfork, close_range), "popen" (Popen
# with pipes: vfork, dup2 onto 0-2, close_range), "spawn"
# (os.posix_spawn) and "system" (os.system).
SPAWN='
import os, subprocess
def spawn(mode):
    if mode == "run":
        subprocess.run(["true"], check=True)
    elif mode == "popen":
        p = subprocess.Popen(["cat"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        assert p.communicate(b"x")[0] == b"x"
    elif mode == "spawn":
        pid = os.posix_spawn("/bin/true", ["true"], dict(os.environ))
        assert os.waitpid(pid, 0)[1] == 0
    elif mode == "system":
        assert os.system("true") == 0
'

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  cat > "$LAB_TMP/dns.conf" <<'EOF'
v6only.test  AAAA 2001:db8::2
v6only.test  A    NODATA
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

# Prints the value of key $1 in output $2.
val() {
  echo "$2" | sed -n "s/^$1 //p" | head -n 1
}

# (a) A blocking client connected through a synthetic address starts a
# child: its socket still shows the synthetic peer, and data still flows.
test_blocking_client_keeps_its_synthetic_peer_across_children() {
  need_lab || return 0
  local mode out
  for mode in run popen spawn system; do
    out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_STATE=off timeout 20 \
      $PY -c "$SPAWN"'
import socket, sys
a = socket.gethostbyname("v6only.test")
s = socket.socket(socket.AF_INET); s.connect((a, 7))
print("asked %s:7" % a)
print("before %s:%d" % s.getpeername())
s.sendall(b"one"); print("reply1", s.recv(100).decode())
spawn(sys.argv[1])
print("after %s:%d" % s.getpeername())
print("sockname_family", s.getsockname().__len__())
s.sendall(b"two"); print("reply2", s.recv(100).decode())' "$mode" 2>&1)
    echo "$out" | grep -q '^asked 10\.170\.16' || fail "$mode: not synthetic: $out"
    assertEquals "$mode: getpeername before" "$(val asked "$out")" \
      "$(val before "$out")"
    assertEquals "$mode: getpeername after the child" "$(val asked "$out")" \
      "$(val after "$out")"
    assertEquals "$mode: getsockname still IPv4 (2-tuple)" 2 \
      "$(val sockname_family "$out")"
    assertEquals "$mode: data before" "ipv6 one" "$(val reply1 "$out")"
    assertEquals "$mode: data after" "ipv6 two" "$(val reply2 "$out")"
  done
}

# A fork()ed child is a process of its own: the shim works fully there
# (its pid is renewed before user code runs), and the parent is untouched.
test_forked_child_translates_and_parent_keeps_its_peer() {
  need_lab || return 0
  local out
  out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_STATE=off timeout 20 $PY -c '
import os, socket
a = socket.gethostbyname("v6only.test")
s = socket.socket(socket.AF_INET); s.connect((a, 7))
pid = os.fork()
if pid == 0:
    s.close()
    c = socket.socket(socket.AF_INET); c.connect((a, 7))
    ok = c.getpeername() == (a, 7)
    c.sendall(b"c"); ok = ok and c.recv(100) == b"ipv6 c"
    os._exit(0 if ok else 1)
child_ok = os.waitpid(pid, 0)[1] == 0
s.sendall(b"p")
print("child", child_ok, "parent", s.getpeername() == (a, 7),
      s.recv(100).decode())' 2>&1)
  assertEquals "fork: both sides" "child True parent True ipv6 p" "$out"
}

# (b) A Python IPv4 server on 0.0.0.0 (widened) with an IPv6 client held
# open starts a child: the listener's name and the connection's peer stay,
# and the held source-pool address is not handed to new clients. The pool
# is a /29 (six addresses), so seven new clients from seven IPv6
# addresses would recycle a released one.
test_widened_server_keeps_names_and_holds_across_children() {
  need_lab || return 0
  local mode out cl i srcs=
  for i in $(seq 11 17); do srcs="$srcs 2001:db8::1:$i/64"; done
  # shellcheck disable=SC2086
  lab_addr a "$LAB_IF_A" $srcs
  for mode in run popen spawn system; do
    lab_bg b env LD_PRELOAD=$SHIM DUALSTACK_STATE=off \
      DUALSTACK_SOURCE_POOL=172.21.112.0/29 timeout 30 $PY -c "$SPAWN"'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(16)
print("listener_before %s:%d" % s.getsockname(), flush=True)
held, a = s.accept()
print("held %s" % a[0])
print("peer_before %s" % held.getpeername()[0])
held.sendall(b"hello\n")
spawn(sys.argv[1])
print("listener_after %s:%d" % s.getsockname())
print("peer_after %s" % held.getpeername()[0])
new = []
for _ in range(7):
    c, a = s.accept()
    new.append(a[0])
    c.sendall(b"x\n"); c.close()
print("new", " ".join(new))
print("peer_end %s" % held.getpeername()[0])
held.sendall(b"still\n"); held.close()' "$mode" > "$LAB_TMP/server.out" 2>&1
    lab_wait_port b tcp 80
    cl=$(lab_run a timeout 30 $PY -c '
import socket
def conn(src):
    c = socket.socket(socket.AF_INET6); c.settimeout(20)
    c.bind((src, 0)); c.connect(("2001:db8::2", 80))
    return c, c.makefile()
held, f = conn("2001:db8::1")
first = f.readline().strip()
for i in range(11, 18):
    c, g = conn("2001:db8::1:%d" % i); g.readline(); c.close()
print(first, f.readline().strip())' 2>&1)
    wait "$LAB_PID"
    out=$(cat "$LAB_TMP/server.out")
    assertEquals "$mode: the held client read both lines" "hello still" "$cl"
    assertEquals "$mode: listener before" "0.0.0.0:80" \
      "$(val listener_before "$out")"
    assertEquals "$mode: listener after the child" "0.0.0.0:80" \
      "$(val listener_after "$out")"
    echo "$out" | grep -q '^held 172\.21\.112\.[1-6]$' ||
      fail "$mode: held client not from the source pool: $out"
    assertEquals "$mode: getpeername before" "$(val held "$out")" \
      "$(val peer_before "$out")"
    assertEquals "$mode: getpeername after the child" "$(val held "$out")" \
      "$(val peer_after "$out")"
    assertEquals "$mode: getpeername after new clients" "$(val held "$out")" \
      "$(val peer_end "$out")"
    assertEquals "$mode: seven new clients" 7 \
      "$(val new "$out" | wc -w)"
    assertNotContains "$mode: the held address went to nobody else" \
      " $(val new "$out") " " $(val held "$out") "
  done
}

# (c) A non-blocking connect whose race is in flight (IPv6 black-holed,
# the IPv4 attempt 2 s later) while the process starts a child: it
# completes as without the child, with the winner on the fd.
test_nonblocking_race_in_flight_completes_across_children() {
  need_lab || return 0
  local mode out
  lab_blackhole b "$LAB_B6" 7 tcp
  for mode in run popen spawn system; do
    out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_STATE=off \
      DUALSTACK_ATTEMPT_DELAY_MS=2000 timeout 30 $PY -c "$SPAWN"'
import errno, select, socket, sys, time
a = socket.gethostbyname("both.test")
s = socket.socket(socket.AF_INET); s.setblocking(False)
t0 = time.monotonic()
print("connect", errno.errorcode.get(s.connect_ex((a, 7)), "0"))
spawn(sys.argv[1])
print("spawned_ms %d" % ((time.monotonic() - t0) * 1000))
w = select.select([], [s], [], 15)[1]
print("done_ms %d" % ((time.monotonic() - t0) * 1000))
print("writable", bool(w))
print("so_error", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
print("peer %s:%d" % s.getpeername())
s.setblocking(True); s.settimeout(5)
s.sendall(b"hello"); print("reply", s.recv(100).decode())' "$mode" 2>&1)
    assertEquals "$mode: EINPROGRESS" EINPROGRESS "$(val connect "$out")"
    assertTrue "$mode: the child ran while the race was in flight: $out" \
      "[ $(val spawned_ms "$out") -lt 1900 ]"
    assertEquals "$mode: writable" True "$(val writable "$out")"
    assertTrue "$mode: completed after the attempt delay, well before 15 s" \
      "[ $(val done_ms "$out") -lt 10000 ]"
    assertEquals "$mode: SO_ERROR" 0 "$(val so_error "$out")"
    assertEquals "$mode: peer" "192.0.2.2:7" "$(val peer "$out")"
    assertEquals "$mode: IPv4 won" "ipv4 hello" "$(val reply "$out")"
  done
}

# The same in C, with a vfork child that closes the socket's fd itself
# (Python closes by close_range where the kernel has it, else fd by fd),
# closes every fd by close_range, or dup2()s /dev/null onto it. The race
# goes on in the parent: IPv4 wins once the IPv6 attempt had its 2 s.
test_vfork_child_closing_the_racing_fd_leaves_the_race_alone() {
  need_lab || return 0
  local mode out pre=$(ds_preload_c "$SHIM")
  lab_blackhole b "$LAB_B6" 7 tcp
  for mode in close close_range dup2; do
    out=$(lab_run a env LD_PRELOAD="$pre" DUALSTACK_STATE=off \
      DUALSTACK_ATTEMPT_DELAY_MS=2000 timeout 30 \
      "$DS_BUILD/lab/shim_vfork" $mode both.test 7 2>&1)
    assertEquals "$mode: EINPROGRESS" EINPROGRESS "$(val connect_errno "$out")"
    assertEquals "$mode: the child exited 0" 0 "$(val child "$out")"
    assertEquals "$mode: SO_ERROR: $out" 0 "$(val so_error "$out")"
    assertEquals "$mode: peer" "192.0.2.2:7" "$(val peer "$out")"
    assertEquals "$mode: IPv4 won" "ipv4 hello" "$(val reply "$out")"
  done
}

# Children the shim cannot watch (tests/lab/shim_forks.c): a process
# whose first hooked call is made in a vfork child keeps translating
# afterwards, and children made without fork handlers (a raw clone,
# glibc's _Fork) but with memory of their own translate as their parent.
test_children_made_without_fork_handlers() {
  need_lab || return 0
  local pre mode out
  pre=$(ds_preload_c "$SHIM")
  for mode in vfirst raw Fork; do
    out=$(lab_run a env LD_PRELOAD="$pre" timeout 20 \
      "$DS_BUILD/lab/shim_forks" $mode 2>&1)
    assertContains "$mode: the parent translates: $out" "$out" \
      "parent 10.170.160.1 ipv6 hi"
    [ $mode = vfirst ] && continue
    assertContains "$mode: the child translates: $out" "$out" \
      "child 10.170.160.1 ipv6 hi"
  done
}

ds_run_shunit
