"""Control message codec (RFC 2661 6): message types, required AVPs, typed values.

A control message is the header (sluice.l2tp.header) followed by AVPs, the first of which must be Message
Type (RFC 2661 4.1). A message with no AVPs is a ZLB acknowledgement (RFC 2661 5.8).

`parse` returns a Message whose `values` maps attribute type to typed value (sluice.l2tp.avp.KINDS) and which
records, rather than raises, what the machines must answer with a protocol reply: unrecognised mandatory
AVPs (tear down the session or tunnel, RFC 2661 4.1), a hidden AVP we cannot reveal, and missing required
AVPs. Malformed octets (lengths, sizes) raise, and the machine counts and drops the message.

Apple's racoon-derived client sends the StopCCN/CDN Result Code in host (little-endian) order; a result code
that is out of range for its message but in range byte-swapped is swapped back (see fix_result_order).
"""

from sluice.l2tp import avp as A
from sluice.l2tp.errors import AvpError, MessageError

# RFC 2661 3.2 message types
SCCRQ = 1
SCCRP = 2
SCCCN = 3
STOPCCN = 4
HELLO = 6
OCRQ = 7
OCRP = 8
OCCN = 9
ICRQ = 10
ICRP = 11
ICCN = 12
CDN = 14
WEN = 15
SLI = 16

NAMES = {
    SCCRQ: "SCCRQ", SCCRP: "SCCRP", SCCCN: "SCCCN", STOPCCN: "StopCCN", HELLO: "HELLO", OCRQ: "OCRQ",
    OCRP: "OCRP", OCCN: "OCCN", ICRQ: "ICRQ", ICRP: "ICRP", ICCN: "ICCN", CDN: "CDN", WEN: "WEN", SLI: "SLI",
}

TUNNEL_MESSAGES = (SCCRQ, SCCRP, SCCCN, STOPCCN, HELLO)
SESSION_MESSAGES = (OCRQ, OCRP, OCCN, ICRQ, ICRP, ICCN, CDN, WEN, SLI)

# RFC 2661 6.1-6.16: AVPs each message must carry (besides Message Type).
REQUIRED = {
    SCCRQ: (A.PROTOCOL_VERSION, A.HOST_NAME, A.FRAMING_CAPABILITIES, A.ASSIGNED_TUNNEL_ID),
    SCCRP: (A.PROTOCOL_VERSION, A.FRAMING_CAPABILITIES, A.HOST_NAME, A.ASSIGNED_TUNNEL_ID),
    SCCCN: (),
    STOPCCN: (A.ASSIGNED_TUNNEL_ID, A.RESULT_CODE),
    HELLO: (),
    OCRQ: (A.ASSIGNED_SESSION_ID, A.CALL_SERIAL_NUMBER, A.MINIMUM_BPS, A.MAXIMUM_BPS, A.BEARER_TYPE,
           A.FRAMING_TYPE, A.CALLED_NUMBER),
    OCRP: (A.ASSIGNED_SESSION_ID,),
    OCCN: (A.TX_CONNECT_SPEED, A.FRAMING_TYPE),
    ICRQ: (A.ASSIGNED_SESSION_ID, A.CALL_SERIAL_NUMBER),
    ICRP: (A.ASSIGNED_SESSION_ID,),
    ICCN: (A.TX_CONNECT_SPEED, A.FRAMING_TYPE),
    CDN: (A.RESULT_CODE, A.ASSIGNED_SESSION_ID),
    WEN: (A.CALL_ERRORS,),
    SLI: (A.ACCM,),
}

# RFC 2661 4.4: AVPs sent without the M bit (the peer may ignore them if it does not know them).
OPTIONAL_AVPS = (
    A.TIE_BREAKER, A.FIRMWARE_REVISION, A.VENDOR_NAME, A.RX_CONNECT_SPEED, A.PHYSICAL_CHANNEL_ID,
    A.PRIVATE_GROUP_ID, A.INITIAL_RECEIVED_LCP_CONFREQ, A.LAST_SENT_LCP_CONFREQ, A.LAST_RECEIVED_LCP_CONFREQ,
    A.PROXY_AUTHEN_TYPE, A.PROXY_AUTHEN_NAME, A.PROXY_AUTHEN_CHALLENGE, A.PROXY_AUTHEN_ID,
    A.PROXY_AUTHEN_RESPONSE,
)

# RFC 2661 4.4.2: highest defined result code per message
_MAX_RESULT = {STOPCCN: 7, CDN: 11}


