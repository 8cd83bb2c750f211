# Static cross builds of `portcullis` for router CPUs (issue 3).
#
#   make cross                 all four targets (out/cross/<triple>/portcullis)
#   make cross-mipsel          one target (short names: mips mipsel armv7 aarch64)
#   make test-cross            each binary: static ELF checks, `--version` and `check` under qemu-user
#   make bench-size            stripped sizes and dependency costs into BENCHMARKS.md
#
# Toolchain, all from package registries and pinned (see ../shared/PLATFORM.md for why):
#   - Debian's rustc-web/cargo-web 1.96 + rust-web-src (std source for -Zbuild-std), run directly
#     from /usr/bin so rustup's proxies earlier on PATH are never used;
#   - zig from PyPI (`ziglang`, version and wheel sha256 pinned, `pip --require-hashes`) in a venv
#     under $(PORTCULLIS_CACHE), used as C compiler and linker through one-line wrapper scripts.
# Host `cargo build`/`cargo test` are untouched: everything is passed as environment variables
# to the cross cargo only, with its own target dir (out/cross/target).

CROSS_APT_PACKAGES := rustc-web cargo-web rust-web-src python3-venv qemu-user-static file binutils
PORTCULLIS_CACHE ?= $(CURDIR)/$(OUT)/cache
CROSS_DIR := $(OUT)/cross
CROSS_TARGET_DIR := $(CURDIR)/$(CROSS_DIR)/target

ZIG_VERSION := 0.17.1
# sha256 of ziglang-0.17.1-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl
ZIG_WHEEL_SHA256 := ea6cc5d87b033cf0aedfbc8f9549a908cae6c50ac31f1698188fa48a74524b54
ZIG_VENV := $(PORTCULLIS_CACHE)/zig-venv-$(ZIG_VERSION)
ZIG_STAMP := $(ZIG_VENV)/.installed
ZIG_CACHE := $(PORTCULLIS_CACHE)/zig-cache
CROSS_BIN := $(CURDIR)/$(CROSS_DIR)/bin

DEBIAN_CARGO := /usr/bin/cargo
DEBIAN_RUSTC := /usr/bin/rustc

CROSS_TRIPLES := mips-unknown-linux-musl mipsel-unknown-linux-musl armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl
CROSS_SHORT := mips mipsel armv7 aarch64

# Per target: short name, zig target + cpu, qemu-user binary, extra rustflags.
triple_mips := mips-unknown-linux-musl
triple_mipsel := mipsel-unknown-linux-musl
triple_armv7 := armv7-unknown-linux-musleabihf
triple_aarch64 := aarch64-unknown-linux-musl
zig_mips-unknown-linux-musl := -target mips-linux-musleabi -mcpu=mips32r2
zig_mipsel-unknown-linux-musl := -target mipsel-linux-musleabi -mcpu=mips32r2
zig_armv7-unknown-linux-musleabihf := -target arm-linux-musleabihf -mcpu=generic+v7a+vfp3d16+thumb2-neon
zig_aarch64-unknown-linux-musl := -target aarch64-linux-musl -mcpu=generic
qemu_mips-unknown-linux-musl := qemu-mips-static
qemu_mipsel-unknown-linux-musl := qemu-mipsel-static
qemu_armv7-unknown-linux-musleabihf := qemu-arm-static
qemu_aarch64-unknown-linux-musl := qemu-aarch64-static
# All targets: zig supplies crt1.o and musl, not rustc. MIPS: without crt-static rustc asks for a
# dynamic PIE, zig links musl statically anyway and the binary segfaults at start.
# -Zfmt-debug=shallow: derived Debug prints only type and variant names (−6 KB on mipsel;
# no user-facing message formats one of our derived types; docs/decisions.md).
# -T mk/no-printf.ld: musl's printf family is left out (snprintf bound to abort; −16 KB on mipsel;
# the reason and the check are in that file).
CROSS_RUSTFLAGS_COMMON := -C link-self-contained=no -C target-feature=+crt-static -Zfmt-debug=shallow \
	-C link-arg=-T$(CURDIR)/mk/no-printf.ld
rustflags_mips-unknown-linux-musl := -C relocation-model=static
rustflags_mipsel-unknown-linux-musl := -C relocation-model=static
rustflags_armv7-unknown-linux-musleabihf :=
rustflags_aarch64-unknown-linux-musl :=
# Bench only, not in CROSS_SHORT (`make cross`/`test-cross` and CI do not build it): the same
# static musl build for the build machine's CPU, so tests/benches/portmap.rs can measure the
# memory of what routers run (musl's allocator, one static binary) next to the host build.
#   make cross-x86_64 bench-portmap
BENCH_TRIPLE := x86_64-unknown-linux-musl
triple_x86_64 := $(BENCH_TRIPLE)
zig_x86_64-unknown-linux-musl := -target x86_64-linux-musl -mcpu=baseline
rustflags_x86_64-unknown-linux-musl :=
# Test only, not in CROSS_SHORT (not a product target, no size check): big-endian s390x, the one
# big-endian Linux kernel Debian still ships (QEMU s390-ccw-virtio). The same code as the MIPS
# builds, run on a real big-endian kernel by `make test-qemu-s390x` (docs/decisions.md).
#   make cross-s390x cross-guest-tools-s390x
S390X_TRIPLE := s390x-unknown-linux-musl
triple_s390x := $(S390X_TRIPLE)
zig_s390x-unknown-linux-musl := -target s390x-linux-musl -mcpu=z10
rustflags_s390x-unknown-linux-musl :=
qemu_s390x-unknown-linux-musl := qemu-s390x-static

