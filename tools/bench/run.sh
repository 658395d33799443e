#!/bin/bash
# Runs every benchmark of tools/bench/ and writes tools/bench/README.md.
#
#   tools/bench/run.sh            (what `make bench` runs; needs root)
#
# Environment: DS_BUILD (build dir, default build), BENCH_ROUNDS (slices
# per contender and figure, default 15), BENCH_SLICE_MS (default 200),
# BENCH_CONNS_IDLE (default 10000), BENCH_HE_REPS (Happy Eyeballs runs per
# case and tool, default 11), BENCH_SHIM_REPS (runs per case of the shim
# benchmark, with and without the shim each, default 11), BENCH_OUT
# (report path, default tools/bench/README.md), BENCH_SHIMSRV_ROUNDS
# (slices per contender and case of the shim's server side, default twice
# BENCH_ROUNDS: five contenders on a noisy machine), BENCH_RESULTS_OUT (where
# to keep a copy of the raw results, and of the machine's description
# as BENCH_RESULTS_OUT.machine, default none), BENCH_ONLY
# (space-separated subset of: tcp udp accept he shim shimserver).
#
# How: the loopback benchmarks (TCP echo, UDP echo, accept rate) run in a
# private network namespace of the lab (tests/lab/lab.sh), so their
# TIME_WAIT sockets and sysctls never touch the shared machine. The
# servers compared in a figure all run at once, pinned to one core, and
# one load generator pinned to another core loads them in turn, a slice
# of BENCH_SLICE_MS each, BENCH_ROUNDS times, the order rotating every
# round (after a warm-up round): on a shared machine whose other work comes
# and goes, every contender then runs under the same conditions, within a
# second of the others. The report gives the median of the slices with min
# and max, and the servers' CPU time per operation. Memory is measured with
# one server at a time. The Happy Eyeballs benchmark runs in the standard
# lab pair with the test DNS server, the tools taking turns. Results are
# "SECTION CASE CONTENDER VALUE" lines (tab-separated) in a results file;
# report.py makes the README from it. The shim benchmark runs one plain
# IPv4 client (shim_client) with and without LD_PRELOAD in turn, pinned to
# one core (its server, where it has one, to the other): passthrough
# connects and hosts-file lookups in the loopback namespace, connect by
# name with IPv6 black-holed in the lab pair. The shim's server side
# (shimserver) runs a plain AF_INET server on 0.0.0.0 (legacy_server)
# with and without LD_PRELOAD at once, and its hand-written dual-stack
# twin, in the loopback namespace, loaded in slices like the benchmarks
# above: IPv4 clients to each, IPv6 clients to the shim's and the twin
# (reported as not available when they cannot connect).
set -u

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${DS_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
BIN=$BUILD/bench
ROUNDS=${BENCH_ROUNDS:-15}
SLICE=${BENCH_SLICE_MS:-200}
IDLE_CONNS=${BENCH_CONNS_IDLE:-10000}
HE_REPS=${BENCH_HE_REPS:-11}
SHIM_REPS=${BENCH_SHIM_REPS:-11}
SHIMSRV_ROUNDS=${BENCH_SHIMSRV_ROUNDS:-$((ROUNDS * 2))}
ONLY=${BENCH_ONLY:-tcp udp accept he shim shimserver}
SHIM=$BUILD/libdualstack-preload.so
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
# its "port N" line; appends to SRV_NAMES, SRV_PIDS and SRV_PORTS, and sets
# SRV_PID and SRV_PORT.
start_server() {
  local name=$1 out i
  shift
  out=$TMP/server-$name.out
  : > "$out"
  taskset -c "$SRV_CPU" "$@" > "$out" 2> "$TMP/server-$name.err" &
  SRV_PID=$!
  SRV_PORT=
  for ((i = 0; i < 500; i++)); do
    if read -r _ SRV_PORT < "$out" 2>/dev/null && [ -n "$SRV_PORT" ]; then
      SRV_NAMES+=("$name")
      SRV_PIDS+=("$SRV_PID")
      SRV_PORTS+=("$SRV_PORT")
      return 0
    fi
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.01
  done
  say "server did not start: $*"
  cat "$TMP/server-$name.err" >&2
  kill "$SRV_PID" 2>/dev/null
  wait "$SRV_PID" 2>/dev/null
  return 1
}

# Stops every server start_server started.
stop_servers() {
  local pid
  for pid in ${SRV_PIDS[@]+"${SRV_PIDS[@]}"}; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  SRV_NAMES=() SRV_PIDS=() SRV_PORTS=()
}
SRV_NAMES=() SRV_PIDS=() SRV_PORTS=()

# joined: the names and pids of the running servers, comma-separated.
names() { local IFS=,; printf '%s\n' "${SRV_NAMES[*]}"; }
pids() { local IFS=,; printf '%s\n' "${SRV_PIDS[*]}"; }

# slices SECTION CASE CMD...: runs a load generator (pinned to LOAD_CPU)
# that prints "slice ... group=NAME rate=N ... srv_us=N srv_util=N
# load_us=N" lines, and records rate as SECTION, srv_us as SECTION_cpu,
# srv_util as SECTION_util and load_us as SECTION_load. A load that fails
# is
# said, and its figures are missing from the report.
slices() {
  local section=$1 scase=$2 line w name rate us util lus round n=0
  shift 2
  while read -r line; do
    name= rate= us= util= lus= round=
    for w in $line; do
      case $w in
        round=*) round=${w#round=} ;;
        group=*) name=${w#group=} ;;
        rate=*) rate=${w#rate=} ;;
        srv_us=*) us=${w#srv_us=} ;;
        srv_util=*) util=${w#srv_util=} ;;
        load_us=*) lus=${w#load_us=} ;;
      esac
    done
    [ -n "$name" ] && [ -n "$rate" ] || continue
    record "$section" "$scase" "$name" "$rate"
    [ -n "$us" ] && record "${section}_cpu" "$scase" "$name" "$us"
    [ -n "$util" ] && record "${section}_util" "$scase" "$name" "$util"
    [ -n "$lus" ] && record "${section}_load" "$scase" "$name" "$lus"
    # Contenders are compared round by round too (their slices in a round
    # are about a second apart): SECTION_round and SECTION_round_cpu, case
    # CASE@ROUND.
    if [ -n "$round" ]; then
      record "${section}_round" "$scase@$round" "$name" "$rate"
      [ -n "$us" ] && record "${section}_round_cpu" "$scase@$round" "$name" "$us"
    fi
    n=$((n + 1))
  done < <(taskset -c "$LOAD_CPU" "$@" 2> "$TMP/load.err")
  if [ "$n" = 0 ] || [ -s "$TMP/load.err" ]; then
    say "load: $* (${n} slices): $(head -c 400 "$TMP/load.err")"
  fi
  [ "$n" -gt 0 ]
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

# Starts the three TCP echo servers on 127.0.0.1.
start_echo_servers() {
  start_server ds "$BIN/echo_ds" 127.0.0.1 &&
    start_server uv "$BIN/echo_uv" 127.0.0.1 &&
    start_server ev "$BIN/echo_ev" 127.0.0.1
}

# Prints the servers' addresses, one argument each: 127.0.0.1:PORT...
loopback_targets() {
  local p
  for p in "${SRV_PORTS[@]}"; do
    printf '127.0.0.1:%s\n' "$p"
  done
}

# ------------------------------------------------------------ TCP echo

bench_tcp() {
  local rep srv conns size out
  local -a servers=(ds uv ev)
  say "TCP echo: round trips per second ($ROUNDS slices of $SLICE ms each)"
  for conns in 1 100 1000; do
    for size in 64 16384; do
      start_echo_servers &&
        slices tcp_rtps "$conns/$size" "$BIN/echo_load" -m pingpong \
          -c "$conns" -s "$size" -t "$SLICE" -r "$ROUNDS" -n "$(names)" \
          -P "$(pids)" $(loopback_targets)
      stop_servers
    done
  done
  say "TCP echo: new connections per second"
  start_echo_servers &&
    slices tcp_cps 32/64 "$BIN/echo_load" -m conn -c 32 -s 64 \
      -t "$SLICE" -r "$ROUNDS" -n "$(names)" -P "$(pids)" $(loopback_targets)
  stop_servers
  say "TCP echo: memory per idle connection ($IDLE_CONNS connections)"
  for ((rep = 0; rep < 3; rep++)); do
    for srv in $(rotate "$rep" "${servers[@]}"); do
      start_server "$srv" "$BIN/echo_$srv" 127.0.0.1 || continue
      out=$(taskset -c "$LOAD_CPU" "$BIN/echo_load" -m idle \
        -c "$IDLE_CONNS" -s 64 -P "$SRV_PID" "127.0.0.1:$SRV_PORT")
      out=$(printf '%s\n' $out | sed -n 's/^bytes_per_conn=//p')
      if [ -n "$out" ]; then
        record tcp_mem "$IDLE_CONNS" "$srv" "$out"
      else
        say "memory: $srv failed"
      fi
      stop_servers
    done
  done
}

# ------------------------------------------------------------ UDP echo

bench_udp() {
  local size
  say "UDP echo: datagrams per second"
  for size in 64 1400; do
    start_server ds "$BIN/udp_ds" 127.0.0.1 &&
      start_server uv "$BIN/udp_uv" 127.0.0.1 &&
      start_server uvmmsg "$BIN/udp_uv" -m 127.0.0.1 &&
      slices udp_dps "$size" "$BIN/udp_load" -s "$size" -k 4 -W 16 \
        -t "$SLICE" -r "$ROUNDS" -n "$(names)" -P "$(pids)" \
        $(loopback_targets)
    stop_servers
  done
}

# ------------------------------------------------------- aggregate port

# The namespace has 192.0.2.1, 192.0.2.3, 198.51.100.1 and 198.51.100.3
# (see main): clients take them in turn, for both servers.
bench_accept() {
  local -a groups=()
  local a p g
  say "Aggregate listening port: accepts per second over 4 addresses"
  if start_server all "$BIN/accept_ds" all &&
    start_server any "$BIN/accept_ds" any; then
    for p in "${SRV_PORTS[@]}"; do
      g=
      for a in 192.0.2.1 192.0.2.3 198.51.100.1 198.51.100.3; do
        g=${g:+$g,}$a:$p
      done
      groups+=("$g")
    done
    slices accept_cps 4addr "$BIN/echo_load" -m conn -g -c 32 -t "$SLICE" \
      -r "$ROUNDS" -n "$(names)" -P "$(pids)" "${groups[@]}"
  fi
  stop_servers
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

# The warm rounds: five connects in one process (he_twice), keeping the
# last three: the cost of a name once the process is warm, and (to the
# literal) the round trip time the targets are stated in.
he_warm_round() {
  local v
  for v in $("$BIN/he_twice" -n 5 2001:db8::2 80 |
    sed -n 's/.* ms=\([0-9.]*\) .*/\1/p' | tail -n 3); do
    record he warm_literal6 ds "$v"
  done
  for v in $("$BIN/he_twice" -n 5 both.test 80 |
    sed -n 's/.* ms=\([0-9.]*\) .*/\1/p' | tail -n 3); do
    record he warm_both ds "$v"
  done
}

# Runs inside the lab pair (in A), with dnsd on B answering the names.
bench_he_inside() {
  local rep
  "$LAB_SH" bg "$LAB_NS_B" -o "$LAB_TMP/http.log" "$BIN/http_ok" 80 \
    > /dev/null || return
  "$LAB_SH" wait-port "$LAB_NS_B" tcp 80 || return
  # Not recorded: fills the neighbour caches and wakes dnsd, so the first
  # recorded run pays for nothing the others do not.
  ds_connect_ms both.test > /dev/null
  ds_connect_ms 192.0.2.2 > /dev/null
  curl_ms http://both.test/ > /dev/null
  for ((rep = 0; rep < HE_REPS; rep++)); do
    he_round "$rep" literal6 2001:db8::2 '[2001:db8::2]'
    he_round "$rep" literal4 192.0.2.2 192.0.2.2
    he_round "$rep" both both.test both.test
    he_round "$rep" aaaa_late late.test late.test
    he_warm_round
  done
  "$LAB_SH" blackhole "$LAB_NS_B" 2001:db8::2 80 tcp || return
  for ((rep = 0; rep < HE_REPS; rep++)); do
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

# ------------------------------------------------------------ the shim

# shim_run bare|shim CMD...: runs CMD pinned to LOAD_CPU, with the shim
# preloaded or not.
shim_run() {
  local how=$1
  shift
  if [ "$how" = shim ]; then
    taskset -c "$LOAD_CPU" env LD_PRELOAD="$SHIM" "$@"
  else
    taskset -c "$LOAD_CPU" "$@"
  fi
}

# Inside the loopback namespace (local_inside), whose hosts file names
# bench.test (192.0.2.1): 20,000 connect+close to a 127.0.0.1 literal
# (echo_ds on the other core), and getaddrinfo(AF_INET) of bench.test,
# the first of a process and 2,000 repeats, with and without the shim.
# Round 0 of each warms up and is not recorded.
bench_shim_local() {
  local rep how out v
  say "Shim: passthrough connects and hosts-file lookups, with and without"
  start_server ds "$BIN/echo_ds" 127.0.0.1 || return
  for ((rep = 0; rep <= SHIM_REPS; rep++)); do
    for how in $(rotate "$rep" bare shim); do
      out=$(shim_run "$how" "$BIN/shim_client" conn -n 20000 127.0.0.1 \
        "$SRV_PORT") || { say "shim conn ($how) failed: $out"; continue; }
      v=$(printf '%s\n' $out | sed -n 's/^per_op_us=//p')
      if [ "$rep" -gt 0 ] && [ -n "$v" ]; then
        record shim_conn 20000 "$how" "$v"
        # Compared run by run too (the two runs of a round are adjacent).
        record shim_conn_round "20000@$rep" "$how" "$v"
      fi
    done
  done
  stop_servers
  for ((rep = 0; rep <= SHIM_REPS; rep++)); do
    for how in $(rotate "$rep" bare shim); do
      out=$(shim_run "$how" "$BIN/shim_client" gai -n 2000 bench.test) ||
        { say "shim gai ($how) failed: $out"; continue; }
      [ "$rep" -gt 0 ] || continue
      for v in $out; do
        case $v in
          first_us=*) record shim_gai first "$how" "${v#first_us=}" ;;
          repeat_us=*) record shim_gai repeat "$how" "${v#repeat_us=}" ;;
        esac
      done
    done
  done
}

# Inside the lab pair (in A), dnsd on B answering both.test with
# 192.0.2.2 and 2001:db8::2, http_ok on B port 80, TCP to [2001:db8::2]:80
# dropped on B: getaddrinfo(AF_INET) + connect twice in one process, with
# and without the shim (without it the program never tries IPv6).
bench_shim_inside() {
  local rep how out n v
  pick_cores
  "$LAB_SH" bg "$LAB_NS_B" -o "$LAB_TMP/http.log" "$BIN/http_ok" 80 \
    > /dev/null || return
  "$LAB_SH" wait-port "$LAB_NS_B" tcp 80 || return
  "$LAB_SH" blackhole "$LAB_NS_B" 2001:db8::2 80 tcp || return
  for ((rep = 0; rep <= SHIM_REPS; rep++)); do
    for how in $(rotate "$rep" bare shim); do
      out=$(shim_run "$how" "$BIN/shim_client" name -n 2 both.test 80) ||
        { say "shim name ($how) failed: $out"; continue; }
      [ "$rep" -gt 0 ] || continue
      while read -r _ n v; do
        v=${v#ms=}
        case $n in
          1) record shim_name first "$how" "$v" ;;
          2) record shim_name second "$how" "$v" ;;
        esac
      done <<< "$out"
    done
  done
  "$LAB_SH" unfilter "$LAB_NS_B"
}

bench_shim() {
  local conf=$TMP/dns-shim.conf
  say "Shim: connect by name with IPv6 black-holed (lab pair, dnsd)"
  cat > "$conf" <<'EOF'
both.test  A     192.0.2.2
both.test  AAAA  2001:db8::2
EOF
  "$TOP/tests/lab/lab.sh" run-pair --dns "$conf" -- \
    env BENCH_RESULTS="$RESULTS" BENCH_TMP="$TMP" bash "$0" shim-inside
}

# ------------------------------------------------ the shim, server side

# shimsrv_reach TARGET ARGS...: one short connection-rate slice of one
# connection to TARGET (ARGS: -g or -s 64, what the server speaks); true
# when a connection completed. Keeps a run whose IPv6 clients cannot
# connect (a shim that does not widen the listener) from failing.
shimsrv_reach() {
  local target=$1 out
  shift
  out=$(taskset -c "$LOAD_CPU" "$BIN/echo_load" -m conn -c 1 -t 50 -r 1 \
    "$@" "$target" 2>/dev/null)
  out=${out##*rate=}
  out=${out%% *}
  [ -n "$out" ] && [ "$out" -gt 0 ] 2>/dev/null
}

# shimsrv_peers CASE NAME: records what server NAME (stopped, its summary
# line on stderr) saw of its peers: AF_INET ones in 127/8 and in the
# shim's source pool, and any that were not AF_INET.
shimsrv_peers() {
  local scase=$1 name=$2 line w
  line=$(grep '^accepted=' "$TMP/server-$name.err" | tail -n 1)
  [ -n "$line" ] || { say "shim server side: no summary from $name"; return; }
  say "shim server side, $scase, $name: $line"
  for w in $line; do
    case $w in
      accepted=* | loopback=* | srcpool=* | other_family=*)
        record shimsrv_peers "$scase" "$name:${w%%=*}" "${w#*=}" ;;
    esac
  done
}

# The shim's server side (part 6): legacy_server (AF_INET, 0.0.0.0) runs
# twice at once on the server core, as is and with the shim preloaded,
# and beside them its hand-written dual-stack twin (AF_INET6, [::],
# V6ONLY 0: what the shim makes of the socket, without the shim); one
# echo_load on the load core takes turns, a slice each: IPv4 clients
# (127.0.0.1) to the plain server (bare), IPv4 clients to the shim's
# (shim4), IPv6 clients ([::1]) to the shim's (shim6), the last only when
# a probe connects (otherwise recorded as not available), and IPv4 and
# IPv6 clients to the twin (ref4, ref6: how much of a difference is the
# kernel's dual-stack socket rather than the shim). Three cases:
# accepts (32 connections at a time, connect, read the greeting, close),
# 64-byte round trips on 1 and on 100 connections.
bench_shimserver() {
  local what mode scase pb ps
  local -a load probe names pids targets
  say "Shim, server side: a legacy 0.0.0.0 server, IPv4 clients without" \
    "and with the shim, IPv6 clients with it"
  for what in accept rt1 rt100; do
    case $what in
      accept) mode=accept scase=accept load=(-m conn -g -c 32) probe=(-g) ;;
      rt1) mode=echo scase=64/1 load=(-m pingpong -s 64 -c 1) probe=(-s 64) ;;
      rt100) mode=echo scase=64/100 load=(-m pingpong -s 64 -c 100)
        probe=(-s 64) ;;
    esac
    if ! start_server bare "$BIN/legacy_server" "$mode"; then
      stop_servers
      continue
    fi
    pb=$SRV_PORT
    if ! start_server shim env LD_PRELOAD="$SHIM" "$BIN/legacy_server" \
      "$mode"; then
      stop_servers
      continue
    fi
    ps=$SRV_PORT
    if ! start_server ref "$BIN/legacy_server" "${mode}6"; then
      stop_servers
      continue
    fi
    names=(bare shim4 ref4 ref6)
    pids=("${SRV_PIDS[0]}" "${SRV_PIDS[1]}" "${SRV_PIDS[2]}" "${SRV_PIDS[2]}")
    targets=("127.0.0.1:$pb" "127.0.0.1:$ps" "127.0.0.1:$SRV_PORT"
      "[::1]:$SRV_PORT")
    if shimsrv_reach "[::1]:$ps" "${probe[@]}"; then
      names+=(shim6) pids+=("${SRV_PIDS[1]}") targets+=("[::1]:$ps")
    else
      say "shim server side, $scase: IPv6 clients cannot connect to the" \
        "shim's server ([::1]:$ps): not available"
      record shimsrv_na "$scase" shim6 1
    fi
    # Without the shim, IPv6 clients must find nothing there.
    if shimsrv_reach "[::1]:$pb" "${probe[@]}"; then
      record shimsrv_v6bare "$scase" bare 1
    else
      record shimsrv_v6bare "$scase" bare 0
    fi
    slices shimsrv "$scase" "$BIN/echo_load" "${load[@]}" -t "$SLICE" \
      -r "$SHIMSRV_ROUNDS" -n "$(IFS=,; echo "${names[*]}")" \
      -P "$(IFS=,; echo "${pids[*]}")" "${targets[@]}"
    stop_servers
    shimsrv_peers "$scase" bare
    shimsrv_peers "$scase" shim
    shimsrv_peers "$scase" ref
  done
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
      shim) bench_shim_local ;;
      shimserver) bench_shimserver ;;
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
  printf 'rounds\t%s\n' "$ROUNDS"
  printf 'slice\t%s\n' "$SLICE"
  printf 'idle\t%s\n' "$IDLE_CONNS"
  printf 'he_reps\t%s\n' "$HE_REPS"
  printf 'shim_reps\t%s\n' "$SHIM_REPS"
  printf 'shimsrv_rounds\t%s\n' "$SHIMSRV_ROUNDS"
}

