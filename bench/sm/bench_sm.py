#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# bench/sm: per-call latency of ReplunSR, run as XAPI runs it (fresh process, argv[1] = the
# methodCall in XAPI's dialect, callbacks answered by the XAPI simulator of tests/xapi), for
# vdi_create, vdi_snapshot, vdi_clone and vdi_attach on a 100 GiB (sparse) VDI of a replicated
# SR, against the floor a Python driver pays for the same call: python3 starting and parsing
# it with xmlrpc.client and printing a response. Prints a markdown table with medians.
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PY_FLOOR = ("import sys, xmlrpc.client\n"
            "params, method = xmlrpc.client.loads(sys.argv[1])\n"
            "sys.stdout.write(xmlrpc.client.dumps((None,), methodresponse=True,"
            " allow_none=True))\n")
TARGET_MS = 5.0
TARGET_RATIO = 10.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="build directory (bin/ReplunSR)")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("SM_BENCH_RUNS", "30")))
    a = ap.parse_args()
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(src, "tests", "xapi"))
    import xapi_sim
    import xe

    plugin = os.path.join(a.build, "bin", "ReplunSR")
    tool = os.path.join(a.build, "bin", "sm_bench_tool")
    for p in (plugin, tool):
        if not os.access(p, os.X_OK):
            sys.exit("bench/sm: %s not built" % p)
    tmp = tempfile.mkdtemp(prefix="smb.", dir=os.environ.get("TMPDIR", "/tmp"))
    x = None
    mnt = None
    try:
        where = mount_xfs(tmp)
        if where:
            mnt = where
            fs = "xfs with reflink (loop device)"
        else:
            where = tmp
            fs = "%s (no reflink: snapshots and clones are sparse copies)" % fs_type(tmp)
        arr_a, arr_b = os.path.join(where, "A"), os.path.join(where, "B")
        for args in (["init", arr_a, "siteA"], ["init", arr_b, "siteB"],
                     ["pair", arr_a, arr_b]):
            subprocess.run([tool] + args, check=True, capture_output=True)
        x = xapi_sim.Xapi(os.path.join(tmp, "xapi.sock"), sm_plugins={"replun": plugin},
                          env_extra={"REPLUN_LOCK_DIR": os.path.join(tmp, "lock"),
                                     "REPLUN_RUN_DIR": os.path.join(tmp, "r"),
                                     "REPLUN_DATAPATH": "nbd"})
        x.start()
        X = xe.Xe(x)
        sr = X("sr-create", "type=replun", "name-label=bench", "device-config:array=" + arr_a,
               "device-config:peer=" + arr_b)
        srref = x.db.by_uuid("SR", sr)
        base = X("vdi-create", "sr-uuid=" + sr, "name-label=base", "virtual-size=100GiB")
        bref = x.db.by_uuid("VDI", base)
        ops = {
            "sr_get_driver_info": lambda: x.sm.call(plugin, {
                "host_ref": x.host, "command": "sr_get_driver_info", "args": [],
                "device_config": {}}),
            "vdi_create": lambda: X("vdi-create", "sr-uuid=" + sr, "name-label=new",
                                    "virtual-size=100GiB"),
            "vdi_snapshot": lambda: X("vdi-snapshot", "uuid=" + base),
            "vdi_clone": lambda: X("vdi-clone", "uuid=" + base),
            "vdi_attach": lambda: X.sm(srref, "vdi_attach", vdi=bref, args=["true"]),
        }
        rows = []
        for name, fn in ops.items():
            times, doc = [], None
            for _ in range(a.runs):
                mark = len(x.sm.log)
                fn()
                entry = next(e for e in x.sm.log[mark:] if e["command"] == name)
                times.append(entry["seconds"] * 1000.0)
                doc = entry["request"]
            floor = []
            env = x.sm.env()
            for _ in range(max(5, a.runs // 3)):
                t0 = time.monotonic()
                subprocess.run([sys.executable, "-c", PY_FLOOR, doc], env=env, check=True,
                               capture_output=True)
                floor.append((time.monotonic() - t0) * 1000.0)
            rows.append((name, statistics.median(times), sorted(times)[int(len(times) * 0.9)],
                         statistics.median(floor)))
        if x.violations:
            sys.exit("bench/sm: XenAPI protocol violations: %s" % x.violations[:2])
        print()
        print("### SMAPI: ReplunSR per-call latency (%d runs per call, 100 GiB sparse VDI, "
              "replicated SR, arrays on %s, callbacks to the XAPI simulator)" % (a.runs, fs))
        print()
        print("| call | ReplunSR median | ReplunSR p90 | Python floor median | floor / ReplunSR |")
        print("|---|---:|---:|---:|---:|")
        ok = True
        for name, med, p90, fl in rows:
            print("| %s | %.2f ms | %.2f ms | %.2f ms | %.1fx |" % (name, med, p90, fl, fl / med))
            if name != "sr_get_driver_info":
                ok = ok and med <= TARGET_MS and fl / med >= TARGET_RATIO
        print()
        print("Python floor: `python3 -c` parsing the same argv[1] with xmlrpc.client and "
              "printing a nil response (no storage work at all). sr_get_driver_info is the "
              "plugin's own floor (process start, parse, answer; no array, no XAPI). Target for "
              "the four VDI calls: median <= %.0f ms and >= %.0fx below the floor: %s."
              % (TARGET_MS, TARGET_RATIO, "met" if ok else "NOT met"))
    finally:
        if x:
            x.stop()
        if mnt:
            subprocess.run(["umount", mnt], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def fs_type(path):
    p = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def mount_xfs(tmp):
    """A 4 GiB xfs (reflink) on a loop device, as the arrays are meant to live; None when
    not root or mkfs.xfs is missing."""
    if os.geteuid() != 0 or not shutil.which("mkfs.xfs"):
        return None
    img, mnt = os.path.join(tmp, "xfs.img"), os.path.join(tmp, "xfs")
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    if subprocess.run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", img],
                      capture_output=True).returncode != 0:
        return None
    if subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True).returncode != 0:
        return None
    return mnt


if __name__ == "__main__":
    main()
