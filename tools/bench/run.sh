#!/bin/bash
# Runs every benchmark of tools/bench/ and writes tools/bench/README.md.
#
#   tools/bench/run.sh            (what `make bench` runs; needs root)
#
# Environment: DS_BUILD (build dir, default build), BENCH_REPS (runs of each
# figure per contender, default 5), BENCH_MS (measured window of one run,
# default 700), BENCH_WARMUP_MS (default 200), BENCH_CONNS_IDLE (default
# 10000), BENCH_OUT (report path, default tools/bench/README.md),
# BENCH_ONLY (space-separated subset of: tcp udp accept he).
#
# How: the loopback benchmarks (TCP echo, UDP echo, accept rate) run in a
# private network namespace of the lab (tests/lab/lab.sh), so their
# TIME_WAIT sockets and sysctls never touch the shared machine; the server
# is pinned to one core and the load generator to another (taskset); every
# figure is measured BENCH_REPS times per contender, the contenders taking
# turns (the order rotates each round), and the report gives the median
# with min and max. The Happy Eyeballs benchmark runs in the standard lab
# pair with the test DNS server. Each run appends "SECTION CASE CONTENDER
# VALUE" lines (tab-separated) to a results file; report.py makes the
# README from it.
set -u

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${DS_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
BIN=$BUILD/bench
REPS=${BENCH_REPS:-5}
MS=${BENCH_MS:-700}
WARMUP=${BENCH_WARMUP_MS:-200}
IDLE_CONNS=${BENCH_CONNS_IDLE:-10000}
ONLY=${BENCH_ONLY:-tcp udp accept he}
PY=/usr/bin/python3 # Debian's, whatever python3 is on PATH
export DS_BUILD=$BUILD

say() { printf '%s\n' "bench: $*" >&2; }

# Appends one result line.
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RESULTS"; }

# Picks the cores: the server gets the first allowed one, the load the
# second (with one core both share it, and the report says so).
pick_cores() {
  local list
  list=$(taskset -pc $$ 2>/dev/null | sed 's/.*: //')
  list=$($PY -c '
import sys
cpus = []
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    cpus += range(int(a), int(b or a) + 1)
print(" ".join(map(str, cpus)))' "$list") || list=0
  set -- $list
  SRV_CPU=$1
  LOAD_CPU=${2:-$1}
}

# start_server NAME CMD...: starts a server pinned to SRV_CPU and waits for
# its "port N" line; sets SRV_PID and SRV_PORT.
start_server() {
  local out=$TMP/server.out i
  shift
  : > "$out"
  taskset -c "$SRV_CPU" "$@" > "$out" 2> "$TMP/server.err" &
  SRV_PID=$!
  for ((i = 0; i < 500; i++)); do
    read -r _ SRV_PORT < "$out" 2>/dev/null && [ -n "${SRV_PORT:-}" ] &&
      return 0
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.01
  done
  say "server did not start: $*"
  cat "$TMP/server.err" >&2
  return 1
}

stop_server() {
  kill "$SRV_PID" 2>/dev/null
  wait "$SRV_PID" 2>/dev/null
  SRV_PID=
}

# load KEY CMD...: runs a load generator pinned to LOAD_CPU and prints the
# value of KEY=VALUE from its output (nothing on failure). A run that fails
# is tried once more: the machine is shared, and one stall of the server
# must not lose a figure.
load() {
  local key=$1 out try
  shift
  for try in 1 2; do
    out=$(taskset -c "$LOAD_CPU" "$@" 2> "$TMP/load.err")
    out=$(printf '%s\n' "$out" | tr ' ' '\n' | sed -n "s/^$key=//p")
    if [ -n "$out" ] && [ "$out" != 0 ]; then
      printf '%s\n' "$out"
      return 0
    fi
    say "load failed (try $try): $* $(head -c 300 "$TMP/load.err")"
  done
  return 1
}

# rotate N ITEMS...: prints ITEMS rotated left by N (the order of a round).
rotate() {
  local n=$1
  shift
  local -a a=("$@")
  local i k=${#a[@]}
  for ((i = 0; i < k; i++)); do
    printf '%s\n' "${a[(i + n) % k]}"
  done
}

# ------------------------------------------------------------ TCP echo

bench_tcp() {
  local rep srv conns size v
  local -a servers=(ds uv ev)
  say "TCP echo: round trips per second (${REPS} runs of ${MS} ms each)"
  for conns in 1 100 1000; do
    for size in 64 16384; do
      for ((rep = 0; rep < REPS; rep++)); do
        for srv in $(rotate "$rep" "${servers[@]}"); do
          start_server "$srv" "$BIN/echo_$srv" 127.0.0.1 || continue
          v=$(load rtps "$BIN/echo_load" -m pingpong -c "$conns" -s "$size" \
            -w "$WARMUP" -d "$MS" "127.0.0.1:$SRV_PORT") &&
            record tcp_rtps "$conns/$size" "$srv" "$v"
          stop_server
        done
      done
    done
  done
  say "TCP echo: new connections per second"
  for ((rep = 0; rep < REPS; rep++)); do
    for srv in $(rotate "$rep" "${servers[@]}"); do
      start_server "$srv" "$BIN/echo_$srv" 127.0.0.1 || continue
      v=$(load cps "$BIN/echo_load" -m conn -c 32 -s 64 -b 250 \
        -w "$WARMUP" -d "$MS" "127.0.0.1:$SRV_PORT") &&
        record tcp_cps 32/64 "$srv" "$v"
      stop_server
    done
  done
  say "TCP echo: memory per idle connection ($IDLE_CONNS connections)"
  for ((rep = 0; rep < 3; rep++)); do
    for srv in $(rotate "$rep" "${servers[@]}"); do
      start_server "$srv" "$BIN/echo_$srv" 127.0.0.1 || continue
      v=$(load bytes_per_conn "$BIN/echo_load" -m idle -c "$IDLE_CONNS" \
        -s 64 -b 250 -P "$SRV_PID" "127.0.0.1:$SRV_PORT") &&
        record tcp_mem "$IDLE_CONNS" "$srv" "$v"
      stop_server
    done
  done
}

# ------------------------------------------------------------ UDP echo

bench_udp() {
  local rep srv size v
  local -a servers=(ds uv uvmmsg)
  say "UDP echo: datagrams per second"
  for size in 64 1400; do
    for ((rep = 0; rep < REPS; rep++)); do
      for srv in $(rotate "$rep" "${servers[@]}"); do
        case $srv in
          uvmmsg) start_server "$srv" "$BIN/udp_uv" -m 127.0.0.1 ;;
          *) start_server "$srv" "$BIN/udp_$srv" 127.0.0.1 ;;
        esac || continue
        v=$(load dps "$BIN/udp_load" -s "$size" -k 4 -W 16 -w "$WARMUP" \
          -d "$MS" "127.0.0.1:$SRV_PORT") &&
          record udp_dps "$size" "$srv" "$v"
        stop_server
      done
    done
  done
}

# ------------------------------------------------------- aggregate port

# The namespace has 192.0.2.1, 192.0.2.3, 198.51.100.1 and 198.51.100.3
# (see main): clients take them in turn, for both servers.
bench_accept() {
  local rep srv v
  local -a servers=(all any) targets
  say "Aggregate listening port: accepts per second over 4 addresses"
  for ((rep = 0; rep < REPS; rep++)); do
    for srv in $(rotate "$rep" "${servers[@]}"); do
      start_server "$srv" "$BIN/accept_ds" "$srv" || continue
      targets=()
      for a in 192.0.2.1 192.0.2.3 198.51.100.1 198.51.100.3; do
        targets+=("$a:$SRV_PORT")
      done
      v=$(load cps "$BIN/echo_load" -m conn -g -c 32 -w "$WARMUP" -d "$MS" \
        "${targets[@]}") && record accept_cps 4addr "$srv" "$v"
      stop_server
    done
  done
}

# -------------------------------------------------------- Happy Eyeballs

# Prints the milliseconds to "connected" from dualstack-connect -v.
ds_connect_ms() {
  "$BUILD/dualstack-connect" -v -z "$1" 80 2>&1 >/dev/null |
    sed -n 's/^+\([0-9.]*\) attempt .* -> connected$/\1/p'
}

# curl_ms URL...: one transfer per URL in one curl process; prints each
# transfer's time to connected in ms (its own Happy Eyeballs, lookup
# included: time_connect counts from the transfer's start).
curl_ms() {
  curl -s -o /dev/null -w '%{time_connect}\n' "$@" |
    awk '{ printf "%.3f\n", $1 * 1000 }'
}

# py_ms HOST COUNT: COUNT asyncio create_connection() calls in one process
# (Debian's Python), each timed from the call to the connected socket.
py_ms() {
  $PY -I -S -c '
import asyncio, sys, time
host, count = sys.argv[1], int(sys.argv[2])
async def main():
    loop = asyncio.get_running_loop()
    for _ in range(count):
        t = time.monotonic()
        tr, _ = await loop.create_connection(
            asyncio.Protocol, host, 80, happy_eyeballs_delay=0.25)
        print("%.3f" % ((time.monotonic() - t) * 1e3), flush=True)
        tr.close()
asyncio.run(main())' "$1" "$2"
}

# he_round REP CASE HOST URLHOST: one run of each tool for CASE, in turn.
he_round() {
  local rep=$1 tool v
  shift
  local scase=$1 host=$2 urlhost=$3
  for tool in $(rotate "$rep" ds curl python); do
    case $tool in
      ds) v=$(ds_connect_ms "$host") ;;
      curl) v=$(curl_ms "http://$urlhost/") ;;
      python) v=$(py_ms "$host" 1) ;;
    esac
    [ -n "$v" ] && record he "$scase" "$tool" "$v" ||
      say "Happy Eyeballs: $tool failed for $scase"
  done
}

