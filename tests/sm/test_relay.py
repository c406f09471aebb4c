#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# sm.relay: the XenAPI callback relay (replun-xapi-relay). ReplunSR hands it its callbacks when
# a warm one runs; when it is absent, of another build, wedged, killed mid-call or in a socket
# directory with the wrong owner or mode, the call still succeeds in-process and (except for
# a bad directory) a new relay is started detached, never holding the plugin's stdout/stderr.
# The session ref never reaches SMlog (where the relay logs too). Relays are killed at the end
# (by pid file, and they exit when their directory is removed).
import os
import shutil
import signal
import subprocess
import threading
import time
import xmlrpc.client

from smtest import PLUGIN, Env, Relay, alive, check, done, parse, wait_for, xapi_sim
from xapi_stub import StubXapi

RELAY = os.path.join(os.path.dirname(PLUGIN), "replun-xapi-relay")

env = Env("relay")
relay = Relay(env.run_dir)
rdir = relay.dir
stray = []  # relay pids to kill at the end


def wait_relay(old=None, timeout=5.0):
    """The pid of a listening relay other than @old, or None."""
    pid = relay.wait(old, timeout)
    if pid:
        stray.append(pid)
    return pid


def exits(proc, timeout):
    """Whether the child @proc exits within @timeout seconds."""
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def smlog():
    try:
        with open(env.log) as f:
            return f.read()
    except OSError:
        return ""


def fallback_lines():
    return smlog().count("XenAPI relay not used")


x, X = env.sim()
db = x.db
sr = X("sr-create", "type=replun", "name-label=relay", "device-config:array=" + env.a,
       "device-config:peer=" + env.b)

# --- relay absent: the call works in-process and starts one -----------------------------------
# sr-create's sr_scan called back, found no relay and started one: let it come up, then kill it
wait_relay(timeout=3)
relay.kill(forget=True)
before = fallback_lines()
v1 = X("vdi-create", "sr-uuid=" + sr, "name-label=one", "virtual-size=8MiB")
check(db.by_uuid("VDI", v1) is not None, "relay absent: vdi-create succeeds (in-process)")
check(fallback_lines() == before + 1, "relay absent: SMlog says the relay was not used")
pid = wait_relay()
check(pid is not None, "relay absent: the call started a relay")
if pid:
    check(os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(RELAY),
          "the relay runs the replun-xapi-relay next to ReplunSR")
    st = os.stat(rdir)
    check(st.st_mode & 0o777 == 0o700 and st.st_uid == os.geteuid(),
          "its directory is %s, mode 0700, owned by us" % rdir)
    fds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    check(all(fds.get(i) == "/dev/null" for i in (0, 1, 2)),
          "relay's stdin/stdout/stderr are /dev/null: %s" % [fds.get(i) for i in (0, 1, 2)])
    check(not any(t.startswith("pipe:") for t in fds.values()),
          "relay holds no pipe (none of the plugin's): %s" % sorted(fds.values()))
    own = {os.path.join(rdir, "relay.lock"), env.log}
    extra = [t for fd, t in fds.items() if fd > 2 and t not in own
             and not t.startswith("socket:") and t != "anon_inode:[eventfd]"]
    check(not extra, "relay holds nothing of the plugin's (no lock file, no array): %s" % extra)
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    check(int(fields[3]) == pid, "relay leads its own session (setsid)")

# --- warm relay: the happy path ---------------------------------------------------------------
v2 = X("vdi-create", "sr-uuid=" + sr, "name-label=two", "virtual-size=8MiB")
s2 = X("vdi-snapshot", "uuid=" + v2)
c2 = X("vdi-clone", "uuid=" + v2)
check(all(db.by_uuid("VDI", u) for u in (v2, s2, c2)),
      "relay warm: vdi-create, vdi-snapshot, vdi-clone succeed, XAPI has their records")
check(db.field("VDI", db.by_uuid("VDI", s2), "is_a_snapshot") is True,
      "relay warm: the snapshot's record came through (is_a_snapshot)")
check(fallback_lines() == before + 1, "relay warm: no new fallback in SMlog")
check(relay.pid() == pid, "relay warm: the same relay served them")

# a vdi_create request as XAPI sent it, replayed below against a stub XAPI that tells who
# posted (the relay or ReplunSR itself)
doc = [e["request"] for e in x.sm.log if e["command"] == "vdi_create"][-1]
sessions = {xmlrpc.client.loads(e["request"])[0][0].get("session_ref") for e in x.sm.log}
sessions.discard(None)
stub_path = os.path.join(env.tmp, "stub.sock")
stub = StubXapi(stub_path)
base_env = xapi_sim.sm_exec_env(env.env(REPLUN_XAPI_SOCKET=stub_path))


