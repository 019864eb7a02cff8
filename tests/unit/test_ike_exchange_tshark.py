"""Our encrypted IKEv1 exchanges checked from outside (RFC 2409 5, 5.5, Appendix B).

The keys are derived again here from the wire with the standard library (hmac, hashlib) and `cryptography`'s
AES directly, never through sluice.ike.keys or sluice.ike.crypt:
SKEYID = prf(PSK, Ni_b | Nr_b), SKEYID_d/a/e, the Appendix B key expansion (AES-256 needs 32 octets, SHA-1
gives 20), the phase 1 IV and the per-message-id phase 2 IVs. Then:

* Wireshark (tshark, packet-isakmp.c), given only the initiator cookie and that encryption key, decrypts Main
  Mode 5/6 and the Quick Mode messages (it computes the IVs itself) and must show the payloads we meant;
* HASH_I, HASH_R, Quick Mode HASH(1), HASH(2), HASH(3) recomputed here must equal the ones on the wire;
* KEYMAT recomputed here must equal the keys in our ChildSaUp events, per direction.

The only value taken from inside is g^xy (recorded from the backend's DH object: the private values never
leave it); everything else comes off the wire, parsed by scapy.
"""

import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scapy.layers.inet import IP, UDP
from scapy.layers.isakmp import ISAKMP, ISAKMP_payload_KE, ISAKMP_payload_Nonce
from scapy.packet import Raw
from scapy.utils import wrpcap

from sluice.hal import crypto

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import ike_pair  # noqa: E402

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed (apt-get install tshark)")


class RecordingBackend:
    """The OpenSSL backend, with every DH shared secret recorded (for the outside re-derivation)."""

    def __init__(self):
        self._be = crypto.backend("openssl")
        self.shared = []

    def __getattr__(self, name):
        return getattr(self._be, name)

    def dh(self, group):
        inner = self._be.dh(group)
        rec = self.shared

        class Dh:
            def generate(self, rng):
                return inner.generate(rng)

            def shared(self, peer):
                s = inner.shared(peer)
                rec.append(s)
                return s

        return Dh()


def prf(key, data):
    return hmac.new(key, data, hashlib.sha1).digest()


def cbc_decrypt(key, iv, data):
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def chain(first, plain):
    """[(type, body, raw with generic header)] of a payload chain, walked by hand."""
    out, i, t = [], 0, first
    while t:
        n = int.from_bytes(plain[i + 2:i + 4], "big")
        out.append((t, plain[i + 4:i + n], plain[i:i + n]))
        t = plain[i]
        i += n
    return out


def negotiate(nat):
    be = RecordingBackend()
    p = ike_pair.Pair(client_cfg=ike_pair.config("initiator", ike="aes256-sha1-modp2048"),
                      server_cfg=ike_pair.config("responder", ike="aes256-sha1-modp2048"), backend=be, nat=nat)
    p.connect()
    return p, be


def derive(p, be):
    msgs = [x[3] for x in p.log]
    mm1, mm2, mm3, mm4 = msgs[:4]
    icky, rcky = mm1[:8], mm2[8:16]
    gxi = ISAKMP(mm3)[ISAKMP_payload_KE].ke
    gxr = ISAKMP(mm4)[ISAKMP_payload_KE].ke
    ni = ISAKMP(mm3)[ISAKMP_payload_Nonce].nonce
    nr = ISAKMP(mm4)[ISAKMP_payload_Nonce].nonce
    assert be.shared[0] == be.shared[1]
    gxy = be.shared[0]
    skeyid = prf(ike_pair.PSK, ni + nr)                               # RFC 2409 5 (pre-shared key)
    d = prf(skeyid, gxy + icky + rcky + b"\x00")
    a = prf(skeyid, d + gxy + icky + rcky + b"\x01")
    e = prf(skeyid, a + gxy + icky + rcky + b"\x02")
    k1 = prf(e, b"\x00")                                             # RFC 2409 Appendix B expansion
    key = (k1 + prf(e, k1))[:32]
    sai_b = mm1[32:28 + int.from_bytes(mm1[30:32], "big")]            # SA payload body, first payload of MM1
    return dict(icky=icky, rcky=rcky, gxi=gxi, gxr=gxr, ni=ni, nr=nr, gxy=gxy, skeyid=skeyid, d=d, a=a, key=key,
                sai_b=sai_b, iv=hashlib.sha1(gxi + gxr).digest()[:16], msgs=msgs)


def tshark(tmp_path, p, k):
    pkts = []
    for direction, src, dst, data in p.log:
        marker = b"\x00" * 4 if 4500 in (src[1], dst[1]) else b""
        pkts.append(IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / Raw(marker + data))
    pcap = str(tmp_path / "ike.pcap")
    wrpcap(pcap, pkts)
    uat = "uat:ikev1_decryption_table:%s,%s" % (k["icky"].hex(), k["key"].hex())
    out = subprocess.run([TSHARK, "-r", pcap, "-o", uat, "-T", "pdml"], capture_output=True, timeout=60, check=True)
    packets = []
    for pkt in ET.fromstring(out.stdout).findall("packet"):
        packets.append([(f.get("name", ""), f.get("show", "")) for f in pkt.iter("field")
                        if f.get("name", "").startswith(("isakmp", "_ws"))])
    assert len(packets) == len(pkts)
    return packets


def shows(fields, name):
    return [v for n, v in fields if n == name]


