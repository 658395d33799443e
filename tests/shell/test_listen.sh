#!/bin/bash
# build/dualstack-listen in a lab: a server namespace S joined to two
# client namespaces by two veth pairs, with IPv4, global IPv6 and
# link-local addresses on each link:
#
#   A eth0 (192.0.2.2, 2001:db8::2, fe80::2)
#     -- eth0 S (192.0.2.1, 2001:db8::1, fe80::1)
#        S eth1 (198.51.100.1, 2001:db8:1::1, fe80::11)
#     -- eth0 B (198.51.100.2, 2001:db8:1::2, fe80::12)
#
# plus S's loopback (127.0.0.1, ::1). Clients are Debian's python3 (any
# family, link-local scopes). Every test needs root; without it each one is
# skipped. Usage errors need nothing and always run.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

LISTEN=$DS_BUILD/dualstack-listen

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

# Skips the test unless the lab can run here.
# Builds the three namespaces and both links.
topology() {
  lab_ns s a b &&
    lab_link s a eth0 eth0 && lab_link s b eth1 eth0 &&
    lab_addr s eth0 192.0.2.1/24 2001:db8::1/64 fe80::1/64 &&
    lab_addr a eth0 192.0.2.2/24 2001:db8::2/64 fe80::2/64 &&
    lab_addr s eth1 198.51.100.1/24 2001:db8:1::1/64 fe80::11/64 &&
    lab_addr b eth0 198.51.100.2/24 2001:db8:1::2/64 fe80::12/64
}

# Every address of S, as dualstack-listen writes it with port P.
all_of_s() {
  printf '%s\n' "127.0.0.1:$1" "192.0.2.1:$1" "198.51.100.1:$1" \
    "[::1]:$1" "[2001:db8::1]:$1" "[2001:db8:1::1]:$1" \
    "[fe80::1%eth0]:$1" "[fe80::11%eth1]:$1"
}

# Milliseconds of the wall clock (bash's own, no process started).
now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  echo $((t / 1000))
}

# wait_for FILE REGEX [MS]: waits until a line of FILE matches (extended
# regex), at most MS milliseconds (default 3000) from now.
wait_for() {
  local end=$(($(now_ms) + ${3:-3000}))
  while :; do
    grep -Eq -- "$2" "$1" 2>/dev/null && return 0
    [ "$(now_ms)" -lt "$end" ] || return 1
    sleep 0.01
  done
}

# Prints the sorted addresses of FILE's "WORD ADDR" lines.
lines_of() {
  sed -n "s/^$2 //p" "$1" | sort
}

# client NS MODE HOST PORT DATA: one TCP client in NS. MODE echo sends
# DATA, half-closes and prints what comes back; MODE relay first reads to
# EOF, then sends DATA and closes. Prints what it read, or ERROR: why.
client() {
  lab_run "$1" "$LAB_PYTHON" -I -S -c '
import socket, sys
mode, host, port, data = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    sys.argv[4].encode()
def read_all(s):
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            return got
        got += b
try:
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0,
                            socket.AI_NUMERICHOST)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(ai[4])
    if mode == "echo":
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = read_all(s)
    else:
        got = read_all(s)
        s.sendall(data)
    s.close()
    sys.stdout.write(got.decode())
except OSError as e:
    sys.stdout.write("ERROR: %s" % e)
' "$2" "$3" "$4" "$5"
}

# hold NS HOST PORT: a listener outside dualstack-listen that takes PORT on
# HOST (`::` and `0.0.0.0` are wildcards; IPv6 ones are V6ONLY).
hold() {
  lab_bg "$1" "$LAB_PYTHON" -I -S -c '
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind((host, port))
s.listen(8)
time.sleep(120)' "$2" "$3" > /dev/null 2>&1
  lab_wait_port "$1" tcp "$3"
}

