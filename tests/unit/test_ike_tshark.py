"""Our ISAKMP messages dissected by Wireshark's packet-isakmp.c (tshark -T pdml), an independent decoder.

Each message goes into a pcap as IPv4/UDP 500 (documentation addresses) and tshark must decode the exchange
type, every payload type in order and the transform attributes we meant, with no malformed-packet or
error-level expert item.
"""

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from scapy.utils import wrpcap

from sluice.ike import constants as C
from sluice.ike import payloads as P
from sluice.ike import proposals as PR
from sluice.ike import vendor as V
from sluice.ike.fragments import fragment_message
from sluice.ike.message import Message

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed (apt-get install tshark)")

ICKY = bytes.fromhex("0a0b0c0d0e0f1011")
RCKY = bytes.fromhex("2122232425262728")
ZERO = b"\x00" * 8


def dissect(tmp_path, messages):
    """[bytes] -> per packet: list of (field name, show) in document order, for isakmp and expert fields."""
    pcap = str(tmp_path / "ike.pcap")
    wrpcap(pcap, [IP(src="192.0.2.1", dst="198.51.100.1") / UDP(sport=500, dport=500) / Raw(m) for m in messages])
    out = subprocess.run([TSHARK, "-r", pcap, "-T", "pdml", "-o", "isakmp.udp.port:500"], capture_output=True,
                         timeout=60, check=False)
    if out.returncode != 0:
        # Older/newer tshark may not know the preference; retry without it.
        out = subprocess.run([TSHARK, "-r", pcap, "-T", "pdml"], capture_output=True, timeout=60, check=True)
    root = ET.fromstring(out.stdout)
    packets = []
    for pkt in root.findall("packet"):
        fields = []
        for f in pkt.iter("field"):
            name = f.get("name", "")
            if name.startswith("isakmp") or name.startswith("_ws.") or name.startswith("expert"):
                fields.append((name, f.get("show", ""), f.get("showname", "")))
        for proto in pkt.iter("proto"):
            if proto.get("name") == "_ws.malformed":
                fields.append(("_ws.malformed", "", ""))
        packets.append(fields)
    assert len(packets) == len(messages)
    return packets


def values(fields, name):
    return [show for n, show, _ in fields if n == name]


def no_errors(fields):
    bad = [(n, s) for n, s, sn in fields if n == "_ws.malformed" or (n == "_ws.expert.severity" and s in
                                                                     ("8388608", "error"))]
    assert not bad, bad


def test_main_mode_exchange_as_wireshark_sees_it(tmp_path):
    windows = PR.ProposalSet.parse("aes256-sha1-ecp384,aes128-sha1-ecp256,aes256-sha1-modp2048,"
                                   "3des-sha1-modp2048,3des-sha1-modp1024", "ike")
    mm1 = Message.build(ICKY, ZERO, C.EXCH_MAIN, [PR.ike_sa_payload(windows, lifetime=86400)]
                        + [P.VendorIdPayload(v) for v in (V.MS_NT5 + b"\0\0\0\x09", V.NATT_RFC3947,
                                                          V.FRAGMENTATION, V.DPD)]).encode()
    mm3 = Message.build(ICKY, RCKY, C.EXCH_MAIN, [P.KePayload(b"\x42" * 256), P.NoncePayload(b"\x17" * 32),
                                                 P.NatDPayload(b"\x01" * 20), P.NatDPayload(b"\x02" * 20)]).encode()
    mm5 = Message.build(ICKY, RCKY, C.EXCH_MAIN, [P.IdPayload.ipv4("192.0.2.1", 17, 500),
                                                 P.HashPayload(b"\x33" * 20)]).encode()
    pk1, pk3, pk5 = dissect(tmp_path, [mm1, mm3, mm5])
    for fields in (pk1, pk3, pk5):
        no_errors(fields)
        assert values(fields, "isakmp.exchangetype") == ["2"]
        assert values(fields, "isakmp.version") == ["0x10"]
    assert values(pk1, "isakmp.ispi") == ["0a:0b:0c:0d:0e:0f:10:11"]
    assert values(pk1, "isakmp.length") == [str(len(mm1))]
    assert values(pk1, "isakmp.typepayload") == ["1", "2", "3", "3", "3", "3", "3", "13", "13", "13", "13"]
    assert values(pk1, "isakmp.prop.transforms") == ["5"]
    assert values(pk1, "isakmp.ike.attr.encryption_algorithm") == ["7", "7", "7", "5", "5"]
    assert values(pk1, "isakmp.ike.attr.key_length") == ["256", "128", "256"]
    assert values(pk1, "isakmp.ike.attr.hash_algorithm") == ["2"] * 5
    assert values(pk1, "isakmp.ike.attr.authentication_method") == ["1"] * 5
    assert values(pk1, "isakmp.ike.attr.group_description") == ["20", "19", "14", "14", "2"]
    # 86400 does not fit 16 bits: a 4-octet variable-length life duration.
    assert values(pk1, "isakmp.ike.attr.life_duration") == ["86400"] * 5
    assert values(pk1, "isakmp.ike.attr.format")[-1] == "0"
    # Wireshark's own vendor ID table names our constants.
    assert values(pk1, "isakmp.vid_string") == [
        "MS NT5 ISAKMPOAKLEY", "RFC 3947 Negotiation of NAT-Traversal in the IKE", "Cisco Fragmentation",
        "RFC 3706 DPD (Dead Peer Detection)"]
    assert values(pk3, "isakmp.typepayload") == ["4", "10", "20", "20"]
    assert values(pk3, "isakmp.ike.nat_hash") == [":".join(["01"] * 20), ":".join(["02"] * 20)]
    assert values(pk5, "isakmp.typepayload") == ["5", "8"]
    assert values(pk5, "isakmp.id.type") == ["1"] and values(pk5, "isakmp.id.port") == ["500"]
    assert values(pk5, "isakmp.id.data.ipv4_addr") == ["192.0.2.1"]


