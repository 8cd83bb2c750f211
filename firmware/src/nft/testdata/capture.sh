#!/bin/sh
# Prints, as hex, the nf_tables batch that `nft -f FILE` sends (nft 1.0.6).
#
#   sudo sh capture.sh example.nft > example.hex
#
# Runs nft under strace in a throwaway network namespace; `-e write=3` dumps every byte
# written to the netlink socket (fd 3), and the batch is the only sendmsg(2) (nft's cache
# queries use sendto(2)). Output: the batch, 32 bytes per line.
set -eu
ns="pcx-capture-$$"
trace=$(mktemp)
ip netns add "$ns"
trap 'ip netns del "$ns"; rm -f "$trace"' EXIT
ip netns exec "$ns" strace -e trace=sendmsg -e write=3 -s 0 -o "$trace" nft -f "$1"
# Lines look like ' | 00010  00 00 00 0a 24 00 ...  ascii |'; keep the hex columns.
sed -n 's/^ | [0-9a-f]\{5\}  \(\([0-9a-f][0-9a-f]  \?\)*\).*/\1/p' "$trace" |
    tr -d ' \n' | fold -w 64
echo
