"""Kernel IPsec (XFRM): the netlink messages for ESP SAs and policies, their parsers, and a thin socket.

Theory of operation. Sluice negotiates ESP in IKE (sluice.ike) and, on the kernel data path, hands each
SA pair to the kernel: `XFRM_MSG_NEWSA` per direction (transport mode, the ESP transform under its kernel
name, NAT-T as `XFRMA_ENCAP` ESPINUDP, an `XFRMA_MARK` where the engine asks for one) and, once per peer,
`XFRM_MSG_NEWPOLICY` in and out for UDP/1701 (RFC 3193 4: L2TP/IPsec protects exactly the L2TP flow).
Every SA and policy Sluice installs carries a reqid from Sluice's range (REQID_BASE..REQID_BASE+0xffffff),
so `flush_ours` removes its leftovers after a crash without touching anyone else's.

The kernel reports back: the SA's current lifetime (bytes, packets, add and use time) in `XFRM_MSG_GETSA`
replies and dumps (read for DPD and idle detection), `XFRM_MSG_EXPIRE` (soft: start a rekey; hard: the SA is
gone) and `XFRM_MSG_MAPPING` (a NAT-T peer's address or port changed) on the multicast groups.

Layouts are Linux include/uapi/linux/xfrm.h; the encoder is checked byte for byte against iproute2's
messages captured in a guest (tests/unit/data/netlink_vectors.json, tests/interop/capture_netlink.py).
Keys go into messages and nowhere else: no parsed object keeps key bytes, no repr shows them.

Marks. The kernel matches an SA's or policy's mark (XFRMA_MARK) against skb->mark: an outbound SA + policy
with a mark is used only by packets carrying it (the L2TP socket's SO_MARK), which is how two clients behind
one NAT get distinct outbound SAs. Inbound ESP arrives unmarked, so inbound SAs must not carry a mark (they
are found by SPI anyway). An SA's set-mark (XFRMA_SET_MARK + XFRMA_SET_MARK_MASK, iproute2's `output-mark V
mask M`) is different: the kernel writes it into skb->mark of what the SA encrypts and, since Linux 4.19, of
what it decrypts (xfrm_input: skb->mark = xfrm_smark_get(skb->mark, x)); a socket with SO_RCVMARK reads it
back, which tells which SA a decrypted datagram came through.
"""

import struct

from sluice.hal.crypto import transforms
from sluice.hal.net import netlink as nl
from sluice.hal.net.netlink import NE

# Message types (XFRM_MSG_*)
NEWSA = 0x10
DELSA = 0x11
GETSA = 0x12
NEWPOLICY = 0x13
DELPOLICY = 0x14
GETPOLICY = 0x15
ALLOCSPI = 0x16
ACQUIRE = 0x17
EXPIRE = 0x18
UPDPOLICY = 0x19
UPDSA = 0x1a
POLEXPIRE = 0x1b
FLUSHSA = 0x1c
FLUSHPOLICY = 0x1d
MAPPING = 0x26

# Attributes (XFRMA_*)
XFRMA_ALG_AUTH = 1
XFRMA_ALG_CRYPT = 2
XFRMA_ENCAP = 4
XFRMA_TMPL = 5
XFRMA_LTIME_VAL = 9
XFRMA_REPLAY_VAL = 10
XFRMA_SRCADDR = 13
XFRMA_LASTUSED = 15
XFRMA_POLICY_TYPE = 16
XFRMA_ALG_AEAD = 18
XFRMA_ALG_AUTH_TRUNC = 20
XFRMA_MARK = 21
XFRMA_REPLAY_ESN_VAL = 23
XFRMA_SA_EXTRA_FLAGS = 24
XFRMA_ADDRESS_FILTER = 26
XFRMA_SET_MARK = 29         # u32 (XFRMA_OUTPUT_MARK before Linux 4.19); 28 is XFRMA_OFFLOAD_DEV
XFRMA_SET_MARK_MASK = 30    # u32; absent: 0xffffffff

# Multicast groups (XFRMNLGRP_*): bit (group - 1) of sockaddr_nl.nl_groups
GRP_ACQUIRE = 1
GRP_EXPIRE = 2
GRP_SA = 3
GRP_POLICY = 4
GRP_MAPPING = 8

AF_INET = 2
IPPROTO_UDP = 17
IPPROTO_ESP = 50
MODE_TRANSPORT = 0
MODE_TUNNEL = 1
DIR_IN = 0
DIR_OUT = 1
DIR_FWD = 2
POLICY_ALLOW = 0
POLICY_BLOCK = 1
UDP_ENCAP_ESPINUDP = 2
XFRM_INF = 0xFFFFFFFFFFFFFFFF

