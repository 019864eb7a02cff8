"""Proposal strings, default sets and the responder choice, against each client profile in docs clients.md.

Offers are built attribute by attribute here (not through ProposalSet), in the attribute order and life
encoding the clients use, so that "echoed exactly as offered" is a real check.
"""

try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.ike import constants as C
from sluice.ike import proposals as PR
from sluice.ike.payloads import SaPayload, ProposalPayload, TransformPayload

ENC = {"aes256": (C.ENCR_AES_CBC, 256), "aes128": (C.ENCR_AES_CBC, 128), "3des": (C.ENCR_3DES, 0)}
HASH = {"md5": C.HASH_MD5, "sha1": C.HASH_SHA1, "sha256": C.HASH_SHA2_256, "sha512": C.HASH_SHA2_512}
GROUP = {"modp1024": 2, "modp1536": 5, "modp2048": 14, "ecp256": 19, "ecp384": 20}


def p1_offer(combos, auth=C.AUTH_PSK):
    """Phase 1 SA as Windows/racoon lay it out: life type/duration first, duration as a 4-octet TLV."""
    tps = []
    for k, (e, h, g) in enumerate(combos):
        encr, bits = ENC[e]
        attrs = [(C.P1_LIFE_TYPE, 1), (C.P1_LIFE_DURATION, (28800).to_bytes(4, "big")), (C.P1_ENCRYPTION, encr)]
        if bits:
            attrs.append((C.P1_KEY_LENGTH, bits))
        attrs += [(C.P1_AUTH, auth), (C.P1_HASH, HASH[h]), (C.P1_GROUP_DESC, GROUP[g])]
        tps.append(TransformPayload(k + 1, C.KEY_IKE, attrs))
    return SaPayload([ProposalPayload(1, C.PROTO_ISAKMP, b"", tps)])


ESP_ENC = {"aes256": (C.ESP_AES_CBC, 256), "aes128": (C.ESP_AES_CBC, 128), "3des": (C.ESP_3DES, 0),
           "aes256gcm16": (C.ESP_AES_GCM_16, 256), "aes128gcm16": (C.ESP_AES_GCM_16, 128)}
ESP_AUTH = {"md5": C.AALG_HMAC_MD5, "sha1": C.AALG_HMAC_SHA1, "sha256": C.AALG_HMAC_SHA2_256, None: 0}


def esp_offer(combos, mode=C.ENCAP_TRANSPORT, spi=b"\xca\xfe\x00\x01", group=0, one_proposal=True):
    tps = []
    for k, (e, a) in enumerate(combos):
        tid, bits = ESP_ENC[e]
        attrs = [(C.P2_LIFE_TYPE, 1), (C.P2_LIFE_DURATION, 3600), (C.P2_ENCAP_MODE, mode)]
        if group:
            attrs.append((C.P2_GROUP_DESC, group))
        if a:
            attrs.append((C.P2_AUTH_ALG, ESP_AUTH[a]))
        if bits:
            attrs.append((C.P2_KEY_LENGTH, bits))
        tps.append(TransformPayload(k + 1, tid, attrs))
    if one_proposal:
        return SaPayload([ProposalPayload(1, C.PROTO_IPSEC_ESP, spi, tps)])
    return SaPayload([ProposalPayload(k + 1, C.PROTO_IPSEC_ESP, spi, [tps[k]]) for k in range(len(tps))])


# clients.md "Windows 10/11": phase 1 in this order; phase 2 AES-256/SHA1, AES-128/SHA1, 3DES/SHA1, no PFS.
WINDOWS_P1 = [("aes256", "sha1", "ecp384"), ("aes128", "sha1", "ecp256"), ("aes256", "sha1", "modp2048"),
              ("3des", "sha1", "modp2048"), ("3des", "sha1", "modp1024")]
WINDOWS_P2 = [("aes256", "sha1"), ("aes128", "sha1"), ("3des", "sha1")]
# clients.md "macOS / iOS": 14 transforms.
APPLE_P1 = ([("aes256", h, "modp2048") for h in ("sha256", "sha1", "md5", "sha512")]
            + [("aes256", h, "modp1536") for h in ("sha256", "sha1", "md5")]
            + [("aes256", h, "modp1024") for h in ("sha256", "sha1", "md5")]
            + [("aes128", h, "modp1024") for h in ("sha1", "md5")]
            + [("3des", h, "modp1024") for h in ("sha1", "md5")])
