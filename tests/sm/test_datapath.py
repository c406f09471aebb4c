#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# sm.datapath: vdi_attach/activate/deactivate/detach through ReplunSR with a real NBD server
# (qemu-nbd, and nbdkit) and real NBD clients (qemu-io, nbdinfo, nbdcopy): bytes written through
# the socket land in the LUN and replicate after a sync; one read-write host; failed activation
# cleans up; static VDIs (generate_config -> attach/detach_from_config in Python's dialect);
# the tapdisk sequence on a Xen host, driven through a recording stand-in for tap-ctl.
import os
import shutil
import subprocess
import xmlrpc.client

from smtest import Env, check, done, luns, parse, run_raw, tool, xapi_sim, xe

env = Env("datapath")
x, X = env.sim()
db = x.db
MiB = 1024 * 1024

for prog in ("qemu-nbd", "qemu-io", "nbdinfo"):
    if not shutil.which(prog):
        print("SKIP: %s not installed (package qemu-utils / libnbd-bin)" % prog)
        raise SystemExit(0)

sr = X("sr-create", "type=replun", "name-label=dp", "device-config:array=" + env.a,
       "device-config:peer=" + env.b)
srref = db.by_uuid("SR", sr)
hb = x.add_host("host-b")
db.create("PBD", host=hb, SR=srref, device_config={"array": env.a, "peer": env.b},
          currently_attached=True)
v = X("vdi-create", "sr-uuid=" + sr, "name-label=data", "virtual-size=64MiB")
vref = db.by_uuid("VDI", v)


def fails(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except xapi_sim.Failure as f:
        return f
    return None


def qemu_io(uri, cmd, ro=False):
    args = ["qemu-io", "-f", "raw"] + (["-r"] if ro else []) + ["-c", cmd, uri]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def lun_bytes(array, name, off, n):
    path = tool("path", array, name).strip()
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def server_pid(sock):
    try:
        return int(open(sock + ".pid").read())
    except (OSError, ValueError):
        return 0


def alive(pid):
    """Running (a zombie waiting for init to reap it counts as stopped)."""
    try:
        stat = open("/proc/%d/stat" % pid).read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# --- attach: the struct current XAPI requires ------------------------------------------------
att = X.sm(srref, "vdi_attach", vdi=vref, args=["true"])
sock = att["params_nbd"].split(":")[2]
check(att["params_nbd"] == "nbd:unix:%s:exportname=%s" % (sock, v)
      and sock == os.path.join(env.run_dir, "nbd", sr, v),
      "vdi_attach: params_nbd = nbd:unix:<run>/nbd/<sr>/<vdi>:exportname=<vdi>")
check(att["params"] == tool("path", env.a, v).strip() and isinstance(att["o_direct"], bool)
      and att["xenstore_data"] == {"vdi-uuid": v},
      "vdi_attach: params (the LUN's data), o_direct, xenstore_data vdi-uuid")
check(not os.path.exists(sock), "vdi_attach starts nothing (the server comes with activate)")

# --- activate: NBD server on the socket ------------------------------------------------------
X.sm(srref, "vdi_activate", vdi=vref, args=["true"])
uri = xe.nbd_uri(att["params_nbd"])
pid = server_pid(sock)
info = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True)
check(pid > 0 and alive(pid) and info.stdout.strip() == str(64 * MiB),
      "vdi_activate: NBD server %d serves export '%s' of 64 MiB" % (pid, v))
w = qemu_io(uri, "write -P 0xab 1M 1M")
check(w.returncode == 0, "qemu-io writes 1 MiB of 0xab at 1 MiB through the socket")
check(lun_bytes(env.a, v, MiB, MiB) == b"\xab" * MiB, "the bytes landed in the LUN's data")
r = qemu_io(uri, "read -P 0xab 1M 1M")
check(r.returncode == 0 and "Pattern verification failed" not in r.stdout,
      "qemu-io reads them back through the socket")
X.sm(srref, "vdi_activate", vdi=vref, args=["true"])
check(server_pid(sock) == pid, "vdi_activate again on the same host: idempotent, same server")

# --- one writer ----------------------------------------------------------------------------
f = fails(X.sm, srref, "vdi_activate", vdi=vref, args=["true"], host=hb)
check(f is not None and f.code == "VDI_IN_USE",
      "second read-write activation from another host: VDI_IN_USE (%s)" % (f,))
