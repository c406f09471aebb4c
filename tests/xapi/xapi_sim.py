#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A faithful-enough XAPI for testing SMAPIv1 plugins: a XenAPI XML-RPC server on a Unix socket
# (hosts, pools, SRs, PBDs, VDIs, VBDs, VMs, SMs, sessions) that enforces the argument order and
# types of the calls plugins make, and XAPI's side of running plugins (sm_exec, host plugins).
"""XAPI simulator.

Three parts, all Python 3 standard library:

* ``Database``: XAPI's object store (records keyed by ``OpaqueRef:…``), JSON persistence.
* ``XenAPIServer``: HTTP/1.1 POST XML-RPC on a Unix socket, answering in XAPI's envelope
  ``{Status: Success, Value}`` / ``{Status: Failure, ErrorDescription}``. Every call is
  recorded. Wrong arity, wrong types, bad sessions, SM-only setters called with a non-SM
  session: XAPI-style failures, and the call is flagged as a protocol violation so tests fail.
* ``SmExec``: runs an SMAPIv1 plugin the way ``sm_exec.ml`` does (argv[1] = methodCall in
  XAPI's own XML dialect, minimal environment, strict response parsing, fault mapping), and
  ``run_host_plugin`` does the same for ``/etc/xapi.d/plugins`` host plugins.

The SMAPI orchestration of xe commands lives in ``xe.py``.
"""

import datetime
import json
import os
import re
import signal
import socketserver
import subprocess
import sys
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
import xmlrpc.client
from http.server import BaseHTTPRequestHandler

NULL_REF = "OpaqueRef:NULL"
EPOCH = "19700101T00:00:00Z"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")

# Errors that mean "the caller spoke the protocol wrong": a plugin must never trigger these.
PROTOCOL_ERRORS = {
    "MESSAGE_METHOD_UNKNOWN", "MESSAGE_PARAMETER_COUNT_MISMATCH", "FIELD_TYPE_ERROR",
    "XMLRPC_UNMARSHAL_FAILURE", "SESSION_INVALID", "PERMISSION_DENIED", "ENUM_VALUE_INVALID",
}


class Failure(Exception):
    """A XenAPI failure: ErrorDescription = [code, params...]."""

    def __init__(self, code, *params):
        super().__init__(code, *params)
        self.code = code
        self.params = [str(p) for p in params]

    @property
    def description(self):
        return [self.code] + self.params

    def __str__(self):
        return "%s %s" % (self.code, self.params)


def new_uuid():
    return str(uuidlib.uuid4())


def new_ref():
    return "OpaqueRef:" + new_uuid()


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# The data model: field name -> type. Types: str, int (int64, on the wire a decimal string),
# bool, float, datetime, ref:<Class>, map (string -> string), set (of strings), enum:<name>.
# Fields named in DERIVED are computed from the other side of a relation, never stored.

ENUMS = {
    "vdi_type": {"system", "user", "ephemeral", "suspend", "crashdump", "ha_statefile",
                 "metadata", "redo_log", "rrd", "pvs_cache", "cbt_metadata"},
    "on_boot": {"reset", "persist"},
    "vbd_mode": {"RO", "RW"},
    "vbd_type": {"CD", "Disk", "Floppy"},
    "power_state": {"Halted", "Paused", "Running", "Suspended"},
    "cls": {"VM", "Host", "SR", "Pool", "VMPP", "VMSS", "PVS_proxy", "VDI", "Certificate"},
}

CLASSES = {
    "pool": {
        "uuid": "str", "name_label": "str", "name_description": "str", "master": "ref:host",
        "default_SR": "ref:SR", "suspend_image_SR": "ref:SR", "crash_dump_SR": "ref:SR",
        "other_config": "map",
    },
    "host": {
        "uuid": "str", "name_label": "str", "name_description": "str", "hostname": "str",
        "address": "str", "enabled": "bool", "other_config": "map", "PBDs": "set",
        "resident_VMs": "set", "API_version_major": "int", "API_version_minor": "int",
        "software_version": "map", "metrics": "ref:host_metrics",
    },
    "host_metrics": {
        "uuid": "str", "live": "bool", "other_config": "map",
    },
    "SR": {
        "uuid": "str", "name_label": "str", "name_description": "str",
        "allowed_operations": "set", "current_operations": "map", "VDIs": "set", "PBDs": "set",
        "virtual_allocation": "int", "physical_utilisation": "int", "physical_size": "int",
        "type": "str", "content_type": "str", "shared": "bool", "other_config": "map",
        "tags": "set", "sm_config": "map", "blobs": "map", "local_cache_enabled": "bool",
        "introduced_by": "ref:DR_task", "clustered": "bool", "is_tools_sr": "bool",
    },
    "PBD": {
        "uuid": "str", "host": "ref:host", "SR": "ref:SR", "device_config": "map",
        "currently_attached": "bool", "other_config": "map",
    },
    "VDI": {
        "uuid": "str", "name_label": "str", "name_description": "str",
        "allowed_operations": "set", "current_operations": "map", "SR": "ref:SR",
        "VBDs": "set", "crash_dumps": "set", "virtual_size": "int",
        "physical_utilisation": "int", "type": "enum:vdi_type", "sharable": "bool",
        "read_only": "bool", "other_config": "map", "storage_lock": "bool", "location": "str",
        "managed": "bool", "missing": "bool", "parent": "ref:VDI", "xenstore_data": "map",
        "sm_config": "map", "is_a_snapshot": "bool", "snapshot_of": "ref:VDI",
        "snapshots": "set", "snapshot_time": "datetime", "tags": "set", "allow_caching": "bool",
        "on_boot": "enum:on_boot", "metadata_of_pool": "ref:pool", "metadata_latest": "bool",
        "is_tools_iso": "bool", "cbt_enabled": "bool",
    },
    "VBD": {
        "uuid": "str", "VM": "ref:VM", "VDI": "ref:VDI", "device": "str", "userdevice": "str",
        "bootable": "bool", "mode": "enum:vbd_mode", "type": "enum:vbd_type", "empty": "bool",
        "currently_attached": "bool", "other_config": "map",
    },
    "VM": {
        "uuid": "str", "name_label": "str", "name_description": "str",
        "power_state": "enum:power_state", "is_control_domain": "bool",
        "resident_on": "ref:host", "VBDs": "set", "other_config": "map",
        "suspend_VDI": "ref:VDI", "memory_static_max": "int", "is_a_template": "bool",
    },
    "SM": {
        "uuid": "str", "name_label": "str", "name_description": "str", "type": "str",
        "vendor": "str", "copyright": "str", "version": "str", "required_api_version": "str",
        "configuration": "map", "capabilities": "set", "features": "map",
        "driver_filename": "str", "required_cluster_stack": "set", "other_config": "map",
    },
    "session": {
        "uuid": "str", "this_host": "ref:host", "this_user": "ref:user", "last_active": "datetime",
        "pool": "bool", "other_config": "map", "is_local_superuser": "bool",
        "auth_user_name": "str", "originator": "str",
    },
    "message": {
        "uuid": "str", "name": "str", "priority": "int", "cls": "enum:cls", "obj_uuid": "str",
        "timestamp": "datetime", "body": "str",
    },
}