def replay(extra=None, timeout=30):
    """Runs ReplunSR on doc with pipes as XAPI does; (result, seconds, its pid)."""
    e = dict(base_env, **(extra or {}))
    t0 = time.monotonic()
    p = subprocess.Popen([PLUGIN, doc], env=e, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, _err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return ("timeout",), time.monotonic() - t0, p.pid
    return parse(out), time.monotonic() - t0, p.pid


def posted_by(since):
    return [c[0] for c in stub.calls[since:]]


n = len(stub.calls)
r, secs, me = replay()
check(r[0] == "ok" and posted_by(n) == [pid], "replayed vdi_create: the warm relay posted the "
      "callback (posters %s, relay %s, plugin %s)" % (posted_by(n), pid, me))

# --- relay absent, plugin run with pipes: EOF is not held by the relay it starts --------------
relay.kill()  # SIGKILL leaves the socket file behind: connect() is refused
n = len(stub.calls)
r, secs, me = replay(timeout=10)
check(r[0] == "ok" and posted_by(n) == [me],
      "stale socket, no relay: the plugin posted itself (%s, posters %s, plugin %s)"
      % (r, posted_by(n), me))
check(secs < 5, "stdout/stderr reached EOF in %.2f s although a relay was started" % secs)
pid = wait_relay()
check(pid is not None and alive(pid), "a new relay lives after the plugin exited")

# --- relay killed -9 mid-call: retried in-process -----------------------------------------------
n = len(stub.calls)
stub.delays = [0.0] * n + [1.0]
stub.got.clear()
holder = {}
t = threading.Thread(target=lambda: holder.update(res=replay(timeout=30)))
t.start()
wait_for(lambda: len(stub.calls) > n, 10)
first = posted_by(n)[:1]
if pid:
    os.kill(pid, signal.SIGKILL)
t.join()
r, secs, me = holder["res"]
check(first == [pid], "kill -9 test: the relay was posting when killed")
check(r[0] == "ok" and posted_by(n)[1:] == [me],
      "relay killed -9 mid-call: the plugin retried in-process and succeeded (%s, %s)"
      % (r, posted_by(n)))
check(secs < 10, "... within %.2f s" % secs)
check("lost during VDI.db_introduce" in smlog(), "... and SMlog says the relay was lost")
stub.delays = []
pid = wait_relay(old=pid)
check(pid is not None, "a new relay was started after the kill")

# --- relay wedged (SIGSTOP): bounded, in-process, replaced -------------------------------------
if pid:
    os.kill(pid, signal.SIGSTOP)
n = len(stub.calls)
r, secs, me = replay({"REPLUN_XAPI_RELAY_TIMEOUT_MS": "300"}, timeout=30)
check(r[0] == "ok" and posted_by(n) == [me],
      "wedged relay: the plugin posted itself (%s)" % (r,))
check(secs < 5, "wedged relay: the call took %.2f s (timeout 0.3 s)" % secs)
check(pid is not None and wait_for(lambda: not alive(pid), 5),
      "the wedged relay was killed")
new = wait_relay(old=pid)
check(new is not None, "a new relay replaced the wedged one")
pid = new

# --- relay of another build: not used, it exits, the right one starts -------------------------
other_dir = os.path.join(env.tmp, "other")
os.makedirs(other_dir)
other = os.path.join(other_dir, "replun-xapi-relay")
shutil.copy2(RELAY, other)
relay.kill()
op = subprocess.Popen([other], env=base_env, stdin=subprocess.DEVNULL,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
stray.append(op.pid)
check(wait_relay(old=pid) == op.pid, "a relay of another build listens")
n = len(stub.calls)
r, secs, me = replay()
check(r[0] == "ok" and posted_by(n) == [me],
      "other build: not used, the plugin posted itself (%s)" % (posted_by(n),))
check(exits(op, 5), "the relay of another build exited when told")
pid = wait_relay(old=op.pid)
check(pid is not None and os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(RELAY),
      "the right relay was started instead")
n = len(stub.calls)
r, secs, me = replay()
check(r[0] == "ok" and posted_by(n) == [pid], "... and serves the next call")

# --- binary replaced: the relay exits by itself -----------------------------------------------
relay.kill()
op = subprocess.Popen([other], env=base_env, stdin=subprocess.DEVNULL,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
stray.append(op.pid)
wait_relay(old=pid)
shutil.copy2(RELAY, other + ".new")
os.rename(other + ".new", other)
check(exits(op, 10), "a relay whose binary was replaced exits")

# --- idle timeout -----------------------------------------------------------------------------
op = subprocess.Popen([RELAY], env=dict(base_env, REPLUN_XAPI_RELAY_IDLE_S="1"),
                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
stray.append(op.pid)
check(exits(op, 10), "a relay idle for REPLUN_XAPI_RELAY_IDLE_S=1 exits")
check(not os.path.exists(os.path.join(rdir, "relay.sock")), "... removing its socket")

# --- socket directory with the wrong mode / owner: not used, no relay started -----------------
for what, fix in (("mode 0755", lambda: os.chmod(rdir, 0o755)),
                  ("owner nobody", lambda: os.chown(rdir, 65534, -1))):
    os.chmod(rdir, 0o700)
    os.chown(rdir, os.geteuid(), -1)
    relay.kill()
    fix()
    before = fallback_lines()
    n = len(stub.calls)
    r, secs, me = replay()
    check(r[0] == "ok" and posted_by(n) == [me],
          "socket directory with %s: the plugin posted itself" % what)
    check(fallback_lines() == before + 1 and "no group/other access" in smlog(),
          "... and SMlog says why")
    time.sleep(0.3)
    check(relay.pid() is None or not alive(relay.pid()), "... and no relay was started")
os.chmod(rdir, 0o700)
os.chown(rdir, os.geteuid(), -1)

# --- REPLUN_XAPI_RELAY=0: off, silently ---------------------------------------------------------
before = fallback_lines()
n = len(stub.calls)
r, secs, me = replay({"REPLUN_XAPI_RELAY": "0"})
check(r[0] == "ok" and posted_by(n) == [me] and fallback_lines() == before,
      "REPLUN_XAPI_RELAY=0: in-process, no log line, no relay")

# --- the session ref is a secret --------------------------------------------------------------
sessions |= {c[2] for c in stub.calls}
log = smlog()
check(sessions and "replun-xapi-relay" in log, "SMlog has the relay's own lines")
check(not [s for s in sessions if s in log], "no session ref (%d) appears in SMlog" % len(sessions))

stub.close()
for p in stray:
    if alive(p):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
done()
