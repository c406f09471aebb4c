#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# workflows.sh - end-to-end test of every `replun` workflow on two file arrays, checking the
# data by checksum after each one. MODE plain: a temp dir (fallback copy path); MODE xfs: a
# loop-mounted xfs with reflink (root only).
# Usage: workflows.sh /path/to/replun plain|xfs
set -u
BIN=$1
MODE=${2:-plain}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

cli_tmpdir wf
MNT=""
if [ "$MODE" = xfs ]; then
	MNT=$T/mnt
	cli_xfs "$MNT"
	D=$MNT
else
	D=$T
fi
echo "# workflows on $MODE: $D"

cli_pair "$D/site-a" "$D/site-b" --name "Site A"
rp array info "$A" --json
eq "array info: peer is site-b" "$(pj 'd["peers"][0]["id"]' <<<"$OUT")" site-b
if [ "$MODE" = xfs ]; then
	eq "array info: reflink on xfs" "$(pj 'd["reflink"]' <<<"$OUT")" true
	eq "array info: fs_type" "$(pj 'd["fs_type"]' <<<"$OUT")" xfs
fi

must "lun create lun1 in group cg1" lun create "$A" lun1 8M --group cg1 --replicate
L1=$OUT
must "lun create lun2 in group cg1" lun create "$A" lun2 4M --group cg1
L2=$OUT
must "lun create standalone solo" lun create "$A" solo 2M --replicate
L3=$OUT
rp lun list "$A" --json
eq "lun list: 3 LUNs at A" "$(pj 'len(d)' <<<"$OUT")" 3
eq "lun list: lun1 size" "$(pj "[x['size'] for x in d if x['id']=='$L1'][0]" <<<"$OUT")" 8388608
eq "lun list: lun2 joined the replicated group" \
	"$(pj "[x['state'] for x in d if x['id']=='$L2'][0]" <<<"$OUT")" source
K1=$(pj "[x['peer_device'] for x in d if x['id']=='$L1'][0]" <<<"$OUT")
K2=$(pj "[x['peer_device'] for x in d if x['id']=='$L2'][0]" <<<"$OUT")
K3=$(pj "[x['peer_device'] for x in d if x['id']=='$L3'][0]" <<<"$OUT")
rp lun list "$B" --json
eq "lun list: 3 targets at B" "$(pj "sorted(x['state'] for x in d)" <<<"$OUT")" \
	"['target', 'target', 'target']"
eq "target has the source's name" "$(pj "[x['name'] for x in d if x['id']=='$K1'][0]" <<<"$OUT")" lun1
rp group list "$A" --json
eq "group list: cg1 with 2 devices" "$(pj "[g['devices'] for g in d if g['id']=='cg1'][0]" <<<"$OUT")" 2

# The data: random blocks written into the image files.
PA1=$(lunpath "$A" "$L1")
PA2=$(lunpath "$A" "$L2")
PA3=$(lunpath "$A" "$L3")
check "lun path points at a file" test -f "$PA1"
dd if=/dev/urandom of="$PA1" bs=64K count=64 conv=notrunc status=none
dd if=/dev/urandom of="$PA2" bs=64K count=16 seek=10 conv=notrunc status=none
dd if=/dev/urandom of="$PA3" bs=64K count=8 conv=notrunc status=none
must "lun meta set" lun meta "$A" "$L1" vdi-uuid 1234-abcd

# same_data LABEL ARRAY_X IDS_X ARRAY_Y IDS_Y: checksums of image files pairwise equal.
same_data() {
	local label=$1 x=$2 y=$4 i
	local -a ix=($3) iy=($5)
	for i in "${!ix[@]}"; do
		local sx sy
		sx=$(sum "$(lunpath "$x" "${ix[$i]}")")
		sy=$(sum "$(lunpath "$y" "${iy[$i]}")")
		eq "$label: ${ix[$i]} == ${iy[$i]}" "$sy" "$sx"
	done
}

must "initial sync of cg1 (--wait --json)" sync "$A" --group cg1 --wait --json
eq "initial sync: status" "$(pj 'd["status"]' <<<"$OUT")" complete
eq "initial sync: full" "$(pj 'd["full"]' <<<"$OUT")" true
check "initial sync: moved at least the data written" \
	test "$(pj 'd["bytes_transferred"]' <<<"$OUT")" -ge $((5 * 1024 * 1024))
