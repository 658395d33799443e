#!/bin/bash
# The shim's lookup cache (shim/names.c), seen from one long-lived
# preloaded Python process in a lab pair that looks names up on request:
# DNS answers are kept for their TTL and renewed after it, NXDOMAIN and
# NODATA for 5 seconds, hosts-file answers until the hosts file changes,
# and a change of resolv.conf empties the cache. What the process gets
# tells the shim's decision apart: a synthetic 10.170.160.0/20 address for
# a name it believes IPv6-only, the real IPv4 address otherwise. The test
# DNS server's query log counts the shim's own questions: only the shim
# asks AAAA (the program asks for IPv4).
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  CONF=$LAB_TMP/dns.conf
  LOG=$LAB_TMP/dns.log
  cat > "$CONF" <<'EOF'
ttl.test    AAAA 2001:db8::2   ttl=2
ttl.test    A    NODATA        ttl=2
neg.test    *    NXDOMAIN
long.test   AAAA 2001:db8::2   ttl=300
long.test   A    NODATA        ttl=300
EOF
  lab_dns b 192.0.2.2 "$CONF" "$LOG" a
}

suite_tearDown() {
  stop_client
  lab_cleanup
}

suite_oneTimeTearDown() {
  stop_client
  lab_cleanup
}

# Starts the preloaded client in A: one name per line in, one line out
# (the IPv4 address getaddrinfo(AF_INET) gave, or "error").
start_client() {
  coproc CLIENT {
    lab_run a env LD_PRELOAD="$SHIM" $PY -u -c '
import socket, sys
for line in sys.stdin:
    try:
        print(socket.gethostbyname(line.strip()), flush=True)
    except OSError:
        print("error", flush=True)' 2>&1
  }
  CLIENT_PID_SAVED=$CLIENT_PID
}

stop_client() {
  if [ -n "${CLIENT_PID_SAVED:-}" ]; then
    exec {CLIENT[1]}>&- 2>/dev/null
    wait "$CLIENT_PID_SAVED" 2>/dev/null
    CLIENT_PID_SAVED=
  fi
}

# ask NAME: prints the client's answer for NAME.
ask() {
  local ans=
  echo "$1" >&"${CLIENT[1]}"
  read -r -t 10 ans <&"${CLIENT[0]}"
  echo "${ans:-no answer}"
}

# queries NAME TYPE: how many times dnsd was asked NAME TYPE.
queries() {
  grep -c " $1 $2 " "$LOG"
}

# Replaces dnsd's table with stdin and makes it reload.
dns_config() {
  cat > "$CONF"
  kill -HUP "$LAB_DNS_PID"
  sleep 0.2
}

test_dns_answer_kept_for_its_ttl_then_renewed() {
  need_lab || return 0
  local first t0 i
  start_client
  t0=$(date +%s%N)
  first=$(ask ttl.test)
  assertContains "AAAA only: synthetic" "$first" "10.170.16"
  for i in 1 2 3 4; do
    assertEquals "repeat $i: the same address" "$first" "$(ask ttl.test)"
  done
  assertEquals "five lookups, one AAAA question" 1 "$(queries ttl.test AAAA)"
  dns_config <<'EOF'
ttl.test    A    192.0.2.2      ttl=2
ttl.test    AAAA NODATA         ttl=2
EOF
  # Within the TTL the cached answer stands (no new question).
  if [ $((($(date +%s%N) - t0) / 1000000)) -lt 1500 ]; then
    assertEquals "within the TTL: cached" "$first" "$(ask ttl.test)"
    assertEquals "within the TTL: no question" 1 "$(queries ttl.test AAAA)"
  fi
  sleep 2.2
  assertEquals "after the TTL: the new A record" 192.0.2.2 "$(ask ttl.test)"
  assertEquals "after the TTL: asked again" 2 "$(queries ttl.test AAAA)"
}

test_negative_answer_kept_five_seconds() {
  need_lab || return 0
  local t0 ans
  start_client
  t0=$(date +%s%N)
  assertEquals "NXDOMAIN" error "$(ask neg.test)"
  assertEquals "NXDOMAIN again" error "$(ask neg.test)"
  assertEquals "one AAAA question for two lookups" 1 \
    "$(queries neg.test AAAA)"
  dns_config <<'EOF'
neg.test    AAAA 2001:db8::2
EOF
  ans=$(ask neg.test)
  if [ $((($(date +%s%N) - t0) / 1000000)) -lt 4000 ]; then
    assertEquals "within 5 s: still not found" error "$ans"
    assertEquals "within 5 s: no AAAA question" 1 "$(queries neg.test AAAA)"
  fi
  sleep $((5 - ($(date +%s%N) - t0) / 1000000000)).3
  assertContains "after 5 s: the new AAAA record" "$(ask neg.test)" \
    "10.170.16"
}

test_hosts_file_change_seen_at_once() {
  need_lab || return 0
  local first
  lab_hosts a "2001:db8::77 h6.test"
  start_client
  first=$(ask h6.test)
  assertContains "hosts file, IPv6 only: synthetic" "$first" "10.170.16"
  assertEquals "cached" "$first" "$(ask h6.test)"
  lab_hosts a "192.0.2.77 h6.test"
  assertEquals "hosts file edited: the new IPv4 line at once" 192.0.2.77 \
    "$(ask h6.test)"
  assertEquals "never sent to DNS" 0 "$(queries h6.test AAAA)"
}

test_resolv_conf_change_empties_the_cache() {
  need_lab || return 0
  local first
  start_client
  first=$(ask long.test)
  assertContains "AAAA only, TTL 300: synthetic" "$first" "10.170.16"
  assertEquals "cached" "$first" "$(ask long.test)"
  dns_config <<'EOF'
long.test   A    192.0.2.2      ttl=300
long.test   AAAA NODATA         ttl=300
EOF
  assertEquals "TTL 300: still cached" "$first" "$(ask long.test)"
  lab_resolv a "nameserver 192.0.2.2" "options timeout:2"
  assertEquals "resolv.conf changed: asked again" 192.0.2.2 \
    "$(ask long.test)"
  assertEquals "two AAAA questions" 2 "$(queries long.test AAAA)"
}

test_forked_child_uses_the_cache() {
  need_lab || return 0
  local out
  # The parent fills the cache, then forks while a second thread looks
  # names up; the child answers from the cache (no new question), and
  # neither hangs.
  out=$(lab_run a env LD_PRELOAD="$SHIM" timeout 10 $PY -c '
import os, socket, threading
first = socket.gethostbyname("long.test")
stop = False
def spin():
    while not stop:
        socket.gethostbyname("long.test")
t = threading.Thread(target=spin); t.start()
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        os._exit(0 if socket.gethostbyname("long.test") == first else 1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        print("child status", status)
stop = True; t.join()
print("ok", first)' 2>&1)
  assertContains "forks with a lookup running: $out" "$out" "ok 10.170.16"
  assertEquals "one AAAA question" 1 "$(queries long.test AAAA)"
}

ds_run_shunit
