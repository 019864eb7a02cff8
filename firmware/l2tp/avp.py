"""AVP codec (RFC 2661 4.1-4.4): Attribute-Value Pairs of L2TPv2 control messages.

Wire format (RFC 2661 4.1):

    |M|H| rsvd  |      Length       |           Vendor ID           |
    |         Attribute Type        |        Attribute Value...

Length covers the 6-byte header and the value; it must fit in the message. Reserved bits set make the AVP
unrecognised (RFC 2661 4.1), which is what we do with any AVP whose vendor or type we do not know: with the
M bit it is returned as unknown-mandatory so the caller can tear down the session or tunnel (RFC 2661 4.1),
without it it is skipped.

Hidden AVPs (RFC 2661 4.3) carry (original length, value, padding) XORed with an MD5 stream:
b1 = MD5(attribute type + secret + random vector), b(i) = MD5(secret + c(i-1)), where the random vector is
the latest Random Vector AVP (type 36) earlier in the same message. MD5 comes from sluice.hal.crypto.

Values are typed per RFC 2661 4.4 by KINDS below; a known AVP whose value has the wrong size raises AvpError.
"""

import struct

from sluice.hal.crypto.digest import md5
from sluice.l2tp.errors import AvpError

M_BIT = 0x8000
H_BIT = 0x4000
RSVD_BITS = 0x3C00
LEN_MASK = 0x03FF
HDR_LEN = 6
IETF = 0

# RFC 2661 4.4 attribute types
MESSAGE_TYPE = 0
RESULT_CODE = 1
PROTOCOL_VERSION = 2
FRAMING_CAPABILITIES = 3
BEARER_CAPABILITIES = 4
TIE_BREAKER = 5
FIRMWARE_REVISION = 6
HOST_NAME = 7
VENDOR_NAME = 8
ASSIGNED_TUNNEL_ID = 9
RECEIVE_WINDOW_SIZE = 10
CHALLENGE = 11
Q931_CAUSE_CODE = 12
CHALLENGE_RESPONSE = 13
ASSIGNED_SESSION_ID = 14
CALL_SERIAL_NUMBER = 15
MINIMUM_BPS = 16
MAXIMUM_BPS = 17
BEARER_TYPE = 18
FRAMING_TYPE = 19
CALLED_NUMBER = 21
CALLING_NUMBER = 22
SUB_ADDRESS = 23
TX_CONNECT_SPEED = 24
PHYSICAL_CHANNEL_ID = 25
INITIAL_RECEIVED_LCP_CONFREQ = 26
LAST_SENT_LCP_CONFREQ = 27
LAST_RECEIVED_LCP_CONFREQ = 28
PROXY_AUTHEN_TYPE = 29
PROXY_AUTHEN_NAME = 30
PROXY_AUTHEN_CHALLENGE = 31
PROXY_AUTHEN_ID = 32
PROXY_AUTHEN_RESPONSE = 33
CALL_ERRORS = 34
ACCM = 35
RANDOM_VECTOR = 36
PRIVATE_GROUP_ID = 37
RX_CONNECT_SPEED = 38
SEQUENCING_REQUIRED = 39

