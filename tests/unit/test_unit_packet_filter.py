"""The BPF filter of the kernel plane's unit sockets (sluice.hal.net.unit_packet), run by a tiny classic-BPF
interpreter written here from the kernel's uapi (include/uapi/linux/filter.h, bpf_common.h) against packets
built with scapy: only DHCP to port 67 (not a later fragment) and ICMPv6 Router Solicitations pass; ordinary
data (TCP, UDP to other ports, DHCP replies, pings, RAs, Neighbor Discovery, MLD) and the unit's own outgoing
packets are refused. tests/integration/test_unit_packet_netns.py attaches the same program to a real socket.
"""

import struct

import pytest

from sluice.hal.net import unit_packet as U

scapy = pytest.importorskip("scapy.all")
from scapy.all import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS, IP, IPv6, TCP, UDP, Raw  # noqa: E402
from scapy.layers.dhcp import BOOTP, DHCP  # noqa: E402
from scapy.layers.inet6 import ICMPv6MLReport2, IPv6ExtHdrHopByHop  # noqa: E402

PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST = 0, 1, 2


def run(prog, pkt, pkttype=PACKET_HOST):
    """Classic BPF as the kernel runs a socket filter: -> the accepted length (0: refused)."""
    a = x = 0
    pc = 0
    for _ in range(len(prog) + 1):     # forward jumps only: at most one pass
        code, jt, jf, k = prog[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00 or cls == 0x01:          # BPF_LD / BPF_LDX
            size, mode = code & 0x18, code & 0xE0
            if code == U.LDX_B_MSH:
                if k >= len(pkt):
                    return 0
                x = (pkt[k] & 0x0F) * 4
                continue
            if mode == 0x20 and k >= 0xFFFFF000:   # BPF_ABS into the ancillary area
                assert k == U.SKF_AD_PKTTYPE
                a = pkttype
                continue
            off = k if mode == 0x20 else x + k      # BPF_ABS / BPF_IND
            n = {0x00: 4, 0x08: 2, 0x10: 1}[size]
            if off + n > len(pkt):
                return 0                            # the kernel ends the program with 0 on a short packet
            a = int.from_bytes(pkt[off:off + n], "big")
        elif cls == 0x04:                           # BPF_ALU
            assert code == U.ALU_AND_K
            a &= k
        elif cls == 0x05:                           # BPF_JMP
            op = code & 0xF0
            cond = {0x10: a == k, 0x40: bool(a & k)}[op]
            pc += jt if cond else jf
        elif cls == 0x06:                           # BPF_RET
            return min(k, len(pkt))
        else:
            raise AssertionError("opcode 0x%x" % code)
    raise AssertionError("ran off the program")


def passes(pkt, pkttype=PACKET_HOST):
    return run(U.FILTER, bytes(pkt), pkttype) > 0


CLIENT, SERVER = "10.77.0.10", "10.77.0.1"
LL, ROUTERS = "fe80::211:22ff:fe33:4455", "ff02::2"
INFORM = IP(src=CLIENT, dst="255.255.255.255") / UDP(sport=68, dport=67) / BOOTP(ciaddr=CLIENT) / DHCP(
    options=[("message-type", "inform"), "end"])


def test_program_is_well_formed():
    prog = U.FILTER
    assert len(prog) <= 32 and prog[-1] == (U.RET_K, 0, 0, 0) and prog[-2] == (U.RET_K, 0, 0, U.SNAPLEN)
    for i, (code, jt, jf, k) in enumerate(prog):
        if code & 0x07 == 0x05:
            assert i + 1 + jt < len(prog) and i + 1 + jf < len(prog)    # every jump lands inside, forward
        else:
            assert jt == jf == 0
    assert len(U.filter_bytes()) == 8 * len(prog)
    assert struct.unpack("HBBI", U.filter_bytes()[:8]) == prog[0]


@pytest.mark.parametrize("pkt", [
    INFORM,
    IP(src=CLIENT, dst=SERVER) / UDP(sport=68, dport=67) / BOOTP(ciaddr=CLIENT) / DHCP(
        options=[("message-type", "inform"), "end"]),
    IP(src=CLIENT, dst=SERVER, ihl=6, options=[b"\x01\x01\x01\x01"]) / UDP(sport=68, dport=67) / Raw(b"x" * 240),
    IPv6(src=LL, dst=ROUTERS, hlim=255) / ICMPv6ND_RS(),
    IPv6(src="::", dst=ROUTERS, hlim=255) / ICMPv6ND_RS(),
], ids=["inform-broadcast", "inform-unicast", "ip-options", "rs", "rs-unspecified"])
def test_what_must_reach_sluice_passes(pkt):
    assert passes(pkt, PACKET_BROADCAST)
    assert run(U.FILTER, bytes(pkt)) == len(bytes(pkt))


@pytest.mark.parametrize("pkt", [
    IP(src=CLIENT, dst="198.51.100.7") / TCP(sport=40000, dport=443) / Raw(b"x" * 1000),
    IP(src=CLIENT, dst="198.51.100.7") / UDP(sport=40000, dport=53) / Raw(b"q" * 30),
    IP(src=CLIENT, dst="198.51.100.7") / UDP(sport=67, dport=68) / Raw(b"r" * 240),
    IP(src=CLIENT, dst="198.51.100.7", proto=6) / Raw(b"\x9c\x40\x00\x43" + b"y" * 40),   # TCP to 67
    IP(src=CLIENT, dst="198.51.100.7", frag=10, proto=17) / Raw(b"\x00\x44\x00\x43" + b"z" * 40),  # later fragment
    IPv6(src="2001:db8:77:1::10", dst="2001:db8:1::1") / ICMPv6EchoRequest(),
    IPv6(src="2001:db8:77:1::10", dst="2001:db8:1::1") / UDP(sport=40000, dport=67),
    IPv6(src=LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(),
    IPv6(src=LL, dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fe80::1"),
    IPv6(src=LL, dst="ff02::16") / IPv6ExtHdrHopByHop() / ICMPv6MLReport2(),
    Raw(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20),   # not IP at all
    Raw(b"\x45"),                                            # short
], ids=["tcp", "dns", "dhcp-reply", "tcp-67", "fragment", "ping6", "udp6-67", "ra", "ns", "mld", "arp", "short"])
def test_ordinary_traffic_is_refused_in_the_kernel(pkt):
    assert not passes(pkt) and not passes(pkt, PACKET_MULTICAST)


def test_outgoing_packets_are_refused():
    assert not passes(INFORM, U.PACKET_OUTGOING)
    assert not passes(IPv6(src=LL, dst=ROUTERS, hlim=255) / ICMPv6ND_RS(), U.PACKET_OUTGOING)


@pytest.mark.parametrize("pkt,want", [
    (IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ICMPv6ND_RA(), True),
    (IPv6(src="fe80::1", dst=LL, hlim=255) / ICMPv6ND_RA(), True),
    (IPv6(src=LL, dst=ROUTERS, hlim=255) / ICMPv6ND_RS(), False),
    (INFORM, False),
    (IPv6(src="2001:db8:1::1", dst="2001:db8:77:1::10") / ICMPv6EchoRequest(), False),
    (IPv6(src="fe80::1", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fe80::1"), False),
    (IP(src=SERVER, dst=CLIENT) / TCP(sport=443, dport=40000), False),
], ids=["ra-multicast", "ra-unicast", "rs", "dhcp", "ping6", "ns", "tcp"])
def test_a_clients_unit_passes_only_router_advertisements(pkt, want):
    assert (run(U.CLIENT_FILTER, bytes(pkt)) > 0) is want
    assert run(U.CLIENT_FILTER, bytes(pkt), U.PACKET_OUTGOING) == 0