# (class, field) -> (other class, field pointing back)
DERIVED = {
    ("host", "PBDs"): ("PBD", "host"),
    ("host", "resident_VMs"): ("VM", "resident_on"),
    ("SR", "VDIs"): ("VDI", "SR"),
    ("SR", "PBDs"): ("PBD", "SR"),
    ("VDI", "VBDs"): ("VBD", "VDI"),
    ("VDI", "snapshots"): ("VDI", "snapshot_of"),
    ("VM", "VBDs"): ("VBD", "VM"),
}

DEFAULTS = {"str": "", "int": 0, "bool": False, "float": 0.0, "datetime": EPOCH, "map": {},
            "set": []}

# Setters XAPI reserves for the SM backend session of the SR concerned
# (message_forwarding.ml Sm.assert_session_has_internal_sr_access).
SM_ONLY = {
    "SR.set_virtual_allocation", "SR.set_physical_size", "SR.set_physical_utilisation",
    "VDI.db_introduce", "VDI.db_forget", "VDI.set_sharable", "VDI.set_managed",
    "VDI.set_read_only", "VDI.set_missing", "VDI.set_virtual_size",
    "VDI.set_physical_utilisation", "VDI.set_is_a_snapshot", "VDI.set_snapshot_of",
    "VDI.set_snapshot_time", "VDI.set_metadata_of_pool", "VDI.set_cbt_enabled",
    "PBD.set_device_config",
}


def default_of(ftype):
    if ftype.startswith("ref:"):
        return NULL_REF
    if ftype.startswith("enum:"):
        return sorted(ENUMS[ftype[5:]])[0]
    value = DEFAULTS[ftype]
    return type(value)(value) if isinstance(value, (dict, list)) else value


class Database:
    """XAPI's object store. Values are kept as Python types: int64 as int, datetimes as
    'YYYYMMDDTHH:MM:SSZ' strings, refs as strings; derived set fields are computed."""

    def __init__(self):
        self.tables = {cls: {} for cls in CLASSES}
        self.lock = threading.RLock()

    # -- persistence
    def to_json(self):
        with self.lock:
            return json.loads(json.dumps(self.tables))

    def load_json(self, data):
        with self.lock:
            self.tables = {cls: dict(data.get(cls, {})) for cls in CLASSES}

    # -- records
    def create(self, cls, ref=None, **fields):
        with self.lock:
            ref = ref or new_ref()
            rec = {}
            for name, ftype in CLASSES[cls].items():
                if (cls, name) in DERIVED:
                    continue
                rec[name] = default_of(ftype)
            rec["uuid"] = new_uuid()
            for k, v in fields.items():
                if k not in CLASSES[cls]:
                    raise KeyError("%s has no field %s" % (cls, k))
                rec[k] = v
            self.tables[cls][ref] = rec
            return ref

    def destroy(self, cls, ref):
        with self.lock:
            self.tables[cls].pop(ref, None)

    def valid(self, cls, ref):
        return ref in self.tables[cls]

    def get(self, cls, ref):
        with self.lock:
            if ref not in self.tables[cls]:
                raise Failure("HANDLE_INVALID", cls, ref)
            rec = dict(self.tables[cls][ref])
            for (c, f), (oc, of) in DERIVED.items():
                if c == cls:
                    rec[f] = [r for r, o in self.tables[oc].items() if o.get(of) == ref]
            return rec

    def set(self, cls, ref, field, value):
        with self.lock:
            if ref not in self.tables[cls]:
                raise Failure("HANDLE_INVALID", cls, ref)
            self.tables[cls][ref][field] = value

    def field(self, cls, ref, field):
        return self.get(cls, ref)[field]

    def all(self, cls):
        with self.lock:
            return list(self.tables[cls].keys())

    def records(self, cls):
        with self.lock:
            return {ref: self.get(cls, ref) for ref in self.tables[cls]}

    def by_uuid(self, cls, uuid):
        with self.lock:
            for ref, rec in self.tables[cls].items():
                if rec["uuid"] == uuid:
                    return ref
        raise Failure("UUID_INVALID", cls, uuid)

    def find(self, cls, **match):
        with self.lock:
            return [ref for ref, rec in self.tables[cls].items()
                    if all(rec.get(k) == v for k, v in match.items())]


# ---------------------------------------------------------------------------------------------
# Wire types: checking and encoding of XenAPI values

