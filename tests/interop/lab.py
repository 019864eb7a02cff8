"""The peer-lab harness: QEMU guests on a bridge inside a network namespace the lab owns.

Topology (RFC 5737 documentation addresses only, nothing leaves the namespace):

    namespace slabNNNN-K
      br0 192.0.2.1/24  (the host side: Sluice, iperf3, ssh to the guests run here)
        tap1 -- guest g1 192.0.2.2 (eth0)
        tap2 -- guest g2 192.0.2.3
        tapN -- guest gN 192.0.2.(N+1)

Guests boot the cached image (image.py) directly (-kernel/-initrd) under TCG with `snapshot=on`, so each
boot starts pristine and several guests share one image file. The address, default route and host name
travel on the kernel command line (sluice.ip=, sluice.gw=, sluice.host=) to the sluice-lab unit baked into
the image. tests/interop/guest/share/ is shared read-only over 9p at /lab (helper scripts the cells run in
the guest, never baked in, so editing them needs no rebuild); the repository itself is shared read-only as
9p tag `src` for cells that run Sluice inside a guest. Commands run over ssh with the key from the
cache, multiplexed over one master connection per guest that the lab starts and owns.

Every wait has a deadline. `Lab.close()` (also on exceptions, through the context manager) kills every
QEMU, ssh master and host process the lab started, by pid, then deletes the namespace, which takes the
bridge and the TAPs with it. Logs (serial consoles, daemon logs, configs) stay in the lab's log directory
($SLUICE_LAB_LOGS, default /tmp/sluice-interop-logs/<lab name>) for post-mortems.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from . import image as image_mod

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GUEST_SHARE = os.path.join(HERE, "guest", "share")
SUBNET = "192.0.2"
HOST_IP = SUBNET + ".1"
MAX_GUESTS = 2  # 2 host cores: more TCG guests at once only makes every one of them slower
BOOT_TIMEOUT = float(os.environ.get("SLUICE_LAB_BOOT_TIMEOUT", "150"))
READY_MARK = b"SLUICE-LAB-READY"


class LabError(RuntimeError):
    """The lab itself failed (namespace, QEMU, ssh): not a verdict on the peers under test."""


def can_run_lab():
    """(ok, reason): what the lab needs from the host, with the packages to install when something is missing."""
    if os.geteuid() != 0:
        return False, "the peer lab needs root (network namespaces, TAP devices, mmdebstrap --mode=root)"
    missing = image_mod.missing_host_tools()
    if missing:
        return False, "the peer lab needs host packages: apt-get install %s" % " ".join(missing)
    if not os.path.exists("/dev/net/tun"):
        return False, "the peer lab needs /dev/net/tun"
    return True, ""


def _run(args, timeout, check=True, input=None, env=None):
    try:
        p = subprocess.run(args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise LabError("%s: timed out after %.0f s" % (" ".join(args[:8]), timeout)) from e
    if check and p.returncode != 0:
        raise LabError("%s failed (%d): %s" % (" ".join(args[:8]), p.returncode, (p.stderr or p.stdout).strip()[-2000:]))
    return p


def _stop_pid(p, grace=5.0):
    """Terminate one process we started (SIGTERM, then SIGKILL after `grace` seconds)."""
    if p is None or p.poll() is not None:
        return
    try:
        p.terminate()
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass


def wait_until(what, predicate, timeout, interval=0.1):
    """Poll predicate() until it returns something true; LabError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