# Sluice's reqids: 0x5c000000 + a 24-bit serial the engine assigns ('S' for Sluice; any fixed range works as
# long as no other IKE daemon on the router uses it; strongSwan counts from 1, libreswan from 16384).
REQID_BASE = 0x5C000000
REQID_MASK = 0xFF000000

# setsockopt on the IKE/NAT-T socket (UDP 4500): the kernel takes ESP-in-UDP, IKE keeps the 4-byte
# non-ESP marker (RFC 3948 2.2) and reaches the socket as before.
SOL_UDP = 17
UDP_ENCAP = 100

SIZE_SELECTOR = 56
SIZE_ID = 24
SIZE_LFT_CFG = 64
SIZE_LFT_CUR = 32
SIZE_USERSA_INFO = 224 if nl.U64_ALIGN == 8 else 220
MIN_USERSA_INFO = 217   # up to and including `flags`; the rest is tail padding
SIZE_USERSA_ID = 24
SIZE_USERPOLICY_INFO = 168 if nl.U64_ALIGN == 8 else 164
SIZE_USERPOLICY_ID = 64
SIZE_USER_TMPL = 64
SIZE_ENCAP_TMPL = 24
SIZE_USER_MAPPING = 64

# ESP integrity -> (kernel name, key bytes); the truncation comes from the transform's ICV length.
_AUTH = {"md5": "hmac(md5)", "sha1": "hmac(sha1)", "sha256": "hmac(sha256)", "sha256_96": "hmac(sha256)",
         "sha384": "hmac(sha384)", "sha512": "hmac(sha512)"}
_CIPHER = {"aes": "cbc(aes)", "3des": "cbc(des3_ede)"}
GCM_NAME = "rfc4106(gcm(aes))"


class XfrmError(ValueError):
    """An SA or policy Sluice cannot express to the kernel (unknown transform, wrong key length)."""


def kernel_algorithms(transform):
    """The kernel's view of a Sluice ESP transform name (sluice.hal.crypto.transforms):

    {'crypt': ('cbc(aes)', key bits), 'auth': ('hmac(sha256)', key bits, truncation bits)} for CBC + HMAC,
    {'aead': ('rfc4106(gcm(aes))', key bits including the 4-byte salt, ICV bits)} for GCM (RFC 4106 8.1).
    """
    try:
        kind, cipher, klen, integ, icv, _legacy = transforms.esp_spec(transform)
    except transforms.UnknownTransform:
        raise XfrmError("no kernel algorithm for ESP transform %r" % (transform,))
    if kind == "gcm":
        return {"aead": (GCM_NAME, (klen + transforms.GCM_SALT) * 8, icv * 8)}
    return {"crypt": (_CIPHER[cipher], klen * 8),
            "auth": (_AUTH[integ], transforms.INTEG[integ][2] * 8, icv * 8)}


# --- structs --------------------------------------------------------------------------------------------------

def _addr(a):
    """xfrm_address_t for an IPv4 address (text or 4 bytes; None is 0.0.0.0)."""
    if a is None:
        return bytes(16)
    if isinstance(a, str):
        a = nl.ip4(a)
    return a + bytes(12)


def _name64(name):
    b = name.encode()
    if len(b) >= 64:
        raise XfrmError("algorithm name %r too long" % (name,))
    return b + bytes(64 - len(b))


class Selector:
    """struct xfrm_selector: which packets an SA or policy covers (IPv4; 0 ports and proto mean any)."""

    __slots__ = ("src", "dst", "src_len", "dst_len", "proto", "sport", "dport", "ifindex")

    def __init__(self, src=None, dst=None, proto=0, sport=0, dport=0, src_len=None, dst_len=None, ifindex=0):
        self.src = src            # 'a.b.c.d' or None (any)
        self.dst = dst
        self.src_len = (32 if src else 0) if src_len is None else src_len
        self.dst_len = (32 if dst else 0) if dst_len is None else dst_len
        self.proto = proto        # IP protocol, 0 = any
        self.sport = sport        # 0 = any
        self.dport = dport
        self.ifindex = ifindex

    def __repr__(self):
        return "Selector(%s/%d:%d -> %s/%d:%d proto %d)" % (self.src, self.src_len, self.sport, self.dst,
                                                             self.dst_len, self.dport, self.proto)

    def __eq__(self, other):
        return isinstance(other, Selector) and all(getattr(self, k) == getattr(other, k) for k in Selector.__slots__)

    def encode(self, family=AF_INET):
        fam = family if (self.src or self.dst or self.proto) else 0
        return (_addr(self.dst) + _addr(self.src) +
                struct.pack(">HHHH", self.dport, 0xFFFF if self.dport else 0, self.sport,
                            0xFFFF if self.sport else 0) +
                struct.pack(NE + "HBBBxxxiI", fam, self.dst_len, self.src_len, self.proto, self.ifindex, 0))

    @staticmethod
    def decode(b, off=0):
        dport, _dm, sport, _sm = struct.unpack_from(">HHHH", b, off + 32)
        _fam, dlen, slen, proto, ifindex, _user = struct.unpack_from(NE + "HBBBxxxiI", b, off + 40)
        dst = nl.ip4_text(b[off:off + 4]) if dlen or any(b[off:off + 4]) else None
        src = nl.ip4_text(b[off + 16:off + 20]) if slen or any(b[off + 16:off + 20]) else None
        return Selector(src, dst, proto, sport, dport, slen, dlen, ifindex)


