#!/bin/bash
# The shim's lookup hooks behave as glibc's (DESIGN.md, "The shim"): each
# case runs the same program with and without the shim in a lab pair, and
# glibc's own answer for the IPv6 side is the reference for what the
# synthesized IPv4 answer must carry (canonical name, reverse name,
# NI_NAMEREQD). A names come from the test DNS server in B and from A's
# hosts file; B's family echo on port 7 says which family reached it.
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
EOF
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # A hosts-file name whose first name on the line is its canonical name.
  lab_hosts a "2001:db8::2 Host6.Lab h6"
  lab_family_echo b 7
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# Runs python program $1 in NS $2 (default a), with the shim when $3 is
# "shim"; more VAR=VALUE may follow. The trace goes to $LAB_TMP/trace.
in_lab_py() {
  local prog=$1 ns=${2:-a} mode=${3:-shim}
  local -a pre=()
  shift 3
  [ "$mode" = shim ] && pre=(LD_PRELOAD="$SHIM"
    DUALSTACK_TRACE="$LAB_TMP/trace")
  rm -f "$LAB_TMP/trace"
  lab_run "$ns" env "${pre[@]}" "$@" timeout 20 $PY -c "
import socket, sys
def tcp(addrinfo):
    fam, typ, proto, canon, sa = addrinfo
    s = socket.socket(fam, typ, proto); s.settimeout(5); s.connect(sa)
    s.sendall(b'hi'); r = s.recv(100).decode(); s.close(); return r
def gai(*a, **k):
    try:
        return socket.getaddrinfo(*a, **k)
    except socket.gaierror as e:
        return 'gaierror %d' % e.errno
$prog" 2>&1
}

