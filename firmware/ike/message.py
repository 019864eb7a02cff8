"""ISAKMP header and whole messages (RFC 2408 3.1), on top of the payload chain codec.

Theory of operation
-------------------
`parse_header(data)` checks the fixed 28-octet header: version 1.0 (major 1; RFC 2408 5.1 answers any other
major version with INVALID-MAJOR-VERSION, so it is an error here), only the E/C/A flag bits, and a length field
equal to the datagram (UDP carries exactly one message; a shorter or longer datagram is malformed). The
caller strips the 4-octet non-ESP marker on port 4500 first (RFC 3948 2.2).

`parse_message(data)` = header + payload chain for a plaintext message. For an encrypted one (E flag) it stops
at the header and keeps the ciphertext in `Message.body`: a later layer decrypts it and calls
`payloads.parse_payloads(header.next_payload, plaintext, allow_padding=True)`.

`Message.encode()` is the exact inverse of `parse_message` for plaintext messages; `encode_header(...)` lets
the encrypting layer build the header around a ciphertext.
"""

import struct

from sluice.ike import constants as C
from sluice.ike.payloads import IkeMalformed, parse_payloads, encode_payloads


class Header:
    """The ISAKMP header (RFC 2408 3.1)."""

    __slots__ = ("icookie", "rcookie", "next_payload", "version", "exchange", "flags", "message_id", "length")

    def __init__(self, icookie, rcookie, next_payload, exchange, flags=0, message_id=0, length=0,
                 version=C.VERSION):
        self.icookie = icookie          # initiator cookie, 8 octets
        self.rcookie = rcookie          # responder cookie, 8 octets (zero in the first message)
        self.next_payload = next_payload  # type of the first payload
        self.version = version          # 0x10 for ISAKMP 1.0
        self.exchange = exchange        # C.EXCH_*
        self.flags = flags              # C.FLAG_E | C.FLAG_C | C.FLAG_A
        self.message_id = message_id    # 0 in phase 1, random in Quick Mode and Informational
        self.length = length            # whole message incl. header

    def encode(self):
        return encode_header(self.icookie, self.rcookie, self.next_payload, self.exchange, self.flags,
                             self.message_id, self.length, self.version)

    def __repr__(self):
        return "Header(%s/%s %s np=%d flags=%d mid=%08x len=%d)" % (
            bytes(self.icookie).hex(), bytes(self.rcookie).hex(), C.EXCHANGE_NAMES.get(self.exchange, self.exchange),
            self.next_payload, self.flags, self.message_id, self.length)


def encode_header(icookie, rcookie, next_payload, exchange, flags, message_id, length, version=C.VERSION):
    if len(icookie) != 8 or len(rcookie) != 8:
        raise IkeMalformed("cookies are 8 octets each")
    return bytes(icookie) + bytes(rcookie) + struct.pack("!BBBBII", next_payload, version, exchange, flags,
                                                         message_id, length)


def parse_header(data):
    """The 28-octet header of `data`; checks that its length field covers `data` exactly."""
    n = len(data)
    if n < C.HEADER_LEN:
        raise IkeMalformed("ISAKMP message of %d octets, the header alone is 28" % n)
    version = data[17]
    if version >> 4 != 1:
        raise IkeMalformed("ISAKMP major version %d; only 1 (IKEv1) is handled here" % (version >> 4))
    flags = data[19]
    if flags & ~(C.FLAG_E | C.FLAG_C | C.FLAG_A):
        raise IkeMalformed("unknown ISAKMP flags 0x%02x" % flags)
    length = int.from_bytes(bytes(data[24:28]), "big")
    if length != n:
        raise IkeMalformed("ISAKMP length field says %d but the datagram has %d octets" % (length, n))
    return Header(bytes(data[0:8]), bytes(data[8:16]), data[16], data[18], flags,
                  int.from_bytes(bytes(data[20:24]), "big"), length, version)


class Message:
    """A header plus either decoded payloads (plaintext) or the still-encrypted body (E flag)."""

    __slots__ = ("header", "payloads", "body")

    def __init__(self, header, payloads=None, body=None):
        self.header = header        # Header
        self.payloads = payloads    # list of payload objects, or None while encrypted
        self.body = body            # ciphertext after the header when the E flag is set, else None

    @classmethod
    def build(cls, icookie, rcookie, exchange, payloads, flags=0, message_id=0):
        return cls(Header(icookie, rcookie, payloads[0].ptype if payloads else 0, exchange, flags, message_id),
                   list(payloads))

    def encode(self):
        h = self.header
        if self.payloads is None:
            body = bytes(self.body or b"")
            first = h.next_payload
        else:
            first, body = encode_payloads(self.payloads)
        h.next_payload = first
        h.length = C.HEADER_LEN + len(body)
        return h.encode() + body

    def find(self, cls):
        for p in self.payloads or ():
            if isinstance(p, cls):
                return p
        return None

    def find_all(self, cls):
        return [p for p in (self.payloads or ()) if isinstance(p, cls)]

    def __repr__(self):
        return "Message(%r, %r)" % (self.header, self.payloads if self.payloads is not None else "<encrypted>")


def parse_message(data, max_payloads=64):
    """bytes -> Message; payloads decoded unless the E flag is set."""
    h = parse_header(data)
    body = bytes(data[C.HEADER_LEN:])
    if h.flags & C.FLAG_E:
        if not body:
            raise IkeMalformed("encrypted ISAKMP message without a body")
        return Message(h, None, body)
    return Message(h, parse_payloads(h.next_payload, body, max_payloads=max_payloads))
