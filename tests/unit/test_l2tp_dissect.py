"""Our L2TP messages as independent dissectors read them (scapy's L2TP layer, Wireshark's tshark), and
packets built by scapy read by our parsers.

scapy's L2TP layer decodes only the header, so AVPs are checked with tshark's dissector (skipped when tshark
is not installed). Challenge Responses are recomputed with hashlib from what tshark decoded (RFC 2661 4.4.3).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2tp import L2TP
from scapy.packet import Raw
from scapy.utils import wrpcap

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
from harness import SeededRng  # noqa: E402

from sluice.l2tp import avp as A  # noqa: E402
from sluice.l2tp import data as D  # noqa: E402
from sluice.l2tp import header as H  # noqa: E402
from sluice.l2tp import message as M  # noqa: E402
from sluice.l2tp.demux import TunnelTable  # noqa: E402
from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig  # noqa: E402

SECRET = b"dissector secret"
LAC_ADDR, LNS_ADDR = "192.0.2.1", "198.51.100.2"


def conversation():
    """A full life: tunnel with auth, two sessions, HELLO, CDN both ways, StopCCN; every datagram in order."""
    lac = Tunnel(LAC, 0x1234, SeededRng(11), TunnelConfig(host_name="lac.example", secret=SECRET,
                                                          sequencing=True))
    table = TunnelTable(SeededRng(12), TunnelConfig(host_name="lns.example", secret=SECRET))
    wire = []
    now = [0.0]

    def pump():
        for _ in range(10):
            moved = False
            for d in lac.datagrams_to_send():
                wire.append((">", d))
                table.datagram_received(d, (LAC_ADDR, 1701), now[0])
                moved = True
            for _peer, d in table.datagrams_to_send():
                wire.append(("<", d))
                lac.datagram_received(d, now[0])
                moved = True
            if not moved:
                for t in [lac] + table.tunnels():
                    dl = t.get_timer()
                    if dl is not None and dl <= now[0] + 0.3:
                        t.handle_timer(now[0] + 0.3)
            now[0] += 0.3

    lac.start(0.0)
    s1 = lac.open_session(0.0)
    s2 = lac.open_session(0.0)
    pump()
    lns = table.tunnels()[0]
    now[0] = 100.0
    lac.handle_timer(lac.get_timer())  # HELLO
    pump()
    lac.close_session(s1, now[0], 3, "bye")
    pump()
    lns_s2 = [s for s in lns.sessions.values()][0]
    lns.close_session(lns_s2.local_id, now[0], 4, "full")
    pump()
    lac.close(now[0], 6, "shutting down")
    pump()
    return lac, lns, s1, s2, wire


@pytest.fixture(scope="module")
def conv():
    return conversation()


def names(wire):
    out = []
    for _, d in wire:
        h = H.parse(d)
        out.append(M.parse(d, h.offset, h.end, SECRET).name())
    return out


def test_conversation_shape(conv):
    lac, lns, s1, s2, wire = conv
    got = [n for n in names(wire) if n != "ZLB"]
    assert got[:6] == ["SCCRQ", "SCCRP", "SCCCN", "ICRQ", "ICRQ", "ICRP"]
    for n in ("HELLO", "CDN", "StopCCN", "ICCN"):
        assert n in got


def test_scapy_reads_our_control_headers(conv):
    lac, lns, s1, s2, wire = conv
    for arrow, d in wire:
        p = L2TP(d)
        h = H.parse(d)
        assert "control" in str(p.hdr) and "length" in str(p.hdr) and "sequence" in str(p.hdr)
        assert p.version == 2 and p.len == len(d)
        assert (p.tunnel_id, p.session_id, p.ns, p.nr) == (h.tunnel_id, h.session_id, h.ns, h.nr)
        assert p.tunnel_id == (lns.local_tunnel_id if arrow == ">" else 0x1234) or names([(arrow, d)]) == ["SCCRQ"]


def test_scapy_reads_our_data_messages():
    payload = b"\xff\x03\x00\x21" + bytes(IP(src="10.0.0.1", dst="10.0.0.2"))
    p = L2TP(D.DataEncoder(0xBEEF, 0x0042).encode(payload))
    assert (p.tunnel_id, p.session_id) == (0xBEEF, 0x0042) and "control" not in str(p.hdr)
    assert bytes(p.payload) == payload
    enc = D.DataEncoder(0xBEEF, 0x0042, sequencing=True)
    enc.encode(payload)
    p = L2TP(enc.encode(payload))
    assert "sequence" in str(p.hdr) and p.ns == 1 and p.nr == 0 and bytes(p.payload) == payload


def test_we_read_scapy_built_headers():
    # scapy builds the header from its own field layout (RFC 2661 3.1); we parse it.
    avps = A.encode(A.MESSAGE_TYPE, M.HELLO)
    pkt = bytes(L2TP(hdr="control+length+sequence", tunnel_id=7, session_id=0, ns=3, nr=9) / Raw(avps))
    h = H.parse(pkt)
    assert (h.is_control, h.tunnel_id, h.session_id, h.ns, h.nr) == (True, 7, 0, 3, 9)
    assert M.parse(pkt, h.offset, h.end).type == M.HELLO
    data = bytes(L2TP(hdr="length+sequence+offset", tunnel_id=5, session_id=6, ns=4, nr=0, offset=3,
                      pad=b"\x00\x00\x00") / Raw(b"\xff\x03\x00\x21PPP"))
    assert D.parse_data(data, 0, len(data)) == (5, 6, 4, len(data) - 7, len(data))
    plain = bytes(L2TP(tunnel_id=1, session_id=2) / Raw(b"\xff\x03"))
    assert D.parse_data(plain, 0, len(plain)) == (1, 2, None, 6, len(plain))


TSHARK = shutil.which("tshark")


def tshark_layers(tmp_path, wire):
    pkts = []
    for arrow, d in wire:
        src, dst = (LAC_ADDR, LNS_ADDR) if arrow == ">" else (LNS_ADDR, LAC_ADDR)
        pkts.append(IP(src=src, dst=dst) / UDP(sport=1701, dport=1701) / Raw(d))
    path = str(tmp_path / "l2tp.pcap")
    wrpcap(path, pkts)
    out = subprocess.run([TSHARK, "-r", path, "-T", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=60, check=True, env=dict(os.environ, HOME=str(tmp_path)))
    return [p["_source"]["layers"]["l2tp"] for p in json.loads(out.stdout)]


def avp(layer, title):
    for key, value in layer.items():
        if key == title or key.startswith(title + " AVP"):
            return value
    return None


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_decodes_every_message(conv, tmp_path):
    lac, lns, s1, s2, wire = conv
    layers = tshark_layers(tmp_path, wire)
    assert len(layers) == len(wire)
    ours = names(wire)
    type_of = dict((v, k) for k, v in M.NAMES.items())
    for layer, (arrow, d), name in zip(layers, wire, ours):
        h = H.parse(d)
        assert layer["l2tp.flags"] == "0xc802"
        assert int(layer["l2tp.tunnel"]) == h.tunnel_id and int(layer["l2tp.session"]) == h.session_id
        assert (int(layer["l2tp.Ns"]), int(layer["l2tp.Nr"])) == (h.ns, h.nr)
        assert int(layer["l2tp.length"]) == len(d)
        mt = avp(layer, "Control Message")
        if name == "ZLB":
            assert mt is None
            continue
        assert int(mt["l2tp.avp.message_type"]) == type_of[name]
        assert mt["l2tp.avp.mandatory"] == "1"


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_reads_identity_ids_and_auth(conv, tmp_path):
    lac, lns, s1, s2, wire = conv
    layers = tshark_layers(tmp_path, wire)
    ours = names(wire)
    sccrq = layers[ours.index("SCCRQ")]
    sccrp = layers[ours.index("SCCRP")]
    scccn = layers[ours.index("SCCCN")]
    assert avp(sccrq, "Host Name")["l2tp.avp.host_name"] == "lac.example"
    assert int(avp(sccrq, "Assigned Tunnel ID")["l2tp.avp.assigned_tunnel_id"]) == 0x1234
    assert avp(sccrp, "Host Name")["l2tp.avp.host_name"] == "lns.example"
    assert int(avp(sccrp, "Assigned Tunnel ID")["l2tp.avp.assigned_tunnel_id"]) == lns.local_tunnel_id
    assert avp(sccrq, "Vendor Name")["l2tp.avp.mandatory"] == "0"
    assert int(avp(sccrq, "Receive Window Size")["l2tp.avp.receive_window_size"]) == 8
    # RFC 2661 4.4.3: response = MD5(message type of the reply + secret + challenge), recomputed with hashlib
    # from the octets tshark decoded.
    def hexfield(layer, title, key):
        return bytes.fromhex(avp(layer, title)[key].replace(":", ""))

    chal_lac = hexfield(sccrq, "Challenge", "l2tp.avp.chap_challenge")
    resp_lns = hexfield(sccrp, "Challenge Response", "l2tp.avp.chap_challenge_response")
    assert resp_lns == hashlib.md5(b"\x02" + SECRET + chal_lac).digest()
    chal_lns = hexfield(sccrp, "Challenge", "l2tp.avp.chap_challenge")
    resp_lac = hexfield(scccn, "Challenge Response", "l2tp.avp.chap_challenge_response")
    assert resp_lac == hashlib.md5(b"\x03" + SECRET + chal_lns).digest()
    # Session ids: each ICRQ assigns one of the LAC's, the ICRP's header carries it back.
    icrqs = [layers[i] for i, n in enumerate(ours) if n == "ICRQ"]
    assigned = sorted(int(avp(l, "Assigned Session")["l2tp.avp.assigned_session_id"]) for l in icrqs)
    assert assigned == sorted([s1, s2])
    icrps = [layers[i] for i, n in enumerate(ours) if n == "ICRP"]
    assert sorted(int(l["l2tp.session"]) for l in icrps) == sorted([s1, s2])
    iccn = layers[ours.index("ICCN")]
    assert avp(iccn, "Sequencing Required") is not None
    stop = layers[ours.index("StopCCN")]
    assert int(avp(stop, "Assigned Tunnel ID")["l2tp.avp.assigned_tunnel_id"]) == 0x1234


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_reads_result_codes(conv, tmp_path):
    lac, lns, s1, s2, wire = conv
    out = subprocess.run([TSHARK, "-r", str(_pcap(tmp_path, wire)), "-V"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=60, check=True,
                         env=dict(os.environ, HOME=str(tmp_path))).stdout.decode()
    # Wireshark names CDN and StopCCN result codes from its own RFC 2661 4.4.2 tables.
    assert "Result code: Session disconnected for administrative reasons (3)" in out
    assert "Error Message: bye" in out
    assert "Result code: Appropriate facilities unavailable (temporary condition) (4)" in out
    assert "Result code: Requester is being shut down (6)" in out
    assert "Error Message: shutting down" in out
    assert "Malformed" not in out and "Expert Info" not in out


def _pcap(tmp_path, wire):
    pkts = [IP(src=LAC_ADDR, dst=LNS_ADDR) / UDP(sport=1701, dport=1701) / Raw(d) for _, d in wire]
    path = tmp_path / "v.pcap"
    wrpcap(str(path), pkts)
    return path


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_reads_our_data_messages(tmp_path):
    ppp = b"\xff\x03\x00\x21" + bytes(IP(src="10.77.0.2", dst="203.0.113.5") / UDP(sport=5, dport=7))
    seq = D.DataEncoder(0x0a0b, 0x0c0d, sequencing=True)
    seq.ns = 41
    wire = [(">", D.DataEncoder(0x0a0b, 0x0c0d).encode(ppp)), (">", seq.encode(ppp))]
    layers = tshark_layers(tmp_path, wire)
    assert [int(l["l2tp.tunnel"]) for l in layers] == [0x0a0b, 0x0a0b]
    assert [int(l["l2tp.session"]) for l in layers] == [0x0c0d, 0x0c0d]
    assert "l2tp.Ns" not in layers[0] and int(layers[1]["l2tp.Ns"]) == 41
