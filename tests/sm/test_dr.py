#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# sm.dr: the recovery site sees the SR through ReplunSR alone. Site A (its own XAPI) has an SR
# with VDIs, data written through NBD and XAPI-side names; after a sync and a failover of the
# group at site B, a second XAPI does sr-introduce + pbd-create + pbd-plug + sr-scan on array B
# and gets the same VDI uuids, names, sizes and data; the replica is writable there. A VDI made
# at A after that sync has no replica (its target is made by the next sync): it does not come
# back at B, and when B is reversed it stays at A, data and metadata kept, out of the SR.
import os
import subprocess

from smtest import Env, check, done, luns, meta, tool, xapi_sim, xe

env = Env("dr")
xa, XA = env.sim("xapi-a", hostname="host-a")
MiB = 1024 * 1024

sr = XA("sr-create", "type=replun", "name-label=prod", "device-config:array=" + env.a,
        "device-config:peer=" + env.b)
srref = xa.db.by_uuid("SR", sr)
disks = {}
for name, size in (("web", 32), ("db", 48)):
    u = XA("vdi-create", "sr-uuid=" + sr, "name-label=" + name, "name-description=%s disk" % name,
           "virtual-size=%dMiB" % size)
    disks[u] = (name, size * MiB)
snap = XA("vdi-snapshot", "uuid=" + next(iter(disks)))
db_uuid = [u for u, (n, _) in disks.items() if n == "db"][0]
vref = xa.db.by_uuid("VDI", db_uuid)
att = XA.sm(srref, "vdi_attach", vdi=vref, args=["true"])
XA.sm(srref, "vdi_activate", vdi=vref, args=["true"])
w = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 2M", xe.nbd_uri(
    att["params_nbd"])], capture_output=True, text=True)
check(w.returncode == 0, "site A: 2 MiB of 0x5a written to VDI 'db' through NBD")
XA.sm(srref, "vdi_deactivate", vdi=vref)
XA.sm(srref, "vdi_detach", vdi=vref)

p = subprocess.run([os.environ["SM_TOOL"], "sync", env.a, sr], capture_output=True, text=True)
check(p.returncode == 0, "sync of the SR's group to site B %s" % p.stderr.strip())
late = XA("vdi-create", "sr-uuid=" + sr, "name-label=late", "virtual-size=4MiB")
check(luns(env.a, sr)[late]["pending"] and late not in luns(env.b, sr),
      "site A: a VDI made after the last sync has no replica yet (target pending)")
late_path = tool("path", env.a, late).strip()
with open(late_path, "r+b") as f:
    f.write(b"\x33" * MiB)
p = subprocess.run([os.environ["SM_TOOL"], "failover", env.b, sr], capture_output=True,
                   text=True)
check(p.returncode == 0, "failover of the group at site B %s" % p.stderr.strip())

# --- site B: a different XAPI, the SR introduced on array B ------------------------------------
xb, XB = env.sim("xapi-b", hostname="host-b")
probe = XB("sr-probe", "type=replun", "device-config:array=" + env.b)
check("<UUID>%s</UUID>" % sr in probe and "<name_label>prod</name_label>" in probe,
      "site B: sr_probe on array B finds the SR by uuid and name")
XB("sr-introduce", "uuid=" + sr, "name-label=prod", "type=replun", "content-type=user")
pbd = XB("pbd-create", "sr-uuid=" + sr, "host-uuid=" + xb.db.field("host", xb.host, "uuid"),
         "device-config:array=" + env.b, "device-config:peer=" + env.a)
XB("pbd-plug", "uuid=" + pbd)
XB("sr-scan", "uuid=" + sr)
srb = xb.db.by_uuid("SR", sr)
got = {xb.db.field("VDI", v, "uuid"): xb.db.get("VDI", v) for v in xb.db.find("VDI", SR=srb)}
check(set(got) == set(disks) | {snap},
      "site B sr_scan: the same VDI uuids come back (%d VDIs)" % len(got))
check(all(got[u]["name_label"] == n and got[u]["name_description"] == "%s disk" % n
          and got[u]["virtual_size"] == s for u, (n, s) in disks.items() if u in got),
      "site B: names, descriptions and sizes from the replicated metadata")
src = next(iter(disks))
check(snap in got and got[snap]["is_a_snapshot"] and got[snap]["read_only"]
      and got[snap]["snapshot_of"] == xb.db.by_uuid("VDI", src),
      "site B: the snapshot is still a read-only snapshot of the same VDI")
check(all(got[u]["location"] == u for u in got), "site B: locations are the VDI uuids")
check(late not in got, "site B: the VDI made after the last sync is not brought back")

vb = xb.db.by_uuid("VDI", db_uuid)
attb = XB.sm(srb, "vdi_attach", vdi=vb, args=["true"])
XB.sm(srb, "vdi_activate", vdi=vb, args=["true"])
r = subprocess.run(["qemu-io", "-f", "raw", "-c", "read -P 0x5a 0 2M", xe.nbd_uri(
    attb["params_nbd"])], capture_output=True, text=True)
check(r.returncode == 0 and "Pattern verification failed" not in r.stdout,
      "site B: the data written at site A is read through NBD")
w = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x77 4M 1M", xe.nbd_uri(
    attb["params_nbd"])], capture_output=True, text=True)
check(w.returncode == 0, "site B: the promoted VDI is writable")
XB.sm(srb, "vdi_deactivate", vdi=vb)
XB.sm(srb, "vdi_detach", vdi=vb)
nv = XB("vdi-create", "sr-uuid=" + sr, "name-label=new at B", "virtual-size=8MiB")
check(nv in luns(env.b, sr), "site B: a new VDI can be created in the failed-over SR")

# --- an unreadable array at B never empties the SR -------------------------------------------
before = len(xb.db.find("VDI", SR=srb))
os.rename(env.b, env.b + ".gone")
try:
    XB("sr-scan", "uuid=" + sr)
    failed = False
except xapi_sim.Failure:
    failed = True
os.rename(env.b + ".gone", env.b)
check(failed and len(xb.db.find("VDI", SR=srb)) == before,
      "site B: sr_scan with the array gone fails and keeps every VDI record")
check(tool("group", env.b, sr).split()[2] in ("promoted-target", "source"),
      "site B: the group is promoted")

# --- site A returns; reverse at B: A's never-replicated VDI leaves the SR, kept at A ----------
p = subprocess.run([os.environ["SM_TOOL"], "reverse", env.b, sr], capture_output=True,
                   text=True)
check(p.returncode == 0, "reverse at site B with a never-replicated VDI at A %s"
      % p.stderr.strip())
with open(tool("path", env.a, late).strip(), "rb") as f:
    late_data = f.read(MiB)
check(late not in luns(env.a, sr) and late_data == b"\x33" * MiB
      and meta(env.a, late).get("vdi.name_label") == "late",
      "site A: the never-replicated VDI's LUN left the SR's group, data and metadata kept")
check(all(v["state"] == "target" for v in luns(env.a, sr).values())
      and set(luns(env.a, sr)) == set(luns(env.b, sr)),
      "site A: every other VDI of the SR is now a target of site B")

check(not xa.violations and not xb.violations, "no XenAPI protocol violation by the plugin")
done()
