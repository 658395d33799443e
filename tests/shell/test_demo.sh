#!/bin/bash
# make demo runs to the end: as root in a private lab (both services, the
# legacy server), and without root on loopback inside a namespace (the
# preloaded client never sees a real network), saying what it skipped.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

suite_tearDown() { lab_cleanup; }
suite_oneTimeTearDown() { lab_cleanup; }

test_make_demo_as_root() {
  ds_require_root || return 0
  lab_available || { ds_skip "$LAB_WHY"; return 0; }
  rm -rf "$DS_BUILD/demo"
  t0=$(date +%s)
  out=$(make -C "$DS_TOP" --no-print-directory demo \
        ${DS_SANITIZE:+SANITIZE=$DS_SANITIZE} 2>&1)
  assertEquals "make demo exits 0" 0 $?
  secs=$(( $(date +%s) - t0 ))
  echo "$out" | sed 's/^/    /'
  assertContains "ran to the end" "$out" "demo: done in"
  assertTrue "under a minute (${secs} s)" "[ $secs -lt 60 ]"
  # v6only.demo: after, IPv6 to the AAAA address; dual.demo: after, IPv4
  # won the race against the black-holed IPv6.
  assertContains "$out" "ipv6 [2001:db8::3]:80"
  assertTrue "dual.demo: IPv6 attempt first" \
    "echo \"\$out\" | grep -Eq '#1 \+[0-9]+ ms ipv6 \[2001:db8::2\]:80'"
  assertTrue "dual.demo: IPv4 attempt won" \
    "echo \"\$out\" | grep -Eq '#2 \+[0-9]+ ms ipv4 192\.0\.2\.2:80'"
  assertContains "legacy server section" "$out" "3. A legacy server reached over IPv6"
  assertContains "without the shim, refused" "$out" "ECONNREFUSED"
  assertTrue "timelines written" \
    "[ -s $DS_BUILD/demo/v6only.svg ] && [ -s $DS_BUILD/demo/dual.svg ]"
  assertEquals "no namespaces left" "" \
    "$(ip netns list | grep "^dsl$$-" || true)"
}

test_demo_without_root_on_loopback() {
  ds_require_root || return 0
  lab_available || { ds_skip "$LAB_WHY"; return 0; }
  lab_ns a
  d=$(mktemp -d)
  chmod 777 "$d"
  # The checkout may be where nobody cannot go (a clone under /root or in
  # a private temporary directory): the demo runs from a copy nobody can
  # read, with what it uses.
  mkdir -p "$d/top/build" "$d/top/tests"
  cp -a "$DS_TOP/tools" "$d/top/"
  cp -a "$DS_TOP/tests/lab" "$d/top/tests/"
  cp -a "$DS_BUILD/libdualstack-preload.so" "$DS_BUILD/dualstack-connect" \
    "$DS_BUILD/dualstack-listen" "$d/top/build/"
  chmod -R a+rX "$d/top"
  out=$(lab_run a setpriv --reuid=65534 --regid=65534 --clear-groups \
        env DS_BUILD="$d/top/build" HOME="$d" \
        bash "$d/top/tools/demo.sh" 2>&1)
  status=$?
  echo "$out" | sed 's/^/    /'
  # The demo writes its timelines under $DS_BUILD/demo, which nobody may
  # not write: it must say so and go on, or manage.
  assertEquals "exit 0" 0 $status
  assertContains "$out" "On loopback (no root"
  assertContains "after: IPv6 to ::1" "$out" "ipv6 [::1]:"
  assertContains "says what it skipped" "$out" "skipped: the private lab"
  assertContains "ran to the end" "$out" "demo: done in"
  rm -rf "$d"
}

ds_run_shunit
