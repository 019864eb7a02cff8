"""The user-space data plane's per-packet paths, one UserPlane on twins with a peer SA pair in the test: the
packet sealed in place in the TUN buffer is the one the peer opens (for every ESP transform), sessions that
need Ns on every message, plain L2TP, a NAT move re-aiming raw ESP, the receive-side session index kept in
step with session_up/session_down, and the per-packet counters in `counters`. No timing is asserted."""

import socket
import struct

import pytest

from sluice.endpoint import actions as A
from sluice.engine.twins import MemoryTun
from sluice.engine.userplane import HEADROOM, MAX_PACKET, TAILROOM, UserPlane
from sluice.esp import Inbound, Outbound
from sluice.hal.crypto import openssl, transforms
from sluice.ike.events import ChildSaUp

PEER, LOCAL = "192.0.2.2", "192.0.2.1"
CLIENT_IP, SERVER_IP = "10.77.0.10", "10.77.0.1"
TID, SID, PEER_TID, PEER_SID = 0x1111, 0x2222, 0x3333, 0x4444
SPI_IN, SPI_OUT = 0x10000001, 0x20000002


class Loop:
    def add_reader(self, fd, cb):
        pass

    def remove_reader(self, fd):
        pass

    def call_at(self, deadline, cb):
        pass


class Up:
    hint_unknown_spi = False

    def __init__(self):
        self.l2tp = []
        self.moved = []

    def on_ike(self, data, local, peer, now):
        pass

    def on_l2tp(self, data, key, now):
        self.l2tp.append((bytes(data), key))

    def on_esp_from(self, spi, outer, now):
        self.moved.append((spi, outer))

    def on_traffic(self, peer, now):
        pass

    def on_expiring(self, spi, hard, now):
        pass


class Sock:
    """Raw ESP or UDP/4500 socket twin: keeps what is sent, hands out what the test queues."""

    def __init__(self):
        self.sent = []
        self.inbox = []

    def fileno(self):
        return 7

    def sendto(self, data, addr):
        self.sent.append((bytes(data), addr))
        return len(data)

    def sendmsg(self, parts, anc=(), flags=0, addr=None):
        self.sent.append((b"".join(bytes(p) for p in parts), addr))

    def recvfrom_into(self, buf):
        if not self.inbox:
            raise BlockingIOError
        data, addr = self.inbox.pop(0)
        buf[:len(data)] = data
        return len(data), addr


def ip_packet(src, dst, size):
    body = bytes(i & 0xFF for i in range(size - 20))
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, 0, 0, 64, 17, 0, socket.inet_aton(src),
                       socket.inet_aton(dst)) + body


def keys(name):
    ek, ak, sl = transforms.esp_key_lengths(name)
    return bytes(range(1, ek + 1)), bytes(range(101, 101 + ak)), bytes(range(201, 201 + sl))


def plane(name="aes128gcm16", sequencing=False, encap=False, role="server"):
    tun = MemoryTun("t0")
    up = Up()
    p = UserPlane(Loop(), up, role, openssl, __import__("os").urandom, tun, True, LOCAL)
    p.raw, p.s4500 = Sock(), Sock()
    ek, ak, sl = keys(name)
    peer = (PEER, 4500 if encap else 500)
    child = ChildSaUp(peer, SPI_IN, SPI_OUT, name, ek, ak, sl, ek, ak, sl, encap, 3600, None)
    assert p.install_sa(A.InstallSa(child, None, None)) is None
    p.outbound_sa(peer, SPI_OUT, encap)
    header = struct.pack("!HHH", 0x0002, PEER_TID, PEER_SID)
    addr = CLIENT_IP if role == "server" else "10.77.0.10"
    p.session_up(A.SessionUp((TID, SID), (peer[0], peer[1], 1701), header, sequencing, addr, "t0"))
    peer_out = Outbound(SPI_IN, name, ek, ak, sl, __import__("os").urandom, openssl)
    peer_in = Inbound(SPI_OUT, name, ek, ak, sl, None, openssl, window=256)
    return p, tun, up, peer_out, peer_in


