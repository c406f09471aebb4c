#!/bin/bash
# SPDX-License-Identifier: MIT
# run_fs.sh FS TEST_BINARY - runs the file array tests on a fresh loop-mounted FS (xfs with
# reflink, or btrfs) whose mount point is the array root, so reflink, FIEMAP and freeze are
# exercised. Needs root and a loop device; exits 77 (skip) with the reason otherwise.
set -euo pipefail
fs=$1
bin=$2

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "not root: cannot create a loop-mounted $fs"
command -v losetup >/dev/null || skip "losetup missing"
case $fs in
xfs) command -v mkfs.xfs >/dev/null || skip "mkfs.xfs missing" ;;
btrfs) command -v mkfs.btrfs >/dev/null || skip "mkfs.btrfs missing" ;;
*) echo "unknown fs '$fs'"; exit 2 ;;
esac
[ -e /dev/loop-control ] || skip "no /dev/loop-control"

work=$(mktemp -d "${TMPDIR:-/tmp}/replun-arrays-$fs-XXXXXX")
loop=""
cleanup() {
	if mountpoint -q "$work/mnt" 2>/dev/null; then
		fsfreeze -u "$work/mnt" 2>/dev/null || true
		umount "$work/mnt" || umount -l "$work/mnt" || true
	fi
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

truncate -s 1G "$work/fs.img"
loop=$(losetup -f --show "$work/fs.img") || skip "no free loop device"
case $fs in
xfs) mkfs.xfs -q -f -m reflink=1 "$loop" ;;
btrfs) mkfs.btrfs -q -f "$loop" >/dev/null ;;
esac
mkdir "$work/mnt"
mount "$loop" "$work/mnt"
echo "testing on $fs at $work/mnt ($loop)"
REPLUN_TEST_DIR="$work/mnt" REPLUN_TEST_MOUNT=1 REPLUN_TEST_EXPECT_REFLINK=1 \
	REPLUN_TEST_EXPECT_FREEZE=1 "$bin"
