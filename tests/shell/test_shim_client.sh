#!/bin/bash
# The preload shim, client side, with real IPv4-only programs in a lab
# pair: nc.traditional, Perl IO::Socket::INET, Python gethostbyname +
# AF_INET, curl -4 and wget -4. Names come from the test DNS server in B
# through A's resolv.conf; B serves HTTP on port 80 of both families and
# answers with the peer address it saw.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  cat > "$LAB_TMP/dns.conf" <<'EOF'
v6only.test  AAAA 2001:db8::2
v6only.test  A    NODATA
both.test    A    192.0.2.2
both.test    AAAA 2001:db8::2
gone.test    *    NXDOMAIN
EOF
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # HTTP on [::]:80 for both families; the body is the peer it saw.
  lab_bg b $PY -c '
import socket, threading
def listener(port):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(64)
    return s
def serve(c, a):
    c.settimeout(2)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d: break
            data += d
    except OSError: pass
    peer = a[0][7:] if a[0].startswith("::ffff:") else a[0]
    body = ("peer %s\n" % peer).encode()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.close()
def loop(s):
    while True:
        c, a = s.accept()
        threading.Thread(target=serve, args=(c, a)).start()
threading.Thread(target=loop, args=(listener(81),)).start()
loop(listener(80))'
  lab_wait_port b tcp 80
  lab_wait_port b tcp 81
  # UDP echo on [::]:9999 for both families: replies "FAMILY TCLASS DATA"
  # (the traffic class the datagram came with, for option replay).
  lab_bg b $PY -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
s.bind(("::", 9999))
while True:
    d, anc, fl, a = s.recvmsg(2048, 256)
    tc = 0
    for lvl, typ, val in anc:
        if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_TCLASS:
            tc = int.from_bytes(val[:4], "little")
    fam = b"ipv4" if a[0].startswith("::ffff:") else b"ipv6"
    s.sendto(fam + b" %d " % tc + d, a)'
  lab_wait_port b udp 9999
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Runs one client program against http://NAME/ in A: $1 = nc|perl|python|
# curl|wget, $2 = name, $3 = "shim" or "bare". Prints what it received.
client() {
  local prog=$1 name=$2 pre=
  [ "$3" = shim ] && pre="LD_PRELOAD=$SHIM"
  case $prog in
    nc) printf 'GET / HTTP/1.0\r\n\r\n' |
        lab_run a env $pre timeout 5 nc.traditional -q 2 "$name" 80 ;;
    perl) lab_run a env $pre timeout 5 perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 80,
          Proto => "tcp") or die "connect: $@\n";
        print $s "GET / HTTP/1.0\r\n\r\n"; print while <$s>;' "$name" ;;
    python) lab_run a env $pre timeout 5 $PY -c '
import socket, sys
a = socket.gethostbyname(sys.argv[1])
s = socket.socket(socket.AF_INET); s.connect((a, 80))
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
while True:
    d = s.recv(4096)
    if not d: break
    sys.stdout.write(d.decode())' "$name" ;;
    curl) lab_run a env $pre timeout 5 curl -4 -s -S "http://$name/" ;;
    wget) lab_run a env $pre timeout 5 wget -4 -q -O - "http://$name/" ;;
  esac
}

PROGS="nc perl python curl wget"

test_ipv6_only_name_works_only_with_the_shim() {
  need_lab || return 0
  for p in $PROGS; do
    out=$(client $p v6only.test bare 2>/dev/null)
    assertNotContains "$p without the shim reaches nothing" "$out" "peer"
    out=$(client $p v6only.test shim 2>&1)
    assertContains "$p with the shim: the server saw A's IPv6 address" \
      "$out" "peer 2001:db8::1"
  done
}

