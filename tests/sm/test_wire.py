#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# sm.wire: ReplunSR's protocol without storage work: both argv dialects, the exact response
# shapes XAPI parses, faults with sm's codes and "<description> [opterr=...]", device_config
# validation, SMlog-style logging with secrets and session refs masked, valgrind.
import os
import random
import re
import subprocess

from smtest import (PLUGIN, Env, check, done, parse, python_doc, run_raw, valgrind_reason,
                    xapi_doc, xapi_sim)

env = Env("wire", peer=False)
E = env.env()
HOST = "OpaqueRef:6d9f6a1e-0c2b-4b7e-9f51-3c2a8e1d4b10"
SESSION = "OpaqueRef:c62ef24b-6c09-95c2-6d99-d05adc190964"
SR_UUID = "976e0ed5-2901-47b0-8962-ad6e76d6b55a"
SR_REF = "OpaqueRef:88cb8c50-c240-d970-05fa-86c11d40a376"


def one_response(out):
    return out.count("<methodResponse>") == 1 and out.rstrip().endswith("</methodResponse>")


def expect_fault(doc, code, needle, what, argv=None, environ=None):
    rc, out, err = run_raw(doc, environ or E, argv)
    r = parse(out) if one_response(out) else ("unparsable", out)
    ok = rc == 0 and r[0] == "fault" and r[1] == code and needle in r[2]
    check(ok, "%s -> fault %d naming %r (got rc=%d %r)" % (what, code, needle, rc, r[:3]))
    if ok:
        check(re.match(r"^.+ \[opterr=.+\]$", r[2]) is not None,
              "%s: fault string is '<description> [opterr=<detail>]': %r" % (what, r[2]))
    return r


# --- sr_get_driver_info in both dialects --------------------------------------------------
info_call = {"host_ref": HOST, "command": "sr_get_driver_info", "args": [], "device_config": {}}
doc = xapi_doc(info_call)
check("<?xml" not in doc and "\n" not in doc and "<string>" not in doc,
      "XAPI dialect request: one line, no declaration, bare strings")
rc, out, err = run_raw(doc, E)
check(rc == 0 and err == "", "sr_get_driver_info (XAPI dialect): exit 0, empty stderr")
check(one_response(out), "stdout is exactly one methodResponse")
kind, value = parse(out)
check(kind == "ok", "driver_info is a success value")
try:
    info = xapi_sim.parse_driver_info(xapi_sim.xapi_parse_response(out)[1])
    check(True, "xapi's parse_driver_info accepts the answer")
except Exception as e:  # noqa: BLE001
    info = {}
    check(False, "xapi's parse_driver_info accepts the answer: %s" % e)
for key in ("name", "description", "vendor", "copyright", "driver_version",
            "required_api_version", "capabilities", "configuration"):
    check(key in value, "driver_info has %s" % key)
caps = set(value.get("capabilities", []))
for cap in ("SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH",
            "VDI_ACTIVATE", "VDI_DEACTIVATE", "VDI_SNAPSHOT", "VDI_CLONE", "VDI_RESIZE",
            "VDI_INTRODUCE", "VDI_UPDATE", "VDI_GENERATE_CONFIG"):
    check(cap in caps, "capability %s advertised" % cap)
check(caps <= set(xapi_sim.KNOWN_CAPS), "every capability is one xapi knows: %s"
      % sorted(caps - set(xapi_sim.KNOWN_CAPS)))
check("VDI_RESIZE_ONLINE" not in caps and "VDI_RESET_ON_BOOT" not in caps,
      "no capability that is not implemented (resize online, reset on boot)")
conf_keys = [c["key"] for c in value.get("configuration", [])]
check(conf_keys[:3] == ["array", "peer", "rpo"], "configuration lists array, peer, rpo first")

rc, out2, err = run_raw(python_doc(info_call), E)
check(rc == 0 and parse(out2) == ("ok", value),
      "sr_get_driver_info (Python dialect: declaration, <string>, newlines) gives the same answer")

