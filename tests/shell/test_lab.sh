#!/bin/bash
# Tests of the network lab itself (tests/lab/): namespaces and addresses,
# black holes and refusals for TCP and UDP, the test DNS server's answers,
# delays and robustness, the lab's own hosts and resolv.conf, and that
# cleanup leaves nothing behind, also after a failure, an interruption or
# a kill. Every test needs root; without it each one is skipped.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

# Skips the test unless the lab can run here.
suite_setUp() {
  T=$SHUNIT_TMPDIR/$_shunit_test_
  mkdir -p "$T"
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

# ms_in LO HI TEXT: whether the "ms=N" field of TEXT is in [LO, HI).
ms_in() {
  awk -v lo="$1" -v hi="$2" '{
    for (i = 1; i <= NF; i++)
      if ($i ~ /^ms=/) { v = substr($i, 4) + 0; exit !(v >= lo && v < hi) }
    exit 1
  }' <<< "$3"
}

# Prints TEXT without its "ms=N" field.
no_ms() {
  sed 's/ *ms=[0-9.]*$//' <<< "$1"
}

# dnsq_in LO HI ARGS...: runs dnsq in A, prints its line, and succeeds
# when the time is in [LO, HI). A loaded machine may deschedule a process
# at the wrong moment, so one measurement out of bounds is retried once;
# the bound itself is never widened.
dnsq_in() {
  local lo=$1 hi=$2 out
  shift 2
  out=$(lab_run a "$LAB_DNSQ" "$@")
  if ! ms_in "$lo" "$hi" "$out"; then
    echo "  (retrying once: dnsq $* gave $out)" >&2
    out=$(lab_run a "$LAB_DNSQ" "$@")
  fi
  printf '%s\n' "$out"
  ms_in "$lo" "$hi" "$out"
}

# listen_tcp NS PORT: a dual-stack TCP listener on [::]:PORT in NS. It
# never accepts: the kernel completes handshakes into the backlog.
listen_tcp() {
  lab_bg "$1" "$LAB_PYTHON" -I -S -c '
import socket, sys, time
s = socket.create_server(("::", int(sys.argv[1])), family=socket.AF_INET6,
                         dualstack_ipv6=True, backlog=64)
time.sleep(120)' "$2" > /dev/null 2>&1
  lab_wait_port "$1" tcp "$2"
}

# Whether any trace of the lab named by the namespace NS is left: the
# namespace, its /etc/netns dir.
ns_left() {
  ip netns list | grep -q "^$1\b" || [ -e "/etc/netns/$1" ]
}

dead() {
  ! _lab_alive "$1"
}

# waitfor FILE: waits up to 5 s for FILE to be non-empty.
waitfor() {
  local i
  for i in $(seq 250); do
    [ -s "$1" ] && return 0
    sleep 0.02
  done
  return 1
}

DNS_CONF='# name      type  answer                        options
www.test    A     192.0.2.10,192.0.2.11         ttl=30
www.test    AAAA  2001:db8::10
v4only.test A     192.0.2.12
nodata.test AAAA  NODATA
nx.test     *     NXDOMAIN
fail.test   A     SERVFAIL
drop.test   *     DROP
both.test   *     198.51.100.1,2001:db8::1:1
slow.test   A     192.0.2.20                    delay=200
slow.test   AAAA  2001:db8::20                  delay=60
late.test   A     192.0.2.21                    delay=500
'

# Starts dnsd on B (both addresses) with DNS_CONF (plus $1 if given); A
# resolves through it.
start_dns() {
  printf '%s%s' "$DNS_CONF" "${1:-}" > "$T/dns.conf"
  lab_dns b "$LAB_B4,$LAB_B6" "$T/dns.conf" "$T/query.log" a
}

