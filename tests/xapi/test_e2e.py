#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of ReplunSR on the XAPI simulator: the spec's test script, VDI operations,
# the disaster-recovery story across two pools and two arrays, and bad input.
"""Usage: test_e2e.py script|vm|vdi|dr|dr-newvdi|badinput

Env: REPLUN_SR (build/bin/ReplunSR), REPLUN_BIN (build/bin/replun), REPLUN_SHIM (the host
plugin python-shim/replun), KEEP=1 keeps the temp dir. Every step prints what it checks; after
every step the simulator's DB is checked (and that the plugin made no protocol violation).
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import xapi_sim  # noqa: E402
from xapi_sim import Failure  # noqa: E402
from xe import Xe, nbd_uri  # noqa: E402

SR_BIN = os.environ.get("REPLUN_SR", "")
REPLUN = os.environ.get("REPLUN_BIN", "")
SHIM = os.environ.get("REPLUN_SHIM", os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                                  "python-shim", "replun"))
MiB = 1 << 20


class TestFailed(Exception):
    pass


def log(msg):
    print("[xapi] " + msg, flush=True)


def check(cond, msg):
    if not cond:
        raise TestFailed(msg)


def eq(got, want, what):
    if got != want:
        raise TestFailed("%s: got %r, want %r" % (what, got, want))


def expect_failure(code_prefix, fn, *args):
    try:
        fn(*args)
    except Failure as f:
        if not f.code.startswith(code_prefix):
            raise TestFailed("expected %s, got %s" % (code_prefix, f))
        return f
    raise TestFailed("expected failure %s, the call succeeded" % code_prefix)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def replun(*args, ok=(0,)):
    p = subprocess.run([REPLUN] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=300)
    if p.returncode not in ok:
        raise TestFailed("replun %s: exit %d: %s" % (" ".join(map(str, args)), p.returncode,
                                                      p.stderr.strip()))
    return p.stdout


def luns(array, group=None):
    out = json.loads(replun("lun", "list", array, *(["--group", group] if group else []),
                            "--json"))
    return out if isinstance(out, list) else out.get("luns", out.get("devices", []))


class Site:
    """One pool (one simulated XAPI with its own socket, lock and run dirs) at one site."""

    def __init__(self, root, name, hosts=1):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        plugins = os.path.join(self.dir, "xapi.d-plugins")
        os.mkdir(plugins)
        shutil.copy(SHIM, os.path.join(plugins, "replun"))
        self.smlog = os.path.join(self.dir, "SMlog")
        # NBD sockets live in RUN_DIR/nbd/<sr uuid>/<vdi>: keep it short (108-byte limit)
        tmp = os.environ.get("TMPDIR", "/tmp")
        self.run_dir = tempfile.mkdtemp(prefix="rx", dir=tmp if len(tmp) <= 24 else "/tmp")
        env = {"REPLUN_LOCK_DIR": os.path.join(self.dir, "lock"),
               "REPLUN_RUN_DIR": self.run_dir,
               "REPLUN_SM_LOG": self.smlog, "REPLUN_BIN": REPLUN}
        self.x = xapi_sim.Xapi(os.path.join(self.dir, "xapi"), hostname=name + "-host1",
                               sm_plugins={"replun": SR_BIN}, plugin_dir=plugins, env_extra=env,
                               state_file=None)
        self.x.state_file = os.path.join(self.dir, "xapi-db.json")
        self.host_dirs = []
        for i in range(1, hosts):
            h = self.x.add_host("%s-host%d" % (name, i + 1))
            # every host has its own /run and /var/lock
            rd = tempfile.mkdtemp(prefix="rx", dir=os.path.dirname(self.run_dir))
            self.host_dirs.append(rd)
            self.x.host_env[h] = {"REPLUN_RUN_DIR": rd,
                                  "REPLUN_LOCK_DIR": os.path.join(self.dir, "lock%d" % i)}
        self.x.start()
        self.xe = Xe(self.x)
        self.db = self.x.db

    def __call__(self, *argv):
        return self.xe(*argv)

    def check(self, what):
        """The DB invariants xapi keeps, and no protocol violation / contract warning."""
        x, db = self.x, self.db
        check(not x.violations, "%s: the plugin misused the XenAPI: %s" % (what, x.violations))
        check(not x.warnings, "%s: contract warnings: %s" % (what, x.warnings))
        for ref, v in db.records("VDI").items():
            check(db.valid("SR", v["SR"]), "%s: VDI %s points at a missing SR" % (what, ref))
            check(v["location"], "%s: VDI %s has no location" % (what, v["uuid"]))
        for sr in db.all("SR"):
            locs = [db.field("VDI", v, "location") for v in db.find("VDI", SR=sr)]
            check(len(locs) == len(set(locs)), "%s: duplicate VDI locations in SR" % what)
        for ref, p in db.records("PBD").items():
            check(db.valid("SR", p["SR"]) and db.valid("host", p["host"]),
                  "%s: dangling PBD %s" % (what, ref))
        for ref, b in db.records("VBD").items():
            check(db.valid("VDI", b["VDI"]), "%s: VBD %s points at a missing VDI" % (what, ref))
        if not any(b["currently_attached"] for b in db.records("VBD").values()):
            left = [p for d in [self.run_dir] + self.host_dirs for p in servers_running(d)]
            check(not left, "%s: no VBD is plugged but NBD servers still run: %s"
                  % (what, left))
        self.x.save()
        log("  DB ok after %s (%d SR, %d VDI, %d PBD, %d VBD)" % (
            what, len(db.all("SR")), len(db.all("VDI")), len(db.all("PBD")), len(db.all("VBD"))))

    def vdi(self, uuid):
        return self.db.get("VDI", self.db.by_uuid("VDI", uuid))

    def sr_vdis(self, sr_uuid):
        sr = self.db.by_uuid("SR", sr_uuid)
        return {self.db.field("VDI", v, "uuid"): self.db.get("VDI", v)
                for v in self.db.find("VDI", SR=sr)}

    def pbd(self, sr_uuid, host=None):
        sr = self.db.by_uuid("SR", sr_uuid)
        p = self.db.find("PBD", SR=sr, host=host or self.x.host)[0]
        return self.db.field("PBD", p, "uuid")

    def host_uuid(self, host=None):
        return self.db.field("host", host or self.x.host, "uuid")

    def dom0(self, host=None):
        for ref in self.db.find("VM", resident_on=host or self.x.host, is_control_domain=True):
            return self.db.field("VM", ref, "uuid")
        raise TestFailed("no dom0")

    def plugin(self, fn, **args):
        """xe host-call-plugin host-uuid=H plugin=replun fn=FN args:k=v..."""
        argv = ["host-call-plugin", "host-uuid=" + self.host_uuid(), "plugin=replun",
                "fn=" + fn] + ["args:%s=%s" % kv for kv in args.items()]
        return json.loads(self(*argv))

    def export(self, vdi_uuid, path):
        self("vdi-export", "uuid=" + vdi_uuid, "filename=" + path, "format=raw")
        return sha256(path)

    def sm_commands(self, since=0):
        return [e["command"] for e in self.x.sm.log[since:]]

    def cleanup(self):
        for ref, b in self.db.records("VBD").items():
            if b["currently_attached"]:
                try:
                    self("vbd-unplug", "uuid=" + b["uuid"])
                except Exception as e:  # keep cleaning up
                    log("cleanup: vbd-unplug %s: %s" % (b["uuid"], e))
        self.x.stop()
        for d in [self.run_dir] + self.host_dirs:
            kill_leftovers(d)
            shutil.rmtree(d, ignore_errors=True)

    def dump_logs(self):
        if os.path.exists(self.smlog):
            with open(self.smlog) as f:
                tail = f.read().splitlines()[-40:]
            print("---- %s SMlog (last 40 lines) ----" % self.name)
            print("\n".join(tail))
        for e in self.x.sm.log[-3:]:
            print("---- %s last SMAPI calls ----" % self.name)
            print("%s rc=%s stdout=%s stderr=%s error=%s" % (
                e["command"], e["rc"], e["stdout"][:1500], e["stderr"][:1500], e.get("error")))


def procs_naming(text):
    """[(pid, command line, state)] of the processes but this one whose command line contains
    @text."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            if text not in cmd:
                continue
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        found.append((int(pid), cmd, state))
    return found


