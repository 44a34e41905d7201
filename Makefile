# wschat build. `make` builds ./wsmaster; `make test` installs what is missing
# (scripts/install-deps.sh), then builds and runs every suite. Objects live in
# $(B) so the release and sanitizer builds never mix.

CC      ?= cc
B       ?= build/release
SAN     ?=
OPT     ?= -O2
CFLAGS_WARN = -std=c11 -Wall -Wextra -Werror
CPPFLAGS_ALL = -D_GNU_SOURCE -Iserver -Ishared
PKG_CFLAGS  = $(shell pkg-config --cflags libcrypto 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs libcrypto 2>/dev/null) -pthread
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)
ALL_CFLAGS = $(CFLAGS_WARN) $(OPT) -g $(SAN) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

SERVER_SRC = $(filter-out server/main.c,$(wildcard server/*.c)) $(wildcard shared/*.c)
SERVER_OBJ = $(SERVER_SRC:%.c=$(B)/%.o)
UNIT_CHECKS = $(sort $(wildcard tests/unit/check_*.c))
UNIT_SRC   = $(UNIT_CHECKS) $(filter-out $(UNIT_CHECKS),$(wildcard tests/unit/*.c))
INTEG_CHECKS = $(sort $(wildcard tests/integration/check_*.c))
INTEG_SRC  = $(INTEG_CHECKS) $(filter-out $(INTEG_CHECKS),$(wildcard tests/integration/*.c))
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 5
HEADERS = $(wildcard server/*.h shared/*.h)

.PHONY: all deps run test test-unit test-integration asan fuzz fuzz-smoke \
        headers check-includes clean bench bench-journal bench-cluster bench-smoke test-browser test-tls soak valgrind \
        install uninstall test-install

all: wsmaster

deps:
	@scripts/install-deps.sh

# Copy then rename: a running ./wsmaster must not make the build fail.
wsmaster: $(B)/wsmaster
	cp $< $@.tmp && mv -f $@.tmp $@

$(B)/wsmaster: $(B)/server/main.o $(SERVER_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/%.o: %.c $(HEADERS) | $(B)/server $(B)/shared
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(B)/server $(B)/shared:
	mkdir -p $@

# Suite lists are generated from file names: tests/unit/check_foo.c defines
# `Suite *foo_suite(void)`, so adding a suite never means editing run.c.
$(B)/unit_suites.h: $(UNIT_CHECKS) | $(B)/server
	for f in $(UNIT_CHECKS); do n=$$(basename $$f .c); echo "SUITE($${n#check_})"; done > $@

$(B)/integ_suites.h: $(INTEG_CHECKS) | $(B)/server
	for f in $(INTEG_CHECKS); do n=$$(basename $$f .c); echo "SUITE($${n#check_})"; done > $@

$(B)/tests/unit/%.o: tests/unit/%.c $(HEADERS) $(wildcard tests/common/*.h) $(B)/unit_suites.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -I$(B) -Itests/unit -Itests/common -c -o $@ $<

$(B)/tests/integration/%.o: tests/integration/%.c $(HEADERS) $(wildcard tests/integration/*.h) $(B)/integ_suites.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -I$(B) -Itests/integration -c -o $@ $<

$(B)/unit_tests: $(UNIT_SRC:%.c=$(B)/%.o) $(SERVER_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)

$(B)/integration_tests: $(INTEG_SRC:%.c=$(B)/%.o) $(SERVER_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS)

ASAN_VARS = B=build/asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" OPT=-O1

test: deps
	$(MAKE) check-includes test-unit test-integration test-install fuzz-smoke bench-smoke
	$(MAKE) $(ASAN_VARS) test-unit test-integration

# Under ASan every fork() copies a large shadow mapping, which makes Check's
# fork-per-test mode ~15x slower; a sanitizer report aborts the run anyway.
test-unit: $(B)/unit_tests
	$(if $(SAN),CK_FORK=no) $(B)/unit_tests

test-integration: $(B)/wsmaster $(B)/integration_tests
	WSCHAT_BIN=$(CURDIR)/$(B)/wsmaster WSCHAT_ROOT=$(CURDIR) $(B)/integration_tests

# ASan + UBSan over every suite; the server binary the integration tests start
# is the sanitized one, and any sanitizer report makes the server exit non-zero.
asan: deps
	$(MAKE) $(ASAN_VARS) test-unit test-integration

run: deps
	$(MAKE) wsmaster
	./wsmaster -c conf/wschat.conf

# No module of server/ or shared/ may take part in an include cycle.
check-includes:
	scripts/check-include-cycles server shared

headers:
	@for h in $(HEADERS); do echo "#include \"$$h\"" | $(CC) $(ALL_CFLAGS) -x c -fsyntax-only - || exit 1; done; echo "headers OK"

# libFuzzer targets (clang): tests/fuzz/fuzz_<name>.c, seeds in tests/fuzz/corpus/<name>/.
FUZZ_CFLAGS = -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined $(CPPFLAGS_ALL) -Itests/common $(PKG_CFLAGS)
build/fuzz/%: tests/fuzz/fuzz_%.c $(SERVER_SRC) $(HEADERS) $(wildcard tests/common/*.h)
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(SERVER_SRC) $(PKG_LIBS)

fuzz-smoke: $(FUZZ_TARGETS:%=build/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus-$$t; \
		echo "fuzz $$t for $(FUZZ_SECONDS)s"; \
		build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
			build/fuzz/corpus-$$t tests/fuzz/corpus/$$t 2>build/fuzz/$$t.log \
			|| { tail -40 build/fuzz/$$t.log; exit 1; }; \
	done

fuzz:
	$(MAKE) fuzz-smoke FUZZ_SECONDS=60

# Browser test of web/: installs chromium, fonts and playwright-core when
# missing (as root), then drives the page in headless Chromium against the
# real server. Screenshots go to tests/browser/out/.
test-browser: deps
	$(MAKE) $(B)/wsmaster
	WSCHAT_BIN=$(CURDIR)/$(B)/wsmaster tests/browser/run.sh

# wss:// through nginx (conf/nginx-wschat.conf) with a certificate made for
# the run: chat, ?since= resume, SIGHUP, real_ip_from and stats_allow seen
# through the proxy. nginx and openssl come from deps; node/npm and npm's
# ws from tests/tls/run.sh.
test-tls: deps
	$(MAKE) $(B)/wsmaster
	WSCHAT_BIN=$(CURDIR)/$(B)/wsmaster tests/tls/run.sh

# wsbench: an independent RFC 6455 client (libc only), never the server's code.
BENCH_SRC = $(wildcard tests/bench/*.c)
$(B)/wsbench: $(BENCH_SRC) tests/bench/wsb.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_WARN) $(OPT) -g $(SAN) -D_GNU_SOURCE $(CFLAGS) -o $@ $(BENCH_SRC) $(ALL_LDFLAGS)

BENCH_ENV = WSCHAT_BIN=$(CURDIR)/$(B)/wsmaster WSBENCH=$(CURDIR)/$(B)/wsbench WSCHAT_ROOT=$(CURDIR)

# Speed and memory, printed as one table (takes a few minutes), then the same
# join, echo and rooms against the uWebSockets.js peer (npm, installed on
# first use). PIN=1: server on CPU 0 (workers 1), generator on CPU 1.
bench: deps
	$(MAKE) $(B)/wsmaster $(B)/wsbench
	$(BENCH_ENV) bash tests/bench/run-bench.sh $(if $(filter 1,$(PIN)),--pin)

# Only the journal's part of `make bench`: the fanout ramp with history_file
# off, history_fsync everysec and always, each on a fresh server (PIN=1 too).
bench-journal: $(B)/wsmaster $(B)/wsbench
	$(BENCH_ENV) bash tests/bench/run-bench.sh --journal-only $(if $(filter 1,$(PIN)),--pin)

# Only the cluster's part of `make bench` (issue 14): 3 nodes and one
# redis-server on this machine, the fanout ramp and a 100 msg/s step beside
# a single node's (PIN=1 too: nodes and redis-server on CPU 0).
bench-cluster: $(B)/wsmaster $(B)/wsbench
	$(BENCH_ENV) bash tests/bench/run-bench.sh --cluster-only $(if $(filter 1,$(PIN)),--pin)

# The same scenarios at tiny scale: asserts correctness only, never a time.
bench-smoke: $(B)/wsmaster $(B)/wsbench
	$(BENCH_ENV) bash tests/bench/run-bench.sh --smoke

# Soak (not part of `make test`): SOAK_SECONDS of connection churn, chat and
# every abuse at once; asserts flat RSS, no crash or respawn, and nothing lost
# by well-behaved clients, then prints a report (tests/soak/soak.py).
SOAK_SECONDS ?= 600
soak: $(B)/wsmaster
	WSCHAT_BIN=$(CURDIR)/$(B)/wsmaster WSCHAT_ROOT=$(CURDIR) python3 tests/soak/soak.py --seconds $(SOAK_SECONDS)

# The abuse suite against the server under valgrind's memcheck (installs
# valgrind when missing): fails on any memcheck report from any process.
VG_DIR = build/valgrind
valgrind: deps $(B)/wsmaster $(B)/integration_tests
	@command -v valgrind >/dev/null || apt-get install -y valgrind
	rm -rf $(VG_DIR) && mkdir -p $(VG_DIR)
	CK_RUN_SUITE=abuse CK_TIMEOUT_MULTIPLIER=4 WSCHAT_VALGRIND=1 WSCHAT_VG_DIR=$(CURDIR)/$(VG_DIR) \
		WSCHAT_VG_SERVER=$(CURDIR)/$(B)/wsmaster WSCHAT_ROOT=$(CURDIR) \
		WSCHAT_BIN=$(CURDIR)/tests/integration/valgrind-wsmaster.sh $(B)/integration_tests
	@if grep -l . $(VG_DIR)/memcheck.* 2>/dev/null; then \
		echo "memcheck reported errors (logs above)"; exit 1; fi
	@echo "valgrind: no memcheck report from $$(ls $(VG_DIR) | wc -l) server processes"

# ---- install ------------------------------------------------------------------
# `make install` (GNU names; DESTDIR stages the tree, no root needed):
#   $(SBINDIR)/wsmaster                      the daemon (sbin, like nginx and sshd:
#                                            an administrator's program, run by systemd)
#   $(WSCHAT_CONFDIR)/wschat.conf            conf/wschat.conf with this layout's paths;
#                                            an existing one is kept and the new file
#                                            goes beside it as wschat.conf.default
#   $(WSCHAT_WEBDIR)/                        web/
#   $(SYSTEMDUNITDIR)/wschat.service         scripts/wschat.service with this layout's paths
#   $(WSCHAT_STATEDIR)/                      state: the history journal (history/)
# The pid file goes in $(WSCHAT_RUNDIR), which the master creates when it starts.
PREFIX        ?= /usr/local
EXEC_PREFIX   ?= $(PREFIX)
SBINDIR       ?= $(EXEC_PREFIX)/sbin
DATADIR       ?= $(PREFIX)/share
# /usr's configuration is /etc; any other prefix has its own etc/ (/usr/local/etc).
SYSCONFDIR    ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
# A system daemon's state and runtime files are in /var/lib and /run whatever
# the prefix (FHS, and where systemd's StateDirectory/RuntimeDirectory are).
LOCALSTATEDIR ?= /var
RUNSTATEDIR   ?= /run
# systemd reads /usr/lib/systemd/system and /usr/local/lib/systemd/system;
# for any other prefix the unit goes to the administrator's /etc/systemd/system.
SYSTEMDUNITDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),$(PREFIX)/lib/systemd/system,/etc/systemd/system)
WSCHAT_CONFDIR  = $(SYSCONFDIR)/wschat
WSCHAT_WEBDIR   = $(DATADIR)/wschat/web
WSCHAT_STATEDIR = $(LOCALSTATEDIR)/lib/wschat
WSCHAT_RUNDIR   = $(RUNSTATEDIR)/wschat
INSTALL       ?= install

# Directives of conf/wschat.conf that hold a path, as NAME=VALUE: the installed
# copy's line "NAME ..." becomes "NAME VALUE" (each must be in the file, not
# commented out). A new path directive is one more word here.
INSTALL_CONF_PATHS = web_root=$(WSCHAT_WEBDIR) pid_file=$(WSCHAT_RUNDIR)/wschat.pid \
                     history_file=$(WSCHAT_STATEDIR)/history
# scripts/wschat.service is written for the default layout (PREFIX=/usr/local):
# each FROM=TO below replaces that default path with this layout's.
INSTALL_UNIT_PATHS = /usr/local/sbin/wsmaster=$(SBINDIR)/wsmaster \
                     /usr/local/etc/wschat/wschat.conf=$(WSCHAT_CONFDIR)/wschat.conf

install_name  = $(firstword $(subst =, ,$(1)))
install_value = $(patsubst $(call install_name,$(1))=%,%,$(1))
# The installed conf and unit on stdout; both fail when a path is missing.
INSTALL_GEN_CONF = { echo "\# Installed by make install (PREFIX=$(PREFIX)) from conf/wschat.conf;"; \
	echo "\# paths below are this install's."; \
	sed $(foreach p,$(INSTALL_CONF_PATHS),-e 's|^$(call install_name,$(p))[[:space:]].*|$(call install_name,$(p)) $(call install_value,$(p))|') conf/wschat.conf; }
INSTALL_GEN_UNIT = sed $(foreach p,$(INSTALL_UNIT_PATHS),-e 's|$(call install_name,$(p))|$(call install_value,$(p))|g') scripts/wschat.service

install: $(B)/wsmaster
	@for p in $(INSTALL_CONF_PATHS); do n=$${p%%=*}; \
		grep -q "^$$n[[:space:]]" conf/wschat.conf || { echo "install: conf/wschat.conf has no \"$$n\" line" >&2; exit 1; }; done
	@for p in $(INSTALL_UNIT_PATHS); do f=$${p%%=*}; \
		grep -qF "$$f" scripts/wschat.service || { echo "install: scripts/wschat.service never names $$f" >&2; exit 1; }; done
	$(INSTALL) -d -m 755 "$(DESTDIR)$(SBINDIR)" "$(DESTDIR)$(WSCHAT_CONFDIR)" \
		"$(DESTDIR)$(WSCHAT_WEBDIR)" "$(DESTDIR)$(SYSTEMDUNITDIR)"
	$(INSTALL) -d -m 750 "$(DESTDIR)$(WSCHAT_STATEDIR)"
	$(INSTALL) -m 755 $(B)/wsmaster "$(DESTDIR)$(SBINDIR)/wsmaster"
	cd web && find . -type f | sort | while read -r f; do \
		$(INSTALL) -D -m 644 "$$f" "$(DESTDIR)$(WSCHAT_WEBDIR)/$$f" || exit 1; done
	$(INSTALL_GEN_UNIT) > "$(DESTDIR)$(SYSTEMDUNITDIR)/wschat.service.tmp"
	chmod 644 "$(DESTDIR)$(SYSTEMDUNITDIR)/wschat.service.tmp"
	mv -f "$(DESTDIR)$(SYSTEMDUNITDIR)/wschat.service.tmp" "$(DESTDIR)$(SYSTEMDUNITDIR)/wschat.service"
	@c="$(DESTDIR)$(WSCHAT_CONFDIR)/wschat.conf"; \
	$(INSTALL_GEN_CONF) > "$$c.tmp" && chmod 644 "$$c.tmp" || exit 1; \
	if [ ! -e "$$c" ]; then mv -f "$$c.tmp" "$$c"; echo "installed $$c"; \
	elif cmp -s "$$c.tmp" "$$c"; then rm -f "$$c.tmp"; echo "$$c is up to date"; \
	else mv -f "$$c.tmp" "$$c.default"; \
		echo "kept your $$c; the new default configuration is $$c.default"; fi

# Removes what install put there, except a configuration that was edited and
# anything in the state folder (folders go only when empty).
uninstall:
	rm -f "$(DESTDIR)$(SBINDIR)/wsmaster" "$(DESTDIR)$(SYSTEMDUNITDIR)/wschat.service"
	cd web && find . -type f | while read -r f; do rm -f "$(DESTDIR)$(WSCHAT_WEBDIR)/$$f"; done
	find "$(DESTDIR)$(WSCHAT_WEBDIR)" -depth -type d -empty -delete 2>/dev/null || true
	rmdir "$(DESTDIR)$(DATADIR)/wschat" 2>/dev/null || true
	@c="$(DESTDIR)$(WSCHAT_CONFDIR)/wschat.conf"; rm -f "$$c.default"; \
	if [ -e "$$c" ]; then t=$$(mktemp) && $(INSTALL_GEN_CONF) > "$$t" || exit 1; \
		if cmp -s "$$t" "$$c"; then rm -f "$$c"; else echo "kept $$c: it was edited"; fi; \
		rm -f "$$t"; fi
	rmdir "$(DESTDIR)$(WSCHAT_CONFDIR)" "$(DESTDIR)$(WSCHAT_STATEDIR)" 2>/dev/null || true

# The install into temp dirs: layout, generated paths, a kept conf, `-t`, and
# the installed server serving the installed web client (tests/install/run.sh).
test-install: $(B)/wsmaster
	MAKE="$(MAKE)" B=$(B) bash tests/install/run.sh

clean:
	rm -rf build wsmaster