# The black-holed rounds: the first connect, and a second one in the same
# process (dualstack: he_twice with a family memory).
he_blackhole_round() {
  local rep=$1 tool out v
  for tool in $(rotate "$rep" ds curl python); do
    case $tool in
      ds) out=$("$BIN/he_twice" -n 2 both.test 80 |
        sed -n 's/.* ms=\([0-9.]*\) .*/\1/p') ;;
      curl) out=$(curl_ms http://both.test/ http://both.test/again) ;;
      python) out=$(py_ms both.test 2) ;;
    esac
    set -- $out
    if [ $# -ne 2 ]; then
      say "Happy Eyeballs: $tool failed with IPv6 black-holed"
      continue
    fi
    record he second "$tool" "$2"
    # dualstack-connect measures the first connect (below); he_twice's
    # first is the same race, kept apart as a cross-check.
    if [ "$tool" = ds ]; then
      record he blackhole_he_twice ds "$1"
    else
      record he blackhole "$tool" "$1"
    fi
  done
  v=$(ds_connect_ms both.test)
  [ -n "$v" ] && record he blackhole ds "$v"
}

# Runs inside the lab pair (in A), with dnsd on B answering the names.
bench_he_inside() {
  local rep port
  "$LAB_SH" bg "$LAB_NS_B" -o "$LAB_TMP/http.log" "$BIN/http_ok" 80 \
    > /dev/null || return
  "$LAB_SH" wait-port "$LAB_NS_B" tcp 80 || return
  for ((rep = 0; rep < REPS; rep++)); do
    he_round "$rep" literal6 2001:db8::2 '[2001:db8::2]'
    he_round "$rep" literal4 192.0.2.2 192.0.2.2
    he_round "$rep" both both.test both.test
    he_round "$rep" aaaa_late late.test late.test
  done
  "$LAB_SH" blackhole "$LAB_NS_B" 2001:db8::2 80 tcp || return
  for ((rep = 0; rep < REPS; rep++)); do
    he_blackhole_round "$rep"
  done
  "$LAB_SH" unfilter "$LAB_NS_B"
}

