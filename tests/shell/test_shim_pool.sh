#!/bin/bash
# The destination pool when it runs out (DESIGN.md, "Synthetic addresses"):
# an address in use (a socket connected or sending to it, a lookup's
# answer within its lease) is never handed to another name; when every
# address is in use a new name fails with EAI_AGAIN / TRY_AGAIN, traced;
# an address no longer in use is recycled. A pool of six addresses
# (10.99.0.0/29) runs out after six names.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3
POOL=10.99.0.0/29

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  lab_run b ip addr add 2001:db8::3/64 dev "$LAB_IF_B" nodad
  # n0.test is the host at 2001:db8::2; every other name the one at ::3.
  # No A records (NODATA); a TTL of 1 s, so that the lease floor counts;
  # long.test's answer lives an hour.
  {
    echo "n0.test AAAA 2001:db8::2 ttl=1"
    for i in $(seq 1 20); do echo "n$i.test AAAA 2001:db8::3 ttl=1"; done
    echo "long.test AAAA 2001:db8::3 ttl=3600"
  } > "$LAB_TMP/dns.conf"
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # Each host says who it is: TCP port 7 and UDP port 9 answer with the
  # address they were reached at.
  lab_bg b $PY -c '
import select, socket
t = socket.socket(socket.AF_INET6)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("::", 7)); t.listen(64)
us = []
for a in ("2001:db8::2", "2001:db8::3"):
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.bind((a, 9)); us.append(u)
while True:
    for s in select.select([t] + us, [], [])[0]:
        if s is t:
            c, _ = t.accept()
            c.sendall(c.getsockname()[0].encode() + b"\n"); c.close()
        else:
            d, p = s.recvfrom(100)
            s.sendto(s.getsockname()[0].encode(), p)'
  lab_wait_port b tcp 7
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Runs python program $1 in A under the shim with a pool of six addresses
# and the trace in $LAB_TMP/trace; more VAR=VALUE may follow.
shim_py() {
  local prog=$1
  shift
  rm -f "$LAB_TMP/trace"
  lab_run a env LD_PRELOAD=$SHIM DUALSTACK_POOL=$POOL \
    DUALSTACK_TRACE="$LAB_TMP/trace" "$@" timeout 20 $PY -c "
import ctypes, socket, sys, time
def addr(name):
    try:
        return socket.gethostbyname(name)
    except socket.gaierror as e:
        return 'EAI_AGAIN' if e.errno == socket.EAI_AGAIN else 'gai%d' % e.errno
def who_tcp(a):
    s = socket.socket(); s.settimeout(5); s.connect((a, 7))
    r = s.recv(100).decode().strip(); s.close(); return r
def who_udp(a):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
    u.sendto(b'?', (a, 9)); r = u.recvfrom(100); u.close()
    return r[0].decode() + ' from ' + r[1][0]
def rname(a):
    return socket.getnameinfo((a, 7), socket.NI_NAMEREQD)[0]
$prog" 2>&1
}