# socat asks getaddrinfo(name, port, {AF_INET, AI_PASSIVE}) on its client
# side. POSIX ignores AI_PASSIVE when a name is given, so the name is
# synthesized and the connection reaches the IPv6-only host.
test_passive_lookup_of_a_name_is_synthesized() {
  need_lab || return 0
  prog='
r = gai("v6only.test", 7, socket.AF_INET, socket.SOCK_STREAM, 0,
        socket.AI_PASSIVE)
print(r if isinstance(r, str) else tcp(r[0]))
r = gai(None, 7, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
print("null node", r[0][4])'
  without=$(in_lab_py "$prog" a plain)
  with=$(in_lab_py "$prog" a shim)
  assertContains "glibc finds no IPv4 address" "$without" "gaierror"
  assertContains "with the shim it connects over IPv6" "$with" "ipv6 hi"
  # A NULL node with AI_PASSIVE is the wildcard, with or without the shim.
  assertContains "$without" "null node ('0.0.0.0', 7)"
  assertContains "$with" "null node ('0.0.0.0', 7)"
}

# AI_CANONNAME: glibc fills ai_canonname on every success. A synthesized
# answer carries the canonical name glibc gives for the IPv6 side: the
# hosts line's first name for an alias, the DNS name for a DNS name. The
# reentrant and classic gethostbyname answers name it too.
test_canonical_name_is_glibcs_for_the_ipv6_side() {
  need_lab || return 0
  prog='
for n in ("h6", "v6only.test", "V6Only.Test."):
    for fam in (socket.AF_INET6, socket.AF_INET):
        r = gai(n, 7, fam, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
        print(n, fam, r if isinstance(r, str) else repr(r[0][3]))
print("ex", socket.gethostbyname_ex("h6")[0])'
  without=$(in_lab_py "$prog" a plain)
  with=$(in_lab_py "$prog" a shim)
  for n in h6 v6only.test V6Only.Test.; do
    ref=$(echo "$without" | grep "^$n $(( 10 ))")  # AF_INET6 is 10
    got=$(echo "$with" | grep "^$n 2 ")            # AF_INET is 2
    assertNotEquals "$n: glibc has a canonical name" "" "${ref##* }"
    assertEquals "$n: the same canonical name" "${ref##* }" "${got##* }"
  done
  assertContains "the hosts line's first name" "$with" "h6 2 'Host6.Lab'"
  assertContains "gethostbyname_r names it" "$with" "ex Host6.Lab"
}

# gethostbyaddr_r (CPython's socket.gethostbyaddr, threaded Perl's
# gethostbyaddr) of a synthetic address names the host, as gethostbyaddr
# and getnameinfo already did.
test_reverse_lookup_of_a_synthetic_address_through_gethostbyaddr_r() {
  need_lab || return 0
  out=$(in_lab_py '
a = socket.gethostbyname("v6only.test")
print("py", socket.gethostbyaddr(a))
print("gni", socket.getnameinfo((a, 7), socket.NI_NAMEREQD | socket.NI_NUMERICSERV))' a shim)
  assertContains "$out" "py ('v6only.test', [], ['10.170.160.1'])"
  assertContains "$out" "gni ('v6only.test', '7')"
  out=$(lab_run a env LD_PRELOAD="$SHIM" timeout 20 perl -MSocket -e '
my $a = gethostbyname("v6only.test") or die "no address\n";
my @h = gethostbyaddr($a, AF_INET) or die "no name\n";
print "perl $h[0] ", inet_ntoa($h[4]), "\n";' 2>&1)
  assertEquals "perl v6only.test 10.170.160.1" "$out"
}

# A server that looks its clients up (Perl's gethostbyaddr, Python's
# gethostbyaddr, getnameinfo with NI_NAMEREQD as daemons that require
# names do): an IPv6 client is named as glibc names its IPv6 address; for
# one without a name NI_NAMEREQD fails as glibc's does for the address.
test_server_names_ipv6_clients_as_glibc_names_their_address() {
  need_lab || return 0
  lab_run a ip addr add 2001:db8::5/64 dev "$LAB_IF_A" nodad
  lab_hosts b "2001:db8::1 client6.lab"
  # glibc's answers for the real addresses, in B without the shim.
  ref=$(in_lab_py '
for a in ("2001:db8::1", "2001:db8::5"):
    try:
        print(a, socket.getnameinfo((a, 0), socket.NI_NAMEREQD)[0])
    except socket.gaierror as e:
        print(a, "gaierror", e.errno)' b plain)
  assertContains "$ref" "2001:db8::1 client6.lab"
  assertContains "$ref" "2001:db8::5 gaierror $(( -2 ))"   # EAI_NONAME
  lab_run b env LD_PRELOAD="$SHIM" timeout 20 $PY -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8)); s.listen(8)
open("'"$LAB_TMP"'/ready", "w").close()
for i in range(2):
    c, a = s.accept()
    try:
        n = socket.getnameinfo(a, socket.NI_NAMEREQD)[0]
    except socket.gaierror as e:
        n = "gaierror %d" % e.errno
    try:
        h = socket.gethostbyaddr(a[0])[0]
    except OSError as e:
        h = "error"
    print(c.recv(100).decode(), a[0].startswith("172.21."), n, h, flush=True)
    c.close()' > "$LAB_TMP/server.out" 2>&1 &
  local srv=$!
  lab_wait_port b tcp 8
  for src in 2001:db8::1 2001:db8::5; do
    lab_run a $PY -c '
import socket, sys
s = socket.socket(socket.AF_INET6); s.bind((sys.argv[1], 0))
s.connect(("2001:db8::2", 8)); s.sendall(sys.argv[1].encode()); s.close()' \
      "$src"
  done
  wait "$srv"
  out=$(cat "$LAB_TMP/server.out")
  assertContains "named client" "$out" "2001:db8::1 True client6.lab client6.lab"
  # gethostbyaddr gives the literal where glibc has no name (DESIGN.md:
  # the name or the literal); NI_NAMEREQD asks for a name only.
  assertContains "unnamed client: NI_NAMEREQD fails as glibc's" "$out" \
    "2001:db8::5 True gaierror $(( -2 )) 2001:db8::5"
}

# The pool keys a synthetic address by the name that answered: `name`,
# `name.`, other letter case, and a short name completed by the search
# list all get one address.
test_one_address_for_the_name_that_answered() {
  need_lab || return 0
  lab_resolv a "search test" "nameserver 192.0.2.2"
  out=$(in_lab_py '
names = ("v6only.test", "v6only.test.", "V6ONLY.test", "v6only")
print(" ".join(socket.gethostbyname(n) for n in names))
print(socket.gethostbyaddr(socket.gethostbyname("v6only"))[0])' a shim)
  assertEquals "10.170.160.1 10.170.160.1 10.170.160.1 10.170.160.1
v6only.test" "$out"
}

# The address is leased to the absolute name that answered, and the race
# asks exactly that name again: with `ndots:5` (Kubernetes' default) a
# search-list name and a name with a trailing dot must not be searched
# again, where a decoy under the search domain would take the connection;
# nor a dual-stack name's, whose race looks it up again too.
# B's port 9 says which of its addresses was reached.
test_the_race_asks_the_name_that_answered_not_a_search_again() {
  need_lab || return 0
  lab_run b ip addr add 2001:db8::3/64 dev "$LAB_IF_B" nodad
  printf '%s\n' "svc.example AAAA 2001:db8::2" \
    "svc.example.lab.example AAAA 2001:db8::3" \
    "web.lab.example AAAA 2001:db8::2" \
    "web.lab.example.lab.example AAAA 2001:db8::3" \
    "dual.lab.example AAAA 2001:db8::2" "dual.lab.example A 192.0.2.2" \
    "dual.lab.example.lab.example AAAA 2001:db8::3" > "$LAB_TMP/dns.conf"
  kill -HUP "$LAB_DNS_PID"
  lab_resolv a "nameserver 192.0.2.2" "search lab.example" "options ndots:5"
  lab_bg b $PY -c '
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 9)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(c.getsockname()[0].encode()); c.close()'
  lab_wait_port b tcp 9
  ref=$(in_lab_py '
for n in ("svc.example.", "web", "dual"):
    print(n, gai(n, 9, socket.AF_INET6, socket.SOCK_STREAM)[0][4][0])' a plain)
  with=$(in_lab_py '
for n in ("svc.example.", "web", "dual"):
    s = socket.socket(); s.settimeout(5)
    s.connect((socket.gethostbyname(n), 9)); print(n, s.recv(100).decode())' \
    a shim)
  assertEquals "glibc's answers" "svc.example. 2001:db8::2
web 2001:db8::2
dual 2001:db8::2" "$ref"
  assertEquals "the shim reaches those hosts" "$ref" "$with"
}

# A scoped literal where IPv4 was expected keeps its interface name as
# given: interface names are case-sensitive.
test_scoped_literal_keeps_the_interface_names_case() {
  need_lab || return 0
  lab_run a ip link add LinkA type veth peer name LinkB netns "$LAB_NS_B"
  lab_run a ip addr add fe80::a/64 dev LinkA nodad
  lab_run b ip addr add fe80::b/64 dev LinkB nodad
  lab_run a ip link set LinkA up
  lab_run b ip link set LinkB up
  out=$(in_lab_py '
r = gai("fe80::b%LinkA", 7, socket.AF_INET, socket.SOCK_STREAM)
print(tcp(r[0]))' a shim)
  assertEquals "ipv6 hi" "$out"
}

# A CNAME chain (a.test -> b.test -> C.Test): the canonical name is the
# end of the chain, as glibc gives it for the IPv6 side, and the asked name
# is among the aliases. dnsd serves no CNAME: a responder for this chain.
test_canonical_name_is_the_end_of_a_cname_chain() {
  need_lab || return 0
  kill "$LAB_DNS_PID"
  lab_bg b $PY -c '
import socket, struct
def enc(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
# name -> (owner as written, type, target name or address)
zone = {"a.test": ("a.test", 5, "b.test"), "b.test": ("b.test", 5, "C.Test"),
        "c.test": ("C.Test", 28, "2001:db8::2")}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.2", 53))
while True:
    d, peer = s.recvfrom(512)
    i, labels = 12, []
    while d[i]:
        labels.append(d[i + 1:i + 1 + d[i]].decode()); i += 1 + d[i]
    qtype = struct.unpack(">H", d[i + 1:i + 3])[0]
    n = ".".join(labels).lower()
    rcode = 0 if n in zone else 3
    body, count = b"", 0
    while n in zone:
        owner, t, v = zone[n]
        if t != 5 and t != qtype:
            break
        rd = enc(v) if t == 5 else socket.inet_pton(socket.AF_INET6, v)
        body += enc(owner) + struct.pack(">HHIH", t, 1, 60, len(rd)) + rd
        count += 1
        n = v.lower() if t == 5 else None
    s.sendto(d[:2] + struct.pack(">HHHHH", 0x8180 | rcode, 1, count, 0, 0)
             + d[12:i + 5] + body, peer)'
  lab_wait_port b udp 53
  prog='
for fam in (socket.AF_INET6, socket.AF_INET):
    r = gai("a.test", 7, fam, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
    print(fam, r if isinstance(r, str) else r[0][3])
print("ex", socket.gethostbyname_ex("a.test")[:2])'
  without=$(in_lab_py "$prog" a plain)
  with=$(in_lab_py "$prog" a shim)
  assertContains "glibc's canonical name" "$without" "10 C.Test"
  assertContains "the same for the synthesized answer" "$with" "2 C.Test"
  assertContains "gethostbyname_r" "$with" "ex ('C.Test', ['a.test'])"
}

# curl resolves in a thread. The shim's fds go high (fd 600 and up), and
# the kernel grows a table that threads share only after an RCU grace
# period: curl's name lookup took 6-22 ms with the shim, 1 ms without.
# The table is now grown at the shim's start, while the process is still
# single-threaded (FDSize in /proc/self/status: 64 before).
test_fd_table_grown_before_threads_share_it() {
  need_lab || return 0
  out=$(in_lab_py '
import os, threading, time
os.close(os.dup(0))             # the first hooked call, single-threaded
size = [l for l in open("/proc/self/status") if l.startswith("FDSize")]
print("fdsize", int(size[0].split()[1]) >= 1024)
t = [0]
def look():
    a = time.monotonic(); socket.gethostbyname("v6only.test")
    t[0] = time.monotonic() - a
th = threading.Thread(target=look); th.start(); th.join()
print("lookup ms %.1f" % (t[0] * 1000), file=sys.stderr)' a shim \
    DUALSTACK_TRACE=)   # a trace's fd would grow the table itself
  assertContains "$out" "fdsize True"
}

# A name that is not UTF-8 still gives valid JSON trace lines, the bad
# bytes written as \xHH.
test_trace_of_a_name_that_is_not_utf8_is_valid_json() {
  need_lab || return 0
  in_lab_py '
for n in (b"\xff\xfe.test", b"caf\xc3\xa9.test", b"\xc3(.test", b"\xed\xa0\x80.test"):
    gai(n, 7, socket.AF_INET, socket.SOCK_STREAM)' a shim > /dev/null
  out=$($PY -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    e = json.loads(line)
    if e.get("event") == "lookup":
        print(e["name"])' "$LAB_TMP/trace" 2>&1)
  assertEquals 'every line is JSON' '\xff\xfe.test
café.test
\xc3(.test
\xed\xa0\x80.test' "$out"
}

# AF_UNSPEC (links' -address-preference 3, programs that ask for both and
# keep AF_INET): an answer with IPv6 addresses and no IPv4 one gains the
# synthetic address after glibc's entries, so a program that keeps only
# IPv4 connects (over IPv6, raced); a dual-stack-aware program sees
# glibc's entries first, unchanged, and connects exactly as without the
# shim; answers with IPv4 addresses stay glibc's, whole.
test_unspec_answer_without_ipv4_gains_the_synthetic_address_last() {
  need_lab || return 0
  prog='
for n in ("v6only.test", "both.test", "h6"):
    r = gai(n, 7, socket.AF_UNSPEC, socket.SOCK_STREAM)
    print(n, [x[4][0] for x in r])
v4 = [x for x in gai("v6only.test", 7, socket.AF_UNSPEC, socket.SOCK_STREAM)
      if x[0] == socket.AF_INET]
print("v4 kept", [x[4][0] for x in v4], tcp(v4[0]) if v4 else "none")
print("dual-aware", tcp(gai("v6only.test", 7, socket.AF_UNSPEC, socket.SOCK_STREAM)[0]))
r = socket.getaddrinfo("v6only.test", 7)
print("null hints", [(x[0], x[1], x[4][0]) for x in r][-3:])'
  without=$(in_lab_py "$prog" a plain)
  with=$(in_lab_py "$prog" a shim)
  assertContains "$without" "v6only.test ['2001:db8::2']"
  assertContains "$without" "v4 kept [] none"
  assertContains "$without" "dual-aware ipv6 hi"
  assertContains "glibc's entries, then the synthetic one" "$with" \
    "v6only.test ['2001:db8::2', '10.170.160.1']"
  assertContains "a dual-stack name is glibc's" "$with" \
    "$(echo "$without" | grep '^both.test')"
  assertContains "the hosts-file name too" "$with" \
    "h6 ['2001:db8::2', '10.170.160.2']"
  assertContains "the IPv4-keeping program connects" "$with" \
    "v4 kept ['10.170.160.1'] ipv6 hi"
  assertContains "the dual-stack-aware one as without" "$with" \
    "dual-aware ipv6 hi"
  assertContains "NULL hints: one entry per socket type" "$with" \
    "(<AddressFamily.AF_INET: 2>, <SocketKind.SOCK_RAW: 3>, '10.170.160.1')"
}

ds_run_shunit
