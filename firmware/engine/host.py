"""Host configuration and hooks as children the event loop watches: nothing here blocks the loop.

Each `Host` action (sluice.endpoint.actions) becomes an `ip` command; commands and hooks run one at a time,
in the order the endpoint asked for them (an address before the routes that use it, the connect hook after
both). A child's output is read as it comes; its exit is noticed through its stdout closing (checked with
`waitpid(WNOHANG)`), and a child still running at its deadline is killed with its process group and said so
in the log. `MemoryHost` is the in-memory twin for tests. Children are started with posix_spawn (`_Child`):
the subprocess module, with the threading and selectors it imports, cost a daemon about 0.8 MB resident for
the few `ip` commands a session needs.
"""

import os

from sluice.hal.platform.signals import signal

IP_TIMEOUT = 10.0
HOOK_TIMEOUT = 15.0
KEEP_OUTPUT = 2048


def ip_argv(op, args):
    """The `ip` argument list for one Host action, or None for an operation that is not an `ip` call."""
    if op == "addr_flush":
        return ["addr", "flush", "dev", args[0]]
    if op == "addr_add":
        ifname, local, peer = args
        if peer:
            return ["addr", "add", local, "peer", peer, "dev", ifname]
        return ["addr", "add", local + "/32", "dev", ifname]
    if op == "link_up":
        return ["link", "set", "dev", args[0], "mtu", str(args[1]), "up"]
    if op == "route_add":
        dst, ifname, src = args
        return ["route", "replace", dst, "dev", ifname] + (["src", src] if src else [])
    if op == "route_del":
        dst, ifname = args
        return ["route", "del", dst] + (["dev", ifname] if ifname else [])
    if op == "addr_add6":
        ifname, cidr = args
        # nodad: the address is ours by construction (our IPv6CP interface id), a PPP link has no one to ask.
        return ["-6", "addr", "replace", cidr, "dev", ifname, "nodad"]
    if op == "addr_del6":
        ifname, cidr = args
        return ["-6", "addr", "del", cidr, "dev", ifname]
    return None


def tc_argvs(op, args):
    """The `tc` argument lists for one Host action, or None when it is not a tc operation.

    rate_limit (ifname, bytes per second): the kernel path's `rate_kbit` on a session's ppp unit, each way:
    a token bucket on what the unit sends to the client (tbf) and a policer on what it receives (ingress, u32
    match-all, police ... drop). The shaper's bucket holds 50 ms of the rate (at least 16 KiB: a router's HZ of
    100 needs rate/100 to pass the rate at all); the policer's 200 ms (at least 32 KiB): a policer drops instead
    of queueing, and TCP through a smaller one reaches only a third of the rate (measured in the peer lab's
    kernel-hal-datapath cell). The qdiscs go with the unit when the session ends."""
    if op != "rate_limit":
        return None
    ifname, rate = args
    bits = "%dbit" % (rate * 8)
    shape = "%db" % max(16384, rate // 20)
    police = "%db" % max(32768, rate // 5)
    return [["qdisc", "replace", "dev", ifname, "root", "tbf", "rate", bits, "burst", shape, "latency", "50ms"],
            ["qdisc", "replace", "dev", ifname, "handle", "ffff:", "ingress"],
            ["filter", "replace", "dev", ifname, "parent", "ffff:", "protocol", "all", "prio", "1", "u32", "match",
             "u32", "0", "0", "police", "rate", bits, "burst", police, "drop", "flowid", ":1"]]


def guard_table(ifname):
    """The nftables table of a kernel-path server's source check (one per server, named after its ifname)."""
    return "sluice_" + "".join(c if c.isalnum() else "_" for c in ifname)


def nft_argvs(op, args):
    """The `nft` argument lists for one Host action, or None when it is not an nft operation.

    source_guard (table, unit pattern): the kernel path's source check, what the user-space plane does per
    packet: a packet from a session's ppp unit must come from an address routed back to that unit (the
    session's /32, its /64, link-local), else it is dropped (strict reverse-path lookup, `fib saddr . iif oif
    missing`, IPv4 and IPv6 in one inet table). The table is replaced whole (a crashed run's is gone with it).
    source_guard_off (table,): the table removed at stop."""
    if op == "source_guard":
        table, pattern = args
        return [["delete", "table", "inet", table],
                ["add", "table", "inet", table],
                ["add", "chain", "inet", table, "pre", "{", "type", "filter", "hook", "prerouting", "priority",
                 "-150", ";", "}"],
                ["add", "rule", "inet", table, "pre", "iifname", '"%s"' % pattern, "fib", "saddr", ".", "iif",
                 "oif", "missing", "counter", "drop"]]
    if op == "source_guard_off":
        return [["delete", "table", "inet", args[0]]]
    return None


class ChildTimeout(Exception):
    """A child did not finish within the time it was given."""


class _Child:
    """One child with stdin from /dev/null and stdout+stderr on a pipe, in its own session (a process group the
    timeout can kill whole): the part of Popen the runner used."""

    __slots__ = ("pid", "stdout", "returncode")

    def __init__(self, argv, env=None):
        r, w = os.pipe()
        try:
            self.pid = os.posix_spawnp(argv[0], argv, os.environ if env is None else env, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)], setsid=True)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.stdout = open(r, "rb", buffering=0)
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 255 << 8  # reaped elsewhere: nothing more to learn
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout):
        """The exit code, waiting at most `timeout` seconds (ChildTimeout after that)."""
        import time

        end = time.monotonic() + timeout
        for _ in range(int(timeout / 0.01) + 2):
            if self.poll() is not None:
                return self.returncode
            if time.monotonic() >= end:
                break
            time.sleep(0.01)
        raise ChildTimeout()

    def communicate(self, timeout):
        """(output, None) once the child closed its output and exited, within `timeout` seconds."""
        import select
        import time

        end = time.monotonic() + timeout
        out = bytearray()
        fd = self.stdout.fileno()
        while True:  # bounded by the deadline: every pass reads, meets EOF or waits out the time left
            left = end - time.monotonic()
            if left <= 0:
                raise ChildTimeout()
            if not select.select([fd], [], [], left)[0]:
                continue
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not data:
                break
            if len(out) < KEEP_OUTPUT:
                out += data[:KEEP_OUTPUT - len(out)]
        self.wait(max(0.0, end - time.monotonic()))
        return bytes(out), None


