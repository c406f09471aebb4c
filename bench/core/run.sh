#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/core/run.sh BUILD_DIR [RUNS] - latency of the engine's LUN operations (bench_lun) on a
# loop-mounted xfs with reflink (root only) and on a plain directory under ${TMPDIR:-/tmp}.
# Prints markdown tables. Cleans up (unmount, loop device, temp dir) on any exit.
set -euo pipefail
build=$(cd "${1:?usage: bench/core/run.sh BUILD_DIR [RUNS]}" && pwd)
runs=${2:-31}
bin=$build/bin/bench_lun
[ -x "$bin" ] || { echo "bench_lun not built in $build"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/replun-bench-core-XXXXXX")
loop=""
cleanup() {
	if mountpoint -q "$work/xfs" 2>/dev/null; then
		umount "$work/xfs" || umount -l "$work/xfs" || true
	fi
	if [ -n "$loop" ]; then losetup -d "$loop" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo
echo "### Engine LUN operations ($runs runs each, 100 GiB sparse LUNs, replicated)"
echo
if [ "$(id -u)" -eq 0 ] && command -v mkfs.xfs >/dev/null && [ -e /dev/loop-control ]; then
	truncate -s 4G "$work/xfs.img"
	mkfs.xfs -q -m reflink=1 "$work/xfs.img"
	loop=$(losetup --find --show "$work/xfs.img")
	mkdir "$work/xfs"
	mount "$loop" "$work/xfs"
	mkdir "$work/xfs/run"
	"$bin" "$work/xfs/run" "$runs" "xfs reflink"
	echo
else
	echo "(xfs with reflink skipped: needs root, mkfs.xfs and loop devices)"
fi
mkdir "$work/plain"
"$bin" "$work/plain" "$runs" "plain dir ($(findmnt -n -o FSTYPE --target "$work" 2>/dev/null || echo '?'))"
