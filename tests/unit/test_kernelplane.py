"""KernelPlane (sluice.engine.kernelplane) without a kernel: XFRM through XfrmTwin, the kernel L2TP session and
its ppp unit as socketpairs standing for the channel and unit fds, UDP sockets as fakes.

Follows a server session: the first SA of a peer installs its policies, SCCRQ on the :1701 listener is handed up
with the IKE peer's key, the answer leaves through a socket connected to the peer, SessionOpen makes the kernel
session, PPP frames go to the channel (LCP/auth) or unit (NCP) fd and come back as L2TP data messages, SessionUp
addresses the unit and the /32 route follows it, counters and EXPIRE events reach the endpoint, a rekey keeps
the policies, and close() leaves nothing in the twin.
"""

import os
import sys

import pytest

from sluice.endpoint import actions as A
from sluice.engine import runner as R
from sluice.engine.kernelplane import KernelPlane
from sluice.hal.crypto import transforms
from sluice.hal.net import kernel_path, netlink as nl, xfrm
from sluice.hal.net.sockets import socket  # the C module, as the daemon's: test_lean runs these twins
from sluice.hal.net.xfrm_twin import XfrmTwin
from sluice.ike.events import ChildSaUp

ME, PEER = "192.0.2.1", "203.0.113.5"
IKE_PEER = (PEER, 4500)


def child(spi_in, spi_out, transform="aes256-sha1"):
    ek, ak, sl = transforms.esp_key_lengths(transform)
    return ChildSaUp(IKE_PEER, spi_in, spi_out, transform, bytes(ek), bytes(ak), bytes(sl), bytes(range(ek)),
                     bytes(range(ak)), bytes(range(sl)), True, 3600, None)


class Loop:
    def __init__(self):
        self.readers = {}
        self.timers = []

    def add_reader(self, fd, cb):
        self.readers[fd] = cb

    def remove_reader(self, fd):
        self.readers.pop(fd, None)

    def call_at(self, t, cb):
        self.timers.append((t, cb))


class Up:
    hint_unknown_spi = True

    def __init__(self):
        self.got = []

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a: self.got.append((name,) + a[:-1])
        raise AttributeError(name)


class FakeUdp:
    def __init__(self, addr, peer=None):
        self.addr = addr
        self.peer = peer
        self.sent = []
        self.marked = []    # (datagram, address, mark) sent with an SO_MARK control message
        self.inbox = []
        self.opts = []
        self.closed = False

    def setsockopt(self, *a):
        self.opts.append(a)

    def sendto(self, data, peer):
        self.sent.append((bytes(data), peer))

    def send(self, data):
        self.sent.append((bytes(data), self.peer))

    def recvfrom(self, n):
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.pop(0)[:2]

    def recv(self, n):
        return self.recvfrom(n)[0]

    def recvmsg(self, n, ancsize):
        """As a socket with SO_RCVMARK: an inbox entry (data, addr, mark) comes with the SO_MARK message."""
        if not self.inbox:
            raise BlockingIOError
        item = self.inbox.pop(0)
        anc = [(socket.SOL_SOCKET, 36, item[2].to_bytes(4, sys.byteorder))] if len(item) > 2 else []
        return item[0], anc, 0, item[1]

    def getpeername(self):
        return self.peer

    def close(self):
        self.closed = True


class Sockets:
    def __init__(self):
        self.made = []
        self.stats = {}
        self.stats6 = {}
        self.rcvmark = True     # the kernel has SO_RCVMARK (5.19+)

    def udp(self, address, port, client):
        s = FakeUdp((address, port))
        self.made.append(s)
        return s

    def l2tp_udp(self, address, port, peer=None, mark=None):
        s = FakeUdp((address, port), peer)
        s.mark = mark
        self.made.append(s)
        return s

    def set_espinudp(self, sock):
        sock.setsockopt(17, 100, 2)

    def mark_control(self, mark):
        return [(socket.SOL_SOCKET, 36, mark.to_bytes(4, sys.byteorder))]

    def send_with(self, sock, parts, addr, anc):
        (level, kind, data), = anc
        assert (level, kind) == (socket.SOL_SOCKET, 36)
        sock.marked.append((b"".join(bytes(p) for p in parts), addr, int.from_bytes(data, sys.byteorder)))

    def receive_marks(self, sock):
        sock.rcvmark = self.rcvmark
        return self.rcvmark

    def source_address(self, peer_ip):
        return ME

    def netdev_stats(self, ifname):
        return self.stats.get(ifname, (0, 0, 0, 0))

    def netdev6_stats(self, ifname):
        return self.stats6.get(ifname, (0, 0, 0, 0))


class Unit:
    def __init__(self, ifname):
        self.chan_fd, self.chan_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.unit_fd, self.unit_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.chan_fd.setblocking(False)   # as /dev/ppp is opened (O_NONBLOCK)
        self.unit_fd.setblocking(False)
        self.chan_fd, self.unit_fd = self.chan_fd.detach(), self.unit_fd.detach()
        self.ifname = ifname

    def close(self):
        for fd in (self.chan_fd, self.unit_fd):
            if fd >= 0:
                os.close(fd)
        self.chan_fd = self.unit_fd = -1


class Events:
    """XfrmEvents over the twin: read() parses what the twin queued."""

    def __init__(self, twin):
        self.twin = twin

    def fileno(self):
        return -1

    def read(self):
        return [xfrm.parse_event(t, p) for t, p in self.twin.recv_events()]

    def close(self):
        pass


class Host:
    def __init__(self):
        self.steps = []

    def host(self, op, args):
        self.steps.append((op,) + tuple(args))


def make(role="server"):
    return make_with(role)


def make_with(role="server", rcvmark=True):
    twin = XfrmTwin()
    kp = kernel_path.KernelPath(xfrm.Xfrm(twin), l2tp_api=object(), events=Events(twin))
    opened = []

    def open_session(sock, tid, ptid, sid, psid, peer, ifname, mru, lns_mode):
        kp.tunnels.setdefault(tid, 0)
        kp.tunnels[tid] += 1
        ks = kernel_path.KernelSession(tid, sid, FakeUdp(None), Unit(ifname))
        kp.sessions.append(ks)
        opened.append((sock, tid, ptid, sid, psid, peer, ifname, mru, lns_mode))
        return ks

    def close_tunnel(tid):
        kp.tunnels.pop(tid, None)

    kp.open_session = open_session
    kp.close_tunnel = close_tunnel
    loop, up, socks, host = Loop(), Up(), Sockets(), Host()
    socks.rcvmark = rcvmark
    plane = KernelPlane(loop, up, role, os.urandom, True, sockets=socks, kernel=kp, host=host, ifname="sls0"
                        if role == "server" else "slc0", local_ip="10.77.0.1", mtu=1400)
    plane.start()
    plane.open_ipsec()
    return twin, kp, plane, loop, up, socks, host, opened


