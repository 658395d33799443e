#!/bin/bash
# The preload shim's races under fd pressure (docs/race.md): a name with
# 200 black-holed IPv6 addresses keeps at most 4 attempts open, so the
# application's own open() keeps working under `ulimit -n 64`; and out of
# fds, a connect to a dual-stack name with IPv6 black-holed ends fast,
# over IPv4 as the kernel's own connect would, or with EMFILE, and a
# non-blocking socket never blocks. Names come from A's hosts file (200
# addresses, more than a DNS answer holds) and the test DNS server in B.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  cat > "$LAB_TMP/dns.conf" <<'EOF2'
dual.test    A    192.0.2.2
dual.test    AAAA 2001:db8::2
warm.test    A    192.0.2.2
warm.test    AAAA 2001:db8::2
v6only.test  AAAA 2001:db8::2
v6only.test  A    NODATA
EOF2
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  local i lines=()
  for i in $(seq 1 200); do
    lines+=("$(printf '2001:db8::1:%x many.test' "$i")")
  done
  lab_hosts a "${lines[@]}"
  # Nobody owns 2001:db8::1:0/112: dropped on A's way out, every attempt
  # there hangs in SYN_SENT until its timeout.
  lab_blackhole_out a 2001:db8::1:0/112 80 tcp
  # HTTP-ish on [::]:80 and [::]:81 for both families: replies with the
  # peer it saw.
  lab_bg b $PY -c '
import socket, threading
def serve(port):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(64)
    while True:
        c, a = s.accept()
        peer = a[0][7:] if a[0].startswith("::ffff:") else a[0]
        c.sendall(("peer %s\n" % peer).encode()); c.close()
threading.Thread(target=serve, args=(81,)).start()
serve(80)'
  lab_wait_port b tcp 80
  lab_wait_port b tcp 81
  cat > "$LAB_TMP/client.py" <<'EOF2'
# client.py bound blocking|nonblocking
#   a connect to many.test runs 2 s in the background (a thread, or the
#   shim's helper thread), then the application opens 30 files.
# client.py starve blocking|nonblocking FREE [warm]
#   fills every fd but FREE (the lowest of those it filled), then connects
#   to dual.test; "warm": a non-blocking connect to warm.test:81 first
#   (the shim's helper thread then runs before fds run out).
import errno, os, select, socket, sys, threading, time
mode, how = sys.argv[1], sys.argv[2]

def finish(s, t0):
    try:
        print("peer", s.recv(100).decode().split()[1])
    except OSError as e:
        print("recv", errno.errorcode.get(e.errno, e.errno))

def nb_connect(s, addr, limit):
    s.setblocking(False)
    t0 = time.monotonic()
    rc = s.connect_ex(addr)
    print("connect", errno.errorcode.get(rc, rc) if rc else "ok",
          "%d ms" % ((time.monotonic() - t0) * 1000))
    if rc == errno.EINPROGRESS:
        select.select([], [s], [], limit)
        rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        print("so_error", errno.errorcode.get(rc, rc) if rc else "ok")
    print("ms", int((time.monotonic() - t0) * 1000))
    if rc in (0, errno.EINPROGRESS):
        s.setblocking(True)
        s.settimeout(3)
        finish(s, t0)

if mode == "bound":
    addr = (socket.gethostbyname("many.test"), 80)
    s = socket.socket(socket.AF_INET)
    if how == "blocking":
        threading.Thread(target=lambda: s.connect_ex(addr), daemon=True).start()
    else:
        s.setblocking(False)
        print("connect", errno.errorcode.get(s.connect_ex(addr)))
    time.sleep(2)
    files = []
    for i in range(30):
        try:
            files.append(open("/dev/null"))
        except OSError as e:
            print("open", errno.errorcode.get(e.errno, e.errno))
            break
    print("opened", len(files))
    sys.stdout.flush()
    os._exit(0)

free = int(sys.argv[3])
if len(sys.argv) > 4:
    w = socket.socket(socket.AF_INET)
    nb_connect(w, (socket.gethostbyname("warm.test"), 81), 5)
addr = (socket.gethostbyname("dual.test"), 80)
s = socket.socket(socket.AF_INET)
held = []
while True:
    try:
        held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        break