def check_type(method, pname, ftype, value, db):
    """Raise FIELD_TYPE_ERROR unless ``value`` (as decoded by xmlrpc.client) has XAPI's wire
    type for ``ftype``; return the Python value to store."""

    def bad(why):
        raise Failure("FIELD_TYPE_ERROR", pname, "%s: expected %s, got %s (%r)"
                      % (method, ftype, type(value).__name__, value), why)

    if ftype == "str":
        if not isinstance(value, str):
            bad("not a string")
        return value
    if ftype == "int":
        # XenAPI int64 travel as decimal strings
        if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]+", value):
            bad("int64 must be a decimal string")
        return int(value)
    if ftype == "bool":
        if not isinstance(value, bool):
            bad("not a <boolean>")
        return value
    if ftype == "float":
        if not isinstance(value, float):
            bad("not a <double>")
        return value
    if ftype == "datetime":
        if not isinstance(value, xmlrpc.client.DateTime):
            bad("not a <dateTime.iso8601>")
        s = value.value
        if not re.fullmatch(r"[0-9]{8}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:?[0-9]{2})?", s):
            bad("bad ISO 8601 date")
        return s if s.endswith("Z") else s + "Z"
    if ftype.startswith("ref:"):
        if not isinstance(value, str) or not (value.startswith("OpaqueRef:")
                                              or value.startswith("DummyRef:")):
            bad("not a reference")
        return value
    if ftype.startswith("enum:"):
        if not isinstance(value, str):
            bad("enum must be a string")
        if value not in ENUMS[ftype[5:]]:
            raise Failure("ENUM_VALUE_INVALID", pname, value)
        return value
    if ftype == "map":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in value.items()):
            bad("not a struct of strings")
        return dict(value)
    if ftype == "set":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            bad("not an array of strings")
        return list(value)
    raise AssertionError("unknown type " + ftype)


def encode(ftype, value):
    """Python value -> what XAPI puts on the wire."""
    if ftype == "int":
        return str(value)
    if ftype == "datetime":
        return xmlrpc.client.DateTime(value)
    return value


def encode_record(cls, rec):
    return {k: encode(CLASSES[cls][k], v) for k, v in rec.items() if k in CLASSES[cls]}


# A tiny parser for get_all_records_where expressions: field "x" = "y", and, or, not, ().
_TOK = re.compile(r'\s*(?:(\()|(\))|(=|<>)|"((?:[^"\\]|\\.)*)"|([A-Za-z_]+))')


def field_text(v):
    """A field's value as XAPI's where-expressions and xe's filters compare it: true/false for
    booleans, str() for the rest."""
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def where_filter(expr):
    toks, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOK.match(expr, pos)
        if not m or m.end() == pos:
            raise Failure("INTERNAL_ERROR", "Expression parse error: %s" % expr)
        pos = m.end()
        if m.group(1):
            toks.append(("(", None))
        elif m.group(2):
            toks.append((")", None))
        elif m.group(3):
            toks.append(("op", m.group(3)))
        elif m.group(4) is not None:
            toks.append(("s", m.group(4)))
        else:
            toks.append(("w", m.group(5).lower()))
    toks.append(("end", None))
    i = [0]

    def peek():
        return toks[i[0]]

    def take():
        t = toks[i[0]]
        i[0] += 1
        return t

    def atom():
        t = take()
        if t[0] == "(":
            e = disj()
            if take()[0] != ")":
                raise Failure("INTERNAL_ERROR", "Expression parse error: %s" % expr)
            return e
        if t == ("w", "not"):
            e = atom()
            return lambda r: not e(r)
        if t == ("w", "true"):
            return lambda r: True
        if t == ("w", "false"):
            return lambda r: False
        if t == ("w", "field"):
            f = take()
            op = take()
            v = take()
            if f[0] != "s" or op[0] != "op" or v[0] != "s":
                raise Failure("INTERNAL_ERROR", "Expression parse error: %s" % expr)

            def test(r, f=f[1], op=op[1], v=v[1]):
                x = field_text(r.get(f))
                return (x == v) if op == "=" else (x != v)

            return test
        raise Failure("INTERNAL_ERROR", "Expression parse error: %s" % expr)

    def conj():
        e = atom()
        while peek() == ("w", "and"):
            take()
            rhs = atom()
            e = (lambda a, b: lambda r: a(r) and b(r))(e, rhs)
        return e

    def disj():
        e = conj()
        while peek() == ("w", "or"):
            take()
            rhs = conj()
            e = (lambda a, b: lambda r: a(r) or b(r))(e, rhs)
        return e

    e = disj()
    if peek()[0] != "end":
        raise Failure("INTERNAL_ERROR", "Expression parse error: %s" % expr)
    return e


# ---------------------------------------------------------------------------------------------
# XAPI's own XML dialect (xml-light2 Xml.to_string of XMLRPC.To values): one line, no
# declaration, bare <value>text</value>, <value/> for "", <data/>, <struct/>.

def _xesc(s):
    out = []
    for ch in s:
        o = ord(ch)
        if o < 0x20 and ch not in "\t\n\r":
            continue
        out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}.get(ch, ch))
    return "".join(out)


def _xtag(tag, text):
    return "<%s/>" % tag if text == "" else "<%s>%s</%s>" % (tag, text, tag)


def xapi_value(v):
    if isinstance(v, bool):
        return "<value><boolean>%d</boolean></value>" % int(v)
    if isinstance(v, str):
        return _xtag("value", _xesc(v))
    if isinstance(v, (list, tuple)):
        return "<value><array>%s</array></value>" % _xtag("data", "".join(xapi_value(e) for e in v))
    if isinstance(v, dict):
        members = "".join("<member>%s%s</member>" % (_xtag("name", _xesc(k)), xapi_value(x))
                          for k, x in v.items())
        return "<value>%s</value>" % _xtag("struct", members)
    raise TypeError("XAPI sends only strings, arrays, structs and booleans, not %r" % (v,))


def xapi_method_call(name, params):
    return "<methodCall><methodName>%s</methodName><params>%s</params></methodCall>" % (
        _xesc(name), "".join("<param>%s</param>" % xapi_value(p) for p in params))


# -- XAPI's parser of plugin responses (XMLRPC.From in xMLRPC.ml), strict.

class ParseError(Exception):
    pass


class _Int(int):
    """An XML-RPC <int>/<i4>, distinct from a string."""


def _children(el):
    if el.text and el.text.strip() and len(el):
        raise ParseError("mixed content in <%s>" % el.tag)
    for c in el:
        if c.tail and c.tail.strip():
            raise ParseError("text after <%s>" % c.tag)
    return list(el)


