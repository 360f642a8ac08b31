# pysync - see README.md. `make test` and `make demo` do all the set-up.
CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
VERSION  = 0.1.0
SOMAJOR  = 0

WARN     = -std=c11 -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
LIBFLAGS = $(WARN) $(CFLAGS) -fPIC -D_GNU_SOURCE -Iinclude -Ilib -Ishm -pthread
TESTFLAGS= $(WARN) $(CFLAGS) -D_GNU_SOURCE -Iinclude -pthread

LIB_SRC  = $(wildcard lib/*.c shm/*.c)
TEST_SRC = $(wildcard tests/test_*.c)
BENCH_SRC= $(wildcard tests/bench/*.c)
STRESS_SRC=$(wildcard tests/stress/*.c)
EX_SRC   = $(wildcard examples/*.c)
MAN_SRC  = $(wildcard man/man3/*.3 man/man7/*.7)
HEADERS  = $(wildcard include/pysync/*.h)

B        = build
OBJ      = $(LIB_SRC:%.c=$(B)/%.o)
STATIC   = $(B)/libpysync.a
SHARED   = $(B)/libpysync.so.$(VERSION)
EXAMPLES = $(EX_SRC:examples/%.c=$(B)/examples/%)
BENCHES  = $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%)
STRESSES = $(STRESS_SRC:tests/stress/%.c=$(B)/stress/%)

# Programs shown by `make demo`, in order (examples/NAME.c).
DEMOS    = $(basename $(notdir $(EX_SRC)))

.PHONY: all test deps demo examples sanitize tsan stress check-man install uninstall \
        install-check bench bench-build deps-bench clean
.DELETE_ON_ERROR:

all: $(STATIC) $(B)/libpysync.so

$(B)/%.o: %.c $(HEADERS) $(wildcard lib/*.h shm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAGS) -c $< -o $@

$(STATIC): $(OBJ)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(OBJ)
	$(CC) -shared -pthread -Wl,-soname,libpysync.so.$(SOMAJOR) -o $@ $^

$(B)/libpysync.so: $(SHARED)
	ln -sf libpysync.so.$(VERSION) $(B)/libpysync.so.$(SOMAJOR)
	ln -sf libpysync.so.$(VERSION) $@

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

# ---- tests (Criterion): all test files in one runner ----
$(B)/tests/run: $(TEST_SRC) $(wildcard tests/*.h) $(STATIC) | deps
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) -o $@ $(TEST_SRC) $(STATIC) -lcriterion -lm

test: all check-man install-check $(B)/tests/run
	$(B)/tests/run --jobs 2

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

demo: $(EXAMPLES)
	@set -e; for d in $(DEMOS); do echo "== examples/$$d.c"; $(B)/examples/$$d; done; \
	[ -n "$(DEMOS)" ] || echo "no examples yet"

GLIB = $$(pkg-config --cflags --libs glib-2.0)
$(B)/bench/%: tests/bench/%.c $(wildcard tests/bench/*.h) $(STATIC) | deps-bench
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) -Wno-error=deprecated-declarations -o $@ $< $(STATIC) -lm $(GLIB)

bench-build: $(BENCHES)

bench: $(BENCHES)
	@set -e; for p in $(BENCHES); do echo "== $$p"; $$p; done

# ---- man pages ----
check-man: | deps
	@out=$$(mandoc -Tlint -Wwarning $(MAN_SRC) 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "check-man: $(words $(MAN_SRC)) pages clean"

# ---- install ----
LIBDIR = $(PREFIX)/lib
INCDIR = $(PREFIX)/include
MANDIR = $(PREFIX)/share/man
PCDIR  = $(LIBDIR)/pkgconfig

install: all
	install -d $(DESTDIR)$(INCDIR)/pysync $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR) \
	  $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 $(HEADERS) $(DESTDIR)$(INCDIR)/pysync/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libpysync.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpysync.so.$(SOMAJOR)
	ln -sf libpysync.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpysync.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' pysync.pc.in \
	  > $(DESTDIR)$(PCDIR)/pysync.pc
	install -m 644 $(wildcard man/man3/*.3) $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(wildcard man/man7/*.7) $(DESTDIR)$(MANDIR)/man7/
	@# one .so link page per function named in a page's NAME section (.Nm)
	@for p in $(wildcard man/man3/*.3); do page=$$(basename $$p); \
	  for fn in $$(sed -n 's/^\.Nm \([a-z_0-9]*\).*/\1/p' $$p | sort -u); do \
	    [ "$$fn.3" = "$$page" ] || echo ".so man3/$$page" > $(DESTDIR)$(MANDIR)/man3/$$fn.3; \
	  done; done

uninstall:
	rm -rf $(DESTDIR)$(INCDIR)/pysync
	rm -f $(DESTDIR)$(LIBDIR)/libpysync.* $(DESTDIR)$(PCDIR)/pysync.pc
	@for p in $(wildcard man/man3/*.3); do page=$$(basename $$p); \
	  for fn in $$(sed -n 's/^\.Nm \([a-z_0-9]*\).*/\1/p' $$p | sort -u); do \
	    rm -f $(DESTDIR)$(MANDIR)/man3/$$fn.3; done; \
	  rm -f $(DESTDIR)$(MANDIR)/man3/$$page; done
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(wildcard man/man7/*.7)))

# Installs into a scratch DESTDIR, builds and runs a program against it with
# pkg-config (and compiles it as C++), then checks that uninstall removes it all.
install-check: all
	@set -e; d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
	$(MAKE) -s install DESTDIR=$$d PREFIX=/opt/pysync >/dev/null; \
	export PKG_CONFIG_PATH=$$d/opt/pysync/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$$d; \
	$(CC) -std=c11 -Wall -Werror -o $$d/prog tests/install_prog.c $$(pkg-config --cflags --libs pysync); \
	LD_LIBRARY_PATH=$$d/opt/pysync/lib $$d/prog; \
	c++ -x c++ -Wall -Werror -fsyntax-only $$(pkg-config --cflags pysync) tests/install_prog.c; \
	test -f $$d/opt/pysync/share/man/man3/ps_lock_acquire.3; \
	$(MAKE) -s uninstall DESTDIR=$$d PREFIX=/opt/pysync; \
	left=$$(find $$d/opt -type f); [ -z "$$left" ] || { echo "uninstall left: $$left"; exit 1; }; \
	echo "install-check: ok"

clean:
	rm -rf $(B)
