#!/bin/bash
# The network lab: network namespaces joined by veth pairs, with their own
# hosts file, resolver and nftables rules, used by every network test.
#
# Two ways to use it (tests/lab/README.md has examples):
#
#   . tests/lab/lab.sh            from a shunit2 suite (bash): call lab_*
#                                 functions; call lab_cleanup from
#                                 suite_tearDown and suite_oneTimeTearDown
#   tests/lab/lab.sh CMD ARGS     from C tests and other scripts; run-pair
#                                 and run build a lab, run a command in it
#                                 and always clean up (trap EXIT INT TERM)
#
# Namespaces are named dsl<OWNER>-<TAG>, OWNER being the pid of the shell
# that made them (the suite, or the runner), TAG a short name ("a", "b").
# Functions take a TAG or a full name. lab_sweep (run by the first lab_ns of
# a process) removes the namespaces, /etc/netns dirs, temporary dirs and
# processes of owners that are no longer alive, so a killed run leaves
# nothing behind for long, and a concurrent live run is never touched.
#
# Everything here needs root. Addresses come only from 192.0.2.0/24,
# 198.51.100.0/24 and 2001:db8::/32; labs have no default route.

if [ -z "${BASH_VERSION:-}" ]; then
  echo "lab.sh: needs bash" >&2
  return 1 2>/dev/null || exit 1
fi

LAB_PREFIX=dsl
LAB_OWNER=$$ # never inherited: a nested runner owns only its own labs
LAB_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_SH=$LAB_TOP/tests/lab/lab.sh
_lab_build=${DS_BUILD:-$LAB_TOP/build}
case $_lab_build in /*) ;; *) _lab_build=$LAB_TOP/$_lab_build ;; esac
LAB_DNSD=${LAB_DNSD:-$_lab_build/lab/dnsd}
LAB_DNSQ=${LAB_DNSQ:-$_lab_build/lab/dnsq}
LAB_TMPBASE=/tmp/dslab
LAB_TMP=$LAB_TMPBASE/$LAB_OWNER
LAB_PYTHON=/usr/bin/python3 # Debian's, whatever python3 is on PATH
LAB_PIDS=
LAB_WHY=
_lab_swept=
export LAB_SH LAB_DNSD LAB_DNSQ

_lab_err() {
  echo "lab: $*" >&2
  return 1
}

# Sets _lab_ns to the full namespace name for a TAG or a full name.
_lab_resolve() {
  case ${1:-} in
    "$LAB_PREFIX"[0-9]*-?*) _lab_ns=$1 ;;
    '' | *[!A-Za-z0-9_]*) _lab_err "bad namespace: '${1:-}'" || return ;;
    *) _lab_ns=$LAB_PREFIX$LAB_OWNER-$1 ;;
  esac
}

# Prints the full namespace name of TAG.
lab_nsname() {
  _lab_resolve "$1" && printf '%s\n' "$_lab_ns"
}

# Whether PID names a live process (a zombie is dead: its owner is gone).
_lab_alive() {
  local stat
  read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# Succeeds when the lab can run here; otherwise sets LAB_WHY, for
#   lab_available || { ds_skip "$LAB_WHY"; return 0; }
lab_available() {
  LAB_WHY=
  if [ "$(id -u)" != 0 ]; then
    LAB_WHY="needs root (network namespaces)"
  elif ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
    LAB_WHY="needs iproute2 and nftables"
  elif [ ! -x "$LAB_DNSD" ] || [ ! -x "$LAB_DNSQ" ]; then
    LAB_WHY="$LAB_DNSD not built (run make)"
  fi
  [ -z "$LAB_WHY" ]
}

# Kills every process in the namespaces NS... (TERM, then KILL after 2 s),
# then deletes them and their /etc/netns dirs. Processes must go first: a
# namespace whose name is deleted lives on while a process is inside.
_lab_destroy() {
  local ns pids all i batch=''
  [ $# -gt 0 ] || return 0
  for ((i = 0; i < 150; i++)); do
    all=
    for ns; do
      pids=$(ip netns pids "$ns" 2>/dev/null)
      all="$all $pids"
    done
    [ -z "${all// /}" ] && break
    # shellcheck disable=SC2086
    if [ "$i" = 0 ]; then
      kill -TERM $all 2>/dev/null
    elif [ "$i" -ge 100 ]; then
      kill -KILL $all 2>/dev/null
    fi
    sleep 0.02
  done
  for ns; do
    batch="${batch}netns del $ns
"
  done
  # -force: go on past a namespace a concurrent sweep deleted first.
  ip -force -b - <<< "$batch" > /dev/null 2>&1
  for ns; do
    rm -rf "/etc/netns/$ns"
  done
}

# Prints the lab namespaces that exist, one per line.
_lab_list() {
  ip netns list 2>/dev/null | while read -r ns _; do
    case $ns in "$LAB_PREFIX"[0-9]*-?*) printf '%s\n' "$ns" ;; esac
  done
}

# Sets _lab_owner to the owner pid in a lab name (dsl<PID>-TAG).
_lab_owner_of() {
  _lab_owner=${1#"$LAB_PREFIX"}
  _lab_owner=${_lab_owner%%-*}
  case $_lab_owner in '' | *[!0-9]*) return 1 ;; esac
}

# Removes what killed runs left: namespaces (and the processes inside),
# /etc/netns dirs and temporary dirs whose owner pid is not alive.
lab_sweep() {
  local ns d
  local -a stale=()
  _lab_swept=1
  for ns in $(_lab_list); do
    _lab_owner_of "$ns" || continue
    _lab_alive "$_lab_owner" || stale+=("$ns")
  done
  _lab_destroy "${stale[@]}"
  for d in /etc/netns/"$LAB_PREFIX"[0-9]*-?* "$LAB_TMPBASE"/[0-9]*; do
    [ -d "$d" ] && _lab_owner_of "${d##*/}" || continue
    _lab_alive "$_lab_owner" || rm -rf "$d"
  done
  return 0
}

