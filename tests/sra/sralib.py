# SPDX-License-Identifier: MIT
# sralib.py - what the SRM simulator and the SRA tests share: two paired file arrays made with
# the replun CLI, running `perl command.pl` like SRM does (request on stdin, response read from
# OutputFile, progress from StatusFile), schema validation of every response, and assertions.
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS = "http://www.vmware.com/srm/sra/v2"
RPNS = "urn:replun:sra:v2"
Q = "{%s}" % NS


def q(path):
    """'A/B/C' -> '{ns}A/{ns}B/{ns}C' for ElementTree."""
    return "/".join(Q + p if p and p[0].isalpha() else p for p in path.split("/"))


class Fail(Exception):
    pass


CHECKS = [0]


def check(cond, what):
    CHECKS[0] += 1
    if not cond:
        print("FAIL: " + what, flush=True)
        raise Fail(what)
    print("ok:   " + what, flush=True)


class Env:
    """Paths of one build (SRA folder, replun CLI, schema) and a temp dir for a test run."""

    def __init__(self, sra_dir, replun, xsd):
        self.sra_dir = os.path.abspath(sra_dir)
        self.command = os.path.join(self.sra_dir, "command.pl")
        self.replun = os.path.abspath(replun)
        self.xsd = os.path.abspath(xsd)
        self.tmp = tempfile.mkdtemp(prefix="replun-sra-", dir=os.environ.get("TMPDIR", "/tmp"))
        self.n = 0
        self.responses = 0
        self.lock = threading.Lock()

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def cli(self, *args, check_rc=True):
        p = subprocess.run([self.replun] + [str(a) for a in args], capture_output=True,
                           text=True, timeout=300)
        if check_rc and p.returncode != 0:
            raise Fail("replun %s failed (%d): %s" % (" ".join(map(str, args)), p.returncode,
                                                      p.stderr.strip()))
        return p.stdout.strip()

    def validate(self, path):
        p = subprocess.run(["xmllint", "--noout", "--schema", self.xsd, path],
                           capture_output=True, text=True)
        if p.returncode != 0:
            print(open(path, encoding="utf-8").read())
            raise Fail("response %s does not validate: %s" % (path, p.stderr.strip()))
        with self.lock:
            self.responses += 1


class Site:
    """One SRM site: an array directory, its id and the SRA run against it."""

    def __init__(self, env, name, array_id):
        self.env = env
        self.name = name
        self.id = array_id
        self.path = os.path.join(env.tmp, name)
        self.logdir = os.path.join(env.tmp, "logs-" + name)
        self.peer = None
        self.name_filter = None
        self.extra_uris = []

    @property
    def uri(self):
        return "file://" + self.path

    def connections(self, password=None):
        addr = ";".join([self.uri] + self.extra_uris)
        s = '<Connections><Connection id="replun"><Addresses><Address id="arrayUri">%s' \
            '</Address></Addresses>' % escape(addr)
        if password:
            s += "<Username>admin</Username><Password>%s</Password>" % escape(password)
        if self.name_filter is not None:
            s += '<Opagues><Opaque id="volumeNameFilter">%s</Opaque></Opagues>' % \
                escape(self.name_filter)
        return s + "</Connection></Connections>"

    def request(self, name, body="", conn=True, password=None, out=None, level="verbose"):
        env = self.env
        with env.lock:
            env.n += 1
            n = env.n
        out = out or os.path.join(env.tmp, "out-%04d-%s-%s.xml" % (n, self.name, name))
        status = os.path.join(env.tmp, "status-%04d.xml" % n)
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Command xmlns="%s">\n<Name>%s</Name>\n'
               '%s<OutputFile>%s</OutputFile>\n<StatusFile>%s</StatusFile>\n'
               '<LogLevel>%s</LogLevel>\n<LogDirectory>%s</LogDirectory>\n%s\n</Command>\n') % (
                   NS, name, self.connections(password) if conn else "", escape(out),
                   escape(status), level, escape(self.logdir), body)
        return xml, out, status

    def run_raw(self, xml, out, status=None, timeout=120):
        if os.path.exists(out):
            os.unlink(out)
        p = subprocess.run(["perl", self.env.command], input=xml.encode("utf-8"),
                           capture_output=True, timeout=timeout)
        return p

    def sra(self, name, body="", expect_error=None, **kw):
        """Runs one command; returns the parsed <Response> root (validated)."""
        xml, out, status = self.request(name, body, **kw)
        p = self.run_raw(xml, out)
        if p.returncode != 0 or not os.path.exists(out):
            raise Fail("%s at %s: exit %d, no response; stdout tail: %s" % (
                name, self.name, p.returncode, p.stdout.decode()[-800:]))
        self.env.validate(out)
        self.progress = []
        if os.path.exists(status):
            self.progress = validate_progress(self.env, status)
        root = ET.parse(out).getroot()
        check_placeholders(self.env, root, out)
        err = root.find(Q + "Error")
        if expect_error is None and err is not None:
            print(open(out, encoding="utf-8").read())
            raise Fail("%s at %s answered a whole-response error" % (name, self.name))
        if expect_error is not None:
            check(err is not None and err.get("code") == str(expect_error),
                  "%s at %s: whole-response error %s" % (name, self.name, expect_error))
        return root


