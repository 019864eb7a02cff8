"""The RADIUS wire format (RFC 2865 3-5, RFC 2866 3-5, RFC 2869 5.14, RFC 3579 3.2, RFC 5176 3, RFC 2548).

Theory of operation: a packet is Code, Identifier, Length, Authenticator (16) and attributes, each Type,
Length (counting its two header octets), Value (RFC 2865 3, 5). ``decode`` checks every length and
returns a Packet whose ``attrs`` is a list of (type, value bytes) in wire order: attribute order matters
for some attributes and MicroPython's dicts keep none. Octets past Length are padding and ignored
(RFC 2865 3); a packet shorter than 20 octets or than its Length, or longer than 4096, is malformed.

The authenticators, by packet kind:
  Access-Request                the Request Authenticator is 16 random octets (RFC 2865 3); User-Password
                                is hidden with it (RFC 2865 5.2).
  Accounting-Request,           MD5(Code | Identifier | Length | 16 zero octets | attributes | secret)
  Disconnect-/CoA-Request       (RFC 2866 3, RFC 5176 3.5).
  every reply                   MD5(Code | Identifier | Length | Request Authenticator | attributes | secret)
                                (RFC 2865 3 Response Authenticator).
Message-Authenticator (type 80) is HMAC-MD5(secret, the packet with its own value zeroed), the
Authenticator field holding: the Request Authenticator for Access-Request and for every reply (RFC 3579
3.2), 16 zero octets for Accounting-, Disconnect- and CoA-Request (RFC 5080 2.2.2, RFC 5176 3.3). It is
computed first, then the (response) authenticator over the result. We put it first among the attributes of
everything we send and require it on Access replies (the BlastRADIUS attack, CVE-2024-3596, forges an
Access-Accept that has none).

Sans-IO and MicroPython subset: crypto only from sluice.hal.crypto.digest; nothing here reads a clock or
draws randomness (callers pass the Request Authenticator in).
"""

import struct

from sluice.hal.crypto import digest

# Codes (RFC 2865 3, RFC 2866 4, RFC 5176 3)
ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
ACCESS_CHALLENGE = 11
DISCONNECT_REQUEST = 40
DISCONNECT_ACK = 41
DISCONNECT_NAK = 42
COA_REQUEST = 43
COA_ACK = 44
COA_NAK = 45

CODE_NAMES = {
    ACCESS_REQUEST: "Access-Request", ACCESS_ACCEPT: "Access-Accept", ACCESS_REJECT: "Access-Reject",
    ACCOUNTING_REQUEST: "Accounting-Request", ACCOUNTING_RESPONSE: "Accounting-Response",
    ACCESS_CHALLENGE: "Access-Challenge", DISCONNECT_REQUEST: "Disconnect-Request",
    DISCONNECT_ACK: "Disconnect-ACK", DISCONNECT_NAK: "Disconnect-NAK", COA_REQUEST: "CoA-Request",
    COA_ACK: "CoA-ACK", COA_NAK: "CoA-NAK",
}

# Which replies answer which request (RFC 2865 4, RFC 2866 4, RFC 5176 3).
REPLIES = {
    ACCESS_REQUEST: (ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE),
    ACCOUNTING_REQUEST: (ACCOUNTING_RESPONSE,),
    DISCONNECT_REQUEST: (DISCONNECT_ACK, DISCONNECT_NAK),
    COA_REQUEST: (COA_ACK, COA_NAK),
}

# Attribute types (RFC 2865 5, RFC 2866 5, RFC 2869 5, RFC 5176 3.5)
USER_NAME = 1
USER_PASSWORD = 2
CHAP_PASSWORD = 3
NAS_IP_ADDRESS = 4
NAS_PORT = 5
SERVICE_TYPE = 6
FRAMED_PROTOCOL = 7
FRAMED_IP_ADDRESS = 8
FRAMED_IP_NETMASK = 9
REPLY_MESSAGE = 18
STATE = 24
CLASS = 25
VENDOR_SPECIFIC = 26
SESSION_TIMEOUT = 27
IDLE_TIMEOUT = 28
CALLED_STATION_ID = 30
CALLING_STATION_ID = 31
NAS_IDENTIFIER = 32
PROXY_STATE = 33
ACCT_STATUS_TYPE = 40
ACCT_DELAY_TIME = 41
ACCT_INPUT_OCTETS = 42
ACCT_OUTPUT_OCTETS = 43
ACCT_SESSION_ID = 44
ACCT_AUTHENTIC = 45
ACCT_SESSION_TIME = 46
ACCT_INPUT_PACKETS = 47
ACCT_OUTPUT_PACKETS = 48
ACCT_TERMINATE_CAUSE = 49
ACCT_INPUT_GIGAWORDS = 52
ACCT_OUTPUT_GIGAWORDS = 53
EVENT_TIMESTAMP = 55
CHAP_CHALLENGE = 60
NAS_PORT_TYPE = 61
MESSAGE_AUTHENTICATOR = 80
ACCT_INTERIM_INTERVAL = 85
NAS_PORT_ID = 87
ERROR_CAUSE = 101