test_pair_addresses_and_routes() {
  need_lab || return 0
  lab_pair || { fail "lab_pair"; return 0; }
  local ns out a
  for ns in a b; do
    assertEquals "no default route in $ns" "" \
      "$(lab_run $ns ip route show default
        lab_run $ns ip -6 route show default)"
    assertEquals "no tentative address in $ns" "" \
      "$(lab_run $ns ip -6 addr show tentative)"
    lab_run $ns ip -o link show lo | grep -q 'state UNKNOWN\|UP'
    assertTrue "lo up in $ns" $?
  done
  out=$(lab_run a ip -o addr show dev "$LAB_IF_A")
  for a in "$LAB_A4/24" "$LAB_A6/64" "$LAB_A_LL/64"; do
    assertContains "A has $a" "$out" " $a "
  done
  out=$(lab_run b ip -o addr show dev "$LAB_IF_B")
  for a in "$LAB_B4/24" "$LAB_B6/64" "$LAB_B_LL/64"; do
    assertContains "B has $a" "$out" " $a "
  done
  assertEquals "ifindex of A's end" \
    "$(lab_run a cat "/sys/class/net/$LAB_IF_A/ifindex")" "$LAB_IFINDEX_A"
  assertEquals "ifindex of B's end" \
    "$(lab_run b cat "/sys/class/net/$LAB_IF_B/ifindex")" "$LAB_IFINDEX_B"
  assertEquals "interface of A's link-local" "$LAB_IF_A" \
    "$(lab_ifname a "$LAB_A_LL")"
  # Usable at once (nodad), link-local too, with the scope by name.
  listen_tcp b 7000 || { fail "listener"; return 0; }
  for a in "$LAB_B4" "$LAB_B6" "$LAB_B_LL%$LAB_IF_A" \
    "$LAB_B_LL%$LAB_IFINDEX_A"; do
    out=$(lab_connect a "$a" 7000 1000)
    assertEquals "connect to $a" "OK" "${out%% *}"
  done
}

test_three_namespaces() {
  need_lab || return 0
  local out
  lab_ns x y z && lab_link x y || { fail "x-y"; return 0; }
  assertEquals "x's end" eth0 "$LAB_LINK_IF1"
  assertEquals "y's first end" eth0 "$LAB_LINK_IF2"
  lab_link y z || { fail "y-z"; return 0; }
  assertEquals "y's second end" eth1 "$LAB_LINK_IF1"
  assertEquals "z's end" eth0 "$LAB_LINK_IF2"
  assertEquals "full name" "dsl$$-y" "$(lab_nsname y)"
  lab_addr y eth1 198.51.100.1/24 && lab_addr z eth0 198.51.100.2/24
  out=$(lab_connect z 198.51.100.1 9 1000)
  assertEquals "closed port is refused" ECONNREFUSED "${out%% *}"
}

# tcp_blackhole ADDR: a connect to ADDR through a black hole hangs for the
# whole 1 s timeout, then works again once the rule is gone.
tcp_blackhole() {
  local out rc
  listen_tcp b 7000 || { fail "listener"; return 0; }
  out=$(lab_connect a "$1" 7000 1000)
  assertEquals "before: $out" OK "${out%% *}"
  lab_blackhole b "$1" 7000 tcp || fail "lab_blackhole"
  out=$(lab_connect a "$1" 7000 1000)
  rc=$?
  assertEquals "black-holed connect: $out" 2 "$rc"
  ms_in 990 1500 "$out"
  assertTrue "hangs for the whole timeout: $out" $?
  lab_unfilter b
  out=$(lab_connect a "$1" 7000 1000)
  assertEquals "after lab_unfilter: $out" OK "${out%% *}"
}

test_tcp_blackhole_ipv4() {
  need_lab || return 0
  lab_pair || { fail "lab_pair"; return 0; }
  tcp_blackhole "$LAB_B4"
}

test_tcp_blackhole_ipv6() {
  need_lab || return 0
  lab_pair || { fail "lab_pair"; return 0; }
  tcp_blackhole "$LAB_B6"
}

test_tcp_blackhole_on_sender_output() {
  need_lab || return 0
  lab_pair || { fail "lab_pair"; return 0; }
  local out rc
  listen_tcp b 7000 || { fail "listener"; return 0; }
  lab_blackhole_out a "$LAB_B6" 7000 || fail "lab_blackhole_out"
  out=$(lab_connect a "$LAB_B6" 7000 500)
  rc=$?
  assertEquals "black-holed on output: $out" 2 "$rc"
  ms_in 490 1000 "$out"
  assertTrue "hangs for the whole timeout: $out" $?
}

