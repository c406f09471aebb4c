# SPDX-License-Identifier: MIT
# lib.sh - helpers shared by the replun command's end-to-end tests: running the binary,
# assertions with a pass/fail count, JSON queries (python3 stdlib) and checksums.
# Usage: BIN=path/to/replun; . lib.sh

PASS=0
FAIL=0
ERRF=$(mktemp "${TMPDIR:-/tmp}/replun-cli-err.XXXXXX")

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
