"""ISAKMP payload codec: the generic payload chain and every typed payload IKEv1 uses.

Theory of operation
-------------------
RFC 2408 3.2: after the 28-octet header comes a chain of payloads, each starting with a 4-octet generic header
(next payload, reserved, length incl. the header). `parse_payloads(first_type, body)` walks that chain and turns
each payload into a small object through a table keyed by wire type; `encode_payloads(payloads)` is the exact
inverse and returns `(first_type, bytes)` so that a caller can put the first type in the ISAKMP header (or
encrypt the bytes first: the E flag is handled a layer above, which decrypts and then calls `parse_payloads`
with `allow_padding=True`, RFC 2408 3.1 / RFC 2409 5.3 pad the plaintext).

Nested chains use the same walker: an SA payload (RFC 2408 3.4, RFC 2407 4.6.1) holds Proposal payloads
(3.5, next payload 2 or 0), a Proposal holds Transform payloads (3.6, next payload 3 or 0), a Transform holds
data attributes (3.3: AF=1 basic TV with a 16-bit value, AF=0 TLV with a length).

Attributes are kept as a list of `(type, value)` with `value` an int for a basic (TV) attribute and `bytes` for a
variable (TLV) one, so a transform decoded and re-encoded is byte-identical (a responder echoes the chosen
transform exactly as offered, RFC 2409 5).

Strictness: every length is checked against what contains it; bytes after the last payload are rejected unless
`allow_padding`; an unknown payload type is kept as `UnknownPayload` (a caller skips it) unless its reserved
octet has the high ("critical", as in IKEv2) bit set. Every failure raises `IkeMalformed`, a ValueError.
Nothing here knows about keys or state; payload bodies may be secret (KE, NONCE, HASH) so no repr prints them.
"""

import struct

from sluice.ike import constants as C


class IkeMalformed(ValueError):
    """A message or payload that does not follow RFC 2408/2407/3947 framing."""


def _u16(b, i):
    return (b[i] << 8) | b[i + 1]


def _u32(b, i):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


# --- data attributes (RFC 2408 3.3) ----------------------------------------------------------------------------

def parse_attributes(buf, where="transform"):
    """bytes -> [(type, int|bytes)]: int for basic (AF=1) attributes, bytes for variable (AF=0) ones."""
    out = []
    i = 0
    n = len(buf)
    while i < n:
        if n - i < 4:
            raise IkeMalformed("%s attribute truncated: %d octets left, need 4" % (where, n - i))
        t = _u16(buf, i)
        if t & 0x8000:
            out.append((t & 0x7FFF, _u16(buf, i + 2)))
            i += 4
        else:
            alen = _u16(buf, i + 2)
            if i + 4 + alen > n:
                raise IkeMalformed("%s attribute %d: length %d runs past the end (%d octets left)"
                                   % (where, t, alen, n - i - 4))
            out.append((t, bytes(buf[i + 4:i + 4 + alen])))
            i += 4 + alen
    return out


def encode_attributes(attrs):
    parts = []
    for t, v in attrs:
        if t < 0 or t > 0x7FFF:
            raise IkeMalformed("attribute type %r out of range" % (t,))
        if isinstance(v, int):
            if v < 0 or v > 0xFFFF:
                raise IkeMalformed("basic attribute %d value %d does not fit 16 bits; pass bytes for TLV" % (t, v))
            parts.append(struct.pack("!HH", 0x8000 | t, v))
        else:
            v = bytes(v)
            if len(v) > 0xFFFF:
                raise IkeMalformed("variable attribute %d too long" % t)
            parts.append(struct.pack("!HH", t, len(v)) + v)
    return b"".join(parts)


def attr_int(value):
    """An attribute value (int or big-endian bytes) as an int."""
    if isinstance(value, int):
        return value
    return int.from_bytes(bytes(value), "big") if value else 0


def get_attr(attrs, atype, default=None):
    """The first attribute of `atype` as an int, or `default`."""
    for t, v in attrs:
        if t == atype:
            return attr_int(v)
    return default