test_tcp_refuse() {
  need_lab || return 0
  lab_pair || { fail "lab_pair"; return 0; }
  local a out
  listen_tcp b 7000 || { fail "listener"; return 0; }
  for a in "$LAB_B4" "$LAB_B6"; do
    lab_refuse b "$a" 7000 || fail "lab_refuse"
    out=$(lab_connect a "$a" 7000 1000)
    assertEquals "refused: $out" ECONNREFUSED "${out%% *}"
    ms_in 0 200 "$out"
    assertTrue "refused at once: $out" $?
  done
}

test_udp_blackhole_and_refuse() {
  need_lab || return 0
  lab_pair && start_dns || { fail "lab"; return 0; }
  local a out rc
  for a in "$LAB_B4" "$LAB_B6"; do
    out=$(lab_run a "$LAB_DNSQ" -t 1000 "$a" www.test A)
    assertEquals "before: $out" "NOERROR 192.0.2.10 192.0.2.11" \
      "$(no_ms "$out")"
    lab_blackhole b "$a" 53 udp || fail "lab_blackhole"
    : > "$T/query.log"
    out=$(lab_run a "$LAB_DNSQ" -t 300 "$a" www.test A)
    rc=$?
    assertEquals "black-holed UDP times out: $out" 2 "$rc"
    ms_in 300 400 "$out"
    assertTrue "after the whole timeout: $out" $?
    assertEquals "dropped before the server saw it" "" "$(cat "$T/query.log")"
    out=$(lab_run a "$LAB_DNSQ" -T -t 1000 "$a" www.test A)
    assertEquals "TCP still passes: $out" NOERROR "${out%% *}"
    lab_unfilter b
    lab_refuse b "$a" 53 udp || fail "lab_refuse"
    out=$(lab_run a "$LAB_DNSQ" -t 1000 "$a" www.test A)
    rc=$?
    assertEquals "refused UDP: ICMP unreachable: $out" 3 "$rc"
    assertEquals "refused UDP: $out" ECONNREFUSED "${out%% *}"
    ms_in 0 200 "$out"
    assertTrue "refused at once: $out" $?
    lab_unfilter b
  done
}

test_dns_answers() {
  need_lab || return 0
  lab_pair && start_dns || { fail "lab"; return 0; }
  local q want got
  while IFS='|' read -r q want; do
    # shellcheck disable=SC2086
    got=$(lab_run a "$LAB_DNSQ" -t 250 "$LAB_B4" $q)
    assertEquals "$q" "$want" "$(no_ms "$got")"
  done <<'EOF'
www.test A|NOERROR 192.0.2.10 192.0.2.11
WWW.Test. A|NOERROR 192.0.2.10 192.0.2.11
www.test AAAA|NOERROR 2001:db8::10
www.test MX|NOERROR
v4only.test AAAA|NOERROR
nodata.test AAAA|NOERROR
nodata.test A|NOERROR
nx.test A|NXDOMAIN
nx.test AAAA|NXDOMAIN
unknown.test A|NXDOMAIN
unknown.test PTR|NXDOMAIN
fail.test A|SERVFAIL
fail.test AAAA|NOERROR
drop.test A|TIMEOUT
drop.test AAAA|TIMEOUT
both.test A|NOERROR 198.51.100.1
both.test AAAA|NOERROR 2001:db8::1:1
both.test TXT|NOERROR
EOF
  got=$(lab_run a "$LAB_DNSQ" -T "[$LAB_B6]:53" www.test AAAA)
  assertEquals "over TCP and IPv6" "NOERROR 2001:db8::10" "$(no_ms "$got")"
}

