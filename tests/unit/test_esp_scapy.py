"""ESP interop against an independent implementation: scapy's SecurityAssociation (scapy.layers.ipsec).

For every transform Sluice offers: packets we seal are decrypted and ICV-checked by scapy, and packets
scapy builds are opened by us; raw ESP (IP protocol 50) and UDP-encapsulated (RFC 3948, port 4500).
Every backend that can run here is held to the same peer.
"""

import random

import pytest

scapy_ipsec = pytest.importorskip("scapy.layers.ipsec")
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.hmac import HMAC  # noqa: E402

from sluice.esp import Inbound, Outbound  # noqa: E402
from sluice.esp import udpencap  # noqa: E402
from sluice.hal import crypto  # noqa: E402
from sluice.hal.crypto import transforms  # noqa: E402

SRC, DST = "192.0.2.1", "198.51.100.2"

# The Android 6/7 HMAC-SHA-256 truncated to 96 bits is not in scapy's table: the same HMAC, 12-byte ICV.
_SHA256_96 = scapy_ipsec.AuthAlgo("SHA2-256-96", mac=HMAC, digestmod=hashes.SHA256, icv_size=12)
_AUTH = {"sha1": "HMAC-SHA1-96", "md5": "HMAC-MD5-96", "sha256": "SHA2-256-128", "sha384": "SHA2-384-192",
         "sha512": "SHA2-512-256"}


def _gcm_truncated(icv):
    from cryptography.hazmat.primitives.ciphers import algorithms, modes
    return scapy_ipsec.CryptAlgo("AES-GCM-%d" % icv, cipher=algorithms.AES, mode=modes.GCM, key_size=(16, 24, 32),
                                 salt_size=4, block_size=1, iv_size=8, icv_size=icv,
                                 format_mode_iv=lambda sa, iv, **kw: sa.crypt_salt + iv)


def _backends():
    out = []
    for name in ("openssl", "pure", "afalg"):
        try:
            mod = crypto.load(name)
        except ImportError as e:
            out.append(pytest.param(name, marks=pytest.mark.skip(reason="%s: %s" % (name, e))))
            continue
        why = mod.available()
        if why is not None:
            out.append(pytest.param(name, marks=pytest.mark.skip(reason="%s unavailable: %s" % (name, why))))
        else:
            out.append(name)
    return out


BACKENDS = _backends()
TRANSFORMS = sorted(transforms.ESP)


def _keys(name, rnd):
    ek, ak, sl = transforms.esp_key_lengths(name)
    return rnd.randbytes(ek), rnd.randbytes(ak), rnd.randbytes(sl)


def _scapy_sa(name, spi, ek, ak, salt, nat_t):
    kind, cipher, _, integ, _, _ = transforms.esp_spec(name)
    kw = {}
    if nat_t:
        kw["nat_t_header"] = UDP(sport=4500, dport=4500)
    if kind == "gcm":
        icv = transforms.ESP[name][4]
        sa = scapy_ipsec.SecurityAssociation(scapy_ipsec.ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=ek + salt,
                                             crypt_icv_size=icv, auth_algo="NULL", **kw)
        if icv != 16:
            # scapy's AES-GCM entry goes through AESGCM, which only does 16-byte tags; its older
            # Cipher/modes.GCM path verifies truncated ones (RFC 4106 8/12-byte ICVs).
            sa.crypt_algo = _gcm_truncated(icv)
        return sa
    sa = scapy_ipsec.SecurityAssociation(scapy_ipsec.ESP, spi=spi, crypt_algo="AES-CBC" if cipher == "aes" else "3DES",
                                         crypt_key=ek, auth_algo="NULL", **kw)
    # Set after construction so that the custom 96-bit SHA-256 variant fits too.
    sa.auth_algo = _SHA256_96 if integ == "sha256_96" else scapy_ipsec.AUTH_ALGOS[_AUTH[integ]]
    sa.auth_key = ak
    return sa


def _supports(backend, name):
    mod = crypto.load(backend)
    if not mod.supports(name):
        pytest.skip("%s backend has no %s here" % (backend, name))
    return mod