def life_attr(seconds):
    """A life duration attribute value: basic if it fits 16 bits, else 4-octet variable (RFC 2407 4.5)."""
    if seconds <= 0xFFFF:
        return seconds
    return seconds.to_bytes(4, "big")


# --- IPv4 helpers (MicroPython has no inet_pton in every port) -------------------------------------------------

def ipv4_to_bytes(text):
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %r" % (text,))
    out = bytearray(4)
    for k in range(4):
        p = parts[k]
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            raise ValueError("not an IPv4 address: %r" % (text,))
        out[k] = int(p)
    return bytes(out)


def ipv4_from_bytes(b):
    return "%d.%d.%d.%d" % (b[0], b[1], b[2], b[3])


def ipv6_from_bytes(b):
    return ":".join("%x" % _u16(b, i) for i in range(0, 16, 2))


def address_bytes(addr):
    """'a.b.c.d' or 4/16 raw octets -> raw octets."""
    if isinstance(addr, str):
        return ipv4_to_bytes(addr)
    addr = bytes(addr)
    if len(addr) not in (4, 16):
        raise ValueError("an address is 4 or 16 octets, got %d" % len(addr))
    return addr


def address_text(b):
    return ipv4_from_bytes(b) if len(b) == 4 else ipv6_from_bytes(b)


# --- payloads --------------------------------------------------------------------------------------------------

class OpaquePayload:
    """Base for payloads whose body is one opaque field (KE, NONCE, HASH, SIG, VENDOR)."""

    __slots__ = ("data",)
    ptype = 0

    def __init__(self, data):
        self.data = bytes(data)

    def encode_body(self):
        return self.data

    @classmethod
    def decode(cls, body):
        return cls(body)

    def __eq__(self, other):
        return type(self) is type(other) and self.encode_body() == other.encode_body()

    def __repr__(self):
        # Bodies may be key material: only the size is shown.
        return "%s(<%d octets>)" % (type(self).__name__, len(self.data))


class KePayload(OpaquePayload):
    """RFC 2408 3.7 Key Exchange: the DH public value."""
    __slots__ = ()
    ptype = C.PT_KE


class NoncePayload(OpaquePayload):
    """RFC 2408 3.13 Nonce (RFC 2409 5: 8 to 256 octets)."""
    __slots__ = ()
    ptype = C.PT_NONCE

    @classmethod
    def decode(cls, body):
        if not 8 <= len(body) <= 256:
            raise IkeMalformed("nonce of %d octets; RFC 2409 5 allows 8 to 256" % len(body))
        return cls(body)


class HashPayload(OpaquePayload):
    """RFC 2408 3.11 Hash."""
    __slots__ = ()
    ptype = C.PT_HASH


class SigPayload(OpaquePayload):
    """RFC 2408 3.12 Signature."""
    __slots__ = ()
    ptype = C.PT_SIG


class VendorIdPayload(OpaquePayload):
    """RFC 2408 3.16 Vendor ID (see sluice.ike.vendor for the known values)."""
    __slots__ = ()
    ptype = C.PT_VENDOR

    def __repr__(self):
        return "VendorIdPayload(%s)" % self.data.hex()


class NatDPayload:
    """RFC 3947 3.2 NAT-D: one hash; `ptype` is 20 (RFC) or 130 (draft-02/03)."""

    __slots__ = ("ptype", "hash")

    def __init__(self, hash, ptype=C.PT_NAT_D):
        self.hash = bytes(hash)
        self.ptype = ptype

    def encode_body(self):
        return self.hash

    @classmethod
    def decode(cls, body, ptype=C.PT_NAT_D):
        if not body:
            raise IkeMalformed("empty NAT-D payload")
        return cls(body, ptype)

    def __eq__(self, other):
        return isinstance(other, NatDPayload) and (self.ptype, self.hash) == (other.ptype, other.hash)

    def __repr__(self):
        return "NatDPayload(%d, %s)" % (self.ptype, self.hash.hex())


