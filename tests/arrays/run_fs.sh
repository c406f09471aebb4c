#!/bin/bash
# SPDX-License-Identifier: MIT
# run_fs.sh FS TEST_BINARY - runs the file array tests on a fresh loop-mounted FS (xfs with
# reflink, or btrfs) whose mount point is the array root, so reflink, FIEMAP and freeze are
# exercised. Needs root and a loop device; exits 77 (skip) with the reason otherwise.
set -euo pipefail
fs=$1
bin=$2
. "$(dirname "$0")/../lib/loopfs.sh"

skip() { echo "SKIP: $*"; exit 77; }
case $fs in
xfs | btrfs) ;;
*) echo "unknown fs '$fs'"; exit 2 ;;
esac
why=$(loopfs_usable "$fs") || skip "$why"

work=$(mktemp -d "${TMPDIR:-/tmp}/replun-arrays-$fs-XXXXXX")
cleanup() {
	loopfs_umount "$work/mnt"
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

rc=0
loopfs_mount "$fs" 1G "$work/fs.img" "$work/mnt" || rc=$?
[ "$rc" -ne 2 ] || skip "no free loop device"
[ "$rc" -eq 0 ] || exit 1
echo "testing on $fs at $work/mnt ($loopfs_dev)"
REPLUN_TEST_DIR="$work/mnt" REPLUN_TEST_MOUNT=1 REPLUN_TEST_EXPECT_REFLINK=1 \
	REPLUN_TEST_EXPECT_FREEZE=1 "$bin"
