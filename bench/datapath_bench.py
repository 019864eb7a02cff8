"""Per-packet cost of the whole user-space data path, in process: the server's side of one IPsec session.

    outbound  TUN packet -> session lookup -> L2TP data header + PPP -> UDP/1701 header -> ESP seal -> socket
    inbound   socket -> SPI lookup -> ESP open -> UDP/L2TP parse -> session lookup -> PPP protocol ->
              source check -> the bytes a TUN write gets

The engine's own functions run with in-memory twins of the TUN device and the raw ESP socket (each
`read_into`/`recvfrom_into` copies one prepared packet into the engine's buffer, as the kernel would; each
`write`/`sendto` only keeps the last packet), so the figure is the Python path and the crypto call, without
syscalls. The OS calls a real daemon adds (one read and one send per packet) are not in it. Every cell checks
that its output is the right packet (a peer SA opens what we sealed; the TUN twin gets the original IP
packet) before it is timed.

    python bench/datapath_bench.py [--transforms aes128gcm16,aes256gcm16,aes256-sha1] [--size 1400]
                                   [--packets N] [--rounds K] [--backend openssl] [--json]
    python bench/datapath_bench.py --compare REV [--rounds K]     # REV (e.g. main) against this tree
    python bench/datapath_bench.py --compare DIR [--rounds K]     # DIR/sluice (an unpacked tree) against this one

`--compare` exports REV's `firmware/` and `hal/` with `git archive` into a temporary directory and runs this
script against REV and against the working tree alternately, K rounds each, in one invocation, so both see
the same machine load; it prints the medians and their ratio. Which data path is driven is found by what the
tree has: the engine's `Server` + `IpsecTransport` (the path until issue 9), or the user-space data-plane
backend (`sluice.engine.userplane`) when present.
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TRANSFORMS = "plain,aes128gcm16,aes256gcm16,aes256-sha1"  # plain: L2TP over UDP, no IPsec
# CPU time of this process by default: on a shared machine the time the scheduler gives to others is not
# the path's cost (wall time is there with --clock wall).
_clock = time.process_time
PEER_IP = "192.0.2.2"
LOCAL_IP = "192.0.2.1"
CLIENT_IP = "10.77.0.10"
SERVER_TUN_IP = "10.77.0.1"
TID, SID = 0x1111, 0x2222  # our (server's) tunnel and session ids: what the peer writes on data messages
PEER_TID, PEER_SID = 0x3333, 0x4444  # the peer's ids: what we write
SPI_IN, SPI_OUT = 0x10000001, 0x20000002


def ip_packet(src, dst, size, ident=0):
    """An IPv4/UDP packet of `size` bytes (header checksum left 0: nothing on this path checks it)."""
    import struct

    body = bytes((i * 7 + ident) & 0xFF for i in range(size - 28))
    udp = struct.pack("!HHHH", 40000, 5201, size - 20, 0) + body
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, ident & 0xFFFF, 0, 64, 17, 0, _aton(src), _aton(dst)) + udp


def _aton(a):
    import socket

    return socket.inet_aton(a)


def keys_for(backend_mod, name):
    from sluice.hal.crypto import transforms

    ek, ak, sl = transforms.esp_key_lengths(name)
    # Fixed keys so every round and both trees of --compare work on the same packets.
    return bytes(range(1, ek + 1)), bytes(range(101, 101 + ak)), bytes(range(201, 201 + sl))


class Twin:
    """In-memory TUN device and socket: hands out prepared packets in batches, keeps what it is given."""

    def __init__(self, packets=(), batch=64, fd=1000, addr=(PEER_IP, 0)):
        self.packets = packets
        self.addr = addr
        self.i = 0
        self.batch = batch
        self.left = 0
        self.last = None
        self.count = 0
        self.name = "bench0"
        self._fd = fd

    def fileno(self):
        return self._fd

    def refill(self):
        self.left = self.batch

    def _next(self):
        if self.left <= 0:
            return None
        self.left -= 1
        p = self.packets[self.i]
        self.i += 1
        if self.i == len(self.packets):
            self.i = 0
        return p

    # TUN
    def read_into(self, buf):
        p = self._next()
        if p is None:
            return 0
        n = len(p)
        buf[:n] = p
        return n

    def write(self, packet):
        self.last = packet
        self.count += 1
        return len(packet)

    # socket
    def recvfrom_into(self, buf):
        p = self._next()
        if p is None:
            raise BlockingIOError
        n = len(p)
        buf[:n] = p
        return n, self.addr

    def sendto(self, data, addr):
        self.last = data
        self.count += 1
        return len(data)

    def sendmsg(self, parts, anc=(), flags=0, addr=None):
        self.last = parts  # the kernel gathers them; joined only when a check reads it
        self.count += 1


class _NullLoop:
    def add_reader(self, fd, cb):
        pass

    def remove_reader(self, fd):
        pass

    def call_at(self, deadline, cb):
        pass


class _IkeStub:
    """The few calls the ESP receive path makes into the IKE table."""

    def traffic_seen(self, peer, now):
        pass

    def follow_peer(self, old, new):
        return False

    def get_timer(self):
        return None

    def datagrams_to_send(self):
        return ()

    def next_event(self):
        return None


class EngineDriver:
    """Today's path (until issue 9): `sluice.engine.server.Server` over `sluice.engine.ipsec.IpsecTransport`."""

    name = "engine Server + IpsecTransport"

    @staticmethod
    def available():
        try:
            from sluice.engine.ipsec import IpsecTransport  # noqa: F401
            from sluice.engine.server import Server
        except ImportError:
            return False
        return hasattr(Server, "_tun_readable") and hasattr(Server, "_l2tp_in")

    def __init__(self, backend, name, keys, now):
        from sluice.config import loads
        from sluice.engine.ipsec import IpsecTransport
        from sluice.engine.log import Log
        from sluice.engine.server import Server, ServerSession
        from sluice.ike.events import ChildSaUp

        conf = loads(CONF, name="bench.conf")
        log = Log("bench", stream=io.StringIO())
        loop = _NullLoop()
        self.tun = Twin()
        self.plain = name == "plain"
        if self.plain:
            self.raw = Twin(fd=1001, addr=(PEER_IP, 1701))
            srv = Server(conf, conf.servers[0], loop, log, tun=self.tun, sock=self.raw, configure_host=False)
            self.tr, key = srv.transport, (PEER_IP, 1701)
        else:
            self.raw = Twin(fd=1001)
            srv = Server(conf, conf.servers[0], loop, log, tun=self.tun, configure_host=False)
            tr = IpsecTransport(loop, log, None, LOCAL_IP, srv._l2tp_in, srv._ipsec_event, os.urandom,
                                backend=backend, ike_table=_IkeStub())
            tr.raw = self.raw
            srv.transport = self.tr = tr
            ek, ak, sl = keys
            peer = (PEER_IP, 500)
            # Quick Mode's result, as IkeTable reports it: the real install path.
            tr._child_up(ChildSaUp(peer, SPI_IN, SPI_OUT, name, ek, ak, sl, ek, ak, sl, False, 3600, None), now)
            key = (PEER_IP, 500, 1701)

        class _Tunnel:
            peer_tunnel_id = PEER_TID

        sess = ServerSession(_Tunnel(), key, TID, SID, PEER_SID, False, now)
        sess.ip = CLIENT_IP
        sess.ip_key = _aton(CLIENT_IP)
        srv.sessions[(TID, SID)] = sess
        srv.by_ip[sess.ip_key] = sess
        self.srv, self.now = srv, now

    def outbound(self, packets):
        """Run `packets` TUN packets through the send path in batches of 64; returns the count sent."""
        tun, srv, now = self.tun, self.srv, self.now
        tun.packets = packets
        tun.i = 0
        rounds = len(packets) // tun.batch
        for _ in range(rounds):
            tun.left = tun.batch
            srv._tun_readable(now)
        return rounds * tun.batch

    def inbound(self, packets):
        raw, tr, now = self.raw, self.tr, self.now
        raw.packets = packets
        raw.i = 0
        rounds = len(packets) // raw.batch
        readable = tr.readable if self.plain else tr._on_raw
        for _ in range(rounds):
            raw.left = raw.batch
            readable(now)
        return rounds * raw.batch

    def sent(self):
        return _joined(self.raw.last), self.raw.count

    def delivered(self):
        return self.tun.last, self.tun.count