class NatOaPayload:
    """RFC 3947 5.2 NAT-OA: ID type (1 IPv4, 5 IPv6), 3 reserved octets, the address; `ptype` 21 or 131."""

    __slots__ = ("ptype", "id_type", "address")

    def __init__(self, address, ptype=C.PT_NAT_OA):
        address = address_bytes(address)
        self.address = address
        self.id_type = C.NATOA_IPV4 if len(address) == 4 else C.NATOA_IPV6
        self.ptype = ptype

    def encode_body(self):
        return bytes((self.id_type, 0, 0, 0)) + self.address

    @classmethod
    def decode(cls, body, ptype=C.PT_NAT_OA):
        if len(body) < 4:
            raise IkeMalformed("NAT-OA payload of %d octets, need at least 4" % len(body))
        t = body[0]
        want = {C.NATOA_IPV4: 4, C.NATOA_IPV6: 16}.get(t)
        if want is None:
            raise IkeMalformed("NAT-OA ID type %d; RFC 3947 5.2 allows 1 (IPv4) or 5 (IPv6)" % t)
        if len(body) != 4 + want:
            raise IkeMalformed("NAT-OA with ID type %d carries %d address octets, need %d"
                               % (t, len(body) - 4, want))
        return cls(body[4:], ptype)

    def text(self):
        return address_text(self.address)

    def __eq__(self, other):
        return isinstance(other, NatOaPayload) and self.encode_body() == other.encode_body() \
            and self.ptype == other.ptype

    def __repr__(self):
        return "NatOaPayload(%d, %s)" % (self.ptype, self.text())


class TransformPayload:
    """RFC 2408 3.6 Transform: number, transform id, SA attributes."""

    __slots__ = ("number", "transform_id", "attributes")
    ptype = C.PT_TRANSFORM

    def __init__(self, number, transform_id, attributes):
        self.number = number
        self.transform_id = transform_id
        self.attributes = list(attributes)

    def encode_body(self):
        return bytes((self.number, self.transform_id, 0, 0)) + encode_attributes(self.attributes)

    @classmethod
    def decode(cls, body):
        if len(body) < 4:
            raise IkeMalformed("transform payload of %d octets, need at least 4" % len(body))
        return cls(body[0], body[1], parse_attributes(body[4:]))

    def get(self, atype, default=None):
        return get_attr(self.attributes, atype, default)

    def __eq__(self, other):
        return isinstance(other, TransformPayload) and self.encode_body() == other.encode_body()

    def __repr__(self):
        return "TransformPayload(%d, %d, %r)" % (self.number, self.transform_id, self.attributes)


class ProposalPayload:
    """RFC 2408 3.5 Proposal: number, protocol id, SPI, transforms."""

    __slots__ = ("number", "protocol", "spi", "transforms")
    ptype = C.PT_PROPOSAL

    def __init__(self, number, protocol, spi, transforms):
        self.number = number
        self.protocol = protocol
        self.spi = bytes(spi)
        self.transforms = list(transforms)

    def encode_body(self):
        if len(self.transforms) > 255 or len(self.spi) > 255:
            raise IkeMalformed("too many transforms or SPI too long")
        head = bytes((self.number, self.protocol, len(self.spi), len(self.transforms))) + self.spi
        return head + _encode_chain(self.transforms, C.PT_TRANSFORM)

    @classmethod
    def decode(cls, body):
        if len(body) < 4:
            raise IkeMalformed("proposal payload of %d octets, need at least 4" % len(body))
        num, proto, spi_size, count = body[0], body[1], body[2], body[3]
        if 4 + spi_size > len(body):
            raise IkeMalformed("proposal SPI size %d runs past the payload" % spi_size)
        spi = body[4:4 + spi_size]
        transforms = _parse_chain(body[4 + spi_size:], C.PT_TRANSFORM, TransformPayload, "proposal")
        if len(transforms) != count:
            raise IkeMalformed("proposal %d announces %d transforms but carries %d" % (num, count, len(transforms)))
        if count == 0:
            raise IkeMalformed("proposal %d has no transforms" % num)
        return cls(num, proto, spi, transforms)

    def __eq__(self, other):
        return isinstance(other, ProposalPayload) and self.encode_body() == other.encode_body()

    def __repr__(self):
        return "ProposalPayload(%d, %d, %s, %r)" % (self.number, self.protocol, self.spi.hex(), self.transforms)


