"""Proposal model: strongSwan-style proposal strings, the default sets, SA payload conversion, responder choice.

Theory of operation
-------------------
A `ProposalSet` is an ordered list of transforms of one kind:

* `ike` (phase 1, RFC 2409 5 and appendix A): `IkeTransform(encr, key_bits, hash, group)`, e.g.
  `aes256-sha1-modp2048`; the authentication method (PSK, RSA signatures) is chosen by configuration and
  passed separately.
* `esp` (phase 2, RFC 2407 4.4.4/4.5, RFC 4106 for GCM): `EspTransform(encr, key_bits, integ, group)`, e.g.
  `aes256-sha1` (no PFS), `aes256-sha1-modp2048` (PFS with MODP2048), `aes256gcm16` (no integrity algorithm).

A proposal string is comma-separated proposals; each proposal is dash-separated tokens; several tokens of one
category expand to every combination in the order written (strongSwan does the same), so
`aes256-aes128-sha1-modp2048` is two transforms.

As responder (RFC 2409 5: the responder picks one of the initiator's transforms and returns it unchanged),
`match_ike` and `match_esp` walk the *peer's* proposals in the peer's order and take the first we accept; the
one exception (clients.md "What this means for a server") is ESP, where HMAC-SHA1 or AES-GCM is preferred over
HMAC-SHA2-256 when the peer offers both, because Android 6/7 and Apple truncate SHA2-256 differently. The chosen
Transform payload is echoed exactly as offered (attributes, life duration, transform number). When nothing
matches, `NoProposalChosen` says in plain words what the peer offered and what to change.
"""

from sluice.ike import constants as C
from sluice.ike.payloads import SaPayload, ProposalPayload, TransformPayload, attr_int, life_attr


class ProposalError(ValueError):
    """A proposal string that cannot be parsed; the message names the string, the token and what is allowed."""


class NoProposalChosen(ValueError):
    """Nothing the peer offered is acceptable; str() is the plain-words explanation."""

    def __init__(self, explanation, offered=(), hint=""):
        super().__init__(explanation)
        self.offered = list(offered)    # the peer's transforms in words, in its order
        self.hint = hint                # what to change


# --- tokens ----------------------------------------------------------------------------------------------------

# token -> (phase 1 encryption id, ESP transform id, key bits, is_aead)
_ENCR = {
    "aes128": (C.ENCR_AES_CBC, C.ESP_AES_CBC, 128, False),
    "aes192": (C.ENCR_AES_CBC, C.ESP_AES_CBC, 192, False),
    "aes256": (C.ENCR_AES_CBC, C.ESP_AES_CBC, 256, False),
    "aes": (C.ENCR_AES_CBC, C.ESP_AES_CBC, 128, False),
    "3des": (C.ENCR_3DES, C.ESP_3DES, 0, False),
    "aes128gcm16": (None, C.ESP_AES_GCM_16, 128, True),
    "aes192gcm16": (None, C.ESP_AES_GCM_16, 192, True),
    "aes256gcm16": (None, C.ESP_AES_GCM_16, 256, True),
}
_ENCR_ORDER = ("aes128", "aes192", "aes256", "3des", "aes128gcm16", "aes192gcm16", "aes256gcm16")
# token -> (phase 1 hash id, ESP authentication algorithm id)
_INTEG = {
    "md5": (C.HASH_MD5, C.AALG_HMAC_MD5),
    "sha1": (C.HASH_SHA1, C.AALG_HMAC_SHA1),
    "sha": (C.HASH_SHA1, C.AALG_HMAC_SHA1),
    "sha256": (C.HASH_SHA2_256, C.AALG_HMAC_SHA2_256),
    "sha2_256": (C.HASH_SHA2_256, C.AALG_HMAC_SHA2_256),
    "sha384": (C.HASH_SHA2_384, C.AALG_HMAC_SHA2_384),
    "sha2_384": (C.HASH_SHA2_384, C.AALG_HMAC_SHA2_384),
    "sha512": (C.HASH_SHA2_512, C.AALG_HMAC_SHA2_512),
    "sha2_512": (C.HASH_SHA2_512, C.AALG_HMAC_SHA2_512),
}
_INTEG_ORDER = ("md5", "sha1", "sha256", "sha384", "sha512")
_GROUP = {"modp1024": C.GROUP_MODP1024, "modp1536": C.GROUP_MODP1536, "modp2048": C.GROUP_MODP2048,
          "modp3072": C.GROUP_MODP3072, "modp4096": C.GROUP_MODP4096, "ecp256": C.GROUP_ECP256,
          "ecp384": C.GROUP_ECP384}
