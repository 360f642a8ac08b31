# SPDX-License-Identifier: MIT
# pysync - see README.md. `make test` and `make demo` do all the set-up; `make help`.
CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
# The version lives in include/pysync/base.h; the soname, pysync.pc and the man
# pages' footers follow it (check-man checks the footers).
# Before 1.0 every minor version may change the ABI, so it is part of the soname.
version_part = $(shell sed -n 's/^\#define PS_VERSION_$(1) *\([0-9]*\).*/\1/p' include/pysync/base.h)
MAJOR   := $(call version_part,MAJOR)
MINOR   := $(call version_part,MINOR)
VERSION := $(MAJOR).$(MINOR).$(call version_part,PATCH)
SOMAJOR := $(if $(filter 0,$(MAJOR)),$(MAJOR).$(MINOR),$(MAJOR))

WARN     = -std=c11 -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
LIBFLAGS = $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -D_GNU_SOURCE -Iinclude -Ilib -pthread
TESTFLAGS= $(WARN) $(CFLAGS) -D_GNU_SOURCE -Iinclude -pthread

LIB_SRC  = $(filter-out shm/pysync-stat.c,$(wildcard lib/*.c shm/*.c))
TEST_SRC = $(wildcard tests/test_*.c)
BENCH_SRC= $(wildcard tests/bench/*.c)
STRESS_SRC=$(wildcard tests/stress/*.c)
EX_SRC   = $(wildcard examples/*.c)
MAN_SRC  = $(wildcard man/man1/*.1 man/man3/*.3 man/man7/*.7)
HEADERS  = $(wildcard include/pysync/*.h)

B        = build
OBJ      = $(LIB_SRC:%.c=$(B)/%.o)
STATIC   = $(B)/libpysync.a
SHARED   = $(B)/libpysync.so.$(VERSION)
EXAMPLES = $(EX_SRC:examples/%.c=$(B)/examples/%)
BENCHES  = $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%)
STRESSES = $(STRESS_SRC:tests/stress/%.c=$(B)/stress/%)

# Programs shown by `make demo`, in order (examples/NAME.c).
DEMOS    = tickets producer_consumer thread_pool traffic_light

.PHONY: verify deps-verify all help check check-license check-symbols check-readme test debug deps demo examples run-examples sanitize tsan stress check-man install uninstall \
        install-check bench bench-build deps-bench clean
.DELETE_ON_ERROR:

all: $(STATIC) $(B)/libpysync.so $(B)/pysync-stat

help:
	@echo "make            build $(STATIC), $(B)/libpysync.so (soname libpysync.so.$(SOMAJOR))"
	@echo "                and $(B)/pysync-stat, which shows what a manager segment holds"
	@echo "make test       build, lint the man pages and run their examples, check the"
	@echo "                exported symbols and an installed copy, run the examples and the"
	@echo "                Criterion tests"
	@echo "make check      the same as make test"
	@echo "make demo       build and run the showcase: $(DEMOS)"
	@echo "make deps       install the Debian packages the tests need (as root), or say which"
	@echo "make debug      the tests against a build with the library's assertions on"
	@echo "make sanitize   the tests under AddressSanitizer and UBSan"
	@echo "make tsan       the stress programs and examples under ThreadSanitizer"
	@echo "make stress     the long stress programs (tests/stress/)"
	@echo "make verify     check the protocol models (tests/models/*.pml) with SPIN"
	@echo "make bench      the benchmarks against pthreads, GLib and Python's figures"
	@echo "make check-man  lint the man pages, compile and run their EXAMPLES"
	@echo "make check-symbols / check-license / check-readme / install-check"
	@echo "                the parts of make test: ps_-only exports, SPDX lines, the README"
	@echo "                example, an install with pkg-config"
	@echo "make examples   build examples/ into $(B)/examples/"
	@echo "make run-examples  run every example as a smoke test (part of make test)"
	@echo "make install    PREFIX=/usr/local DESTDIR= LIBDIR=PREFIX/lib; make uninstall"
	@echo "make clean      remove $(B)/"

check: test

$(B)/%.o: %.c $(HEADERS) $(wildcard lib/*.h shm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAGS) -c $< -o $@

# Only the PS_EXTERN (ps_) functions are visible. The static library holds one
# relocatable object whose hidden symbols are made local, so internal names
# (futex_wait, object_alloc...) can never clash with a program's own.
$(STATIC): $(OBJ)
	rm -f $@
	$(LD) -r -o $(B)/pysync.o $^
	objcopy --localize-hidden $(B)/pysync.o
	ar rcs $@ $(B)/pysync.o

$(SHARED): $(OBJ)
	$(CC) -shared -pthread -Wl,-soname,libpysync.so.$(SOMAJOR) -o $@ $^

$(B)/libpysync.so: $(SHARED)
	ln -sf libpysync.so.$(VERSION) $(B)/libpysync.so.$(SOMAJOR)
	ln -sf libpysync.so.$(VERSION) $@

# pysync-stat(1) reads segments with internals the libraries hide: it links the
# objects themselves.
$(B)/pysync-stat: shm/pysync-stat.c $(OBJ)
	$(CC) $(LIBFLAGS) -o $@ $< $(OBJ) $(LDEXTRA)

# ---- dependencies (Debian) ----
deps:
	@missing=""; \
	[ -f /usr/include/criterion/criterion.h ] || missing="$$missing libcriterion-dev"; \
	command -v mandoc >/dev/null || missing="$$missing mandoc"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing:$$missing -- run: sudo apt-get install$$missing"; exit 1; fi; \
	fi

deps-bench: deps
	@pkg-config --exists glib-2.0 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libglib2.0-dev >/dev/null; \
	  else echo "run: sudo apt-get install libglib2.0-dev"; exit 1; fi; }
	@[ -f $(BOOST_HDR) ] && command -v $(CXX) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing: libboost-dev g++ (Boost.Interprocess, for bench_mpqueue)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        libboost-dev g++ >/dev/null; } || \
	    echo "boost: could not install libboost-dev; bench_mpqueue runs without Boost"; \
	  else echo "boost: run: sudo apt-get install libboost-dev g++ (bench_mpqueue runs without it)"; fi; }

# ---- tests (Criterion): all test files in one runner ----
$(B)/tests/run: $(TEST_SRC) $(wildcard tests/*.h) $(STATIC) | deps
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) -o $@ $(TEST_SRC) $(STATIC) -lcriterion -lm

# An unrelated process for the manager tests (exec'ed by tests/test_manager.c).
$(B)/tests/manager_helper: tests/manager_helper.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) -o $@ $< $(STATIC)
$(B)/tests/run: $(B)/tests/manager_helper $(B)/pysync-stat
$(B)/tests/run-san: $(B)/tests/manager_helper $(B)/pysync-stat

test: all check-symbols check-license check-man check-readme install-check run-examples $(B)/tests/run
	$(B)/tests/run --jobs 2

# Both libraries export ps_ names only (API.md); the count is in the closing line.
check-symbols: all
	@set -e; dyn=$$(nm -D --defined-only $(SHARED) | awk '{print $$3}'); \
	sta=$$(nm -g --defined-only $(STATIC) | awk 'NF == 3 {print $$3}'); \
	bad=$$(printf '%s\n%s\n' "$$dyn" "$$sta" | grep -v '^ps_' | sort -u); \
	[ -z "$$bad" ] || { echo "check-symbols: not ps_: $$bad"; exit 1; }; \
	echo "check-symbols: $$(echo "$$dyn" | wc -l) exported, all ps_"

# LICENSE is MIT; every source file says so on one of its first lines.
SOURCES = $(wildcard include/pysync/*.h lib/*.[ch] shm/*.[ch] tests/*.[ch] tests/*/*.[ch] \
                     tests/*.sh examples/*.c) Makefile .ci/run
check-license:
	@bad=$$(for f in $(SOURCES); do head -3 $$f | grep -q 'SPDX-License-Identifier: MIT' || echo $$f; done); \
	[ -z "$$bad" ] || { echo "check-license: no SPDX line in: $$bad"; exit 1; }; \
	echo "check-license: $(words $(SOURCES)) files carry the MIT SPDX line"

# The README's C example is a program that must build and run as shown.
check-readme: $(STATIC)
	@set -e; d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
	awk '/^```c$$/{p=1; next} /^```$$/{p=0} p' README.md > $$d/readme.c; \
	$(CC) -std=c11 -Wall -Wextra -Werror -Iinclude -o $$d/readme $$d/readme.c $(STATIC) -pthread; \
	$$d/readme >/dev/null; echo "check-readme: the README example builds and runs"

# ---- debug: the library's own contracts (PS_ASSERT, lib/debug.h) checked ----
debug: | deps
	$(MAKE) B=$(B)/debug CFLAGS="-O1 -g -DPS_DEBUG" $(B)/debug/tests/run
	$(B)/debug/tests/run --jobs 2

# ---- verify: protocol models checked by SPIN against every interleaving ----
MODELS = $(wildcard tests/models/*.pml)
deps-verify:
	@command -v spin >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spin >/dev/null; \
	  else echo "run: sudo apt-get install spin"; exit 1; fi; }

verify: | deps-verify
	@set -e; for m in $(MODELS); do d=$(B)/verify/$$(basename $$m .pml); mkdir -p $$d; \
	  (cd $$d && spin -a $(CURDIR)/$$m >/dev/null && $(CC) -O2 -w -o pan pan.c && \
	   ./pan -m200000 > pan.out) ; \
	  grep -q "errors: 0" $$d/pan.out || { cat $$d/pan.out; exit 1; }; \
	  echo "verify: $$m: $$(grep -o '[0-9]* states, stored' $$d/pan.out), no errors"; done

# ---- sanitizers ----
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
sanitize: | deps
	$(MAKE) B=$(B)/asan CFLAGS="-O1 -g $(SAN_FLAGS)" LDEXTRA="$(SAN_FLAGS)" $(B)/asan/tests/run-san
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  $(B)/asan/tests/run-san --jobs 2

$(B)/tests/run-san: $(TEST_SRC) $(wildcard tests/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) -o $@ $(TEST_SRC) $(STATIC) -lcriterion -lm $(LDEXTRA)

# tsan: Criterion aborts under TSan (Snaipe/Criterion#274): plain programs only.
TSAN_FLAGS = -fsanitize=thread -fno-omit-frame-pointer
tsan:
	$(MAKE) B=$(B)/tsan CFLAGS="-O1 -g $(TSAN_FLAGS)" LDEXTRA="$(TSAN_FLAGS)" tsan-build
	@set -e; for p in $(STRESS_SRC:tests/stress/%.c=$(B)/tsan/stress/%) \
	                 $(EX_SRC:examples/%.c=$(B)/tsan/examples/%); do \
	  echo "== tsan $$p"; TSAN_OPTIONS="halt_on_error=1 exitcode=66" $$p >/dev/null; done; \
	  echo "tsan: clean"

tsan-build: $(STRESSES) $(EXAMPLES)

# ---- plain programs: stress, examples, benchmarks ----
$(B)/stress/%: tests/stress/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) -o $@ $< $(STATIC) -lm $(LDEXTRA)

$(B)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) -o $@ $< $(STATIC) -lm $(LDEXTRA)

stress: $(STRESSES)
	@set -e; for p in $(STRESSES); do echo "== $$p"; $$p; done

examples: $(EXAMPLES)

demo: $(DEMOS:%=$(B)/examples/%)
	@set -e; for d in $(DEMOS); do echo "== examples/$$d.c"; $(B)/examples/$$d; done

# Each example checks its own result and exits non-zero if it is wrong, so
# each is a smoke test: one line per program, the output of a failing one.
run-examples: $(EXAMPLES)
	@set -e; log=$(B)/examples/run-examples.log; \
	for p in $(EXAMPLES) "$(B)/examples/tickets --no-lock"; do \
	  if timeout -k 2 60 $$p >$$log 2>&1; then echo "run-examples: ok $$p"; \
	  else rc=$$?; cat $$log; echo "run-examples: FAIL $$p (exit $$rc)"; exit 1; fi; \
	done

GLIB = $$(pkg-config --cflags --libs glib-2.0)
$(B)/bench/%: tests/bench/%.c $(wildcard tests/bench/*.h) $(STATIC) | deps-bench
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) -Wno-error=deprecated-declarations -o $@ $< $(STATIC) -lm $(GLIB)

# Boost.Interprocess message_queue for bench_mpqueue: a C++ program it runs
# (benchmark only, header-only Boost). Not built without Boost: the bench then
# says "boost: not available" and runs the rest.
BOOST_HDR = /usr/include/boost/interprocess/ipc/message_queue.hpp
BOOST_MQ  = $(B)/bench/boost_mq
BOOST_CXXFLAGS = -O2 -g -Wall -Wextra -Werror
$(BOOST_MQ): tests/bench/boost_mq.cpp | deps-bench
	@mkdir -p $(dir $@)
	@if [ -f $(BOOST_HDR) ] && command -v $(CXX) >/dev/null; then \
	  echo "$(CXX) $(BOOST_CXXFLAGS) -o $@ $< -pthread -lrt"; \
	  $(CXX) $(BOOST_CXXFLAGS) -o $@ $< -pthread -lrt; \
	else echo "boost_mq: not built (no Boost headers or $(CXX)); bench_mpqueue runs without it"; fi

bench-build: $(BENCHES) $(BOOST_MQ)

bench: $(BENCHES) $(BOOST_MQ)
	@set -e; for p in $(BENCHES); do echo "== $$p"; $$p; done

# ---- man pages ----
check-man: $(STATIC) | deps
	@out=$$(mandoc -Tlint -Wwarning $(MAN_SRC) 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "check-man: $(words $(MAN_SRC)) pages clean"
	@bad=$$(grep -L '^\.Os pysync $(VERSION)$$' $(MAN_SRC)); \
	[ -z "$$bad" ] || { echo "check-man: footer is not '.Os pysync $(VERSION)': $$bad"; exit 1; }
	@tests/man_examples.sh "$(CC)" $(STATIC) include $(filter-out man/man1/%,$(MAN_SRC))

# ---- install ----
LIBDIR = $(PREFIX)/lib
INCDIR = $(PREFIX)/include
MANDIR = $(PREFIX)/share/man
PCDIR  = $(LIBDIR)/pkgconfig

install: all
	install -d $(DESTDIR)$(INCDIR)/pysync $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR) \
	  $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(B)/pysync-stat $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(HEADERS) $(DESTDIR)$(INCDIR)/pysync/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libpysync.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpysync.so.$(SOMAJOR)
	ln -sf libpysync.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpysync.so
	sed -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	  pysync.pc.in \
	  > $(DESTDIR)$(PCDIR)/pysync.pc
	install -m 644 $(wildcard man/man1/*.1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(wildcard man/man3/*.3) $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(wildcard man/man7/*.7) $(DESTDIR)$(MANDIR)/man7/
	@# one .so link page per function named in a page's NAME section (.Nm)
	@for p in $(wildcard man/man3/*.3); do page=$$(basename $$p); \
	  for fn in $$(sed -n 's/^\.Nm \([a-z_0-9]*\).*/\1/p' $$p | sort -u); do \
	    [ "$$fn.3" = "$$page" ] || echo ".so man3/$$page" > $(DESTDIR)$(MANDIR)/man3/$$fn.3; \
	  done; done

uninstall:
	rm -rf $(DESTDIR)$(INCDIR)/pysync
	rm -f $(DESTDIR)$(LIBDIR)/libpysync.* $(DESTDIR)$(PCDIR)/pysync.pc $(DESTDIR)$(PREFIX)/bin/pysync-stat
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(wildcard man/man1/*.1)))
	@for p in $(wildcard man/man3/*.3); do page=$$(basename $$p); \
	  for fn in $$(sed -n 's/^\.Nm \([a-z_0-9]*\).*/\1/p' $$p | sort -u); do \
	    rm -f $(DESTDIR)$(MANDIR)/man3/$$fn.3; done; \
	  rm -f $(DESTDIR)$(MANDIR)/man3/$$page; done
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(wildcard man/man7/*.7)))

# Installs into a scratch DESTDIR with a custom LIBDIR, builds and runs a program
# against it with pkg-config (and compiles it as C++), then checks that uninstall
# removes it all.
install-check: all
	@set -e; d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
	inst="PREFIX=/opt/pysync LIBDIR=/opt/pysync/lib/multiarch DESTDIR=$$d"; \
	$(MAKE) -s install $$inst >/dev/null; \
	export PKG_CONFIG_PATH=$$d/opt/pysync/lib/multiarch/pkgconfig PKG_CONFIG_SYSROOT_DIR=$$d; \
	$(CC) -std=c11 -Wall -Werror -o $$d/prog tests/install_prog.c $$(pkg-config --cflags --libs pysync); \
	LD_LIBRARY_PATH=$$d/opt/pysync/lib/multiarch $$d/prog; \
	c++ -x c++ -Wall -Werror -fsyntax-only $$(pkg-config --cflags pysync) tests/install_prog.c; \
	test -f $$d/opt/pysync/share/man/man3/ps_lock_acquire.3; \
	test -x $$d/opt/pysync/bin/pysync-stat -a -f $$d/opt/pysync/share/man/man1/pysync-stat.1; \
	$(MAKE) -s uninstall $$inst; \
	left=$$(find $$d/opt -type f); [ -z "$$left" ] || { echo "uninstall left: $$left"; exit 1; }; \
	echo "install-check: ok (LIBDIR=/opt/pysync/lib/multiarch)"

clean:
	rm -rf $(B)