class SaPayload:
    """RFC 2408 3.4 / RFC 2407 4.6.1 Security Association: DOI, situation, proposals."""

    __slots__ = ("doi", "situation", "proposals")
    ptype = C.PT_SA

    def __init__(self, proposals, doi=C.DOI_IPSEC, situation=C.SIT_IDENTITY_ONLY):
        self.doi = doi
        self.situation = situation
        self.proposals = list(proposals)

    def encode_body(self):
        return struct.pack("!II", self.doi, self.situation) + _encode_chain(self.proposals, C.PT_PROPOSAL)

    @classmethod
    def decode(cls, body):
        if len(body) < 8:
            raise IkeMalformed("SA payload of %d octets, need at least 8" % len(body))
        doi = _u32(body, 0)
        sit = _u32(body, 4)
        if doi == C.DOI_IPSEC and sit & ~C.SIT_IDENTITY_ONLY:
            # RFC 2407 4.6.1: secrecy/integrity situations add labelled-domain fields nobody sends.
            raise IkeMalformed("SA situation 0x%x is not supported (only identity-only, 1)" % sit)
        proposals = _parse_chain(body[8:], C.PT_PROPOSAL, ProposalPayload, "SA")
        if not proposals:
            raise IkeMalformed("SA payload without proposals")
        return cls(proposals, doi, sit)

    def __eq__(self, other):
        return isinstance(other, SaPayload) and self.encode_body() == other.encode_body()

    def __repr__(self):
        return "SaPayload(doi=%d, sit=%d, %r)" % (self.doi, self.situation, self.proposals)


class IdPayload:
    """RFC 2408 3.8 / RFC 2407 4.6.2 Identification: type, protocol, port, data."""

    __slots__ = ("id_type", "protocol", "port", "data")
    ptype = C.PT_ID

    def __init__(self, id_type, data, protocol=0, port=0):
        self.id_type = id_type
        self.protocol = protocol
        self.port = port
        self.data = bytes(data)

    @classmethod
    def ipv4(cls, addr, protocol=0, port=0):
        return cls(C.ID_IPV4_ADDR, address_bytes(addr), protocol, port)

    @classmethod
    def ipv4_subnet(cls, addr, mask, protocol=0, port=0):
        return cls(C.ID_IPV4_ADDR_SUBNET, address_bytes(addr) + address_bytes(mask), protocol, port)

    @classmethod
    def fqdn(cls, name, protocol=0, port=0):
        return cls(C.ID_FQDN, name.encode(), protocol, port)

    @classmethod
    def user_fqdn(cls, name, protocol=0, port=0):
        return cls(C.ID_USER_FQDN, name.encode(), protocol, port)

    def encode_body(self):
        return struct.pack("!BBH", self.id_type, self.protocol, self.port) + self.data

    @classmethod
    def decode(cls, body):
        if len(body) < 4:
            raise IkeMalformed("ID payload of %d octets, need at least 4" % len(body))
        t = body[0]
        data = body[4:]
        want = C.ID_FIXED_LEN.get(t)
        if want is not None and len(data) != want:
            raise IkeMalformed("%s carries %d octets, RFC 2407 4.6.2 says %d"
                               % (C.ID_NAMES.get(t, "ID type %d" % t), len(data), want))
        if want is None and not data:
            raise IkeMalformed("empty %s" % C.ID_NAMES.get(t, "ID type %d" % t))
        return cls(t, data, body[1], _u16(body, 2))

    def text(self):
        """The identity in words, for logs and matching against configuration."""
        t, d = self.id_type, self.data
        if t in (C.ID_IPV4_ADDR, C.ID_IPV6_ADDR):
            return address_text(d)
        if t in (C.ID_IPV4_ADDR_SUBNET, C.ID_IPV6_ADDR_SUBNET):
            h = len(d) // 2
            return "%s/%s" % (address_text(d[:h]), address_text(d[h:]))
        if t in (C.ID_IPV4_ADDR_RANGE, C.ID_IPV6_ADDR_RANGE):
            h = len(d) // 2
            return "%s-%s" % (address_text(d[:h]), address_text(d[h:]))
        if t in (C.ID_FQDN, C.ID_USER_FQDN):
            try:
                return d.decode()
            except UnicodeError:
                return d.hex()
        return d.hex()

    def __eq__(self, other):
        return isinstance(other, IdPayload) and self.encode_body() == other.encode_body()

    def __repr__(self):
        return "IdPayload(%s, %s, proto=%d, port=%d)" % (C.ID_NAMES.get(self.id_type, self.id_type), self.text(),
                                                         self.protocol, self.port)


