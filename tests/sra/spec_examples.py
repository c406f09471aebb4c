#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# spec_examples.py - replays every example request of the SRA v2 interface spec (and the real
# SRM queryCapabilities request of srm-sra-communication-example.txt) against replun-sra. The
# spec's array ids (10000A0/10000B1, XXX/YYY) are made as real paired arrays; its device ids do
# not exist there, so per-device commands must answer every item of the request on its own
# (here: "not found"), never with a whole-response error. Every response is schema-validated.
import argparse
import os
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sralib import NS, Q, Env, Fail, Site, check, q, CHECKS  # noqa: E402

TGT = """<TargetGroups><TargetGroup key="srm-target-1" /></TargetGroups>
<TargetDevices><TargetDevice key="xxx-2-peer" /><TargetDevice key="xxx-3-peer" /></TargetDevices>"""
SRC = """<ConsistencyGroups><ConsistencyGroup id="srm-1" /></ConsistencyGroups>
<SourceDevices><SourceDevice id="xxx-2" /><SourceDevice id="xxx-3" /></SourceDevices>"""

# (command name, parameters as in the spec, result element, [(item path, attr, value)])
EXAMPLES = [
    ("queryInfo", "", "AdapterInfo", []),
    ("queryStrings", "<QueryStringsParameters><Locale>ja</Locale></QueryStringsParameters>",
     "Strings", []),
    ("queryErrorDefinitions", "", "ErrorDefinitions", []),
    ("queryCapabilities", "", "AdapterCapabilities", []),
    ("queryConnectionParameters", "", "AdapterConnectionParameters", []),
    ("discoverArrays", "", "Arrays", [("Arrays/Array", "id", "10000A0")]),
    ("discoverDevices", "<DiscoverDevicesParameters><ArrayId>10000A0</ArrayId>"
     "<PeerArrayId>10000B1</PeerArrayId></DiscoverDevicesParameters>", "ReplicatedDevices", []),
    ("queryReplicationSettings", "<QueryReplicationSettingsParameters><ArrayId>XXX</ArrayId>"
     "<PeerArrayId>YYY</PeerArrayId><ConsistencyGroups><ConsistencyGroup id=\"srm-1\" />"
     "</ConsistencyGroups><SourceDevices><SourceDevice id=\"xxx-2\"/><SourceDevice id=\"xxx-3\"/>"
     "</SourceDevices></QueryReplicationSettingsParameters>", "ReplicationSettings",
     [("ReplicationSettings/ConsistencyGroups/ConsistencyGroup", "id", "srm-1"),
      ("ReplicationSettings/SourceDevices/SourceDevice", "id", "xxx-2"),
      ("ReplicationSettings/SourceDevices/SourceDevice", "id", "xxx-3")]),
    # The spec names this one "replicationSettings" (a typo); replayed with the real name.
    ("queryReplicationSettings", "<QueryReplicationSettingsParameters><ArrayId>YYY</ArrayId>"
     "<PeerArrayId>XXX</PeerArrayId><TargetGroups><TargetGroup key=\"srm-target-1\" />"
     "</TargetGroups><TargetDevices><TargetDevice key=\"xxx-2-peer\"/><TargetDevice "
     "key=\"xxx-3-peer\"/></TargetDevices></QueryReplicationSettingsParameters>",
     "ReplicationSettings",
     [("ReplicationSettings/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("ReplicationSettings/TargetDevices/TargetDevice", "key", "xxx-2-peer")]),
    ("queryDeviceDetails", "<QueryDeviceDetailsParameters><ArrayId>XXX</ArrayId><Devices>"
     "<Device id=\"aaa-1\" /><Device id=\"aaa-2\" /><Device id=\"aaa-3\" /></Devices>"
     "</QueryDeviceDetailsParameters>", "DeviceDetails",
     [("DeviceDetails/Devices/Device", "id", x) for x in ("aaa-1", "aaa-2", "aaa-3")]),
    ("queryRecoveryPoints", "<QueryRecoveryPointsParameters><ArrayId>YYY</ArrayId>%s"
     "</QueryRecoveryPointsParameters>" % TGT, "QueryRecoveryPointsResults",
     [("QueryRecoveryPointsResults/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("QueryRecoveryPointsResults/TargetDevices/TargetDevice", "key", "xxx-3-peer")]),
    ("checkTestFailoverStart", "<CheckTestFailoverStartParameters><ArrayId>10000A0</ArrayId>%s"
     "</CheckTestFailoverStartParameters>" % TGT, "CheckTestFailoverStartResults",
     [("CheckTestFailoverStartResults/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("CheckTestFailoverStartResults/TargetDevices/TargetDevice", "key", "xxx-2-peer"),
      ("CheckTestFailoverStartResults/TargetDevices/TargetDevice", "key", "xxx-3-peer")]),
    ("checkFailover", "<CheckFailoverParameters><ArrayId>10000A0</ArrayId>%s"
     "</CheckFailoverParameters>" % TGT, "CheckFailoverResults",
     [("CheckFailoverResults/TargetDevices/TargetDevice", "key", "xxx-3-peer")]),
    ("testFailoverStart", "<TestFailoverStartParameters><ArrayId>10000A0</ArrayId><TargetGroups>"
     "<TargetGroup key=\"srm-target-1\"><RecoveryPoint id=\"snap-a1\" /></TargetGroup>"
     "</TargetGroups><TargetDevices><TargetDevice key=\"xxx-2-peer\" /><TargetDevice "
     "key=\"xxx-3-peer\"><RecoveryPoint id=\"snap-c3\" /></TargetDevice></TargetDevices>"
     "</TestFailoverStartParameters>", "TestFailoverStartResults",
     [("TestFailoverStartResults/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("TestFailoverStartResults/TargetDevices/TargetDevice", "key", "xxx-2-peer"),
      ("TestFailoverStartResults/TargetDevices/TargetDevice", "key", "xxx-3-peer")]),
    ("testFailoverStart", "<TestFailoverStartParameters><ArrayId>10000A0</ArrayId><AccessGroups>"
     "<AccessGroup id=\"host-group-A\"><Initiator type=\"FC\" id=\"20:00:00:E0:8B:8F:55:4B\" />"
     "</AccessGroup><AccessGroup id=\"host-group-B\"><Initiator type=\"FC\" "
     "id=\"20:00:00:E1:8B:8F:55:4B\" /></AccessGroup></AccessGroups><TargetGroups><TargetGroup "
     "key=\"srm-target-1\"><RecoveryPoint id=\"snap-a2\" /><TargetDevices><TargetDevice "
     "key=\"xxx-1-peer\"><AccessGroups><AccessGroup id=\"host-group-A\"/><AccessGroup "
     "id=\"host-group-B\"/></AccessGroups></TargetDevice></TargetDevices></TargetGroup>"
     "</TargetGroups><TargetDevices><TargetDevice key=\"xxx-2-peer\"><AccessGroups><AccessGroup "
     "id=\"host-group-B\"/></AccessGroups></TargetDevice><TargetDevice key=\"xxx-3-peer\">"
     "<AccessGroups><AccessGroup id=\"host-group-B\"/></AccessGroups></TargetDevice>"
     "</TargetDevices></TestFailoverStartParameters>", "TestFailoverStartResults",
     [("TestFailoverStartResults/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("TestFailoverStartResults/TargetDevices/TargetDevice", "key", "xxx-3-peer")]),
    ("failover", "<FailoverParameters><ArrayId>10000A0</ArrayId><TargetGroups><TargetGroup "
     "key=\"srm-target-1\"><RecoveryPoint id=\"snap-a1\" /></TargetGroup></TargetGroups>"
     "<TargetDevices><TargetDevice key=\"xxx-2-peer\" /><TargetDevice key=\"xxx-3-peer\">"
     "<RecoveryPoint id=\"snap-c3\" /></TargetDevice></TargetDevices></FailoverParameters>",
     "FailoverResults",
     [("FailoverResults/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("FailoverResults/TargetDevices/TargetDevice", "key", "xxx-2-peer")]),
    ("testFailoverStop", "<TestFailoverStopParameters><ArrayId>10000A0</ArrayId>%s"
     "</TestFailoverStopParameters>" % TGT, "TestFailoverStopResults",
     [("TestFailoverStopResults/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("TestFailoverStopResults/TargetDevices/TargetDevice", "key", "xxx-3-peer")]),
    ("prepareFailover", "<PrepareFailoverParameters><ArrayId>10000A0</ArrayId>%s"
     "</PrepareFailoverParameters>" % SRC, "PrepareFailoverResults",
     [("PrepareFailoverResults/ConsistencyGroups/ConsistencyGroup", "id", "srm-1"),
      ("PrepareFailoverResults/SourceDevices/SourceDevice", "id", "xxx-2"),
      ("PrepareFailoverResults/SourceDevices/SourceDevice", "id", "xxx-3")]),
    ("syncOnce", "<SyncOnceParameters><ArrayId>XXX</ArrayId><PeerArrayId>YYY</PeerArrayId>%s"
     "</SyncOnceParameters>" % SRC, "SyncOnceResults",
     [("SyncOnceResults/ConsistencyGroups/ConsistencyGroup", "id", "srm-1"),
      ("SyncOnceResults/SourceDevices/SourceDevice", "id", "xxx-3")]),
    ("syncOnce", "<SyncOnceParameters><ArrayId>YYY</ArrayId><PeerArrayId>XXX</PeerArrayId>%s"
     "</SyncOnceParameters>" % TGT, "SyncOnceResults",
     [("SyncOnceResults/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("SyncOnceResults/TargetDevices/TargetDevice", "key", "xxx-2-peer")]),
    ("querySyncStatus", "<QuerySyncStatusParameters><ArrayId>XXX</ArrayId><PeerArrayId>YYY"
     "</PeerArrayId><ConsistencyGroups><ConsistencyGroup id=\"srm-1\" syncId=\"sync-1020\"/>"
     "</ConsistencyGroups><SourceDevices><SourceDevice id=\"xxx-2\" syncId=\"sync-1022\"/>"
     "<SourceDevice id=\"xxx-3\" syncId=\"sync-1023\"/></SourceDevices>"
     "</QuerySyncStatusParameters>", "QuerySyncStatusResults",
     [("QuerySyncStatusResults/ConsistencyGroups/ConsistencyGroup", "id", "srm-1"),
      ("QuerySyncStatusResults/SourceDevices/SourceDevice", "id", "xxx-3")]),
    ("querySyncStatus", "<QuerySyncStatusParameters><ArrayId>YYY</ArrayId><PeerArrayId>XXX"
     "</PeerArrayId><TargetGroups><TargetGroup key=\"srm-target-1\" syncId=\"sync-1020\"/>"
     "</TargetGroups><TargetDevices><TargetDevice key=\"xxx-2-peer\" syncId=\"sync-1022\"/>"
     "<TargetDevice key=\"xxx-3-peer\" syncId=\"sync-1023\"/></TargetDevices>"
     "</QuerySyncStatusParameters>", "QuerySyncStatusResults",
     [("QuerySyncStatusResults/TargetGroups/TargetGroup", "key", "srm-target-1"),
      ("QuerySyncStatusResults/TargetDevices/TargetDevice", "key", "xxx-2-peer")]),
]
for cmd, res, arr, peer, g, d1, d2 in (
        ("reverseReplication", "ReverseReplicationResults", "YYY", "XXX", "srm-target-1",
         "xxx-2-copy", "xxx-3-copy"),
        ("prepareReverseReplication", "PrepareReverseReplicationResults", "YYY", "XXX",
         "srm-target-1", "xxx-2-copy", "xxx-3-copy"),
        ("restoreReplication", "RestoreReplicationResults", "XXX", "YYY", "srm-1", "xxx-2",
         "xxx-3"),
        ("prepareRestoreReplication", "PrepareRestoreReplicationResults", "XXX", "YYY",
         "srm-1", "xxx-2", "xxx-3")):
    tag = cmd[0].upper() + cmd[1:] + "Parameters"
    EXAMPLES.append((cmd, "<%s><ArrayId>%s</ArrayId><PeerArrayId>%s</PeerArrayId>"
                          "<ConsistencyGroups><ConsistencyGroup id=\"%s\"><ReplicationSettings/>"
                          "</ConsistencyGroup></ConsistencyGroups><Devices><Device id=\"%s\">"
                          "<ReplicationSettings/></Device><Device id=\"%s\"><ReplicationSettings/>"
                          "</Device></Devices></%s>" % (tag, arr, peer, g, d1, d2, tag), res,
                     [(res + "/ConsistencyGroups/ConsistencyGroup", "id", g),
                      (res + "/Devices/Device", "id", d1), (res + "/Devices/Device", "id", d2)]))

# The request SRM really sent (srm-sra-communication-example.txt), paths made local.
REAL_QUERY_CAPABILITIES = """<?xml version="1.0" encoding="UTF-8"?>
<Command xmlns="http://www.vmware.com/srm/sra/v2">
<Name>queryCapabilities</Name>
<OutputFile>%s</OutputFile>
<StatusFile>%s</StatusFile>
<LogLevel>verbose</LogLevel>
<LogDirectory>%s</LogDirectory>
</Command>
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sra-dir", required=True)
    ap.add_argument("--replun", required=True)
    ap.add_argument("--xsd", required=True)
    a = ap.parse_args()
    env = Env(a.sra_dir, a.replun, a.xsd)
    t0 = time.time()
    try:
        sites = {}
        for name in ("10000A0", "10000B1", "XXX", "YYY"):
            sites[name] = Site(env, "arr-" + name, name)
            env.cli("array", "init", sites[name].path, "--id", name)
        env.cli("array", "pair", sites["10000A0"].path, sites["10000B1"].path)
        env.cli("array", "pair", sites["XXX"].path, sites["YYY"].path)
        site = sites["10000A0"]
        site.extra_uris = [s.uri for n, s in sites.items() if n != "10000A0"]
        for cmd, body, result, expect in EXAMPLES:
            r = site.sra(cmd, body)
            check(r.find(Q + result) is not None, "spec example %s: answered with <%s>" % (
                cmd, result))
            for path, attr, value in expect:
                found = [e for e in r.findall(q(path)) if e.get(attr) == value]
                check(len(found) == 1, "spec example %s: item %s=%s answered" % (cmd, attr,
                                                                              value))
        out = os.path.join(env.tmp, "real-out.xml")
        p = site.run_raw(REAL_QUERY_CAPABILITIES % (out, out + ".status", site.logdir), out)
        check(p.returncode == 0, "real SRM queryCapabilities request: exit 0")
        env.validate(out)
        check(ET.parse(out).getroot().find(Q + "AdapterCapabilities") is not None,
              "real SRM queryCapabilities request answered")
    except Fail as e:
        print("FAILED: %s (temp dir %s kept)" % (e, env.tmp))
        return 1
    print("PASS: spec examples: %d checks, %d responses validated, %.1f s" % (
        CHECKS[0], env.responses, time.time() - t0))
    env.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
