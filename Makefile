# dualstack: plain GNU Makefile.
#
#   make              build the library (build/)
#   make check        build, then run unit tests and shell suites
#   make check SANITIZE=address,undefined
#                     the same tests, built with sanitizers into build-san/
#   make deps         install the Debian packages the build and tests need
#   make demo         the shim's main job in a private lab (tools/demo.sh)
#   make install      PREFIX=/usr/local DESTDIR=
#   make V=1          show commands

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

SOMAJOR := 0
SOVERSION := 0.1.0

CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif

# A sanitizer build never shares objects with the normal one.
ifneq ($(strip $(SANITIZE)),)
B := build-san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
else
B := build
SANFLAGS :=
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

CARES_CFLAGS := $(shell pkg-config --cflags libcares 2>/dev/null)
CARES_LIBS := $(shell pkg-config --libs libcares 2>/dev/null || echo -lcares)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) \
              -fvisibility=hidden -fPIC -MMD -MP -Ilib $(CARES_CFLAGS)
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)

LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o)

UNIT_SRCS := $(sort $(wildcard tests/unit/*.c))
UNIT_OBJS := $(UNIT_SRCS:%.c=$(B)/obj/%.o)

# Each tests/lab/NAME.c is a standalone helper program (the test DNS server
# and its query tool): $(B)/lab/NAME.
LAB_SRCS := $(sort $(wildcard tests/lab/*.c))
LAB_BINS := $(LAB_SRCS:tests/lab/%.c=$(B)/lab/%)

# Each tools/NAME.c is a command-line tool on the library: $(B)/NAME,
# linked with the library's objects (static, so it runs from the tree).
TOOL_SRCS := $(sort $(wildcard tools/*.c))
TOOL_BINS := $(TOOL_SRCS:tools/%.c=$(B)/%)

# The preload shim: shim/*.c and the library's objects in one object that
# exports only the libc functions it interposes.
# Under SANITIZE the shim gets UBSan only, from objects of its own:
# preloading ASan into programs not built with it does not work.
SHIM_SRCS := $(sort $(wildcard shim/*.c))
ifneq ($(strip $(SANITIZE)),)
SHIM_SANFLAGS := $(if $(findstring undefined,$(SANITIZE)),-fsanitize=undefined \
                 -fno-sanitize-recover=undefined)
SHIM_OBJS := $(SHIM_SRCS:%.c=$(B)/obj-shim/%.o) \
             $(LIB_SRCS:%.c=$(B)/obj-shim/%.o)
else
SHIM_SANFLAGS :=
SHIM_OBJS := $(SHIM_SRCS:%.c=$(B)/obj/%.o) $(LIB_OBJS)
endif
PRELOAD := $(B)/libdualstack-preload.so

SHARED := $(B)/libdualstack.so.$(SOVERSION)
STATIC := $(B)/libdualstack.a
PCFILE := $(B)/dualstack.pc

DEPS_PKGS := build-essential pkg-config libc-ares-dev shunit2 iproute2 \
             nftables clang libclang-rt-14-dev python3 libuv1-dev \
             libevent-dev curl netcat-traditional strace busybox-static perl wget \
             libnss-myhostname openbsd-inetd micro-httpd
CORPUS_PKGS := netcat-openbsd socat ncat inetutils-telnet rsync dropbear-bin \
               w3m links redis-server redis-tools memcached finger fingerd \
               nginx-light lighttpd mini-httpd micro-httpd openbsd-inetd \
               ucspi-tcp openssh-client openssl git iproute2 nftables \
               python3 perl curl wget netcat-traditional busybox-static \
               lftp aria2 swaks libwww-perl lynx apache2-utils msmtp \
               mosquitto-clients whois bind9-dnsutils mosquitto tinyproxy \
               python3-aiosmtpd dnsmasq-base

# Each tools/bench/NAME.c is a benchmark program: $(B)/bench/NAME, linked
# with the library; NAME_uv and NAME_ev are the libuv and libevent peers.
BENCH_SRCS := $(sort $(wildcard tools/bench/*.c))
BENCH_BINS := $(BENCH_SRCS:tools/bench/%.c=$(B)/bench/%)
UV_LIBS = $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)
EV_LIBS = $(shell pkg-config --libs libevent 2>/dev/null || echo -levent)
$(filter %_uv,$(BENCH_BINS)): BENCH_LIBS = $(UV_LIBS)
$(filter %_ev,$(BENCH_BINS)): BENCH_LIBS = $(EV_LIBS)

.PHONY: all check deps install uninstall clean fuzz bench demo
.DEFAULT_GOAL := all

all: $(SHARED) $(STATIC) $(PCFILE) $(PRELOAD) $(LAB_BINS) $(TOOL_BINS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(if $(filter shim/%,$<),-Ishim) -c -o $@ $<

$(SHARED): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libdualstack.so.$(SOMAJOR) -Wl,-z,defs \
	  -o $@ $(LIB_OBJS) $(ALL_LDFLAGS) $(CARES_LIBS)
	$(Q)ln -sf libdualstack.so.$(SOVERSION) $(B)/libdualstack.so.$(SOMAJOR)
	$(Q)ln -sf libdualstack.so.$(SOMAJOR) $(B)/libdualstack.so

$(B)/obj-shim/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (shim)")
	$(Q)$(CC) $(filter-out $(SANFLAGS),$(ALL_CFLAGS)) $(SHIM_SANFLAGS) \
	  -Ishim -c -o $@ $<

$(PRELOAD): $(SHIM_OBJS) shim/exports.map
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-z,defs -Wl,--version-script=shim/exports.map \
	  -o $@ $(SHIM_OBJS) $(LDFLAGS) $(SHIM_SANFLAGS) $(CARES_LIBS) \
	  -ldl -lpthread

$(STATIC): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $(LIB_OBJS)

# The .pc file names the prefix; install writes it again with the prefix
# given there, so `make install PREFIX=/usr` never installs a stale one.
define write_pc
printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
  'includedir=$(INCDIR)' '' 'Name: dualstack' \
  'Description: dual-stack reactor, endpoints and Happy Eyeballs' \
  'Version: $(SOVERSION)' 'Libs: -L$${libdir} -ldualstack' \
  'Libs.private: $(CARES_LIBS)' 'Requires.private: libcares' \
  'Cflags: -I$${includedir}' > $(1)
endef

$(PCFILE): Makefile
	@mkdir -p $(dir $@)
	$(Q)$(call write_pc,$@)

# The _FORTIFY_SOURCE builds of a lab program include it whole.
$(B)/lab/shim_unwind_fortify: tests/lab/shim_unwind.c
$(B)/lab/shim_edges2_fortify: tests/lab/shim_edges2.c

$(B)/lab/%: tests/lab/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS)

$(B)/%: tools/%.c $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(CARES_LIBS)

$(B)/bench/%: tools/bench/%.c tools/bench/bench.h $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(ALL_LDFLAGS) $(CARES_LIBS) \
	  $(BENCH_LIBS)

# The unit test binary links the library objects directly, so tests may
# reach internal (hidden) functions.
$(B)/tests/unit: $(UNIT_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $(UNIT_OBJS) $(LIB_OBJS) $(ALL_LDFLAGS) $(CARES_LIBS) \
	  -lpthread

# The differential conformance program (tests/conform/, run by
# tests/shell/test_conform.sh with and without the shim); built with the
# unit tests so that make check has it.
$(B)/tests/conform: tests/conform/conform.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LDFLAGS)
$(B)/tests/unit: $(B)/tests/conform

# check installs what is missing first (when root), then builds in a
# sub-make, so the build sees the packages it needs.
check: deps
	$(Q)$(MAKE) --no-print-directory all $(B)/tests/unit
	$(Q)DS_BUILD=$(B) DS_SANITIZE="$(SANITIZE)" sh tests/check.sh

# libFuzzer target for the address parser (clang, libclang-rt-14-dev).
# FUZZ_SECONDS bounds the run; the corpus is copied so the repo stays clean.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
build/fuzz/fuzz_addr: tests/fuzz/fuzz_addr.c lib/addr.c lib/error.c lib/sys.c \
                      lib/dualstack.h lib/internal.h
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -Ilib \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ tests/fuzz/fuzz_addr.c lib/addr.c lib/error.c lib/sys.c

fuzz: deps
	$(Q)$(MAKE) --no-print-directory build/fuzz/fuzz_addr
	$(Q)rm -rf build/fuzz/corpus && mkdir -p build/fuzz/corpus && \
	  cp tests/fuzz/corpus/addr/* build/fuzz/corpus/
	build/fuzz/fuzz_addr -max_total_time=$(FUZZ_SECONDS) -max_len=256 \
	  build/fuzz/corpus

# Benchmarks against libuv, libevent, curl and Python (tools/bench/run.sh):
# a few minutes; writes tools/bench/README.md. Needs root for the lab.
bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BINS)
	$(Q)DS_BUILD=$(B) bash tools/bench/run.sh

# The corpus of real Debian programs, without and with the shim
# (tests/corpus/run.sh; a few minutes; needs root). Daemons must not start
# at install: a policy-rc.d denying them is put in place (and removed
# afterwards) unless one exists.
.PHONY: corpus
corpus: deps
	$(Q)sh tests/deps.sh $(CORPUS_PKGS)
	$(Q)$(MAKE) --no-print-directory all
	$(Q)DS_BUILD=$(B) bash tests/corpus/run.sh

deps:
	$(Q)sh tests/deps.sh $(DEPS_PKGS)

# demo installs what is missing when root; without root it goes on and
# shows what it can on loopback (tools/demo.sh says what it skipped).
demo:
	$(Q)sh tests/deps.sh $(DEPS_PKGS) || \
	  echo "demo: going on without the missing packages"
	$(Q)$(MAKE) --no-print-directory all
	$(Q)DS_BUILD=$(B) bash tools/demo.sh

# What install puts where (uninstall removes the same list).
INST_BINS := dualstack-connect dualstack-listen dualstack-run dualstack-compare
INST_MAN1 := dualstack-run.1 dualstack-compare.1 dualstack-connect.1 \
             dualstack-listen.1
INST_MAN3 := libdualstack.3
INST_MAN8 := libdualstack-preload.8

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) \
	  $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	  $(DESTDIR)$(MANDIR)/man8
	install -m 644 lib/dualstack.h $(DESTDIR)$(INCDIR)/dualstack.h
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libdualstack.so.$(SOVERSION) \
	  $(DESTDIR)$(LIBDIR)/libdualstack.so.$(SOMAJOR)
	ln -sf libdualstack.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libdualstack.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	$(call write_pc,$(DESTDIR)$(LIBDIR)/pkgconfig/dualstack.pc)
	install -m 755 $(PRELOAD) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(B)/dualstack-connect $(B)/dualstack-listen \
	  tools/dualstack-compare $(DESTDIR)$(BINDIR)/
	sed 's|^installed_shim=$$|installed_shim=$(LIBDIR)/libdualstack-preload.so|' \
	  tools/dualstack-run > $(DESTDIR)$(BINDIR)/dualstack-run
	chmod 755 $(DESTDIR)$(BINDIR)/dualstack-run
	install -m 644 $(addprefix man/,$(INST_MAN1)) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(addprefix man/,$(INST_MAN3)) $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(addprefix man/,$(INST_MAN8)) $(DESTDIR)$(MANDIR)/man8/

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/dualstack.h \
	  $(DESTDIR)$(LIBDIR)/libdualstack.so.$(SOVERSION) \
	  $(DESTDIR)$(LIBDIR)/libdualstack.so.$(SOMAJOR) \
	  $(DESTDIR)$(LIBDIR)/libdualstack.so $(DESTDIR)$(LIBDIR)/libdualstack.a \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/dualstack.pc \
	  $(DESTDIR)$(LIBDIR)/libdualstack-preload.so \
	  $(addprefix $(DESTDIR)$(BINDIR)/,$(INST_BINS)) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(INST_MAN1)) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(INST_MAN3)) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(INST_MAN8))

clean:
	rm -rf build build-san

-include $(LIB_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(SHIM_OBJS:.o=.d) $(TOOL_BINS:=.d) \
  $(BENCH_BINS:=.d)