test_dns_delays_honoured() {
  need_lab || return 0
  lab_pair && start_dns || { fail "lab"; return 0; }
  local out
  out=$(dnsq_in 200 220 "$LAB_B4" slow.test A)
  assertTrue "delay=200 within 20 ms: $out" $?
  out=$(dnsq_in 60 80 "$LAB_B4" slow.test AAAA)
  assertTrue "delay=60 within 20 ms: $out" $?
  out=$(dnsq_in 200 220 -T "$LAB_B6" slow.test A)
  assertTrue "delay=200 over TCP within 20 ms: $out" $?
  out=$(dnsq_in 0 20 "$LAB_B4" www.test A)
  assertTrue "no delay: $out" $?
}

# One round of: a 500 ms query pending while a fast one and two other
# delayed ones are asked. Succeeds when every time is in bounds.
delay_round() {
  local i pids=
  : > "$T/query.log"
  lab_run a "$LAB_DNSQ" "$LAB_B4" late.test A > "$T/late" &
  pids="$pids $!"
  for i in $(seq 250); do
    grep -q late.test "$T/query.log" && break
    sleep 0.01
  done
  lab_run a "$LAB_DNSQ" "$LAB_B6" slow.test A > "$T/slowa" &
  pids="$pids $!"
  lab_run a "$LAB_DNSQ" "$LAB_B6" slow.test AAAA > "$T/slowaaaa" &
  pids="$pids $!"
  lab_run a "$LAB_DNSQ" "$LAB_B4" www.test A > "$T/fast"
  # shellcheck disable=SC2086
  wait $pids
  echo "  late: $(cat "$T/late"); slow A: $(cat "$T/slowa");" \
    "slow AAAA: $(cat "$T/slowaaaa"); fast: $(cat "$T/fast")"
  ms_in 0 20 "$(cat "$T/fast")" && ms_in 500 520 "$(cat "$T/late")" &&
    ms_in 200 220 "$(cat "$T/slowa")" && ms_in 60 80 "$(cat "$T/slowaaaa")"
}

test_dns_delay_does_not_block_others() {
  need_lab || return 0
  lab_pair && start_dns || { fail "lab"; return 0; }
  delay_round || delay_round
  assertTrue "every reply on time, the fast one at once" $?
}

test_dns_truncation_and_tcp() {
  need_lab || return 0
  local many i out
  many=192.0.2.100
  for i in $(seq 101 131); do many="$many,192.0.2.$i"; done
  lab_pair && start_dns "big.test A $many
" || { fail "lab"; return 0; }
  out=$(lab_run a "$LAB_DNSQ" "$LAB_B4" big.test A)
  assertContains "UDP reply truncated: $out" "$out" " tc "
  assertEquals "as many as fit in 512 bytes" 30 \
    "$(grep -o ' 192\.0\.2\.' <<< "$out" | wc -l)"
  out=$(lab_run a "$LAB_DNSQ" -T "$LAB_B4" big.test A)
  assertEquals "all 32 over TCP" 34 "$(wc -w <<< "$out")"
  # glibc retries over TCP on its own.
  out=$(lab_run a getent ahostsv4 big.test | awk '$2 == "STREAM"' | wc -l)
  assertEquals "getent sees all 32" 32 "$out"
  grep -q '^[0-9]* tcp 192.0.2.1#[0-9]* big.test A NOERROR' "$T/query.log"
  assertTrue "TCP retry logged" $?
}

test_dns_query_log() {
  need_lab || return 0
  lab_pair && start_dns || { fail "lab"; return 0; }
  local now line
  lab_run a "$LAB_DNSQ" "$LAB_B4" www.test AAAA > /dev/null
  lab_run a "$LAB_DNSQ" "$LAB_B6" nx.test MX > /dev/null
  lab_run a "$LAB_DNSQ" -T "$LAB_B4" slow.test A > /dev/null
  lab_run a "$LAB_DNSQ" -t 100 "$LAB_B4" drop.test A > /dev/null
  now=$(date +%s%3N)
  assertEquals "one line per query" 4 "$(wc -l < "$T/query.log")"
  line=$(sed -n 1p "$T/query.log")
  assertEquals "fields" "udp 192.0.2.1 www.test AAAA NOERROR delay=0" \
    "$(awk '{ sub(/#.*/, "", $3); print $2, $3, $4, $5, $6, $7 }' <<< "$line")"
  assertTrue "timestamp in ms: $line" \
    "[ $((now - ${line%% *})) -ge 0 ] && [ $((now - ${line%% *})) -lt 5000 ]"
  grep -q " udp 2001:db8::1#[0-9]* nx.test MX NXDOMAIN delay=0$" \
    "$T/query.log"
  assertTrue "IPv6 client, other type" $?
  grep -q " tcp 192.0.2.1#[0-9]* slow.test A NOERROR delay=200$" \
    "$T/query.log"
  assertTrue "TCP, delay" $?
  grep -q " drop.test A DROP " "$T/query.log"
  assertTrue "dropped query logged" $?
}