# Values
SERVICE_FRAMED = 2  # Service-Type Framed-User
FRAMED_PPP = 1  # Framed-Protocol PPP
NAS_PORT_VIRTUAL = 5  # NAS-Port-Type Virtual (RFC 2865 5.41)
ACCT_START = 1
ACCT_STOP = 2
ACCT_INTERIM = 3
ACCT_AUTH_RADIUS = 1
ACCT_AUTH_LOCAL = 2

# Acct-Terminate-Cause (RFC 2866 5.10)
TERM_USER_REQUEST = 1
TERM_LOST_CARRIER = 2
TERM_IDLE_TIMEOUT = 4
TERM_SESSION_TIMEOUT = 5
TERM_ADMIN_RESET = 6
TERM_ADMIN_REBOOT = 7
TERM_PORT_ERROR = 8
TERM_NAS_ERROR = 9
TERM_NAS_REQUEST = 10
TERM_NAS_REBOOT = 11

# Error-Cause (RFC 5176 3.5)
ERR_RESIDUAL_SESSION_REMOVED = 201
ERR_UNSUPPORTED_ATTRIBUTE = 401
ERR_MISSING_ATTRIBUTE = 402
ERR_NAS_ID_MISMATCH = 403
ERR_INVALID_REQUEST = 404
ERR_UNSUPPORTED_SERVICE = 405
ERR_UNSUPPORTED_EXTENSION = 406
ERR_INVALID_ATTRIBUTE_VALUE = 407
ERR_SESSION_NOT_FOUND = 503
ERR_RESOURCES_UNAVAILABLE = 506

# Microsoft vendor attributes (RFC 2548 2)
VENDOR_MICROSOFT = 311
MS_CHAP_ERROR = 2
MS_CHAP_CHALLENGE = 11
MS_CHAP2_RESPONSE = 25
MS_CHAP2_SUCCESS = 26

HEADER_LEN = 20
MIN_LEN = 20
MAX_LEN = 4096  # RFC 2865 3
_ZERO16 = b"\x00" * 16


class RadiusError(ValueError):
    """A RADIUS packet or attribute that does not parse, or a value that cannot be encoded."""


class Packet:
    """One RADIUS packet: code, identifier, the 16-octet authenticator field and (type, value) attributes."""

    __slots__ = ("code", "ident", "authenticator", "attrs")

    def __init__(self, code, ident, authenticator=_ZERO16, attrs=None):
        self.code = code  # RFC 2865 3 Code
        self.ident = ident  # 0..255
        self.authenticator = authenticator  # the 16 octets as on the wire
        self.attrs = attrs if attrs is not None else []  # [(type, value bytes)], wire order

    def __repr__(self):
        return "Packet(%s, id=%d, %d attributes)" % (CODE_NAMES.get(self.code, str(self.code)), self.ident,
                                                     len(self.attrs))

    def get(self, atype):
        """The value of the first attribute of that type, or None."""
        for t, v in self.attrs:
            if t == atype:
                return v
        return None

    def get_all(self, atype):
        return [v for t, v in self.attrs if t == atype]

    def get_int(self, atype):
        """A 32-bit integer attribute (RFC 2865 5 'integer'), None when absent; RadiusError when not 4 octets."""
        v = self.get(atype)
        if v is None:
            return None
        if len(v) != 4:
            raise RadiusError("attribute %d is %d octets, not a 4-octet integer" % (atype, len(v)))
        return int.from_bytes(v, "big")

    def get_ip(self, atype):
        v = self.get(atype)
        if v is None:
            return None
        if len(v) != 4:
            raise RadiusError("attribute %d is %d octets, not an IPv4 address" % (atype, len(v)))
        return "%d.%d.%d.%d" % (v[0], v[1], v[2], v[3])

    def get_vsa(self, vendor, vtype):
        """The value of the first vendor attribute (vendor, vtype) (RFC 2865 5.26 recommended format), or None."""
        for t, v in self.attrs:
            if t == VENDOR_SPECIFIC:
                for vt, vv in parse_vsa(v, vendor):
                    if vt == vtype:
                        return vv
        return None


def attr_int(atype, value):
    return (atype, struct.pack(">I", value & 0xFFFFFFFF))


def attr_ip(atype, address):
    return (atype, ip_to_bytes(address))


def attr_str(atype, text):
    return (atype, text.encode() if isinstance(text, str) else bytes(text))


