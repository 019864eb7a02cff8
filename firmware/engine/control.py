"""The daemon's control socket: `sluice status|connect|disconnect` and the rpcd plugin talk to it.

One unix stream socket per daemon at $SLUICE_RUNDIR/NAME.sock (default /var/run/sluice); a request is one
JSON object on one line, the reply likewise. Requests are tiny and answered at once from the loop, so a
slow or silent client cannot hold the daemon: each connection gets a short deadline.
"""

import json
import os
import socket

DEFAULT_RUNDIR = "/var/run/sluice"
MAX_REQUEST = 4096


def rundir():
    return os.environ.get("SLUICE_RUNDIR", DEFAULT_RUNDIR)


def socket_path(name, directory=None):
    return os.path.join(directory or rundir(), name + ".sock")


class ControlServer:
    def __init__(self, name, handler, log):
        self.path = socket_path(name)
        self.handler = handler  # handler(request_dict) -> reply dict
        self.log = log
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
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, OSError):
            return
        try:
            conn.settimeout(0.5)
            data = b""
            while b"\n" not in data and len(data) < MAX_REQUEST:
                chunk = conn.recv(MAX_REQUEST)
                if not chunk:
                    break
                data += chunk
            try:
                req = json.loads(data.decode() or "{}")
                if not isinstance(req, dict):
                    raise ValueError("request must be a JSON object")
                reply = self.handler(req)
            except ValueError as e:
                reply = {"ok": False, "error": "bad request: %s" % e}
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
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
        s.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return json.loads(data.decode())


def running_daemons():
    """Names of daemons with a socket in the run directory."""
    try:
        names = sorted(f[:-5] for f in os.listdir(rundir()) if f.endswith(".sock"))
    except OSError:
        return []
    return [n for n in names if _alive(socket_path(n))]
