#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# recovery_point.sh - `--recovery-point RP` of `replun test-failover start` and `replun failover`:
# a test copy of an older point holds that point's data, failover to an older point rolls the
# target back to it (the newer data is kept in the revert snapshot), unknown and malformed points
# are refused with the documented exit code and change nothing.
# Usage: recovery_point.sh /path/to/replun
set -u
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

cli_tmpdir rp
cli_pair "$T/a" "$T/b"
must "lun create" lun create "$A" db 1M --group g --replicate
SRC=$OUT
must "lun list at B" lun list "$B" --group g --json
TGT=$(pj 'd[0]["id"]' <<<"$OUT")

# Point 1: the first data.
dd if=/dev/urandom of="$(lunpath "$A" "$SRC")" bs=4K count=256 conv=notrunc status=none
SUM1=$(sum "$(lunpath "$A" "$SRC")")
must "sync 1" sync "$A" --group g --wait --json
RP1=$(pj 'd["recovery_point"]' <<<"$OUT")
# Point 2: changed data.
write_blocks "$(lunpath "$A" "$SRC")" 3 16
SUM2=$(sum "$(lunpath "$A" "$SRC")")
must "sync 2" sync "$A" --group g --wait --json
RP2=$(pj 'd["recovery_point"]' <<<"$OUT")
check "two different points" test "$RP1" != "$RP2"
eq "target holds point 2" "$(sum "$(lunpath "$B" "$TGT")")" "$SUM2"

must "recovery points at B" recovery-points "$B" --group g --json
check "B holds point 1" bash -c 'grep -q "$1" <<<"$2"' _ "$RP1" "$OUT"

# Test copy of the older point.
must "test-failover start at point 1" test-failover start "$B" --group g --recovery-point "$RP1" --json
COPY=$(pj '[i["snapshot"] for i in d["items"] if i["kind"] == "device"][0]' <<<"$OUT")
eq "the copy is of point 1" \
	"$(pj '[i["recovery_point"] for i in d["items"] if i["kind"] == "device"][0]' <<<"$OUT")" "$RP1"
eq "test copy holds point 1" "$(sum "$(lunpath "$B" "$COPY")")" "$SUM1"
must "test-failover stop" test-failover stop "$B" --group g

# Bad points: refused, nothing changed.
must "lun list before" lun list "$B" --json
BEFORE=$OUT
must_fail "unknown point" 3 failover "$B" --group g --recovery-point rp-0-0000
must_fail "malformed point" 2 failover "$B" --group g --recovery-point ../x
must "lun list after" lun list "$B" --json
eq "bad points changed nothing" "$OUT" "$BEFORE"
eq "target still holds point 2" "$(sum "$(lunpath "$B" "$TGT")")" "$SUM2"

# Failover to the older point: the promoted device holds point 1.
must "failover at point 1" failover "$B" --group g --recovery-point "$RP1"
eq "promoted device holds point 1" "$(sum "$(lunpath "$B" "$TGT")")" "$SUM1"
must "lun list after failover" lun list "$B" --group g --json
eq "promoted read-write" "$(pj 'd[0]["state"]' <<<"$OUT")" promoted-target

finish