bench_he() {
  local conf=$TMP/dns.conf
  say "Happy Eyeballs: time to connected (lab pair, dnsd)"
  cat > "$conf" <<'EOF'
both.test  A     192.0.2.2
both.test  AAAA  2001:db8::2
late.test  A     192.0.2.2
late.test  AAAA  2001:db8::2   delay=20
EOF
  "$TOP/tests/lab/lab.sh" run-pair --dns "$conf" -- \
    env BENCH_RESULTS="$RESULTS" BENCH_TMP="$TMP" bash "$0" he-inside
}

# ---------------------------------------------------------------- main

# Inside the private namespace: the loopback benchmarks.
local_inside() {
  local want
  ulimit -n "$(ulimit -Hn)" 2>/dev/null
  if [ "$(ulimit -n)" -lt $((IDLE_CONNS + 64)) ]; then
    IDLE_CONNS=$(($(ulimit -n) - 64))
    say "fd limit $(ulimit -n): idle connections lowered to $IDLE_CONNS"
  fi
  pick_cores
  for want in $ONLY; do
    case $want in
      tcp) bench_tcp ;;
      udp) bench_udp ;;
      accept) bench_accept ;;
    esac
  done
}

machine_info() {
  local model
  model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  printf 'cpu\t%s\n' "${model:-unknown}"
  printf 'cores\t%s\n' "$(nproc)"
  printf 'kernel\t%s\n' "$(uname -sr)"
  printf 'mem\t%s\n' "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' \
    /proc/meminfo)"
  printf 'load\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'libuv\t%s\n' "$(pkg-config --modversion libuv 2>/dev/null)"
  printf 'libevent\t%s\n' "$(pkg-config --modversion libevent 2>/dev/null)"
  printf 'curl\t%s\n' "$(curl --version | head -n 1 | cut -d' ' -f1-2)"
  printf 'python\t%s\n' "$($PY --version 2>&1)"
  printf 'cc\t%s\n' "$(${CC:-cc} --version | head -n 1)"
  printf 'commit\t%s\n' "$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null)"
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'cpus\t%s\n' "server $SRV_CPU, load $LOAD_CPU"
  printf 'reps\t%s\n' "$REPS"
  printf 'ms\t%s\n' "$MS"
  printf 'warmup\t%s\n' "$WARMUP"
  printf 'idle\t%s\n' "$IDLE_CONNS"
}

