"""Main Mode + Quick Mode with a pre-shared key, two tables in memory (RFC 2409 5, 5.4, 5.5).

Each test reads as a sequence chart: the RFC notation in a comment, then the trace of (direction, port,
exchange type, ...). The key derivation itself is checked against an outside implementation in
tests/unit/test_ike_exchange_tshark.py (Wireshark decrypts our messages with independently derived keys).
"""

try:
    import ike_pair
except ImportError:
    from tests.core import ike_pair

from sluice.ike import constants as C

MM, QM, INFO = C.EXCH_MAIN, C.EXCH_QUICK, C.EXCH_INFORMATIONAL


def _chart(pair):
    return [(d, port, ex) for d, port, ex, mid, n in pair.trace]


def test_psk_main_mode_then_quick_mode_sequence():
    p = ike_pair.Pair()
    p.connect()
    assert _chart(p) == [
        ("c>s", 500, MM),   # HDR, SA, VID...                      -->
        ("s>c", 500, MM),   #                                      <--  HDR, SA, VID...
        ("c>s", 500, MM),   # HDR, KE, Ni, NAT-D, NAT-D            -->
        ("s>c", 500, MM),   #                                      <--  HDR, KE, Nr, NAT-D, NAT-D
        ("c>s", 500, MM),   # HDR*, IDii, HASH_I, N(INITIAL-CONTACT) -->
        ("s>c", 500, MM),   #                                      <--  HDR*, IDir, HASH_R
        ("c>s", 500, QM),   # HDR*, HASH(1), SA, Ni, IDci, IDcr    -->
        ("s>c", 500, QM),   #                                      <--  HDR*, HASH(2), SA, Nr, IDci, IDcr
        ("c>s", 500, QM),   # HDR*, HASH(3)                        -->
    ]
    # Phase 1 messages carry message id 0; the three Quick Mode messages share one non-zero id.
    assert [t[3] for t in p.trace[:6]] == [0] * 6
    qm_ids = set(t[3] for t in p.trace[6:])
    assert len(qm_ids) == 1 and 0 not in qm_ids
    # Messages 5 onwards have the E flag (RFC 2408 3.1).
    assert [d[3][19] & C.FLAG_E for d in p.log] == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    ce, se = p.events("client"), p.events("server")
    assert ike_pair.names(ce) == ["IkeSaUp", "ChildSaUp"]
    assert ike_pair.names(se) == ["IkeSaUp", "ChildSaUp"]
    assert ce[0].peer == (ike_pair.SERVER_IP, 500) and se[0].peer == (ike_pair.CLIENT_IP, 500)
    assert not ce[0].nat_local and not ce[0].nat_remote and ce[0].auth == "psk"
    c, s = ce[1], se[1]
    # Crosswise: what one side sends with, the other receives with (RFC 2409 5.5, one KEYMAT per SPI).
    assert c.spi_in == s.spi_out and c.spi_out == s.spi_in and c.spi_in != c.spi_out
    assert c.transform == s.transform == "aes256-sha1"
    assert (c.enc_in, c.auth_in) == (s.enc_out, s.auth_out)
    assert (c.enc_out, c.auth_out) == (s.enc_in, s.auth_in)
    assert len(c.enc_in) == 32 and len(c.auth_in) == 20 and c.salt_in == b""
    assert c.enc_in != c.enc_out
    assert not c.encap and c.lifetime_s == 3600 and c.rekey_of is None
    assert c.round_trip == 0.0 and s.round_trip is None  # no network delay here; the responder measures none
    # Keys never show in a repr.
    assert c.enc_in.hex() not in repr(c)


def test_psk_mismatch_is_named_in_plain_words():
    p = ike_pair.Pair(server_cfg=ike_pair.config("responder", psk=b"a different key entirely"))
    p.connect()
    se = p.events("server")
    assert ike_pair.names(se) == ["NegotiationFailed"]
    assert "pre-shared key mismatch" in se[0].reason
    assert b"different" not in se[0].reason.encode() and b"horse" not in se[0].reason.encode()
    # Issue 13 item 13: the server says AUTHENTICATION-FAILED in clear and the client names the key at once
    # (before: "the peer did not answer Main Mode message 5 ... check that it is reachable" after 31 s).
    ce = p.events("client")
    assert p.now == 0.0
    assert ike_pair.names(ce) == ["NegotiationFailed"]
    assert ce[0].reason.startswith("pre-shared key mismatch") and "AUTHENTICATION-FAILED" in ce[0].reason
    assert b"different" not in ce[0].reason.encode() and b"horse" not in ce[0].reason.encode()
    assert p.client.get_timer() is None


def test_psk_mismatch_told_like_strongswan_under_other_keys():
    # strongSwan answers an undecryptable message 5 with PAYLOAD-MALFORMED encrypted under its own keys.
    from sluice.ike import informational as info
    p = ike_pair.Pair(server_cfg=ike_pair.config("responder", psk=b"a different key entirely"))
    p.drop = lambda d, data: d == "c>s" and data[18] == MM and data[19] & C.FLAG_E   # message 5 never arrives
    p.connect()
    srv = list(p.server._sas.values())[0]
    info.notify(srv, C.N_PAYLOAD_MALFORMED)
    p.drop = None
    p.run()
    ce = p.events("client")
    assert ike_pair.names(ce) == ["NegotiationFailed"] and ce[0].reason.startswith("pre-shared key mismatch")
    assert p.now < 2.0


