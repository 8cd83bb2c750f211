#!/bin/bash
# Installs Debian's dnsmasq (package dnsmasq-base, dynamically linked against glibc) into the
# staged root of a QEMU image: /usr/sbin/dnsmasq, the dynamic loader it requests (PT_INTERP) and
# exactly the shared libraries its NEEDED entries reach, transitively (with the packages' own
# soname symlinks). Nothing else of the packages: no docs, D-Bus config, locales or gconv.
#
# The packages are the architecture's role-`image` lines of packages.lock other than the kernel
# and busybox-static: dnsmasq-base and its library closure, pinned by version and sha256 and
# already downloaded and verified by fetch-debs.sh. A NEEDED library that none of them holds is
# an error (the closure changed: pin the new package), and so is a pinned package none of whose
# files is installed (drop its lock line). An architecture without dnsmasq-base in the lock gets
# no dnsmasq (said on stderr).
#
# usage: add-dnsmasq.sh DEBARCH CACHE ROOT [QEMU_USER]
#   QEMU_USER (e.g. qemu-mipsel-static): run `dnsmasq --version` from ROOT under qemu-user as a
#   check that the loader finds every library inside ROOT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
debarch=$1 cache=$2 root=$3 qemu_user=${4:-}

pkgs=$(awk -v a="$debarch" '$1 == a && $2 == "image" && $3 != "busybox-static" && $3 !~ /^linux-image-/ {
	print $3 "=" $4 }' "$here/packages.lock")
case " $(echo "$pkgs" | tr '\n' ' ')" in
*" dnsmasq-base="*) ;;
*) echo "add-dnsmasq: no dnsmasq-base for $debarch in packages.lock: this image has no dnsmasq" >&2; exit 0 ;;
esac
command -v readelf >/dev/null || { echo "add-dnsmasq: readelf (binutils) is needed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/add-dnsmasq.XXXXXX")
trap 'rm -rf "$work"' EXIT
x=$work/x
mkdir -p "$x" "$work/lists"
for p in $pkgs; do
	name=${p%%=*} ver=${p#*=}
	deb=$cache/debs/${name}_${ver//:/%3a}_${debarch}.deb
	dpkg-deb -x "$deb" "$x"
	# The package's files (./path), to tell which packages contribute.
	dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./||' >"$work/lists/$name"
done

installed=$work/installed
: >"$installed"
install_path() { # path relative to the root; symlinks are copied as links and followed
	local rel=$1 t
	grep -qxF "$rel" "$installed" && return
	echo "$rel" >>"$installed"
	mkdir -p "$root/$(dirname "$rel")"
	if [ -L "$x/$rel" ]; then
		cp -P "$x/$rel" "$root/$rel"
		t=$(readlink "$x/$rel")
		case $t in
		/*) install_path "${t#/}" ;;
		*) t=$(realpath -ms "/$(dirname "$rel")/$t") && install_path "${t#/}" ;;
		esac
	elif [ -f "$x/$rel" ]; then
		cp -p "$x/$rel" "$root/$rel"
	else
		echo "add-dnsmasq: $rel is not in the pinned packages" >&2
		exit 1
	fi
}
real_path() { # path relative to the root -> the real file's path relative to the root
	local r
	r=$(readlink -f "$x/$1")
	echo "${r#"$(cd "$x" && pwd -P)"/}"
}
find_lib() { # soname -> path relative to the root (the loader's default directories)
	local d
	for d in "$x"/lib/*-linux-gnu* "$x"/usr/lib/*-linux-gnu* "$x/lib" "$x/usr/lib"; do
		if [ -e "$d/$1" ]; then
			echo "${d#"$x"/}/$1"
			return
		fi
	done
	echo "add-dnsmasq: no pinned package of $debarch provides $1 (the closure changed: pin it in packages.lock)" >&2
	exit 1
}

install_path usr/sbin/dnsmasq
interp=$(readelf -l "$x/usr/sbin/dnsmasq" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[ -n "$interp" ] || { echo "add-dnsmasq: dnsmasq has no program interpreter" >&2; exit 1; }
install_path "${interp#/}"
queue=usr/sbin/dnsmasq
seen=" "
while [ -n "$queue" ]; do
	f=${queue%% *}
	case $queue in *" "*) queue=${queue#* } ;; *) queue= ;; esac
	for n in $(readelf -d "$x/$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		case $seen in *" $n "*) continue ;; esac
		seen="$seen$n "
		lib=$(find_lib "$n")
		install_path "$lib"
		queue="${queue:+$queue }$(real_path "$lib")"
	done
done

# Every pinned package contributes at least one installed file.
for p in $pkgs; do
	name=${p%%=*}
	grep -qxFf "$installed" "$work/lists/$name" ||
		{ echo "add-dnsmasq: $name ($debarch) is pinned but nothing dnsmasq needs comes from it" >&2; exit 1; }
done

bytes=$(while read -r f; do [ -L "$root/$f" ] || stat -c %s "$root/$f"; done <"$installed" | awk '{ s += $1 } END { print s }')
echo "add-dnsmasq: dnsmasq + loader + $(echo "$seen" | wc -w) libraries: $bytes bytes ($debarch)"
if [ -n "$qemu_user" ]; then
	"$qemu_user" -L "$root" "$root/usr/sbin/dnsmasq" --version | head -1
fi
