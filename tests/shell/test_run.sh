#!/bin/bash
# tools/dualstack-run: LD_PRELOAD set and appended (never clobbered),
# arguments kept intact, options mapped to the DUALSTACK_* variables,
# static and setuid programs named; and observe mode (--observe) changes
# nothing, in a lab pair with real programs.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$DS_TOP/tests/lab/lab.sh"

RUN=$DS_TOP/tools/dualstack-run
SHIM=$(cd "$DS_BUILD" && pwd -P)/libdualstack-preload.so
# dualstack-run takes build/ beside it; a sanitizer build is elsewhere.
RUNS=("$RUN" --shim "$SHIM")

suite_tearDown() { lab_cleanup; }
suite_oneTimeTearDown() { lab_cleanup; }

test_sets_ld_preload() {
  out=$(env -u LD_PRELOAD "$RUN" -- sh -c 'printf %s "$LD_PRELOAD"')
  assertEquals "the shim from build/ beside the script, absolute" \
    "$(cd "$DS_TOP/build" && pwd -P)/libdualstack-preload.so" "$out"
  out=$(cd /tmp && env -u LD_PRELOAD "${RUNS[@]}" -- sh -c 'printf %s "$LD_PRELOAD"')
  assertEquals "--shim" "$SHIM" "$out"
}

test_appends_to_ld_preload() {
  # Any other preloadable library; not one of ours, which is a sanitizer
  # build under SANITIZE and cannot be preloaded into sh.
  other=$(ldd /bin/sh | awk '/libc.so/ {print $3}')
  out=$(LD_PRELOAD=$other "${RUNS[@]}" -- sh -c 'printf %s "$LD_PRELOAD"')
  assertEquals "appended after the existing entry" "$other $SHIM" "$out"
  out=$(LD_PRELOAD="$other $SHIM" "${RUNS[@]}" -- sh -c 'printf %s "$LD_PRELOAD"')
  assertEquals "not added twice" "$other $SHIM" "$out"
}

test_keeps_arguments_intact() {
  out=$("${RUNS[@]}" -- printf '[%s]\n' "a b" "" "c  d" '$HOME' '*' "-x" "--")
  assertEquals "every argument as given" \
    "$(printf '[%s]\n' "a b" "" "c  d" '$HOME' '*' "-x" "--")" "$out"
  out=$("${RUNS[@]}" printf '%s|' "no dashes" x)
  assertEquals "CMD without --" "no dashes|x|" "$out"
}

test_options_set_the_variables() {
  out=$(cd /tmp && env -u DUALSTACK_TRACE "${RUNS[@]}" --trace t.json \
        --observe --prefer ipv4 --attempt-delay 100 --no-listen -- \
        sh -c 'echo "$DUALSTACK_TRACE $DUALSTACK_OBSERVE $DUALSTACK_PREFER $DUALSTACK_ATTEMPT_DELAY_MS $DUALSTACK_LISTEN"')
  assertEquals "$(cd /tmp && pwd)/t.json 1 ipv4 100 off" "$out"
  out=$("${RUNS[@]}" --trace=stderr --prefer=ipv6 -- sh -c 'echo "$DUALSTACK_TRACE $DUALSTACK_PREFER"')
  assertEquals "--opt=value" "stderr ipv6" "$out"
}

test_usage_errors_exit_64() {
  "${RUNS[@]}" --prefer ipv5 -- true 2>/dev/null
  assertEquals "bad --prefer" 64 $?
  "${RUNS[@]}" --attempt-delay soon -- true 2>/dev/null
  assertEquals "bad --attempt-delay" 64 $?
  "${RUNS[@]}" -- 2>/dev/null
  assertEquals "no command" 64 $?
  "${RUNS[@]}" --bogus -- true 2>/dev/null
  assertEquals "unknown option" 64 $?
  "${RUNS[@]}" -- /nonexistent/cmd 2>/dev/null
  assertEquals "command not found" 127 $?
  "$RUN" --shim /nonexistent.so -- true 2>/dev/null
  assertEquals "shim not found" 69 $?
}

test_static_program_is_named_and_still_runs() {
  bb=$(command -v busybox)
  [ -n "$bb" ] || { ds_skip "busybox-static not installed"; return 0; }
  err=$("${RUNS[@]}" -- "$bb" true 2>&1 >/dev/null)
  assertEquals "it ran" 0 $?
  assertContains "$err" "statically linked"
  err=$("${RUNS[@]}" -- nc.traditional -h 2>&1 >/dev/null)
  assertNotContains "a dynamic program is not called static" "$err" "statically"
}

