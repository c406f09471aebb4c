#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/run.sh BUILD_DIR - the single benchmark entry point (`make bench`). Prints markdown
# tables and appends them to BUILD_DIR/bench-results.md. Arrays: a loop-mounted xfs with
# reflink (needs root) and a plain directory under ${TMPDIR:-/tmp}. Other areas add
# bench/<area>/run.sh (called with BUILD_DIR) and are run after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: bench/run.sh BUILD_DIR}" && pwd)
results=$build/bench-results.md
bin=$build/bin/bench_arrays
sync_bin=$build/bin/bench_sync
[ -x "$bin" ] || { echo "bench_arrays not built in $build (cmake --build $build)"; exit 1; }
. "$here/../tests/lib/loopfs.sh"
# Runs the driver benchmarks and, when built, the engine's sync on directory $1 labelled $2.
# $3 = mover: also the full sync with the data mover forced (arrays on one reflink filesystem
# otherwise share the blocks, docs/benchmarks.md "Full sync of a 1 GiB LUN").
run_arrays() {
	"$bin" "$1" "$2" | out
	if [ -x "$sync_bin" ]; then
		"$sync_bin" "$1" "$2" | out || echo "bench_sync failed on $2" | out
		if [ "${3:-}" = mover ]; then
			REPLUN_SYNC_NO_SHARE=1 "$sync_bin" "$1" "$2, data mover" full | out ||
				echo "bench_sync (mover) failed on $2" | out
		fi
	else
		echo "bench_sync not built: engine sync not measured on $2" | out
	fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/replun-bench-XXXXXX")
cleanup() {
	loopfs_umount "$work/xfs"
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

out() { tee -a "$results"; }

{
	echo
	echo "## replun benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo
	cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
	mem=$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
	fs=$(findmnt -n -o FSTYPE --target "$work" 2>/dev/null || stat -f -c %T "$work")
	echo "Machine: $(nproc) vCPU ($cpu), $mem RAM, Linux $(uname -r); ${TMPDIR:-/tmp} on" \
		"$fs ($(df --output=source "$work" | tail -1)); build $(basename "$build")," \
		"git $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?')."
} | out

# Warm up guest memory first (first-touch of never-used RAM is ~5x slower than recycled page
# cache, research/replication.md section 3): write and delete half the RAM. bench_arrays also
# drops the page cache before each timed step so new page cache comes from recycled memory.
warm_mib=$(awk '/MemTotal/{print int($2/1024/2)}' /proc/meminfo)
echo "(warming up: ${warm_mib} MiB write+delete)" >&2
dd if=/dev/zero of="$work/warm" bs=1M count="$warm_mib" status=none
sync "$work/warm"
rm -f "$work/warm"

# Loop-mounted xfs with reflink (sparse 16 GiB image on the same disk).
if loopfs_usable xfs >/dev/null; then
	loopfs_mount xfs 16G "$work/xfs.img" "$work/xfs"
	run_arrays "$work/xfs" "xfs on loop (reflink=1)" mover
	loopfs_umount "$work/xfs"
else
	echo "SKIPPED xfs: needs root, mkfs.xfs and loop devices" | out
fi

mkdir "$work/plain"
run_arrays "$work/plain" "plain directory"

for area in core sra sm; do
	if [ -x "$here/$area/run.sh" ]; then
		"$here/$area/run.sh" "$build" | out || echo "bench/$area/run.sh failed" | out
	fi
done
echo
echo "(appended to $results)"
