#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# presentation.sh - `replun lun present|presented|unpresent` end to end: listing (table and
# --json), one read-write host, --host and --all (forced take-over), unique LUN names, and bad
# input (one "replun: " line, the documented exit code, nothing changed).
# Usage: presentation.sh /path/to/replun
set -u
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

cli_tmpdir pres
cli_pair "$T/a" "$T/b"
must "lun create" lun create "$A" vm1 4M --group g1 --replicate
L1=$OUT
must "lun create standalone" lun create "$A" vm2 1M
L2=$OUT

# Nothing presented yet.
must "presented (none)" lun presented "$A" "$L1" --json
eq "no presentations" "$(pj 'len(d)' <<<"$OUT")" 0

# One writer, then nobody else.
must "present rw to host-1" lun present "$A" "$L1" --host host-1 --rw
must "present rw to host-1 again (idempotent)" lun present "$A" "$L1" --host host-1 --rw
must_fail "present to host-2 while host-1 writes" 4 lun present "$A" "$L1" --host host-2
must "presented --json" lun presented "$A" "$L1" --json
eq "one presentation" "$(pj 'len(d)' <<<"$OUT")" 1
eq "host-1 has it" "$(pj 'd[0]["host"]' <<<"$OUT")" host-1
eq "host-1 has it read-write" "$(pj 'd[0]["rw"]' <<<"$OUT")" true
must "presented (table)" lun presented "$A" "$L1"
check "table has a header and host-1 rw" bash -c 'grep -q "^HOST *ACCESS" <<<"$1" && grep -q "^host-1 *rw" <<<"$1"' _ "$OUT"

# host-1 died: forced take-over.
must "unpresent --all" lun unpresent "$A" "$L1" --all
must "presented after --all" lun presented "$A" "$L1" --json
eq "no presentations after --all" "$(pj 'len(d)' <<<"$OUT")" 0
must "host-2 takes it read-write" lun present "$A" "$L1" --host host-2 --rw
must "unpresent --all again" lun unpresent "$A" "$L1" --all
must "unpresent --all with nothing presented" lun unpresent "$A" "$L1" --all

# Readers, and --host removes one.
must "present ro to host-a" lun present "$A" "$L2" --host host-a
must "present ro to host-b" lun present "$A" "$L2" --host host-b
must_fail "rw while readers are there" 4 lun present "$A" "$L2" --host host-a --rw
must "unpresent --host host-a" lun unpresent "$A" "$L2" --host host-a
must "unpresent --host host-a again (idempotent)" lun unpresent "$A" "$L2" --host host-a
must "presented after --host" lun presented "$A" "$L2" --json
eq "host-b remains, read-only" "$(pj '[(p["host"], p["rw"]) for p in d]' <<<"$OUT")" "[('host-b', False)]"
# A read-only LUN (snapshot) cannot be presented read-write.
must "snapshot" lun snapshot "$A" "$L2" snap1
S1=$OUT
must_fail "rw on a snapshot" 4 lun present "$A" "$S1" --host host-c --rw
must_fail "shared on a snapshot" 4 lun present "$A" "$S1" --host host-c --shared

# Shared writers (an HA statefile every host writes its own slot of).
must "create the statefile LUN" lun create "$A" statefile 4M
L3=$OUT
must "host-1 shared writer" lun present "$A" "$L3" --host host-1 --shared
must "host-2 shared writer" lun present "$A" "$L3" --host host-2 --shared
must "host-2 shared again (idempotent)" lun present "$A" "$L3" --host host-2 --shared
must "presented of the statefile" lun presented "$A" "$L3" --json
eq "both hosts rw and shared" "$(pj '[(p["host"], p["rw"], p["shared"]) for p in d]' <<<"$OUT")" "[('host-1', True, True), ('host-2', True, True)]"
must "presented table" lun presented "$A" "$L3"
check "table says rw-shared" grep -q "^host-2 *rw-shared" <<<"$OUT"
BEFORE=$("$BIN" lun presented "$A" "$L3" --json)
must_fail "an exclusive writer while shared writers are there" 4 lun present "$A" "$L3" --host host-3 --rw
must_fail "a reader while shared writers are there" 4 lun present "$A" "$L3" --host host-3
must_fail "--rw and --shared together" 2 lun present "$A" "$L3" --host host-3 --rw --shared
AFTER=$("$BIN" lun presented "$A" "$L3" --json)
eq "refused presentations changed nothing" "$AFTER" "$BEFORE"
must "host-2 writes vm1 exclusively" lun present "$A" "$L1" --host host-2 --rw
must_fail "shared while another host writes exclusively" 4 lun present "$A" "$L1" --host host-3 --shared
must_fail "shared while another host reads" 4 lun present "$A" "$L2" --host host-3 --shared
must "host-1 and host-2 let go" lun unpresent "$A" "$L3" --all
must "then an exclusive writer" lun present "$A" "$L3" --host host-3 --rw

# Unique names, on the array and on the peer.
must_fail "a second LUN named vm1" 4 lun create "$A" vm1 1M
must_fail "a LUN at B named like the target of vm1" 4 lun create "$B" vm1 1M
must_fail "a snapshot named vm2" 4 lun snapshot "$A" "$L1" vm2
must_fail "a name with '/'" 2 lun create "$A" "a/b" 1M
must "snapshot with the default name" lun snapshot "$A" "$L2" --json
N1=$(pj 'd["name"]' <<<"$OUT")
must "another snapshot with the default name" lun snapshot "$A" "$L2" --json
N2=$(pj 'd["name"]' <<<"$OUT")
check "default snapshot names differ ($N1, $N2)" test "$N1" != "$N2"

# Bad input changes nothing.
BEFORE=$("$BIN" lun presented "$A" "$L2" --json)
must_fail "unpresent without --host or --all" 2 lun unpresent "$A" "$L2"
must_fail "unpresent with both --host and --all" 2 lun unpresent "$A" "$L2" --host h --all
must_fail "present without --host" 2 lun present "$A" "$L2"
must_fail "presented of an unknown LUN" 3 lun presented "$A" site-a-999999
must_fail "unpresent --all of an unknown LUN" 3 lun unpresent "$A" site-a-999999 --all
must_fail "presented with a path id" 2 lun presented "$A" ../x
must_fail "presented of a missing array" 3 lun presented "$T/nowhere" "$L2"
AFTER=$("$BIN" lun presented "$A" "$L2" --json)
eq "nothing changed" "$AFTER" "$BEFORE"

# Help.
for c in "lun present" "lun presented" "lun unpresent"; do
	rp $c --help
	check "replun $c --help shows its usage" grep -q "^usage: replun $c" <<<"$OUT"
done
rp --help
check "replun --help lists the presentation commands" bash -c 'for c in "lun present" "lun presented" "lun unpresent"; do grep -q "^  $c " <<<"$1" || exit 1; done' _ "$OUT"

finish
