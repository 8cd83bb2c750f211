#!/bin/sh
# udhcpc event script of the DHCP test's LAN client (tests/qemu/dhcp_test.py, dhcp-lan.sh): runs
# in the client's network namespace, configures its interface and default route as a client
# would, and records what the server handed out in /run/pcx-dhcp/IFACE.lease
# ("event= ip= mask= router= dns= domain= lease= serverid=", written atomically) and every event, in
# order, in /run/pcx-dhcp/IFACE.events. It never touches the router's /etc/resolv.conf.
# udhcpc passes interface, ip, mask, router, dns, domain and lease in the environment.
# shellcheck disable=SC2154
S=/run/pcx-dhcp
echo "$1 ${ip:-}" >>"$S/$interface.events"
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	ip route del default 2>/dev/null
	for r in $router; do ip route add default via "$r" dev "$interface" && break; done
	# shellcheck disable=SC2086 # split on purpose: lists are written comma-separated
	r=$(printf '%s,' $router) d=$(printf '%s,' $dns)
	echo "event=$1 ip=$ip mask=${mask:-} router=${r%,} dns=${d%,} domain=${domain:-} lease=${lease:-} serverid=${serverid:-}" \
		>"$S/$interface.lease.tmp"
	mv -f "$S/$interface.lease.tmp" "$S/$interface.lease"
	;;
esac
exit 0
