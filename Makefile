# SPDX-License-Identifier: GPL-2.0
#
# dm-mirror-rs: top-level make targets.
#
#   make                 build dm_mirror_rs.ko (against KDIR, default: the
#                        project's cached test kernel, built on demand)
#   make CLIPPY=1        the same, with clippy on the Rust code
#   make check           install what is missing, build everything, run host
#                        and guest tests (what CI runs): the full guest suite
#                        on 6.12, a short run on 7.3 (scripts/check.sh)
#   make check KERNEL=7.3  the full guest suite on 7.3 instead
#   make demo            create a mirror in a guest and show what it does, as
#                        it happens (non-debug kernel, module in build/demo-module/)
#   make dkms-test       dkms add/build/install/remove of dkms.conf against the
#                        debug kernel tree, in private trees (scripts/dkms-test.sh)
#   make host-test       host unit tests of the kernel-free code
#   make seed-long       the seed's reproducer writing 4 GiB (CI writes 512 MiB)
#   make teardown-long [CYCLES=3000] [SEED=S] [IMPL=c] [STALL=30:20]  only the
#                        teardown test (tests/41-teardown.sh), CYCLES
#                        create/remove cycles with vCPU 1 stopped STALL ms of
#                        every STALL+RUN ms (STALL=none: never; make check
#                        runs 200 cycles, stalled 30:20)
#   make bench           benchmark against C dm-mirror, md raid1 and the raw legs
#                        (scripts/bench.sh; BENCH_ARGS="--mode both" etc.;
#                        KERNEL=7.3: on Linux 7.3, into bench/results/linux-7.3/)
#   make bench-quick     the same, one short repetition (~5-8 min)
#   make stress [MINUTES=30] [IMPL=c]  tests/stress.sh alone: fio with
#                        verification on a mirror under suspend/resume, table
#                        reloads and failslab for MINUTES (make check: 2)
#   make crash [CYCLES=20] [IMPL=c]  disk-log crash-consistency cycles (guest
#                        killed with SIGKILL mid-write, CI runs 3)
#   make fuzz [SEED=n] [COUNT=1000]  the differential table fuzz alone
#                        (tests/40-tablefuzz.sh, C and ours in one boot; make
#                        check runs seed 11, 300 cases; no SEED: a random one)
#   make kernel          build (or reuse) the test kernel
#   make kernel KERNEL=7.3   the same for Linux 7.3 (scripts/setup-k73.sh
#                        installs its toolchain; cached as linux-7.3-debug)
#   make KERNEL=7.3      build the module against that tree, with 7.3's
#                        toolchain (the env file setup-k73.sh writes)
#   make modules_install / clean
#
# The module is built the kernel way: make -C $(KDIR) M=$(CURDIR) LLVM=1.

DMRS_CACHE ?= $(HOME)/.cache/dm-mirror-rs
# Which of the supported kernels the default KDIR and the toolchain are for.
KERNEL ?= 6.12
ifeq ($(KERNEL),6.12)
KDIR ?= $(DMRS_CACHE)/linux-debug
KENV :=
else ifeq ($(KERNEL),7.3)
KDIR ?= $(DMRS_CACHE)/linux-7.3-debug
# LLVM 23 and bindgen 0.73.2 of scripts/setup-k73.sh: PATH, LD_LIBRARY_PATH,
# LIBCLANG_PATH and KERNEL_LLVM, the LLVM= prefix.
KENV := . $(DMRS_CACHE)/k73.env &&
else
$(error KERNEL=$(KERNEL): supported are 6.12 and 7.3)
endif
LLVM ?= 1
export LLVM
# LLVM= for the kernel's make: as given on the command line, else 7.3's prefix
# from its env file, else 1 (Debian's clang for 6.12).
KLLVM = $(if $(filter command line,$(origin LLVM)),$(LLVM),$(if $(KENV),$$KERNEL_LLVM,$(LLVM)))

.PHONY: all modules modules_install clean check check-full demo host-test kernel fmt-check seed-long bench bench-quick crash fuzz \
	teardown-long dkms-test stress

all: modules

modules:
	@if [ ! -f "$(KDIR)/Module.symvers" ]; then \
		echo "No built kernel tree at $(KDIR): run 'make kernel' or pass KDIR=" >&2; exit 1; fi
	$(KENV) $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(KLLVM) $(if $(CLIPPY),CLIPPY=$(CLIPPY)) modules