def test_server_session_life():
    twin, kp, plane, loop, up, socks, host, opened = make()
    s500, s4500, listener = socks.made
    assert (17, 100, 2) in s4500.opts                       # ESP-in-UDP is the kernel's on 4500
    # L2TP before any SA: refused, as the user-space path refuses L2TP outside IPsec.
    listener.inbox.append((b"\xc8\x02sccrq", (PEER, 1701)))
    loop.readers[listener](1.0)
    assert up.got == [] and plane.counters["not_ipsec"] == 1

    assert plane.install_sa(A.InstallSa(child(0xA1, 0xB1), None, None)) is None
    sas = {s.spi: s for s in kp.xfrm.list_sas()}
    assert sas[0xA1].dst == ME and sas[0xB1].dst == PEER and sas[0xA1].reqid == sas[0xB1].reqid
    assert sas[0xA1].reqid >> 24 == 0x5C
    pols = kp.xfrm.list_policies()
    assert len(pols) == 2

    listener.inbox.append((b"\xc8\x02sccrq", (PEER, 1701)))
    loop.readers[listener](2.0)
    key = (PEER, 4500, 1701)
    assert up.got[-1] == ("on_l2tp", b"\xc8\x02sccrq", key)
    plane.send_l2tp(key, b"\xc8\x02sccrp")
    tsock = socks.made[-1]
    assert tsock.peer == (PEER, 1701) and tsock.addr == ("0.0.0.0", 1701) and tsock.sent == [(b"\xc8\x02sccrp",
                                                                                               (PEER, 1701))]

    plane.session_open(A.SessionOpen((5, 9), key, 77, 88, False))
    assert opened[0][1:] == (5, 77, 9, 88, (PEER, 1701), "sls0-9", 1400, True) and opened[0][0] is tsock
    s = plane.sessions[(5, 9)]
    unit = s.ks.unit
    # Our LCP Configure-Request: to the channel fd, without the L2TP header and FF 03.
    plane.send_l2tp(key, b"\x00\x02\x00\x4d\x00\x58\xff\x03\xc0\x21\x01\x01\x00\x04")
    assert unit.chan_peer.recv(100) == b"\xc0\x21\x01\x01\x00\x04"
    plane.send_l2tp(key, b"\x00\x02\x00\x4d\x00\x58\xff\x03\x80\x21\x01\x01\x00\x04")   # IPCP: the unit fd
    assert unit.unit_peer.recv(100) == b"\x80\x21\x01\x01\x00\x04"
    # The peer's frames come up as L2TP data messages of our session.
    unit.chan_peer.send(b"\xc0\x21\x02\x01\x00\x04")
    loop.readers[unit.chan_fd](3.0)
    assert up.got[-1] == ("on_l2tp", b"\x00\x02\x00\x05\x00\x09\xff\x03\xc0\x21\x02\x01\x00\x04", key)
    # A data message for a session the kernel does not have goes out as L2TP data (closing PPP, say).
    plane.send_l2tp(key, b"\x00\x02\x00\x4d\x00\x59\xff\x03\xc0\x21\x05\x01\x00\x04")
    assert tsock.sent[-1][0].endswith(b"\xc0\x21\x05\x01\x00\x04")

    # The client asked for MRU 1280: its unit sends no more, though option mtu is 1400.
    plane.session_up(A.SessionUp((5, 9), key, b"", False, "10.77.0.10", "sls0", mtu=1280))
    assert host.steps == [("source_guard", "sluice_sls0", "sls0-*"),        # at start: the source check
                          ("addr_add", "sls0-9", "10.77.0.1", None), ("link_up", "sls0-9", 1280)]
    assert plane.host_step("route_add", ("10.77.0.10/32", "sls0", "10.77.0.1")) == (
        "route_add", ("10.77.0.10/32", "sls0-9", "10.77.0.1"))
    assert plane.host_step("addr_add", ("sls0", "10.77.0.1", None)) == ("addr_add", ("sls0", "10.77.0.1", None))
    socks.stats["sls0-9"] = (100, 200, 1, 2)
    assert plane.counters_of((5, 9)) == (100, 200, 1, 2)
    socks.stats6["sls0-9"] = (60, 80, 1, 1)
    c = plane.session_counters((5, 9))
    assert c["unit"] == "sls0-9" and (c["rx_bytes"], c["tx_packets"]) == (100, 2)
    assert (c["rx6_bytes"], c["tx6_bytes"], c["rx6_packets"], c["tx6_packets"]) == (60, 80, 1, 1)

    # DPD / idle: inbound bytes that grew are traffic.
    plane.poll_counters(4.0)
    assert ("on_traffic", IKE_PEER) not in up.got
    twin.count(ME, 0xA1, 1000, 3)
    plane.poll_counters(5.0)
    assert up.got[-1] == ("on_traffic", IKE_PEER)
    assert plane.sa_counters()[0xA1] == {"packets_in": 3, "bytes_in": 1000}

    # Soft EXPIRE of the outbound SA names the pair by its inbound SPI; then a rekey.
    twin.expire(PEER, 0xB1, hard=False)
    plane._on_events(6.0)
    assert up.got[-1] == ("on_expiring", 0xA1, False)
    plane.install_sa(A.InstallSa(child(0xA2, 0xB2), None, None))
    plane.remove_sa(0xA1, 0xB1)
    assert sorted(s.spi for s in kp.xfrm.list_sas()) == [0xA2, 0xB2] and len(kp.xfrm.list_policies()) == 2
    assert (5, 9) in plane.sessions                     # the session survives the rekey

    plane.session_down((5, 9))
    assert (5, 9) not in plane.sessions and unit.chan_fd == -1 and 5 not in kp.tunnels
    assert plane.host_step("route_del", ("10.77.0.10/32", "sls0")) == ("route_del", ("10.77.0.10/32", "sls0-9"))
    plane.close()
    assert kp.xfrm.list_sas() == [] and kp.xfrm.list_policies() == [] and all(x.closed for x in socks.made)


def test_last_sa_of_a_peer_takes_its_policies_and_sockets():
    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.install_sa(A.InstallSa(child(0xA1, 0xB1), 1000, 2000))
    st = {s.spi: s for s in kp.xfrm.list_sas()}[0xA1]
    assert (st.limits.soft_bytes, st.limits.hard_bytes) == (1000, 2000)
    key = (PEER, 4500, 1701)
    plane.send_l2tp(key, b"\xc8\x02x")
    plane.session_open(A.SessionOpen((5, 9), key, 77, 88, False))
    twin.expire(ME, 0xA1, hard=True)
    plane._on_events(1.0)
    assert up.got[-1] == ("on_expiring", 0xA1, True)
    plane.remove_sa(0xA1, 0xB1)
    assert kp.xfrm.list_sas() == [] and kp.xfrm.list_policies() == []
    assert plane.sessions == {} and plane.tsocks == {} and socks.made[-1].closed