check "initial sync: recovery point" test -n "$(pj 'd["recovery_point"]' <<<"$OUT")"
check "no progress bar when stderr is not a terminal" bash -c '! grep -q "ETA" <<<"$1"' _ "$ERR"
# On a terminal (script(1) gives one) --wait draws the progress bar on stderr.
TTYOUT=$(script -qec "'$BIN' sync '$A' --device '$L3' --wait" /dev/null 2>&1)
check "progress bar on a terminal (percent, ETA)" grep -q "%.*ETA" <<<"$TTYOUT"
check "summary line after the bar" grep -q "complete, .* moved in" <<<"$TTYOUT"
rp sync-status "$A" --device "$L3" --json
eq "standalone sync: status" "$(pj 'd["status"]' <<<"$OUT")" complete
same_data "after initial sync" "$A" "$L1 $L2 $L3" "$B" "$K1 $K2 $K3"
must "verify A B" verify "$A" "$B"
rp verify "$A" "$B" --group cg1 --json
eq "verify --json: equal" "$(pj 'd["equal"]' <<<"$OUT")" true
eq "verify --json: 2 pairs in cg1" "$(pj 'd["pairs"]' <<<"$OUT")" 2
rp lun meta "$B" "$K1" vdi-uuid
eq "metadata replicated with the data" "$OUT" 1234-abcd
rp sync-status "$A" --group cg1 --json
eq "sync-status --group" "$(pj 'd["status"]' <<<"$OUT")" complete
SID=$(pj 'd["id"]' <<<"$OUT")
must "sync-status --session" sync-status "$A" --session "$SID"
rp recovery-points "$B" --group cg1 --json
check "recovery-points at B lists the group's point" test "$(pj 'len(d)' <<<"$OUT")" -ge 1

rp sync "$A" --group cg1 --device "$L3" --wait --json
eq "sync --json with two selectors: an array of 2 sessions" "$(pj 'len(d)' <<<"$OUT")" 2
rp lun checksum "$A" "$L1"
SUMA=$OUT
rp lun checksum "$B" "$K1"
eq "lun checksum equal on both sides" "$OUT" "$SUMA"
rp lun list "$A" --group cg1 --json
eq "lun list --group" "$(pj 'sorted(x["name"] for x in d)' <<<"$OUT")" "['lun1', 'lun2']"
must "group create" group create "$A" spare --name "Spare group"
rp group list "$A" --json
eq "group list shows the new group" "$(pj "[g['name'] for g in d if g['id']=='spare'][0]" <<<"$OUT")" "Spare group"
must "group delete" group delete "$A" spare
rp array info "$A"
check "array info (human) names the filesystem" grep -q "^filesystem: " <<<"$OUT"
check "array info (human) shows what the objects hold" grep -q "^allocated:   LUNs " <<<"$OUT"
rp array info "$B" --json
eq "array info: B's target LUNs hold data" "$(pj 'd["usage"]["luns"] > 0' <<<"$OUT")" true
eq "array info: B's recovery points hold data" "$(pj 'd["usage"]["recovery_points"] > 0' <<<"$OUT")" true
eq "array info: nothing unreferenced at B" "$(pj 'd["usage"]["unreferenced_objects"]' <<<"$OUT")" "[]"
cp "$PA1" "$A/data/left-behind.img"
rp array info "$A" --json
eq "array info: a copy no row names is unreferenced" \
	"$(pj '[x["object"] for x in d["usage"]["unreferenced_objects"]]' <<<"$OUT")" "['left-behind']"
rp array info "$A"
check "array info (human) names it" grep -q "^unreferenced: left-behind (" <<<"$OUT"
rm -f "$A/data/left-behind.img"

# Incremental: three 4 KiB blocks changed.
write_blocks "$PA1" 3 3
must "incremental sync" sync "$A" --group cg1 --wait --json
eq "incremental sync: not full" "$(pj 'd["full"]' <<<"$OUT")" false
INC=$(pj 'd["bytes_transferred"]' <<<"$OUT")
check "incremental sync moved little ($INC bytes <= 3% of 12 MiB)" test "$INC" -le 377487
check "incremental sync moved the change ($INC bytes > 0)" test "$INC" -gt 0
same_data "after incremental sync" "$A" "$L1 $L2" "$B" "$K1 $K2"

# Test failover at B: writable copies of the recovery point; replication untouched.
write_blocks "$PA2" 5 2 # not synced: must not show in the test copy
rp test-failover start "$B" --group cg1 --device "$K3" --json
eq "test-failover start: all ok" "$(pj 'd["ok"]' <<<"$OUT")" true
S1=$(pj "[i['snapshot'] for i in d['items'] if i['id']=='$K1'][0]" <<<"$OUT")
S3=$(pj "[i['snapshot'] for i in d['items'] if i['id']=='$K3'][0]" <<<"$OUT")
check "test copy of lun1 has the target's data" \
	test "$(sum "$(lunpath "$B" "$S1")")" == "$(sum "$(lunpath "$B" "$K1")")"
check "test copy of solo has the target's data" \
	test "$(sum "$(lunpath "$B" "$S3")")" == "$(sum "$PA3")"