# Stops PID (one this shell started): TERM, KILL after 2 s, then reaps it.
lab_kill() {
  local pid i
  for pid; do
    kill -TERM "$pid" 2>/dev/null
    for ((i = 1; i <= 100; i++)); do
      _lab_alive "$pid" || break
      [ "$i" = 100 ] && kill -KILL "$pid" 2>/dev/null
      sleep 0.02
    done
    wait "$pid" 2>/dev/null
  done
  return 0
}

# Removes every namespace, /etc/netns dir, temporary file and background
# process of this shell's labs. Safe to call any number of times.
lab_cleanup() {
  local ns pid
  local -a mine=()
  for pid in $LAB_PIDS; do
    kill -TERM "$pid" 2>/dev/null
  done
  for ns in $(_lab_list); do
    case $ns in "$LAB_PREFIX$LAB_OWNER"-*) mine+=("$ns") ;; esac
  done
  _lab_destroy "${mine[@]}"
  # shellcheck disable=SC2086
  [ -z "$LAB_PIDS" ] || lab_kill $LAB_PIDS
  LAB_PIDS=
  rm -rf /etc/netns/"$LAB_PREFIX$LAB_OWNER"-* "$LAB_TMP"
  unset LAB_NS_A LAB_NS_B LAB_IF_A LAB_IF_B LAB_IFINDEX_A LAB_IFINDEX_B \
    LAB_DNS_PID LAB_DNS_LOG
  return 0
}

# lab_ns TAG...: makes namespaces with lo up, no default route, IPv6 DAD
# off, a hosts file (localhost only) and a resolv.conf of their own
# (nameserver 127.0.0.1, where nothing listens until lab_dns).
lab_ns() {
  local tag ns batch=''
  local -a dirs=("$LAB_TMP")
  [ -n "$_lab_swept" ] || lab_sweep
  for tag; do
    case $tag in
      '' | *[!A-Za-z0-9_]* | ???????????*)
        _lab_err "bad tag '$tag' (1-10 of A-Za-z0-9_)" || return ;;
    esac
    ns=$LAB_PREFIX$LAB_OWNER-$tag
    dirs+=("/etc/netns/$ns")
    # Interfaces made later inherit "default": DAD off, so every address
    # is usable at once even when added without nodad.
    batch="${batch}netns add $ns