def open_sent(peer_in, pkt):
    payload, nh = peer_in.open(pkt)
    assert nh == 17
    sport, dport, length, csum = struct.unpack("!HHHH", payload[:8])
    assert (sport, dport, length, csum) == (1701, 1701, len(payload), 0)
    return payload[8:]


@pytest.mark.parametrize("name", sorted(transforms.ESP))
def test_packet_sealed_in_place_is_what_the_peer_opens(name):
    p, tun, _, _, peer_in = plane(name)
    for size in (20, 21, 100, 1399, 1400, 1500):
        ip = ip_packet(SERVER_IP, CLIENT_IP, size)
        tun.inject(ip)
        p._on_tun(0.0)
        pkt, addr = p.raw.sent[-1]
        assert addr == (PEER, 0)
        assert open_sent(peer_in, pkt) == struct.pack("!HHH", 0x0002, PEER_TID, PEER_SID) + b"\xff\x03\x00\x21" + ip
    assert p.counters["esp_out"] == 6 and p.bundles[(TID, SID)].tx_packets == 6


def test_largest_packet_fits_the_buffer_with_its_trailer():
    p, tun, _, _, peer_in = plane("aes256-sha1")
    assert len(p.tbuf) == HEADROOM + MAX_PACKET + TAILROOM and len(p.tread) == MAX_PACKET
    ip = ip_packet(SERVER_IP, CLIENT_IP, MAX_PACKET - 64)
    tun.inject(ip)
    p._on_tun(0.0)
    assert open_sent(peer_in, p.raw.sent[-1][0])[10:] == ip


def test_sequencing_session_numbers_every_data_message():
    p, tun, _, _, peer_in = plane(sequencing=True)
    ip = ip_packet(SERVER_IP, CLIENT_IP, 60)
    for _ in range(3):
        tun.inject(ip)
    p._on_tun(0.0)
    ns = []
    for pkt, _ in p.raw.sent:
        l2tp = open_sent(peer_in, pkt)
        flags, tid, sid, n_s, n_r = struct.unpack("!HHHHH", l2tp[:10])
        assert flags & 0x0800 and (tid, sid, n_r) == (PEER_TID, PEER_SID, 0)
        assert l2tp[10:14] == b"\xff\x03\x00\x21" and l2tp[14:] == ip
        ns.append(n_s)
    assert ns == [0, 1, 2]


def test_inbound_data_reaches_the_tun_and_control_goes_up():
    p, tun, up, peer_out, _ = plane()
    ip = ip_packet(CLIENT_IP, SERVER_IP, 300)
    l2tp = struct.pack("!HHH", 0x0002, TID, SID) + b"\xff\x03\x00\x21" + ip
    inner = struct.pack("!HHHH", 1701, 1701, 8 + len(l2tp), 0) + l2tp
    ctrl = struct.pack("!HHHHHH", 0xC802, 12, TID, 0, 1, 1)  # a ZLB: T, L and S bits
    ctrl_inner = struct.pack("!HHHH", 1701, 1701, 8 + len(ctrl), 0) + ctrl
    iphdr = bytes(20)
    iphdr = b"\x45" + iphdr[1:]
    for inner_pkt in (inner, ctrl_inner):
        p.raw.inbox.append((iphdr + peer_out.seal(inner_pkt, 17), (PEER, 0)))
    p._on_raw(1.0)
    assert tun.taken == [ip]
    assert up.l2tp == [(ctrl, (PEER, 500, 1701))]
    b = p.bundles[(TID, SID)]
    assert (b.rx_packets, b.rx_bytes, p.counters["esp_in"]) == (1, 300, 2)
    # After session_down the same data message is no longer the data plane's: it goes up.
    p.session_down((TID, SID))
    assert not p.by_ids
    p.raw.inbox.append((iphdr + peer_out.seal(inner, 17), (PEER, 0)))
    p._on_raw(2.0)
    assert tun.taken == [ip] and up.l2tp[-1] == (l2tp, (PEER, 500, 1701))