dd if=/dev/urandom of="$(lunpath "$B" "$S1")" bs=4K count=1 conv=notrunc status=none
rp test-failover start "$B" --group cg1
check "second test-failover start is refused (exit $RC)" test "$RC" -ne 0
must "test-failover stop" test-failover stop "$B" --group cg1 --device "$K3"
rp test-failover stop "$B" --group cg1 --device "$K3" --json
eq "test-failover stop again: ok (idempotent)" "$(pj 'd["ok"]' <<<"$OUT")" true
check "test-failover stop again: warns already done" \
	test "$(pj "sum(len(i['warnings']) for i in d['items'])" <<<"$OUT")" -ge 1
must "verify after the test" verify "$A" "$B" --group cg1

# Planned migration: sync, prepare-failover at A, sync again, failover at B.
rp -v sync "$A" --group cg1 --wait
check "-v logs the engine's steps on stderr" grep -Eq "^replun: (verbose|info): " <<<"$ERR"
rp sync "$A" --group cg1 --wait
check "without -v nothing on stderr" test -z "$ERR"
must "sync before migration" sync "$A" --group cg1 --device "$L3" --wait
must "prepare-failover at A" prepare-failover "$A" --group cg1 --device "$L3"
rp lun list "$A" --json
eq "A is demoted" "$(pj "[x['state'] for x in d if x['id']=='$L1'][0]" <<<"$OUT")" demoted-source
must "sync after prepare-failover" sync "$A" --group cg1 --device "$L3" --wait
rp failover "$B" --group cg1 --device "$K3" --json
eq "failover at B: all ok" "$(pj 'd["ok"]' <<<"$OUT")" true
rp lun list "$B" --json
eq "B is promoted" "$(pj "[x['state'] for x in d if x['id']=='$K1'][0]" <<<"$OUT")" promoted-target
eq "B is read-write" "$(pj "[x['read_only'] for x in d if x['id']=='$K1'][0]" <<<"$OUT")" false
same_data "after planned migration" "$A" "$L1 $L2 $L3" "$B" "$K1 $K2 $K3"
rp failover "$B" --group cg1 --device "$K3" --json
eq "failover again: ok (idempotent)" "$(pj 'd["ok"]' <<<"$OUT")" true

# Reprotect: write at B, reverse, sync B -> A sends only the changes.
write_blocks "$(lunpath "$B" "$K1")" 11 4
must "reverse at B" reverse "$B" --group cg1 --device "$K3"
rp sync "$B" --group cg1 --wait --json
eq "reverse sync: complete" "$(pj 'd["status"]' <<<"$OUT")" complete
REV=$(pj 'd["bytes_transferred"]' <<<"$OUT")
check "reverse sync sent only changes ($REV bytes <= 3% of 12 MiB)" test "$REV" -le 377487
must "reverse sync of solo" sync "$B" --device "$K3" --wait
same_data "after reprotect" "$B" "$K1 $K2 $K3" "$A" "$L1 $L2 $L3"
must "verify B A" verify "$B" "$A"

# Failback: prepare at B, sync, failover at A, reverse at A, sync.
must "prepare-failover at B" prepare-failover "$B" --group cg1 --device "$K3"
must "sync B after prepare" sync "$B" --group cg1 --device "$K3" --wait
must "failover at A" failover "$A" --group cg1 --device "$L3"
must "reverse at A" reverse "$A" --group cg1 --device "$L3"
must "sync A after failback" sync "$A" --group cg1 --device "$L3" --wait
same_data "after failback" "$A" "$L1 $L2 $L3" "$B" "$K1 $K2 $K3"
must "verify after failback" verify "$A" "$B"

# Disaster: A dies with unreplicated writes; failover at B; A returns; restore.
write_blocks "$PA1" 21 4
must "sync before the disaster" sync "$A" --group cg1 --wait
SYNCED=$(sum "$PA1")
write_blocks "$PA1" 31 4 # never replicated
TAIL=$(sum "$PA1")
mv "$A" "$A.down"
rp failover "$B" --group cg1 --json
eq "disaster failover with A unreachable: ok" "$(pj 'd["ok"]' <<<"$OUT")" true
eq "B has the last synced data" "$(sum "$(lunpath "$B" "$K1")")" "$SYNCED"
write_blocks "$(lunpath "$B" "$K1")" 41 4 # to be discarded by restore
mv "$A.down" "$A"
must "prepare-failover at A after it returned" prepare-failover "$A" --group cg1
eq "A kept its unreplicated writes" "$(sum "$PA1")" "$TAIL"
must "restore at A" restore "$A" --group cg1
rp lun list "$A" --json
eq "A is a source again" "$(pj "[x['state'] for x in d if x['id']=='$L1'][0]" <<<"$OUT")" source
must "sync after restore" sync "$A" --group cg1 --wait
same_data "after restore" "$A" "$L1 $L2" "$B" "$K1 $K2"
eq "B's post-failover writes discarded" "$(sum "$(lunpath "$B" "$K1")")" "$TAIL"
must "verify after restore" verify "$A" "$B" --group cg1