APPLE_P2 = [(e, a) for e in ("aes256", "aes128", "3des") for a in ("sha1", "md5")]
# clients.md "Android up to 11": every phase 1 proposal MODP1024.
ANDROID_P1 = [("aes256", "sha1", "modp1024"), ("aes256", "md5", "modp1024"), ("aes128", "sha1", "modp1024"),
              ("aes128", "md5", "modp1024"), ("3des", "sha1", "modp1024"), ("3des", "md5", "modp1024")]
ANDROID_P2 = [(e, a) for e in ("aes256", "aes128", "3des") for a in ("sha1", "md5")]
# clients.md "Linux NetworkManager-l2tp" default phase 1 / phase 2.
NM_P1 = ([("aes256", h, g) for g in ("modp2048", "modp1536", "modp1024") for h in ("sha256", "sha1")]
         + [("aes256", "sha1", "ecp384"), ("aes128", "sha1", "ecp256"), ("3des", "sha1", "modp2048"),
            ("3des", "sha1", "modp1024")])
NM_P2 = [("aes256", "sha1"), ("aes128", "sha1"), ("3des", "sha1")]


def test_parse_strings_and_names():
    ps = PR.ProposalSet.parse("aes256-sha1-modp2048, aes128-sha256-ecp256,3des-md5-modp1024", "ike")
    assert ps.names() == ["aes256-sha1-modp2048", "aes128-sha256-ecp256", "3des-md5-modp1024"]
    t = ps.transforms[0]
    assert (t.encr, t.key_bits, t.hash, t.group) == (C.ENCR_AES_CBC, 256, C.HASH_SHA1, C.GROUP_MODP2048)
    esp = PR.ProposalSet.parse("aes256gcm16,aes256-sha1,aes256-sha1-modp2048", "esp")
    g, nopfs, pfs = esp.transforms
    assert (g.encr, g.key_bits, g.integ, g.group) == (C.ESP_AES_GCM_16, 256, 0, 0)
    assert (nopfs.encr, nopfs.integ, nopfs.group) == (C.ESP_AES_CBC, C.AALG_HMAC_SHA1, 0)
    assert pfs.group == C.GROUP_MODP2048
    combos = PR.ProposalSet.parse("aes256-aes128-sha1-sha256-modp2048", "ike")
    assert combos.names() == ["aes256-sha1-modp2048", "aes256-sha256-modp2048", "aes128-sha1-modp2048",
                              "aes128-sha256-modp2048"]
    assert len(PR.ProposalSet.parse("aes256-sha1-modp2048,aes256-sha1-modp2048", "ike")) == 1


def test_parse_errors_name_string_token_and_allowed():
    e = harness.raises(PR.ProposalError, PR.ProposalSet.parse, "aes256-sha1-modp2048,aes256-sha3-modp2048", "ike")
    s = str(e)
    assert "'aes256-sha3-modp2048'" in s and "'sha3'" in s and "sha256" in s and "modp2048" in s
    e = harness.raises(PR.ProposalError, PR.ProposalSet.parse, "aes256gcm16-modp2048", "ike")
    assert "ESP-only" in str(e)
    e = harness.raises(PR.ProposalError, PR.ProposalSet.parse, "aes256-sha1", "ike")
    assert "no DH group" in str(e)
    e = harness.raises(PR.ProposalError, PR.ProposalSet.parse, "aes256gcm16-sha1", "esp")
    assert "'sha1'" in str(e)
    harness.raises(PR.ProposalError, PR.ProposalSet.parse, "aes256", "esp")
    harness.raises(PR.ProposalError, PR.ProposalSet.parse, "sha1-modp2048", "ike")
    harness.raises(PR.ProposalError, PR.ProposalSet.parse, "aes256-sha1-modp2048,,", "ike")
    harness.raises(PR.ProposalError, PR.ProposalSet.parse, "", "esp")


