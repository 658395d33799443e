#!/bin/bash
# The preload shim, server side, with real IPv4-only servers: a socket
# bound to 0.0.0.0 also serves IPv6 clients, which the application sees as
# source-pool addresses (172.21.112.0/20), IPv4 clients as themselves.
# Loopback tests run in the root namespace (only preloaded servers, on
# free ports); tests with 2001:db8:: addresses, many client addresses or
# IPv6 disabled run in lab namespaces.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3

suite_setUp() {
  tmp=$(mktemp -d)
  bgpids=
  # The client, never preloaded: connects to ADDR PORT (from SRC when
  # given), sends DATA, half-closes and prints what came back.
  cat > "$tmp/client.py" <<'EOF'
import socket, sys
addr, port, data = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
src = sys.argv[4] if len(sys.argv) > 4 else None
c = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
c.settimeout(5)
if src:
    c.bind((src, 0))
c.connect((addr, port))
c.sendall(data)
c.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = c.recv(4096)
    if not d:
        break
    out += d
sys.stdout.write(out.decode())
EOF
  # A preloaded server: binds 0.0.0.0:PORT, and per connection sends the
  # peer accept() gave, then getpeername()'s, then waits for the client
  # to close. A thread per connection, so clients can hold theirs open.
  cat > "$tmp/peers.py" <<'EOF'
import socket, sys, threading
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(256)
def serve(c, a):
    c.sendall(("%s %s\n" % (a[0], c.getpeername()[0])).encode())
    while c.recv(4096):
        pass
    c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
EOF
}

suite_tearDown() {
  local p
  for p in $bgpids; do
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  lab_cleanup
  rm -rf "$tmp"
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Starts CMD in the background (killed by tearDown).
bg() {
  "$@" &
  bgpids="$bgpids $!"
}

# Prints a TCP and UDP port free on both families (the kernel's choice).
free_port() {
  $PY -c '
import socket
while True:
    t = socket.socket(socket.AF_INET6); u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    t.bind(("::", 0)); p = t.getsockname()[1]
    try:
        u.bind(("::", p))
    except OSError:
        continue
    print(p); break'
}

# wait_port tcp|udp PORT: waits (up to 5 s) until something listens on
# PORT in this namespace.
wait_port() {
  local i opt=-t
  [ "$1" = udp ] && opt=-u
  for ((i = 0; i < 250; i++)); do
    [ -n "$(ss -Hln $opt "sport = :$2")" ] && return 0
    sleep 0.02
  done
  echo "nothing listens on $1 port $2" >&2
  return 1
}

# Prints the local addresses listening on tcp|udp PORT ("[::]:P", ...).
listeners() {
  local opt=-t
  [ "$1" = udp ] && opt=-u
  ss -Hln $opt "sport = :$2" | awk '{print $4}' | sort | tr '\n' ' '
}

client() {
  timeout 10 $PY "$tmp/client.py" "$@" 2>&1
}

test_nc_listener_serves_ipv6_and_ipv4_clients() {
  port=$(free_port)
  for addr in ::1 127.0.0.1; do
    : > "$tmp/nc.out"
    bg env LD_PRELOAD=$SHIM DUALSTACK_TRACE="$tmp/trace" timeout 10 \
      nc.traditional -v -n -l -p "$port" < /dev/null > "$tmp/nc.out" \
      2> "$tmp/nc.err"
    wait_port tcp "$port"
    # ss shows a dual-stack [::] socket as "*".
    assertEquals "nc listens on [::], dual-stack, only" "*:$port " \
      "$(listeners tcp "$port")"
    client "$addr" "$port" "hello from $addr" > /dev/null
    for _ in $(seq 100); do [ -s "$tmp/nc.out" ] && break; sleep 0.02; done
    assertEquals "nc got the data from $addr" "hello from $addr" \
      "$(cat "$tmp/nc.out")"
    if [ "$addr" = ::1 ]; then
      assertContains "nc -v shows a source-pool address" \
        "$(cat "$tmp/nc.err")" "from (UNKNOWN) [172.21.112."
    else
      assertContains "nc -v shows the IPv4 client" "$(cat "$tmp/nc.err")" \
        "from (UNKNOWN) [127.0.0.1]"
    fi
    wait
  done
  trace=$(cat "$tmp/trace")
  assertContains "widened bind traced" "$trace" \
    "\"event\":\"bind\",\"id\":"
  assertContains "widened bind traced" "$trace" \
    "\"addr\":\"0.0.0.0\",\"port\":$port,\"family\":\"ipv4\",\"widened\":true"
  assertContains "IPv6 peer traced" "$trace" \
    '"event":"accept"'
  assertContains "IPv6 peer traced with its address" "$trace" \
    '"peer":"::1"'
}

test_nc_listener_in_a_lab_serves_a_global_ipv6_client() {
  need_lab || return 0
  lab_pair
  lab_bg b env LD_PRELOAD=$SHIM DUALSTACK_TRACE="$LAB_TMP/trace" timeout 10 \
    nc.traditional -v -n -l -p 80 < /dev/null > "$LAB_TMP/nc.out" \
    2> "$LAB_TMP/nc.err"
  lab_wait_port b tcp 80
  lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B6" 80 "hello v6" > /dev/null
  for _ in $(seq 100); do [ -s "$LAB_TMP/nc.out" ] && break; sleep 0.02; done
  assertEquals "data from 2001:db8::1" "hello v6" "$(cat "$LAB_TMP/nc.out")"
  assertContains "nc -v shows a source-pool address" \
    "$(cat "$LAB_TMP/nc.err")" "[172.21.112.1]"
  assertContains "trace names the IPv6 peer and its synthetic address" \
    "$(cat "$LAB_TMP/trace")" \
    '"peer":"2001:db8::1","port":'
  assertContains "trace names the synthetic address" \
    "$(cat "$LAB_TMP/trace")" '"synthetic":"172.21.112.1"'
  lab_kill "$LAB_PID"
  lab_bg b env LD_PRELOAD=$SHIM timeout 10 nc.traditional -v -n -l -p 80 \
    < /dev/null > "$LAB_TMP/nc4.out" 2> "$LAB_TMP/nc4.err"
  lab_wait_port b tcp 80
  lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B4" 80 "hello v4" > /dev/null
  for _ in $(seq 100); do [ -s "$LAB_TMP/nc4.out" ] && break; sleep 0.02; done
  assertEquals "data from 192.0.2.1" "hello v4" "$(cat "$LAB_TMP/nc4.out")"
  assertContains "nc -v shows the IPv4 client" "$(cat "$LAB_TMP/nc4.err")" \
    "[192.0.2.1]"
}

test_nc_v_names_an_ipv6_client_by_reverse_lookup() {
  need_lab || return 0
  lab_pair
  # Without -n, nc -v looks the peer up (gethostbyaddr of the source-pool
  # address): the name of the IPv6 address it stands for, from B's hosts
  # file; a client without a name shows as its IPv6 literal.
  lab_hosts b "2001:db8::1 alpha.test"
  lab_run a ip addr add 2001:db8::7/64 dev "$LAB_IF_A" nodad
  for src in 2001:db8::1 2001:db8::7; do
    lab_bg b env LD_PRELOAD=$SHIM timeout 10 nc.traditional -v -l -p 80 \
      < /dev/null > "$LAB_TMP/nc.out" 2> "$LAB_TMP/nc.err"
    lab_wait_port b tcp 80
    lab_run a timeout 5 $PY -c '
import socket, sys
s = socket.socket(socket.AF_INET6); s.bind((sys.argv[1], 0))
s.connect((sys.argv[2], 80)); s.sendall(b"hi\n"); s.close()' "$src" "$LAB_B6"
    for _ in $(seq 100); do [ -s "$LAB_TMP/nc.out" ] && break; sleep 0.02; done
    case $src in
      2001:db8::1) want="alpha.test [172.21.112." ;;
      *) want="2001:db8::7 [172.21.112." ;;
    esac
    assertContains "nc -v names $src" "$(cat "$LAB_TMP/nc.err")" "$want"
    lab_kill "$LAB_PID"
  done
}

