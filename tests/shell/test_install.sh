#!/bin/bash
# make install DESTDIR=... installs every file listed in the README; a C
# program built with pkg-config against the installed copy links and runs;
# the installed dualstack-run finds the installed shim; the README's C
# example is examples/connect.c, word for word; make uninstall removes it
# all.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

D=
suite_setUp() {
  D=$(mktemp -d)
}
suite_tearDown() {
  [ -n "$D" ] && rm -rf "$D"
}

FILES="bin/dualstack-run bin/dualstack-compare bin/dualstack-connect
bin/dualstack-listen include/dualstack.h lib/libdualstack.so
lib/libdualstack.so.0 lib/libdualstack.so.0.1.0 lib/libdualstack.a
lib/libdualstack-preload.so lib/pkgconfig/dualstack.pc
share/man/man1/dualstack-run.1 share/man/man1/dualstack-compare.1
share/man/man1/dualstack-connect.1 share/man/man1/dualstack-listen.1
share/man/man3/libdualstack.3 share/man/man8/libdualstack-preload.8"

install_to() { # DESTDIR
  make -C "$DS_TOP" --no-print-directory install DESTDIR="$1" \
    PREFIX=/usr/local > "$1.log" 2>&1
}

test_installs_every_file() {
  install_to "$D/root"
  assertEquals "make install exits 0" 0 $?
  for f in $FILES; do
    assertTrue "installed: $f" "[ -e $D/root/usr/local/$f ]"
  done
  for f in dualstack-run dualstack-compare dualstack-connect dualstack-listen; do
    assertTrue "executable: $f" "[ -x $D/root/usr/local/bin/$f ]"
  done
  n=$(cd "$D/root/usr/local" && find . -type f -o -type l | wc -l)
  assertEquals "nothing else" "$(echo $FILES | wc -w)" "$n"
  assertContains "the installed dualstack-run knows the installed shim" \
    "$(cat "$D/root/usr/local/bin/dualstack-run")" \
    "installed_shim=/usr/local/lib/libdualstack-preload.so"
  make -C "$DS_TOP" --no-print-directory uninstall DESTDIR="$D/root" \
    PREFIX=/usr/local > /dev/null 2>&1
  assertEquals "make uninstall exits 0" 0 $?
  n=$(find "$D/root" -type f -o -type l | wc -l)
  assertEquals "uninstall removed every file" 0 "$n"
}

test_pkg_config_program_links_and_runs() {
  install_to "$D/root" || { fail "make install failed"; return 0; }
  # PKG_CONFIG_SYSROOT_DIR puts DESTDIR in front of the .pc file's paths.
  flags=$(PKG_CONFIG_PATH="$D/root/usr/local/lib/pkgconfig" \
          PKG_CONFIG_SYSROOT_DIR="$D/root" \
          pkg-config --cflags --libs dualstack)
  assertEquals "pkg-config knows dualstack" 0 $?
  assertContains "$flags" "-I$D/root/usr/local/include"
  # The command the README shows, with the installed copy.
  # Under SANITIZE the installed library is a sanitizer build: the
  # program links with the same runtime.
  san=
  [ -n "${DS_SANITIZE:-}" ] && san="-fsanitize=$DS_SANITIZE"
  cc $san "$DS_TOP/examples/connect.c" $flags -o "$D/connect" 2> "$D/cc.err"
  assertEquals "compiles and links: $(cat "$D/cc.err")" 0 $?
  assertTrue "linked against the installed libdualstack.so.0" \
    "LD_LIBRARY_PATH=$D/root/usr/local/lib ldd $D/connect | grep -q '$D/root/usr/local/lib/libdualstack.so.0'"
  # Loopback only, no preload: a listener on 127.0.0.1, port 0.
  out=$(LD_LIBRARY_PATH="$D/root/usr/local/lib" /usr/bin/python3 -c '
import socket, subprocess, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
p = s.getsockname()[1]
r = subprocess.run([sys.argv[1], "127.0.0.1", str(p)], capture_output=True,
                   text=True, timeout=10)
print(r.returncode, r.stdout.strip(), "port=%d" % p)' "$D/connect")
  echo "    $out"
  assertTrue "the example connected: $out" \
    "echo '$out' | grep -Eq '^0 \+[0-9.]+ ms 127\.0\.0\.1:[0-9]+ connected port='"
}

test_installed_run_finds_the_installed_shim() {
  install_to "$D/root" || { fail "make install failed"; return 0; }
  out=$(env -u LD_PRELOAD "$D/root/usr/local/bin/dualstack-run" -- \
        sh -c 'printf %s "$LD_PRELOAD"')
  assertEquals "under DESTDIR, ../lib beside the script" \
    "$(cd "$D/root/usr/local/lib" && pwd -P)/libdualstack-preload.so" "$out"
}

test_readme_example_is_examples_connect_c() {
  # The README quotes the file between these markers, in a ```c block.
  quoted=$(sed -n '/<!-- examples\/connect.c -->/,/<!-- end -->/p' \
           "$DS_TOP/README.md" | sed '1,2d;$d' | sed '$d')
  assertEquals "README quotes examples/connect.c exactly" \
    "$(cat "$DS_TOP/examples/connect.c")" "$quoted"
}

test_man_pages_render_cleanly() {
  command -v groff > /dev/null || { ds_skip "groff not installed"; return 0; }
  for m in "$DS_TOP"/man/*.[138]; do
    err=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$m" 2>&1)
    assertEquals "$(basename "$m"): no groff warnings" "" "$err"
  done
  assertNotContains "every DUALSTACK_ variable in libdualstack-preload(8)" \
    "$(for v in DISABLE ATTEMPT_DELAY_MS RESOLUTION_DELAY_MS \
         FAMILY_COUNT PREFER CONNECT_TIMEOUT_MS MEMORY_S POOL SOURCE_POOL \
         LISTEN EXCLUDE NAT64 TRACE OBSERVE; do
         grep -q "^\.B DUALSTACK_$v\$" "$DS_TOP/man/libdualstack-preload.8" ||
           echo "missing $v"; done)" "missing"
}

ds_run_shunit