def check_placeholders(env, root, out):
    """Every {Name} of an error/warning definition must come as a child tag of the actual one."""
    defs = getattr(env, "defs", None)
    if not defs:
        return
    for e in list(root.iter(Q + "Error")) + list(root.iter(Q + "Warning")):
        code = e.get("code")
        if code is None or int(code) < 1000:
            continue
        if code not in defs:
            raise Fail("%s: code %s is not in queryErrorDefinitions" % (out, code))
        tags = {c.tag.split("}")[-1] for c in e}
        missing = defs[code] - tags
        if missing:
            raise Fail("%s: %s %s lacks placeholder tags %s" % (out, e.tag, code, missing))
        env.placeholder_checks = getattr(env, "placeholder_checks", 0) + 1


def validate_progress(env, status):
    data = open(status, encoding="utf-8").read()
    docs = [d for d in data.split("<?xml") if d.strip()]
    last = -1
    values = []
    for i, d in enumerate(docs):
        path = status + ".%d.xml" % i
        with open(path, "w", encoding="utf-8") as f:
            f.write("<?xml" + d)
        env.validate(path)
        v = int(ET.parse(path).getroot().text)
        if v < last:
            raise Fail("progress went backwards in %s" % status)
        last = v
        values.append(v)
    return values


def params(tag, array_id, peer=None, groups=(), devices=(), gl="ConsistencyGroups",
           ge="ConsistencyGroup", ga="id", dl="SourceDevices", de="SourceDevice", da="id",
           extra=""):
    s = "<%s><ArrayId>%s</ArrayId>" % (tag, escape(array_id))
    if peer:
        s += "<PeerArrayId>%s</PeerArrayId>" % escape(peer)
    if groups:
        s += "<%s>%s</%s>" % (gl, "".join('<%s %s=%s/>' % (ge, ga, quoteattr(g))
                                          if not isinstance(g, tuple) else
                                          '<%s %s=%s>%s</%s>' % (ge, ga, quoteattr(g[0]), g[1], ge)
                                          for g in groups), gl)
    if devices:
        s += "<%s>%s</%s>" % (dl, "".join('<%s %s=%s/>' % (de, da, quoteattr(d))
                                          if not isinstance(d, tuple) else
                                          '<%s %s=%s>%s</%s>' % (de, da, quoteattr(d[0]), d[1], de)
                                          for d in devices), dl)
    return s + extra + "</%s>" % tag


def tgt(tag, array_id, groups=(), devices=(), peer=None):
    return params(tag, array_id, peer, groups, devices, "TargetGroups", "TargetGroup", "key",
                  "TargetDevices", "TargetDevice", "key")


def items(root, path, attr):
    """{id: element} of the per-item results under path."""
    return {e.get(attr): e for e in root.findall(q(path))}


def ok(e):
    return e is not None and e.find(Q + "Error") is None


def err_code(e):
    x = e.find(Q + "Error") if e is not None else None
    return x.get("code") if x is not None else None


def warn_codes(e):
    return [w.get("code") for w in e.findall(q("Warnings/Warning"))]


def file_sum(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def write_data(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