f = fails(X.sm, srref, "sr_detach")
check(f is not None and f.code == "SR_DEVICE_IN_USE",
      "sr_detach with an active VDI: SR_DEVICE_IN_USE")

# --- deactivate / detach ---------------------------------------------------------------------
X.sm(srref, "vdi_deactivate", vdi=vref)
check(not alive(pid) and not os.path.exists(sock) and not os.path.exists(sock + ".pid"),
      "vdi_deactivate: server stopped, socket and pid file removed")
X.sm(srref, "vdi_deactivate", vdi=vref)
X.sm(srref, "vdi_detach", vdi=vref)
check(True, "vdi_deactivate again and vdi_detach: idempotent")
X.sm(srref, "vdi_attach", vdi=vref, args=["true"], host=hb)
X.sm(srref, "vdi_activate", vdi=vref, args=["true"], host=hb)
check(alive(server_pid(sock)), "after deactivate another host may activate read-write")
# host-b dies with the VDI active; XAPI (HA, or an admin's vm-reset-powerstate) restarts the VM
# on host-a: the presentation of a host XAPI reports not live is taken over, a live one is not.
f = fails(X.sm, srref, "vdi_activate", vdi=vref, args=["true"])
check(f is not None and f.code == "VDI_IN_USE", "host-b live: host-a's activation is VDI_IN_USE")
x.set_host_live(hb, False)
lun_id = luns(env.a, sr)[v]["id"]
hb_fence = os.path.join(env.a, "fences", "%s@%s" % (lun_id, hb))
check(os.path.exists(hb_fence), "host-b's read-write activation registered its writer record")
X.sm(srref, "vdi_activate", vdi=vref, args=["true"])
with open(env.log) as fh:
    smlog = fh.read()
check("taken over from host '%s'" % hb in smlog,
      "host-b not live: host-a's read-write activation takes the LUN over (SMlog says so)")
check(not os.path.exists(hb_fence), "the take-over removes host-b's write fence record too")
x.set_host_live(hb, True)
f = fails(X.sm, srref, "vdi_activate", vdi=vref, args=["true"], host=hb)
check(f is not None and f.code == "VDI_IN_USE", "host-b back: its presentation is gone, VDI_IN_USE")
X.sm(srref, "vdi_deactivate", vdi=vref)
X.sm(srref, "vdi_detach", vdi=vref)
tool("present", env.a, lun_id, "OpaqueRef:no-such-host", "rw")
f = fails(X.sm, srref, "vdi_activate", vdi=vref, args=["true"])
check(f is None, "a presentation to a host no longer in the pool (HANDLE_INVALID) is taken over"
      " (%s)" % (f,))
X.sm(srref, "vdi_deactivate", vdi=vref)
tool("present", env.a, lun_id, "host:not-a-xapi-host", "rw")
f = fails(X.sm, srref, "vdi_activate", vdi=vref, args=["true"])
check(f is not None and f.code == "VDI_IN_USE",
      "a holder XAPI cannot be asked about is never taken over: VDI_IN_USE")
tool("unpresent", env.a, lun_id, "host:not-a-xapi-host")
X.sm(srref, "vdi_deactivate", vdi=vref, host=hb)
X.sm(srref, "vdi_detach", vdi=vref, host=hb)

# --- replication of what was written through NBD ---------------------------------------------
p = subprocess.run([os.environ["SM_TOOL"], "sync", env.a, sr], capture_output=True, text=True)
check(p.returncode == 0, "sync of the SR's group to site B: %s" % p.stderr.strip())
check(lun_bytes(env.b, v, MiB, MiB) == b"\xab" * MiB,
      "the bytes written through NBD are on site B's replica")

# --- snapshot: read-only datapath ------------------------------------------------------------
s = X("vdi-snapshot", "uuid=" + v)
sref = db.by_uuid("VDI", s)
f = fails(X.sm, srref, "vdi_attach", vdi=sref, args=["true"])
check(f is not None and f.code == "SR_BACKEND_FAILURE_46",
      "read-write attach of a snapshot: VDIUnavailable (46)")
