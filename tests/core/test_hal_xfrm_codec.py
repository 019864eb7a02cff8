"""The XFRM and generic netlink codecs (sluice.hal.net.netlink, xfrm, l2tp_kernel) under MicroPython too.

The socket parts need a Linux kernel and are tested in the peer lab (tests/interop/cells/kernel_hal.py); the
codec is pure and must run where the rest of the core runs. Vectors: iproute2 6.15's messages and the
replies of a 6.12 kernel, from tests/unit/data/netlink_vectors.json (tests/interop/capture_netlink.py);
tests/unit/test_hal_netlink_vectors.py checks every one of them under CPython. All multi-byte host-order
fields here are little-endian (captured on x86_64), so the byte comparisons hold on little-endian hosts.
"""

import sys

from harness import raises, unhex
from sluice.hal.net import l2tp_kernel, netlink as nl, xfrm

ME, PEER = "192.0.2.2", "192.0.2.99"
K20 = unhex("0102030405060708090a0b0c0d0e0f1011121314")
K32 = bytes(range(32))
K36 = bytes([0x40 + i for i in range(36)])
MARK = (0x5C000001, 0xFFFFFFFF)
LITTLE = sys.byteorder == "little"

# ip xfrm state add src 192.0.2.2 dst 192.0.2.99 proto esp spi 0xc0010001 reqid 0x5c000001 mode transport
#   replay-window 32 enc 'cbc(aes)' K32 auth-trunc 'hmac(sha1)' K20 96 encap espinudp 4500 4500 0.0.0.0
#   mark 0x5c000001 mask 0xffffffff limit byte-soft 900000000 limit byte-hard 1000000000
#   limit time-soft 3000 limit time-hard 3600
NEWSA_AES_SHA1_ENCAP_MARK = unhex(
    "e00100001000050032b1146b000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000c0000263000000000000000000000000c001000132000000"
    "c000020200000000000000000000000000e9a4350000000000ca9a3b00000000ffffffffffffffffffffffffffffffff"
    "b80b000000000000100e0000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000100005c020000200000000000000000"
    "680002006362632861657329000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000010000000102030405060708090a0b0c0d0e0f1011121314151617"
    "18191a1b1c1d1e1f60001400686d61632873686131290000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000a0000000600000000102030405060708090a0b0c"
    "0d0e0f10111213141c0004000200119411940000000000000000000000000000000000000c0015000100005cffffffff")

# ip xfrm state add src 192.0.2.99 dst 192.0.2.2 proto esp spi 0xc0010002 reqid 0x5c000002 mode transport
#   replay-window 32 aead 'rfc4106(gcm(aes))' K36 128
NEWSA_GCM = unhex(
    "600100001000050033b1146b000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000c0000202000000000000000000000000c001000232000000"
    "c0000263000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000200005c020000200000000000000000"
    "70001200726663343130362867636d286165732929000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000002001000080000000404142434445464748494a4b4c4d4e4f50515253"
    "5455565758595a5b5c5d5e5f60616263")

# ip xfrm policy add src 192.0.2.2/32 dst 192.0.2.99/32 proto udp sport 1701 dport 1701 dir out priority 2080
#   tmpl src 192.0.2.2 dst 192.0.2.99 proto esp reqid 0x5c000001 mode transport mark 0x5c000001 mask 0xffffffff
NEWPOLICY_OUT = unhex(
    "080100001300050039b1146b00000000c0000263000000000000000000000000c0000202000000000000000000000000"
    "06a5ffff06a5ffff02002020110000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffff"
    "ffffffffffffffff00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000002008000000000000010000000000000044000500c0000263"
    "000000000000000000000000000000003200000002000000c00002020000000000000000000000000100005c00000000"
    "ffffffffffffffffffffffff0c0015000100005cffffffff")