test_dns_malformed_packets() {
  need_lab || return 0
  lab_pair && start_dns || { fail "lab"; return 0; }
  local out
  out=$(lab_run a "$LAB_PYTHON" - "$LAB_B4" <<'EOF' 2>&1
import random, socket, struct, sys
srv = sys.argv[1]
q = b"\x03www\x04test\x00" + struct.pack("!HH", 1, 1)
def hdr(id, flags, qd):
    return struct.pack("!6H", id, flags, qd, 0, 0, 0)
def ask(pkt):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    s.connect((srv, 53))
    s.send(pkt)
    try:
        r = s.recv(4096)
        return r[3] & 15 if r[:2] == pkt[:2] else "wrong id"
    except socket.timeout:
        return None
    finally:
        s.close()
cases = [
    ("empty", b"", None),
    ("short", b"\x00\x01\x02", None),
    ("no question", hdr(1, 0x100, 1), 1),
    ("qdcount 0", hdr(2, 0x100, 0), 1),
    ("qdcount 2", hdr(3, 0x100, 2) + q + q, 1),
    ("pointer", hdr(4, 0x100, 1) + b"\xc0\x0c" + q[-4:], 1),
    ("label 64", hdr(5, 0x100, 1) + b"\x40" + b"a" * 64 + b"\0" + q[-4:], 1),
    ("name > 255", hdr(6, 0x100, 1) + (b"\x3f" + b"a" * 63) * 5 + b"\0"
     + q[-4:], 1),
    ("label past end", hdr(7, 0x100, 1) + b"\x20abc", 1),
    ("no qtype", hdr(8, 0x100, 1) + q[:-3], 1),
    ("a response", hdr(9, 0x8100, 1) + q, None),
    ("opcode UPDATE", hdr(10, 0x2900, 1) + q, 4),
    ("class CH", hdr(11, 0x100, 1) + q[:-2] + b"\x00\x03", 5),
    ("trailing junk", hdr(12, 0x100, 1) + q + b"\xff" * 100, 0),
    ("binary label", hdr(13, 0x100, 1) + b"\x03w.w\x04test\x00" + q[-4:], 3),
]
bad = 0
for name, pkt, want in cases:
    got = ask(pkt)
    if got != want:
        print("%s: got %r, want %r" % (name, got, want))
        bad += 1
rnd = random.Random(7)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((srv, 53))
valid = hdr(99, 0x100, 1) + q
for i in range(3000):
    if i % 2:
        pkt = bytes(rnd.randrange(256) for _ in range(rnd.randrange(600)))
    else:
        pkt = bytearray(valid)
        for _ in range(rnd.randrange(1, 4)):
            pkt[rnd.randrange(len(pkt))] = rnd.randrange(256)
        pkt = bytes(pkt[:rnd.randrange(len(pkt) + 1)])
    try:
        s.send(pkt)
    except OSError:
        pass
# TCP: a length no query has, then a query sent in pieces.
t = socket.create_connection((srv, 53), timeout=1)
t.sendall(b"\xff\xff" + b"x" * 100)
try:
    closed = t.recv(10) == b""
except ConnectionResetError:
    closed = True
if not closed:
    print("tcp: huge length not closed")
    bad += 1
t = socket.create_connection((srv, 53), timeout=1)
msg = hdr(77, 0x100, 1) + q
for part in (struct.pack("!H", len(msg))[:1], struct.pack("!H", len(msg))[1:],
             msg[:5], msg[5:]):
    t.sendall(part)
r = t.recv(4096)
if len(r) < 14 or r[2:4] != b"\x00\x4d":
    print("tcp: piecewise query not answered")
    bad += 1
sys.exit(1 if bad else 0)
EOF
)
  assertTrue "malformed packets: $out" $?
  out=$(lab_run a "$LAB_DNSQ" -t 1000 "$LAB_B4" www.test A)
  assertEquals "still answering" "NOERROR 192.0.2.10 192.0.2.11" \
    "$(no_ms "$out")"
  assertTrue "still running" "_lab_alive $LAB_DNS_PID"
  grep -q " - - FORMERR " "$T/query.log"
  assertTrue "FORMERR logged" $?
}