_GROUP_ORDER = ("modp1024", "modp1536", "modp2048", "modp3072", "modp4096", "ecp256", "ecp384")

_ESP_INTEG_NAME = {C.AALG_HMAC_MD5: "md5", C.AALG_HMAC_SHA1: "sha1", C.AALG_HMAC_SHA2_256: "sha256",
                   C.AALG_HMAC_SHA2_384: "sha384", C.AALG_HMAC_SHA2_512: "sha512"}

LEGACY_GROUPS = (C.GROUP_MODP768, C.GROUP_MODP1024, C.GROUP_MODP1536)
_LEGACY_ENCR_P1 = (C.ENCR_DES, C.ENCR_3DES)
_LEGACY_ENCR_ESP = (C.ESP_DES, C.ESP_3DES)


def _encr_name_p1(encr, bits):
    if encr == C.ENCR_AES_CBC:
        return "aes%d" % (bits or 128)
    return C.P1_ENCR_NAMES.get(encr, "encr%d" % encr)


def _encr_name_esp(encr, bits):
    if encr == C.ESP_AES_CBC:
        return "aes%d" % (bits or 128)
    if encr == C.ESP_AES_GCM_16:
        return "aes%dgcm16" % (bits or 128)
    return C.ESP_TRANSFORM_NAMES.get(encr, "esp%d" % encr)


def _group_name(g):
    return C.GROUP_NAMES.get(g, "group%d" % g)


class IkeTransform:
    """One phase 1 algorithm combination (RFC 2409 appendix A values)."""

    __slots__ = ("encr", "key_bits", "hash", "group")

    def __init__(self, encr, key_bits, hash, group):
        self.encr = encr            # C.ENCR_*
        self.key_bits = key_bits    # AES key length, 0 for fixed-length ciphers
        self.hash = hash            # C.HASH_*
        self.group = group          # C.GROUP_*

    def key(self):
        return (self.encr, self.key_bits, self.hash, self.group)

    def name(self):
        return "%s-%s-%s" % (_encr_name_p1(self.encr, self.key_bits),
                             C.P1_HASH_NAMES.get(self.hash, "hash%d" % self.hash), _group_name(self.group))

    def is_legacy(self):
        return self.encr in _LEGACY_ENCR_P1 or self.hash == C.HASH_MD5 or self.group in LEGACY_GROUPS

    def attributes(self, auth=C.AUTH_PSK, lifetime=28800):
        """Phase 1 transform attributes in the usual order (RFC 2409 appendix A)."""
        attrs = [(C.P1_ENCRYPTION, self.encr)]
        if self.key_bits and self.encr == C.ENCR_AES_CBC:
            attrs.append((C.P1_KEY_LENGTH, self.key_bits))
        attrs += [(C.P1_HASH, self.hash), (C.P1_AUTH, auth), (C.P1_GROUP_DESC, self.group)]
        if lifetime:
            attrs += [(C.P1_LIFE_TYPE, C.LIFE_SECONDS), (C.P1_LIFE_DURATION, life_attr(lifetime))]
        return attrs

    def __eq__(self, other):
        return isinstance(other, IkeTransform) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return "IkeTransform(%s)" % self.name()


