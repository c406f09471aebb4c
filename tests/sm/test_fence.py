#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# sm.fence: write-order consistent group snapshots through the datapath. Two LUNs of one SR
# (= one consistency group) activated read-write through ReplunSR (nbdkit + pause filter), a
# writer that writes an increasing sequence number to LUN A and then to LUN B (each write
# acknowledged before the next), and group snapshots taken while it writes: prepare-failover
# (its 'prefailover' snapshots) and sync (the recovery point on the peer). In every run
# B <= A <= B + 1. With qemu-nbd (no fence) the engine warns, naming the device. Also: fence
# records (registered on activate, gone on deactivate), the tap-ctl mapping (stand-in tap-ctl).
import glob
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import xmlrpc.client

from smtest import Env, check, done, luns, parse, run_raw, tool

CLI = os.environ.get("REPLUN_CLI", "")
for prog in ("nbdkit", "qemu-nbd"):
    if not shutil.which(prog):
        print("SKIP: %s not installed" % prog)
        raise SystemExit(0)
if not CLI or not os.access(CLI, os.X_OK):
    print("FAIL REPLUN_CLI not set to the replun binary (%r)" % CLI)
    raise SystemExit(1)

RUNS_PF = int(os.environ.get("FENCE_RUNS_PF", "6"))
RUNS_SYNC = int(os.environ.get("FENCE_RUNS_SYNC", "12"))
MiB = 1024 * 1024


class Nbd:
    """A minimal NBD client (fixed newstyle, NBD_OPT_EXPORT_NAME, simple replies): writes."""

    def __init__(self, path, export):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        hdr = self._recv(18)
        assert hdr[:16] == b"NBDMAGICIHAVEOPT", hdr
        self.s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
        name = export.encode()
        self.s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(name)) + name)
        self._recv(10)  # size, flags
        self.handle = 0

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            got = self.s.recv(n - len(buf))
            if not got:
                raise EOFError("NBD server closed the connection")
            buf += got
        return buf

    def write(self, off, data):
        self.handle += 1
        self.s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, self.handle, off, len(data)) +
                       data)
        magic, err, handle = struct.unpack(">IIQ", self._recv(16))
        if magic != 0x67446698 or err or handle != self.handle:
            raise IOError("NBD write failed: error %d" % err)

    def close(self):
        self.s.close()


def block(n):
    return ("%020d\n" % n).encode().ljust(512, b"\0")


def seq_of(path):
    with open(path, "rb") as f:
        raw = f.read(21)
    return int(raw.decode()) if raw[:1].isdigit() else 0


class Writer(threading.Thread):
    """Writes 1, 2, 3... to A then B (offset 0), each acknowledged before the next."""

    def __init__(self, a, b):
        super().__init__(daemon=True)
        self.a, self.b = a, b
        self.n = 0
        self.stop = threading.Event()
        self.error = None
        self.max_ms = 0.0  # longest single write (a pause shows here)

    def run(self):
        try:
            while not self.stop.is_set():
                n = self.n + 1
                for c in (self.a, self.b):
                    t = time.monotonic()
                    c.write(0, block(n))
                    self.max_ms = max(self.max_ms, (time.monotonic() - t) * 1000)
                self.n = n
        except Exception as e:  # reported by the test
            self.error = e


