#!/bin/bash
# The corpus: real Debian programs run without and with the shim in labs,
# judged by what the programs did (tests/corpus/README.md).
#
#   tests/corpus/run.sh [NAME...]     all of programs.txt, or only NAMEs
#
# Environment: DS_BUILD (build dir, default build), CORPUS_JOBS (parallel
# labs, default 3), CORPUS_SLACK_MS (allowed extra on the IPv4-only name's
# median beyond the 20 ms target, default 100), CORPUS_RUNS (runs per side
# on the IPv4-only name, default 5), CORPUS_TRACE=1 (shim traces
# in the work dir, kept with CORPUS_KEEP=1).
# Exit status: 0 when every outcome is the one programs.txt records, 1
# otherwise, 77 when the lab cannot run (not root, not built).
set -u

CORPUS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$CORPUS_DIR/../.." && pwd)
DS_BUILD=${DS_BUILD:-build}
case $DS_BUILD in /*) ;; *) DS_BUILD=$TOP/$DS_BUILD ;; esac
export DS_BUILD
SHIM=$DS_BUILD/libdualstack-preload.so
JOBS=${CORPUS_JOBS:-3}
SLACK_MS=${CORPUS_SLACK_MS:-100}
TARGET_MS=20
RUNS=${CORPUS_RUNS:-5} # runs per side on the IPv4-only name (median)
TMO=3          # every run's cap, seconds (the black-holed IPv4 hangs this long)
FAST_MS=2000   # a black-holed dual-stack name must be done within this

# shellcheck source=../lab/lab.sh
. "$TOP/tests/lab/lab.sh"
# shellcheck source=programs.sh
. "$CORPUS_DIR/programs.sh"

POOL_RE='172\.21\.(11[2-9]|12[0-7])\.[0-9]+'

# ------------------------------------------------------------- the lab
# Client namespace A (192.0.2.1, 2001:db8::1), server namespace B
# (192.0.2.2 and 2001:db8::2; 192.0.2.3 and 2001:db8::3 black-holed).
# Names (A resolves through dnsd on B, and its hosts file):
#   v6only.test  AAAA 2001:db8::2                      (DNS)
#   bh6.test     AAAA 2001:db8::3 (black hole), A 192.0.2.2   (DNS)
#   bh4.test     AAAA 2001:db8::2, A 192.0.2.3 (black hole)   (hosts file)
#   v4only.test  A 192.0.2.2                           (DNS)
# B's hosts file names the clients: client6.test 2001:db8::1, client4.test
# 192.0.2.1 (servers that look their peers up find these names).
worker_lab() {
  lab_pair || return
  lab_addr b "$LAB_IF_B" 192.0.2.3/24 2001:db8::3/64 || return
  lab_blackhole b 192.0.2.3 || return
  lab_blackhole b 2001:db8::3 || return
  lab_hosts a "2001:db8::2 bh4.test" "192.0.2.3 bh4.test" || return
  lab_hosts b "2001:db8::1 client6.test" "192.0.2.1 client4.test" || return
  cat > "$WD/dns.conf" <<'EOF'
v6only.test  AAAA  2001:db8::2
bh6.test     AAAA  2001:db8::3
bh6.test     A     192.0.2.2
v4only.test  A     192.0.2.2
EOF
  lab_dns b 192.0.2.2 "$WD/dns.conf" "$WD/dns.log" a > /dev/null || return
  KEEP_PIDS=$LAB_DNS_PID SERVER_PIDS=
  lab_bg b "$PY" -I -u "$CORPUS_DIR/testsrv.py" "$CORPUS_CERT" "$CORPUS_KEY" \
    > "$WD/testsrv.out" 2>&1
  KEEP_PIDS="$KEEP_PIDS $LAB_PID"
  local i
  for ((i = 0; i < 250; i++)); do
    grep -q ready "$WD/testsrv.out" && return 0
    sleep 0.02
  done
  cat "$WD/testsrv.out" >&2
  return 1
}

# X CMD...: runs CMD in A, with the shim when SHIMON=1, under the cap;
# leaves "STATUS MS" in $WD/x.last.
X() {
  local t0 t1 rc
  local -a pre=(env -u LD_PRELOAD)
  [ "$SHIMON" = 1 ] && pre=(env "LD_PRELOAD=$SHIM" $TRACE_ENV)
  t0=$EPOCHREALTIME
  timeout -k 1 "$TMO" ip netns exec "$LAB_NS_A" "${pre[@]}" "$@"
  rc=$?
  t1=$EPOCHREALTIME
  echo "$rc $(((${t1/./} - ${t0/./}) / 1000))" > "$WD/x.last"
  return $rc
}

# XS CMD...: starts the server CMD in B (with the shim when SHIMON=1),
# output to $SLOG; its pid in LAB_PID.
XS() {
  local -a pre=(env -u LD_PRELOAD)
  [ "$SHIMON" = 1 ] && pre=(env "LD_PRELOAD=$SHIM" $TRACE_ENV)
  lab_bg b "${pre[@]}" "$@" > "$SLOG" 2>&1
  SERVER_PIDS="$SERVER_PIDS $LAB_PID"
}

# Kills every process in B but dnsd and testsrv.
stop_servers() {
  local p keep pids i
  for ((i = 0; i < 100; i++)); do
    pids=
    for p in $(ip netns pids "$LAB_NS_B"); do
      keep=
      for k in $KEEP_PIDS; do [ "$p" = "$k" ] && keep=1; done
      [ -n "$keep" ] || pids="$pids $p"
    done
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    if [ "$i" -lt 50 ]; then kill -TERM $pids 2>/dev/null
    else kill -KILL $pids 2>/dev/null; fi
    sleep 0.05
  done
  for p in $SERVER_PIDS; do wait "$p" 2>/dev/null; done
  SERVER_PIDS=
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }

# classify OUTPUT STATUS: ok6, ok4, ok (marker without family), hang, fail:N
classify() {
  local tok
  tok=$(grep -oE 'corpus-ok[ _-]ipv[46]' <<< "$1" | head -n 1)
  case $tok in
    *ipv6) echo ok6 ;;
    *ipv4) echo ok4 ;;
    *)
      case $2 in
        124 | 137) echo hang ;;
        *) echo "fail:$2" ;;
      esac ;;
  esac
}

# ----------------------------------------------------------- a client
run_client() {
  local name=$1 scen host shim out rc ms res i why=
  local -A R T O
  local -a m0 m1
  for scen in v6only bh6 bh4; do
    host=$scen.test
    for shim in 0 1; do
      SHIMON=$shim
      TRACE_ENV=
      [ "${CORPUS_TRACE:-0}" = 1 ] && TRACE_ENV="DUALSTACK_TRACE=$WD/trace.$name.$scen.json"
      out=$("c_$name" "$host" 2>&1)
      read -r rc ms < "$WD/x.last"
      R[$scen$shim]=$(classify "$out" "$rc")
      T[$scen$shim]=$ms
      printf '%s\n' "$out" > "$WD/out.$name.$scen$shim"
    done
  done
  m0=() m1=()
  for ((i = 1; i <= RUNS; i++)); do
    for shim in 0 1; do
      SHIMON=$shim TRACE_ENV=
      out=$("c_$name" v4only.test 2>&1)
      read -r rc ms < "$WD/x.last"
      [ "$i" = 1 ] && { R[v4only$shim]=$(classify "$out" "$rc"); O[$shim]=$out; }
      [ "$out" = "${O[$shim]}" ] || R[v4only$shim]="varies"
      if [ "$shim" = 0 ]; then m0+=("$ms"); else m1+=("$ms"); fi
    done
  done
  printf '%s\n' "${O[0]}" > "$WD/out.$name.v4only0"
  printf '%s\n' "${O[1]}" > "$WD/out.$name.v4only1"
  T[v4only0]=$(median "${m0[@]}")
  T[v4only1]=$(median "${m1[@]}")
  # The verdict: the with-shim results.
  [ "${R[v4only0]}" = ok4 ] || why="$why; broken without the shim (IPv4-only name: ${R[v4only0]})"
  [ "${R[v6only1]}" = ok6 ] || why="$why; IPv6-only name: ${R[v6only1]}"
  [ "${R[bh61]}" = ok4 ] || why="$why; IPv6 black-holed: ${R[bh61]}"
  [ "${R[bh61]}" = ok4 ] && [ "${T[bh61]}" -ge "$FAST_MS" ] &&
    why="$why; IPv6 black-holed: slow (${T[bh61]} ms)"
  [ "${R[bh41]}" = ok6 ] || why="$why; IPv4 black-holed: ${R[bh41]}"
  [ "${R[bh41]}" = ok6 ] && [ "${T[bh41]}" -ge "$FAST_MS" ] &&
    why="$why; IPv4 black-holed: slow (${T[bh41]} ms)"
  [ "${O[1]}" = "${O[0]}" ] && [ "${R[v4only1]}" = ok4 ] ||
    why="$why; IPv4-only name: output differs (${R[v4only1]})"
  local delta=$((T[v4only1] - T[v4only0]))
  [ "$delta" -le $((TARGET_MS + SLACK_MS)) ] ||
    why="$why; IPv4-only name: ${delta} ms slower"
  {
    echo "role=client"
    for scen in v6only bh6 bh4 v4only; do
      for shim in 0 1; do
        echo "$scen$shim=${R[$scen$shim]} ${T[$scen$shim]}"
      done
    done
    echo "delta=$delta"
    echo "why=${why#; }"
  } > "$RES/$name.res"
}

# ----------------------------------------------------------- a server
run_server() {
  local name=$1 shim fam host reply rc view why= f
  local port req popts okre view_kind slogs= proto=tcp
  local -A R V
  "s_$name"
  view_kind=$view
  for shim in 0 1; do
    for fam in 6 4; do
      SHIMON=$shim TRACE_ENV=
      [ "${CORPUS_TRACE:-0}" = 1 ] && TRACE_ENV="DUALSTACK_TRACE=$WD/trace.$name.$fam$shim.json"
      SLOG=$WD/slog.$name.$fam$shim
      : > "$SLOG"
      "s_${name}_start"
      if ! lab_wait_port b "$proto" "$port" 5 2> /dev/null; then
        R[$fam$shim]="nostart"
        V[$fam$shim]="-"
        stop_servers
        continue
      fi
      host=192.0.2.2
      [ "$fam" = 6 ] && host=2001:db8::2
      # shellcheck disable=SC2086
      reply=$(lab_run a "$PY" -I "$CORPUS_DIR/probe.py" $popts \
        $([ "$proto" = udp ] && echo --udp) "$host" "$port" "$req" 2>&1)
      rc=$?
      sleep 0.3 # let the server write its log
      printf '%s\n' "$reply" > "$WD/reply.$name.$fam$shim"
      if [ "$rc" = 2 ]; then
        R[$fam$shim]=$(echo "$reply" | tr '[:upper:]' '[:lower:]' | sed 's/^e//')
      elif grep -qE "$okre" <<< "$reply"; then
        R[$fam$shim]="ok"
      else
        R[$fam$shim]="bad"
      fi
      if [ "$fam" = 6 ]; then
        view=$(cat "$SLOG" $slogs - <<< "$reply" 2>/dev/null |
          grep -oE "client6\.test|$POOL_RE|2001:db8::1\b|::ffff:[0-9.]+" | sort -u | tr '\n' ' ')
      else
        view=$(cat "$SLOG" $slogs - <<< "$reply" 2>/dev/null |
          grep -oE "client4\.test|192\.0\.2\.1\b|::ffff:[0-9.]+" | sort -u | tr '\n' ' ')
      fi
      view=${view% }
      V[$fam$shim]=${view:--}
      stop_servers
      cp "$SLOG" "$WD/slog.$name.$fam$shim.keep" 2>/dev/null
      for f in $slogs; do cat "$f" >> "$WD/slog.$name.$fam$shim.keep"; done
    done
  done
  [ "${R[40]}" = ok ] || why="$why; broken without the shim (IPv4 client: ${R[40]})"
  [ "${R[61]}" = ok ] || why="$why; IPv6 client: ${R[61]}"
  case $view_kind in
    name) [[ "${V[61]}" == *client6.test* ]] || why="$why; IPv6 peer seen as ${V[61]}" ;;
    addr) [[ "${V[61]}" =~ $POOL_RE ]] || why="$why; IPv6 peer seen as ${V[61]}" ;;
  esac
  [[ "${V[61]}" == *::* ]] && why="$why; IPv6 peer seen as ${V[61]}"
  [ "${R[41]}" = ok ] || why="$why; IPv4 client: ${R[41]}"
  [ "${V[41]}" = "${V[40]}" ] || why="$why; IPv4 peer seen as ${V[41]}, without the shim ${V[40]}"
  {
    echo "role=server"
    echo "view=$view_kind"
    for f in 60 61 40 41; do
      echo "c$f=${R[$f]}"
      echo "v$f=${V[$f]}"
    done
    echo "why=${why#; }"
  } > "$RES/$name.res"
}

# ----------------------------------------------------------- a worker
worker() {
  WD=$LAB_TMP/corpus
  trap lab_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$WD" || exit 1
  if ! worker_lab > "$WD/lab.out" 2>&1; then
    echo "corpus: worker $1: lab setup failed:" >&2
    cat "$WD/lab.out" >&2
    exit 70
  fi
  local name role
  while :; do
    # Claim the next program of the queue.
    name=$({
      flock 9
      n=$(cat "$RES/next")
      echo $((n + 1)) > "$RES/next"
      sed -n "$((n + 1))p" "$RES/queue"
    } 9> "$RES/lock")
    [ -n "$name" ] || break
    set -- $name
    role=$2 name=$1
    echo "  ... $name" >&2
    "run_$role" "$name"
  done
  if [ "${CORPUS_KEEP:-0}" = 1 ]; then
    cp -r "$WD" "$RES/work.$$"
  fi
}

# ----------------------------------------------------------- the report
# field FILE KEY
field() { sed -n "s/^$2=//p" "$1"; }

# cell WITHOUT WITH [MS]: "fail / ok6 0.31s"
cell() {
  local t=
  [ -n "${3:-}" ] && t=" $(printf '%d.%02ds' $(($3 / 1000)) $(($3 % 1000 / 10)))"
  printf '%s / %s%s' "$1" "$2" "$t"
}

report() {
  local line name role model lang expect f why verdict n_in=0 n_full=0
  local bad=0 status
  local -a notes=() limits=()
  printf '\nClients: each cell is WITHOUT / WITH the shim (with-shim time);\n'
  printf 'ok6/ok4: the program got the answer, over IPv6/IPv4; hang: killed after %s s.\n\n' "$TMO"
  printf '%-16s %-10s %-6s | %-18s | %-18s | %-18s | %-22s | %s\n' \
    program model lang "IPv6-only name" "IPv6 black-holed" "IPv4 black-holed" \
    "IPv4-only (median)" verdict
  while read -r name role model lang expect; do
    [ "$role" = client ] || continue
    f=$RES/$name.res
    if [ ! -s "$f" ]; then
      printf '%-16s %-10s %-6s | %s\n' "$name" "$model" "$lang" "NOT RUN"
      continue
    fi
    set -- $(field "$f" v6only0) $(field "$f" v6only1)
    local c1; c1=$(cell "$1" "$3" "$4")
    set -- $(field "$f" bh60) $(field "$f" bh61)
    local c2; c2=$(cell "$1" "$3" "$4")
    set -- $(field "$f" bh40) $(field "$f" bh41)
    local c3; c3=$(cell "$1" "$3" "$4")
    set -- $(field "$f" v4only0) $(field "$f" v4only1)
    local c4; c4="$1 / $3 $(field "$f" delta | sed 's/^[0-9]/+&/')ms"
    why=$(field "$f" why)
    verdict=full; [ -n "$why" ] && verdict=FAIL
    printf '%-16s %-10s %-6s | %-18s | %-18s | %-18s | %-22s | %s\n' \
      "$name" "$model" "$lang" "$c1" "$c2" "$c3" "$c4" "$verdict"
  done < "$RES/list"
  printf '\nServers (bound to 0.0.0.0, started by the test): WITHOUT / WITH the shim.\n'
  printf 'client: the reply an IPv6 / IPv4 client got; view: the peer in the\n'
  printf "server's own log or reply (name: it looks the peer up).\n\n"
  printf '%-18s %-10s %-6s | %-18s | %-34s | %-12s | %-26s | %s\n' \
    program model lang "IPv6 client" "IPv6 peer as seen" "IPv4 client" \
    "IPv4 peer as seen" verdict
  while read -r name role model lang expect; do
    [ "$role" = server ] || continue
    f=$RES/$name.res
    if [ ! -s "$f" ]; then
      printf '%-18s %-10s %-6s | %s\n' "$name" "$model" "$lang" "NOT RUN"
      continue
    fi
    why=$(field "$f" why)
    verdict=full; [ -n "$why" ] && verdict=FAIL
    printf '%-18s %-10s %-6s | %-18s | %-34s | %-12s | %-26s | %s\n' \
      "$name" "$model" "$lang" \
      "$(field "$f" c60) / $(field "$f" c61)" \
      "$(field "$f" v60) / $(field "$f" v61) ($(field "$f" view))" \
      "$(field "$f" c40) / $(field "$f" c41)" \
      "$(field "$f" v40) / $(field "$f" v41)" "$verdict"
  done < "$RES/list"

  printf '\nOutcomes against programs.txt:\n'
  while read -r name role model lang expect; do
    case $role in
      limit) limits+=("$name ($lang, $model): ${expect#limit: }"); continue ;;
    esac
    n_in=$((n_in + 1))
    f=$RES/$name.res
    why=NOT-RUN
    [ -s "$f" ] && why=$(field "$f" why)
    [ -z "$why" ] && n_full=$((n_full + 1))
    case $expect in
      full)
        if [ -n "$why" ]; then
          status="REGRESSION: $why"; bad=1
        else continue; fi ;;
      known-fail:*)
        if [ -n "$why" ]; then
          status="known fail (${expect#known-fail: }): $why"
        else
          status="FIXED: now fully dual-stack; update programs.txt (was known-fail)"; bad=1
        fi ;;
      pending:*)
        if [ -n "$why" ]; then
          status="failing, pending (${expect#pending: }): $why"
        else
          status="now fully dual-stack (pending: ${expect#pending: }); update programs.txt"
        fi ;;
      *) status="bad expectation in programs.txt: $expect"; bad=1 ;;
    esac
    printf '  %-18s %s\n' "$name" "$status"
  done < "$RES/list"
  printf '\nNamed limits (README, Limits; listed, not run):\n'
  printf '  %s\n' "${limits[@]}"
  printf '\n%d of %d in-scope programs fully dual-stack (%d%%)\n' \
    "$n_full" "$n_in" $((n_in ? n_full * 100 / n_in : 0))
  return $bad
}

# ----------------------------------------------------------- main
main() {
  local i name role rest t0 pids=() rc
  if ! lab_available; then
    echo "corpus: SKIPPED: $LAB_WHY" >&2
    exit 77
  fi
  [ -f "$SHIM" ] || { echo "corpus: $SHIM not built (make)" >&2; exit 77; }
  RES=$(mktemp -d /tmp/dscorpus.XXXXXX) || exit 1
  export RES
  trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait; [ "${CORPUS_KEEP:-0}" = 1 ] || rm -rf "$RES"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  t0=$EPOCHREALTIME
  CORPUS_CERT=$RES/cert.pem CORPUS_KEY=$RES/key.pem
  export CORPUS_CERT CORPUS_KEY
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=server.test -days 2 -keyout "$CORPUS_KEY" -out "$CORPUS_CERT" \
    > /dev/null 2>&1 || { echo "corpus: openssl req failed" >&2; exit 1; }
  # The list (in programs.txt order), and the queue: clients first (they
  # take longest), limits not run.
  grep -vE '^[[:space:]]*(#|$)' "$CORPUS_DIR/programs.txt" |
    while read -r name role rest; do
      if [ $# -gt 0 ]; then
        for i; do [ "$i" = "$name" ] && echo "$name $role $rest"; done
      else
        echo "$name $role $rest"
      fi
    done > "$RES/list"
  awk '$2 == "client" { print $1, $2 }' "$RES/list" > "$RES/queue"
  awk '$2 == "server" { print $1, $2 }' "$RES/list" >> "$RES/queue"
  echo 0 > "$RES/next"
  echo "corpus: $(wc -l < "$RES/queue") programs in $JOBS labs" >&2
  for ((i = 1; i <= JOBS; i++)); do
    bash "${BASH_SOURCE[0]}" --worker "$i" &
    pids+=($!)
  done
  rc=0
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  pids=()
  report || rc=1
  local t1=$EPOCHREALTIME
  printf 'corpus: %d s\n' $(((${t1/./} - ${t0/./}) / 1000000))
  [ "${CORPUS_KEEP:-0}" = 1 ] && echo "corpus: kept $RES" >&2
  exit $rc
}

if [ "${1:-}" = --worker ]; then
  shift
  worker "$@"
else
  main "$@"
fi
