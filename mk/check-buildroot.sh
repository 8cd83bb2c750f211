#!/bin/sh
# Checks the Portcullis BR2_EXTERNAL tree against a real Buildroot checkout (`make check-buildroot`).
#
#   mk/check-buildroot.sh BUILDROOT_DIR WORK_DIR PREBUILT_ROOT
#
# For each defconfig in buildroot-external/configs/:
#   1. loads it with BR2_EXTERNAL into WORK_DIR/<defconfig> (offline: nothing is downloaded);
#   2. fails if a line of ours is not in the resulting .config (Kconfig dropped it silently:
#      unknown symbol, unmet `depends on`, wrong choice), and shows which of our lines
#      `make savedefconfig` leaves out because they are Buildroot's defaults anyway;
#   3. `make show-info` must list the portcullis package (it is enabled, not dropped).
# Then `utils/check-package -b` on the whole external tree and on the board files the defconfigs
# use (overlay init scripts, post-build/post-image scripts: Buildroot checks its own board/ and
# overlay scripts the same way, shellcheck included). Any warning fails.
# PREBUILT_ROOT: $(OUT)/cross; like `make image`, the check sets BR2_PACKAGE_PORTCULLIS_PREBUILT_DIR
# (to PREBUILT_ROOT/x: nothing is built, so no binary is needed).
set -u
BR=$1
WORK=$2
PREBUILT_ROOT=$3
TOP=$(cd "$(dirname "$0")/.." && pwd)
EXT=$TOP/buildroot-external
# Debian's python3 (with python3-magic, which check-package imports), not a pyenv shim on PATH.
PY=/usr/bin/python3
fail=0
bad() {
	echo "check-buildroot: FAIL: $*"
	fail=1
}

brmake() { env -u MAKEFLAGS -u MAKEOVERRIDES -u MFLAGS -u ARCH make "$@"; }

version=$(brmake -s -C "$BR" --no-print-directory print-version 2>/dev/null)
echo "check-buildroot: Buildroot ${version:-?} in $BR"
mkdir -p "$WORK"

for defconfig in "$EXT"/configs/*_defconfig; do
	name=$(basename "$defconfig")
	o=$WORK/$name
	rm -rf "$o"
	if ! brmake -C "$BR" O="$o" BR2_EXTERNAL="$EXT" "$name" >"$o.log" 2>&1; then
		bad "$name does not load (see $o.log)"
		tail -5 "$o.log"
		continue
	fi
	# What `make image` does next: point the package at the cross-built binary.
	"$BR/utils/config" --file "$o/.config" --set-str BR2_PACKAGE_PORTCULLIS_PREBUILT_DIR "$PREBUILT_ROOT/x"
	brmake -C "$o" olddefconfig >>"$o.log" 2>&1 || bad "$name: olddefconfig failed (see $o.log)"
	dropped=0
	while IFS= read -r line; do
		case $line in
		'# BR2_'*' is not set') ;;
		'' | '#'*) continue ;;
		esac
		if ! grep -qxF -- "$line" "$o/.config"; then
			sym=$(echo "$line" | sed -e 's/^# \(BR2_[A-Za-z0-9_]*\) is not set$/\1/' -e 's/=.*//')
			now=$(grep -E "^$sym=|^# $sym is not set" "$o/.config" || echo "absent")
			bad "$name: '$line' was dropped (now: $now)"
			dropped=$((dropped + 1))
		fi
	done <"$defconfig"
	if ! brmake -C "$o" savedefconfig BR2_DEFCONFIG="$o/saved_defconfig" >>"$o.log" 2>&1; then
		bad "$name: savedefconfig failed (see $o.log)"
	else
		# Lines of ours savedefconfig omits are defaults (harmless, listed for information);
		# lines it adds that are not ours would mean the defconfig is incomplete.
		redundant=$(grep -v '^#' "$defconfig" | grep -v '^$' | grep -vxF -f "$o/saved_defconfig" | tr '\n' ' ')
		added=$(grep -vxF -f "$defconfig" "$o/saved_defconfig" | grep -v PORTCULLIS_PREBUILT_DIR | tr '\n' ' ')
		[ -n "$added" ] && bad "$name: savedefconfig has lines the defconfig lacks: $added"
		echo "check-buildroot: $name: $dropped dropped; defaults savedefconfig omits: ${redundant:-none}"
	fi
	info=$(brmake -s -C "$o" --no-print-directory show-info 2>>"$o.log")
	if echo "$info" | $PY -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if "portcullis" in d else 1)'; then
		echo "check-buildroot: $name: show-info lists portcullis $(echo "$info" | $PY -c 'import json,sys; p=json.load(sys.stdin)["portcullis"]; print(p["version"], "licence", p["licenses"], p["license_files"])')"
	else
		bad "$name: show-info does not list the portcullis package"
	fi
done

# check-package on the external tree and on the board files the defconfigs point at.
files=$(cd "$TOP" && find buildroot-external -type f | sort)
boards=$(cd "$TOP" && find board/common -path '*/rootfs-overlay/etc/init.d/S*' -type f | sort)
scripts="board/common/post-build.sh board/common/post-image.sh"
echo "check-buildroot: utils/check-package -b on $(echo "$files" | wc -l) tree files, $(echo "$boards" | wc -l) overlay init scripts, 2 post scripts"
# shellcheck disable=SC2086 # word splitting of the file lists is intended (no spaces in names)
out=$(cd "$TOP" && "$PY" "$BR/utils/check-package" -b $files $boards $scripts 2>&1)
echo "$out" | sed 's/^/  /'
if ! echo "$out" | grep -qE '^0 warnings generated$'; then
	bad "check-package reported warnings (or did not run)"
fi

if [ "$fail" -ne 0 ]; then
	echo "check-buildroot: FAILED against Buildroot ${version:-?}"
	exit 1
fi
echo "check-buildroot: OK against Buildroot ${version:-?}"