# dropbear sets SO_LINGER {1, 5} before bind. SO_LINGER has the number of
# TCP_CONGESTION (13), which the options' replay set as a string of one
# byte: EINVAL, so the listener was not widened. It is now, with the
# linger kept (read with getsockopt(2) itself, past the hook).
test_listener_with_so_linger_set_before_bind_is_widened() {
  need_lab || return 0
  lab_pair
  lab_bg b env LD_PRELOAD=$SHIM $PY -c '
import ctypes, socket, struct
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))
s.bind(("0.0.0.0", 2222)); s.listen(5)
buf, l = ctypes.create_string_buffer(8), ctypes.c_uint(8)
ctypes.CDLL(None).syscall(55, s.fileno(), socket.SOL_SOCKET,
                          socket.SO_LINGER, buf, ctypes.byref(l))
print("linger", struct.unpack("ii", buf.raw), flush=True)
for i in range(2):
    c, a = s.accept()
    print("peer", a[0], flush=True); c.close()' > "$LAB_TMP/linger.out" 2>&1
  lab_wait_port b tcp 2222
  for a in "$LAB_B6" "$LAB_B4"; do
    lab_connect a "$a" 2222 2000 > /dev/null
  done
  sleep 0.3
  out=$(cat "$LAB_TMP/linger.out")
  assertContains "linger kept" "$out" "linger (1, 5)"
  assertContains "IPv6 client accepted" "$out" "peer 172.21.112."
  assertContains "IPv4 client accepted" "$out" "peer $LAB_A4"
}

# A multicast receiver binds 0.0.0.0:P (widened), joins, and later leaves
# (mDNS, SSDP). IPPROTO_IP options act on the real socket, with the
# kernel's IPv4 checks and state: a second join is EADDRINUSE, a leave
# takes the group out of /proc/net/igmp. Also at the fd limit, where no
# other socket can be made: IP_TOS still works, IPV6_* still refused.
test_multicast_join_and_leave_on_a_widened_socket_as_without() {
  need_lab || return 0
  lab_pair
  prog='
import os, socket, struct
def err(f):
    try:
        f(); return "ok"
    except OSError as e:
        return "errno %d" % e.errno
def igmp():
    return "030201EF" in open("/proc/net/igmp").read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
m = socket.inet_aton("239.1.2.3") + socket.inet_aton("192.0.2.1")
print("join", err(lambda: s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, m)), igmp())
print("again", err(lambda: s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, m)))
print("leave", err(lambda: s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, m)), igmp())
print("leave again", err(lambda: s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, m)))
fds = []
try:
    while True:
        fds.append(os.dup(0))
except OSError:
    pass
print("full tos", err(lambda: s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 16)))
print("full v6", err(lambda: s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)))'
  without=$(lab_run a sh -c "ulimit -n 64; $PY -c '$prog'" 2>&1)
  with=$(lab_run a sh -c "ulimit -n 64; LD_PRELOAD=$SHIM $PY -c '$prog'" 2>&1)
  assertContains "$without" "join ok True"
  assertContains "$without" "leave ok False"
  assertEquals "the same, line for line" "$without" "$with"
}

# A UDP server on 0.0.0.0 (socat, dnsmasq --listen-address) on a host with
# two IPv6 addresses: an IPv6 client asks one of them, and the reply must
# come from it (left to itself the kernel picks one source for every
# reply), or the client's connected socket drops it. The server sees no
# control data it did not ask for.
test_udp_reply_leaves_from_the_address_the_client_asked() {
  need_lab || return 0
  lab_pair
  lab_addr b "$LAB_IF_B" 2001:db8::3/64
  lab_bg b env LD_PRELOAD=$SHIM $PY -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5300))
for i in range(4):
    if i % 2:
        d, peer = s.recvfrom(512)
        s.sendto(b"from recvfrom", peer)
    else:
        d, anc, fl, peer = s.recvmsg(512, 256)
        print("ancillary", anc, fl, flush=True)
        s.sendmsg([b"from recvmsg"], [], 0, peer)' > "$LAB_TMP/udp.out" 2>&1
  lab_wait_port b udp 5300
  for i in 1 2; do
    for dst in 2001:db8::2 2001:db8::3; do
      out=$(lab_run a $PY -c '
import socket, sys
c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c.settimeout(3)
c.connect((sys.argv[1], 5300)); c.send(b"hi")
try:
    print(c.recv(100).decode())
except socket.timeout:
    print("TIMEOUT")' "$dst")
      assertContains "reply to a client of $dst" "$out" "from recv"
    done
  done
  assertContains "no control data unasked" "$(cat "$LAB_TMP/udp.out")" \
    "ancillary [] 0"
}