def _lifetime_cfg(lt):
    """struct xfrm_lifetime_cfg from an object with soft/hard _bytes/_packets/_seconds (sluice.esp.lifetime
    .Lifetime has them); None everywhere means no limit (XFRM_INF for counts, 0 for times)."""
    def n(v):
        return XFRM_INF if v is None else int(v)

    def t(v):
        return 0 if v is None else int(v)

    if lt is None:
        return struct.pack(NE + "8Q", XFRM_INF, XFRM_INF, XFRM_INF, XFRM_INF, 0, 0, 0, 0)
    return struct.pack(NE + "8Q", n(lt.soft_bytes), n(lt.hard_bytes), n(lt.soft_packets), n(lt.hard_packets),
                       t(lt.soft_seconds), t(lt.hard_seconds), 0, 0)


class Limits:
    """SA lifetime limits for the kernel (the same fields as sluice.esp.lifetime.Lifetime; None = none)."""

    __slots__ = ("soft_seconds", "hard_seconds", "soft_bytes", "hard_bytes", "soft_packets", "hard_packets")

    def __init__(self, soft_seconds=None, hard_seconds=None, soft_bytes=None, hard_bytes=None,
                 soft_packets=None, hard_packets=None):
        self.soft_seconds = soft_seconds
        self.hard_seconds = hard_seconds
        self.soft_bytes = soft_bytes
        self.hard_bytes = hard_bytes
        self.soft_packets = soft_packets
        self.hard_packets = hard_packets

    def __repr__(self):
        return "Limits(s=%r/%r, b=%r/%r, p=%r/%r)" % (self.soft_seconds, self.hard_seconds, self.soft_bytes,
                                                      self.hard_bytes, self.soft_packets, self.hard_packets)


class SaSpec:
    """One ESP SA to install: addresses, SPI, transform and its keys, reqid, NAT-T ports, mark, limits."""

    __slots__ = ("src", "dst", "spi", "transform", "enc_key", "auth_key", "salt", "reqid", "encap", "mark",
                 "limits", "replay_window", "selector", "mode", "set_mark")

    def __init__(self, src, dst, spi, transform, enc_key, auth_key=b"", salt=b"", reqid=0, encap=None,
                 mark=None, limits=None, replay_window=32, selector=None, mode=MODE_TRANSPORT, set_mark=None):
        self.src = src                      # 'a.b.c.d': the ESP packet's outer source
        self.dst = dst
        self.spi = spi                      # int, chosen by the receiving end
        self.transform = transform          # sluice.hal.crypto.transforms name, e.g. 'aes256-sha1'
        self.enc_key = enc_key
        self.auth_key = auth_key or b""     # b'' for GCM
        self.salt = salt or b""             # 4 bytes for GCM, b'' otherwise
        self.reqid = reqid
        self.encap = encap                  # (sport, dport) of UDP-encapsulated ESP (RFC 3948), or None
        self.mark = mark                    # (value, mask) or None
        self.limits = limits                # Limits / sluice.esp.lifetime.Lifetime or None
        self.replay_window = replay_window  # packets (RFC 4303 3.4.3); 0 turns anti-replay off
        self.selector = selector            # Selector or None (any: the policy decides)
        self.mode = mode
        self.set_mark = set_mark            # (value, mask) written into skb->mark of what the SA carries, or None

    def __repr__(self):
        return "SaSpec(%s -> %s spi=0x%08x %s reqid=0x%x encap=%r mark=%r set_mark=%r)" % (
            self.src, self.dst, self.spi, self.transform, self.reqid, self.encap, self.mark, self.set_mark)


def encode_sa_info(spec):
    """struct xfrm_usersa_info for a new SA."""
    sel = spec.selector.encode() if spec.selector else Selector().encode()
    xid = _addr(spec.dst) + struct.pack(">I", spec.spi) + struct.pack("Bxxx", IPPROTO_ESP)
    body = (sel + xid + _addr(spec.src) + _lifetime_cfg(spec.limits) + bytes(SIZE_LFT_CUR) + bytes(12) +
            struct.pack(NE + "IIHBBB", 0, spec.reqid, AF_INET, spec.mode, spec.replay_window, 0))
    return nl.pad_to(body, nl.U64_ALIGN)


