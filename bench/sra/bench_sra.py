#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# bench_sra.py - times the SRA as SRM runs it (perl command.pl, request on stdin, response file):
# discoverDevices with 10,000 devices at both sites and failover of 1,000 standalone devices.
# Prints a markdown table; exits 1 when a budget (1 s, 10 s) is exceeded.
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

NS = "http://www.vmware.com/srm/sra/v2"
Q = "{%s}" % NS


def run_sra(command, tmp, site, name, body):
    out = os.path.join(tmp, "out-%s-%s.xml" % (site, name))
    req = ('<?xml version="1.0" encoding="UTF-8"?><Command xmlns="%s"><Name>%s</Name>'
           '<Connections><Connection id="replun"><Addresses><Address id="arrayUri">file://%s/%s'
           '</Address></Addresses></Connection></Connections><OutputFile>%s</OutputFile>'
           '<StatusFile>%s.status</StatusFile><LogLevel>info</LogLevel>'
           '<LogDirectory>%s/logs</LogDirectory>%s</Command>') % (
               NS, name, tmp, site, out, out, tmp, body)
    t0 = time.monotonic()
    p = subprocess.run(["perl", command], input=req.encode(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    dt = time.monotonic() - t0
    if p.returncode != 0 or not os.path.exists(out):
        sys.exit("bench: %s at %s failed: %s" % (name, site, p.stderr.decode()[-400:]))
    root = ET.parse(out).getroot()
    if root.find(Q + "Error") is not None:
        sys.exit("bench: %s at %s answered an error:\n%s" % (name, site, open(out).read()[:2000]))
    return dt, root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--failover", type=int, default=1000)
    ap.add_argument("--arrays", help="keep the arrays in this directory (set up when missing,"
                    " reused when present) to compare builds on the same data")
    ap.add_argument("--no-failover", action="store_true",
                    help="only discoverDevices (leaves the arrays as they were)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    command = os.path.join(build, "sra", "command.pl")
    setup = os.path.join(build, "bin", "bench_sra_setup")
    if a.arrays:
        tmp = os.path.abspath(a.arrays)
        reuse = os.path.exists(os.path.join(tmp, "solo-keys.txt"))
        os.makedirs(tmp, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="replun-bench-sra-",
                               dir=os.environ.get("TMPDIR", "/tmp"))
        reuse = False
    rows, failed = [], False
    t_setup = None
    try:
        grouped = a.devices - a.failover
        t0 = time.monotonic()
        if not reuse:
            subprocess.run([setup, tmp, str(grouped), str(a.failover)], check=True,
                           stdout=subprocess.DEVNULL)
            t_setup = time.monotonic() - t0
        keys = open(os.path.join(tmp, "solo-keys.txt")).read().split()
        for site, peer in (("A", "benchB"), ("B", "benchA")):
            arr = "bench" + site
            best = None
            for _ in range(3):
                dt, root = run_sra(command, tmp, site, "discoverDevices",
                                   "<DiscoverDevicesParameters><ArrayId>%s</ArrayId><PeerArrayId>"
                                   "%s</PeerArrayId></DiscoverDevicesParameters>" % (arr, peer))
                best = dt if best is None else min(best, dt)
            n = len(list(root.iter(Q + ("SourceDevice" if site == "A" else "TargetDevice"))))
            ok = best <= 1.0 and n >= a.devices
            failed |= not ok
            rows.append(("discoverDevices at site %s (%d devices reported)" % (site, n), best,
                         "<= 1 s", ok))
        if a.no_failover:
            return report(a, rows, failed, t_setup)
        body = "<FailoverParameters><ArrayId>benchB</ArrayId><TargetDevices>%s</TargetDevices>" \
               "</FailoverParameters>" % "".join('<TargetDevice key="%s"/>' % k for k in keys)
        dt, root = run_sra(command, tmp, "B", "failover", body)
        promoted = sum(1 for e in root.iter(Q + "TargetDevice") if e.get("state") == "read-write")
        ok = dt <= 10.0 and promoted == len(keys)
        failed |= not ok
        rows.append(("failover of %d standalone devices (%d promoted)" % (len(keys), promoted),
                     dt, "<= 10 s", ok))
        dt2, root = run_sra(command, tmp, "B", "failover", body)
        rows.append(("failover repeated (idempotent, %d devices)" % len(keys), dt2, "-", True))
    finally:
        if not a.arrays:
            shutil.rmtree(tmp, ignore_errors=True)
    return report(a, rows, failed, t_setup)


def report(a, rows, failed, t_setup):
    print()
    print("### SRA (replun-sra through perl command.pl, embedded file array)")
    print()
    if t_setup is not None:
        print("Setup through libreplun: %d replicated LUNs (%d in groups of 100, %d standalone,"
              " synced) in %.1f s." % (a.devices, a.devices - a.failover, a.failover, t_setup))
    else:
        print("Arrays reused from %s." % os.path.abspath(a.arrays))
    print()
    print("| operation | time | budget | result |")
    print("|---|---:|---|---|")
    for what, t, budget, ok in rows:
        print("| %s | %.3f s | %s | %s |" % (what, t, budget, "ok" if ok else "OVER BUDGET"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