# Value kinds and how each is checked:
#  u16/u32: exact size; text: 1+ octets kept as str; opt_text: 0+ octets; bytes: 1+ octets; raw: 0+ octets;
#  version: 2 octets (version, revision); result: u16 [u16 [text]]; q931: u16 u8 [text]; empty: 0 octets;
#  tie: 8 octets; resp: 16 octets; authid: 2 octets (reserved, id); call_errors: 26; accm: 10.
KINDS = {
    MESSAGE_TYPE: "u16",
    RESULT_CODE: "result",
    PROTOCOL_VERSION: "version",
    FRAMING_CAPABILITIES: "u32",
    BEARER_CAPABILITIES: "u32",
    TIE_BREAKER: "tie",
    FIRMWARE_REVISION: "u16",
    HOST_NAME: "text",
    VENDOR_NAME: "opt_text",
    ASSIGNED_TUNNEL_ID: "u16",
    RECEIVE_WINDOW_SIZE: "u16",
    CHALLENGE: "bytes",
    Q931_CAUSE_CODE: "q931",
    CHALLENGE_RESPONSE: "resp",
    ASSIGNED_SESSION_ID: "u16",
    CALL_SERIAL_NUMBER: "u32",
    MINIMUM_BPS: "u32",
    MAXIMUM_BPS: "u32",
    BEARER_TYPE: "u32",
    FRAMING_TYPE: "u32",
    CALLED_NUMBER: "opt_text",
    CALLING_NUMBER: "opt_text",
    SUB_ADDRESS: "opt_text",
    TX_CONNECT_SPEED: "u32",
    PHYSICAL_CHANNEL_ID: "u32",
    INITIAL_RECEIVED_LCP_CONFREQ: "raw",
    LAST_SENT_LCP_CONFREQ: "raw",
    LAST_RECEIVED_LCP_CONFREQ: "raw",
    PROXY_AUTHEN_TYPE: "u16",
    PROXY_AUTHEN_NAME: "opt_text",
    PROXY_AUTHEN_CHALLENGE: "bytes",
    PROXY_AUTHEN_ID: "authid",
    PROXY_AUTHEN_RESPONSE: "raw",
    CALL_ERRORS: "call_errors",
    ACCM: "accm",
    RANDOM_VECTOR: "bytes",
    PRIVATE_GROUP_ID: "raw",
    RX_CONNECT_SPEED: "u32",
    SEQUENCING_REQUIRED: "empty",
}

NAMES = {
    0: "Message Type", 1: "Result Code", 2: "Protocol Version", 3: "Framing Capabilities",
    4: "Bearer Capabilities", 5: "Tie Breaker", 6: "Firmware Revision", 7: "Host Name", 8: "Vendor Name",
    9: "Assigned Tunnel ID", 10: "Receive Window Size", 11: "Challenge", 12: "Q.931 Cause Code",
    13: "Challenge Response", 14: "Assigned Session ID", 15: "Call Serial Number", 16: "Minimum BPS",
    17: "Maximum BPS", 18: "Bearer Type", 19: "Framing Type", 21: "Called Number", 22: "Calling Number",
    23: "Sub-Address", 24: "Tx Connect Speed", 25: "Physical Channel ID",
    26: "Initial Received LCP CONFREQ", 27: "Last Sent LCP CONFREQ", 28: "Last Received LCP CONFREQ",
    29: "Proxy Authen Type", 30: "Proxy Authen Name", 31: "Proxy Authen Challenge", 32: "Proxy Authen ID",
    33: "Proxy Authen Response", 34: "Call Errors", 35: "ACCM", 36: "Random Vector", 37: "Private Group ID",
    38: "Rx Connect Speed", 39: "Sequencing Required",
}

# Attributes whose values are secrets or secret-derived: never shown in reprs or errors.
SECRET_ATTRS = (CHALLENGE, CHALLENGE_RESPONSE, PROXY_AUTHEN_CHALLENGE, PROXY_AUTHEN_RESPONSE, RANDOM_VECTOR)



def text(b):
    """Wire octets as str; names are usually ASCII, but a stray byte must not raise (MicroPython has no latin-1)."""
    try:
        return bytes(b).decode()
    except Exception:
        return "".join(chr(c) if 32 <= c < 127 else "?" for c in bytes(b))


def _name(attr):
    return NAMES.get(attr, "AVP %d" % attr)


