#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# An xe-like front for the XAPI simulator: turns xe commands into the SMAPIv1 call sequences
# xapi makes (spec appendix A, as current xapi does them), and updates the DB as xapi would.
"""xe front of the XAPI simulator.

Python use::

    x = xapi_sim.Xapi(sock, sm_plugins={"replun": ".../ReplunSR"}, plugin_dir=...,
                      env_extra={"REPLUN_LOCK_DIR": ..., "REPLUN_RUN_DIR": ...}).start()
    xe = Xe(x)
    sr = xe("sr-create", "type=replun", "name-label=TestSR", "device-config:array=file:///a")
    vdi = xe("vdi-create", "sr-uuid=" + sr, "name-label=d", "virtual-size=100MiB")

Command line (state kept in a JSON file between runs)::

    xe.py --state st.json --sm replun=build/bin/ReplunSR sr-create type=replun ...
"""

import os
import re
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xapi_sim  # noqa: E402
from xapi_sim import EPOCH, NULL_REF, Failure, NotImplementedInBackend, new_uuid, now_iso  # noqa

SIZE_UNITS = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
              "KB": 1000, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12,
              "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ProtocolViolation(AssertionError):
    """A plugin called the XenAPI the wrong way (xapi would have failed it)."""


def parse_size(s):
    m = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*)\s*", s)
    if not m or m.group(2) not in SIZE_UNITS:
        raise Failure("INVALID_VALUE", "size", s)
    return int(m.group(1)) * SIZE_UNITS[m.group(2)]


def nbd_uri(params_nbd):
    """nbd:unix:/path:exportname=NAME (what xapi/qemu use) -> nbd+unix:///NAME?socket=/path"""
    m = re.fullmatch(r"nbd:unix:([^:]+)(?::exportname=(.*))?", params_nbd)
    if not m:
        raise ValueError("not an nbd:unix: address: %r" % params_nbd)
    return "nbd+unix:///%s?socket=%s" % (m.group(2) or "", m.group(1))