held.sort()
for fd in held[:free]:
    os.close(fd)
print("free", free)
if how == "blocking":
    t0 = time.monotonic()
    s.settimeout(None)
    try:
        s.connect(addr)
        print("connect ok")
    except OSError as e:
        print("connect", errno.errorcode.get(e.errno, e.errno))
    print("ms", int((time.monotonic() - t0) * 1000))
    finish(s, t0)
else:
    nb_connect(s, addr, 10)
sys.stdout.flush()
os._exit(0)
EOF2
}

suite_tearDown() {
  lab_cleanup
}

# Runs client.py ARGS... in A under `ulimit -n 64`, with the shim when
# $pre says so; for "bound", fast attempts (50 ms apart) so that 2 s is 40
# of them; else the default 250 ms, which a blocking race would wait.
client() {
  local delay=
  [ "$1" = bound ] && delay=DUALSTACK_ATTEMPT_DELAY_MS=50
  lab_run a bash -c 'ulimit -n 64; exec "$@"' - \
    env $pre $delay timeout 20 $PY "$LAB_TMP/client.py" "$@" 2>&1
}

test_application_open_works_during_a_race_to_200_blackholed_aaaa() {
  need_lab || return 0
  local pre="LD_PRELOAD=$SHIM" how out
  for how in blocking nonblocking; do
    out=$(client bound $how)
    assertContains "$how: the application opened its 30 files: $out" \
      "$out" "opened 30"
  done
}

test_emfile_blocking_dual_stack_goes_ipv4_as_without_the_shim() {
  need_lab || return 0
  local pre='' out ms
  lab_blackhole b 2001:db8::2 80 tcp
  # 0 or 1 free: no reactor for the race, the socket connects as asked;
  # 2: the reactor takes both, the race cannot start (no socket for its
  # lookup), the socket connects as asked; 3: the reactor takes 2, the
  # IPv6 attempt the last, and IPv4 takes it.
  for free in 0 1 2 3; do
    pre=''
    out=$(client starve blocking $free)
    assertContains "kernel, $free free: $out" "$out" "peer 192.0.2.1"
    pre="LD_PRELOAD=$SHIM"
    out=$(client starve blocking $free)
    ms=$(echo "$out" | sed -n 's/^ms //p')
    assertContains "shim, $free free: connected over IPv4: $out" "$out" \
      "peer 192.0.2.1"
    assertTrue "shim, $free free: ${ms} ms (< 2000)" "[ '${ms:-99999}' -lt 2000 ]"
  done
}

test_emfile_nonblocking_never_blocks_and_ends_fast() {
  need_lab || return 0
  local pre='' out ms warm free
  lab_blackhole b 2001:db8::2 80 tcp
  out=$(client starve nonblocking 0)
  assertContains "kernel: $out" "$out" "connect EINPROGRESS"
  assertContains "kernel: $out" "$out" "peer 192.0.2.1"
  for warm in '' warm; do
    for free in 0 1; do
      pre="LD_PRELOAD=$SHIM DUALSTACK_TRACE=$LAB_TMP/trace.$free$warm"
      out=$(client starve nonblocking $free $warm)
      # Raced or connected as asked, the connect is traced.
      grep -q '"event":"connect".*"name":"dual.test"' \
        "$LAB_TMP/trace.$free$warm" ||
        fail "shim $warm, $free free: no connect traced: $(cat \
          "$LAB_TMP/trace.$free$warm" 2>&1)"
      ms=$(echo "$out" | sed -n 's/^connect EINPROGRESS \([0-9]*\) ms/\1/p' |
        tail -1)
      assertContains "shim $warm, $free free: EINPROGRESS at once: $out" \
        "$out" "connect EINPROGRESS"
      # A blocking race would wait the 250 ms attempt delay for IPv4.
      assertTrue "shim $warm, $free free: connect() took ${ms} ms (< 200)" \
        "[ '${ms:-99999}' -lt 200 ]"
      ms=$(echo "$out" | sed -n 's/^ms //p' | tail -1)
      assertTrue "shim $warm, $free free: ended after ${ms} ms (< 2000): $out" \
        "[ '${ms:-99999}' -lt 2000 ]"
      case ${out#*free } in
        *"so_error EMFILE"* | *"peer 192.0.2.1"*) ;;
        *) fail "shim $warm, $free free: neither IPv4 nor EMFILE: $out" ;;
      esac
    done
  done
}

