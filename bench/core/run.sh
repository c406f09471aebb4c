#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/core/run.sh BUILD_DIR [RUNS] - latency of the engine's LUN operations (bench_lun) on a
# loop-mounted xfs with reflink (root only) and on a plain directory under ${TMPDIR:-/tmp}.
# Prints markdown tables. Cleans up (unmount, loop device, temp dir) on any exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../tests/lib/loopfs.sh"
build=$(cd "${1:?usage: bench/core/run.sh BUILD_DIR [RUNS]}" && pwd)
runs=${2:-31}
bin=$build/bin/bench_lun
[ -x "$bin" ] || { echo "bench_lun not built in $build"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/replun-bench-core-XXXXXX")
cleanup() {
	loopfs_umount "$work/xfs"
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo
echo "### Engine LUN operations ($runs runs each, 100 GiB sparse LUNs, replicated)"
echo
if loopfs_usable xfs >/dev/null; then
	loopfs_mount xfs 4G "$work/xfs.img" "$work/xfs"
	mkdir "$work/xfs/run"
	"$bin" "$work/xfs/run" "$runs" "xfs reflink"
	echo
else
	echo "(xfs with reflink skipped: needs root, mkfs.xfs and loop devices)"
fi
mkdir "$work/plain"
"$bin" "$work/plain" "$runs" "plain dir ($(findmnt -n -o FSTYPE --target "$work" 2>/dev/null || echo '?'))"