class Xe:
    def __init__(self, xapi, strict=True, datapath=True):
        self.x = xapi
        self.db = xapi.db
        self.strict = strict
        self.datapath = datapath  # move bytes through params_nbd (vm-suspend/resume)
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ helpers
    def __call__(self, command, *args):
        return self.run([command] + list(args))

    def run(self, argv):
        cmd, kv, flags = argv[0], {}, set()
        maps = {}
        for a in argv[1:]:
            if a.startswith("--"):
                flags.add(a[2:])
                continue
            if "=" not in a:
                raise Failure("SYNTAX_ERROR", a)
            k, v = a.split("=", 1)
            m = re.fullmatch(r"(device-config|sm-config|other-config|args|driver-params)"
                             r"(?::|-)(.+)", k)
            if m:
                maps.setdefault(m.group(1), {})[m.group(2)] = v
            else:
                kv[k] = v
        fn = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if fn is None:
            raise Failure("UNKNOWN_COMMAND", cmd)
        return fn(kv, maps, flags)

    def ref(self, cls, uuid):
        return self.db.by_uuid(cls, uuid)

    def rec(self, cls, ref):
        return self.db.get(cls, ref)

    def sm_record(self, sr_type):
        for ref in self.db.find("SM", type=sr_type):
            return self.db.get("SM", ref)
        return self.register_sm(sr_type)

    def register_sm(self, sr_type):
        """xapi start-up: sr_get_driver_info of each whitelisted plugin -> SM object."""
        plugin = self.x.sm_plugins.get(sr_type)
        if not plugin:
            raise Failure("SR_UNKNOWN_DRIVER", sr_type)
        info = self.x.sm.call(plugin, {"host_ref": self.x.host, "command": "sr_get_driver_info",
                                       "args": [], "device_config": {}})
        caps, features = [], {}
        for c in info["capabilities"]:
            name, _, ver = c.partition("/")
            if name not in xapi_sim.KNOWN_CAPS:
                self.x.warnings.append("SM %s: unknown capability %s dropped" % (sr_type, c))
                continue
            caps.append(name)
            features[name] = ver if ver.isdigit() else "1"
        ref = self.db.create(
            "SM", type=sr_type, name_label=info["name"], name_description=info["description"],
            vendor=info["vendor"], copyright=info["copyright"], version=info["driver_version"],
            required_api_version=info["required_api_version"], capabilities=caps,
            features=features, driver_filename=plugin,
            configuration={c["key"]: c["description"] for c in info["configuration"]})
        return self.db.get("SM", ref)

    def has_cap(self, sr, cap):
        return cap in self.sm_record(self.db.field("SR", sr, "type"))["capabilities"]

    def pbd_of(self, sr, host):
        for ref in self.db.find("PBD", SR=sr, host=host):
            return ref
        return None

    def sm(self, sr, command, host=None, args=(), vdi=None, sr_type=None, session=None,
           op=None, **extra):
        """One SMAPI call as sm.ml make_call builds it; raise ProtocolViolation if the plugin
        misused the XenAPI during the call."""
        x = self.x
        host = host or x.host
        members = {"host_ref": host, "command": command, "args": [str(a) for a in args]}
        devconf = {"SRmaster": "true" if host == x.host else "false"}
        if sr is not None:
            pbd = self.pbd_of(sr, host)
            if pbd is None:
                raise Failure("SR_NO_PBDS", sr)
            devconf.update(self.db.field("PBD", pbd, "device_config"))
            sr_type = self.db.field("SR", sr, "type")
        members["device_config"] = devconf
        members["session_ref"] = session or (x.sm_session(sr) if sr else x.login(
            user="__sm__backend", originator="SM"))
        if sr is not None:
            members["sr_ref"] = sr
            members["sr_uuid"] = self.db.field("SR", sr, "uuid")
        if vdi is not None:
            v = self.db.get("VDI", vdi)
            members["vdi_ref"] = vdi
            members["vdi_location"] = v["location"]
            members["vdi_uuid"] = v["uuid"]
            members["vdi_on_boot"] = v["on_boot"]
            members["vdi_allow_caching"] = "true" if v["allow_caching"] else "false"
        members.update(extra)
        members["subtask_of"] = "DummyRef:|%s|%s" % (new_uuid(), op or command)
        plugin = x.sm_plugins.get(sr_type)
        if not plugin:
            raise Failure("SR_UNKNOWN_DRIVER", sr_type)
        before = len(x.violations)
        try:
            return x.sm.call(plugin, members, env=x.host_env.get(host))
        finally:
            if self.strict and len(x.violations) > before:
                raise ProtocolViolation("%s: plugin misused the XenAPI: %s"
                                        % (command, x.violations[before:]))

    def find_vdi_by_location(self, sr, location):
        for ref in self.db.find("VDI", SR=sr, location=location):
            return ref
        raise Failure("INTERNAL_ERROR", "Storage_error (Vdi_does_not_exist %s)" % location)

    def newvdi(self, sr, vi):
        """storage_smapiv1.ml newvdi: the plugin must have db_introduced the VDI."""
        try:
            ref = self.db.by_uuid("VDI", vi["uuid"])
        except Failure:
            raise Failure("INTERNAL_ERROR", "VDI %s was not introduced into the database by the "
                          "SM backend (VDI.db_introduce missing)" % vi["uuid"])
        rec = self.db.get("VDI", ref)
        if rec["location"] != vi["location"] or rec["SR"] != sr:
            raise Failure("INTERNAL_ERROR", "VDI %s: db location/SR %r/%s differ from the "
                          "returned %r/%s" % (vi["uuid"], rec["location"], rec["SR"],
                                                vi["location"], sr))
        return ref

    def need_attached(self, sr):
        pbd = self.pbd_of(sr, self.x.host)
        if pbd is None or not self.db.field("PBD", pbd, "currently_attached"):
            raise Failure("SR_NOT_ATTACHED", sr)

    def need_cap(self, sr, cap, op):
        if not self.has_cap(sr, cap):
            raise Failure("OPERATION_NOT_ALLOWED", "%s needs SM capability %s" % (op, cap))

    def vbds_attached(self, vdi):
        return [v for v in self.db.find("VBD", VDI=vdi)
                if self.db.field("VBD", v, "currently_attached")]

    def forget_vdi_record(self, vdi):
        for vbd in self.db.find("VBD", VDI=vdi):
            self.db.destroy("VBD", vbd)
        self.db.destroy("VDI", vdi)

    # ------------------------------------------------------------------ SR
    def cmd_sr_create(self, kv, maps, flags):
        sr_type = kv["type"]
        self.sm_record(sr_type)  # SR_UNKNOWN_DRIVER
        shared = kv.get("shared", "false") == "true"
        sr = self.db.create("SR", name_label=kv.get("name-label", ""),
                            name_description=kv.get("name-description", ""), type=sr_type,
                            content_type=kv.get("content-type", ""), shared=shared,
                            sm_config=maps.get("sm-config", {}),
                            physical_size=int(kv.get("physical-size", "0")))
        hosts = self.db.all("host") if shared else [self.x.host]
        for h in hosts:
            self.db.create("PBD", host=h, SR=sr, device_config=dict(maps.get("device-config", {})))
        try:
            self.sm(sr, "sr_create", args=[kv.get("physical-size", "0")], op="SR.create")
        except Failure:
            for p in self.db.find("PBD", SR=sr):
                self.db.destroy("PBD", p)
            for v in self.db.find("VDI", SR=sr):
                self.forget_vdi_record(v)
            self.db.destroy("SR", sr)
            raise
        # xapi_sr.ml create: plug every PBD, the master's first
        for p in sorted(self.db.find("PBD", SR=sr),
                        key=lambda p: self.db.field("PBD", p, "host") != self.x.host):
            self.plug(p)
        return self.db.field("SR", sr, "uuid")

    def cmd_sr_introduce(self, kv, maps, flags):
        uuid = kv.get("uuid") or new_uuid()
        if self.db.find("SR", uuid=uuid):
            raise Failure("SR_UUID_EXISTS", uuid)
        self.db.create("SR", uuid=uuid, name_label=kv.get("name-label", ""),
                       name_description=kv.get("name-description", ""), type=kv["type"],
                       content_type=kv.get("content-type", ""),
                       shared=kv.get("shared", "false") == "true",
                       sm_config=maps.get("sm-config", {}))
        return uuid

    def cmd_sr_forget(self, kv, maps, flags):
        sr = self.ref("SR", kv["uuid"])
        if any(self.db.field("PBD", p, "currently_attached") for p in self.db.find("PBD", SR=sr)):
            raise Failure("SR_HAS_PBD", sr)
        for v in self.db.find("VDI", SR=sr):
            self.forget_vdi_record(v)
        for p in self.db.find("PBD", SR=sr):
            self.db.destroy("PBD", p)
        self.db.destroy("SR", sr)
        return ""

    def cmd_sr_destroy(self, kv, maps, flags):
        sr = self.ref("SR", kv["uuid"])
        if any(self.db.field("PBD", p, "currently_attached") for p in self.db.find("PBD", SR=sr)):
            raise Failure("SR_HAS_PBD", sr)
        # storage_access.ml destroy_sr: attach, (delete the pool's metadata VDIs: none), delete;
        # detach on failure
        self.sm(sr, "sr_attach", op="SR.destroy")
        try:
            self.sm(sr, "sr_delete", op="SR.destroy")
        except Failure:
            try:
                self.sm(sr, "sr_detach", op="SR.destroy")
            except Failure:
                pass
            raise
        for v in self.db.find("VDI", SR=sr):
            self.forget_vdi_record(v)
        for p in self.db.find("PBD", SR=sr):
            self.db.destroy("PBD", p)
        self.db.destroy("SR", sr)
        return ""

    def scan(self, sr):
        """SR.scan = sr_scan then sr_update (storage_smapiv1_wrapper.ml scan2), then xapi
        recomputes virtual_allocation and clears other_config:dirty (xapi_sr.ml scan)."""
        self.need_attached(sr)
        self.sm(sr, "sr_scan", op="SR.scan")
        self.sm(sr, "sr_update", op="SR.scan")
        total = sum(self.db.field("VDI", v, "virtual_size") for v in self.db.find("VDI", SR=sr))
        self.db.set("SR", sr, "virtual_allocation", total)
        oc = dict(self.db.field("SR", sr, "other_config"))
        oc.pop("dirty", None)
        self.db.set("SR", sr, "other_config", oc)

    def cmd_sr_scan(self, kv, maps, flags):
        self.scan(self.ref("SR", kv["uuid"]))
        return ""

    def cmd_sr_update(self, kv, maps, flags):
        sr = self.ref("SR", kv["uuid"])
        self.need_attached(sr)
        self.sm(sr, "sr_update", op="SR.update")
        return ""

    def cmd_sr_probe(self, kv, maps, flags):
        sr_type = kv["type"]
        sm = self.sm_record(sr_type)
        if "SR_PROBE" not in sm["capabilities"]:
            raise Failure("SR_BACKEND_FAILURE", "", "Operation 'sr_probe' not supported by "
                          "this SR type", "")
        devconf = {"SRmaster": "true"}
        devconf.update(maps.get("device-config", {}))
        members = {"host_ref": self.x.host, "command": "sr_probe", "args": [],
                   "device_config": devconf,
                   "session_ref": self.x.login(user="__sm__backend", originator="SM"),
                   "sr_sm_config": maps.get("sm-config", {}),
                   "subtask_of": "DummyRef:|%s|SR.probe" % new_uuid()}
        before = len(self.x.violations)
        out = self.x.sm.call(self.x.sm_plugins[sr_type], members)
        if self.strict and len(self.x.violations) > before:
            raise ProtocolViolation("sr_probe: %s" % self.x.violations[before:])
        return out

    # ------------------------------------------------------------------ PBD
    def cmd_pbd_create(self, kv, maps, flags):
        sr = self.ref("SR", kv["sr-uuid"])
        host = self.ref("host", kv["host-uuid"])
        pbd = self.db.create("PBD", host=host, SR=sr,
                             device_config=dict(maps.get("device-config", {})))
        return self.db.field("PBD", pbd, "uuid")

    def plug(self, pbd):
        p = self.db.get("PBD", pbd)
        if p["currently_attached"]:
            return  # a second plug makes no SMAPI call
        self.sm(p["SR"], "sr_attach", host=p["host"], op="PBD.plug")
        self.db.set("PBD", pbd, "currently_attached", True)

    def cmd_pbd_plug(self, kv, maps, flags):
        self.plug(self.ref("PBD", kv["uuid"]))
        return ""

    def cmd_pbd_unplug(self, kv, maps, flags):
        pbd = self.ref("PBD", kv["uuid"])
        p = self.db.get("PBD", pbd)
        if not p["currently_attached"]:
            return ""
        for v in self.db.find("VDI", SR=p["SR"]):
            if self.vbds_attached(v):
                raise Failure("VDI_IN_USE", v, "PBD.unplug")
        self.sm(p["SR"], "sr_detach", host=p["host"], op="PBD.unplug")
        self.db.set("PBD", pbd, "currently_attached", False)
        return ""

    def cmd_pbd_destroy(self, kv, maps, flags):
        pbd = self.ref("PBD", kv["uuid"])
        if self.db.field("PBD", pbd, "currently_attached"):
            raise Failure("OPERATION_NOT_ALLOWED", "PBD is currently attached")
        self.db.destroy("PBD", pbd)
        return ""

    # ------------------------------------------------------------------ VDI
    def create_vdi(self, sr, size, name, description="", vtype="user", sm_config=None,
                   read_only=False, sharable=False, other_config=None):
        self.need_attached(sr)
        self.need_cap(sr, "VDI_CREATE", "VDI.create")
        args = [str(size), name, description, "", "false", EPOCH, "",
                "true" if read_only else "false"]
        vi = self.sm(sr, "vdi_create", args=args, vdi_type=vtype,
                     vdi_sm_config=dict(sm_config or {}), op="VDI.create")
        vdi = self.newvdi(sr, vi)
        got = self.db.field("VDI", vdi, "virtual_size")
        if got < size:
            self.x.warnings.append("vdi_create: virtual_size %d < requested %d" % (got, size))
        # xapi_vdi.ml create: xapi's own fields
        self.db.set("VDI", vdi, "other_config", dict(other_config or {}))
        self.db.set("VDI", vdi, "sharable", sharable)
        return vdi

    def cmd_vdi_create(self, kv, maps, flags):
        sr = self.ref("SR", kv["sr-uuid"])
        vdi = self.create_vdi(sr, parse_size(kv["virtual-size"]), kv.get("name-label", ""),
                              kv.get("name-description", ""), kv.get("type", "user"),
                              maps.get("sm-config"), kv.get("read-only", "false") == "true",
                              kv.get("sharable", "false") == "true", maps.get("other-config"))
        return self.db.field("VDI", vdi, "uuid")

    def cmd_vdi_destroy(self, kv, maps, flags):
        vdi = self.ref("VDI", kv["uuid"])
        sr = self.db.field("VDI", vdi, "SR")
        if self.vbds_attached(vdi):
            raise Failure("VDI_IN_USE", vdi, "destroy")
        self.need_cap(sr, "VDI_DELETE", "VDI.destroy")
        self.need_attached(sr)
        self.sm(sr, "vdi_delete", vdi=vdi, op="VDI.destroy")
        if self.db.valid("VDI", vdi):
            self.forget_vdi_record(vdi)
        return ""

    def cmd_vdi_forget(self, kv, maps, flags):
        self.forget_vdi_record(self.ref("VDI", kv["uuid"]))
        return ""

    def after_copy_op(self, sr, src, vi, name, description, snapshot):
        new = self.find_vdi_by_location(sr, vi["location"])
        self.db.set("VDI", new, "name_label", name)
        self.db.set("VDI", new, "name_description", description)
        if snapshot:
            self.db.set("VDI", new, "snapshot_time", now_iso())
            self.db.set("VDI", new, "is_a_snapshot", True)
            self.db.set("VDI", new, "snapshot_of", src)
        else:
            self.db.set("VDI", new, "is_a_snapshot", False)
        self.sm(sr, "vdi_update", vdi=new, op="VDI.update")
        return new

    def cmd_vdi_snapshot(self, kv, maps, flags):
        src = self.ref("VDI", kv["uuid"])
        s = self.db.get("VDI", src)
        self.need_cap(s["SR"], "VDI_SNAPSHOT", "VDI.snapshot")
        self.need_attached(s["SR"])
        vi = self.sm(s["SR"], "vdi_snapshot", vdi=src, driver_params=maps.get("driver-params", {}),
                     op="VDI.snapshot")
        new = self.after_copy_op(s["SR"], src, vi, s["name_label"], s["name_description"], True)
        return self.db.field("VDI", new, "uuid")

    def cmd_vdi_clone(self, kv, maps, flags):
        src = self.ref("VDI", kv["uuid"])
        s = self.db.get("VDI", src)
        self.need_attached(s["SR"])
        name = kv.get("new-name-label", s["name_label"])
        desc = kv.get("new-name-description", s["name_description"])
        try:
            vi = self.sm(s["SR"], "vdi_clone", vdi=src, driver_params=maps.get("driver-params", {}),
                         op="VDI.clone")
        except NotImplementedInBackend:
            # xapi_vdi.ml clone: fall back to create + copy
            return self.copy(src, s["SR"], name)
        new = self.after_copy_op(s["SR"], src, vi, name, desc, False)
        return self.db.field("VDI", new, "uuid")

    def cmd_vdi_resize(self, kv, maps, flags):
        vdi = self.ref("VDI", kv["uuid"])
        sr = self.db.field("VDI", vdi, "SR")
        size = parse_size(kv["disk-size"])
        self.need_cap(sr, "VDI_RESIZE", "VDI.resize")
        if self.vbds_attached(vdi):
            raise Failure("VDI_IN_USE", vdi, "resize")
        self.need_attached(sr)
        vi = self.sm(sr, "vdi_resize", vdi=vdi, args=[size], op="VDI.resize")
        v = self.find_vdi_by_location(sr, vi["location"])
        got = self.db.field("VDI", v, "virtual_size")
        if got < size:
            self.x.warnings.append("vdi_resize: virtual_size %d < requested %d" % (got, size))
        return ""

    def cmd_vdi_introduce(self, kv, maps, flags):
        sr = self.ref("SR", kv["sr-uuid"])
        self.need_cap(sr, "VDI_INTRODUCE", "VDI.introduce")
        self.need_attached(sr)
        uuid = kv.get("uuid") or new_uuid()
        if self.db.find("VDI", uuid=uuid):
            raise Failure("UUID_INVALID", "VDI", uuid)
        vi = self.sm(sr, "vdi_introduce", vdi_location=kv["location"],
                     vdi_sm_config=maps.get("sm-config", {}), new_uuid=uuid, op="VDI.introduce")
        vdi = self.newvdi(sr, vi)
        return self.db.field("VDI", vdi, "uuid")

    def cmd_vdi_update(self, kv, maps, flags):
        vdi = self.ref("VDI", kv["uuid"])
        self.sm(self.db.field("VDI", vdi, "SR"), "vdi_update", vdi=vdi, op="VDI.update")
        return ""

    def cmd_vdi_generate_config(self, kv, maps, flags):
        vdi = self.ref("VDI", kv["uuid"])
        host = self.ref("host", kv["host-uuid"]) if "host-uuid" in kv else self.x.host
        return self.sm(self.db.field("VDI", vdi, "SR"), "vdi_generate_config", host=host,
                       vdi=vdi, op="VDI.generate_config")

    # -- datapath
    def attach(self, vdi, writable, host=None):
        sr = self.db.field("VDI", vdi, "SR")
        w = "true" if writable else "false"
        res = self.sm(sr, "vdi_attach", host=host, vdi=vdi, args=[w], op="VDI.attach")
        try:
            if self.has_cap(sr, "VDI_ACTIVATE"):
                self.sm(sr, "vdi_activate", host=host, vdi=vdi, args=[w], op="VDI.activate")
        except Failure:
            self.sm(sr, "vdi_detach", host=host, vdi=vdi, op="VDI.detach")
            raise
        # storage_smapiv1.ml attach2: read caching recorded in sm_config
        h = self.db.field("host", host or self.x.host, "uuid")
        smc = dict(self.db.field("VDI", vdi, "sm_config"))
        smc["read-caching-enabled-on-" + h] = "false" if res["o_direct"] else "true"
        self.db.set("VDI", vdi, "sm_config", smc)
        return res

    def detach(self, vdi, host=None):
        sr = self.db.field("VDI", vdi, "SR")
        if self.has_cap(sr, "VDI_DEACTIVATE"):
            self.sm(sr, "vdi_deactivate", host=host, vdi=vdi, op="VDI.deactivate")
        self.sm(sr, "vdi_detach", host=host, vdi=vdi, op="VDI.detach")
        h = self.db.field("host", host or self.x.host, "uuid")
        smc = dict(self.db.field("VDI", vdi, "sm_config"))
        smc.pop("read-caching-enabled-on-" + h, None)
        self.db.set("VDI", vdi, "sm_config", smc)

    def copy(self, src, dst_sr, name=None):
        s = self.db.get("VDI", src)
        dst = self.create_vdi(dst_sr, s["virtual_size"], name or s["name_label"],
                              s["name_description"], s["type"])
        a = self.attach(src, False)
        try:
            b = self.attach(dst, True)
            try:
                self.nbd_transfer(nbd_uri(a["params_nbd"]), nbd_uri(b["params_nbd"]))
            finally:
                self.detach(dst)
        finally:
            self.detach(src)
        return self.db.field("VDI", dst, "uuid")

    def cmd_vdi_copy(self, kv, maps, flags):
        src = self.ref("VDI", kv["uuid"])
        sr = self.ref("SR", kv["sr-uuid"]) if "sr-uuid" in kv else self.db.field("VDI", src, "SR")
        return self.copy(src, sr)

    def nbd_transfer(self, src, dst):
        try:
            subprocess.run(["nbdcopy", "--flush", src, dst], check=True, capture_output=True,
                           timeout=600)
        except subprocess.CalledProcessError as e:
            raise Failure("VDI_IO_ERROR", e.stderr.decode(errors="replace"))

    def cmd_vdi_export(self, kv, maps, flags):
        """xe vdi-export format=raw: attach read-only in dom0, stream out, detach."""
        vdi = self.ref("VDI", kv["uuid"])
        a = self.attach(vdi, False)
        try:
            self.nbd_transfer(nbd_uri(a["params_nbd"]), kv["filename"])
        finally:
            self.detach(vdi)
        return ""

    def cmd_vdi_import(self, kv, maps, flags):
        """xe vdi-import format=raw: attach read-write in dom0, stream in, detach."""
        vdi = self.ref("VDI", kv["uuid"])
        if self.vbds_attached(vdi):
            raise Failure("VDI_IN_USE", vdi, "import")
        a = self.attach(vdi, True)
        try:
            self.nbd_transfer(kv["filename"], nbd_uri(a["params_nbd"]))
        finally:
            self.detach(vdi)
        return ""

    # ------------------------------------------------------------------ VBD
    def cmd_vbd_create(self, kv, maps, flags):
        vm = self.ref("VM", kv["vm-uuid"])
        vdi = self.ref("VDI", kv["vdi-uuid"])
        mode = kv.get("mode", "RW")
        if mode == "RW" and self.db.field("VDI", vdi, "read_only"):
            raise Failure("VDI_READONLY", vdi)
        vbd = self.db.create("VBD", VM=vm, VDI=vdi, device=kv.get("device", ""),
                             userdevice=kv.get("device", "").lstrip("xvd") or "0",
                             mode=mode, type=kv.get("type", "Disk"))
        return self.db.field("VBD", vbd, "uuid")

    def cmd_vbd_plug(self, kv, maps, flags):
        vbd = self.ref("VBD", kv["uuid"])
        b = self.db.get("VBD", vbd)
        if b["currently_attached"]:
            raise Failure("DEVICE_ALREADY_ATTACHED", vbd)
        vm = self.db.get("VM", b["VM"])
        if vm["power_state"] != "Running":
            raise Failure("VM_BAD_POWER_STATE", b["VM"], "running", vm["power_state"].lower())
        host = vm["resident_on"]
        sr = self.db.field("VDI", b["VDI"], "SR")
        # xenopsd VBD plug: epoch_begin, attach, activate
        self.sm(sr, "vdi_epoch_begin", host=host, vdi=b["VDI"], op="VBD.plug")
        res = self.attach(b["VDI"], b["mode"] == "RW", host=host)
        self.x.extra.setdefault("attachments", {})[vbd] = res
        self.db.set("VBD", vbd, "currently_attached", True)
        return ""

    def cmd_vbd_unplug(self, kv, maps, flags):
        vbd = self.ref("VBD", kv["uuid"])
        b = self.db.get("VBD", vbd)
        if not b["currently_attached"]:
            raise Failure("DEVICE_ALREADY_DETACHED", vbd)
        host = self.db.field("VM", b["VM"], "resident_on")
        sr = self.db.field("VDI", b["VDI"], "SR")
        self.detach(b["VDI"], host=host)
        self.sm(sr, "vdi_epoch_end", host=host, vdi=b["VDI"], op="VBD.unplug")
        self.x.extra.get("attachments", {}).pop(vbd, None)
        self.db.set("VBD", vbd, "currently_attached", False)
        return ""

    def cmd_vbd_destroy(self, kv, maps, flags):
        vbd = self.ref("VBD", kv["uuid"])
        if self.db.field("VBD", vbd, "currently_attached"):
            raise Failure("OPERATION_NOT_ALLOWED", "VBD is currently attached")
        self.db.destroy("VBD", vbd)
        return ""

    def attachment(self, vbd_uuid):
        """The vdi_attach result of a plugged VBD (params_nbd etc.)."""
        return self.x.extra["attachments"][self.ref("VBD", vbd_uuid)]

    # ------------------------------------------------------------------ host / misc
    def cmd_host_call_plugin(self, kv, maps, flags):
        c = xapi_sim.XenAPIClient(self.x.socket_path)
        s = c.call("session.login_with_password", "root", "", "2.21", "xe")
        try:
            host = c.call("host.get_by_uuid", s, kv["host-uuid"])
            return c.call("host.call_plugin", s, host, kv["plugin"], kv["fn"],
                          maps.get("args", {}))
        finally:
            c.call("session.logout", s)
            c.close()

    # ------------------------------------------------------------------ VM lifecycle
    # Templates: name -> disks (userdevice, size). Stand-ins for xapi's built-in templates.
    TEMPLATES = {"Debian Sarge 3.1": [("0", 64 * 1024 * 1024)],
                 "Other install media": [("0", 32 * 1024 * 1024), ("1", 16 * 1024 * 1024)]}

    def vm(self, uuid):
        ref = self.ref("VM", uuid)
        return ref, self.db.get("VM", ref)

    def vm_vbds(self, vm):
        return sorted(self.db.find("VBD", VM=vm),
                      key=lambda b: self.db.field("VBD", b, "userdevice"))

    def power(self, vm, want, op):
        state = self.db.field("VM", vm, "power_state")
        if state != want:
            raise Failure("VM_BAD_POWER_STATE", vm, want.lower(), state.lower())

    def plug_vbd(self, vbd, host):
        b = self.db.get("VBD", vbd)
        sr = self.db.field("VDI", b["VDI"], "SR")
        self.sm(sr, "vdi_epoch_begin", host=host, vdi=b["VDI"], op="VM.start")
        res = self.attach(b["VDI"], b["mode"] == "RW", host=host)
        self.x.extra.setdefault("attachments", {})[vbd] = res
        self.db.set("VBD", vbd, "currently_attached", True)

    def unplug_vbd(self, vbd, host):
        b = self.db.get("VBD", vbd)
        sr = self.db.field("VDI", b["VDI"], "SR")
        self.detach(b["VDI"], host=host)
        self.sm(sr, "vdi_epoch_end", host=host, vdi=b["VDI"], op="VM.shutdown")
        self.x.extra.get("attachments", {}).pop(vbd, None)
        self.db.set("VBD", vbd, "currently_attached", False)

    def cmd_vm_install(self, kv, maps, flags):
        """vm-install template= new-name-label= [sr-uuid=]: one vdi_create per template disk
        (on sr-uuid or the pool's default SR), VBDs; the VM is halted."""
        disks = self.TEMPLATES.get(kv["template"])
        if disks is None:
            raise Failure("UUID_INVALID", "VM", kv["template"])
        if "sr-uuid" in kv:
            sr = self.ref("SR", kv["sr-uuid"])
        else:
            sr = self.db.field("pool", self.x.pool, "default_SR")
            if not self.db.valid("SR", sr):
                raise Failure("VM_REQUIRES_SR", kv["template"], sr)
        name = kv.get("new-name-label", kv["template"])
        vm = self.db.create("VM", name_label=name, power_state="Halted",
                            memory_static_max=32 * 1024 * 1024)
        for dev, size in disks:
            vdi = self.create_vdi(sr, size, "%s %s" % (name, dev),
                                  "Created by template provisioner")
            self.db.create("VBD", VM=vm, VDI=vdi, userdevice=dev,
                           device="xvd" + "abcdefgh"[int(dev)],
                           mode="RW", type="Disk", bootable=dev == "0")
        return self.db.field("VM", vm, "uuid")

    def cmd_pool_param_set(self, kv, maps, flags):
        pool = self.ref("pool", kv["uuid"])
        if "default-SR" in kv:
            self.db.set("pool", pool, "default_SR", self.ref("SR", kv["default-SR"]))
        return ""

    def cmd_pool_list(self, kv, maps, flags):
        return self._list("pool", kv, flags)

    def cmd_vm_start(self, kv, maps, flags):
        """Per VBD: vdi_epoch_begin, vdi_attach, vdi_activate (xenopsd VM start)."""
        vm, rec = self.vm(kv["uuid"])
        self.power(vm, "Halted", "start")
        host = self.ref("host", kv["on"]) if "on" in kv else self.x.host
        done = []
        try:
            for vbd in self.vm_vbds(vm):
                self.plug_vbd(vbd, host)
                done.append(vbd)
        except Failure:
            for vbd in reversed(done):
                self.unplug_vbd(vbd, host)
            raise
        self.db.set("VM", vm, "resident_on", host)
        self.db.set("VM", vm, "power_state", "Running")
        return ""

    def cmd_vm_shutdown(self, kv, maps, flags):
        """Per VBD: vdi_deactivate, vdi_detach, vdi_epoch_end (also with --force)."""
        vm, rec = self.vm(kv["uuid"])
        self.power(vm, "Running", "shutdown")
        for vbd in self.vm_vbds(vm):
            if self.db.field("VBD", vbd, "currently_attached"):
                self.unplug_vbd(vbd, rec["resident_on"])
        self.db.set("VM", vm, "power_state", "Halted")
        self.db.set("VM", vm, "resident_on", NULL_REF)
        return ""

    def memory_image(self, vm):
        return os.path.join(self.x.extra.setdefault("work_dir", os.path.dirname(
            self.x.socket_path)), "suspend-%s.img" % self.db.field("VM", vm, "uuid"))

    def cmd_vm_suspend(self, kv, maps, flags):
        """vdi_create of the suspend image, attach+activate, write the memory image,
        deactivate+detach; then deactivate+detach every data VDI."""
        vm, rec = self.vm(kv["uuid"])
        self.power(vm, "Running", "suspend")
        host = rec["resident_on"]
        sr = self.db.field("pool", self.x.pool, "default_SR")
        if not self.db.valid("SR", sr):
            sr = self.db.field("VDI", self.db.field("VBD", self.vm_vbds(vm)[0], "VDI"), "SR")
        size = rec["memory_static_max"] or 32 * 1024 * 1024
        sv = self.create_vdi(sr, size, "Suspend image", "", vtype="suspend")
        a = self.attach(sv, True, host=host)
        try:
            if self.datapath:
                image = self.memory_image(vm)
                with open(image, "wb") as f:
                    f.write(os.urandom(1024 * 1024))
                    f.truncate(size)
                self.nbd_transfer(image, nbd_uri(a["params_nbd"]))
        finally:
            self.detach(sv, host=host)
        for vbd in self.vm_vbds(vm):
            if self.db.field("VBD", vbd, "currently_attached"):
                self.detach(self.db.field("VBD", vbd, "VDI"), host=host)
                self.db.set("VBD", vbd, "currently_attached", False)
                self.x.extra.get("attachments", {}).pop(vbd, None)
        self.db.set("VM", vm, "suspend_VDI", sv)
        self.db.set("VM", vm, "power_state", "Suspended")
        return ""

    def cmd_vm_resume(self, kv, maps, flags):
        """attach+activate the suspend image and read it, attach+activate the data VDIs, then
        deactivate, detach and delete the suspend image."""
        vm, rec = self.vm(kv["uuid"])
        self.power(vm, "Suspended", "resume")
        host = rec["resident_on"] if self.db.valid("host", rec["resident_on"]) else self.x.host
        sv = rec["suspend_VDI"]
        a = self.attach(sv, False, host=host)
        try:
            if self.datapath:
                image = self.memory_image(vm)
                back = image + ".read"
                self.nbd_transfer(nbd_uri(a["params_nbd"]), back)
                with open(image, "rb") as f1, open(back, "rb") as f2:
                    same = f1.read() == f2.read()
                os.unlink(back)
                os.unlink(image)
                if not same:
                    raise Failure("VM_RESUME_FAILED", "the suspend image read back differs")
            for vbd in self.vm_vbds(vm):
                b = self.db.get("VBD", vbd)
                res = self.attach(b["VDI"], b["mode"] == "RW", host=host)
                self.x.extra.setdefault("attachments", {})[vbd] = res
                self.db.set("VBD", vbd, "currently_attached", True)
        finally:
            self.detach(sv, host=host)
        self.sm(self.db.field("VDI", sv, "SR"), "vdi_delete", vdi=sv, op="VM.resume")
        if self.db.valid("VDI", sv):
            self.forget_vdi_record(sv)
        self.db.set("VM", vm, "suspend_VDI", NULL_REF)
        self.db.set("VM", vm, "power_state", "Running")
        return ""

    def cmd_vm_migrate(self, kv, maps, flags):
        """Per VBD: vdi_attach on the destination; then (VM paused) vdi_deactivate on the
        source, vdi_activate on the destination; then vdi_detach on the source."""
        vm, rec = self.vm(kv["uuid"])
        self.power(vm, "Running", "migrate")
        src = rec["resident_on"]
        dst = self.ref("host", kv["host-uuid"]) if "host-uuid" in kv else src
        vbds = [v for v in self.vm_vbds(vm) if self.db.field("VBD", v, "currently_attached")]
        for vbd in vbds:
            b = self.db.get("VBD", vbd)
            w = "true" if b["mode"] == "RW" else "false"
            sr = self.db.field("VDI", b["VDI"], "SR")
            res = self.sm(sr, "vdi_attach", host=dst, vdi=b["VDI"], args=[w], op="VM.migrate")
            self.x.extra.setdefault("attachments", {})[vbd] = res
        for vbd in vbds:
            b = self.db.get("VBD", vbd)
            w = "true" if b["mode"] == "RW" else "false"
            sr = self.db.field("VDI", b["VDI"], "SR")
            if self.has_cap(sr, "VDI_DEACTIVATE"):
                self.sm(sr, "vdi_deactivate", host=src, vdi=b["VDI"], op="VM.migrate")
            if self.has_cap(sr, "VDI_ACTIVATE"):
                self.sm(sr, "vdi_activate", host=dst, vdi=b["VDI"], args=[w], op="VM.migrate")
        self.db.set("VM", vm, "resident_on", dst)
        for vbd in vbds:
            b = self.db.get("VBD", vbd)
            sr = self.db.field("VDI", b["VDI"], "SR")
            self.sm(sr, "vdi_detach", host=src, vdi=b["VDI"], op="VM.migrate")
        return ""

    def cmd_vm_clone(self, kv, maps, flags):
        """One vdi_clone per disk (fault 38: create + copy); the VM must be halted."""
        vm, rec = self.vm(kv["uuid"])
        self.power(vm, "Halted", "clone")
        new = self.db.create("VM", name_label=kv.get("new-name-label", rec["name_label"]),
                             power_state="Halted", memory_static_max=rec["memory_static_max"])
        for vbd in self.vm_vbds(vm):
            b = self.db.get("VBD", vbd)
            v = self.db.get("VDI", b["VDI"])
            c = self.cmd_vdi_clone({"uuid": v["uuid"]}, {}, set())
            self.db.create("VBD", VM=new, VDI=self.ref("VDI", c), userdevice=b["userdevice"],
                           device=b["device"], mode=b["mode"], type=b["type"],
                           bootable=b["bootable"])
        return self.db.field("VM", new, "uuid")

    def cmd_vm_uninstall(self, kv, maps, flags):
        """Destroys the VM and vdi_deletes its disks (xe vm-uninstall); --force shuts down."""
        vm, rec = self.vm(kv["uuid"])
        if rec["power_state"] == "Running":
            if "force" not in flags:
                raise Failure("VM_BAD_POWER_STATE", vm, "halted", "running")
            self.cmd_vm_shutdown({"uuid": kv["uuid"]}, {}, set())
        for vbd in self.vm_vbds(vm):
            vdi = self.db.field("VBD", vbd, "VDI")
            self.db.destroy("VBD", vbd)
            if self.db.valid("VDI", vdi) and not self.db.find("VBD", VDI=vdi):
                self.cmd_vdi_destroy({"uuid": self.db.field("VDI", vdi, "uuid")}, {}, set())
        self.db.destroy("VM", vm)
        return ""

    def cmd_vm_create(self, kv, maps, flags):
        """Not an xe command: a running VM record for VBD tests (xe vm-install stand-in)."""
        vm = self.db.create("VM", name_label=kv.get("name-label", ""),
                            power_state=kv.get("power-state", "Running"),
                            resident_on=self.x.host)
        return self.db.field("VM", vm, "uuid")

    def _list(self, cls, kv, flags):
        params = kv.pop("params", "uuid,name-label" if "name_label" in xapi_sim.CLASSES[cls]
                        else "uuid")
        out = []
        for ref, rec in self.db.records(cls).items():
            ok = True
            for k, v in kv.items():
                f = k.replace("-", "_")
                if f.endswith("_uuid") and f[:-5] in ("sr", "host", "vdi", "vm"):
                    target = {"sr": "SR", "host": "host", "vdi": "VDI", "vm": "VM"}[f[:-5]]
                    fld = target if target in rec else target.lower()
                    r = rec.get(fld)
                    ok = ok and r is not None and self.db.valid(target, r) and \
                        self.db.field(target, r, "uuid") == v
                else:
                    ok = ok and xapi_sim.field_text(rec.get(f)) == v
            if ok:
                out.append(rec)
        if "minimal" in flags:
            return ",".join(r["uuid"] for r in out)
        names = [p.strip() for p in params.split(",")] if params != "all" else None
        blocks = []
        for r in out:
            keys = names or sorted(r)
            blocks.append("\n".join("%s: %s" % (k, r.get(k.replace("-", "_"))) for k in keys))
        return "\n\n".join(blocks)

    def cmd_sr_list(self, kv, maps, flags):
        return self._list("SR", kv, flags)

    def cmd_vdi_list(self, kv, maps, flags):
        return self._list("VDI", kv, flags)

    def cmd_pbd_list(self, kv, maps, flags):
        return self._list("PBD", kv, flags)

    def cmd_vbd_list(self, kv, maps, flags):
        return self._list("VBD", kv, flags)

    def cmd_host_list(self, kv, maps, flags):
        return self._list("host", kv, flags)

    def cmd_vm_list(self, kv, maps, flags):
        return self._list("VM", kv, flags)

    def cmd_sm_list(self, kv, maps, flags):
        for t in self.x.sm_plugins:
            self.sm_record(t)
        return self._list("SM", kv, flags)