test_ipv6_literal_where_ipv4_was_expected() {
  need_lab || return 0
  out=$(client nc 2001:db8::2 shim 2>&1)
  assertContains "nc to an IPv6 literal" "$out" "peer 2001:db8::1"
  out=$(client python 2001:db8::2 shim 2>&1)
  assertContains "python to an IPv6 literal" "$out" "peer 2001:db8::1"
  # A's own literals, ::1 and 2001:db8::1, to an IPv6-only server in A.
  lab_bg a $PY -c '
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::", 82)); s.listen(8)
while True:
    c, a = s.accept(); c.sendall(b"peer %s\n" % a[0].encode()); c.close()'
  lab_wait_port a tcp 82
  for lit in ::1 2001:db8::1; do
    out=$(lab_run a timeout 5 nc.traditional -w 2 "$lit" 82 2>&1 </dev/null)
    assertNotContains "without the shim nc cannot take $lit" "$out" "peer"
    out=$(lab_run a env LD_PRELOAD=$SHIM timeout 5 nc.traditional -w 2 "$lit" 82 \
      2>&1 </dev/null)
    assertContains "nc to $lit" "$out" "peer $lit"
  done
}

# Milliseconds one client run takes: $@ as for client().
timed() {
  local t0=$(date +%s%N)
  client "$@" > "$LAB_TMP/timed.out" 2>&1
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}

test_dual_stack_ipv6_blackholed_goes_ipv4_fast() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 80 tcp
  for p in $PROGS; do
    # The same program to the IPv4 literal without the shim is the
    # baseline (process start-up, the request); the shim may add the
    # lookup, the 250 ms attempt delay and a round trip: under 500 ms.
    base=$(timed $p 192.0.2.2 bare)
    ms=$(timed $p both.test shim)
    out=$(cat "$LAB_TMP/timed.out")
    assertContains "$p reached the server over IPv4" "$out" "peer 192.0.2.1"
    assertTrue "$p took ${ms} ms, ${base} ms to the literal (< +500)" \
      "[ $((ms - base)) -lt 500 ]"
  done
}

test_dual_stack_ipv4_blackholed_goes_ipv6_with_the_shim() {
  need_lab || return 0
  lab_blackhole b 192.0.2.2 80 tcp
  for p in nc python curl; do
    out=$(client $p both.test shim 2>&1)
    assertContains "$p with the shim over IPv6" "$out" "peer 2001:db8::1"
  done
  # Without the shim the IPv4-only program hangs on the black hole; the
  # client's 5 s timeout ends it.
  t0=$(date +%s%N)
  out=$(client python both.test bare 2>&1)
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  assertNotContains "python without the shim gets nothing" "$out" "peer"
  assertTrue "python without the shim hung until killed (${ms} ms)" \
    "[ $ms -ge 4500 ]"
}

test_unknown_name_same_error_with_and_without() {
  need_lab || return 0
  for p in nc perl python curl wget; do
    bare=$(client $p gone.test bare 2>&1; echo "rc=$?")
    shim=$(client $p gone.test shim 2>&1; echo "rc=$?")
    assertEquals "$p: same output and status" "$bare" "$shim"
  done
}

test_every_address_refused_is_econnrefused_promptly() {
  need_lab || return 0
  lab_refuse b 2001:db8::2 80 tcp
  lab_refuse b 192.0.2.2 80 tcp
  t0=$(date +%s%N)
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 5 $PY -c '
import socket
a = socket.gethostbyname("both.test")
try:
    socket.socket().connect((a, 80))
except OSError as e:
    print(e.errno == 111, e)' 2>&1)
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  assertContains "ECONNREFUSED" "$out" "True"
  assertTrue "promptly (${ms} ms)" "[ $ms -lt 1000 ]"
}

test_second_connect_remembers_the_family() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 80 tcp
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 5 $PY -c '
import socket, time
a = socket.gethostbyname("both.test")
for i in range(2):
    t = time.monotonic(); s = socket.socket(); s.connect((a, 80))
    print("%d %.0f" % (i, (time.monotonic() - t) * 1000)); s.close()' 2>&1)
  first=$(echo "$out" | awk '$1 == 0 {print $2}')
  second=$(echo "$out" | awk '$1 == 1 {print $2}')
  assertTrue "first connect waited the attempt delay ($first ms)" \
    "[ -n '$first' ] && [ $first -ge 240 ]"
  assertTrue "second connect went straight to IPv4 ($second ms)" \
    "[ -n '$second' ] && [ $second -lt 50 ]"
}