# MIPS_BIN etc.: where each product binary lands.
cross_bin = $(CROSS_DIR)/$(1)/portcullis
CROSS_BINS := $(foreach t,$(CROSS_TRIPLES),$(call cross_bin,$(t)))
upper = $(shell echo '$(1)' | tr 'a-z-' 'A-Z_')

# The environment of one cross cargo invocation for triple $(1).
cross_env = env -u RUSTUP_TOOLCHAIN -u RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
	RUSTC_BOOTSTRAP=1 RUSTC=$(DEBIAN_RUSTC) RUSTDOC=/usr/bin/rustdoc \
	CARGO_PROFILE_RELEASE_PANIC=immediate-abort \
	CARGO_TARGET_DIR=$(CROSS_TARGET_DIR) \
	ZIG_GLOBAL_CACHE_DIR=$(ZIG_CACHE) ZIG_LOCAL_CACHE_DIR=$(ZIG_CACHE) \
	CARGO_TARGET_$(call upper,$(1))_LINKER=$(CROSS_BIN)/$(1)-cc \
	CARGO_TARGET_$(call upper,$(1))_RUSTFLAGS="$(CROSS_RUSTFLAGS_COMMON) $(rustflags_$(1))" \
	CC_$(subst -,_,$(1))=$(CROSS_BIN)/$(1)-cc AR_$(subst -,_,$(1))=$(CROSS_BIN)/$(1)-ar

# std without its default "backtrace" feature: panics still print their message, but std's
# symbolizer (gimli, addr2line, rustc-demangle: ~225 KB of a 1.38 MB mipsel binary) is left out.
# The binaries are stripped, so a backtrace on the router could only print raw addresses anyway.
# `optimize_for_size` makes core and alloc pick their smaller algorithms (sorting, formatting):
# -89 KB on mipsel, measured in docs/decisions.md.
# `panic = "immediate-abort"` (issue 9): a panic traps at once instead of printing its message
# first; the formatting and unwinding machinery that printing needs (~127 KB on mipsel) is left
# out. No input may panic by the project's rules; if one ever does, the supervisor
# (S50portcullis) logs the exit status (a signal) and restarts the daemon, and the host build
# (tests, `cargo run`) keeps full panic messages. See docs/decisions.md.
CROSS_CARGO_FLAGS := --release -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size \
	-Zpanic-immediate-abort
# The workspace to build (another checkout, e.g. a clean `git archive HEAD`, may be given).
CROSS_SRC ?= $(CURDIR)

.PHONY: cross cross-deps cross-toolchain test-cross bench-size $(addprefix cross-,$(CROSS_SHORT)) \
	cross-x86_64 cross-s390x

cross: $(addprefix cross-,$(CROSS_SHORT))

## apt packages for cross builds and qemu-user (once per machine).
cross-deps: $(OUT)/.cross-deps-stamp
$(OUT)/.cross-deps-stamp:
	@mkdir -p $(OUT)
	@missing=""; for p in $(CROSS_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@test -x $(DEBIAN_CARGO) && test -x $(DEBIAN_RUSTC) && test -d /usr/lib/rustlib/src/rust/library
	@touch $@

## zig from PyPI, pinned by version and wheel hash, in a venv; plus the wrapper scripts.
cross-toolchain: $(ZIG_STAMP) $(foreach t,$(CROSS_TRIPLES),$(CROSS_BIN)/$(t)-cc $(CROSS_BIN)/$(t)-ar)
$(ZIG_STAMP): | $(OUT)/.cross-deps-stamp
	rm -rf $(ZIG_VENV)
	/usr/bin/python3 -m venv $(ZIG_VENV)
	printf 'ziglang==%s --hash=sha256:%s\n' $(ZIG_VERSION) $(ZIG_WHEEL_SHA256) > $(ZIG_VENV)/requirements.txt
	$(ZIG_VENV)/bin/pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
		--require-hashes -r $(ZIG_VENV)/requirements.txt
	$(ZIG_VENV)/bin/python -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))' > $(ZIG_VENV)/zig-path
	test -x "$$(cat $(ZIG_VENV)/zig-path)"
	touch $@