# LUN management.
must "lun snapshot" lun snapshot "$A" "$L1" snap1
SN=$OUT
eq "snapshot has lun1's data" "$(sum "$(lunpath "$A" "$SN")")" "$(sum "$PA1")"
must "lun clone" lun clone "$A" "$L1" clone1 --json
CL=$(pj 'd["id"]' <<<"$OUT")
eq "clone is writable" "$(pj 'd["read_only"]' <<<"$OUT")" false
eq "clone has lun1's data" "$(sum "$(lunpath "$A" "$CL")")" "$(sum "$PA1")"
must "lun resize" lun resize "$A" "$L3" 4M
rp lun list "$A" --json
eq "resized" "$(pj "[x['size'] for x in d if x['id']=='$L3'][0]" <<<"$OUT")" 4194304
rp lun list "$B" --json
eq "target resized too" "$(pj "[x['size'] for x in d if x['id']=='$K3'][0]" <<<"$OUT")" 4194304
must "lun delete clone" lun delete "$A" "$CL"
must "lun delete snapshot" lun delete "$A" "$SN"
rp lun list "$A" --json
eq "deleted LUNs are gone" "$(pj "len([x for x in d if x['id'] in ('$CL','$SN')])" <<<"$OUT")" 0
rp lun meta "$A" "$L1" --json
eq "lun meta --json lists keys" "$(pj 'd["vdi-uuid"]' <<<"$OUT")" 1234-abcd
must "lun meta --delete" lun meta "$A" "$L1" --delete vdi-uuid
must_fail "deleted key is not found" 3 lun meta "$A" "$L1" vdi-uuid

# A replicated LUN whose target is left to the next sync (--target-at-sync): made while B is
# down, listed as pending, its target made by the group's next sync.
mv "$B" "$B.down"
must_fail "--replicate with B down: the target cannot be made" 1 lun create "$A" late-eager 2M \
	--group cg1 --replicate
must "lun create --target-at-sync with B down" lun create "$A" late 2M --group cg1 \
	--target-at-sync --json
LT=$(pj 'd["id"]' <<<"$OUT")
eq "--json: target_pending" "$(pj 'd["target_pending"]' <<<"$OUT")" true
eq "--json: source, peer array known, no peer device yet" \
	"$(pj 'd["state"] + "/" + d["peer_array"] + "/" + str(d.get("peer_device") or "")' <<<"$OUT")" \
	source/site-b/
must "lun snapshot --target-at-sync with B down" lun snapshot "$A" "$LT" late-snap --target-at-sync
LS=$OUT
mv "$B.down" "$B"
rp lun list "$A" --group cg1
check "lun list shows the pending peer as '(next sync)'" grep -q "late .*site-b/(next sync)" <<<"$OUT"
rp lun list "$B" --json
eq "nothing made at B yet" "$(pj "len([x for x in d if x['name'] in ('late','late-snap')])" \
	<<<"$OUT")" 0
dd if=/dev/urandom of="$(lunpath "$A" "$LT")" bs=64K count=4 conv=notrunc status=none
must "sync of cg1 makes the targets" sync "$A" --group cg1 --wait
rp lun list "$A" --json
eq "no longer pending" "$(pj "[x['target_pending'] for x in d if x['id'] in ('$LT','$LS')]" \
	<<<"$OUT")" "[False, False]"
KT=$(pj "[x['peer_device'] for x in d if x['id']=='$LT'][0]" <<<"$OUT")
same_data "pending LUN after its first sync" "$A" "$LT" "$B" "$KT"
must "verify cg1 with the new members" verify "$A" "$B" --group cg1
must "lun delete late-snap" lun delete "$A" "$LS"
must "lun delete late" lun delete "$A" "$LT"
"$BIN" lun create --help >"$ERRF.help" 2>&1
check "lun create --help documents --target-at-sync" grep -q -- "--target-at-sync" "$ERRF.help"
rm -f "$ERRF.help"

if [ "$MODE" = xfs ]; then
	# The drill on the reflink filesystem: O(1) snapshots, extent-map change detection.
	rp drill --dir "$MNT/drill" --json --size 16M
	eq "drill on xfs: exit" "$RC" 0
	eq "drill on xfs: passed" "$(pj 'd["passed"]' <<<"$OUT")" true
	eq "drill on xfs: reports reflink" "$(pj 'd["reflink"]' <<<"$OUT")" true
	eq "drill on xfs: reports xfs" "$(pj 'd["fs_type"]' <<<"$OUT")" xfs
	check "drill removed its arrays" test ! -e "$MNT/drill/site-a" -a ! -e "$MNT/drill"
fi

finish