@pytest.mark.parametrize("nat", [False, True])
def test_wireshark_decrypts_with_independently_derived_key(tmp_path, nat):
    p, be = negotiate(nat)
    k = derive(p, be)
    pk = tshark(tmp_path, p, k)
    for fields in pk:
        assert not [n for n, v in fields if n == "_ws.malformed"]
    # Main Mode 5: IDii (the client's address), HASH_I, INITIAL-CONTACT, decrypted by Wireshark.
    assert shows(pk[4], "isakmp.typepayload") == ["5", "8", "11"]
    assert shows(pk[4], "isakmp.id.data.ipv4_addr") == [ike_pair.CLIENT_IP]
    assert shows(pk[4], "isakmp.notify.msgtype") == ["24578"]
    idii_b = bytes((1, 0, 0, 0)) + bytes(int(x) for x in ike_pair.CLIENT_IP.split("."))
    hash_i = prf(k["skeyid"], k["gxi"] + k["gxr"] + k["icky"] + k["rcky"] + k["sai_b"] + idii_b)
    assert shows(pk[4], "isakmp.hash") == [hash_i.hex(":")]
    # Main Mode 6: IDir, HASH_R.
    assert shows(pk[5], "isakmp.typepayload") == ["5", "8"]
    idir_b = bytes((1, 0, 0, 0)) + bytes(int(x) for x in ike_pair.SERVER_IP.split("."))
    hash_r = prf(k["skeyid"], k["gxr"] + k["gxi"] + k["rcky"] + k["icky"] + k["sai_b"] + idir_b)
    assert shows(pk[5], "isakmp.hash") == [hash_r.hex(":")]
    # Quick Mode 1 and 2: HASH, SA, Nonce, ID, ID [, NAT-OA, NAT-OA]; transport or UDP-encapsulated transport.
    natoa = ["21", "21"] if nat else []
    assert shows(pk[6], "isakmp.typepayload") == ["8", "1", "2", "3", "10", "5", "5"] + natoa
    assert shows(pk[7], "isakmp.typepayload") == ["8", "1", "2", "3", "10", "5", "5"] + natoa
    assert shows(pk[6], "isakmp.ipsec.attr.encap_mode") == (["4"] if nat else ["2"])
    assert shows(pk[6], "isakmp.id.port") == ["1701", "1701"]
    assert shows(pk[6], "isakmp.id.protoid") == ["17", "17"]
    assert shows(pk[8], "isakmp.typepayload") == ["8"]


def test_phase2_hashes_and_keymat_recomputed_outside():
    p, be = negotiate(False)
    k = derive(p, be)
    msgs = k["msgs"]
    mm5, mm6, qm1, qm2, qm3 = msgs[4:9]
    # RFC 2409 Appendix B: MM5 under hash(g^xi | g^xr), MM6 chained from MM5's last block.
    plain5 = cbc_decrypt(k["key"], k["iv"], mm5[28:])
    assert plain5[0] == 8 and plain5[4:8] == b"\x01\x00\x00\x00"   # ID payload, next HASH, ID_IPV4_ADDR
    plain6 = cbc_decrypt(k["key"], mm5[-16:], mm6[28:])
    assert chain(mm6[16], plain6)[0][0] == 5
    mid = qm1[20:24]
    # Phase 2 IV: hash(last phase 1 CBC block | M-ID), then chained inside the exchange.
    iv = hashlib.sha1(mm6[-16:] + mid).digest()[:16]
    p1 = chain(qm1[16], cbc_decrypt(k["key"], iv, qm1[28:]))
    p2 = chain(qm2[16], cbc_decrypt(k["key"], qm1[-16:], qm2[28:]))
    p3 = chain(qm3[16], cbc_decrypt(k["key"], qm2[-16:], qm3[28:]))
    ni = [b for t, b, r in p1 if t == 10][0]
    nr = [b for t, b, r in p2 if t == 10][0]
    assert p1[0][1] == prf(k["a"], mid + b"".join(r for t, b, r in p1[1:]))          # HASH(1)
    assert p2[0][1] == prf(k["a"], mid + ni + b"".join(r for t, b, r in p2[1:]))     # HASH(2)
    assert p3[0][1] == prf(k["a"], b"\x00" + mid + ni + nr) and len(p3) == 1         # HASH(3)
    # KEYMAT = K1 | K2 | ..., one per SPI (RFC 2409 5.5); the SPI is the receiving side's.
    spi_i = [b for t, b, r in p1 if t == 1][0][8 + 8:8 + 8 + 4]   # SA body: DOI, situation, proposal hdr, SPI
    spi_r = [b for t, b, r in p2 if t == 1][0][16:20]

    def keymat(spi):
        seed = b"\x03" + spi + ni + nr
        k1 = prf(k["d"], seed)
        k2 = prf(k["d"], k1 + seed)
        k3 = prf(k["d"], k2 + seed)
        return k1 + k2 + k3

    c = p.events("client")[1]
    s = p.events("server")[1]
    assert c.spi_in == int.from_bytes(spi_i, "big") and s.spi_in == int.from_bytes(spi_r, "big")
    km_i = keymat(spi_i)                         # what the client receives with
    assert (c.enc_in, c.auth_in) == (km_i[:32], km_i[32:52])
    km_r = keymat(spi_r)
    assert (c.enc_out, c.auth_out) == (km_r[:32], km_r[32:52])
    assert (s.enc_in, s.auth_in) == (km_r[:32], km_r[32:52])
