# SPDX-License-Identifier: MIT
# tests/lib/loopfs.sh - sourced by the test and benchmark scripts that need a loop-mounted
# filesystem (xfs with reflink, or btrfs) and must leave no mount or loop device behind:
#   loopfs_usable FS             why FS on a loop device cannot be made here (on stdout, status
#                                1), or nothing (status 0)
#   loopfs_mount FS SIZE IMG MNT sparse image IMG of SIZE on a loop device, mkfs FS (xfs:
#                                reflink=1), mounted at MNT (created); status 2 when no loop
#                                device is free, 1 on any other failure
#   loopfs_umount MNT            thaws and unmounts MNT (lazily when busy), detaches the loop
#                                device, removes the image; safe to call twice, and from a trap
loopfs_dev=""
loopfs_img=""

loopfs_usable() {
	[ "$(id -u)" -eq 0 ] || { echo "not root: cannot create a loop-mounted $1"; return 1; }
	command -v losetup >/dev/null || { echo "losetup missing"; return 1; }
	case $1 in
	xfs | btrfs) command -v "mkfs.$1" >/dev/null || { echo "mkfs.$1 missing"; return 1; } ;;
	*) echo "unknown fs '$1'"; return 1 ;;
	esac
	[ -e /dev/loop-control ] || { echo "no /dev/loop-control"; return 1; }
}

loopfs_mount() {
	local fs=$1 size=$2 img=$3 mnt=$4
	truncate -s "$size" "$img" || return 1
	loopfs_img=$img
	loopfs_dev=$(losetup -f --show "$img") || { loopfs_dev=""; return 2; }
	case $fs in
	xfs) mkfs.xfs -q -f -m reflink=1 "$loopfs_dev" || return 1 ;;
	btrfs) mkfs.btrfs -q -f "$loopfs_dev" >/dev/null || return 1 ;;
	*) echo "loopfs: unknown fs '$fs'" >&2; return 1 ;;
	esac
	mkdir -p "$mnt" || return 1
	mount "$loopfs_dev" "$mnt" || return 1
}

loopfs_umount() {
	if mountpoint -q "$1" 2>/dev/null; then
		fsfreeze -u "$1" 2>/dev/null || true
		umount "$1" || umount -l "$1" || true
	fi
	if [ -n "$loopfs_dev" ]; then
		losetup -d "$loopfs_dev" 2>/dev/null || true
		loopfs_dev=""
	fi
	if [ -n "$loopfs_img" ]; then
		rm -f "$loopfs_img"
		loopfs_img=""
	fi
}
