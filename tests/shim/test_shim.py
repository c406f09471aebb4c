#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Tests of python-shim/: the install step (DESTDIR, sm-plugins fragment) and the XAPI host
# plugin, called exactly as xapi calls it (argv[1] methodCall, {Status, Value} answer).
"""Usage: test_shim.py install|errors|plugin

install  replun-xapi-register and `cmake --install --component xapi` into temp DESTDIRs
errors   every failure path of the host plugin, against a fake replun printing canned output
plugin   every plugin function against the real replun on two real file arrays
Env: REPLUN_SHIM (plugin file), REPLUN_BIN (real replun), REPLUN_BUILD_DIR (cmake build dir).
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "xapi"))
import xapi_sim  # noqa: E402
from xapi_sim import Failure  # noqa: E402

SHIM = os.environ.get("REPLUN_SHIM", os.path.join(SRC, "python-shim", "replun"))
REGISTER = os.path.join(SRC, "python-shim", "replun-xapi-register")
SR_UUID = "976e0ed5-2901-47b0-8962-ad6e76d6b55a"


def log(msg):
    print("[shim] " + msg, flush=True)


class Install(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="replun-shim-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def reg(self, *args):
        return subprocess.run([sys.executable, REGISTER] + list(args), capture_output=True,
                              text=True, check=True).stdout

    def test_fragment_repeats_the_list_in_effect(self):
        dest = os.path.join(self.dir, "dest")
        os.makedirs(os.path.join(dest, "etc", "xapi.conf.d"))
        with open(os.path.join(dest, "etc", "xapi.conf"), "w") as f:
            f.write("# xapi\nsm-plugins=ext nfs iscsi\nother=1\nsm-plugins = ext nfs lvm\n")
        log("DESTDIR with xapi.conf (last line: ext nfs lvm) and a later fragment adding ext4")
        with open(os.path.join(dest, "etc", "xapi.conf.d", "sm-additional-drivers.conf"),
                  "w") as f:
            f.write("sm-plugins=ext nfs lvm ext4\n")
        out = self.reg("--destdir", dest)
        frag = os.path.join(dest, "etc", "xapi.conf.d", "zz-replun.conf")
        plug = os.path.join(dest, "etc", "xapi.d", "plugins", "replun")
        self.assertIn("wrote " + frag, out)
        with open(frag) as f:
            lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith("#")]
        self.assertEqual(lines, ["sm-plugins=ext nfs lvm ext4 replun"])
        log("fragment: sm-plugins=ext nfs lvm ext4 replun; it sorts after every other one")
        self.assertEqual(sorted(os.listdir(os.path.dirname(frag)))[-1], "zz-replun.conf")
        log("plugin installed executable and identical to python-shim/replun")
        self.assertTrue(os.stat(plug).st_mode & stat.S_IXUSR)
        self.assertEqual(stat.S_IMODE(os.stat(plug).st_mode), 0o755)
        with open(plug, "rb") as a, open(SHIM, "rb") as b:
            self.assertEqual(a.read(), b.read())
        log("re-running keeps one replun entry (idempotent)")
        self.reg("--destdir", dest)
        with open(frag) as f:
            line = [ln for ln in f if ln.startswith("sm-plugins=")]
        self.assertEqual(line, ["sm-plugins=ext nfs lvm ext4 replun\n"])
        log("--uninstall removes both files")
        self.reg("--destdir", dest, "--uninstall")
        self.assertFalse(os.path.exists(frag) or os.path.exists(plug))

    def test_default_list(self):
        dest = os.path.join(self.dir, "dest")
        log("no xapi.conf anywhere under the source root: xapi's default list plus replun")
        self.reg("--destdir", dest, "--source-root", os.path.join(self.dir, "empty"),
                 "--no-plugin")
        with open(os.path.join(dest, "etc", "xapi.conf.d", "zz-replun.conf")) as f:
            text = f.read()
        self.assertIn("sm-plugins=ext nfs iscsi lvmoiscsi dummy file hba rawhba udev iso lvm "
                      "lvmohba lvmofcoe shm smb replun\n", text)
        self.assertFalse(os.path.exists(os.path.join(dest, "etc", "xapi.d")))

    def test_cmake_install_component(self):
        build = os.environ.get("REPLUN_BUILD_DIR")
        if not build or not os.path.exists(os.path.join(build, "cmake_install.cmake")):
            self.fail("REPLUN_BUILD_DIR is not a configured build dir: %r" % build)
        dest = os.path.join(self.dir, "stage")
        log("DESTDIR=%s cmake --install --component xapi" % dest)
        env = dict(os.environ, DESTDIR=dest)
        subprocess.run(["cmake", "--install", build, "--component", "xapi"], env=env,
                       check=True, capture_output=True)
        plug = os.path.join(dest, "etc", "xapi.d", "plugins", "replun")
        frag = os.path.join(dest, "etc", "xapi.conf.d", "zz-replun.conf")
        self.assertEqual(stat.S_IMODE(os.stat(plug).st_mode), 0o755)
        with open(plug) as f:
            text = f.read()
        log("installed plugin points at the installed replun, not @REPLUN_BIN@")
        self.assertNotIn('INSTALLED_BIN = "@REPLUN_BIN@"', text)
        self.assertRegex(text, r'INSTALLED_BIN = "/.*/replun"')
        with open(frag) as f:
            self.assertRegex(f.read(), r"\nsm-plugins=.* replun\n")
        found = [os.path.relpath(os.path.join(r, n), dest)
                 for r, _, ns in os.walk(dest) for n in ns]
        log("files: %s" % sorted(found))
        self.assertTrue(any(p.endswith("sbin/replun-xapi-register") for p in found))


NOARG = object()


def call_plugin(fn, args, env, argv=None):
    """Run the plugin as xapi_plugins.ml does; returns (Status struct, stdout, stderr)."""
    doc = argv if argv is not None else xapi_sim.xapi_method_call(
        fn, ["OpaqueRef:c62ef24b-6c09-95c2-6d99-d05adc190964", args])
    p = subprocess.run([SHIM] + ([doc] if doc is not NOARG else []), env=env,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError("plugin exited %d: %s %s" % (p.returncode, p.stdout, p.stderr))
    (r,), _ = xmlrpc.client.loads(p.stdout)
    if "Traceback" in p.stdout + p.stderr:
        raise AssertionError("python traceback leaked: %s %s" % (p.stdout, p.stderr))
    return r, p.stdout, p.stderr


FAKE = """#!/bin/sh
# fake replun: prints what FAKE_OUT holds, FAKE_ERR on stderr, exits FAKE_RC; logs argv
printf '%s\\n' "$*" >> "$FAKE_LOG"
[ -n "$FAKE_OUT" ] && printf '%s' "$FAKE_OUT"
[ -n "$FAKE_ERR" ] && printf '%s\\n' "$FAKE_ERR" >&2
exit "${FAKE_RC:-0}"
"""


class Errors(unittest.TestCase):
    """Failure answers: {Status: Failure, ErrorDescription: [...]}, never a traceback."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="replun-shim-")
        self.fake = os.path.join(self.dir, "replun")
        with open(self.fake, "w") as f:
            f.write(FAKE)
        os.chmod(self.fake, 0o755)
        self.flog = os.path.join(self.dir, "argv.log")
        self.env = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "REPLUN_BIN": self.fake,
                    "FAKE_LOG": self.flog,
                    "REPLUN_XAPI_SOCKET": os.path.join(self.dir, "no-xapi")}
        self.args = {"sr_uuid": SR_UUID, "array": "file:///srv/a"}

    def tearDown(self):
        shutil.rmtree(self.dir)

    def fail_with(self, fn, args, kind, contains, **fake):
        env = dict(self.env, **fake)
        r, _, _ = call_plugin(fn, args, env)
        self.assertEqual(r["Status"], "Failure", r)
        d = r["ErrorDescription"]
        self.assertEqual(d[:3], ["XENAPI_PLUGIN_FAILURE", fn, kind], d)
        self.assertIn(contains, d[3])
        return d

    def test_arguments(self):
        log("missing sr_uuid / array -> ArgumentError naming the argument")
        self.fail_with("sync", {"array": "/a"}, "ArgumentError", "'sr_uuid'")
        self.fail_with("failover", {"sr_uuid": SR_UUID}, "ArgumentError", "'array'")
        log("bad sr_uuid, relative array, option injection, bad wait -> ArgumentError")
        self.fail_with("sync", dict(self.args, sr_uuid="x; rm -rf /"), "ArgumentError",
                       "sr_uuid")
        self.fail_with("sync", dict(self.args, array="srv/a"), "ArgumentError", "absolute")
        self.fail_with("sync", dict(self.args, array="--help"), "ArgumentError", "'-'")
        self.fail_with("sync", dict(self.args, wait="yes"), "ArgumentError", "wait")
        self.fail_with("reverse", dict(self.args, group="-x"), "ArgumentError", "group")
        self.assertFalse(os.path.exists(self.flog), "replun must not run on bad arguments")

    def test_protocol(self):
        log("unknown function -> UNKNOWN_XENAPI_PLUGIN_FUNCTION")
        r, _, _ = call_plugin("frobnicate", self.args, self.env)
        self.assertEqual(r, {"Status": "Failure",
                             "ErrorDescription": ["UNKNOWN_XENAPI_PLUGIN_FUNCTION",
                                                  "frobnicate"]})
        log("malformed methodCall and missing argv -> BadRequest failure, exit 0")
        r, _, _ = call_plugin("x", None, self.env, argv="<methodCall><oops")
        self.assertEqual(r["ErrorDescription"][2], "BadRequest")
        r, _, _ = call_plugin("x", None, self.env, argv=NOARG)
        self.assertEqual(r["ErrorDescription"][2], "BadRequest")
        log("args not a struct -> BadRequest")
        doc = xmlrpc.client.dumps(("OpaqueRef:x", ["a"]), "sync")
        r, _, _ = call_plugin("sync", None, self.env, argv=doc)
        self.assertEqual(r["ErrorDescription"][2], "BadRequest")

    def test_replun_errors(self):
        log("replun exits 3 with 'replun: group ... not found' -> ReplunError with that text")
        d = self.fail_with("failover", self.args, "ReplunError", "group 'g' not found",
                           FAKE_RC="3", FAKE_ERR="replun: group 'g' not found")
        log("partial failure: JSON items with errors are returned as the 5th parameter")
        out = json.dumps({"ok": False, "items": [
            {"kind": "device", "id": "d1", "ok": False, "error": "device 'd1' is busy"},
            {"kind": "device", "id": "d2", "ok": True, "error": None}]})
        d = self.fail_with("reverse", self.args, "ReplunError", "device 'd1' is busy",
                           FAKE_RC="4", FAKE_OUT=out)
        self.assertEqual(json.loads(d[4])["items"][1]["id"], "d2")
        log("exit 0 without JSON -> ReplunError (never a half answer)")
        self.fail_with("sync", self.args, "ReplunError", "printed no JSON", FAKE_OUT="done")
        log("replun missing -> ReplunError naming it")
        env = dict(self.env, REPLUN_BIN=os.path.join(self.dir, "nope"))
        r, _, _ = call_plugin("sync", self.args, env)
        self.assertEqual(r["ErrorDescription"][2], "ReplunError")
        self.assertIn("cannot run", r["ErrorDescription"][3])

    def test_argv_passed(self):
        log("each function runs the documented replun command line")
        want = {
            "sync": "sync /srv/a --group G --json",
            "test_failover_start": "test-failover start /srv/a --group G --json",
            "test_failover_stop": "test-failover stop /srv/a --group G --json",
            "prepare_failover": "prepare-failover /srv/a --group G --json",
            "failover": "failover /srv/a --group G --peer siteB --json",
            "reverse": "reverse /srv/a --group G --json",
            "restore": "restore /srv/a --group G --json",
        }
        for fn, line in want.items():
            args = {"sr_uuid": SR_UUID, "array": "/srv/a", "group": "G"}
            if "--peer" in line:
                args["peer"] = "siteB"
            os.environ.pop("X", None)
            if os.path.exists(self.flog):
                os.unlink(self.flog)
            r, _, _ = call_plugin(fn, args, dict(self.env, FAKE_OUT='{"ok": true}'))
            self.assertEqual(r, {"Status": "Success", "Value": '{"ok": true}'})
            with open(self.flog) as f:
                self.assertEqual(f.read().strip(), line)
        log("sync wait=true timeout=60 -> --wait --timeout 60; group defaults to sr_uuid")
        os.unlink(self.flog)
        call_plugin("sync", dict(self.args, wait="true", timeout="60"),
                    dict(self.env, FAKE_OUT="{}"))
        with open(self.flog) as f:
            self.assertEqual(f.read().strip(), "sync file:///srv/a --group %s --wait --timeout "
                             "60 --json" % SR_UUID)