class EspTransform:
    """One ESP algorithm combination (RFC 2407 4.4.4 transform id, 4.5 attributes)."""

    __slots__ = ("encr", "key_bits", "integ", "group")

    def __init__(self, encr, key_bits, integ, group=0):
        self.encr = encr            # C.ESP_* transform id
        self.key_bits = key_bits    # AES key length, 0 for 3DES
        self.integ = integ          # C.AALG_*, 0 for AEAD (GCM)
        self.group = group          # PFS group, 0 = no PFS

    def key(self):
        return (self.encr, self.key_bits, self.integ, self.group)

    def is_aead(self):
        return self.encr in (C.ESP_AES_GCM_8, C.ESP_AES_GCM_12, C.ESP_AES_GCM_16)

    def name(self):
        parts = [_encr_name_esp(self.encr, self.key_bits)]
        if self.integ:
            parts.append(_ESP_INTEG_NAME.get(self.integ, "auth%d" % self.integ))
        if self.group:
            parts.append(_group_name(self.group))
        return "-".join(parts)

    def is_legacy(self):
        return self.encr in _LEGACY_ENCR_ESP or self.integ == C.AALG_HMAC_MD5 or self.group in LEGACY_GROUPS

    def attributes(self, mode=C.ENCAP_TRANSPORT, lifetime=3600, life_kbytes=0):
        attrs = []
        if lifetime:
            attrs += [(C.P2_LIFE_TYPE, C.LIFE_SECONDS), (C.P2_LIFE_DURATION, life_attr(lifetime))]
        if life_kbytes:
            attrs += [(C.P2_LIFE_TYPE, C.LIFE_KILOBYTES), (C.P2_LIFE_DURATION, life_attr(life_kbytes))]
        if self.group:
            attrs.append((C.P2_GROUP_DESC, self.group))
        attrs.append((C.P2_ENCAP_MODE, mode))
        if self.integ:
            attrs.append((C.P2_AUTH_ALG, self.integ))
        if self.key_bits:
            attrs.append((C.P2_KEY_LENGTH, self.key_bits))
        return attrs

    def __eq__(self, other):
        return isinstance(other, EspTransform) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return "EspTransform(%s)" % self.name()


def _allowed(kind):
    encr = [e for e in _ENCR_ORDER if kind == "esp" or not _ENCR[e][3]]
    s = "encryption %s; integrity %s; groups %s" % (", ".join(encr), ", ".join(_INTEG_ORDER),
                                                     ", ".join(_GROUP_ORDER))
    if kind == "esp":
        s += " (a group in ESP means PFS; none means no PFS)"
    return s


def _parse_one(prop, kind, whole):
    encrs, integs, groups = [], [], []
    for tok in prop.split("-"):
        t = tok.strip().lower()
        if t in _ENCR:
            if kind == "ike" and _ENCR[t][3]:
                raise ProposalError("proposal %r in %r: %r is an ESP-only (AEAD) cipher, IKEv1 phase 1 has no GCM; "
                                    "use aes256 or aes128 there" % (prop, whole, tok))
            encrs.append(t)
        elif t in _INTEG:
            integs.append(t)
        elif t in _GROUP:
            groups.append(t)
        else:
            raise ProposalError("proposal %r in %r: unknown token %r; allowed %s"
                                % (prop, whole, tok, _allowed(kind)))
    if not encrs:
        raise ProposalError("proposal %r in %r: no encryption algorithm; allowed %s" % (prop, whole, _allowed(kind)))
    aead = [e for e in encrs if _ENCR[e][3]]
    if aead and len(aead) != len(encrs):
        raise ProposalError("proposal %r in %r: do not mix AEAD (%s) and CBC ciphers in one proposal"
                            % (prop, whole, aead[0]))
    if aead and integs:
        raise ProposalError("proposal %r in %r: %s carries its own integrity; drop %r"
                            % (prop, whole, aead[0], integs[0]))
    if not aead and not integs:
        raise ProposalError("proposal %r in %r: no integrity algorithm; allowed %s" % (prop, whole, _allowed(kind)))
    if kind == "ike" and not groups:
        raise ProposalError("proposal %r in %r: no DH group; phase 1 needs one of %s"
                            % (prop, whole, ", ".join(_GROUP_ORDER)))
    out = []
    for e in encrs:
        p1, esp, bits, is_aead = _ENCR[e]
        for i in (integs or [None]):
            for g in (groups or [None]):
                grp = _GROUP[g] if g else 0
                if kind == "ike":
                    out.append(IkeTransform(p1, bits if p1 == C.ENCR_AES_CBC else 0, _INTEG[i][0], grp))
                else:
                    out.append(EspTransform(esp, bits, _INTEG[i][1] if i else 0, grp))
    return out


