#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Self-tests of the XAPI simulator and its xe front: XAPI's wire dialect byte for byte, strict
# response parsing, XenAPI argument enforcement, and the xe -> SMAPI sequences on a dummy plugin.

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import xapi_sim  # noqa: E402
from xapi_sim import Failure  # noqa: E402
import xe as xemod  # noqa: E402

HOST = "OpaqueRef:6d9f6a1e-0c2b-4b7e-9f51-3c2a8e1d4b10"
SESSION = "OpaqueRef:c62ef24b-6c09-95c2-6d99-d05adc190964"
SRREF = "OpaqueRef:88cb8c50-c240-d970-05fa-86c11d40a376"
SRUUID = "976e0ed5-2901-47b0-8962-ad6e76d6b55a"


def log(msg):
    print("[xapi-sim] " + msg, flush=True)


class Dialect(unittest.TestCase):
    """The methodCall documents must be exactly what xapi's xml-light2 prints (research 1.4)."""

    def setUp(self):
        with open(os.path.join(HERE, "fixtures", "xapi-calls.xml")) as f:
            self.expected = f.read().splitlines()

    def test_literal_examples(self):
        b = xapi_sim.SmExec.build_call
        dc = {"SRmaster": "true", "target": "10.0.0.5"}
        got = [
            b({"host_ref": HOST, "command": "sr_get_driver_info", "args": [],
               "device_config": {}}),
            b({"host_ref": HOST, "command": "sr_attach", "args": [], "device_config": dc,
               "session_ref": SESSION, "sr_ref": SRREF, "sr_uuid": SRUUID,
               "subtask_of": "DummyRef:|257d0fe7-815c-b642-d3fe-2933c542939f|SR.attach"}),
            # members given out of order on purpose: the builder must reorder them
            b({"subtask_of": "DummyRef:|3b1f5e2a-6d0c-4a8e-9b7f-1c2d3e4f5a6b|VDI.create",
               "vdi_sm_config": {}, "sr_uuid": SRUUID, "vdi_type": "user", "sr_ref": SRREF,
               "session_ref": SESSION, "device_config": dc, "command": "vdi_create",
               "host_ref": HOST,
               "args": ["10737418240", "data disk", "", "", "false", "19700101T00:00:00Z", "",
                        "false"]}),
            b({"host_ref": HOST, "command": "vdi_attach", "args": ["true"],
               "device_config": {"SRmaster": "false", "target": "10.0.0.5"},
               "session_ref": SESSION, "sr_ref": SRREF, "sr_uuid": SRUUID,
               "vdi_ref": "OpaqueRef:11e52ee9-eef1-8ccb-6d67-752b351d5319",
               "vdi_location": "e25e1317-260a-4714-b7af-0ef32a87b1b1",
               "vdi_uuid": "e25e1317-260a-4714-b7af-0ef32a87b1b1",
               "subtask_of": "DummyRef:|a8fee549-cb2d-1fa9-3450-e0b8a5506016|VDI.attach",
               "vdi_on_boot": "persist", "vdi_allow_caching": "false"}),
        ]
        for i, (g, e) in enumerate(zip(got, self.expected)):
            log("byte-exact XAPI dialect, example %d (%s)" % (i + 1, g[25:60]))
            self.assertEqual(g, e)
        self.assertEqual(len(got), len(self.expected))

    def test_escaping(self):
        log("escaping: & < > \" become entities, control characters are dropped")
        s = xapi_sim.xapi_value("a&b<c>d\"e'f\x01g\th")
        self.assertEqual(s, "<value>a&amp;b&lt;c&gt;d&quot;e'fg\th</value>")
        self.assertEqual(xapi_sim.xapi_value(""), "<value/>")
        self.assertEqual(xapi_sim.xapi_value([]), "<value><array><data/></array></value>")
        self.assertEqual(xapi_sim.xapi_value({}), "<value><struct/></value>")
        log("python's loads reads the dialect back unchanged")
        doc = xapi_sim.xapi_method_call("m", [{"k": "", "l": ["x", ""], "e": {}}])
        (p,), m = xmlrpc.client.loads(doc)
        self.assertEqual((m, p), ("m", {"k": "", "l": ["x", ""], "e": {}}))