def _joined(last):
    return b"".join(bytes(p) for p in last) if isinstance(last, (list, tuple)) else last


CONF = """
config server 'main'
    option listen '%s'
    option local_ip '%s'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list auth 'mschapv2'
    option ipsec '1'
    option psk 'bench-psk-not-used-for-anything-0123'
    option ifname 'bench0'

config user
    option username 'alice'
    option password 'Secr3t-password-horse'
""" % (LOCAL_IP, SERVER_TUN_IP)


class _Up:
    """The endpoint side of the user-space data plane: what it is told about (nothing here needs an answer)."""

    hint_unknown_spi = False

    def __init__(self):
        self.l2tp = 0

    def on_ike(self, data, local, peer, now):
        pass

    def on_l2tp(self, data, key, now):
        self.l2tp += 1

    def on_esp_from(self, spi, outer, now):
        pass

    def on_traffic(self, peer, now):
        pass

    def on_expiring(self, spi, hard, now):
        pass


class UserPlaneDriver:
    """The user-space data-plane backend behind the endpoint seam (issue 9): `sluice.engine.userplane`."""

    name = "engine.userplane.UserPlane"

    @staticmethod
    def available():
        try:
            from sluice.engine.userplane import UserPlane  # noqa: F401
        except ImportError:
            return False
        return True

    def __init__(self, backend, name, keys, now):
        from sluice.endpoint import actions as A
        from sluice.engine.userplane import UserPlane
        from sluice.ike.events import ChildSaUp

        import struct

        self.tun = Twin()
        header = struct.pack("!HHH", 0x0002, PEER_TID, PEER_SID)
        self.plain = name == "plain"
        if self.plain:
            self.raw = Twin(fd=1001, addr=(PEER_IP, 1701))
            up = UserPlane(_NullLoop(), _Up(), "server", backend, os.urandom, self.tun, False, LOCAL_IP)
            up.udp = self.raw
            up.session_up(A.SessionUp((TID, SID), (PEER_IP, 1701), header, False, CLIENT_IP, "bench0"))
            self.up, self.now = up, now
            return
        self.raw = Twin(fd=1001)
        up = UserPlane(_NullLoop(), _Up(), "server", backend, os.urandom, self.tun, True, LOCAL_IP)
        up.raw = self.raw
        ek, ak, sl = keys
        peer = (PEER_IP, 500)
        child = ChildSaUp(peer, SPI_IN, SPI_OUT, name, ek, ak, sl, ek, ak, sl, False, 3600, None)
        err = up.install_sa(A.InstallSa(child, None, None))
        assert err is None, err
        up.outbound_sa(peer, SPI_OUT, False)
        up.session_up(A.SessionUp((TID, SID), (PEER_IP, 500, 1701), header, False, CLIENT_IP, "bench0"))
        self.up, self.now = up, now

    def outbound(self, packets):
        tun, up, now = self.tun, self.up, self.now
        tun.packets = packets
        tun.i = 0
        rounds = len(packets) // tun.batch
        for _ in range(rounds):
            tun.left = tun.batch
            up._on_tun(now)
        return rounds * tun.batch

    def inbound(self, packets):
        raw, up, now = self.raw, self.up, self.now
        raw.packets = packets
        raw.i = 0
        rounds = len(packets) // raw.batch
        readable = up._on_udp if self.plain else up._on_raw
        for _ in range(rounds):
            raw.left = raw.batch
            readable(now)
        return rounds * raw.batch

    def sent(self):
        return _joined(self.raw.last), self.raw.count

    def delivered(self):
        return self.tun.last, self.tun.count