def encode_sa_algs(spec):
    """The algorithm attributes of an SA: XFRMA_ALG_CRYPT + XFRMA_ALG_AUTH_TRUNC, or XFRMA_ALG_AEAD."""
    algs = kernel_algorithms(spec.transform)
    try:
        transforms.check_keys(spec.transform, spec.enc_key, spec.auth_key, spec.salt)
    except ValueError as e:
        raise XfrmError(str(e))
    if "aead" in algs:
        name, bits, icv = algs["aead"]
        key = bytes(spec.enc_key) + bytes(spec.salt)
        return nl.attr(XFRMA_ALG_AEAD, _name64(name) + struct.pack(NE + "II", bits, icv) + key)
    cname, cbits = algs["crypt"]
    aname, abits, trunc = algs["auth"]
    return (nl.attr(XFRMA_ALG_CRYPT, _name64(cname) + struct.pack(NE + "I", cbits) + bytes(spec.enc_key)) +
            nl.attr(XFRMA_ALG_AUTH_TRUNC, _name64(aname) + struct.pack(NE + "II", abits, trunc) +
                    bytes(spec.auth_key)))


def encode_encap(sport, dport, oa=None, etype=UDP_ENCAP_ESPINUDP):
    return nl.attr(XFRMA_ENCAP, struct.pack(NE + "H", etype) + struct.pack(">HH", sport, dport) + b"\0\0" +
                   _addr(oa))


def encode_mark(mark):
    return nl.attr(XFRMA_MARK, struct.pack(NE + "II", mark[0], mark[1])) if mark else b""


def encode_set_mark(set_mark):
    """XFRMA_SET_MARK + XFRMA_SET_MARK_MASK (iproute2 sends the mask attribute only when it is not 0)."""
    if not set_mark:
        return b""
    out = nl.attr_u32(XFRMA_SET_MARK, set_mark[0])
    if set_mark[1]:
        out += nl.attr_u32(XFRMA_SET_MARK_MASK, set_mark[1])
    return out


def encode_newsa(spec, seq, update=False):
    """XFRM_MSG_NEWSA (create, fails when the SA exists) or XFRM_MSG_UPDSA (replace its limits, encap...).

    Attribute order as iproute2 emits for `ip xfrm state add ... enc/aead ... auth-trunc ... encap ... mark ...
    output-mark V mask M`. On UPDSA the kernel takes a set-mark that is there and keeps the SA's otherwise.
    """
    payload = encode_sa_info(spec) + encode_sa_algs(spec)
    if spec.encap:
        payload += encode_encap(spec.encap[0], spec.encap[1])
    payload += encode_mark(spec.mark) + encode_set_mark(spec.set_mark)
    # The kernel ignores NLM_F_CREATE/EXCL here: NEWSA fails with EEXIST, UPDSA with ESRCH (iproute2 sends neither).
    return nl.message(UPDSA if update else NEWSA, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, payload)


def encode_sa_id(dst, spi, proto=IPPROTO_ESP):
    return _addr(dst) + struct.pack(">I", spi) + struct.pack(NE + "HBx", AF_INET, proto)


def _sa_lookup(dst, spi, mark, src):
    payload = encode_sa_id(dst, spi)
    if src:
        payload += nl.attr(XFRMA_SRCADDR, _addr(src))
    return payload + encode_mark(mark)


def encode_delsa(dst, spi, seq, mark=None, src=None):
    """XFRM_MSG_DELSA for the SA (dst, spi, ESP); `mark` must be the SA's own when it has one."""
    return nl.message(DELSA, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, _sa_lookup(dst, spi, mark, src))


def encode_getsa(dst, spi, seq, mark=None, src=None):
    """XFRM_MSG_GETSA: the kernel answers with an XFRM_MSG_NEWSA carrying the SA and its counters."""
    return nl.message(GETSA, nl.NLM_F_REQUEST, seq, _sa_lookup(dst, spi, mark, src))


def encode_dump_sa(seq):
    """A dump of every SA. The kernel reads a dump request's attributes right after the netlink header; an
    all-zero XFRMA_ADDRESS_FILTER matches every SA (iproute2 sends the same for `ip xfrm state list`)."""
    return nl.message(GETSA, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, nl.attr(XFRMA_ADDRESS_FILTER, bytes(36)))


