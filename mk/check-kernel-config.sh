#!/bin/sh
# Kernel-config merge check (`make check-kernel-config`): do the kernel options Portcullis needs
# survive in each Buildroot board's kernel config?
#
#   mk/check-kernel-config.sh CACHE_DIR
#
# Uses Debian's linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz), of which only what Kconfig
# reads (Kconfig*, Makefiles, scripts/, arch/*/configs, the .dts names) is extracted once into
# CACHE_DIR/kconfig-linux-source-<Debian version>. For each board (the base config its defconfig
# names, the fragments of BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES, then
# PORTCULLIS_LINUX_CONFIG_FIXUPS as Buildroot applies them) it runs
# `scripts/kconfig/merge_config.sh -m` and `make ARCH=… olddefconfig`, and fails naming every
# fragment line and fixup option that is not in the resulting .config (olddefconfig drops an
# option whose dependencies are not met). It also checks BR2_LINUX_KERNEL_INTREE_DTS_NAME.
set -u
CACHE=$1
TOP=$(cd "$(dirname "$0")/.." && pwd)
EXT=$TOP/buildroot-external
TARBALL=/usr/src/linux-source-6.1.tar.xz
ver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
SRC=$CACHE/kconfig-linux-source-$ver/linux-source-6.1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-kconfig.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

if [ ! -f "$SRC/.extracted" ]; then
	echo "check-kernel-config: extracting the Kconfig parts of $TARBALL ($ver) into $SRC"
	rm -rf "$CACHE/kconfig-linux-source-$ver"
	mkdir -p "$CACHE/kconfig-linux-source-$ver"
	tar -C "$CACHE/kconfig-linux-source-$ver" -xJf "$TARBALL" --wildcards \
		'*/Kconfig*' '*/Makefile*' '*/Kbuild*' '*/Platform' 'linux-source-6.1/scripts/*' \
		'linux-source-6.1/arch/*/configs/*' 'linux-source-6.1/arch/*/tools/*' \
		'linux-source-6.1/arch/*/boot/dts/*.dts' || exit 1
	touch "$SRC/.extracted"
fi

# The fixups of the package, as a fragment (KCONFIG_ENABLE_OPT -> =y, KCONFIG_DISABLE_OPT -> not set).
sed -n -e 's/.*KCONFIG_ENABLE_OPT, *\(CONFIG_[A-Za-z0-9_]*\)).*/\1=y/p' \
	-e 's/.*KCONFIG_DISABLE_OPT, *\(CONFIG_[A-Za-z0-9_]*\)).*/# \1 is not set/p' \
	"$EXT/package/portcullis/portcullis.mk" >"$WORK/fixups"

# value of a (quoted) option in a defconfig, with $(BR2_EXTERNAL_PORTCULLIS_PATH) expanded
opt() { sed -n "s/^$1=\"\(.*\)\"$/\1/p" "$2" | sed "s|\$(BR2_EXTERNAL_PORTCULLIS_PATH)|$EXT|g"; }

check_board() {
	defconfig=$1
	name=$(basename "$defconfig" _defconfig)
	o=$WORK/$name
	mkdir -p "$o"
	arch=$(sed -n 's/^BR2_\(mipsel\|mips\|aarch64\|arm\)=y$/\1/p' "$defconfig")
	case $arch in
	mips | mipsel) karch=mips ;;
	aarch64) karch=arm64 ;;
	arm) karch=arm ;;
	*)
		echo "$name: unknown architecture"
		return 1
		;;
	esac
	if grep -q '^BR2_LINUX_KERNEL_USE_CUSTOM_CONFIG=y' "$defconfig"; then
		base=$(opt BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE "$defconfig")
	else
		base=$SRC/arch/$karch/configs/$(opt BR2_LINUX_KERNEL_DEFCONFIG "$defconfig")_defconfig
	fi
	if [ ! -f "$base" ]; then
		echo "$name: FAIL: base config $base not found (ship it in the tree)"
		return 1
	fi
	frags=$(opt BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES "$defconfig")
	# shellcheck disable=SC2086 # the fragment list is space-separated, as in Buildroot
	(cd "$SRC" && KCONFIG_CONFIG=$o/.config scripts/kconfig/merge_config.sh -m -O "$o" \
		"$base" $frags "$WORK/fixups" && make -s ARCH=$karch O="$o" olddefconfig) >"$o/log" 2>&1 || {
		echo "$name: FAIL: merge/olddefconfig failed:"
		tail -20 "$o/log"
		return 1
	}
	bad=0
	for f in $frags "$WORK/fixups"; do
		label=${f#"$TOP/buildroot-external/../"}
		[ "$f" = "$WORK/fixups" ] && label=PORTCULLIS_LINUX_CONFIG_FIXUPS
		while IFS= read -r line; do
			case $line in
			'# CONFIG_'*' is not set') ;;
			'' | '#'*) continue ;;
			esac
			grep -qxF -- "$line" "$o/.config" && continue
			sym=$(echo "$line" | sed -e 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1/' -e 's/=.*//')
			now=$(grep -E "^$sym=|^# $sym is not set" "$o/.config" || echo "absent")
			echo "$name: FAIL: $label: '$line' did not survive olddefconfig (now: $now)"
			bad=1
		done <"$f"
	done
	dts=$(opt BR2_LINUX_KERNEL_INTREE_DTS_NAME "$defconfig")
	for d in $dts; do
		if [ ! -f "$SRC/arch/$karch/boot/dts/$d.dts" ]; then
			echo "$name: FAIL: BR2_LINUX_KERNEL_INTREE_DTS_NAME '$d': no arch/$karch/boot/dts/$d.dts in Linux 6.1"
			bad=1
		fi
	done
	# shellcheck disable=SC2086 # the fragment list is space-separated
	n=$(cat $frags "$WORK/fixups" | grep -c '^CONFIG_\|^# CONFIG_.* is not set')
	[ "$bad" -eq 0 ] && echo "$name: OK ($n fragment/fixup lines kept, ARCH=$karch, base $(basename "$base"))"
	return "$bad"
}

echo "check-kernel-config: Linux $(make -s -C "$SRC" kernelversion 2>/dev/null) from linux-source-6.1 $ver"
pids=
for defconfig in "$EXT"/configs/*_defconfig; do
	check_board "$defconfig" >"$WORK/$(basename "$defconfig").out" 2>&1 &
	pids="$pids $!"
done
fail=0
for p in $pids; do wait "$p" || fail=1; done
cat "$WORK"/*.out
if [ "$fail" -ne 0 ]; then
	echo "check-kernel-config: FAILED"
	exit 1
fi
echo "check-kernel-config: OK"
