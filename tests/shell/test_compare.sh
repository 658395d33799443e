#!/bin/bash
# tools/dualstack-compare against real IPv4-only programs (nc.traditional,
# Perl IO::Socket::INET, curl -4) in a lab pair: before and after with the
# right families and results, in text and JSON; the SVG timelines of
# dualstack-compare --svg and dualstack-connect --timeline.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$(cd "$DS_BUILD" && pwd -P)/libdualstack-preload.so
CMP=("$DS_TOP/tools/dualstack-compare" --shim "$SHIM" --timeout 20)
PY=/usr/bin/python3

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  cat > "$LAB_TMP/dns.conf" <<'X'
v6only.test  AAAA 2001:db8::2
v6only.test  A    NODATA
both.test    A    192.0.2.2
both.test    AAAA 2001:db8::2
X
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # HTTP on [::]:80 for both families; the body is the peer it saw.
  lab_bg b $PY -c '
import socket, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 80)); s.listen(64)
def serve(c, a):
    c.settimeout(2)
    try:
        c.recv(4096)
    except OSError: pass
    peer = a[0][7:] if a[0].startswith("::ffff:") else a[0]
    body = ("peer %s\n" % peer).encode()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a)).start()'
  lab_wait_port b tcp 80
}

suite_tearDown() { lab_cleanup; }
suite_oneTimeTearDown() { lab_cleanup; }

# Checks a JSON report on stdin with Python assertions given as $1; the
# report is `d`, its first connect row `c` (None when there is none).
check_json() {
  $PY -c '
import ipaddress, json, sys
d = json.load(sys.stdin)
rows = [r for r in d["rows"] if r["kind"] == "connect"]
c = rows[0] if rows else None
look = [r for r in d["rows"] if r["kind"] == "lookup"]
def in_pool(a):
    return ipaddress.ip_address(a) in ipaddress.ip_network("10.170.160.0/20")
try:
    exec(sys.argv[1])
except AssertionError as e:
    print("assertion failed:", e, file=sys.stderr)
    json.dump(d, sys.stderr, indent=1)
    sys.exit(1)' "$1"
}

# Fails when a line of the file is wider than 80 columns.
fits_80() {
  awk 'length($0) > 80 { print "too wide: " $0; bad = 1 } END { exit bad }' "$1"
}

test_nc_ipv6_only_name_text_and_json() {
  need_lab || return 0
  lab_run a "${CMP[@]}" -- nc.traditional -z -w 5 v6only.test 80 \
    < /dev/null > "$LAB_TMP/out.txt" 2> "$LAB_TMP/err"
  assertEquals "text report: exit 0" 0 $?
  sed 's/^/    /' "$LAB_TMP/out.txt"
  txt=$(cat "$LAB_TMP/out.txt")
  assertContains "lookup row" "$txt" "lookup v6only.test (ipv4, gethostbyname)"
  assertContains "connect row" "$txt" "connect v6only.test port 80"
  assertContains "before made no connection" "$txt" "  (none)  "
  assertContains "after: IPv6" "$txt" "ipv6 [2001:db8::2]:80"
  assertTrue "exit statuses" "grep -Eq '^  exit 1 +exit 0$' $LAB_TMP/out.txt"
  assertTrue "80 columns" "fits_80 $LAB_TMP/out.txt"
  lab_run a "${CMP[@]}" --json -- nc.traditional -z -w 5 v6only.test 80 \
    < /dev/null > "$LAB_TMP/out.json"
  assertEquals "JSON report: exit 0" 0 $?
  assertTrue "python3 -m json.tool accepts it" \
    "$PY -m json.tool $LAB_TMP/out.json > /dev/null"
  check_json '
assert d["runs"]["before"]["exit"] != 0, "before fails"
assert d["runs"]["after"]["exit"] == 0, "after succeeds"
assert d["runs"]["before"]["mode"] == "observe"
assert look[0]["before"]["result"] == [] and look[0]["before"]["error"]
assert in_pool(look[0]["after"]["result"][0]), "synthetic answer"
assert c["before"] is None, "no connection before"
a = c["after"]
assert (a["family"], a["addr"], a["port"], a["result"]) == \
    ("ipv6", "2001:db8::2", 80, "ok"), a
assert a["app_family"] == "ipv4" and in_pool(a["app_addr"]), a
' < "$LAB_TMP/out.json"
  assertEquals "JSON assertions" 0 $?
}

test_perl_dual_stack_ipv6_blackholed() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 80 tcp
  lab_run a "${CMP[@]}" --json -- perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 80,
      Proto => "tcp") or die "connect: $@\n";
    print $s "GET / HTTP/1.0\r\n\r\n"; print while <$s>;' both.test \
    < /dev/null > "$LAB_TMP/out.json"
  assertEquals "exit 0" 0 $?
  assertTrue "valid JSON" "$PY -m json.tool $LAB_TMP/out.json > /dev/null"
  check_json '
