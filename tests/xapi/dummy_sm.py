#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A minimal reference SMAPIv1 plugin (like sm's DummySR) used only to self-test the XAPI
# simulator and its xe front before/independently of ReplunSR. Not part of replun.
"""Keeps VDIs as sparse files in device_config:path/<sr_uuid>/; metadata in meta.json.
Calls back into the simulator exactly as sm does (VDI.db_introduce etc. with session_ref).
Env DUMMY_SM_FAULT=<command>:<code> makes that command fail (error-path tests)."""

import json
import os
import socket
import sys
import uuid as uuidlib
import xmlrpc.client
import http.client

SOCK = os.environ.get("REPLUN_XAPI_SOCKET", "/var/lib/xcp/xapi")


class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(SOCK)


class T(xmlrpc.client.Transport):
    def make_connection(self, host):
        return Conn("localhost")


def api(method, *params):
    r = getattr(xmlrpc.client.ServerProxy("http://localhost/", transport=T()), method)(*params)
    if r["Status"] != "Success":
        raise RuntimeError("XenAPI %s failed: %s" % (method, r["ErrorDescription"]))
    return r["Value"]


def fault(code, msg):
    print(xmlrpc.client.dumps(xmlrpc.client.Fault(code, msg), methodresponse=True))
    sys.exit(0)


def ok(value):
    print(xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True))
    sys.exit(0)


def main():
    if len(sys.argv) != 2:
        fault(143, "Bad request")
    try:
        (p,), cmd = xmlrpc.client.loads(sys.argv[1])
    except Exception as e:
        fault(143, "Bad request [opterr=%s]" % e)
    if os.environ.get("DUMMY_SM_FAULT", ":").split(":")[0] == cmd:
        fault(int(os.environ["DUMMY_SM_FAULT"].split(":")[1]), "injected fault")
    if cmd == "sr_get_driver_info":
        ok({"name": "Dummy", "description": "self-test plugin", "vendor": "replun tests",
            "copyright": "MIT", "driver_version": "1.0", "required_api_version": "1.0",
            "capabilities": ["SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH",
                             "VDI_DETACH", "VDI_ACTIVATE", "VDI_DEACTIVATE", "VDI_RESIZE",
                             "VDI_SNAPSHOT", "VDI_CLONE", "VDI_INTRODUCE", "VDI_UPDATE"],
            "configuration": [{"key": "path", "description": "directory (required)"}]})
    dc = p["device_config"]
    if "path" not in dc:
        fault(90, "The request is missing the device parameter [opterr=path]")
    if cmd == "sr_probe":
        ok("<SRlist>%s</SRlist>" % "".join("<SR><UUID>%s</UUID></SR>" % d
                                           for d in sorted(os.listdir(dc["path"]))))
    srdir = os.path.join(dc["path"], p["sr_uuid"])
    metaf = os.path.join(srdir, "meta.json")
    meta = json.load(open(metaf)) if os.path.exists(metaf) else {}
    s, sr = p["session_ref"], p["sr_ref"]

    def save():
        json.dump(meta, open(metaf, "w"))

    def introduce(u, m):
        api("VDI.db_introduce", s, u, m["name"], m["desc"], sr, m.get("type", "user"), False,
            m["ro"], {}, u, {}, {}, True, str(m["size"]), "0", "OpaqueRef:NULL",
            m.get("snap", False), xmlrpc.client.DateTime(m.get("time", "19700101T00:00:00Z")),
            "OpaqueRef:NULL", False)

    def new_vdi(size, name, desc, ro, src=None, snap=False):
        u = str(uuidlib.uuid4())
        with open(os.path.join(srdir, u), "wb") as f:
            if src:
                f.write(open(os.path.join(srdir, src), "rb").read())
            f.truncate(size)
        meta[u] = {"name": name, "desc": desc, "size": size, "ro": ro, "snap": snap}
        save()
        introduce(u, meta[u])
        ok({"uuid": u, "location": u})

    if cmd == "sr_create":
        os.makedirs(srdir, exist_ok=True)
        save()
        ok(None)
    if not os.path.isdir(srdir):
        fault(47, "The SR is not available [opterr=%s]" % srdir)
    if cmd == "sr_delete":
        if meta:
            fault(39, "SR is not empty")
        os.unlink(metaf)
        os.rmdir(srdir)
        ok(None)
    if cmd in ("sr_attach", "sr_detach", "vdi_update", "vdi_epoch_begin", "vdi_epoch_end",
               "vdi_activate", "vdi_deactivate", "vdi_detach"):
        ok(None)
    if cmd == "sr_scan":
        known = {r["location"]: ref for ref, r in
                 api("VDI.get_all_records_where", s, 'field "SR" = "%s"' % sr).items()}
        for u, m in meta.items():
            if u not in known:
                introduce(u, m)
        for loc, ref in known.items():
            if loc not in meta:
                api("VDI.db_forget", s, ref)
        ok(None)
    if cmd == "sr_update":
        used = sum(m["size"] for m in meta.values())
        api("SR.set_physical_size", s, sr, str(1 << 40))
        api("SR.set_physical_utilisation", s, sr, str(used))
        api("SR.set_virtual_allocation", s, sr, str(used))
        ok(None)
    if cmd == "vdi_create":
        a = p["args"]
        new_vdi(int(a[0]), a[1], a[2], a[7] == "true")
    loc = p.get("vdi_location", "")
    if cmd == "vdi_introduce":
        if loc not in meta:
            fault(46, "The VDI is not available [opterr=%s]" % loc)
        introduce(p["new_uuid"], meta[loc])
        ok({"uuid": p["new_uuid"], "location": loc})
    if loc not in meta:
        fault(46, "The VDI is not available [opterr=%s]" % loc)
    if cmd == "vdi_delete":
        os.unlink(os.path.join(srdir, loc))
        del meta[loc]
        save()
        api("VDI.db_forget", s, p["vdi_ref"])
        ok(None)
    if cmd in ("vdi_snapshot", "vdi_clone"):
        m = meta[loc]
        new_vdi(m["size"], m["name"], m["desc"], cmd == "vdi_snapshot", loc,
                cmd == "vdi_snapshot")
    if cmd == "vdi_resize":
        size = int(p["args"][0])
        os.truncate(os.path.join(srdir, loc), size)
        meta[loc]["size"] = size
        save()
        api("VDI.set_virtual_size", s, p["vdi_ref"], str(size))
        api("VDI.set_physical_utilisation", s, p["vdi_ref"], str(size))
        ok({"uuid": p["vdi_uuid"], "location": loc})
    if cmd == "vdi_attach":
        ok({"params": os.path.join(srdir, loc), "params_nbd": "nbd:unix:/nonexistent",
            "o_direct": True, "xenstore_data": {"vdi-uuid": p["vdi_uuid"]}})
    fault(38, "Unimplemented command %s" % cmd)


if __name__ == "__main__":
    main()
