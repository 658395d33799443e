#!/bin/bash
# The preload shim under an inetd: a superserver that opens both an
# AF_INET listener on 0.0.0.0:P and its own IPv6-only one on [::]:P (the
# shim widens the first, then narrows it back), and hands accepted
# connections to exec'd services, which inherit the shim and sockets the
# shim widened. Everything runs in lab namespaces: B serves, A connects.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3
PORT=8086

suite_setUp() {
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  # The client, never preloaded: connects to ADDR PORT, sends DATA (if
  # any), half-closes and prints what came back (or the error).
  cat > "$tmp/client.py" <<'EOF'
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
data = sys.argv[3].encode() if len(sys.argv) > 3 else b""
try:
    c = socket.create_connection((addr, port), timeout=5)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        out += d
    sys.stdout.write(out.decode(errors="replace"))
except OSError as e:
    print("client error:", e)
EOF
}

suite_tearDown() {
  lab_cleanup
  rm -rf "$tmp"
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Makes the lab pair, B named by A's hosts file as server.test (both
# families) and A named by B's as client.test.
inetd_lab() {
  lab_pair || return
  lab_hosts a "$LAB_B4 server.test" "$LAB_B6 server.test"
  lab_hosts b "$LAB_A4 client4.test" "$LAB_A6 client6.test"
}

# Waits until FILE holds a line matching LINE, a basic regex (up to 5 s).
wait_line() {
  local i
  for ((i = 0; i < 250; i++)); do
    grep -qx "$2" "$1" 2>/dev/null && return 0
    sleep 0.02
  done
  return 1
}

# Runs tests/lab/shim_inetd in B (preloaded when $1 is the shim, else
# not) in mode $2 (epoll or poll), connects once from A over IPv4 and once
# over IPv6, and prints the program's output and the clients'.
run_inetd_like() {
  local out=$tmp/inetd.$2.out
  lab_bg b env ${1:+LD_PRELOAD="$(ds_preload_c "$1")"} \
    "$DS_BUILD/lab/shim_inetd" $PORT 2 "$2" > "$out" 2>&1
  wait_line "$out" ready || { cat "$out"; return 1; }
  echo "client4: $(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B4" $PORT)"
  echo "client6: $(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B6" $PORT)"
  lab_kill "$LAB_PID"
  cat "$out"
}

test_inetd_like_program_serves_both_families_with_and_without_the_shim() {
  # socket AF_INET, bind 0.0.0.0:P, listen, epoll_ctl ADD; socket
  # AF_INET6 + IPV6_V6ONLY, bind [::]:P, listen, ADD; then an IPv4 and an
  # IPv6 client. The shim narrows the first back at the second bind: the
  # epoll registration, O_NONBLOCK, FD_CLOEXEC, SO_KEEPALIVE and the
  # backlog must survive it.
  local shim mode out
  need_lab || return 0
  inetd_lab || fail "lab"
  for shim in "" "$SHIM"; do
    for mode in epoll poll; do
      out=$(run_inetd_like "$shim" $mode)
      echo "$out" | sed "s/^/    ${shim:+shim }$mode: /"
      assertContains "${shim:+shim }$mode: IPv4 client served" "$out" \
        "client4: hi s4"
      assertContains "${shim:+shim }$mode: IPv6 client served" "$out" \
        "client6: hi s6"
      assertContains "${shim:+shim }$mode: IPv4 client on the IPv4 socket" \
        "$out" "accepted s4 $LAB_A4"
      assertContains "${shim:+shim }$mode: IPv6 client on the IPv6 socket" \
        "$out" "accepted s6 $LAB_A6"
      assertContains "${shim:+shim }$mode: the IPv4 socket as the program made it" \
        "$out" "s4 domain=2 nonblock=1 cloexec=1 keepalive=1 backlog=7"
    done
  done
}

