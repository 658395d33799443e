#!/bin/bash
# Differential conformance: tests/conform/conform.c calls every function of
# shim/exports.map over a matrix of inputs, once without and once with the
# shim, in the same lab; every output line is compared case by case.
#
# A difference is allowed only where tests/conform/translations.txt names
# the DESIGN.md translation (and then both lines must have the stated
# shape). A difference listed in tests/conform/known.txt is a known defect:
# printed and counted, not failed; a known.txt line whose case now agrees
# fails ("fixed: remove from known.txt").
#
# Run alone:  DS_BUILD=$PWD/build DS_TOP=$PWD bash tests/shell/test_conform.sh
# CONFORM_KEEP=DIR keeps both outputs of each area in DIR.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"
shopt -s extglob

SHIM=$DS_BUILD/libdualstack-preload.so
PROG=$DS_BUILD/tests/conform
MAP=$DS_TOP/shim/exports.map
TRANS=$DS_TOP/tests/conform/translations.txt
KNOWN=$DS_TOP/tests/conform/known.txt

# The regular expressions translations.txt may use.
POOL_RE='10\.170\.1(6[0-9]|7[0-5])\.[0-9]{1,3}'
SRCPOOL_RE='172\.21\.1(1[2-9]|2[0-7])\.[0-9]{1,3}'

suite_setUp() {
  need_lab || return 0
  lab_pair || return 0
  # A's hosts file: an IPv4-only name (with an alias), an IPv6-only name,
  # a dual-stack name, loopback names of each family.
  lab_hosts a "192.0.2.2 h4.test h4alias" "2001:db8::2 h6.test h6alias" \
    "198.51.100.7 hboth.test" "2001:db8::7 hboth.test" \
    "127.0.0.2 hloop.test" "::1 hloop6.test"
  cat > "$LAB_TMP/dns.conf" <<'EOF'
v4.test     A     192.0.2.2
v6.test     AAAA  2001:db8::2
both.test   A     192.0.2.2
both.test   AAAA  2001:db8::2
multi.test  A     192.0.2.2,192.0.2.3
multi.test  AAAA  2001:db8::2,2001:db8::3
gone.test   *     NXDOMAIN
nodata.test A     NODATA
nodata.test AAAA  NODATA
fail.test   *     SERVFAIL
EOF
  lab_dns b 192.0.2.2 "$LAB_TMP/dns.conf" "$LAB_TMP/dns.log" a
  # B: TCP family echo on 7, UDP family echo on 9, both families.
  lab_family_echo b 7
  lab_bg b "$LAB_PYTHON" -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 9))
while True:
    d, a = s.recvfrom(2048)
    fam = b"ipv4 " if a[0].startswith("::ffff:") else b"ipv6 "
    s.sendto(fam + d, a)'
  lab_wait_port b udp 9
}

suite_tearDown() { lab_cleanup; }
suite_oneTimeTearDown() { lab_cleanup; }

# Runs the program in A: $1 = plain or shim, then its arguments.
run_prog() {
  local how=$1 pre
  shift
  pre=$(ds_preload_c "$([ "$how" = shim ] && echo "$SHIM")")
  lab_run a env ${pre:+LD_PRELOAD="$pre"} DUALSTACK_STATE=off \
    DUALSTACK_TRACE="$LAB_TMP/trace-$how" timeout 900 "$PROG" "$MAP" "$@"
}

# twin_norm ID LINE: what a translated case and its IPv4 twin must share:
# destination addresses (pool or 192.0.2.2) and local ones (source pool
# or 192.0.2.1) by role, the echo's family tag, and for lookups the errno
# and h_errno a success leaves (glibc's own differ by source).
twin_norm() {
  local lookup=cat
  case $1 in
    getaddrinfo* | gethostby* | getnameinfo*)
      lookup='s/^(rc=0|ok) e=[^ ]+/\1 e=?/; s/^(rc=0 e=\?|ok e=\?) h_errno=[^ ]+/\1 h_errno=?/' ;;
    *) lookup= ;;
  esac
  printf '%s\n' "$2" | sed -E \
    -e "s/$POOL_RE/<dst>/g; s/192\.0\.2\.2([^0-9]|\$)/<dst>\1/g" \
    -e "s/$SRCPOOL_RE/<src>/g; s/192\.0\.2\.1([^0-9]|\$)/<src>\1/g" \
    -e 's/ipv[46] /ipvN /g' -e "${lookup:-p;d}"
}

