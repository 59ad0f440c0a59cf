# syncscope — the only entry points:
#   make deps      install every Debian package the build and the tests need
#   make           build build/syncscope (BPF objects embedded)
#   make run       deps + build + run the agent in the foreground on the embedded default config
#   make test      deps + build + every test tier (unit, unit under ASan/UBSan, bpf, e2e)
#   make bench     benchmarks under tests/bench (ratios against the anchors, same run)
#   make fuzz      libFuzzer targets for the parsers of untrusted files
#   make install / uninstall / deb

SHELL := /bin/bash
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=

CXX := g++
CLANG ?= clang
FUZZ_CXX ?= clang++-19
BPFTOOL ?= bpftool
GO ?= go
PYTHON ?= /usr/bin/python3

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

# --- dependencies ------------------------------------------------------------
# Debian packages only. `make deps` asks dpkg first and runs apt-get only when
# something is missing, so it is quick on a machine that already has them.
DEB_BUILD := build-essential pkg-config clang llvm libbpf-dev bpftool libelf-dev libdw-dev \
             zlib1g-dev libzstd-dev libcapstone-dev libyaml-cpp-dev libcivetweb-dev \
             libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libcli11-dev libsystemd-dev libfmt-dev
DEB_TEST  := libgtest-dev libgmock-dev golang-go prometheus prometheus-alertmanager \
             libbpf-tools bpftrace libc6-dbg linux-perf python3 python3-pytest python3-requests python3-yaml \
             libatomic1 systemd util-linux iproute2 procps
DEB_FUZZ  := clang-19 libclang-rt-19-dev
DEB_ALL   := $(DEB_BUILD) $(DEB_TEST) $(DEB_FUZZ)

.PHONY: deps
deps:
	@missing=$$(dpkg-query -W -f='$${Package} $${db:Status-Abbrev}\n' $(DEB_ALL) 2>/dev/null \
	    | awk '$$2 != "ii" {print $$1}'; \
	  for p in $(DEB_ALL); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done | sort -u); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "make deps: all $(words $(DEB_ALL)) packages present"; fi
	@# The Debian prometheus packages enable their own services on install; on a
	@# host with systemd they would hold :9090/:9093. Tests start their own
	@# instances on other ports, so leave the packaged ones alone.

# --- BPF ---------------------------------------------------------------------
# vmlinux.h is generated at build time from the build host's BTF instead of being
# committed: these machines always have /sys/kernel/btf/vmlinux, the generated
# header matches the kernel the tests run on, and CO-RE relocations make the
# resulting objects portable to other kernels anyway. A committed per-arch header
# (the libbpf-tools way) would only be needed to build on hosts without BTF; set
# VMLINUX_H=path/to/vmlinux.h to use one.
VMLINUX_H ?= $(BUILD)/vmlinux.h
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
BPF_SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_SRCS))
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -I$(BUILD) -Ibpf -Wall -Wno-unused-function \
              -mcpu=v3

