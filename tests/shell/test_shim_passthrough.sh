#!/bin/bash
# The preload shim where it must change nothing: it loads into real
# programs, passes calls that are not its business through unchanged (the
# same network syscalls as without it), and traces lookups, connects and
# binds as JSON lines. Runs on the host's loopback only (127.0.0.1 and
# "localhost", which the shim leaves alone); translation is tested in a lab
# by test_shim_client.sh.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SHIM=$DS_BUILD/libdualstack-preload.so
PY=/usr/bin/python3

suite_setUp() {
  tmp=$(mktemp -d)
  # A TCP listener on 127.0.0.1 (port chosen by the kernel) that accepts
  # and closes, for the clients below.
  $PY -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
sys.stdout.close()
while True:
    c, _ = s.accept(); c.close()' > "$tmp/port" &
  srv=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.02; done
  port=$(cat "$tmp/port")
}

suite_tearDown() {
  kill "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null
  rm -rf "$tmp"
}

# Prints each trace line as "event name addr port family result" after
# checking it is one JSON object with the contract's common fields.
check_trace() {
  $PY - "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert isinstance(o["ts"], int) and o["ts"] > 1600000000000, o
    assert isinstance(o["pid"], int) and isinstance(o["id"], int), o
    if o["event"] == "lookup":
        assert isinstance(o["result"], list) and "ms" in o, o
        print("lookup", o["name"], o["family"], " ".join(o["result"]))
    elif o["event"] in ("connect", "bind"):
        print(o["event"], o.get("name", "-") or "-", o["addr"], o["port"],
              o["family"], o["result"])
    else:
        print(o["event"])
EOF
}

test_exports_only_the_interposed_libc_functions() {
  syms=$(nm -D --defined-only "$SHIM" | awk '{print $3}' | sort | tr '\n' ' ')
  # Exactly the version script's list: nothing of the library leaks.
  listed=$(sed -n '/global:/,/local:/p' shim/exports.map |
    sed -n 's/^ *\([a-z_0-9]*\);$/\1/p' | sort | tr '\n' ' ')
  assertEquals "exported symbols" "$listed" "$syms"
  # And each of them is a libc function it interposes.
  libc=$(ldd /bin/true | awk '/libc.so/ {print $3}')
  for s in $syms; do
    nm -D --defined-only "$libc" | awk '{print $3}' | sed 's/@.*//' |
      grep -qx "$s" || fail "$s is not a libc function"
  done
  for s in connect bind getaddrinfo close epoll_ctl; do
    case " $syms " in *" $s "*) ;; *) fail "$s is not interposed" ;; esac
  done
}

test_nc_traced_lookup_and_connect_share_an_id() {
  echo hi | DUALSTACK_TRACE="$tmp/t" LD_PRELOAD=$SHIM \
    nc.traditional -q 0 localhost "$port"
  assertEquals "nc exit status" 0 $?
  out=$(check_trace "$tmp/t")
  assertEquals "trace is valid JSON lines" 0 $?
  assertContains "lookup traced" "$out" "lookup localhost ipv4 127.0.0.1"
  assertContains "connect traced with the name" "$out" \
    "connect localhost 127.0.0.1 $port ipv4 ok"
  ids=$($PY -c 'import json,sys; print(len({json.loads(l)["id"] for l in open(sys.argv[1])}))' "$tmp/t")
  assertEquals "lookup and connect share one id" 1 "$ids"
}

test_python_and_perl_clients_traced() {
  DUALSTACK_TRACE="$tmp/t" LD_PRELOAD=$SHIM $PY -c '
import socket, sys
a = socket.gethostbyname("localhost")
s = socket.socket(socket.AF_INET); s.connect((a, int(sys.argv[1]))); s.close()
s = socket.socket(socket.AF_INET)
try: s.connect(("127.0.0.1", 1))
except ConnectionRefusedError: pass' "$port"
  assertEquals "python exit status" 0 $?
  DUALSTACK_TRACE="$tmp/t" LD_PRELOAD=$SHIM perl -MIO::Socket::INET -e '
my $s = IO::Socket::INET->new(PeerAddr => "localhost", PeerPort => $ARGV[0],
  Proto => "tcp") or die "connect: $@"; close $s;
my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
  Listen => 1) or die "listen: $@";' "$port"
  assertEquals "perl exit status" 0 $?
  out=$(check_trace "$tmp/t")
  assertEquals "trace is valid JSON lines" 0 $?
  assertContains "python connect" "$out" "127.0.0.1 $port ipv4 ok"
  assertContains "refused connect traced with its errno name" "$out" \
    "127.0.0.1 1 ipv4 ECONNREFUSED"
  assertContains "perl's getaddrinfo traced" "$out" \
    "lookup localhost ipv4 127.0.0.1"
  assertContains "perl's bind traced" "$out" "bind - 127.0.0.1 0 ipv4 ok"
}

test_disable_traces_nothing() {
  echo hi | DUALSTACK_DISABLE=1 DUALSTACK_TRACE="$tmp/t" LD_PRELOAD=$SHIM \
    nc.traditional -q 0 127.0.0.1 "$port"
  assertEquals "nc exit status" 0 $?
  assertFalse "no trace file" "[ -s $tmp/t ]"
}

test_trace_to_stderr() {
  err=$(DUALSTACK_TRACE=stderr LD_PRELOAD=$SHIM $PY -c '
import socket, sys
s = socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1]))); s.close()' \
    "$port" 2>&1 >/dev/null)
  assertContains "connect line on stderr" "$err" '"event":"connect"'
}

test_same_network_syscalls_with_and_without_the_shim() {
  command -v strace > /dev/null || { ds_skip "strace not installed"; return 0; }
  run() { # label, then env assignments for the shim
    env "$@" strace -f -qq -e trace=%network -o "$tmp/strace.$label" \
      nc.traditional -z 127.0.0.1 "$port"
  }
  label=without run DUALSTACK_X=1
  label=with run LD_PRELOAD=$SHIM
  label=traced run LD_PRELOAD=$SHIM DUALSTACK_TRACE="$tmp/t"
  # Strip pids and the fd numbers the calls returned.
  norm() { sed -E 's/^[0-9]+ +//; s/= [0-9]+$/= N/' "$tmp/strace.$1"; }
  assertEquals "syscalls with the shim" "$(norm without)" "$(norm with)"
  assertEquals "syscalls with the shim tracing" "$(norm without)" \
    "$(norm traced)"
  assertContains "the connect was seen" "$(norm without)" "connect("
}

test_static_busybox_runs_unharmed() {
  bb=$(command -v busybox)
  [ -n "$bb" ] || { ds_skip "busybox-static not installed"; return 0; }
  out=$(LD_PRELOAD=$SHIM DUALSTACK_TRACE="$tmp/t" "$bb" echo ok)
  assertEquals "busybox runs" "ok" "$out"
  out=$(LD_PRELOAD=$SHIM "$bb" nc -w 2 127.0.0.1 "$port" < /dev/null 2>&1; echo "rc=$?")
  assertContains "busybox nc connects" "$out" "rc=0"
}

ds_run_shunit