# answer_becomes WANT ARGS...: asks dnsq ARGS in A until the reply (without
# its time) is WANT, for up to 2 s. Prints the last reply.
answer_becomes() {
  local want=$1 out i
  shift
  for ((i = 0; i < 40; i++)); do
    out=$(no_ms "$(lab_run a "$LAB_DNSQ" -t 500 "$@")")
    [ "$out" = "$want" ] && break
    sleep 0.05
  done
  printf '%s\n' "$out"
}

test_dns_reload_and_clean_exit() {
  need_lab || return 0
  lab_pair && start_dns || { fail "lab"; return 0; }
  local out rc q1 q2 i
  local pidfile=$LAB_TMP/dnsd-$LAB_NS_B.pid errs=$LAB_TMP/dnsd-$LAB_NS_B.out
  printf '%s\n' "www.test A 198.51.100.80" > "$T/dns.conf"
  kill -HUP "$LAB_DNS_PID"
  out=$(answer_becomes "NOERROR 198.51.100.80" "$LAB_B4" www.test A)
  assertEquals "reloaded on SIGHUP" "NOERROR 198.51.100.80" "$out"
  printf '%s\n' "www.test A 2001:db8::1" > "$T/dns.conf"
  kill -HUP "$LAB_DNS_PID"
  for ((i = 0; i < 100; i++)); do
    grep -q "dns.conf:1: " "$errs" && break
    sleep 0.02
  done
  assertContains "error names file and line" "$(cat "$errs")" "dns.conf:1: "
  out=$(lab_run a "$LAB_DNSQ" "$LAB_B4" www.test A)
  assertEquals "bad table kept the old one" "NOERROR 198.51.100.80" \
    "$(no_ms "$out")"
  # Exit with replies still pending and a TCP connection open: status 0,
  # pid file removed, and (in a sanitizer build) no report.
  printf '%s\n' "slow.test A 192.0.2.20 delay=5000" > "$T/dns.conf"
  kill -HUP "$LAB_DNS_PID"
  out=$(answer_becomes "TIMEOUT" -t 100 "$LAB_B4" slow.test A)
  : > "$T/query.log"
  lab_run a "$LAB_DNSQ" -t 500 "$LAB_B4" slow.test A > /dev/null &
  q1=$!
  lab_run a "$LAB_DNSQ" -T -t 500 "$LAB_B4" slow.test A > /dev/null &
  q2=$!
  for ((i = 0; i < 100; i++)); do
    [ "$(wc -l < "$T/query.log")" -ge 2 ] && break
    sleep 0.02
  done
  kill -TERM "$LAB_DNS_PID"
  wait "$LAB_DNS_PID"
  rc=$?
  wait "$q1" "$q2"
  assertEquals "exit status on SIGTERM" 0 "$rc"
  assertFalse "pid file removed" "[ -e '$pidfile' ]"
  out=$(grep -i 'sanitizer\|runtime error' "$errs")
  assertEquals "no sanitizer report" "" "$out"
}