class Plugin(unittest.TestCase):
    """Happy paths: the real replun on two real file arrays, through xapi's host.call_plugin."""

    @classmethod
    def setUpClass(cls):
        cls.bin = os.environ.get("REPLUN_BIN", "")
        if not (cls.bin and os.access(cls.bin, os.X_OK)):
            raise AssertionError("the replun command is not built (REPLUN_BIN=%r): the host "
                                 "plugin cannot be tested against real arrays" % cls.bin)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="replun-shim-")
        self.a = os.path.join(self.dir, "siteA")
        self.b = os.path.join(self.dir, "siteB")
        self.r("array", "init", self.a, "--id", "siteA")
        self.r("array", "init", self.b, "--id", "siteB")
        self.r("array", "pair", self.a, self.b)
        self.r("lun", "create", self.a, "disk1", "4M", "--group", SR_UUID, "--replicate")
        self.r("lun", "create", self.a, "disk2", "4M", "--group", SR_UUID, "--replicate")
        plugins = os.path.join(self.dir, "plugins")
        os.mkdir(plugins)
        shutil.copy(SHIM, os.path.join(plugins, "replun"))
        self.x = xapi_sim.Xapi(os.path.join(self.dir, "xapi"), plugin_dir=plugins,
                               env_extra={"REPLUN_BIN": self.bin}).start()
        self.c = xapi_sim.XenAPIClient(self.x.socket_path)
        self.s = self.c.call("session.login_with_password", "root", "", "2.21", "test")

    def tearDown(self):
        self.c.close()
        self.x.stop()
        shutil.rmtree(self.dir)

    def r(self, *args):
        p = subprocess.run([self.bin] + list(args), capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError("replun %s: %s" % (" ".join(args), p.stderr))
        return p.stdout

    def plugin(self, fn, array, **extra):
        args = {"sr_uuid": SR_UUID, "array": "file://" + array}
        args.update(extra)
        v = self.c.call("host.call_plugin", self.s, self.x.host, "replun", fn, args)
        self.assertIsInstance(v, str)
        return json.loads(v)

    def test_array_from_pbd(self):
        log("no array argument: read from device-config:array of the SR's PBD on this host")
        db = self.x.db
        sr = db.create("SR", uuid=SR_UUID, type="replun", name_label="S")
        db.create("PBD", SR=sr, host=self.x.host, device_config={"array": "file://" + self.a})
        v = json.loads(self.c.call("host.call_plugin", self.s, self.x.host, "replun", "status",
                                   {"sr_uuid": SR_UUID}))
        self.assertEqual(v["array"], "file://" + self.a)
        self.assertEqual(len(v["luns"]), 2)
        self.assertTrue(any(c["method"] == "PBD.get_all_records_where" for c in self.x.calls))
        log("an SR without a PBD here and no array argument -> ArgumentError")
        db.create("SR", uuid="976e0ed5-2901-47b0-8962-ad6e76d6b55b", type="replun")
        with self.assertRaises(Failure) as cm:
            self.c.call("host.call_plugin", self.s, self.x.host, "replun", "status",
                        {"sr_uuid": "976e0ed5-2901-47b0-8962-ad6e76d6b55b"})
        self.assertEqual(cm.exception.params[:2], ["status", "ArgumentError"])
        self.assertEqual(self.x.violations, [])

    def test_workflows(self):
        log("status at A: two LUNs in the SR's group, no sync yet")
        st = self.plugin("status", self.a)
        self.assertEqual(st["group"], SR_UUID)
        names = sorted(d["name"] for d in (st["luns"] if isinstance(st["luns"], list)
                                           else st["luns"].get("luns", [])))
        self.assertEqual(names, ["disk1", "disk2"])
        log("sync wait=true at A: complete")
        s = self.plugin("sync", self.a, wait="true")
        s = s[0] if isinstance(s, list) else s
        self.assertEqual(s["status"], "complete", s)
        # no writer: the recovery point is write-order consistent, the session says so
        self.assertEqual(s["warnings"], [], s)
        st = self.plugin("status", self.a)
        self.assertEqual(st["sync"]["status"], "complete")
        self.assertEqual(st["sync"]["warnings"], [])
        for fn, site in (("test_failover_start", self.b), ("test_failover_stop", self.b),
                         ("prepare_failover", self.a)):
            log("%s at %s: every item ok" % (fn, os.path.basename(site)))
            res = self.plugin(fn, site)
            self.assertTrue(res["ok"], res)
            self.assertTrue(all(i["ok"] for i in res["items"]), res)
        log("sync from the demoted source, failover at B")
        self.plugin("sync", self.a, wait="true")
        res = self.plugin("failover", self.b)
        self.assertTrue(res["ok"], res)
        log("failover repeated: succeeds with a warning (idempotent)")
        res = self.plugin("failover", self.b)
        self.assertTrue(res["ok"], res)
        self.assertTrue(any(i["warnings"] for i in res["items"]), res)
        log("restore at A: B's changes discarded, A is the source again")
        res = self.plugin("restore", self.a)
        self.assertTrue(res["ok"], res)
        self.plugin("sync", self.a, wait="true")
        log("prepare_failover at A, failover at B, reverse at B")
        self.assertTrue(self.plugin("prepare_failover", self.a)["ok"])
        self.plugin("sync", self.a, wait="true")
        self.assertTrue(self.plugin("failover", self.b)["ok"])
        res = self.plugin("reverse", self.b)
        self.assertTrue(res["ok"], res)
        s = self.plugin("sync", self.b, wait="true")
        s = s[0] if isinstance(s, list) else s
        self.assertEqual(s["status"], "complete", s)
        log("a workflow on a group that does not exist: XENAPI_PLUGIN_FAILURE from replun")
        with self.assertRaises(Failure) as cm:
            self.plugin("failover", self.b, group="nosuchgroup")
        self.assertEqual(cm.exception.code, "XENAPI_PLUGIN_FAILURE")
        self.assertEqual(cm.exception.params[:2], ["failover", "ReplunError"])


if __name__ == "__main__":
    which = sys.argv.pop(1) if len(sys.argv) > 1 else "all"
    suites = {"install": Install, "errors": Errors, "plugin": Plugin}
    loader = unittest.TestLoader()
    if which == "all":
        suite = unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in suites.values())
    else:
        suite = loader.loadTestsFromTestCase(suites[which])
    ok = unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()
    sys.exit(0 if ok else 1)
