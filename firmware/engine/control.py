"""The daemon's control socket: `sluice status|connect|disconnect` and the rpcd plugin talk to it.

One unix stream socket per daemon at $SLUICE_RUNDIR/NAME.sock (default /var/run/sluice); a request is one
JSON object on one line, the reply likewise.

The loop is never blocked by a client. Connections are non-blocking and served from the event loop: bytes are
read as they arrive, the request is answered once its line is complete, and the reply is written as the
socket takes it. Each connection has one deadline for the whole request and reply (`deadline`, 2 s from
accept): a client that trickles one byte at a time, or never reads its reply, is cut off then, however
often it sends. At most `max_clients` connections are open at once; a new one beyond that closes the
oldest. Without a loop (tests, tools) a connection is served at once with the same whole-request deadline.
"""

import os
import select
import time

from sluice.engine.log import ERROR
from sluice.hal.net.sockets import accept, socket

DEFAULT_RUNDIR = "/var/run/sluice"
MAX_REQUEST = 4096
REQUEST_DEADLINE = 2.0  # seconds for a whole request and its reply
MAX_CLIENTS = 8


def _json():
    """JSON on the first request, not at start: a daemon nobody asks carries none of it."""
    from sluice.engine import jsonc

    return jsonc


def rundir():
    return os.environ.get("SLUICE_RUNDIR", DEFAULT_RUNDIR)


def socket_path(name, directory=None):
    return os.path.join(directory or rundir(), name + ".sock")


class _Conn:
    __slots__ = ("sock", "fd", "buf", "out", "deadline", "open")

    def __init__(self, sock, deadline):
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = b""
        self.out = None  # the reply still to write
        self.deadline = deadline
        self.open = True


class ControlServer:
    def __init__(self, name, handler, log, loop=None, deadline=REQUEST_DEADLINE, max_clients=MAX_CLIENTS,
                 path=None):
        self.path = path or socket_path(name)
        self.handler = handler  # handler(request_dict) -> reply dict
        self.log = log
        self.loop = loop
        self.deadline = deadline
        self.max_clients = max_clients
        self.conns = {}  # fd -> _Conn
        self.stats = {"requests": 0, "timeouts": 0, "evicted": 0, "too_long": 0}
        d = os.path.dirname(self.path)
        os.makedirs(d, mode=0o755, exist_ok=True)
        if os.path.exists(self.path):
            if _alive(self.path):
                raise RuntimeError("another sluice daemon named %r is running (%s)" % (name, self.path))
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # status can name users and addresses: root only
        try:
            self.sock.bind(self.path)
        finally:
            os.umask(old)
        self.sock.listen(4)
        self.sock.setblocking(False)

    def fileno(self):
        return self.sock.fileno()

    def on_readable(self, now):
        for _ in range(self.max_clients):
            try:
                sock, _ = accept(self.sock)
            except OSError:  # BlockingIOError included: nothing (more) to accept
                return
            sock.setblocking(False)
            c = _Conn(sock, now + self.deadline)
            if self.loop is None:
                self._serve_now(c)
                continue
            if len(self.conns) >= self.max_clients:
                oldest = min(self.conns.values(), key=lambda x: x.deadline)
                self.stats["evicted"] += 1
                self._close(oldest)
            self.conns[c.fd] = c
            self.loop.add_reader(c.fd, lambda t, c=c: self._read(c, t))
            self.loop.call_at(c.deadline, lambda t, c=c: self._expire(c, t))

    # -- served from the loop ---------------------------------------------------------------------------

    def _read(self, c, now):
        if not c.open:
            return
        if now >= c.deadline:
            return self._expire(c, now)
        try:
            chunk = c.sock.recv(MAX_REQUEST)
        except BlockingIOError:
            return
        except OSError:
            return self._close(c)
        c.buf += chunk
        if not chunk or b"\n" in c.buf or len(c.buf) >= MAX_REQUEST:
            self.loop.remove_reader(c.fd)
            c.out = self._reply(c.buf)
            self._write(c, now)

    def _write(self, c, now):
        if not c.open:
            return
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            n = 0
        except OSError:
            return self._close(c)
        c.out = c.out[n:]
        if not c.out:
            return self._close(c)
        self.loop.add_writer(c.fd, lambda t, c=c: self._write(c, t))

    def _expire(self, c, now):
        if c.open:
            self.stats["timeouts"] += 1
            self._close(c)

    def _close(self, c):
        if not c.open:
            return
        c.open = False
        self.conns.pop(c.fd, None)
        if self.loop is not None:
            self.loop.remove_reader(c.fd)
            self.loop.remove_writer(c.fd)
        try:
            c.sock.close()
        except OSError:
            pass

    # -- without a loop: served at once, within the same whole-request deadline ------------------------------

    def _serve_now(self, c):
        end = time.monotonic() + self.deadline
        try:
            while b"\n" not in c.buf and len(c.buf) < MAX_REQUEST:
                left = end - time.monotonic()
                if left <= 0 or not select.select([c.sock], [], [], left)[0]:
                    self.stats["timeouts"] += 1
                    return
                chunk = c.sock.recv(MAX_REQUEST)
                if not chunk:
                    break
                c.buf += chunk
            out = self._reply(c.buf)
            while out:
                left = end - time.monotonic()
                if left <= 0 or not select.select([], [c.sock], [], left)[1]:
                    self.stats["timeouts"] += 1
                    return
                out = out[c.sock.send(out):]
        except OSError:
            pass
        finally:
            c.open = False
            c.sock.close()

    def _reply(self, data):
        self.stats["requests"] += 1
        if len(data) >= MAX_REQUEST and b"\n" not in data:
            self.stats["too_long"] += 1
            reply = {"ok": False, "error": "bad request: longer than %d bytes" % MAX_REQUEST}
            return _json().dumps(reply).encode() + b"\n"
        try:
            req = _json().loads(data.split(b"\n", 1)[0].decode() or "{}")
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
            reply = self.handler(req)
        except ValueError as e:  # UnicodeDecodeError and JSONDecodeError included
            reply = {"ok": False, "error": "bad request: %s" % e}
        except Exception as e:  # a bug behind one command: answer, and say so in the log
            self.log.limited("control error", ERROR, "internal error answering %s: %s: %s", data[:64],
                             type(e).__name__, e)
            reply = {"ok": False, "error": "internal error: %s" % type(e).__name__}
        return _json().dumps(reply).encode() + b"\n"

    def close(self):
        for c in list(self.conns.values()):
            self._close(c)
        try:
            self.sock.close()
            os.unlink(self.path)
        except OSError:
            pass


def _alive(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def request(name, req, timeout=3.0, directory=None):
    """Send one request to the daemon NAME and return its reply dict (raises OSError if it is not running,
    ValueError if it answered nothing sensible). `directory` overrides the run directory (tests, labs)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(socket_path(name, directory))
        s.sendall(_json().dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return _json().loads(data.decode())


def running_daemons():
    """Names of daemons with a socket in the run directory."""
    try:
        names = sorted(f[:-5] for f in os.listdir(rundir()) if f.endswith(".sock"))
    except OSError:
        return []
    return [n for n in names if _alive(socket_path(n))]