def test_nat_port_move_updates_the_kernel_sas():
    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.install_sa(A.InstallSa(child(0xA1, 0xB1), None, None))
    key = (PEER, 4500, 1701)
    plane.send_l2tp(key, b"\xc8\x02x")
    plane.session_open(A.SessionOpen((5, 9), key, 77, 88, False))
    n = len(twin.requests)
    plane.move_peer(IKE_PEER, (PEER, 31000))
    upd = [xfrm.parse_sa(nl.split_messages(m)[0][4]) for m in twin.requests[n:]]
    assert [(s.spi, s.encap) for s in upd] == [(0xA1, (2, 31000, 4500)), (0xB1, (2, 4500, 31000))]
    assert plane.counters["moves_not_followed"] == 0
    new_key = (PEER, 31000, 1701)
    assert plane.sessions[(5, 9)].peer == new_key and new_key in plane.tsocks
    # The socket's peer (the inner L2TP port) is unchanged: PPP frames still reach the channel.
    plane.send_l2tp(new_key, b"\x00\x02\x00\x4d\x00\x58\xff\x03\xc0\x21\x01\x01\x00\x04")
    assert plane.sessions[(5, 9)].ks.unit.chan_peer.recv(100) == b"\xc0\x21\x01\x01\x00\x04"
    plane.close()


def test_client_unit_is_ifname_and_status_says_kernel():
    twin, kp, plane, loop, up, socks, host, opened = make("client")
    assert len(socks.made) == 2                          # IKE only: no :1701 listener on a client
    plane.install_sa(A.InstallSa(child(0xA1, 0xB1), None, None))
    pol = [p for p in kp.xfrm.list_policies() if p.dir == xfrm.DIR_OUT][0]
    assert pol.selector.dport == 1701                   # the server's L2TP port
    key = (PEER, 4500, 1701)
    plane.send_l2tp(key, b"\xc8\x02sccrq")
    plane.session_open(A.SessionOpen((5, 9), key, 77, 88, False))
    assert opened[0][6] == "slc0" and opened[0][8] is False
    plane.session_up(A.SessionUp((5, 9), key, b"", False, "10.77.0.10", "slc0"))
    assert host.steps == [] and plane.single is plane.sessions[(5, 9)]

    class Ep:
        def status(self, now):
            return {"role": "client", "tunnels": [{"tunnel_id": 5, "sessions": [{"session_id": 9}]}]}

    r = R.Runner(loop, None, Ep(), plane, host, clock=lambda: 1.0)
    st = r.status()
    assert st["datapath"] == "kernel" and st["ifname"] == "slc0"
    assert st["tunnels"][0]["sessions"][0]["datapath"] == "kernel"
    plane.close()
    assert kp.xfrm.list_sas() == [] and kp.xfrm.list_policies() == []


class Log:
    def __init__(self):
        self.lines = []

    def info(self, fmt, *a):
        self.lines.append(fmt % a if a else fmt)


@pytest.mark.parametrize("want,ok,section,expect", [
    ("user", True, {}, "user"),
    ("auto", True, {}, "kernel"),
    ("auto", False, {}, "user"),
    ("auto", True, {"ipv6": True}, "kernel"),              # the server's IPv6 and DHCPINFORM: unit sockets
    ("kernel", True, {"ipv6": True, "client_routes": ["198.51.100.0/24"]}, "kernel"),
    ("kernel", True, {}, "kernel"),
])
def test_choose_datapath(want, ok, section, expect):
    sec = type("S", (), dict(section, datapath=want))()
    got, why = R.choose_datapath(sec, "server", Log(), probe=lambda: (ok, "probe says %s" % ok),
                                 multi_nat=lambda: (True, "6.12"))
    assert got == expect


def test_client_ipv6_takes_the_kernel_path():
    sec = type("S", (), {"datapath": "auto", "ipv6": True})()
    assert R.choose_datapath(sec, "client", Log(), probe=lambda: (True, "ok"))[0] == "kernel"


def test_kernel_refused_says_why():
    sec = type("S", (), {"datapath": "kernel"})()
    with pytest.raises(RuntimeError, match="kmod-pppol2tp"):
        R.choose_datapath(sec, "client", Log(), probe=lambda: (False, "kmod-pppol2tp / l2tp_ppp missing"))


def test_datapath_option_defaults_to_auto():
    from sluice.config.model import SERVER_OPTIONS, CLIENT_OPTIONS

    assert SERVER_OPTIONS["datapath"][1] == "auto" and CLIENT_OPTIONS["datapath"][1] == "auto"
    sec = type("S", (), {})()
    assert R.choose_datapath(sec, "client", Log(), probe=lambda: (True, "ok"))[0] == "kernel"


@pytest.mark.parametrize("server_kbit,user_kbit", [(2000, 0), (0, 500)])
def test_rate_limits_need_tc_on_the_kernel_path(server_kbit, user_kbit, monkeypatch):
    import shutil

    sec = type("S", (), {"datapath": "auto", "rate_kbit": server_kbit})()
    cfg = type("C", (), {"users": [type("U", (), {"rate_kbit": 0})(), type("U", (), {"rate_kbit": user_kbit})()]})()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    log = Log()
    assert R.choose_datapath(sec, "server", log, probe=lambda: (True, "ok"), config=cfg)[0] == "user"
    assert "rate_kbit" in log.lines[-1] and "tc-tiny" in log.lines[-1]
    sec.datapath = "kernel"
    with pytest.raises(RuntimeError, match="rate_kbit"):
        R.choose_datapath(sec, "server", Log(), probe=lambda: (True, "ok"), config=cfg)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/sbin/" + name)
    sec.datapath = "auto"
    assert R.choose_datapath(sec, "server", Log(), probe=lambda: (True, "ok"), config=cfg)[0] == "kernel"


def test_rate_limit_is_tc_on_the_session_unit():
    from sluice.engine.host import tc_argvs

    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.install_sa(A.InstallSa(child(0xA1, 0xB1), None, None))
    key = (PEER, 4500, 1701)
    plane.send_l2tp(key, b"\xc8\x02sccrp")
    plane.session_open(A.SessionOpen((5, 9), key, 77, 88, False))
    plane.session_up(A.SessionUp((5, 9), key, b"", False, "10.77.0.10", "sls0", 250000))
    assert ("rate_limit", "sls0-9", 250000) in host.steps
    tbf, ingress, police = tc_argvs("rate_limit", ("sls0-9", 250000))
    assert tbf[:6] == ["qdisc", "replace", "dev", "sls0-9", "root", "tbf"] and "2000000bit" in tbf
    assert ingress[-1] == "ingress" and police[police.index("police") + 1:police.index("police") + 3] == [
        "rate", "2000000bit"] and "drop" in police
    plane.session_up(A.SessionUp((5, 9), key, b"", False, "10.77.0.11", "sls0", None))
    assert len([h for h in host.steps if h[0] == "rate_limit"]) == 1