class PolicySpec:
    """One transport-mode policy: a selector, a direction, and the ESP SA it requires (by reqid)."""

    __slots__ = ("selector", "dir", "tmpl_src", "tmpl_dst", "reqid", "mark", "priority", "action", "optional",
                 "index", "mode")

    def __init__(self, selector, dir, tmpl_src, tmpl_dst, reqid, mark=None, priority=2080, action=POLICY_ALLOW,
                 optional=False, index=0, mode=MODE_TRANSPORT):
        self.selector = selector
        self.dir = dir                # DIR_IN / DIR_OUT
        self.tmpl_src = tmpl_src      # the SA's outer addresses
        self.tmpl_dst = tmpl_dst
        self.reqid = reqid            # 0 in a template: any SA of the right addresses (inbound, several clients)
        self.mark = mark              # (value, mask) or None
        self.priority = priority      # lower wins; strongSwan's transport policies sit near 2000-3000
        self.action = action
        self.optional = optional      # template level 'use' instead of 'required'
        self.index = index
        self.mode = mode

    def __repr__(self):
        return "PolicySpec(%s %r reqid=0x%x mark=%r)" % ({0: "in", 1: "out", 2: "fwd"}.get(self.dir, self.dir),
                                                           self.selector, self.reqid, self.mark)


def encode_tmpl(src, dst, reqid, mode=MODE_TRANSPORT, optional=False):
    """struct xfrm_user_tmpl: an ESP SA between src and dst with this reqid (all algorithms allowed)."""
    xid = _addr(dst) + struct.pack(">I", 0) + struct.pack("Bxxx", IPPROTO_ESP)
    return (xid + struct.pack(NE + "Hxx", AF_INET) + _addr(src) +
            struct.pack(NE + "IBBBxIII", reqid, mode, 0, 1 if optional else 0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF))


def encode_policy_info(p):
    body = (p.selector.encode() + _lifetime_cfg(None) + bytes(SIZE_LFT_CUR) +
            struct.pack(NE + "IIBBBB", p.priority, p.index, p.dir, p.action, 0, 0))
    return nl.pad_to(body, nl.U64_ALIGN)


def encode_newpolicy(p, seq, update=False):
    """XFRM_MSG_NEWPOLICY (create) or XFRM_MSG_UPDPOLICY (create or replace), as `ip xfrm policy add|update`."""
    payload = (encode_policy_info(p) + nl.attr(XFRMA_TMPL, encode_tmpl(p.tmpl_src, p.tmpl_dst, p.reqid, p.mode,
                                                                        p.optional)) + encode_mark(p.mark))
    return nl.message(UPDPOLICY if update else NEWPOLICY, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, payload)


def encode_policy_id(selector, dir, index=0):
    return nl.pad_to(selector.encode() + struct.pack(NE + "IB", index, dir), 4)


def encode_delpolicy(selector, dir, seq, mark=None, index=0):
    """XFRM_MSG_DELPOLICY by selector and direction (or by index); `mark` must be the policy's own."""
    return nl.message(DELPOLICY, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq,
                      encode_policy_id(selector, dir, index) + encode_mark(mark))


def encode_dump_policy(seq):
    return nl.message(GETPOLICY, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, b"")


def l2tp_policies(local, peer, reqid_out, reqid_in=None, mark=None, local_port=1701, peer_port=1701,
                  priority=2080):
    """The outbound and inbound transport policies for L2TP/IPsec between two hosts (RFC 3193 4).

    peer_port 0 means any (a server does not know the client's L2TP source port). `mark` goes on the
    outbound policy only (the inbound one has none, so it matches any mark: ESP arrives unmarked, and what a
    server's inbound SA decrypts carries that SA's set-mark). reqid_in (default reqid_out) is what inbound SAs
    must carry: with several clients behind one NAT (one inbound selector for all of them), give their
    inbound SAs one reqid per peer address and their outbound SAs a reqid and mark each. A template reqid
    of 0 would accept any SA but would no longer say the policy is Sluice's (flush_ours goes by reqid)."""
    if reqid_in is None:
        reqid_in = reqid_out
    out = PolicySpec(Selector(local, peer, IPPROTO_UDP, local_port, peer_port), DIR_OUT, local, peer, reqid_out,
                     mark, priority)
    inp = PolicySpec(Selector(peer, local, IPPROTO_UDP, peer_port, local_port), DIR_IN, peer, local, reqid_in,
                     None, priority)
    return [out, inp]


# --- parsers --------------------------------------------------------------------------------------------------

