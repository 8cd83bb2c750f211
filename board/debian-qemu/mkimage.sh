#!/bin/bash
# Assembles a bootable QEMU image (kernel + initramfs) from pinned Debian bookworm packages
# (kernel, its modules, busybox-static) and the cross-built static portcullis, with the same
# rootfs overlay, post-build script and init script as the Buildroot image:
#   board/debian-qemu/skeleton       what Buildroot's skeleton + initscripts would provide
#   board/common/rootfs-overlay      the router's own files (shared with Buildroot)
#   buildroot-external/package/portcullis/S50portcullis   the service (shared with Buildroot)
#   board/common/post-build.sh       run on the staged rootfs, as Buildroot runs it
#
# usage: mkimage.sh ARCH CACHE OUTDIR [PORTCULLIS_BIN]
#   ARCH mipsel|aarch64|armhf|s390x (s390x: big-endian test machine only). Without PORTCULLIS_BIN the image has no portcullis (the boot-time
#   baseline). Writes OUTDIR/kernel, OUTDIR/initramfs.cpio and OUTDIR/modules (names loaded).
# usage: mkimage.sh --test-overlay ARCH CACHE OUTDIR GUEST_DIR [GUEST_TOOLS_BIN]
#   Writes OUTDIR/test-overlay.cpio: Debian's nft and wg with their libraries, the files in
#   GUEST_DIR and (if given) the static test tool GUEST_TOOLS_BIN as /usr/bin/pcx-guest, to be
#   concatenated after initramfs.cpio by the QEMU tests (never part of the product image).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

mode=image
if [ "${1:-}" = --test-overlay ]; then mode="test"; shift; fi
arch=$1 cache=$2 outdir=$3
bin=${4:-}

case $arch in
mipsel) debarch=mipsel qemu_user=qemu-mipsel-static ;;
aarch64) debarch=arm64 qemu_user=qemu-aarch64-static ;;
armhf) debarch=armhf qemu_user=qemu-arm-static ;;
# Big-endian test machine for the kernel tests (not a router target): make test-qemu-s390x.
s390x) debarch=s390x qemu_user=qemu-s390x-static ;;
*) echo "mkimage: unknown ARCH '$arch' (mipsel, aarch64, armhf, s390x)" >&2; exit 2 ;;
esac
# The NIC drivers of the machine run-qemu.sh starts (after the router's modules).
nic_list=$here/modules-$arch.list
[ -f "$nic_list" ] || nic_list=$here/modules-pci.list

lock_field() { # package -> "version"
	awk -v a="$debarch" -v p="$1" '$1 == a && $3 == p { print $4 }' "$here/packages.lock"
}
deb_path() { # package -> cached .deb path
	local v
	v=$(lock_field "$1")
	[ -n "$v" ] || { echo "mkimage: $1 ($debarch) not in packages.lock" >&2; exit 1; }
	echo "$cache/debs/${1}_${v//:/%3a}_${debarch}.deb"
}

mkdir -p "$outdir"
work=$(mktemp -d "$outdir/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ $mode = test ]; then
	guest=$4 tools=${5:-}
	"$here/fetch-debs.sh" "$debarch" "$cache" test
	root=$work/root
	mkdir -p "$root"
	while read -r p; do
		dpkg-deb -x "$(deb_path "$p")" "$root"
	done < <(awk -v a="$debarch" '$1 == a && $2 == "test" { print $3 }' "$here/packages.lock")
	# Only what nft and wg need at run time: drop docs, locales, gconv, headers, other programs.
	mv "$root/usr/bin/wg" "$work/wg"
	rm -rf "${root:?}/usr/share" "${root:?}/usr/include" "$root"/usr/lib/*/gconv "${root:?}/etc" "${root:?}/usr/bin" \
		"$root/sbin/ldconfig" "$root/usr/sbin/iconvconfig" "$root/usr/sbin/zic" "$root/usr/libexec"
	install -D -m 0755 "$work/wg" "$root/usr/bin/wg"
	cp -a "$guest/." "$root/"
	if [ -n "$tools" ]; then install -D -m 0755 "$tools" "$root/usr/bin/pcx-guest"; fi
	python3 "$here/mkcpio.py" "$root" "$outdir/test-overlay.cpio"
	echo "mkimage: $outdir/test-overlay.cpio ($(du -k "$outdir/test-overlay.cpio" | cut -f1) KiB)"
	exit 0
fi

"$here/fetch-debs.sh" "$debarch" "$cache" image
kpkg=$(awk -v a="$debarch" '$1 == a && $3 ~ /^linux-image-/ { print $3 }' "$here/packages.lock")
kver=${kpkg#linux-image-}

# Kernel and the module closure of modules.list and the machine's NIC list.
kdir=$work/kernel
mkdir -p "$kdir"
dpkg-deb -x "$(deb_path "$kpkg")" "$kdir"
cp "$kdir/boot/vmlinuz-$kver" "$outdir/kernel"
depmod -b "$kdir" "$kver"

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc,lib/modules/"$kver",var/log}
ln -s ../run "$root/var/run"
: >"$root/etc/modules"
while read -r m; do
	deps=$(modprobe -d "$kdir" -S "$kver" --show-depends "$m" 2>&1) || {
		echo "mkimage: warning: module $m not in $kpkg" >&2
		continue
	}
	while read -r kind path _; do
		[ "$kind" = insmod ] || continue
		rel=${path#"$kdir"/lib/modules/"$kver"/}
		mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
		cp "$path" "$root/lib/modules/$kver/$rel"
	done <<<"$deps"
	if grep -q '^insmod' <<<"$deps"; then echo "$m" >>"$root/etc/modules"; fi
done < <(grep -hvE '^(#|$)' "$here/modules.list" "$nic_list")
cp "$kdir/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/"
depmod -b "$root" "$kver"
cp "$root/etc/modules" "$outdir/modules"

# busybox and its applet links.
bb=$work/busybox
mkdir -p "$bb"
dpkg-deb -x "$(deb_path busybox-static)" "$bb"
cp "$bb/bin/busybox" "$root/bin/busybox"
for a in $("$qemu_user" "$root/bin/busybox" --list-full); do
	[ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
done
ln -s bin/busybox "$root/init"

# Skeleton, shared overlay, the package's init script and binary: as Buildroot would install them.
cp -a "$here/skeleton/." "$root/"
rm -f "$root/README"
cp -a "$top/board/common/rootfs-overlay/." "$root/"
if [ -n "$bin" ]; then
	install -D -m 0755 "$bin" "$root/usr/sbin/portcullis"
	install -D -m 0755 "$top/buildroot-external/package/portcullis/S50portcullis" "$root/etc/init.d/S50portcullis"
fi
"$here/add-dnsmasq.sh" "$debarch" "$cache" "$root" "$qemu_user"
"$top/board/common/post-build.sh" "$root"

python3 "$here/mkcpio.py" "$root" "$outdir/initramfs.cpio" --node /dev/console:c:5:1 --node /dev/null:c:1:3
echo "mkimage: $outdir: kernel $(du -k "$outdir/kernel" | cut -f1) KiB, initramfs $(du -k "$outdir/initramfs.cpio" | cut -f1) KiB ($arch, $kpkg${bin:+, portcullis $(stat -c %s "$bin") bytes})"