# The reply source's edges: a control buffer larger than the shim's own
# still gets no IPV6_PKTINFO the program did not ask for, and a reply
# after the address the client asked was removed is sent from the
# kernel's choice (it was EINVAL), as a plain IPv6 socket's would be.
test_udp_reply_source_with_a_large_control_buffer_and_a_removed_address() {
  need_lab || return 0
  lab_pair
  lab_addr b "$LAB_IF_B" 2001:db8::3/64
  lab_bg b env LD_PRELOAD=$SHIM $PY -c '
import socket, subprocess
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5301))
d, anc, fl, peer = s.recvmsg(512, 5000)
print("big", [(l, t) for l, t, x in anc], fl, flush=True)
s.sendto(b"one", peer)
d, peer = s.recvfrom(512)
subprocess.run(["ip", "addr", "del", "2001:db8::3/64", "dev", "'"$LAB_IF_B"'"])
print("sendto", s.sendto(b"two", peer), flush=True)' > "$LAB_TMP/udp2.out" 2>&1
  lab_wait_port b udp 5301
  out=$(lab_run a $PY -c '
import socket
c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c.settimeout(3)
c.sendto(b"a", ("2001:db8::3", 5301)); print(c.recvfrom(100)[0])
c.sendto(b"b", ("2001:db8::3", 5301))')
  sleep 0.5
  srv=$(cat "$LAB_TMP/udp2.out")
  assertContains "$out" "b'one'"
  assertContains "no control data unasked" "$srv" "big [] 0"
  assertContains "sent after the address went" "$srv" "sendto 3"
}

test_program_that_also_binds_ipv6_only_on_the_port() {
  # As nginx with "listen 80; listen [::]:80 ipv6only=on": 0.0.0.0:P, then
  # its own [::]:P with IPV6_V6ONLY. The widened first socket would take
  # the port from the second: it is narrowed back, and both serve.
  port=$(free_port)
  out=$(env LD_PRELOAD=$SHIM DUALSTACK_TRACE="$tmp/narrow.trace" timeout 10 \
    $PY -c '
import socket, sys
p = int(sys.argv[1])
s4 = socket.socket(); s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s4.bind(("0.0.0.0", p)); s4.listen(8)
s6 = socket.socket(socket.AF_INET6)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s6.bind(("::", p)); s6.listen(8)
print("bound both")
for host in ("127.0.0.1", "::1"):
    c = socket.create_connection((host, p), timeout=3)
    if host == "::1":
        a, peer = s6.accept(); print("ipv6 on s6", peer[0])
    else:
        a, peer = s4.accept(); print("ipv4 on s4", peer[0])
    a.close(); c.close()
print("s4 family", s4.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN))' "$port" 2>&1)
  assertContains "both binds succeed" "$out" "bound both"
  assertContains "IPv4 client on the IPv4 socket" "$out" "ipv4 on s4 127.0.0.1"
  assertContains "IPv6 client on the program's IPv6 socket" "$out" "ipv6 on s6 ::1"
  assertContains "the narrowing is traced" "$(cat "$tmp/narrow.trace")" \
    "narrowed back"
}

test_recvmmsg_with_pktinfo_sized_control_buffers() {
  # The kernel writes IPV6_PKTINFO (larger) on the widened socket: the
  # shim must hand over IP_PKTINFO in buffers sized for it, for IPv4 and
  # IPv6 senders alike. Under SANITIZE the C program is an ASan build,
  # whose runtime must be loaded first.
  pre=$(ds_preload_c "$SHIM")
  out=$(env LD_PRELOAD="$pre" timeout 10 "$DS_BUILD/lab/shim_pktinfo" 2>&1)
  assertContains "both datagrams" "$out" "recvmmsg 2"
  assertContains "IPv4 sender, IP_PKTINFO, not truncated" "$out" \
    "from 127.0.0.1 pktinfo 127.0.0.1 ctrunc 0"
  assertContains "IPv6 sender as a source-pool address, with IP_PKTINFO" \
    "$out" "pktinfo 172.21.112."
  assertNotContains "no truncation" "$out" "ctrunc 1"
}

test_perl_io_socket_inet_server_peerhost() {
  port=$(free_port)
  bg env LD_PRELOAD=$SHIM timeout 20 perl -MIO::Socket::INET -e '
my $l = IO::Socket::INET->new(LocalPort => $ARGV[0], Listen => 5,
  ReuseAddr => 1, Proto => "tcp") or die "listen: $@";
while (my $c = $l->accept) {
  local $/; my $in = <$c>;
  print $c "peerhost ", $c->peerhost, "\n"; close $c;
}' "$port"
  wait_port tcp "$port"
  out=$(client ::1 "$port" x)
  assertContains "IPv6 client answered, peerhost synthetic" "$out" \
    "peerhost 172.21.112."
  out=$(client 127.0.0.1 "$port" x)
  assertEquals "IPv4 client as itself" "peerhost 127.0.0.1" "$out"
}