def test_spoofed_source_is_dropped_on_the_ipsec_path():
    p, tun, _, peer_out, _ = plane()
    ip = ip_packet("10.77.0.99", SERVER_IP, 60)
    l2tp = struct.pack("!HHH", 0x0002, TID, SID) + b"\xff\x03\x00\x21" + ip
    inner = struct.pack("!HHHH", 1701, 1701, 8 + len(l2tp), 0) + l2tp
    p.raw.inbox.append((b"\x45" + bytes(19) + peer_out.seal(inner, 17), (PEER, 0)))
    p._on_raw(1.0)
    assert tun.taken == [] and p.counters["spoofed"] == 1 and p.bundles[(TID, SID)].spoofed == 1


def test_nat_t_port_change_is_reported_and_a_move_re_aims_the_route():
    p, tun, up, peer_out, peer_in = plane(encap=True)
    ip = ip_packet(CLIENT_IP, SERVER_IP, 60)
    l2tp = struct.pack("!HHH", 0x0002, TID, SID) + b"\xff\x03\x00\x21" + ip
    inner = struct.pack("!HHHH", 1701, 1701, 8 + len(l2tp), 0) + l2tp
    p.s4500.inbox.append((peer_out.seal(inner, 17), (PEER, 4501)))
    p._on_4500(1.0)
    assert up.moved == [(SPI_IN, (PEER, 4501))] and tun.taken == [ip]
    p.move_peer((PEER, 4500), (PEER, 4501))
    tun.inject(ip_packet(SERVER_IP, CLIENT_IP, 60))
    p._on_tun(2.0)
    pkt, addr = p.s4500.sent[-1]
    assert addr == (PEER, 4501) and open_sent(peer_in, pkt)[10:] == ip_packet(SERVER_IP, CLIENT_IP, 60)


def test_raw_route_follows_a_move_to_a_new_address():
    p, tun, _, _, _ = plane()
    p.move_peer((PEER, 500), ("198.51.100.7", 500))
    tun.inject(ip_packet(SERVER_IP, CLIENT_IP, 60))
    p._on_tun(0.0)
    assert p.raw.sent[-1][1] == ("198.51.100.7", 0)


def test_plain_l2tp_session_through_the_framed_path():
    tun = MemoryTun("t0")
    p = UserPlane(Loop(), Up(), "server", openssl, None, tun, False, LOCAL)
    p.udp = Sock()
    header = struct.pack("!HHH", 0x0002, PEER_TID, PEER_SID)
    p.session_up(A.SessionUp((TID, SID), (PEER, 1701), header, False, CLIENT_IP, "t0"))
    ip = ip_packet(SERVER_IP, CLIENT_IP, 80)
    tun.inject(ip)
    p._on_tun(0.0)
    assert p.udp.sent == [(header + b"\xff\x03\x00\x21" + ip, (PEER, 1701))]
    p.udp.inbox.append((struct.pack("!HHH", 0x0002, TID, SID) + b"\xff\x03\x00\x21" + ip_packet(CLIENT_IP, SERVER_IP, 80),
                        (PEER, 1701)))
    p._on_udp(0.0)
    assert tun.taken == [ip_packet(CLIENT_IP, SERVER_IP, 80)]


def test_counters_show_the_per_packet_ones_with_the_rare_ones():
    p, tun, _, _, _ = plane()
    tun.inject(ip_packet(SERVER_IP, "10.77.0.200", 60))  # no session for that address
    p._on_tun(0.0)
    c = p.counters
    assert c["no_route"] == 1 and c["esp_out"] == 0 and c["esp_in"] == 0
    assert set(c) >= {"unknown_spi", "esp_errors", "not_l2tp", "no_sa", "malformed", "spoofed", "send_errors"}