def test_status_text_names_the_kernel_path():
    from sluice.cli import format_status

    st = {"name": "lns", "role": "server", "listen": "0.0.0.0", "ifname": "sls0", "pool": {}, "sessions": 1,
          "datapath": "kernel", "tunnels": [{"tunnel_id": 5, "peer": "p", "peer_tunnel_id": 7, "state": "up",
                                              "sessions": [{"session_id": 9, "user": "alice", "ip": "10.77.0.10",
                                                            "state": "up", "uptime": 3, "rx_bytes": 1,
                                                            "tx_bytes": 2, "datapath": "kernel",
                                                            "unit": "sls0-9"}]}]}
    text = format_status(st)
    assert "kernel data path (XFRM" in text and "kernel data path (sls0-9)" in text
    st["datapath"] = "user"
    st["tunnels"][0]["sessions"][0]["datapath"] = "user"
    assert "kernel" not in format_status(st)


class WarnLog(Log):
    def warning(self, fmt, *a):
        self.lines.append(fmt % a if a else fmt)


def test_only_esp_the_kernel_can_install_is_negotiated():
    # A router without kmod-crypto-gcm: the kernel answers ENOSYS for rfc4106(gcm(aes)). GCM must then be neither
    # accepted (server) nor offered (client), or the tunnel would come up and its SAs fail to install.
    from sluice.engine.ikeconf import initiator_config, responder_config
    from sluice.ike import proposals as P

    twin, kp, plane, *_ = make()
    twin.missing.add("rfc4106(gcm(aes))")
    log = WarnLog()
    srv = type("S", (), dict(psk="k", ike=None, esp=None, legacy=False, cert=None, key=None, ca=None, listen="0.0.0.0",
                             dpd_delay=30, dpd_timeout=120))()
    cfg = responder_config(srv, R._kernel_esp(plane, log))
    names = cfg.esp.names()
    assert names and not [n for n in names if "gcm" in n]
    assert len(cfg.esp) == len([t for t in P.default_esp() if "gcm" not in P.esp_algorithms(t)])
    assert [l for l in log.lines if "aes128gcm16" in l and "aes256gcm16" in l and "kmod-crypto-gcm" in l]
    assert not twin.sas                                     # the probes left nothing behind
    probes = []
    esp_supported = plane.esp_supported
    plane.esp_supported = lambda names: probes.append(list(names)) or esp_supported(names)
    make_cfg = initiator_config(srv, R._kernel_esp(plane, log))
    assert len(probes) == 1                                  # at start: not in the first dial's set-up time
    assert make_cfg("192.0.2.9", "192.0.2.1").esp.names() == ["aes256-sha1", "aes128-sha1", "aes256-sha256",
                                                              "aes128-sha256"]
    assert len(probes) == 1                                  # and once per algorithm
    srv.esp = ["aes256gcm16"]
    with pytest.raises(RuntimeError, match="none of the ESP proposals .*datapath 'user'"):
        responder_config(srv, R._kernel_esp(plane, log))


def test_source_check_is_nftables_fib_for_every_unit_and_goes_at_stop():
    from sluice.engine.host import nft_argvs

    twin, kp, plane, loop, up, socks, host, opened = make()
    assert host.steps[0] == ("source_guard", "sluice_sls0", "sls0-*")
    argvs = nft_argvs("source_guard", ("sluice_sls0", "sls0-*"))
    assert argvs[0] == ["delete", "table", "inet", "sluice_sls0"]          # a crashed run's table goes first
    assert " ".join(argvs[-1]).endswith('pre iifname "sls0-*" fib saddr . iif oif missing counter drop')
    plane.finish()
    assert host.steps[-1] == ("source_guard_off", "sluice_sls0")
    assert nft_argvs("source_guard_off", ("sluice_sls0",)) == [["delete", "table", "inet", "sluice_sls0"]]
    long = KernelPlane(loop, up, "server", os.urandom, True, sockets=socks, kernel=kp, host=Host(),
                       ifname="sluice-office0")
    assert long._unit_pattern() == "sluice-of*" and long._guard_table() == "sluice_sluice_office0"
    # the wildcard covers every unit name a server can give, whatever the name's length and the session id
    import fnmatch

    from sluice.engine.kernelplane import unit_name, unit_pattern

    for base in ("s", "sls0", "sluice-ab", "sluice-abc", "sluice-office0", "x" * 15):
        for sid in (1, 9, 10, 999, 4242, 65535):
            name = unit_name(base, sid)
            assert len(name) <= 15 and fnmatch.fnmatchcase(name, unit_pattern(base)), (base, sid, name)


# --- several clients behind one NAT ------------------------------------------------------------------------------

def child_at(port, spi_in, spi_out):
    c = child(spi_in, spi_out)
    c.peer = (PEER, port)
    return c


def ctl(tid, msg_type, assigned_tid=None):
    """An L2TP control message: header, Message Type AVP, and an Assigned Tunnel ID AVP."""
    avps = bytes((0x80, 8, 0, 0, 0, 0, 0, msg_type))
    if assigned_tid is not None:
        avps += bytes((0x80, 8, 0, 0, 0, 9, assigned_tid >> 8, assigned_tid & 255))
    n = 12 + len(avps)
    return bytes((0xC8, 0x02, n >> 8, n & 255, tid >> 8, tid & 255, 0, 0, 0, 0, 0, 0)) + avps