def main(argv):
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(
        description="xe-like front of the XAPI simulator (state kept in a JSON file)")
    ap.add_argument("--state", required=True, help="JSON state file (created if missing)")
    ap.add_argument("--sm", action="append", default=[], metavar="TYPE=PATH",
                    help="SM plugin for an SR type, e.g. replun=build/bin/ReplunSR")
    ap.add_argument("--plugin-dir", help="host plugins directory (/etc/xapi.d/plugins)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra environment for plugins (REPLUN_LOCK_DIR, REPLUN_RUN_DIR)")
    ap.add_argument("command")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    sock_dir = tempfile.mkdtemp(prefix="xapi-sim-")
    sock = os.path.join(sock_dir, "xapi")
    env = dict(e.split("=", 1) for e in a.env)
    x = xapi_sim.Xapi(sock, state_file=os.path.abspath(a.state),
                      sm_plugins=dict(s.split("=", 1) for s in a.sm),
                      plugin_dir=a.plugin_dir, env_extra=env)
    x.start()
    try:
        out = Xe(x).run([a.command] + a.args)
        if out:
            print(out)
        return 0
    except Failure as f:
        print("Error code: %s" % f.code, file=sys.stderr)
        print("Error parameters: %s" % ", ".join(f.params), file=sys.stderr)
        return 1
    finally:
        x.stop()
        x.save()
        os.rmdir(sock_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
