"""Vendor ID payload values (RFC 2408 3.16) that change how we talk to a peer, and their recognition.

Theory of operation
-------------------
A Vendor ID is opaque bytes; most are MD5 of a text (the text is quoted next to each constant and the unit
tests recompute the MD5 independently). `recognize(data)` maps one VID to a short name; `capabilities(vids)`
folds a message's VIDs into the flags a phase 1 machine needs: which NAT-T flavour to speak (RFC 3947 wins over
the drafts, payload types 20/21 vs 130/131), DPD (RFC 3706), IKE fragmentation, XAUTH, Windows, and so on.

Sources for the bytes: strongSwan src/libcharon/sa/ikev1/tasks/isakmp_vendor.c (vendor_ids[] and
vendor_natt_ids[]), libreswan lib/libswan/vendorid.c (Windows versions, "OE-Libreswan-<version>" string VID),
RFC 3947 section 3.1 (MD5("RFC 3947")), Microsoft [MS-IKEE] (Windows sends "RFC 3947" and
"draft-ietf-ipsec-nat-t-ike-02\\n"), RFC 3706 (DPD), Wireshark epan/dissectors/packet-isakmp.c.
"""

from sluice.ike import constants as C

# RFC 3947 3.1: MD5("RFC 3947").
NATT_RFC3947 = bytes.fromhex("4a131c81070358455c5728f20e95452f")
# MD5("draft-ietf-ipsec-nat-t-ike-02"), MD5("draft-ietf-ipsec-nat-t-ike-02\n") (the draft's own typo, strongSwan
# and libreswan both accept it), MD5("draft-ietf-ipsec-nat-t-ike-03").
NATT_DRAFT_02 = bytes.fromhex("cd60464335df21f87cfdb2fc68b6a448")
NATT_DRAFT_02N = bytes.fromhex("90cb80913ebb696e086381b5ec427b1f")
NATT_DRAFT_03 = bytes.fromhex("7d9419a65310ca6f2c179d9215529d56")
# RFC 3706 DPD (bytes as strongSwan isakmp_vendor.c and Wireshark list them); the last two octets are the
# version, 1.0.
DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")
DPD_PREFIX = DPD[:14]
# MD5("draft-ietf-ipsra-isakmp-xauth-06.txt") truncated to 8 octets (strongSwan, libreswan).
XAUTH = bytes.fromhex("09002689dfd6b712")
# MD5("strongSwan") (strongSwan isakmp_vendor.c).
STRONGSWAN = bytes.fromhex("882fe56d6fd20dbc2251613b2ebe5beb")
# MD5("CISCO-UNITY") with the last two octets replaced by the version 01 00 (strongSwan, libreswan).
CISCO_UNITY = bytes.fromhex("12f5f28c457168a9702d9fe274cc0100")
CISCO_UNITY_PREFIX = CISCO_UNITY[:14]
# MD5("FRAGMENTATION"); optionally followed by 4 capability octets, 0x80000000 = fragments main/aggressive mode
# messages (strongSwan isakmp_vendor.c; Windows sends the bare 16 octets).
FRAGMENTATION = bytes.fromhex("4048b7d56ebce88525e7de7f00d6c2d3")
FRAGMENTATION_CAPS = 0x80000000
# MD5("MS NT5 ISAKMPOAKLEY") followed by a 4-octet version (libreswan: 2 = Windows 2000 ... 9 = Windows 8/10/11).
MS_NT5 = bytes.fromhex("1e2b516905991c7d7c96fcbfb587e461")
# libreswan sends the plain text "OE-Libreswan-<version>" (lib/libswan/lswversion.c).
LIBRESWAN_PREFIX = b"OE-Libreswan-"

# (name, exact bytes) checked before the prefix rules below.
_EXACT = (
    ("rfc3947", NATT_RFC3947),
    ("natt-draft-03", NATT_DRAFT_03),
    ("natt-draft-02", NATT_DRAFT_02),
    ("natt-draft-02n", NATT_DRAFT_02N),
    ("xauth", XAUTH),
    ("strongswan", STRONGSWAN),
)

# Preference among NAT-T flavours: RFC first (strongSwan orders vendor_natt_ids[] the same way).
_NATT_ORDER = ("rfc3947", "natt-draft-03", "natt-draft-02", "natt-draft-02n")

MS_VERSIONS = {2: "Windows 2000", 3: "Windows XP", 4: "Windows Server 2003", 5: "Windows Vista",
               6: "Windows Server 2008", 7: "Windows 7", 8: "Windows Server 2008 R2", 9: "Windows 8 or later"}