def vsa(vendor, vtype, value):
    """A Vendor-Specific attribute (RFC 2865 5.26): Vendor-Id, then one vendor-type, vendor-length, value."""
    if len(value) > 247:
        raise RadiusError("vendor attribute %d/%d value longer than 247 octets" % (vendor, vtype))
    return (VENDOR_SPECIFIC, struct.pack(">I", vendor) + bytes((vtype, len(value) + 2)) + value)


def parse_vsa(value, vendor):
    """[(vendor-type, value)] inside one Vendor-Specific value of `vendor`; [] for another vendor."""
    if len(value) < 4:
        raise RadiusError("Vendor-Specific attribute shorter than its Vendor-Id")
    if int.from_bytes(value[0:4], "big") != vendor:
        return []
    out = []
    i = 4
    n = len(value)
    while i < n:
        if i + 2 > n:
            raise RadiusError("vendor attribute header overruns the Vendor-Specific attribute")
        ln = value[i + 1]
        if ln < 2 or i + ln > n:
            raise RadiusError("vendor attribute length %d does not fit" % ln)
        out.append((value[i], bytes(value[i + 2:i + ln])))
        i += ln
    return out


def ip_to_bytes(address):
    parts = address.split(".")
    if len(parts) != 4:
        raise RadiusError("%r is not an IPv4 address" % (address,))
    out = bytearray(4)
    for i in range(4):
        p = parts[i]
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            raise RadiusError("%r is not an IPv4 address" % (address,))
        out[i] = int(p)
    return bytes(out)


# -- codec -------------------------------------------------------------------------------------------------

def encode_attrs(attrs):
    out = []
    for t, v in attrs:
        if not 0 < t < 256:
            raise RadiusError("attribute type %r out of range" % (t,))
        if len(v) > 253:
            raise RadiusError("attribute %d value is %d octets; at most 253 fit" % (t, len(v)))
        out.append(bytes((t, len(v) + 2)))
        out.append(bytes(v))
    return b"".join(out)


def decode(data):
    """A Packet from a datagram; RadiusError on any length that does not add up (RFC 2865 3, 5)."""
    n = len(data)
    if n < MIN_LEN:
        raise RadiusError("RADIUS packet of %d octets is shorter than its 20-octet header" % n)
    length = (data[2] << 8) | data[3]
    if length < MIN_LEN or length > MAX_LEN:
        raise RadiusError("RADIUS Length %d outside 20..4096" % length)
    if length > n:
        raise RadiusError("RADIUS Length %d is more than the %d octets received" % (length, n))
    attrs = []
    i = HEADER_LEN
    while i < length:
        if i + 2 > length:
            raise RadiusError("attribute header overruns the packet")
        al = data[i + 1]
        if al < 2 or i + al > length:
            raise RadiusError("attribute %d length %d does not fit the packet" % (data[i], al))
        if data[i] == 0:
            raise RadiusError("attribute type 0")
        attrs.append((data[i], bytes(data[i + 2:i + al])))
        i += al
    return Packet(data[0], data[1], bytes(data[4:20]), attrs)


def _assemble(code, ident, authenticator, attr_bytes):
    length = HEADER_LEN + len(attr_bytes)
    if length > MAX_LEN:
        raise RadiusError("RADIUS packet would be %d octets; at most 4096" % length)
    return bytes((code, ident & 0xFF, length >> 8, length & 0xFF)) + authenticator + attr_bytes


def _with_ma(code, ident, auth_field, attrs, secret):
    """attrs encoded with a Message-Authenticator first, signed over auth_field (RFC 3579 3.2)."""
    body = bytes((MESSAGE_AUTHENTICATOR, 18)) + _ZERO16 + encode_attrs(
        [(t, v) for t, v in attrs if t != MESSAGE_AUTHENTICATOR])
    ma = digest.hmac("md5", secret, _assemble(code, ident, auth_field, body))
    return body[:2] + ma + body[18:]


def hide_password(password, secret, authenticator):
    """RFC 2865 5.2: pad to a multiple of 16 and XOR each block with MD5(secret | previous cipher block)."""
    if len(password) > 128:
        raise RadiusError("User-Password longer than 128 octets")
    p = password + b"\x00" * ((16 - len(password) % 16) % 16 if password else 16)
    out = bytearray()
    prev = authenticator
    for i in range(0, len(p), 16):
        b = digest.md5(secret + prev)
        block = bytes(p[i + j] ^ b[j] for j in range(16))
        out += block
        prev = block
    return bytes(out)