class CertPayload:
    """RFC 2408 3.9 Certificate: encoding, data."""

    __slots__ = ("encoding", "data")
    ptype = C.PT_CERT

    def __init__(self, encoding, data):
        self.encoding = encoding
        self.data = bytes(data)

    def encode_body(self):
        return bytes((self.encoding,)) + self.data

    @classmethod
    def decode(cls, body):
        if len(body) < 1:
            raise IkeMalformed("empty CERT payload")
        return cls(body[0], body[1:])

    def __eq__(self, other):
        return type(self) is type(other) and self.encode_body() == other.encode_body()

    def __repr__(self):
        return "%s(%d, <%d octets>)" % (type(self).__name__, self.encoding, len(self.data))


class CertRequestPayload(CertPayload):
    """RFC 2408 3.10 Certificate Request: certificate type, certificate authority (may be empty)."""
    __slots__ = ()
    ptype = C.PT_CR


class NotifyPayload:
    """RFC 2408 3.14 Notification: DOI, protocol, SPI, notify type, data."""

    __slots__ = ("doi", "protocol", "spi", "notify_type", "data")
    ptype = C.PT_NOTIFY

    def __init__(self, notify_type, spi=b"", data=b"", protocol=C.PROTO_ISAKMP, doi=C.DOI_IPSEC):
        self.doi = doi
        self.protocol = protocol
        self.spi = bytes(spi)
        self.notify_type = notify_type
        self.data = bytes(data)

    def encode_body(self):
        return struct.pack("!IBBH", self.doi, self.protocol, len(self.spi), self.notify_type) + self.spi + self.data

    @classmethod
    def decode(cls, body):
        if len(body) < 8:
            raise IkeMalformed("NOTIFY payload of %d octets, need at least 8" % len(body))
        spi_size = body[5]
        if 8 + spi_size > len(body):
            raise IkeMalformed("NOTIFY SPI size %d runs past the payload" % spi_size)
        return cls(_u16(body, 6), body[8:8 + spi_size], body[8 + spi_size:], body[4], _u32(body, 0))

    def name(self):
        return C.NOTIFY_NAMES.get(self.notify_type, "notify type %d" % self.notify_type)

    def __eq__(self, other):
        return isinstance(other, NotifyPayload) and self.encode_body() == other.encode_body()

    def __repr__(self):
        return "NotifyPayload(%s, proto=%d, spi=%s, <%d octets>)" % (self.name(), self.protocol, self.spi.hex(),
                                                                    len(self.data))


class DeletePayload:
    """RFC 2408 3.15 Delete: DOI, protocol, SPI size, SPIs (16-octet cookie pairs for ISAKMP, 4 for ESP)."""

    __slots__ = ("doi", "protocol", "spi_size", "spis")
    ptype = C.PT_DELETE

    def __init__(self, protocol, spis, spi_size=None, doi=C.DOI_IPSEC):
        self.doi = doi
        self.protocol = protocol
        self.spis = [bytes(s) for s in spis]
        if spi_size is None:
            spi_size = 16 if protocol == C.PROTO_ISAKMP else 4
        self.spi_size = spi_size

    def encode_body(self):
        for s in self.spis:
            if len(s) != self.spi_size:
                raise IkeMalformed("delete SPI of %d octets, SPI size is %d" % (len(s), self.spi_size))
        return struct.pack("!IBBH", self.doi, self.protocol, self.spi_size, len(self.spis)) + b"".join(self.spis)

    @classmethod
    def decode(cls, body):
        if len(body) < 8:
            raise IkeMalformed("DELETE payload of %d octets, need at least 8" % len(body))
        size, count = body[5], _u16(body, 6)
        if size == 0 or count == 0:
            raise IkeMalformed("DELETE with SPI size %d and %d SPIs deletes nothing" % (size, count))
        if len(body) - 8 != size * count:
            raise IkeMalformed("DELETE announces %d SPIs of %d octets but carries %d octets"
                               % (count, size, len(body) - 8))
        spis = [body[8 + k * size:8 + (k + 1) * size] for k in range(count)]
        return cls(body[4], spis, size, _u32(body, 0))

    def __eq__(self, other):
        return isinstance(other, DeletePayload) and self.encode_body() == other.encode_body()

    def __repr__(self):
        return "DeletePayload(proto=%d, %s)" % (self.protocol, [s.hex() for s in self.spis])