# (a) A TCP connection to n0 holds its address: six more names (the whole
# pool) never get it; n0's address still names n0 and reaches n0's host,
# by TCP and by UDP.
test_connected_address_is_never_handed_out() {
  need_lab || return 0
  out=$(shim_py '
a0 = addr("n0.test")
s = socket.socket(); s.connect((a0, 7))
print("first", a0, s.recv(100).decode().strip())
others = [addr("n%d.test" % i) for i in range(1, 8)]
print("others", " ".join(others))
print("reused", a0 in others)
print("reverse", rname(a0))
print("tcp", who_tcp(a0))
print("udp", who_udp(a0))
print("again", addr("n0.test") == a0)')
  assertContains "$out" "first 10.99.0.1 2001:db8::2"
  assertContains "n0's address not given again: $out" "$out" "reused False"
  assertContains "reverse lookup names n0: $out" "$out" "reverse n0.test"
  assertContains "TCP reaches n0's host: $out" "$out" "tcp 2001:db8::2"
  assertContains "UDP reaches n0's host: $out" "$out" \
    "udp 2001:db8::2 from 10.99.0.1"
  assertContains "n0 keeps its address: $out" "$out" "again True"
}

# (a) The same for a UDP socket that sent to n0 and stays open, without a
# connection.
test_address_a_udp_socket_sends_to_is_never_handed_out() {
  need_lab || return 0
  out=$(shim_py '
a0 = addr("n0.test")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(b"?", (a0, 9)); print("first", u.recvfrom(100)[0].decode())
others = [addr("n%d.test" % i) for i in range(1, 8)]
print("others", " ".join(others))
print("reused", a0 in others)
u.sendto(b"?", (a0, 9)); print("udp", u.recvfrom(100)[0].decode())
print("reverse", rname(a0))' DUALSTACK_POOL_LEASE_S=0)
  assertContains "$out" "first 2001:db8::2"
  assertContains "n0's address not given again: $out" "$out" "reused False"
  assertContains "UDP still reaches n0's host: $out" "$out" "udp 2001:db8::2"
  assertContains "reverse lookup names n0: $out" "$out" "reverse n0.test"
}

# (b) n0 connected and five names within their lease fill the pool: a
# new name fails with EAI_AGAIN (getaddrinfo), TRY_AGAIN (gethostbyname,
# gethostbyname_r), traced with the reason; nobody's address is given.
test_full_pool_fails_with_eai_again() {
  need_lab || return 0
  out=$(shim_py '
libc = ctypes.CDLL(None)
libc.gethostbyname.restype = ctypes.c_void_p
libc.__h_errno_location.restype = ctypes.POINTER(ctypes.c_int)
a0 = addr("n0.test")
s = socket.socket(); s.connect((a0, 7))
print("five", " ".join(addr("n%d.test" % i) for i in range(1, 6)))
print("sixth", addr("n6.test"))
p = libc.gethostbyname(b"n7.test")
print("gethostbyname", p, libc.__h_errno_location().contents.value)
he = ctypes.create_string_buffer(64); buf = ctypes.create_string_buffer(1024)
res = ctypes.c_void_p(1); herr = ctypes.c_int(0)
rc = libc.gethostbyname_r(b"n8.test", he, buf, 1024, ctypes.byref(res),
                          ctypes.byref(herr))
print("gethostbyname_r", rc, res.value, herr.value)
print("known", addr("n3.test"))')
  assertContains "five names fit: $out" "$out" \
    "five 10.99.0.2 10.99.0.3 10.99.0.4 10.99.0.5 10.99.0.6"
  assertContains "getaddrinfo: EAI_AGAIN: $out" "$out" "sixth EAI_AGAIN"
  # TRY_AGAIN is 2.
  assertContains "gethostbyname: NULL, TRY_AGAIN: $out" "$out" \
    "gethostbyname None 2"
  # glibc's for a lookup to try again: EAGAIN (11), no result, TRY_AGAIN.
  assertContains "gethostbyname_r: EAGAIN, TRY_AGAIN: $out" "$out" \
    "gethostbyname_r 11 None 2"
  assertContains "a name with an address keeps it: $out" "$out" \
    "known 10.99.0.4"
  grep '"event":"lookup"' "$LAB_TMP/trace" | grep '"name":"n6.test"' |
    grep '"error":"EAI_AGAIN"' | grep -q '"reason":"destination pool full' ||
    fail "no trace line says why n6.test failed: $(cat "$LAB_TMP/trace")"
  grep '"name":"n7.test"' "$LAB_TMP/trace" | grep '"via":"gethostbyname"' |
    grep -q '"error":"TRY_AGAIN"' ||
    fail "no trace line for gethostbyname: $(cat "$LAB_TMP/trace")"
  grep '"name":"n8.test"' "$LAB_TMP/trace" | grep -q '"reason"' ||
    fail "no trace line for gethostbyname_r: $(cat "$LAB_TMP/trace")"
}

# (c) With a lease floor of 2 s: once the leases pass, looked-up names'
# addresses are recycled but the connected one's is not; once its socket
# is closed (and its lease passed) it is recycled too.
test_address_recycled_after_close_and_lease() {
  need_lab || return 0
  out=$(shim_py '
a0 = addr("n0.test")
s = socket.socket(); s.connect((a0, 7))
five = [addr("n%d.test" % i) for i in range(1, 6)]
print("leased", addr("n6.test"))
time.sleep(2.5)
more = [addr("n%d.test" % i) for i in range(6, 12)]
print("held", " ".join(more), a0 in more)
s.close()
time.sleep(2.5)
last = [addr("n%d.test" % i) for i in range(12, 18)]
print("closed", " ".join(last), a0 in last)
print("reverse", rname(a0))' DUALSTACK_POOL_LEASE_S=2)
  assertContains "within the lease: EAI_AGAIN: $out" "$out" "leased EAI_AGAIN"
  assertContains "leases over, n0 held: five addresses, not n0's: $out" \
    "$out" "EAI_AGAIN False"
  assertContains "closed: n0's address recycled: $out" "$out" "True"
  assertNotContains "closed: every name gets one: $out" \
    "$(echo "$out" | grep closed)" "EAI_AGAIN"
  assertNotContains "n0's address names another host: $out" \
    "$(echo "$out" | grep reverse)" "n0.test"
}

# A lease lasts the answer's TTL when that is longer than the floor.
test_lease_lasts_the_answers_ttl() {
  need_lab || return 0
  out=$(shim_py '
a = addr("long.test")
time.sleep(1.5)
more = [addr("n%d.test" % i) for i in range(1, 7)]
print("more", " ".join(more), a in more)
print("reverse", rname(a))' DUALSTACK_POOL_LEASE_S=1)
  assertContains "long.test keeps its address for its TTL: $out" "$out" \
    "EAI_AGAIN False"
  assertContains "reverse lookup names long.test: $out" "$out" \
    "reverse long.test"
}

ds_run_shunit