DRIVERS = [UserPlaneDriver, EngineDriver]


def pick_driver():
    for d in DRIVERS:
        if d.available():
            return d
    raise SystemExit("no data path this benchmark knows how to drive")


def peer_sas(backend, name, keys, now):
    """The client's side of the SA pair: seals what we open, opens what we seal."""
    from sluice.esp import Inbound, Outbound

    ek, ak, sl = keys
    out = Outbound(SPI_IN, name, ek, ak, sl, os.urandom, backend, None, now)
    inb = Inbound(SPI_OUT, name, ek, ak, sl, None, backend, None, now, window=1024)
    return out, inb


def inbound_packets(peer_out, count, size):
    """Raw-socket reads (IPv4 header + ESP) of `count` packets the client sends: UDP/1701, L2TP, PPP, IP."""
    import struct

    from sluice.esp.sa import NEXT_HEADER_UDP

    ip = ip_packet(CLIENT_IP, SERVER_TUN_IP, size)
    l2tp = struct.pack("!HHH", 0x0002, TID, SID) + b"\xff\x03\x00\x21" + ip
    inner = struct.pack("!HHHH", 1701, 1701, 8 + len(l2tp), 0) + l2tp
    outer_hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 50, 0, _aton(PEER_IP), _aton(LOCAL_IP))
    return [outer_hdr + peer_out.seal(inner, NEXT_HEADER_UDP) for _ in range(count)], ip


def plain_packets(count, size):
    """UDP/1701 payloads (L2TP data + PPP + IP) the client sends without IPsec."""
    import struct

    ip = ip_packet(CLIENT_IP, SERVER_TUN_IP, size)
    return [struct.pack("!HHH", 0x0002, TID, SID) + b"\xff\x03\x00\x21" + ip] * count, ip


