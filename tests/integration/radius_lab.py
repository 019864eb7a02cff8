"""A FreeRADIUS in its own network namespace, and UDP sockets inside a namespace for the sans-IO machines.

The configuration directory is generated per test from nothing but Debian's dictionary: one site listening
only on the namespace's address, the pap/chap/mschap/files/detail modules, a users file and clients.conf
given by the test. FreeRADIUS runs in the foreground (`-X`), logs to a file in the lab directory and is
killed by the lab's close(). Start-up is bounded (it answers Status-Server within `timeout` seconds or the
test fails with its log).
"""

import ctypes
import os
import select
import shutil
import socket
import subprocess
import time

CLONE_NEWNET = 0x40000000


def freeradius_binary():
    for name in ("freeradius", "radiusd"):
        path = shutil.which(name) or (("/usr/sbin/" + name) if os.path.exists("/usr/sbin/" + name) else None)
        if path:
            return path
    return None


def in_netns(ns, fn):
    """fn() run with this thread inside network namespace `ns` (sockets it makes stay there).

    setns(2) moves only the calling thread, which goes back to its own namespace before this returns."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/%s" % ns, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into %s failed" % ns)
        try:
            return fn()
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back failed")
    finally:
        os.close(own)
        os.close(target)


def udp_socket_in(ns, address, port=0):
    """A non-blocking UDP socket bound to (address, port) inside network namespace `ns`."""
    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((address, port))
        s.setblocking(False)
        return s
    return in_netns(ns, make)


def pump(machines, until, now_fn=time.monotonic, stop=None):
    """Drive sans-IO machines over real sockets until `stop()` is true or `until` (monotonic) passes.

    machines: list of (machine, sock); each machine has datagrams_to_send() -> [(addr, bytes)],
    datagram_received(data, addr, now), get_timer(), handle_timer(now). Returns the stop() value."""
    for _ in range(100000):
        now = now_fn()
        for m, s in machines:
            for addr, data in m.datagrams_to_send():
                s.sendto(data, addr)
        if stop is not None:
            r = stop()
            if r:
                return r
        if now >= until:
            return None
        timers = [t for t in (m.get_timer() for m, _ in machines) if t is not None]
        wait = min([until] + timers) - now
        ready, _, _ = select.select([s for _, s in machines], [], [], max(0.0, min(wait, 0.2)))
        now = now_fn()
        for m, s in machines:
            if s in ready:
                for _ in range(64):
                    try:
                        data, addr = s.recvfrom(4096)
                    except BlockingIOError:
                        break
                    m.datagram_received(data, addr, now)
            t = m.get_timer()
            if t is not None and t <= now:
                m.handle_timer(now)
    raise AssertionError("pump never ended")


RADIUSD_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {tmp}/log
raddbdir = {tmp}/raddb
radacctdir = {tmp}/acct
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
certdir = ${{confdir}}/certs
cadir = ${{confdir}}/certs
run_dir = {tmp}/run
db_dir = ${{raddbdir}}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/${{name}}.pid
max_request_time = 10
cleanup_delay = 2
max_requests = 1024
hostname_lookups = no
log {{
    destination = files
    file = ${{logdir}}/radius.log
    auth = yes
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}
thread pool {{
    start_servers = 1
    max_servers = 2
    min_spare_servers = 1
    max_spare_servers = 2
}}
modules {{
    pap {{
        normalise = yes
    }}
    chap {{
    }}
    mschap {{
    }}
    files {{
        filename = ${{raddbdir}}/users
        acctusersfile = ${{raddbdir}}/acct_users
    }}
    detail {{
        filename = ${{radacctdir}}/detail
        escape_filenames = no
        permissions = 0600
        header = "%t"
    }}
}}
instantiate {{
}}
$INCLUDE clients.conf
server default {{
    listen {{
        type = auth
        ipaddr = {address}
        port = 1812
    }}
    listen {{
        type = acct
        ipaddr = {address}
        port = 1813
    }}
    authorize {{
        chap
        mschap
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
        Auth-Type CHAP {{
            chap
        }}
        Auth-Type MS-CHAP {{
            mschap
        }}
    }}
    preacct {{
    }}
    accounting {{
        detail
    }}
    post-auth {{
{post_auth}
    }}
}}
"""


class FreeRadius:
    """FreeRADIUS started in namespace `ns` (of `lab`, a tests.integration.netns.Lab) on `address`."""

    def __init__(self, lab, ns, address, clients, users, post_auth=""):
        self.lab = lab
        self.ns = ns
        self.address = address
        self.dir = os.path.join(lab.tmp, "freeradius")
        raddb = os.path.join(self.dir, "raddb")
        for d in ("raddb", "log", "acct", "run"):
            os.makedirs(os.path.join(self.dir, d))
        shutil.copy("/etc/freeradius/3.0/dictionary", os.path.join(raddb, "dictionary"))
        with open(os.path.join(raddb, "radiusd.conf"), "w") as f:
            f.write(RADIUSD_CONF.format(tmp=self.dir, address=address, post_auth=post_auth))
        with open(os.path.join(raddb, "clients.conf"), "w") as f:
            for name, (ip, secret) in sorted(clients.items()):
                f.write("client %s {\n    ipaddr = %s\n    secret = %s\n    require_message_authenticator = yes\n"
                        "}\n" % (name, ip, secret))
        with open(os.path.join(raddb, "users"), "w") as f:
            f.write(users)
        open(os.path.join(raddb, "acct_users"), "w").close()
        self.detail = os.path.join(self.dir, "acct", "detail")
        self.log_path = os.path.join(self.dir, "log", "stdout.log")
        self.proc = None

    def start(self, timeout=15.0):
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, freeradius_binary(), "-X", "-d",
                                      os.path.join(self.dir, "raddb")], stdout=log, stderr=subprocess.STDOUT)
        self.lab.procs.append(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("freeradius exited (%d):\n%s" % (self.proc.returncode, self.log()[-3000:]))
            if "Ready to process requests" in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError("freeradius not ready in %.0f s:\n%s" % (timeout, self.log()[-3000:]))

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def detail_records(self):
        """The accounting detail file as a list of {attribute: value} (values unquoted)."""
        try:
            with open(self.detail) as f:
                text = f.read()
        except OSError:
            return []
        out = []
        for block in text.split("\n\n"):
            rec = {}
            for line in block.splitlines():
                if line.startswith("\t") and " = " in line:
                    k, _, v = line.strip().partition(" = ")
                    rec[k] = v.strip('"')
            if rec:
                out.append(rec)
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(2)