class ResponseParsing(unittest.TestCase):
    P = staticmethod(xmlrpc.client.dumps)

    def test_success_forms(self):
        log("accepts python's dumps output and xapi's one-line dialect")
        r = xapi_sim.xapi_parse_response(self.P((None,), methodresponse=True, allow_none=True))
        self.assertEqual(r, ("ok", None))
        r = xapi_sim.xapi_parse_response(
            "<methodResponse><params><param><value>abc</value></param></params></methodResponse>")
        self.assertEqual(r, ("ok", "abc"))
        r = xapi_sim.xapi_parse_response(
            "<methodResponse><params><param><value/></param></params></methodResponse>")
        self.assertEqual(r, ("ok", ""))

    def test_faults(self):
        for tag in ("int", "i4"):
            log("fault with <%s> code" % tag)
            doc = ("<?xml version='1.0'?><methodResponse><fault><value><struct><member><name>"
                   "faultCode</name><value><%s>78</%s></value></member><member><name>faultString"
                   "</name><value><string>VDI Creation failed [opterr=x]</string></value></member>"
                   "</struct></value></fault></methodResponse>" % (tag, tag))
            self.assertEqual(xapi_sim.xapi_parse_response(doc),
                             ("fault", 78, "VDI Creation failed [opterr=x]"))
        log("fault code as a string is rejected")
        with self.assertRaises(xapi_sim.ParseError):
            xapi_sim.xapi_parse_response(self.P(xmlrpc.client.Fault("78", "x"),
                                                methodresponse=True))

    def test_rejects(self):
        ok = self.P((None,), methodresponse=True, allow_none=True)
        for name, doc in [("debug text before", "hello\n" + ok), ("two responses", ok + ok),
                          ("empty stdout", ""), ("methodCall", xmlrpc.client.dumps((1,), "x")),
                          ("two params", "<methodResponse><params><param><value>a</value>"
                                         "</param><param><value>b</value></param></params>"
                                         "</methodResponse>"),
                          ("text in value", "<methodResponse><params><param><value>a<nil/>"
                                            "</value></param></params></methodResponse>")]:
            log("rejects stdout with %s" % name)
            with self.assertRaises(xapi_sim.ParseError):
                xapi_sim.xapi_parse_response(doc)

    def test_typed(self):
        log("unit results must be <nil/>")
        with self.assertRaises(xapi_sim.ParseError):
            xapi_sim.parse_unit("")
        log("vdi_info needs uuid and location")
        with self.assertRaises(xapi_sim.ParseError):
            xapi_sim.parse_vdi_info({"uuid": "u"})
        log("attach result needs params_nbd; o_direct defaults to true")
        with self.assertRaises(xapi_sim.ParseError):
            xapi_sim.parse_attach_result({"params": "/dev/x"})
        a = xapi_sim.parse_attach_result({"params_nbd": "nbd:unix:/s"})
        self.assertTrue(a["o_direct"])
        log("driver_info needs every required member")
        with self.assertRaises(xapi_sim.ParseError):
            xapi_sim.parse_driver_info({"name": "x"})

    def test_fault_mapping(self):
        log("fault codes map to xapi's API errors")
        m = xapi_sim.map_fault
        self.assertIsInstance(m("vdi_clone", 38, "", "", {}), xapi_sim.NotImplementedInBackend)
        self.assertEqual(m("sr_delete", 39, "", "", {}).code, "SR_NOT_EMPTY")
        self.assertEqual(m("vdi_activate", 24, "", "", {"vdi_ref": "r"}).code, "VDI_IN_USE")
        f = m("vdi_create", 78, "VDI Creation failed", "err", {})
        self.assertEqual(f.description, ["SR_BACKEND_FAILURE_78", "", "VDI Creation failed",
                                         "err"])