test_python_socketserver_tcp_and_udp_echo_to_ipv6_clients() {
  port=$(free_port)
  bg env LD_PRELOAD=$SHIM timeout 20 $PY -c '
import socketserver, sys, threading
class T(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.client_address[0].encode() + b" " +
                         self.rfile.readline())
class U(socketserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.client_address[0].encode() + b" " +
                         self.rfile.read())
p = int(sys.argv[1])
u = socketserver.UDPServer(("0.0.0.0", p), U)
threading.Thread(target=u.serve_forever, daemon=True).start()
socketserver.TCPServer(("", p), T).serve_forever()' "$port"
  wait_port tcp "$port"
  wait_port udp "$port"
  out=$(client ::1 "$port" "tcp echo")
  assertContains "TCP echo to an IPv6 client" "$out" "tcp echo"
  assertContains "client_address is a source-pool address" "$out" \
    "172.21.112."
  out=$(timeout 10 $PY -c '
import socket, sys
for fam, a in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
    c = socket.socket(fam, socket.SOCK_DGRAM); c.settimeout(5)
    c.sendto(b"udp echo", (a, int(sys.argv[1])))
    d, peer = c.recvfrom(4096)
    print(a, d.decode(), "from", peer[0])' "$port" 2>&1)
  assertContains "UDP echo to the IPv6 client, from [::1]" "$out" \
    "::1 172.21.112."
  assertContains "UDP reply came from ::1" "$out" "udp echo from ::1"
  assertContains "UDP echo to the IPv4 client" "$out" \
    "127.0.0.1 127.0.0.1 udp echo from 127.0.0.1"
}

test_python_http_server_fetched_with_curl_over_ipv6() {
  command -v curl > /dev/null || { ds_skip "curl not installed"; return 0; }
  port=$(free_port)
  mkdir "$tmp/www" && echo "served over v6" > "$tmp/www/index.txt"
  bg env LD_PRELOAD=$SHIM timeout 20 $PY -m http.server --bind 0.0.0.0 \
    --directory "$tmp/www" "$port" > "$tmp/http.out" 2> "$tmp/http.err"
  wait_port tcp "$port"
  out=$(timeout 10 curl -6 -s -S "http://[::1]:$port/index.txt" 2>&1)
  assertEquals "curl -6 got the file" "served over v6" "$out"
  out=$(timeout 10 curl -4 -s -S "http://127.0.0.1:$port/index.txt" 2>&1)
  assertEquals "curl -4 got the file" "served over v6" "$out"
  sleep 0.2
  assertContains "access log names the IPv6 client by its IPv4 stand-in" \
    "$(cat "$tmp/http.err")" "172.21.112."
  assertContains "access log names the IPv4 client" \
    "$(cat "$tmp/http.err")" "127.0.0.1 - -"
}

test_same_ipv6_client_same_synthetic_address() {
  port=$(free_port)
  bg env LD_PRELOAD=$SHIM timeout 20 $PY "$tmp/peers.py" "$port"
  wait_port tcp "$port"
  first=$(client ::1 "$port" "")
  second=$(client ::1 "$port" "")
  assertContains "a source-pool address" "$first" "172.21.112."
  assertEquals "accept and getpeername agree" \
    "$(echo "$first" | awk '{print $1}')" "$(echo "$first" | awk '{print $2}')"
  assertEquals "the same on the second connection" "$first" "$second"
}

test_accept4_without_address_then_getpeername_and_inherited_ipv6() {
  port=$(free_port)
  out=$(LD_PRELOAD=$SHIM timeout 20 $PY -c '
import ctypes, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
port = int(sys.argv[1])
def peer_of(fd):
    buf = ctypes.create_string_buffer(16); n = ctypes.c_uint(16)
    assert libc.getpeername(fd, buf, ctypes.byref(n)) == 0
    fam, p = struct.unpack("=HH", buf.raw[:4])
    return "%d %s" % (fam, socket.inet_ntoa(buf.raw[4:8]))
# A widened listener; accept4 with NULL address arguments.
s = socket.socket(socket.AF_INET); s.bind(("0.0.0.0", port)); s.listen(5)
c = socket.create_connection(("::1", port))
fd = libc.accept4(s.fileno(), None, None, socket.SOCK_CLOEXEC)
print("accept4-null", peer_of(fd))
# An IPv6 socket the program did not widen (as if inherited), accepted
# into a sockaddr_in.
s6 = socket.socket(socket.AF_INET6); s6.bind(("::", 0)); s6.listen(5)
c6 = socket.create_connection(("::1", s6.getsockname()[1]))
buf = ctypes.create_string_buffer(16); n = ctypes.c_uint(16)
fd = libc.accept(s6.fileno(), buf, ctypes.byref(n))
fam, p = struct.unpack("=HH", buf.raw[:4])
print("inherited", fam, n.value, socket.inet_ntoa(buf.raw[4:8]),
      socket.ntohs(p) == c6.getsockname()[1])
print("inherited-getpeername", peer_of(fd))
# The same with a UDP socket and recvfrom.
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("::1", 0))
cu = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
cu.sendto(b"x", u6.getsockname()[:2])
data = ctypes.create_string_buffer(16); n = ctypes.c_uint(16)
r = libc.recvfrom(u6.fileno(), data, 16, 0, buf, ctypes.byref(n))
fam, p = struct.unpack("=HH", buf.raw[:4])
print("inherited-recvfrom", r, fam, n.value, socket.inet_ntoa(buf.raw[4:8]))
' "$port" 2>&1)
  echo "$out" | sed 's/^/    /'
  assertContains "accept4(fd, NULL, NULL) then getpeername" "$out" \
    "accept4-null 2 172.21.112."
  assertContains "inherited IPv6 socket accepted into a sockaddr_in" "$out" \
    "inherited 2 16 172.21.112.1 True"
  assertContains "its getpeername" "$out" "inherited-getpeername 2 172.21.112."
  assertContains "inherited IPv6 UDP socket, recvfrom" "$out" \
    "inherited-recvfrom 1 2 16 172.21.112."
}

test_ipv4_client_names_any_buffer_and_no_stale_entry_after_unseen_close() {
  out=$(LD_PRELOAD=$SHIM timeout 20 $PY -c '
import ctypes, socket, struct, time
libc = ctypes.CDLL(None, use_errno=True)
SYS_close = 3  # x86_64
def show(buf, n):
    fam = struct.unpack("=H", buf.raw[:2])[0]
    port = socket.ntohs(struct.unpack("=H", buf.raw[2:4])[0])
    if fam == socket.AF_INET:
        return "inet %s:%d/%d" % (socket.inet_ntoa(buf.raw[4:8]), port, n)
    if fam == socket.AF_INET6:
        return "inet6 [%s]:%d/%d" % (
            socket.inet_ntop(socket.AF_INET6, buf.raw[8:24]), port, n)
    return "family %d" % fam
def name(fn, fd, size):
    buf = ctypes.create_string_buffer(128); n = ctypes.c_uint(size)
    if fn(fd, buf, ctypes.byref(n)) != 0:
        return "errno %d" % ctypes.get_errno()
    return show(buf, n.value)
def domain(fd):
    v = ctypes.c_int(0); n = ctypes.c_uint(4)
    libc.getsockopt(fd, socket.SOL_SOCKET, socket.SO_DOMAIN, ctypes.byref(v),
                    ctypes.byref(n))
    return v.value
def accept(lfd, size):
    if size is None:
        return libc.accept4(lfd, None, None, 0), "null"
    buf = ctypes.create_string_buffer(128); n = ctypes.c_uint(size)
    fd = libc.accept(lfd, buf, ctypes.byref(n))
    return fd, show(buf, n.value)
def names(fd):
    return " ".join([name(libc.getpeername, fd, 16),
                     name(libc.getpeername, fd, 128),
                     name(libc.getsockname, fd, 16),
                     name(libc.getsockname, fd, 128),
                     "domain %d" % domain(fd)])
s = socket.socket(socket.AF_INET); s.bind(("0.0.0.0", 0)); s.listen(5)
port = s.getsockname()[1]
print("port", port)
keep = []
# A legacy program sees its IPv4 client as AF_INET 127.0.0.1 whatever
# the size of its buffers, and its socket as AF_INET.
for size in (16, 128, None):
    c = socket.create_connection(("127.0.0.1", port)); keep.append(c)
    fd, peer = accept(s.fileno(), size)
    print("client", c.getsockname()[1], "accept", size, peer, names(fd))
    d = libc.dup(fd)
    print("dup", size, names(d))
    libc.close(d)
# Still so once the client has reset the connection.
c = socket.create_connection(("127.0.0.1", port))
fd, peer = accept(s.fileno(), 16)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close(); time.sleep(0.2)
print("reset", name(libc.getsockname, fd, 128), "domain %d" % domain(fd),
      "peer", name(libc.getpeername, fd, 128))
libc.close(fd)
# A connection closed without the shim seeing it (a raw close); its fd
# number reused by an IPv6-aware program: nothing stale shows.
l6 = socket.socket(socket.AF_INET6); l6.bind(("::", 0)); l6.listen(5)
p6 = l6.getsockname()[1]
c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind(("127.0.0.1", 0)); cport = c.getsockname()[1]
c.connect(("127.0.0.1", port))
fd, peer = accept(s.fileno(), 16)
print("first", peer, names(fd))
libc.syscall(SYS_close, fd); c.close()
# The same client address and port, to the IPv6-aware listener: the
# number the kernel hands out is the one just closed.
c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind(("127.0.0.1", cport)); c.connect(("127.0.0.1", p6))
fd2, peer = accept(l6.fileno(), 128)
print("reused", fd2 == fd, peer, name(libc.getpeername, fd2, 128),
      name(libc.getsockname, fd2, 128), "domain %d" % domain(fd2))
libc.syscall(SYS_close, fd2); c.close()
# The number reused by an IPv6 client socket made with socket(), and by
# a file.
c = socket.create_connection(("127.0.0.1", port))
fd, peer = accept(s.fileno(), 16)
libc.syscall(SYS_close, fd)
c6 = socket.socket(socket.AF_INET6)
print("socket", c6.fileno() == fd)
c6.connect(("::ffff:127.0.0.1", p6))
print("client6", name(libc.getpeername, fd, 128), "domain %d" % domain(fd))
c6.close()
f = open("/dev/null")
print("file", f.fileno() == fd, name(libc.getpeername, fd, 128))
f.close()
# The listener closed unseen and its number reused by an IPv6-aware
# dual-stack listener: an IPv4 client accepted into a sockaddr_storage
# shows as the kernel gives it.
lfd = s.detach(); libc.syscall(SYS_close, lfd)
l2 = socket.socket(socket.AF_INET6); l2.bind(("::", 0)); l2.listen(5)
c = socket.create_connection(("127.0.0.1", l2.getsockname()[1]))
fd, peer = accept(l2.fileno(), 128)
print("listener", l2.fileno() == lfd, peer)
' 2>&1)
  echo "$out" | sed 's/^/    /'
  port=$(echo "$out" | awk '$1 == "port" {print $2}')
  for size in 16 128 None; do
    line=$(echo "$out" | awk -v s=$size '$1 == "client" && $4 == s')
    cp=$(echo "$line" | awk '{print $2}')
    case $size in
      16) acc="inet 127.0.0.1:$cp/16" ;;
      128) acc="inet 127.0.0.1:$cp/16" ;;
      None) acc="null" ;;
    esac
    assertEquals "accept with a $size buffer, then the names" \
      "client $cp accept $size $acc inet 127.0.0.1:$cp/16 inet 127.0.0.1:$cp/16 inet 127.0.0.1:$port/16 inet 127.0.0.1:$port/16 domain 2" \
      "$line"
    assertContains "the same through a dup" "$out" \
      "dup $size inet 127.0.0.1:$cp/16 inet 127.0.0.1:$cp/16 inet 127.0.0.1:$port/16 inet 127.0.0.1:$port/16 domain 2"
  done
  assertContains "reset: getsockname still AF_INET, SO_DOMAIN AF_INET, getpeername ENOTCONN as without the shim" \
    "$out" "reset inet 127.0.0.1:$port/16 domain 2 peer errno 107"
  assertContains "before the unseen close" "$out" "first inet 127.0.0.1:"
  assertContains "same fd, same client address and port: shown as IPv6" \
    "$out" "reused True inet6 [::ffff:127.0.0.1]:"
  echo "$out" | grep "^reused" | grep -q "/28 inet6 \[::ffff:127.0.0.1\]:.*/28 inet6 \[::ffff:127.0.0.1\]:.*/28 domain 10$"
  assertTrue "getpeername, getsockname and SO_DOMAIN as the kernel says" $?
  assertContains "a socket() on the number" "$out" "socket True"
  assertContains "its names as the kernel says" "$out" \
    "client6 inet6 [::ffff:127.0.0.1]:"
  assertContains "SO_DOMAIN too" "$out" "/28 domain 10"
  assertContains "a file on the number: ENOTSOCK" "$out" "file True errno 88"
  assertContains "an IPv6-aware listener on the listener's number" "$out" \
    "listener True inet6 [::ffff:127.0.0.1]:"
}

