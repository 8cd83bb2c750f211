# Coverage-guided fuzzing of every parser of outside input (issue 7): cargo-fuzz + libFuzzer.
#
#   make fuzz                  every target for FUZZ_SECS seconds each (default 60)
#   make fuzz-ci               every target for FUZZ_CI_SECS seconds each (default 20)
#   make fuzz-config           one target (any file name in firmware/fuzz/fuzz_targets/)
#   make fuzz-build            build the targets only
#
# The targets are the files in firmware/fuzz/fuzz_targets/ (see firmware/fuzz/README.md).
# Each run starts from the committed seeds (firmware/fuzz/seeds/TARGET/) plus the corpus
# grown by earlier runs (out/fuzz/corpus/TARGET/, not committed). A crash, a panic, a leak,
# an ASan report or a run over 10 s on one input fails the make target and leaves the input
# in out/fuzz/artifacts/TARGET/; replay it with
#   make fuzz-replay FUZZ_TARGET=config FUZZ_INPUT=out/fuzz/artifacts/config/crash-...
#
# cargo-fuzz (pinned) is installed from crates.io into $(PORTCULLIS_CACHE). The toolchain is
# the machine's stable one: RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes.
# FUZZ_SANITIZER=none builds without AddressSanitizer (our code forbids `unsafe`, so ASan
# mostly watches the dependencies; it costs about 2x in speed).

PORTCULLIS_CACHE ?= $(CURDIR)/$(OUT)/cache
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ_ROOT := $(PORTCULLIS_CACHE)/cargo-fuzz-$(CARGO_FUZZ_VERSION)
CARGO_FUZZ := $(CARGO_FUZZ_ROOT)/bin/cargo-fuzz
FUZZ_DIR := firmware/fuzz
FUZZ_OUT := $(CURDIR)/$(OUT)/fuzz
FUZZ_TARGETS := $(sort $(basename $(notdir $(wildcard $(FUZZ_DIR)/fuzz_targets/*.rs))))
FUZZ_SECS ?= 60
FUZZ_CI_SECS ?= 20
FUZZ_SANITIZER ?= address
# -a: debug assertions and overflow checks, so arithmetic overflow is found too.
FUZZ_CARGO = env PATH="$(CARGO_FUZZ_ROOT)/bin:$$PATH" RUSTC_BOOTSTRAP=1 $(CARGO) fuzz
FUZZ_BUILD_FLAGS = --fuzz-dir $(FUZZ_DIR) --target-dir $(FUZZ_OUT)/target -s $(FUZZ_SANITIZER) -a

.PHONY: fuzz fuzz-ci fuzz-build fuzz-tool fuzz-replay $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-tool: $(CARGO_FUZZ)
$(CARGO_FUZZ): | toolchain
	$(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) --root $(CARGO_FUZZ_ROOT)

fuzz-build: $(CARGO_FUZZ)
	$(FUZZ_CARGO) build $(FUZZ_BUILD_FLAGS)

# One bounded run per target; any finding exits non-zero and fails make.
$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: fuzz-build
	@mkdir -p $(FUZZ_OUT)/corpus/$* $(FUZZ_OUT)/artifacts/$*
	@echo "== fuzz $*: $(FUZZ_SECS) s"
	$(FUZZ_CARGO) run $(FUZZ_BUILD_FLAGS) $* $(FUZZ_OUT)/corpus/$* \
		$(wildcard $(FUZZ_DIR)/seeds/$*) -- \
		-max_total_time=$(FUZZ_SECS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_OUT)/artifacts/$*/

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-ci:
	$(MAKE) fuzz FUZZ_SECS=$(FUZZ_CI_SECS)

FUZZ_TARGET ?=
FUZZ_INPUT ?=
fuzz-replay: fuzz-build
	@test -n "$(FUZZ_TARGET)" -a -f "$(FUZZ_INPUT)" || \
		{ echo "usage: make fuzz-replay FUZZ_TARGET=config FUZZ_INPUT=path/to/crash-..."; exit 2; }
	$(FUZZ_CARGO) run $(FUZZ_BUILD_FLAGS) $(FUZZ_TARGET) $(FUZZ_INPUT)
