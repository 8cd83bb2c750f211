# QEMU images from pinned Debian parts, and the boot test (issue 3).
#
#   make qemu-image ARCH=mipsel|aarch64|armhf   kernel + initramfs in out/qemu/<ARCH>/
#   make qemu ARCH=...                          boot it: two NICs (wan, lan), prints the web UI URL
#   make run                                    = make qemu ARCH=mipsel
#   make test-qemu                              boot tests: mipsel (malta), aarch64 and armhf (virt), s390x
#                                               (big-endian kernel); VPN tests: mipsel and aarch64
#   make test-qemu-s390x                        the boot test on a big-endian kernel (s390x, not a router)
#   make test-qemu-vpn-aarch64                  the end-to-end VPN test (tests/qemu/vpn_test.py); -mipsel too
#   make bench-boot                             boot-to-ready with and without portcullis -> BENCHMARKS.md
#   make bench-vpn                              tunnel vs plain path in the aarch64 guest -> BENCHMARKS.md
#
# The image: Debian bookworm kernel + the modules the router needs + busybox-static (versions and
# sha256 in board/debian-qemu/packages.lock, cached in $(PORTCULLIS_CACHE)/debs), the cross-built
# static portcullis, and the same overlay, post-build script and init script as the Buildroot
# image. See board/debian-qemu/mkimage.sh.

QEMU_APT_PACKAGES := qemu-system-mips qemu-system-arm qemu-system-misc qemu-user-static kmod cpio python3 debian-archive-keyring binutils
ARCH ?= mipsel
# Router images (bench-boot, `make qemu`).
QEMU_ARCHES := mipsel aarch64 armhf
# Boot-tested by `make test-qemu`: every router image, plus s390x, the one big-endian kernel
# Debian ships: the same firmware code (cross-built for s390x-unknown-linux-musl) meets a
# big-endian netlink peer there, as it will on big-endian MIPS routers (docs/decisions.md).
QEMU_TEST_ARCHES := mipsel aarch64 armhf s390x
# The end-to-end VPN test: the two fastest guests. armhf is boot-tested only (its guest is the
# slowest router image and the VPN code is the same as on aarch64); s390x is a test machine.
QEMU_VPN_ARCHES := mipsel aarch64
QEMU_DIR := $(OUT)/qemu
# The cross target (mk/cross.mk short name) whose binary goes into each image.
cross_for_mipsel := mipsel
cross_for_aarch64 := aarch64
cross_for_armhf := armv7
cross_for_s390x := s390x
debarch_mipsel := mipsel
debarch_aarch64 := arm64
debarch_armhf := armhf
debarch_s390x := s390x
QEMU_BOOT_TIMEOUT ?= 150
# Per arch when slower (TCG on 2 busy CI cores): measured boot-to-ready in docs/decisions.md.
boot_timeout_mipsel := $(QEMU_BOOT_TIMEOUT)
boot_timeout_aarch64 := $(QEMU_BOOT_TIMEOUT)
boot_timeout_armhf := $(QEMU_BOOT_TIMEOUT)
boot_timeout_s390x := $(QEMU_BOOT_TIMEOUT)
UI_PORT ?= 8480
# Debian's python3 (installed by qemu-deps); the boot test uses only the standard library.
PYTHON := /usr/bin/python3

.PHONY: qemu qemu-image qemu-deps test-qemu bench-boot bench-vpn $(addprefix qemu-image-,$(QEMU_ARCHES) s390x) \
	$(addprefix qemu-test-overlay-,$(QEMU_ARCHES) s390x) $(addprefix test-qemu-,$(QEMU_ARCHES) s390x) \
	$(addprefix test-qemu-vpn-,$(QEMU_ARCHES) s390x)

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
		--test-overlay $$(QEMU_DIR)/$(1)/test-overlay.cpio --boot-timeout $$(boot_timeout_$(1))
# The end-to-end VPN test (issue 9): provider, internet host and WAN leak counters in the guest.
test-qemu-vpn-$(1): qemu-image-$(1) qemu-test-overlay-$(1)
	$(PYTHON) tests/qemu/vpn_test.py --arch $(1) --image $$(QEMU_DIR)/$(1) \
		--test-overlay $$(QEMU_DIR)/$(1)/test-overlay.cpio --boot-timeout $$(boot_timeout_$(1))
endef
$(foreach a,$(QEMU_ARCHES) s390x,$(eval $(call qemu_arch,$(a))))

## Boots the image interactively; the web UI (LAN side) is forwarded to 127.0.0.1:$(UI_PORT).
qemu: qemu-image-$(ARCH)
	UI_PORT=$(UI_PORT) board/debian-qemu/run-qemu.sh $(ARCH) $(QEMU_DIR)/$(ARCH)/kernel $(QEMU_DIR)/$(ARCH)/initramfs.cpio

## The boot and VPN tests of `make test`, plus the check that a hanging boot fails in bounded time.
test-qemu: $(addprefix test-qemu-,$(QEMU_TEST_ARCHES)) $(addprefix test-qemu-vpn-,$(QEMU_VPN_ARCHES))
	$(PYTHON) tests/qemu/boot_test.py --arch mipsel --image $(QEMU_DIR)/mipsel --hang-check

## Boot-to-ready per arch, with and without portcullis, into BENCHMARKS.md ("Boot time").
BENCH_BOOT_RUNS ?= 3
bench-boot: $(foreach a,$(QEMU_ARCHES),qemu-image-$(a) qemu-image-$(a)-bare)
	tests/qemu/bench-boot.sh $(QEMU_DIR) $(BENCH_BOOT_RUNS) $(QEMU_ARCHES)

## The tunnel against the plain path in one aarch64 guest run, into BENCHMARKS.md ("VPN tunnel").
bench-vpn: qemu-image-aarch64 qemu-test-overlay-aarch64
	tests/qemu/bench-vpn.sh $(QEMU_DIR) aarch64
