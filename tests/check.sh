#!/bin/sh
# Runs every test: the C unit tests, then each shunit2 suite in tests/shell/.
# Counts tests (not assertions) and ends with one line
# "N passed, N failed, N skipped"; exits non-zero when anything failed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
DS_BUILD=${DS_BUILD:-build}
case "$DS_BUILD" in /*) ;; *) DS_BUILD="$top/$DS_BUILD" ;; esac
export DS_BUILD DS_TOP="$top"
pass=0 fail=0 skip=0

add_counts() { # "unit: P passed, F failed, S skipped" line on stdin
  line=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    echo "  (no result line: counted as one failure)"
    fail=$((fail + 1))
    return
  fi
  set -- $(echo "$line" | tr -cs '0-9' ' ')
  pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + ${3:-0}))
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Unit tests, except those named lab_*: they run inside namespace A of a
# lab pair (tests/lab/lab.sh run-pair), which needs root. Without the lab
# they run bare and skip themselves, saying why.
run_unit() { # label, then the runner's command line
  label=$1; shift
  echo "== $label"
  "$@" > "$tmp/unit.out" 2>&1
  status=$?
  cat "$tmp/unit.out"
  add_counts < "$tmp/unit.out"
  if [ $status -ne 0 ] && ! grep -q '^FAIL' "$tmp/unit.out"; then
    fail=$((fail + 1)); echo "  unit runner exited $status"
  fi
}
run_unit "unit tests" "$DS_BUILD/tests/unit" -x lab_ ${DS_TESTS:-}
if [ "$(id -u)" = 0 ]; then
  run_unit "unit tests in a lab pair" bash "$top/tests/lab/lab.sh" run-pair -- \
    "$DS_BUILD/tests/unit" lab_
else
  run_unit "unit tests needing a lab" "$DS_BUILD/tests/unit" lab_
fi

for suite in "$top"/tests/shell/test_*.sh; do
  [ -e "$suite" ] || continue
  name=$(basename "$suite" .sh)
  echo "== $name"
  DS_RESULTS="$tmp/$name.results" bash "$suite" > "$tmp/$name.out" 2>&1
  status=$?
  cat "$tmp/$name.out"
  p=0 f=0 s=0
  if [ -f "$tmp/$name.results" ]; then
    p=$(grep -c '^pass ' "$tmp/$name.results")
    f=$(grep -c '^fail ' "$tmp/$name.results")
    s=$(grep -c '^skip ' "$tmp/$name.results")
  fi
  if [ $status -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "  suite exited $status without a failed test: counted as one failure"
    f=1
  fi
  echo "$name: $p passed, $f failed, $s skipped"
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