def decode_value(attr, v):
    """Typed value of an IETF AVP of a known type from its raw octets v (bytes). Raises AvpError on bad size."""
    kind = KINDS[attr]
    n = len(v)
    if kind == "u16":
        if n != 2:
            raise AvpError("%s: %d octets, expected 2" % (_name(attr), n))
        return (v[0] << 8) | v[1]
    if kind == "u32":
        if n != 4:
            raise AvpError("%s: %d octets, expected 4" % (_name(attr), n))
        return struct.unpack("!I", v)[0]
    if kind == "text" or kind == "bytes":
        if n < 1:
            raise AvpError("%s: empty value" % _name(attr))
        return text(v) if kind == "text" else bytes(v)
    if kind == "opt_text":
        return text(v)
    if kind == "raw":
        return bytes(v)
    if kind == "version":
        if n != 2:
            raise AvpError("Protocol Version: %d octets, expected 2" % n)
        return (v[0], v[1])
    if kind == "result":
        # RFC 2661 4.4.2: result code, optional error code, optional error message (needs the error code).
        if n < 2 or n == 3:
            raise AvpError("Result Code: %d octets" % n)
        result = (v[0] << 8) | v[1]
        error = ((v[2] << 8) | v[3]) if n >= 4 else None
        msg = text(v[4:]) if n > 4 else None
        return (result, error, msg)
    if kind == "q931":
        # RFC 2661 4.4.4: cause code (2), cause msg (1), advisory message (0+).
        if n < 3:
            raise AvpError("Q.931 Cause Code: %d octets" % n)
        return ((v[0] << 8) | v[1], v[2], text(v[3:]) if n > 3 else None)
    if kind == "empty":
        if n != 0:
            raise AvpError("%s: %d octets, expected none" % (_name(attr), n))
        return True
    if kind == "tie":
        if n != 8:
            raise AvpError("Tie Breaker: %d octets, expected 8" % n)
        return bytes(v)
    if kind == "resp":
        if n != 16:
            raise AvpError("Challenge Response: %d octets, expected 16" % n)
        return bytes(v)
    if kind == "authid":
        if n != 2:
            raise AvpError("Proxy Authen ID: %d octets, expected 2" % n)
        return v[1]
    if kind == "call_errors":
        if n != 26:
            raise AvpError("Call Errors: %d octets, expected 26" % n)
        return struct.unpack("!IIIIII", v[2:])
    if kind == "accm":
        if n != 10:
            raise AvpError("ACCM: %d octets, expected 10" % n)
        return struct.unpack("!II", v[2:])
    raise AvpError("no decoder")  # pragma: no cover - KINDS is closed


def encode_value(attr, value):
    """Raw octets for a typed value (the inverse of decode_value)."""
    kind = KINDS[attr]
    if kind == "u16":
        return struct.pack("!H", value)
    if kind == "u32":
        return struct.pack("!I", value)
    if kind in ("text", "opt_text"):
        return value.encode() if isinstance(value, str) else bytes(value)
    if kind in ("bytes", "raw", "tie", "resp"):
        return bytes(value)
    if kind == "version":
        return bytes((value[0], value[1]))
    if kind == "result":
        result, error, msg = value
        out = struct.pack("!H", result)
        if error is not None or msg:
            out += struct.pack("!H", error or 0)
            if msg:
                out += msg.encode() if isinstance(msg, str) else bytes(msg)
        return out
    if kind == "q931":
        cause, cmsg, adv = value
        out = struct.pack("!H", cause) + bytes((cmsg,))
        if adv:
            out += adv.encode()
        return out
    if kind == "empty":
        return b""
    if kind == "authid":
        return bytes((0, value))
    if kind == "call_errors":
        return b"\x00\x00" + struct.pack("!IIIIII", *value)
    if kind == "accm":
        return b"\x00\x00" + struct.pack("!II", value[0], value[1])
    raise AvpError("no encoder")  # pragma: no cover


def hide(attr, value, secret, vector, pad=b""):
    """The hidden form of a raw value: MD5-stream encryption of (length, value, pad) per RFC 2661 4.3."""
    plain = struct.pack("!H", len(value)) + bytes(value) + bytes(pad)
    out = bytearray(len(plain))
    b = md5(struct.pack("!H", attr) + secret + vector)
    for i in range(0, len(plain), 16):
        for j in range(min(16, len(plain) - i)):
            out[i + j] = plain[i + j] ^ b[j]
        b = md5(secret + bytes(out[i:i + 16]))
    return bytes(out)