def servers_running(run_dir, wait=3.0):
    """Processes whose command line names run_dir (the plugin's NBD servers), after giving
    stopped ones a moment to exit."""
    deadline = time.monotonic() + wait
    while True:
        found = ["%d: %s" % (pid, cmd[:100]) for pid, cmd, state in procs_naming(run_dir)
                 if state != "Z"]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def kill_leftovers(root):
    """Stop processes the plugin started for this test (NBD servers) that are still running."""
    for pid, cmd, _state in procs_naming(root):
        log("cleanup: killing leftover pid %d: %s" % (pid, cmd[:120]))
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def qemu_io(params_nbd, *cmds):
    argv = ["qemu-io", "-f", "raw"]
    for c in cmds:
        argv += ["-c", c]
    p = subprocess.run(argv + [params_nbd], capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    if p.returncode != 0 or "Pattern verification failed" in out or "failed" in out.lower():
        raise TestFailed("qemu-io %s on %s: %s" % (cmds, params_nbd, out))
    return out


def nbd_alive(params_nbd):
    p = subprocess.run(["nbdinfo", "--size", nbd_uri(params_nbd)], capture_output=True,
                       timeout=30)
    return p.returncode == 0


def make_data(path, size, seed):
    """size bytes: a few MiB of seeded data, the rest sparse zeros."""
    with open(path, "wb") as f:
        block = hashlib.sha256(seed.encode()).digest() * (MiB // 32)
        for i in range(min(size // MiB, 3)):
            f.seek(i * 5 * MiB % size)
            f.write(block[i:] + block[:i])
        f.truncate(size)
    return sha256(path)


# -------------------------------------------------------------------------------------------

def test_script(root):
    """The spec's appendix test script (without VM lifecycle: VBDs on a running test VM)."""
    arr = os.path.join(root, "arrayA")
    replun("array", "init", arr, "--id", "siteA")
    a = Site(root, "siteA")
    try:
        dc = "device-config:array=file://" + arr
        log("sr-create type=replun physical-size=0 content-type=user -> sr_create, sr_attach")
        sr = a("sr-create", "type=replun", "physical-size=0", "content-type=user",
               "name-label=TestSR", dc)
        eq(a.sm_commands(), ["sr_get_driver_info", "sr_create", "sr_attach"], "SMAPI calls")
        sm = a.xe.sm_record("replun")
        log("  SM registered: capabilities %s" % " ".join(sm["capabilities"]))
        for cap in ("VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_ACTIVATE",
                    "VDI_DEACTIVATE", "SR_PROBE", "SR_UPDATE"):
            check(cap in sm["capabilities"], "capability %s missing" % cap)
        check("array" in sm["configuration"], "driver_info configuration lacks 'array'")
        pbd = a.pbd(sr)
        check(a.db.field("PBD", a.db.by_uuid("PBD", pbd), "currently_attached"),
              "PBD not attached after sr-create")
        eq(a.db.field("SR", a.db.by_uuid("SR", sr), "type"), "replun", "SR type")
        a.check("sr-create")

        log("vdi-create 100MiB -> vdi_create; the plugin db_introduces the record")
        n = len(a.x.sm.log)
        v = a("vdi-create", "sr-uuid=" + sr, "name-label=TestVDI", "type=user",
              "virtual-size=100MiB")
        eq(a.sm_commands(n), ["vdi_create"], "SMAPI calls")
        rec = a.vdi(v)
        eq((rec["name_label"], rec["type"], rec["read_only"], rec["managed"]),
           ("TestVDI", "user", False, True), "VDI record")
        check(rec["virtual_size"] >= 100 * MiB, "virtual_size %d" % rec["virtual_size"])
        ls = luns(arr, sr)
        eq(len(ls), 1, "LUNs in the SR's group")
        a.check("vdi-create")

        log("vdi-destroy -> vdi_delete; record and LUN gone")
        n = len(a.x.sm.log)
        a("vdi-destroy", "uuid=" + v)
        eq(a.sm_commands(n), ["vdi_delete"], "SMAPI calls")
        eq(a.sr_vdis(sr), {}, "VDIs")
        eq(luns(arr, sr), [], "LUNs after vdi-destroy")
        a.check("vdi-destroy")

        log("vdi-create, vbd-create on a running VM, vbd-plug -> epoch_begin, attach, activate")
        v = a("vdi-create", "sr-uuid=" + sr, "name-label=TestVDI", "type=user",
              "virtual-size=100MiB")
        vm = a("vm-create", "name-label=TestVM")
        vbd = a("vbd-create", "vdi-uuid=" + v, "vm-uuid=" + vm, "device=xvdc")
        n = len(a.x.sm.log)
        a("vbd-plug", "uuid=" + vbd)
        eq(a.sm_commands(n), ["vdi_epoch_begin", "vdi_attach", "vdi_activate"], "SMAPI calls")
        att = a.xe.attachment(vbd)
        log("  attach result: params_nbd=%s o_direct=%s xenstore_data=%s"
            % (att["params_nbd"], att["o_direct"], att["xenstore_data"]))
        eq(att["xenstore_data"].get("vdi-uuid"), v, "xenstore_data vdi-uuid")
        check(att["params_nbd"].startswith("nbd:unix:"), "params_nbd is not nbd:unix:")
        srv = servers_running(a.run_dir, wait=0)
        eq(len(srv), 1, "NBD server processes serving the plugged VBD")
        log("  NBD server: %s" % srv[0])
        log("  write 1 MiB of 0x5a at 1 MiB through the NBD socket with qemu-io, read it back")
        qemu_io(att["params_nbd"], "write -P 0x5a 1M 1M")
        qemu_io(att["params_nbd"], "read -P 0x5a 1M 1M", "read -P 0 0 1M")
        a.check("vbd-plug")

        log("vbd-unplug -> deactivate, detach, epoch_end; NBD server gone")
        n = len(a.x.sm.log)
        a("vbd-unplug", "uuid=" + vbd)
        eq(a.sm_commands(n), ["vdi_deactivate", "vdi_detach", "vdi_epoch_end"], "SMAPI calls")
        check(not nbd_alive(att["params_nbd"]), "NBD server still answers after vbd-unplug")
        lun = [d for d in luns(arr, sr) if d["name"] == rec_location(a, v)][0]
        path = replun("lun", "path", arr, lun["id"]).strip()
        with open(path, "rb") as f:
            f.seek(MiB)
            eq(f.read(MiB), b"\x5a" * MiB, "LUN image bytes at 1 MiB")
        log("  the bytes landed in the LUN image %s" % path)
        a.check("vbd-unplug")

        log("vdi-copy -> vdi_create, attach+activate both, copy, deactivate+detach both")
        n = len(a.x.sm.log)
        c = a("vdi-copy", "uuid=" + v, "sr-uuid=" + sr)
        eq(a.sm_commands(n), ["vdi_create", "vdi_attach", "vdi_activate", "vdi_attach",
                              "vdi_activate", "vdi_deactivate", "vdi_detach", "vdi_deactivate",
                              "vdi_detach"], "SMAPI calls")
        eq(a.vdi(c)["name_label"], "TestVDI", "copy name")
        h1 = a.export(v, os.path.join(root, "v.raw"))
        h2 = a.export(c, os.path.join(root, "c.raw"))
        eq(h1, h2, "checksum of copy vs original")
        a.check("vdi-copy")

        log("vbd-destroy, vdi-destroy both")
        a("vbd-destroy", "uuid=" + vbd)
        a("vdi-destroy", "uuid=" + v)
        a("vdi-destroy", "uuid=" + c)
        eq(luns(arr, sr), [], "LUNs")
        a.check("vdi-destroy x2")

        log("pbd-unplug, pbd-plug, pbd-plug 2x, pbd-unplug, pbd-unplug 2x")
        n = len(a.x.sm.log)
        for cmd in ("pbd-unplug", "pbd-plug", "pbd-plug", "pbd-unplug", "pbd-unplug"):
            a(cmd, "uuid=" + pbd)
        eq(a.sm_commands(n), ["sr_detach", "sr_attach", "sr_detach"],
           "SMAPI calls (the second plug/unplug make none)")
        a.check("pbd plug/unplug")

        log("sr-destroy -> sr_attach, sr_delete; SR, PBD gone; group gone from the array")
        n = len(a.x.sm.log)
        a("sr-destroy", "uuid=" + sr)
        eq(a.sm_commands(n), ["sr_attach", "sr_delete"], "SMAPI calls")
        eq((a.db.all("SR"), a.db.all("PBD")), ([], []), "SR and PBD records")
        groups = json.loads(replun("group", "list", arr, "--json"))
        groups = groups if isinstance(groups, list) else groups.get("groups", [])
        check(all(g.get("id") != sr for g in groups), "group %s still on the array" % sr)
        a.check("sr-destroy")

        log("sr-create for forget; vdi-create Keep with data; pbd-unplug; sr-forget")
        sr = a("sr-create", "type=replun", "physical-size=0", "content-type=user",
               "name-label=TestSR", dc)
        keep = a("vdi-create", "sr-uuid=" + sr, "name-label=Keep", "name-description=kept",
                 "virtual-size=16MiB")
        want = make_data(os.path.join(root, "keep.raw"), 16 * MiB, "keep")
        a("vdi-import", "uuid=" + keep, "filename=" + os.path.join(root, "keep.raw"))
        a("pbd-unplug", "uuid=" + a.pbd(sr))
        n = len(a.x.sm.log)
        a("sr-forget", "uuid=" + sr)
        eq(a.sm_commands(n), [], "SMAPI calls of sr-forget")
        eq((a.db.all("SR"), a.db.all("VDI")), ([], []), "records after sr-forget")
        eq(len(luns(arr, sr)), 1, "LUNs kept on the array")
        a.check("sr-forget")

        log("sr-introduce, pbd-create, pbd-plug, sr-scan -> the VDI is back (uuid, name, data)")
        a("sr-introduce", "uuid=" + sr, "name-label=TestSR", "type=replun", "content-type=user")
        pbd = a("pbd-create", "host-uuid=" + a.host_uuid(), "sr-uuid=" + sr, dc)
        n = len(a.x.sm.log)
        a("pbd-plug", "uuid=" + pbd)
        a("sr-scan", "uuid=" + sr)
        eq(a.sm_commands(n), ["sr_attach", "sr_scan", "sr_update"], "SMAPI calls")
        vdis = a.sr_vdis(sr)
        eq(list(vdis), [keep], "VDI uuids after scan")
        eq((vdis[keep]["name_label"], vdis[keep]["name_description"]), ("Keep", "kept"),
           "name after scan")
        eq(a.export(keep, os.path.join(root, "keep2.raw")), want, "data after sr-introduce")
        srrec = a.db.get("SR", a.db.by_uuid("SR", sr))
        check(srrec["physical_size"] > 0, "SR.physical_size not set by sr_update")
        check(srrec["virtual_allocation"] >= 16 * MiB, "virtual_allocation")
        a.check("sr-introduce + sr-scan")

        log("sr-scan again changes nothing (no duplicate introduce)")
        a("sr-scan", "uuid=" + sr)
        eq(list(a.sr_vdis(sr)), [keep], "VDIs after a second scan")
        a.check("second sr-scan")

        log("pbd-unplug; sr-destroy of a non-empty SR -> SR_NOT_EMPTY; then empty it, destroy")
        a("pbd-unplug", "uuid=" + pbd)
        expect_failure("SR_NOT_EMPTY", a, "sr-destroy", "uuid=" + sr)
        a("pbd-plug", "uuid=" + pbd)
        a("vdi-destroy", "uuid=" + keep)
        a("pbd-unplug", "uuid=" + pbd)
        a("sr-destroy", "uuid=" + sr)
        eq(a.db.all("SR"), [], "SRs")
        a.check("final sr-destroy")
    except Exception:
        a.dump_logs()
        raise
    finally:
        a.cleanup()


def test_vm(root):
    """The VM part of the spec's test script on a two-host pool and a shared SR: vm-install,
    vm-start/shutdown, vm-suspend/resume, vm-migrate to the other host, vm-clone,
    vm-uninstall; the SMAPI sequence of each checked, data checked through the datapath."""
    arr = os.path.join(root, "arrayA")
    replun("array", "init", arr, "--id", "siteA")
    a = Site(root, "siteA", hosts=2)
    try:
        h1 = a.x.host
        h2 = [h for h in a.db.all("host") if h != h1][0]
        log("sr-create shared=true on a 2-host pool -> sr_create, sr_attach on each host")
        sr = a("sr-create", "type=replun", "name-label=Shared", "shared=true",
               "content-type=user", "device-config:array=file://" + arr)
        eq(a.sm_commands(), ["sr_get_driver_info", "sr_create", "sr_attach", "sr_attach"],
           "SMAPI calls")
        eq([e["members"]["device_config"]["SRmaster"] for e in a.x.sm.log[2:4]],
           ["true", "false"], "SRmaster of the two sr_attach")
        a("pool-param-set", "uuid=" + a.db.field("pool", a.x.pool, "uuid"), "default-SR=" + sr)
        a.check("sr-create shared")

        log("vm-install template='Debian Sarge 3.1' -> one vdi_create")
        n = len(a.x.sm.log)
        vm = a("vm-install", "template=Debian Sarge 3.1", "new-name-label=TestVM")
        eq(a.sm_commands(n), ["vdi_create"], "SMAPI calls")
        vm_ref = a.db.by_uuid("VM", vm)
        vbd = a.db.field("VBD", a.db.find("VBD", VM=vm_ref)[0], "uuid")
        disk = a.db.field("VDI", a.db.field("VBD", a.db.by_uuid("VBD", vbd), "VDI"), "uuid")
        a.check("vm-install")

        log("vm-start -> epoch_begin, attach, activate; write a pattern through the disk")
        n = len(a.x.sm.log)
        a("vm-start", "uuid=" + vm)
        eq(a.sm_commands(n), ["vdi_epoch_begin", "vdi_attach", "vdi_activate"], "SMAPI calls")
        qemu_io(a.xe.attachment(vbd)["params_nbd"], "write -P 0x3c 2M 1M")
        a.check("vm-start")
        log("vm-shutdown -> deactivate, detach, epoch_end")
        n = len(a.x.sm.log)
        a("vm-shutdown", "uuid=" + vm)
        eq(a.sm_commands(n), ["vdi_deactivate", "vdi_detach", "vdi_epoch_end"], "SMAPI calls")
        a.check("vm-shutdown")

        log("vm-start, vm-suspend -> suspend image created, written, detached; disk detached")
        a("vm-start", "uuid=" + vm)
        n = len(a.x.sm.log)
        a("vm-suspend", "uuid=" + vm)
        eq(a.sm_commands(n), ["vdi_create", "vdi_attach", "vdi_activate", "vdi_deactivate",
                              "vdi_detach", "vdi_deactivate", "vdi_detach"], "SMAPI calls")
        sv = a.db.field("VM", vm_ref, "suspend_VDI")
        eq(a.db.field("VDI", sv, "type"), "suspend", "suspend image type")
        a.check("vm-suspend")
        log("vm-resume -> suspend image read back intact, disk attached, image deleted")
        n = len(a.x.sm.log)
        a("vm-resume", "uuid=" + vm)
        eq(a.sm_commands(n), ["vdi_attach", "vdi_activate", "vdi_attach", "vdi_activate",
                              "vdi_deactivate", "vdi_detach", "vdi_delete"], "SMAPI calls")
        check(not a.db.valid("VDI", sv), "suspend image still in the DB")
        qemu_io(a.xe.attachment(vbd)["params_nbd"], "read -P 0x3c 2M 1M")
        a.check("vm-resume")
        a("vm-shutdown", "uuid=" + vm)

        log("vm-start on host 1, vm-migrate to host 2 -> attach@2, deactivate@1, activate@2, "
            "detach@1")
        a("vm-start", "uuid=" + vm)
        n = len(a.x.sm.log)
        a("vm-migrate", "uuid=" + vm, "host-uuid=" + a.host_uuid(h2), "live=true")
        calls = [(e["command"], e["members"]["host_ref"] == h2) for e in a.x.sm.log[n:]]
        eq(calls, [("vdi_attach", True), ("vdi_deactivate", False), ("vdi_activate", True),
                   ("vdi_detach", False)], "SMAPI calls (command, on host 2)")
        eq(a.db.field("VM", vm_ref, "resident_on"), h2, "VM host after migrate")
        qemu_io(a.xe.attachment(vbd)["params_nbd"], "read -P 0x3c 2M 1M",
                "write -P 0x4d 3M 1M")
        a.check("vm-migrate")
        log("vm-shutdown --force on host 2")
        n = len(a.x.sm.log)
        a("vm-shutdown", "uuid=" + vm, "--force")
        check(all(e["members"]["host_ref"] == h2 for e in a.x.sm.log[n:]),
              "shutdown calls not sent to host 2")
        a.check("vm-shutdown on host 2")

        log("vm-clone -> vdi_clone, vdi_update; the clone's disk has the data")
        n = len(a.x.sm.log)
        clone = a("vm-clone", "uuid=" + vm, "new-name-label=CloneTestVM")
        eq(a.sm_commands(n), ["vdi_clone", "vdi_update"], "SMAPI calls")
        cdisk = a.db.field("VDI", a.db.field("VBD", a.db.find(
            "VBD", VM=a.db.by_uuid("VM", clone))[0], "VDI"), "uuid")
        eq(a.export(cdisk, os.path.join(root, "c.raw")),
           a.export(disk, os.path.join(root, "d.raw")), "clone disk data")
        a.check("vm-clone")
        log("vm-uninstall clone, vm-start + vm-uninstall --force -> vdi_delete of their disks")
        n = len(a.x.sm.log)
        a("vm-uninstall", "uuid=" + clone, "--force")
        eq(a.sm_commands(n), ["vdi_delete"], "SMAPI calls")
        a("vm-start", "uuid=" + vm)
        n = len(a.x.sm.log)
        a("vm-uninstall", "uuid=" + vm, "--force")
        eq(a.sm_commands(n), ["vdi_deactivate", "vdi_detach", "vdi_epoch_end", "vdi_delete"],
           "SMAPI calls")
        eq(luns(arr, sr), [], "LUNs after the uninstalls")
        a.check("vm-uninstall")

        log("pbd-unplug on both hosts, sr-destroy")
        for h in (h2, h1):
            a("pbd-unplug", "uuid=" + a.pbd(sr, h))
        a("sr-destroy", "uuid=" + sr)
        a.check("sr-destroy")
    except Exception:
        a.dump_logs()
        raise
    finally:
        a.cleanup()


def rec_location(site, vdi_uuid):
    return site.vdi(vdi_uuid)["location"]


def test_vdi(root):
    """snapshot, clone, resize, introduce/forget, update, probe, generate_config."""
    arr = os.path.join(root, "arrayA")
    replun("array", "init", arr, "--id", "siteA")
    a = Site(root, "siteA")
    try:
        sr = a("sr-create", "type=replun", "name-label=VdiOps", "device-config:array=file://" + arr)
        v = a("vdi-create", "sr-uuid=" + sr, "name-label=base", "virtual-size=32MiB",
              "sm-config:purpose=test")
        want = make_data(os.path.join(root, "base.raw"), 32 * MiB, "base")
        a("vdi-import", "uuid=" + v, "filename=" + os.path.join(root, "base.raw"))
        a.check("create + import")

        log("vdi-snapshot -> vdi_snapshot, vdi_update; read-only, snapshot_of, same data")
        n = len(a.x.sm.log)
        s = a("vdi-snapshot", "uuid=" + v)
        eq(a.sm_commands(n), ["vdi_snapshot", "vdi_update"], "SMAPI calls")
        srec = a.vdi(s)
        eq((srec["is_a_snapshot"], srec["read_only"], srec["name_label"]),
           (True, True, "base"), "snapshot record")
        eq(srec["snapshot_of"], a.db.by_uuid("VDI", v), "snapshot_of")
        eq(a.export(s, os.path.join(root, "s.raw")), want, "snapshot data")
        log("  writes to the base after the snapshot do not reach it")
        make_data(os.path.join(root, "base2.raw"), 32 * MiB, "base2")
        a("vdi-import", "uuid=" + v, "filename=" + os.path.join(root, "base2.raw"))
        eq(a.export(s, os.path.join(root, "s2.raw")), want, "snapshot data after base changed")
        a.check("vdi-snapshot")

        log("vdi-clone of the snapshot -> writable VDI with the snapshot's data")
        n = len(a.x.sm.log)
        c = a("vdi-clone", "uuid=" + s, "new-name-label=clone")
        eq(a.sm_commands(n), ["vdi_clone", "vdi_update"], "SMAPI calls")
        crec = a.vdi(c)
        eq((crec["read_only"], crec["is_a_snapshot"], crec["name_label"]), (False, False, "clone"),
           "clone record")
        eq(a.export(c, os.path.join(root, "c.raw")), want, "clone data")
        a.check("vdi-clone")

        log("vdi-resize clone to 64MiB -> VDI.set_virtual_size; data kept")
        a("vdi-resize", "uuid=" + c, "disk-size=64MiB")
        check(a.vdi(c)["virtual_size"] >= 64 * MiB, "virtual_size after resize")
        check(any(e["method"] == "VDI.set_virtual_size" and e["ok"] for e in a.x.calls),
              "no VDI.set_virtual_size call")
        a.check("vdi-resize")
        log("  shrinking is refused")
        expect_failure("SR_BACKEND_FAILURE", a, "vdi-resize", "uuid=" + c, "disk-size=1MiB")
        a.check("vdi-resize shrink refused")

        log("sr-update -> SR.set_physical_size / set_physical_utilisation")
        a("sr-update", "uuid=" + sr)
        srrec = a.db.get("SR", a.db.by_uuid("SR", sr))
        check(srrec["physical_size"] > 0 and srrec["physical_utilisation"] >= 0,
              "SR sizes %r" % ((srrec["physical_size"], srrec["physical_utilisation"]),))
        a.check("sr-update")

        log("vdi-forget + vdi-introduce location=<LUN name> -> same VDI back")
        loc = a.vdi(c)["location"]
        a("vdi-forget", "uuid=" + c)
        n = len(a.x.sm.log)
        c2 = a("vdi-introduce", "uuid=" + c, "sr-uuid=" + sr, "location=" + loc,
               "name-label=clone", "type=user")
        eq(a.sm_commands(n), ["vdi_introduce"], "SMAPI calls")
        eq(c2, c, "introduced uuid")
        eq(a.vdi(c)["name_label"], "clone", "introduced name")
        a.check("vdi-introduce")

        log("sr-probe with device-config:array -> SRlist naming this SR")
        out = a("sr-probe", "type=replun", "device-config:array=file://" + arr)
        check(sr in out and "<SRlist>" in out.replace("\n", "").replace("\t", ""),
              "sr-probe output %r" % out)
        a.check("sr-probe")

        log("vdi-generate-config -> a vdi_attach_from_config methodCall; replayed, attaches")
        cfg = a("vdi-generate-config", "uuid=" + v)
        check("vdi_attach_from_config" in cfg, "generate_config output %r" % cfg[:200])
        sm = xapi_sim.SmExec(env_extra=a.x.sm.env_extra)
        rc, out, err, _ = sm.call_raw(SR_BIN, cfg)
        kind, val = xapi_sim.xapi_parse_response(out)[:2]
        eq((rc, kind), (0, "ok"), "vdi_attach_from_config answer (%s %s)" % (out[:300], err))
        check(isinstance(val, (dict, str)), "attach_from_config value")
        (st,), _ = xmlrpc.client.loads(cfg)
        st["command"] = "vdi_detach_from_config"
        rc, out, err, _ = sm.call_raw(SR_BIN, xmlrpc.client.dumps((st,), "vdi_detach_from_config"))
        eq(xapi_sim.xapi_parse_response(out)[0], "ok", "vdi_detach_from_config (%s)" % out[:300])
        a.check("generate_config / attach_from_config")

        log("vdi-destroy all, sr-destroy")
        for u in (c, s, v):
            a("vdi-destroy", "uuid=" + u)
        a("pbd-unplug", "uuid=" + a.pbd(sr))
        a("sr-destroy", "uuid=" + sr)
        a.check("cleanup")
    except Exception:
        a.dump_logs()
        raise
    finally:
        a.cleanup()


def test_dr(root, new_vdi_at_b=False):
    """Site A pool + array, replicated to site B; failover at B through the host plugin; B's
    pool brings the SR back by sr-introduce/pbd-create/pbd-plug/sr-scan; reverse to A.
    new_vdi_at_b: B also creates a VDI while in production, which must reach A after reverse."""
    arr_a, arr_b = os.path.join(root, "arrayA"), os.path.join(root, "arrayB")
    replun("array", "init", arr_a, "--id", "siteA")
    replun("array", "init", arr_b, "--id", "siteB")
    replun("array", "pair", arr_a, arr_b)
    a, b = Site(root, "siteA"), Site(root, "siteB")
    try:
        uri_a, uri_b = "file://" + arr_a, "file://" + arr_b
        log("site A: sr-create with device-config:array=A peer=B")
        sr = a("sr-create", "type=replun", "name-label=ProdSR", "name-description=production",
               "device-config:array=" + uri_a, "device-config:peer=" + uri_b)
        a.check("sr-create at A")
        log("site A: two VDIs with data (vdi-import), one written through a VBD with qemu-io")
        v1 = a("vdi-create", "sr-uuid=" + sr, "name-label=db disk", "virtual-size=24MiB")
        v2 = a("vdi-create", "sr-uuid=" + sr, "name-label=log disk", "virtual-size=8MiB",
               "name-description=logs")
        h1 = make_data(os.path.join(root, "v1.raw"), 24 * MiB, "v1")
        a("vdi-import", "uuid=" + v1, "filename=" + os.path.join(root, "v1.raw"))
        vbd = a("vbd-create", "vdi-uuid=" + v2, "vm-uuid=" + a("vm-create", "name-label=vm"),
                "device=xvdb")
        a("vbd-plug", "uuid=" + vbd)
        qemu_io(a.xe.attachment(vbd)["params_nbd"], "write -P 0xc3 0 2M")
        a("vbd-unplug", "uuid=" + vbd)
        h2 = a.export(v2, os.path.join(root, "v2.raw"))
        snap = a("vdi-snapshot", "uuid=" + v1)
        a.check("VDIs at A")

        log("sync through the host plugin at A: xe host-call-plugin fn=sync wait=true")
        s = a.plugin("sync", sr_uuid=sr, array=uri_a, wait="true")
        s = s[0] if isinstance(s, list) else s
        eq(s.get("status"), "complete", "sync status")
        st = a.plugin("status", sr_uuid=sr, array=uri_a)
        eq(st["sync"]["status"], "complete", "status fn: last sync")
        a.check("sync")

        log("test failover at B through the host plugin: start, stop")
        r = b.plugin("test_failover_start", sr_uuid=sr, array=uri_b)
        check(r["ok"], "test_failover_start: %s" % r)
        r = b.plugin("test_failover_stop", sr_uuid=sr, array=uri_b)
        check(r["ok"], "test_failover_stop: %s" % r)

        log("disaster: pool A goes away; failover at B through the host plugin")
        a.cleanup()
        r = b.plugin("failover", sr_uuid=sr, array=uri_b)
        check(r["ok"], "failover: %s" % r)
        b.check("failover")

        log("site B: sr-introduce (same uuid), pbd-create array=B peer=A, pbd-plug, sr-scan")
        b("sr-introduce", "uuid=" + sr, "name-label=ProdSR", "type=replun", "content-type=user")
        pbd = b("pbd-create", "host-uuid=" + b.host_uuid(), "sr-uuid=" + sr,
                "device-config:array=" + uri_b, "device-config:peer=" + uri_a)
        b("pbd-plug", "uuid=" + pbd)
        b("sr-scan", "uuid=" + sr)
        vdis = b.sr_vdis(sr)
        eq(sorted(vdis), sorted([v1, v2, snap]), "VDI uuids at B")
        eq((vdis[v1]["name_label"], vdis[v2]["name_label"], vdis[v2]["name_description"]),
           ("db disk", "log disk", "logs"), "names at B")
        eq((vdis[snap]["is_a_snapshot"], vdis[snap]["read_only"]), (True, True),
           "snapshot flags at B")
        eq(vdis[snap]["snapshot_of"], b.db.by_uuid("VDI", v1), "snapshot_of at B")
        check(vdis[snap]["snapshot_time"] != xapi_sim.EPOCH, "snapshot_time lost at B")
        eq(b.export(v1, os.path.join(root, "b1.raw")), h1, "db disk data at B")
        eq(b.export(v2, os.path.join(root, "b2.raw")), h2, "log disk data at B")
        b.check("sr-scan at B")

        log("site B runs production: writes to 'db disk' through a VBD%s"
            % (", creates a new VDI" if new_vdi_at_b else ""))
        vbd = b("vbd-create", "vdi-uuid=" + v1, "vm-uuid=" + b("vm-create", "name-label=vm"),
                "device=xvdb")
        b("vbd-plug", "uuid=" + vbd)
        qemu_io(b.xe.attachment(vbd)["params_nbd"], "write -P 0x77 4M 1M")
        b("vbd-unplug", "uuid=" + vbd)
        v3 = None
        if new_vdi_at_b:
            v3 = b("vdi-create", "sr-uuid=" + sr, "name-label=new at B", "virtual-size=4MiB")
        hb1 = b.export(v1, os.path.join(root, "b1b.raw"))
        check(hb1 != h1, "the write at B changed nothing")
        b.check("production at B")

        log("reverse replication to A through the host plugin at B, then sync")
        r = b.plugin("reverse", sr_uuid=sr, array=uri_b)
        check(r["ok"], "reverse: %s" % r)
        s = b.plugin("sync", sr_uuid=sr, array=uri_b, wait="true")
        s = s[0] if isinstance(s, list) else s
        eq(s.get("status"), "complete", "reverse sync status")
        out = subprocess.run([REPLUN, "verify", arr_b, arr_a, "--group", sr, "--json"],
                             capture_output=True, text=True)
        eq(out.returncode, 0, "replun verify B A after reverse (%s)" % out.stderr.strip())
        if v3:
            names_a = sorted(d["name"] for d in luns(arr_a, sr))
            check(b.vdi(v3)["location"] in names_a, "the VDI made at B did not reach A: %s"
                  % names_a)
        b.check("reverse")

        log("site A's pool (fresh) sees the reversed SR: introduce + plug + scan at A")
        a2 = Site(root, "siteA2")
        try:
            a2("sr-introduce", "uuid=" + sr, "name-label=ProdSR", "type=replun")
            pbd = a2("pbd-create", "host-uuid=" + a2.host_uuid(), "sr-uuid=" + sr,
                     "device-config:array=" + uri_a, "device-config:peer=" + uri_b)
            a2("pbd-plug", "uuid=" + pbd)
            a2("sr-scan", "uuid=" + sr)
            eq(sorted(a2.sr_vdis(sr)), sorted(u for u in (v1, v2, v3, snap) if u),
               "VDIs at A after reverse")
            eq(a2.export(v1, os.path.join(root, "a1.raw")), hb1, "db disk at A = B's data")
            a2.check("scan at A after reverse")
        finally:
            a2.cleanup()
    except Exception:
        a.dump_logs()
        b.dump_logs()
        raise
    finally:
        a.cleanup()
        b.cleanup()


def test_badinput(root):
    arr = os.path.join(root, "arrayA")
    replun("array", "init", arr, "--id", "siteA")
    a = Site(root, "siteA", hosts=2)
    sm = a.x.sm
    try:
        def raw(doc, *extra):
            p = subprocess.run([SR_BIN, doc] + list(extra) if doc is not None else [SR_BIN],
                               capture_output=True, text=True, env=sm.env(), timeout=60)
            eq(p.returncode, 0, "ReplunSR exit code")
            return xapi_sim.xapi_parse_response(p.stdout)

        log("malformed methodCall -> a fault on stdout, exit 0")
        r = raw("<methodCall><methodName>sr_scan</methodName><params><oops")
        eq(r[0], "fault", "answer to malformed XML")
        log("  fault %d: %s" % (r[1], r[2]))
        log("no argv[1], two arguments, not XML at all -> faults")
        for args in ((None,), ("a", "b"), ("hello",)):
            eq(raw(*args)[0], "fault", "answer to argv %r" % (args,))
        log("unknown method -> fault 38")
        doc = xapi_sim.xapi_method_call("vdi_frobnicate", [{"host_ref": a.x.host,
                                                            "command": "vdi_frobnicate",
                                                            "args": [], "device_config": {}}])
        eq(raw(doc)[:2], ("fault", 38), "unknown command fault")
        log("python dialect (declaration, <string>, newlines) is accepted")
        doc = xmlrpc.client.dumps(({"host_ref": a.x.host, "command": "sr_get_driver_info",
                                    "args": [], "device_config": {}},), "sr_get_driver_info")
        r = raw(doc)
        eq(r[0], "ok", "sr_get_driver_info in python's dialect")
        xapi_sim.parse_driver_info(r[1])

        log("sr-create without device-config:array -> a fault naming 'array'; no SR left")
        f = expect_failure("SR_BACKEND_FAILURE", a, "sr-create", "type=replun", "name-label=x")
        check("array" in f.params[1], "fault string does not name the key: %s" % f.params)
        eq(a.db.all("SR"), [], "SRs after failed sr-create")
        log("sr-create with a relative / missing array -> fault; no SR left")
        for bad in ("relative/path", "file://" + os.path.join(root, "nope")):
            f = expect_failure("SR_BACKEND_FAILURE", a, "sr-create", "type=replun",
                               "device-config:array=" + bad)
            log("  %s -> %s" % (bad, f.params[1]))
        eq(a.db.all("SR"), [], "SRs after failed sr-create")
        log("peer that does not exist / is empty -> a fault naming 'peer'; no SR left")
        for bad in ("file://" + os.path.join(root, "nope"), ""):
            f = expect_failure("SR_BACKEND_FAILURE", a, "sr-create", "type=replun",
                               "device-config:array=file://" + arr, "device-config:peer=" + bad)
            check("peer" in f.params[1], "fault string does not name 'peer': %s" % f.params)
        eq(a.db.all("SR"), [], "SRs after failed sr-create")
        a.check("bad device-config")

        log("a password in device-config never reaches SMlog, a fault or stdout/stderr")
        secret = "s3cr3t-Pw-42"
        try:
            tmp = a("sr-create", "type=replun", "name-label=pw", "device-config:username=admin",
                    "device-config:password=" + secret, "device-config:array=file://" + arr)
            a("pbd-unplug", "uuid=" + a.pbd(tmp))
            a("sr-destroy", "uuid=" + tmp)
        except Failure as f:
            check(secret not in " ".join(f.params), "password in a fault: %s" % f.params)
        for e in a.x.sm.log:
            check(secret not in e["stdout"] + e["stderr"], "password in %s output" % e["command"])
        with open(a.smlog) as f:
            smlog = f.read()
        check(smlog.strip(), "SMlog ($REPLUN_SM_LOG) is empty")
        check(secret not in smlog, "password written to SMlog")
        check("password" in smlog, "SMlog does not show the (masked) password key")
        a.check("password masking")

        sr = a("sr-create", "type=replun", "name-label=Bad", "shared=true",
               "device-config:array=file://" + arr)
        log("sr_attach twice, sr_detach twice, sr_attach again (sent directly): idempotent")
        srref = a.db.by_uuid("SR", sr)
        for cmd in ("sr_attach", "sr_attach", "sr_detach", "sr_detach", "sr_attach"):
            eq(a.xe.sm(srref, cmd), None, cmd)
        a.check("idempotent attach/detach")
        log("unknown VDI: vdi_attach/vdi_delete of a location that is not on the array -> fault")
        fake = a.db.create("VDI", SR=a.db.by_uuid("SR", sr), location="no-such-lun",
                           uuid="0badc0de-0000-4000-8000-000000000000", type="user")
        for cmd, args in (("vdi_attach", ["true"]), ("vdi_snapshot", []), ("vdi_resize",
                                                                           [str(MiB)])):
            f = expect_failure("", a.xe.sm, a.db.by_uuid("SR", sr), cmd, None, args, fake)
            check(f.code.startswith("SR_BACKEND_FAILURE_") or f.code == "VDI_MISSING",
                  "%s of an unknown VDI: %s" % (cmd, f))
            log("  %s -> %s %s" % (cmd, f.code, f.params[1:2]))
        a.db.destroy("VDI", fake)
        a.check("unknown VDI")

        log("concurrency: 8 vdi-create on one SR from 8 plugin processes at once")
        errors, made = [], []

        def create(i):
            try:
                made.append(a("vdi-create", "sr-uuid=" + sr, "name-label=c%d" % i,
                              "virtual-size=4MiB"))
            except Exception as e:
                errors.append(e)

        ts = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        eq(errors, [], "errors of concurrent vdi-create")
        eq(len(set(made)), 8, "distinct VDIs")
        eq(len(luns(arr, sr)), 8, "LUNs")
        a.check("concurrent vdi-create")

        log("concurrency: snapshots, destroys and scans of one SR at once")
        ops = [("vdi-snapshot", "uuid=" + made[0]), ("vdi-destroy", "uuid=" + made[1]),
               ("sr-scan", "uuid=" + sr), ("vdi-clone", "uuid=" + made[2]),
               ("vdi-destroy", "uuid=" + made[3]), ("sr-scan", "uuid=" + sr),
               ("sr-update", "uuid=" + sr), ("vdi-resize", "uuid=" + made[4], "disk-size=8MiB")]
        errors = []

        def run(op):
            try:
                a(*op)
            except Exception as e:
                errors.append((op, e))

        ts = [threading.Thread(target=run, args=(op,)) for op in ops]
        [t.start() for t in ts]
        [t.join() for t in ts]
        eq(errors, [], "errors of concurrent operations")
        a("sr-scan", "uuid=" + sr)
        names = sorted(d["name"] for d in luns(arr, sr))
        locs = sorted(v["location"] for v in a.sr_vdis(sr).values())
        eq(locs, names, "VDI locations vs LUN names after concurrent operations")
        eq(len(locs), 8, "VDIs after 2 destroys, 1 snapshot, 1 clone")
        a.check("concurrent operations")

        log("array unreachable: sr-scan fails and forgets no VDI (never an empty SR)")
        before = sorted(a.sr_vdis(sr))
        ncalls = len(a.x.calls)
        os.rename(arr, arr + ".away")
        try:
            f = expect_failure("SR_BACKEND_FAILURE", a, "sr-scan", "uuid=" + sr)
            log("  sr-scan -> %s %s" % (f.code, f.params[1:2]))
        finally:
            os.rename(arr + ".away", arr)
        eq(sorted(a.sr_vdis(sr)), before, "VDIs after a failed scan")
        check(not any(c["method"] == "VDI.db_forget" for c in a.x.calls[ncalls:]),
              "a failed scan forgot VDIs")
        a("sr-scan", "uuid=" + sr)
        eq(sorted(a.sr_vdis(sr)), before, "VDIs after the array came back")
        a.check("scan with the array away")

        log("one writer: a second read-write activation from another host -> VDI_IN_USE")
        h2 = [h for h in a.db.all("host") if h != a.x.host][0]
        vbd1 = a("vbd-create", "vdi-uuid=" + made[0], "vm-uuid=" + a.dom0(), "device=xvdd")
        vbd2 = a("vbd-create", "vdi-uuid=" + made[0], "vm-uuid=" + a.dom0(h2), "device=xvdd")
        a("vbd-plug", "uuid=" + vbd1)
        n = len(a.x.sm.log)
        f = expect_failure("", a, "vbd-plug", "uuid=" + vbd2)
        eq(f.code, "VDI_IN_USE", "second RW activation")
        eq(a.sm_commands(n), ["vdi_epoch_begin", "vdi_attach", "vdi_activate", "vdi_detach"],
           "the failed plug cleaned up (attach, activate refused, detach)")
        eq(a.x.sm.log[n + 1]["members"]["device_config"]["SRmaster"], "false",
           "SRmaster on the second host")
        a("vbd-unplug", "uuid=" + vbd1)
        a.check("VDI_IN_USE")
    except Exception:
        a.dump_logs()
        raise
    finally:
        a.cleanup()


TESTS = {"script": test_script, "vm": test_vm, "vdi": test_vdi, "dr": test_dr,
         "dr-newvdi": lambda root: test_dr(root, new_vdi_at_b=True), "badinput": test_badinput}


def main(argv):
    if len(argv) != 2 or argv[1] not in TESTS:
        print(__doc__, file=sys.stderr)
        return 2
    missing = [(what, path) for what, path in (("ReplunSR", SR_BIN), ("replun", REPLUN))
               if not (path and os.access(path, os.X_OK))]
    if missing:
        for what, path in missing:
            print("[xapi] FAIL: %s is not built (%r): the end-to-end test '%s' cannot run "
                  "until it is" % (what, path, argv[1]), flush=True)
        return 1
    for tool in ("qemu-io", "nbdcopy", "nbdinfo"):
        if not shutil.which(tool):
            print("[xapi] SKIP: %s is not installed" % tool)
            return 77
    root = tempfile.mkdtemp(prefix="replun-xapi-", dir=os.environ.get("TMPDIR", "/tmp"))
    t0 = time.monotonic()
    ok = False
    try:
        TESTS[argv[1]](root)
        ok = True
    except TestFailed as e:
        print("[xapi] FAIL: %s" % e, flush=True)
    except Failure as e:
        traceback.print_exc()
        print("[xapi] FAIL: unexpected XAPI error %s" % e, flush=True)
    except Exception:
        traceback.print_exc()
        print("[xapi] FAIL: exception", flush=True)
    finally:
        kill_leftovers(root)
        if os.environ.get("KEEP") == "1":
            print("[xapi] kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("[xapi] %s %s in %.1f s" % (argv[1], "PASSED" if ok else "FAILED",
                                       time.monotonic() - t0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
