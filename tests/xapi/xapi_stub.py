# SPDX-License-Identifier: MIT
# xapi_stub.py - a XAPI socket without the simulator: every XenAPI call (HTTP/1.1 POST, kept
# alive, on a Unix socket) is answered at once with Success and a fresh OpaqueRef. For the
# callback relay's tests (who posted, with which session, answers held back) and for bench/sm
# (no parsing and no database in the path, so a table shows the plugin, not Python).
import os
import socket
import struct
import threading
import time
import uuid as uuidlib
import xmlrpc.client

# The canned answer of a stub that records nothing, in XAPI's own dialect (bare strings).
_CANNED = ("<?xml version='1.0'?><methodResponse><params><param><value><struct>"
           "<member><name>Status</name><value>Success</value></member><member>"
           "<name>Value</name><value>OpaqueRef:%s</value></member></struct></value>"
           "</param></params></methodResponse>")


class StubXapi:
    """Listens on @path (an old socket file there is replaced).

    record=True: each call is parsed (xmlrpc.client) and kept in calls as (pid of the client
    by SO_PEERCRED, method, first parameter: the session), got is set, the answer waits
    delays[i] seconds for the i-th call and is written by xmlrpc.client. record=False: nothing
    is parsed or kept but the count n_calls; the answer is a canned document."""

    def __init__(self, path, record=True, backlog=16):
        self.path = path
        self.record = record
        self.calls = []  # record=True: (pid, method, session)
        self.n_calls = 0
        self.delays = []
        self.got = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.sock.bind(path)
        self.sock.listen(backlog)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _answer(self, pid, body):
        if not self.record:
            return (_CANNED % uuidlib.uuid4()).encode()
        params, method = xmlrpc.client.loads(body)
        i = len(self.calls)
        self.calls.append((pid, method, params[0]))
        self.got.set()
        if i < len(self.delays):
            time.sleep(self.delays[i])
        return xmlrpc.client.dumps(({"Status": "Success", "Value": "OpaqueRef:%s"
                                     % uuidlib.uuid4()},), methodresponse=True).encode()

    def _serve(self, c):
        pid = None
        if self.record:
            pid = struct.unpack("3i", c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                   12))[0]
        with c:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":")[1])
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:n], buf[n:]
                self.n_calls += 1
                out = self._answer(pid, body)
                try:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: "
                              b"%d\r\n\r\n" % len(out) + out)
                except OSError:
                    return

    def close(self):
        self.sock.close()
