#!/bin/bash
# The WireGuard tunnel against the plain path, in one QEMU guest run, into BENCHMARKS.md
# ("VPN tunnel"): TCP throughput (3 x 20 MB, LAN host -> internet host), ping RTT (20 pings) through
# the tunnel and in clear (vpn off), and the time from `vpn import` to the first handshake.
# Emulated (TCG) figures are only comparable side by side, within the run.
#
# usage: bench-vpn.sh QEMU_DIR ARCH      (image: QEMU_DIR/<arch>, with test-overlay.cpio)
set -euo pipefail
qemu_dir=$1 arch=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
results=$(mktemp)
section=$(mktemp)
trap 'rm -f "$results" "$section"' EXIT

python3 "$top/tests/qemu/vpn_test.py" --bench --arch "$arch" --image "$qemu_dir/$arch" \
	--test-overlay "$qemu_dir/$arch/test-overlay.cpio" | tee "$results"
get() { sed -n "s/^VPN-BENCH $arch .*$1=\([0-9.a-z/]*\).*/\1/p" "$results" | head -1; }
t_mbit=$(get throughput_tunnel_mbit) c_mbit=$(get throughput_clear_mbit)
t_rtt=$(get rtt_tunnel_ms) c_rtt=$(get rtt_clear_ms) added=$(get added_ms) hs=$(get import_to_handshake_s)
[ -n "$t_mbit" ] && [ -n "$hs" ] || { echo "bench-vpn: no VPN-BENCH figures" >&2; exit 1; }

{
	echo "Command: \`make bench-vpn\` (tests/qemu/vpn_test.py --bench: one $arch guest, QEMU $(qemu-system-aarch64 --version | head -1 | awk '{print $4}'), TCG"
	echo "emulation on the $(nproc)-core x86_64 build machine, no KVM). Measured $(date -u +%Y-%m-%d) at commit"
	echo "$(git -C "$top" rev-parse --short HEAD). The LAN host (192.168.1.10) talks to an internet host behind"
	echo "the provider namespace in the same guest; \"tunnel\" goes through the router's wg0 and the"
	echo "provider's kernel WireGuard peer, \"clear\" is the same path with \`vpn off\` (NAT on the WAN)."
	echo "Emulated figures are only comparable side by side: both columns come from the same run."
	echo
	echo "| figure | tunnel | clear | difference |"
	echo "|---|---:|---:|---:|"
	echo "| TCP throughput, 20 MB LAN -> internet (median of 3) | $t_mbit Mbit/s | $c_mbit Mbit/s | $(python3 -c "t,c='$t_mbit','$c_mbit'; print(f'{float(t)/float(c)*100:.0f} % of clear' if 'n' not in t+c else 'n/a')") |"
	echo "| ping RTT (avg of 20), LAN -> internet | $t_rtt ms | $c_rtt ms | +$added ms |"
	echo "| \`vpn import\` to the first handshake | $hs s | | |"
} >"$section"
cat "$section"
python3 "$top/tests/qemu/update-benchmarks.py" "$top/BENCHMARKS.md" "VPN tunnel" <"$section"
echo "bench-vpn: BENCHMARKS.md updated (section \"VPN tunnel\")"