def test_two_clients_behind_one_nat_each_have_their_outbound_sa_policy_and_mark():
    twin, kp, plane, loop, up, socks, host, opened = make()
    listener = socks.made[2]
    assert plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None)) is None
    assert plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None)) is None
    sas = {s.spi: s for s in kp.xfrm.list_sas()}
    # one inbound reqid for the address (the first client's), an outbound reqid and mark per client
    assert sas[0xA1].reqid == sas[0xA2].reqid == sas[0xB1].reqid != sas[0xB2].reqid
    assert sas[0xB1].mark == (sas[0xB1].reqid, 0xFFFFFFFF) and sas[0xB2].mark == (sas[0xB2].reqid, 0xFFFFFFFF)
    assert sas[0xA1].mark is None and sas[0xA2].mark is None and sas[0xB2].reqid >> 24 == 0x5C
    # what the second client's inbound SA decrypts carries its mark; the first client's is left unmarked (a server
    # whose clients have addresses of their own marks nothing), and outbound SAs set none
    assert sas[0xA1].set_mark is None and sas[0xA2].set_mark == sas[0xB2].mark
    assert sas[0xB1].set_mark is None and sas[0xB2].set_mark is None
    pols = kp.xfrm.list_policies()
    ins = [p for p in pols if p.dir == xfrm.DIR_IN]
    outs = sorted((p.mark, p.tmpl_reqid if hasattr(p, "tmpl_reqid") else None) for p in pols if p.dir == xfrm.DIR_OUT)
    assert len(ins) == 1 and len(outs) == 2 and {m for m, _ in outs} == {sas[0xB1].mark, sas[0xB2].mark}
    assert plane.counters["shared_address_clients"] == 1

    # Client 1's SCCRQ: its inbound SA counted the bytes; it goes up with client 1's key.
    k1, k2 = (PEER, 4501, 1701), (PEER, 4502, 1701)
    plane.poll_counters(1.0)
    twin.count(ME, 0xA1, 100, 1)
    listener.inbox.append((ctl(0, 1, 0x1111), (PEER, 1701)))
    loop.readers[listener](2.0)
    assert up.got[-1][2] == k1
    # the retransmission follows the first choice
    listener.inbox.append((ctl(0, 1, 0x1111), (PEER, 1701)))
    loop.readers[listener](2.1)
    assert up.got[-1][2] == k1
    # Our SCCRP assigns our tunnel ID 0x0501: later messages naming it are client 1's.
    plane.send_l2tp(k1, ctl(0x1111, 2, 0x0501))
    t1 = socks.made[-1]
    assert t1.mark == sas[0xB1].reqid and t1.peer == (PEER, 1701)
    # Client 2's SCCRQ: the one client without a tunnel.
    twin.count(ME, 0xA2, 100, 1)
    listener.inbox.append((ctl(0, 1, 0x2222), (PEER, 1701)))
    loop.readers[listener](3.0)
    assert up.got[-1][2] == k2
    plane.send_l2tp(k2, ctl(0x2222, 2, 0x0502))
    t2 = socks.made[-1]
    assert t2.mark == sas[0xB2].reqid and t2 is not t1 and t1.rcvmark and t2.rcvmark
    # no mark came with these SCCRQs: the counters decided, and each decided alone (no guess)
    assert plane.counters["attributed_by_mark"] == 0 and plane.counters["misattributed"] == 0
    # Whatever tunnel socket the kernel hands them to, messages go up with the key of their tunnel ID.
    t1.inbox.append((ctl(0x0502, 3), (PEER, 1701)))
    loop.readers[t1](4.0)
    assert up.got[-1][2] == k2
    t2.inbox.append((ctl(0x0501, 3), (PEER, 1701)))
    loop.readers[t2](4.1)
    assert up.got[-1][2] == k1
    plane.session_open(A.SessionOpen((0x0502, 9), k2, 0x2222, 88, False))
    assert opened[-1][0] is t2
    # sa_counters reads each client's marked outbound SA
    twin.count(PEER, 0xB2, 50, 2)
    assert plane.sa_counters()[0xB2] == {"packets_out": 2, "bytes_out": 50}

    # A NAT port move of client 2 is followed (UPDSA keeps its mark and the shared inbound reqid).
    n = len(twin.requests)
    plane.move_peer((PEER, 4502), (PEER, 31000))
    upd = [xfrm.parse_sa(nl.split_messages(m)[0][4]) for m in twin.requests[n:]]
    assert [(s.spi, s.mark) for s in upd] == [(0xA2, None), (0xB2, sas[0xB2].mark)]
    assert upd[0].set_mark == sas[0xB2].mark and upd[1].set_mark is None
    assert upd[0].reqid == sas[0xA1].reqid
    assert (PEER, 31000) in plane.peers and plane.sessions[(0x0502, 9)].peer == (PEER, 31000, 1701)
    t1.inbox.append((ctl(0x0502, 3), (PEER, 1701)))
    loop.readers[t1](5.0)
    assert up.got[-1][2] == (PEER, 31000, 1701)

    # Client 1 leaves: its outbound policy, SAs and socket go; the shared inbound policy stays for client 2.
    plane.remove_sa(0xA1, 0xB1)
    pols = kp.xfrm.list_policies()
    assert len([p for p in pols if p.dir == xfrm.DIR_IN]) == 1 and len(pols) == 2 and t1.closed
    assert sorted(s.spi for s in kp.xfrm.list_sas()) == [0xA2, 0xB2] and not t2.closed
    plane.remove_sa(0xA2, 0xB2)
    assert kp.xfrm.list_sas() == [] and kp.xfrm.list_policies() == [] and plane.addrs == {} and plane.peers == {}
    plane.close()


def test_two_clients_dialling_at_once_are_told_apart_by_the_mark_their_inbound_sa_set():
    # Both SAs up, then both SCCRQs from (PEER, 1701) before any poll: both inbound SAs counted bytes, so the
    # counters cannot decide. Each SCCRQ carries the set-mark of the SA that decrypted it (SO_RCVMARK).
    twin, kp, plane, loop, up, socks, host, opened = make()
    listener = socks.made[2]
    assert listener.rcvmark and plane.rcvmark
    plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None))
    sas = {s.spi: s for s in kp.xfrm.list_sas()}
    assert sas[0xA1].set_mark is None       # the first client at the address: what it decrypts is unmarked (0)
    m1, m2 = 0, sas[0xA2].set_mark[0]
    k1, k2 = (PEER, 4501, 1701), (PEER, 4502, 1701)
    plane.poll_counters(1.0)
    twin.count(ME, 0xA1, 100, 1)
    twin.count(ME, 0xA2, 100, 1)
    # client 2's first, then client 1's, in one read
    listener.inbox += [(ctl(0, 1, 0x2222), (PEER, 1701), m2), (ctl(0, 1, 0x1111), (PEER, 1701), m1)]
    loop.readers[listener](2.0)
    assert [g[2] for g in up.got[-2:]] == [k2, k1]
    assert plane.counters["attributed_by_mark"] == 2 and plane.counters["misattributed"] == 0
    # Our SCCRP to client 1 opens its tunnel socket; client 2's retransmitted SCCRQ may land on it (same
    # address and inner port): its mark still says client 2.
    plane.send_l2tp(k1, ctl(0x1111, 2, 0x0501))
    t1 = socks.made[-1]
    assert t1.rcvmark
    t1.inbox.append((ctl(0, 1, 0x2222), (PEER, 1701), m2))
    loop.readers[t1](2.5)
    assert up.got[-1][2] == k2
    # a mark of no client at the address (another SA's, or 0): the old way decides
    t1.inbox.append((ctl(0, 1, 0x3333), (PEER, 1701), 0x12345678))
    loop.readers[t1](2.6)
    assert up.got[-1][2] in (k1, k2) and plane.counters["attributed_by_mark"] == 3
    plane.close()