def test_ipv6_and_a_rate_limit_on_the_ipsec_path():
    # IPv6 goes through the framed path (its own PPP protocol), and a session with a rate limit meters both
    # directions; the receive side's meter needs the time (it used to raise NameError for IPv6).
    p, tun, _, peer_out, peer_in = plane()
    p.session_down((TID, SID))
    header = struct.pack("!HHH", 0x0002, PEER_TID, PEER_SID)
    p.session_up(A.SessionUp((TID, SID), (PEER, 500, 1701), header, False, CLIENT_IP, "t0", rate=1000000))
    net6 = bytes.fromhex("20010db800010002")
    p.session6_up(A.Session6Up((TID, SID), net6, bytes(8)))
    src6 = net6 + bytes(7) + b"\x01"
    dst6 = bytes.fromhex("20010db8000000000000000000000001")
    ip6 = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + src6 + dst6 + bytes(8)
    l2tp = struct.pack("!HHH", 0x0002, TID, SID) + b"\xff\x03\x00\x57" + ip6
    inner = struct.pack("!HHHH", 1701, 1701, 8 + len(l2tp), 0) + l2tp
    p.raw.inbox.append((b"\x45" + bytes(19) + peer_out.seal(inner, 17), (PEER, 0)))
    p._on_raw(1.0)
    assert tun.taken == [ip6] and p.bundles[(TID, SID)].rx6_packets == 1
    down6 = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + dst6 + src6 + bytes(8)
    tun.inject(down6)
    tun.inject(ip_packet(SERVER_IP, CLIENT_IP, 60))
    p._on_tun(2.0)
    got = [open_sent(peer_in, pkt) for pkt, _ in p.raw.sent]
    assert got == [header + b"\xff\x03\x00\x57" + down6, header + b"\xff\x03\x00\x21" + ip_packet(SERVER_IP, CLIENT_IP, 60)]


def test_renewed_pair_inbound_taken_at_message_2_drops_nothing():
    # The peer installs a renewed pair on our Quick Mode message 2 and sends on it at once, before our message 3
    # is processed: those packets must be opened (they were dropped as an unknown SPI), and the pair's
    # InstallSa then keeps the same SA (its replay window: a packet seen early cannot be replayed after).
    from sluice.ike.events import ChildSaInbound

    name = "aes128gcm16"
    p, tun, up, peer_out, _ = plane(name)
    ek, ak, sl = keys(name)
    new_in = 0x0C0FFEE1
    p.install_sa_inbound(A.InstallSaInbound(ChildSaInbound((PEER, 500), new_in, name, ek, ak, sl, False)))
    new_out = Outbound(new_in, name, ek, ak, sl, __import__("os").urandom, openssl)
    ip = ip_packet(CLIENT_IP, SERVER_IP, 60)
    l2tp = struct.pack("!HHH", 0x0002, TID, SID) + b"\xff\x03\x00\x21" + ip
    inner = struct.pack("!HHHH", 1701, 1701, 8 + len(l2tp), 0) + l2tp
    early_pkt = new_out.seal(inner, 17)
    p.raw.inbox.append((b"\x45" + bytes(19) + early_pkt, (PEER, 0)))
    p._on_raw(1.0)
    assert tun.taken == [ip] and p.counters["unknown_spi"] == 0
    child = ChildSaUp((PEER, 500), new_in, 0x0C0FFEE2, name, ek, ak, sl, ek, ak, sl, False, 3600, None)
    assert p.install_sa(A.InstallSa(child, None, None)) is None
    assert p.early == {}
    p.raw.inbox.append((b"\x45" + bytes(19) + early_pkt, (PEER, 0)))      # the early packet replayed
    p._on_raw(2.0)
    assert tun.taken == [ip]
    # A peer with no live pair gets nothing early (a first SA carries no traffic yet); the table is bounded.
    p.install_sa_inbound(A.InstallSaInbound(ChildSaInbound(("198.51.100.99", 500), 7, name, ek, ak, sl, False)))
    assert 7 not in p.early
    for i in range(200):
        p.install_sa_inbound(A.InstallSaInbound(ChildSaInbound((PEER, 500), 0x1000 + i, name, ek, ak, sl, False)))
    assert len(p.early) <= 64
