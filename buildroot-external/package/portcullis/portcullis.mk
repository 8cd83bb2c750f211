################################################################################
#
# portcullis
#
################################################################################

# The binary is built outside Buildroot by the Portcullis Makefile (`make cross`): one pinned
# toolchain for every board (Buildroot's Rust lost its MIPS targets in 2024.08). This package
# installs that binary and its init script, and declares the kernel options the firewall needs.
# BR2_PACKAGE_PORTCULLIS_PREBUILT_DIR (set by `make image` to $(OUT)/cross/<Rust target>) holds
# only the binary, so the local rsync copies nothing else; `make image` runs portcullis-rebuild
# so that every image ships the binary `make cross` just built.
PORTCULLIS_VERSION = 0.1.0
PORTCULLIS_SITE = $(call qstrip,$(BR2_PACKAGE_PORTCULLIS_PREBUILT_DIR))
PORTCULLIS_SITE_METHOD = local
PORTCULLIS_LICENSE = MIT or Apache-2.0
# The licence texts live in the Portcullis checkout, not in the binary's directory: the
# legal-info step copies them from $(@D), where PORTCULLIS_COPY_LICENSES puts them.
PORTCULLIS_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE

define PORTCULLIS_COPY_LICENSES
	$(INSTALL) -m 0644 $(BR2_EXTERNAL_PORTCULLIS_PATH)/../LICENSE-MIT \
		$(BR2_EXTERNAL_PORTCULLIS_PATH)/../LICENSE-APACHE $(@D)/
endef
PORTCULLIS_POST_RSYNC_HOOKS += PORTCULLIS_COPY_LICENSES

ifeq ($(BR2_PACKAGE_PORTCULLIS)$(BR_BUILDING),yy)
ifeq ($(PORTCULLIS_SITE),)
$(error BR2_PACKAGE_PORTCULLIS_PREBUILT_DIR is empty: build images with `make image` in the Portcullis checkout, or set it to the directory of the binary `make cross` built)
endif
endif

define PORTCULLIS_BUILD_CMDS
	@test -x $(@D)/portcullis || { \
		echo "portcullis: no binary in $(PORTCULLIS_SITE); run make cross in the Portcullis checkout"; \
		exit 1; }
	@if $(TARGET_READELF) -lW $(@D)/portcullis | grep -q INTERP; then \
		echo "portcullis: $(@D)/portcullis is not a static binary"; exit 1; fi
endef

define PORTCULLIS_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/portcullis $(TARGET_DIR)/usr/sbin/portcullis
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/etc/portcullis
endef

define PORTCULLIS_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(PORTCULLIS_PKGDIR)/S50portcullis \
		$(TARGET_DIR)/etc/init.d/S50portcullis
endef

# nf_tables with conntrack, NAT, limits, logging and sets; bridge for the LAN; WireGuard and veth
# for the features on the roadmap. Same list as board/common/linux-portcullis.fragment;
# `make check-kernel-config` proves both survive olddefconfig on Linux 6.1.
define PORTCULLIS_LINUX_CONFIG_FIXUPS
	$(call KCONFIG_ENABLE_OPT,CONFIG_NET)
	$(call KCONFIG_ENABLE_OPT,CONFIG_INET)
	$(call KCONFIG_ENABLE_OPT,CONFIG_IPV6)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NETFILTER)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NETFILTER_ADVANCED)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NETFILTER_NETLINK)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NF_CONNTRACK)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NF_CONNTRACK_MARK)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NF_NAT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NF_TABLES)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NF_TABLES_INET)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NF_TABLES_IPV4)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NF_TABLES_IPV6)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_CT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_NAT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_MASQ)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_REDIR)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_LIMIT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_LOG)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NF_LOG_SYSLOG)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_REJECT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_REJECT_INET)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_OBJREF)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_QUOTA)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_FIB_IPV4)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_FIB_IPV6)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_FIB_INET)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NFT_CONNLIMIT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_BRIDGE)
	$(call KCONFIG_ENABLE_OPT,CONFIG_VETH)
	$(call KCONFIG_ENABLE_OPT,CONFIG_WIREGUARD)
	$(call KCONFIG_ENABLE_OPT,CONFIG_PACKET)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NET_NS)
endef

$(eval $(generic-package))