def test_early_inbound_sa_and_its_update_carry_the_clients_mark():
    # A second client at the address renews its pair: the early inbound SA (Quick Mode message 2) and its UPDSA
    # carry that client's mark. The first client's renewals stay unmarked.
    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None))
    out_mark = {s.spi: s for s in kp.xfrm.list_sas()}[0xB2].mark
    plane.install_sa_inbound(_inbound_at(4502, 0xA3))
    plane.install_sa_inbound(_inbound_at(4501, 0xA4))
    sas = {s.spi: s for s in kp.xfrm.list_sas()}
    assert sas[0xA3].set_mark == out_mark and sas[0xA3].mark is None and sas[0xA4].set_mark is None
    n = len(twin.requests)
    plane.install_sa(A.InstallSa(child_at(4502, 0xA3, 0xB3), None, None))
    upd = xfrm.parse_sa(nl.split_messages(twin.requests[n])[0][4])
    assert upd.spi == 0xA3 and upd.set_mark == out_mark
    # The inbound policy has no mark: it takes whatever the SA set.
    assert [p.mark for p in kp.xfrm.list_policies() if p.dir == xfrm.DIR_IN] == [None]
    plane.close()


def test_without_so_rcvmark_the_counters_guess_and_count_it():
    # A kernel before 5.19: setsockopt(SO_RCVMARK) fails, datagrams are read without marks.
    twin, kp, plane, loop, up, socks, host, opened = make_with(rcvmark=False)
    listener = socks.made[2]
    assert not plane.rcvmark
    plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None))
    plane.poll_counters(1.0)
    twin.count(ME, 0xA2, 100, 1)
    listener.inbox.append((ctl(0, 1, 0x2222), (PEER, 1701), 0x5C000099))   # no mark reaches us
    loop.readers[listener](2.0)
    assert up.got[-1][2] == (PEER, 4502, 1701) and plane.counters["misattributed"] == 0
    twin.count(ME, 0xA1, 100, 1)
    twin.count(ME, 0xA2, 200, 1)
    listener.inbox.append((ctl(0, 1, 0x1111), (PEER, 1701)))
    loop.readers[listener](3.0)
    # client 2 is busy with its SCCRQ: the one free client takes it, no guess needed
    assert up.got[-1][2] == (PEER, 4501, 1701) and plane.counters["misattributed"] == 0
    plane.close()


def test_without_marks_two_at_once_is_a_counted_guess():
    twin, kp, plane, loop, up, socks, host, opened = make()
    listener = socks.made[2]
    plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None))
    plane.poll_counters(1.0)
    twin.count(ME, 0xA1, 100, 1)
    twin.count(ME, 0xA2, 100, 1)
    listener.inbox.append((ctl(0, 1, 0x2222), (PEER, 1701)))
    loop.readers[listener](2.0)
    assert plane.counters["misattributed"] == 1 and plane.counters["attributed_by_mark"] == 0
    plane.close()


def test_close_removes_every_client_of_a_shared_address():
    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA3, 0xB3), None, None))     # client 2 rekeys
    assert len(kp.xfrm.list_policies()) == 3 and len(kp.xfrm.list_sas()) == 6
    plane.close()
    assert kp.xfrm.list_sas() == [] and kp.xfrm.list_policies() == []


def _data(tid, sid, proto, payload):
    return bytes((0, 2, tid >> 8, tid & 255, sid >> 8, sid & 255, 0xFF, 0x03, proto >> 8, proto & 255)) + payload


def _ip4(src, dst, n=40):
    from scapy.layers.inet import IP, UDP

    return bytes(IP(src=src, dst=dst) / UDP(sport=5000, dport=5001) / (b"x" * n))


