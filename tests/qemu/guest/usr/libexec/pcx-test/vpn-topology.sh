#!/bin/sh
# VPN test topology inside the QEMU guest (test overlay only; driven by tests/qemu/vpn_test.py).
#
#   router (root ns)  wanv 198.51.100.2/24 ==veth== isp0 198.51.100.1/24  namespace "isp"
#                     default route via 198.51.100.1   (the provider + the internet's edge)
#   isp:  wgp 10.2.0.1/24, WireGuard listen 51820, peer = the router's key, allowed 10.2.0.2/32
#         NAT-PMP gateway (pcx-guest natpmp-gw) on 10.2.0.1:5351, control file $S/natpmp.ctl
#         DNS responder on 10.2.0.1:53 (answers A with 203.0.113.80, logs to $S/dns.log)
#         whoami HTTP on 198.51.100.1:8000 (the Port Fail target)
#         tunnel traffic to the internet is SNATed to the exit address 203.0.113.7; the
#         provider's forwarding: 203.0.113.7:30000-65535 (TCP, UDP) DNAT to 10.2.0.2;
#         plain router traffic is routed without NAT.
#         netdev ingress counters on isp0 (what the router puts on its WAN): "wg" = UDP to port
#         51820, "other" = every other IPv4/IPv6 packet (the leak counter; logged "pcxleak: ").
#   isp: webi 203.0.113.1/32 ==veth== webw 203.0.113.80/32  namespace "web" (host routes)
#         whoami HTTP on :80, bulk receiver on :5001.
#
# usage: vpn-topology.sh up | down | counters | reset | isp CMD... | web CMD... | lan CMD...
#                        | scratch-ns | scratch CMD... | sampler-start | sampler-stop
#                        | import-timed BOUND_S IMPORT_ARGS...
#   up writes /tmp/provider.conf (wg-quick format: the router's side, its private key) and
#   $S/router.pub; counters prints "wg=PACKETS other=PACKETS"; isp/web/lan run CMD in that
#   namespace (lan = the test LAN host 192.168.1.10 of S45lanhost).
#   scratch-ns makes an empty namespace "scratch" (the self-check's stand-in for the firmware).
#   sampler-start/-stop: every 0.2 s, record every process whose parent is a portcullis process
#   (the firmware must spawn none); stop prints "ticks=N" and the recorded lines.
#   import-timed: `portcullis vpn import IMPORT_ARGS`, then polls `status --json` until a
#   handshake shows (at most BOUND_S seconds); prints "IMPORT rc=R handshake_s=S|none".
S=/run/pcx-test
PROVIDER_CONF=/tmp/provider.conf

nspid() { cat "$S/$1.pid" 2>/dev/null; }
holder() { # name -> pid of the process holding that namespace
	case $1 in
	lan) cat /var/run/lanhost.pid 2>/dev/null ;;
	*) nspid "$1" ;;
	esac
}
in_ns() { # name cmd...
	p=$(holder "$1"); shift
	[ -n "$p" ] || { echo "vpn-topology: no such namespace" >&2; return 1; }
	nsenter -t "$p" -n "$@"
}
new_ns() { # name -> pid of a process holding a new network namespace
	unshare -n sleep 1000000 </dev/null >/dev/null 2>&1 &
	echo $! >"$S/$1.pid"
	# wait until the sleeper is in its own namespace
	i=0
	while [ "$(readlink /proc/$!/ns/net)" = "$(readlink /proc/self/ns/net)" ] && [ $i -lt 50 ]; do
		usleep 20000; i=$((i + 1))
	done
}
bg_in() { # name logfile cmd...: a daemon in a namespace, its pid appended to $S/daemons
	n=$1 log=$2; shift 2
	in_ns "$n" "$@" </dev/null >>"$log" 2>&1 &
	echo $! >>"$S/daemons"
}
veth() { # a b: a veth pair named a, b in the current namespace (busybox ip ignores "peer name")
	ip link add "$1" type veth && ip link set veth0 name "$2"
}