# Starts openbsd-inetd in the foreground in B with config $1 (preloaded
# when $2 is given), output in $tmp/inetd.log, and waits for port P.
start_inetd() {
  lab_bg b env ${2:+LD_PRELOAD="$2"} DUALSTACK_TRACE="$tmp/inetd.trace" \
    /usr/sbin/inetd -d "$1" > "$tmp/inetd.log" 2>&1
  lab_wait_port b tcp $PORT || return
  # Both listeners: inetd binds them one after the other.
  local i
  for ((i = 0; i < 100; i++)); do
    [ "$(lab_run b ss -Hltn "sport = :$PORT" | wc -l)" -ge 2 ] && return 0
    sleep 0.02
  done
}

test_openbsd_inetd_with_micro_httpd_serves_both_families() {
  # Debian's openbsd-inetd, "tcp" service: an AF_INET and an AF_INET6
  # (V6ONLY) listener, both in libevent's epoll set before the second
  # bind. Without the shim both families are served; with it, both must
  # still be (the IPv4 one used to lose its epoll registration).
  local shim out
  need_lab || return 0
  if [ ! -x /usr/sbin/inetd ] || [ ! -x /usr/sbin/micro-httpd ]; then
    ds_skip "needs openbsd-inetd and micro-httpd"
    return 0
  fi
  inetd_lab || fail "lab"
  mkdir -p "$tmp/www"
  echo "hello from micro-httpd" > "$tmp/www/index.html"
  echo "$PORT stream tcp nowait root /usr/sbin/micro-httpd micro-httpd" \
    "$tmp/www" > "$tmp/inetd.conf"
  for shim in "" "$SHIM"; do
    start_inetd "$tmp/inetd.conf" "$shim" || fail "inetd did not start"
    for addr in "$LAB_B4" "$LAB_B6"; do
      out=$(lab_run a timeout 10 $PY "$tmp/client.py" "$addr" $PORT \
        "$(printf 'GET /index.html HTTP/1.0\r\n\r\n')")
      assertContains "${shim:+shim: }$addr served" "$out" \
        "hello from micro-httpd"
    done
    lab_kill "$LAB_PID"
  done
  assertContains "the narrowing is traced" "$(cat "$tmp/inetd.trace")" \
    "narrowed back"
}

test_epoll_registration_made_before_bind_follows_the_widened_socket() {
  # A program that registers its listener with epoll before binding it
  # (the widening swaps the socket under the fd at bind): IPv6 and IPv4
  # clients must wake its epoll_wait.
  local out
  need_lab || return 0
  inetd_lab || fail "lab"
  lab_bg b env LD_PRELOAD="$SHIM" $PY -c '
import select, socket, sys
s = socket.socket(socket.AF_INET)
s.setblocking(False)
ep = select.epoll()
ep.register(s.fileno(), select.EPOLLIN)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
print("ready", flush=True)
for _ in range(2):
    if not ep.poll(10):
        print("timeout", flush=True); sys.exit(1)
    c, a = s.accept()
    print("accepted", a[0], flush=True)
    c.sendall(b"hi\n"); c.close()
' $PORT > "$tmp/ep.out" 2>&1
  wait_line "$tmp/ep.out" ready || fail "server did not start"
  lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B6" $PORT > /dev/null
  lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B4" $PORT > /dev/null
  lab_kill "$LAB_PID"
  out=$(cat "$tmp/ep.out")
  echo "$out" | sed 's/^/    /'
  assertContains "IPv6 client woke epoll" "$out" "accepted 172.21.112."
  assertContains "IPv4 client woke epoll" "$out" "accepted $LAB_A4"
}