test_dnsd_rejects_bad_tables() {
  need_lab || return 0
  local line out rc
  while IFS= read -r line; do
    printf 'ok.test A 192.0.2.1\n%s\n' "$line" > "$T/bad.conf"
    out=$(timeout 2 "$LAB_DNSD" -l 127.0.0.1:0 -c "$T/bad.conf" 2>&1)
    rc=$?
    assertNotEquals "refused: $line" 0 "$rc"
    assertContains "names the line: $line" "$out" "bad.conf:2: "
  done <<'EOF'
x.test A 2001:db8::1
x.test AAAA 192.0.2.1
x.test MX 192.0.2.1
x.test A
x.test A nonsense
x.test A 192.0.2.1,,192.0.2.2
x.test A 192.0.2.1 delay=-1
x.test A 192.0.2.1 delay=soon
x..test A 192.0.2.1
ok.test A 192.0.2.2
EOF
}

test_resolver_uses_lab_files() {
  need_lab || return 0
  lab_pair && start_dns || { fail "lab"; return 0; }
  local sum out
  sum=$(cat /etc/hosts /etc/resolv.conf | md5sum)
  lab_hosts a "198.51.100.7 fromhosts.test"
  out=$(lab_run a getent hosts fromhosts.test)
  assertEquals "hosts file of the lab" "198.51.100.7" "${out%% *}"
  out=$(lab_run a getent ahostsv4 www.test | awk '$2 == "STREAM" { print $1 }')
  assertEquals "resolv.conf of the lab" "192.0.2.10 192.0.2.11" "$(echo $out)"
  out=$(lab_run a getent ahostsv6 www.test | awk '$2 == "STREAM" { print $1 }')
  assertEquals "AAAA through the lab's server" "2001:db8::10" "$out"
  assertEquals "resolv.conf names the server" "nameserver 192.0.2.2" \
    "$(lab_run a grep nameserver /etc/resolv.conf)"
  grep -q ' www.test A ' "$T/query.log"
  assertTrue "the lookup reached dnsd" $?
  assertFalse "the host does not see the lab's hosts file" \
    "getent hosts fromhosts.test"
  assertEquals "host files untouched" "$sum" \
    "$(cat /etc/hosts /etc/resolv.conf | md5sum)"
}

test_runner_pair() {
  need_lab || return 0
  local rc
  "$LAB_SH" run-pair -- sh -c '
    echo "$LAB_NS_A $LAB_NS_B $LAB_IF_A $LAB_B4 $LAB_B6 $LAB_B_LL" > "$1/env"
    ip -o addr show > "$1/addr"
    read line; echo "$line" > "$1/stdin"
    exit 7' sh "$T" <<< "stdin passed"
  rc=$?
  assertEquals "exit status of CMD" 7 "$rc"
  set -- $(cat "$T/env")
  assertEquals "variables" "eth0 192.0.2.2 2001:db8::2 fe80::2" "$3 $4 $5 $6"
  assertContains "ran in A" "$(cat "$T/addr")" " 192.0.2.1/24 "
  assertEquals "stdin" "stdin passed" "$(cat "$T/stdin")"
  assertFalse "namespace A removed" "ns_left $1"
  assertFalse "namespace B removed" "ns_left $2"
  assertFalse "temporary dir removed" "[ -e /tmp/dslab/${1#dsl} ]"
  "$LAB_SH" run-pair --dns /dev/null -- true
  assertEquals "run-pair --dns" 0 $?
}

test_runner_cleans_up_after_failure() {
  need_lab || return 0
  local rc
  printf '%s\n' "srv.test A 192.0.2.2" > "$T/dns.conf"
  printf '%s\n' "198.51.100.9 h.test" > "$T/hosts"
  "$LAB_SH" run-pair --dns "$T/dns.conf" --hosts "$T/hosts" \
    --setup 'lab_refuse b "$LAB_B4" 80' -- sh -c '
    echo "$LAB_NS_A $LAB_NS_B $LAB_DNS_PID" > "$1/env"
    "$LAB_SH" bg "$LAB_NS_B" sleep 300 > "$1/bgpid"
    getent hosts srv.test > "$1/srv"
    getent hosts h.test > "$1/h"
    "$LAB_SH" connect "$LAB_NS_A" "$LAB_B4" 80 > "$1/refused"
    false' sh "$T"
  rc=$?
  assertEquals "exit status of CMD" 1 "$rc"
  set -- $(cat "$T/env")
  assertContains "DNS set up" "$(cat "$T/srv")" "192.0.2.2"
  assertContains "hosts set up" "$(cat "$T/h")" "198.51.100.9"
  assertContains "setup code ran" "$(cat "$T/refused")" "ECONNREFUSED"
  assertFalse "namespace A removed" "ns_left $1"
  assertFalse "namespace B removed" "ns_left $2"
  assertTrue "dnsd gone" "dead $3"
  assertTrue "background process gone" "dead $(cat "$T/bgpid")"
}

