"""Vendor ID recognition and the capabilities a phase 1 machine derives from them."""

try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.ike import constants as C
from sluice.ike import vendor as V
from sluice.ike.payloads import VendorIdPayload

unhex = harness.unhex


def test_recognize_each_known_value():
    # Byte values as printed in strongSwan isakmp_vendor.c and libreswan vendorid.c.
    assert V.recognize(unhex("4a131c81070358455c5728f20e95452f")) == "rfc3947"
    assert V.recognize(unhex("90cb80913ebb696e086381b5ec427b1f")) == "natt-draft-02n"
    assert V.recognize(unhex("cd60464335df21f87cfdb2fc68b6a448")) == "natt-draft-02"
    assert V.recognize(unhex("7d9419a65310ca6f2c179d9215529d56")) == "natt-draft-03"
    assert V.recognize(unhex("afcad71368a1f1c96b8696fc77570100")) == "dpd"
    assert V.recognize(unhex("4048b7d56ebce88525e7de7f00d6c2d3")) == "fragmentation"
    assert V.recognize(unhex("4048b7d56ebce88525e7de7f00d6c2d380000000")) == "fragmentation"
    assert V.recognize(unhex("1e2b516905991c7d7c96fcbfb587e46100000009")) == "ms-nt5"
    assert V.recognize(unhex("09002689dfd6b712")) == "xauth"
    assert V.recognize(unhex("12f5f28c457168a9702d9fe274cc0100")) == "cisco-unity"
    assert V.recognize(unhex("882fe56d6fd20dbc2251613b2ebe5beb")) == "strongswan"
    assert V.recognize(b"OE-Libreswan-4.12") == "libreswan"
    assert V.recognize(unhex("4a131c81070358455c5728f20e95452e")) is None
    assert V.recognize(b"") is None


def test_windows_capabilities():
    vids = [VendorIdPayload(V.MS_NT5 + unhex("00000009")), VendorIdPayload(V.NATT_RFC3947),
            VendorIdPayload(V.FRAGMENTATION), VendorIdPayload(unhex("fb1de3cdf341b7ea16b7e5be0855f120"))]
    caps = V.capabilities(vids)
    assert caps.windows and caps.windows_version == 9 and caps.fragmentation and caps.natt == "rfc3947"
    assert not caps.natt_draft() and caps.natd_type() == C.PT_NAT_D and caps.unknown == 1 and not caps.dpd
    assert V.responder_vids(caps) == [V.NATT_RFC3947, V.DPD, V.FRAGMENTATION]


def test_draft_only_peer_uses_draft_payload_numbers():
    caps = V.capabilities([V.NATT_DRAFT_02N, V.NATT_DRAFT_02, V.DPD])
    assert caps.natt == "natt-draft-02" and caps.natt_draft() and caps.dpd
    assert caps.natd_type() == 130 and caps.natoa_type() == 131
    # RFC 3947 beats the drafts whatever the order.
    assert V.capabilities([V.NATT_DRAFT_03, V.NATT_RFC3947]).natt == "rfc3947"
    assert V.responder_vids(V.capabilities([V.NATT_DRAFT_03]), dpd=False) == [V.NATT_DRAFT_03]


def test_fragmentation_capability_bits():
    assert V.capabilities([V.FRAGMENTATION + unhex("c0000000")]).fragmentation
    assert not V.capabilities([V.FRAGMENTATION + unhex("40000000")]).fragmentation


def test_initiator_vids_cover_all_natt_flavours():
    vids = V.initiator_vids()
    names = [V.recognize(v) for v in vids]
    assert names == ["rfc3947", "natt-draft-03", "natt-draft-02n", "natt-draft-02", "dpd", "fragmentation"]
    assert V.capabilities(vids).fragmentation
