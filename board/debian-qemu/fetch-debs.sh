#!/bin/bash
# Downloads the pinned Debian bookworm .debs of one architecture into CACHE/debs, verifying
# each sha256 against packages.lock. Uses apt-get with a private apt directory (no root, no
# dpkg --add-architecture, nothing of the host's apt state touched). Already-cached .debs with
# the right checksum are not downloaded again.
#
# usage: fetch-debs.sh ARCH CACHE [ROLE...]      (roles: image test; default both)
#        fetch-debs.sh --pin ARCH CACHE          print lock lines for the current candidates
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lock=$here/packages.lock

pin=0
if [ "${1:-}" = --pin ]; then pin=1; shift; fi
arch=$1 cache=$2
shift 2
roles=${*:-image test}
mkdir -p "$cache/debs"
cache=$(cd "$cache" && pwd)

aptdir=$cache/apt-$arch
apt_opts=(-o "Dir::Etc=$aptdir/etc" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$aptdir/lists"
	-o "Dir::State::status=$aptdir/status" -o "Dir::Cache=$aptdir/cache" -o Debug::NoLocking=1
	-o "APT::Architectures::=$arch" -o "APT::Architecture=$arch" -o Acquire::Languages=none
	-o Acquire::Retries=3 -o APT::Sandbox::User=root)

apt_ready=0
apt_setup() {
	[ $apt_ready = 1 ] && return
	mkdir -p "$aptdir/etc/preferences.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
	: >"$aptdir/status"
	cat >"$aptdir/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
SRC
	echo "fetch-debs: apt-get update (bookworm, $arch)"
	apt-get "${apt_opts[@]}" update -q >"$aptdir/update.log" 2>&1 || { cat "$aptdir/update.log"; exit 1; }
	apt_ready=1
}

deb_name() { # package version arch -> the file name apt-get download writes (epoch ':' as %3a)
	echo "${1}_${2//:/%3a}_${3}.deb"
}

if [ $pin = 1 ]; then
	apt_setup
	awk -v a="$arch" '$1 == a { print $2, $3 }' "$lock" | while read -r role pkg; do
		apt-cache "${apt_opts[@]}" show "$pkg:$arch" | awk -v a="$arch" -v r="$role" -v p="$pkg" \
			'/^Version:/{v=$2} /^SHA256:/{s=$2} /^$/{ if (v) { print a, r, p, v, s; exit } }'
	done
	exit 0
fi

status=0
while read -r a role pkg ver sha; do
	case " $roles " in *" $role "*) ;; *) continue ;; esac
	f=$cache/debs/$(deb_name "$pkg" "$ver" "$a")
	if [ -f "$f" ] && echo "$sha  $f" | sha256sum -c --quiet - 2>/dev/null; then continue; fi
	apt_setup
	(cd "$cache/debs" && apt-get "${apt_opts[@]}" download -q "$pkg:$a=$ver" >/dev/null) || {
		echo "fetch-debs: cannot download $pkg:$a=$ver (gone from the archive? re-pin packages.lock)" >&2
		status=1
		continue
	}
	if ! echo "$sha  $f" | sha256sum -c --quiet -; then
		echo "fetch-debs: CHECKSUM MISMATCH for $f; removed" >&2
		rm -f "$f"
		status=1
	fi
done < <(grep -v '^#' "$lock" | awk -v a="$arch" '$1 == a')
exit $status