class ProposalSet:
    """An ordered, duplicate-free list of IkeTransform or EspTransform (`kind` 'ike' or 'esp')."""

    __slots__ = ("kind", "transforms", "_keys")

    def __init__(self, kind, transforms=()):
        if kind not in ("ike", "esp"):
            raise ValueError("kind is 'ike' or 'esp'")
        self.kind = kind
        self.transforms = []
        self._keys = set()
        self.extend(transforms)

    @classmethod
    def parse(cls, text, kind):
        """'aes256-sha1-modp2048,aes128-sha256-ecp256' -> ProposalSet; raises ProposalError."""
        if not isinstance(text, str) or not text.strip():
            raise ProposalError("empty %s proposal string; allowed %s" % (kind, _allowed(kind)))
        ps = cls(kind)
        for prop in text.split(","):
            if not prop.strip():
                raise ProposalError("empty proposal in %r (two commas in a row?)" % text)
            ps.extend(_parse_one(prop.strip(), kind, text))
        return ps

    def extend(self, transforms):
        for t in transforms:
            k = t.key()
            if k not in self._keys:
                self._keys.add(k)
                self.transforms.append(t)
        return self

    def __contains__(self, t):
        return t.key() in self._keys

    def __len__(self):
        return len(self.transforms)

    def __iter__(self):
        return iter(self.transforms)

    def names(self):
        return [t.name() for t in self.transforms]

    def has_legacy(self):
        for t in self.transforms:
            if t.is_legacy():
                return True
        return False

    def __repr__(self):
        return "ProposalSet(%s, %s)" % (self.kind, ",".join(self.names()))


def parse_proposals(text, kind):
    return ProposalSet.parse(text, kind)


# --- default sets (clients.md "What this means for a server") ---------------------------------------------------

_MODERN_GROUPS = "modp2048-modp3072-modp4096-ecp256-ecp384"
DEFAULT_IKE = "aes256-aes128-sha256-sha1-sha384-sha512-" + _MODERN_GROUPS
LEGACY_IKE = ("aes256-aes128-3des-sha256-sha1-sha384-sha512-md5-" + _MODERN_GROUPS + "-modp1536-modp1024")
DEFAULT_ESP = ("aes256gcm16-aes128gcm16,aes256-aes128-sha1-sha256-sha384-sha512,"
               "aes256gcm16-aes128gcm16-" + _MODERN_GROUPS + ",aes256-aes128-sha1-sha256-sha384-sha512-"
               + _MODERN_GROUPS)
LEGACY_ESP = ("aes256-aes128-3des-sha1-md5-sha256,aes256-aes128-3des-sha1-md5-sha256-" + _MODERN_GROUPS
              + "-modp1536-modp1024")


def _set(base, legacy_extra, kind, legacy):
    ps = ProposalSet.parse(base, kind)
    if legacy:
        ps.extend(ProposalSet.parse(legacy_extra, kind))
    return ps


def default_ike(legacy=False):
    return _set(DEFAULT_IKE, LEGACY_IKE, "ike", legacy)


def default_esp(legacy=False):
    return _set(DEFAULT_ESP, LEGACY_ESP, "esp", legacy)


# What an initiator offers when the config names no proposals. A responder accepts the wide modern set above;
# an initiator offers a short list in preference order, the way Windows and Apple do: the full cross product
# (about 40 phase-1 transforms) makes the first Main Mode message 1.6 kB, which IP fragments, and NATs that
# drop fragments would block it.
INITIATOR_IKE = ("aes256-sha256-modp2048,aes256-sha256-ecp256,aes128-sha256-modp2048,aes256-sha1-modp2048,"
                 "aes128-sha1-modp2048,aes256-sha384-ecp384,aes256-sha256-modp3072,aes256-sha512-modp4096")
INITIATOR_IKE_LEGACY = "aes256-sha1-modp1024,aes128-sha1-modp1024,3des-sha1-modp1024,3des-md5-modp1024"
INITIATOR_ESP = "aes256gcm16,aes128gcm16,aes256-sha1,aes128-sha1,aes256-sha256,aes128-sha256"
INITIATOR_ESP_LEGACY = "3des-sha1,aes256-md5,aes128-md5,3des-md5"


def initiator_ike(legacy=False):
    return _set(INITIATOR_IKE, INITIATOR_IKE_LEGACY, "ike", legacy)


def initiator_esp(legacy=False):
    return _set(INITIATOR_ESP, INITIATOR_ESP_LEGACY, "esp", legacy)


def esp_algorithms(t):
    """The data-plane transform name of an ESP proposal without its PFS group ('aes256gcm16', 'aes128-sha1'):
    what a kernel or crypto backend has to implement for it."""
    return EspTransform(t.encr, t.key_bits, t.integ).name()


def only_esp(pset, supported):
    """pset without the transforms whose algorithms are not in `supported` (a set of esp_algorithms names)."""
    return ProposalSet("esp", [t for t in pset if esp_algorithms(t) in supported])


# --- to the wire ------------------------------------------------------------------------------------------------

