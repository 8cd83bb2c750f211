#!/bin/sh
# DHCP/DNS test topology inside the QEMU guest (test overlay only; driven by tests/qemu/dhcp_test.py).
#
#   router (root ns)  lan0 192.168.1.1 (bridge) <- veth TAG-a ==== TAG-b  namespace "client TAG"
#                     the client's MAC is given; busybox udhcpc runs there with dhcp-record.sh
#   router (root ns)  TAG-u 203.0.113.1/24 ==veth== TAG-v 203.0.113.53/24  namespace "upstream TAG"
#                     a second dnsmasq answering example.test (198.51.100.7) and nothing else,
#                     logging its queries to $S/TAG.upstream.log
#
# usage: dhcp-lan.sh client-up TAG MAC | udhcpc TAG HOSTNAME | renew TAG | lease TAG | events TAG
#                    | client TAG CMD... | upstream-up TAG | down TAG
#   TAG: a short unique name (the interfaces are TAG-a, TAG-b, TAG-u, TAG-v: at most 13 chars).
#   udhcpc starts `udhcpc -f` in the client namespace (-x hostname:HOSTNAME); lease prints the
#   last lease dhcp-record.sh recorded (ip= mask= router= dns= domain= lease=), events the
#   udhcpc events in order; renew sends udhcpc SIGUSR1 (renew the lease).
#   upstream-up makes the upstream namespace and its dnsmasq and waits until it answers.
#   down removes everything TAG made (processes, namespaces, veths, files).
S=/run/pcx-dhcp
mkdir -p "$S"

nspid() { cat "$S/$1.pid" 2>/dev/null; }
new_ns() { # file -> pid of a process holding a new network namespace (written to $S/file.pid)
	unshare -n sleep 1000000 </dev/null >/dev/null 2>&1 &
	echo $! >"$S/$1.pid"
	i=0
	while [ "$(readlink /proc/$!/ns/net)" = "$(readlink /proc/self/ns/net)" ] && [ $i -lt 100 ]; do
		usleep 20000
		i=$((i + 1))
	done
}
veth() { # a b: a veth pair (busybox ip ignores "peer name": rename the kernel's name for it)
	ip link add "$1" type veth || return 1
	peer=$(ip -o link show "$1" | sed -n 's/^[0-9]*: [^@]*@\([^:]*\):.*/\1/p')
	ip link set "${peer:-veth0}" name "$2"
}
wait_for() { # tries cmd... every 0.1 s, at most $1 tries
	n=$1
	shift
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -ge "$n" ] && return 1
		usleep 100000
	done
}

answers() { # pid name server address: the server in that namespace answers name with address
	nsenter -t "$1" -n nslookup -type=a "$2" "$3" 2>&1 | grep -q "^Address: *$4$"
}

tag=$2
case "$1" in
client-up)
	mac=$3
	new_ns "$tag.client"
	p=$(nspid "$tag.client")
	veth "$tag-a" "$tag-b" &&
		ip link set "$tag-b" address "$mac" &&
		ip link set "$tag-b" netns "$p" &&
		ip link set "$tag-a" master lan0 &&
		ip link set "$tag-a" up &&
		nsenter -t "$p" -n sh -c "ip link set lo up && ip link set $tag-b up" || exit 1
	# QEMU's user-mode network behind the LAN NIC runs a DHCP server of its own: isolate the
	# NIC's bridge port and the client's (isolated ports do not exchange frames; both still
	# reach the router, the bridge itself), so that only the router's dnsmasq answers.
	for d in /sys/class/net/lan0/brif/*; do
		n=${d##*/}
		if [ -e "/sys/class/net/$n/device" ]; then
			echo 1 >"/sys/class/net/$n/brport/isolated" && echo "$n" >>"$S/$tag.isolated"
		fi
	done
	echo 1 >"/sys/class/net/$tag-a/brport/isolated" &&
		echo "dhcp-lan: client $tag up ($mac; isolated from $(cat "$S/$tag.isolated"))"
	;;
udhcpc)
	p=$(nspid "$tag.client")
	rm -f "$S/$tag-b.lease" "$S/$tag-b.events"
	nsenter -t "$p" -n udhcpc -f -i "$tag-b" -s /usr/libexec/pcx-test/dhcp-record.sh -x "hostname:$3" \
		-t 20 -T 1 -A 2 </dev/null >>"$S/$tag.udhcpc.log" 2>&1 &
	echo $! >"$S/$tag.udhcpc.pid"
	echo "dhcp-lan: udhcpc started in $tag"
	;;
renew)
	kill -USR1 "$(cat "$S/$tag.udhcpc.pid")" && echo "dhcp-lan: renew sent"
	;;
lease)
	cat "$S/$tag-b.lease"
	;;
events)
	cat "$S/$tag-b.events"
	;;
client)
	shift 2
	nsenter -t "$(nspid "$tag.client")" -n "$@"
	;;
upstream-up)
	new_ns "$tag.upstream"
	p=$(nspid "$tag.upstream")
	veth "$tag-u" "$tag-v" &&
		ip link set "$tag-v" netns "$p" &&
		ip addr add 203.0.113.1/24 dev "$tag-u" &&
		ip link set "$tag-u" up &&
		nsenter -t "$p" -n sh -c "ip link set lo up && ip addr add 203.0.113.53/24 dev $tag-v &&
			ip link set $tag-v up" || exit 1
	nsenter -t "$p" -n dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
		--listen-address=203.0.113.53 --bind-interfaces --pid-file="$S/$tag.upstream.dnsmasq.pid" \
		--address=/example.test/198.51.100.7 --log-queries --log-facility="$S/$tag.upstream.log" \
		</dev/null >>"$S/$tag.upstream.out" 2>&1 &
	echo $! >"$S/$tag.upstream.dnsmasq"
	if wait_for 100 answers "$p" example.test 203.0.113.53 198.51.100.7; then
		echo "dhcp-lan: upstream $tag answers on 203.0.113.53"
	else
		cat "$S/$tag.upstream.out"
		exit 1
	fi
	;;
down)
	for f in udhcpc.pid upstream.dnsmasq client.pid upstream.pid; do
		[ -f "$S/$tag.$f" ] && kill "$(cat "$S/$tag.$f")" 2>/dev/null
	done
	[ -f "$S/$tag.isolated" ] && while read -r n; do echo 0 >"/sys/class/net/$n/brport/isolated"; done <"$S/$tag.isolated"
	ip link del "$tag-a" 2>/dev/null
	ip link del "$tag-u" 2>/dev/null
	rm -f "$S/$tag".* "$S/$tag"-*
	echo "dhcp-lan: $tag down"
	;;
*)
	echo "usage: $0 client-up|udhcpc|renew|lease|events|client|upstream-up|down TAG ..." >&2
	exit 2
	;;
esac