def cli(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([CLI] + list(args), capture_output=True, text=True, timeout=120, env=e)
    return p.returncode, p.stdout, p.stderr


class Site:
    """Fresh arrays, an SR (= group) of two LUNs activated read-write on this host."""

    def __init__(self, env, x, X, tag, server=None):
        self.env, self.x, self.X = env, x, X
        if server:
            x.sm.env_extra["REPLUN_NBD_SERVER"] = server
        else:
            x.sm.env_extra.pop("REPLUN_NBD_SERVER", None)
        self.a = os.path.join(env.tmp, "A" + tag)
        self.b = os.path.join(env.tmp, "B" + tag)
        tool("init", self.a, "sA" + tag)
        tool("init", self.b, "sB" + tag)
        tool("pair", self.a, self.b)
        self.sr = X("sr-create", "type=replun", "name-label=f" + tag,
                    "device-config:array=" + self.a, "device-config:peer=" + self.b)
        self.srref = x.db.by_uuid("SR", self.sr)
        self.vdis = []
        for name in ("lunA", "lunB"):
            v = X("vdi-create", "sr-uuid=" + self.sr, "name-label=" + name,
                  "virtual-size=8MiB")
            self.vdis.append((v, x.db.by_uuid("VDI", v)))
        for v, ref in self.vdis:
            X.sm(self.srref, "vdi_attach", vdi=ref, args=["true"])
            X.sm(self.srref, "vdi_activate", vdi=ref, args=["true"])
        self.socks = [os.path.join(env.run_dir, "nbd", self.sr, v) for v, _ in self.vdis]
        self.conns = [Nbd(s, v) for s, (v, _) in zip(self.socks, self.vdis)]

    def writer(self):
        w = Writer(*self.conns)
        w.start()
        while w.n < 50 and w.is_alive():
            time.sleep(0.01)
        return w

    def lun_ids(self, array):
        out = {}
        for line in tool("luns", array, self.sr).splitlines():
            f = line.split()
            if len(f) >= 2:
                out[f[1] if len(f) > 1 else f[0]] = f[0]
        return out

    def close(self):
        for c in self.conns:
            c.close()
        for v, ref in self.vdis:
            self.X.sm(self.srref, "vdi_deactivate", vdi=ref)
            self.X.sm(self.srref, "vdi_detach", vdi=ref)


def warnings_of(out):
    try:
        doc = json.loads(out)
    except ValueError:
        return []
    found = []

    def walk(v):
        if isinstance(v, dict):
            for k, w in v.items():
                if k == "warnings" and isinstance(w, list):
                    found.extend(w)
                else:
                    walk(w)
        elif isinstance(v, list):
            for w in v:
                walk(w)
    walk(doc)
    return found


env = Env("fence")
x, X = env.sim()

# --- activate registers the fence; deactivate removes it -------------------------------------
s = Site(env, x, X, "0")
recs = sorted(glob.glob(os.path.join(s.a, "fences", "*")))
body = open(recs[0]).read() if recs else ""
check(len(recs) == 2 and all("@OpaqueRef:" in os.path.basename(r) for r in recs)
      and "kind pause" in body and "control " + s.socks[0] + ".ctl" in
      "".join(open(r).read() for r in recs),
      "vdi_activate read-write (nbdkit): a 'pause' fence record per LUN, as this host's writer"
      " (<lun>@<host ref>), naming <sock>.ctl")
s.close()
check(glob.glob(os.path.join(s.a, "fences", "*")) == [] and
      not os.path.exists(s.socks[0] + ".ctl"),
      "vdi_deactivate: fence records and control sockets gone")


# --- group snapshots under load --------------------------------------------------------------
def snap_seqs(s, kind):
    """[seq of A, seq of B] in the newest '<kind>' snapshot of each LUN on array A."""
    out = []
    ids = luns(s.a, s.sr)
    for v, _ in s.vdis:
        d = os.path.dirname(tool("path", s.a, v).strip())
        files = sorted(glob.glob(os.path.join(d, "snap-%s-%s-*" % (kind, ids[v]["id"]))))
        out.append(seq_of(files[-1]) if files else None)
    return out


def target_seqs(s):
    return [seq_of(tool("path", s.b, v).strip()) for v, _ in s.vdis]


def consistent(seqs):
    a, b = seqs
    return a is not None and b is not None and b <= a <= b + 1


def load_run(tag, server, what):
    """One site, a writer, one group snapshot while it writes: (seqs, warnings, problem)."""
    s = Site(env, x, X, tag, server)
    problem = None
    try:
        rc, out, err = cli("sync", s.a, "--group", s.sr, "--wait")
        if rc != 0:
            return None, [], "initial sync: %s %s" % (out, err)
        w = s.writer()
        if what == "prepare-failover":
            rc, out, err = cli("-v", "prepare-failover", s.a, "--group", s.sr, "--json")
            for ln in err.splitlines():
                if "writers resumed after" in ln:
                    HELD.append(int(ln.split("after ")[1].split()[0]))
        else:
            rc, out, err = cli("sync", s.a, "--group", s.sr, "--wait", "-v")
            out = json.dumps({"warnings": [{"code": 5, "message": ln} for ln in
                                           err.splitlines() if "snapshotted without" in ln]})
        w.stop.set()
        w.join()
        if rc != 0 or w.error:
            problem = "rc %d %s %s writer %s" % (rc, out, err, w.error)
        seqs = snap_seqs(s, "prefailover") if what == "prepare-failover" else target_seqs(s)
        print("%s %s run %s: writer at %d, snapshot seqs %s, longest write %.1f ms"
              % (what, server, tag, w.n, seqs, w.max_ms))
        LONGEST.append(w.max_ms)
        return seqs, warnings_of(out), problem
    finally:
        s.close()


HELD, LONGEST = [], []
if os.environ.get("FENCE_COMPARE"):
    # measurement (docs/internals/fence.md): both datapaths, interleaved, nothing asserted
    res = {}
    for run in range(int(os.environ["FENCE_COMPARE"])):
        for what in ("prepare-failover", "sync"):
            for server in ("nbdkit", "qemu-nbd"):
                del HELD[:], LONGEST[:]
                seqs, warns, problem = load_run("c%s%s%d" % (what[0], server[0], run), server,
                                                what)
                r = res.setdefault((what, server), {"runs": 0, "bad": 0, "warned": 0,
                                                    "held": [], "longest": []})
                r["runs"] += 1
                r["bad"] += 0 if consistent(seqs or [None, None]) else 1
                r["warned"] += 1 if warns else 0
                r["held"] += HELD
                r["longest"] += LONGEST
    for (what, server), r in sorted(res.items()):
        med = sorted(r["longest"])[len(r["longest"]) // 2] if r["longest"] else 0
        print("COMPARE %-16s %-8s runs %d inconsistent %d warned %d held ms %s longest write"
              " ms median %.1f all %s" % (what, server, r["runs"], r["bad"], r["warned"],
                                          r["held"], med,
                                          ["%.1f" % v for v in r["longest"]]))
    done()

for what, runs in (("prepare-failover", RUNS_PF), ("sync", RUNS_SYNC)):
    bad, warned, problems = [], [], []
    for run in range(runs):
        seqs, warns, problem = load_run("%s%d" % (what[0], run), "nbdkit", what)
        warned += warns
        if problem:
            problems.append(problem)
        if not consistent(seqs or [None, None]):
            bad.append(seqs)
    check(not problems, "%s under load (nbdkit): every run completed %s" % (what, problems))
    check(not bad and not warned,
          "%s under load (nbdkit + pause filter): B <= A <= B + 1 in all %d runs, no"
          " warning (%s %s)" % (what, runs, bad, warned[:1]))

# --- qemu-nbd has no fence: the engine says which device ---------------------------------------
seqs, warns, problem = load_run("q", "qemu-nbd", "prepare-failover")
check(not problem and any(w.get("code") == 5 and "no write fence" in w.get("message", "")
                          for w in warns),
      "qemu-nbd datapath: prepare-failover warns RP_WARN_NO_FREEZE naming the device (%s)"
      % warns[:1])

# --- a stale fence (its server killed) counts as no writer -------------------------------------
s = Site(env, x, X, "k")
pid = int(open(s.socks[1] + ".pid").read())
os.kill(pid, 9)
time.sleep(0.2)
rc, out, err = cli("prepare-failover", s.a, "--group", s.sr, "--json")
check(rc == 0 and not warnings_of(out),
      "a LUN whose nbdkit was killed (stale fence): prepare-failover goes on, no warning (%s %s)"
      % (out[-200:], err))
s.close()

# --- two hosts share LUNs (HA statefile: vdi_attach_from_config on every host of the pool) ----
# Each host runs its own nbdkit (own run directory, as each host has its own /run) and
# registers its own writer record; the group's snapshots pause all of them; one host
# detaching leaves the other host's records.
class ChainWriter(Writer):
    """Writes 1, 2, 3... through every (connection, offset) in turn, each acknowledged."""

    def __init__(self, targets):
        super().__init__(None, None)
        self.targets = targets

    def run(self):
        try:
            while not self.stop.is_set():
                n = self.n + 1
                for c, off in self.targets:
                    t = time.monotonic()
                    c.write(off, block(n))
                    self.max_ms = max(self.max_ms, (time.monotonic() - t) * 1000)
                self.n = n
        except Exception as e:  # reported by the test
            self.error = e


def chain_seqs(paths_offsets):
    out = []
    for path, off in paths_offsets:
        with open(path, "rb") as f:
            f.seek(off)
            raw = f.read(21)
        out.append(int(raw.decode()) if raw[:1].isdigit() else 0)
    return out


def chain_consistent(seqs):
    """Written in order: every value >= the next, the first at most one ahead of the last."""
    return (all(a >= b for a, b in zip(seqs, seqs[1:])) and seqs[0] - seqs[-1] <= 1
            and seqs[-1] > 0)


def run_chain(targets, files, what, tag):
    w = ChainWriter(targets)
    w.start()
    while w.n < 30 and w.is_alive():
        time.sleep(0.01)
    if what == "sync":
        rc, out, err = cli("-v", "sync", sh_a, "--group", sh_sr, "--foreground")
    else:
        rc, out, err = cli("-v", "prepare-failover", sh_a, "--group", sh_sr, "--json")
    w.stop.set()
    w.join()
    seqs = chain_seqs(files(what))
    paused = [ln for ln in err.splitlines() if "writer(s) paused" in ln]
    warned = [ln for ln in err.splitlines() if "snapshotted without" in ln] + \
        warnings_of(out)
    print("shared %s %s: writer at %d, snapshot seqs %s, %s, rc %d %s" %
          (what, tag, w.n, seqs, paused, rc, (out + err)[-300:] if rc else ""))
    return rc == 0 and not w.error, seqs, paused, warned


hb = x.add_host("host-b")
sh_a = os.path.join(env.tmp, "Ash")
sh_b = os.path.join(env.tmp, "Bsh")
tool("init", sh_a, "sAsh")
tool("init", sh_b, "sBsh")
tool("pair", sh_a, sh_b)
x.sm.env_extra.pop("REPLUN_NBD_SERVER", None)
sh_sr = X("sr-create", "type=replun", "name-label=shared", "device-config:array=" + sh_a,
          "device-config:peer=" + sh_b)
sh_ref = x.db.by_uuid("SR", sh_sr)
x.db.create("PBD", host=hb, SR=sh_ref, device_config={"array": sh_a, "peer": sh_b},
            currently_attached=True)
sh_vdis = [X("vdi-create", "sr-uuid=" + sh_sr, "name-label=" + n, "virtual-size=8MiB")
           for n in ("statefile", "redolog")]
run_b = os.path.join(env.tmp, "rb")
hosts = ((None, env.env()), (hb, env.env(REPLUN_RUN_DIR=run_b)))
configs, conns = [], {}
for v in sh_vdis:
    cfg = X.sm(sh_ref, "vdi_generate_config", vdi=x.db.by_uuid("VDI", v))
    (params,), _ = xmlrpc.client.loads(cfg)
    for host, henv in hosts:
        p = dict(params)
        if host:
            p["host_ref"] = host
        rc, out, err = run_raw(xmlrpc.client.dumps((p,), "vdi_attach_from_config"), henv)
        check(rc == 0 and parse(out)[0] == "ok", "vdi_attach_from_config of %s on host %s%s"
              % (v, p.get("host_ref"), "" if rc == 0 else ": " + (out + err).strip()[-200:]))
        configs.append((p, henv))
sh_ids = {n: i["id"] for n, i in luns(sh_a, sh_sr).items()}
host_a = params.get("host_ref", "")
recs = sorted(os.path.basename(r) for r in glob.glob(os.path.join(sh_a, "fences", "*@*")))
want = sorted("%s@%s" % (sh_ids[v], h) for v in sh_vdis for h in (host_a, hb))
check(recs == want, "two hosts attach the statefile and redo log from config: one 'pause' record"
      " per (LUN, host) %s" % recs)
for v in sh_vdis:
    for run in (env.run_dir, run_b):
        sock = os.path.join(run, "nbd", sh_sr, v)
        conns[(v, run)] = Nbd(sock, v)
targets = [(conns[(v, r)], off) for r, off in ((env.run_dir, 0), (run_b, 512)) for v in sh_vdis]


def shared_files(what):
    arr = sh_b if what == "sync" else None
    out = []
    for r, off in ((env.run_dir, 0), (run_b, 512)):
        for v in sh_vdis:
            if arr:
                out.append((tool("path", arr, v).strip(), off))
            else:
                d = os.path.dirname(tool("path", sh_a, v).strip())
                snaps = sorted(glob.glob(os.path.join(d, "snap-prefailover-%s-*" % sh_ids[v])))
                out.append((snaps[-1] if snaps else "/dev/null", off))
    return out


rc, out, err = cli("sync", sh_a, "--group", sh_sr, "--wait")
ok_all, bad, paused_all, warned_all = True, [], [], []
for run in range(3):
    ok, seqs, paused, warned = run_chain(targets, shared_files, "sync", str(run))
    ok_all &= ok
    paused_all += paused
    warned_all += warned
    if not chain_consistent(seqs):
        bad.append(seqs)
check(ok_all and not bad and not warned_all and len(paused_all) == 3 and
      all("4 writer(s) paused" in p for p in paused_all),
      "statefile + redo log written through both hosts' nbdkit (A's then B's, in order): every"
      " sync pauses all 4 writers, the recovery point is consistent, no warning (%s %s %s)"
      % (bad, paused_all[:1], warned_all[:1]))

# host b stops serving (detach_from_config): its records go, host a's stay and are paused
for v in sh_vdis:
    conns[(v, run_b)].close()
for p, henv in configs:
    if p.get("host_ref") == hb:
        q = dict(p, command="vdi_detach_from_config")
        rc, out, err = run_raw(xmlrpc.client.dumps((q,), "vdi_detach_from_config"), henv)
        check(parse(out) == ("ok", None), "vdi_detach_from_config on host %s" % hb)
recs = sorted(os.path.basename(r) for r in glob.glob(os.path.join(sh_a, "fences", "*@*")))
check(recs == sorted("%s@%s" % (sh_ids[v], host_a) for v in sh_vdis)
      and all(os.path.exists(os.path.join(env.run_dir, "nbd", sh_sr, v)) for v in sh_vdis),
      "host b's vdi_detach_from_config removes only host b's records; host a still serves (%s)"
      % recs)
targets = [(conns[(v, env.run_dir)], 0) for v in sh_vdis]


def host_a_files(what):
    return [f for f in shared_files(what) if f[1] == 0]


ok, seqs, paused, warned = run_chain(targets, host_a_files, "prepare-failover", "a")
check(ok and chain_consistent(seqs) and not warned and len(paused) == 1
      and "2 writer(s) paused" in paused[0],
      "then prepare-failover still pauses host a's writers (2), consistent, no warning (%s %s)"
      % (seqs, paused))
for v in sh_vdis:
    conns[(v, env.run_dir)].close()
for p, henv in configs:
    if p.get("host_ref") != hb:
        q = dict(p, command="vdi_detach_from_config")
        rc, out, err = run_raw(xmlrpc.client.dumps((q,), "vdi_detach_from_config"), henv)
        check(parse(out) == ("ok", None), "vdi_detach_from_config on host %s" % hb)
check(glob.glob(os.path.join(sh_a, "fences", "*@*")) == [],
      "host a's detach too: no record left")

# --- a Xen host: the fence is tap-ctl pause/unpause of the LUN's tapdisk ----------------------
fake = os.path.join(env.tmp, "xenbin")
os.makedirs(fake)
calls = os.path.join(env.tmp, "tap-ctl.calls")
counter = os.path.join(env.tmp, "tap-ctl.minor")
sleeper = subprocess.Popen(["sleep", "300"])  # stands for the tapdisk processes
with open(os.path.join(fake, "tap-ctl"), "w") as f:
    f.write("#!/bin/sh\n# records its arguments and answers like tap-ctl\n"
            "echo \"$*\" >> %s\n"
            "case \"$1\" in\n"
            "create) m=$(cat %s 2>/dev/null || echo 6); m=$((m + 1)); echo $m > %s;"
            " echo /dev/xen/blktap-2/tapdev$m ;;\n"
            "list) echo \"pid=%d minor=$3 state=0 args=aio:x\" ;;\n"
            "destroy|pause|unpause) ;;\n"
            "*) exit 1 ;;\nesac\n" % (calls, counter, counter, sleeper.pid))
os.chmod(os.path.join(fake, "tap-ctl"), 0o755)
xenpath = fake + ":/sbin:/usr/sbin:/bin:/usr/bin"
x.sm.env_extra.update({"PATH": xenpath, "REPLUN_XEN_ROOT": os.path.join(env.tmp, "xen"),
                       "REPLUN_DATAPATH": "tapdisk"})
try:
    s = Site.__new__(Site)
    s.env, s.x, s.X = env, x, X
    s.a = os.path.join(env.tmp, "Atap")
    s.b = os.path.join(env.tmp, "Btap")
    tool("init", s.a, "sAt")
    tool("init", s.b, "sBt")
    tool("pair", s.a, s.b)
    s.sr = X("sr-create", "type=replun", "name-label=tap", "device-config:array=" + s.a,
             "device-config:peer=" + s.b)
    s.srref = x.db.by_uuid("SR", s.sr)
    s.vdis = []
    for name in ("lunA", "lunB"):
        v = X("vdi-create", "sr-uuid=" + s.sr, "name-label=" + name, "virtual-size=8MiB")
        s.vdis.append((v, x.db.by_uuid("VDI", v)))
        X.sm(s.srref, "vdi_activate", vdi=s.vdis[-1][1], args=["true"])
    recs = "".join(open(r).read() for r in sorted(glob.glob(os.path.join(s.a, "fences", "*"))))
    check("kind tapdisk" in recs and "pid %d" % sleeper.pid in recs and "minor 7" in recs
          and "minor 8" in recs, "Xen host: vdi_activate registers a tapdisk fence (pid, minor)")
    open(calls, "w").close()
    rc, out, err = cli("prepare-failover", s.a, "--group", s.sr, "--json",
                       env={"PATH": xenpath})
    log = open(calls).read().splitlines()
    want = ["pause -p %d -m 7" % sleeper.pid, "pause -p %d -m 8" % sleeper.pid,
            "unpause -p %d -m 7" % sleeper.pid, "unpause -p %d -m 8" % sleeper.pid]
    check(rc == 0 and log == want and not warnings_of(out),
          "Xen host: prepare-failover pauses both tapdisks, snapshots, unpauses (%s)" % log)
    for v, ref in s.vdis:
        X.sm(s.srref, "vdi_deactivate", vdi=ref)
    check(glob.glob(os.path.join(s.a, "fences", "*")) == [],
          "Xen host: vdi_deactivate unregisters the tapdisk fences")
finally:
    sleeper.kill()
    sleeper.wait()
    for k in ("PATH", "REPLUN_XEN_ROOT"):
        x.sm.env_extra.pop(k, None)
    x.sm.env_extra["REPLUN_DATAPATH"] = "nbd"

done()