main() {
  local setup want local_wanted='' start
  if [ "$(id -u)" != 0 ]; then
    say "needs root (network namespaces for the lab); run as root"
    exit 77
  fi
  for f in echo_ds echo_uv echo_ev echo_load udp_ds udp_uv udp_load \
    accept_ds http_ok he_twice; do
    [ -x "$BIN/$f" ] || { say "$BIN/$f not built: run make bench"; exit 70; }
  done
  start=$(date +%s)
  TMP=$(mktemp -d /tmp/dsbench.XXXXXX)
  trap 'rm -rf "$TMP"' EXIT
  RESULTS=$TMP/results.tsv
  : > "$RESULTS"
  export BENCH_RESULTS=$RESULTS BENCH_TMP=$TMP
  for want in $ONLY; do
    case $want in tcp | udp | accept) local_wanted=1 ;; esac
  done
  if [ -n "$local_wanted" ]; then
    # s: the server namespace, with four IPv4 addresses (and one IPv6) on
    # a veth to an empty peer p; TIME_WAIT ports are reused after a second,
    # as the connection-rate runs need.
    setup='lab_ns s p && lab_link s p &&
      lab_addr s "$LAB_LINK_IF1" 192.0.2.1/24 192.0.2.3/24 198.51.100.1/24 \
        198.51.100.3/24 2001:db8::1/64 &&
      lab_run s sysctl -q -w net.ipv4.tcp_tw_reuse=1'
    "$TOP/tests/lab/lab.sh" run --setup "$setup" --in s -- \
      env BENCH_RESULTS="$RESULTS" BENCH_TMP="$TMP" bash "$0" local-inside ||
      say "the loopback benchmarks failed (status $?)"
  fi
  case " $ONLY " in *" he "*) bench_he || say "Happy Eyeballs failed" ;; esac
  pick_cores
  machine_info > "$TMP/machine.tsv"
  printf 'seconds\t%s\n' "$(($(date +%s) - start))" >> "$TMP/machine.tsv"
  $PY "$TOP/tools/bench/report.py" "$RESULTS" "$TMP/machine.tsv" \
    > "$TMP/README.md" || exit 70
  cp "$TMP/README.md" "${BENCH_OUT:-$TOP/tools/bench/README.md}"
  cat "$TMP/README.md"
}

case ${1:-all} in
  all) main ;;
  local-inside)
    RESULTS=$BENCH_RESULTS TMP=$BENCH_TMP
    local_inside ;;
  he-inside)
    RESULTS=$BENCH_RESULTS TMP=$BENCH_TMP
    bench_he_inside ;;
  *) echo "usage: tools/bench/run.sh" >&2; exit 64 ;;
esac
