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
    ap.add_argument("--profile", action="store_true",
                    help="also run each call once with REPLUN_SM_TIMING=1 (phase times) and "
                    "under strace -c -f, printed to stderr")
    ap.add_argument("--compare", metavar="BUILD",
                    help="also time BUILD's ReplunSR (same relay), alternating call by call: "
                    "before/after a change")
    a = ap.parse_args()
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(src, "tests", "xapi"))
    sys.path.insert(0, os.path.join(src, "tests", "sm"))
    import smtest
    import xapi_sim
    import xe
    from xapi_stub import StubXapi

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
        sock = os.path.join(tmp, "xapi.sock")
        x = xapi_sim.Xapi(sock, sm_plugins={"replun": plugin},
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
        # the calls as XAPI sends them (members of the simulator's own requests)
        X.sm(srref, "vdi_attach", vdi=bref, args=["true"])
        X("vdi-snapshot", "uuid=" + base)
        X("vdi-clone", "uuid=" + base)
        docs = {}
        for e in x.sm.log:
            if e["command"] in ("sr_get_driver_info", "vdi_create", "vdi_snapshot", "vdi_clone",
                                "vdi_attach"):
                docs[e["command"]] = e["request"]
        if x.violations:
            sys.exit("bench/sm: XenAPI protocol violations: %s" % x.violations[:2])
        env = x.sm.env()
        x.stop()
        x = None
        fast = StubXapi(sock, record=False, backlog=64)
        rows = []
        relay = smtest.Relay(env["REPLUN_RUN_DIR"])
        if a.profile:
            profile(plugin, docs, env, relay)
        off = dict(env, REPLUN_XAPI_RELAY="0")
        other = os.path.join(a.compare, "bin", "ReplunSR") if a.compare else None
        if other:  # both binaries use this build's relay
            env = dict(env, REPLUN_XAPI_RELAY=os.path.join(a.build, "bin", "replun-xapi-relay"))

        def call(name, e, binary=plugin):
            t0 = time.monotonic()
            p = subprocess.run([binary, docs[name]], env=e, capture_output=True, text=True)
            ms = (time.monotonic() - t0) * 1000.0
            if p.returncode != 0 or "<fault>" in p.stdout:
                sys.exit("bench/sm: %s failed: %s" % (name, p.stdout[-500:]))
            return ms

        compared = []
        call("vdi_create", env)  # starts the relay
        wait_relay(relay)
        for name in ("sr_get_driver_info", "vdi_create", "vdi_snapshot", "vdi_clone",
                     "vdi_attach"):
            warm, inproc, cmp = [], [], []
            for _ in range(a.runs):  # alternating, so all see the same load
                warm.append(call(name, env))
                inproc.append(call(name, off))
                if other:
                    cmp.append(call(name, env, other))
            if other:
                compared.append((name, statistics.median(cmp), statistics.median(warm),
                                 sorted(cmp), sorted(warm)))
            cold = []
            if name in CALLS_BACK:
                for _ in range(max(3, a.runs // 6)):  # relay absent: fallback + spawn
                    relay.kill(forget=True)
                    cold.append(call(name, env))
                    wait_relay(relay)
            floor = []
            for _ in range(max(5, a.runs // 3)):
                t0 = time.monotonic()
                subprocess.run([sys.executable, "-c", PY_FLOOR, docs[name]], env=env,
                               check=True, capture_output=True)
                floor.append((time.monotonic() - t0) * 1000.0)
            rows.append((name, statistics.median(warm), sorted(warm)[int(len(warm) * 0.9)],
                         statistics.median(inproc),
                         statistics.median(cold) if cold else None,
                         statistics.median(floor)))
        relay.kill(forget=True)
        fast.close()
        # the same array work through libreplun in one process per op (open, op, close)
        alone = {}
        p = subprocess.run([tool, "bench", arr_a, sr, base, str(max(5, a.runs // 2))],
                           capture_output=True, text=True)
        if p.returncode == 0:
            for line in p.stdout.splitlines():
                op, ms = line.split()
                alone[op] = float(ms)
        else:
            print("bench/sm: array work alone not measured: %s" % p.stderr.strip(),
                  file=sys.stderr)
        print()
        print("### SMAPI: ReplunSR per-call latency (%d runs per call, 100 GiB sparse VDI, "
              "replicated SR, arrays on %s)" % (a.runs, fs))
        print()
        print("| call | ReplunSR median (relay warm) | p90 | in-process libcurl (relay off) "
              "| relay absent (fallback + start) | array work alone | Python floor median "
              "| floor / ReplunSR |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        ok = True
        for name, med, p90, inproc, cold, fl in rows:
            al = ("%.2f ms" % alone[name]) if name in alone else "–"
            print("| %s | %.2f ms | %.2f ms | %.2f ms | %s | %s | %.2f ms | %.1fx |" % (
                name, med, p90, inproc, ("%.2f ms" % cold) if cold else "–", al, fl,
                fl / med))
            if name != "sr_get_driver_info":
                ok = ok and med <= TARGET_MS and fl / med >= TARGET_RATIO
        if compared:
            print()
            print("| call | %s (relay warm) | %s (relay warm) |" % (a.compare, a.build))
            print("|---|---:|---:|")
            for name, before, after, _b, _a in compared:
                print("| %s | %.2f ms | %.2f ms |" % (name, before, after))
            for name, _before, _after, b, w in compared:
                print("%s all runs, %s: %s" % (name, a.compare, " ".join("%.2f" % t for t in b)),
                      file=sys.stderr)
                print("%s all runs, %s: %s" % (name, a.build, " ".join("%.2f" % t for t in w)),
                      file=sys.stderr)
        print()
        print("Python floor: `python3 -c` parsing the same argv[1] with xmlrpc.client and "
              "printing a nil response (no storage work at all). sr_get_driver_info is the "
              "plugin's own floor (process start, parse, answer; no array, no XAPI). The calls are "
              "the simulator's own requests replayed; XenAPI callbacks (VDI.db_introduce) are "
              "answered at once by a stub on the XAPI socket, so the Python simulator's latency "
              "is not counted. 'Relay warm' is the steady state on a host (replun-xapi-relay "
              "running), 'in-process' the same call with REPLUN_XAPI_RELAY=0 (libcurl loaded by "
              "the call, as when the relay is unusable), alternating call by call; 'relay "
              "absent' a call right after the relay was killed (it falls back and starts one). "
              "'Array work alone' is the same libreplun calls (open the array, "
              "create/snapshot/clone with the 9-key VDI record in the same commit, or look "
              "up, close) timed in a C loop: what any front end pays. Target for "
              "the four VDI calls: median <= %.0f ms and >= %.0fx below the floor: %s."
              % (TARGET_MS, TARGET_RATIO, "met" if ok else "NOT met"))
    finally:
        if x:
            x.stop()
        if mnt:
            subprocess.run(["umount", mnt], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def profile(plugin, docs, env, relay, n=15):
    """Per call kind: median / lowest time of each phase of the plugin's phase timer over n
    calls (the relay warm), then one call under strace -c -f; to stderr."""
    for name in ("sr_get_driver_info", "vdi_create", "vdi_snapshot", "vdi_clone", "vdi_attach"):
        for _ in range(3):  # warm the page cache (and start the relay)
            subprocess.run([plugin, docs[name]], env=env, capture_output=True)
        if name in CALLS_BACK:
            wait_relay(relay)
        modes = [("relay warm", env)]
        if name in CALLS_BACK:
            modes.append(("in-process libcurl, REPLUN_XAPI_RELAY=0",
                          dict(env, REPLUN_XAPI_RELAY="0")))
        for mode, menv in modes:
            e = dict(menv, REPLUN_SM_TIMING="1")
            phases, walls = {}, []
            order = []
            for _ in range(n):
                t0 = time.monotonic()
                p = subprocess.run([plugin, docs[name]], env=e, capture_output=True, text=True)
                walls.append((time.monotonic() - t0) * 1000.0)
                prev = 0.0
                for line in p.stderr.splitlines():
                    if not line.startswith("ReplunSR timing:"):
                        continue
                    f = line.split(None, 4)
                    t, what = float(f[2]), f[4]
                    if what not in phases:
                        phases[what] = []
                        order.append(what)
                    phases[what].append(t - prev)
                    prev = t
            print("--- %s, %s: phases over %d calls (ms since the previous mark: median / "
                  "lowest)" % (name, mode, n), file=sys.stderr)
            for what in order:
                print("  %-45s %7.3f / %7.3f" % (what, statistics.median(phases[what]),
                                                 min(phases[what])), file=sys.stderr)
            print("  %-45s %7.3f / %7.3f" % ("wall (as the caller sees it)",
                                             statistics.median(walls), min(walls)),
                  file=sys.stderr)
        if shutil.which("strace"):
            p = subprocess.run(["strace", "-f", "-c", "-o", "/dev/stderr", plugin, docs[name]],
                               env=env, capture_output=True, text=True)
            print("--- %s: strace -c -f\n%s" % (name, p.stderr), file=sys.stderr)


CALLS_BACK = ("vdi_create", "vdi_snapshot", "vdi_clone")


def wait_relay(relay):
    """Until the relay started by a call listens (a live pid and its socket)."""
    if not relay.wait():
        sys.exit("bench/sm: no relay came up in %s" % relay.dir)


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
