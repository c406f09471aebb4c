#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# srm_sim.py - an SRM simulator: drives `perl command.pl` of the replun SRA at two sites (two
# paired file arrays) through SRM's end-to-end workflows (load, discovery with cross-site
# correlation, test, planned migration, reprotect, failback, disaster recovery, restore), checks
# data by checksum between steps, bytes moved by reverse/restore, idempotency, interrupted runs
# and bad input. Every response is validated against docs/sra-v2.xsd.
#
#   srm_sim.py --sra-dir BUILD/sra --replun BUILD/bin/replun --xsd docs/sra-v2.xsd SCENARIO
#   SCENARIO: load | workflows | idempotency | bad-input | sync-warning
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sralib import (NS, Q, RPNS, Env, Fail, Site, check, err_code, file_sum, items, ok,  # noqa
                    params, q, tgt, warn_codes, write_data, CHECKS)

MiB = 1 << 20
GROUP = "sales"


class World:
    """Two sites, their devices and the SRM-side knowledge (ids, keys, settings)."""

    def __init__(self, env):
        self.env = env
        self.A = Site(env, "siteA", "siteA")
        self.B = Site(env, "siteB", "siteB")
        self.A.peer, self.B.peer = self.B, self.A
        self.ids = {}  # site name -> {"group": [ids], "solo": id}
        self.settings = {}  # "group"/device id -> ReplicationSettings XML passed back

    def setup(self, n_group=2, size="32M"):
        env, A, B = self.env, self.A, self.B
        print("setup: arrays %s and %s in %s" % (A.id, B.id, env.tmp), flush=True)
        env.cli("array", "init", A.path, "--id", A.id)
        env.cli("array", "init", B.path, "--id", B.id)
        env.cli("array", "pair", A.path, B.path)
        grp = [env.cli("lun", "create", A.path, "srm-db%02d" % i, size, "--group", GROUP,
                       "--replicate") for i in range(1, n_group + 1)]
        solo = env.cli("lun", "create", A.path, "srm-solo", size, "--replicate")
        self.other = env.cli("lun", "create", A.path, "other-vol", "1M", "--replicate")
        self.local = env.cli("lun", "create", A.path, "srm-local", "1M")
        # Replication the other way too (bi-directional pair): B -> A.
        self.back = env.cli("lun", "create", B.path, "srm-back", "1M", "--replicate")
        self.ids[A.name] = {"group": grp, "solo": solo}
        # Keys at B = the targets' ids at B, found by their (shared) names.
        lb = {d["name"]: d["id"] for d in self.lun_list(B)}
        self.ids[B.name] = {"group": [lb["srm-db%02d" % i] for i in range(1, n_group + 1)],
                            "solo": lb["srm-solo"]}
        check(len(set(self.ids[B.name]["group"])) == n_group, "targets created at B")
        # Data before the initial sync: 8 MiB per LUN at 16 MiB, so a full copy is large and
        # an incremental one visibly small.
        if size == "32M":
            for i, d in enumerate(self.all(A)):
                write_data(self.path(A, d), 16 * MiB, bytes(range(256)) * (32 * 1024) +
                           bytes([0x40 + i]) * (4 * MiB))

    def lun_list(self, site):
        import json
        return json.loads(self.env.cli("lun", "list", site.path, "--json"))

    def all(self, site):
        return self.ids[site.name]["group"] + [self.ids[site.name]["solo"]]

    def path(self, site, dev):
        return self.env.cli("lun", "path", site.path, dev)

    def sums(self, site):
        return [file_sum(self.path(site, d)) for d in self.all(site)]

    def write(self, site, tag, offset):
        # Unique bytes every time, so no write repeats what the other site already holds.
        self.seq = getattr(self, "seq", 0) + 1
        unit = tag + b"#%06d#" % self.seq
        data = tag + (unit * ((64 * 1024) // len(unit) + 1))[:64 * 1024 - len(tag)]
        for d in self.all(site):
            write_data(self.path(site, d), offset, data)
        return len(data) * len(self.all(site))


# ---------------------------------------------------------------------------------------------
# Load and discovery

ALL_COMMANDS = {"queryInfo", "queryStrings", "queryErrorDefinitions", "queryCapabilities",
                "queryConnectionParameters", "discoverArrays", "discoverDevices",
                "queryReplicationSettings", "queryDeviceDetails", "queryRecoveryPoints",
                "syncOnce", "querySyncStatus", "checkTestFailoverStart", "testFailoverStart",
                "testFailoverStop", "checkFailover", "prepareFailover", "failover",
                "prepareReverseReplication", "reverseReplication", "prepareRestoreReplication",
                "restoreReplication"}


def load(w, site):
    print("== load SRA at %s" % site.name, flush=True)
    info = site.sra("queryInfo")
    uuid = info.findtext(q("AdapterInfo/Uuid"))
    check(re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", uuid or ""),
          "queryInfo: RFC 4122 UUID %s" % uuid)
    caps = site.sra("queryCapabilities")
    cmds = {c.get("name"): c for c in caps.findall(q("AdapterCapabilities/Commands/Command"))}
    check(set(cmds) == ALL_COMMANDS, "queryCapabilities: every spec command advertised")
    for name, loc in (("syncOnce", "source"), ("reverseReplication", "source"),
                      ("restoreReplication", "source")):
        check(cmds[name].findtext(Q + "ExecutionLocation") == loc,
              "queryCapabilities: %s runs at the %s" % (name, loc))
    feats = caps.find(q("AdapterCapabilities/Features"))
    check(feats.find(Q + "ConsistencyGroups") is not None and
          feats.findtext(Q + "DeviceIdentification") == "wwn",
          "queryCapabilities: consistency groups, wwn identification")
    conn = site.sra("queryConnectionParameters")
    c = conn.find(q("AdapterConnectionParameters/Connection"))
    check(c is not None and len(conn.findall(q("AdapterConnectionParameters/Connection"))) == 1,
          "queryConnectionParameters: one connection")
    check(c.find(q("Addresses/Address")).get("id") == "arrayUri" and
          c.find(Q + "Username") is not None and c.find(Q + "Password") is not None,
          "queryConnectionParameters: array URI address, username, password")
    opq = c.find(q("Opagues/Opaque"))
    check(opq.get("id") == "volumeNameFilter" and opq.get("optional") == "true",
          "queryConnectionParameters: optional volumeNameFilter")
    defs = site.sra("queryErrorDefinitions")
    w.env.defs = {d.get("code"): set(re.findall(r"\{(\w+)\}", d.findtext(Q + "Description") +
                                                d.findtext(Q + "FixHint")))
                  for d in defs.iter() if d.tag in (Q + "ErrorDefinition",
                                                    Q + "WarningDefinition")}
    codes = [int(d.get("code")) for d in defs.findall(q("ErrorDefinitions/ErrorDefinition"))]
    wcodes = [int(d.get("code")) for d in defs.findall(q("WarningDefinitions/WarningDefinition"))]
    check(codes and min(codes) >= 1000 and min(wcodes) >= 1000, "error definitions >= 1000")
    for d in defs.findall(q("ErrorDefinitions/ErrorDefinition")) + \
            defs.findall(q("WarningDefinitions/WarningDefinition")):
        if not (d.findtext(Q + "Description") and d.findtext(Q + "FixHint")):
            raise Fail("definition %s lacks text" % d.get("code"))
    check(True, "every definition has a Description and a FixHint")
    # Every stringId emitted must be translated in every advertised locale.
    used = set()
    for root in (info, caps, conn, defs):
        for e in root.iter():
            if e.get("stringId"):
                used.add(e.get("stringId"))
    locales = [l.get("id") for l in cmds["queryStrings"].findall(q("Locales/Locale"))]
    check(set(locales) == {"en", "de", "fr", "ja", "zh-CN"}, "locales en de fr ja zh-CN")
    texts = {}
    for loc in locales:
        s = site.sra("queryStrings", "<QueryStringsParameters><Locale>%s</Locale>"
                     "</QueryStringsParameters>" % loc)
        st = s.find(Q + "Strings")
        check(st.get("locale") == loc, "queryStrings %s: locale echoed" % loc)
        got = {x.get("id"): x.text for x in st.findall(Q + "String")}
        missing = used - set(got)
        check(not missing, "queryStrings %s: all %d stringIds translated%s" % (
            loc, len(used), (" (missing %s)" % sorted(missing)) if missing else ""))
        texts[loc] = got
    differ = sum(1 for k in texts["en"] if texts["de"].get(k) != texts["en"][k])
    check(differ > len(texts["en"]) // 2, "queryStrings de: real translations (%d differ)" % differ)
    check(all("{" not in texts[l]["Description1001"] or "{Object}" in texts[l]["Description1001"]
              for l in locales), "placeholders kept in translations")
    site.sra("queryStrings", "<QueryStringsParameters><Locale>xx-YY</Locale>"
             "</QueryStringsParameters>", expect_error=101)
    return uuid


def discover(site):
    return site.sra("discoverDevices", "<DiscoverDevicesParameters><ArrayId>%s</ArrayId>"
                    "<PeerArrayId>%s</PeerArrayId></DiscoverDevicesParameters>" % (
                        site.id, site.peer.id))


def correlate(w, src, dst, state="read-write"):
    """SRM's cross-site check: sources at src are targets at dst, same keys and membership."""
    ds, dt = discover(src), discover(dst)
    cg = items(ds, "ReplicatedDevices/ConsistencyGroups/ConsistencyGroup", "id")
    tg = items(dt, "ReplicatedDevices/TargetGroups/TargetGroup", "key")
    check(GROUP in cg and cg[GROUP].get("state") == state,
          "discoverDevices at %s: group %s is a source, %s" % (src.name, GROUP, state))
    check(cg[GROUP].find(Q + "TargetGroup").get("key") in tg,
          "discoverDevices at %s: target group key %s reported at %s" % (
              src.name, GROUP, dst.name))
    src_keys = sorted(d.find(Q + "TargetDevice").get("key")
                      for d in cg[GROUP].findall(q("SourceDevices/SourceDevice")))
    dst_keys = sorted(d.get("key") for d in tg[GROUP].findall(q("TargetDevices/TargetDevice")))
    check(src_keys == dst_keys and src_keys == sorted(w.ids[dst.name]["group"]),
          "cross-site: group membership equal at both sites (%d devices)" % len(src_keys))
    src_ids = sorted(d.get("id") for d in cg[GROUP].findall(q("SourceDevices/SourceDevice")))
    check(src_ids == sorted(w.ids[src.name]["group"]),
          "cross-site: source ids are the array's own ids (replun lun list)")
    for d in cg[GROUP].findall(q("SourceDevices/SourceDevice")):
        wwn = d.findtext(q("Identity/Wwn"))
        if state == "read-write":
            check(wwn and re.match(r"^[0-9A-F]{2}(:[0-9A-F]{2})+$", wwn),
                  "source %s has a WWN identity %s" % (d.get("id"), wwn))
    sd = items(ds, "ReplicatedDevices/SourceDevices/SourceDevice", "id")
    td = items(dt, "ReplicatedDevices/TargetDevices/TargetDevice", "key")
    solo = w.ids[src.name]["solo"]
    check(solo in sd and sd[solo].find(Q + "TargetDevice").get("key") == w.ids[dst.name]["solo"]
          and w.ids[dst.name]["solo"] in td,
          "cross-site: standalone source %s <-> target %s" % (solo, w.ids[dst.name]["solo"]))
    check(w.local not in sd and w.local not in td, "non-replicated LUN not reported")
    return ds, dt


def sync(w, site, wait=True, groups=(GROUP,), devices=None):
    devices = [w.ids[site.name]["solo"]] if devices is None else devices
    r = site.sra("syncOnce", params("SyncOnceParameters", site.id, site.peer.id, groups, devices))
    sess = {}
    for path, attr in (("SyncOnceResults/ConsistencyGroups/ConsistencyGroup", "id"),
                       ("SyncOnceResults/SourceDevices/SourceDevice", "id")):
        for k, e in items(r, path, attr).items():
            ds = e.find(Q + "DeviceSync")
            check(ds is not None and ds.get("status") in ("inProgress", "complete"),
                  "syncOnce at %s: %s session %s %s" % (site.name, k, ds.get("id") if ds is
                                                         not None else "-",
                                                         ds.get("status") if ds is not None
                                                         else err_code(e)))
            sess[k] = ds.get("id")
    if wait:
        poll(w, site, sess, groups)
    return sess


def poll(w, site, sess, groups=(GROUP,)):
    deadline = time.time() + 120
    while True:
        g = [(k, "<ConsistencyGroup id=\"%s\" syncId=\"%s\"/>" % (k, v)) for k, v in sess.items()
             if k in groups]
        d = [(k, "<SourceDevice id=\"%s\" syncId=\"%s\"/>" % (k, v)) for k, v in sess.items()
             if k not in groups]
        body = "<QuerySyncStatusParameters><ArrayId>%s</ArrayId><PeerArrayId>%s</PeerArrayId>" % (
            site.id, site.peer.id)
        if g:
            body += "<ConsistencyGroups>%s</ConsistencyGroups>" % "".join(x for _, x in g)
        if d:
            body += "<SourceDevices>%s</SourceDevices>" % "".join(x for _, x in d)
        r = site.sra("querySyncStatus", body + "</QuerySyncStatusParameters>")
        res = {}
        res.update(items(r, "QuerySyncStatusResults/ConsistencyGroups/ConsistencyGroup", "id"))
        res.update(items(r, "QuerySyncStatusResults/SourceDevices/SourceDevice", "id"))
        check(set(res) == set(sess), "querySyncStatus answers every item")
        for k, e in res.items():
            if not ok(e):
                raise Fail("querySyncStatus %s: error %s" % (k, err_code(e)))
        states = {k: e.find(Q + "DeviceSync").get("status") for k, e in res.items()}
        if all(s == "complete" for s in states.values()):
            check(all(e.findtext(q("DeviceSync/Progress")) == "100" for e in res.values()),
                  "querySyncStatus at %s: complete, progress 100" % site.name)
            return
        for k, e in res.items():
            if states[k] == "inProgress":
                p = int(e.findtext(q("DeviceSync/Progress")) or "0")
                check(0 <= p <= 100, "querySyncStatus %s in progress: %d%%" % (k, p))
        if time.time() > deadline:
            raise Fail("sync at %s did not complete" % site.name)
        time.sleep(0.2)


def bytes_moved(w, site, sessions):
    import json
    total = 0
    for s in sessions.values():
        j = json.loads(w.env.cli("sync-status", site.path, "--session", s, "--json"))
        total += int(j["bytes_transferred"])
    return total


# ---------------------------------------------------------------------------------------------
# Workflows (prot = the site holding the sources, rec = the one holding the targets)

def test_failover(w, prot, rec):
    print("== test failover at %s" % rec.name, flush=True)
    g, solo = w.ids[rec.name]["group"], w.ids[rec.name]["solo"]
    # Two recovery points: the data now (replicated), then newer data synced on top of it.
    check(w.sums(prot) == w.sums(rec), "before the test: %s == %s" % (rec.name, prot.name))
    older_sums = w.sums(prot)
    w.write(prot, b"NEWER-POINT", 5 * MiB)
    sync(w, prot)
    before = w.sums(prot)
    check(before != older_sums and w.sums(rec) == before,
          "a newer recovery point synced on top of the older one")
    r = rec.sra("queryRecoveryPoints", tgt("QueryRecoveryPointsParameters", rec.id, [GROUP],
                                           [solo]))
    rps = items(r, "QueryRecoveryPointsResults/TargetGroups/TargetGroup", "key")
    check(ok(rps[GROUP]) and len(rps[GROUP].findall(q("RecoveryPoints/RecoveryPoint"))) >= 2,
          "queryRecoveryPoints: group %s has (at least) two recovery points" % GROUP)
    r = rec.sra("checkTestFailoverStart", tgt("CheckTestFailoverStartParameters", rec.id,
                                              [GROUP], [solo]))
    res = items(r, "CheckTestFailoverStartResults/TargetGroups/TargetGroup", "key")
    res.update(items(r, "CheckTestFailoverStartResults/TargetDevices/TargetDevice", "key"))
    check(all(e.find(Q + "Success") is not None for e in res.values()) and len(res) == 2,
          "checkTestFailoverStart: ready")
    latest = rps[GROUP].find(q("RecoveryPoints/RecoveryPoint")).get("id")
    older = [e.get("id") for e in rps[GROUP].findall(q("RecoveryPoints/RecoveryPoint"))][1]
    # An unknown recovery point: a per-item recovery point error, nothing made.
    r = rec.sra("testFailoverStart", tgt("TestFailoverStartParameters", rec.id, [
        (GROUP, '<RecoveryPoint id="rp-1-dead"/>')]))
    e = items(r, "TestFailoverStartResults/TargetGroups/TargetGroup", "key")[GROUP]
    check(err_code(e) == "1027", "testFailoverStart at an unknown recovery point: error 1027 "
          "(got %s)" % err_code(e))
    dd = discover(rec)
    tg = items(dd, "ReplicatedDevices/TargetGroups/TargetGroup", "key")[GROUP]
    check(tg.find(Q + "Snapshot") is None, "... and no test copy was made")
    # The older point, still held (retention 3): copies hold the older data.
    r = rec.sra("testFailoverStart", tgt("TestFailoverStartParameters", rec.id, [
        (GROUP, '<RecoveryPoint id="%s"/>' % older)]))
    e = items(r, "TestFailoverStartResults/TargetGroups/TargetGroup", "key")[GROUP]
    check(ok(e) and e.find(q("Snapshot/RecoveryPoint")).get("id") == older,
          "testFailoverStart at the older recovery point %s: success, copy of that point" %
          older)
    osnaps = {x.get("key"): x.find(Q + "Snapshot").get("id")
              for x in e.findall(q("Snapshot/TargetDevices/TargetDevice"))}
    check(sorted(osnaps) == sorted(g) and
          [file_sum(w.path(rec, osnaps[d])) for d in g] == older_sums[:len(g)],
          "test copies of the older point hold the older data (checksums)")
    dd = discover(rec)
    tg = items(dd, "ReplicatedDevices/TargetGroups/TargetGroup", "key")[GROUP]
    check(tg.find(q("Snapshot/RecoveryPoint")) is not None and
          tg.find(q("Snapshot/RecoveryPoint")).get("id") == older,
          "discoverDevices during the test: the copy's recovery point is the older one")
    r = rec.sra("testFailoverStop", tgt("TestFailoverStopParameters", rec.id, [GROUP]))
    e = items(r, "TestFailoverStopResults/TargetGroups/TargetGroup", "key")[GROUP]
    check(ok(e), "testFailoverStop of the older point's test: success")
    r = rec.sra("testFailoverStart", tgt("TestFailoverStartParameters", rec.id, [
        (GROUP, '<RecoveryPoint id="%s"/>' % latest)], [solo]))
    tgr = items(r, "TestFailoverStartResults/TargetGroups/TargetGroup", "key")[GROUP]
    check(tgr.find(q("Snapshot/RecoveryPoint")) is not None and
          tgr.find(q("Snapshot/RecoveryPoint")).get("id") == latest,
          "testFailoverStart at the latest recovery point %s (named in the request)" % latest)
    tdr = items(r, "TestFailoverStartResults/TargetDevices/TargetDevice", "key")[solo]
    check(ok(tgr) and ok(tdr), "testFailoverStart: group and device succeed")
    snaps = {e.get("key"): e.find(Q + "Snapshot").get("id")
             for e in tgr.findall(q("Snapshot/TargetDevices/TargetDevice"))}
    snaps[solo] = tdr.find(Q + "Snapshot").get("id")
    check(sorted(snaps) == sorted(g + [solo]) and all(snaps.values()),
          "testFailoverStart: one writable copy per device")
    check(tgr.find(q("Snapshot/RecoveryPoint/Time")) is not None and
          tdr.find(q("Snapshot/RecoveryPoint/Time")) is not None,
          "testFailoverStart: recovery point with time")
    wwns = [e.findtext(q("Snapshot/Identity/Wwn"))
            for e in tgr.findall(q("Snapshot/TargetDevices/TargetDevice"))]
    wwns.append(tdr.findtext(q("Snapshot/Identity/Wwn")))
    check(len(wwns) == len(g) + 1 and all(wwns) and len(set(wwns)) == len(wwns),
          "testFailoverStart: every copy has its own WWN identity")
    copies = [file_sum(w.path(rec, snaps[d])) for d in g + [solo]]
    check(copies == before, "test copies hold the replicated data (checksums)")
    for d in g + [solo]:
        write_data(w.path(rec, snaps[d]), 0, b"TEST" * 4096)
    check(w.sums(prot) == before, "writing to test copies leaves the sources alone")
    dd = discover(rec)
    tg = items(dd, "ReplicatedDevices/TargetGroups/TargetGroup", "key")[GROUP]
    check(tg.find(Q + "Snapshot") is not None and tg.find(q("Snapshot/RecoveryPoint")) is not None,
          "discoverDevices during the test: group snapshot with recovery point")
    td = items(dd, "ReplicatedDevices/TargetDevices/TargetDevice", "key")[solo]
    check(td.find(Q + "Snapshot") is not None, "discoverDevices during the test: device snapshot")
    r = rec.sra("testFailoverStart", tgt("TestFailoverStartParameters", rec.id, [GROUP], [solo]))
    again = items(r, "TestFailoverStartResults/TargetGroups/TargetGroup", "key")[GROUP]
    check(not ok(again), "second testFailoverStart during a test: error (%s)" % err_code(again))
    # Replication is untouched by the test.
    w.write(prot, b"DURING-TEST", 3 * MiB)
    sync(w, prot)
    check(file_sum(w.path(rec, g[0])) == file_sum(w.path(prot, w.ids[prot.name]["group"][0])),
          "replication continues during the test")
    dd = discover(rec)
    tg = items(dd, "ReplicatedDevices/TargetGroups/TargetGroup", "key")[GROUP]
    td = items(dd, "ReplicatedDevices/TargetDevices/TargetDevice", "key")[solo]
    check(tg.find(q("Snapshot/RecoveryPoint")).get("id") == latest and
          td.find(q("Snapshot/RecoveryPoint")).get("id") ==
          tdr.find(q("Snapshot/RecoveryPoint")).get("id"),
          "discoverDevices after a sync during the test: the copies' own recovery points (%s),"
          " not the new latest" % latest)
    for i in range(2):
        r = rec.sra("testFailoverStop", tgt("TestFailoverStopParameters", rec.id, [GROUP], [solo]))
        res = items(r, "TestFailoverStopResults/TargetGroups/TargetGroup", "key")
        res.update(items(r, "TestFailoverStopResults/TargetDevices/TargetDevice", "key"))
        check(all(e.find(Q + "Success") is not None for e in res.values()),
              "testFailoverStop #%d: success%s" % (i + 1, " (repeat)" if i else ""))
    # A member named beside its own group is one device: one copy, no second-start error.
    r = rec.sra("testFailoverStart", tgt("TestFailoverStartParameters", rec.id, [GROUP], [g[0]]))
    gr = items(r, "TestFailoverStartResults/TargetGroups/TargetGroup", "key")[GROUP]
    dr = items(r, "TestFailoverStartResults/TargetDevices/TargetDevice", "key").get(g[0])
    in_group = {e.get("key"): e.find(Q + "Snapshot").get("id")
                for e in gr.findall(q("Snapshot/TargetDevices/TargetDevice"))}
    check(ok(gr) and ok(dr) and dr.find(Q + "Snapshot") is not None and
          dr.find(Q + "Snapshot").get("id") == in_group.get(g[0]),
          "testFailoverStart naming group %s and its member %s: both succeed, one copy" %
          (GROUP, g[0]))
    r = rec.sra("testFailoverStop", tgt("TestFailoverStopParameters", rec.id, [GROUP], [g[0]]))
    res = items(r, "TestFailoverStopResults/TargetGroups/TargetGroup", "key")
    res.update(items(r, "TestFailoverStopResults/TargetDevices/TargetDevice", "key"))
    check(len(res) == 2 and all(ok(e) for e in res.values()),
          "testFailoverStop naming group and member: both succeed")
    dd = discover(rec)
    tg = items(dd, "ReplicatedDevices/TargetGroups/TargetGroup", "key")[GROUP]
    check(tg.find(Q + "Snapshot") is None, "discoverDevices after the test: no snapshot")


def prepare_failover(w, prot, expect_warning=None):
    r = prot.sra("prepareFailover", params("PrepareFailoverParameters", prot.id, None, [GROUP],
                                           [w.ids[prot.name]["solo"]]))
    res = items(r, "PrepareFailoverResults/ConsistencyGroups/ConsistencyGroup", "id")
    res.update(items(r, "PrepareFailoverResults/SourceDevices/SourceDevice", "id"))
    check(len(res) == 2 and all(e.find(Q + "Success") is not None for e in res.values()),
          "prepareFailover at %s: success" % prot.name)
    if expect_warning:
        check(expect_warning in warn_codes(res[GROUP]),
              "prepareFailover at %s: warning %s" % (prot.name, expect_warning))
    return res


def failover(w, rec, expect_warning=None, points=None):
    """points: (group point, solo point) to fail over to older recovery points."""
    g, solo = w.ids[rec.name]["group"], w.ids[rec.name]["solo"]
    if points:
        r = rec.sra("failover", tgt("FailoverParameters", rec.id, [
            (GROUP, '<RecoveryPoint id="%s"/>' % points[0])],
            [(solo, '<RecoveryPoint id="%s"/>' % points[1])]))
    else:
        r = rec.sra("failover", tgt("FailoverParameters", rec.id, [GROUP], [solo]))
    check(len(rec.progress) >= 2 and rec.progress[0] == 0 and rec.progress[-1] == 100,
          "failover appended ProgressUpdate documents to the StatusFile: %s" % rec.progress)
    tgr = items(r, "FailoverResults/TargetGroups/TargetGroup", "key")[GROUP]
    tdr = items(r, "FailoverResults/TargetDevices/TargetDevice", "key")[solo]
    check(ok(tgr) and tgr.get("state") == "read-write" and tgr.get("id"),
          "failover at %s: group promoted read-write (id %s)" % (rec.name, tgr.get("id")))
    devs = {e.get("key"): e for e in tgr.findall(q("TargetDevices/TargetDevice"))}
    check(sorted(devs) == sorted(g) and all(e.get("id") == k and e.get("state") == "read-write"
                                          for k, e in devs.items()),
          "failover: promoted ids are the array's ids")
    check(ok(tdr) and tdr.get("id") == solo and tdr.find(q("RecoveryPoint/Time")) is not None and
          tdr.find(q("Identity/Wwn")) is not None,
          "failover: standalone device promoted with identity and recovery point")
    if points:
        check(tgr.find(q("RecoveryPoint")).get("id") == points[0] and
              tdr.find(q("RecoveryPoint")).get("id") == points[1],
              "failover: group and device report the requested recovery points")
    if expect_warning:
        check(expect_warning in warn_codes(tgr), "failover: warning %s" % expect_warning)
    return tgr, tdr


def recovery_points(site, solo):
    """([group points], [solo points]) held at site, newest first."""
    r = site.sra("queryRecoveryPoints", tgt("QueryRecoveryPointsParameters", site.id, [GROUP],
                                            [solo]))
    g = items(r, "QueryRecoveryPointsResults/TargetGroups/TargetGroup", "key")[GROUP]
    d = items(r, "QueryRecoveryPointsResults/TargetDevices/TargetDevice", "key")[solo]
    return ([e.get("id") for e in g.findall(q("RecoveryPoints/RecoveryPoint"))],
            [e.get("id") for e in d.findall(q("RecoveryPoints/RecoveryPoint"))])


def revert_sums(w, site):
    """Checksums of the newest 'revert' snapshot of each device (the data failover set aside)."""
    import sqlite3
    db = sqlite3.connect(os.path.join(site.path, "metadata.db"))
    try:
        ids = []
        for d in w.all(site):
            row = db.execute("SELECT obj FROM snapshots WHERE device = ? AND kind = 'revert'"
                             " ORDER BY created_ms DESC, id DESC LIMIT 1", (d,)).fetchone()
            ids.append(row[0] if row else None)
    finally:
        db.close()
    # the file array keeps object X in data/X.img
    return [file_sum(os.path.join(site.path, "data", i + ".img")) if i else None for i in ids]


def planned_migration(w, prot, rec):
    print("== planned migration %s -> %s" % (prot.name, rec.name), flush=True)
    solo = w.ids[prot.name]["solo"]
    r = prot.sra("queryReplicationSettings", params("QueryReplicationSettingsParameters", prot.id,
                                                    prot.peer.id, [GROUP], [solo]))
    s = items(r, "ReplicationSettings/ConsistencyGroups/ConsistencyGroup", "id")[GROUP]
    check(ok(s) and s.find(Q + "ReplicationSettings") is not None,
          "queryReplicationSettings: group settings")
    w.settings[GROUP] = ET.tostring(s.find(Q + "ReplicationSettings"), encoding="unicode")
    w.write(prot, b"MIGRATION-1", 1 * MiB)
    sync(w, prot)
    late = w.write(prot, b"LATE-WRITES", 2 * MiB)  # written after the first sync
    prepare_failover(w, prot)
    ds = discover(prot)
    cg = items(ds, "ReplicatedDevices/ConsistencyGroups/ConsistencyGroup", "id")[GROUP]
    check(cg.get("state") == "read-only" and all(
        d.get("state") == "read-only" for d in cg.findall(q("SourceDevices/SourceDevice"))),
        "after prepareFailover: demoted sources read-only")
    sess = sync(w, prot)  # the remaining changes, from the demoted source
    moved = bytes_moved(w, prot, sess)
    check(moved >= late // 2, "second sync moved the late writes (%d bytes)" % moved)
    r = rec.sra("checkFailover", tgt("CheckFailoverParameters", rec.id, [GROUP],
                                     [w.ids[rec.name]["solo"]]))
    check(all(ok(e) for e in r.iter(Q + "TargetGroup")), "checkFailover: ready")
    want = w.sums(prot)
    failover(w, rec)
    check(w.sums(rec) == want, "after failover: %s holds exactly %s's data" % (rec.name,
                                                                              prot.name))
    failover(w, rec, expect_warning="2001")  # idempotent
    prepare_failover(w, prot, expect_warning="2001")
    check(w.sums(rec) == want, "repeated failover and prepareFailover changed nothing")
    dd = discover(rec)
    tg = items(dd, "ReplicatedDevices/TargetGroups/TargetGroup", "key")[GROUP]
    check(tg.get("state") == "read-write" and tg.get("id") == GROUP,
          "discoverDevices at %s: promoted group" % rec.name)


def reprotect(w, old, new, check_moved=True):
    """Reverse after failover at `new`: prepareReverseReplication at old, reverse at new."""
    print("== reprotect %s -> %s" % (new.name, old.name), flush=True)
    settings = w.settings.get(GROUP, "")
    changed = w.write(new, b"AFTER-FAILOVER", 5 * MiB)
    for i in range(2):
        r = old.sra("prepareReverseReplication", params(
            "PrepareReverseReplicationParameters", old.id, new.id, [(GROUP, settings)],
            [w.ids[old.name]["solo"]], dl="Devices", de="Device"))
        res = items(r, "PrepareReverseReplicationResults/ConsistencyGroups/ConsistencyGroup", "id")
        res.update(items(r, "PrepareReverseReplicationResults/Devices/Device", "id"))
        check(len(res) == 2 and all(ok(e) for e in res.values()),
              "prepareReverseReplication #%d at %s: success" % (i + 1, old.name))
    for i in range(2):
        r = new.sra("reverseReplication", params(
            "ReverseReplicationParameters", new.id, old.id, [(GROUP, settings)],
            [w.ids[new.name]["solo"]], dl="Devices", de="Device"))
        res = items(r, "ReverseReplicationResults/ConsistencyGroups/ConsistencyGroup", "id")
        res.update(items(r, "ReverseReplicationResults/Devices/Device", "id"))
        check(len(res) == 2 and all(e.find(Q + "Success") is not None for e in res.values()),
              "reverseReplication #%d at %s: success%s" % (
                  i + 1, new.name, " with warning %s" % warn_codes(res[GROUP]) if i else ""))
        if i:
            check("2001" in warn_codes(res[GROUP]), "repeated reverseReplication warns 2001")
    correlate(w, new, old)
    sess = sync(w, new)
    moved = bytes_moved(w, new, sess)
    if check_moved:
        check(moved <= changed * 2 + 4 * MiB,
              "reverse moved only changed data: %d bytes (changed %d, a full copy > 24 MiB)" % (
                  moved, changed))
    check(w.sums(old) == w.sums(new), "after reprotect: %s == %s (checksums)" % (old.name,
                                                                              new.name))
    r = new.sra("queryReplicationSettings", params("QueryReplicationSettingsParameters", new.id,
                                                   old.id, [GROUP]))
    s = items(r, "ReplicationSettings/ConsistencyGroups/ConsistencyGroup", "id")[GROUP]
    check(ET.tostring(s.find(Q + "ReplicationSettings"), encoding="unicode") == settings,
          "replication settings carried through reverse")


def disaster(w, prot, rec):
    print("== disaster recovery: %s lost, failover at %s" % (prot.name, rec.name), flush=True)
    # The last replicated point is damaged (e.g. encrypted by ransomware): fail over to the
    # point before it.
    w.write(prot, b"REPLICATED", 6 * MiB)
    sync(w, prot)
    replicated = w.sums(prot)
    w.write(prot, b"DAMAGED", 6 * MiB + 4096)
    sync(w, prot)
    damaged = w.sums(prot)
    w.write(prot, b"UNREPLICATED-TAIL", 7 * MiB)
    gp, dp = recovery_points(rec, w.ids[rec.name]["solo"])
    check(len(gp) >= 2 and len(dp) >= 2, "%s holds the damaged point and the one before" %
          rec.name)
    away = prot.path + ".away"
    os.rename(prot.path, away)
    try:
        failover(w, rec, points=(gp[1], dp[1]))
        check(w.sums(rec) == replicated, "disaster failover to the older point: %s holds that"
              " point's data" % rec.name)
        check(revert_sums(w, rec) == damaged, "failover set the newer replicated data aside in"
              " its revert snapshots (nothing replicated is lost)")
        w.write(rec, b"NEW-AT-RECOVERY", 8 * MiB)
        after = w.sums(rec)
    finally:
        os.rename(away, prot.path)
    ds = discover(prot)
    cg = items(ds, "ReplicatedDevices/ConsistencyGroups/ConsistencyGroup", "id")[GROUP]
    check(cg.get("state") == "read-write", "site %s returns: still reports its sources" %
          prot.name)
    prepare_failover(w, prot)
    prepare_failover(w, prot)
    reprotect(w, prot, rec, check_moved=True)
    tail = new = damage = 0
    for d in w.all(prot):
        with open(w.path(prot, d), "rb") as f:
            f.seek(6 * MiB + 4096)
            damage += f.read(7) == b"DAMAGED"
            f.seek(7 * MiB)
            tail += f.read(17) == b"UNREPLICATED-TAIL"
            f.seek(8 * MiB)
            new += f.read(15) == b"NEW-AT-RECOVERY"
    check(tail == 0, "the unreplicated tail is not in the new replica at %s" % prot.name)
    check(damage == 0, "the damaged point skipped by failover is not in the new replica at %s"
          % prot.name)
    check(new == len(w.all(prot)), "writes made at %s during the disaster reached %s" % (
        rec.name, prot.name))


def restore(w, prot, rec):
    print("== restore replication %s -> %s" % (prot.name, rec.name), flush=True)
    sync(w, prot)
    prepare_failover(w, prot)
    sync(w, prot)
    failover(w, rec)
    base = w.sums(prot)
    discarded = w.write(rec, b"DISCARD-ME", 1 * MiB)
    check(w.sums(rec) != base, "changes written at %s after failover" % rec.name)
    for i in range(2):
        r = rec.sra("prepareRestoreReplication", params(
            "PrepareRestoreReplicationParameters", rec.id, prot.id, [(GROUP, w.settings.get(
                GROUP, ""))], [w.ids[rec.name]["solo"]], dl="Devices", de="Device"))
        res = list(r.iter(Q + "ConsistencyGroup")) + list(r.iter(Q + "Device"))
        check(len(res) == 2 and all(ok(e) for e in res),
              "prepareRestoreReplication #%d at %s: success" % (i + 1, rec.name))
    for i in range(2):
        r = prot.sra("restoreReplication", params(
            "RestoreReplicationParameters", prot.id, rec.id, [(GROUP, w.settings.get(GROUP, ""))],
            [w.ids[prot.name]["solo"]], dl="Devices", de="Device"))
        res = list(r.iter(Q + "ConsistencyGroup")) + list(r.iter(Q + "Device"))
        check(len(res) == 2 and all(e.find(Q + "Success") is not None for e in res),
              "restoreReplication #%d at %s: success" % (i + 1, prot.name))
    correlate(w, prot, rec)
    sess = sync(w, prot)
    moved = bytes_moved(w, prot, sess)
    check(moved <= discarded * 2 + 2 * MiB, "restore moved only changed data (%d bytes)" % moved)
    check(w.sums(rec) == base and w.sums(prot) == base,
          "after restore: %s's changes discarded, both sites equal" % rec.name)


def scenario_workflows(env):
    w = World(env)
    w.setup()
    A, B = w.A, w.B
    ua, ub = load(w, A), load(w, B)
    check(ua == ub, "queryInfo: same UUID at both sites")
    for s in (A, B):
        r = s.sra("discoverArrays")
        arr = items(r, "Arrays/Array", "id")
        check(s.id in arr and [p.get("id") for p in arr[s.id].findall(q("PeerArrays/PeerArray"))]
              == [s.peer.id], "discoverArrays at %s: %s paired with %s" % (s.name, s.id,
                                                                          s.peer.id))
    print("== initial replication", flush=True)
    sync(w, A)
    check(w.sums(A) == w.sums(B), "initial sync: B == A")
    correlate(w, A, B)
    # A LUN whose target the next sync makes (lun create --target-at-sync) has no target key
    # yet: discoverDevices leaves it out (the group stays as it was) until that sync.
    pend = [env.cli("lun", "create", A.path, "srm-pending", "1M", "--group", GROUP,
                    "--target-at-sync"),
            env.cli("lun", "create", A.path, "srm-pending-solo", "1M", "--target-at-sync")]
    correlate(w, A, B)
    da = discover(A)
    reported = [d.get("id") for d in da.iter(Q + "SourceDevice")]
    check(not set(pend) & set(reported),
          "discoverDevices at A: sources with a pending target are not reported (%s)" % pend)
    for d in pend:
        env.cli("lun", "delete", A.path, d)
    back_at_a = {d["name"]: d["id"] for d in w.lun_list(A)}["srm-back"]
    da, db = discover(A), discover(B)
    check(back_at_a in items(da, "ReplicatedDevices/TargetDevices/TargetDevice", "key") and
          w.ids[A.name]["solo"] in items(da, "ReplicatedDevices/SourceDevices/SourceDevice", "id"),
          "bi-directional pair: discoverDevices at A reports sources and targets at once")
    sb = items(db, "ReplicatedDevices/SourceDevices/SourceDevice", "id")
    check(w.back in sb and sb[w.back].find(Q + "TargetDevice").get("key") == back_at_a,
          "bi-directional pair: B's source %s <-> A's target %s" % (w.back, back_at_a))
    test_failover(w, A, B)
    planned_migration(w, A, B)
    reprotect(w, A, B)
    test_failover(w, B, A)
    planned_migration(w, B, A)  # failback
    reprotect(w, B, A)
    correlate(w, A, B)
    disaster(w, A, B)
    planned_migration(w, B, A)  # back home after the disaster
    reprotect(w, B, A)
    restore(w, A, B)
    check_logs(w)


def check_logs(w):
    print("== logs (spec Appendix A)", flush=True)
    log = open(os.path.join(w.A.logdir, "replun-sra.log"), encoding="utf-8").read()
    check(re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[\d+\] \[\w+\] ", log, re.M),
          "log lines carry a timestamp, pid and level")
    check("replun SRA version" in log, "log carries the release signature")
    check("Incoming request" in log and "<Name>failover</Name>" in
          open(os.path.join(w.B.logdir, "replun-sra.log"), encoding="utf-8").read(),
          "log carries the incoming request")
    for cmd in ("prepareFailover", "syncOnce", "restoreReplication", "prepareReverseReplication"):
        pid = re.search(r"\[(\d+)\] \[info\] Commence: command \[%s\]" % cmd, log).group(1)
        lines = [l for l in log.splitlines() if "[%s]" % pid in l]
        check(any(re.search(r"Commence: .*\[[^]]*\b%s\b" % GROUP, l) or
                  re.search(r"Commence: .*%s" % cmd, l) for l in lines) and
              any(re.search(r"Complete: ", l) for l in lines) and
              any(GROUP in l for l in lines if "Complete" in l or "->" in l),
              "%s: commence/complete pair naming the group (process %s)" % (cmd, pid))


# ---------------------------------------------------------------------------------------------
# Idempotency and interrupted runs

def discovery_state(site):
    r = discover(site)
    out = []
    for e in r.iter():
        if e.tag in (Q + "ConsistencyGroup", Q + "TargetGroup", Q + "SourceDevice",
                     Q + "TargetDevice"):
            out.append((e.tag.split("}")[1], e.get("id"), e.get("key"), e.get("state")))
    return sorted(out, key=lambda t: tuple(x or "" for x in t))


def killed(site, name, body, delays):
    """Starts the command and kills the SRA process after each delay."""
    for delay in delays:
        xml, out, _ = site.request(name, body)
        p = subprocess.Popen(["perl", site.env.command], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p.stdin.write(xml.encode())
            p.stdin.close()
        except BrokenPipeError:
            pass
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        print("killed %s at %s after %.3f s (exit %s, response %s)" % (
            name, site.name, delay, p.returncode, "written" if os.path.exists(out) else "none"))


def scenario_idempotency(env):
    # Reference: an uninterrupted run on one pair; the interrupted run on another.
    ref = World(env)
    ref.A.path, ref.B.path = os.path.join(env.tmp, "refA"), os.path.join(env.tmp, "refB")
    ref.setup()
    load(ref, ref.A)  # error definitions: placeholders of every warning get checked
    sync(ref, ref.A)
    w = World(env)
    w.A.name, w.B.name = "intA", "intB"
    w.A.path, w.B.path = os.path.join(env.tmp, "intA"), os.path.join(env.tmp, "intB")
    w.A.logdir, w.B.logdir = os.path.join(env.tmp, "logs-intA"), os.path.join(env.tmp,
                                                                              "logs-intB")
    w.setup()
    sync(w, w.A)
    delays = [0.0, 0.005, 0.015, 0.03, 0.045, 0.06, 0.08]
    steps = [
        ("A", "prepareFailover", lambda x: params("PrepareFailoverParameters", x.A.id, None,
                                                  [GROUP], [x.ids[x.A.name]["solo"]])),
        ("B", "failover", lambda x: tgt("FailoverParameters", x.B.id, [GROUP],
                                        [x.ids[x.B.name]["solo"]])),
        ("A", "prepareReverseReplication", lambda x: params(
            "PrepareReverseReplicationParameters", x.A.id, x.B.id, [GROUP],
            [x.ids[x.A.name]["solo"]], dl="Devices", de="Device")),
        ("B", "reverseReplication", lambda x: params(
            "ReverseReplicationParameters", x.B.id, x.A.id, [GROUP], [x.ids[x.B.name]["solo"]],
            dl="Devices", de="Device")),
        ("B", "sync", None),
        ("B", "prepareFailover", lambda x: params("PrepareFailoverParameters", x.B.id, None,
                                                  [GROUP], [x.ids[x.B.name]["solo"]])),
        ("A", "failover", lambda x: tgt("FailoverParameters", x.A.id, [GROUP],
                                        [x.ids[x.A.name]["solo"]])),
        ("A", "prepareRestoreReplication", lambda x: params(
            "PrepareRestoreReplicationParameters", x.A.id, x.B.id, [GROUP],
            [x.ids[x.A.name]["solo"]], dl="Devices", de="Device")),
        ("B", "restoreReplication", lambda x: params(
            "RestoreReplicationParameters", x.B.id, x.A.id, [GROUP], [x.ids[x.B.name]["solo"]],
            dl="Devices", de="Device")),
    ]
    for where, name, body in steps:
        if name == "sync":
            for x in (ref, w):
                sync(x, x.A if where == "A" else x.B)
            continue
        print("== %s: repeated and interrupted" % name, flush=True)
        rs = ref.A if where == "A" else ref.B
        first = rs.sra(name, body(ref))
        second = rs.sra(name, body(ref))
        f_items = sorted((e.tag, e.get("id") or e.get("key"), ok(e)) for e in first.iter()
                         if e.get("id") or e.get("key"))
        s_items = sorted((e.tag, e.get("id") or e.get("key"), ok(e)) for e in second.iter()
                         if e.get("id") or e.get("key"))
        check(f_items == s_items, "%s repeated: same items, same outcome" % name)
        if not name.startswith("prepareRe"):  # those only check, they change nothing
            check(any(x.get("code") == "2001" for x in second.iter(Q + "Warning")),
                  "%s repeated: warning 2001 (already done)" % name)
        ws = w.A if where == "A" else w.B
        killed(ws, name, body(w), delays)
        r = ws.sra(name, body(w))
        check(all(ok(e) for e in r.iter() if e.tag in (Q + "ConsistencyGroup", Q + "TargetGroup",
                                                        Q + "SourceDevice", Q + "TargetDevice",
                                                        Q + "Device")),
              "%s rerun after kills: success" % name)
        for a, b in ((ref.A, w.A), (ref.B, w.B)):
            sa = [(t, i if i not in ref.all(a) else "dev", k, s) for t, i, k, s in
                  discovery_state(a)]
            sb = [(t, i if i not in w.all(b) else "dev", k, s) for t, i, k, s in
                  discovery_state(b)]
            norm = lambda st: sorted((t, s or "") for t, _, _, s in st)  # noqa: E731
            check(norm(sa) == norm(sb), "%s: state at %s equals the uninterrupted run" % (
                name, b.name))
    sess = sync(w, w.B)
    check(w.sums(w.A) == w.sums(w.B), "after interrupted runs the data converges (checksums)")
    # syncOnce repeated while a session runs: warning 500 with the running session.
    w.write(w.B, b"X" * 7, 0)
    s1 = sync(w, w.B, wait=False)
    r = w.B.sra("syncOnce", params("SyncOnceParameters", w.B.id, w.A.id, [GROUP]))
    e = items(r, "SyncOnceResults/ConsistencyGroups/ConsistencyGroup", "id")[GROUP]
    ds = e.find(Q + "DeviceSync")
    if ds.get("status") == "inProgress" and ds.get("id") == s1[GROUP]:
        check("500" in warn_codes(e), "syncOnce during a running session: warning 500")
    else:
        print("note: first session finished before the second syncOnce (%s)" % ds.get("status"))
    poll(w, w.B, {GROUP: ds.get("id")})
    del sess
    concurrent(w)


def concurrent(w):
    """SRM runs commands in parallel (both directions, several plans): 12 at once."""
    from concurrent.futures import ThreadPoolExecutor
    print("== concurrent commands", flush=True)
    A, B = w.A, w.B
    jobs = []
    for _ in range(3):
        jobs += [(A, "discoverDevices", "<DiscoverDevicesParameters><ArrayId>%s</ArrayId>"
                  "<PeerArrayId>%s</PeerArrayId></DiscoverDevicesParameters>" % (A.id, B.id)),
                 (B, "discoverDevices", "<DiscoverDevicesParameters><ArrayId>%s</ArrayId>"
                  "<PeerArrayId>%s</PeerArrayId></DiscoverDevicesParameters>" % (B.id, A.id)),
                 (B, "queryReplicationSettings", params("QueryReplicationSettingsParameters",
                                                        B.id, A.id, [GROUP])),
                 (A, "queryDeviceDetails", "<QueryDeviceDetailsParameters><ArrayId>%s</ArrayId>"
                  "<Devices>%s</Devices></QueryDeviceDetailsParameters>" % (
                      A.id, "".join('<Device id="%s"/>' % d for d in w.all(A))))]
    with ThreadPoolExecutor(max_workers=len(jobs)) as ex:
        results = list(ex.map(lambda j: j[0].sra(j[1], j[2]), jobs))
    check(len(results) == 12 and all(r.find(Q + "Error") is None for r in results),
          "12 concurrent commands at both sites: every one answered, none failed")


# ---------------------------------------------------------------------------------------------
# Bad input

def scenario_bad_input(env):
    w = World(env)
    w.setup(n_group=2, size="4M")
    A, B = w.A, w.B
    sync(w, A)
    load(w, A)
    state = [w.lun_list(A), w.lun_list(B)]

    def unchanged(what):
        la, lb = w.lun_list(A), w.lun_list(B)
        strip = lambda l: [(d["id"], d["state"], d.get("read_only")) for d in l]  # noqa: E731
        check(strip(la) == strip(state[0]) and strip(lb) == strip(state[1]),
              "%s: no state change" % what)

    def raw(xml, name, code, out=None):
        out = out or os.path.join(env.tmp, "bad-%s.xml" % name)
        p = A.run_raw(xml, out)
        check(p.returncode == 0 and os.path.exists(out), "%s: response written, exit 0" % name)
        env.validate(out)
        e = ET.parse(out).getroot().find(Q + "Error")
        check(e is not None and e.get("code") == str(code), "%s: error %s" % (name, code))
        unchanged(name)

    out = os.path.join(env.tmp, "bad.xml")
    raw('<Command xmlns="%s"><Name>failover</Name><OutputFile>%s</OutputFile><FailoverParameters>'
        '<ArrayId>siteB</ArrayId><oops></FailoverParameters></Command>' % (NS, out),
        "malformed XML", 1020, out)
    raw('<Command xmlns="urn:not-sra"><Name>queryInfo</Name><OutputFile>%s</OutputFile>'
        '</Command>' % out, "wrong namespace", 1021, out)
    raw('<Command><Name>queryInfo</Name><OutputFile>%s</OutputFile></Command>' % out,
        "missing namespace", 1021, out)
    raw('<?xml version="1.0"?><!DOCTYPE Command [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;'
        '&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><Command xmlns="%s">'
        '<Name>&c;</Name><OutputFile>%s</OutputFile></Command>' % (NS, out),
        "DOCTYPE with entities", 1020, out)
    raw('<?xml version="1.0"?><!DOCTYPE Command SYSTEM "http://127.0.0.1:9/x.dtd"><Command '
        'xmlns="%s"><Name>queryInfo</Name><OutputFile>%s</OutputFile></Command>' % (NS, out),
        "external DTD", 1020, out)
    big = ('<Command xmlns="%s"><Name>discoverArrays</Name><OutputFile>%s</OutputFile>'
           '<Padding>' % (NS, out)) + "x" * (100 * MiB) + "</Padding></Command>"
    t0 = time.time()
    raw(big, "100 MB request", 1023, out)
    check(time.time() - t0 < 30, "100 MB request refused quickly (%.1f s)" % (time.time() - t0))
    del big
    p = subprocess.run(["perl", env.command], input=('<Command xmlns="%s"><Name>queryInfo</Name>'
                                                     '</Command>' % NS).encode(),
                       capture_output=True)
    check(p.returncode != 0 and b"OutputFile" in p.stdout,
          "missing OutputFile: non-zero exit and a log line saying why")
    xml, o, _ = A.request("queryInfo", level="error")
    p = A.run_raw(xml, o)
    check(p.returncode == 0 and b"[verbose]" not in p.stdout and b"[info]" not in p.stdout and
          b"Incoming request" not in p.stdout, "LogLevel error: nothing below error is logged")
    xml, o, _ = A.request("queryInfo", level="trivia")
    p = A.run_raw(xml, o)
    check(b"[trivia]" in p.stdout and b"Incoming request" in p.stdout,
          "LogLevel trivia: everything is logged")
    r = A.sra("noSuchCommand", expect_error=100)
    check(r.find(q("Error/Command")).text == "noSuchCommand", "unknown command: error 100 names it")
    A.sra("discoverDevices", "<DiscoverDevicesParameters><ArrayId>nosuch</ArrayId><PeerArrayId>"
          "siteB</PeerArrayId></DiscoverDevicesParameters>", expect_error=1024)
    unchanged("unknown ArrayId")
    B.sra("failover", tgt("FailoverParameters", "../siteA", [GROUP]), expect_error=1026)
    A.sra("discoverDevices", "<DiscoverDevicesParameters><ArrayId>siteA</ArrayId>"
          "</DiscoverDevicesParameters>", expect_error=1022)
    A.sra("prepareFailover", "", expect_error=1022)
    save = A.uri
    A.sra("discoverArrays", conn=False, expect_error=1025)
    # Per-device: unknown keys and hostile ids are errors for those items only.
    bad = ["no-such-key", "../../etc/passwd", "a/b", "..", ""]
    r = B.sra("failover", tgt("FailoverParameters", B.id, ["nogroup"], bad))
    res = items(r, "FailoverResults/TargetDevices/TargetDevice", "key")
    check(set(res) == set(bad), "failover with bad keys: every item answered")
    check(err_code(res["no-such-key"]) == "1001", "unknown key: error 1001 (not found)")
    check(all(err_code(res[k]) == "1026" for k in bad[1:]), "ids with '..' or '/': error 1026")
    g = items(r, "FailoverResults/TargetGroups/TargetGroup", "key")["nogroup"]
    check(err_code(g) == "1001", "unknown group key: error 1001")
    unchanged("failover of unknown keys")
    r = A.sra("prepareFailover", params("PrepareFailoverParameters", A.id, None, [],
                                        ["../x", w.ids[A.name]["solo"]]))
    res = items(r, "PrepareFailoverResults/SourceDevices/SourceDevice", "id")
    check(err_code(res["../x"]) == "1026" and ok(res[w.ids[A.name]["solo"]]),
          "one bad device does not stop the others")
    state[:] = [w.lun_list(A), w.lun_list(B)]  # the good device was prepared: new baseline
    # volumeNameFilter: devices outside the prefix are skipped by discovery and every command.
    A.name_filter = "srm-"
    r = discover(A)
    ids = [e.get("id") for e in r.iter(Q + "SourceDevice")]
    check(w.other not in ids and w.ids[A.name]["solo"] in ids,
          "volumeNameFilter 'srm-': 'other-vol' skipped by discovery")
    r = A.sra("syncOnce", params("SyncOnceParameters", A.id, B.id, [], [w.other]))
    check(err_code(items(r, "SyncOnceResults/SourceDevices/SourceDevice", "id")[w.other]) ==
          "1014", "volumeNameFilter: syncOnce of a filtered device is error 1014")
    other_b = {d["name"]: d["id"] for d in w.lun_list(B)}["other-vol"]
    B.name_filter = "srm-"
    r = B.sra("failover", tgt("FailoverParameters", B.id, [], [other_b]))
    check(err_code(items(r, "FailoverResults/TargetDevices/TargetDevice", "key")[other_b]) ==
          "1014", "volumeNameFilter: failover of a filtered device is error 1014")
    unchanged("failover of a filtered device")
    B.name_filter = None
    A.name_filter = None
    del save
    # Passwords never reach logs or responses.
    A.sra("discoverArrays", password="Pw-0f-the-day!")
    leaked = []
    for d in (A.logdir,):
        for f in os.listdir(d):
            if "Pw-0f-the-day!" in open(os.path.join(d, f), encoding="utf-8").read():
                leaked.append(f)
    for f in os.listdir(env.tmp):
        if f.startswith("out-") and "Pw-0f-the-day!" in open(os.path.join(env.tmp, f),
                                                            encoding="utf-8").read():
            leaked.append(f)
    check(not leaked, "the password appears in no log and no response")
    check("<Password>***</Password>" in open(os.path.join(A.logdir, "replun-sra.log"),
                                             encoding="utf-8").read(),
          "the logged request shows the password replaced")


# ---------------------------------------------------------------------------------------------
# A sync whose group snapshot could not pause the writers

class WrongPauseFilter:
    """Stand-in nbdkit pause filter whose control socket answers a pause wrongly ('X', then
    hangs up). Served by a thread of this process, so its pid is alive: the fence is not stale."""

    def __init__(self, path):
        import socket
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.pauses = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                while True:
                    b = c.recv(1)
                    if not b:
                        break
                    if b == b"p":
                        self.pauses += 1
                        c.sendall(b"X")
                        break
                    if b == b"r":
                        c.sendall(b"R")

    def close(self):
        self.sock.close()


def fence_record(site, dev, kind, control=None, server="nbdkit"):
    """Writes the fence record rp_fence_register would (docs/internals/fence.md)."""
    import socket
    d = os.path.join(site.path, "fences")
    os.makedirs(d, mode=0o700, exist_ok=True)
    boot = open("/proc/sys/kernel/random/boot_id").read().strip()
    text = "kind %s\npid %d\nminor -1\nserver %s\nhost %s\nboot %s\n" % (
        kind, os.getpid(), server, socket.gethostname(), boot)
    if control:
        text += "control %s\n" % control
    with open(os.path.join(d, dev + ".tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(d, dev + ".tmp"), os.path.join(d, dev))


def query_group(site, group, sid, target=False):
    cont, el, attr = (("TargetGroups", "TargetGroup", "key") if target else
                      ("ConsistencyGroups", "ConsistencyGroup", "id"))
    body = ("<QuerySyncStatusParameters><ArrayId>%s</ArrayId><PeerArrayId>%s</PeerArrayId>"
            "<%s><%s %s=\"%s\" syncId=\"%s\"/></%s></QuerySyncStatusParameters>") % (
                site.id, site.peer.id, cont, el, attr, group, sid, cont)
    path = "QuerySyncStatusResults/%s/%s" % (cont, el)
    r = site.sra("querySyncStatus", body)
    e = items(r, path, attr).get(group)
    check(ok(e), "querySyncStatus %s at %s answers" % (group, site.name))
    return e


def sync_group_done(w, site):
    """syncOnce of the group, then querySyncStatus until complete; (session, syncOnce element,
    last querySyncStatus element)."""
    r = site.sra("syncOnce", params("SyncOnceParameters", site.id, site.peer.id, [GROUP]))
    e0 = items(r, "SyncOnceResults/ConsistencyGroups/ConsistencyGroup", "id").get(GROUP)
    check(ok(e0), "syncOnce %s at %s" % (GROUP, site.name))
    sid = e0.find(Q + "DeviceSync").get("id")
    deadline = time.time() + 120
    while True:
        e = query_group(site, GROUP, sid)
        if e.find(Q + "DeviceSync").get("status") == "complete":
            return sid, e0, e
        check(time.time() < deadline, "sync %s completes" % sid)
        time.sleep(0.2)


def scenario_sync_warning(env):
    import json
    w = World(env)
    w.setup(n_group=2, size="1M")
    A, B = w.A, w.B
    load(w, A)  # error definitions: the 2005 warning's placeholders get checked
    g = w.ids[A.name]["group"]
    print("== clean group sync: no warning anywhere", flush=True)
    sid, e0, e = sync_group_done(w, A)
    check(warn_codes(e0) == [] and warn_codes(e) == [], "clean sync: no SRA warning")
    check(warn_codes(query_group(B, GROUP, sid, target=True)) == [],
          "clean sync: no SRA warning at the target either")
    j = json.loads(env.cli("sync-status", A.path, "--session", sid, "--json"))
    check(j["warnings"] == [], "clean sync: replun sync-status --json warnings []")

    print("== a pause fence that answers wrongly: the session says so", flush=True)
    filt = WrongPauseFilter(os.path.join(env.tmp, "wrong.ctl"))
    try:
        fence_record(A, g[1], "pause", filt.path)
        sid, e0, e = sync_group_done(w, A)
        check(filt.pauses >= 1, "the worker asked the fence to pause")
        # syncOnce answers at once: the worker may not have snapshotted yet, so 2005 there
        # is optional; never twice
        check(warn_codes(e0) in ([], ["2005"]), "syncOnce: at most one 2005 warning")
        check(warn_codes(e) == ["2005"], "querySyncStatus (source): warning 2005")
        msg = e.find(q("Warnings/Warning") + "/{%s}Message" % RPNS)
        check(msg is not None and g[1] in msg.text and "not write-order consistent" in msg.text,
              "querySyncStatus: the warning names the device and says why")
        check(warn_codes(query_group(B, GROUP, sid, target=True)) == ["2005"],
              "querySyncStatus (target): warning 2005")
        j = json.loads(env.cli("sync-status", A.path, "--group", GROUP, "--json"))
        check(j["id"] == sid and len(j["warnings"]) == 1 and j["warnings"][0]["code"] == 5 and
              g[1] in j["warnings"][0]["message"], "replun sync-status --json: the warning")
        text = env.cli("sync-status", B.path, "--session", sid)
        check("warning:" in text and "not write-order consistent" in text,
              "replun sync-status (text, target): the warning")
        p = subprocess.run([env.replun, "sync", A.path, "--group", GROUP, "--wait", "--json"],
                           capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, "replun sync --wait --json succeeds (a warning, not an error)")
        j = json.loads(p.stdout)
        check(j["status"] == "complete" and [x["code"] for x in j["warnings"]] == [5],
              "replun sync --wait --json: the finished session carries the warning")
        p = subprocess.run([env.replun, "sync", A.path, "--group", GROUP, "--wait"],
                           capture_output=True, text=True, timeout=300)
        check(p.returncode == 0 and "not write-order consistent" in p.stderr,
              "replun sync --wait: the warning on stderr")
    finally:
        filt.close()

    print("== a writer without a fence: warned at start, reported once", flush=True)
    fence_record(A, g[1], "none", server="qemu-nbd")
    sid, e0, e = sync_group_done(w, A)
    check(warn_codes(e0) == ["2005"], "syncOnce: one 2005 warning (start and session merged)")
    check(warn_codes(e) == ["2005"], "querySyncStatus: warning 2005")

    print("== writer gone: clean again", flush=True)
    os.unlink(os.path.join(A.path, "fences", g[1]))
    sid, e0, e = sync_group_done(w, A)
    check(warn_codes(e0) == [] and warn_codes(e) == [], "clean sync again: no warning")
    j = json.loads(env.cli("sync", A.path, "--group", GROUP, "--wait", "--json"))
    check(j["warnings"] == [], "replun sync --wait --json: warnings []")


def scenario_load(env):
    w = World(env)
    w.setup(n_group=1, size="1M")
    load(w, w.A)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sra-dir", required=True)
    ap.add_argument("--replun", required=True)
    ap.add_argument("--xsd", required=True)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("scenario", choices=["load", "workflows", "idempotency", "bad-input",
                                         "sync-warning"])
    a = ap.parse_args()
    env = Env(a.sra_dir, a.replun, a.xsd)
    fn = {"load": scenario_load, "workflows": scenario_workflows,
          "idempotency": scenario_idempotency, "bad-input": scenario_bad_input,
          "sync-warning": scenario_sync_warning}[a.scenario]
    t0 = time.time()
    try:
        fn(env)
    except Fail as e:
        print("FAILED: %s (temp dir %s kept)" % (e, env.tmp))
        return 1
    except Exception:
        import traceback
        traceback.print_exc()
        print("FAILED with an exception (temp dir %s kept)" % env.tmp)
        return 1
    print("PASS: %s: %d checks, %d responses validated against the schema, %d errors/warnings "
          "with their placeholders checked, %.1f s" % (
              a.scenario, CHECKS[0], env.responses, getattr(env, "placeholder_checks", 0),
              time.time() - t0))
    if not a.keep:
        env.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