def ike_sa_payload(pset, auth=C.AUTH_PSK, lifetime=28800):
    """Phase 1 SA (RFC 2409 5): one ISAKMP proposal, one KEY_IKE transform per combination, in our order."""
    if pset.kind != "ike":
        raise ValueError("ike_sa_payload needs an 'ike' ProposalSet")
    if not 0 < len(pset) <= 255:
        raise ValueError("a phase 1 offer holds 1 to 255 transforms, not %d" % len(pset))
    tps = [TransformPayload(k + 1, C.KEY_IKE, pset.transforms[k].attributes(auth, lifetime))
           for k in range(len(pset))]
    return SaPayload([ProposalPayload(1, C.PROTO_ISAKMP, b"", tps)])


def esp_sa_payload(pset, spi, mode=C.ENCAP_TRANSPORT, lifetime=3600, life_kbytes=0):
    """Quick Mode SA (RFC 2409 5.5, RFC 2407 4.5): one ESP proposal with our `spi`, one transform per combination.

    All transforms must agree on PFS (one KE payload goes with the offer).
    """
    if pset.kind != "esp":
        raise ValueError("esp_sa_payload needs an 'esp' ProposalSet")
    if len(spi) != 4:
        raise ValueError("an ESP SPI is 4 octets")
    groups = set(t.group for t in pset)
    if len(groups) > 1:
        raise ValueError("ESP transforms of one offer disagree on PFS: %s" % ", ".join(pset.names()))
    if not 0 < len(pset) <= 255:
        raise ValueError("an ESP offer holds 1 to 255 transforms, not %d" % len(pset))
    tps = [TransformPayload(k + 1, pset.transforms[k].encr, pset.transforms[k].attributes(mode, lifetime, life_kbytes))
           for k in range(len(pset))]
    return SaPayload([ProposalPayload(1, C.PROTO_IPSEC_ESP, spi, tps)])


# --- from the wire ----------------------------------------------------------------------------------------------

class _Offer:
    """One offered transform decoded: algorithms (None if not understood), auth, lives, mode, problem."""

    __slots__ = ("proposal", "transform", "algs", "auth", "life_seconds", "life_kbytes", "mode", "problem", "text")

    def __init__(self, proposal, transform):
        self.proposal = proposal
        self.transform = transform
        self.algs = None
        self.auth = None
        self.life_seconds = None
        self.life_kbytes = None
        self.mode = None
        self.problem = None
        self.text = ""


def _lives(offer, attrs, type_attr, dur_attr):
    """RFC 2407 4.5 / RFC 2409 appendix A: a life type attribute is followed by its duration."""
    pending = None
    for t, v in attrs:
        if t == type_attr:
            pending = attr_int(v)
        elif t == dur_attr:
            if pending == C.LIFE_SECONDS:
                offer.life_seconds = attr_int(v)
            elif pending == C.LIFE_KILOBYTES:
                offer.life_kbytes = attr_int(v)
            else:
                offer.problem = "life duration without a known life type"
            pending = None


def decode_ike_transform(proposal, tp):
    """A phase 1 Transform payload -> _Offer (algs is an IkeTransform when every attribute is understood)."""
    o = _Offer(proposal, tp)
    seen = {}
    for t, v in tp.attributes:
        if t in (C.P1_LIFE_TYPE, C.P1_LIFE_DURATION):
            continue
        if t in seen:
            o.problem = "attribute %s repeated" % C.P1_ATTR_NAMES.get(t, t)
        elif t not in (C.P1_ENCRYPTION, C.P1_HASH, C.P1_AUTH, C.P1_GROUP_DESC, C.P1_KEY_LENGTH):
            o.problem = "unsupported attribute %s" % C.P1_ATTR_NAMES.get(t, "type %d" % t)
        seen[t] = attr_int(v)
    _lives(o, tp.attributes, C.P1_LIFE_TYPE, C.P1_LIFE_DURATION)
    encr = seen.get(C.P1_ENCRYPTION)
    h = seen.get(C.P1_HASH)
    g = seen.get(C.P1_GROUP_DESC)
    o.auth = seen.get(C.P1_AUTH)
    bits = seen.get(C.P1_KEY_LENGTH, 0)
    if encr == C.ENCR_AES_CBC and not bits:
        bits = 128  # RFC 3602 / strongSwan: AES without a key length attribute means AES-128
    if tp.transform_id != C.KEY_IKE:
        o.problem = "transform id %d is not KEY_IKE" % tp.transform_id
    if encr is None or h is None or g is None or o.auth is None:
        o.problem = o.problem or "incomplete transform (needs encryption, hash, authentication and group)"
        o.text = "incomplete transform %d" % tp.number
        return o
    o.algs = IkeTransform(encr, bits if encr == C.ENCR_AES_CBC else 0, h, g)
    o.text = o.algs.name()
    return o


