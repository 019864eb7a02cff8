"""Our PPP frames read by independent dissectors (scapy's PPP layers, tshark), and scapy-built frames fed to ours.

A whole client/server session runs in memory (tests/core/ppp_pair.py); every frame that crosses is checked
field by field by scapy and by tshark (skipped with a reason when tshark is absent).
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))

import ppp_pair  # noqa: E402
from scapy.layers.ppp import (HDLC, PPP, PPP_CHAP, PPP_CHAP_ChallengeResponse, PPP_IPCP,  # noqa: E402
                              PPP_IPCP_Option_DNS1, PPP_IPCP_Option_DNS2, PPP_IPCP_Option_IPAddress,
                              PPP_LCP_Auth_Protocol_Option, PPP_LCP_Configure, PPP_LCP_Echo,
                              PPP_LCP_Magic_Number_Option, PPP_LCP_MRU_Option, PPP_LCP_Protocol_Reject,
                              PPP_PAP_Request, PPP_PAP_Response)

from sluice.ppp import mschapv2  # noqa: E402
from sluice.ppp.config import PppConfig  # noqa: E402
from sluice.ppp.link import PppLink  # noqa: E402

Pair, client_config, server_config = ppp_pair.Pair, ppp_pair.client_config, ppp_pair.server_config


def _session(auth, **kw):
    frames = []

    def tap(direction, frame):
        frames.append((direction, frame))
        return frame
    p = Pair(client_cfg=client_config(auth=(auth,), **kw), server_cfg=server_config(**kw))
    p.tamper = tap
    p.open()
    p.run(40)  # long enough for one Echo-Request each way
    return p, frames


def _opts(pkt):
    return {type(o).__name__: o for o in pkt.options}


def test_lcp_configure_request_dissected_by_scapy():
    p, frames = _session("mschapv2")
    d, f = frames[1]
    assert d == "s>c"
    pkt = HDLC(f)
    assert pkt.address == 0xFF and pkt.control == 0x03 and pkt[PPP].proto == 0xC021
    lcp = pkt[PPP_LCP_Configure]
    assert lcp.code == 1 and lcp.len == len(f) - 4
    o = _opts(lcp)
    assert o["PPP_LCP_MRU_Option"].max_recv_unit == 1400
    auth = o["PPP_LCP_Auth_Protocol_Option"]
    assert auth.auth_protocol == 0xC223 and auth.algorithm == 0x81
    assert o["PPP_LCP_Magic_Number_Option"].magic_number == p.server.lcp_opts.magic


def test_chap_mschapv2_exchange_dissected_by_scapy_and_verified_independently():
    p, frames = _session("mschapv2")
    chap = [HDLC(f) for _, f in frames if f[2:4] == b"\xc2\x23"]
    ch, resp, ok = chap[0][PPP_CHAP_ChallengeResponse], chap[1][PPP_CHAP_ChallengeResponse], chap[2][PPP_CHAP]
    assert (ch.code, ch.value_size, ch.optional_name) == (1, 16, b"sluice")
    assert (resp.code, resp.value_size, resp.optional_name, resp.id) == (2, 49, b"alice", ch.id)
    assert ok.code == 3 and ok.id == ch.id
    # Recompute the NT-Response and "S=" from scapy's fields with the RFC 2759 functions (pinned to 9.2's vector).
    value = bytes(resp.value)
    peer_ch, nt = value[:16], value[24:48]
    assert value[16:24] == b"\x00" * 8 and value[48] == 0
    assert nt == mschapv2.generate_nt_response(bytes(ch.value), peer_ch, "alice", "correct horse")
    want = mschapv2.generate_authenticator_response("correct horse", nt, peer_ch, bytes(ch.value), "alice")
    assert bytes(ok.data).decode() == want + " M=Access granted"


def test_pap_request_dissected_by_scapy():
    p, frames = _session("pap")
    pap = [HDLC(f) for _, f in frames if f[2:4] == b"\xc0\x23"]
    req = pap[0][PPP_PAP_Request]
    assert (req.username, req.password) == (b"alice", b"correct horse")
    assert pap[1][PPP_PAP_Response].code == 2 and pap[1][PPP_PAP_Response].message == b"Login ok"


def test_ipcp_nak_dissected_by_scapy():
    p, frames = _session("chap")
    naks = [HDLC(f)[PPP_IPCP] for d, f in frames if d == "s>c" and f[2:4] == b"\x80\x21" and f[4] == 3]
    assert len(naks) == 1
    o = naks[0].options
    assert isinstance(o[0], PPP_IPCP_Option_IPAddress) and o[0].data == "198.51.100.10"
    assert isinstance(o[1], PPP_IPCP_Option_DNS1) and o[1].data == "192.0.2.53"
    assert isinstance(o[2], PPP_IPCP_Option_DNS2) and o[2].data == "192.0.2.54"


def test_echo_request_dissected_by_scapy():
    p, frames = _session("chap")
    echoes = [HDLC(f)[PPP_LCP_Echo] for d, f in frames if f[2:4] == b"\xc0\x21" and f[4] in (9, 10)]
    assert echoes, "no echo in 40 s"
    req = [e for e in echoes if e.code == 9][0]
    assert req.magic_number in (p.client.lcp_opts.magic, p.server.lcp_opts.magic)


# -- scapy-built frames into our links ------------------------------------------------------------------


def _scapy(pkt):
    return bytes(HDLC() / PPP() / pkt)


def test_scapy_lcp_request_gets_our_ack():
    s = PppLink("server", server_config(), ppp_pair.harness.SeededRng(9))
    s.open(0.0)
    s.frames_to_send()
    req = PPP_LCP_Configure(code=1, id=0x33, options=[PPP_LCP_MRU_Option(max_recv_unit=1400),
                                                      PPP_LCP_Magic_Number_Option(magic_number=0x01020304)])
    s.frame_received(_scapy(req), 0.0)
    ack = HDLC(s.frames_to_send()[0])[PPP_LCP_Configure]
    assert ack.code == 2 and ack.id == 0x33
    assert bytes(ack.payload) == b"" and ack.options[0].max_recv_unit == 1400
    assert ack.options[1].magic_number == 0x01020304


def test_scapy_auth_protocol_request_is_naked_by_a_pap_only_client():
    c = PppLink("client", client_config(auth=("pap",)), ppp_pair.harness.SeededRng(9))
    c.open(0.0)
    c.frames_to_send()
    req = PPP_LCP_Configure(code=1, id=7, options=[PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC223, algorithm=5)])
    c.frame_received(_scapy(req), 0.0)
    nak = HDLC(c.frames_to_send()[0])[PPP_LCP_Configure]
    assert nak.code == 3 and nak.options[0].auth_protocol == 0xC023


def test_scapy_pap_request_authenticates():
    p = Pair(client_cfg=client_config(auth=("pap",)))
    held = []
    p.tamper = lambda d, f: (held.append(f), None)[1] if f[2:4] == b"\xc0\x23" and d == "c>s" else f
    p.open()
    p.pump()
    assert p.server.phase == "authenticate"
    p.server.frame_received(_scapy(PPP_PAP_Request(id=1, username=b"bob", password=b"hunter2")), p.now)
    p.pump()
    ev = [e for e in p.events["server"] if type(e).__name__ == "Authenticated"]
    assert ev and ev[0].username == "bob"


def test_scapy_ipcp_request_for_dns():
    p = Pair()
    p.open()
    p.run(5)
    s = p.server
    req = PPP_IPCP(code=1, id=0x51, options=[PPP_IPCP_Option_IPAddress(data="0.0.0.0"),
                                             PPP_IPCP_Option_DNS1(data="0.0.0.0")])
    s.frame_received(_scapy(req), p.now)
    # RFC 1661 4.1 Opened --RCR-/tld,scr,scn--> Req-Sent: our own request goes out again, then the Nak.
    out = [HDLC(f)[PPP_IPCP] for f in s.frames_to_send() if f[2:4] == b"\x80\x21"]
    assert [x.code for x in out] == [1, 3]
    nak = out[1]
    assert nak.code == 3 and nak.id == 0x51
    assert [o.data for o in nak.options] == ["198.51.100.10", "192.0.2.53"]


def test_protocol_reject_of_ccp_dissected_by_scapy():
    p = Pair()
    p.open()
    p.run(5)
    ccp = b"\xff\x03\x80\xfd\x01\x05\x00\x0a\x12\x06\x01\x00\x00\x60"
    p.server.frame_received(ccp, p.now)
    rej = HDLC(p.server.frames_to_send()[0])
    pr = rej[PPP_LCP_Protocol_Reject]
    assert pr.code == 8 and pr.rejected_protocol == 0x80FD


# -- tshark ------------------------------------------------------------------------------------------------


def _pcap(frames, path):
    # LINKTYPE_PPP (9): the frame as L2TP carries it, FF 03 + protocol.
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 9))
        for i, f in enumerate(frames):
            fh.write(struct.pack("<IIII", i, 0, len(f), len(f)))
            fh.write(f)


def _tshark(path, fields):
    cmd = ["tshark", "-r", path, "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)")
def test_whole_session_dissected_by_tshark():
    p, frames = _session("mschapv2", ipv6=True)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ppp.pcap")
        _pcap([f for _, f in frames], path)
        rows = _tshark(path, ["ppp.protocol", "ppp.code", "lcp.opt.mru", "lcp.opt.auth_protocol",
                              "lcp.opt.magic_number", "chap.code", "chap.value_size", "chap.name",
                              "ipcp.opt.ip_address", "ipcp.opt.pri_dns_address", "ipcp.opt.sec_dns_address",
                              "ipv6cp.interface_identifier", "_ws.malformed", "_ws.expert.severity"])
    assert len(rows) == len(frames)
    for (direction, f), row in zip(frames, rows):
        proto = int(row[0], 16)
        assert proto == (f[2] << 8 | f[3])
        assert row[12] == "", "tshark flags frame as malformed: %r" % (f,)
        if proto in (0xC021, 0x8021, 0x8057):
            assert int(row[1]) == f[4]
    lcp_server_req = [r for (d, f), r in zip(frames, rows) if d == "s>c" and f[2:5] == b"\xc0\x21\x01"][0]
    assert lcp_server_req[2] == "1400" and int(lcp_server_req[3], 16) == 0xC223
    assert int(lcp_server_req[4], 16) == p.server.lcp_opts.magic
    chap = [r for r in rows if r[5]]
    assert [(r[5], r[6], r[7]) for r in chap] == [("1", "16", "sluice"), ("2", "49", "alice"), ("3", "", "")]
    ipcp_nak = [r for (d, f), r in zip(frames, rows) if d == "s>c" and f[2:5] == b"\x80\x21\x03"][0]
    assert (ipcp_nak[8], ipcp_nak[9], ipcp_nak[10]) == ("198.51.100.10", "192.0.2.53", "192.0.2.54")
    ev = p.first("client", "Ipv6Up")
    v6 = [r[11] for (d, f), r in zip(frames, rows) if d == "c>s" and f[2:5] == b"\x80\x57\x01"]
    assert v6[-1].replace(":", "") == ev.local_ifid.hex()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)")
def test_pap_dissected_by_tshark():
    p, frames = _session("pap")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pap.pcap")
        _pcap([f for _, f in frames if f[2:4] == b"\xc0\x23"], path)
        rows = _tshark(path, ["pap.code", "pap.peer_id", "pap.password", "pap.message"])
    assert rows[0][:3] == ["1", "alice", "correct horse"]
    assert rows[1][0] == "2" and rows[1][3] == "Login ok"


def test_config_defaults():
    c = PppConfig()
    assert (c.mru, c.auth, c.echo_interval, c.echo_failure, c.ipv6, c.restart_timer, c.max_configure,
            c.max_failure, c.max_terminate, c.dns, c.nbns) == (1400, ("mschapv2", "chap", "pap"), 30, 4, False,
                                                               3.0, 10, 5, 2, [], [])


def test_status_is_json_serialisable():
    # The engine returns it over the control socket as JSON.
    import json
    p, _ = _session("chap", ipv6=True)
    for link in (p.client, p.server):
        text = json.dumps(link.status())
        assert "correct horse" not in text
