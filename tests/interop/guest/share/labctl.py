"""Guest-side helper for the peer lab (runs in the QEMU guest from the read-only 9p share at /lab).

The host runs it over ssh; it times things inside the guest, so ssh latency does not count in the
figures, and answers one JSON object on its last output line. Debian 12's python3 only, no packages.

    labctl.py check-boot
    labctl.py wait-iface IFACE TIMEOUT            until IFACE has an IPv4 address
    labctl.py xl2tpd-dial LAC IFACE TIMEOUT       "c LAC" to xl2tpd's control pipe, then wait-iface
    labctl.py timed TIMEOUT CMD...                run CMD, report status, seconds and output tail
    labctl.py spawn-wait IFACE TIMEOUT LOG CMD... start CMD detached (output to LOG), wait-iface IFACE
    labctl.py rss NAME|LABEL=PID...               VmRSS in kB: summed over processes named NAME, or of PID
"""

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time

MODULES = ["af_key", "xfrm_user", "esp4", "ppp_generic", "l2tp_core", "l2tp_netlink", "l2tp_ppp", "af_alg",
           "algif_skcipher", "algif_aead", "algif_hash"]


def answer(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0 if obj.get("ok") else 1


def ipv4_of(iface, need_peer=True):
    p = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", iface], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        return None
    try:
        for link in json.loads(p.stdout):
            p2p = "POINTOPOINT" in link.get("flags", [])
            for a in link.get("addr_info", []):
                # A point-to-point address is complete only with its peer (pppd may set them in two steps).
                if a.get("family") == "inet" and a.get("local") and (a.get("address") or not p2p or not need_peer):
                    return {"local": a.get("local"), "peer": a.get("address"), "mtu": link.get("mtu")}
    except ValueError:
        return None
    return None


def wait_iface(iface, timeout, t0=None):
    t0 = time.monotonic() if t0 is None else t0
    deadline = t0 + timeout
    while True:
        got = ipv4_of(iface)
        if got:
            got.update(ok=True, iface=iface, elapsed=round(time.monotonic() - t0, 3))
            return got
        if time.monotonic() >= deadline:
            return {"ok": False, "iface": iface, "elapsed": round(time.monotonic() - t0, 3),
                    "error": "%s got no IPv4 address within %s s" % (iface, timeout)}
        time.sleep(0.05)


def af_alg_hmac_sha1(key, msg):
    """HMAC-SHA1 through the kernel crypto API (AF_ALG), to compare with hashlib's."""
    s = socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0)
    try:
        s.bind(("hash", "hmac(sha1)"))
        s.setsockopt(socket.SOL_ALG, socket.ALG_SET_KEY, key)
        op, _ = s.accept()
        try:
            op.sendall(msg)
            return op.recv(20)
        finally:
            op.close()
    finally:
        s.close()


def check_boot():
    with open("/proc/modules") as f:
        loaded = {line.split()[0] for line in f}
    missing = [m for m in MODULES if m not in loaded]
    key, msg = b"sluice-lab-key", b"The quick brown fox jumps over the lazy dog"
    try:
        alg_ok = af_alg_hmac_sha1(key, msg) == hmac.new(key, msg, hashlib.sha1).digest()
        alg_err = None
    except OSError as e:
        alg_ok, alg_err = False, str(e)
    xfrm = subprocess.run(["ip", "xfrm", "state"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {
        "kernel": os.uname().release,
        "dev_ppp": os.path.exists("/dev/ppp"),
        "modules_missing": missing,
        "af_alg_hmac_sha1_matches_hashlib": alg_ok,
        "af_alg_error": alg_err,
        "ip_xfrm_state_rc": xfrm.returncode,
        "nproc": os.cpu_count(),
    }
    out["ok"] = out["dev_ppp"] and not missing and alg_ok and xfrm.returncode == 0
    return out


def xl2tpd_dial(lac, iface, timeout):
    ctl = "/run/xl2tpd/l2tp-control"
    deadline = time.monotonic() + 10
    while not os.path.exists(ctl):
        if time.monotonic() > deadline:
            return {"ok": False, "error": "no xl2tpd control pipe at %s" % ctl}
        time.sleep(0.05)
    t0 = time.monotonic()
    with open(ctl, "w") as f:
        f.write("c %s\n" % lac)
    return wait_iface(iface, timeout, t0)


def timed(timeout, cmd):
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = None, (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    return {"ok": rc == 0, "rc": rc, "elapsed": round(time.monotonic() - t0, 3), "output": out[-3000:]}


def spawn_wait(iface, timeout, log, cmd):
    t0 = time.monotonic()
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = t0 + timeout
    while True:
        got = ipv4_of(iface, need_peer=False)  # a server's TUN may carry its own address only
        if got:
            got.update(ok=True, iface=iface, pid=p.pid, elapsed=round(time.monotonic() - t0, 3))
            return got
        if p.poll() is not None:
            return {"ok": False, "pid": p.pid, "error": "exited with status %s before %s was up" % (p.returncode, iface)}
        if time.monotonic() >= deadline:
            return {"ok": False, "pid": p.pid, "error": "%s got no IPv4 address within %s s" % (iface, timeout)}
        time.sleep(0.05)


def rss(specs):
    """VmRSS (kB) per spec: a process name sums every process of that name (/proc/PID/comm), LABEL=PID is one
    process. Names with no process are left out, so optional daemons (strongSwan's starter) need no flag."""
    def vmrss(pid):
        try:
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None

    comms = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/comm" % pid) as f:
                comms.setdefault(f.read().strip(), []).append(pid)
        except OSError:
            pass
    out = {}
    for spec in specs:
        label, _, pid = spec.partition("=")
        kbs = [vmrss(p) for p in ([pid] if pid else comms.get(label, []))]
        kbs = [k for k in kbs if k is not None]
        if kbs:
            out[label] = sum(kbs)
    return {"ok": bool(out), "rss_kb": out}


def main(argv):
    if not argv:
        return answer({"ok": False, "error": __doc__})
    cmd, args = argv[0], argv[1:]
    if cmd == "check-boot":
        return answer(check_boot())
    if cmd == "wait-iface":
        return answer(wait_iface(args[0], float(args[1])))
    if cmd == "xl2tpd-dial":
        return answer(xl2tpd_dial(args[0], args[1], float(args[2])))
    if cmd == "spawn-wait":
        return answer(spawn_wait(args[0], float(args[1]), args[2], args[3:]))
    if cmd == "rss":
        return answer(rss(args))
    if cmd == "timed":
        return answer(timed(float(args[0]), args[1:]))
    return answer({"ok": False, "error": "unknown command %r" % cmd})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
