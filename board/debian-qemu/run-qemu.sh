#!/bin/bash
# Boots a Portcullis QEMU image with two NICs: wan (MAC ..:01) and lan (MAC ..:02), each on its
# own QEMU user-mode network, restricted (the guest reaches nothing outside QEMU).
#   WAN: 10.0.2.0/24, QEMU's DHCP gives the router 10.0.2.15.
#   LAN: 192.168.1.0/24, the router is 192.168.1.1; the host's UI_PORT is forwarded to its port 80.
#
# usage: run-qemu.sh ARCH KERNEL INITRD...      (several INITRDs are concatenated)
# environment:
#   UI_PORT    host port forwarded to the web UI on the LAN side (default 8480)
#   WAN_FWD    extra host->WAN forwards, "HOSTPORT:GUESTPORT ..." (to the router's WAN address)
#   LAN_FWD    extra host->LAN forwards, "HOSTPORT:GUESTPORT ..." (to 192.168.1.1)
#   APPEND     extra kernel command line
#   SERIAL     "interactive" (default: serial console + QEMU monitor on this terminal, Ctrl-A X
#              quits) or "stdio" (serial only, for tests driving the console through a pipe)
#   MEM        guest memory in MiB (default 256)
# shellcheck disable=SC2054 # commas inside QEMU option values, not array separators
set -euo pipefail
arch=$1 kernel=$2
shift 2
initrd=$1
if [ $# -gt 1 ]; then
	initrd=$(mktemp "${TMPDIR:-/tmp}/portcullis-initrd.XXXXXX")
	trap 'rm -f "$initrd"' EXIT
	cat "$@" >"$initrd"
fi
UI_PORT=${UI_PORT:-8480}
SERIAL=${SERIAL:-interactive}
MEM=${MEM:-256}

wan="user,id=wan,net=10.0.2.0/24,restrict=on"
for f in ${WAN_FWD:-}; do wan="$wan,hostfwd=tcp:127.0.0.1:${f%%:*}-10.0.2.15:${f##*:}"; done
lan="user,id=lan,net=192.168.1.0/24,host=192.168.1.2,dhcpstart=192.168.1.200,restrict=on"
lan="$lan,hostfwd=tcp:127.0.0.1:$UI_PORT-192.168.1.1:80"
for f in ${LAN_FWD:-}; do lan="$lan,hostfwd=tcp:127.0.0.1:${f%%:*}-192.168.1.1:${f##*:}"; done

case $arch in
mipsel)
	cmd=(qemu-system-mipsel -M malta -cpu 24Kf -vga none
		-device pcnet,netdev=wan,mac=52:54:00:12:34:01,romfile=
		-device e1000,netdev=lan,mac=52:54:00:12:34:02,romfile=)
	console=ttyS0
	;;
aarch64)
	cmd=(qemu-system-aarch64 -M virt -cpu cortex-a53
		-device virtio-net-pci,netdev=wan,mac=52:54:00:12:34:01,romfile=
		-device e1000,netdev=lan,mac=52:54:00:12:34:02,romfile=)
	console=ttyAMA0
	;;
armhf)
	cmd=(qemu-system-arm -M virt,highmem=off -cpu cortex-a15
		-device virtio-net-pci,netdev=wan,mac=52:54:00:12:34:01,romfile=
		-device e1000,netdev=lan,mac=52:54:00:12:34:02,romfile=)
	console=ttyAMA0
	;;
s390x)
	# Big-endian test machine (not a router): virtio over channel I/O, console on the SCLP.
	cmd=(qemu-system-s390x -M s390-ccw-virtio -cpu max
		-device virtio-net-ccw,netdev=wan,mac=52:54:00:12:34:01
		-device virtio-net-ccw,netdev=lan,mac=52:54:00:12:34:02)
	console=ttysclp0
	;;
*) echo "run-qemu: unknown ARCH '$arch' (mipsel, aarch64, armhf, s390x)" >&2; exit 2 ;;
esac
cmd+=(-m "$MEM" -kernel "$kernel" -initrd "$initrd" -netdev "$wan" -netdev "$lan" -no-reboot
	-append "console=$console rdinit=/init loglevel=4 panic=-1 ${APPEND:-}")
if [ "$SERIAL" = stdio ]; then
	cmd+=(-display none -serial stdio -monitor none)
else
	cmd+=(-nographic)
	echo "Portcullis ($arch) is booting. Web UI (LAN side): http://127.0.0.1:$UI_PORT/" >&2
	echo "Serial console below; Ctrl-A X quits QEMU, 'poweroff' shuts the router down." >&2
fi
if [ $# -gt 1 ]; then
	"${cmd[@]}" # not exec: the concatenated initrd is removed afterwards
else
	exec "${cmd[@]}"
fi