up() {
	set -e
	mkdir -p "$S"
	: >"$S/daemons"
	modprobe wireguard
	modprobe veth
	new_ns isp
	new_ns web
	isp=$(nspid isp) web=$(nspid web)

	# keys
	umask 077
	wg genkey >"$S/provider.key"
	wg pubkey <"$S/provider.key" >"$S/provider.pub"
	wg genkey >"$S/router.key"
	wg pubkey <"$S/router.key" >"$S/router.pub"
	umask 022

	# router <-> isp
	veth wanv isp0
	ip link set isp0 netns "$isp"
	echo 1 >/proc/sys/net/ipv6/conf/wanv/disable_ipv6 2>/dev/null || true
	ip addr add 198.51.100.2/24 dev wanv
	ip link set wanv up
	ip route show default >"$S/default-route"
	ip route replace default via 198.51.100.1 dev wanv

	# isp <-> web
	in_ns isp sh -c 'ip link add webi type veth && ip link set veth0 name webw'
	in_ns isp ip link set webw netns "$web"
	# /32 addresses and a host route each way: web must reach the exit address 203.0.113.7 (same
	# /24) through its gateway, not by ARP on the link
	in_ns web sh -c 'ip link set lo up && ip link set webw up && ip addr add 203.0.113.80/32 dev webw &&
		ip route add 203.0.113.1/32 dev webw && ip route add default via 203.0.113.1'
	in_ns isp sh -c "
		echo 1 >/proc/sys/net/ipv4/ip_forward
		ip link set lo up && ip link set isp0 up && ip addr add 198.51.100.1/24 dev isp0 &&
		ip link set webi up && ip addr add 203.0.113.1/32 dev webi && ip route add 203.0.113.80/32 dev webi &&
		ip link add wgp type wireguard &&
		wg set wgp listen-port 51820 private-key $S/provider.key \
			peer $(cat "$S/router.pub") allowed-ips 10.2.0.2/32 &&
		ip addr add 10.2.0.1/24 dev wgp && ip link set wgp up"
	in_ns isp nft -f - <<'NFT'
table ip provider {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 203.0.113.7 meta l4proto { tcp, udp } th dport 30000-65535 dnat to 10.2.0.2
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		iifname "wgp" oifname "webi" snat to 203.0.113.7
	}
}
table netdev pcxleak {
	counter wg { }
	counter other { }
	chain in {
		type filter hook ingress device "isp0" priority 0; policy accept;
		meta protocol ip udp dport 51820 counter name "wg" accept
		meta protocol { ip, ip6 } counter name "other" log prefix "pcxleak: " accept
	}
}
NFT
	echo 1 >/proc/sys/net/netfilter/nf_log_all_netns 2>/dev/null || true

	# services
	echo silent >"$S/natpmp.ctl"
	: >"$S/natpmp.log"
	bg_in isp "$S/natpmp.log" pcx-guest natpmp-gw --bind 10.2.0.1 --control "$S/natpmp.ctl" --public 203.0.113.7
	bg_in isp "$S/dns.log" pcx-guest dns-sink --bind 10.2.0.1:53 --answer 203.0.113.80
	bg_in isp "$S/whoami-isp.log" pcx-guest whoami-http --bind 198.51.100.1:8000
	bg_in web "$S/whoami-web.log" pcx-guest whoami-http --bind 203.0.113.80:80
	bg_in web "$S/bulk.log" pcx-guest bulk-recv --bind 203.0.113.80:5001

	# the router's provider file (what the owner would download)
	cat >"$PROVIDER_CONF" <<CONF
# test provider (vpn-topology.sh)
[Interface]
PrivateKey = $(cat "$S/router.key")
Address = 10.2.0.2/32
DNS = 10.2.0.1

[Peer]
PublicKey = $(cat "$S/provider.pub")
Endpoint = 198.51.100.1:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 5
CONF
	# the daemons listen once their sockets are bound: wait for them
	i=0
	until in_ns isp pcx-guest get 198.51.100.1:8000 / --timeout 1 >/dev/null 2>&1 &&
		in_ns web pcx-guest get 203.0.113.80:80 / --timeout 1 >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 50 ] || { echo "vpn-topology: services did not start" >&2; return 1; }
		usleep 100000
	done
	echo "vpn-topology: up (isp $isp, web $web)"
}

down() {
	[ -f "$S/daemons" ] && for p in $(cat "$S/daemons"); do kill "$p" 2>/dev/null; done
	for n in isp web scratch; do p=$(nspid "$n"); [ -n "$p" ] && kill "$p" 2>/dev/null; done
	ip link del wanv 2>/dev/null
	[ -s "$S/default-route" ] && ip route replace $(cat "$S/default-route")
	rm -rf "$S" "$PROVIDER_CONF"
	echo "vpn-topology: down"
}

counters() {
	in_ns isp nft list table netdev pcxleak | awk '
		/counter (wg|other) / { name = $2 }
		/packets/ && name { for (i = 1; i <= NF; i++) if ($i == "packets") c[name] = $(i + 1); name = "" }
		END { printf "wg=%d other=%d\n", c["wg"], c["other"] }'
}

PC="/usr/sbin/portcullis --config /etc/portcullis/test-config.json"

sampler() {
	ticks=0
	while [ ! -f "$S/sampler.stop" ]; do
		pids=" $(pidof portcullis) "
		awk -v pids="$pids" '/^Name:/ { n = $2 } /^PPid:/ && index(pids, " " $2 " ") { print FILENAME, n, "parent", $2 }' \
			/proc/[0-9]*/status 2>/dev/null >>"$S/children.log"
		ticks=$((ticks + 1))
		echo $ticks >"$S/sampler.ticks"
		usleep 200000
	done
}

import_timed() {
	bound=$1; shift
	t0=$(cut -d' ' -f1 /proc/uptime)
	timeout 30 $PC vpn import "$@"
	rc=$?
	hs=none
	end=$(($(cut -d. -f1 /proc/uptime) + bound))
	while [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do
		if timeout 10 $PC status --json 2>/dev/null | grep -q '"last_handshake_unix": *[0-9]'; then
			hs=$(awk -v t0="$t0" '{ printf "%.2f", $1 - t0 }' /proc/uptime)
			break
		fi
		usleep 100000
	done
	echo "IMPORT rc=$rc handshake_s=$hs"
}

case "$1" in
up) up ;;
sampler-start) mkdir -p "$S"; rm -f "$S/sampler.stop"; : >"$S/children.log"; sampler </dev/null >/dev/null 2>&1 & ;;
sampler-stop)
	touch "$S/sampler.stop"; usleep 500000
	echo "ticks=$(cat "$S/sampler.ticks" 2>/dev/null || echo 0)"; sort -u "$S/children.log" ;;
import-timed) shift; import_timed "$@" ;;
down) down ;;
counters) counters ;;
reset) in_ns isp nft reset counters table netdev pcxleak >/dev/null ;;
scratch-ns) new_ns scratch ;;
isp | web | lan | scratch) # exec: the caller's $! is the command itself
	p=$(holder "$1"); shift
	[ -n "$p" ] || { echo "vpn-topology: no such namespace" >&2; exit 1; }
	exec nsenter -t "$p" -n "$@" ;;
*) echo "usage: $0 up|down|counters|reset|isp CMD...|web CMD...|lan CMD..." >&2; exit 2 ;;
esac