class SaState:
    """An SA as the kernel reports it (GETSA reply, dump entry, EXPIRE): no key bytes are kept."""

    __slots__ = ("src", "dst", "spi", "proto", "reqid", "mode", "replay_window", "flags", "selector", "limits",
                 "bytes", "packets", "add_time", "use_time", "replay", "integrity_failed", "crypt", "auth", "aead",
                 "encap", "mark", "seq", "oseq", "set_mark")

    def __repr__(self):
        alg = self.aead or (self.crypt, self.auth)
        return "SaState(%s -> %s spi=0x%08x reqid=0x%x %r encap=%r mark=%r set_mark=%r bytes=%d packets=%d)" % (
            self.src, self.dst, self.spi, self.reqid, alg, self.encap, self.mark, self.set_mark, self.bytes,
            self.packets)

    def is_ours(self, reqid_base=REQID_BASE, reqid_mask=REQID_MASK, mark=None):
        return (self.reqid & reqid_mask) == reqid_base or (mark is not None and self.mark == mark)


def _alg_name(b):
    return bytes(b[:64]).split(b"\0", 1)[0].decode()


def parse_sa_info(b, off=0):
    """struct xfrm_usersa_info -> SaState (attributes not yet applied)."""
    if len(b) - off < MIN_USERSA_INFO:
        raise nl.NetlinkParseError("xfrm: usersa_info of %d bytes" % (len(b) - off))
    s = SaState()
    s.selector = Selector.decode(b, off)
    p = off + SIZE_SELECTOR
    s.dst = nl.ip4_text(b[p:p + 4])
    s.spi = struct.unpack_from(">I", b, p + 16)[0]
    s.proto = b[p + 20]
    p += SIZE_ID
    s.src = nl.ip4_text(b[p:p + 4])
    p += 16
    lft = struct.unpack_from(NE + "8Q", b, p)
    s.limits = Limits(lft[4] or None, lft[5] or None, None if lft[0] == XFRM_INF else lft[0],
                      None if lft[1] == XFRM_INF else lft[1], None if lft[2] == XFRM_INF else lft[2],
                      None if lft[3] == XFRM_INF else lft[3])
    p += SIZE_LFT_CFG
    s.bytes, s.packets, s.add_time, s.use_time = struct.unpack_from(NE + "4Q", b, p)
    p += SIZE_LFT_CUR
    _rw, s.replay, s.integrity_failed = struct.unpack_from(NE + "III", b, p)
    p += 12
    _seq, s.reqid, _family, s.mode, s.replay_window, s.flags = struct.unpack_from(NE + "IIHBBB", b, p)
    s.crypt = s.auth = s.aead = s.encap = s.mark = s.set_mark = None
    s.seq = s.oseq = None
    return s


def _apply_sa_attrs(s, attrs):
    smask = None
    for t, v in attrs:
        if t == XFRMA_ALG_CRYPT:
            s.crypt = (_alg_name(v), nl.u32(v[64:68]))
        elif t == XFRMA_ALG_AUTH_TRUNC:
            s.auth = (_alg_name(v), nl.u32(v[64:68]), nl.u32(v[68:72]))
        elif t == XFRMA_ALG_AUTH and s.auth is None:
            s.auth = (_alg_name(v), nl.u32(v[64:68]), None)
        elif t == XFRMA_ALG_AEAD:
            s.aead = (_alg_name(v), nl.u32(v[64:68]), nl.u32(v[68:72]))
        elif t == XFRMA_ENCAP:
            etype = nl.u16(v)
            sport, dport = struct.unpack_from(">HH", v, 2)
            s.encap = (etype, sport, dport)
        elif t == XFRMA_MARK:
            s.mark = (nl.u32(v), nl.u32(v[4:8]))
        elif t == XFRMA_SET_MARK:
            s.set_mark = (nl.u32(v), 0xFFFFFFFF)
        elif t == XFRMA_SET_MARK_MASK:
            smask = nl.u32(v)
        elif t == XFRMA_REPLAY_VAL:
            s.oseq, s.seq = struct.unpack_from(NE + "II", v, 0)
        elif t == XFRMA_REPLAY_ESN_VAL:
            _bmp, s.oseq, s.seq = struct.unpack_from(NE + "III", v, 0)
    if s.set_mark is not None and smask is not None:
        s.set_mark = (s.set_mark[0], smask)   # the kernel reads the mask only with a value (xfrm_smark_init)
    return s


def parse_sa(payload):
    """The payload of an XFRM_MSG_NEWSA/UPDSA (reply, dump entry or notification) -> SaState."""
    s = parse_sa_info(payload)
    return _apply_sa_attrs(s, nl.iter_attrs(payload, nl.align4(SIZE_USERSA_INFO)))


class PolicyState:
    """A policy as the kernel reports it."""

    __slots__ = ("selector", "dir", "action", "priority", "index", "tmpls", "mark")

    def __repr__(self):
        return "PolicyState(%s %r prio=%d index=%d tmpls=%r mark=%r)" % (
            {0: "in", 1: "out", 2: "fwd"}.get(self.dir, self.dir), self.selector, self.priority, self.index,
            self.tmpls, self.mark)

    def reqids(self):
        return [t[2] for t in self.tmpls]

    def is_ours(self, reqid_base=REQID_BASE, reqid_mask=REQID_MASK, mark=None):
        return (any((r & reqid_mask) == reqid_base for r in self.reqids()) or
                (mark is not None and self.mark == mark))


