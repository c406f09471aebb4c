#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# sm.commands: every SR and VDI command of ReplunSR through the XAPI simulator, checking the
# array (LUNs, metadata, replication targets) and XAPI's database after each step, plus the
# fault paths (unknown VDI, no session, XAPI unreachable, unreadable array, non-empty SR).
import os
import uuid as uuidlib

from smtest import (Env, check, done, luns, meta, parse, run_raw, sync, tool, valgrind_reason,
                    valgrind_wrapper, xapi_doc, xapi_sim)

env = Env("commands")
x, X = env.sim()
db = x.db


def fails(fn, *args, code=None, **kw):
    try:
        fn(*args, **kw)
    except xapi_sim.Failure as f:
        return f if code is None or f.code == code else None
    return None


def vdi_rec(uuid):
    return db.get("VDI", db.by_uuid("VDI", uuid))


MiB = 1024 * 1024
A, B = "file://" + env.a, env.b

# --- sr_create / sr_attach ------------------------------------------------------------------
sr = X("sr-create", "type=replun", "name-label=Sales & Co <DR>", "name-description=tier 1",
       "device-config:array=" + A, "device-config:peer=" + B, "device-config:rpo=300",
       "device-config:password=Sup3rSecret")
srref = db.by_uuid("SR", sr)
g = tool("group", env.a, sr).splitlines()
check(g[0].split()[0] == sr and g[0].split()[-1] == "300",
      "sr_create: consistency group named by the SR uuid, rpo 300 s (%s)" % g[0])
check("sm.name_label=Sales & Co <DR>" in g and "sm.name_description=tier 1" in g
      and "sm.type=replun" in g, "sr_create: SR name and description kept as group metadata")
pbd = db.find("PBD", SR=srref)[0]
check(db.field("PBD", pbd, "currently_attached"), "sr_create then PBD.plug (sr_attach) succeed")
X("pbd-unplug", "uuid=" + db.field("PBD", pbd, "uuid"))
X("pbd-plug", "uuid=" + db.field("PBD", pbd, "uuid"))
check(X.sm(srref, "sr_attach") is None and X.sm(srref, "sr_attach") is None,
      "sr_attach twice: idempotent")
dc = dict(db.field("PBD", pbd, "device_config"), rpo="600")
db.set("PBD", pbd, "device_config", dc)
X.sm(srref, "sr_attach")
check(tool("group", env.a, sr).splitlines()[0].split()[-1] == "600",
      "sr_attach with a new device_config:rpo updates the group's policy")
check(X.sm(srref, "sr_detach") is None and X.sm(srref, "sr_detach") is None,
      "sr_detach twice: idempotent")

# --- vdi_create ------------------------------------------------------------------------------
v1 = X("vdi-create", "sr-uuid=" + sr, "name-label=db & <logs>", "name-description=first disk",
       "type=user", "virtual-size=100MiB", "sm-config:app=postgres")
r1 = vdi_rec(v1)
la = luns(env.a, sr)
check(v1 in la and la[v1]["size"] == 100 * MiB, "vdi_create: LUN named by the VDI uuid, 100 MiB")
check(r1["location"] == v1 and r1["virtual_size"] == 100 * MiB and r1["SR"] == srref,
      "vdi_create: VDI.db_introduce with uuid = location, real virtual_size")
check(r1["name_label"] == "db & <logs>" and r1["sm_config"].get("app") == "postgres"
      and r1["sm_config"].get("replun_lun") == la[v1]["id"],
      "vdi_create: names and sm_config reach XAPI (%s)" % r1["sm_config"])
m1 = meta(env.a, v1)
check(m1.get("vdi.uuid") == v1 and m1.get("vdi.name_label") == "db & <logs>"
      and m1.get("vdi.name_description") == "first disk" and m1.get("vdi.type") == "user"
      and m1.get("vdi.read_only") == "false" and m1.get("vdi.sm_config.app") == "postgres",
      "vdi_create: VDI metadata stored with the LUN")
check(la[v1]["state"] == "source" and la[v1]["pending"] and luns(env.b, sr, True) == {},
      "vdi_create: LUN replicated, its target left to the next sync (source on A, pending; "
      "nothing made on B)")
# The answer of VDI.db_introduce is lost after XAPI made the record (a relay killed mid-call,
# a dropped connection): the record that is there is the call's result, not a failure.
x.lose_answer.add("VDI.db_introduce")
lost = X("vdi-create", "sr-uuid=" + sr, "name-label=lost answer", "virtual-size=4MiB")
check(not x.lose_answer and vdi_rec(lost)["location"] == lost
      and len(db.find("VDI", location=lost)) == 1,
      "vdi_create whose db_introduce answer is lost: succeeds with XAPI's one record")
