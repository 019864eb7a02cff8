"""X.509 authentication for Main Mode (RFC 2409 5.1 signatures; RFC 4945 profile points), through the crypto HAL.

Theory of operation
-------------------
With RSA signatures, each side sends its ID (ID_DER_ASN1_DN: the DER subject of its certificate, RFC 2407
4.6.2.9), its certificate chain (CERT, encoding 4 = X.509 signature, leaf first) and SIG = the raw PKCS#1
v1.5 signature of HASH_I / HASH_R (no DigestInfo, as racoon, Windows and strongSwan do). The receiver:

1. builds the chain from the peer's leaf through the intermediates it sent to one of the configured CAs,
   with validity at the wall-clock time the engine supplies (`IkeConfig.utc_now`; this module never reads a
   clock) (HAL `verify_chain`);
2. verifies SIG over the HASH it computed itself (HAL `rsa_verify`);
3. checks that the ID belongs to the certificate: a DN ID must name the subject (compared by value, as
   RFC 5280 7.1 compares names, not by bytes), an address or FQDN ID
   must be one of its subjectAltNames (RFC 4945 3.1);
4. on the client (initiator) only, like Windows' "verify the name and usage attributes of the server's
   certificate": the certificate must carry `server_name` (subjectAltName DNS/IP, or the CN when there is no
   SAN) and an extended key usage of serverAuth (1.3.6.1.5.5.7.3.1) or IKE intermediate (1.3.6.1.5.5.8.2.2).

PEM is split and DER subjects are read with a small DER walker here (no crypto needed for that); certificate
parsing, chain building and RSA come from the backend (`openssl`; the pure backend has no signatures, and then
a certificate configuration is refused when the table is built). Errors are plain words and never carry key
material.
"""

import binascii

from sluice.ike import constants as C
from sluice.ike.payloads import address_text

EKU_OID = "2.5.29.37"
SAN_OID = "2.5.29.17"
CN_OID = "2.5.4.3"
SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
IKE_INTERMEDIATE = "1.3.6.1.5.5.8.2.2"


class CertError(ValueError):
    """The peer's certificate or signature is not acceptable; the message says why."""


def pem_blocks(pem):
    """DER bytes of every CERTIFICATE block in a PEM text, in order."""
    out = []
    text = pem.decode() if isinstance(pem, (bytes, bytearray)) else pem
    inside = None
    for line in text.splitlines():
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            inside = []
        elif line == "-----END CERTIFICATE-----" and inside is not None:
            out.append(binascii.a2b_base64("".join(inside)))
            inside = None
        elif inside is not None and line:
            inside.append(line)
    return out


def _tlv(buf, i):
    """(tag, value start, end) of the DER element at i."""
    if i + 2 > len(buf):
        raise CertError("truncated DER")
    tag, ln = buf[i], buf[i + 1]
    j = i + 2
    if ln & 0x80:
        n = ln & 0x7F
        if n == 0 or n > 4 or j + n > len(buf):
            raise CertError("bad DER length")
        ln = int.from_bytes(bytes(buf[j:j + n]), "big")
        j += n
    if j + ln > len(buf):
        raise CertError("DER element runs past its container")
    return tag, j, j + ln


def subject_der(cert_der):
    """The DER subject Name (the whole SEQUENCE) of a DER certificate (RFC 5280 4.1)."""
    _, s, _ = _tlv(cert_der, 0)            # Certificate
    _, i, end = _tlv(cert_der, s)          # tbsCertificate
    fields = []
    while i < end and len(fields) < 7:
        tag, vs, ve = _tlv(cert_der, i)
        fields.append((tag, i, ve))
        i = ve
    if fields and fields[0][0] == 0xA0:    # [0] version
        fields = fields[1:]
    if len(fields) < 5:
        raise CertError("certificate without a subject")
    _, a, b = fields[4]                    # serial, signature, issuer, validity, subject
    return bytes(cert_der[a:b])


# ASN.1 string types a DirectoryString or an attribute value may use (X.680): their tags and how to decode.
_UTF8, _PRINTABLE, _T61, _IA5, _UNIVERSAL, _BMP = 0x0C, 0x13, 0x14, 0x16, 0x1C, 0x1E


def _text(tag, raw):
    """The Unicode text of a string-typed attribute value, or None for other types."""
    if tag in (_UTF8, _PRINTABLE, _IA5):
        return raw.decode()
    if tag == _T61:
        return "".join(chr(b) for b in raw)             # read as Latin-1, as most implementations do
    if tag in (_BMP, _UNIVERSAL):
        w = 2 if tag == _BMP else 4
        return "".join(chr(int.from_bytes(raw[i:i + w], "big")) for i in range(0, len(raw) - w + 1, w))
    return None


def _rdns(name_der):
    """A DER Name as a list of RDNs, each a sorted list of (OID DER, value) with string values compared as
    RFC 5280 7.1 asks: any string type, case and runs of white space ignored."""
    _, i, end = _tlv(name_der, 0)
    out = []
    while i < end:
        _, j, rdn_end = _tlv(name_der, i)          # SET OF AttributeTypeAndValue
        atvs = []
        while j < rdn_end:
            _, k, atv_end = _tlv(name_der, j)      # SEQUENCE { type, value }
            _, ts, te = _tlv(name_der, k)          # the attribute type's OID
            vtag, vs, ve = _tlv(name_der, te)
            raw = bytes(name_der[vs:ve])
            try:
                text = _text(vtag, raw)
            except (UnicodeError, ValueError):
                text = None
            value = " ".join(text.lower().split()) if text is not None else (vtag, raw)
            atvs.append((bytes(name_der[ts:te]), value))
            j = atv_end
        atvs.sort(key=repr)
        out.append(atvs)
        i = rdn_end
    return out


