"""NAT-D detection (RFC 3947 3.2) in the four NAT situations, NAT-OA payloads (RFC 3947 5.2)."""

try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.hal.crypto import digest
from sluice.ike import constants as C
from sluice.ike import natd

ICKY = harness.unhex("8899aabbccddeeff")
RCKY = harness.unhex("0011223344556677")


def test_hash_input_is_cookies_address_port():
    # RFC 3947 3.2: HASH(CKY-I | CKY-R | IP | Port); checked with a recording hash, not by recomputing.
    seen = []

    def rec(b):
        seen.append(b)
        return b"h"

    assert natd.natd_hash(rec, ICKY, RCKY, "192.0.2.1", 4500) == b"h"
    assert seen == [ICKY + RCKY + harness.unhex("c0000201 1194")]
    natd.natd_hash(rec, ICKY, RCKY, bytes(range(16)), 500)
    assert seen[1] == ICKY + RCKY + bytes(range(16)) + harness.unhex("01f4")
    harness.raises(ValueError, natd.natd_hash, rec, ICKY[:7], RCKY, "192.0.2.1", 500)
    harness.raises(ValueError, natd.natd_hash, rec, ICKY, RCKY, "192.0.2.256", 500)


def _exchange(client_local, client_seen_by_server, server_local, server_seen_by_client):
    """The client sends NAT-Ds from its view; the server detects from its view; and the reverse."""
    h = digest.sha1
    sent_by_client = natd.natd_payloads(h, ICKY, RCKY, local=client_local, remote=server_seen_by_client)
    at_server = natd.detect(h, ICKY, RCKY, local=server_local, remote=client_seen_by_server, received=sent_by_client)
    sent_by_server = natd.natd_payloads(h, ICKY, RCKY, local=server_local, remote=client_seen_by_server)
    at_client = natd.detect(h, ICKY, RCKY, local=client_local, remote=server_seen_by_client, received=sent_by_server)
    return at_client, at_server


def test_no_nat():
    c, s = _exchange(("192.0.2.10", 500), ("192.0.2.10", 500), ("198.51.100.1", 500), ("198.51.100.1", 500))
    assert not c.any and not s.any


def test_client_behind_nat():
    # The client's 10.0.0.2:500 leaves the NAT as 203.0.113.7:61000.
    c, s = _exchange(("10.0.0.2", 500), ("203.0.113.7", 61000), ("198.51.100.1", 500), ("198.51.100.1", 500))
    assert c.local_behind_nat and not c.remote_behind_nat
    assert s.remote_behind_nat and not s.local_behind_nat


def test_server_behind_nat():
    # The server sits at 192.168.1.1 behind a port forward of 198.51.100.1:500.
    c, s = _exchange(("192.0.2.10", 500), ("192.0.2.10", 500), ("192.168.1.1", 500), ("198.51.100.1", 500))
    assert c.remote_behind_nat and not c.local_behind_nat
    assert s.local_behind_nat and not s.remote_behind_nat


def test_both_behind_nat():
    c, s = _exchange(("10.0.0.2", 500), ("203.0.113.7", 61000), ("192.168.1.1", 500), ("198.51.100.1", 500))
    assert c.local_behind_nat and c.remote_behind_nat and s.local_behind_nat and s.remote_behind_nat


def test_several_source_hashes_and_draft_type():
    h = digest.md5
    mine = natd.natd_hash(h, ICKY, RCKY, "198.51.100.1", 500)
    other = natd.natd_hash(h, ICKY, RCKY, "192.0.2.99", 500)
    peer = natd.natd_hash(h, ICKY, RCKY, "192.0.2.10", 500)
    st = natd.detect(h, ICKY, RCKY, ("198.51.100.1", 500), ("192.0.2.10", 500), [mine, other, peer])
    assert not st.any
    pl = natd.natd_payloads(h, ICKY, RCKY, ("192.0.2.10", 500), ("198.51.100.1", 500), C.PT_NAT_D_DRAFT)
    assert [p.ptype for p in pl] == [130, 130] and pl[0].hash == mine
    harness.raises(ValueError, natd.detect, h, ICKY, RCKY, ("198.51.100.1", 500), ("192.0.2.10", 500), [mine])


def test_hash_for_maps_phase1_hash_ids():
    assert natd.hash_for(C.HASH_SHA1) is digest.sha1
    assert natd.hash_for(C.HASH_MD5) is digest.md5
    assert natd.hash_for(C.HASH_SHA2_256) is digest.sha256
    harness.raises(ValueError, natd.hash_for, 99)


def test_nat_oa_build_and_parse():
    oa = natd.nat_oa("10.0.0.2")
    assert oa.ptype == C.PT_NAT_OA and oa.encode_body() == harness.unhex("01000000 0a000002")
    assert natd.nat_oa_address(oa) == "10.0.0.2"
    d = natd.nat_oa(harness.unhex("20010db8000000000000000000000001"), C.PT_NAT_OA_DRAFT)
    assert d.ptype == 131 and d.id_type == C.NATOA_IPV6 and natd.nat_oa_address(d) == "2001:db8:0:0:0:0:0:1"