def decode_esp_transform(proposal, tp):
    """An ESP Transform payload -> _Offer (algs is an EspTransform when understood; mode from attribute 4)."""
    o = _Offer(proposal, tp)
    seen = {}
    for t, v in tp.attributes:
        if t in (C.P2_LIFE_TYPE, C.P2_LIFE_DURATION):
            continue
        if t in seen:
            o.problem = "attribute %s repeated" % C.P2_ATTR_NAMES.get(t, t)
        elif t not in (C.P2_GROUP_DESC, C.P2_ENCAP_MODE, C.P2_AUTH_ALG, C.P2_KEY_LENGTH):
            o.problem = "unsupported attribute %s" % C.P2_ATTR_NAMES.get(t, "type %d" % t)
        seen[t] = attr_int(v)
    _lives(o, tp.attributes, C.P2_LIFE_TYPE, C.P2_LIFE_DURATION)
    encr = tp.transform_id
    integ = seen.get(C.P2_AUTH_ALG, 0)
    bits = seen.get(C.P2_KEY_LENGTH, 0)
    o.mode = seen.get(C.P2_ENCAP_MODE)
    if encr in (C.ESP_AES_CBC, C.ESP_AES_GCM_16) and not bits:
        bits = 128
    if encr in (C.ESP_AES_GCM_8, C.ESP_AES_GCM_12, C.ESP_AES_GCM_16):
        if integ:
            o.problem = o.problem or "AES-GCM with an authentication algorithm"
    elif not integ:
        o.problem = o.problem or "ESP without an authentication algorithm"
    o.algs = EspTransform(encr, bits if encr in (C.ESP_AES_CBC, C.ESP_AES_GCM_16) else 0, integ,
                          seen.get(C.P2_GROUP_DESC, 0))
    o.text = o.algs.name()
    return o


# --- responder choice -------------------------------------------------------------------------------------------

def _copy(tp):
    # The echo must not alias the peer's payload: callers may keep or edit either one.
    return TransformPayload(tp.number, tp.transform_id, list(tp.attributes))


class IkeChoice:
    """The phase 1 transform a responder accepted."""

    __slots__ = ("sa", "algs", "auth", "life_seconds", "life_kbytes")

    def __init__(self, sa, algs, auth, life_seconds, life_kbytes):
        self.sa = sa                        # SaPayload to send back: the chosen transform echoed as offered
        self.algs = algs                    # IkeTransform
        self.auth = auth                    # C.AUTH_* the peer asked for
        self.life_seconds = life_seconds    # as offered, or None
        self.life_kbytes = life_kbytes      # as offered, or None

    def __repr__(self):
        return "IkeChoice(%s, auth=%s, life=%s)" % (self.algs.name(), C.AUTH_NAMES.get(self.auth, self.auth),
                                                    self.life_seconds)


class EspChoice:
    """The Quick Mode proposal/transform a responder accepted."""

    __slots__ = ("proposal", "transform", "doi", "situation", "algs", "mode", "peer_spi", "life_seconds",
                 "life_kbytes")

    def __init__(self, sa, offer):
        self.doi = sa.doi
        self.situation = sa.situation
        self.proposal = offer.proposal      # the peer's ProposalPayload
        self.transform = offer.transform    # the peer's TransformPayload, echoed unchanged
        self.algs = offer.algs              # EspTransform (group != 0 means PFS: a KE payload is needed)
        self.mode = offer.mode              # C.ENCAP_*
        self.peer_spi = offer.proposal.spi  # the peer's inbound SPI (our outbound)
        self.life_seconds = offer.life_seconds
        self.life_kbytes = offer.life_kbytes

    def reply_sa(self, our_spi):
        """RFC 2409 5.5: the responder's SA carries the chosen transform and the responder's own SPI."""
        p = ProposalPayload(self.proposal.number, self.proposal.protocol, our_spi, [_copy(self.transform)])
        return SaPayload([p], self.doi, self.situation)

    def __repr__(self):
        return "EspChoice(%s, mode=%s, life=%s)" % (self.algs.name(), C.ENCAP_NAMES.get(self.mode, self.mode),
                                                    self.life_seconds)


