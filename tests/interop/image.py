"""Build and cache the peer-lab guest images (Debian 12 and 13, from Debian packages only).

Flavours: `strongswan` and `libreswan` on Debian 12 (bookworm, kernel 6.1; two images because strongSwan and
libreswan conflict), and `trixie`: the strongSwan set on Debian 13 (kernel 6.12, for the kernel data path:
the 2024 l2tp_core changes that find an L2TPv2 session whatever socket received it are in 6.11+). All carry
xl2tpd, ppp, iperf3, tcpdump, python3 and python3-cryptography. An image is a directory in the cache
($SLUICE_LAB_CACHE, default /var/cache/sluice-lab, never inside the repository):

    images/<flavour>-<hash>/vmlinuz, initrd.img, rootfs.ext4 (sparse, 3 GiB), BUILT

`<hash>` covers everything that goes into the image (package list, the files under guest/image/, the ssh
public key, this builder's version), so changing any of them builds a fresh image; otherwise the cached one
is used. Building: `mmdebstrap --variant=minbase --mode=root` into a directory, a few files copied in, then
`mke2fs -d` (no loop mount). About 80 s per image with the .deb cache warm.

    python -m tests.interop.image [strongswan|libreswan|trixie|all] [--force]
"""

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_IMAGE_FILES = os.path.join(HERE, "guest", "image")
BUILDER_VERSION = "1"
SUITE = "bookworm"

COMMON_PACKAGES = [
    "linux-image-amd64", "initramfs-tools", "systemd-sysv", "udev", "kmod", "iproute2", "iputils-ping",
    "openssh-server", "procps", "psmisc", "xl2tpd", "ppp", "iperf3", "tcpdump", "python3",
    "python3-cryptography",
]
FLAVOURS = {
    # nftables: the NAT of two-clients-behind-nat-kernel-6.1 (clients behind it in namespaces).
    "strongswan": ["strongswan", "strongswan-swanctl", "libstrongswan-standard-plugins",
                   "libcharon-extra-plugins", "nftables"],
    "libreswan": ["libreswan"],
    # nftables: NAT inside the guest, for kernel-path cells that put clients behind a NAT in namespaces.
    # strongswan-charon (which pulls in strongswan-starter): Debian 13's `strongswan` picks charon-systemd and
    # swanctl, while IpsecStack drives the `ipsec` starter and stroke, as on Debian 12.
    "trixie": ["strongswan", "strongswan-swanctl", "strongswan-charon", "strongswan-starter",
               "libstrongswan-standard-plugins", "libcharon-extra-plugins", "nftables"],
}
# Debian suite per flavour (SUITE when not listed). The image hash covers the suite, so the bookworm
# flavours keep their hashes (and their cached images).
SUITES = {"trixie": "trixie"}
# Services the packages enable that the cells start themselves (and that would slow the boot).
MASK_UNITS = ["xl2tpd.service", "strongswan-starter.service", "strongswan.service", "ipsec.service",
              "iperf3.service", "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
              "e2scrub_reap.service", "fstrim.timer", "systemd-timesyncd.service", "getty@tty1.service"]
HOST_TOOLS = {"mmdebstrap": "mmdebstrap", "mke2fs": "e2fsprogs", "qemu-system-x86_64": "qemu-system-x86",
              "ssh": "openssh-client", "ssh-keygen": "openssh-client", "ip": "iproute2"}
BUILD_TIMEOUT = 900


class ImageError(RuntimeError):
    """The image could not be built (the message says which step and why)."""


def cache_dir():
    return os.environ.get("SLUICE_LAB_CACHE", "/var/cache/sluice-lab")


def suite(flavour):
    return SUITES.get(flavour, SUITE)


def mirrors(suite_name=SUITE):
    """apt source lines for mmdebstrap; SLUICE_LAB_MIRROR overrides the Debian mirror (e.g. a local cache)."""
    m = os.environ.get("SLUICE_LAB_MIRROR", "http://deb.debian.org/debian")
    sec = os.environ.get("SLUICE_LAB_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    return ["deb %s %s main" % (m, suite_name), "deb %s %s-updates main" % (m, suite_name),
            "deb %s %s-security main" % (sec, suite_name)]


def missing_host_tools():
    """Debian packages to apt-get install before the lab can run (empty when all is there)."""
    return sorted({pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)})


def ssh_key():
    """Path of the harness's private key (created once in the cache); its .pub is baked into the images."""
    d = os.path.join(cache_dir(), "ssh")
    key = os.path.join(d, "id_ed25519")
    if not os.path.exists(key):
        os.makedirs(d, mode=0o700, exist_ok=True)
        tmp = key + ".tmp%d" % os.getpid()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sluice-lab", "-f", tmp],
                       check=True, timeout=30, stdin=subprocess.DEVNULL)
        os.rename(tmp + ".pub", key + ".pub")
        os.rename(tmp, key)
    return key


def packages(flavour):
    if flavour not in FLAVOURS:
        raise ImageError("unknown image flavour %r (have: %s)" % (flavour, ", ".join(sorted(FLAVOURS))))
    return COMMON_PACKAGES + FLAVOURS[flavour]


