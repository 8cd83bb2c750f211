# Router images with Buildroot (issue 3): the real image path, for machines with internet access.
#
#   make image BOARD=qemu_mipsel_malta BUILDROOT=/path/to/buildroot
#
# BOARD is one of the defconfigs in buildroot-external/configs/ without the `portcullis_` prefix
# and `_defconfig` suffix: qemu_mipsel_malta, qemu_aarch64_virt, qemu_arm_vexpress.
# Buildroot runs with BR2_EXTERNAL=buildroot-external and an output dir per board
# (out/buildroot/<BOARD>); its package installs the static binary `make cross` built here
# (Buildroot's Rust has no MIPS target since 2024.08), from $(OUT)/cross/<Rust target>, which
# `make image` writes into the output's .config as BR2_PACKAGE_PORTCULLIS_PREBUILT_DIR. Every
# `make image` runs portcullis-rebuild, so the image ships the binary just built (a local package
# is otherwise copied only once). The result and its boot script:
#   out/buildroot/<BOARD>/images/   kernel, rootfs.ext2, start-qemu.sh
# Buildroot downloads its sources, so this cannot run on machines without internet.

BOARD ?= qemu_mipsel_malta
BUILDROOT ?=
BR_BOARDS := qemu_mipsel_malta qemu_aarch64_virt qemu_arm_vexpress
BR_OUT := $(abspath $(OUT))/buildroot/$(BOARD)
br_cross_qemu_mipsel_malta := mipsel
br_cross_qemu_aarch64_virt := aarch64
br_cross_qemu_arm_vexpress := armv7
BR_PREBUILT_DIR = $(abspath $(CROSS_DIR))/$(triple_$(br_cross_$(BOARD)))
BR_MAKE := env -u MAKEFLAGS -u MAKEOVERRIDES -u MFLAGS -u ARCH make

.PHONY: image image-check

image-check:
	@if [ -z "$(filter $(BOARD),$(BR_BOARDS))" ]; then \
		echo "make image: unknown BOARD '$(BOARD)' (one of: $(BR_BOARDS))"; exit 2; fi
	@if [ -z "$(BUILDROOT)" ] || [ ! -f "$(BUILDROOT)/Makefile" ] || [ ! -d "$(BUILDROOT)/package" ]; then \
		echo "make image: set BUILDROOT=/path/to/a/buildroot/checkout (2024.02 LTS or newer), e.g."; \
		echo "  git clone https://gitlab.com/buildroot.org/buildroot.git -b 2024.02.x ../buildroot"; \
		echo "  make image BOARD=$(BOARD) BUILDROOT=../buildroot"; \
		exit 2; fi

# Buildroot must not inherit this make's command-line variables (ARCH=, BOARD=...): it has
# variables of its own with those names. Hence env -u MAKEFLAGS and a plain `make`.
image: image-check
	$(MAKE) cross-$(br_cross_$(BOARD))
	$(BR_MAKE) -C $(BUILDROOT) O=$(BR_OUT) \
		BR2_EXTERNAL=$(CURDIR)/buildroot-external portcullis_$(BOARD)_defconfig
	$(BUILDROOT)/utils/config --file $(BR_OUT)/.config \
		--set-str BR2_PACKAGE_PORTCULLIS_PREBUILT_DIR $(BR_PREBUILT_DIR)
	$(BR_MAKE) -C $(BR_OUT) olddefconfig
	$(BR_MAKE) -C $(BR_OUT) portcullis-rebuild
	$(BR_MAKE) -C $(BR_OUT)
	@echo "image: $(BR_OUT)/images/ (boot it with $(BR_OUT)/images/start-qemu.sh)"

# Checks the external tree against a real Buildroot checkout (2024.02 LTS or newer), offline:
#   make check-buildroot BUILDROOT=/path/to/buildroot
# Loads every defconfig, fails on any line of ours Kconfig dropped (savedefconfig shows which lines
# are mere defaults), checks show-info lists the portcullis package, and runs utils/check-package
# on the tree and the board scripts (see mk/check-buildroot.sh). Without BUILDROOT it is skipped
# with a message (CI machines have no Buildroot checkout), so `make test` can always call it.
# check-package needs python3-magic and shellcheck (Debian packages).
BR_CHECK_APT_PACKAGES := python3-magic shellcheck

.PHONY: check-buildroot
check-buildroot:
	@if [ -n "$(BUILDROOT)" ]; then \
		missing=""; for p in $(BR_CHECK_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then echo "installing:$$missing"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi; \
	fi
	@if [ -z "$(BUILDROOT)" ]; then \
		echo "check-buildroot: SKIPPED: BUILDROOT is not set (this machine has no Buildroot checkout;"; \
		echo "  run it with: make check-buildroot BUILDROOT=/path/to/buildroot)"; \
	elif [ ! -f "$(BUILDROOT)/Makefile" ] || [ ! -x "$(BUILDROOT)/utils/check-package" ]; then \
		echo "check-buildroot: BUILDROOT=$(BUILDROOT) is not a Buildroot checkout"; exit 2; \
	else \
		mk/check-buildroot.sh "$(BUILDROOT)" "$(abspath $(OUT))/buildroot-check" "$(abspath $(CROSS_DIR))"; \
	fi