test_application_keeps_seeing_ipv4() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 5 $PY -c '
import socket
a = socket.gethostbyname("v6only.test")
s = socket.socket(socket.AF_INET); s.connect((a, 80))
print("addr", a)
print("peer", s.getpeername()[0] == a, s.getpeername()[1])
h = s.getsockname()[0]
print("sock", h.startswith("172.21.") and h != "0.0.0.0")
print("domain", s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN))' 2>&1)
  assertContains "synthetic address from the pool" "$out" "addr 10.170.16"
  assertContains "getpeername is what it connected to" "$out" "peer True 80"
  assertContains "getsockname is a source-pool address" "$out" "sock True"
  assertContains "SO_DOMAIN says AF_INET" "$out" "domain 2"
}

test_pool_address_without_mapping_is_enetunreach() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_TRACE=stderr $PY -c '
import socket
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.connect(("10.170.160.99", 80)); print("connected")
    except OSError as e:
        print("errno", e.errno)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", ("10.170.160.99", 80)); print("sent")
except OSError as e:
    print("sendto errno", e.errno)' 2>&1)
  assertEquals "TCP and UDP connect refused" 2 \
    "$(echo "$out" | grep -c '^errno 101$')"
  assertContains "sendto refused" "$out" "sendto errno 101"
  assertContains "traced" "$out" "pool address without mapping"
}