def _group_words(groups):
    names = [_group_name(g).upper() for g in groups]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _integ_of(algs):
    # Phase 1 hash MD5 and ESP HMAC-MD5 are both 1 (RFC 2409 appendix A, RFC 2407 4.5).
    return algs.hash if isinstance(algs, IkeTransform) else algs.integ


def _legacy_hint(offers, legacy_set, ours, who):
    """If the legacy set would accept an offer ours refuses, say which legacy algorithm the peer insists on."""
    usable = [o for o in offers if o.algs is not None and o.problem is None]
    if not usable or ours.has_legacy():
        return None
    # Only when every usable offer needs a legacy algorithm and the legacy set would take one of them;
    # otherwise the configured set, not `legacy`, is what to change.
    if [o for o in usable if not o.algs.is_legacy()] or not [o for o in usable if o.algs in legacy_set]:
        return None
    groups = []
    for o in usable:
        if o.algs.group and o.algs.group not in groups:
            groups.append(o.algs.group)
    legacy_encr = _LEGACY_ENCR_P1 if ours.kind == "ike" else _LEGACY_ENCR_ESP
    if groups and not [g for g in groups if g not in LEGACY_GROUPS]:
        what = "only " + _group_words(groups)
    elif not [o for o in usable if o.algs.encr not in legacy_encr]:
        what = "only 3DES"
    elif not [o for o in usable if _integ_of(o.algs) != C.HASH_MD5]:
        what = "only MD5"
    else:
        what = "only combinations that need a legacy algorithm (3DES, MD5, MODP1024/1536)"
    return "the %s offered %s; enable `legacy` or update the %s" % (who, what, who)


def _explain(kind, offers, ours, legacy_set, who, extra_hint=None):
    offered = [o.text for o in offers]
    listed = ", ".join(offered) if offered else "nothing usable"
    hint = extra_hint or _legacy_hint(offers, legacy_set, ours, who)
    if hint is None:
        problems = [o.problem for o in offers if o.problem]
        if offers and len(problems) == len(offers):
            hint = "every offer was unusable (%s)" % problems[0]
        else:
            mine = ours.names()
            shown = ", ".join(mine[:6]) + (", ..." if len(mine) > 6 else "")
            hint = ("none of them is in the configured %s proposals (%s); add one of the offered combinations "
                    "to the `%s` option or change the %s" % (kind, shown, kind, who))
    msg = "no acceptable %s proposal: the %s offered %s; %s" % (kind, who, listed, hint)
    return NoProposalChosen(msg, offered, hint)


def match_ike(offered, ours, auth_methods=(C.AUTH_PSK,), who="client"):
    """RFC 2409 5: pick the first of the peer's phase 1 transforms that `ours` accepts; raise NoProposalChosen."""
    if offered.doi != C.DOI_IPSEC:
        raise NoProposalChosen("no acceptable ike proposal: the %s used DOI %d, only IPsec (1) is supported"
                               % (who, offered.doi), (), "DOI")
    offers = []
    auth_miss = []
    for prop in offered.proposals:
        if prop.protocol != C.PROTO_ISAKMP:
            continue
        for tp in prop.transforms:
            o = decode_ike_transform(prop, tp)
            offers.append(o)
            if o.problem is not None or o.algs is None or o.algs not in ours:
                continue
            if o.auth not in auth_methods:
                auth_miss.append(o.auth)
                continue
            sa = SaPayload([ProposalPayload(prop.number, prop.protocol, prop.spi, [_copy(tp)])], offered.doi,
                           offered.situation)
            return IkeChoice(sa, o.algs, o.auth, o.life_seconds, o.life_kbytes)
    hint = None
    if auth_miss:
        hint = ("the %s wants %s authentication but this side is set for %s"
                % (who, C.AUTH_NAMES.get(auth_miss[0], auth_miss[0]),
                   " or ".join(C.AUTH_NAMES.get(a, str(a)) for a in auth_methods)))
    raise _explain("ike", offers, ours, _legacy_set('ike'), who, hint)


