# Sourced by every shunit2 suite in tests/shell/. Counts tests, not
# assertions: after each test it appends "pass NAME", "fail NAME" or
# "skip NAME: reason" to $DS_RESULTS, which tests/check.sh adds up.
#
# A suite defines test_* functions, optionally suite_setUp/suite_tearDown
# (per test) and suite_oneTimeSetUp/suite_oneTimeTearDown, then ends with
#   ds_run_shunit
# A test that cannot run calls  ds_skip "reason"; return 0  (a non-zero
# return would count as a failure in shunit2), or  ds_require_root || return 0 .

DS_TOP=${DS_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/../.." && pwd)}
DS_BUILD=${DS_BUILD:-$DS_TOP/build}
DS_RESULTS=${DS_RESULTS:-/dev/null}
export DS_TOP DS_BUILD
_ds_skip_reason=

ds_skip() {
  _ds_skip_reason=$1
  echo "  SKIPPED: $1"
  startSkipping
}

# Skips the current test unless running as root.
ds_require_root() {
  [ "$(id -u)" = 0 ] && return 0
  ds_skip "needs root (network namespaces)"
  return 1
}

setUp() {
  _ds_skip_reason=
  if command -v suite_setUp >/dev/null 2>&1; then suite_setUp; fi
  return 0
}

tearDown() {
  if command -v suite_tearDown >/dev/null 2>&1; then suite_tearDown; fi
  # shunit2's exit trap calls tearDown once more, outside any test.
  [ -n "${_shunit_test_:-}" ] || return 0
  # shellcheck disable=SC2154
  if [ "${__shunit_testSuccess}" -ne "${SHUNIT_TRUE}" ]; then
    echo "fail ${_shunit_test_}" >> "$DS_RESULTS"
  elif [ -n "$_ds_skip_reason" ]; then
    echo "skip ${_shunit_test_}: $_ds_skip_reason" >> "$DS_RESULTS"
  else
    echo "pass ${_shunit_test_}" >> "$DS_RESULTS"
  fi
  return 0
}

oneTimeSetUp() {
  if command -v suite_oneTimeSetUp >/dev/null 2>&1; then suite_oneTimeSetUp; fi
  return 0
}

oneTimeTearDown() {
  if command -v suite_oneTimeTearDown >/dev/null 2>&1; then
    suite_oneTimeTearDown
  fi
  return 0
}

# Returns 0 when a lab can be made (tests/lab/lab.sh sourced); else says
# why the test is skipped and returns 1: `need_lab || return 0`.
need_lab() {
  ds_require_root || return 1
  lab_available && return 0
  ds_skip "$LAB_WHY"
  return 1
}

# Prints what LD_PRELOAD needs to run a tests/lab C program with the
# preloaded object $1 (the shim; empty for none): under SANITIZE the
# program is built with ASan, whose runtime must be loaded first (the shim
# itself has UBSan only).
ds_preload_c() {
  local asan=
  case "${DS_SANITIZE:-}" in
    *address*) asan="$(${CC:-cc} -print-file-name=libasan.so)" ;;
  esac
  echo "$asan${asan:+${1:+ }}$1"
}

ds_run_shunit() {
  SHUNIT_PARENT=$0
  SHUNIT_COLOR=none
  export SHUNIT_COLOR
  # shellcheck disable=SC1091
  . shunit2
}