def parse_tmpls(v):
    """XFRMA_TMPL -> [(src, dst, reqid, mode, proto, optional)]."""
    out = []
    if len(v) % SIZE_USER_TMPL:
        raise nl.NetlinkParseError("xfrm: XFRMA_TMPL of %d bytes" % len(v))
    for off in range(0, len(v), SIZE_USER_TMPL):
        dst = nl.ip4_text(v[off:off + 4])
        proto = v[off + 20]
        src = nl.ip4_text(v[off + 28:off + 32])
        reqid, mode, _share, optional = struct.unpack_from(NE + "IBBB", v, off + 44)
        out.append((src, dst, reqid, mode, proto, bool(optional)))
    return out


def parse_policy(payload):
    """The payload of an XFRM_MSG_NEWPOLICY/UPDPOLICY (reply, dump entry) -> PolicyState."""
    if len(payload) < SIZE_USERPOLICY_INFO - 4:
        raise nl.NetlinkParseError("xfrm: userpolicy_info of %d bytes" % len(payload))
    p = PolicyState()
    p.selector = Selector.decode(payload, 0)
    off = SIZE_SELECTOR + SIZE_LFT_CFG + SIZE_LFT_CUR
    p.priority, p.index, p.dir, p.action = struct.unpack_from(NE + "IIBB", payload, off)
    p.tmpls = []
    p.mark = None
    for t, v in nl.iter_attrs(payload, nl.align4(SIZE_USERPOLICY_INFO)):
        if t == XFRMA_TMPL:
            p.tmpls = parse_tmpls(v)
        elif t == XFRMA_MARK:
            p.mark = (nl.u32(v), nl.u32(v[4:8]))
    return p


class SaExpired:
    """XFRM_MSG_EXPIRE: an SA reached a soft limit (time to rekey) or a hard one (the kernel removed it)."""

    __slots__ = ("sa", "hard")

    def __init__(self, sa, hard):
        self.sa = sa      # SaState (spi, addresses, reqid, counters at the moment of expiry)
        self.hard = hard  # True: gone; False: soft, rekey now

    def __repr__(self):
        return "SaExpired(%s spi=0x%08x reqid=0x%x)" % ("hard" if self.hard else "soft", self.sa.spi, self.sa.reqid)


class SaMapping:
    """XFRM_MSG_MAPPING: ESP-in-UDP for an inbound SA came from a new outer address or port (a NAT moved)."""

    __slots__ = ("dst", "spi", "reqid", "old_src", "old_sport", "new_src", "new_sport")

    def __init__(self, dst, spi, reqid, old_src, old_sport, new_src, new_sport):
        self.dst = dst
        self.spi = spi
        self.reqid = reqid
        self.old_src = old_src
        self.old_sport = old_sport
        self.new_src = new_src
        self.new_sport = new_sport

    def __repr__(self):
        return "SaMapping(spi=0x%08x %s:%d -> %s:%d)" % (self.spi, self.old_src, self.old_sport, self.new_src,
                                                          self.new_sport)


def parse_expire(payload):
    """struct xfrm_user_expire (+ the SA's attributes) -> SaExpired."""
    s = parse_sa_info(payload)
    hard = payload[SIZE_USERSA_INFO] if len(payload) > SIZE_USERSA_INFO else 0
    attrs_at = (SIZE_USERSA_INFO + 1 + nl.U64_ALIGN - 1) & ~(nl.U64_ALIGN - 1)  # struct xfrm_user_expire's size
    s = _apply_sa_attrs(s, nl.iter_attrs(payload, attrs_at))
    return SaExpired(s, bool(hard))


def parse_mapping(payload):
    """struct xfrm_user_mapping -> SaMapping."""
    if len(payload) < SIZE_USER_MAPPING:
        raise nl.NetlinkParseError("xfrm: user_mapping of %d bytes" % len(payload))
    dst = nl.ip4_text(payload[0:4])
    spi = struct.unpack_from(">I", payload, 16)[0]
    reqid = nl.u32(payload[24:28])
    old_src = nl.ip4_text(payload[28:32])
    new_src = nl.ip4_text(payload[44:48])
    old_sport, new_sport = struct.unpack_from(">HH", payload, 60)
    return SaMapping(dst, spi, reqid, old_src, old_sport, new_src, new_sport)