test_runner_interrupted() {
  need_lab || return 0
  local runner rc i
  "$LAB_SH" run-pair --dns /dev/null -- sh -c '
    echo "$LAB_NS_A $LAB_NS_B $LAB_DNS_PID $$" > "$1/env.tmp"
    mv "$1/env.tmp" "$1/env"
    sleep 300' sh "$T" &
  runner=$!
  waitfor "$T/env" || { fail "runner did not start"; kill -9 $runner; return 0; }
  set -- $(cat "$T/env")
  kill -TERM "$runner"
  wait "$runner"
  rc=$?
  assertEquals "runner exits 143" 143 "$rc"
  assertFalse "namespace A removed" "ns_left $1"
  assertFalse "namespace B removed" "ns_left $2"
  assertTrue "dnsd gone" "dead $3"
  assertTrue "CMD gone" "dead $4"
}

test_sweep_after_kill() {
  need_lab || return 0
  local killed live d k l
  lab_pair || { fail "lab_pair"; return 0; }
  mkdir "$T/k" "$T/l"
  for d in k l; do
    "$LAB_SH" run-pair --dns /dev/null -- sh -c '
      echo "$LAB_NS_A $LAB_NS_B $LAB_DNS_PID $$" > "$1/env.tmp"
      mv "$1/env.tmp" "$1/env"
      sleep 300' sh "$T/$d" &
    eval "$d=\$!"
  done
  killed=$k live=$l
  waitfor "$T/k/env" && waitfor "$T/l/env" ||
    { fail "runners did not start"; kill -9 $killed $live; return 0; }
  kill -KILL "$killed"
  wait "$killed" 2>/dev/null
  set -- $(cat "$T/k/env")
  assertTrue "a killed run leaves its lab" "ns_left $1"
  "$LAB_SH" sweep
  assertFalse "swept namespace A" "ns_left $1"
  assertFalse "swept namespace B" "ns_left $2"
  assertFalse "swept temporary dir" "[ -e /tmp/dslab/$killed ]"
  assertTrue "killed dnsd" "dead $3"
  assertTrue "killed CMD" "dead $4"
  set -- $(cat "$T/l/env")
  assertTrue "a live runner's lab is kept" "ns_left $1"
  assertTrue "its processes too" "_lab_alive $4"
  assertTrue "this suite's lab is kept" "ns_left $LAB_NS_A"
  kill -TERM "$live"
  wait "$live"
  assertFalse "the live runner cleans up" "ns_left $1"
}

test_cleanup_leaves_nothing() {
  need_lab || return 0
  local bg dns ns
  lab_pair && start_dns || { fail "lab"; return 0; }
  lab_ns c
  lab_bg b sleep 300
  bg=$LAB_PID
  dns=$LAB_DNS_PID
  lab_run a sh -c 'sleep 300 & echo $!' > "$T/orphan"
  lab_blackhole b "$LAB_B4"
  lab_cleanup
  assertEquals "no namespace" "" "$(ip netns list | grep "^dsl$$-")"
  assertEquals "no /etc/netns dir" "" "$(ls /etc/netns | grep "^dsl$$-")"
  assertFalse "no temporary dir" "[ -e /tmp/dslab/$$ ]"
  assertTrue "lab_bg process gone" "dead $bg"
  assertTrue "dnsd gone" "dead $dns"
  assertTrue "orphan in the namespace gone" "dead $(cat "$T/orphan")"
  lab_cleanup
  assertEquals "cleanup twice is fine" 0 $?
}

ds_run_shunit
