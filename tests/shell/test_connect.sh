#!/bin/bash
# build/dualstack-connect in a lab pair: exit statuses for each outcome,
# the -v line format, and the nc-like relay. The name server is the test
# DNS server in B, found through A's own resolv.conf.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

DC=$DS_BUILD/dualstack-connect

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  cat > "$LAB_TMP/dns.conf" <<'EOF'
both.test  A    192.0.2.2
both.test  AAAA 2001:db8::2
gone.test  *    NXDOMAIN
EOF
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # A listener on port 80 of both families that never accepts: the kernel
  # completes the handshake, which is all -z needs.
  lab_bg b /usr/bin/python3 -c '
import socket, time
s6 = socket.socket(socket.AF_INET6)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s6.bind(("::", 80)); s6.listen(64)
s4 = socket.socket(socket.AF_INET)
s4.bind(("0.0.0.0", 80)); s4.listen(64)
time.sleep(600)'
  lab_wait_port b tcp 80
}

suite_tearDown() {
  lab_cleanup
}

suite_oneTimeTearDown() {
  lab_cleanup
}

test_connected_exits_0() {
  need_lab || return 0
  lab_run a "$DC" -z both.test 80
  assertEquals "exit status" 0 $?
}

test_verbose_lines_show_the_race() {
  need_lab || return 0
  lab_blackhole b 2001:db8::2 80 tcp
  err=$(lab_run a "$DC" -v -z both.test 80 2>&1 >/dev/null)
  assertEquals "exit status" 0 $?
  echo "$err" | sed 's/^/    /'
  assertTrue "attempt 1 is IPv6" \
    "echo \"\$err\" | grep -Eq '^\+[0-9]+\.[0-9] attempt 1 ipv6 \[2001:db8::2\]:80$'"
  assertTrue "attempt 2 connects over IPv4" \
    "echo \"\$err\" | grep -Eq '^\+[0-9]+\.[0-9] attempt 2 ipv4 192\.0\.2\.2:80 -> connected$'"
  t=$(echo "$err" | sed -n 's/^+\([0-9.]*\) attempt 2 ipv4 .*connected$/\1/p')
  assertTrue "IPv4 connected after ~250 ms (at $t)" \
    "awk -v t=$t 'BEGIN { exit !(t >= 249 && t < 330) }'"
}

test_name_not_found_exits_68() {
  need_lab || return 0
  err=$(lab_run a "$DC" -z gone.test 80 2>&1)
  assertEquals "exit status" 68 $?
  assertContains "message names the host" "$err" "gone.test"
}

test_every_attempt_failed_exits_69() {
  need_lab || return 0
  lab_refuse b 2001:db8::2 80 tcp
  lab_refuse b 192.0.2.2 80 tcp
  err=$(lab_run a "$DC" -z both.test 80 2>&1)
  assertEquals "exit status" 69 $?
  assertContains "IPv6 attempt listed" "$err" "[2001:db8::2]:80 (ECONNREFUSED)"
  assertContains "IPv4 attempt listed" "$err" "192.0.2.2:80 (ECONNREFUSED)"
}

test_usage_errors_exit_64() {
  need_lab || return 0
  lab_run a "$DC" > /dev/null 2>&1
  assertEquals "no arguments" 64 $?
  lab_run a "$DC" both.test 99999 > /dev/null 2>&1
  assertEquals "bad port" 64 $?
  lab_run a "$DC" --prefer ipv5 both.test 80 > /dev/null 2>&1
  assertEquals "bad --prefer" 64 $?
  err=$(lab_run a "$DC" 'fe80::1%nosuch0' 80 2>&1)
  assertEquals "unknown scope" 64 $?
  assertContains "names the interface" "$err" "nosuch0"
}

test_family_restriction() {
  need_lab || return 0
  err=$(lab_run a "$DC" -v -z -4 both.test 80 2>&1)
  assertEquals "exit status" 0 $?
  assertNotContains "no IPv6 attempt with -4" "$err" "ipv6"
}

test_relays_like_nc() {
  need_lab || return 0
  # nc.traditional listens on IPv4 only: the IPv6 attempt is refused and
  # IPv4 takes over at once.
  lab_bg b sh -c 'echo hello from b | nc.traditional -q 1 -l -p 7 > /dev/null'
  lab_wait_port b tcp 7
  out=$(echo hi | lab_run a "$DC" both.test 7)
  assertEquals "exit status" 0 $?
  assertEquals "bytes relayed" "hello from b" "$out"
}

ds_run_shunit
