#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# sm.concurrency: several ReplunSR processes on one SR at once, as XAPI runs them (different
# VDIs and hosts concurrently): parallel creates and snapshots with a scan, the SR lock (fcntl
# under REPLUN_LOCK_DIR) waited for and timed out, and two hosts racing to write one VDI.
import fcntl
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from smtest import Env, check, done, luns, parse, run_raw, xapi_doc, xapi_sim

env = Env("concurrency")
x, X = env.sim()
db = x.db
N = 8

sr = X("sr-create", "type=replun", "name-label=busy", "device-config:array=" + env.a,
       "device-config:peer=" + env.b)
srref = db.by_uuid("SR", sr)


def attempt(fn):
    try:
        return ("ok", fn())
    except xapi_sim.Failure as f:
        return ("fail", f)


# --- N vdi_create at once ---------------------------------------------------------------------
with ThreadPoolExecutor(N) as pool:
    res = list(pool.map(lambda i: attempt(lambda: X("vdi-create", "sr-uuid=" + sr,
                                                     "name-label=disk%d" % i,
                                                     "virtual-size=%dMiB" % (8 + i))),
                        range(N)))
ok = [r[1] for r in res if r[0] == "ok"]
check(len(ok) == N, "%d parallel vdi_create: all succeed (%s)" % (N, [r for r in res
                                                                     if r[0] != "ok"][:2]))
la = luns(env.a, sr)
check(len(set(ok)) == N and set(ok) <= set(la) and len(la) == N,
      "%d distinct VDIs, one LUN each" % N)
names = sorted(db.field("VDI", db.by_uuid("VDI", u), "name_label") for u in ok)
check(names == sorted("disk%d" % i for i in range(N)), "every VDI has its own name")

# --- snapshots, creates and a scan at once -------------------------------------------------
jobs = [lambda u=u: X("vdi-snapshot", "uuid=" + u) for u in ok[:4]]
jobs += [lambda: X("sr-scan", "uuid=" + sr)]
jobs += [lambda i=i: X("vdi-create", "sr-uuid=" + sr, "name-label=late%d" % i,
                       "virtual-size=4MiB") for i in range(3)]
with ThreadPoolExecutor(len(jobs)) as pool:
    res = list(pool.map(lambda j: attempt(j), jobs))
check(all(r[0] == "ok" for r in res), "4 snapshots + 3 creates + sr_scan at once: all succeed %s"
      % [str(r[1]) for r in res if r[0] != "ok"][:2])
X("sr-scan", "uuid=" + sr)
la = luns(env.a, sr)
vdis = {db.field("VDI", v, "location") for v in db.find("VDI", SR=srref)}
check(len(la) == N + 7 and vdis == set(la),
      "after the storm: %d LUNs, XAPI's VDIs match them one to one" % len(la))

# --- the SR lock: waited for, and timed out ------------------------------------------------
lockfile = os.path.join(env.lock, sr, "sr")
members = {"host_ref": x.host, "command": "sr_attach", "args": [],
           "device_config": {"array": env.a}, "session_ref": x.sm_session(srref),
           "sr_ref": srref, "sr_uuid": sr}
doc = xapi_doc(members)
fd = os.open(lockfile, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
t0 = time.monotonic()
rc, out, err = run_raw(doc, env.env(REPLUN_LOCK_TIMEOUT="1"))
waited = time.monotonic() - t0
r = parse(out)
check(r[0] == "fault" and r[1] == 37 and 0.9 < waited < 5,
      "SR lock held elsewhere, REPLUN_LOCK_TIMEOUT=1: LockErr (37) after %.1f s" % waited)
result = {}


def blocked_call():
    t = time.monotonic()
    result["r"] = parse(run_raw(doc, env.env())[1])
    result["t"] = time.monotonic() - t


th = threading.Thread(target=blocked_call)
th.start()
time.sleep(0.5)
check(th.is_alive(), "with the SR lock held, sr_attach waits")
fcntl.lockf(fd, fcntl.LOCK_UN)
os.close(fd)
th.join(30)
check(result.get("r") == ("ok", None) and result["t"] >= 0.5,
      "sr_attach proceeds once the lock is released (%.2f s)" % result.get("t", -1))

# --- two hosts race to activate one VDI read-write -----------------------------------------
hb = x.add_host("host-b")
db.create("PBD", host=hb, SR=srref, device_config={"array": env.a, "peer": env.b},
          currently_attached=True)
vref = db.by_uuid("VDI", ok[0])
with ThreadPoolExecutor(2) as pool:
    res = list(pool.map(lambda h: attempt(lambda: X.sm(srref, "vdi_activate", vdi=vref,
                                                       args=["true"], host=h)),
                        [x.host, hb]))
winners = [i for i, r in enumerate(res) if r[0] == "ok"]
losers = [r[1] for r in res if r[0] != "ok"]
check(len(winners) == 1 and len(losers) == 1 and losers[0].code == "VDI_IN_USE",
      "two hosts activating one VDI read-write at once: one wins, the other gets VDI_IN_USE")
if winners:
    X.sm(srref, "vdi_deactivate", vdi=vref, host=[x.host, hb][winners[0]])

check(not x.violations, "no XenAPI protocol violation by the plugin: %s" % x.violations[:2])
done()
