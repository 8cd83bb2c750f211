#!/bin/sh
# Prints, as hex, the nf_tables batch that `nft -f DELTA` sends (nft 1.0.6) to a kernel
# that already holds the table of BASE: element and object changes need the sets to exist,
# since nft reads their types (and interval elements) from the kernel first.
#
#   sudo sh capture-delta.sh shared.nft delta.nft > delta.hex
#
# As capture.sh: nft under strace in a throwaway network namespace; the batch is the only
# sendmsg(2). Output: the batch, 32 bytes per line.
set -eu
ns="pcx-capture-$$"
trace=$(mktemp)
ip netns add "$ns"
trap 'ip netns del "$ns"; rm -f "$trace"' EXIT
ip netns exec "$ns" nft -f "$1"
ip netns exec "$ns" strace -e trace=sendmsg -e write=3 -s 0 -o "$trace" nft -f "$2"
sed -n 's/^ | [0-9a-f]\{5\}  \(\([0-9a-f][0-9a-f]  \?\)*\).*/\1/p' "$trace" |
    tr -d ' \n' | fold -w 64
echo