def unhide(attr, cipher, secret, vector):
    """The raw value of a hidden AVP (RFC 2661 4.3). Raises AvpError when the recovered length is impossible."""
    n = len(cipher)
    if n < 2:
        raise AvpError("hidden %s: shorter than its length field" % _name(attr))
    plain = bytearray(n)
    b = md5(struct.pack("!H", attr) + secret + vector)
    for i in range(0, n, 16):
        chunk = cipher[i:i + 16]
        for j in range(len(chunk)):
            plain[i + j] = chunk[j] ^ b[j]
        b = md5(secret + bytes(chunk))
    orig = (plain[0] << 8) | plain[1]
    if orig > n - 2:
        # The usual cause is a secret that differs from the peer's.
        raise AvpError("hidden %s: bad length after decryption (tunnel secrets differ?)" % _name(attr))
    return bytes(plain[2:2 + orig])


def encode(attr, value, mandatory=True, vendor=IETF, hidden=None):
    """One AVP on the wire. `value` is typed for IETF attributes in KINDS, raw bytes otherwise.

    hidden: None, or (secret, random_vector, pad) to send the value hidden (RFC 2661 4.3).
    """
    raw = encode_value(attr, value) if vendor == IETF and attr in KINDS else bytes(value)
    flags = M_BIT if mandatory else 0
    if hidden is not None:
        secret, vector, pad = hidden
        raw = hide(attr, raw, secret, vector, pad)
        flags |= H_BIT
    length = HDR_LEN + len(raw)
    if length > LEN_MASK:
        raise AvpError("%s: value too long for an AVP" % _name(attr))
    return struct.pack("!HHH", flags | length, vendor, attr) + raw


class Avp:
    """One AVP as read from the wire, hidden ones already revealed."""

    __slots__ = ("mandatory", "hidden", "vendor", "attr", "raw")

    def __init__(self, mandatory, hidden, vendor, attr, raw):
        self.mandatory = mandatory  # the M bit
        self.hidden = hidden  # the H bit was set (raw is the revealed value)
        self.vendor = vendor  # SMI vendor id, 0 for IETF
        self.attr = attr  # attribute type
        self.raw = raw  # the value octets (bytes)

    def __repr__(self):
        shown = "<%d octets>" % len(self.raw) if self.attr in SECRET_ATTRS or self.hidden else repr(self.raw)
        return "<AVP %d:%d%s%s %s>" % (self.vendor, self.attr, " M" if self.mandatory else "",
                                      " H" if self.hidden else "", shown)


class NeedSecret(AvpError):
    """A hidden AVP arrived and we have no secret or no Random Vector to reveal it."""


def iter_avps(buf, start, end, secret=None):
    """Yield Avp objects from buf[start:end], checking every length (RFC 2661 4.1).

    Reserved bits make an AVP unrecognised: it is returned with vendor -1 so the caller treats it as unknown.
    A hidden AVP without a secret or preceding Random Vector raises NeedSecret.
    """
    p = start
    vector = None
    while p < end:
        if p + HDR_LEN > end:
            raise AvpError("truncated AVP header")
        w = (buf[p] << 8) | buf[p + 1]
        length = w & LEN_MASK
        if length < HDR_LEN:
            raise AvpError("AVP length %d below the header size" % length)
        if p + length > end:
            raise AvpError("AVP length %d beyond the end of the message" % length)
        vendor = (buf[p + 2] << 8) | buf[p + 3]
        attr = (buf[p + 4] << 8) | buf[p + 5]
        raw = bytes(buf[p + HDR_LEN:p + length])
        hidden = bool(w & H_BIT)
        if w & RSVD_BITS:
            vendor = -1
        elif hidden:
            if secret is None or vector is None:
                raise NeedSecret("hidden %s without %s" % (
                    _name(attr), "a tunnel secret" if secret is None else "a Random Vector"))
            raw = unhide(attr, raw, secret, vector)
        if vendor == IETF and attr == RANDOM_VECTOR and not hidden:
            if not raw:
                raise AvpError("empty Random Vector")
            vector = raw
        yield Avp(bool(w & M_BIT), hidden, vendor, attr, raw)
        p += length