def _preferred(candidates):
    """clients.md: as ESP responder prefer HMAC-SHA1 or GCM over HMAC-SHA2-256 (truncation differs by client)."""
    first = candidates[0]
    if first.algs.integ != C.AALG_HMAC_SHA2_256:
        return first
    for o in candidates:
        if o.algs.integ == C.AALG_HMAC_SHA1 or o.algs.is_aead():
            return o
    return first


def match_esp(offered, ours, modes=None, who="client"):
    """Quick Mode responder choice among the peer's ESP proposals (RFC 2409 5.5, RFC 2408 4.2).

    `modes`: accepted encapsulation modes (e.g. C.ENCAP_TRANSPORT_MODES for L2TP/IPsec), None for any.
    Proposals sharing a number form one AND-ed bundle (ESP+AH, ESP+IPCOMP); only a lone ESP is accepted.
    """
    if offered.doi != C.DOI_IPSEC:
        raise NoProposalChosen("no acceptable esp proposal: the %s used DOI %d, only IPsec (1) is supported"
                               % (who, offered.doi), (), "DOI")
    counts = {}
    for prop in offered.proposals:
        counts[prop.number] = counts.get(prop.number, 0) + 1
    offers = []
    candidates = []
    mode_miss = []
    for prop in offered.proposals:
        if prop.protocol != C.PROTO_IPSEC_ESP:
            continue
        for tp in prop.transforms:
            o = decode_esp_transform(prop, tp)
            if counts[prop.number] != 1:
                o.problem = "bundled with AH or IPComp"
            if o.problem is None and len(prop.spi) != 4:
                o.problem = "ESP SPI of %d octets" % len(prop.spi)
            offers.append(o)
            if o.problem is not None or o.algs not in ours:
                continue
            if modes is not None and o.mode not in modes:
                mode_miss.append(o.mode)
                continue
            candidates.append(o)
    if candidates:
        return EspChoice(offered, _preferred(candidates))
    hint = None
    if mode_miss:
        hint = ("the %s asked for %s mode but only %s is accepted here (L2TP/IPsec uses transport mode)"
                % (who, C.ENCAP_NAMES.get(mode_miss[0], "unspecified"),
                   ", ".join(C.ENCAP_NAMES.get(m, str(m)) for m in modes)))
    raise _explain("esp", offers, ours, _legacy_set('esp'), who, hint)


_cache = {}


def _legacy_set(kind):
    """The default set with `legacy` on, built once: the yardstick for the "enable `legacy`" hint."""
    if kind not in _cache:
        _cache[kind] = default_ike(True) if kind == "ike" else default_esp(True)
    return _cache[kind]


# --- initiator side: was the responder's choice one of ours? ---------------------------------------------------

def _one_transform(reply, kind):
    if len(reply.proposals) != 1 or len(reply.proposals[0].transforms) != 1:
        raise NoProposalChosen("the responder's %s SA must hold exactly one proposal with one transform "
                               "(RFC 2409 5)" % kind, (), "responder reply")
    return reply.proposals[0], reply.proposals[0].transforms[0]


def _offered_same(offered, prop, tp):
    for p in offered.proposals:
        if p.protocol != prop.protocol:
            continue
        for t in p.transforms:
            if t.transform_id == tp.transform_id and t.attributes == tp.attributes:
                return p
    return None


def check_ike_reply(reply, offered):
    """Initiator: the responder's phase 1 SA must echo one of the transforms we offered; -> IkeChoice."""
    prop, tp = _one_transform(reply, "ike")
    if prop.protocol != C.PROTO_ISAKMP or _offered_same(offered, prop, tp) is None:
        raise NoProposalChosen("the responder chose a phase 1 transform we did not offer", (), "responder reply")
    o = decode_ike_transform(prop, tp)
    return IkeChoice(reply, o.algs, o.auth, o.life_seconds, o.life_kbytes)


def check_esp_reply(reply, offered):
    """Initiator: the responder's Quick Mode SA must echo one of our ESP transforms; -> EspChoice.

    `peer_spi` of the result is the responder's SPI (our outbound SPI).
    """
    prop, tp = _one_transform(reply, "esp")
    if prop.protocol != C.PROTO_IPSEC_ESP or _offered_same(offered, prop, tp) is None:
        raise NoProposalChosen("the responder chose an ESP transform we did not offer", (), "responder reply")
    if len(prop.spi) != 4:
        raise NoProposalChosen("the responder's ESP SPI has %d octets, not 4" % len(prop.spi), (), "responder reply")
    return EspChoice(reply, decode_esp_transform(prop, tp))
