#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# schedule.sh - the RPO schedule: `replun group policy` sets a group's RPO, `replun sync PATH
# --due` starts a sync only for source groups whose RPO has elapsed (not before, not for RPO 0,
# not at the target), the session it starts completes a new recovery point and brings a
# pending-target LUN to the peer; bad input is refused with one line and starts nothing; the
# replun-sync@ systemd units pass `systemd-analyze verify`.
# Usage: schedule.sh /path/to/replun UNIT_DIR (the built replun-sync@.service/.timer)
set -u
BIN=$1
UNITS=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

cli_tmpdir sched

# Pids of this test's sync workers (they name the test's directory in their environment).
worker_pids() {
	local p
	for p in $(pgrep -f '^replun-sync-worker$'); do
		grep -qa "$T" "/proc/$p/environ" 2>/dev/null && echo "$p"
	done
}
test_cleanup() {
	for p in $(worker_pids); do kill -9 "$p" 2>/dev/null; done
}

# wait_session ARRAY SESSION: polls until the session ends; OUT = its JSON.
wait_session() {
	local i st
	for ((i = 0; i < 600; i++)); do
		rp sync-status "$1" --session "$2" --json
		st=$(pj 'd["status"]' <<<"$OUT" 2>/dev/null)
		[ "$st" == inProgress ] || return 0
		sleep 0.1
	done
	return 1
}

# --- the units ------------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
	U="$T/units"
	mkdir -p "$U"
	# ExecStart names the installed binary; point it at the one under test so verify can
	# check that it is executable.
	sed "s#^ExecStart=[^ ]*/replun #ExecStart=$(realpath "$BIN") #" "$UNITS/replun-sync@.service" \
		>"$U/replun-sync@.service"
	cp "$UNITS/replun-sync@.timer" "$U/"
	check "units name 'sync %f --due'" grep -q '^ExecStart=.* sync %f --due$' "$U/replun-sync@.service"
	INST=$(systemd-escape -p /srv/siteA)
	if V=$(systemd-analyze verify "$U/replun-sync@$INST.service" "$U/replun-sync@$INST.timer" 2>&1); then
		ok "systemd-analyze verify replun-sync@$INST.service/.timer"
	else
		bad "systemd-analyze verify: $V"
	fi
else
	echo "# systemd-analyze not found: the unit files are not verified"
fi

# --- the schedule ---------------------------------------------------------------------------
cli_pair "$T/a" "$T/b"
must "lun create db in g" lun create "$A" db 1M --group g --replicate
SRC=$OUT
must "lun create other in g0" lun create "$A" other 1M --group g0 --replicate
must "lun create lone (standalone)" lun create "$A" lone 1M --replicate

must "policy of g shown" group policy "$A" g --json
eq "default rpo is 0" "$(pj 'd["rpo_seconds"]' <<<"$OUT")" 0
must "no group has an rpo: --due" sync "$A" --due --json
eq "nothing considered" "$(pj 'len(d["items"])' <<<"$OUT")" 0

must "sync g once" sync "$A" --group g --wait --json
S1=$(pj 'd["id"]' <<<"$OUT")
RP1=$(pj 'd["recovery_point"]' <<<"$OUT")

# RPO one hour: the session just made is recent, so not due.
must "rpo 3600" group policy "$A" g --rpo 3600 --json
eq "rpo set" "$(pj 'd["rpo_seconds"]' <<<"$OUT")" 3600
must "policy copied to the target" group policy "$B" g --json
eq "target's rpo" "$(pj 'd["rpo_seconds"]' <<<"$OUT")" 3600
must "--due right after a sync" sync "$A" --due --json
eq "one group considered (g)" "$(pj '[i["group"] for i in d["items"]]' <<<"$OUT")" "['g']"
eq "g not due" "$(pj 'd["items"][0]["result"]' <<<"$OUT")" not-due
check "seconds left within the hour" test "$(pj '3500 <= d["items"][0]["seconds_left"] <= 3600' <<<"$OUT")" == true
check "no session named" test "$(pj 'd["items"][0]["session"] is None' <<<"$OUT")" == true
must "latest session of g" sync-status "$A" --group g --json
eq "no session started" "$(pj 'd["id"]' <<<"$OUT")" "$S1"
must "table output" sync "$A" --due
check "table says not-due" grep -q 'not-due' <<<"$OUT"

# A LUN whose target waits for the next sync.
must "lun create new --target-at-sync" lun create "$A" new 1M --group g --target-at-sync --json
NEW=$(pj 'd["id"]' <<<"$OUT")
dd if=/dev/urandom of="$(lunpath "$A" "$NEW")" bs=4K count=64 conv=notrunc status=none
must "lun list A" lun list "$A" --group g --json
eq "new LUN's target pending" "$(pj "[x['target_pending'] for x in d if x['id'] == '$NEW'][0]" <<<"$OUT")" true