def test_old_kernel_carries_the_second_client_at_an_address_in_user_space():
    """Before Linux 6.11 the kernel carries the L2TP data of one client per address. The second client's SAs and
    marked policy are in the kernel as anyone's, but its session is a user-space one: its data comes up on the
    first client's tunnel socket (l2tp_core passes up what it has no session for) and goes to the TUN; what the
    TUN routes to it leaves through the listener with its mark; it never gets a connected socket (which would
    take the address pair from the first client's kernel tunnel)."""
    from sluice.engine.twins import MemoryTun

    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.tun = tun = MemoryTun("sls0")
    plane.multi_nat = False
    listener = socks.made[2]
    k1, k2 = (PEER, 4501, 1701), (PEER, 4502, 1701)
    assert plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None)) is None
    assert plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None)) is None
    assert plane.counters["shared_address_user"] == 1
    assert sorted(s.spi for s in kp.xfrm.list_sas()) == [0xA1, 0xA2, 0xB1, 0xB2]
    mark2 = {s.spi: s for s in kp.xfrm.list_sas()}[0xB2].mark[0]
    # SCCRPs: client 1's opens its connected tunnel socket; client 2's leaves through the listener, marked.
    plane.send_l2tp(k1, ctl(0x1111, 2, 0x0501))
    t1 = socks.made[-1]
    assert t1.peer == (PEER, 1701)
    made = len(socks.made)
    plane.send_l2tp(k2, ctl(0x2222, 2, 0x0502))
    assert len(socks.made) == made and listener.marked == [(ctl(0x2222, 2, 0x0502), (PEER, 1701), mark2)]
    # Sessions: client 1's in the kernel, client 2's in user space (no kernel session, no unit).
    plane.session_open(A.SessionOpen((0x0501, 7), k1, 0x1111, 77, False))
    plane.session_open(A.SessionOpen((0x0502, 9), k2, 0x2222, 88, False))
    assert [o[1] for o in opened] == [0x0501] and (0x0502, 9) in plane.user
    plane.session_up(A.SessionUp((0x0502, 9), k2, b"", False, "10.77.0.11", "sls0"))
    assert plane.counters["unknown_session"] == 0
    assert not [st for st in host.steps if "sls0-9" in st]      # its /32 stays on the TUN
    assert plane.host_step("route_add", ("10.77.0.11/32", "sls0", "10.77.0.1"))[1][1] == "sls0"
    # Its data, passed up on client 1's tunnel socket, goes to the TUN; the endpoint does not see it.
    pkt = _ip4("10.77.0.11", "192.0.2.80")
    n_up = len(up.got)
    t1.inbox.append((_data(0x0502, 9, 0x21, pkt), (PEER, 1701), mark2))
    loop.readers[t1](2.0)
    assert tun.taken == [pkt] and len(up.got) == n_up
    # ... but only from its own address; and its PPP control frames are the endpoint's.
    t1.inbox.append((_data(0x0502, 9, 0x21, _ip4("10.77.0.99", "192.0.2.80")), (PEER, 1701), mark2))
    echo = _data(0x0502, 9, 0xC021, b"\x09\x01\x00\x08\x00\x00\x00\x00")
    t1.inbox.append((echo, (PEER, 1701), mark2))
    loop.readers[t1](2.1)
    assert tun.taken == [pkt] and plane.counters["user_spoofed"] == 1
    # Client 1 (same address and inner port, unmarked SA) sending with client 2's IDs: not client 2's.
    t1.inbox.append((_data(0x0502, 9, 0x21, pkt), (PEER, 1701), 0))
    loop.readers[t1](2.15)
    assert tun.taken == [pkt] and plane.counters["wrong_peer"] == 1
    assert up.got[-1] == ("on_l2tp", echo, k2)
    # The endpoint's frames for it leave marked through the listener too.
    plane.send_l2tp(k2, echo)
    assert listener.marked[-1] == (echo, (PEER, 1701), mark2)
    # What the TUN routes to its address: one L2TP data message to it, marked.
    back = _ip4("192.0.2.80", "10.77.0.11", 1200)
    tun.inject(back)
    loop.readers[tun](2.2)
    assert listener.marked[-1] == (bytes((0, 2, 0x22, 0x22, 0, 88, 0xFF, 0x03, 0, 0x21)) + back, (PEER, 1701),
                                   mark2)
    tun.inject(_ip4("192.0.2.80", "10.77.0.12"))      # nobody's address
    loop.readers[tun](2.3)
    assert plane.counters["user_no_route"] == 1
    st = plane.session_counters((0x0502, 9))
    assert (st["datapath"], st["unit"], st["rx_packets"], st["tx_packets"], st["spoofed"]) == ("user", "sls0", 1, 1, 1)
    assert plane.counters_of((0x0502, 9)) == (len(pkt), len(back), 1, 1)
    # IPv6: its /64 both ways through the TUN; Neighbor Discovery (link-local) to the endpoint.
    from scapy.layers.inet6 import ICMPv6ND_RS, IPv6

    plane.session6_up(A.Session6Up((0x0502, 9), b"\x20\x01\x0d\xb8\x00\x77\x00\x0b", b"\x00" * 7 + b"\x02"))
    six = bytes(IPv6(src="2001:db8:77:b::2", dst="2001:db8::80") / (b"y" * 20))
    rs = _data(0x0502, 9, 0x57, bytes(IPv6(src="fe80::2", dst="ff02::2") / ICMPv6ND_RS()))
    t1.inbox += [(_data(0x0502, 9, 0x57, six), (PEER, 1701), mark2), (rs, (PEER, 1701), mark2),
                 (_data(0x0502, 9, 0x57, bytes(IPv6(src="2001:db8:99::2", dst="2001:db8::80"))), (PEER, 1701), mark2)]
    loop.readers[t1](2.4)
    assert tun.taken[-1] == six and up.got[-1] == ("on_l2tp", rs, k2) and plane.counters["user_spoofed"] == 2
    down6 = bytes(IPv6(src="2001:db8::80", dst="2001:db8:77:b::2") / (b"z" * 30))
    tun.inject(down6)
    loop.readers[tun](2.5)
    assert listener.marked[-1][0] == bytes((0, 2, 0x22, 0x22, 0, 88, 0xFF, 0x03, 0, 0x57)) + down6
    st = plane.session_counters((0x0502, 9))
    assert (st["rx6_packets"], st["tx6_packets"], st["rx_packets"], st["tx_packets"]) == (1, 1, 2, 2)
    plane.session6_down((0x0502, 9))
    tun.inject(down6)
    loop.readers[tun](2.6)
    assert plane.counters["user_no_route"] == 2
    # Client 2's last SA goes: its session with it; client 1 stays in the kernel.
    plane.remove_sa(0xA2, 0xB2)
    assert (0x0502, 9) not in plane.user and (0x0501, 7) in plane.sessions and plane.user_peers == 0
    plane.close()
    assert kp.xfrm.list_sas() == [] and kp.xfrm.list_policies() == []


def test_a_new_kernel_keeps_every_client_at_an_address_in_the_kernel():
    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.multi_nat = True
    plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None))
    assert plane.counters["shared_address_user"] == 0 and plane.user_peers == 0
    plane.session_open(A.SessionOpen((0x0502, 9), (PEER, 4502, 1701), 0x2222, 88, False))
    assert [o[1] for o in opened] == [0x0502] and plane.user is None
    plane.close()


@pytest.mark.parametrize("release,expect", [
    ("6.12.48+deb13-amd64", (True, (6, 12))),
    ("6.11.0", (True, (6, 11))),
    ("6.6.86", (False, (6, 6))),
    ("6.1.0-40-amd64", (False, (6, 1))),
    ("5.15.167", (False, (5, 15))),
    ("garbage", (False, (0, 0))),
])
def test_multi_nat_probe_reads_the_kernel_release(release, expect):
    uname = lambda: ("Linux", "host", release, "#1", "x86_64")   # noqa: E731
    ok, why = kernel_path.probe_multi_nat(uname)
    assert (ok, kernel_path.kernel_release(uname)) == expect and release in why


def test_a_server_on_an_old_kernel_takes_the_kernel_path_and_says_what_runs_in_user_space():
    # Before 6.11 the kernel carries one client's L2TP data per address; the kernel plane carries the others'
    # in user space (usersessions), so `auto` still picks the kernel, and the log says what that kernel lacks.
    sec = type("S", (), {"datapath": "auto"})()
    log = Log()
    got, why = R.choose_datapath(sec, "server", log, probe=lambda: (True, "ok"),
                                 multi_nat=lambda: (False, "kernel 6.1.0 cannot carry two L2TP clients behind one "
                                                           "NAT (needs Linux 6.11+)"))
    assert got == "kernel" and "behind one NAT" in why and "user space" in log.lines[-1]
    got, why = R.choose_datapath(sec, "client", log, probe=lambda: (True, "ok"), multi_nat=lambda: (False, "old"))
    assert got == "kernel" and why == "ok"
    got, why = R.choose_datapath(sec, "server", log, probe=lambda: (True, "ok"), multi_nat=lambda: (True, "6.12"))
    assert got == "kernel" and why == "ok"


def test_session_ids_are_unique_across_the_server():
    from sluice.l2tp.demux import TunnelTable

    t = TunnelTable(os.urandom)
    t.sids[0x0101] = 1
    seq = iter([b"\x01\x01", b"\x01\x01", b"\x02\x02"])

    class T:
        sessions = {}
        owner = t
        rng = staticmethod(lambda n: next(seq))

    from sluice.l2tp.tunnel import Tunnel

    assert Tunnel._new_session_id(T()) == 0x0202


