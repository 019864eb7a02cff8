"""NAT traversal decisions for IKEv1 (RFC 3947; the draft-ietf-ipsec-nat-t-ike-02/03 forms for old peers).

Theory of operation
-------------------
NAT-T is used when both sides sent a NAT-T vendor ID in Main Mode messages 1/2 (sluice.ike.vendor). The NAT-D
payloads of messages 3/4 (sluice.ike.natd) then tell whether either address was rewritten. When one was,
RFC 3947 4: the initiator moves to UDP port 4500 (source and destination) from message 5 on, the responder
answers on whatever port message 5 arrived from, and every later IKE message and ESP packet uses that pair
(ESP inside UDP, RFC 3948, behind the non-ESP marker that the engine adds for IKE). Quick Mode then proposes
UDP-Encapsulated-Transport (4, or 61444 for draft peers) and sends NAT-OA payloads (RFC 3947 5.2).
The side behind a NAT sends NAT keepalives every 20 s (RFC 3948 4): the engine does that when IkeSaUp says
nat_local; this machine never sends them.
"""

from sluice.ike import constants as C

NAT_T_PORT = 4500
IKE_PORT = 500
KEEPALIVE_INTERVAL = 20  # RFC 3948 4: the RECOMMENDED default


def udp_transport_mode(caps):
    """The UDP-encapsulated transport mode value to propose to a peer with capabilities `caps`."""
    return C.ENCAP_UDP_TRANSPORT_DRAFT if caps.natt_draft() else C.ENCAP_UDP_TRANSPORT


def is_udp_encap(mode):
    return mode in (C.ENCAP_UDP_TRANSPORT, C.ENCAP_UDP_TRANSPORT_DRAFT, C.ENCAP_UDP_TUNNEL,
                    C.ENCAP_UDP_TUNNEL_DRAFT)


def must_float(caps, status):
    """RFC 3947 4: float to 4500 when NAT-T was agreed and a NAT was detected on either side."""
    return caps is not None and caps.natt is not None and status is not None and status.any