$(CROSS_BIN)/%-cc: $(ZIG_STAMP)
	@mkdir -p $(CROSS_BIN)
	printf '#!/bin/sh\n# zig as the C compiler and linker for %s (generated by mk/cross.mk)\nexec "%s" cc %s "$$@"\n' \
		$* "$$(cat $(ZIG_VENV)/zig-path)" '$(zig_$*)' > $@
	chmod +x $@
$(CROSS_BIN)/%-ar: $(ZIG_STAMP)
	@mkdir -p $(CROSS_BIN)
	printf '#!/bin/sh\nexec "%s" ar "$$@"\n' "$$(cat $(ZIG_VENV)/zig-path)" > $@
	chmod +x $@

# One rule per short name: build, then copy the binary out of the target dir.
define cross_target
cross-$(1): cross-toolchain
	@echo "== cross build $$(triple_$(1))"
	@start=$$$$(date +%s); \
	$$(call cross_env,$$(triple_$(1))) $$(DEBIAN_CARGO) build --manifest-path $$(CROSS_SRC)/Cargo.toml -p portcullis --target $$(triple_$(1)) \
		$$(CROSS_CARGO_FLAGS) \
	&& mkdir -p $$(CROSS_DIR)/$$(triple_$(1)) \
	&& cp $$(CROSS_TARGET_DIR)/$$(triple_$(1))/release/portcullis $$(call cross_bin,$$(triple_$(1))) \
	&& echo "== $$(triple_$(1)): $$$$(( $$$$(date +%s) - start )) s, $$$$(stat -c %s $$(call cross_bin,$$(triple_$(1)))) bytes"
endef
$(foreach s,$(CROSS_SHORT),$(eval $(call cross_target,$(s))))

# Test-only guest tools (tests/guest-tools, `pcx-guest`) for the QEMU VPN test's overlay: the same
# target dir and flags as the product build, so the std built by -Zbuild-std is shared.
#   make cross-guest-tools-aarch64   -> out/cross/<triple>/pcx-guest
guest_tools_bin = $(CROSS_DIR)/$(1)/pcx-guest
define cross_guest_tools
.PHONY: cross-guest-tools-$(1)
cross-guest-tools-$(1): cross-toolchain
	$$(call cross_env,$$(triple_$(1))) $$(DEBIAN_CARGO) build --manifest-path $$(CROSS_SRC)/Cargo.toml \
		-p portcullis-guest-tools --target $$(triple_$(1)) $$(CROSS_CARGO_FLAGS) \
	&& mkdir -p $$(CROSS_DIR)/$$(triple_$(1)) \
	&& cp $$(CROSS_TARGET_DIR)/$$(triple_$(1))/release/pcx-guest $$(call guest_tools_bin,$$(triple_$(1)))
endef
$(foreach s,$(CROSS_SHORT),$(eval $(call cross_guest_tools,$(s))))
$(eval $(call cross_target,x86_64))
cross-x86_64: $(CROSS_BIN)/$(BENCH_TRIPLE)-cc $(CROSS_BIN)/$(BENCH_TRIPLE)-ar
$(eval $(call cross_target,s390x))
$(eval $(call cross_guest_tools,s390x))
cross-s390x cross-guest-tools-s390x: $(CROSS_BIN)/$(S390X_TRIPLE)-cc $(CROSS_BIN)/$(S390X_TRIPLE)-ar
## Where the bench's static musl build lands (tests/benches/portmap.rs measures it if present).
MUSL_BENCH_BIN := $(call cross_bin,$(BENCH_TRIPLE))

## Every cross binary: fully static, correct machine, runs `--version` and `check` under qemu-user.
# Plus the big-endian test build (s390x), whose binary the s390x boot test runs.
test-cross: cross cross-s390x
	tests/qemu/cross-test.sh $(CROSS_DIR) firmware/examples/home.json $(CROSS_TRIPLES) $(S390X_TRIPLE)

## Stripped size per target plus per-dependency costs, written into BENCHMARKS.md.
# The cost split needs symbols: an unstripped mipsel build in its own target dir (so the product
# build's cache is not invalidated).
SYMS_BIN := $(CROSS_DIR)/syms/mipsel-unknown-linux-musl/portcullis
.PHONY: cross-syms
cross-syms: cross-toolchain
	$(call cross_env,mipsel-unknown-linux-musl) CARGO_TARGET_DIR=$(CURDIR)/$(CROSS_DIR)/target-syms \
		CARGO_PROFILE_RELEASE_STRIP=false \
		$(DEBIAN_CARGO) build --manifest-path $(CROSS_SRC)/Cargo.toml -p portcullis \
		--target mipsel-unknown-linux-musl $(CROSS_CARGO_FLAGS)
	mkdir -p $(dir $(SYMS_BIN))
	cp $(CROSS_DIR)/target-syms/mipsel-unknown-linux-musl/release/portcullis $(SYMS_BIN)
bench-size: cross cross-syms
	SYMS_BIN=$(SYMS_BIN) tests/qemu/bench-size.sh $(CROSS_DIR) $(CROSS_TARGET_DIR) $(CROSS_TRIPLES)