class FragmentPayload:
    """Cisco/Microsoft IKE fragment (type 132): fragment id (16), number (8, from 1), flags (8, 1 = last), data."""

    __slots__ = ("frag_id", "number", "flags", "data")
    ptype = C.PT_FRAGMENT
    LAST = 0x01

    def __init__(self, frag_id, number, data, last=False, flags=None):
        self.frag_id = frag_id
        self.number = number
        self.flags = (self.LAST if last else 0) if flags is None else flags
        self.data = bytes(data)

    @property
    def last(self):
        return bool(self.flags & self.LAST)

    def encode_body(self):
        return struct.pack("!HBB", self.frag_id, self.number, self.flags) + self.data

    @classmethod
    def decode(cls, body):
        if len(body) < 4:
            raise IkeMalformed("fragment payload of %d octets, need at least 4" % len(body))
        if body[2] == 0:
            raise IkeMalformed("fragment number 0; fragments count from 1")
        return cls(_u16(body, 0), body[2], body[4:], flags=body[3])

    def __eq__(self, other):
        return isinstance(other, FragmentPayload) and self.encode_body() == other.encode_body()

    def __repr__(self):
        return "FragmentPayload(id=%d, n=%d, last=%s, <%d octets>)" % (self.frag_id, self.number, self.last,
                                                                      len(self.data))


class UnknownPayload:
    """A payload type this codec does not interpret (kept raw so that callers can skip it)."""

    __slots__ = ("ptype", "body")

    def __init__(self, ptype, body):
        self.ptype = ptype
        self.body = bytes(body)

    def encode_body(self):
        return self.body

    def __eq__(self, other):
        return isinstance(other, UnknownPayload) and (self.ptype, self.body) == (other.ptype, other.body)

    def __repr__(self):
        return "UnknownPayload(%d, <%d octets>)" % (self.ptype, len(self.body))


# Dispatch by wire type: top-level payloads only (Proposal/Transform live inside SA).
_DECODERS = {
    C.PT_SA: SaPayload.decode,
    C.PT_KE: KePayload.decode,
    C.PT_ID: IdPayload.decode,
    C.PT_CERT: CertPayload.decode,
    C.PT_CR: CertRequestPayload.decode,
    C.PT_HASH: HashPayload.decode,
    C.PT_SIG: SigPayload.decode,
    C.PT_NONCE: NoncePayload.decode,
    C.PT_NOTIFY: NotifyPayload.decode,
    C.PT_DELETE: DeletePayload.decode,
    C.PT_VENDOR: VendorIdPayload.decode,
    C.PT_NAT_D: lambda b: NatDPayload.decode(b, C.PT_NAT_D),
    C.PT_NAT_D_DRAFT: lambda b: NatDPayload.decode(b, C.PT_NAT_D_DRAFT),
    C.PT_NAT_OA: lambda b: NatOaPayload.decode(b, C.PT_NAT_OA),
    C.PT_NAT_OA_DRAFT: lambda b: NatOaPayload.decode(b, C.PT_NAT_OA_DRAFT),
    C.PT_FRAGMENT: FragmentPayload.decode,
}