def xapi_parse_value(el):
    if el.tag != "value":
        raise ParseError("expected <value>, got <%s>" % el.tag)
    kids = _children(el)
    if not kids:
        return el.text or ""
    if len(kids) != 1:
        raise ParseError("<value> with %d children" % len(kids))
    k = kids[0]
    t = k.tag
    if t == "string":
        if len(k):
            raise ParseError("<string> with children")
        return k.text or ""
    if t in ("int", "i4", "i8"):
        try:
            return _Int(int((k.text or "").strip()))
        except ValueError:
            raise ParseError("bad <%s>" % t)
    if t == "boolean":
        s = (k.text or "").strip()
        if s not in ("0", "1"):
            raise ParseError("bad <boolean> %r" % s)
        return s == "1"
    if t == "double":
        return float((k.text or "").strip())
    if t == "nil":
        if len(k) or (k.text or "").strip():
            raise ParseError("non-empty <nil>")
        return None
    if t == "dateTime.iso8601":
        return xmlrpc.client.DateTime((k.text or "").strip())
    if t == "array":
        data = _children(k)
        if len(data) != 1 or data[0].tag != "data":
            raise ParseError("<array> without one <data>")
        return [xapi_parse_value(v) for v in _children(data[0])]
    if t == "struct":
        out = {}
        for m in _children(k):
            if m.tag != "member":
                raise ParseError("<struct> child <%s>" % m.tag)
            mk = _children(m)
            if len(mk) != 2 or mk[0].tag != "name":
                raise ParseError("bad <member>")
            out[mk[0].text or ""] = xapi_parse_value(mk[1])
        return out
    raise ParseError("unknown value type <%s>" % t)


