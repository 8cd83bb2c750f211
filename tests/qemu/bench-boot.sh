#!/bin/bash
# Boot-to-ready per architecture, with and without portcullis, into BENCHMARKS.md ("Boot time").
# "Ready" is the console line of /etc/init.d/S99ready, the last init script; in the image with
# portcullis, S50portcullis only returns once the daemon's ruleset is in the kernel, so the
# difference between the two images is what portcullis costs at boot.
#
# usage: bench-boot.sh QEMU_DIR RUNS ARCH...   (images: QEMU_DIR/<arch> and QEMU_DIR/<arch>-bare)
set -euo pipefail
qemu_dir=$1 runs=$2
shift 2
top=$(cd "$(dirname "$0")/../.." && pwd)
section=$(mktemp)
results=$(mktemp)
trap 'rm -f "$section" "$results"' EXIT

for arch in "$@"; do
	for variant in with-portcullis bare; do
		img=$qemu_dir/$arch
		[ $variant = bare ] && img=$qemu_dir/$arch-bare
		python3 "$top/tests/qemu/boot_test.py" --bench --arch "$arch" --image "$img" \
			--runs "$runs" --label "$variant" | tee -a "$results"
	done
done

{
	echo "Command: \`make bench-boot\` (BENCH_BOOT_RUNS=$runs boots per image; QEMU $(qemu-system-mipsel --version | head -1 | awk '{print $4}'), TCG"
	echo "emulation on the $(nproc)-core x86_64 build machine, no KVM; emulated times are noisy, the"
	echo "difference between the two columns is the point). Measured $(date -u +%Y-%m-%d) at commit"
	echo "$(git -C "$top" rev-parse --short HEAD)."
	echo
	echo "Boot-to-ready: from starting QEMU to the last init script's console line (host clock, median"
	echo "of the runs, min–max in brackets). Same kernel, busybox and init scripts in both images; the"
	echo "\"without\" image lacks /usr/sbin/portcullis and S50portcullis. With portcullis, ready means"
	echo "the daemon's ruleset is in the kernel. The last column is the guest's own clock (/proc/uptime)"
	echo "at that line, which excludes QEMU start-up and kernel loading."
	echo
	echo "| arch (QEMU machine) | with portcullis | without | difference | guest uptime at ready, with / without |"
	echo "|---|---:|---:|---:|---:|"
	for arch in "$@"; do
		case $arch in mipsel) m="mipsel (malta)" ;; aarch64) m="aarch64 (virt, cortex-a53)" ;; armhf) m="armhf (virt, cortex-a15)" ;; esac
		w=$(awk -v a="$arch" '$1 == "BOOT-BENCH" && $2 == a && $3 == "with-portcullis"' "$results")
		b=$(awk -v a="$arch" '$1 == "BOOT-BENCH" && $2 == a && $3 == "bare"' "$results")
		get() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
		wm=$(get host_median "$w") bm=$(get host_median "$b")
		echo "| $m | $wm s [$(get host_min "$w")–$(get host_max "$w")] | $bm s [$(get host_min "$b")–$(get host_max "$b")] | $(python3 -c "print(f'{$wm - $bm:+.1f} s')") | $(get guest_median "$w") s / $(get guest_median "$b") s |"
	done
} >"$section"
cat "$section"
python3 "$top/tests/qemu/update-benchmarks.py" "$top/BENCHMARKS.md" "Boot time" <"$section"
echo "bench-boot: BENCHMARKS.md updated (section \"Boot time\")"
