# Portcullis: every entry point. `make run` runs the product, `make test` runs the tests.
# Both install what they need on a fresh Debian 12 machine (apt packages, crates).

SHELL := /bin/bash
CARGO ?= $(shell command -v cargo 2>/dev/null || echo /usr/bin/cargo)
OUT := out
# miniupnpc, natpmpc: the UPnP / NAT-PMP clients of the port-mapping tests; miniupnpd-nftables:
# the bench's reference daemon. That package has no maintainer scripts (the init script and
# debconf questions live in `miniupnpd`, which is not installed), so nothing starts or touches
# the host's firewall; the bench runs it inside a namespace only.
APT_PACKAGES := nftables iproute2 nmap socat iperf3 procps psmisc curl python3 chromium chromium-driver \
	miniupnpc natpmpc miniupnpd-nftables dnsmasq-base busybox
BIN := target/debug/portcullis
RELEASE_BIN := target/release/portcullis

.PHONY: all run demo test lint unit e2e bench bench-portmap deps toolchain build release clean \
	cross test-cross bench-size qemu qemu-image test-qemu bench-boot image

all: build

## Installs system packages (once per machine; the stamp lives in out/).
deps: $(OUT)/.deps-stamp toolchain
$(OUT)/.deps-stamp:
	@mkdir -p $(OUT)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@touch $@

## A Rust toolchain: the machine's rustup one if present, else Debian's rustc-web/cargo-web.
toolchain:
	@if ! command -v $(CARGO) >/dev/null 2>&1; then \
		echo "no cargo found: installing Debian's rustc-web and cargo-web"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rustc-web cargo-web; \
	fi

build: deps
	$(CARGO) build -p portcullis

release: deps
	$(CARGO) build -p portcullis --release

## Runs the product: boots the router image (QEMU, mipsel malta by default; ARCH=aarch64|armhf)
## with a WAN and a LAN NIC and prints the web UI URL (mk/qemu.mk).
run: qemu

## The namespace demo: a wan/router/lan topology in network namespaces with the example
## config applied and the daemon running until Ctrl-C; everything is removed afterwards.
## It prints the web UI URL reachable from this machine (127.0.0.1:DEMO_UI_PORT, default 8481).
demo: release
	tests/demo/netns-demo.sh $(RELEASE_BIN) firmware/examples/home.json

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: toolchain
	$(CARGO) test -p portcullis

e2e: build
	PORTCULLIS_BIN=$(CURDIR)/$(BIN) $(CARGO) test -p portcullis-e2e -- --test-threads=8

## The README's test command: lint, unit tests, kernel tests (root), end-to-end tests,
## a short fuzzing pass of every target (mk/fuzz.mk), cross builds and QEMU boots.
test: deps lint
	$(CARGO) build -p portcullis
	PORTCULLIS_BIN=$(CURDIR)/$(BIN) $(CARGO) test --workspace -- --test-threads=8
	$(MAKE) fuzz-ci
	$(MAKE) test-cross test-qemu
	$(MAKE) check-kernel-config check-buildroot

## Benchmarks; results go to BENCHMARKS.md by hand with the command that produced them.
bench: release
	$(CARGO) build --release -p portcullis-e2e --benches
	PORTCULLIS_BIN=$(CURDIR)/$(RELEASE_BIN) PORTCULLIS_MUSL_BIN=$(CURDIR)/$(MUSL_BENCH_BIN) $(CARGO) bench -p portcullis-e2e

## The port-mapping bench alone: Debian's miniupnpd against Portcullis (tests/benches/portmap.rs).
bench-portmap: release
	PORTCULLIS_BIN=$(CURDIR)/$(RELEASE_BIN) PORTCULLIS_MUSL_BIN=$(CURDIR)/$(MUSL_BENCH_BIN) $(CARGO) bench -p portcullis-e2e --bench portmap

clean:
	$(CARGO) clean
	rm -rf $(OUT)

# Cross builds, QEMU images and boot tests, Buildroot (issue 3): mk/cross.mk, mk/qemu.mk, mk/buildroot.mk.
include $(wildcard mk/*.mk)