test_usage_errors_exit_64() {
  local a
  for a in "" "-4 -6 80" "abc" "70000" "080" "--bogus 80" "-x 80" "80 81"; do
    # shellcheck disable=SC2086
    "$LISTEN" $a > "$T/out" 2> "$T/err" < /dev/null
    assertEquals "args '$a'" 64 $?
    assertContains "usage for '$a'" "$(cat "$T/err")" \
      "usage: dualstack-listen [-v] [-k] [--echo] [-4|-6] PORT"
  done
  "$LISTEN" --help > /dev/null 2>&1
  assertEquals "--help" 0 $?
}

test_port0_one_port_on_every_address() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  local port
  lab_bg s "$LISTEN" --echo 0 2> "$T/err"
  wait_for "$T/err" '^listening \[fe80::11%eth1\]:' ||
    { fail "no listening lines: $(cat "$T/err")"; return 0; }
  sleep 0.1
  port=$(sed -n '1s/.*://p' "$T/err")
  assertNotEquals "a port was chosen" 0 "$port"
  assertEquals "every address of S on port $port" \
    "$(all_of_s "$port" | sort)" "$(lines_of "$T/err" listening)"
  assertEquals "nothing but listening lines" 8 "$(wc -l < "$T/err")"
  assertEquals "the kernel agrees" 8 \
    "$(lab_run s ss -Hltn "sport = :$port" | wc -l)"
}

test_echo_on_every_address_logs_the_local_address() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  local ns target out want
  lab_bg s "$LISTEN" -v --echo 8080 2> "$T/err"
  wait_for "$T/err" '^listening \[fe80::11%eth1\]:8080' ||
    { fail "not listening: $(cat "$T/err")"; return 0; }
  # NS TARGET (as the client names it) LOCAL (as S logs it) PEER (as S
  # logs it, without the port)
  while read -r ns target want peer; do
    out=$(client "$ns" echo "$target" 8080 "hello $target")
    assertEquals "echo through $target from $ns" "hello $target" "$out"
    grep -F "to $want" "$T/err" | grep -qF "connection from $peer:"
    assertTrue "log: $peer to $want ($(grep -F "to $want" "$T/err"))" $?
  done <<'EOF'
a 192.0.2.1 192.0.2.1:8080 192.0.2.2
a 2001:db8::1 [2001:db8::1]:8080 [2001:db8::2]
a fe80::1%eth0 [fe80::1%eth0]:8080 [fe80::2%eth0]
b 198.51.100.1 198.51.100.1:8080 198.51.100.2
b 2001:db8:1::1 [2001:db8:1::1]:8080 [2001:db8:1::2]
b fe80::11%eth0 [fe80::11%eth1]:8080 [fe80::12%eth1]
s 127.0.0.1 127.0.0.1:8080 127.0.0.1
s ::1 [::1]:8080 [::1]
EOF
  assertEquals "one log line per connection" 8 \
    "$(grep -c '^connection from ' "$T/err")"
}

