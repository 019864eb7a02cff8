"""NAT traversal: NAT-D in Main Mode 3/4, the float to 4500 (RFC 3947 3, 4), UDP-encapsulated transport mode
with NAT-OA in Quick Mode (RFC 3947 5), and two clients behind one NAT kept apart by their ports."""

try:
    import ike_pair
except ImportError:
    from tests.core import ike_pair

from sluice.ike import constants as C
from sluice.ike.message import parse_message
from sluice.ike.payloads import NatDPayload

MM, QM = C.EXCH_MAIN, C.EXCH_QUICK


def test_client_behind_nat_floats_to_4500_and_encapsulates():
    p = ike_pair.Pair(nat=True)
    p.connect()
    # (direction, our local port) per message: messages 1-4 on 500, the rest on 4500 (RFC 3947 4).
    assert [(d, port, ex) for d, port, ex, mid, n in p.trace] == [
        ("c>s", 500, MM), ("s>c", 500, MM), ("c>s", 500, MM), ("s>c", 500, MM),
        ("c>s", 4500, MM), ("s>c", 4500, MM),
        ("c>s", 4500, QM), ("s>c", 4500, QM), ("c>s", 4500, QM)]
    # The server's replies from message 6 on go to the NAT's 4500 mapping.
    assert [x[2] for x in p.log if x[0] == "s>c"][2:] == [(ike_pair.NAT_IP, 44500)] * 2
    # Messages 3 and 4 each carry two NAT-D payloads of the negotiated hash (SHA-1: 20 octets).
    for m in (p.log[2][3], p.log[3][3]):
        nd = parse_message(m).find_all(NatDPayload)
        assert len(nd) == 2 and nd[0].ptype == C.PT_NAT_D and len(nd[0].hash) == 20
    ce, se = p.events("client"), p.events("server")
    assert ike_pair.names(ce) == ["IkeSaUp", "ChildSaUp"] and ike_pair.names(se) == ["IkeSaUp", "ChildSaUp"]
    assert ce[0].nat_local and not ce[0].nat_remote          # the client must send keepalives
    assert se[0].nat_remote and not se[0].nat_local
    assert se[0].peer == (ike_pair.NAT_IP, 44500) and ce[0].peer == (ike_pair.SERVER_IP, 4500)
    assert ce[1].encap and se[1].encap
    assert se[1].peer == (ike_pair.NAT_IP, 44500)


def test_no_nat_stays_on_500_without_encapsulation():
    p = ike_pair.Pair(nat=False)
    p.connect()
    assert set(port for d, port, ex, mid, n in p.trace) == {500}
    ce = p.events("client")
    assert not ce[1].encap


def test_quick_mode_under_nat_proposes_udp_transport_and_nat_oa():
    # Decrypting needs keys: check the choice the server made instead (EspChoice.mode via the ChildSa).
    p = ike_pair.Pair(nat=True)
    p.connect()
    se = p.events("server")
    ch = p.server._children[se[1].spi_in]
    assert ch.mode == C.ENCAP_UDP_TRANSPORT
    # The NAT-OA payloads themselves are checked decrypted by Wireshark in tests/unit/test_ike_exchange_tshark.py.


def test_two_clients_behind_one_nat_are_separate_peers():
    first = ike_pair.Pair(nat=True, seed=21, nat_ports={500: 40500, 4500: 44500})
    first.connect()
    second = ike_pair.Pair(nat=True, seed=31, nat_ports={500: 40501, 4500: 44501}, server=first.server)
    second.now = first.now
    second.connect()
    se = first.events("server")
    assert ike_pair.names(se) == ["IkeSaUp", "ChildSaUp", "IkeSaUp", "ChildSaUp"]
    assert se[1].peer == (ike_pair.NAT_IP, 44500) and se[3].peer == (ike_pair.NAT_IP, 44501)
    # The second client's INITIAL-CONTACT must not remove the first client's SAs (same IP, other port).
    assert se[3].rekey_of is None
    assert len(first.server._children) == 2
    assert not [e for e in se if type(e).__name__ in ("ChildSaDown", "IkeSaDown")]


def test_draft_nat_t_peer_gets_draft_payload_types_and_mode():
    # A peer that only knows draft-ietf-ipsec-nat-t-ike-02 (old Apple/racoon): NAT-D is payload 130 and the
    # encapsulation mode 61444 (clients.md "What this means for a server").
    from sluice.ike import vendor as V
    from sluice.ike.message import Message
    from sluice.ike.payloads import VendorIdPayload
    p = ike_pair.Pair(nat=True)
    first = []

    def rewrite(direction, data):
        if direction == "c>s" and not first:
            first.append(1)
            m = parse_message(data)
            keep = [x for x in m.payloads if not isinstance(x, VendorIdPayload)
                    or V.recognize(x.data) not in ("rfc3947", "natt-draft-03", "natt-draft-02n")]
            return Message.build(m.header.icookie, m.header.rcookie, m.header.exchange, keep).encode()
        return None

    orig = p._c2s

    def c2s(lp, peer, data):
        orig(lp, peer, rewrite("c>s", data) or data)

    p._c2s = c2s
    p.connect()
    se = p.events("server")
    assert ike_pair.names(se) == ["IkeSaUp", "ChildSaUp"]
    nd = parse_message(p.log[3][3]).find_all(NatDPayload)      # message 4 from the server
    assert [x.ptype for x in nd] == [C.PT_NAT_D_DRAFT] * 2
    assert p.server._children[se[1].spi_in].mode == C.ENCAP_UDP_TRANSPORT_DRAFT and se[1].encap
