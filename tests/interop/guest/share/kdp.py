"""Guest-side: drive Sluice's kernel glue (sluice.hal.net.xfrm, l2tp_kernel, ppp_kernel) in a peer-lab guest.

Runs with PYTHONPATH=/opt/sluice (cells/sluice_guest.install_sluice lays the package out there). Each command
answers one JSON object on its last line; `ip` output is included so the host test can read the kernel's
own view next to ours.

    kdp.py probe
    kdp.py cycle LOCAL PEER       install an SA pair + policies and a kernel L2TP tunnel/session/PPP unit,
                                  read them back (ours and `ip`), remove everything, read again
    kdp.py hold LOCAL PEER FILE   install the same, write FILE, then sleep (the host kills it with -9)
    kdp.py flush                  remove Sluice's leftovers (reqid range) and say how many
    kdp.py expire LOCAL PEER      an SA with 1 s / 2 s lifetimes; the EXPIRE events as XfrmEvents reads them
    kdp.py side LOCAL PEER TID PTID SID PSID SPI_OUT SPI_IN IFNAME PPP_LOCAL PPP_PEER FILE [KEY=VALUE...]
                                  one end of a kernel data path (run in a network namespace): ESP-in-UDP SA
                                  pair + policies, the 4500 socket with UDP_ENCAP, kernel L2TP tunnel and
                                  session, PPP unit addressed and up; FILE when ready; SIGTERM removes it all.
                                  Options: sport=/dport= (ESP-in-UDP ports, 4500), reqid_in= (the inbound SA's and
                                  policy's reqid; default from SPI_IN), mark= (default the outbound reqid),
                                  shared=1 (SO_REUSEADDR on :1701 and :4500, policies that exist already are
                                  another end's: a server with two clients behind one NAT)
    kdp.py counters DST SPI SRC [MARK]   our GETSA reading of one SA
    kdp.py path LOCAL PEER        the same as cycle through KernelPath (what the engine's backend calls):
                                  start (flush), install_child(ChildSaUp), install_policies, open_session,
                                  counters, stop
    kdp.py watch SECONDS FILE     XfrmEvents for SECONDS (EXPIRE, MAPPING), written to FILE as JSON
    kdp.py reencap LOCAL PEER SPI_OUT SPORT [MARK]   XFRM_MSG_UPDSA of our outbound SA with a new ESP-in-UDP
                                  source port (what a NAT rebinding looks like to the peer)
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

from sluice.hal.net import kernel_path, l2tp_kernel, ppp_kernel, xfrm

REQID_OUT = xfrm.REQID_BASE | 0x000101
REQID_IN = xfrm.REQID_BASE | 0x000102
MARK = (xfrm.REQID_BASE | 0x000101, 0xFFFFFFFF)
SPI_OUT, SPI_IN = 0xC1000001, 0xC1000002
TUNNEL, PEER_TUNNEL, SESSION, PEER_SESSION = 4242, 4343, 17, 18
IFNAME = "l2tp-kdp"


def ip(*args):
    p = subprocess.run(("ip",) + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.stdout


def kernel_view():
    return {"state": ip("-s", "xfrm", "state"), "policy": ip("xfrm", "policy"),
            "tunnel": ip("l2tp", "show", "tunnel"), "session": ip("l2tp", "show", "session"),
            "link": ip("-o", "link", "show")}


def install(local, peer):
    """SA pair (out: AES-256-CBC/HMAC-SHA1-96 over ESPINUDP, marked; in: AES-128-GCM-16), policies, L2TP, PPP."""
    x = xfrm.Xfrm()
    out = xfrm.SaSpec(local, peer, SPI_OUT, "aes256-sha1", os.urandom(32), os.urandom(20), reqid=REQID_OUT,
                      encap=(4500, 4500), mark=MARK,
                      limits=xfrm.Limits(soft_seconds=3000, hard_seconds=3600, soft_bytes=1 << 30, hard_bytes=1 << 31))
    inp = xfrm.SaSpec(peer, local, SPI_IN, "aes128gcm16", os.urandom(16), salt=os.urandom(4), reqid=REQID_IN,
                      encap=(4500, 4500))
    x.add_sa(out)
    x.add_sa(inp)
    for p in xfrm.l2tp_policies(local, peer, REQID_OUT, REQID_IN, mark=MARK):
        x.add_policy(p)
    # L2TP: one UDP socket per tunnel, bound to :1701 and connected to the peer, carrying the client's mark.
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, 36, MARK[0])  # SO_MARK
    u.bind((local, 1701))
    u.connect((peer, 1701))
    k = l2tp_kernel.L2tpKernel()
    k.create_tunnel(u, TUNNEL, PEER_TUNNEL)
    s = l2tp_kernel.open_session(u, TUNNEL, SESSION, PEER_TUNNEL, PEER_SESSION, (peer, 1701))
    unit = ppp_kernel.make_unit(s, IFNAME, mru=1400)
    return x, k, u, s, unit


def ours(x, k, local, peer):
    return {"sas": [repr(s) for s in x.list_sas()], "policies": [repr(p) for p in x.list_policies()],
            "tunnels": [repr(t) for t in k.list_tunnels()], "sessions": [repr(t) for t in k.list_sessions()],
            "sa_out": _sa_fields(x.get_sa(peer, SPI_OUT, MARK, local))}


def _sa_fields(s):
    return {"spi": s.spi, "reqid": s.reqid, "crypt": s.crypt, "auth": s.auth, "aead": s.aead, "encap": s.encap,
            "mark": s.mark, "bytes": s.bytes, "packets": s.packets, "add_time": s.add_time}


def cmd_cycle(local, peer):
    t0 = time.monotonic()
    x, k, u, s, unit = install(local, peer)
    t_install = time.monotonic() - t0
    res = {"ok": True, "install_s": round(t_install, 3), "unit": repr(unit), "up": kernel_view(),
           "ours": ours(x, k, local, peer)}
    # Remove in the order a session ends: PPP unit, session socket, tunnel, policies, SAs.
    t0 = time.monotonic()
    unit.close()
    s.close()
    k.delete_tunnel(TUNNEL)
    u.close()
    for p in xfrm.l2tp_policies(local, peer, REQID_OUT, REQID_IN, mark=MARK):
        x.delete_policy(p.selector, p.dir, p.mark)
    x.delete_sa(peer, SPI_OUT, MARK, local)
    x.delete_sa(local, SPI_IN, None, peer)
    res["remove_s"] = round(time.monotonic() - t0, 3)
    res["down"] = kernel_view()
    res["after_ours"] = {"sas": len(x.list_sas()), "policies": len(x.list_policies()),
                         "tunnels": len(k.list_tunnels())}
    return res


def cmd_hold(local, peer, path):
    x, k, u, s, unit = install(local, peer)
    with open(path + ".tmp", "w") as f:
        json.dump({"ok": True, "pid": os.getpid(), "unit": repr(unit)}, f)
    os.rename(path + ".tmp", path)
    while True:
        time.sleep(60)


def cmd_flush():
    x = xfrm.Xfrm()
    nsa, npol = x.flush_ours()
    return {"ok": True, "sas": nsa, "policies": npol, "after": kernel_view()}


def cmd_expire(local, peer):
    ev = xfrm.XfrmEvents()
    x = xfrm.Xfrm()
    x.add_sa(xfrm.SaSpec(local, peer, 0xC1000009, "aes128-sha1", os.urandom(16), os.urandom(20),
                         reqid=xfrm.REQID_BASE | 0x109, limits=xfrm.Limits(soft_seconds=1, hard_seconds=2)))
    t0 = time.monotonic()
    got = []
    while time.monotonic() - t0 < 6 and len(got) < 2:
        r, _, _ = select.select([ev], [], [], 1.0)
        if r:
            for e in ev.read():
                got.append({"type": type(e).__name__, "hard": getattr(e, "hard", None), "spi": e.sa.spi,
                            "reqid": e.sa.reqid, "at_s": round(time.monotonic() - t0, 2)})
    return {"ok": len(got) == 2, "events": got, "after": ip("xfrm", "state")}


def test_key(spi, n):
    """Both ends derive the same (test-only) keys from the SPI."""
    return bytes([(spi >> (8 * (i % 4)) ^ (i * 37)) & 0xFF for i in range(n)])


def cmd_side(local, peer, tid, ptid, sid, psid, spi_out, spi_in, ifname, ppp_local, ppp_peer, path, *opts):
    opt = dict(o.split("=", 1) for o in opts)
    tid, ptid, sid, psid = int(tid), int(ptid), int(sid), int(psid)
    spi_out, spi_in = int(spi_out, 0), int(spi_in, 0)
    sport, dport = int(opt.get("sport", 4500)), int(opt.get("dport", 4500))
    shared = opt.get("shared") == "1"
    reqid_out = xfrm.REQID_BASE | (spi_out & 0xFFFF)
    reqid_in = int(opt["reqid_in"], 0) if "reqid_in" in opt else xfrm.REQID_BASE | (spi_in & 0xFFFF)
    mark = (int(opt["mark"], 0) if "mark" in opt else reqid_out, 0xFFFFFFFF)
    x = xfrm.Xfrm()
    x.add_sa(xfrm.SaSpec(local, peer, spi_out, "aes256-sha1", test_key(spi_out, 32), test_key(spi_out + 1, 20),
                         reqid=reqid_out, encap=(sport, dport), mark=mark))
    x.add_sa(xfrm.SaSpec(peer, local, spi_in, "aes256-sha1", test_key(spi_in, 32), test_key(spi_in + 1, 20),
                         reqid=reqid_in, encap=(dport, sport)))
    pols = []
    for p in xfrm.l2tp_policies(local, peer, reqid_out, reqid_in, mark=mark):
        try:
            x.add_policy(p)
            pols.append(p)
        except OSError as e:
            if not (shared and e.args[0] == 17):   # the inbound policy another end of ours installed
                raise
    natt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if shared:
        natt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    natt.bind((local, sport))
    xfrm.set_udp_encap(natt)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, 36, mark[0])  # SO_MARK: the marked outbound policy and SA
    if shared:
        u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    u.bind((local, 1701))
    u.connect((peer, 1701))
    k = l2tp_kernel.L2tpKernel()
    k.create_tunnel(u, tid, ptid)
    s = l2tp_kernel.open_session(u, tid, sid, ptid, psid, (peer, 1701))
    unit = ppp_kernel.make_unit(s, ifname, mru=1400)
    ip("link", "set", "dev", ifname, "mtu", "1400", "up")
    ip("addr", "add", ppp_local, "peer", ppp_peer, "dev", ifname)

    def stop(*_):
        unit.close()
        s.close()
        k.delete_tunnel(tid)
        u.close()
        natt.close()
        for p in pols:
            x.delete_policy(p.selector, p.dir, p.mark)
        x.delete_sa(peer, spi_out, mark, local)
        x.delete_sa(local, spi_in, None, peer)
        with open(path + ".stopped", "w") as f:
            json.dump({"ok": True, "after": kernel_view()}, f)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    with open(path + ".tmp", "w") as f:
        json.dump({"ok": True, "pid": os.getpid(), "unit": repr(unit)}, f)
    os.rename(path + ".tmp", path)
    while True:
        time.sleep(60)


def cmd_counters(dst, spi, src, mark=None):
    x = xfrm.Xfrm()
    m = (int(mark, 0), 0xFFFFFFFF) if mark else None
    return dict(_sa_fields(x.get_sa(dst, int(spi, 0), m, src)), ok=True)


def cmd_path(local, peer):
    from sluice.ike.events import ChildSaUp

    kp = kernel_path.KernelPath()
    flushed = kp.start()
    child = ChildSaUp((peer, 4500), 0xC4000001, 0xC4000002, "aes128gcm16", os.urandom(16), b"", os.urandom(4),
                      os.urandom(16), b"", os.urandom(4), True, 3600, None)
    reqid = xfrm.REQID_BASE | 0x401
    mark = (reqid, 0xFFFFFFFF)
    kp.install_child(local, child, reqid, mark)
    key = kp.install_policies(local, peer, reqid, mark, peer_port=0)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, 36, mark[0])
    u.bind((local, 1701))
    u.connect((peer, 1701))
    sess = kp.open_session(u, 77, 88, 7, 8, (peer, 1701), "l2tp-path", 1400, lns_mode=True)
    c = kp.counters(local, peer, 0xC4000001, 0xC4000002, mark)
    up = kernel_view()
    kp.remove_policies(key)
    kp.stop()
    u.close()
    return {"ok": True, "flushed": flushed, "session": repr(sess), "in": repr(c["in"]), "out": repr(c["out"]),
            "up": up, "down": kernel_view()}


def cmd_watch(seconds, path):
    ev = xfrm.XfrmEvents()
    with open(path + ".ready", "w") as f:
        f.write("1")
    got = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < float(seconds):
        r, _, _ = select.select([ev], [], [], 0.5)
        if r:
            for e in ev.read():
                d = {"type": type(e).__name__, "repr": repr(e)}
                if isinstance(e, xfrm.SaMapping):
                    d.update(dst=e.dst, spi=e.spi, reqid=e.reqid, old=[e.old_src, e.old_sport],
                             new=[e.new_src, e.new_sport])
                got.append(d)
    with open(path, "w") as f:
        json.dump({"ok": True, "events": got}, f)
    return {"ok": True, "events": got}


def cmd_reencap(local, peer, spi_out, sport, mark=None):
    spi_out, sport = int(spi_out, 0), int(sport)
    reqid_out = xfrm.REQID_BASE | (spi_out & 0xFFFF)
    m = (int(mark, 0) if mark else reqid_out, 0xFFFFFFFF)
    x = xfrm.Xfrm()
    x.update_sa(xfrm.SaSpec(local, peer, spi_out, "aes256-sha1", test_key(spi_out, 32), test_key(spi_out + 1, 20),
                            reqid=reqid_out, encap=(sport, 4500), mark=m))
    return dict(_sa_fields(x.get_sa(peer, spi_out, m, local)), ok=True)


def main(argv):
    cmd = argv[1]
    if cmd == "probe":
        ok, why = ppp_kernel.probe()
        res = {"ok": ok, "reason": why, "kernel_transforms": ppp_kernel.kernel_transforms(
            ["aes128-sha1", "aes256-sha1", "aes128-sha256", "aes256-sha256_96", "aes256-sha384", "aes256-sha512",
             "3des-sha1", "aes128-md5", "aes128gcm16", "aes256gcm16", "aes256gcm8"])}
    elif cmd == "cycle":
        res = cmd_cycle(argv[2], argv[3])
    elif cmd == "hold":
        res = cmd_hold(argv[2], argv[3], argv[4])
    elif cmd == "flush":
        res = cmd_flush()
    elif cmd == "expire":
        res = cmd_expire(argv[2], argv[3])
    elif cmd == "side":
        res = cmd_side(*argv[2:])
    elif cmd == "counters":
        res = cmd_counters(*argv[2:6])
    elif cmd == "path":
        res = cmd_path(argv[2], argv[3])
    elif cmd == "watch":
        res = cmd_watch(argv[2], argv[3])
    elif cmd == "reencap":
        res = cmd_reencap(*argv[2:7])
    else:
        res = {"ok": False, "error": "unknown command %r" % cmd}
    sys.stdout.write(json.dumps(res, sort_keys=True) + "\n")
    return 0 if res.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