test_localhost_and_numbers_pass_through() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM $PY -c '
import socket
print(socket.gethostbyname("localhost"))
print(socket.getaddrinfo("10", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
print(socket.getaddrinfo("both.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])' 2>&1)
  assertEquals "localhost, an inet_aton number, real A records" \
    "$(printf '127.0.0.1\n0.0.0.10\n192.0.2.2')" "$out"
}

test_reverse_lookups_name_the_host() {
  need_lab || return 0
  err=$(printf 'GET / HTTP/1.0\r\n\r\n' |
    lab_run a env LD_PRELOAD=$SHIM timeout 5 nc.traditional -v -q 2 \
      v6only.test 80 2>&1 >/dev/null)
  assertContains "nc -v prints the name" "$err" "v6only.test [10.170.16"
  out=$(lab_run a env LD_PRELOAD=$SHIM $PY -c '
import socket
name, aliases, addrs = socket.gethostbyname_ex("v6only.test")
print("ex", name, addrs[0].startswith("10.170.16"))
print("ni", socket.getnameinfo((addrs[0], 80), 0))
print("nn", socket.getnameinfo((addrs[0], 80), socket.NI_NUMERICHOST)[0] == addrs[0])' 2>&1)
  assertContains "gethostbyname_r synthesizes" "$out" "ex v6only.test True"
  assertContains "getnameinfo gives the name" "$out" \
    "ni ('v6only.test', 'http')"
  assertContains "NI_NUMERICHOST stays numeric" "$out" "nn True"
}

test_alarm_and_longjmp_out_of_connect_leaves_the_shim_healthy() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 80 tcp
  lab_blackhole b 192.0.2.2 80 tcp
  # nc -w 1 to a name whose addresses are black-holed gives up at ~1 s.
  t0=$(date +%s%N)
  printf 'x' | lab_run a env LD_PRELOAD=$SHIM timeout 5 nc.traditional -w 1 \
    v6only.test 80 > /dev/null 2>&1
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  assertTrue "nc -w 1 gave up after ${ms} ms" \
    "[ $ms -ge 900 ] && [ $ms -lt 3000 ]"
  # In one process: alarm + siglongjmp out of the race, then a connect to
  # a working name (port 81 is not black-holed) must still be translated,
  # and no socket of the abandoned race is left.
  # Under SANITIZE the C client is built with ASan, whose runtime must be
  # loaded first; the shim itself has UBSan only.
  pre=$(ds_preload_c "$SHIM")
  out=$(lab_run a env LD_PRELOAD="$pre" timeout 10 \
    "$DS_BUILD/lab/shim_longjmp" both.test 80 v6only.test 81 2>&1)
  status=$?
  echo "$out" | sed 's/^/    /'
  assertEquals "exit status" 0 $status
  assertContains "the alarm ended the first connect" "$out" "timeout"
  assertContains "the second connect was translated" "$out" "second ok"
  assertContains "no fd left" "$out" "fds_leaked 0"
}

test_sixteen_threads_fifty_connects_each() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 60 $PY -c '
import os, socket, threading
a = socket.gethostbyname("v6only.test")
# The program fds: the shim keeps its own (the helper thread) at 600 up.
def fds(): return len([f for f in os.listdir("/proc/self/fd") if int(f) < 600])
before = fds()
ok = []
def work():
    n = 0
    for _ in range(50):
        s = socket.socket(socket.AF_INET)
        try:
            s.connect((a, 80)); s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            if b"peer 2001:db8::1" in s.recv(4096): n += 1
        except OSError as e:
            print("error", e)
        s.close()
    ok.append(n)
ts = [threading.Thread(target=work) for _ in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
print("ok", sum(ok))
print("fds", fds() - before)' 2>&1)
  assertContains "800 connects over IPv6" "$out" "ok 800"
  assertContains "no fd left" "$out" "fds 0"
}

test_client_that_forks_after_resolving() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 20 $PY -c '
import os, socket
a = socket.gethostbyname("v6only.test")
def get():
    s = socket.socket(socket.AF_INET); s.connect((a, 80))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n"); r = s.recv(4096); s.close()
    return b"peer 2001:db8::1" in r
pid = os.fork()
if pid == 0:
    os._exit(0 if get() else 1)
_, st = os.waitpid(pid, 0)
print("child", os.WEXITSTATUS(st) == 0, "parent", get())' 2>&1)
  assertEquals "both sides of the fork connect" "child True parent True" "$out"
}

test_udp_client_to_an_ipv6_only_name_gets_the_reply() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 5 $PY -c '
import socket
a = socket.gethostbyname("v6only.test")
print("addr", a)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x20)
s.settimeout(3)
s.sendto(b"hello", (a, 9999))
d, peer = s.recvfrom(100)
print("reply", d.decode(), peer[0] == a, peer[1])
print("domain", s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(3)
c.connect((a, 9999)); c.send(b"again")
print("connected", c.recv(100).decode(), c.getpeername() == (a, 9999))
' 2>&1)
  assertContains "synthetic address" "$out" "addr 10.170.16"
  assertContains "reply over IPv6, IP_TOS replayed as the traffic class, \
from the synthetic address" "$out" "reply ipv6 32 hello True 9999"
  assertContains "SO_DOMAIN still AF_INET" "$out" "domain 2"
  assertContains "connected UDP" "$out" "connected ipv6 0 again True"
  # Without the shim the same program cannot even resolve the name.
  out=$(lab_run a timeout 5 $PY -c '
import socket
socket.gethostbyname("v6only.test")' 2>&1)
  assertContains "without the shim" "$out" "gaierror"
}

test_options_set_before_connect_are_kept() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 5 $PY -c '
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
def raw_opt(s, level, opt):
    # getsockopt(2) itself (x86_64: 55): the socket underneath, past the
    # hook, which answers for the AF_INET socket the program made.
    v, l = ctypes.c_int(-1), ctypes.c_uint(4)
    libc.syscall(55, s.fileno(), level, opt, ctypes.byref(v), ctypes.byref(l))
    return v.value
def err(f):
    try:
        return f()
    except OSError as e:
        return "errno %d" % e.errno
plain = socket.socket(socket.AF_INET)
print("v6 level plain", err(lambda: plain.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS)))
s = socket.socket(socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10)
s.connect((socket.gethostbyname("v6only.test"), 80))
print("rcvbuf", s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
print("nodelay", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
print("tos", s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS))
print("tclass", raw_opt(s, socket.IPPROTO_IPV6, socket.IPV6_TCLASS))
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28)
print("tclass_after", raw_opt(s, socket.IPPROTO_IPV6, socket.IPV6_TCLASS))
print("v6 level", err(lambda: s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS)))
print("ttl 0", err(lambda: s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 0)),
      err(lambda: plain.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 0)))