def unhide_password(hidden, secret, authenticator):
    """The inverse of hide_password, trailing NULs removed."""
    if not hidden or len(hidden) % 16 or len(hidden) > 128:
        raise RadiusError("User-Password of %d octets is not 16..128 in steps of 16" % len(hidden))
    out = bytearray()
    prev = authenticator
    for i in range(0, len(hidden), 16):
        b = digest.md5(secret + prev)
        out += bytes(hidden[i + j] ^ b[j] for j in range(16))
        prev = hidden[i:i + 16]
    end = len(out)
    while end and out[end - 1] == 0:
        end -= 1
    return bytes(out[:end])


def encode_request(code, ident, attrs, secret, request_authenticator=None, message_authenticator=True):
    """A request on the wire. Access-Request needs `request_authenticator` (16 random octets): User-Password
    attributes in `attrs` are given in the clear and hidden here. Other requests compute theirs."""
    if code == ACCESS_REQUEST:
        if request_authenticator is None or len(request_authenticator) != 16:
            raise RadiusError("an Access-Request needs a 16-octet Request Authenticator")
        plain = []
        for t, v in attrs:
            plain.append((t, hide_password(v, secret, request_authenticator)) if t == USER_PASSWORD else (t, v))
        body = _with_ma(code, ident, request_authenticator, plain, secret) if message_authenticator \
            else encode_attrs(plain)
        return _assemble(code, ident, request_authenticator, body)
    body = _with_ma(code, ident, _ZERO16, attrs, secret) if message_authenticator else encode_attrs(attrs)
    raw = _assemble(code, ident, _ZERO16, body)
    return raw[:4] + digest.md5(raw + secret) + raw[20:]


def encode_reply(code, ident, request_authenticator, attrs, secret, message_authenticator=True):
    """A reply: Message-Authenticator over the Request Authenticator, then the Response Authenticator."""
    body = _with_ma(code, ident, request_authenticator, attrs, secret) if message_authenticator \
        else encode_attrs(attrs)
    raw = _assemble(code, ident, request_authenticator, body)
    return raw[:4] + digest.md5(raw + secret) + raw[20:]


def _length(data):
    return (data[2] << 8) | data[3]


def _check_ma(data, auth_field, secret, require):
    """True when the Message-Authenticator verifies (or is absent and not required).

    `data` is the whole packet as received (already decoded once, so the lengths are sound)."""
    length = _length(data)
    found = -1
    i = HEADER_LEN
    while i < length:
        al = data[i + 1]
        if data[i] == MESSAGE_AUTHENTICATOR:
            if found >= 0 or al != 18:
                return False  # RFC 3579 3.2: at most one, and 16 octets
            found = i
        i += al
    if found < 0:
        return not require
    copy = bytearray(data[:length])
    copy[4:20] = auth_field
    got = bytes(copy[found + 2:found + 18])
    copy[found + 2:found + 18] = _ZERO16
    return digest.ct_equal(digest.hmac("md5", secret, bytes(copy)), got)


def verify_reply(data, request_authenticator, secret, require_message_authenticator):
    """None when `data` (a reply already decoded) carries a good Response Authenticator and a good (or, when
    not required, absent) Message-Authenticator; otherwise a short reason."""
    length = _length(data)
    raw = bytes(data[:4]) + request_authenticator + bytes(data[20:length])
    if not digest.ct_equal(digest.md5(raw + secret), bytes(data[4:20])):
        return "bad Response Authenticator (wrong shared secret, or a forged reply)"
    if not _check_ma(data, request_authenticator, secret, require_message_authenticator):
        return "Message-Authenticator missing or wrong"
    return None


def verify_request(data, secret, require_message_authenticator):
    """None when an Accounting-, Disconnect- or CoA-Request (decoded already) verifies; else a short reason
    (RFC 2866 3, RFC 5176 3.5 for the Request Authenticator; RFC 5176 3.3 for Message-Authenticator)."""
    length = _length(data)
    raw = bytes(data[:4]) + _ZERO16 + bytes(data[20:length])
    if not digest.ct_equal(digest.md5(raw + secret), bytes(data[4:20])):
        return "bad Request Authenticator (wrong shared secret, or a forged request)"
    if not _check_ma(data, _ZERO16, secret, require_message_authenticator):
        return "Message-Authenticator missing or wrong"
    return None


def verify_access_request(data, secret, require_message_authenticator=True):
    """None when an Access-Request's Message-Authenticator verifies (the test server's side, RFC 3579 3.2)."""
    if not _check_ma(data, bytes(data[4:20]), secret, require_message_authenticator):
        return "Message-Authenticator missing or wrong"
    return None


def printable(data, limit=120):
    """A peer's string made safe for a log line: printable ASCII, the rest as '?', bounded."""
    out = []
    for b in bytes(data)[:limit]:
        out.append(chr(b) if 32 <= b < 127 else "?")
    return "".join(out)