def _payloads(rnd, count):
    sizes = [0, 1, 13, 14, 15, 16, 17, 100, 1400][:count]
    return [bytes(UDP(sport=1701, dport=1701) / Raw(rnd.randbytes(n))) for n in sizes]


@pytest.mark.parametrize("nat_t", [False, True], ids=["raw", "udp4500"])
@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_scapy_decrypts_ours(backend, name, nat_t):
    mod = _supports(backend, name)
    rnd = random.Random(hash((backend, name, nat_t)) & 0xFFFF)
    ek, ak, salt = _keys(name, rnd)
    spi = 0x1000 + rnd.randrange(1 << 20)
    out = Outbound(spi, name, ek, ak, salt, rng=rnd.randbytes, backend=mod)
    peer = _scapy_sa(name, spi, ek, ak, salt, nat_t)
    for i, payload in enumerate(_payloads(rnd, 9 if backend != "pure" else 4)):
        esp = out.seal(payload, 17)
        if nat_t:
            assert udpencap.classify(esp) == udpencap.ESP
            wire = IP(src=SRC, dst=DST, proto=17) / Raw(udpencap.udp_header(4500, 4500, len(esp)) + esp)
        else:
            wire = IP(src=SRC, dst=DST, proto=50) / Raw(esp)
        pkt = IP(bytes(wire))  # scapy dissects it as ESP itself (proto 50 or UDP/4500)
        assert pkt.haslayer(scapy_ipsec.ESP)
        assert pkt[scapy_ipsec.ESP].seq == i + 1
        plain = peer.decrypt(pkt)  # raises IPSecIntegrityError on a bad ICV
        assert plain.proto == 17
        assert bytes(plain[UDP]) == payload


@pytest.mark.parametrize("nat_t", [False, True], ids=["raw", "udp4500"])
@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_we_open_scapys(backend, name, nat_t):
    mod = _supports(backend, name)
    rnd = random.Random(hash((backend, name, nat_t, 1)) & 0xFFFF)
    ek, ak, salt = _keys(name, rnd)
    spi = 0x2000 + rnd.randrange(1 << 20)
    inb = Inbound(spi, name, ek, ak, salt, backend=mod)
    peer = _scapy_sa(name, spi, ek, ak, salt, nat_t)
    for i, size in enumerate([0, 5, 40, 1300][: 4 if backend != "pure" else 2]):
        data = rnd.randbytes(size)
        clear = IP(src=SRC, dst=DST) / UDP(sport=1701, dport=1701) / Raw(data)
        enc = peer.encrypt(clear, seq_num=i + 1, iv=rnd.randbytes(16 if "gcm" not in name and "3des" not in name
                                                                   else 8))
        wire = bytes(enc)
        ihl = wire[0] & 0x0F
        esp = wire[4 * ihl:]
        if nat_t:
            assert esp[:2] == b"\x11\x94"  # source port 4500
            assert udpencap.classify(esp[8:]) == udpencap.ESP
            esp = esp[8:]
        payload, nh = inb.open(esp)
        assert nh == 17
        sport, dport, body = udpencap.split_udp(payload)
        assert (sport, dport, bytes(body)) == (1701, 1701, data)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_tampered_scapy_packets_refused(name):
    # Every region of a packet scapy sealed: IV, ciphertext, ICV. One flipped bit is an EspAuthError,
    # and the genuine packet still opens after all of them (the window did not move).
    from sluice.esp import EspAuthError
    rnd = random.Random(name)
    ek, ak, salt = _keys(name, rnd)
    inb = Inbound(0x3000, name, ek, ak, salt, backend="openssl")
    peer = _scapy_sa(name, 0x3000, ek, ak, salt, False)
    clear = IP(src=SRC, dst=DST) / UDP(sport=1701, dport=1701) / Raw(b"L2TP" * 10)
    wire = bytes(peer.encrypt(clear, seq_num=7))
    esp = wire[20:]
    for pos in range(8, len(esp), 3):
        bad = bytearray(esp)
        bad[pos] ^= 0x10
        with pytest.raises(EspAuthError):
            inb.open(bytes(bad))
    payload, nh = inb.open(esp)
    assert nh == 17 and bytes(payload).endswith(b"L2TP" * 10)