test_options_flags_and_fd_kept_port_zero_works() {
  out=$(LD_PRELOAD=$SHIM timeout 20 $PY -c '
import fcntl, os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.setblocking(False)
fd = s.fileno()
s.bind(("0.0.0.0", 0))
port = s.getsockname()[1]
print("fd", s.fileno() == fd, "port", port > 0)
print("name", s.getsockname())
print("domain", s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN))

print("reuse", s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0,
      s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0)
import ctypes
v, l = ctypes.c_int(-1), ctypes.c_uint(4)
# getsockopt(2) itself (x86_64: 55), past the hook: the socket underneath.
ctypes.CDLL(None).syscall(55, fd, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                          ctypes.byref(v), ctypes.byref(l))
print("v6only", v.value)
print("nonblock", bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK),
      "cloexec", bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC))
s.listen(5)
print("tcp6", any(l.split()[1].endswith(":%04X" % port)
                  for l in open("/proc/net/tcp6").readlines()[1:]))
for a in ("::1", "127.0.0.1"):
    c = socket.create_connection((a, port))
    import select; select.select([s], [], [], 5)
    n, peer = s.accept()
    print("accepted", a, peer[0]); n.close(); c.close()
' 2>&1)
  echo "$out" | sed 's/^/    /'
  assertContains "same fd, kernel-chosen port" "$out" "fd True port True"
  assertContains "getsockname says 0.0.0.0 and the port" "$out" \
    "name ('0.0.0.0', "
  assertContains "SO_DOMAIN still says AF_INET" "$out" "domain 2"
  assertContains "an IPv6 socket underneath" "$out" "tcp6 True"
  assertContains "SO_REUSEADDR and SO_REUSEPORT kept" "$out" "reuse True True"
  assertContains "dual-stack" "$out" "v6only 0"
  assertContains "O_NONBLOCK and FD_CLOEXEC kept" "$out" \
    "nonblock True cloexec True"
  assertContains "IPv6 client" "$out" "accepted ::1 172.21.112."
  assertContains "IPv4 client" "$out" "accepted 127.0.0.1 127.0.0.1"
}