# The Perl inetd service: prints its peer as an IPv4-only script finds
# it (getpeername(STDIN), sockaddr_in, inet_ntoa, gethostbyaddr).
write_peer_pl() {
  cat > "$tmp/peer.pl" <<'EOF'
use strict; use warnings;
use Socket;
$| = 1;
my $sa = getpeername(STDIN) or do { print "getpeername: $!\n"; exit 1 };
my ($port, $iaddr) = eval { sockaddr_in($sa) };
if (!defined $iaddr) { print "sockaddr_in failed\n"; exit 1 }
my $name = gethostbyaddr($iaddr, AF_INET) // "(none)";
print "peer ", inet_ntoa($iaddr), " $name\n";
EOF
}

test_inetd_perl_service_sees_ipv4_and_ipv6_clients_as_ipv4() {
  # inetd (tcp4: one AF_INET listener, widened under the shim) execs a
  # Perl service on each connection, fd 0 the accepted socket: the
  # service must see it as the AF_INET socket inetd made, IPv4 clients as
  # themselves, IPv6 clients as a source-pool address named by B's hosts
  # file. openbsd-inetd drops LD_ variables: the widening puts the shim
  # back into LD_PRELOAD for its children.
  local shim out
  need_lab || return 0
  if [ ! -x /usr/sbin/inetd ] || [ ! -x /usr/bin/perl ]; then
    ds_skip "needs openbsd-inetd and perl"
    return 0
  fi
  inetd_lab || fail "lab"
  write_peer_pl
  echo "$PORT stream tcp4 nowait root /usr/bin/perl perl $tmp/peer.pl" \
    > "$tmp/inetd.conf"
  for shim in "" "$SHIM"; do
    start_inetd "$tmp/inetd.conf" "$shim" || fail "inetd did not start"
    out=$(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B4" $PORT)
    echo "    ${shim:+shim }ipv4: $out"
    assertEquals "${shim:+shim: }IPv4 client" "peer $LAB_A4 client4.test" \
      "$out"
    if [ -n "$shim" ]; then
      out=$(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B6" $PORT)
      echo "    shim ipv6: $out"
      assertContains "shim: IPv6 client as a source-pool address" "$out" \
        "peer 172.21.112."
      assertContains "shim: its name from B's hosts file" "$out" \
        " client6.test"
    fi
    lab_kill "$LAB_PID"
  done
  assertContains "the adoption is traced" "$(cat "$tmp/inetd.trace")" \
    '"inherited":true'
}

test_inherited_sockets_not_from_a_widening_stay_ipv6() {
  # A preloaded Python parent widens 0.0.0.0:P1 (so DUALSTACK_WIDENED
  # names tcp:P1) and also binds its own dual-stack AF_INET6 [::]:P2. It
  # execs a preloaded child per connection, the connection as fd 0 and 1:
  # on P2 the child sees what it would without the shim (IPv6, IPv4
  # clients as ::ffff:); on P1 the AF_INET socket its parent made. Then a
  # child inherits the widened P1 listener itself and accepts on it.
  local out p1=8087 p2=8088
  need_lab || return 0
  inetd_lab || fail "lab"
  cat > "$tmp/child.py" <<'EOF'
import os, socket
s = socket.socket(fileno=0)
p = s.getpeername()
os.write(1, ("%d %s\n" % (s.family, p[0])).encode())
s.detach()
EOF
  cat > "$tmp/lchild.py" <<'EOF'
import socket, sys
l = socket.socket(fileno=int(sys.argv[1]))
c, a = l.accept()
c.sendall(("listener %d %s %s\n" % (l.family, a[0], l.getsockname()[0])).encode())
c.close()
l.detach()
EOF
  lab_bg b env LD_PRELOAD="$SHIM" $PY -c '
import ctypes, os, socket, subprocess, sys
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_char_p
py, d, p1, p2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s1 = socket.socket(socket.AF_INET)
s1.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s1.bind(("0.0.0.0", p1)); s1.listen(8)
s2 = socket.socket(socket.AF_INET6)
s2.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s2.bind(("::", p2)); s2.listen(8)
# The C environment, which the shim changed (os.environ is a copy).
print("ready", (getenv(b"DUALSTACK_WIDENED") or b"-").decode(), flush=True)
for s in (s2, s2, s1):
    c, a = s.accept()
    subprocess.run([py, d + "/child.py"], stdin=c, stdout=c)
    c.close()
subprocess.run([py, d + "/lchild.py", str(s1.fileno())],
               pass_fds=(s1.fileno(),))
' "$PY" "$tmp" $p1 $p2 > "$tmp/parent.out" 2>&1
  wait_line "$tmp/parent.out" "ready .*" ||
    fail "parent: $(cat "$tmp/parent.out")"
  assertContains "the widening is noted for children" \
    "$(cat "$tmp/parent.out")" "ready tcp:$p1"
  out="own-v4: $(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B4" $p2)
own-v6: $(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B6" $p2)
wide-v4: $(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B4" $p1)
wide-listener-v6: $(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B6" $p1)"
  echo "$out" | sed 's/^/    /'
  assertContains "own IPv6 socket, IPv4 client: left IPv6" "$out" \
    "own-v4: 10 ::ffff:$LAB_A4"
  assertContains "own IPv6 socket, IPv6 client: left IPv6" "$out" \
    "own-v6: 10 $LAB_A6"
  assertContains "widened socket, IPv4 client: AF_INET" "$out" \
    "wide-v4: 2 $LAB_A4"
  assertContains "inherited widened listener: AF_INET, IPv6 client shown IPv4" \
    "$out" "wide-listener-v6: listener 2 172.21.112."
  assertContains "inherited widened listener: bound to 0.0.0.0" "$out" \
    " 0.0.0.0"
}

# A port stops being noted as widened when its widened socket is closed:
# the program's own IPv6 socket on that port, handed to a child later, is
# IPv6 in the child, as without the shim (it was taken for the widened
# one: AF_INET, and its IPv6 client a pool address).
test_closed_widened_port_is_forgotten_by_children() {
  need_lab || return 0
  lab_pair
  prog='
import os, socket, subprocess, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(); s.close()
s6 = socket.socket(socket.AF_INET6)
s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s6.bind(("::", 8080)); s6.listen()
child = """
import socket, sys
l = socket.socket(fileno=int(sys.argv[1]))
print("child sees", l.family, l.getsockname()[:2])
c = socket.socket(socket.AF_INET6); c.connect(("2001:db8::1", 8080))
print("child accepted", l.accept()[1][0])
"""
subprocess.run([sys.executable, "-c", child, str(s6.fileno())],
               pass_fds=(s6.fileno(),))'
  without=$(lab_run a $PY -c "$prog" 2>&1)
  with=$(lab_run a env LD_PRELOAD="$SHIM" $PY -c "$prog" 2>&1)
  assertContains "$without" "child accepted 2001:db8::1"
  assertEquals "the same with the shim" "$without" "$with"
}

# A widened listener another fd also holds (a dup) is not narrowed when
# the program binds its own IPv6-only socket on the port: narrowing would
# leave the fd unbound (the dup keeps [::]:P). The program's IPv6 bind
# fails instead (README, Limits); its listener keeps serving.
test_widened_socket_held_by_a_dup_is_not_narrowed() {
  need_lab || return 0
  lab_pair
  out=$(lab_run a env LD_PRELOAD="$SHIM" $PY -c '
import os, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7001)); s.listen()
d = os.dup(s.fileno())
s6 = socket.socket(socket.AF_INET6)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
try:
    s6.bind(("::", 7001)); print("bind6 ok")
except OSError as e:
    print("bind6 errno", e.errno)
print("listener", s.getsockname())
c = socket.create_connection(("192.0.2.1", 7001), 2)
print("accepted", s.accept()[1][0])' 2>&1)
  assertContains "$out" "listener ('0.0.0.0', 7001)"
  assertContains "$out" "accepted 192.0.2.1"
}

ds_run_shunit