test_follows_added_and_removed_addresses() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  local t0 took out
  lab_bg s "$LISTEN" --echo 8081 2> "$T/err"
  wait_for "$T/err" '^listening \[fe80::11%eth1\]:8081' ||
    { fail "not listening: $(cat "$T/err")"; return 0; }

  t0=$(now_ms)
  lab_run s ip addr add 2001:db8::7/64 dev eth0 nodad
  lab_run s ip addr add 192.0.2.7/24 dev eth0
  wait_for "$T/err" '^listening \[2001:db8::7\]:8081$' 1000
  assertTrue "IPv6 address added is bound within a second" $?
  wait_for "$T/err" '^listening 192\.0\.2\.7:8081$' 1000
  assertTrue "IPv4 address added is bound within a second" $?
  took=$(( $(now_ms) - t0 ))
  [ -z "${DS_TEST_FIGURES:-}" ] || echo "  figure: added -> listed: ${took} ms"
  out=$(client a echo 2001:db8::7 8081 new6)
  assertEquals "served on the new IPv6 address" new6 "$out"
  out=$(client a echo 192.0.2.7 8081 new4)
  assertEquals "served on the new IPv4 address" new4 "$out"

  lab_run s ip addr del 2001:db8::7/64 dev eth0
  wait_for "$T/err" '^stopped \[2001:db8::7\]:8081$' 1000
  assertTrue "removed address is stopped within a second" $?
  assertEquals "no socket left on it" "" \
    "$(lab_run s ss -Hltn "src [2001:db8::7]:8081")"
  assertEquals "every other address still listens" 9 \
    "$(lab_run s ss -Hltn "sport = :8081" | wc -l)"

  # A whole link goes: its addresses stop; the other link still serves.
  lab_run s ip link del eth1
  wait_for "$T/err" '^stopped 198\.51\.100\.1:8081$' 1000
  assertTrue "addresses of a deleted link stop" $?
  assertEquals "three stopped with the link" 3 \
    "$(grep -c '^stopped .*\(198\.51\.100\.1\|2001:db8:1::1\|fe80::11\)' \
      "$T/err")"
  out=$(client a echo 192.0.2.1 8081 still)
  assertEquals "the other link still serves" still "$out"
}

test_tentative_address_waits_for_dad() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  lab_bg s "$LISTEN" -v --echo 8085 2> "$T/err"
  wait_for "$T/err" '^listening \[fe80::11%eth1\]:8085' ||
    { fail "not listening: $(cat "$T/err")"; return 0; }
  lab_run s sysctl -qw net.ipv6.conf.eth0.accept_dad=1
  lab_run s ip addr add 2001:db8::9/64 dev eth0
  wait_for "$T/err" '^waiting \[2001:db8::9\]:8085: duplicate address' 1000
  assertTrue "tentative address announced ($(cat "$T/err"))" $?
  assertFalse "not listed as listening while tentative" \
    "grep -q '^listening \[2001:db8::9\]' '$T/err'"
  wait_for "$T/err" '^listening \[2001:db8::9\]:8085$' 5000
  assertTrue "bound once DAD passed" $?
  assertEquals "no longer tentative" "" \
    "$(lab_run s ip -6 -o addr show dev eth0 tentative)"
  assertEquals "served" dad "$(client a echo 2001:db8::9 8085 dad)"
}

test_relay_first_connection_like_nc() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  local out pid status
  printf 'from stdin\n' > "$T/in"
  lab_bg s "$LISTEN" 8082 < "$T/in" > "$T/out" 2> "$T/err"
  pid=$LAB_PID
  wait_for "$T/err" '^listening \[fe80::11%eth1\]:8082' ||
    { fail "not listening: $(cat "$T/err")"; return 0; }
  out=$(client b relay 2001:db8:1::1 8082 "from client")
  assertEquals "the peer got stdin, then FIN" "from stdin" "$out"
  wait "$pid"
  status=$?
  assertEquals "exit status once the peer closed" 0 "$status"
  assertEquals "stdout has the peer's bytes" "from client" "$(cat "$T/out")"
  out=$(lab_connect a 192.0.2.1 8082 1000)
  assertEquals "no second connection" ECONNREFUSED "${out%% *}"
}

test_keep_accepting_serves_connections_in_turn() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  local out1 out2 pid1
  printf 'hello' > "$T/in"
  lab_bg s "$LISTEN" -k 8086 < "$T/in" > "$T/out" 2> "$T/err"
  wait_for "$T/err" '^listening \[fe80::11%eth1\]:8086' ||
    { fail "not listening: $(cat "$T/err")"; return 0; }
  # The first client waits before it speaks; the second connects
  # meanwhile and is served after it.
  lab_run a "$LAB_PYTHON" -I -S -c '
import socket, time
s = socket.create_connection(("192.0.2.1", 8086), timeout=5)
got = b""
while True:
    b = s.recv(100)
    if not b:
        break
    got += b