def recognize(data):
    """One Vendor ID value -> a short name ('rfc3947', 'dpd', 'fragmentation', 'ms-nt5', ...) or None."""
    data = bytes(data)
    for name, vid in _EXACT:
        if data == vid:
            return name
    if len(data) == 16 and data[:14] == DPD_PREFIX:
        return "dpd"
    if len(data) == 16 and data[:14] == CISCO_UNITY_PREFIX:
        return "cisco-unity"
    if data[:16] == FRAGMENTATION and len(data) in (16, 20):
        return "fragmentation"
    if data[:16] == MS_NT5 and len(data) in (16, 20):
        return "ms-nt5"
    if data.startswith(LIBRESWAN_PREFIX):
        return "libreswan"
    return None


class PeerCapabilities:
    """What a peer's Vendor IDs tell us."""

    __slots__ = ("natt", "dpd", "fragmentation", "xauth", "cisco_unity", "windows", "windows_version",
                 "strongswan", "libreswan", "unknown")

    def __init__(self):
        self.natt = None            # best NAT-T flavour offered: 'rfc3947', 'natt-draft-03', ... or None
        self.dpd = False            # RFC 3706 dead peer detection
        self.fragmentation = False  # accepts type-132 IKE fragments
        self.xauth = False
        self.cisco_unity = False
        self.windows = False        # "MS NT5 ISAKMPOAKLEY"
        self.windows_version = None  # the 4-octet version after it, when present
        self.strongswan = False
        self.libreswan = False
        self.unknown = 0            # count of VIDs not recognised

    def natt_draft(self):
        """True when the peer speaks only a draft NAT-T: use payload types 130/131 and modes 61443/61444."""
        return self.natt is not None and self.natt != "rfc3947"

    def natd_type(self):
        return C.PT_NAT_D_DRAFT if self.natt_draft() else C.PT_NAT_D

    def natoa_type(self):
        return C.PT_NAT_OA_DRAFT if self.natt_draft() else C.PT_NAT_OA

    def __repr__(self):
        on = [n for n in ("dpd", "fragmentation", "xauth", "cisco_unity", "windows", "strongswan", "libreswan")
              if getattr(self, n)]
        return "PeerCapabilities(natt=%s, %s, unknown=%d)" % (self.natt, ",".join(on), self.unknown)


def capabilities(vids):
    """Iterable of Vendor ID bytes (or VendorIdPayload) -> PeerCapabilities."""
    caps = PeerCapabilities()
    best = len(_NATT_ORDER)
    for v in vids:
        data = bytes(getattr(v, "data", v))
        name = recognize(data)
        if name is None:
            caps.unknown += 1
        elif name in _NATT_ORDER:
            rank = _NATT_ORDER.index(name)
            if rank < best:
                best = rank
                caps.natt = name
        elif name == "dpd":
            caps.dpd = True
        elif name == "fragmentation":
            # A 20-octet form must carry the main/aggressive mode capability bit (strongSwan is_known_vid).
            caps.fragmentation = len(data) == 16 or bool(int.from_bytes(data[16:20], "big") & FRAGMENTATION_CAPS)
        elif name == "ms-nt5":
            caps.windows = True
            if len(data) == 20:
                caps.windows_version = int.from_bytes(data[16:20], "big")
        elif name == "xauth":
            caps.xauth = True
        elif name == "cisco-unity":
            caps.cisco_unity = True
        elif name == "strongswan":
            caps.strongswan = True
        elif name == "libreswan":
            caps.libreswan = True
    return caps


def responder_vids(caps, dpd=True, fragmentation=True):
    """The VIDs a responder sends back: the NAT-T flavour the peer offered, DPD, fragmentation if asked."""
    out = []
    if caps.natt is not None:
        out.append({"rfc3947": NATT_RFC3947, "natt-draft-03": NATT_DRAFT_03, "natt-draft-02": NATT_DRAFT_02,
                    "natt-draft-02n": NATT_DRAFT_02N}[caps.natt])
    if dpd:
        out.append(DPD)
    if fragmentation and caps.fragmentation:
        out.append(FRAGMENTATION)
    return out


def initiator_vids(dpd=True, fragmentation=True):
    """The VIDs we send as initiator: all NAT-T flavours (RFC first), DPD, fragmentation."""
    out = [NATT_RFC3947, NATT_DRAFT_03, NATT_DRAFT_02N, NATT_DRAFT_02]
    if dpd:
        out.append(DPD)
    if fragmentation:
        out.append(FRAGMENTATION + FRAGMENTATION_CAPS.to_bytes(4, "big"))
    return out