# Reads the data lines of FILE ("# comment" and blank lines skipped).
data_lines() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1"; }

# translations.txt as tab-separated fields, blanks around them trimmed.
trans_lines() {
  data_lines "$TRANS" | awk -F ' @@ ' -v OFS='\t' '{
    for (i = 1; i <= NF; i++) gsub(/^[ \t]+|[ \t]+$/, "", $i)
    print $1, $2, $3, $4 }'
}

# compare AREA SYM,SYM...: runs the area's cases both ways, then judges
# each case. Prints one line per known difference and per failure.
compare() {
  local area=$1 syms=$2 plainf shimf id sym p s line pat pre sre reason
  local n=0 same=0 translated=0 known=0 bad=0 fixed=0 i matched
  plainf=$LAB_TMP/$area.plain shimf=$LAB_TMP/$area.shim
  run_prog plain -s "$syms" > "$plainf" 2> "$plainf.err"
  run_prog shim -s "$syms" > "$shimf" 2> "$shimf.err"
  if [ -n "${CONFORM_KEEP:-}" ]; then
    mkdir -p "$CONFORM_KEEP"
    cp "$plainf" "$shimf" "$plainf.err" "$shimf.err" "$CONFORM_KEEP/"
  fi
  local -A P=() S=() K=()
  local -a ids=() tpat=() tpre=() tsre=() treason=()
  while IFS=$'\t' read -r id sym line; do
    [ -n "$id" ] || continue
    ids+=("$id")
    P[$id]=$line
  done < "$plainf"
  while IFS=$'\t' read -r id sym line; do
    [ -n "$id" ] && S[$id]=$line
  done < "$shimf"
  while IFS= read -r line; do
    id=${line%%[[:space:]]*}
    K[$id]=$(echo "${line#"$id"}" | sed 's/^[[:space:]|]*//')
  done < <(data_lines "$KNOWN")
  # translations.txt: GLOB @@ WITHOUT-ERE @@ WITH-ERE-or-=TWIN @@ REASON
  while IFS=$'\t' read -r pat pre sre reason; do
    pre=${pre//@POOL@/$POOL_RE} pre=${pre//@SRCPOOL@/$SRCPOOL_RE}
    sre=${sre//@POOL@/$POOL_RE} sre=${sre//@SRCPOOL@/$SRCPOOL_RE}
    tpat+=("$pat") tpre+=("$pre") tsre+=("$sre") treason+=("$reason")
  done < <(trans_lines)
  assertTrue "$area: the program ran without the shim" \
    "[ ${#ids[@]} -gt 0 ]"
  for id in "${ids[@]}"; do
    n=$((n + 1))
    p=${P[$id]} s=${S[$id]-MISSING (no line with the shim)}
    matched=
    for i in "${!tpat[@]}"; do
      # shellcheck disable=SC2053
      if [[ $id == ${tpat[$i]} ]]; then matched=$i; break; fi
    done
    local ok= want=
    if [ -n "$matched" ]; then
      want=${tsre[$matched]}
      if [[ $want == =*'=>'* ]]; then
        # A twin: the shim's line must be what the case's IPv4 twin gives
        # without the shim (names put back, addresses normalised).
        local from=${want#=} to twin
        to=${from#*=>} from=${from%%=>*}
        twin=${id//"$from"/"$to"}
        if [ -z "${P[$twin]+x}" ]; then
          want="(no twin case $twin)"
        else
          want=$(twin_norm "$id" "${P[$twin]//"$to"/"$from"}")
          [[ $p =~ ^(${tpre[$matched]})$ ]] &&
            [ "$(twin_norm "$id" "$s")" = "$want" ] && ok=translated
          want="like $twin: $want"
        fi
      elif [[ $p =~ ^(${tpre[$matched]})$ ]] && [[ $s =~ ^(${want})$ ]]; then
        ok=translated
      fi
    elif [ "$p" = "$s" ]; then
      ok=same
    fi
    if [ -n "${K[$id]+x}" ]; then
      if [ -n "$ok" ]; then
        echo "FIXED $id: remove from known.txt (${K[$id]})"
        echo "    without: $p"
        echo "    with:    $s"
        fixed=$((fixed + 1))
      else
        echo "KNOWN $id: ${K[$id]}"
        [ -z "$matched" ] || echo "    wanted:  $want"
        echo "    without: $p"
        echo "    with:    $s"
        known=$((known + 1))
      fi
      continue
    fi
    case $ok in
      same) same=$((same + 1)) ;;
      translated) translated=$((translated + 1)) ;;
      *)
        bad=$((bad + 1))
        if [ -n "$matched" ]; then
          echo "BAD SHAPE $id (translation:${treason[$matched]})"
          echo "    wanted:  $want"
        else
          echo "DIFFERS $id"
        fi
        echo "    without: $p"
        echo "    with:    $s"
        ;;
    esac
  done
  echo "$area: $n cases: $same same, $translated translated," \
    "$known known differences, $bad unexpected, $fixed fixed"
  if [ -s "$shimf.err" ]; then
    echo "$area: stderr with the shim:"
    head -n 20 "$shimf.err" | sed 's/^/    /'
  fi
  assertEquals "$area: unexpected differences" 0 "$bad"
  assertEquals "$area: known.txt lines that now agree (remove them)" 0 "$fixed"
}

test_every_export_has_cases() {
  local out status
  out=$("$PROG" "$MAP" --list 2>&1 > /dev/null)
  status=$?
  assertEquals "symbols without a case: $out" 0 "$status"
  # A symbol glibc exports that the shim may add: ready before it does.
  assertTrue "gethostbyaddr_r has cases" \
    "\"$PROG\" \"$MAP\" --list | cut -f2 | grep -qx gethostbyaddr_r"
}

test_lists_name_existing_cases() {
  local ids line id pat bad=''
  ids=$("$PROG" "$MAP" --list | cut -f1)
  while IFS= read -r line; do
    id=${line%%[[:space:]]*}
    grep -qxF -- "$id" <<< "$ids" || bad="$bad known.txt:$id"
  done < <(data_lines "$KNOWN")
  while IFS=$'\t' read -r pat line; do
    local hit=
    while IFS= read -r id; do
      # shellcheck disable=SC2053
      [[ $id == $pat ]] && { hit=1; break; }
    done <<< "$ids"
    [ -n "$hit" ] || bad="$bad translations.txt:$pat"
  done < <(trans_lines)
  assertEquals "lines that name no case" "" "$bad"
}

test_getaddrinfo() {
  need_lab || return 0
  compare getaddrinfo getaddrinfo,freeaddrinfo
}

test_getnameinfo() {
  need_lab || return 0
  compare getnameinfo getnameinfo
}

test_gethostbyname() {
  need_lab || return 0
  compare gethostbyname \
    gethostbyname,gethostbyname2,gethostbyname_r,gethostbyname2_r
}

test_gethostbyaddr() {
  need_lab || return 0
  compare gethostbyaddr gethostbyaddr,gethostbyaddr_r
}

test_socket_connect_accept_bind() {
  need_lab || return 0
  compare socket accept,accept4,bind,connect,getpeername,getsockname
}

test_socket_options() {
  need_lab || return 0
  compare sockopt getsockopt,setsockopt
}

test_socket_datagrams() {
  need_lab || return 0
  compare dgram \
    sendto,sendmsg,sendmmsg,recvfrom,__recvfrom_chk,recvmsg,recvmmsg
}

test_fd_calls() {
  need_lab || return 0
  compare fd close,close_range,closefrom,dup,dup2,dup3,fcntl,fcntl64,epoll_ctl
}

# longjmp and its kin (out of a handler too), the exec family, posix_spawn,
# system and popen, with and without a connection or a race in flight.
test_process_calls() {
  need_lab || return 0
  compare process longjmp,_longjmp,siglongjmp,__longjmp_chk,execve,execv,\
execvp,execvpe,execl,execle,execlp,fexecve,execveat,posix_spawn,\
posix_spawnp,system,popen
}

ds_run_shunit