X("vdi-destroy", "uuid=" + lost)
odd = X("vdi-create", "sr-uuid=" + sr, "name-label=odd", "virtual-size=1000000")
check(vdi_rec(odd)["virtual_size"] >= 1000000 and vdi_rec(odd)["virtual_size"] % MiB == 0,
      "vdi_create: size rounded up to whole MiB, never below the request")
f = fails(X.sm, srref, "vdi_create", args=[str(MiB), "dup", "", "", "false", xapi_sim.EPOCH, "",
                                        "false"], vdi_type="user", vdi_sm_config={}, vdi_uuid=v1)
check(f is not None and f.code == "SR_BACKEND_FAILURE_43" and len(luns(env.a, sr)) == 2,
      "vdi_create with the vdi_uuid of an existing VDI: VDIExists (43), nothing created (%s)"
      % (f,))
# LUN names are unique per array: a name taken in another group is VDIExists too
taken = str(uuidlib.uuid4())
tool("mklun", env.a, "not-this-sr", taken)
f = fails(X.sm, srref, "vdi_create", args=[str(MiB), "dup2", "", "", "false", xapi_sim.EPOCH, "",
                                        "false"], vdi_type="user", vdi_sm_config={}, vdi_uuid=taken)
check(f is not None and f.code == "SR_BACKEND_FAILURE_43" and len(luns(env.a, sr)) == 2
      and taken in luns(env.a, "not-this-sr"),
      "vdi_create with a vdi_uuid naming a LUN of another group: VDIExists (43), nothing "
      "created, the other LUN kept (%s)" % (f,))
tool("rmlun", env.a, taken)
f = fails(X, "vdi-create", "sr-uuid=" + sr, "name-label=zero", "virtual-size=0")
check(f is not None and f.code == "SR_BACKEND_FAILURE_79", "vdi_create of 0 bytes: VDISize (79)")

# --- vdi_snapshot / vdi_clone / vdi_update ----------------------------------------------------
s1 = X("vdi-snapshot", "uuid=" + v1)
rs, ms = vdi_rec(s1), meta(env.a, s1)
check(rs["read_only"] and rs["location"] == s1, "vdi_snapshot: new read-only VDI introduced")
check(ms.get("vdi.is_a_snapshot") == "true" and ms.get("vdi.snapshot_of") == v1
      and ms.get("vdi.read_only") == "true" and ms.get("vdi.snapshot_time", "").startswith("20"),
      "vdi_snapshot: snapshot-of, snapshot time, read-only stored with the LUN")
ls = luns(env.a, sr)
check(ls[s1]["read_only"] and ls[s1]["snapshot_of"] == ls[v1]["id"],
      "vdi_snapshot: array snapshot of the source LUN, read-only")
c1 = X("vdi-clone", "uuid=" + v1, "new-name-label=clone of db")
rc1, mc = vdi_rec(c1), meta(env.a, c1)
check(not rc1["read_only"] and mc.get("vdi.is_a_snapshot") == "false"
      and mc.get("vdi.name_label") == "clone of db",
      "vdi_clone: writable VDI; vdi_update stored XAPI's new name")
db.set("VDI", db.by_uuid("VDI", v1), "name_label", "renamed in XAPI")
X("vdi-update", "uuid=" + v1)
check(meta(env.a, v1).get("vdi.name_label") == "renamed in XAPI",
      "vdi_update: name changed in XAPI reaches the LUN metadata")

# --- the group's next sync makes the targets: same names, sizes and VDI metadata ---------------
la = luns(env.a, sr)
check(all(la[v]["pending"] for v in (v1, s1, c1, odd)),
      "vdi_snapshot, vdi_clone: their targets are left to the next sync too")
sync(env.a, sr)
la, lb = luns(env.a, sr), luns(env.b, sr)
check(sorted(lb) == sorted(la) and all(not la[v]["pending"] for v in la)
      and all(lb[v]["state"] == "target" and lb[v]["size"] == la[v]["size"] for v in la),
      "sync: one target per VDI on B, same name and size, no LUN left pending (%s)" % sorted(lb))
check(all(meta(env.b, v) == meta(env.a, v) for v in (v1, s1, c1)),
      "sync: the VDI metadata of the new VDIs reached their targets")

# --- vdi_create while the DR site (peer array) is down ----------------------------------------
os.rename(env.b, env.b + ".down")
try:
    dn = X("vdi-create", "sr-uuid=" + sr, "name-label=made while B is down",
           "virtual-size=8MiB")
    dsnap = X("vdi-snapshot", "uuid=" + dn)
finally:
    os.rename(env.b + ".down", env.b)
la = luns(env.a, sr)
check(dn in la and la[dn]["pending"] and dsnap in la and la[dsnap]["pending"]
      and dn not in luns(env.b, sr) and dsnap not in luns(env.b, sr),
      "vdi_create and vdi_snapshot succeed while the peer array is unreachable (pending targets)")