b, a = c["before"], c["after"]
assert d["runs"]["before"]["exit"] == 0 and d["runs"]["after"]["exit"] == 0
assert d["runs"]["after"]["stdout_bytes"] > 0
assert (b["family"], b["addr"], b["result"]) == ("ipv4", "192.0.2.2", "ok"), b
assert b["attempts"] == [], "no race before"
assert (a["family"], a["addr"], a["result"]) == ("ipv4", "192.0.2.2", "ok"), a
# IPv6 first, then IPv4 after the 250 ms attempt delay.
fams = [(x["family"], x["result"]) for x in a["attempts"]]
assert fams[0][0] == "ipv6" and fams[0][1] != "ok", fams
assert ("ipv4", "ok") in fams, fams
assert 200 <= a["ms"] < 2000, a["ms"]
' < "$LAB_TMP/out.json"
  assertEquals "JSON assertions" 0 $?
  lab_run a "${CMP[@]}" -- perl -MIO::Socket::INET -e '
    IO::Socket::INET->new(PeerAddr => "both.test:80") or die;' \
    < /dev/null > "$LAB_TMP/out.txt"
  sed 's/^/    /' "$LAB_TMP/out.txt"
  assertTrue "text: the IPv6 attempt" \
    "grep -Eq '#1 \+[0-9]+ ms ipv6 \[2001:db8::2\]:80' $LAB_TMP/out.txt"
  assertTrue "text: the IPv4 attempt that won" \
    "grep -Eq '#2 \+[0-9]+ ms ipv4 192\.0\.2\.2:80' $LAB_TMP/out.txt"
  assertTrue "80 columns" "fits_80 $LAB_TMP/out.txt"
}

test_curl_dual_stack_ipv4_blackholed() {
  need_lab || return 0
  lab_blackhole b 192.0.2.2 80 tcp
  lab_run a "${CMP[@]}" --json -- curl -4 -sS -m 2 http://both.test/ \
    < /dev/null > "$LAB_TMP/out.json"
  assertEquals "exit 0" 0 $?
  assertTrue "valid JSON" "$PY -m json.tool $LAB_TMP/out.json > /dev/null"
  check_json '
b, a = c["before"], c["after"]
assert d["runs"]["before"]["exit"] == 28, "curl timed out before"
assert d["runs"]["after"]["exit"] == 0, "curl got the page after"
assert (b["family"], b["addr"]) == ("ipv4", "192.0.2.2"), b
# curl connects non-blocking: before, the connect returns EINPROGRESS and
# the black hole eats it.
assert b["result"] == "EINPROGRESS", b
assert (a["family"], a["addr"], a["result"]) == ("ipv6", "2001:db8::2", "ok"), a
' < "$LAB_TMP/out.json"
  assertEquals "JSON assertions" 0 $?
}

# Counts the bars of an SVG file, after checking it is well-formed XML.
bars() {
  $PY -c '
import sys, xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])
assert doc.documentElement.tagName == "svg"
rects = [r for r in doc.getElementsByTagName("rect")
         if r.getAttribute("class") == "bar"]
print(len(rects))
for g in doc.getElementsByTagName("g"):
    if g.getAttribute("class") == "attempt":
        print(g.getAttribute("data-family"), g.getAttribute("data-result"))
' "$1"
}

test_compare_svg_one_bar_per_attempt() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 80 tcp
  lab_run a "${CMP[@]}" --svg "$LAB_TMP/t.svg" --json -- \
    nc.traditional -z -w 5 both.test 80 < /dev/null > "$LAB_TMP/out.json"
  assertEquals "exit 0" 0 $?
  n=$($PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
n = 0
for r in d["rows"]:
    for run in ("before", "after"):
        c = r[run]
        if r["kind"] == "connect" and c:
            n += max(len(c["attempts"]), 1)
print(n)' "$LAB_TMP/out.json")
  out=$(bars "$LAB_TMP/t.svg")
  assertEquals "well-formed SVG" 0 $?
  echo "$out" | sed 's/^/    /'
  assertEquals "bars: one per attempt (1 before, 2 after)" "3 3" \
    "$(echo "$out" | head -1) $n"
  assertContains "IPv6 attempt cancelled" "$out" "ipv6 ECANCELED"
  assertEquals "two IPv4 bars succeeded" 2 "$(echo "$out" | grep -c 'ipv4 ok')"
}

test_connect_timeline_one_bar_per_attempt() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 80 tcp
  lab_run a "$DS_BUILD/dualstack-connect" -z --timeline "$LAB_TMP/c.svg" \
    both.test 80
  assertEquals "connected" 0 $?
  out=$(bars "$LAB_TMP/c.svg")
  assertEquals "well-formed SVG" 0 $?
  assertEquals "2 bars, IPv6 cancelled, IPv4 ok" \
    "$(printf '2\nipv6 ECANCELED\nipv4 ok')" "$out"
  lab_unfilter b
  lab_refuse b 2001:db8::2 80 tcp
  lab_refuse b 192.0.2.2 80 tcp
  lab_run a "$DS_BUILD/dualstack-connect" -z --timeline "$LAB_TMP/r.svg" \
    both.test 80 2>/dev/null
  assertEquals "every attempt failed" 69 $?
  out=$(bars "$LAB_TMP/r.svg")
  assertEquals "2 bars, both refused" \
    "$(printf '2\nipv6 ECONNREFUSED\nipv4 ECONNREFUSED')" "$out"
}

test_usage() {
  "$DS_TOP/tools/dualstack-compare" 2>/dev/null
  assertEquals "no command" 64 $?
  "$DS_TOP/tools/dualstack-compare" --timeout soon -- true 2>/dev/null
  assertEquals "bad --timeout" 64 $?
  "$DS_BUILD/dualstack-connect" --timeline 2>/dev/null
  assertEquals "--timeline without a file" 64 $?
}

ds_run_shunit
