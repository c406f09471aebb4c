# SPDX-License-Identifier: MIT
# Shared helpers of the tests/sm Python tests: temp dirs with cleanup, two file arrays (sites A
# and B, paired), the XAPI simulator of tests/xapi running ReplunSR, raw calls in both dialects,
# the XenAPI callback relay's pid file and socket (also used by bench/sm).
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

SIM_DIR = os.environ.get("XAPI_SIM_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "xapi")
sys.path.insert(0, SIM_DIR)
import xapi_sim  # noqa: E402
import xe  # noqa: E402

PLUGIN = os.environ.get("REPLUN_SR", "")
SM_TOOL = os.environ.get("SM_TOOL", "")
FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


def done():
    if FAILS:
        print("%d check(s) failed:" % len(FAILS))
        for f in FAILS:
            print("  - " + f)
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)


def need_binaries():
    for p, what in ((PLUGIN, "REPLUN_SR"), (SM_TOOL, "SM_TOOL")):
        if not p or not os.access(p, os.X_OK):
            print("FAIL %s not set to an executable (%r)" % (what, p))
            sys.exit(1)


class Env:
    """A temp dir with arrays A and B (paired), lock/run/log dirs, and cleanup of NBD servers."""

    def __init__(self, name, peer=True):
        need_binaries()
        base = os.environ.get("TMPDIR", "/tmp")
        # short: NBD socket paths <tmp>/r/nbd/<sr uuid>/<vdi uuid> must fit a sockaddr_un
        self.tmp = tempfile.mkdtemp(prefix="sm.", dir=base)
        print("test dir %s (%s)" % (self.tmp, name))
        self.lock = os.path.join(self.tmp, "lock")
        self.run_dir = os.path.join(self.tmp, "r")
        self.log = os.path.join(self.tmp, "SMlog")
        self.a = os.path.join(self.tmp, "siteA")
        self.b = os.path.join(self.tmp, "siteB")
        self.sims = []
        atexit.register(self.cleanup)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *a: sys.exit(1))
        tool("init", self.a, "siteA")
        tool("init", self.b, "siteB")
        if peer:
            tool("pair", self.a, self.b)

    def env(self, **extra):
        e = {"REPLUN_LOCK_DIR": self.lock, "REPLUN_RUN_DIR": self.run_dir,
             "REPLUN_SM_LOG": self.log, "REPLUN_DATAPATH": "nbd"}
        e.update(extra)
        return e

    def sim(self, name="xapi", hostname="host-a", **extra):
        sock = os.path.join(self.tmp, name + ".sock")
        x = xapi_sim.Xapi(sock, sm_plugins={"replun": extra.pop("plugin", PLUGIN)},
                          env_extra=self.env(**extra), hostname=hostname)
        x.start()
        self.sims.append(x)
        return x, xe.Xe(x)

    def cleanup(self):
        for x in self.sims:
            try:
                x.stop()
            except Exception:
                pass
        # every NBD server a test left running
        for root, _dirs, files in os.walk(self.run_dir):
            for f in files:
                if f.endswith(".pid"):
                    try:
                        pid = int(open(os.path.join(root, f)).read().strip())
                        os.kill(pid, signal.SIGKILL)
                    except (ValueError, OSError):
                        pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def valgrind_reason():
    """Why valgrind cannot be used here, or None."""
    if os.environ.get("SM_NO_VALGRIND"):
        return os.environ["SM_NO_VALGRIND"]
    if not shutil.which("valgrind"):
        return "valgrind not installed"
    return None


def valgrind_wrapper(env):
    """A script running ReplunSR under memcheck (exit 1 on any error or leak)."""
    path = os.path.join(env.tmp, "ReplunSR-valgrind")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec valgrind -q --error-exitcode=1 --leak-check=full "
                "--errors-for-leak-kinds=definite,indirect %s \"$@\"\n" % PLUGIN)
    os.chmod(path, 0o755)
    return path


def tool(*args, check_rc=True):
    p = subprocess.run([SM_TOOL] + list(args), capture_output=True, text=True)
    if check_rc and p.returncode != 0:
        raise RuntimeError("sm_tool %s: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout


def luns(array, group, missing_ok=False):
    """{name: (id, size, allocated, state, read_only, snapshot_of, pending)} of a group;
    pending: a source whose target the next sync makes. missing_ok: {} for an absent group."""
    out = {}
    p = subprocess.run([SM_TOOL, "luns", array, group], capture_output=True, text=True)
    if p.returncode != 0:
        if missing_ok and "not found" in p.stderr:
            return out
        raise RuntimeError("sm_tool luns %s %s: %s" % (array, group, p.stderr.strip()))
    for line in p.stdout.splitlines():
        f = line.split()
        out[f[1]] = {"id": f[0], "size": int(f[2]), "allocated": int(f[3]), "state": f[4],
                     "read_only": f[5] == "1", "snapshot_of": f[6], "pending": f[7] == "1"}
    return out


def sync(array, group):
    """One foreground sync of a group (what `replun sync --wait` or the host plugin does)."""
    tool("sync", array, group)


def meta(array, lun):
    out = {}
    for line in tool("meta", array, lun).splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def run_raw(document, env=None, argv=None):
    """Runs ReplunSR with argv[1] = document as sm_exec does; returns (rc, stdout, stderr)."""
    args = [PLUGIN] + ([document] if argv is None else argv)
    p = subprocess.run(args, env=xapi_sim.sm_exec_env(env), capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def parse(stdout):
    """('ok', value) or ('fault', code, string), parsed by Python's xmlrpc.client."""
    try:
        (value,), _ = xmlrpc.client.loads(stdout)
        return ("ok", value)
    except xmlrpc.client.Fault as f:
        return ("fault", f.faultCode, f.faultString)


def xapi_doc(members):
    """A methodCall exactly as XAPI's sm_exec serialises it (one line, bare strings)."""
    return xapi_sim.SmExec.build_call(members)


def python_doc(members):
    """The same call as Python tools (static-vdis) write it: declaration, <string>, newlines."""
    return xmlrpc.client.dumps((members,), members["command"])


def alive(pid):
    """Whether process @pid runs (a zombie does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(cond, timeout, step=0.01):
    """Polls cond() until it is true or @timeout seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Relay:
    """The XenAPI callback relay (replun-xapi-relay) that ReplunSR starts for the run dir
    @run_dir: <run_dir>/xapi-relay holds its pid file and its socket."""

    def __init__(self, run_dir):
        self.dir = os.path.join(run_dir, "xapi-relay")
        self.pidfile = os.path.join(self.dir, "relay.pid")
        self.sockfile = os.path.join(self.dir, "relay.sock")

    def pid(self):
        """The pid its pid file names, or None."""
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def wait(self, old=None, timeout=5.0):
        """The pid of a listening relay (pid file of a live process, socket file present)
        other than @old, or None after @timeout seconds."""
        ok = wait_for(lambda: self.pid() not in (None, old) and alive(self.pid())
                      and os.path.exists(self.sockfile), timeout)
        return self.pid() if ok else None

    def kill(self, forget=False):
        """SIGKILLs the relay its pid file names and waits until it is gone. forget: also
        removes its pid file and socket (SIGKILL leaves them), so the next call finds none."""
        pid = self.pid()
        if pid and alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            wait_for(lambda: not alive(pid), 5)
        if forget:
            for f in (self.pidfile, self.sockfile):
                try:
                    os.unlink(f)
                except OSError:
                    pass