def test_default_sets_modern_and_legacy():
    ike, ike_l = PR.default_ike(), PR.default_ike(legacy=True)
    esp, esp_l = PR.default_esp(), PR.default_esp(legacy=True)
    assert not ike.has_legacy() and not esp.has_legacy()
    for name in ("aes256-sha1-modp2048", "aes128-sha256-ecp256", "aes256-sha512-modp4096", "aes256-sha384-ecp384"):
        assert PR.ProposalSet.parse(name, "ike").transforms[0] in ike
    for name in ("3des-sha1-modp1024", "aes256-md5-modp2048", "aes256-sha1-modp1536"):
        t = PR.ProposalSet.parse(name, "ike").transforms[0]
        assert t not in ike and t in ike_l
    for name in ("aes256gcm16", "aes128gcm16", "aes256-sha1", "aes128-sha256", "aes256-sha1-modp2048"):
        assert PR.ProposalSet.parse(name, "esp").transforms[0] in esp
    for name in ("3des-sha1", "aes256-md5", "aes256-sha1-modp1024"):
        t = PR.ProposalSet.parse(name, "esp").transforms[0]
        assert t not in esp and t in esp_l


def test_windows_default_set():
    sa = p1_offer(WINDOWS_P1)
    ch = PR.match_ike(sa, PR.default_ike())
    assert ch.algs.name() == "aes256-sha1-ecp384" and ch.auth == C.AUTH_PSK and ch.life_seconds == 28800
    # Echoed exactly: the same transform bytes, number 1, life duration still a 4-octet TLV.
    assert ch.sa.proposals[0].transforms[0].encode_body() == sa.proposals[0].transforms[0].encode_body()
    qm = esp_offer(WINDOWS_P2, mode=C.ENCAP_UDP_TRANSPORT)
    ech = PR.match_esp(qm, PR.default_esp(), modes=C.ENCAP_TRANSPORT_MODES)
    assert ech.algs.name() == "aes256-sha1" and ech.mode == C.ENCAP_UDP_TRANSPORT
    assert ech.peer_spi == b"\xca\xfe\x00\x01" and ech.life_seconds == 3600
    reply = ech.reply_sa(b"\x00\x00\x12\x34")
    assert reply.proposals[0].spi == b"\x00\x00\x12\x34"
    assert reply.proposals[0].transforms[0].encode_body() == qm.proposals[0].transforms[0].encode_body()


def test_windows_when_first_choices_are_not_configured():
    ours = PR.ProposalSet.parse("aes256-sha1-modp2048", "ike")
    ch = PR.match_ike(p1_offer(WINDOWS_P1), ours)
    # The third of their transforms, number 3, as offered.
    assert ch.algs.name() == "aes256-sha1-modp2048" and ch.sa.proposals[0].transforms[0].number == 3


def test_apple_default_set():
    ch = PR.match_ike(p1_offer(APPLE_P1), PR.default_ike())
    assert ch.algs.name() == "aes256-sha256-modp2048"
    ech = PR.match_esp(esp_offer(APPLE_P2), PR.default_esp(), modes=C.ENCAP_TRANSPORT_MODES)
    assert ech.algs.name() == "aes256-sha1" and ech.mode == C.ENCAP_TRANSPORT


def test_android_needs_legacy_and_the_error_says_so():
    e = harness.raises(PR.NoProposalChosen, PR.match_ike, p1_offer(ANDROID_P1), PR.default_ike())
    s = str(e)
    assert "aes256-sha1-modp1024, aes256-md5-modp1024, aes128-sha1-modp1024" in s
    assert "the client offered only MODP1024; enable `legacy` or update the client" in s
    assert e.hint == "the client offered only MODP1024; enable `legacy` or update the client"
    assert e.offered[-1] == "3des-md5-modp1024"
    ch = PR.match_ike(p1_offer(ANDROID_P1), PR.default_ike(legacy=True))
    assert ch.algs.name() == "aes256-sha1-modp1024"
    # Phase 2 (no PFS, AES/SHA1 first) works without legacy.
    assert PR.match_esp(esp_offer(ANDROID_P2), PR.default_esp()).algs.name() == "aes256-sha1"


def test_networkmanager_default_set():
    ch = PR.match_ike(p1_offer(NM_P1), PR.default_ike())
    assert ch.algs.name() == "aes256-sha256-modp2048"
    assert PR.match_esp(esp_offer(NM_P2), PR.default_esp()).algs.name() == "aes256-sha1"


