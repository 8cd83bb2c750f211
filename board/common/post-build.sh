#!/bin/sh
# Post-build script shared by every Portcullis image. Buildroot runs it with the target
# directory as $1 (BR2_ROOTFS_POST_BUILD_SCRIPT); board/debian-qemu/mkimage.sh runs it the same
# way on the QEMU images it assembles. Extra arguments (BR2_ROOTFS_POST_SCRIPT_ARGS): an
# optional board netif.conf that replaces the QEMU default port assignment.
set -e
TARGET_DIR=$1
NETIF_CONF=${2:-}

# The product must be there, executable and static (it is the only program the router needs
# besides busybox).
if [ ! -x "$TARGET_DIR/usr/sbin/portcullis" ]; then
	echo "post-build: note: no /usr/sbin/portcullis in this image" >&2
fi

if [ -n "$NETIF_CONF" ]; then
	install -m 0644 "$NETIF_CONF" "$TARGET_DIR/etc/portcullis/netif.conf"
fi

# dnsmasq serves DHCP and DNS under our supervisor /etc/init.d/S40dnsmasq (rootfs overlay), with
# the config portcullis renders into its run dir. Buildroot's dnsmasq package adds its own
# /etc/init.d/S80dnsmasq, which would start a second dnsmasq on the same ports, and a default
# /etc/dnsmasq.conf (read by a dnsmasq started without --conf-file) would conflict: remove both
# when present (the images from Debian parts have neither).
for f in "$TARGET_DIR/etc/init.d/S80dnsmasq" "$TARGET_DIR/etc/dnsmasq.conf"; do
	if [ -e "$f" ]; then
		rm -f "$f"
		echo "post-build: removed ${f#"$TARGET_DIR"} (dnsmasq runs under /etc/init.d/S40dnsmasq)"
	fi
done

# Init scripts must be executable (overlays copied from some checkouts lose the bit).
chmod 0755 "$TARGET_DIR"/etc/init.d/S* "$TARGET_DIR/etc/portcullis/udhcpc.script"

# /etc/portcullis holds the saved config the daemon rewrites (expired forwards are removed).
chmod 0755 "$TARGET_DIR/etc/portcullis"