def image_hash(flavour):
    h = hashlib.sha256()
    h.update(("%s\n%s\n%s\n" % (BUILDER_VERSION, suite(flavour), ",".join(packages(flavour)))).encode())
    h.update(",".join(MASK_UNITS).encode())
    for name in sorted(os.listdir(GUEST_IMAGE_FILES)):
        with open(os.path.join(GUEST_IMAGE_FILES, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read())
    with open(ssh_key() + ".pub", "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:12]


class Image:
    """A built image: the paths QEMU needs for a direct kernel boot."""

    def __init__(self, flavour, path):
        self.flavour = flavour
        self.path = path
        self.kernel = os.path.join(path, "vmlinuz")
        self.initrd = os.path.join(path, "initrd.img")
        self.rootfs = os.path.join(path, "rootfs.ext4")

    def __repr__(self):
        return "Image(%r, %r)" % (self.flavour, self.path)


def _run(step, args, log, timeout=BUILD_TIMEOUT):
    log.write("$ %s\n" % " ".join(args))
    log.flush()
    try:
        p = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ImageError("%s: timed out after %d s (log: %s)" % (step, timeout, log.name))
    if p.returncode != 0:
        raise ImageError("%s failed with status %d (log: %s)" % (step, p.returncode, log.name))


def _install_guest_files(root):
    """Copy guest/image/ into the tree, authorize the harness key, mask services the cells start themselves."""
    def put(src_name, dst, mode):
        dst = root + dst
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(GUEST_IMAGE_FILES, src_name), dst)
        os.chmod(dst, mode)

    put("sluice-lab-init", "/usr/local/sbin/sluice-lab-init", 0o755)
    put("sluice-lab.service", "/etc/systemd/system/sluice-lab.service", 0o644)
    put("sshd-lab.conf", "/etc/ssh/sshd_config.d/sluice-lab.conf", 0o644)
    wants = root + "/etc/systemd/system/multi-user.target.wants"
    os.makedirs(wants, exist_ok=True)
    link = os.path.join(wants, "sluice-lab.service")
    if not os.path.lexists(link):
        os.symlink("/etc/systemd/system/sluice-lab.service", link)
    for unit in MASK_UNITS:
        p = root + "/etc/systemd/system/" + unit
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink("/dev/null", p)
    ssh = root + "/root/.ssh"
    os.makedirs(ssh, mode=0o700, exist_ok=True)
    shutil.copyfile(ssh_key() + ".pub", ssh + "/authorized_keys")
    os.chmod(ssh + "/authorized_keys", 0o600)
    with open(root + "/etc/fstab", "w") as f:
        f.write("/dev/vda / ext4 rw,noatime 0 1\n")


def build(flavour, force=False, log=None):
    """Return the cached Image for `flavour`, building it first when missing (or when force=True)."""
    want = packages(flavour)
    key = image_hash(flavour)
    images = os.path.join(cache_dir(), "images")
    os.makedirs(images, exist_ok=True)
    path = os.path.join(images, "%s-%s" % (flavour, key))
    img = Image(flavour, path)
    lock = open(os.path.join(images, ".%s.lock" % flavour), "w")
    try:
        # One builder per flavour at a time; a second process waits and then finds the image built.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(path, "BUILT")) and not force:
            return img
        missing = [t for t in ("mmdebstrap", "mke2fs") if not shutil.which(t)]
        if missing:
            raise ImageError("building the %s image needs %s (apt-get install %s)" % (
                flavour, ", ".join(missing), " ".join(HOST_TOOLS[t] for t in missing)))
        if os.geteuid() != 0:
            raise ImageError("building the %s image needs root (mmdebstrap --mode=root)" % flavour)
        shutil.rmtree(path, ignore_errors=True)
        work = path + ".work"
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        root = os.path.join(work, "root")
        # One .deb cache per suite (apt would skip the other suite's files, but they would be copied in).
        debs = os.path.join(cache_dir(), "debs" if suite(flavour) == SUITE else "debs-" + suite(flavour))
        os.makedirs(debs, exist_ok=True)
        logf = log or open(os.path.join(images, "%s-%s.build.log" % (flavour, key)), "w")
        t0 = time.monotonic()
        # The .deb cache is shared by both flavours and kept between builds (most packages are common).
        _run("mmdebstrap", [
            "mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
            "--include=" + ",".join(want), "--skip=download/empty",
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives && cp -a %s/. \"$1\"/var/cache/apt/archives/" % debs,
            "--customize-hook=cp -a \"$1\"/var/cache/apt/archives/*.deb %s/ 2>/dev/null || true" % debs,
            suite(flavour), root] + mirrors(suite(flavour)), logf)
        _install_guest_files(root)
        kernels = sorted(glob.glob(root + "/boot/vmlinuz-*"))
        initrds = sorted(glob.glob(root + "/boot/initrd.img-*"))
        if not kernels or not initrds:
            raise ImageError("the %s image has no kernel or initrd in /boot (log: %s)" % (flavour, logf.name))
        shutil.copyfile(kernels[-1], os.path.join(work, "vmlinuz"))
        shutil.copyfile(initrds[-1], os.path.join(work, "initrd.img"))
        _run("mke2fs", ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "sluice-lab", "-d", root,
                        os.path.join(work, "rootfs.ext4"), "3G"], logf, timeout=300)
        shutil.rmtree(root)
        with open(os.path.join(work, "BUILT"), "w") as f:
            f.write("flavour=%s\nhash=%s\npackages=%s\nseconds=%.0f\n" % (
                flavour, key, " ".join(want), time.monotonic() - t0))
        os.rename(work, path)
        # Older builds of this flavour are dead weight (about 800 MiB each).
        for old in glob.glob(os.path.join(images, flavour + "-*")):
            if old != path and os.path.isdir(old) and not old.endswith(".work"):
                shutil.rmtree(old, ignore_errors=True)
        return img
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    which = args[0] if args else "all"
    flavours = sorted(FLAVOURS) if which == "all" else [which]
    for fl in flavours:
        t0 = time.monotonic()
        try:
            img = build(fl, force=force)
        except ImageError as e:
            print("error: %s" % e, file=sys.stderr)
            return 1
        print("%s: %s (%.0f s)" % (fl, img.path, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