test_specific_address_and_listen_off_are_left_alone() {
  port=$(free_port)
  bg env LD_PRELOAD=$SHIM DUALSTACK_TRACE="$tmp/t1" timeout 20 $PY -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(5)
while True: s.accept()[0].close()' "$port"
  wait_port tcp "$port"
  assertEquals "bound to 127.0.0.1 only" "127.0.0.1:$port " \
    "$(listeners tcp "$port")"
  out=$(client ::1 "$port" x)
  assertContains "IPv6 client refused" "$out" "Connection refused"
  assertContains "bind traced, not widened" "$(cat "$tmp/t1")" \
    "\"addr\":\"127.0.0.1\",\"port\":$port"
  port2=$(free_port)
  bg env LD_PRELOAD=$SHIM DUALSTACK_LISTEN=off DUALSTACK_TRACE="$tmp/t2" \
    timeout 20 $PY "$tmp/peers.py" "$port2"
  wait_port tcp "$port2"
  assertEquals "DUALSTACK_LISTEN=off: bound to 0.0.0.0" "0.0.0.0:$port2 " \
    "$(listeners tcp "$port2")"
  out=$(client ::1 "$port2" x)
  assertContains "IPv6 client refused" "$out" "Connection refused"
  out=$(client 127.0.0.1 "$port2" "")
  assertEquals "IPv4 client served" "127.0.0.1 127.0.0.1" "$out"
  assertContains "bind traced, not widened" "$(cat "$tmp/t2")" \
    '"widened":false'
  port3=$(free_port)
  bg env LD_PRELOAD=$SHIM DUALSTACK_EXCLUDE=":$port3" timeout 20 \
    $PY "$tmp/peers.py" "$port3"
  wait_port tcp "$port3"
  assertEquals "DUALSTACK_EXCLUDE=:PORT: bound to 0.0.0.0" "0.0.0.0:$port3 " \
    "$(listeners tcp "$port3")"
}

test_widening_that_fails_falls_back_to_the_original_bind() {
  port=$(free_port)
  # [::]:PORT is taken by an IPv6-only socket; 0.0.0.0:PORT is free.
  bg timeout 20 $PY -c '
import socket, sys, time
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::", int(sys.argv[1]))); s.listen(5); time.sleep(30)' "$port"
  wait_port tcp "$port"
  bg env LD_PRELOAD=$SHIM DUALSTACK_TRACE="$tmp/t" timeout 20 \
    $PY "$tmp/peers.py" "$port"
  for _ in $(seq 250); do
    [ "$(listeners tcp "$port")" = "0.0.0.0:$port [::]:$port " ] && break
    sleep 0.02
  done
  assertEquals "the server bound 0.0.0.0 as asked" \
    "0.0.0.0:$port [::]:$port " "$(listeners tcp "$port")"
  out=$(client 127.0.0.1 "$port" "")
  assertEquals "IPv4 client served" "127.0.0.1 127.0.0.1" "$out"
  assertContains "traced: not widened, and why" "$(cat "$tmp/t")" \
    '"widened":false,"reason":"bind [::] failed","result":"ok"'
}

test_observe_mode_widens_nothing_but_traces() {
  port=$(free_port)
  bg env LD_PRELOAD=$SHIM DUALSTACK_OBSERVE=1 DUALSTACK_TRACE="$tmp/t" \
    timeout 20 $PY "$tmp/peers.py" "$port"
  wait_port tcp "$port"
  assertEquals "bound to 0.0.0.0" "0.0.0.0:$port " "$(listeners tcp "$port")"
  out=$(client 127.0.0.1 "$port" "")
  assertEquals "IPv4 client served" "127.0.0.1 127.0.0.1" "$out"
  assertContains "bind traced" "$(cat "$tmp/t")" \
    "\"addr\":\"0.0.0.0\",\"port\":$port,\"family\":\"ipv4\",\"widened\":false"
  assertContains "accept traced" "$(cat "$tmp/t")" \
    '"event":"accept","id":'
  assertContains "accept traced with the peer" "$(cat "$tmp/t")" \
    '"peer":"127.0.0.1"'
}

test_bad_source_pool_widens_nothing() {
  port=$(free_port)
  bg env LD_PRELOAD=$SHIM DUALSTACK_SOURCE_POOL=nonsense \
    DUALSTACK_TRACE="$tmp/t" timeout 20 $PY "$tmp/peers.py" "$port"
  wait_port tcp "$port"
  assertEquals "bound to 0.0.0.0" "0.0.0.0:$port " "$(listeners tcp "$port")"
  assertContains "the reason is traced" "$(cat "$tmp/t")" \
    "DUALSTACK_SOURCE_POOL"
  out=$(client 127.0.0.1 "$port" "")
  assertEquals "IPv4 client served" "127.0.0.1 127.0.0.1" "$out"
}