# Debian builds Go programs stripped, without the "Go build ID" string;
# they keep a .note.go.buildid section and the "\xff Go buildinf:" header
# of .go.buildinfo. Two C programs dressed that way stand for them.
test_stripped_go_program_is_named() {
  command -v objcopy >/dev/null || { ds_skip "objcopy not installed"; return 0; }
  d=$(mktemp -d)
  printf 'int main(void) { return 0; }\n' > "$d/m.c"
  cc -o "$d/plain" "$d/m.c" || { rm -rf "$d"; fail "cc"; return; }
  printf 'Go\0\0\0\0\0\0abc/def' > "$d/note"
  objcopy --add-section .note.go.buildid="$d/note" "$d/plain" "$d/note-go"
  printf '\377 Go buildinf:\010\002' > "$d/info"
  objcopy --add-section .go.buildinfo="$d/info" "$d/plain" "$d/info-go"
  strip "$d/note-go" "$d/info-go"
  for p in note-go info-go; do
    err=$("${RUNS[@]}" -- "$d/$p" 2>&1 >/dev/null)
    assertEquals "$p ran" 0 $?
    assertContains "$p named" "$err" "is a Go program"
  done
  err=$("${RUNS[@]}" -- "$d/plain" 2>&1 >/dev/null)
  assertNotContains "a C program is not called Go" "$err" "Go program"
  rm -rf "$d"
}

test_setuid_program_is_named() {
  ds_require_root || return 0
  d=$(mktemp -d)
  chmod 755 "$d"
  cp /bin/true "$d/suidtrue"
  chmod 4755 "$d/suidtrue"
  # nobody runs copies of the script and the shim: the checkout may be
  # where nobody cannot go.
  cp "$RUN" "$d/dualstack-run"
  cp "$SHIM" "$d/shim.so"
  chmod 755 "$d/dualstack-run" "$d/shim.so"
  err=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$d/dualstack-run" --shim "$d/shim.so" -- "$d/suidtrue" 2>&1)
  assertEquals "it ran" 0 $?
  assertContains "$err" "setuid"
  err=$("${RUNS[@]}" -- "$d/suidtrue" 2>&1)
  assertNotContains "root is not warned (no identity change)" "$err" "setuid"
  rm -rf "$d"
}

# Observe mode translates nothing: an IPv6-only name still fails, and a
# dual-stack name with black-holed IPv6 still goes straight to IPv4 with no
# race; the trace shows what happened.
test_observe_changes_nothing() {
  need_lab || return 0
  lab_pair
  lab_hosts a "2001:db8::2 v6only.test" "192.0.2.2 both.test" \
    "2001:db8::2 both.test"
  lab_bg b "$DS_BUILD/dualstack-listen" -k --echo 80 > /dev/null 2>&1
  lab_wait_port b tcp 80
  t=$LAB_TMP/trace.json
  lab_run a "${RUNS[@]}" --observe --trace "$t" -- \
    nc.traditional -z -w 3 v6only.test 80 2>/dev/null
  assertNotEquals "IPv6-only name fails when observed" 0 $?
  assertTrue "the lookup was traced, with no address" \
    "grep -q '\"event\":\"lookup\".*\"name\":\"v6only.test\".*\"result\":\[\]' $t"
  assertFalse "no connection was made" "grep -q '\"event\":\"connect\"' $t"
  lab_run a "${RUNS[@]}" --trace "$t.shim" -- \
    nc.traditional -z -w 3 v6only.test 80 2>/dev/null
  assertEquals "the same with the shim connects" 0 $?
  : > "$t"
  lab_blackhole b 2001:db8::2 80 tcp
  t0=$(date +%s%N)
  lab_run a "${RUNS[@]}" --observe --trace "$t" -- \
    nc.traditional -z -w 3 both.test 80 2>/dev/null
  assertEquals "dual-stack name connects when observed" 0 $?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  assertTrue "observed connect is IPv4 ok" \
    "grep -q '\"event\":\"connect\".*\"addr\":\"192.0.2.2\".*\"family\":\"ipv4\".*\"result\":\"ok\"' $t"
  assertFalse "no race when observed" "grep -q '\"event\":\"attempt\"' $t"
  # No 250 ms attempt delay on the black-holed IPv6: well under it even on
  # a loaded machine is not guaranteed, so bound the whole run loosely.
  assertTrue "no wait for the black hole (${ms} ms)" "[ $ms -lt 2500 ]"
}

ds_run_shunit
