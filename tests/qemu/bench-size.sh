#!/bin/bash
# Size of the static cross binaries, and what each dependency costs, into BENCHMARKS.md.
#
# usage: bench-size.sh CROSS_DIR CROSS_TARGET_DIR TRIPLE...
# Expects `make cross` done (stripped product binaries in CROSS_DIR/<triple>/portcullis) and
# SYMS_BIN: an unstripped build of the same code for mipsel (mk/cross.mk builds it), whose
# symbol table is grouped by crate (the first crate named in each demangled symbol, as
# cargo-bloat does; with LTO, inlined code counts for the caller, so the split is approximate).
set -euo pipefail
cross_dir=$1
shift 2
top=$(cd "$(dirname "$0")/../.." && pwd)
budget=$((1536 * 1024))

section=$(mktemp)
trap 'rm -f "$section"' EXIT
{
	echo "Command: \`make bench-size\` (static musl, \`opt-level=\"z\"\`, LTO, one codegen unit, \`panic=\"immediate-abort\"\`,"
	echo "stripped; Debian rustc 1.96 with \`-Zbuild-std=std,panic_abort\`, zig $(grep -m1 '^ZIG_VERSION' "$top/mk/cross.mk" | awk '{print $3}') as linker)."
	echo "Measured $(date -u +%Y-%m-%d) at commit $(git -C "$top" rev-parse --short HEAD).${BENCH_NOTE:+ $BENCH_NOTE}"
	echo "Goal: mipsel ≤ 1.5 MiB (1,572,864 bytes) with everything in it (the web UI and its assets are embedded)."
	echo
	echo "| target | stripped bytes | KiB | of the mipsel budget |"
	echo "|---|---:|---:|---:|"
	for t in "$@"; do
		b=$cross_dir/$t/portcullis
		s=$(stat -c %s "$b")
		echo "| $t | $s | $((s / 1024)) | $((s * 100 / budget))% |"
	done
	if [ -n "${SYMS_BIN:-}" ] && [ -f "$SYMS_BIN" ]; then
		echo
		echo "What it is made of (mipsel, unstripped build of the same code: \`readelf -sW -C\`, function"
		echo "and data symbols grouped by the first crate in the demangled name; \`[other]\` is unnamed"
		echo "or C code, e.g. musl and compiler-rt):"
		echo
		echo "| crate | bytes | share |"
		echo "|---|---:|---:|"
		readelf -sW -C "$SYMS_BIN" | awk '$4 == "FUNC" || $4 == "OBJECT" { n = $8; for (i = 9; i <= NF; i++) n = n " " $i; print $3, n }' |
			python3 -c '
import re, sys, collections
sizes = collections.Counter()
for line in sys.stdin:
    size, _, name = line.strip().partition(" ")
    size = int(size, 0) if size.startswith("0x") else int(size)
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    crate = m.group(1) if m else "[other]"
    if crate in ("_ZN", "impl"):
        crate = "[other]"
    sizes[crate] += size
total = sum(sizes.values())
rows = sizes.most_common()
shown = rows[:14]
rest = sum(s for _, s in rows[14:])
for c, s in shown:
    print(f"| {c} | {s} | {s * 100 / total:.1f}% |")
if rest:
    print(f"| ({len(rows) - 14} more) | {rest} | {rest * 100 / total:.1f}% |")
print(f"| **total in symbols** | {total} | 100% |")
'
	fi
	echo
	echo "Decisions so far: std is built without its default \`backtrace\` feature"
	echo "(\`-Zbuild-std-features=\` in mk/cross.mk): with it, mipsel was 1,384,036 bytes and gimli, addr2line"
	echo "and rustc-demangle were 8.5% of the symbols; without it 1,158,696 bytes (−225 KB, measured"
	echo "2026-11-27). Since issue 9, \`panic = \"immediate-abort\"\` (−127 KB): a panic traps without its"
	echo "message; the supervisor logs the exit and restarts the daemon (docs/decisions.md)."
	echo
	echo "Rerun after adding a dependency; a new crate in the top rows must be worth its bytes."
} >"$section"
cat "$section"
python3 "$top/tests/qemu/update-benchmarks.py" "$top/BENCHMARKS.md" "Binary size" <"$section"
echo "bench-size: BENCHMARKS.md updated (section \"Binary size\")"
