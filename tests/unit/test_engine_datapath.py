"""The engine's per-packet parser against L2TP/PPP data frames built by scapy (an independent encoder)."""

import pytest
from scapy.layers.l2tp import L2TP
from scapy.layers.ppp import HDLC, PPP
from scapy.layers.inet import IP, ICMP

from sluice.engine import datapath
from sluice.engine.pool import IpPool, PoolExhausted


def parse(pkt):
    buf = bytearray(bytes(pkt))
    tid, sid, p, end = datapath.parse_data(buf, len(buf))
    proto, q = datapath.ppp_protocol(buf, p, end)
    return tid, sid, proto, bytes(buf[q:end])


def test_plain_data_message_from_scapy():
    inner = IP(src="10.77.0.10", dst="10.77.0.1") / ICMP()
    pkt = L2TP(tunnel_id=0x1234, session_id=0x5678) / HDLC() / PPP(proto=0x0021) / inner
    assert parse(pkt) == (0x1234, 0x5678, 0x0021, bytes(inner))


def test_length_and_sequence_and_offset_fields():
    inner = bytes(IP(src="10.77.0.10", dst="10.77.0.1") / ICMP())
    ppp = b"\xff\x03\x00\x21" + inner
    # L, S and O bits with a 3-byte offset pad (RFC 2661 3.1).
    body = b"\x00\x07\x00\x09" + b"\x00\x03" + b"\xaa\xbb\xcc" + ppp
    total = 4 + 4 + len(body)
    import struct

    msg = struct.pack("!HHHH", 0x4A02, total, 0x0102, 0x0304) + body
    buf = bytearray(msg + b"trailing padding beyond the length field")
    tid, sid, p, end = datapath.parse_data(buf, len(buf))
    assert (tid, sid, end) == (0x0102, 0x0304, total)
    proto, q = datapath.ppp_protocol(buf, p, end)
    assert proto == 0x21 and bytes(buf[q:end]) == inner


def test_protocol_field_compression_and_no_address_control():
    buf = bytearray(b"\x00\x02\x00\x01\x00\x02" + b"\x21" + b"\x45payload")
    tid, sid, p, end = datapath.parse_data(buf, len(buf))
    assert datapath.ppp_protocol(buf, p, end) == (0x21, 7)


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x00\x02\x00\x01\x00", b"\x00\x03\x00\x01\x00\x02",
                                 b"\x40\x02\x00\xff\x00\x01\x00\x02", b"\x02\x02\x00\x01\x00\x02\xff\xff",
                                 b"\x00\x02\x00\x01\x00\x02\xff\x03"])
def test_malformed_raises_data_error(raw):
    buf = bytearray(raw)
    with pytest.raises(datapath.DataError):
        tid, sid, p, end = datapath.parse_data(buf, len(buf))
        datapath.ppp_protocol(buf, p, end)


def test_header_we_build_is_what_scapy_reads():
    from sluice.l2tp.data import DataEncoder

    hdr = datapath.session_headers(DataEncoder(0xBEEF, 0x0042))
    pkt = L2TP(hdr + bytes(IP(dst="192.0.2.1") / ICMP()))
    assert pkt.tunnel_id == 0xBEEF and pkt.session_id == 0x0042
    assert bytes(pkt.payload)[:4] == b"\xff\x03\x00\x21"
    assert datapath.session_headers(DataEncoder(1, 2, sequencing=True)) is None


def test_pool_hands_out_each_address_once_and_respects_static():
    pool = IpPool("10.77.0.10", "10.77.0.12", reserved=["10.77.0.11"])
    a = pool.allocate()
    b = pool.allocate("10.77.0.20")
    c = pool.allocate()
    assert (a, b, c) == ("10.77.0.10", "10.77.0.20", "10.77.0.12")
    with pytest.raises(PoolExhausted):
        pool.allocate()
    with pytest.raises(PoolExhausted):
        pool.allocate("10.77.0.20")
    pool.release(a)
    assert pool.allocate() == "10.77.0.10"