def xapi_parse_response(text):
    """('ok', value) or ('fault', code, string); ParseError if not one methodResponse."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ParseError("XML parse error: %s" % e)
    if root.tag != "methodResponse":
        raise ParseError("root is <%s>, not <methodResponse>" % root.tag)
    kids = _children(root)
    if len(kids) != 1:
        raise ParseError("<methodResponse> with %d children" % len(kids))
    k = kids[0]
    if k.tag == "params":
        ps = _children(k)
        if len(ps) != 1 or ps[0].tag != "param":
            raise ParseError("<params> must hold exactly one <param>")
        vs = _children(ps[0])
        if len(vs) != 1:
            raise ParseError("<param> must hold one <value>")
        return ("ok", xapi_parse_value(vs[0]))
    if k.tag == "fault":
        vs = _children(k)
        if len(vs) != 1:
            raise ParseError("<fault> must hold one <value>")
        st = xapi_parse_value(vs[0])
        if not isinstance(st, dict) or "faultCode" not in st or "faultString" not in st:
            raise ParseError("fault struct needs faultCode and faultString")
        if not isinstance(st["faultCode"], _Int):
            raise ParseError("faultCode must be <int> or <i4>")
        if not isinstance(st["faultString"], str):
            raise ParseError("faultString must be a string")
        return ("fault", int(st["faultCode"]), st["faultString"])
    raise ParseError("unexpected <%s> in <methodResponse>" % k.tag)


# -- typed result parsers of sm_exec.ml

def parse_unit(v):
    if v is not None:
        raise ParseError("expected <nil/> for a unit result, got %r" % (v,))
    return None


def parse_string(v):
    if not isinstance(v, str):
        raise ParseError("expected a string, got %r" % (v,))
    return v


def parse_vdi_info(v):
    if not isinstance(v, dict):
        raise ParseError("vdi_info: expected a struct, got %r" % (v,))
    for f in ("uuid", "location"):
        if f not in v:
            raise ParseError("<struct> missing field: %s" % f)
        if not isinstance(v[f], str):
            raise ParseError("vdi_info.%s must be a string" % f)
    return v


def parse_attach_result(v):
    if not isinstance(v, dict):
        raise ParseError("attach: expected a struct, got %r" % (v,))
    if "params_nbd" not in v:
        raise ParseError("<struct> missing field: params_nbd")
    if not isinstance(v["params_nbd"], str):
        raise ParseError("params_nbd must be a string")
    if "params" in v and not isinstance(v["params"], str):
        raise ParseError("params must be a string")
    if "o_direct" in v and not isinstance(v["o_direct"], bool):
        raise ParseError("o_direct must be a boolean")
    if "o_direct_reason" in v and not isinstance(v["o_direct_reason"], str):
        raise ParseError("o_direct_reason must be a string")
    xd = v.get("xenstore_data", {})
    if not isinstance(xd, dict) or not all(isinstance(x, str) for x in xd.values()):
        raise ParseError("xenstore_data must be a struct of strings")
    out = dict(v)
    out.setdefault("o_direct", True)
    out.setdefault("xenstore_data", {})
    return out


def parse_driver_info(v):
    if not isinstance(v, dict):
        raise ParseError("driver_info: expected a struct")
    for f in ("name", "description", "vendor", "copyright", "driver_version",
              "required_api_version"):
        if not isinstance(v.get(f), str):
            raise ParseError("driver_info: missing or non-string member %s" % f)
    caps = v.get("capabilities")
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ParseError("driver_info: capabilities must be an array of strings")
    conf = v.get("configuration")
    if not isinstance(conf, list):
        raise ParseError("driver_info: configuration must be an array")
    for c in conf:
        if not isinstance(c, dict) or not isinstance(c.get("key"), str) \
                or not isinstance(c.get("description"), str):
            raise ParseError("driver_info: configuration entries need key and description")
    return v


KNOWN_CAPS = set("""SR_CREATE SR_DELETE SR_ATTACH SR_DETACH SR_SCAN SR_PROBE SR_UPDATE
SR_SUPPORTS_LOCAL_CACHING SR_METADATA SR_TRIM SR_MULTIPATH SR_CACHING SR_STATS VDI_CREATE
VDI_DELETE VDI_ATTACH VDI_DETACH VDI_MIRROR VDI_MIRROR_IN VDI_RESIZE VDI_RESIZE_ONLINE VDI_CLONE
VDI_SNAPSHOT VDI_ACTIVATE VDI_ACTIVATE_READONLY VDI_DEACTIVATE VDI_UPDATE VDI_INTRODUCE
VDI_GENERATE_CONFIG VDI_ATTACH_OFFLINE VDI_RESET_ON_BOOT VDI_CONFIG_CBT VDI_COMPOSE LARGE_VDI
THIN_PROVISIONING VDI_READ_CACHING VDI_REVERT""".split())

# Which typed parser xapi applies to each SMAPI command's result.
RESULT_PARSERS = {
    "sr_get_driver_info": parse_driver_info, "sr_probe": parse_string,
    "vdi_create": parse_vdi_info, "vdi_snapshot": parse_vdi_info, "vdi_clone": parse_vdi_info,
    "vdi_resize": parse_vdi_info, "vdi_introduce": parse_vdi_info,
    "vdi_attach": parse_attach_result, "vdi_generate_config": parse_string,
    "vdi_list_changed_blocks": parse_string,
}

SM_MEMBER_ORDER = ["host_ref", "command", "args", "device_config", "session_ref", "sr_sm_config",
                   "sr_ref", "vdi_type", "sr_uuid", "vdi_ref", "vdi_location", "vdi_uuid",
                   "driver_params", "vdi_sm_config", "new_uuid", "subtask_of", "vdi_on_boot",
                   "vdi_allow_caching", "local_cache_sr"]


# XAPI runs plugins with this PATH and nothing else of its own environment. A test run hands
# down the sanitizer options (ASan builds) and its temp dir on top.
XAPI_PATH = "/sbin:/usr/sbin:/bin:/usr/bin"
PASSED_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TMPDIR")


def passed_env(keys=PASSED_ENV):
    """Those of @keys that this process has, with its values."""
    return {k: os.environ[k] for k in keys if k in os.environ}


def sm_exec_env(*extras):
    """The environment sm_exec.ml runs an SMAPIv1 plugin with (PATH, ORIGINATOR=SM), plus
    passed_env(), then each dict of @extras (None: nothing) in order."""
    env = {"PATH": XAPI_PATH, "ORIGINATOR": "SM"}
    env.update(passed_env())
    for extra in extras:
        env.update(extra or {})
    return env


class SmExec:
    """Runs SMAPIv1 plugins as xapi's sm_exec.ml does and keeps a log of every call."""

    def __init__(self, env_extra=None, timeout=180):
        self.env_extra = dict(env_extra or {})
        self.timeout = timeout
        self.log = []
        self.warnings = []
        self.lock = threading.Lock()

    def env(self, extra=None):
        return sm_exec_env(self.env_extra, extra)

    @staticmethod
    def build_call(members):
        """members: dict of SMAPI struct members; emitted in XAPI's fixed order."""
        unknown = set(members) - set(SM_MEMBER_ORDER)
        if unknown:
            raise ValueError("not an SMAPI member: %s" % sorted(unknown))
        struct = {k: members[k] for k in SM_MEMBER_ORDER if members.get(k) is not None}
        return xapi_method_call(struct["command"], [struct])

    def call_raw(self, plugin, document, env=None):
        """Run the plugin with argv[1]=document; return (rc, stdout, stderr, seconds)."""
        t0 = time.monotonic()
        try:
            p = subprocess.run([plugin, document], env=self.env(env), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired as e:
            raise Failure("SR_BACKEND_FAILURE", "timeout after %ss (xapi would hang)"
                          % self.timeout, (e.stdout or b"").decode(errors="replace"),
                          (e.stderr or b"").decode(errors="replace"))
        return (p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace"), time.monotonic() - t0)

    def call(self, plugin, members, env=None):
        """Build the call, run it, parse the answer like xapi; return the typed value or raise
        the API error xapi would raise. env: the host's own variables (each simulated host
        has its own /run and /var/lock)."""
        command = members["command"]
        doc = self.build_call(members)
        rc, out, err, secs = self.call_raw(plugin, doc, env)
        entry = {"command": command, "request": doc, "rc": rc, "stdout": out, "stderr": err,
                 "seconds": secs, "members": {k: v for k, v in members.items()
                                              if v is not None}}
        with self.lock:
            self.log.append(entry)
        try:
            if rc < 0:
                raise Failure("SR_BACKEND_FAILURE",
                              "received signal: %s" % signal.Signals(-rc).name, out, err)
            if rc != 0:
                raise Failure("SR_BACKEND_FAILURE", "non-zero exit", out, err)
            try:
                resp = xapi_parse_response(out)
            except ParseError as e:
                raise Failure("SR_BACKEND_FAILURE", str(e), out, err)
            if resp[0] == "fault":
                entry["fault"] = (resp[1], resp[2])
                raise map_fault(command, resp[1], resp[2], err, members)
            parser = RESULT_PARSERS.get(command, parse_unit)
            try:
                value = parser(resp[1])
            except ParseError as e:
                raise Failure("SR_BACKEND_FAILURE", "", "XML parse failure: %s" % e, err)
            entry["result"] = value
            if err.strip():
                self.warnings.append("%s succeeded but wrote to stderr: %s" % (command, err[:500]))
            return value
        except Failure as f:
            entry["error"] = f.description
            raise


class NotImplementedInBackend(Failure):
    def __init__(self, command):
        super().__init__("SR_OPERATION_NOT_SUPPORTED", command)
        self.command = command


def map_fault(command, code, string, stderr, members):
    if code == 38:
        return NotImplementedInBackend(command)
    if code == 39:
        return Failure("SR_NOT_EMPTY")
    if code == 24:
        return Failure("VDI_IN_USE", members.get("vdi_ref", ""), command)
    if code == 16:
        return Failure("SR_DEVICE_IN_USE")
    if code == 144:
        return Failure("VDI_MISSING", members.get("sr_ref", ""), members.get("vdi_ref", ""))
    return Failure("SR_BACKEND_FAILURE_%d" % code, "", string, stderr)


# ---------------------------------------------------------------------------------------------
# The XenAPI server

def _msg(*params):
    """Message signature: list of (name, type) after the session."""
    return list(params)


class Xapi:
    """One pool: database, XenAPI server, SM plugin runner, host plugins."""

    def __init__(self, socket_path, state_file=None, sm_plugins=None, plugin_dir=None,
                 env_extra=None, hostname="host-a"):
        self.socket_path = socket_path
        self.state_file = state_file
        self.sm_plugins = dict(sm_plugins or {})  # type -> executable (…/ReplunSR)
        self.plugin_dir = plugin_dir                # /etc/xapi.d/plugins
        self.db = Database()
        self.calls = []          # every XenAPI call: dict(method, params, ok, result/error)
        self.violations = []     # protocol violations by callers
        self.lose_answer = set()  # methods whose next answer is lost after taking effect
        self.warnings = []       # things xapi would only log
        self.extra = {"attachments": {}}  # xe-front private state (VBD attach results)
        self.host_env = {}       # host ref -> environment of that host's plugin processes
        env = {"REPLUN_XAPI_SOCKET": socket_path}
        env.update(env_extra or {})
        self.sm = SmExec(env_extra=env)
        self.sm.warnings = self.warnings
        self.server = None
        self.thread = None
        self.plugin_env = dict(env)
        if state_file and os.path.exists(state_file):
            self.load(state_file)
        else:
            self.bootstrap(hostname)

    # -- state
    def bootstrap(self, hostname):
        db = self.db
        host = db.create("host", name_label=hostname, hostname=hostname, address="127.0.0.1",
                         enabled=True, API_version_major=2, API_version_minor=21,
                         metrics=db.create("host_metrics", live=True),
                         software_version={"product_brand": "replun-xapi-sim",
                                           "xapi": "24.39"})
        db.create("pool", name_label="", master=host)
        db.create("VM", name_label="Control domain on host: " + hostname, power_state="Running",
                  is_control_domain=True, resident_on=host)

    def add_host(self, hostname):
        """A pool member (not the master) with its control domain."""
        host = self.db.create("host", name_label=hostname, hostname=hostname,
                              address="127.0.0.%d" % (len(self.db.all("host")) + 1), enabled=True,
                              API_version_major=2, API_version_minor=21,
                              metrics=self.db.create("host_metrics", live=True))
        self.db.create("VM", name_label="Control domain on host: " + hostname,
                       power_state="Running", is_control_domain=True, resident_on=host)
        return host

    def set_host_live(self, host, live):
        """What xapi's heartbeat / HA monitor records: host_metrics.live of @host."""
        self.db.set("host_metrics", self.db.field("host", host, "metrics"), "live", bool(live))

    def save(self, path=None):
        path = path or self.state_file
        if not path:
            return
        data = {"tables": self.db.to_json(), "calls": self.calls, "extra": self.extra,
                "violations": self.violations, "warnings": self.warnings}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True, default=str)
        os.replace(tmp, path)

    def load(self, path):
        with open(path) as f:
            data = json.load(f)
        self.db.load_json(data["tables"])
        self.calls = data.get("calls", [])
        self.extra = data.get("extra", {"attachments": {}})
        self.violations = data.get("violations", [])
        self.warnings[:] = data.get("warnings", [])

    def dump(self):
        return self.db.to_json()

    @property
    def host(self):
        return self.db.field("pool", self.db.all("pool")[0], "master")

    @property
    def pool(self):
        return self.db.all("pool")[0]

    # -- sessions
    def login(self, user="root", originator="test", sm_sr=None):
        other = {"_sm_session": sm_sr} if sm_sr else {}
        return self.db.create("session", this_host=self.host, other_config=other,
                              is_local_superuser=True,
                              auth_user_name="__sm__backend" if sm_sr else user,
                              originator=originator, last_active=now_iso())

    def sm_session(self, sr):
        """xapi_session.ml module SM: one reusable internal session per SR."""
        for ref in self.db.all("session"):
            if self.db.field("session", ref, "other_config").get("_sm_session") == sr:
                return ref
        return self.login(user="__sm__backend", originator="SM", sm_sr=sr)

    # -- server
    def start(self):
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        xapi = self

        class Handler(_Handler):
            pass

        Handler.xapi = xapi
        self.server = _UnixHTTPServer(self.socket_path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="xapi-sim")
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # -- dispatch
    def handle_xml(self, body):
        """One XML-RPC request body -> response body (always XAPI's envelope)."""
        entry = {"time": time.time(), "method": None, "params": None}
        try:
            try:
                params, method = xmlrpc.client.loads(body, use_datetime=False)
            except Exception as e:  # xml.parsers.expat.ExpatError, ValueError, ...
                raise Failure("XMLRPC_UNMARSHAL_FAILURE", str(e))
            if method is None:
                raise Failure("XMLRPC_UNMARSHAL_FAILURE", "not a methodCall")
            entry["method"] = method
            entry["params"] = _jsonable(params)
            value = self.dispatch(method, list(params))
            entry["ok"] = True
            entry["result"] = _jsonable(value)
            resp = {"Status": "Success", "Value": value}
        except Failure as f:
            entry["ok"] = False
            entry["error"] = f.description
            if f.code in PROTOCOL_ERRORS:
                with self.db.lock:
                    self.violations.append({"method": entry["method"], "error": f.description,
                                            "body": body[:4000]})
            resp = {"Status": "Failure", "ErrorDescription": f.description}
        except Exception as e:  # a simulator bug: report as xapi would, and record it
            entry["ok"] = False
            entry["error"] = ["INTERNAL_ERROR", repr(e)]
            with self.db.lock:
                self.violations.append({"method": entry["method"], "error": entry["error"],
                                        "body": body[:4000]})
            resp = {"Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", repr(e)]}
        with self.db.lock:
            self.calls.append(entry)
        return xmlrpc.client.dumps((resp,), methodresponse=True, allow_none=False)

    def dispatch(self, method, params):
        if method in ("session.login_with_password", "session.slave_local_login_with_password"):
            if not 2 <= len(params) <= 4 or not all(isinstance(p, str) for p in params):
                raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, 4, len(params))
            return self.login(user=params[0],
                              originator=params[3] if len(params) > 3 else "")
        if "." not in method:
            raise Failure("MESSAGE_METHOD_UNKNOWN", method)
        cls, msg = method.split(".", 1)
        if cls not in CLASSES:
            raise Failure("MESSAGE_METHOD_UNKNOWN", method)
        if not params:
            raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, "?", 0)
        session = params[0]
        if not isinstance(session, str) or not self.db.valid("session", session):
            raise Failure("SESSION_INVALID", session)
        self.db.set("session", session, "last_active", now_iso())
        args = params[1:]
        handler, sig = self.lookup(cls, msg)
        if handler is None:
            raise Failure("MESSAGE_METHOD_UNKNOWN", method)
        if len(args) != len(sig):
            raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, len(sig) + 1,
                          len(args) + 1)
        values = [check_type(method, n, t, v, self.db) for (n, t), v in zip(sig, args)]
        if method == "host.call_plugin":  # runs a process: never under the DB lock
            return handler(session, *values)
        with self.db.lock:
            if method in SM_ONLY:
                self.assert_sm_access(method, session, sig, values)
            return handler(session, *values)

    def assert_sm_access(self, method, session, sig, values):
        first_type = sig[0][1]
        target = values[0]
        if first_type == "ref:VDI":
            sr = self.db.field("VDI", target, "SR")
        elif first_type == "ref:SR":
            sr = target
        elif first_type == "ref:PBD":
            sr = self.db.field("PBD", target, "SR")
        else:  # db_introduce: (uuid, name_label, name_description, SR, ...)
            sr = values[3]
        have = self.db.field("session", session, "other_config").get("_sm_session")
        if have != sr:
            raise Failure("PERMISSION_DENIED",
                          "%s is reserved to the SM backend session of SR %s" % (method, sr))

    def lookup(self, cls, msg):
        special = MESSAGES.get("%s.%s" % (cls, msg))
        if special:
            return (lambda session, *a: special[0](self, session, *a)), special[1]
        fields = CLASSES[cls]
        if msg == "get_record":
            return (lambda s, ref: encode_record(cls, self.db.get(cls, ref))), \
                [("self", "ref:" + cls)]
        if msg == "get_by_uuid":
            return (lambda s, u: self.db.by_uuid(cls, u)), [("uuid", "str")]
        if msg == "get_all":
            return (lambda s: self.db.all(cls)), []
        if msg == "get_all_records":
            return (lambda s: {r: encode_record(cls, rec)
                               for r, rec in self.db.records(cls).items()}), []
        if msg == "get_all_records_where":
            def where(s, expr):
                pred = where_filter(expr)
                return {r: encode_record(cls, rec) for r, rec in self.db.records(cls).items()
                        if pred(rec)}
            return where, [("expr", "str")]
        if msg == "get_by_name_label" and "name_label" in fields:
            return (lambda s, n: self.db.find(cls, name_label=n)), [("label", "str")]
        if msg.startswith("get_") and msg[4:] in fields:
            f = msg[4:]
            return (lambda s, ref: encode(fields[f], self.db.field(cls, ref, f))), \
                [("self", "ref:" + cls)]
        if msg.startswith("set_") and msg[4:] in SETTABLE.get(cls, ()):
            f = msg[4:]

            def setter(s, ref, value):
                self.db.get(cls, ref)
                self.db.set(cls, ref, f, value)
                return ""
            return setter, [("self", "ref:" + cls), ("value", fields[f])]
        for pre in ("add_to_", "remove_from_"):
            if msg.startswith(pre) and fields.get(msg[len(pre):]) == "map" \
                    and msg[len(pre):] in SETTABLE.get(cls, ()):
                f = msg[len(pre):]
                if pre == "add_to_":
                    def add(s, ref, key, value, f=f):
                        m = dict(self.db.field(cls, ref, f))
                        if key in m:
                            raise Failure("MAP_DUPLICATE_KEY", cls, f, ref, key)
                        m[key] = value
                        self.db.set(cls, ref, f, m)
                        return ""
                    return add, [("self", "ref:" + cls), ("key", "str"), ("value", "str")]

                def remove(s, ref, key, f=f):
                    m = dict(self.db.field(cls, ref, f))
                    m.pop(key, None)
                    self.db.set(cls, ref, f, m)
                    return ""
                return remove, [("self", "ref:" + cls), ("key", "str")]
        return None, None

    # -- host plugins (xapi_plugins.ml)
    def run_host_plugin(self, session, host, plugin, fn, args):
        if not self.plugin_dir:
            raise Failure("XENAPI_MISSING_PLUGIN", plugin)
        path = os.path.join(self.plugin_dir, plugin)
        if "/" in plugin or not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise Failure("XENAPI_MISSING_PLUGIN", plugin)
        doc = xapi_method_call(fn, [session, args])
        env = {"PATH": XAPI_PATH}
        env.update(self.plugin_env)
        env.update(passed_env(("REPLUN_BIN",) + PASSED_ENV))
        p = subprocess.run([path, doc], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=600)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if p.returncode != 0:
            raise Failure("XENAPI_PLUGIN_FAILURE", "non-zero exit", str(p.returncode), out + err)
        try:
            kind, value = xapi_parse_response(out)[:2]
        except ParseError as e:
            raise Failure("XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", str(e), out)
        if kind == "fault":
            raise Failure("XENAPI_PLUGIN_FAILURE", "fault", out, err)
        if not isinstance(value, dict) or value.get("Status") not in ("Success", "Failure"):
            raise Failure("XENAPI_PLUGIN_FAILURE", "response lacks the {Status, Value} wrapper",
                          out, err)
        if value["Status"] == "Success":
            if not isinstance(value.get("Value"), str):
                raise Failure("XENAPI_PLUGIN_FAILURE", "Value must be a string", out, err)
            return value["Value"]
        desc = value.get("ErrorDescription")
        if not isinstance(desc, list) or not desc or not all(isinstance(d, str) for d in desc):
            raise Failure("XENAPI_PLUGIN_FAILURE", "ErrorDescription must be a list of strings",
                          out, err)
        raise Failure(*desc)


