#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# crash.sh - kill -9 the detached sync worker mid-way; `replun sync-status` / `sync --wait`
# must resume it, and `replun verify` and the checksums must show equal data at the end.
# The mover is slowed with REPLUN_SYNC_THROTTLE_MS (ms of sleep per MiB moved; tests only).
# Usage: crash.sh /path/to/replun
set -u
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

cli_tmpdir crash
WPID=""
test_cleanup() {
	[ -n "$WPID" ] && kill -9 "$WPID" 2>/dev/null
	# Let any worker we did not kill finish before the arrays disappear.
	for p in $(worker_pids); do kill -9 "$p" 2>/dev/null; done
}

# Pids of sync workers of our arrays: the worker runs as "replun-sync-worker" and its
# environment names this test's directory (the arrays' URIs).
worker_pids() {
	local p
	for p in $(pgrep -f '^replun-sync-worker$'); do
		grep -qa "$T" "/proc/$p/environ" 2>/dev/null && echo "$p"
	done
}

cli_pair "$T/a" "$T/b"
must "lun create 96M" lun create "$A" big 96M --group g --replicate
L=$OUT
must "lun create 32M" lun create "$A" small 32M --group g
L2=$OUT
dd if=/dev/urandom of="$(lunpath "$A" "$L")" bs=1M count=64 conv=notrunc status=none
dd if=/dev/urandom of="$(lunpath "$A" "$L2")" bs=1M count=16 conv=notrunc status=none

for round in 1 2; do
	echo "# round $round: start a slow sync and kill its worker"
	if [ "$round" = 2 ]; then
		# An incremental sync interrupted the same way.
		dd if=/dev/urandom of="$(lunpath "$A" "$L")" bs=1M count=24 seek=40 conv=notrunc status=none
	fi
	OUT=$(REPLUN_SYNC_THROTTLE_MS=60 REPLUN_TEST_DIR="$T" "$BIN" sync "$A" --group g 2>"$ERRF")
	RC=$?
	check "sync started (exit $RC: $(cat "$ERRF"))" test "$RC" -eq 0 -a -n "$OUT"
	SID=$OUT
	# Wait until some data moved.
	moved=0
	for _ in $(seq 1 300); do
		J=$("$BIN" sync-status "$A" --session "$SID" --json 2>/dev/null) || break
		moved=$(pj 'd["bytes_transferred"]' <<<"$J")
		st=$(pj 'd["status"]' <<<"$J")
		[ "$moved" -gt 0 ] && break
		[ "$st" != inProgress ] && break
		sleep 0.1
	done
	check "worker is moving data ($moved bytes, $st)" test "$moved" -gt 0 -a "$st" = inProgress
	WPID=$(worker_pids | head -n1)
	check "found the worker process (pid ${WPID:-none})" test -n "$WPID"
	if [ -n "$WPID" ]; then
		kill -9 "$WPID"
		for _ in $(seq 1 50); do kill -0 "$WPID" 2>/dev/null || break; sleep 0.1; done
		check "worker is dead" bash -c "! kill -0 $WPID 2>/dev/null"
		WPID=""
	fi
	J=$("$BIN" sync-status "$A" --session "$SID" --json 2>"$ERRF")
	check "sync-status answers after the crash ($(cat "$ERRF"))" test -n "$J"
	check "session not complete after the crash" test "$(pj 'd["status"]' <<<"$J")" != complete
	# sync-status resumed the session: it must finish by itself, without a new sync.
	for _ in $(seq 1 600); do
		J=$("$BIN" sync-status "$A" --session "$SID" --json 2>/dev/null) || break
		[ "$(pj 'd["status"]' <<<"$J")" != inProgress ] && break
		sleep 0.1
	done
	eq "the interrupted session $SID finished after the resume" "$(pj 'd["status"]' <<<"$J")" complete
	rp sync "$A" --group g --wait --json --timeout 120
	eq "sync --wait after the crash: complete" "$(pj 'd["status"]' <<<"$OUT")" complete
	must "verify after the crash" verify "$A" "$B"
	rp lun list "$A" --json
	K=$(pj "[x['peer_device'] for x in d if x['id']=='$L'][0]" <<<"$OUT")
	K2=$(pj "[x['peer_device'] for x in d if x['id']=='$L2'][0]" <<<"$OUT")
	eq "big LUN equal by checksum" "$(sum "$(lunpath "$B" "$K")")" "$(sum "$(lunpath "$A" "$L")")"
	eq "small LUN equal by checksum" "$(sum "$(lunpath "$B" "$K2")")" "$(sum "$(lunpath "$A" "$L2")")"
done

finish