def fix_result_order(msg_type, value):
    """Undo Apple's byte-swapped Result Code (result, error, message) in StopCCN/CDN; others pass unchanged."""
    top = _MAX_RESULT.get(msg_type)
    result, error, text = value
    if top is None or result <= top:
        return value
    swapped = ((result & 0xFF) << 8) | (result >> 8)
    if not 1 <= swapped <= top:
        return value
    if error is not None:
        error = ((error & 0xFF) << 8) | (error >> 8)
    return (swapped, error, text)


class Message:
    """A parsed control message."""

    __slots__ = ("type", "values", "mandatory_type", "unknown", "missing", "problem")

    def __init__(self, msg_type):
        self.type = msg_type  # RFC 2661 3.2 message type; None for a ZLB
        self.values = {}  # attribute type -> typed value, IETF AVPs only
        self.mandatory_type = True  # M bit of the Message Type AVP: unknown type must tear down the tunnel
        self.unknown = []  # (vendor, attr) of unrecognised AVPs with the M bit (RFC 2661 4.1)
        self.missing = []  # required attributes absent (REQUIRED)
        self.problem = None  # why the message cannot be processed (hidden AVP without a secret), or None

    def get(self, attr, default=None):
        return self.values.get(attr, default)

    def name(self):
        if self.type is None:
            return "ZLB"
        return NAMES.get(self.type, "message type %d" % self.type)

    def __repr__(self):
        shown = []
        for k in sorted(self.values):
            v = "<secret>" if k in A.SECRET_ATTRS else repr(self.values[k])
            shown.append("%s=%s" % (A.NAMES.get(k, str(k)), v))
        return "<%s %s>" % (self.name(), " ".join(shown))


def parse(buf, start, end, secret=None):
    """Parse the AVPs of a control message in buf[start:end]. Raises AvpError/MessageError when malformed."""
    if start >= end:
        return Message(None)  # ZLB
    msg = None
    try:
        for a in A.iter_avps(buf, start, end, secret):
            if msg is None:
                # RFC 2661 4.4.1: Message Type first, never hidden.
                if a.vendor != A.IETF or a.attr != A.MESSAGE_TYPE or a.hidden:
                    raise MessageError("first AVP is not Message Type")
                msg = Message(A.decode_value(A.MESSAGE_TYPE, a.raw))
                msg.mandatory_type = a.mandatory
                continue
            if a.vendor == A.IETF and a.attr in A.KINDS:
                if a.attr == A.MESSAGE_TYPE:
                    raise MessageError("second Message Type AVP")
                msg.values[a.attr] = A.decode_value(a.attr, a.raw)
            elif a.mandatory:
                msg.unknown.append((a.vendor, a.attr))
    except A.NeedSecret as e:
        if msg is None:
            raise MessageError("hidden AVP before Message Type")
        msg.problem = str(e)
    if msg is None:
        raise MessageError("no Message Type AVP")  # pragma: no cover - start < end yields one AVP or raises
    rc = msg.values.get(A.RESULT_CODE)
    if rc is not None:
        msg.values[A.RESULT_CODE] = fix_result_order(msg.type, rc)
    for attr in REQUIRED.get(msg.type, ()):
        if attr not in msg.values:
            msg.missing.append(attr)
    return msg


def build(msg_type, items, secret=None, hidden=(), rng=None):
    """The AVP octets of a control message: Message Type, then items [(attr, value)] in order.

    Attributes in `hidden` are sent hidden with `secret` (RFC 2661 4.3), behind one Random Vector AVP of 16
    octets from rng, and padded to a 16-octet boundary with rng octets.
    """
    parts = [A.encode(A.MESSAGE_TYPE, msg_type)]
    vector = None
    for attr, value in items:
        if value is None:
            continue
        hide = None
        if attr in hidden and secret is not None:
            if vector is None:
                vector = rng(16)
                parts.append(A.encode(A.RANDOM_VECTOR, vector))
            raw_len = len(A.encode_value(attr, value)) + 2
            hide = (secret, vector, rng((16 - raw_len % 16) % 16))
        parts.append(A.encode(attr, value, mandatory=attr not in OPTIONAL_AVPS, hidden=hide))
    return b"".join(parts)


def check_value_ranges(msg):
    """Reasons a well-formed message is unacceptable on its values (RFC 2661 4.4), or None."""
    v = msg.values
    for attr in (A.ASSIGNED_TUNNEL_ID, A.ASSIGNED_SESSION_ID):
        if v.get(attr) == 0:
            return "%s is zero" % A.NAMES[attr]
    if v.get(A.RECEIVE_WINDOW_SIZE) == 0:
        return "Receive Window Size is zero"
    return None


__all__ = ["Message", "parse", "build", "fix_result_order", "AvpError", "MessageError"]