def same_name(a_der, b_der):
    """Whether two DER distinguished names name the same entity: peers encode the DN they are told as text
    with other string types than the certificate's subject (strongSwan: PrintableString where
    `cryptography` and Windows' CA use UTF8String), so bytes alone would refuse them."""
    if a_der == b_der:
        return True
    try:
        return _rdns(a_der) == _rdns(b_der)
    except CertError:
        return False


def _ext(cert, oid):
    for e in cert.extensions:
        if e.oid.dotted_string == oid:
            return e.value
    return None


def _san_names(cert):
    """subjectAltName DNS names and addresses, as lower-case text."""
    san = _ext(cert, SAN_OID)
    out = []
    if san is not None:
        for g in san:
            out.append(str(g.value).lower())
    return out


def _common_names(cert):
    return [str(a.value).lower() for a in cert.subject if a.oid.dotted_string == CN_OID]


class CertAuth:
    """Our certificate, key and trusted CAs, and the checks on the peer's."""

    def __init__(self, cfg, backend):
        be = backend
        for fn in ("load_certificate", "load_private_key", "rsa_sign", "rsa_verify", "verify_chain"):
            if not hasattr(be, fn):
                raise ValueError("certificate authentication needs a crypto backend with RSA and X.509 "
                                 "(openssl); %s has none" % getattr(be, "NAME", "this backend"))
        self.be = be
        self.chain = pem_blocks(cfg.cert) if cfg.cert else []
        if cfg.cert and not self.chain:
            raise ValueError("the certificate option holds no PEM CERTIFICATE block")
        self.key = be.load_private_key(cfg.key) if cfg.key else None
        self.cas = [be.load_certificate(d) for d in pem_blocks(cfg.ca)] if cfg.ca else []
        self.ca_subjects = [subject_der(d) for d in pem_blocks(cfg.ca)] if cfg.ca else []
        self.server_name = cfg.server_name.lower() if cfg.server_name else None
        self.utc_now = cfg.utc_now

    def __repr__(self):
        return "<CertAuth chain=%d cas=%d>" % (len(self.chain), len(self.cas))

    def can_sign(self):
        return bool(self.chain and self.key is not None and self.cas)

    def subject_der(self):
        return subject_der(self.chain[0])

    def chain_der(self):
        return list(self.chain)

    def ca_request(self):
        """A CERTREQ naming our first CA (RFC 2408 3.10), or empty (any CA)."""
        return self.ca_subjects[0] if self.ca_subjects else b""

    def sign(self, hash_value):
        return self.be.rsa_sign(self.key, hash_value)

    def verify_peer(self, cert_ders, sig, expect, idp, peer_is_server):
        """Raise CertError unless the peer's chain, signature, ID (and, for a server, name and usage) are good."""
        be = self.be
        if not cert_ders:
            raise CertError("the peer sent no certificate (it may expect a pre-shared key)")
        if sig is None:
            raise CertError("the peer sent no signature payload")
        if not self.cas:
            raise CertError("no CA is configured to check the peer's certificate against")
        if self.utc_now is None:
            raise CertError("cannot check certificate validity: no wall clock was given (IkeConfig utc_now)")
        try:
            leaf = be.load_certificate(cert_ders[0])
            inter = [be.load_certificate(d) for d in cert_ders[1:]]
        except ValueError:
            raise CertError("the peer's certificate cannot be parsed")
        try:
            be.verify_chain(leaf, inter, self.cas, self.utc_now())
        except ValueError as e:
            raise CertError("the peer's certificate is not trusted: %s" % (e,))
        try:
            be.rsa_verify(leaf, sig.data, expect)
        except ValueError:
            raise CertError("the peer's signature did not verify (RSA over HASH_%s)"
                            % ("R" if peer_is_server else "I"))
        names = _san_names(leaf)
        if idp.id_type == C.ID_DER_ASN1_DN:
            if not same_name(bytes(idp.data), subject_der(cert_ders[0])):
                raise CertError("the peer's ID (a DN) is not the subject of its certificate")
        elif idp.id_type in (C.ID_IPV4_ADDR, C.ID_IPV6_ADDR):
            if address_text(idp.data).lower() not in names:
                raise CertError("the peer's ID %s is not in its certificate's subjectAltName" % idp.text())
        elif idp.id_type in (C.ID_FQDN, C.ID_USER_FQDN):
            if idp.text().lower() not in names:
                raise CertError("the peer's ID %s is not in its certificate's subjectAltName" % idp.text())
        else:
            raise CertError("the peer's ID type %s cannot be matched to a certificate"
                            % C.ID_NAMES.get(idp.id_type, idp.id_type))
        if peer_is_server:
            self._check_server(leaf, names)

    def _check_server(self, leaf, names):
        if self.server_name is not None:
            have = names or _common_names(leaf)
            if self.server_name not in have:
                raise CertError("the server certificate is for %s, not %s; connect by the name in the "
                                "certificate or reissue it" % (", ".join(have) or "no name", self.server_name))
        eku = _ext(leaf, EKU_OID)
        usages = [o.dotted_string for o in eku] if eku is not None else []
        if SERVER_AUTH not in usages and IKE_INTERMEDIATE not in usages:
            raise CertError("the server certificate lacks the serverAuth (or IKE intermediate) extended key "
                            "usage that Windows and this client require")