# The hard XFRM_MSG_EXPIRE the kernel multicast for an SA added with limit time-soft 1 limit time-hard 2
EXPIRE_HARD = unhex(
    "f80000001800000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000002000000000000000000000000000000c0000263000000000000000000000000c001000832000000"
    "c0000202000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "010000000000000002000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "3db1146b000000000000000000000000000000000000000000000000000000000800005c020000200000000000000000"
    "0100000000000000")

# The kernel's answer to `ip l2tp show tunnel` (L2TP_CMD_TUNNEL_GET dump, family id 0x23)
L2TP_TUNNEL_DUMP = unhex(
    "e00000002300020044b1146b4a020000040100000500070003000000080009006400000008000a00c800000008001100"
    "0000000006000200000000007c001e000c00010000000000000000000c00020000000000000000000c00030000000000"
    "000000000c00040000000000000000000c00050000000000000000000c00060000000000000000000c000a0000000000"
    "000000000c00070000000000000000000c00080000000000000000000c000b00000000000000000005000d0000000000"
    "06001a00a506000006001b00a506000008001800c000020208001900c0000263")


def seq_of(msg):
    return int.from_bytes(msg[8:12], "little")


def test_newsa_matches_iproute2():
    if not LITTLE:
        return
    spec = xfrm.SaSpec(ME, PEER, 0xC0010001, "aes256-sha1", K32, K20, reqid=0x5C000001, encap=(4500, 4500),
                       mark=MARK, limits=xfrm.Limits(3000, 3600, 900000000, 1000000000))
    assert xfrm.encode_newsa(spec, seq_of(NEWSA_AES_SHA1_ENCAP_MARK)) == NEWSA_AES_SHA1_ENCAP_MARK
    gcm = xfrm.SaSpec(PEER, ME, 0xC0010002, "aes256gcm16", K36[:32], salt=K36[32:], reqid=0x5C000002)
    assert xfrm.encode_newsa(gcm, seq_of(NEWSA_GCM)) == NEWSA_GCM


def test_newpolicy_matches_iproute2():
    if not LITTLE:
        return
    out = xfrm.l2tp_policies(ME, PEER, 0x5C000001, mark=MARK)[0]
    assert xfrm.encode_newpolicy(out, seq_of(NEWPOLICY_OUT)) == NEWPOLICY_OUT


def test_parse_expire_and_own_sa():
    ((mtype, _f, _s, _p, payload),) = nl.split_messages(EXPIRE_HARD)
    ev = xfrm.parse_event(mtype, payload)
    assert ev.hard and ev.sa.spi == 0xC0010008 and ev.sa.reqid == 0x5C000008 and ev.sa.is_ours()
    ((_t, _f, _s, _p, payload),) = nl.split_messages(NEWSA_AES_SHA1_ENCAP_MARK)
    sa = xfrm.parse_sa(payload)
    assert sa.crypt == ("cbc(aes)", 256) and sa.auth == ("hmac(sha1)", 160, 96)
    assert sa.encap == (2, 4500, 4500) and sa.mark == MARK and sa.limits.hard_seconds == 3600


def test_parse_l2tp_tunnel_dump():
    ((mtype, _f, _s, _p, payload),) = nl.split_messages(L2TP_TUNNEL_DUMP)
    t = l2tp_kernel.parse_tunnel(payload)
    assert (mtype, t.tunnel_id, t.peer_tunnel_id, t.local, t.peer, t.sport) == (0x23, 100, 200, ME, PEER, 1701)


def test_truncation_is_a_parse_error():
    raises(nl.NetlinkParseError, nl.split_messages, NEWSA_GCM[:-1])
    ((_t, _f, _s, _p, payload),) = nl.split_messages(NEWSA_GCM)
    raises(nl.NetlinkParseError, xfrm.parse_sa, payload[:-3])
    raises(xfrm.XfrmError, xfrm.kernel_algorithms, "chacha20poly1305")


def test_pppol2tp_sockaddr_is_the_50_byte_in6_form():
    assert len(l2tp_kernel.sockaddr_pppol2tp(3, 1, 2, 3, 4, PEER, 1701)) == 50