netns exec $ns sysctl -q -w net.ipv6.conf.all.accept_dad=0 \
net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.disable_ipv6=0
"
  done
  # One mkdir and one ip for them all: process starts are what labs cost.
  mkdir -p "${dirs[@]}" && ip -b - <<< "$batch" || return
  export LAB_TMP
  for tag; do
    ns=$LAB_PREFIX$LAB_OWNER-$tag
    printf '%s\n' "127.0.0.1 localhost" \
      "::1 localhost ip6-localhost ip6-loopback" > "/etc/netns/$ns/hosts"
    printf '%s\n' "# lab $ns" "nameserver 127.0.0.1" \
      > "/etc/netns/$ns/resolv.conf"
    ip -n "$ns" link set lo up || return
  done
}

# Prints the first ethN that namespace $1 does not have.
_lab_free_if() {
  local names i=0
  names=" $(ip -n "$1" -o link show | awk -F': ' '{ sub(/@.*/, "", $2);
    printf "%s ", $2 }')" || return
  while [[ $names == *" eth$i "* ]]; do i=$((i + 1)); done
  printf 'eth%s\n' "$i"
}

# lab_link TAG1 TAG2 [IF1 IF2]: joins two namespaces with a veth pair. The
# ends are named IF1 and IF2, by default the first free ethN of each
# namespace; the names are left in LAB_LINK_IF1 and LAB_LINK_IF2. Both ends are up, with no addresses (not even a
# link-local one: lab_addr adds chosen ones, so tests know them).
lab_link() {
  local ns1 ns2 if1 if2
  _lab_resolve "$1" && ns1=$_lab_ns || return
  _lab_resolve "$2" && ns2=$_lab_ns || return
  [ "$ns1" != "$ns2" ] || _lab_err "lab_link: same namespace twice" || return
  if1=${3:-} if2=${4:-}
  [ -n "$if1" ] || if1=$(_lab_free_if "$ns1") || return
  [ -n "$if2" ] || if2=$(_lab_free_if "$ns2") || return
  # Created directly inside the namespaces, so the names never clash with
  # the host's interfaces or with a concurrent run's.
  ip link add "$if1" netns "$ns1" type veth peer name "$if2" netns "$ns2" ||
    return
  ip -n "$ns1" link set "$if1" addrgenmode none up &&
    ip -n "$ns2" link set "$if2" addrgenmode none up || return
  LAB_LINK_IF1=$if1
  LAB_LINK_IF2=$if2
}

# lab_addr NS IF ADDR/LEN...: adds addresses (IPv6 ones with nodad, usable
# at once; fe80::N/64 gives a link-local address).
lab_addr() {
  local ifname a batch=
  _lab_resolve "$1" || return
  ifname=$2
  shift 2
  for a; do
    case $a in
      *:*) batch="${batch}addr add $a dev $ifname nodad
" ;;
      *) batch="${batch}addr add $a dev $ifname
" ;;
    esac
  done
  ip -n "$_lab_ns" -b - <<< "$batch"
}

# lab_ifindex NS IF: prints the interface index of IF inside NS.
lab_ifindex() {
  local line
  _lab_resolve "$1" || return
  line=$(ip -n "$_lab_ns" -o link show dev "$2") || return
  printf '%s\n' "${line%%:*}"
}

# lab_ifname NS ADDR: prints the interface of NS that holds ADDR.
lab_ifname() {
  local line
  _lab_resolve "$1" || return
  line=$(ip -n "$_lab_ns" -o addr show to "${2%%/*}" | head -n 1)
  [ -n "$line" ] || _lab_err "no $2 in $_lab_ns" || return
  # shellcheck disable=SC2086 # split "N: IF inet ADDR..." into fields
  set -- $line
  printf '%s\n' "$2"
}

# lab_hosts NS LINE...: appends lines ("192.0.2.2 server.test") to the
# hosts file NS sees as /etc/hosts.
lab_hosts() {
  _lab_resolve "$1" || return
  shift
  printf '%s\n' "$@" >> "/etc/netns/$_lab_ns/hosts"
}