$(BUILD)/vmlinux.h:
	@mkdir -p $(@D)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h bpf/lib/*.h) $(VMLINUX_H)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp.o
	$(BPFTOOL) gen object $@ $@.tmp.o && rm -f $@.tmp.o

# Keep the objects (the tests and `bpftool prog` inspection use them too) and
# the skeletons: as intermediates make would delete them at exit, and the next
# make would regenerate them and recompile everything that includes them.
.SECONDARY: $(BPF_OBJS) $(BPF_SKELS)
$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@.tmp && mv $@.tmp $@

# --- C++ ---------------------------------------------------------------------
WARNINGS := -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual \
            -Wformat=2 -Wno-missing-field-initializers
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++23 $(WARNINGS) -I. -I$(BUILD) -D_GNU_SOURCE -fno-omit-frame-pointer \
            -DSYNCSCOPE_VERSION='"$(VERSION)"'
# libbpf is linked statically so the binary does not depend on the host's libbpf
# version (the libbpf-tools choice); everything else comes from Debian's shared libs.
LDLIBS := -Wl,-Bstatic -lbpf -Wl,-Bdynamic -lelf -lz -ldw -lcapstone -lyaml-cpp -lcivetweb -lfmt \
          -lcurl -lssl -lcrypto -lsystemd -lpthread
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

LIB_SRCS := $(shell find agent probes -name '*.cpp' ! -name main.cpp 2>/dev/null | sort)
LIB_OBJS := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(LIB_SRCS))
MAIN_OBJ := $(BUILD)/obj/agent/main.o
EMBED_OBJ := $(BUILD)/obj/default_config.o

.DEFAULT_GOAL := all
.PHONY: all
all: $(BUILD)/syncscope

$(BUILD)/obj/%.o: %.cpp | $(BPF_SKELS)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@

# The default config is embedded so `syncscope agent` runs with no file at all.
$(EMBED_OBJ): config/default.yaml
	@mkdir -p $(@D)
	cd config && ld -r -b binary -z noexecstack -o $(abspath $@) default.yaml

$(BUILD)/syncscope: $(LIB_OBJS) $(MAIN_OBJ) $(EMBED_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)

# --- tests -------------------------------------------------------------------
UNIT_SRCS := $(wildcard tests/unit/*.cpp)
BPF_TEST_SRCS := $(wildcard tests/bpf/*.cpp)
TEST_SUPPORT_SRCS := $(wildcard tests/support/*.cpp)
GTEST_LIBS := -lgmock -lgtest -lpthread

UNIT_OBJS := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(UNIT_SRCS) $(TEST_SUPPORT_SRCS))
$(BUILD)/unit_tests: $(UNIT_OBJS) $(LIB_OBJS) $(EMBED_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ -lgtest_main $(GTEST_LIBS) $(LDLIBS)

BPF_TEST_OBJS := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(BPF_TEST_SRCS) $(TEST_SUPPORT_SRCS))
$(BUILD)/bpf_tests: $(BPF_TEST_OBJS) $(LIB_OBJS) $(EMBED_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ -lgtest_main $(GTEST_LIBS) $(LDLIBS)

# The unit tests run a second time with AddressSanitizer and UBSan; everything
# they link is rebuilt with the sanitizers under build/asan. -O0: sanitizer
# instrumentation under the optimiser is what makes this tree slow to build
# (2x per file at -O1).
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -O0 -g
$(BUILD)/asan/%.o: %.cpp | $(BPF_SKELS)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(ASAN_FLAGS) -MMD -MP -c $< -o $@
ASAN_OBJS := $(patsubst %.cpp,$(BUILD)/asan/%.o,$(UNIT_SRCS) $(TEST_SUPPORT_SRCS) $(LIB_SRCS))
$(BUILD)/unit_tests_asan: $(ASAN_OBJS) $(EMBED_OBJ)
	$(CXX) $(CXXFLAGS) $(ASAN_FLAGS) -o $@ $^ -lgtest_main $(GTEST_LIBS) $(LDLIBS)

# Workloads the tests trigger events with: C/C++ built here, Go built by Debian's
# golang-go, each Go program also as a stripped copy (no .symtab, no DWARF).
WORKLOAD_C := $(wildcard tests/workloads/*.c)
WORKLOAD_CXX := $(wildcard tests/workloads/*.cpp)
WORKLOAD_GO := $(patsubst tests/workloads/go/%/main.go,%,$(wildcard tests/workloads/go/*/main.go))
WORKLOADS := $(patsubst tests/workloads/%.c,$(BUILD)/workloads/%,$(WORKLOAD_C)) \
             $(patsubst tests/workloads/%.cpp,$(BUILD)/workloads/%,$(WORKLOAD_CXX)) \
             $(foreach w,$(WORKLOAD_GO),$(BUILD)/workloads/$(w) $(BUILD)/workloads/$(w).stripped)
WORKLOAD_CFLAGS := -O2 -g -fno-omit-frame-pointer -pthread -Wall

$(BUILD)/workloads/%: tests/workloads/%.c
	@mkdir -p $(@D)
	gcc -std=gnu11 $(WORKLOAD_CFLAGS) -o $@ $< -latomic
$(BUILD)/workloads/%: tests/workloads/%.cpp
	@mkdir -p $(@D)
	$(CXX) -std=c++20 $(WORKLOAD_CFLAGS) -o $@ $< -latomic
$(BUILD)/workloads/%: tests/workloads/go/%/main.go
	@mkdir -p $(@D)
	cd tests/workloads/go/$* && GOFLAGS=-mod=mod GOCACHE=$(abspath $(BUILD))/gocache \
	  $(GO) build -o $(abspath $@) .
$(BUILD)/workloads/%.stripped: $(BUILD)/workloads/%
	strip -o $@ $<

.PHONY: workloads
workloads: $(WORKLOADS)

.PHONY: test test-unit test-bpf test-e2e
# The one-command targets build in parallel by default (a plain `make all` does
# what -j says): the sanitizer tree doubles the C++ compiled.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test: deps
	$(MAKE) --no-print-directory -j$(JOBS) all $(BUILD)/unit_tests $(BUILD)/unit_tests_asan $(BUILD)/bpf_tests workloads $(FUZZ_BINS)
	$(MAKE) --no-print-directory test-unit test-fuzz test-bpf test-e2e