' 2>&1)
  assertContains "SO_RCVBUF (the kernel doubles it)" "$out" "rcvbuf 131072"
  assertContains "TCP_NODELAY" "$out" "nodelay 1"
  assertContains "IP_TOS reads back" "$out" "tos 16"
  assertContains "IP_TOS became the IPv6 traffic class" "$out" "tclass 16"
  assertContains "IP_TOS set after connect too" "$out" "tclass_after 40"
  # The program sees the AF_INET socket it made: IPPROTO_IPV6 refused and
  # IPv4's ranges, with the kernel's errno for an AF_INET socket.
  plain=$(echo "$out" | sed -n 's/^v6 level plain //p')
  assertContains "IPv6 options: what an AF_INET socket says" "$out" \
    "v6 level $plain"
  assertContains "IP_TTL 0: IPv4's EINVAL" "$out" "ttl 0 errno 22 errno 22"
}

test_nss_only_name_still_resolves() {
  need_lab || return 0
  [ -e /lib/x86_64-linux-gnu/libnss_myhostname.so.2 ] ||
    { ds_skip "libnss-myhostname is not installed"; return 0; }
  # In A, NSS knows the machine's host name (myhostname: A's addresses);
  # neither A's hosts file nor the DNS server does.
  printf 'hosts: files dns myhostname\n' > "/etc/netns/$LAB_NS_A/nsswitch.conf"
  h=$(hostname)
  bare=$(lab_run a $PY -c 'import socket,sys; print(socket.gethostbyname(sys.argv[1]))' "$h" 2>&1)
  out=$(lab_run a env LD_PRELOAD=$SHIM $PY -c '
import socket, sys
print(socket.gethostbyname(sys.argv[1]))
print(socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)[0][4][0])' "$h" 2>&1)
  assertEquals "without the shim: one of A's addresses" 192.0.2.1 "$bare"
  assertEquals "with the shim: the same, both calls" "192.0.2.1
192.0.2.1" "$out"
}

test_exclude_leaves_names_networks_and_ports_alone() {
  need_lab || return 0
  py='import socket, sys
try:
    a = socket.gethostbyname(sys.argv[1])
    s = socket.socket(); s.settimeout(3); s.connect((a, 80))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    d = b""
    while True:
        b = s.recv(4096)
        if not b: break
        d += b
    print(d.decode().split("\n")[-2])
except OSError as e:
    print("error", type(e).__name__)'
  out=$(lab_run a env LD_PRELOAD=$SHIM $PY -c "$py" both.test 2>&1)
  assertEquals "dual-stack name raced: IPv6" "peer 2001:db8::1" "$out"
  for ex in both.test .test "*.test" :80 192.0.2.0/24; do
    out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_EXCLUDE="nothing.test, $ex" \
      $PY -c "$py" both.test 2>&1)
    assertEquals "excluded by '$ex': IPv4 as asked" "peer 192.0.2.1" "$out"
  done
  for ex in v6only.test 2001:db8::/32 2001:db8::2; do
    out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_EXCLUDE="$ex" \
      $PY -c "$py" v6only.test 2>&1)
    assertEquals "excluded by '$ex': as without the shim" "error gaierror" "$out"
  done
  out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_EXCLUDE="2001:db8::/200,:0,x..y" \
    DUALSTACK_TRACE=stderr $PY -c "$py" v6only.test 2>&1)
  assertContains "bad length named" "$out" "item '2001:db8::/200': bad prefix length"
  assertContains "bad port named" "$out" "item ':0': not a port"
  assertContains "bad name named" "$out" "item 'x..y'"
  assertContains "the rest still works" "$out" "peer 2001:db8::1"
}