time.sleep(0.5)
s.sendall(b"one ")
s.close()
print(got.decode())' > "$T/c1" 2>&1 &
  pid1=$!
  sleep 0.2
  out2=$(client b relay 198.51.100.1 8086 "two")
  wait "$pid1"
  out1=$(cat "$T/c1")
  assertEquals "first client got stdin" hello "$out1"
  assertEquals "second client got EOF only (stdin was used up)" "" "$out2"
  wait_for "$T/out" 'one two' 2000
  assertEquals "both relayed, in turn" "one two" "$(cat "$T/out")"
  out=$(lab_connect a 2001:db8::1 8086 1000)
  assertEquals "still accepting" OK "${out%% *}"
}

test_partial_failure_is_reported_per_address() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  hold s 2001:db8::1 8084 || { fail "hold"; return 0; }
  lab_bg s "$LISTEN" --echo 8084 2> "$T/err"
  wait_for "$T/err" '^listening \[fe80::11%eth1\]:8084' ||
    { fail "not listening: $(cat "$T/err")"; return 0; }
  sleep 0.1
  assertEquals "the taken address fails" \
    "failed [2001:db8::1]:8084: Address already in use" \
    "$(grep '^failed ' "$T/err")"
  assertEquals "the others listen" \
    "$(all_of_s 8084 | grep -v '^\[2001:db8::1\]' | sort)" \
    "$(lines_of "$T/err" listening)"
  assertEquals "and serve" ok "$(client a echo 192.0.2.1 8084 ok)"
}

test_nothing_bound_exits_69() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  local status
  hold s 0.0.0.0 8083 || { fail "hold"; return 0; }
  lab_run s "$LISTEN" -4 8083 > /dev/null 2> "$T/err" < /dev/null
  status=$?
  assertEquals "every IPv4 bind failed" 69 "$status"
  assertContains "says why" "$(cat "$T/err")" "Address already in use"
  assertContains "names the first address" "$(cat "$T/err")" "127.0.0.1:8083"
  hold s :: 8087 || { fail "hold"; return 0; }
  lab_run s "$LISTEN" -6 8087 > /dev/null 2> "$T/err" < /dev/null
  assertEquals "every IPv6 bind failed" 69 $?
  assertContains "names the first address" "$(cat "$T/err")" "[::1]:8087"
}

test_family_flags() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  lab_bg s "$LISTEN" -4 --echo 8088 2> "$T/err4"
  lab_bg s "$LISTEN" -6 --echo 8088 2> "$T/err6"
  if ! wait_for "$T/err4" '^listening 198\.51\.100\.1:8088$' ||
    ! wait_for "$T/err6" '^listening \[fe80::11%eth1\]:8088$'; then
    fail "not listening: $(cat "$T/err4" "$T/err6")"
    return 0
  fi
  sleep 0.1
  assertEquals "-4: IPv4 only" "$(all_of_s 8088 | grep -v '^\[' | sort)" \
    "$(lines_of "$T/err4" listening)"
  assertEquals "-6: IPv6 only (and the two share the port)" \
    "$(all_of_s 8088 | grep '^\[' | sort)" "$(lines_of "$T/err6" listening)"
  assertEquals "IPv4 reaches the -4 one" four \
    "$(client a echo 192.0.2.1 8088 four)"
  assertEquals "IPv6 reaches the -6 one" six \
    "$(client b echo fe80::11%eth0 8088 six)"
}

test_sigterm_stops_cleanly() {
  need_lab || return 0
  topology || { fail "topology"; return 0; }
  local pid
  lab_bg s "$LISTEN" --echo 8089 2> "$T/err"
  pid=$LAB_PID
  wait_for "$T/err" '^listening \[fe80::11%eth1\]:8089' ||
    { fail "not listening: $(cat "$T/err")"; return 0; }
  kill -TERM "$pid"
  wait "$pid"
  assertEquals "exit status after SIGTERM" 0 $?
  assertEquals "nothing listens any more" "" \
    "$(lab_run s ss -Hltn "sport = :8089")"
}

ds_run_shunit