class Guest:
    """One QEMU guest on the lab bridge. Created by `Lab.add_guest`; the lab closes it."""

    def __init__(self, lab, image, index):
        self.lab = lab
        self.image = image
        self.index = index
        self.name = "g%d" % index
        self.ip = "%s.%d" % (SUBNET, index + 1)
        self.tap = "tap%d" % index
        self.mac = "52:54:00:12:34:%02x" % (0x10 + index)
        self.serial_path = os.path.join(lab.logdir, "%s-serial.log" % self.name)
        self.ctl_path = os.path.join(lab.rundir, "%s.ssh" % self.name)
        self.qemu = None
        self.master = None
        self.started = None
        self.boot_s = None

    def __repr__(self):
        return "Guest(%s, %s, %s)" % (self.name, self.image.flavour, self.ip)

    def start(self):
        lab = self.lab
        lab.ns_run("ip", "tuntap", "add", self.tap, "mode", "tap")
        lab.ns_run("ip", "link", "set", self.tap, "master", "br0")
        lab.ns_run("ip", "link", "set", self.tap, "up")
        append = ("root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 quiet loglevel=4 "
                  "systemd.show_status=0 sluice.ip=%s/24 sluice.gw=%s sluice.host=%s sluice.share=1"
                  % (self.ip, HOST_IP, self.name))
        args = ["ip", "netns", "exec", lab.ns, "qemu-system-x86_64",
                "-name", "sluice-lab-%s" % self.name, "-nodefaults", "-no-reboot",
                "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "1", "-m", "512",
                "-display", "none", "-monitor", "none", "-serial", "file:" + self.serial_path,
                "-kernel", self.image.kernel, "-initrd", self.image.initrd, "-append", append,
                "-drive", "file=%s,if=virtio,format=raw,snapshot=on" % self.image.rootfs,
                "-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % self.tap,
                "-device", "virtio-net-pci,netdev=n0,mac=%s" % self.mac,
                "-device", "virtio-rng-pci",
                "-virtfs", "local,path=%s,mount_tag=lab,security_model=none,readonly=on" % GUEST_SHARE,
                # The repository, read-only, for cells that run Sluice inside the guest (mounted on demand).
                "-virtfs", "local,path=%s,mount_tag=src,security_model=none,readonly=on" % ROOT]
        with open(os.path.join(lab.logdir, "%s-qemu.log" % self.name), "w") as qlog:
            qlog.write(" ".join(shlex.quote(a) for a in args) + "\n")
            qlog.flush()
            self.started = time.monotonic()
            # `ip netns exec` execs QEMU itself: this pid is QEMU's.
            self.qemu = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=qlog, stderr=subprocess.STDOUT)

    def serial(self):
        try:
            with open(self.serial_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def serial_tail(self, n=40):
        return "\n".join(self.serial().splitlines()[-n:])

    def _ssh_base(self):
        return ["ip", "netns", "exec", self.lab.ns, "ssh", "-i", image_mod.ssh_key(),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
                "-S", self.ctl_path]

    def _ensure_share(self, tries=5):
        """/lab mounted: the init unit mounts it once at boot, and under TCG virtio-9p was once not ready then
        ("9pnet_virtio: no channels available for device lab"), which failed every cell of the testbed."""
        for _ in range(tries):
            p = self.ssh("mountpoint -q /lab || mount -t 9p -o trans=virtio,version=9p2000.L,ro lab /lab",
                         check=False)
            if p.returncode == 0:
                return
            time.sleep(1.0)
        raise LabError("%s: /lab (9p share) would not mount: %s\n--- serial console\n%s" % (
            self.name, (p.stderr or "").strip(), self.serial_tail()))

    def wait_ready(self, timeout=BOOT_TIMEOUT):
        """Wait for the guest's ready mark on the serial console, then open the ssh master connection."""
        deadline = self.started + timeout

        def marked():
            if self.qemu.poll() is not None:
                raise LabError("%s: QEMU exited with status %s during boot\n%s" % (
                    self.name, self.qemu.returncode, self.serial_tail()))
            try:
                with open(self.serial_path, "rb") as f:
                    return READY_MARK in f.read()
            except OSError:
                return False

        try:
            wait_until("%s boot mark" % self.name, marked, max(1.0, deadline - time.monotonic()), 0.25)
        except TimeoutError as e:
            raise LabError("%s: %s\n--- serial console\n%s" % (self.name, e, self.serial_tail())) from None
        # sshd may start a moment after the mark: retry the master until it answers or the deadline passes.
        last = ""
        while time.monotonic() < deadline:
            if self.master is None or self.master.poll() is not None:
                if self.master is not None:
                    last = self.master.stderr.read() if self.master.stderr else ""
                if os.path.exists(self.ctl_path):
                    os.unlink(self.ctl_path)
                self.master = subprocess.Popen(
                    self._ssh_base() + ["-M", "-N", "-o", "ControlPersist=no", "root@" + self.ip],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            p = subprocess.run(self._ssh_base() + ["-O", "check", "root@" + self.ip], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=10)
            if p.returncode == 0:
                self.boot_s = time.monotonic() - self.started
                self._ensure_share()
                return self.boot_s
            time.sleep(0.5)
        raise LabError("%s: ssh did not answer within %.0f s of boot (%s)\n--- serial console\n%s" % (
            self.name, timeout, last.strip(), self.serial_tail()))

    def ssh(self, command, timeout=60, check=True, input=None):
        """Run a shell command in the guest; returns CompletedProcess (text). LabError when check and it fails."""
        if self.master is None or self.master.poll() is not None:
            raise LabError("%s: no ssh connection (guest not ready or gone)" % self.name)
        args = self._ssh_base() + ["-o", "ControlMaster=no", "root@" + self.ip, command]
        try:
            p = subprocess.run(args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabError("%s: `%s` timed out after %.0f s" % (self.name, command[:200], timeout)) from None
        if check and p.returncode != 0:
            raise LabError("%s: `%s` failed (%d):\n%s%s" % (self.name, command[:200], p.returncode,
                                                          p.stdout[-2000:], p.stderr[-2000:]))
        return p

    def sh(self, command, timeout=60):
        """Run a command that must succeed; returns its stdout."""
        return self.ssh(command, timeout=timeout).stdout

    def write(self, path, text, mode=0o644):
        self.ssh("mkdir -p %s && cat > %s && chmod %o %s" % (
            shlex.quote(os.path.dirname(path)), shlex.quote(path), mode, shlex.quote(path)), input=text)

    def read(self, path):
        """A guest file's text, or '' when it is missing (for logs)."""
        return self.ssh("cat %s 2>/dev/null" % shlex.quote(path), check=False).stdout

    def spawn(self, command, log):
        """Start a long-running command in the guest, detached from ssh, output to `log` in the guest."""
        self.ssh("setsid sh -c %s > %s 2>&1 < /dev/null &" % (shlex.quote(command), shlex.quote(log)))

    def labctl(self, *args, timeout=60):
        """Run the guest helper /lab/labctl.py (9p share) and return its JSON answer."""
        p = self.ssh("python3 /lab/labctl.py " + " ".join(shlex.quote(str(a)) for a in args),
                     timeout=timeout, check=False)
        try:
            return json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise LabError("%s: labctl %s gave no answer (%d): %s %s" % (
                self.name, " ".join(map(str, args)), p.returncode, p.stdout[-1000:], p.stderr[-1000:])) from None

    def close(self):
        if self.master is not None:
            _stop_pid(self.master, 2)
            if self.master.stderr:
                self.master.stderr.close()
        # snapshot=on: nothing to save, so no clean shutdown; the disk overlay goes away with QEMU.
        _stop_pid(self.qemu, 5)


class Lab:
    """A network namespace with a bridge, up to MAX_GUESTS guests, and host processes; use as a context manager."""

    def __init__(self, name=None, logdir=None):
        # The process id keeps two runs at once (two checkouts, two developers) out of each other's namespace and
        # logs; the count, two labs of one run.
        tag = "%s-%d" % (name, os.getpid() % 100000) if name else "slab%d" % (os.getpid() % 100000)
        Lab._count = getattr(Lab, "_count", 0) + 1
        self.ns = "%s-%d" % (tag, Lab._count)
        base = os.environ.get("SLUICE_LAB_LOGS", "/tmp/sluice-interop-logs")
        self.logdir = logdir or os.path.join(base, self.ns)
        shutil.rmtree(self.logdir, ignore_errors=True)
        os.makedirs(self.logdir)
        self.rundir = os.path.join(self.logdir, "run")
        os.makedirs(self.rundir, mode=0o700)
        self.guests = []
        self.procs = []
        self.created = False

    def __enter__(self):
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def create(self):
        _run(["ip", "netns", "add", self.ns], 10)
        self.created = True
        self.ns_run("ip", "link", "set", "lo", "up")
        self.ns_run("ip", "link", "add", "br0", "type", "bridge")
        self.ns_run("ip", "addr", "add", HOST_IP + "/24", "dev", "br0")
        self.ns_run("ip", "link", "set", "br0", "up")

    def ns_run(self, *args, timeout=30, check=True, input=None):
        """Run a command in the lab namespace; returns CompletedProcess (text)."""
        return _run(["ip", "netns", "exec", self.ns] + list(args), timeout, check=check, input=input)

    def add_guest(self, flavour):
        """Build (or take from the cache) the image and start a guest; call wait_ready() (or boot()) next."""
        if len(self.guests) >= MAX_GUESTS:
            raise LabError("at most %d guests at once (2 host cores)" % MAX_GUESTS)
        img = image_mod.build(flavour)
        g = Guest(self, img, len(self.guests) + 1)
        self.guests.append(g)
        g.start()
        return g

    def boot(self, *flavours, timeout=BOOT_TIMEOUT):
        """Start one guest per flavour at once and wait until all answer ssh; returns the guests."""
        guests = [self.add_guest(f) for f in flavours]
        for g in guests:
            g.wait_ready(timeout)
        return guests

    def env(self):
        env = dict(os.environ)
        env["SLUICE_RUNDIR"] = self.rundir
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.logdir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def popen(self, args, log_name):
        """Start a host process in the namespace, output to a log file; tracked and killed by close()."""
        log = open(os.path.join(self.logdir, log_name), "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns] + list(args), stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=ROOT)
        log.close()
        p.log_path = os.path.join(self.logdir, log_name)
        self.procs.append(p)
        return p

    def sluice(self, role, config_text, name):
        """Start `python -m sluice ROLE --config FILE --name NAME -v` in the namespace."""
        conf = self.write("%s.conf" % name, config_text)
        return self.popen([sys.executable, "-m", "sluice", role, "--config", conf, "--name", name, "-v"],
                          "%s.log" % name)

    def sluice_status(self, name, timeout=2.0):
        """The daemon's status over its control socket (docs/design.md), or {'error': ...}."""
        from sluice.engine.control import request

        try:
            reply = request(name, {"cmd": "status"}, timeout, directory=self.rundir)
            return reply.get("status", reply) if isinstance(reply, dict) else {"error": repr(reply)}
        except (OSError, ValueError) as e:
            return {"error": str(e)}

    @staticmethod
    def log_of(p, tail=60):
        try:
            with open(p.log_path) as f:
                return "\n".join(f.read().splitlines()[-tail:])
        except OSError:
            return ""

    def stop(self, p, grace=5.0):
        """Stop one host process the lab started (SIGTERM first: Sluice sends StopCCN on the way out)."""
        _stop_pid(p, grace)
        return p.returncode

    def close(self):
        for p in self.procs:
            _stop_pid(p, 3)
        self.procs = []
        for g in self.guests:
            g.close()
        self.guests = []
        if self.created:
            _run(["ip", "netns", "del", self.ns], 10, check=False)
            self.created = False