# lab_resolv NS LINE...: replaces the resolv.conf NS sees.
lab_resolv() {
  _lab_resolve "$1" || return
  shift
  printf '%s\n' "$@" > "/etc/netns/$_lab_ns/resolv.conf"
}

# lab_etc NS FILE < CONTENT: gives NS its own /etc/FILE (nsswitch.conf,
# gai.conf...). ip netns exec bind-mounts it only where /etc/FILE exists.
lab_etc() {
  _lab_resolve "$1" || return
  [ -e "/etc/$2" ] || _lab_err "/etc/$2 does not exist: cannot overlay" ||
    return
  cat > "/etc/netns/$_lab_ns/$2"
}

# lab_run NS CMD...: runs CMD inside NS (with its hosts and resolv.conf).
lab_run() {
  _lab_resolve "$1" || return
  shift
  ip netns exec "$_lab_ns" "$@"
}

# lab_bg NS CMD...: starts CMD in the background inside NS; its pid is left
# in LAB_PID (and killed by lab_cleanup). Redirect the call to capture its
# output:  lab_bg b nc.traditional -l -p 80 > "$out" 2>&1
lab_bg() {
  _lab_resolve "$1" || return
  shift
  ip netns exec "$_lab_ns" "$@" &
  LAB_PID=$!
  LAB_PIDS="$LAB_PIDS $LAB_PID"
}

# lab_wait_port NS tcp|udp PORT [TIMEOUT_S]: waits until something in NS
# listens on PORT (default: up to 5 s). Fails on timeout.
lab_wait_port() {
  local i opt=-t
  _lab_resolve "$1" || return
  [ "$2" = udp ] && opt=-u
  for ((i = 0; i < ${4:-5} * 50; i++)); do
    [ -n "$(ip netns exec "$_lab_ns" ss -Hln $opt "sport = :$3")" ] &&
      return 0
    sleep 0.02
  done
  _lab_err "nothing listens on $2 port $3 in $_lab_ns"
}

# lab_family_echo NS PORT: starts a TCP server on [::]:PORT in NS, for
# both families, that answers every read with the family the client came
# with ("ipv4 " or "ipv6 ") and the data, and waits until it listens.
lab_family_echo() {
  lab_bg "$1" "$LAB_PYTHON" -c '
import socket, sys, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1]))); s.listen(64)
def serve(c, a):
    fam = "ipv4" if a[0].startswith("::ffff:") else "ipv6"
    try:
        while True:
            d = c.recv(100)
            if not d: break
            c.sendall(fam.encode() + b" " + d)
    except OSError: pass
    c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a)).start()' "$2"
  lab_wait_port "$1" tcp "$2"
}

# Adds nftables rules in NS's HOOK chain (input or output) giving VERDICT
# (drop or reject) to TCP and/or UDP packets to ADDR [PORT].
_lab_filter() {
  local hook=$2 verdict=$3 addr=$4 port=${5:--} proto=${6:-both} fam=ip
  local p rules='' match what
  _lab_resolve "$1" || return
  case $addr in *:*) fam=ip6 ;; esac
  case $proto in
    both) proto="tcp udp" ;;
    tcp | udp) ;;
    *) _lab_err "protocol must be tcp, udp or both: $proto" || return ;;
  esac
  case $port in
    -) ;;
    *[!0-9]* | '') _lab_err "bad port: $port" || return ;;
  esac
  for p in $proto; do
    if [ "$port" = - ]; then
      match="$fam daddr $addr meta l4proto $p"
    else
      match="$fam daddr $addr $p dport $port"
    fi
    what=drop
    if [ "$verdict" = reject ]; then
      # TCP gets a reset (ECONNREFUSED at once); UDP an ICMP or ICMPv6
      # port unreachable (ECONNREFUSED on a connected socket).
      what=reject
      [ "$p" = tcp ] && what="reject with tcp reset"
    fi
    rules="${rules}add rule inet dslab $hook $match $what
"
  done
  ip netns exec "$_lab_ns" nft -f - <<EOF
add table inet dslab
add chain inet dslab $hook { type filter hook $hook priority 0; policy accept; }
$rules
EOF
}