test_nat64_for_ipv4_literals_on_an_ipv6_only_host() {
  need_lab || return 0
  # Without a NAT64 translator, B itself owns the address 2001:db8:64::/96
  # embeds 192.0.2.2 in, which is where a NAT64 would take the connection.
  lab_run b ip addr add 2001:db8:64::c000:202/128 dev "$LAB_IF_B" nodad
  # With its IPv4 address gone, A is an IPv6-only host.
  out=$(client nc 192.0.2.2 shim 2>&1)
  assertContains "with IPv4, a literal goes as asked" "$out" "peer 192.0.2.1"
  lab_run a ip addr del 192.0.2.1/24 dev "$LAB_IF_A"
  lab_run a ip route add 2001:db8:64::/96 dev "$LAB_IF_A"
  printf 'ipv4only.arpa AAAA 2001:db8:64::c000:aa\n' > "$LAB_TMP/dns64.conf"
  lab_dns b 2001:db8::2 "$LAB_TMP/dns64.conf" "$LAB_TMP/dns64.log" a
  out=$(client nc 192.0.2.2 bare 2>&1)
  assertContains "without the shim: no route" "$out" "unreachable"
  for v in 2001:db8:64::/96 auto ""; do
    out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_NAT64=$v sh -c '
      printf "GET / HTTP/1.0\r\n\r\n" | timeout 5 nc.traditional -q 2 192.0.2.2 80
      timeout 5 curl -4 -s -S http://192.0.2.2/' 2>&1)
    assertEquals "nc and curl through NAT64 (DUALSTACK_NAT64='$v')" 2 \
      "$(echo "$out" | grep -c '^peer 2001:db8::1$')"
  done
  out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_NAT64=off sh -c '
    printf "GET / HTTP/1.0\r\n\r\n" | timeout 5 nc.traditional -q 2 192.0.2.2 80' 2>&1)
  assertContains "off: as without the shim" "$out" "unreachable"
  out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_NAT64=2001:db8:64::/33 \
    DUALSTACK_TRACE=stderr sh -c '
    printf "GET / HTTP/1.0\r\n\r\n" | timeout 5 nc.traditional -q 2 192.0.2.2 80' 2>&1)
  assertContains "a bad prefix is named" "$out" \
    "DUALSTACK_NAT64=2001:db8:64::/33: the length must be"
}

# A blocking connect to an IPv6-only name that is refused leaves the
# socket as the kernel leaves a refused one: the program may still bind it
# (a version of the shim bound it to an ephemeral port: EINVAL), and
# connect it again.
test_refused_raced_connect_leaves_the_socket_bindable() {
  need_lab || return 0
  prog='
import socket, sys
s = socket.socket()   # blocking: the race runs in the caller
try:
    s.connect((socket.gethostbyname(sys.argv[1]), 1))
except OSError as e:
    print("connect errno", e.errno)
try:
    s.bind(("0.0.0.0", 40001)); print("bind ok", s.getsockname())
except OSError as e:
    print("bind errno", e.errno)'
  without=$(lab_run a $PY -c "$prog" both.test 2>&1)
  with=$(lab_run a env LD_PRELOAD=$SHIM $PY -c "$prog" v6only.test 2>&1)
  assertEquals "connect errno 111
bind ok ('0.0.0.0', 40001)" "$without"
  assertEquals "the same with the shim, raced" "$without" "$with"
}

test_client_that_binds_first() {
  need_lab || return 0
  # bind(0.0.0.0:0) widens the socket; the connect after it still works,
  # to a real IPv4 address and to a synthetic one.
  out=$(lab_run a env LD_PRELOAD=$SHIM timeout 10 $PY -c '
import socket
for name in ("both.test", "v6only.test"):
    s = socket.socket(); s.bind(("0.0.0.0", 0))
    a = socket.gethostbyname(name)
    s.connect((a, 80)); s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    d = b""
    while True:
        b = s.recv(4096)
        if not b: break
        d += b
    print(name, d.decode().split("\n")[-2], s.getpeername() == (a, 80),
          s.getsockname()[0])' 2>&1)
  assertContains "to a real A" "$out" "both.test peer 192.0.2.1 True 192.0.2.1"
  assertContains "to a synthetic address" "$out" "v6only.test peer 2001:db8::1 True 172.21.112."
}

test_disable_is_a_pure_passthrough() {
  need_lab || return 0
  out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_DISABLE=1 timeout 5 $PY -c '
import socket
try: print(socket.gethostbyname("v6only.test"))
except OSError as e: print("error", e)' 2>&1)
  assertContains "no synthesis when disabled" "$out" "error"
  out=$(lab_run a env LD_PRELOAD=$SHIM DUALSTACK_OBSERVE=1 timeout 5 $PY -c '
import socket
try: print(socket.gethostbyname("v6only.test"))
except OSError as e: print("error", e)' 2>&1)
  assertContains "no synthesis when observing" "$out" "error"
}

ds_run_shunit
