#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# errors.sh - every bad input to `replun` gets one line "replun: <message>" on stderr, the
# documented exit code, and changes nothing (lun list --json of both arrays compared before and
# after). Also checks --help texts.
# Usage: errors.sh /path/to/replun
set -u
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

cli_tmpdir err
cli_pair "$T/a" "$T/b"
must "lun create" lun create "$A" data 4M --group g1 --replicate
L1=$OUT
must "lun create standalone" lun create "$A" alone 1M
L2=$OUT
dd if=/dev/urandom of="$(lunpath "$A" "$L1")" bs=64K count=4 conv=notrunc status=none
must "sync" sync "$A" --group g1 --wait

state() {
	"$BIN" lun list "$A" --json
	"$BIN" lun list "$B" --json
	"$BIN" group list "$A" --json
	"$BIN" group list "$B" --json
	"$BIN" array info "$A" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["id"], d["peers"])'
	sum "$(lunpath "$A" "$L1")"
}
BEFORE=$(state)

# Usage errors: exit 2.
must_fail "no command" 2
must_fail "unknown command" 2 frobnicate
must_fail "unknown subcommand" 2 lun frobnicate "$A"
must_fail "family without subcommand" 2 array
must_fail "unknown global option" 2 --frob
must_fail "unknown command option" 2 lun list "$A" --frob
must_fail "option missing its value" 2 lun create "$A" x 1M --group
must_fail "missing argument" 2 lun create "$A" x
must_fail "too many arguments" 2 lun delete "$A" "$L1" extra
must_fail "size not a number" 2 lun create "$A" x 12Q
must_fail "size negative" 2 lun create "$A" x -5
must_fail "size zero" 2 lun create "$A" x 0
must_fail "size overflow" 2 lun create "$A" x 99999999999T
must_fail "resize size not a number" 2 lun resize "$A" "$L1" lots
must_fail "lun name with a control character" 2 lun create "$A" "$(printf 'a\tb')" 1M
must_fail "empty lun name" 2 lun create "$A" "" 1M
must_fail "path with .." 2 lun list "$A/../a"
must_fail "array init path with .." 2 array init "$T/x/../y" --id y
must_fail "array init without --id" 2 array init "$T/z"
must_fail "bad array id" 2 array init "$T/z" --id "../evil"
must_fail "bad group id" 2 lun create "$A" x 1M --group "a/b"
must_fail "group id with .." 2 sync "$A" --group "..x"
must_fail "device id with .." 2 lun delete "$A" "../$L1"
must_fail "sync without selector" 2 sync "$A"
must_fail "failover without selector" 2 failover "$B"
must_fail "sync-status with two selectors" 2 sync-status "$A" --group g1 --device "$L1"
must_fail "sync --timeout not a number" 2 sync "$A" --group g1 --wait --timeout soon
must_fail "drill --luns 0" 2 drill --luns 0
must_fail "drill bad size" 2 drill --size 3Q
check "array init with bad input created nothing" test ! -e "$T/z" -a ! -e "$T/y"

# Not found: exit 3.
must_fail "missing array" 3 lun list "$T/nope"
must_fail "missing array (verify)" 3 verify "$A" "$T/nope"
must_fail "unknown LUN (delete)" 3 lun delete "$A" no-such-lun
must_fail "unknown LUN (path)" 3 lun path "$A" no-such-lun
must_fail "unknown LUN (resize)" 3 lun resize "$A" no-such-lun 8M
must_fail "unknown LUN (snapshot)" 3 lun snapshot "$A" no-such-lun
must_fail "unknown LUN (meta)" 3 lun meta "$A" no-such-lun k v
must_fail "unknown group (lun list)" 3 lun list "$A" --group nosuch
must_fail "unknown session" 3 sync-status "$A" --session nosuch
must_fail "never synced device" 3 sync-status "$A" --device "$L2"
must_fail "unknown group (sync)" 3 sync "$A" --group nosuch
must_fail "unknown group (failover)" 3 failover "$B" --group nosuch
must_fail "unknown device (prepare-failover)" 3 prepare-failover "$A" --device nosuch

# Wrong state: exit 4.
must_fail "array init on an existing array" 4 array init "$A" --id again
must_fail "failover at the protected site" 4 failover "$A" --group g1
must_fail "reverse before failover" 4 reverse "$B" --group g1
must_fail "shrink" 2 lun resize "$A" "$L1" 1M
must_fail "test-failover start at the protected site" 4 test-failover start "$A" --group g1
rp lun list "$A" --json
K1=$(pj "[x['peer_device'] for x in d if x['id']=='$L1'][0]" <<<"$OUT")
must_fail "delete a replication target" 4 lun delete "$B" "$K1"
must_fail "resize a replication target" 4 lun resize "$B" "$K1" 8M
must_fail "restore at the recovery site" 4 restore "$B" --group g1
must_fail "prepare-failover at the recovery site" 4 prepare-failover "$B" --group g1
must_fail "delete a group that holds LUNs" 4 group delete "$A" g1

# Runtime errors: the peer is unreachable (its directory moved away): exit 1.
mv "$B" "$B.away"
must_fail "sync with the peer unreachable" 1 sync "$A" --group g1 --wait
must_fail "create a replicated LUN with the peer unreachable" 1 lun create "$A" new 1M --group g1
mv "$B.away" "$B"

AFTER=$(state)
eq "nothing changed by the bad inputs" "$(sha256sum <<<"$AFTER")" "$(sha256sum <<<"$BEFORE")"

# verify finds a difference: damage the recovery-point images of the target (white box: the
# file driver keeps them as data/snap-rp-<device>-<ms>.img) and expect exit 5.
RPIMG=$(ls "$B"/data/snap-rp-*.img 2>/dev/null)
check "found the target's recovery-point images" test -n "$RPIMG"
for f in $RPIMG; do
	dd if=/dev/urandom of="$f" bs=4K count=1 seek=7 conv=notrunc status=none
done
must_fail "verify reports the difference with exit 5" 5 verify "$A" "$B"
check "verify prints the pair as DIFFERENT" grep -q "DIFFERENT" <<<"$OUT"
rp verify "$A" "$B" --json
eq "verify --json: equal false" "$(pj 'd["equal"]' <<<"$OUT")" false

# Help texts.
rp --help
check "replun --help lists every command" bash -c 'for c in "array init" "array pair" "array info" "lun create" "lun list" "lun delete" "lun resize" "lun snapshot" "lun clone" "lun path" "lun meta" "group list" sync sync-status "test-failover start" "test-failover stop" prepare-failover failover reverse restore recovery-points verify drill; do grep -q "^  $c " <<<"$1" || exit 1; done' _ "$OUT"
check "replun --help documents the exit codes" grep -q "5  verify found a difference" <<<"$OUT"
for c in "array init" "lun create" "sync" "failover" "verify" "drill" "test-failover start"; do
	rp $c --help
	check "replun $c --help shows its usage (exit $RC)" grep -q "^usage: replun $c" <<<"$OUT"
done
rp lun --help
check "replun lun --help lists lun commands" grep -q "lun create" <<<"$OUT"
rp --version
check "replun --version" grep -q "^replun [0-9]" <<<"$OUT"

finish
