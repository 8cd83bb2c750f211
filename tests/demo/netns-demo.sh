#!/bin/bash
# The `make run` demo: builds a wan/router/lan topology in network namespaces, applies a
# config with Portcullis in the router namespace, starts sample services on the LAN host,
# prints how to try a forward, and runs the daemon until Ctrl-C. Everything it creates is
# removed on exit, whatever the exit path.
set -euo pipefail

BIN=$(realpath "${1:?usage: netns-demo.sh PORTCULLIS_BIN CONFIG}")
CONFIG=$(realpath "${2:?usage: netns-demo.sh PORTCULLIS_BIN CONFIG}")
ID=$$
WAN=pcx-demo-wan-$ID
ROUTER=pcx-demo-router-$ID
LAN=pcx-demo-lan-$ID
WORK=$(mktemp -d /tmp/pcx-demo.XXXXXX)
PIDS=()

cleanup() {
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in "$WAN" "$ROUTER" "$LAN"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
    echo "demo: cleaned up namespaces $WAN $ROUTER $LAN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

for ns in "$WAN" "$ROUTER" "$LAN"; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
ip link add pcxdw$ID type veth peer name pcxdr$ID
ip link set pcxdw$ID netns "$WAN"; ip link set pcxdr$ID netns "$ROUTER"
ip link add pcxdl$ID type veth peer name pcxdk$ID
ip link set pcxdl$ID netns "$LAN"; ip link set pcxdk$ID netns "$ROUTER"
in_ns "$WAN" ip link set pcxdw$ID name eth0
in_ns "$ROUTER" ip link set pcxdr$ID name wan0
in_ns "$ROUTER" ip link set pcxdk$ID name lan0
in_ns "$LAN" ip link set pcxdl$ID name eth0

in_ns "$WAN" ip addr add 203.0.113.10/24 dev eth0
in_ns "$WAN" ip link set eth0 up
in_ns "$ROUTER" ip addr add 203.0.113.2/24 dev wan0
in_ns "$ROUTER" ip addr add 192.168.1.1/24 dev lan0
in_ns "$ROUTER" ip link set wan0 up
in_ns "$ROUTER" ip link set lan0 up
in_ns "$ROUTER" sysctl -qw net.ipv4.ip_forward=1
for a in 10 20 30; do in_ns "$LAN" ip addr add 192.168.1.$a/24 dev eth0; done
in_ns "$LAN" ip link set eth0 up
in_ns "$LAN" ip route add default via 192.168.1.1

# Sample services on the LAN host.
mkdir -p "$WORK/www"
echo "hello from the LAN web server 192.168.1.10:80" >"$WORK/www/index.html"
in_ns "$LAN" python3 -m http.server 80 --bind 192.168.1.10 --directory "$WORK/www" \
    >/dev/null 2>&1 &
PIDS+=($!)
in_ns "$LAN" socat TCP-LISTEN:27015,bind=192.168.1.20,fork,reuseaddr \
    SYSTEM:'echo game server 192.168.1.20:27015' >/dev/null 2>&1 &
PIDS+=($!)

# The web UI listens on the router's LAN address only. To reach it from this machine, a
# socat bridge on 127.0.0.1 connects through the LAN namespace, so the router sees an
# ordinary LAN client.
UI_PORT=${DEMO_UI_PORT:-8481}
socat TCP-LISTEN:"$UI_PORT",bind=127.0.0.1,reuseaddr,fork \
    SYSTEM:"ip netns exec $LAN socat STDIO TCP\:192.168.1.1\:80" >/dev/null 2>&1 &
PIDS+=($!)

SAVED="$WORK/config.json"
in_ns "$ROUTER" "$BIN" --config "$SAVED" apply "$CONFIG"
in_ns "$ROUTER" "$BIN" --config "$SAVED" serve &
PIDS+=($!)
sleep 0.5

cat <<MSG

Portcullis is running in namespace $ROUTER (WAN 203.0.113.2 on wan0, LAN 192.168.1.1 on lan0).

  Web UI: http://127.0.0.1:$UI_PORT/   (from this machine; on the LAN it is http://192.168.1.1/)
          The first visit asks you to choose the admin password: there is no default.

Try, in another terminal:

  ip netns exec $WAN curl -s http://203.0.113.2:8080/        # forward "web" -> 192.168.1.10:80
  ip netns exec $WAN socat - TCP:203.0.113.2:27015           # forward "game" -> 192.168.1.20
  ip netns exec $WAN curl -m 2 http://203.0.113.2:80/        # not forwarded: times out
  ip netns exec $ROUTER $BIN --config $SAVED status           # hits and time left
  ip netns exec $ROUTER nft list table inet portcullis        # what the kernel holds

Press Ctrl-C to stop and remove everything.
MSG
wait "${PIDS[-1]}"