test_udp_recvmmsg_sendmmsg_and_pktinfo_with_ipv6_clients() {
  out=$(LD_PRELOAD=$SHIM timeout 20 $PY -c '
import ctypes, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO, before bind
s.bind(("0.0.0.0", 0))
port = s.getsockname()[1]
c6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c6.settimeout(5)
c4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c4.settimeout(5)
c6.sendto(b"a", ("::1", port)); c6.sendto(b"b", ("::1", port))
c4.sendto(b"c", ("127.0.0.1", port))
import time; time.sleep(0.2)
N = 4
vec = (mmsghdr * N)()
names = [ctypes.create_string_buffer(16) for _ in range(N)]
bufs = [ctypes.create_string_buffer(64) for _ in range(N)]
iovs = [iovec(ctypes.cast(b, ctypes.c_void_p), 64) for b in bufs]
for i in range(N):
    vec[i].hdr.name = ctypes.cast(names[i], ctypes.c_void_p)
    vec[i].hdr.namelen = 16
    vec[i].hdr.iov = ctypes.pointer(iovs[i]); vec[i].hdr.iovlen = 1
n = libc.recvmmsg(s.fileno(), vec, N, socket.MSG_DONTWAIT, None)
print("recvmmsg", n)
for i in range(n):
    fam, p = struct.unpack("=HH", names[i].raw[:4])
    print("msg", bufs[i].raw[:vec[i].len].decode(), fam, vec[i].hdr.namelen,
          socket.inet_ntoa(names[i].raw[4:8]))
    bufs[i].raw = bufs[i].raw[:vec[i].len].upper() + b"\0" * (64 - vec[i].len)
    iovs[i].len = vec[i].len
m = libc.sendmmsg(s.fileno(), vec, n, 0)
print("sendmmsg", m)
print("c6 got", sorted([c6.recvfrom(10)[0].decode() for _ in range(2)]))
print("c4 got", c4.recvfrom(10)[0].decode())
# recvmsg with IP_PKTINFO, and a reply through sendmsg with it
c6.sendto(b"p", ("::1", port))
d, anc, fl, peer = s.recvmsg(64, socket.CMSG_SPACE(12))
print("recvmsg", d.decode(), peer[0], [(l, t, len(x)) for l, t, x in anc], fl)
for l, t, x in anc:
    if (l, t) == (0, 8):
        idx, spec, a = struct.unpack("i4s4s", x)
        print("pktinfo", idx > 0, socket.inet_ntoa(spec), socket.inet_ntoa(a))
s.sendmsg([b"P"], anc, 0, peer)
print("c6 got", c6.recvfrom(10))
' 2>&1)
  echo "$out" | sed 's/^/    /'
  assertContains "recvmmsg got the three datagrams" "$out" "recvmmsg 3"
  assertContains "IPv6 sender as a source-pool address" "$out" \
    "msg a 2 16 172.21.112."
  assertContains "IPv4 sender as itself" "$out" "msg c 2 16 127.0.0.1"
  assertContains "sendmmsg sent the three replies" "$out" "sendmmsg 3"
  assertContains "the IPv6 client got its replies" "$out" "c6 got ['A', 'B']"
  assertContains "the IPv4 client got its reply" "$out" "c4 got C"
  assertContains "IPV6_PKTINFO given as IP_PKTINFO" "$out" \
    "recvmsg p 172.21.112.1 [(0, 8, 12)] 0"
  assertContains "its addresses are IPv4" "$out" "pktinfo True 172.21.112."
  assertContains "sendmsg with IP_PKTINFO reached the IPv6 client" "$out" \
    "c6 got (b'P', ('::1', "
}

# Makes namespace "s" where any address of 2001:db8:1::/64 is local, so
# clients can come from as many IPv6 addresses as a test needs.
anyip_ns() {
  lab_ns s
  lab_run s ip -6 route add local 2001:db8:1::/64 dev lo
  lab_run s sysctl -q -w net.ipv6.ip_nonlocal_bind=1
}

# In namespace s: clients from 2001:db8:1::N for each N given (hex), to
# PORT, one after the other; prints "N shown-by-accept shown-by-getpeername"
# per client.
clients_from() {
  local port=$1 n
  shift
  lab_run s timeout 60 $PY -c '
import socket, sys
port = int(sys.argv[1])
for n in sys.argv[2:]:
    c = socket.socket(socket.AF_INET6); c.settimeout(5)
    c.bind(("2001:db8:1::%s" % n, 0)); c.connect(("2001:db8:1::1", port))
    f = c.makefile()
    print(n, f.readline().strip(), flush=True)
    c.close()' "$port" "$@"
}

test_two_hundred_ipv6_clients_stable_and_distinct() {
  need_lab || return 0
  anyip_ns
  lab_bg s env LD_PRELOAD=$SHIM timeout 60 $PY "$tmp/peers.py" 80
  lab_wait_port s tcp 80
  out=$(clients_from 80 $(seq -f '%g' 100 299) 2>&1)
  assertEquals "200 clients answered" 200 "$(echo "$out" | wc -l)"
  assertEquals "accept and getpeername agree" 0 \
    "$(echo "$out" | awk '$2 != $3' | wc -l)"
  assertEquals "200 distinct addresses" 200 \
    "$(echo "$out" | awk '{print $2}' | sort -u | wc -l)"
  assertEquals "all from the source pool" 200 \
    "$(echo "$out" | grep -c ' 172\.21\.11[2-9]\.[0-9]* ')"
  again=$(clients_from 80 $(seq -f '%g' 100 109) 2>&1)
  assertEquals "the first ten again: the same addresses" \
    "$(echo "$out" | head -n 10)" "$again"
}

test_tiny_source_pool_recycles_the_oldest_idle_entry() {
  need_lab || return 0
  anyip_ns
  # 172.21.112.0/29: six addresses, .1 to .6.
  # One connection at a time, closed at once, except the first, which the
  # server keeps open. Bare fds (_accept): a socket object would ask
  # getsockname, whose answer for the local IPv6 address takes an entry.
  lab_bg s env LD_PRELOAD=$SHIM DUALSTACK_SOURCE_POOL=172.21.112.0/29 \
    timeout 60 $PY -c '
import os, socket
s = socket.socket(); s.bind(("0.0.0.0", 80)); s.listen(16)
held = []
while True:
    fd, a = s._accept()
    os.write(fd, ("%s %s\n" % (a[0], a[0])).encode())
    if held: os.close(fd)
    else: held.append(fd)' 
  lab_wait_port s tcp 80
  # Client a0 holds its connection open through the test.
  lab_run s timeout 60 $PY -c '
import socket, sys, time
c = socket.socket(socket.AF_INET6); c.bind(("2001:db8:1::a0", 0))
c.connect(("2001:db8:1::1", 80))
print(c.makefile().readline().split()[0], flush=True)
time.sleep(30)' > "$tmp/held" 2>&1 &
  held=$!
  bgpids="$bgpids $held"
  for _ in $(seq 250); do [ -s "$tmp/held" ] && break; sleep 0.02; done
  assertEquals "the held client has the first address" "172.21.112.1" \
    "$(cat "$tmp/held")"
  out=$(clients_from 80 11 12 13 14 15 16 17 18 11 2>&1)
  echo "$out" | sed 's/^/    /'
  got=$(echo "$out" | awk '{print $1 "=" $2}' | tr '\n' ' ')
  # Five fresh ones, then the oldest idle entries in turn (.2, .3, .4);
  # client 11 comes back after its entry went to client 16: it gets the
  # oldest idle one (.5), never the held .1.
  assertEquals "allocation and recycling order" \
    "11=172.21.112.2 12=172.21.112.3 13=172.21.112.4 14=172.21.112.5 15=172.21.112.6 16=172.21.112.2 17=172.21.112.3 18=172.21.112.4 11=172.21.112.5 " \
    "$got"
}

# An IPv4 client's entry is checked by its names (no fstat at accept):
# after a close the shim never saw, a socket of the program's own on that
# number shows its own names, also when it is connected to the very same
# IPv4-mapped peer, or is a UDP socket or a listener on the same port.
test_stale_ipv4_client_entry_not_taken_for_the_programs_own_ipv6_sockets() {
  out=$(LD_PRELOAD=$SHIM timeout 20 $PY -c '
import ctypes, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
SYS_close = 3  # x86_64
def name(fn, fd):
    buf = ctypes.create_string_buffer(128); n = ctypes.c_uint(128)
    if fn(fd, buf, ctypes.byref(n)) != 0:
        return "errno %d" % ctypes.get_errno()
    return "family %d/%d" % (struct.unpack("=H", buf.raw[:2])[0], n.value)
def names(fd):
    v = ctypes.c_int(0); n = ctypes.c_uint(4)
    libc.getsockopt(fd, socket.SOL_SOCKET, socket.SO_DOMAIN, ctypes.byref(v),
                    ctypes.byref(n))
    return "%s %s domain %d" % (name(libc.getpeername, fd),
                                name(libc.getsockname, fd), v.value)
def accept16(lfd):
    buf = ctypes.create_string_buffer(16); n = ctypes.c_uint(16)
    return libc.accept(lfd, buf, ctypes.byref(n))
def reuse(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 0)); s.listen(5)
port = s.getsockname()[1]
# A peer that listens on the port it connects from.
pl = socket.socket(); reuse(pl); pl.bind(("127.0.0.1", 0)); pl.listen(5)
x = pl.getsockname()[1]
c = socket.socket(); reuse(c); c.bind(("127.0.0.1", x))
c.connect(("127.0.0.1", port))
fd = accept16(s.fileno())
print("accepted", names(fd))
libc.syscall(SYS_close, fd)
c6 = socket.socket(socket.AF_INET6)
c6.connect(("::ffff:127.0.0.1", x))
print("connected6", c6.fileno() == fd, names(fd))
c6.close(); c.close()
c = socket.create_connection(("127.0.0.1", port))
fd = accept16(s.fileno())
libc.syscall(SYS_close, fd)
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.bind(("::ffff:127.0.0.1", port))
print("udp6", u6.fileno() == fd, names(fd))
u6.close(); c.close()
c = socket.create_connection(("127.0.0.1", port))
fd = accept16(s.fileno())
c.close(); s.close()
l6 = socket.socket(socket.AF_INET6)
l6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l6.bind(("::ffff:127.0.0.1", port))
l6.listen(5)
# A raw dup2: the accepted socket closed unseen, the listener on its number.
SYS_dup2 = 33  # x86_64
print("listen6", libc.syscall(SYS_dup2, l6.fileno(), fd) == fd, names(fd))
' 2>&1)
  echo "$out" | sed 's/^/    /'
  assertContains "accepted" "$out" "accepted family 2/16 family 2/16 domain 2"
  assertContains "own connected IPv6 socket" "$out" \
    "connected6 True family 10/28 family 10/28 domain 10"
  assertContains "own UDP socket" "$out" \
    "udp6 True errno 107 family 10/28 domain 10"
  assertContains "own listener" "$out" \
    "listen6 True errno 107 family 10/28 domain 10"
}

# A connection closed without the shim seeing it, and the same IPv6 client
# accepted again on that number: its source-pool address is held once,
# and free again once that connection is closed (a /30 pool: two).
test_source_address_released_after_an_unseen_close_and_the_same_client() {
  need_lab || return 0
  anyip_ns
  out=$(lab_run s env LD_PRELOAD=$SHIM DUALSTACK_SOURCE_POOL=172.21.112.0/30 \
    timeout 20 $PY -c '
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(5); s.settimeout(5)
port = s.getsockname()[1]
def client(n):
    c = socket.socket(socket.AF_INET6); c.bind(("2001:db8:1::%s" % n, 0))
    c.connect(("2001:db8:1::1", port)); return c
a = client("a"); fd, addr = s._accept()
print("a", addr[0])
libc.syscall(3, fd); a.close()
a = client("a"); fd2, addr = s._accept()
print("a-again", fd2 == fd, addr[0])
os.close(fd2); a.close()
b = client("b"); fdb, addr = s._accept()
print("b", addr[0])
c = client("c")
try:
    fdc, addr = s._accept(); print("c", addr[0])
except OSError as e:
    print("c", e.errno)
' 2>&1)
  echo "$out" | sed 's/^/    /'
  assertEquals "addresses" "a 172.21.112.1
a-again True 172.21.112.1
b 172.21.112.2
c 172.21.112.1" "$out"
}

test_server_in_a_lab_without_ipv6_still_serves_ipv4() {
  need_lab || return 0
  lab_pair
  lab_run b sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1
  lab_bg b env LD_PRELOAD=$SHIM timeout 20 $PY "$tmp/peers.py" 80
  lab_wait_port b tcp 80
  out=$(lab_run a timeout 10 $PY "$tmp/client.py" "$LAB_B4" 80 "" 2>&1)
  assertEquals "IPv4 client served as itself" "192.0.2.1 192.0.2.1" "$out"
  lab_bg b env LD_PRELOAD=$SHIM timeout 10 $PY -c '
import socketserver
class U(socketserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.client_address[0].encode())
socketserver.UDPServer(("0.0.0.0", 53), U).serve_forever()'
  lab_wait_port b udp 53
  out=$(lab_run a timeout 10 $PY -c '
import socket
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(5)
c.sendto(b"x", ("192.0.2.2", 53)); print(c.recv(100).decode())' 2>&1)
  assertEquals "UDP over IPv4" "192.0.2.1" "$out"
}

ds_run_shunit