def check_cell(driver_cls, backend, name, keys, size, now):
    """Run one packet each way and check the bytes; raises AssertionError with what was wrong."""
    import struct

    d = driver_cls(backend, name, keys, now)
    ip = ip_packet(SERVER_TUN_IP, CLIENT_IP, size)
    d.outbound([ip] * 64)
    pkt, count = d.sent()
    assert count == 64, "outbound sent %d of 64 packets" % count
    if name == "plain":
        assert pkt == struct.pack("!HHH", 0x0002, PEER_TID, PEER_SID) + b"\xff\x03\x00\x21" + ip, "plain differs"
        pkts, ip_in = plain_packets(64, size)
        d.inbound(pkts)
        got, count = d.delivered()
        assert count == 64 and bytes(got) == ip_in, "plain inbound TUN write differs"
        return
    peer_out, peer_in = peer_sas(backend, name, keys, now)
    payload, nh = peer_in.open(bytes(pkt))
    assert nh == 17, "next header %d" % nh
    sport, dport, length, _ = struct.unpack("!HHHH", payload[:8])
    assert (sport, dport, length) == (1701, 1701, len(payload)), (sport, dport, length, len(payload))
    expect = struct.pack("!HHH", 0x0002, PEER_TID, PEER_SID) + b"\xff\x03\x00\x21" + ip
    assert bytes(payload[8:]) == expect, "outbound L2TP/PPP/IP differs"
    pkts, ip_in = inbound_packets(peer_out, 64, size)
    d.inbound(pkts)
    got, count = d.delivered()
    assert count == 64, "inbound delivered %d of 64 packets" % count
    assert bytes(got) == ip_in, "inbound TUN write differs"


def run_round(backend_name, transforms, size, packets):
    """One round: every transform, outbound and inbound, fresh SAs; returns {cell: us per packet}."""
    from sluice.hal import crypto

    backend = crypto.load(backend_name)
    driver_cls = pick_driver()
    now = 1000.0
    out = {}
    for name in transforms:
        keys = keys_for(backend, name) if name != "plain" else None
        check_cell(driver_cls, backend, name, keys, size, now)
        d = driver_cls(backend, name, keys, now)
        ip = ip_packet(SERVER_TUN_IP, CLIENT_IP, size)
        tun_pkts = [ip] * packets
        t0 = _clock()
        n = d.outbound(tun_pkts)
        out["%s out" % name] = (_clock() - t0) / n * 1e6
        if name == "plain":
            pkts, _ = plain_packets(packets, size)
            t0 = _clock()
            n = d.inbound(pkts)
            out["%s in" % name] = (_clock() - t0) / n * 1e6
            continue
        peer_out, _ = peer_sas(backend, name, keys, now)
        esp_pkts, _ = inbound_packets(peer_out, packets, size)
        t0 = _clock()
        n = d.inbound(esp_pkts)
        out["%s in" % name] = (_clock() - t0) / n * 1e6
        # The bare transform call on the same sizes, for reference (what no Python path can go below).
        t = backend.esp_transform(name, keys[0], keys[1], keys[2], os.urandom)
        body = size + 4 + 8 + 8  # PPP + L2TP + UDP headers
        pt = bytes(body + 2 + (-(body + 2)) % t.block)
        hdr = SPI_OUT.to_bytes(4, "big") + bytes(4)
        t0 = _clock()
        for i in range(packets):
            t.seal(hdr, pt)
        out["%s bare seal" % name] = (_clock() - t0) / packets * 1e6
        sealed = t.seal(hdr, pt)
        t0 = _clock()
        for i in range(packets):
            t.open(sealed)
        out["%s bare open" % name] = (_clock() - t0) / packets * 1e6
    import sluice

    return {"driver": "%s (%s)" % (driver_cls.name, os.path.dirname(sluice.__file__)), "cells": out}


def _export(rev, where):
    """REV's firmware/ and hal/ laid out as an importable `sluice` package under where/pkg."""
    import shutil
    import tarfile

    top = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
    sha = subprocess.check_output(["git", "-C", top, "rev-parse", rev], text=True).strip()
    tar = os.path.join(where, "src.tar")
    subprocess.check_call(["git", "-C", top, "archive", "-o", tar, sha, "firmware", "hal", "bench"])
    src = os.path.join(where, "src")
    with tarfile.open(tar) as t:
        t.extractall(src)
    pkg = os.path.join(where, "pkg")
    os.makedirs(pkg)
    shutil.copytree(os.path.join(src, "firmware"), os.path.join(pkg, "sluice"))
    shutil.copytree(os.path.join(src, "hal"), os.path.join(pkg, "sluice", "hal"))
    return sha, pkg