# lab_blackhole NS ADDR [PORT|-] [tcp|udp|both]: silently drops packets to
# ADDR (and PORT) as they arrive in NS, the namespace that owns ADDR. A TCP
# connect then hangs (SYN retransmits) until its timeout; UDP datagrams
# vanish. Dropping on the receiving side works for both protocols; a UDP
# drop on the sender's output would make sendto fail with EPERM instead.
lab_blackhole() {
  _lab_filter "$1" input drop "$2" "${3:-}" "${4:-}"
}

# lab_blackhole_out NS ADDR [PORT|-] [tcp]: drops on the sender's output
# in NS, for destinations no lab namespace owns. TCP only: a TCP connect
# hangs the same way, but UDP sendto would fail with EPERM.
lab_blackhole_out() {
  _lab_filter "$1" output drop "$2" "${3:-}" "${4:-tcp}"
}

# lab_refuse NS ADDR [PORT|-] [tcp|udp|both]: rejects packets to ADDR (and
# PORT) arriving in NS: TCP with a reset, UDP with ICMP port unreachable.
lab_refuse() {
  _lab_filter "$1" input reject "$2" "${3:-}" "${4:-}"
}

# lab_unfilter NS: removes every rule lab_blackhole* and lab_refuse added.
lab_unfilter() {
  _lab_resolve "$1" || return
  ip netns exec "$_lab_ns" nft delete table inet dslab 2>/dev/null
  return 0
}

# lab_dns NS ADDRS CONFIG LOG [CLIENT_NS...]: starts the test DNS server in
# NS on port 53 of each address in ADDRS (comma-separated), with table
# CONFIG and query log LOG. NS and each CLIENT_NS get a resolv.conf whose
# nameserver is the first address (other lines they had are kept; use
# lab_resolv for more servers). Returns when the server is ready; its pid
# is left in LAB_DNS_PID (and LAB_PID).
lab_dns() {
  local ns=$1 addrs=$2 conf=$3 log=$4 a first='' i pidfile out
  local -a args=()
  _lab_resolve "$ns" || return
  shift 4
  mkdir -p "$LAB_TMP" || return
  pidfile=$LAB_TMP/dnsd-$_lab_ns.pid
  out=$LAB_TMP/dnsd-$_lab_ns.out
  rm -f "$pidfile"
  for a in ${addrs//,/ }; do
    [ -n "$first" ] || first=$a
    case $a in *:*) args+=(-l "[$a]:53") ;; *) args+=(-l "$a:53") ;; esac
  done
  [ -n "$first" ] || _lab_err "lab_dns: no address" || return
  lab_bg "$ns" "$LAB_DNSD" "${args[@]}" -c "$conf" -q "$log" \
    -p "$pidfile" > "$out" 2>&1 || return
  LAB_DNS_PID=$LAB_PID
  for ((i = 1; i <= 250; i++)); do
    [ -s "$pidfile" ] && break
    if ! _lab_alive "$LAB_DNS_PID" || [ "$i" = 250 ]; then
      cat "$out" >&2
      _lab_err "dnsd did not start in $_lab_ns" || return
    fi
    sleep 0.02
  done
  for a in "$ns" "$@"; do
    _lab_resolve "$a" || return
    # Rewritten in place, not replaced: a process already inside NS sees
    # the file through the bind mount `ip netns exec` made of this inode.
    { grep -v '^nameserver' "/etc/netns/$_lab_ns/resolv.conf"
      echo "nameserver $first"; } > "$LAB_TMP/resolv.new" &&
      cat "$LAB_TMP/resolv.new" > "/etc/netns/$_lab_ns/resolv.conf" || return
  done
  export LAB_DNS_PID
}

# lab_connect NS HOST PORT [TIMEOUT_MS]: one TCP connect from NS to the
# numeric HOST (scope allowed: fe80::2%eth0), timed. Prints "OK ms=1.2",
# "TIMEOUT ms=1000.3" or the errno name ("ECONNREFUSED ms=0.4"). Returns
# 0 connected, 2 timeout, 3 error (as dnsq).
lab_connect() {
  _lab_resolve "$1" || return
  ip netns exec "$_lab_ns" "$LAB_PYTHON" -I -S -c '
import errno, socket, sys, time
host, port, tmo = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1e3
ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0,
                        socket.AI_NUMERICHOST)[0]