class Server(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="xapi-sim-")
        self.x = xapi_sim.Xapi(os.path.join(self.dir, "xapi")).start()
        self.c = xapi_sim.XenAPIClient(self.x.socket_path)
        self.sr = self.x.db.create("SR", name_label="t", type="dummy")
        self.sm = self.x.sm_session(self.sr)

    def tearDown(self):
        self.c.close()
        self.x.stop()
        shutil.rmtree(self.dir)

    def intro_args(self, **over):
        a = dict(uuid="e25e1317-260a-4714-b7af-0ef32a87b1b1", name_label="data disk",
                 name_description="", SR=self.sr, type="user", sharable=False, read_only=False,
                 other_config={}, location="loc-1", xenstore_data={}, sm_config={"k": "v"},
                 managed=True, virtual_size="10737418240", physical_utilisation="0",
                 metadata_of_pool=xapi_sim.NULL_REF, is_a_snapshot=False,
                 snapshot_time=xmlrpc.client.DateTime("19700101T00:00:00Z"),
                 snapshot_of=xapi_sim.NULL_REF, cbt_enabled=False)
        a.update(over)
        return [self.sm] + list(a.values())

    def expect(self, code, method, *params):
        with self.assertRaises(Failure) as cm:
            self.c.call(method, *params)
        self.assertEqual(cm.exception.code, code, cm.exception)
        return cm.exception

    def test_db_introduce(self):
        log("VDI.db_introduce with sm's exact argument list succeeds")
        ref = self.c.call("VDI.db_introduce", *self.intro_args())
        rec = self.c.call("VDI.get_record", self.sm, ref)
        self.assertEqual(rec["virtual_size"], "10737418240")
        self.assertEqual(rec["sm_config"], {"k": "v"})
        self.assertEqual(rec["SR"], self.sr)
        self.assertEqual(self.c.call("SR.get_VDIs", self.sm, self.sr), [ref])
        log("duplicate location -> LOCATION_NOT_UNIQUE")
        self.expect("LOCATION_NOT_UNIQUE", "VDI.db_introduce", *self.intro_args())
        log("bad uuid -> UUID_INVALID")
        self.expect("UUID_INVALID", "VDI.db_introduce",
                    *self.intro_args(uuid="nope", location="loc-2"))
        self.assertEqual(self.x.violations, [])

    def test_enforcement(self):
        cases = [
            ("one argument short", "MESSAGE_PARAMETER_COUNT_MISMATCH", self.intro_args()[:-1]),
            ("<int> for an int64", "FIELD_TYPE_ERROR", self.intro_args(virtual_size=5)),
            ("string for a bool", "FIELD_TYPE_ERROR", self.intro_args(sharable="false")),
            ("string for a datetime", "FIELD_TYPE_ERROR",
             self.intro_args(snapshot_time="19700101T00:00:00Z")),
            ("bad vdi type", "ENUM_VALUE_INVALID", self.intro_args(type="disk")),
            ("arguments swapped", "FIELD_TYPE_ERROR",
             self.intro_args(sharable={}, other_config=False)),
        ]
        for what, code, args in cases:
            log("VDI.db_introduce with %s -> %s" % (what, code))
            self.expect(code, "VDI.db_introduce", *args)
        log("bad session -> SESSION_INVALID")
        self.expect("SESSION_INVALID", "SR.get_record", "OpaqueRef:nope", self.sr)
        log("SM-only setter from a root session -> PERMISSION_DENIED")
        root = self.c.call("session.login_with_password", "root", "pw", "2.21", "t")
        self.expect("PERMISSION_DENIED", "SR.set_physical_size", root, self.sr, "1")
        log("SM-only setter from another SR's SM session -> PERMISSION_DENIED")
        other = self.x.sm_session(self.x.db.create("SR", type="dummy"))
        self.expect("PERMISSION_DENIED", "SR.set_physical_size", other, self.sr, "1")
        log("unknown method -> MESSAGE_METHOD_UNKNOWN")
        self.expect("MESSAGE_METHOD_UNKNOWN", "VDI.frobnicate", self.sm)
        log("bad handle -> HANDLE_INVALID")
        self.expect("HANDLE_INVALID", "VDI.get_record", self.sm, "OpaqueRef:none")
        self.assertEqual(len(self.x.violations), len(cases) + 4)
        log("the SR's own SM session may set sizes")
        for m in ("set_physical_size", "set_physical_utilisation", "set_virtual_allocation"):
            self.c.call("SR." + m, self.sm, self.sr, "4096")
        self.assertEqual(self.x.db.field("SR", self.sr, "virtual_allocation"), 4096)

    def test_curl_xapi_dialect(self):
        """A non-python client (curl over the Unix socket, like libcurl in ReplunSR)."""
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        log("curl POSTs a one-line XAPI-dialect VDI.db_forget, chunked")
        ref = self.c.call("VDI.db_introduce", *self.intro_args())
        body = xapi_sim.xapi_method_call("VDI.db_forget", [self.sm, ref])
        out = subprocess.run(["curl", "-s", "--unix-socket", self.x.socket_path,
                              "-H", "Content-Type: text/xml", "-H", "Transfer-Encoding: chunked",
                              "--data-binary", body, "http://localhost/"],
                             capture_output=True, check=True).stdout.decode()
        (r,), _ = xmlrpc.client.loads(out)
        self.assertEqual(r["Status"], "Success", r)
        self.assertFalse(self.x.db.valid("VDI", ref))
        log("malformed XML -> XMLRPC_UNMARSHAL_FAILURE envelope")
        out = subprocess.run(["curl", "-s", "--unix-socket", self.x.socket_path,
                              "--data-binary", "<methodCall><oops>", "http://localhost/RPC2"],
                             capture_output=True, check=True).stdout.decode()
        (r,), _ = xmlrpc.client.loads(out)
        self.assertEqual(r["ErrorDescription"][0], "XMLRPC_UNMARSHAL_FAILURE")

    def test_where_and_persist(self):
        log("get_all_records_where parses field/and/or/not")
        a = self.c.call("VDI.db_introduce", *self.intro_args())
        b = self.c.call("VDI.db_introduce", *self.intro_args(
            uuid="e25e1317-260a-4714-b7af-0ef32a87b1b2", location="loc-2"))
        q = self.c.call("VDI.get_all_records_where", self.sm,
                        'field "SR" = "%s" and not (field "location" = "loc-1")' % self.sr)
        self.assertEqual(list(q), [b])
        q = self.c.call("VDI.get_all_records_where", self.sm,
                        'field "location" = "loc-1" or field "location" = "loc-2"')
        self.assertEqual(sorted(q), sorted([a, b]))
        log("the DB persists to JSON and loads back")
        path = os.path.join(self.dir, "db.json")
        self.x.save(path)
        y = xapi_sim.Xapi(os.path.join(self.dir, "xapi2"), state_file=path)
        self.assertEqual(y.dump(), self.x.dump())
        self.assertTrue(any(c["method"] == "VDI.db_introduce" for c in y.calls))