main() {
  local setup want local_wanted='' start
  if [ "$(id -u)" != 0 ]; then
    say "needs root (network namespaces for the lab); run as root"
    exit 77
  fi
  for f in echo_ds echo_uv echo_ev echo_load udp_ds udp_uv udp_load \
    accept_ds http_ok he_twice shim_client legacy_server; do
    [ -x "$BIN/$f" ] || { say "$BIN/$f not built: run make bench"; exit 70; }
  done
  start=$(date +%s)
  TMP=$(mktemp -d /tmp/dsbench.XXXXXX)
  trap 'rm -rf "$TMP"' EXIT
  RESULTS=$TMP/results.tsv
  : > "$RESULTS"
  export BENCH_RESULTS=$RESULTS BENCH_TMP=$TMP
  for want in $ONLY; do
    case $want in tcp | udp | accept | shim | shimserver) local_wanted=1 ;; esac
  done
  if [ -n "$local_wanted" ]; then
    # s: the server namespace, with four IPv4 addresses (and one IPv6) on
    # a veth to an empty peer p. Closed connections keep no TIME_WAIT
    # there: the connection-rate runs open some 100,000 connections to a
    # handful of addresses, and a client searching for a free port would
    # otherwise become what is measured.
    setup='lab_ns s p && lab_link s p &&
      lab_addr s "$LAB_LINK_IF1" 192.0.2.1/24 192.0.2.3/24 198.51.100.1/24 \
        198.51.100.3/24 2001:db8::1/64 &&
      lab_run s sysctl -q -w net.ipv4.tcp_tw_reuse=1 \
        net.ipv4.tcp_max_tw_buckets=0 &&
      lab_hosts s "192.0.2.1 bench.test"'
    "$TOP/tests/lab/lab.sh" run --setup "$setup" --in s -- \
      env BENCH_RESULTS="$RESULTS" BENCH_TMP="$TMP" bash "$0" local-inside ||
      say "the loopback benchmarks failed (status $?)"
  fi
  case " $ONLY " in *" he "*) bench_he || say "Happy Eyeballs failed" ;; esac
  case " $ONLY " in *" shim "*) bench_shim || say "shim (lab pair) failed" ;; esac
  pick_cores
  machine_info > "$TMP/machine.tsv"
  printf 'seconds\t%s\n' "$(($(date +%s) - start))" >> "$TMP/machine.tsv"
  $PY "$TOP/tools/bench/report.py" "$RESULTS" "$TMP/machine.tsv" \
    > "$TMP/README.md" || exit 70
  cp "$TMP/README.md" "${BENCH_OUT:-$TOP/tools/bench/README.md}"
  if [ -n "${BENCH_RESULTS_OUT:-}" ]; then
    cp "$RESULTS" "$BENCH_RESULTS_OUT"
    cp "$TMP/machine.tsv" "$BENCH_RESULTS_OUT.machine"
  fi
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
  shim-inside)
    RESULTS=$BENCH_RESULTS TMP=$BENCH_TMP
    bench_shim_inside ;;
  *) echo "usage: tools/bench/run.sh" >&2; exit 64 ;;
esac
