# SPDX-License-Identifier: MIT
# lib.sh - helpers shared by the replun command's end-to-end tests: the test's temp dir and its
# cleanup, a loop-mounted xfs (tests/lib/loopfs.sh), a pair of arrays, running the binary,
# assertions with a pass/fail count, JSON queries (python3 stdlib) and checksums.
# Usage: BIN=path/to/replun; . lib.sh

. "$(dirname "${BASH_SOURCE[0]}")/../lib/loopfs.sh"

PASS=0
FAIL=0
ERRF=$(mktemp "${TMPDIR:-/tmp}/replun-cli-err.XXXXXX")
T=""
CLI_MNT=""

# test_cleanup: what a test must undo before its temp dir goes (kill its workers...); a test
# redefines it after sourcing this file. Runs first on exit.
test_cleanup() {
	:
}

cli_exit() {
	test_cleanup
	[ -z "$CLI_MNT" ] || loopfs_umount "$CLI_MNT"
	rm -rf "$T" "$ERRF"
}

# cli_tmpdir TAG: T = a new temp dir replun-cli-TAG.XXXXXX. Whenever the test exits (finish,
# skip, a failure midway, or SIGTERM/SIGINT/SIGHUP, e.g. a ctest timeout) test_cleanup runs,
# the xfs of cli_xfs is unmounted and its loop device detached, and T is removed.
cli_tmpdir() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/replun-cli-$1.XXXXXX") || {
		echo "FAIL - mktemp -d failed"
		exit 1
	}
	trap cli_exit EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# cli_xfs MNT: a 1 GiB xfs with reflink on a loop device (image in T) mounted at MNT, or a SKIP
# (exit 77) saying why not. Needs cli_tmpdir first (the exit trap unmounts it).
cli_xfs() {
	local why rc
	[ "$(id -u)" -eq 0 ] || skip "the xfs variant needs root (mount -o loop)"
	command -v mkfs.xfs >/dev/null || skip "mkfs.xfs not installed"
	[ -e /dev/loop-control ] || skip "no loop device support (/dev/loop-control missing)"
	why=$(loopfs_usable xfs) || skip "$why"
	CLI_MNT=$1
	loopfs_mount xfs 1G "$T/xfs.img" "$CLI_MNT"
	rc=$?
	[ "$rc" -ne 2 ] || skip "mount -o loop failed (no free loop device)"
	[ "$rc" -eq 0 ] && return 0
	if [ -n "$loopfs_dev" ] && [ "$(blkid -o value -s TYPE "$loopfs_dev" 2>/dev/null)" = xfs ]
	then
		skip "mount -o loop failed"
	fi
	skip "mkfs.xfs -m reflink=1 failed"
}

# cli_pair DIR_A DIR_B [ARGS...]: A=DIR_A, B=DIR_B: array site-a at A (ARGS added to its init),
# site-b at B, paired.
cli_pair() {
	A=$1
	B=$2
	shift 2
	must "array init A" array init "$A" --id site-a "$@"
	must "array init B" array init "$B" --id site-b
	must "array pair" array pair "$A" "$B"
}

ok() {
	PASS=$((PASS + 1))
	echo "ok   - $*"
}

bad() {
	FAIL=$((FAIL + 1))
	echo "FAIL - $*"
}

# check DESC CMD...: passes when CMD succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else bad "$desc"; fi
}

# rp ARGS...: runs replun; sets OUT (stdout), ERR (stderr) and RC.
rp() {
	OUT=$("$BIN" "$@" 2>"$ERRF")
	RC=$?
	ERR=$(cat "$ERRF")
}

# must DESC ARGS...: runs replun and expects exit 0.
must() {
	local desc=$1
	shift
	rp "$@"
	if [ "$RC" -eq 0 ]; then
		ok "$desc"
	else
		bad "$desc (replun $*: exit $RC: $ERR)"
	fi
}

# must_fail DESC WANT_RC ARGS...: expects exit WANT_RC and exactly one line "replun: ..." on
# stderr.
must_fail() {
	local desc=$1 want=$2
	shift 2
	rp "$@"
	local lines
	lines=$(printf '%s' "$ERR" | grep -c '')
	if [ "$RC" -eq "$want" ] && [ "$lines" -eq 1 ] && [[ $ERR == "replun: "* ]]; then
		ok "$desc (exit $RC: $ERR)"
	else
		bad "$desc (replun $*: want exit $want and one 'replun: ' line, got exit $RC, stderr: $ERR)"
	fi
}

# pj EXPR: evaluates a python expression over the JSON document on stdin (bound to d).
pj() {
	python3 -c '
import json, sys
d = json.load(sys.stdin)
r = eval(sys.argv[1])
print(("true" if r else "false") if isinstance(r, bool) else r)' "$1"
}

# eq DESC GOT WANT
eq() {
	if [ "$2" == "$3" ]; then ok "$1 ($2)"; else bad "$1: got '$2', want '$3'"; fi
}

sum() {
	sha256sum "$1" | cut -d' ' -f1
}

# lunpath ARRAY ID
lunpath() {
	"$BIN" lun path "$1" "$2"
}

# write_blocks FILE SEED COUNT [BS]: writes COUNT random blocks of BS (default 4K) at offsets
# derived from SEED, in place.
write_blocks() {
	local f=$1 seed=$2 count=$3 bs=${4:-4096} i size nb off
	size=$(stat -c %s "$f")
	nb=$((size / bs))
	for ((i = 0; i < count; i++)); do
		off=$(((seed * 7919 + i * 104729) % nb))
		dd if=/dev/urandom of="$f" bs="$bs" seek="$off" count=1 conv=notrunc status=none
	done
}

finish() {
	rm -f "$ERRF"
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

skip() {
	rm -f "$ERRF"
	echo "SKIP: $*"
	exit 77
}
