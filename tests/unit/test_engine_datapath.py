"""The data plane's per-packet parsers (the one L2TP data-header parser and the one PPP protocol-field
parser of the core) against L2TP/PPP data frames built by scapy, an independent encoder; and fuzzed."""

import struct

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2tp import L2TP
from scapy.layers.ppp import HDLC, PPP

from sluice.endpoint.pool import IpPool, PoolExhausted
from sluice.l2tp.data import DataEncoder, parse_data
from sluice.l2tp.errors import HeaderError, L2tpError
from sluice.ppp.framing import PppError, protocol_at


def parse(pkt, lead=b""):
    buf = bytearray(lead + bytes(pkt))
    tid, sid, _ns, p, end = parse_data(buf, len(lead), len(buf))
    proto, q = protocol_at(buf, p, end)
    return tid, sid, proto, bytes(buf[q:end])


def test_plain_data_message_from_scapy():
    inner = IP(src="10.77.0.10", dst="10.77.0.1") / ICMP()
    pkt = L2TP(tunnel_id=0x1234, session_id=0x5678) / HDLC() / PPP(proto=0x0021) / inner
    assert parse(pkt) == (0x1234, 0x5678, 0x0021, bytes(inner))
    # In place after an 8-byte UDP header, as the data plane reads a decrypted ESP payload.
    assert parse(pkt, lead=b"\x06\xa5\x06\xa5\x00\x00\x00\x00") == (0x1234, 0x5678, 0x0021, bytes(inner))


def test_length_and_sequence_and_offset_fields():
    inner = bytes(IP(src="10.77.0.10", dst="10.77.0.1") / ICMP())
    ppp = b"\xff\x03\x00\x21" + inner
    # L, S and O bits with a 3-byte offset pad (RFC 2661 3.1).
    body = b"\x00\x07\x00\x09" + b"\x00\x03" + b"\xaa\xbb\xcc" + ppp
    total = 4 + 4 + len(body)
    msg = struct.pack("!HHHH", 0x4A02, total, 0x0102, 0x0304) + body
    buf = bytearray(msg + b"trailing padding beyond the length field")
    tid, sid, ns, p, end = parse_data(buf, 0, len(buf))
    assert (tid, sid, ns, end) == (0x0102, 0x0304, 7, total)
    proto, q = protocol_at(buf, p, end)
    assert proto == 0x21 and bytes(buf[q:end]) == inner


def test_protocol_field_compression_and_no_address_control():
    buf = bytearray(b"\x00\x02\x00\x01\x00\x02" + b"\x21" + b"\x45payload")
    tid, sid, _ns, p, end = parse_data(buf, 0, len(buf))
    assert protocol_at(buf, p, end) == (0x21, 7)


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x00\x02\x00\x01\x00", b"\x00\x03\x00\x01\x00\x02",
                                 b"\x40\x02\x00\xff\x00\x01\x00\x02", b"\x02\x02\x00\x01\x00\x02\xff\xff",
                                 b"\x00\x02\x00\x01\x00\x02\xff\x03",
                                 b"\x00\x02\x00\x01\x00\x02\x00\x20",   # even protocol (RFC 1661 2)
                                 b"\x00\x02\x00\x01\x00\x02\x01\x21"])  # first octet odd: not a 2-octet field
def test_malformed_raises_a_codec_error(raw):
    buf = bytearray(raw)
    with pytest.raises((L2tpError, PppError)):
        tid, sid, _ns, p, end = parse_data(buf, 0, len(buf))
        proto, q = protocol_at(buf, p, end)
        if proto == 0x01:  # a one-octet field 0x01 followed by 0x21: RFC 1661 says the field ends at 0x01
            raise PppError("not a protocol we carry")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 8))
def test_parsers_raise_only_their_own_errors(data, start):
    buf = bytearray(data)
    try:
        tid, sid, _ns, p, end = parse_data(buf, min(start, len(buf)), len(buf))
        assert 0 <= p <= end <= len(buf)
        proto, q = protocol_at(buf, p, end)
        assert p < q <= end
    except (L2tpError, PppError):
        pass


def test_header_we_build_is_what_scapy_reads():
    enc = DataEncoder(0xBEEF, 0x0042)
    pkt = L2TP(enc.header + b"\xff\x03\x00\x21" + bytes(IP(dst="192.0.2.1") / ICMP()))
    assert pkt.tunnel_id == 0xBEEF and pkt.session_id == 0x0042
    assert bytes(pkt.payload)[:4] == b"\xff\x03\x00\x21"


def test_control_messages_are_not_data():
    with pytest.raises(HeaderError):
        hello = bytes.fromhex("c802000c0102000000030000")
        parse_data(hello, 0, len(hello))


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
