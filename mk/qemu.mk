# QEMU images from pinned Debian parts, and the boot test (issue 3).
#
#   make qemu-image ARCH=mipsel|aarch64|armhf   kernel + initramfs in out/qemu/<ARCH>/
#   make qemu ARCH=...                          boot it: two NICs (wan, lan), prints the web UI URL
#   make run                                    = make qemu ARCH=mipsel
#   make test-qemu                              boot tests and VPN tests: mipsel (malta) and aarch64 (virt)
#   make test-qemu-vpn-aarch64                  the end-to-end VPN test (tests/qemu/vpn_test.py); -mipsel too
#   make bench-boot                             boot-to-ready with and without portcullis -> BENCHMARKS.md
#   make bench-vpn                              tunnel vs plain path in the aarch64 guest -> BENCHMARKS.md
#
# The image: Debian bookworm kernel + the modules the router needs + busybox-static (versions and
# sha256 in board/debian-qemu/packages.lock, cached in $(PORTCULLIS_CACHE)/debs), the cross-built
# static portcullis, and the same overlay, post-build script and init script as the Buildroot
# image. See board/debian-qemu/mkimage.sh.

QEMU_APT_PACKAGES := qemu-system-mips qemu-system-arm qemu-user-static kmod cpio python3 debian-archive-keyring
ARCH ?= mipsel
QEMU_ARCHES := mipsel aarch64 armhf
QEMU_TEST_ARCHES := mipsel aarch64
QEMU_DIR := $(OUT)/qemu
# The cross target (mk/cross.mk short name) whose binary goes into each image.
cross_for_mipsel := mipsel
cross_for_aarch64 := aarch64
cross_for_armhf := armv7
debarch_mipsel := mipsel
debarch_aarch64 := arm64
debarch_armhf := armhf
QEMU_BOOT_TIMEOUT ?= 150
UI_PORT ?= 8480
# Debian's python3 (installed by qemu-deps); the boot test uses only the standard library.
PYTHON := /usr/bin/python3

.PHONY: qemu qemu-image qemu-deps test-qemu bench-boot bench-vpn $(addprefix qemu-image-,$(QEMU_ARCHES)) \
	$(addprefix qemu-test-overlay-,$(QEMU_ARCHES)) $(addprefix test-qemu-,$(QEMU_ARCHES)) \
	$(addprefix test-qemu-vpn-,$(QEMU_ARCHES))

qemu-deps: $(OUT)/.qemu-deps-stamp
$(OUT)/.qemu-deps-stamp:
	@mkdir -p $(OUT)
	@missing=""; for p in $(QEMU_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@touch $@

qemu-image: qemu-image-$(ARCH)

define qemu_arch
qemu-image-$(1): qemu-deps cross-$$(cross_for_$(1))
	board/debian-qemu/mkimage.sh $(1) $$(PORTCULLIS_CACHE) $$(QEMU_DIR)/$(1) \
		$$(call cross_bin,$$(triple_$$(cross_for_$(1))))
# The test overlay: Debian's nft and wg, tests/qemu/guest, and the test tool pcx-guest.
qemu-test-overlay-$(1): qemu-deps cross-guest-tools-$$(cross_for_$(1))
	board/debian-qemu/mkimage.sh --test-overlay $(1) $$(PORTCULLIS_CACHE) $$(QEMU_DIR)/$(1) tests/qemu/guest \
		$$(call guest_tools_bin,$$(triple_$$(cross_for_$(1))))
# The same image without portcullis: the baseline for boot-time numbers.
qemu-image-$(1)-bare: qemu-deps
	board/debian-qemu/mkimage.sh $(1) $$(PORTCULLIS_CACHE) $$(QEMU_DIR)/$(1)-bare
test-qemu-$(1): qemu-image-$(1) qemu-test-overlay-$(1)
	$(PYTHON) tests/qemu/boot_test.py --arch $(1) --image $$(QEMU_DIR)/$(1) \
		--test-overlay $$(QEMU_DIR)/$(1)/test-overlay.cpio --boot-timeout $$(QEMU_BOOT_TIMEOUT)
# The end-to-end VPN test (issue 9): provider, internet host and WAN leak counters in the guest.
test-qemu-vpn-$(1): qemu-image-$(1) qemu-test-overlay-$(1)
	$(PYTHON) tests/qemu/vpn_test.py --arch $(1) --image $$(QEMU_DIR)/$(1) \
		--test-overlay $$(QEMU_DIR)/$(1)/test-overlay.cpio --boot-timeout $$(QEMU_BOOT_TIMEOUT)
endef
$(foreach a,$(QEMU_ARCHES),$(eval $(call qemu_arch,$(a))))

## Boots the image interactively; the web UI (LAN side) is forwarded to 127.0.0.1:$(UI_PORT).
qemu: qemu-image-$(ARCH)
	UI_PORT=$(UI_PORT) board/debian-qemu/run-qemu.sh $(ARCH) $(QEMU_DIR)/$(ARCH)/kernel $(QEMU_DIR)/$(ARCH)/initramfs.cpio

## The boot and VPN tests of `make test`, plus the check that a hanging boot fails in bounded time.
test-qemu: $(addprefix test-qemu-,$(QEMU_TEST_ARCHES)) $(addprefix test-qemu-vpn-,$(QEMU_TEST_ARCHES))
	$(PYTHON) tests/qemu/boot_test.py --arch mipsel --image $(QEMU_DIR)/mipsel --hang-check

## Boot-to-ready per arch, with and without portcullis, into BENCHMARKS.md ("Boot time").
BENCH_BOOT_RUNS ?= 3
bench-boot: $(foreach a,$(QEMU_ARCHES),qemu-image-$(a) qemu-image-$(a)-bare)
	tests/qemu/bench-boot.sh $(QEMU_DIR) $(BENCH_BOOT_RUNS) $(QEMU_ARCHES)

## The tunnel against the plain path in one aarch64 guest run, into BENCHMARKS.md ("VPN tunnel").
bench-vpn: qemu-image-aarch64 qemu-test-overlay-aarch64
	tests/qemu/bench-vpn.sh $(QEMU_DIR) aarch64