def _jsonable(v):
    if isinstance(v, xmlrpc.client.DateTime):
        return {"dateTime.iso8601": v.value}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, xmlrpc.client.Binary):
        return {"base64": v.data.hex()}
    return v


# Fields XAPI lets any session set (plus the SM-only ones, checked separately).
SETTABLE = {
    "SR": {"name_label", "name_description", "other_config", "sm_config", "tags",
           "physical_size", "physical_utilisation", "virtual_allocation", "shared"},
    "VDI": {"name_label", "name_description", "other_config", "sm_config", "xenstore_data",
            "tags", "sharable", "managed", "read_only", "missing", "virtual_size",
            "physical_utilisation", "is_a_snapshot", "snapshot_of", "snapshot_time",
            "metadata_of_pool", "cbt_enabled", "on_boot", "allow_caching"},
    "PBD": {"other_config", "device_config"},
    "VBD": {"other_config"},
    "VM": {"other_config", "name_label", "name_description"},
    "host": {"other_config", "name_label", "name_description"},
    "pool": {"other_config", "name_label", "name_description", "default_SR"},
    "session": {"other_config"},
    "SM": {"other_config"},
}


# -- messages with their own semantics

def _db_introduce(x, session, uuid, name_label, name_description, sr, vtype, sharable,
                  read_only, other_config, location, xenstore_data, sm_config, managed,
                  virtual_size, physical_utilisation, metadata_of_pool, is_a_snapshot,
                  snapshot_time, snapshot_of, cbt_enabled):
    db = x.db
    db.get("SR", sr)  # HANDLE_INVALID
    for vdi in db.find("VDI", SR=sr):
        if db.field("VDI", vdi, "location") == location:
            raise Failure("LOCATION_NOT_UNIQUE", sr, location)
    if not UUID_RE.match(uuid):
        raise Failure("UUID_INVALID", "VDI", uuid)
    if any(rec["uuid"] == uuid for rec in db.tables["VDI"].values()):
        raise Failure("INTERNAL_ERROR",
                      'Db_exn.Uniqueness_constraint_violation("VDI", "uuid", "%s")' % uuid)
    return db.create("VDI", uuid=uuid, name_label=name_label, name_description=name_description,
                     SR=sr, type=vtype, sharable=sharable, read_only=read_only,
                     other_config=other_config, location=location, xenstore_data=xenstore_data,
                     sm_config=sm_config, managed=managed, virtual_size=virtual_size,
                     physical_utilisation=physical_utilisation,
                     metadata_of_pool=metadata_of_pool, is_a_snapshot=is_a_snapshot,
                     snapshot_time=snapshot_time, snapshot_of=snapshot_of,
                     cbt_enabled=cbt_enabled, on_boot="persist")