def test_quick_mode_informational_and_fragments_as_wireshark_sees_them(tmp_path):
    esp = PR.ProposalSet.parse("aes256gcm16,aes256-sha1,3des-sha1", "esp")
    qm = Message.build(ICKY, RCKY, C.EXCH_QUICK,
                       [P.HashPayload(b"\0" * 20),
                        PR.esp_sa_payload(esp, bytes.fromhex("c0ffee00"), mode=C.ENCAP_UDP_TRANSPORT),
                        P.NoncePayload(b"n" * 16), P.IdPayload.ipv4("192.0.2.1", 17, 1701),
                        P.IdPayload.ipv4("198.51.100.1", 17, 1701), P.NatOaPayload("10.0.0.2"),
                        P.NatOaPayload("198.51.100.1")], message_id=0x12345678).encode()
    info = Message.build(ICKY, RCKY, C.EXCH_INFORMATIONAL,
                         [P.HashPayload(b"\0" * 20), P.NotifyPayload(C.N_R_U_THERE, ICKY + RCKY, b"\0\0\0\x05"),
                          P.DeletePayload(C.PROTO_IPSEC_ESP, [bytes.fromhex("c0ffee00")])],
                         message_id=0x0BADF00D).encode()
    big = Message.build(ICKY, RCKY, C.EXCH_MAIN, [P.CertPayload(C.CERT_X509_SIG, b"\x30" * 1400)]).encode()
    frags = fragment_message(big, 3, 576)
    pkts = dissect(tmp_path, [qm, info] + frags)
    q, i = pkts[0], pkts[1]
    no_errors(q)
    no_errors(i)
    assert values(q, "isakmp.exchangetype") == ["32"] and values(q, "isakmp.messageid") == ["0x12345678"]
    assert values(q, "isakmp.typepayload") == ["8", "1", "2", "3", "3", "3", "10", "5", "5", "21", "21"]
    assert values(q, "isakmp.prop.protoid") == ["3"] and values(q, "isakmp.spi") == ["c0:ff:ee:00"]
    assert values(q, "isakmp.trans.id") == ["20", "12", "3"]
    assert values(q, "isakmp.ipsec.attr.encap_mode") == ["4", "4", "4"]
    assert values(q, "isakmp.ipsec.attr.auth_algorithm") == ["2", "2"]
    assert values(q, "isakmp.ipsec.attr.key_length") == ["256", "256"]
    assert values(q, "isakmp.ipsec.attr.life_duration") == ["3600"] * 3
    assert values(q, "isakmp.ike.nat_original_address_ipv4") == ["10.0.0.2", "198.51.100.1"]
    assert values(i, "isakmp.exchangetype") == ["5"]
    assert values(i, "isakmp.typepayload") == ["8", "11", "12"]
    assert values(i, "isakmp.notify.msgtype") == ["36136"]
    assert values(i, "isakmp.delete.protoid") == ["3"]
    for f in pkts[2:]:
        assert values(f, "isakmp.typepayload")[0] == "132"
    assert [values(f, "isakmp.frag.seq")[0] for f in pkts[2:]] == ["1", "2", "3"]
    assert [values(f, "isakmp.frag.last")[0] for f in pkts[2:]] == ["0", "0", "1"]
    # Wireshark reassembles the pieces and dissects the inner message: a CERT payload (6).
    assert "6" in values(pkts[-1], "isakmp.typepayload")


def test_vendor_ids_named_by_wireshark(tmp_path):
    vids = [V.NATT_RFC3947, V.NATT_DRAFT_03, V.NATT_DRAFT_02N, V.NATT_DRAFT_02, V.XAUTH, V.CISCO_UNITY,
            V.STRONGSWAN, V.FRAGMENTATION + b"\x80\x00\x00\x00"]
    (pk,) = dissect(tmp_path, [Message.build(ICKY, ZERO, C.EXCH_MAIN, [P.VendorIdPayload(v) for v in vids]).encode()])
    no_errors(pk)
    assert values(pk, "isakmp.vid_string") == [
        "RFC 3947 Negotiation of NAT-Traversal in the IKE", "draft-ietf-ipsec-nat-t-ike-03",
        "draft-ietf-ipsec-nat-t-ike-02\\n", "draft-ietf-ipsec-nat-t-ike-02", "XAUTH", "CISCO-UNITY", "strongSwan",
        "Cisco Fragmentation"]
    assert [V.recognize(v) for v in vids] == ["rfc3947", "natt-draft-03", "natt-draft-02n", "natt-draft-02", "xauth",
                                              "cisco-unity", "strongswan", "fragmentation"]