class XeOnDummy(unittest.TestCase):
    """The spec's test script, on the dummy plugin, checking the DB after every step."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="xapi-xe-")
        self.store = os.path.join(self.dir, "store")
        os.mkdir(self.store)
        self.x = xapi_sim.Xapi(os.path.join(self.dir, "xapi"),
                               sm_plugins={"dummy": os.path.join(HERE, "dummy_sm.py")}).start()
        self.xe = xemod.Xe(self.x)

    def tearDown(self):
        self.x.stop()
        shutil.rmtree(self.dir)

    def commands(self):
        return [e["command"] for e in self.x.sm.log]

    def mark(self):
        self.n = len(self.x.sm.log)

    def since(self):
        return [e["command"] for e in self.x.sm.log[self.n:]]

    def test_script(self):
        xe, db = self.xe, self.x.db
        dc = "device-config:path=" + self.store
        log("sr-create -> sr_create, sr_attach")
        sr_uuid = xe("sr-create", "type=dummy", "name-label=TestSR", "physical-size=0",
                     "content-type=user", dc)
        sr = db.by_uuid("SR", sr_uuid)
        self.assertEqual(self.commands(), ["sr_get_driver_info", "sr_create", "sr_attach"])
        pbd_uuid = xe("pbd-list", "sr-uuid=" + sr_uuid, "--minimal")
        self.assertTrue(db.field("PBD", db.by_uuid("PBD", pbd_uuid), "currently_attached"))
        create = self.x.sm.log[1]["members"]
        self.assertEqual(create["device_config"], {"SRmaster": "true", "path": self.store})
        self.assertEqual(create["args"], ["0"])

        log("vdi-create -> vdi_create; record introduced by the plugin")
        self.mark()
        v = xe("vdi-create", "sr-uuid=" + sr_uuid, "name-label=TestVDI", "type=user",
               "virtual-size=100MiB")
        self.assertEqual(self.since(), ["vdi_create"])
        rec = db.get("VDI", db.by_uuid("VDI", v))
        self.assertEqual((rec["name_label"], rec["virtual_size"], rec["SR"]),
                         ("TestVDI", 100 << 20, sr))
        log("vdi-destroy -> vdi_delete; record gone")
        self.mark()
        xe("vdi-destroy", "uuid=" + v)
        self.assertEqual(self.since(), ["vdi_delete"])
        self.assertEqual(db.find("VDI", SR=sr), [])

        log("vbd-create/plug/unplug -> epoch_begin, attach, activate / deactivate, detach, "
            "epoch_end")
        v = xe("vdi-create", "sr-uuid=" + sr_uuid, "name-label=TestVDI", "virtual-size=100MiB")
        vm = xe("vm-create", "name-label=TestVM")
        vbd = xe("vbd-create", "vdi-uuid=" + v, "vm-uuid=" + vm, "device=xvdc")
        self.mark()
        xe("vbd-plug", "uuid=" + vbd)
        self.assertEqual(self.since(), ["vdi_epoch_begin", "vdi_attach", "vdi_activate"])
        self.assertTrue(db.field("VBD", db.by_uuid("VBD", vbd), "currently_attached"))
        self.assertEqual(self.x.sm.log[-2]["members"]["args"], ["true"])
        self.mark()
        with self.assertRaises(Failure) as cm:
            xe("vdi-destroy", "uuid=" + v)
        self.assertEqual(cm.exception.code, "VDI_IN_USE")
        self.assertEqual(self.since(), [])
        xe("vbd-unplug", "uuid=" + vbd)
        self.assertEqual(self.since(), ["vdi_deactivate", "vdi_detach", "vdi_epoch_end"])

        log("vdi-snapshot / vdi-clone / vdi-resize")
        self.mark()
        snap = xe("vdi-snapshot", "uuid=" + v)
        self.assertEqual(self.since(), ["vdi_snapshot", "vdi_update"])
        s = db.get("VDI", db.by_uuid("VDI", snap))
        self.assertTrue(s["is_a_snapshot"])
        self.assertEqual(s["snapshot_of"], db.by_uuid("VDI", v))
        self.assertIn(snap, [db.field("VDI", r, "uuid") for r in
                             db.get("VDI", db.by_uuid("VDI", v))["snapshots"]])
        clone = xe("vdi-clone", "uuid=" + v, "new-name-label=Clone")
        self.assertEqual(db.field("VDI", db.by_uuid("VDI", clone), "name_label"), "Clone")
        xe("vdi-resize", "uuid=" + clone, "disk-size=200MiB")
        self.assertEqual(db.field("VDI", db.by_uuid("VDI", clone), "virtual_size"), 200 << 20)
        for u in (snap, clone, v):
            xe("vdi-destroy", "uuid=" + u)

        log("pbd-unplug, pbd-plug twice (one sr_attach), pbd-unplug twice (one sr_detach)")
        self.mark()
        xe("pbd-unplug", "uuid=" + pbd_uuid)
        xe("pbd-plug", "uuid=" + pbd_uuid)
        xe("pbd-plug", "uuid=" + pbd_uuid)
        xe("pbd-unplug", "uuid=" + pbd_uuid)
        xe("pbd-unplug", "uuid=" + pbd_uuid)
        self.assertEqual(self.since(), ["sr_detach", "sr_attach", "sr_detach"])

        log("sr-destroy -> sr_attach, sr_delete; records gone")
        self.mark()
        xe("sr-destroy", "uuid=" + sr_uuid)
        self.assertEqual(self.since(), ["sr_attach", "sr_delete"])
        self.assertEqual((db.all("SR"), db.all("PBD")), ([], []))

        log("sr-create, vdi-create, pbd-unplug, sr-forget: no SMAPI call")
        sr_uuid = xe("sr-create", "type=dummy", "name-label=TestSR", dc)
        v = xe("vdi-create", "sr-uuid=" + sr_uuid, "name-label=Keep", "virtual-size=1MiB")
        xe("pbd-unplug", "uuid=" + xe("pbd-list", "sr-uuid=" + sr_uuid, "--minimal"))
        self.mark()
        xe("sr-forget", "uuid=" + sr_uuid)
        self.assertEqual(self.since(), [])
        self.assertEqual((db.all("SR"), db.all("VDI")), ([], []))

        log("sr-introduce + pbd-create + pbd-plug + sr-scan bring the VDI back")
        host = db.field("host", self.x.host, "uuid")
        xe("sr-introduce", "uuid=" + sr_uuid, "name-label=TestSR", "type=dummy",
           "content-type=user")
        pbd_uuid = xe("pbd-create", "host-uuid=" + host, "sr-uuid=" + sr_uuid, dc)
        self.mark()
        xe("pbd-plug", "uuid=" + pbd_uuid)
        xe("sr-scan", "uuid=" + sr_uuid)
        self.assertEqual(self.since(), ["sr_attach", "sr_scan", "sr_update"])
        rec = db.get("VDI", db.by_uuid("VDI", v))
        self.assertEqual((rec["name_label"], rec["virtual_size"]), ("Keep", 1 << 20))
        sr = db.by_uuid("SR", sr_uuid)
        self.assertEqual(db.field("SR", sr, "virtual_allocation"), 1 << 20)
        self.assertEqual(db.field("SR", sr, "physical_size"), 1 << 40)

        log("sr-destroy of a non-empty SR -> SR_NOT_EMPTY, then sr_detach")
        xe("pbd-unplug", "uuid=" + pbd_uuid)
        self.mark()
        with self.assertRaises(Failure) as cm:
            xe("sr-destroy", "uuid=" + sr_uuid)
        self.assertEqual(cm.exception.code, "SR_NOT_EMPTY")
        self.assertEqual(self.since(), ["sr_attach", "sr_delete", "sr_detach"])
        self.assertEqual(self.x.violations, [])
        self.assertEqual(self.x.warnings, [])

    def test_vm_sequences(self):
        xe, db = xemod.Xe(self.x, datapath=False), self.x.db
        h2 = self.x.add_host("host-b")
        sr = xe("sr-create", "type=dummy", "shared=true", "device-config:path=" + self.store)
        xe("pool-param-set", "uuid=" + db.field("pool", self.x.pool, "uuid"), "default-SR=" + sr)
        seqs = [
            (("vm-install", "template=Other install media", "new-name-label=V"),
             ["vdi_create", "vdi_create"]),
            (("vm-start", "uuid=VM"), ["vdi_epoch_begin", "vdi_attach", "vdi_activate"] * 2),
            (("vm-suspend", "uuid=VM"), ["vdi_create", "vdi_attach", "vdi_activate",
                                         "vdi_deactivate", "vdi_detach"]
             + ["vdi_deactivate", "vdi_detach"] * 2),
            (("vm-resume", "uuid=VM"), ["vdi_attach", "vdi_activate"] * 3
             + ["vdi_deactivate", "vdi_detach", "vdi_delete"]),
            (("vm-migrate", "uuid=VM", "host-uuid=" + db.field("host", h2, "uuid")),
             ["vdi_attach"] * 2 + ["vdi_deactivate", "vdi_activate"] * 2 + ["vdi_detach"] * 2),
            (("vm-shutdown", "uuid=VM", "--force"),
             ["vdi_deactivate", "vdi_detach", "vdi_epoch_end"] * 2),
            (("vm-clone", "uuid=VM", "new-name-label=C"), ["vdi_clone", "vdi_update"] * 2),
            (("vm-uninstall", "uuid=VM"), ["vdi_delete"] * 2),
        ]
        vm = None
        for argv, want in seqs:
            log("%s -> %s" % (argv[0], " ".join(want)))
            argv = [a.replace("uuid=VM", "uuid=" + str(vm)) for a in argv]
            self.mark()
            out = xe(*argv)
            vm = out if argv[0] == "vm-install" else vm
            self.assertEqual(self.since(), want)
        log("vm-migrate sent attach/activate to the destination host (SRmaster=false)")
        mig = [e for e in self.x.sm.log
               if e["members"].get("subtask_of", "").endswith("VM.migrate")]
        self.assertEqual([e["members"]["host_ref"] == h2 for e in mig],
                         [True, True, False, True, False, True, False, False])
        self.assertEqual(mig[0]["members"]["device_config"]["SRmaster"], "false")
        self.assertEqual(self.x.violations, [])

    def test_errors(self):
        xe = self.xe
        log("sr-create without device-config:path -> SR_BACKEND_FAILURE_90, records removed")
        with self.assertRaises(Failure) as cm:
            xe("sr-create", "type=dummy", "name-label=x")
        self.assertEqual(cm.exception.code, "SR_BACKEND_FAILURE_90")
        self.assertEqual(self.x.db.all("SR"), [])
        log("unknown SR type -> SR_UNKNOWN_DRIVER")
        with self.assertRaises(Failure) as cm:
            xe("sr-create", "type=nope")
        self.assertEqual(cm.exception.code, "SR_UNKNOWN_DRIVER")
        log("sr-probe returns the plugin's XML string")
        os.mkdir(os.path.join(self.store, "abc"))
        out = xe("sr-probe", "type=dummy", "device-config:path=" + self.store)
        self.assertEqual(out, "<SRlist><SR><UUID>abc</UUID></SR></SRlist>")
        log("a plugin that exits non-zero -> SR_BACKEND_FAILURE non-zero exit")
        bad = os.path.join(self.dir, "BadSR")
        with open(bad, "w") as f:
            f.write("#!/bin/sh\necho oops; exit 3\n")
        os.chmod(bad, 0o755)
        self.x.sm_plugins["bad"] = bad
        with self.assertRaises(Failure) as cm:
            xe("sr-create", "type=bad")
        self.assertEqual(cm.exception.params[:2], ["non-zero exit", "oops\n"])

    def test_cli_state(self):
        log("xe.py command line keeps the pool in a JSON state file between runs")
        st = os.path.join(self.dir, "state.json")
        base = [sys.executable, os.path.join(HERE, "xe.py"), "--state", st,
                "--sm", "dummy=" + os.path.join(HERE, "dummy_sm.py")]
        sr = subprocess.run(base + ["sr-create", "type=dummy", "name-label=A",
                                    "device-config:path=" + self.store],
                            capture_output=True, check=True, text=True).stdout.strip()
        v = subprocess.run(base + ["vdi-create", "sr-uuid=" + sr, "name-label=d",
                                   "virtual-size=1MiB"],
                           capture_output=True, check=True, text=True).stdout.strip()
        out = subprocess.run(base + ["vdi-list", "sr-uuid=" + sr, "--minimal"],
                             capture_output=True, check=True, text=True).stdout.strip()
        self.assertEqual(out, v)
        p = subprocess.run(base + ["vdi-destroy", "uuid=nope"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Error code: UUID_INVALID", p.stderr)
        with open(st) as f:
            data = json.load(f)
        self.assertEqual(len(data["tables"]["VDI"]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