s = socket.socket(ai[0], socket.SOCK_STREAM)
s.settimeout(tmo)
t = time.monotonic()
try:
    s.connect(ai[4])
    what, rc = "OK", 0
except socket.timeout:
    what, rc = "TIMEOUT", 2
except OSError as e:
    what, rc = errno.errorcode.get(e.errno, "E%d" % e.errno), 3
print("%s ms=%.1f" % (what, (time.monotonic() - t) * 1e3))
sys.exit(rc)
' "$2" "$3" "${4:-1000}"
}

# lab_pair: the standard two-host lab. Namespace A (client) and B (server)
# joined by one veth pair; exported:
#   LAB_NS_A LAB_NS_B          full namespace names
#   LAB_IF_A LAB_IF_B          the veth end in A, in B (eth0 each)
#   LAB_IFINDEX_A LAB_IFINDEX_B  their indexes, inside A and B
#   LAB_A4=192.0.2.1   LAB_A6=2001:db8::1   LAB_A_LL=fe80::1  (on A)
#   LAB_B4=192.0.2.2   LAB_B6=2001:db8::2   LAB_B_LL=fe80::2  (on B)
# From A, B's link-local address is $LAB_B_LL%$LAB_IF_A.
lab_pair() {
  lab_ns a b && lab_link a b eth0 eth0 || return
  LAB_NS_A=$LAB_PREFIX$LAB_OWNER-a
  LAB_NS_B=$LAB_PREFIX$LAB_OWNER-b
  LAB_IF_A=$LAB_LINK_IF1
  LAB_IF_B=$LAB_LINK_IF2
  LAB_A4=192.0.2.1 LAB_A6=2001:db8::1 LAB_A_LL=fe80::1
  LAB_B4=192.0.2.2 LAB_B6=2001:db8::2 LAB_B_LL=fe80::2
  lab_addr a "$LAB_IF_A" "$LAB_A4/24" "$LAB_A6/64" "$LAB_A_LL/64" &&
    lab_addr b "$LAB_IF_B" "$LAB_B4/24" "$LAB_B6/64" "$LAB_B_LL/64" &&
    LAB_IFINDEX_A=$(lab_ifindex a "$LAB_IF_A") &&
    LAB_IFINDEX_B=$(lab_ifindex b "$LAB_IF_B") || return
  export LAB_NS_A LAB_NS_B LAB_IF_A LAB_IF_B LAB_IFINDEX_A LAB_IFINDEX_B \
    LAB_A4 LAB_A6 LAB_A_LL LAB_B4 LAB_B6 LAB_B_LL
}

_lab_usage() {
  cat <<'EOF'
usage: lab.sh COMMAND [ARGS]
  run-pair [OPTIONS] -- CMD ARGS   make the standard pair (lab_pair), run CMD
                                   in A with LAB_* exported, clean up, exit
                                   with CMD's status (77: lab unavailable)
  run [OPTIONS] -- CMD ARGS        the same without a topology (build it
                                   with --setup); CMD runs on the host
                                   unless --in says otherwise
    options: --in TAG|host         where CMD runs (run-pair: a)
             --setup 'SHELL CODE'  run after the lab is made (repeatable),
                                   with every lab_* function available
             --dns CONFIG          (run-pair) dnsd on B (192.0.2.2 and
                                   2001:db8::2); A and B resolve through
                                   192.0.2.2; log in $LAB_DNS_LOG
             --hosts FILE          (run-pair) append FILE to A's and B's
                                   hosts files
  sweep                            remove what killed runs left
  exec NS CMD...                   run CMD in namespace NS
  bg NS [-o LOG] CMD...            start CMD in NS, print its pid
  dns NS ADDRS CONFIG LOG [CLIENT_NS...]   start dnsd (see lab_dns), print pid
  blackhole NS ADDR [PORT|-] [tcp|udp|both]
  blackhole-out NS ADDR [PORT|-] [tcp]
  refuse NS ADDR [PORT|-] [tcp|udp|both]
  unfilter NS
  hosts NS LINE...   resolv NS LINE...   ifindex NS IF   ifname NS ADDR
  wait-port NS tcp|udp PORT [TIMEOUT_S]
  connect NS HOST PORT [TIMEOUT_MS]
NS is a full namespace name ($LAB_NS_B) when the lab belongs to another
process. See tests/lab/README.md.
EOF
}