class _Job:
    __slots__ = ("what", "argv", "env", "quiet", "then", "proc", "out", "deadline", "timeout")

    def __init__(self, what, argv, env=None, quiet=False, then=None, timeout=IP_TIMEOUT):
        self.what = what      # for the log: "ip addr add ..." or "hook connect"
        self.argv = argv
        self.env = env
        self.quiet = quiet    # a failure is expected sometimes (flush, delete): do not warn
        self.then = then      # then(output_text) after a successful exit
        self.proc = None
        self.out = bytearray()
        self.deadline = None
        self.timeout = timeout


class HostRunner:
    def __init__(self, loop, log, configure=True, hook=None):
        self.loop = loop
        self.log = log
        self.configure = configure  # False under netifd: it applies what the hook reports
        self.hook = hook
        self.queue = []
        self.job = None
        self.counters = {"commands": 0, "failures": 0, "timeouts": 0}

    # -- what the runner calls -----------------------------------------------------------------------------

    def host(self, op, args):
        if not self.configure:
            return
        if op == "forwarding":
            if _enable_forwarding():
                self.log.info("enabled IPv4 forwarding (net.ipv4.ip_forward=1)")
            return
        if op == "forwarding6":
            if _enable_forwarding("/proc/sys/net/ipv6/conf/all/forwarding"):
                self.log.info("enabled IPv6 forwarding (net.ipv6.conf.all.forwarding=1)")
                slaac = [n for n in _accept_ra_1() if n not in args]  # not our own TUN
                if slaac:
                    # A forwarding interface ignores RAs unless accept_ra is 2: its own SLAAC address would lapse.
                    self.log.warning("IPv6 forwarding is on: %s take%s Router Advertisements only with accept_ra 2 "
                                     "(sysctl net.ipv6.conf.IF.accept_ra=2)", ", ".join(slaac),
                                     "s" if len(slaac) == 1 else "")
            return
        if op == "pin_route":
            dst, server = args
            self._add(_Job("ip route get " + server, ["ip", "-o", "route", "get", server], quiet=True,
                           then=lambda out, d=dst: self._pin(d, out)))
            return
        nfts = nft_argvs(op, args)
        if nfts is not None:
            for i, argv in enumerate(nfts):
                # deleting a table that is not there is the normal case at start
                self._add(_Job("nft " + " ".join(argv), ["nft"] + argv, quiet=argv[0] == "delete"))
            return
        tcs = tc_argvs(op, args)
        if tcs is not None:
            for argv in tcs:
                self._add(_Job("tc " + " ".join(argv), ["tc"] + argv))
            return
        argv = ip_argv(op, args)
        if argv is None:
            self.log.error("unknown host operation %r", op)
            return
        self._add(_Job("ip " + " ".join(argv), ["ip"] + argv, quiet=op in ("addr_flush", "route_del")))

    def run_hook(self, env):
        if not self.hook:
            return
        full = dict(os.environ)
        full.update(env)
        self._add(_Job("hook %s %s" % (self.hook, env.get("reason", "")), [self.hook], env=full,
                       timeout=HOOK_TIMEOUT))

    def idle(self):
        return self.job is None and not self.queue

    def run_now(self, deadline):
        """At exit: run what is queued without the loop, each child bounded by its timeout and `deadline`."""
        import time

        while (self.job is not None or self.queue) and time.monotonic() < deadline:
            if self.job is None:
                self._next()
                continue
            job = self.job
            try:
                out, _ = job.proc.communicate(timeout=max(0.1, min(job.timeout, deadline - time.monotonic())))
                job.out += out or b""
            except ChildTimeout:
                self._kill(job)
            self._finish(job)

    # -- children ------------------------------------------------------------------------------------------

    def _add(self, job):
        self.queue.append(job)
        if self.job is None:
            self._next()

    def _next(self):
        while self.queue and self.job is None:
            job = self.queue.pop(0)
            try:
                job.proc = _Child(job.argv, job.env)
            except OSError as e:
                self.counters["failures"] += 1
                self.log.warning("%s failed: %s", job.what, e.strerror or e)
                continue
            self.counters["commands"] += 1
            self.job = job
            os.set_blocking(job.proc.stdout.fileno(), False)
            self.loop.add_reader(job.proc.stdout, self._readable)
            job.deadline = _now() + job.timeout
            self.loop.call_at(job.deadline, lambda now, j=job: self._timeout(j))

    def _readable(self, now):
        job = self.job
        if job is None:
            return
        try:
            data = os.read(job.proc.stdout.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if len(job.out) < KEEP_OUTPUT:
                job.out += data[:KEEP_OUTPUT - len(job.out)]
            return
        # EOF: the child closed its output (it exited, almost always). Reap it without blocking.
        self.loop.remove_reader(job.proc.stdout)
        self._reap(job)

    def _reap(self, job):
        if job is not self.job:
            return
        if job.proc.poll() is None:
            self.loop.call_at(_now() + 0.02, lambda now, j=job: self._reap(j))
            return
        self._finish(job)

    def _timeout(self, job):
        if job is not self.job or job.proc.poll() is not None:
            return
        self.counters["timeouts"] += 1
        self._kill(job)
        self.log.warning("%s did not finish within %d s: killed", job.what, int(job.timeout))
        try:
            self.loop.remove_reader(job.proc.stdout)
        except (ValueError, OSError):
            pass
        self._finish(job, killed=True)

    def _kill(self, job):
        try:
            os.killpg(job.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            job.proc.wait(timeout=1)
        except ChildTimeout:  # pragma: no cover - SIGKILL is not refused
            pass

    def _finish(self, job, killed=False):
        self.job = None
        try:
            job.proc.stdout.close()
        except OSError:
            pass
        rc = job.proc.returncode
        text = job.out.decode("utf-8", "replace").strip()
        if not killed:
            if rc == 0:
                if job.then is not None:
                    job.then(text)
            elif not job.quiet:
                self.counters["failures"] += 1
                self.log.warning("%s exited %s: %s", job.what, rc, text[-200:].replace("\n", " | "))
        self._next()

    def _pin(self, dst, out):
        words = out.split()
        if "via" not in words:
            return
        i = words.index("via")
        argv = ["route", "replace", dst, "via", words[i + 1]]
        if "dev" in words:
            j = words.index("dev")
            argv += ["dev", words[j + 1]]
        self.queue.insert(0, _Job("ip " + " ".join(argv), ["ip"] + argv))


def _now():
    from sluice.engine.loop import monotonic

    return monotonic()


def _accept_ra_1(base="/proc/sys/net/ipv6/conf"):
    """Interfaces (not all/default/lo) that take RAs only while not forwarding (accept_ra 1) and do autoconf."""
    out = []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return out
    for name in names:
        if name in ("all", "default", "lo"):
            continue
        try:
            with open(os.path.join(base, name, "accept_ra")) as f:
                ra = f.read().strip()
            with open(os.path.join(base, name, "autoconf")) as f:
                auto = f.read().strip()
        except OSError:
            continue
        if ra == "1" and auto == "1":
            out.append(name)
    return out


def _enable_forwarding(path="/proc/sys/net/ipv4/ip_forward"):
    try:
        with open(path) as f:
            if f.read().strip() == "1":
                return False
        with open(path, "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


class MemoryHost:
    """HostRunner's twin: records what would have run (`ops`, `hooks`), runs nothing."""

    def __init__(self, configure=True, hook=None):
        self.configure = configure
        self.hook = hook
        self.ops = []
        self.hooks = []

    def host(self, op, args):
        if self.configure:
            self.ops.append((op,) + tuple(args))

    def run_hook(self, env):
        if self.hook:
            self.hooks.append(dict(env))

    def idle(self):
        return True

    def run_now(self, deadline):
        pass