sync(env.a, sr)
lb = luns(env.b, sr)
check(dn in lb and lb[dn]["state"] == "target" and dsnap in lb
      and meta(env.b, dn).get("vdi.name_label") == "made while B is down"
      and not luns(env.a, sr)[dn]["pending"],
      "the first sync once the peer is back makes their targets, metadata included")

# --- vdi_resize --------------------------------------------------------------------------------
try:
    X("vdi-resize", "uuid=" + v1, "disk-size=200MiB")
    check(vdi_rec(v1)["virtual_size"] == 200 * MiB and luns(env.a, sr)[v1]["size"] == 200 * MiB,
          "vdi_resize: LUN grown, VDI.set_virtual_size called")
except xapi_sim.Failure as e:
    check(False, "vdi_resize: %s" % e)
f = fails(X, "vdi-resize", "uuid=" + v1, "disk-size=10MiB")
check(f is not None and f.code == "SR_BACKEND_FAILURE_110", "vdi_resize shrink: VDIResize (110)")

# --- unknown VDI -------------------------------------------------------------------------------
ghost = db.create("VDI", uuid="0e0e0e0e-1111-2222-3333-444444444444", SR=srref,
                  location="0e0e0e0e-1111-2222-3333-444444444444", name_label="ghost")
f = fails(X.sm, srref, "vdi_attach", vdi=ghost, args=["true"])
check(f is not None and f.code == "VDI_MISSING", "vdi_attach of a VDI with no LUN: VDI_MISSING")
f = fails(X.sm, srref, "vdi_snapshot", vdi=ghost, driver_params={})
check(f is not None and f.code == "VDI_MISSING", "vdi_snapshot of an unknown VDI: VDI_MISSING")
check(X.sm(srref, "vdi_delete", vdi=ghost) is None and not db.valid("VDI", ghost),
      "vdi_delete of a VDI whose LUN is gone: success (idempotent), record forgotten")

# --- vdi_epoch_begin/end, generate_config -----------------------------------------------------
vref = db.by_uuid("VDI", v1)
check(X.sm(srref, "vdi_epoch_begin", vdi=vref) is None
      and X.sm(srref, "vdi_epoch_end", vdi=vref) is None, "vdi_epoch_begin/end: nil")
cfg = X.sm(srref, "vdi_generate_config", vdi=vref)
check("vdi_attach_from_config" in cfg and v1 in cfg and "Sup3rSecret" not in cfg,
      "vdi_generate_config: an attach_from_config call, without the password")

# --- sr_update / sr_probe ----------------------------------------------------------------------
X("sr-update", "uuid=" + sr)
srrec = db.get("SR", srref)
check(srrec["physical_size"] > 0 and 0 < srrec["physical_utilisation"] <= srrec["physical_size"]
      and srrec["virtual_allocation"] >= 300 * MiB,
      "sr_update: physical_size, physical_utilisation, virtual_allocation set (%d %d %d)"
      % (srrec["physical_size"], srrec["physical_utilisation"], srrec["virtual_allocation"]))
db.set("SR", srref, "name_label", "Sales & Co <DR> renamed")
X("sr-update", "uuid=" + sr)
check("sm.name_label=Sales & Co <DR> renamed" in tool("group", env.a, sr).splitlines(),
      "sr_update: a name changed in XAPI reaches the group metadata")
db.set("SR", srref, "name_label", "Sales & Co <DR>")
X("sr-update", "uuid=" + sr)
probe = X("sr-probe", "type=replun", "device-config:array=" + A)
check("<SRlist>" in probe and "<UUID>%s</UUID>" % sr in probe
      and "<name_label>Sales &amp; Co &lt;DR&gt;</name_label>" in probe,
      "sr_probe: SRlist names the SR (uuid, escaped name)")
f = fails(X, "sr-probe", "type=replun", "device-config:array=" + env.tmp + "/none")
check(f is not None and f.code == "SR_BACKEND_FAILURE_47", "sr_probe of a missing array: 47")

# --- sr_scan -----------------------------------------------------------------------------------
X("vdi-forget", "uuid=" + v1)
stray = db.create("VDI", uuid="5a5a5a5a-1111-2222-3333-444444444444", SR=srref,
                  location="not-on-the-array", name_label="stray")
X("sr-scan", "uuid=" + sr)
check(db.find("VDI", uuid=v1) and vdi_rec(v1)["name_label"] == "renamed in XAPI"
      and vdi_rec(v1)["location"] == v1 and vdi_rec(v1)["virtual_size"] == 200 * MiB,
      "sr_scan: a forgotten VDI comes back with the same uuid, name and size")
check(not db.valid("VDI", stray), "sr_scan: a VDI whose LUN is gone is forgotten")
check(len(db.find("VDI", SR=srref)) == len(luns(env.a, sr)),
      "sr_scan: one VDI per LUN (%d)" % len(luns(env.a, sr)))