test-unit: $(BUILD)/unit_tests $(BUILD)/unit_tests_asan
	@echo "== unit tests"
	$(BUILD)/unit_tests --gtest_brief=1
	@echo "== unit tests under AddressSanitizer/UBSan"
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/unit_tests_asan --gtest_brief=1

test-bpf: $(BUILD)/bpf_tests workloads
	@echo "== bpf tests (real programs, real kernel events)"
	SYNCSCOPE_BUILD=$(abspath $(BUILD)) $(BUILD)/bpf_tests --gtest_brief=1

test-e2e: all workloads
	@echo "== e2e tests (the running agent with real consumers)"
	SYNCSCOPE_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

# --- run, bench, fuzz ----------------------------------------------------------
.PHONY: run
run: deps
	$(MAKE) --no-print-directory -j$(JOBS) all
	$(BUILD)/syncscope agent

.PHONY: bench
bench: deps
	$(MAKE) --no-print-directory -j$(JOBS) all workloads
	SYNCSCOPE_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/bench/run.py

FUZZ_SRCS := $(wildcard tests/fuzz/*.cpp)
FUZZ_BINS := $(patsubst tests/fuzz/%.cpp,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_CXXFLAGS := -std=c++23 -g -O1 -I. -I$(BUILD) -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
# Each target is rebuilt when its own `// fuzz-sources:` or a header changes, not
# on every edit anywhere in agent/ (`make test` builds them all).
FUZZ_HEADERS := $(shell find agent probes -name '*.h' 2>/dev/null)
fuzz_sources = $(shell sed -n 's,^// fuzz-sources: ,,p' $(1))
.SECONDEXPANSION:
$(BUILD)/fuzz/%: tests/fuzz/%.cpp $$(call fuzz_sources,tests/fuzz/$$*.cpp) $(FUZZ_HEADERS)
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -o $@ $< $(call fuzz_sources,$<) $(LDLIBS)
.PHONY: fuzz
fuzz: deps
	$(MAKE) --no-print-directory -j$(JOBS) $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do echo "== $$f (60 s)"; \
	  mkdir -p $(BUILD)/fuzz/corpus-$$(basename $$f); \
	  $$f -max_total_time=60 $(BUILD)/fuzz/corpus-$$(basename $$f) tests/fuzz/seeds/$$(basename $$f) || exit 1; done

# The cheap regression step of `make test`: every target replays its seeds
# (tests/fuzz/seeds/NAME, where each crash ever found is kept) and whatever
# `make fuzz` collected in $(BUILD)/fuzz/corpus-NAME, then mutates for
# FUZZ_TEST_SECONDS. New finds go to the scratch corpus, never the seeds; a
# crash fails the test and leaves its input in $(BUILD)/fuzz/NAME-crash-*.
FUZZ_TEST_SECONDS ?= 10
.PHONY: test-fuzz
test-fuzz: $(FUZZ_BINS)
	@echo "== fuzz regression (seeds + $(FUZZ_TEST_SECONDS) s of mutations per target)"
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  $$f -max_total_time=$(FUZZ_TEST_SECONDS) -timeout=10 -rss_limit_mb=4096 -print_final_stats=0 \
	    -artifact_prefix=$(BUILD)/fuzz/$$n- $(BUILD)/fuzz/corpus-$$n tests/fuzz/seeds/$$n \
	    > $(BUILD)/fuzz/$$n.log 2>&1 \
	    || { tail -n 40 $(BUILD)/fuzz/$$n.log; echo "FAIL $$n: add the input named above to tests/fuzz/seeds/$$n once fixed"; exit 1; }; \
	  echo "ok   $$n: $$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' $(BUILD)/fuzz/$$n.log)"; done

# --- install -------------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the binary, the systemd
# unit (its paths rewritten for PREFIX), the default config as
# /etc/syncscope/config.yaml (kept if one exists), and under
# PREFIX/share/syncscope the dashboards, Grafana provisioning files and
# Prometheus rules; README under PREFIX/share/doc/syncscope.
# make uninstall removes all of it except a config.yaml that was edited.
# make deb: the same tree with PREFIX=/usr as $(BUILD)/deb/syncscope_VERSION_ARCH.deb.
BINDIR := $(DESTDIR)$(PREFIX)/bin
SHAREDIR := $(DESTDIR)$(PREFIX)/share/syncscope
DOCDIR := $(DESTDIR)$(PREFIX)/share/doc/syncscope
UNITDIR := $(DESTDIR)/lib/systemd/system
CONFDIR := $(DESTDIR)/etc/syncscope

.PHONY: install install-tree uninstall deb
install: all
	@$(MAKE) --no-print-directory install-tree
# The copying alone (no build): `make deb` and the tests use it on a built tree.
install-tree:
	install -D -m 0755 $(BUILD)/syncscope $(BINDIR)/syncscope
	install -D -m 0644 config/default.yaml $(SHAREDIR)/default.yaml
	install -D -m 0644 config/syncscope.service $(UNITDIR)/syncscope.service
	sed -i 's,/usr/local/,$(PREFIX)/,g' $(UNITDIR)/syncscope.service
	[ -e $(CONFDIR)/config.yaml ] || install -D -m 0644 config/default.yaml $(CONFDIR)/config.yaml
	install -d -m 0755 $(SHAREDIR)/dashboards $(SHAREDIR)/provisioning $(SHAREDIR)/rules $(DOCDIR)
	install -m 0644 dashboards/*.json $(SHAREDIR)/dashboards/
	install -m 0644 dashboards/provisioning/*.yaml $(SHAREDIR)/provisioning/
	sed -i 's,/usr/local/share/syncscope/,$(PREFIX)/share/syncscope/,g' $(SHAREDIR)/provisioning/dashboards.yaml
	install -m 0644 dashboards/rules/*.yaml $(SHAREDIR)/rules/
	install -m 0644 README.md $(DOCDIR)/README.md

uninstall:
	rm -f $(BINDIR)/syncscope $(UNITDIR)/syncscope.service
	rm -rf $(SHAREDIR) $(DOCDIR)
	@if cmp -s config/default.yaml $(CONFDIR)/config.yaml; then rm -f $(CONFDIR)/config.yaml; \
	  rmdir --ignore-fail-on-non-empty $(CONFDIR); \
	elif [ -e $(CONFDIR)/config.yaml ]; then echo "kept $(CONFDIR)/config.yaml (edited locally)"; fi

DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_VERSION := 0.1.0+git$(subst -,.,$(VERSION))
DEB_DIR ?= $(BUILD)/deb
DEB_ROOT := $(DEB_DIR)/root
DEB_FILE := $(DEB_DIR)/syncscope_$(DEB_VERSION)_$(DEB_ARCH).deb
deb: all
	rm -rf $(DEB_ROOT)
	$(MAKE) --no-print-directory install-tree PREFIX=/usr DESTDIR=$(abspath $(DEB_ROOT))
	@# Debian ships binaries without debug info (68 MB → 3 MB); .symtab stays for stack traces.
	strip --strip-debug $(DEB_ROOT)/usr/bin/syncscope
	mkdir -p $(DEB_ROOT)/DEBIAN
	@# Depends: the Debian packages that own the shared libraries the binary links.
	deps=$$(ldd $(BUILD)/syncscope | awk '/=> \//{print $$3}' | xargs -r realpath | xargs -r dpkg -S 2>/dev/null \
	    | cut -d: -f1 | sort -u | grep -v '^libc6$$' | paste -sd, | sed 's/,/, /g'); \
	{ echo "Package: syncscope"; echo "Version: $(DEB_VERSION)"; echo "Architecture: $(DEB_ARCH)"; \
	  echo "Maintainer: syncscope maintainers <syncscope@localhost>"; echo "Section: admin"; echo "Priority: optional"; \
	  echo "Depends: libc6, $$deps"; echo "Installed-Size: $$(du -sk $(DEB_ROOT) | cut -f1)"; \
	  echo "Description: eBPF agent for run-queue, lock, Go and cache-line contention"; \
	  echo " Exports Prometheus metrics, ships Grafana dashboards and Prometheus rules,"; \
	  echo " evaluates SLOs and sends circuit-break webhooks and Alertmanager alerts."; } > $(DEB_ROOT)/DEBIAN/control
	echo /etc/syncscope/config.yaml > $(DEB_ROOT)/DEBIAN/conffiles
	printf '#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n' \
	  > $(DEB_ROOT)/DEBIAN/postinst
	printf '#!/bin/sh\nset -e\nif [ -d /run/systemd/system ] && [ "$$1" = remove ]; then systemctl stop syncscope.service || true; fi\n' \
	  > $(DEB_ROOT)/DEBIAN/prerm
	printf '#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n' \
	  > $(DEB_ROOT)/DEBIAN/postrm
	chmod 0755 $(DEB_ROOT)/DEBIAN/postinst $(DEB_ROOT)/DEBIAN/prerm $(DEB_ROOT)/DEBIAN/postrm
	dpkg-deb --root-owner-group --build $(DEB_ROOT) $(DEB_FILE)
	@echo "built $(DEB_FILE)"

.PHONY: clean
clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/asan -name '*.d' 2>/dev/null)
