# The QEMU DHCP/DNS test (issue 10): the image's dnsmasq hands a LAN client in a namespace an
# address, a default route and DNS (tests/qemu/dhcp_test.py).
#
#   make test-qemu-dhcp-mipsel    (-aarch64, -armhf too)   part of `make test-qemu`
#
# This file may be read before mk/qemu.mk: only the recipes use its variables (expanded late).
QEMU_DHCP_ARCHES := mipsel aarch64 armhf

.PHONY: $(addprefix test-qemu-dhcp-,$(QEMU_DHCP_ARCHES))
define qemu_dhcp_arch
test-qemu-dhcp-$(1): qemu-image-$(1) qemu-test-overlay-$(1)
	$$(PYTHON) tests/qemu/dhcp_test.py --arch $(1) --image $$(QEMU_DIR)/$(1) \
		--test-overlay $$(QEMU_DIR)/$(1)/test-overlay.cpio --boot-timeout $$(QEMU_BOOT_TIMEOUT)
endef
$(foreach a,$(QEMU_DHCP_ARCHES),$(eval $(call qemu_dhcp_arch,$(a))))

test-qemu: test-qemu-dhcp-mipsel test-qemu-dhcp-aarch64
