"""RADIUS and DHCPINFORM codecs under Hypothesis (hostile input never escapes the machines) and read by scapy."""

import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.radius import Radius, RadiusAttr_Message_Authenticator

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
from harness import SeededRng  # noqa: E402

from sluice.dhcp import inform as D  # noqa: E402
from sluice.radius import packet as P  # noqa: E402
from sluice.radius.client import RadiusClient, RadiusServer  # noqa: E402
from sluice.radius.dae import DaeListener  # noqa: E402

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SECRET = b"a-long-shared-secret-1"
S1 = ("192.0.2.1", 1812)


def _inform(ciaddr="192.0.2.10", extra=()):
    return bytes(IP(src=ciaddr, dst="255.255.255.255") / UDP(sport=68, dport=67) /
                 BOOTP(op=1, ciaddr=ciaddr, chaddr=b"\x02\x00\x5e\x00\x53\x01", xid=0xCAFE) /
                 DHCP(options=[("message-type", "inform"), ("param_req_list", [1, 3, 6, 15, 33, 121, 249, 43])] +
                      list(extra) + ["end"]))


def test_scapy_reads_our_dhcpack():
    reply = D.answer_inform(_inform(), "192.0.2.1", ["198.51.100.0/24", "0.0.0.0/0", "203.0.113.7/32"],
                            ["192.0.2.53"], "corp.example.org")
    p = IP(reply)
    assert p[IP].src == "192.0.2.1" and p[IP].dst == "192.0.2.10"
    assert p[UDP].sport == 67 and p[UDP].dport == 68
    # scapy recomputes both checksums when asked to rebuild: ours must be the same.
    again = IP(bytes(reply))
    del again[IP].chksum
    del again[UDP].chksum
    again = IP(bytes(again))
    assert again[IP].chksum == p[IP].chksum and again[UDP].chksum == p[UDP].chksum
    assert p[BOOTP].op == 2 and p[BOOTP].xid == 0xCAFE and p[BOOTP].ciaddr == "192.0.2.10"
    assert p[BOOTP].yiaddr == "0.0.0.0"
    opts = dict(o for o in p[DHCP].options if isinstance(o, tuple))
    assert opts["message-type"] == 5 and opts["server_id"] == "192.0.2.1"
    assert opts["subnet_mask"] == "255.255.255.255"
    assert opts["name_server"] == "192.0.2.53" and opts["domain"] == b"corp.example.org"
    assert opts["classless_static_routes"] == ["198.51.100.0/24:192.0.2.1", "0.0.0.0/0:192.0.2.1",
                                               "203.0.113.7/32:192.0.2.1"]
    assert opts[249] == D.classless_routes(["198.51.100.0/24", "0.0.0.0/0", "203.0.113.7/32"], "192.0.2.1")
    assert "router" not in opts and "lease_time" not in opts


def test_scapy_reads_our_radius_packets():
    req = P.encode_request(P.ACCESS_REQUEST, 42, [(P.USER_NAME, b"alice"), (P.USER_PASSWORD, b"pw")], SECRET,
                           b"\x01" * 16)
    r = Radius(req)
    assert r.code == 1 and r.id == 42 and r.len == len(req)
    types = [a.type for a in r.attributes]
    assert types == [80, 1, 2]
    ack = P.encode_reply(P.DISCONNECT_ACK, 3, b"\x02" * 16, [], SECRET)
    assert Radius(ack).code == 41
    # scapy's own Message-Authenticator computation agrees with ours.
    rr = Radius(req)
    ours = rr.attributes[0].value
    assert RadiusAttr_Message_Authenticator.compute_message_authenticator(rr, b"\x01" * 16, SECRET) == ours
    # and its Response Authenticator over our reply
    rep = Radius(P.encode_reply(P.ACCESS_ACCEPT, 42, b"\x01" * 16, [P.attr_int(P.SESSION_TIMEOUT, 5)], SECRET))
    assert rep.compute_authenticator(b"\x01" * 16, SECRET) == rep.authenticator


@FUZZ
@given(st.binary(max_size=400))
def test_dhcp_parse_never_raises_anything_but_dhcperror(data):
    try:
        D.parse_inform(data)
    except D.DhcpError:
        pass
    D.answer_inform(data, "192.0.2.1", ["198.51.100.0/24"], [], None)  # None or a reply, never an exception


@FUZZ
@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=3))
def test_dhcp_mutated_inform_answer_or_none(pos, junk):
    good = _inform()
    pos = pos % len(good)
    bad = good[:pos] + junk + good[pos + len(junk):]
    out = D.answer_inform(bad, "192.0.2.1", ["198.51.100.0/24"], ["192.0.2.53"], "x.example")
    if out is not None:
        assert IP(out)[UDP].dport == 68


@FUZZ
@given(st.binary(max_size=300))
def test_radius_decode_only_raises_radiuserror(data):
    try:
        P.decode(data)
    except P.RadiusError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=120), max_size=6))
def test_hostile_replies_never_end_a_request(datagrams):
    c = RadiusClient([RadiusServer(S1, SECRET)], SeededRng(5))
    c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"a")], 0.0)
    raw = c.datagrams_to_send()[0][1]
    for d in datagrams:
        c.datagram_received(bytes(raw[:1]) + d[:1] + d[1:], S1, 0.1)  # random, some with a matching id
        c.datagram_received(b"\x02" + raw[1:2] + d, S1, 0.1)
    assert c.next_event() is None and c.pending() == 1


@FUZZ
@given(st.lists(st.binary(max_size=120), max_size=6))
def test_hostile_dae_requests_are_dropped(datagrams):
    d = DaeListener({"192.0.2.1": SECRET})
    for x in datagrams:
        d.datagram_received(b"\x28" + x, ("192.0.2.1", 1), 0.0)
        d.datagram_received(x, ("192.0.2.1", 1), 0.0)
    assert d.next_event() is None and d.datagrams_to_send() == []
