"""IKEv1 Informational exchanges (RFC 2408 4.8, RFC 2409 5.7): notifications and DELETE, protected after phase 1.

Theory of operation
-------------------
    HDR*, HASH(1), N/D      -->        HASH(1) = prf(SKEYID_a, M-ID | N/D)   (RFC 2409 5.7)

An informational exchange is one message with a fresh random message id; its IV starts from the last phase 1
block and the exchange leaves no state behind (sluice.ike.crypt). Before phase 1 has keys, an error notify can
only go in clear (RFC 2408 5: e.g. NO-PROPOSAL-CHOSEN in answer to message 1); a clear notify received is
believed only while its ISAKMP SA is still negotiating, and only ever ends that negotiation.

What is understood on receipt (the table acts on it):
* DELETE (RFC 2408 3.15): protocol ISAKMP with our cookie pair ends the ISAKMP SA; protocol ESP lists the
  sender's inbound SPIs, which are our outbound ones (we also accept our inbound SPI, as some peers send it);
* INITIAL-CONTACT (RFC 2407 4.6.3.3): the peer has no state from before: older SAs with it are stale;
* R-U-THERE / R-U-THERE-ACK (RFC 3706): sluice.ike.dpd;
* error notifies (RFC 2408 3.14.1, types 1-30) end a Quick Mode or Main Mode in progress.
"""

from sluice.ike import constants as C
from sluice.ike import keys as K
from sluice.ike.crypt import chain_spans
from sluice.ike.message import Message
from sluice.ike.payloads import (DeletePayload, HashPayload, IkeMalformed, NotifyPayload, encode_payloads)


def send_protected(sa, payloads):
    """HDR*, HASH(1), payloads with a new message id; returns the datagram (already queued)."""
    t = sa.table
    mid = sa.new_message_id()
    _, raw = encode_payloads(payloads)
    hp = HashPayload(K.qm_hash1(t.be, sa.hash, sa.skeyid_a, mid, raw))
    data = sa.crypt.seal(sa.icookie, sa.rcookie, C.EXCH_INFORMATIONAL, mid, [hp] + list(payloads))
    sa.crypt.forget(mid)
    sa.send(data)
    return data


def notify(sa, notify_type, data=b"", protocol=C.PROTO_ISAKMP, spi=None):
    if spi is None:
        spi = sa.spi() if protocol == C.PROTO_ISAKMP else b""
    return send_protected(sa, [NotifyPayload(notify_type, spi, data, protocol)])


def delete_esp(sa, spis_in):
    """DELETE for ESP SAs: we list our inbound SPIs (the ones the peer sends with), RFC 2408 3.15."""
    return send_protected(sa, [DeletePayload(C.PROTO_IPSEC_ESP, [s.to_bytes(4, "big") for s in spis_in])])


def delete_isakmp(sa):
    return send_protected(sa, [DeletePayload(C.PROTO_ISAKMP, [sa.spi()])])


def plain_notify(icookie, rcookie, notify_type, data=b""):
    """An unprotected Informational message (only before phase 1 has keys, RFC 2408 5)."""
    n = NotifyPayload(notify_type, icookie + rcookie, data, C.PROTO_ISAKMP)
    return Message.build(icookie, rcookie, C.EXCH_INFORMATIONAL, [n]).encode()


def open_protected(sa, msg):
    """Decrypt and authenticate an Informational message; the payloads after HASH(1). Raises IkeMalformed."""
    t = sa.table
    payloads, plain, _ = sa.crypt.open_payloads(msg.header, msg.body)
    if not payloads or not isinstance(payloads[0], HashPayload):
        raise IkeMalformed("protected Informational message without HASH(1) first (RFC 2409 5.7)")
    spans = chain_spans(msg.header.next_payload, plain)
    rest = bytes(plain[spans[1][1]:spans[-1][2]]) if len(spans) > 1 else b""
    expect = K.qm_hash1(t.be, sa.hash, sa.skeyid_a, msg.header.message_id, rest)
    got = payloads[0].data
    if len(got) != len(expect) or got != expect:
        raise IkeMalformed("Informational HASH(1) did not verify")
    return payloads[1:]


def describe(n):
    """A notify in words, for NegotiationFailed."""
    return "the peer sent %s" % n.name()