test_emfile_synthetic_name_fails_fast_with_emfile() {
  need_lab || return 0
  local pre="LD_PRELOAD=$SHIM" out ms how
  for how in blocking nonblocking; do
    out=$(lab_run a bash -c 'ulimit -n 64; exec "$@"' - env $pre timeout 20 \
      $PY -c '
import errno, os, select, socket, sys, time
addr = (socket.gethostbyname("v6only.test"), 80)
s = socket.socket(socket.AF_INET)
if sys.argv[1] == "nonblocking": s.setblocking(False)
held = []
while True:
    try: held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError: break
t0 = time.monotonic()
rc = s.connect_ex(addr)
if rc == errno.EINPROGRESS:
    select.select([], [s], [], 10)
    rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
print("result", errno.errorcode.get(rc, rc) if rc else "ok")
print("ms", int((time.monotonic() - t0) * 1000))' $how 2>&1)
    ms=$(echo "$out" | sed -n 's/^ms //p')
    assertContains "$how: $out" "$out" "result EMFILE"
    assertTrue "$how: ${ms} ms (< 2000)" "[ '${ms:-99999}' -lt 2000 ]"
  done
}

test_dualstack_connect_keeps_4_attempts_open_under_ulimit_64() {
  need_lab || return 0
  local out
  # 200 attempts 10 ms apart in 2 s: without the bound they would need
  # 200 fds; with it, every one is tried, none fails for want of a socket.
  out=$(lab_run a bash -c 'ulimit -n 64; exec "$@"' - \
    timeout 20 "$DS_BUILD/dualstack-connect" -v -z --attempt-delay 10 \
    --timeout 3 many.test 80 2>&1 </dev/null)
  assertEquals "attempts made: $(echo "$out" | tail -3)" 200 \
    "$(echo "$out" | grep -c ' attempt [0-9]* ipv6 [^ ]*$')"
  assertNotContains "no attempt ran out of fds" "$out" "EMFILE"
  assertContains "every attempt failed: $(echo "$out" | tail -3)" "$out" \
    "ETIMEDOUT"
}

test_nonblocking_fd_above_65535_never_blocks() {
  need_lab || return 0
  local pre out
  if ! lab_run a bash -c 'ulimit -n 70000' 2>/dev/null; then
    ds_skip "RLIMIT_NOFILE cannot be raised to 70000 (hard limit $(ulimit -Hn))"
    return 0
  fi
  lab_blackhole b 2001:db8::2 80 tcp
  for pre in '' "LD_PRELOAD=$SHIM"; do
    out=$(lab_run a bash -c 'ulimit -n 70000 && exec "$@"' - env $pre \
      timeout 20 $PY -c '
import errno, os, select, socket, time
for name in ("dual.test", "v6only.test"):
    try:
        addr = (socket.gethostbyname(name), 80)
    except OSError:
        print(name, "no address"); continue
    t = socket.socket(socket.AF_INET)
    fd = os.dup2(t.fileno(), 66000); t.close()
    s = socket.socket(fileno=fd)
    s.setblocking(False)
    t0 = time.monotonic()
    rc = s.connect_ex(addr)
    took = (time.monotonic() - t0) * 1000 # a blocking race: 250 ms
    if rc == errno.EINPROGRESS:
        select.select([], [s], [], 10)
        rc2 = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    else:
        rc2 = rc
    print(name, "connect", errno.errorcode.get(rc, rc) if rc else "ok",
          "took", "fast" if took < 200 else "%d ms" % took,
          "result", errno.errorcode.get(rc2, rc2) if rc2 else "ok")
    s.close()' 2>&1)
    assertContains "${pre:-kernel}: $out" "$out" \
      "dual.test connect EINPROGRESS took fast result ok"
    if [ -n "$pre" ]; then
      assertContains "shim: $out" "$out" \
        "v6only.test connect ENETUNREACH took fast result ENETUNREACH"
    fi
  done
}

ds_run_shunit
