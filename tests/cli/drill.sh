#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# drill.sh - runs `replun drill` (as `make drill` does) and checks its report: every step ran,
# every step verified, bytes and RPO/RTO reported, temp dirs removed or kept as asked.
# Usage: drill.sh /path/to/replun
set -u
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

cli_tmpdir drill
export TMPDIR=$T

must "replun drill (default settings)" drill
echo "$OUT" | sed 's/^/    /'
check "report says PASSED" grep -q "drill PASSED" <<<"$OUT"
check "report names the filesystem" grep -q "^filesystem: " <<<"$OUT"
for s in "initial sync" "test failover" "planned migration" reprotect failback \
	"disaster failover" restore; do
	check "report has step '$s' ok" grep -Eq "^$s +ok " <<<"$OUT"
done
eq "temp dir removed after the drill" "$(find "$T" -mindepth 1 -maxdepth 1 -name 'replun-drill-*' | wc -l)" 0

must "replun drill --json --size 8M --luns 2 --dir D --keep" drill --json --size 8M --luns 2 \
	--dir "$T/kept" --keep
J=$OUT
eq "json: passed" "$(pj 'd["passed"]' <<<"$J")" true
eq "json: 8 steps" "$(pj 'len(d["steps"])' <<<"$J")" 8
eq "json: every step ok" "$(pj 'all(s["result"] == "ok" for s in d["steps"])' <<<"$J")" true
eq "json: every step verified" "$(pj 'all(s["verified"] for s in d["steps"])' <<<"$J")" true
eq "json: luns" "$(pj 'd["luns"]' <<<"$J")" 2
check "json: initial sync moved data" \
	test "$(pj '[s["bytes_moved"] for s in d["steps"] if s["step"] == "initial sync"][0]' <<<"$J")" -gt 0
check "json: reprotect moved less than the initial sync" python3 -c '
import json, sys
d = {s["step"]: s for s in json.loads(sys.argv[1])["steps"]}
sys.exit(0 if 0 < d["reprotect"]["bytes_moved"] < d["initial sync"]["bytes_moved"] else 1)' "$J"
check "json: RTO and RPO measured for the failovers" python3 -c '
import json, sys
d = {s["step"]: s for s in json.loads(sys.argv[1])["steps"]}
ok = all(d[k]["rto_ms"] is not None and d[k]["rpo_ms"] is not None
         for k in ("planned migration", "failback", "disaster failover"))
sys.exit(0 if ok else 1)' "$J"
check "--keep kept site A" test -d "$T/kept/site-a"
check "--keep kept site B" test -d "$T/kept/site-b"
must_fail "a second drill in the same --dir is refused" 4 drill --dir "$T/kept"
must "lun list on the kept site B" lun list "$T/kept/site-b" --json
eq "kept site B has 2 LUNs" "$(pj 'len(d)' <<<"$OUT")" 2

finish