# The runner of run and run-pair. Exits with CMD's status.
_lab_runner() {
  local mode=$1 in=host dns='' hosts='' code pid status
  local -a setups=()
  shift
  [ "$mode" = run-pair ] && in=a
  while [ $# -gt 0 ]; do
    case $1 in
      --in) in=${2:?}; shift 2 ;;
      --setup) setups+=("${2:?}"); shift 2 ;;
      --dns) dns=${2:?}; shift 2 ;;
      --hosts) hosts=${2:?}; shift 2 ;;
      --) shift; break ;;
      *) _lab_usage >&2; exit 64 ;;
    esac
  done
  [ $# -gt 0 ] || { _lab_usage >&2; exit 64; }
  if ! lab_available; then
    echo "lab: SKIPPED: $LAB_WHY" >&2
    exit 77
  fi
  if [ "$mode" = run-pair ]; then
    lab_pair || exit 70
    if [ -n "$hosts" ]; then
      lab_hosts a "$(cat "$hosts")" && lab_hosts b "$(cat "$hosts")" ||
        exit 70
    fi
    if [ -n "$dns" ]; then
      LAB_DNS_LOG=$LAB_TMP/dnsd.log
      export LAB_DNS_LOG
      lab_dns b "$LAB_B4,$LAB_B6" "$dns" "$LAB_DNS_LOG" a || exit 70
    fi
  fi
  for code in "${setups[@]}"; do
    eval "$code" || { _lab_err "setup failed: $code"; exit 70; }
  done
  # CMD runs in the background so that a TERM or INT reaches the trap at
  # once (bash defers traps while a foreground child runs); stdin is
  # passed on explicitly, since a background job would get /dev/null.
  exec 3<&0
  if [ "$in" = host ]; then
    "$@" 0<&3 3<&- &
  else
    _lab_resolve "$in" || exit 64
    ip netns exec "$_lab_ns" "$@" 0<&3 3<&- &
  fi
  pid=$!
  LAB_PIDS="$LAB_PIDS $pid"
  wait "$pid"
  status=$?
  exit "$status"
}

_lab_main() {
  local cmd=${1:-help} pid log=/dev/null
  shift
  case $cmd in
    run | run-pair) _lab_runner "$cmd" "$@" ;;
    sweep) lab_sweep ;;
    exec) lab_run "$@" ;;
    bg)
      _lab_resolve "${1:-}" || exit 64
      shift
      if [ "${1:-}" = -o ]; then log=$2; shift 2; fi
      [ $# -gt 0 ] || { _lab_usage >&2; exit 64; }
      # Not tracked: it outlives this command, until the lab's owner
      # cleans up (which kills everything inside its namespaces).
      ip netns exec "$_lab_ns" "$@" < /dev/null > "$log" 2>&1 &
      echo $!
      ;;
    dns)
      # Keep the server's output away from whoever reads ours.
      lab_dns "$@" > /dev/null || exit 1
      LAB_PIDS=
      echo "$LAB_DNS_PID"
      ;;
    blackhole) lab_blackhole "$@" ;;
    blackhole-out) lab_blackhole_out "$@" ;;
    refuse) lab_refuse "$@" ;;
    unfilter) lab_unfilter "$@" ;;
    hosts) lab_hosts "$@" ;;
    resolv) lab_resolv "$@" ;;
    ifindex) lab_ifindex "$@" ;;
    ifname) lab_ifname "$@" ;;
    wait-port) lab_wait_port "$@" ;;
    connect) lab_connect "$@" ;;
    help | -h | --help) _lab_usage ;;
    *) _lab_usage >&2; exit 64 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  # Cleanup always runs: on exit, and on HUP, INT or TERM through exit.
  trap lab_cleanup EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  _lab_main "$@"
  exit $?
fi