def compare(args):
    me = os.path.abspath(__file__)
    common = ["--clock", args.clock, "--transforms", args.transforms, "--size", str(args.size), "--packets", str(args.packets),
              "--backend", args.backend, "--rounds", "1", "--json"]
    with tempfile.TemporaryDirectory(prefix="datapath-bench-") as tmp:
        if os.path.isdir(os.path.join(args.compare, "sluice")):
            sha, pkg = os.path.abspath(args.compare), os.path.abspath(args.compare)  # an unpacked tree
        else:
            sha, pkg = _export(args.compare, tmp)
        here = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
        dirty = subprocess.call(["git", "diff", "--quiet", "HEAD", "--", "firmware", "hal"]) != 0
        base = "base %s" % (sha[:7] if os.sep not in sha else os.path.basename(sha.rstrip(os.sep)))
        trees = [(base, dict(os.environ, PYTHONPATH=pkg)),
                 ("this %s%s" % (here, "+dirty" if dirty else ""), dict(os.environ, PYTHONPATH=""))]
        if args.this:
            trees[1] = ("this %s" % os.path.basename(args.this.rstrip(os.sep)),
                        dict(os.environ, PYTHONPATH=os.path.abspath(args.this)))
        res = {label: [] for label, _ in trees}
        drivers = {}
        for r in range(args.rounds):
            for label, env in (trees if r % 2 == 0 else trees[::-1]):
                # The baseline runs this script (not its own copy) with REV's package first on the path.
                outp = subprocess.check_output([sys.executable, me] + common, env=env, text=True, cwd=tmp)
                one = json.loads(outp)
                drivers[label] = one["driver"]
                res[label].append(one["cells"])
    cells = list(res[trees[0][0]][0])
    a, b = trees[0][0], trees[1][0]
    print("# %s: %s" % (a, drivers[a]))
    print("# %s: %s" % (b, drivers[b]))
    print("# us/packet, %d rounds each, alternating; median and minimum of the rounds, ratio = this / base" % args.rounds)
    print("%-22s %14s %14s %7s %14s %14s %7s" % ("", a[:14], b[:14], "ratio", "min " + a[:10], "min " + b[:10],
                                                 "ratio"))
    for c in cells:
        ma = statistics.median(x[c] for x in res[a])
        mb = statistics.median(x[c] for x in res[b])
        na = min(x[c] for x in res[a])
        nb = min(x[c] for x in res[b])
        print("%-22s %14.2f %14.2f %7.2f %14.2f %14.2f %7.2f" % (c, ma, mb, mb / ma, na, nb, nb / na))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transforms", default=TRANSFORMS)
    ap.add_argument("--size", type=int, default=1400, help="IP packet size on the TUN (default 1400)")
    ap.add_argument("--packets", type=int, default=20480, help="packets per cell and direction")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", default="openssl")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare", metavar="REV", help="run REV and this tree alternately, --rounds each")
    ap.add_argument("--this", metavar="DIR", help="with --compare: DIR/sluice instead of this tree")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="process CPU time (default) or wall-clock time")
    args = ap.parse_args(argv)
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    args.packets = max(64, args.packets - args.packets % 64)
    if args.compare:
        return compare(args)
    names = args.transforms.split(",")
    rounds = [run_round(args.backend, names, args.size, args.packets) for _ in range(args.rounds)]
    cells = {c: statistics.median(r["cells"][c] for r in rounds) for c in rounds[0]["cells"]}
    if args.json:
        print(json.dumps({"driver": rounds[0]["driver"], "cells": cells}))
        return 0
    print("# %s, backend %s, %d-byte IP packets, %d packets per cell, median of %d rounds, %s time" % (
        rounds[0]["driver"], args.backend, args.size, args.packets, args.rounds, args.clock))
    print("%-14s %9s %9s %11s %11s" % ("transform", "out us", "in us", "bare seal", "bare open"))
    for name in names:
        if name == "plain":
            print("%-14s %9.2f %9.2f %11s %11s" % (name, cells[name + " out"], cells[name + " in"], "-", "-"))
            continue
        print("%-14s %9.2f %9.2f %11.2f %11.2f" % (name, cells[name + " out"], cells[name + " in"],
                                                   cells[name + " bare seal"], cells[name + " bare open"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