def test_psk_mismatch_with_a_silent_server_says_key_too():
    p = ike_pair.Pair(server_cfg=ike_pair.config("responder", psk=b"a different key entirely"))
    p.drop = lambda d, data: d == "s>c" and data[18] == C.EXCH_INFORMATIONAL   # a server that says nothing
    p.connect()
    p.advance(40.0)
    ce = p.events("client")
    assert ike_pair.names(ce) == ["NegotiationFailed"]
    assert "did not answer Main Mode message 5" in ce[0].reason and "pre-shared key" in ce[0].reason


def test_no_proposal_chosen_both_sides_explain():
    srv = ike_pair.config("responder", ike="aes256-sha256-modp2048")
    p = ike_pair.Pair(server_cfg=srv)
    p.connect()
    se, ce = p.events("server"), p.events("client")
    assert ike_pair.names(se) == ["NegotiationFailed"]
    assert "aes256-sha1-modp1024" in se[0].reason           # what the client offered
    assert "legacy" in se[0].reason                          # and what to change
    # RFC 2408 5: the refusal goes back in clear as NO-PROPOSAL-CHOSEN.
    assert _chart(p) == [("c>s", 500, MM), ("s>c", 500, INFO)]
    assert ike_pair.names(ce) == ["NegotiationFailed"]
    assert "NO-PROPOSAL-CHOSEN" in ce[0].reason


def test_lost_message_6_answered_from_cache():
    p = ike_pair.Pair()
    lost = []

    def drop(direction, data):
        # Lose the first encrypted Main Mode message from the server (message 6).
        if direction == "s>c" and data[18] == MM and data[19] & C.FLAG_E and not lost:
            lost.append(data)
            return True
        return False

    p.drop = drop
    p.connect()
    assert ike_pair.names(p.events("server")) == ["IkeSaUp"]
    assert p.events("client") == []
    p.advance(1.0)  # the client resends message 5 after 1 s; the server answers with the same message 6
    assert ike_pair.names(p.events("client")) == ["IkeSaUp", "ChildSaUp"]
    assert ike_pair.names(p.events("server")) == ["ChildSaUp"]
    sixes = [d for d, src, dst, data in [(x[0], x[1], x[2], x[3]) for x in p.log]
             if d == "s>c" and data[18] == MM and data[19] & C.FLAG_E]
    assert len(sixes) == 2
    assert [x[3] for x in p.log if x[0] == "s>c" and x[3][18] == MM and x[3][19] & C.FLAG_E][1] == lost[0]
    assert p.server.stats["duplicate"] == 1


def test_retransmission_backoff_then_give_up():
    p = ike_pair.Pair()
    p.drop = lambda d, data: d == "c>s"
    p.connect()
    p.advance(60.0)
    sent_at = []
    # Re-run with a recording drop to learn the send times.
    p2 = ike_pair.Pair()
    p2.drop = lambda d, data: (sent_at.append(p2.now) or True) if d == "c>s" else False
    p2.connect()
    p2.advance(60.0)
    assert sent_at == [0.0, 1.0, 3.0, 7.0, 15.0]      # backoff 1, 2, 4, 8 s
    ce = p2.events("client")
    assert ike_pair.names(ce) == ["NegotiationFailed"]
    assert "did not answer Main Mode message 1" in ce[0].reason
    assert p2.client.get_timer() is None


def test_garbage_is_counted_never_raised():
    p = ike_pair.Pair()
    p.connect()
    p.events("client")
    p.events("server")
    srv = p.server
    good = [x[3] for x in p.log if x[0] == "c>s"]
    before = srv.stats["malformed"] + srv.stats["unknown_sa"]
    bad = [b"", b"\x00" * 27, b"\xff" * 28, good[0][:40], good[0] + b"\x00",
           good[2][:28] + bytes(len(good[2]) - 28),            # message 5 header, zeroed ciphertext
           good[3][:-1] + bytes((good[3][-1] ^ 1,)),          # Quick Mode message 1 with one bit flipped
           bytes(range(256))]
    for b in bad:
        srv.datagram_received(b, (ike_pair.SERVER_IP, 500), (ike_pair.CLIENT_IP, 500), p.now)
    after = srv.stats["malformed"] + srv.stats["unknown_sa"] + srv.stats["duplicate"]
    assert after - before >= len(bad) - 1
    assert srv.next_event() is None
    assert srv.datagrams_to_send() == []


def test_aggressive_mode_is_refused_in_plain_words():
    from sluice.ike.message import Message
    from sluice.ike.payloads import NoncePayload
    m = Message.build(b"\x01" * 8, b"\x00" * 8, C.EXCH_AGGRESSIVE, [NoncePayload(b"\x02" * 16)]).encode()
    p = ike_pair.Pair()
    for k in range(3):
        p.server.datagram_received(m, (ike_pair.SERVER_IP, 500), (ike_pair.CLIENT_IP, 500), 0.0)
    se = p.events("server")
    assert ike_pair.names(se) == ["NegotiationFailed"] and "Aggressive Mode" in se[0].reason
    assert p.server.stats["aggressive"] == 3
