"""UDP encapsulation of ESP (RFC 3948) as seen from a UDP/4500 socket.

On port 4500 three things arrive: a NAT-keepalive (one 0xFF octet, RFC 3948 2.3), an IKE message
behind the 4-octet non-ESP marker of zeros (RFC 3948 2.2), or an ESP packet, whose SPI is never zero
(RFC 3948 2.1). `classify` tells them apart without copying. The UDP checksum of the outer header is
zero (RFC 3948 2.1: SHOULD be 0 for IPv4); inside, for transport mode, the UDP/1701 checksum was made
with addresses a NAT may have rewritten (RFC 3948 3.1.2): a user-space receiver does not verify it and
a sender sets it to 0, which IPv4 allows.
"""

from sluice.esp.errors import EspMalformed

NON_ESP_MARKER = b"\x00\x00\x00\x00"
KEEPALIVE = b"\xff"
NAT_T_PORT = 4500

ESP = 0
IKE = 1
KEEPALIVE_KIND = 2


def classify(data):
    """ESP, IKE or KEEPALIVE_KIND for a UDP/4500 payload; EspMalformed for anything else."""
    n = len(data)
    if n == 1 and data[0] == 0xFF:
        return KEEPALIVE_KIND
    if n < 8:  # shorter than an ESP header, and an IKE header is 28 octets + marker
        raise EspMalformed("UDP/4500 payload too short")
    if data[0] == 0 and data[1] == 0 and data[2] == 0 and data[3] == 0:
        return IKE
    return ESP


def ike_message(data):
    """The IKE message behind the non-ESP marker."""
    if len(data) < 4 or data[:4] != NON_ESP_MARKER:
        raise EspMalformed("no non-ESP marker")
    return data[4:]


def add_marker(ike):
    """An IKE message ready for UDP/4500 (RFC 3948 2.2, RFC 3947 4)."""
    return NON_ESP_MARKER + ike


def udp_header(sport, dport, payload_len):
    """An 8-byte UDP header with checksum 0, for raw-socket senders (RFC 768; RFC 3948 2.1)."""
    length = payload_len + 8
    if length > 0xFFFF:
        raise ValueError("UDP datagram too long")
    return bytes((sport >> 8, sport & 0xFF, dport >> 8, dport & 0xFF, length >> 8, length & 0xFF, 0, 0))


def split_udp(datagram):
    """(sport, dport, payload) of a UDP datagram given with its header (the inner UDP/1701 of transport mode)."""
    n = len(datagram)
    if n < 8:
        raise EspMalformed("UDP datagram shorter than its header")
    length = (datagram[4] << 8) | datagram[5]
    if length < 8 or length > n:
        raise EspMalformed("UDP length field %d does not fit %d bytes" % (length, n))
    return (datagram[0] << 8) | datagram[1], (datagram[2] << 8) | datagram[3], datagram[8:length]
