#!/bin/bash
# Build artifacts: exported symbols, soname, pkg-config, install/uninstall,
# and a program built against the installed library.
. "$(dirname "$0")/common.sh"

suite_setUp() {
  tmp=$(mktemp -d)
}

suite_tearDown() {
  rm -rf "$tmp"
}

test_only_ds_symbols_are_exported() {
  lib="$DS_BUILD/libdualstack.so"
  assertTrue "library exists" "[ -f $lib ]"
  nm -D --defined-only "$lib" | awk '{print $3}' | sort > "$tmp/syms"
  assertTrue "exports ds_reactor_new" "grep -qx ds_reactor_new $tmp/syms"
  assertTrue "exports ds_addr_parse" "grep -qx ds_addr_parse $tmp/syms"
  others=$(grep -v '^ds_' "$tmp/syms" | tr '\n' ' ')
  assertEquals "non-ds_ exports" "" "$others"
  assertEquals "internal ds__ names hidden" "" \
    "$(grep '^ds__' "$tmp/syms" | tr '\n' ' ')"
}

test_soname_and_versioned_file() {
  soname=$(readelf -d "$DS_BUILD/libdualstack.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  assertEquals "soname" "libdualstack.so.0" "$soname"
  assertTrue "versioned file" "[ -f $DS_BUILD/libdualstack.so.0.1.0 ]"
  assertTrue "static library" "[ -f $DS_BUILD/libdualstack.a ]"
  assertTrue "pkg-config names c-ares privately" \
    "grep -q '^Libs.private: .*-lcares' $DS_BUILD/dualstack.pc"
}

test_install_build_against_and_uninstall() {
  dest="$tmp/root"
  (cd "$DS_TOP" && make -s install DESTDIR="$dest" PREFIX=/usr \
     SANITIZE="$DS_SANITIZE") > "$tmp/install.log" 2>&1
  assertEquals "make install" 0 $?
  assertTrue "header installed" "[ -f $dest/usr/include/dualstack.h ]"
  assertTrue "pc installed" "[ -f $dest/usr/lib/pkgconfig/dualstack.pc ]"
  cat > "$tmp/prog.c" <<'C'
#include <dualstack.h>
#include <stdio.h>
int main(void) {
  ds_addr a;
  char buf[DS_ADDR_STRLEN];
  if (ds_addr_parse(&a, "2001:db8:0:0:1::1", 80, NULL, 0) != 0) return 1;
  ds_addr_format(&a, buf, sizeof buf, DS_ADDR_FMT_PORT);
  printf("%s %s\n", buf, ds_err_name(DS_ENOTFOUND));
  return 0;
}
C
  san=
  [ -n "${DS_SANITIZE:-}" ] && san="-fsanitize=$DS_SANITIZE"
  cflags=$(PKG_CONFIG_PATH="$dest/usr/lib/pkgconfig" \
    PKG_CONFIG_SYSROOT_DIR="$dest" pkg-config --cflags dualstack)
  libs=$(PKG_CONFIG_PATH="$dest/usr/lib/pkgconfig" \
    PKG_CONFIG_SYSROOT_DIR="$dest" pkg-config --libs dualstack)
  cc $san $cflags -o "$tmp/prog" "$tmp/prog.c" $libs 2> "$tmp/cc.log"
  assertEquals "compiles with pkg-config flags: $(cat "$tmp/cc.log")" 0 $?
  out=$(LD_LIBRARY_PATH="$dest/usr/lib" "$tmp/prog")
  assertEquals "program output" "[2001:db8::1:0:0:1]:80 DS_ENOTFOUND" "$out"
  (cd "$DS_TOP" && make -s uninstall DESTDIR="$dest" PREFIX=/usr) \
    > /dev/null 2>&1
  left=$(find "$dest" -type f | tr '\n' ' ')
  assertEquals "uninstall leaves no file" "" "$left"
}

ds_run_shunit