# --- empty strings: <value/> and <value><string/></value> ----------------------------------
attach = {"host_ref": HOST, "command": "sr_attach", "args": [],
          "device_config": {"SRmaster": "true", "array": ""}, "session_ref": SESSION,
          "sr_ref": SR_REF, "sr_uuid": SR_UUID, "subtask_of": "DummyRef:|x|SR.attach"}
d = xapi_doc(attach)
check("<value/>" in d, "XAPI dialect writes the empty device_config:array as <value/>")
expect_fault(d, 115, "'array'", "device_config array = <value/> (empty)")
expect_fault(python_doc(attach), 115, "'array'", "device_config array = <string></string>")

# --- malformed calls -------------------------------------------------------------------------
expect_fault("<methodCall><methodName>sr_attach", 143, "", "truncated XML")
expect_fault("", 143, "", "empty argv[1]")
expect_fault("<methodResponse><params/></methodResponse>", 143, "", "a methodResponse as call")
expect_fault("<methodCall><methodName>sr_attach</methodName><params><param><value>x</value>"
             "</param><param><value>y</value></param></params></methodCall>", 143,
             "one parameter", "two params")
expect_fault("<methodCall><methodName>sr_attach</methodName><params><param><value>x</value>"
             "</param></params></methodCall>", 143, "not a struct", "param not a struct")
bad_args = dict(attach, device_config={"array": "/x"})
expect_fault(xapi_doc(bad_args).replace("<name>args</name><value><array><data/></array>",
                                        "<name>args</name><value>oops"), 143, "args",
             "args not an array")
mismatch = xapi_doc(dict(attach, device_config={"array": "/x"})).replace(
    "<value>sr_attach</value>", "<value>sr_detach</value>")
expect_fault(mismatch, 143, "differs", "command member differs from methodName")
expect_fault(None, 143, "one argument", "no argv[1]", argv=[])
expect_fault(None, 143, "one argument", "two arguments", argv=[xapi_doc(info_call), "extra"])
expect_fault(xapi_doc(dict(attach, sr_uuid=None, device_config={"array": env.a})), 143,
             "sr_uuid", "sr_attach without sr_uuid")
expect_fault(xapi_doc(dict(attach, sr_uuid="../../etc", device_config={"array": env.a})), 1,
             "not a uuid", "sr_uuid that is not a uuid")
vdi_call = dict(attach, command="vdi_attach", args=["true"], device_config={"array": env.a},
                vdi_ref="OpaqueRef:1", vdi_location="../../x", vdi_uuid="../../x")
expect_fault(xapi_doc(vdi_call), 1, "vdi_location", "vdi_location with '/'")

# --- unknown / unimplemented methods: 38 ----------------------------------------------------
for m in ("vdi_compose", "vdi_enable_cbt", "vdi_resize_online", "sr_content_type", "no_such"):
    c = dict(info_call, command=m)
    expect_fault(xapi_doc(c), 38, m, "method %s" % m)

# --- device_config validation ---------------------------------------------------------------
dc_call = dict(attach, device_config={"SRmaster": "true"})
expect_fault(xapi_doc(dc_call), 115, "'array'", "device_config without array")
expect_fault(xapi_doc(dict(attach, device_config={"array": env.a, "rpo": "soon"})), 1, "'rpo'",
             "device_config rpo not a number")
expect_fault(xapi_doc(dict(attach, device_config={"array": env.a, "rpo": "-5"})), 1, "'rpo'",
             "device_config rpo negative")
expect_fault(xapi_doc(dict(attach, device_config={"array": "relative/path"})), 1, "'array'",
             "device_config array relative path")
expect_fault(xapi_doc(dict(attach, device_config={"array": env.tmp + "/nowhere"})), 47,
             "'array'", "device_config array that does not exist")
expect_fault(xapi_doc(dict(attach, device_config={"array": env.a, "peer": ""})), 1, "'peer'",
             "device_config peer empty")