def test_old_client_with_only_3des_and_md5():
    offer = p1_offer([("3des", "sha1", "modp2048"), ("3des", "md5", "modp2048")])
    e = harness.raises(PR.NoProposalChosen, PR.match_ike, offer, PR.default_ike())
    assert "offered 3des-sha1-modp2048, 3des-md5-modp2048" in str(e)
    assert "only 3DES; enable `legacy`" in str(e)
    offer = p1_offer([("aes256", "md5", "modp2048")])
    e = harness.raises(PR.NoProposalChosen, PR.match_ike, offer, PR.default_ike())
    assert "only MD5" in str(e)
    e = harness.raises(PR.NoProposalChosen, PR.match_esp, esp_offer([("3des", "md5")]), PR.default_esp())
    assert "offered 3des-md5" in str(e) and "enable `legacy`" in str(e)


def test_not_a_legacy_problem_says_what_to_add():
    ours = PR.ProposalSet.parse("aes128-sha256-ecp256", "ike")
    e = harness.raises(PR.NoProposalChosen, PR.match_ike, p1_offer([("aes256", "sha1", "modp2048")]), ours)
    assert "aes128-sha256-ecp256" in str(e) and "add one of the offered combinations" in str(e)
    assert "legacy" not in str(e)


def test_auth_method_mismatch_explained():
    e = harness.raises(PR.NoProposalChosen, PR.match_ike, p1_offer(WINDOWS_P1, auth=C.AUTH_RSA_SIG),
                       PR.default_ike())
    assert "rsasig authentication but this side is set for psk" in str(e)
    ch = PR.match_ike(p1_offer(WINDOWS_P1, auth=C.AUTH_RSA_SIG), PR.default_ike(),
                      auth_methods=(C.AUTH_PSK, C.AUTH_RSA_SIG))
    assert ch.auth == C.AUTH_RSA_SIG


def test_esp_prefers_sha1_or_gcm_over_sha256():
    ours = PR.default_esp()
    assert PR.match_esp(esp_offer([("aes256", "sha256"), ("aes256", "sha1")]), ours).algs.name() == "aes256-sha1"
    assert PR.match_esp(esp_offer([("aes256", "sha256"), ("aes128gcm16", None)]), ours).algs.name() == "aes128gcm16"
    assert PR.match_esp(esp_offer([("aes256", "sha256")]), ours).algs.name() == "aes256-sha256"
    # Separate proposals (one transform each) are walked in the peer's order too.
    ch = PR.match_esp(esp_offer([("aes256", "sha256"), ("aes128", "sha1")], one_proposal=False), ours)
    assert ch.algs.name() == "aes128-sha1" and ch.proposal.number == 2
    # Otherwise their first acceptable one wins (RFC 2409 5), even if we would rank it lower.
    assert PR.match_esp(esp_offer([("aes128", "sha1"), ("aes256gcm16", None)]), ours).algs.name() == "aes128-sha1"


def test_esp_pfs_group_and_mode_checks():
    ch = PR.match_esp(esp_offer([("aes256", "sha1")], group=14), PR.default_esp())
    assert ch.algs.group == 14 and ch.algs.name() == "aes256-sha1-modp2048"
    e = harness.raises(PR.NoProposalChosen, PR.match_esp, esp_offer([("aes256", "sha1")], mode=C.ENCAP_TUNNEL),
                       PR.default_esp(), C.ENCAP_TRANSPORT_MODES)
    assert "tunnel mode" in str(e) and "transport" in str(e)
    draft = PR.match_esp(esp_offer([("aes256", "sha1")], mode=C.ENCAP_UDP_TRANSPORT_DRAFT), PR.default_esp(),
                         C.ENCAP_TRANSPORT_MODES)
    assert draft.mode == 61444