def _parse_chain(buf, only_type, cls, where):
    """A nested chain whose members are all `only_type` (Proposals in an SA, Transforms in a Proposal)."""
    out = []
    i = 0
    n = len(buf)
    while i < n:
        if n - i < 4:
            raise IkeMalformed("%s: %d stray octets after the last %s" % (where, n - i, C.PAYLOAD_NAMES[only_type]))
        nxt = buf[i]
        plen = _u16(buf, i + 2)
        if plen < 4 or i + plen > n:
            raise IkeMalformed("%s: %s length %d does not fit the %d octets left"
                               % (where, C.PAYLOAD_NAMES[only_type], plen, n - i))
        out.append(cls.decode(buf[i + 4:i + plen]))
        i += plen
        if nxt == C.PT_NONE:
            if i != n:
                raise IkeMalformed("%s: %d octets after the last %s" % (where, n - i, C.PAYLOAD_NAMES[only_type]))
            return out
        if nxt != only_type:
            raise IkeMalformed("%s: next payload %d inside a %s chain; only %d or 0 allowed"
                               % (where, nxt, C.PAYLOAD_NAMES[only_type], only_type))
    if out:
        raise IkeMalformed("%s: the last %s announces another one" % (where, C.PAYLOAD_NAMES[only_type]))
    return out


def _encode_chain(items, only_type):
    parts = []
    last = len(items) - 1
    for k in range(len(items)):
        body = items[k].encode_body()
        if len(body) + 4 > 0xFFFF:
            raise IkeMalformed("%s too long" % C.PAYLOAD_NAMES[only_type])
        parts.append(struct.pack("!BBH", C.PT_NONE if k == last else only_type, 0, len(body) + 4) + body)
    return b"".join(parts)


def parse_payloads(first_type, body, allow_padding=False, max_payloads=64):
    """Walk the generic payload chain (RFC 2408 3.2) starting with `first_type`; return a list of payloads.

    `allow_padding` accepts octets after the last payload (decrypted bodies are padded, RFC 2409 5.3).
    """
    out = []
    ptype = first_type
    i = 0
    n = len(body)
    while ptype != C.PT_NONE:
        if len(out) >= max_payloads:
            raise IkeMalformed("more than %d payloads in one message" % max_payloads)
        if n - i < 4:
            raise IkeMalformed("%s payload announced but only %d octets left"
                               % (C.PAYLOAD_NAMES.get(ptype, "type %d" % ptype), n - i))
        nxt = body[i]
        reserved = body[i + 1]
        plen = _u16(body, i + 2)
        if plen < 4 or i + plen > n:
            raise IkeMalformed("%s payload length %d does not fit the %d octets left"
                               % (C.PAYLOAD_NAMES.get(ptype, "type %d" % ptype), plen, n - i))
        chunk = bytes(body[i + 4:i + plen])
        dec = _DECODERS.get(ptype)
        if dec is not None:
            out.append(dec(chunk))
        elif ptype in (C.PT_PROPOSAL, C.PT_TRANSFORM):
            raise IkeMalformed("%s payload outside an SA payload" % C.PAYLOAD_NAMES[ptype])
        elif reserved & 0x80:
            raise IkeMalformed("unsupported payload type %d marked critical" % ptype)
        else:
            out.append(UnknownPayload(ptype, chunk))
        i += plen
        ptype = nxt
    if i != n and not allow_padding:
        raise IkeMalformed("%d octets of trailing garbage after the last payload" % (n - i))
    return out


def encode_payloads(payloads):
    """payload objects -> (first payload type, chained bytes): the exact inverse of `parse_payloads`."""
    parts = []
    last = len(payloads) - 1
    for k in range(len(payloads)):
        body = payloads[k].encode_body()
        if len(body) + 4 > 0xFFFF:
            raise IkeMalformed("payload too long (%d octets)" % len(body))
        nxt = C.PT_NONE if k == last else payloads[k + 1].ptype
        parts.append(struct.pack("!BBH", nxt, 0, len(body) + 4) + body)
    return (payloads[0].ptype if payloads else C.PT_NONE), b"".join(parts)


def find(payloads, cls):
    """The first payload of class `cls`, or None."""
    for p in payloads:
        if isinstance(p, cls):
            return p
    return None


def find_all(payloads, cls):
    return [p for p in payloads if isinstance(p, cls)]