satt = X.sm(srref, "vdi_attach", vdi=sref, args=["false"])
X.sm(srref, "vdi_activate", vdi=sref, args=["false"])
suri = xe.nbd_uri(satt["params_nbd"])
r = qemu_io(suri, "read -P 0xab 1M 1M", ro=True)
w = qemu_io(suri, "write -P 0x11 0 4k")
check(r.returncode == 0 and "Pattern verification failed" not in r.stdout and
      ("read-only" in (w.stdout + w.stderr).lower() or w.returncode != 0 or
       "failed" in w.stdout.lower()), "snapshot served read-only, with the data at snapshot time")
X.sm(srref, "vdi_deactivate", vdi=sref)
X.sm(srref, "vdi_detach", vdi=sref)

# --- read-only then read-write activation on one host: the server is restarted read-write ---
X.sm(srref, "vdi_activate", vdi=vref, args=["false"])
w = qemu_io(uri, "write -P 0x22 8M 4k")
check(w.returncode != 0 or "failed" in (w.stdout + w.stderr).lower(),
      "activated read-only: writes refused")
X.sm(srref, "vdi_activate", vdi=vref, args=["true"])
w = qemu_io(uri, "write -P 0x22 8M 4k")
check(w.returncode == 0 and "failed" not in w.stdout.lower()
      and lun_bytes(env.a, v, 8 * MiB, 4096) == b"\x22" * 4096,
      "then activated read-write on the same host: the server serves writes")
X.sm(srref, "vdi_deactivate", vdi=vref)
check(not os.path.exists(sock + ".mode"), "vdi_deactivate removes the mode file too")

# --- a failed activate leaves nothing behind -------------------------------------------------
broken = os.path.join(env.tmp, "brokenbin")
os.makedirs(broken)
with open(os.path.join(broken, "qemu-nbd"), "w") as f:
    f.write("#!/bin/sh\necho 'qemu-nbd: cannot open image' >&2\nexit 1\n")
os.chmod(os.path.join(broken, "qemu-nbd"), 0o755)
x.sm.env_extra["PATH"] = broken + ":/sbin:/usr/sbin:/bin:/usr/bin"
x.sm.env_extra["REPLUN_NBD_SERVER"] = "qemu-nbd"  # nbdkit is the default when installed
f = fails(X.sm, srref, "vdi_activate", vdi=vref, args=["true"])
del x.sm.env_extra["PATH"]
del x.sm.env_extra["REPLUN_NBD_SERVER"]
check(f is not None and f.code == "SR_BACKEND_FAILURE_46" and "exited with 1" in f.params[1],
      "activate whose NBD server fails: VDIUnavailable (46): %s" % (f,))
check(not os.path.exists(sock) and not os.path.exists(sock + ".pid"),
      "failed activate: no socket or pid file left")
X.sm(srref, "vdi_activate", vdi=vref, args=["true"], host=hb)
check(alive(server_pid(sock)), "failed activate: the LUN was unpresented (another host can write)")
X.sm(srref, "vdi_deactivate", vdi=vref, host=hb)

# --- nbdkit as the server --------------------------------------------------------------------
if shutil.which("nbdkit"):
    x.sm.env_extra["REPLUN_NBD_SERVER"] = "nbdkit"
    X.sm(srref, "vdi_activate", vdi=vref, args=["true"])
    r = qemu_io(uri, "read -P 0xab 1M 1M")
    w = qemu_io(uri, "write -P 0xcd 4M 64k")
    check(r.returncode == 0 and "Pattern verification failed" not in r.stdout
          and w.returncode == 0 and lun_bytes(env.a, v, 4 * MiB, 65536) == b"\xcd" * 65536,
          "nbdkit serves the LUN read-write as well")
    X.sm(srref, "vdi_deactivate", vdi=vref)
    del x.sm.env_extra["REPLUN_NBD_SERVER"]
    check(not os.path.exists(sock), "nbdkit stopped by vdi_deactivate")
else:
    print("SKIP nbdkit: not installed")

# --- static VDIs: generate_config, then attach/detach_from_config as static-vdis runs them ---
cfg = X.sm(srref, "vdi_generate_config", vdi=vref)
rc, out, err = run_raw(cfg, env.env())
r = parse(out)
check(rc == 0 and r[0] == "ok" and r[1].get("params_nbd") == att["params_nbd"],
      "vdi_attach_from_config (the generated config as argv[1]): attach struct")
got = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True)
check(got.stdout.strip() == str(64 * MiB), "vdi_attach_from_config: the VDI is served")
# The HA statefile is attached by every host of the pool at once: a shared writer each.
(params,), _ = xmlrpc.client.loads(cfg)
params["host_ref"] = hb
rc, out, err = run_raw(xmlrpc.client.dumps((params,), "vdi_attach_from_config"), env.env())
check(rc == 0 and parse(out)[0] == "ok",
      "vdi_attach_from_config on a second host while the first has it: attach struct (%s)"
      % out.strip()[:200])
f = fails(X.sm, srref, "vdi_activate", vdi=vref, args=["true"], host=hb)
check(f is not None and f.code == "VDI_IN_USE",
      "an exclusive read-write activation while static VDI writers share it: VDIInUse (%s)"
      % (f,))
params["command"] = "vdi_detach_from_config"
rc, out, err = run_raw(xmlrpc.client.dumps((params,), "vdi_detach_from_config"), env.env())
check(parse(out) == ("ok", None), "vdi_detach_from_config on the second host: nil")
(params,), _ = xmlrpc.client.loads(cfg)
params["command"] = "vdi_detach_from_config"
rc, out, err = run_raw(xmlrpc.client.dumps((params,), "vdi_detach_from_config"), env.env())
check(parse(out) == ("ok", None) and not os.path.exists(sock),
      "vdi_detach_from_config (Python's re-dump of the config): nil, server stopped")

# --- tapdisk on a Xen host: the tap-ctl sequence ---------------------------------------------
fake = os.path.join(env.tmp, "xenbin")
os.makedirs(fake)
calls = os.path.join(env.tmp, "tap-ctl.calls")
with open(os.path.join(fake, "tap-ctl"), "w") as f:
    f.write("#!/bin/sh\n# records its arguments and answers like tap-ctl\n"
            "echo \"$*\" >> %s\n"
            "case \"$1\" in\n"
            "create) echo /dev/xen/blktap-2/tapdev7 ;;\n"
            "list) echo 'pid=4242 minor=7 state=0 args=aio:x' ;;\n"
            "destroy) ;;\n"
            "*) exit 1 ;;\nesac\n" % calls)
os.chmod(os.path.join(fake, "tap-ctl"), 0o755)
xen = os.path.join(env.tmp, "xenroot")
x.sm.env_extra.update({"PATH": fake + ":/sbin:/usr/sbin:/bin:/usr/bin", "REPLUN_XEN_ROOT": xen})
del x.sm.env_extra["REPLUN_DATAPATH"]
tatt = X.sm(srref, "vdi_attach", vdi=vref, args=["true"])
backend = os.path.join(xen, "dev/sm/backend", sr, v)
nbdlink = os.path.join(xen, "run/blktap-control/nbd", sr, v)
check(tatt["params"] == backend and tatt["params_nbd"] == "nbd:unix:%s:exportname=%s"
      % (nbdlink, v), "Xen host (tap-ctl found): params = /dev/sm/backend/<sr>/<vdi>, "
      "params_nbd = the tapdisk's NBD link")
X.sm(srref, "vdi_activate", vdi=vref, args=["true"])
log = open(calls).read().splitlines()
image = tool("path", env.a, v).strip()
check(log[:2] == ["create -a aio:" + image, "list -m 7"],
      "vdi_activate: tap-ctl create -a aio:<LUN data>, then list -m <minor> (%s)" % log)
check(os.readlink(backend) == "/dev/xen/blktap-2/tapdev7"
      and os.readlink(nbdlink) == xen + "/run/blktap-control/nbd4242.7",
      "vdi_activate: backend link to the tapdev, NBD link to the tapdisk's socket")
X.sm(srref, "vdi_deactivate", vdi=vref)
log = open(calls).read().splitlines()
check(log[-1] == "destroy -p 4242 -m 7" and not os.path.lexists(backend)
      and not os.path.lexists(nbdlink), "vdi_deactivate: tap-ctl destroy -p 4242 -m 7, links gone")

check(not x.violations, "no XenAPI protocol violation by the plugin: %s" % x.violations[:2])
done()