before = sorted(db.find("VDI", SR=srref))
os.rename(env.a, env.a + ".away")
f = fails(X, "sr-scan", "uuid=" + sr)
os.rename(env.a + ".away", env.a)
check(f is not None and f.code == "SR_BACKEND_FAILURE_40" and sorted(db.find("VDI", SR=srref))
      == before, "sr_scan of an unreadable array fails (40) and forgets nothing")

# --- vdi_introduce -----------------------------------------------------------------------------
X("vdi-forget", "uuid=" + c1)
newu = "7e7e7e7e-1111-2222-3333-444444444444"
got = X("vdi-introduce", "sr-uuid=" + sr, "location=" + c1, "uuid=" + newu)
check(got == newu and vdi_rec(newu)["location"] == c1
      and meta(env.a, c1).get("vdi.uuid") == newu,
      "vdi_introduce: the LUN comes back under the new uuid, metadata updated")
f = fails(X, "vdi-introduce", "sr-uuid=" + sr, "location=no-such-lun")
check(f is not None and f.code == "SR_BACKEND_FAILURE_46", "vdi_introduce of no LUN: 46")

# --- no session / XAPI unreachable: faults and no LUN left behind ------------------------------
n_before = len(luns(env.a, sr))
members = {"host_ref": x.host, "command": "vdi_create",
           "args": [str(MiB), "x", "", "", "false", xapi_sim.EPOCH, "", "false"],
           "device_config": {"array": A, "peer": B}, "sr_ref": srref, "vdi_type": "user",
           "sr_uuid": sr, "vdi_sm_config": {}}
rc, out, err = run_raw(xapi_doc(members), env.env(REPLUN_XAPI_SOCKET=x.socket_path))
r = parse(out)
check(r[0] == "fault" and r[1] == 150, "vdi_create without session_ref: APISession (150)")
members["session_ref"] = x.sm_session(srref)
rc, out, err = run_raw(xapi_doc(members), env.env(REPLUN_XAPI_SOCKET=env.tmp + "/down.sock"))
r = parse(out)
check(r[0] == "fault" and r[1] == 150 and "down.sock" in r[2],
      "vdi_create with XAPI unreachable: APISession (150) naming the socket")
check(len(luns(env.a, sr)) == n_before, "failed vdi_create rolled its LUN back")

# --- sr_delete ---------------------------------------------------------------------------------
X("pbd-unplug", "uuid=" + db.field("PBD", pbd, "uuid"))
f = fails(X, "sr-destroy", "uuid=" + sr)
check(f is not None and f.code == "SR_NOT_EMPTY", "sr_delete of an SR with LUNs: SR_NOT_EMPTY")
X("pbd-plug", "uuid=" + db.field("PBD", pbd, "uuid"))
for v in list(db.find("VDI", SR=srref)):
    X("vdi-destroy", "uuid=" + db.field("VDI", v, "uuid"))
check(luns(env.a, sr) == {} and luns(env.b, sr) == {},
      "vdi_delete: every LUN and its replica gone")
X("pbd-unplug", "uuid=" + db.field("PBD", pbd, "uuid"))
X("sr-destroy", "uuid=" + sr)
gone = tool("group", env.a, sr, check_rc=False) == ""
check(gone and not os.path.exists(os.path.join(env.lock, sr)),
      "sr_delete: group and lock directory removed")
rc, out, err = run_raw(xapi_doc({"host_ref": x.host, "command": "sr_delete", "args": [],
                                 "device_config": {"array": A}, "session_ref": "OpaqueRef:x",
                                 "sr_ref": srref, "sr_uuid": sr}), env.env())
check(parse(out)[0] == "ok", "sr_delete again: idempotent success")

# --- valgrind over the calls that use the XenAPI client and the array ------------------------
why = valgrind_reason()
if why is None:
    x.sm_plugins["replun"] = valgrind_wrapper(env)
    try:
        sr2 = X("sr-create", "type=replun", "name-label=vg", "device-config:array=" + A)
        v2 = X("vdi-create", "sr-uuid=" + sr2, "name-label=vg", "virtual-size=8MiB")
        X("vdi-snapshot", "uuid=" + v2)
        X("sr-scan", "uuid=" + sr2)
        X("vdi-destroy", "uuid=" + v2)
        check(True, "valgrind memcheck clean: sr_create, sr_attach, vdi_create, vdi_snapshot, "
              "vdi_update, sr_scan, sr_update, vdi_delete")
    except xapi_sim.Failure as e:
        check(False, "valgrind memcheck clean over XenAPI calls: %s" % (e,))
else:
    print("SKIP valgrind: %s" % why)

check(not x.violations, "no XenAPI protocol violation by the plugin: %s" % x.violations[:2])
done()