expect_fault(xapi_doc(dict(attach, device_config={"array": env.a})), 47, SR_UUID,
             "sr_attach of an SR whose group does not exist")

# --- logging: every call, session refs and passwords masked ---------------------------------
secret_call = dict(attach, device_config={"array": env.a, "password": "Sup3rSecret",
                                          "chappassword": "Ch4p", "username": "admin"})
run_raw(xapi_doc(secret_call), E)
log = open(env.log).read()
check("Sup3rSecret" not in log and "Ch4p" not in log, "passwords never reach the log")
check(SESSION not in log, "session_ref never reaches the log")
check("'password': '******'" in log and "'session_ref': '******'" in log,
      "masked keys still show they were present")
lines = [line for line in log.splitlines() if line]
check(all(re.match(r"^SM: \[\d+\] ", line) for line in lines),
      "every SMlog line has the 'SM: [pid] ' prefix")
check(any(line.split("] ", 1)[1].startswith("sr_attach {'host_ref'") for line in lines),
      "each call is logged as '<command> {params}'")
check(any("Raising exception [47," in line for line in lines), "faults are logged as raised")

# --- stdout stays clean when the XAPI socket is missing -------------------------------------
rc, out, err = run_raw(xapi_doc(dict(attach, command="sr_update",
                                     device_config={"array": env.a})),
                       dict(E, REPLUN_XAPI_SOCKET=env.tmp + "/no.sock"))
check(rc == 0 and one_response(out), "no XAPI socket: still one methodResponse, exit 0")

# --- robustness: mutated and oversized calls always give one response, exit 0 ----------------
rnd = random.Random(4242)
base = xapi_doc(dict(attach, device_config={"array": env.a}))
bad = []
docs = ["<methodCall>" + "<value><array><data>" * 300, base.replace("sr_attach", "s" * 200),
        base.replace(env.a, "x" * 70000), base.replace("<data/>", "<data>" + "<value>1</value>"
                                                       * 40 + "</data>"),
        base.replace("<value>true</value>", "<value><i4>7</i4></value>"),
        base.replace("<value>true</value>", "<value><base64>AAAA</base64></value>"),
        base.replace(env.a, "\u00e9t\u00e9 \u2603")]
for i in range(150):
    d = list(base)
    for _ in range(rnd.randint(1, 4)):
        op, at = rnd.random(), rnd.randrange(len(d))
        if op < 0.4:
            del d[at:at + rnd.randint(1, 20)]
        elif op < 0.7:
            d.insert(at, rnd.choice(["<", ">", "&", "</value>", "<value>", "<struct>", "\x01",
                                     "<member>", "]]>", "\"", "&#0;"]))
        else:
            d = d[:at]
    docs.append("".join(d))
for d in docs:
    rc, out, err = run_raw(d, E)
    if rc != 0 or not one_response(out) or parse(out)[0] not in ("ok", "fault"):
        bad.append((d[:120], rc, out[:200]))
check(not bad, "%d mutated/oversized calls: each answered by one methodResponse, exit 0 %s"
      % (len(docs), bad[:2]))

# --- valgrind: no memory errors, no leaks on success and fault paths -------------------------
why = valgrind_reason()
if why is None:
    for what, d in (("driver_info", xapi_doc(info_call)), ("malformed", "<methodCall>"),
                    ("unknown method", xapi_doc(dict(info_call, command="nope"))),
                    ("device_config fault", xapi_doc(dc_call)),
                    ("array opened", xapi_doc(dict(attach, device_config={"array": env.a})))):
        p = subprocess.run(["valgrind", "-q", "--error-exitcode=1", "--leak-check=full",
                            "--errors-for-leak-kinds=definite,indirect", PLUGIN, d], capture_output=True, text=True,
                           env=dict(os.environ, **E))
        check(p.returncode == 0 and one_response(p.stdout),
              "valgrind memcheck clean: %s%s" % (what, "" if p.returncode == 0
                                                  else ": " + p.stderr[-2000:]))
else:
    print("SKIP valgrind: %s" % why)

done()
