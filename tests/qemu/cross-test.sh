#!/bin/bash
# Checks each cross-built portcullis: a fully static ELF for the right CPU (no INTERP, no
# dynamic section, `file` says statically linked) that runs its own `--version` and `check`
# of the example config under qemu-user.
#
# usage: cross-test.sh CROSS_DIR CONFIG TRIPLE...
set -uo pipefail
cross_dir=$1 config=$2
shift 2

passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() {
	echo "FAIL $1"
	[ -n "${2:-}" ] && while IFS= read -r l; do echo "     | $l"; done <<<"$2"
	failed=$((failed + 1))
}

for triple in "$@"; do
	bin=$cross_dir/$triple/portcullis
	case $triple in
	mips-*) qemu=qemu-mips-static machine='MSB.*MIPS' ;;
	mipsel-*) qemu=qemu-mipsel-static machine='LSB.*MIPS' ;;
	armv7-*) qemu=qemu-arm-static machine='32-bit LSB.*ARM' ;;
	aarch64-*) qemu=qemu-aarch64-static machine='64-bit LSB.*ARM aarch64' ;;
	# Big-endian test build (the s390x boot test's binary), not a router target.
	s390x-*) qemu=qemu-s390x-static machine='64-bit MSB.*S/390' ;;
	*) bad "$triple: unknown triple"; continue ;;
	esac
	if [ ! -x "$bin" ]; then bad "$triple: $bin missing (run make cross)"; continue; fi

	desc=$(file -b "$bin")
	if grep -q 'statically linked' <<<"$desc" && grep -Eq "$machine" <<<"$desc"; then
		ok "$triple: file: ${desc%%,*}, statically linked"
	else
		bad "$triple: file says" "$desc"
	fi
	phdrs=$(readelf -lW "$bin" 2>&1)
	dyn=$(readelf -dW "$bin" 2>&1)
	if ! grep -q INTERP <<<"$phdrs" && grep -q 'no dynamic section' <<<"$dyn"; then
		ok "$triple: no INTERP, no dynamic section (no NEEDED)"
	else
		bad "$triple: not fully static" "$(grep -E 'INTERP|NEEDED|interpreter' <<<"$phdrs$dyn")"
	fi

	out=$(timeout 60 "$qemu" "$bin" --version 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && grep -q '^portcullis ' <<<"$out"; then
		ok "$triple: --version under $qemu: $out"
	else
		bad "$triple: --version exited $rc" "$out"
	fi
	out=$(timeout 60 "$qemu" "$bin" check "$config" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "$triple: check $(basename "$config") under $qemu"
	else
		bad "$triple: check $(basename "$config") exited $rc" "$out"
	fi
	# A broken config must be rejected the same way on every CPU (exit 1, field named).
	tmp=$(mktemp)
	printf '{"version": 1, "lan": {"interface": "lan0", "subnets": ["192.168.1.0/24"]}, "wan": {"interface": "wan0"}, "management": {"http_port": 80}, "forwards": [{"name": "x", "protocol": "tcp", "external_port": 0, "internal_host": "192.168.1.10"}], "triggers": []}\n' >"$tmp"
	out=$(timeout 60 "$qemu" "$bin" check "$tmp" 2>&1)
	rc=$?
	rm -f "$tmp"
	if [ $rc -eq 1 ] && grep -q 'error: ' <<<"$out"; then
		ok "$triple: check rejects a bad config (exit 1)"
	else
		bad "$triple: check of a bad config exited $rc" "$out"
	fi
done

echo "cross: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