def encode_mapping(m):
    """struct xfrm_user_mapping as the kernel sends it (for tests and twins)."""
    return (encode_sa_id(m.dst, m.spi) + struct.pack(NE + "I", m.reqid) + _addr(m.old_src) + _addr(m.new_src) +
            struct.pack(">HH", m.old_sport, m.new_sport))


def parse_event(mtype, payload):
    """A multicast message -> SaExpired / SaMapping, or None for the types Sluice does not act on."""
    if mtype == EXPIRE:
        return parse_expire(payload)
    if mtype == MAPPING:
        return parse_mapping(payload)
    return None


# --- the socket ---------------------------------------------------------------------------------------------------

def groups_mask(groups):
    m = 0
    for g in groups:
        m |= 1 << (g - 1)
    return m


class Xfrm:
    """XFRM requests over one NETLINK_XFRM socket (blocking, answered at once by the kernel).

    Errors come back as netlink.NetlinkError with the errno (EEXIST: SA or policy exists; ESRCH/ENOENT:
    not there; EINVAL/ENOSYS: the kernel lacks an algorithm; EPERM: no CAP_NET_ADMIN).
    """

    def __init__(self, sock=None):
        self.nl = sock or nl.NetlinkSocket(nl.NETLINK_XFRM)

    def close(self):
        self.nl.close()

    def add_sa(self, spec):
        self.nl.request(lambda seq: encode_newsa(spec, seq), "add SA 0x%08x" % spec.spi)

    def update_sa(self, spec):
        self.nl.request(lambda seq: encode_newsa(spec, seq, update=True), "update SA 0x%08x" % spec.spi)

    def delete_sa(self, dst, spi, mark=None, src=None):
        self.nl.request(lambda seq: encode_delsa(dst, spi, seq, mark, src), "delete SA 0x%08x" % spi)

    def get_sa(self, dst, spi, mark=None, src=None):
        """The SA with its counters (SaState), or NetlinkError(ESRCH) when it is gone."""
        for mtype, payload in self.nl.request(lambda seq: encode_getsa(dst, spi, seq, mark, src),
                                              "get SA 0x%08x" % spi):
            if mtype == NEWSA:
                return parse_sa(payload)
        raise nl.NetlinkError(3, "get SA 0x%08x: no answer" % spi)

    def list_sas(self):
        return [parse_sa(p) for t, p in self.nl.request(encode_dump_sa, "list SAs", dump=True) if t == NEWSA]

    def add_policy(self, p, update=False):
        self.nl.request(lambda seq: encode_newpolicy(p, seq, update), "add policy %r" % (p,))

    def delete_policy(self, selector, dir, mark=None, index=0):
        self.nl.request(lambda seq: encode_delpolicy(selector, dir, seq, mark, index), "delete policy %r" % (selector,))

    def list_policies(self):
        return [parse_policy(p) for t, p in self.nl.request(encode_dump_policy, "list policies", dump=True)
                if t == NEWPOLICY]

    def flush_ours(self, reqid_base=REQID_BASE, reqid_mask=REQID_MASK, mark=None):
        """Remove every SA and policy whose reqid is in Sluice's range (or whose mark is `mark`); others stay.

        Returns (SAs removed, policies removed). For the leftovers of a crashed or killed daemon."""
        nsa = npol = 0
        for p in self.list_policies():
            if p.is_ours(reqid_base, reqid_mask, mark):
                try:
                    self.delete_policy(p.selector, p.dir, p.mark, p.index)
                    npol += 1
                except nl.NetlinkError as e:
                    if e.args[0] != 2:
                        raise
        for s in self.list_sas():
            if s.is_ours(reqid_base, reqid_mask, mark):
                try:
                    self.delete_sa(s.dst, s.spi, s.mark, s.src)
                    nsa += 1
                except nl.NetlinkError as e:
                    if e.args[0] not in (2, 3):
                        raise
        return nsa, npol


class XfrmEvents:
    """A NETLINK_XFRM socket subscribed to EXPIRE and MAPPING: `fileno()` for the loop, `read()` when readable.

    `lost()` counts overruns (ENOBUFS): events were dropped, so re-read the SAs (Xfrm.list_sas) to catch up."""

    def __init__(self, groups=(GRP_EXPIRE, GRP_MAPPING)):
        self.nl = nl.NetlinkSocket(nl.NETLINK_XFRM, groups_mask(groups))

    def fileno(self):
        return self.nl.fileno()

    def lost(self):
        return self.nl.lost

    def read(self):
        out = []
        for mtype, payload in self.nl.recv_events():
            ev = parse_event(mtype, payload)
            if ev is not None:
                out.append(ev)
        return out

    def close(self):
        self.nl.close()


def set_udp_encap(sock):
    """Make the kernel take ESP-in-UDP (RFC 3948) arriving on this UDP socket (the one bound to :4500)."""
    sock.setsockopt(SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)