modules_install:
	$(KENV) $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(KLLVM) modules_install

clean:
	$(KENV) $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(KLLVM) clean
	rm -f binding/bindings_generated.rs binding/.bindings_generated.rs.cmd

kernel:
	scripts/build-kernel.sh debug $(KERNEL)

host-test:
	cd host && cargo test

fmt-check:
	rustfmt --check --edition 2021 --config-path $(KDIR)/.rustfmt.toml dm_mirror_rs.rs

check:
	KERNEL=$(KERNEL) scripts/check.sh

# every test (scripts/check.sh: DMRS_CHECK=full): 41 min here on 7.3 (make
# check KERNEL=7.3); on 6.12 lane 2 also runs the 7.3 short suite and seed
check-full:
	DMRS_CHECK=full KERNEL=$(KERNEL) scripts/check.sh

demo:
	scripts/demo.sh

dkms-test:
	scripts/dkms-test.sh

seed-long: modules
	scripts/run-guest.sh --kernel $(KDIR) --module $(CURDIR)/dm_mirror_rs.ko --mem 192M \
		--tests seed --append dmrs.seed_mib=4096 --test-timeout 5400 --timeout 6000

bench:
	KERNEL=$(KERNEL) scripts/bench.sh $(BENCH_ARGS)

bench-quick:
	KERNEL=$(KERNEL) scripts/bench.sh --quick $(BENCH_ARGS)

CYCLES ?= 20
IMPL ?= rs
crash: modules
	scripts/crash-cycle.sh --kernel $(KDIR) --module $(CURDIR)/dm_mirror_rs.ko \
		--impl $(IMPL) --cycles $(CYCLES)

# MINUTES of fio and table operations in the guest (tests/stress.sh, via
# the kernel command line); the limits add the set-up and the final resync
MINUTES ?= 30
stress: modules
	scripts/run-guest.sh --kernel $(KDIR) --module $(CURDIR)/dm_mirror_rs.ko --impl $(IMPL) --fio \
		--tests stress --append dmrs.stress_minutes=$(MINUTES) \
		--test-timeout $$(( $(MINUTES) * 60 + 900 )) --timeout $$(( $(MINUTES) * 60 + 1500 ))

# CYCLES as given on the command line, else 3000 (crash's default of 20
# would be a short run here). A cycle took ~9 s of guest time on a loaded
# 2-core host (a dmsetup call 1.1 s); the limits only catch a hang.
TEARDOWN_CYCLES = $(if $(filter command line environment,$(origin CYCLES)),$(CYCLES),3000)
TEARDOWN_STALL = $(if $(STALL),$(STALL),30:20)
teardown-long: modules
	scripts/run-guest.sh --kernel $(KDIR) --module $(CURDIR)/dm_mirror_rs.ko --impl $(IMPL) \
		--tests 41-teardown $(if $(filter none,$(TEARDOWN_STALL)),,--stall-vcpu $(TEARDOWN_STALL)) \
		--append "dmrs.teardown_cycles=$(TEARDOWN_CYCLES)$(if $(SEED), dmrs.teardown_seed=$(SEED))" \
		--test-timeout $$(( $(TEARDOWN_CYCLES) * 12 + 600 )) --timeout $$(( $(TEARDOWN_CYCLES) * 12 + 1200 ))

# SEED as given, else a random one (printed, so a failure can be rerun).
FUZZ_SEED := $(if $(SEED),$(SEED),$(shell od -An -N2 -tu2 /dev/urandom | tr -d ' '))
COUNT ?= 1000
FUZZ_COUNT = $(COUNT)
fuzz: modules
	@echo "fuzz: seed $(FUZZ_SEED), $(FUZZ_COUNT) cases (make fuzz SEED=$(FUZZ_SEED) COUNT=$(FUZZ_COUNT) repeats it)"
	scripts/run-guest.sh --kernel $(KDIR) --module $(CURDIR)/dm_mirror_rs.ko --impl $(IMPL) \
		--tests 40-tablefuzz --fuzz-seed $(FUZZ_SEED) --fuzz-count $(FUZZ_COUNT) \
		--test-timeout $$(( $(FUZZ_COUNT) * 6 + 600 )) --timeout $$(( $(FUZZ_COUNT) * 6 + 1200 ))