def test_esp_bundles_and_bad_transforms_refused():
    tp = TransformPayload(1, C.ESP_AES_CBC, [(C.P2_ENCAP_MODE, 2), (C.P2_AUTH_ALG, 2), (C.P2_KEY_LENGTH, 256)])
    ah = TransformPayload(1, 3, [(C.P2_ENCAP_MODE, 2), (C.P2_AUTH_ALG, 2)])
    bundle = SaPayload([ProposalPayload(1, C.PROTO_IPSEC_ESP, b"\x01\x02\x03\x04", [tp]),
                        ProposalPayload(1, C.PROTO_IPSEC_AH, b"\x01\x02\x03\x05", [ah])])
    harness.raises(PR.NoProposalChosen, PR.match_esp, bundle, PR.default_esp())
    no_auth = TransformPayload(1, C.ESP_AES_CBC, [(C.P2_ENCAP_MODE, 2), (C.P2_KEY_LENGTH, 256)])
    e = harness.raises(PR.NoProposalChosen, PR.match_esp,
                       SaPayload([ProposalPayload(1, C.PROTO_IPSEC_ESP, b"\x01\x02\x03\x04", [no_auth])]),
                       PR.default_esp())
    assert "without an authentication algorithm" in str(e)
    odd = TransformPayload(1, C.KEY_IKE, [(1, 7), (14, 256), (2, 2), (3, 1), (4, 14), (6, b"\x01")])
    e = harness.raises(PR.NoProposalChosen, PR.match_ike,
                       SaPayload([ProposalPayload(1, C.PROTO_ISAKMP, b"", [odd])]), PR.default_ike())
    assert "unsupported attribute Group Prime" in str(e)


def test_our_offers_round_trip_through_the_matcher():
    ours = PR.ProposalSet.parse("aes256-sha256-ecp256,aes128-sha1-modp2048", "ike")
    sa = PR.ike_sa_payload(ours, lifetime=86400)
    assert [t.number for t in sa.proposals[0].transforms] == [1, 2]
    assert sa.proposals[0].transforms[0].get(C.P1_LIFE_DURATION) == 86400
    assert PR.match_ike(sa, PR.default_ike()).algs == ours.transforms[0]
    esp = PR.ProposalSet.parse("aes256gcm16,aes256-sha1", "esp")
    qsa = PR.esp_sa_payload(esp, b"\x00\x00\x00\x07", mode=C.ENCAP_UDP_TRANSPORT)
    tps = qsa.proposals[0].transforms
    assert tps[0].transform_id == C.ESP_AES_GCM_16 and tps[0].get(C.P2_AUTH_ALG) is None
    assert tps[0].get(C.P2_KEY_LENGTH) == 256 and tps[1].get(C.P2_AUTH_ALG) == C.AALG_HMAC_SHA1
    assert PR.match_esp(qsa, PR.default_esp()).algs.name() == "aes256gcm16"
    harness.raises(ValueError, PR.esp_sa_payload, PR.ProposalSet.parse("aes256-sha1,aes256-sha1-modp2048", "esp"),
                   b"\x00\x00\x00\x07")


def test_initiator_checks_the_responders_choice():
    ours = PR.ProposalSet.parse("aes256-sha256-modp2048,aes128-sha1-modp2048", "ike")
    offer = PR.ike_sa_payload(ours)
    reply = PR.match_ike(offer, PR.ProposalSet.parse("aes128-sha1-modp2048", "ike")).sa
    ch = PR.check_ike_reply(reply, offer)
    assert ch.algs.name() == "aes128-sha1-modp2048" and ch.life_seconds == 28800
    forged = PR.ike_sa_payload(PR.ProposalSet.parse("3des-md5-modp1024", "ike"))
    harness.raises(PR.NoProposalChosen, PR.check_ike_reply, forged, offer)
    harness.raises(PR.NoProposalChosen, PR.check_ike_reply, offer, offer)  # two transforms: not a choice
    esp = PR.esp_sa_payload(PR.ProposalSet.parse("aes256-sha1,aes128-sha1", "esp"), b"\x00\x00\x00\x01")
    ech = PR.match_esp(esp, PR.default_esp())
    got = PR.check_esp_reply(ech.reply_sa(b"\x00\x00\x00\x02"), esp)
    assert got.peer_spi == b"\x00\x00\x00\x02" and got.algs.name() == "aes256-sha1"
    bad = ech.reply_sa(b"\x00\x00\x00\x02")
    bad.proposals[0].transforms[0].attributes.append((C.P2_GROUP_DESC, 14))
    harness.raises(PR.NoProposalChosen, PR.check_esp_reply, bad, esp)
