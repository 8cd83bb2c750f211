# Kernel-config merge check (issue 10), part of `make test`:
#   make check-kernel-config
# Merges board/common/linux-portcullis.fragment, each board's linux.fragment and the package's
# PORTCULLIS_LINUX_CONFIG_FIXUPS into the base config each Buildroot defconfig names, in a real
# Linux 6.1 tree (Debian's linux-source-6.1, Kconfig parts only, cached in $(PORTCULLIS_CACHE)),
# runs olddefconfig and fails on every option that did not survive. See mk/check-kernel-config.sh.
KCONFIG_APT_PACKAGES := linux-source-6.1 flex bison gcc make xz-utils

.PHONY: check-kernel-config
check-kernel-config:
	@missing=""; for p in $(KCONFIG_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	mk/check-kernel-config.sh "$(PORTCULLIS_CACHE)"