def _db_forget(x, session, vdi):
    x.db.get("VDI", vdi)
    x.db.destroy("VDI", vdi)
    return ""


def _setter(cls, field):
    def f(x, session, ref, value):
        x.db.get(cls, ref)
        x.db.set(cls, ref, field, value)
        return ""
    return f


def _message_create(x, session, name, priority, cls, obj_uuid, body):
    return x.db.create("message", name=name, priority=priority, cls=cls, obj_uuid=obj_uuid,
                       body=body, timestamp=now_iso())


def _call_plugin(x, session, host, plugin, fn, args):
    x.db.get("host", host)
    return x.run_host_plugin(session, host, plugin, fn, args)


def _get_this_host(x, session, s):
    return x.db.field("session", s, "this_host")


def _logout(x, session):
    x.db.destroy("session", session)
    return ""


MESSAGES = {
    "VDI.db_introduce": (_db_introduce, _msg(
        ("uuid", "str"), ("name_label", "str"), ("name_description", "str"), ("SR", "ref:SR"),
        ("type", "enum:vdi_type"), ("sharable", "bool"), ("read_only", "bool"),
        ("other_config", "map"), ("location", "str"), ("xenstore_data", "map"),
        ("sm_config", "map"), ("managed", "bool"), ("virtual_size", "int"),
        ("physical_utilisation", "int"), ("metadata_of_pool", "ref:pool"),
        ("is_a_snapshot", "bool"), ("snapshot_time", "datetime"), ("snapshot_of", "ref:VDI"),
        ("cbt_enabled", "bool"))),
    "VDI.db_forget": (_db_forget, _msg(("vdi", "ref:VDI"))),
    "message.create": (_message_create, _msg(("name", "str"), ("priority", "int"),
                                             ("cls", "enum:cls"), ("obj_uuid", "str"),
                                             ("body", "str"))),
    "host.call_plugin": (_call_plugin, _msg(("host", "ref:host"), ("plugin", "str"),
                                            ("fn", "str"), ("args", "map"))),
    "session.get_this_host": (_get_this_host, _msg(("self", "ref:session"))),
    "session.logout": (_logout, []),
}
for _cls, _f in (("VDI", "virtual_size"), ("VDI", "physical_utilisation"),
                 ("SR", "physical_size"), ("SR", "physical_utilisation"),
                 ("SR", "virtual_allocation")):
    MESSAGES["%s.set_%s" % (_cls, _f)] = (_setter(_cls, _f),
                                          _msg(("self", "ref:" + _cls), ("value", "int")))


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    xapi = None

    def address_string(self):
        return "unix"

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline(1024).strip()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    break
                chunks.append(self.rfile.read(n))
                self.rfile.readline(16)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    def do_POST(self):
        body = self._read_body()
        if self.path.split("?")[0] not in ("/", "/RPC2"):
            self.send_error(404)
            return
        text = body.decode("utf-8", errors="replace")
        out = self.xapi.handle_xml(text).encode()
        m = re.search(r"<methodName>\s*([^<\s]*)\s*</methodName>", text)
        if m and m.group(1) in self.xapi.lose_answer:
            # fault injection: the call took effect, its answer is lost (connection closed)
            self.xapi.lose_answer.discard(m.group(1))
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