# RPO 1 s: after more than a second the group is due.
must "rpo 1" group policy "$A" g --rpo 1
sleep 1.2
must "--due after the rpo" sync "$A" --due --json
eq "g started" "$(pj 'd["items"][0]["result"]' <<<"$OUT")" started
S2=$(pj 'd["items"][0]["session"]' <<<"$OUT")
check "a new session" test -n "$S2" -a "$S2" != "$S1"
check "ok true" test "$(pj 'd["ok"]' <<<"$OUT")" == true
# Right away again: the new session is either still running or recent (not due within 1 s).
must "--due again" sync "$A" --due --json
R=$(pj 'd["items"][0]["result"]' <<<"$OUT")
check "second pass starts nothing ($R)" test "$R" == running -o "$R" == not-due
if wait_session "$A" "$S2"; then ok "session $S2 ended"; else bad "session $S2 still running"; fi
eq "scheduled session complete" "$(pj 'd["status"]' <<<"$OUT")" complete
RP2=$(pj 'd["recovery_point"]' <<<"$OUT")
check "a new recovery point ($RP2)" test -n "$RP2" -a "$RP2" != "$RP1"
must "lun list A after" lun list "$A" --group g --json
eq "new LUN's target made" "$(pj "[x['target_pending'] for x in d if x['id'] == '$NEW'][0]" <<<"$OUT")" false
TGT=$(pj "[x['peer_device'] for x in d if x['id'] == '$NEW'][0]" <<<"$OUT")
check "new LUN has a peer device" test -n "$TGT"
eq "its data reached the peer" "$(sum "$(lunpath "$B" "$TGT")")" "$(sum "$(lunpath "$A" "$NEW")")"

# RPO 0 (g0) and standalone devices are never scheduled.
must_fail "g0 never synced" 3 sync-status "$A" --group g0

# The target side starts nothing.
must "--due at the target" sync "$B" --due --json
eq "target: nothing considered" "$(pj 'len(d["items"])' <<<"$OUT")" 0
must "latest session of g at B" sync-status "$B" --group g --json
eq "target: no new session" "$(pj 'd["id"]' <<<"$OUT")" "$S2"

# Bad input: one line, usage/not-found exit, nothing started.
sleep 1.2
must_fail "--due with --group" 2 sync "$A" --due --group g
must_fail "--due with --device" 2 sync "$A" --due --device "$SRC"
must_fail "--due with --wait" 2 sync "$A" --due --wait
must_fail "--due on a missing array" 3 sync "$T/none" --due
must_fail "rpo not a number" 2 group policy "$A" g --rpo soon
must_fail "rpo negative" 2 group policy "$A" g --rpo -1
must_fail "policy of an unknown group" 3 group policy "$A" nosuch --rpo 5
must "latest session of g after bad input" sync-status "$A" --group g --json
eq "bad input started nothing" "$(pj 'd["id"]' <<<"$OUT")" "$S2"
must "rpo still 1" group policy "$A" g --json
eq "bad rpo changed nothing" "$(pj 'd["rpo_seconds"]' <<<"$OUT")" 1

# A session still moving data is reported as running, and no second one starts beside it: the
# mover is slowed (REPLUN_SYNC_THROTTLE_MS, ms per MiB; the worker inherits it) on 1 MiB of new
# data, so the pass right after finds the session in progress.
dd if=/dev/urandom of="$(lunpath "$A" "$NEW")" bs=1M count=1 conv=notrunc status=none
sleep 1.2
export REPLUN_SYNC_THROTTLE_MS=3000
must "--due with a slow mover" sync "$A" --due --json
unset REPLUN_SYNC_THROTTLE_MS
eq "g started (slow)" "$(pj 'd["items"][0]["result"]' <<<"$OUT")" started
S3=$(pj 'd["items"][0]["session"]' <<<"$OUT")
sleep 1.2
must "--due while it moves" sync "$A" --due --json
eq "g running" "$(pj 'd["items"][0]["result"]' <<<"$OUT")" running
eq "running names the session" "$(pj 'd["items"][0]["session"]' <<<"$OUT")" "$S3"
if wait_session "$A" "$S3"; then ok "session $S3 ended"; else bad "session $S3 still running"; fi
eq "slow session complete" "$(pj 'd["status"]' <<<"$OUT")" complete
eq "its data reached the peer (slow)" "$(sum "$(lunpath "$B" "$TGT")")" "$(sum "$(lunpath "$A" "$NEW")")"

finish