def test_status_says_why_the_data_path_was_chosen():
    twin, kp, plane, loop, up, socks, host, opened = make()

    class Ep:
        def status(self, now):
            return {"role": "server", "tunnels": []}

    r = R.Runner(loop, None, Ep(), plane, host, clock=lambda: 1.0)
    r.datapath_why = "kernel 6.1.0 cannot carry two L2TP clients behind one NAT (needs Linux 6.11+)"
    st = r.status()
    assert st["datapath_why"] == r.datapath_why and st["transport"]["shared_address_user"] == 0
    plane.close()


def test_leftovers_of_shared_address_clients_are_flushed_at_the_next_start():
    """kill -9 with two clients behind one NAT up: the next start removes their marked SAs and policies too."""
    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None))
    assert len(kp.xfrm.list_sas()) == 4 and len(kp.xfrm.list_policies()) == 3
    kp2 = kernel_path.KernelPath(xfrm.Xfrm(twin), l2tp_api=object(), events=Events(twin))
    assert kp2.start() == (4, 3)
    assert kp2.xfrm.list_sas() == [] and kp2.xfrm.list_policies() == []


def _inbound(spi_in, transform="aes256-sha1"):
    from sluice.ike.events import ChildSaInbound

    ek, ak, sl = transforms.esp_key_lengths(transform)
    return A.InstallSaInbound(ChildSaInbound(IKE_PEER, spi_in, transform, bytes(ek), bytes(ak), bytes(sl), True))


def _inbound_at(port, spi_in):
    a = _inbound(spi_in)
    a.child.peer = (PEER, port)
    return a


def test_rekey_inbound_sa_is_in_before_message_3():
    # The peer installs a renewed pair on our Quick Mode message 2 and sends on it at once: the inbound SA goes
    # into the kernel then (short hard lifetime), and the pair's InstallSa updates it and adds the outbound.
    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.install_sa_inbound(_inbound(0xA0))      # a peer without SAs yet: nothing (no reqid, no traffic)
    assert kp.xfrm.list_sas() == []
    plane.install_sa(A.InstallSa(child(0xA1, 0xB1), None, None))
    plane.install_sa_inbound(_inbound(0xA2))
    sas = {s.spi: s for s in kp.xfrm.list_sas()}
    assert sorted(sas) == [0xA1, 0xA2, 0xB1]
    assert sas[0xA2].reqid == sas[0xA1].reqid and sas[0xA2].limits.hard_seconds == 60
    assert sas[0xA2].encap == (2, 4500, 4500)
    n = len(twin.requests)
    plane.install_sa(A.InstallSa(child(0xA2, 0xB2), None, None))
    kinds = [nl.split_messages(m)[0][0] for m in twin.requests[n:]]
    assert kinds == [xfrm.UPDSA, xfrm.NEWSA]
    sas = {s.spi: s for s in kp.xfrm.list_sas()}
    assert sorted(sas) == [0xA1, 0xA2, 0xB1, 0xB2] and not sas[0xA2].limits.hard_seconds
    assert plane.early_in == {}
    # One whose message 3 never came: the kernel's hard expiry ends it; close() takes any still there.
    plane.install_sa_inbound(_inbound(0xA3))
    twin.expire(ME, 0xA3, hard=True)
    plane._on_events(2.0)
    assert plane.early_in == {} and ("on_expiring", 0xA3, True) not in up.got
    plane.install_sa_inbound(_inbound(0xA4))
    plane.close()
    assert kp.xfrm.list_sas() == [] and kp.xfrm.list_policies() == []


def test_ipv6_counters_come_from_the_kernels_per_interface_ipv6_mib(tmp_path, monkeypatch):
    # /proc/net/dev_snmp6/<unit> as the kernel writes it (name, value per line): In/OutOctets and
    # InReceives/OutRequests are the session's IPv6 bytes and packets; no such file (no IPv6 on the unit) is 0.
    from sluice.engine.kernelplane import KernelSockets

    text = ("ifIndex                         \t7\nIp6InReceives                   \t12\nIp6InHdrErrors"
            "                  \t0\nIp6OutRequests                  \t10\nIp6InOctets                     \t1248\n"
            "Ip6OutOctets                    \t1040\nIp6InMcastPkts                  \t3\nIcmp6InMsgs\t5\n")
    real_open = open

    def fake_open(path, *a, **k):
        if path == "/proc/net/dev_snmp6/sls0-9":
            p = tmp_path / "snmp6"
            p.write_text(text)
            return real_open(str(p), *a, **k)
        if path.startswith("/proc/net/dev_snmp6/"):
            raise FileNotFoundError(path)
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    ks = KernelSockets.__new__(KernelSockets)
    assert ks.netdev6_stats("sls0-9") == (1248, 1040, 12, 10)
    assert ks.netdev6_stats("sls0-10") == (0, 0, 0, 0)


def test_a_user_space_session_answers_dhcpinform_and_keeps_its_rate():
    from scapy.layers.inet import IP, UDP
    from sluice.engine.twins import MemoryTun

    twin, kp, plane, loop, up, socks, host, opened = make()
    plane.tun = tun = MemoryTun("sls0")
    plane.multi_nat = False
    plane.dhcp = True
    k2 = (PEER, 4502, 1701)
    plane.install_sa(A.InstallSa(child_at(4501, 0xA1, 0xB1), None, None))
    plane.install_sa(A.InstallSa(child_at(4502, 0xA2, 0xB2), None, None))
    plane.session_open(A.SessionOpen((0x0502, 9), k2, 0x2222, 88, False))
    mark2 = {s.spi: s for s in kp.xfrm.list_sas()}[0xA2].set_mark[0]   # what client 2's inbound SA sets
    plane.session_up(A.SessionUp((0x0502, 9), k2, b"", False, "10.77.0.11", "sls0", rate=40000))
    listener = socks.made[2]
    inform = bytes(IP(src="10.77.0.11", dst="255.255.255.255") / UDP(sport=68, dport=67) / (b"\0" * 240))
    listener.inbox.append((_data(0x0502, 9, 0x21, inform), (PEER, 1701), mark2))
    plane.key_of_tid[0x0502] = k2
    loop.readers[listener](1.0)
    assert up.got[-1][:2] == ("on_dhcp", (0x0502, 9)) and tun.taken == []
    plane.send_to_session((0x0502, 9), b"\x45" + b"\0" * 27)       # the DHCPACK goes into the session, marked
    assert listener.marked[-1][0].endswith(b"\x45" + b"\0" * 27)
    # 40 kB/s with a 32 kB burst: a burst of 1400-byte packets in one instant is cut after about 23.
    big = _ip4("10.77.0.11", "192.0.2.80", 1372)
    listener.inbox += [(_data(0x0502, 9, 0x21, big), (PEER, 1701), mark2)] * 30
    for _ in range(2):
        loop.readers[listener](2.0)
    assert 20 <= len(tun.taken) <= 25 and plane.counters["user_policed"] == 30 - len(tun.taken)
    plane.close()