# ---------------------------------------------------------------------------------------------
# A XenAPI client over the Unix socket (for tests and the CLI)

class UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def make_connection(self, host):
        import http.client
        import socket
        path = self.path

        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)

        if self._connection[1] is not None:
            return self._connection[1]
        conn = Conn("localhost")
        self._connection = (host, conn)
        return conn


class XenAPIClient:
    """client.call('VDI.get_by_uuid', session, uuid) -> Value, or raises Failure."""

    def __init__(self, socket_path):
        self.proxy = xmlrpc.client.ServerProxy("http://localhost/",
                                               transport=UnixTransport(socket_path))

    def call(self, method, *params):
        r = getattr(self.proxy, method)(*params)
        if r.get("Status") == "Success":
            return r["Value"]
        raise Failure(*r["ErrorDescription"])

    def close(self):
        self.proxy("close")()


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="XAPI simulator: XenAPI server on a Unix socket")
    ap.add_argument("--socket", required=True)
    ap.add_argument("--state", help="JSON file to load from and save to on exit")
    ap.add_argument("--dump", action="store_true", help="print the DB of --state and exit")
    a = ap.parse_args(argv)
    x = Xapi(a.socket, state_file=a.state)
    if a.dump:
        json.dump(x.dump(), sys.stdout, indent=1, sort_keys=True)
        return 0
    x.start()
    print("xapi-sim listening on %s" % a.socket, flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        x.stop()
        x.save()
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main(sys.argv[1:]))
