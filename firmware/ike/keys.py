"""IKEv1 key derivation (RFC 2409 5, 5.5, Appendix B), as pure functions of their inputs.

Theory of operation
-------------------
Everything here is a function of bytes already agreed by the exchanges; no state, no randomness. `prf(...)` is
HMAC over the negotiated phase 1 hash (RFC 2409 4: "the PRF is the HMAC version of the negotiated hash").

RFC 2409 5 (phase 1):
    SKEYID  = prf(pre-shared-key, Ni_b | Nr_b)                 (pre-shared keys)
    SKEYID  = prf(Ni_b | Nr_b, g^xy)                            (signatures)
    SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
    SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
    SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
    HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
    HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
RFC 2409 Appendix B: the cipher key is the first bits of SKEYID_e, or when SKEYID_e is too short,
K = K1 | K2 | ... with K1 = prf(SKEYID_e, 0) (one zero octet), Kn = prf(SKEYID_e, Kn-1). The phase 1 IV is
hash(g^xi | g^xr) cut to the block size; the IV of every phase 2 / informational exchange starts as
hash(last phase 1 CBC block | M-ID) (see sluice.ike.crypt for the chaining).
RFC 2409 5.5 (Quick Mode):
    HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr])     (the payloads after HASH, as sent)
    HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr])
    HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
    KEYMAT  = K1 | K2 | ..., K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b),
              Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
    one KEYMAT per direction: the SPI is the one the *receiving* side chose.
RFC 2409 5.7 (informational): HASH(1) = prf(SKEYID_a, M-ID | N/D).
ESP key order inside KEYMAT: encryption key, then integrity key (RFC 2409 5.5 with RFC 2407, what every
implementation does); for AES-GCM the key is followed by the 4-octet salt (RFC 4106 8.1).

Secrets stay in bytes objects; nothing here formats them into a message.
"""

from sluice.ike import constants as C

HASH_NAMES = {C.HASH_MD5: "md5", C.HASH_SHA1: "sha1", C.HASH_SHA2_256: "sha256", C.HASH_SHA2_384: "sha384",
              C.HASH_SHA2_512: "sha512"}
# Phase 1 cipher attribute -> (HAL cipher name, block octets); key length comes from the transform.
CIPHERS = {C.ENCR_AES_CBC: ("aes-cbc", 16), C.ENCR_3DES: ("3des-cbc", 8)}


class KeyDerivationError(ValueError):
    """An algorithm or length this module cannot derive keys for."""


def hash_name(alg):
    """Phase 1 hash attribute value -> HAL hash name."""
    n = HASH_NAMES.get(alg)
    if n is None:
        raise KeyDerivationError("unsupported phase 1 hash %s" % C.P1_HASH_NAMES.get(alg, alg))
    return n


def cipher_params(encr, key_bits):
    """(HAL cipher name, key octets, block octets) of a phase 1 encryption algorithm."""
    c = CIPHERS.get(encr)
    if c is None:
        raise KeyDerivationError("unsupported phase 1 cipher %s" % C.P1_ENCR_NAMES.get(encr, encr))
    klen = 24 if encr == C.ENCR_3DES else (key_bits or 128) // 8
    return c[0], klen, c[1]


def skeyid_psk(be, h, psk, ni_b, nr_b):
    """RFC 2409 5: SKEYID for pre-shared key authentication."""
    return be.prf(h, bytes(psk), ni_b + nr_b)


def skeyid_sig(be, h, ni_b, nr_b, gxy):
    """RFC 2409 5: SKEYID for signature authentication."""
    return be.prf(h, ni_b + nr_b, gxy)


def skeyid_dae(be, h, skeyid, gxy, cky_i, cky_r):
    """RFC 2409 5: (SKEYID_d, SKEYID_a, SKEYID_e)."""
    d = be.prf(h, skeyid, gxy + cky_i + cky_r + b"\x00")
    a = be.prf(h, skeyid, d + gxy + cky_i + cky_r + b"\x01")
    e = be.prf(h, skeyid, a + gxy + cky_i + cky_r + b"\x02")
    return d, a, e


def encryption_key(be, h, skeyid_e, length):
    """RFC 2409 Appendix B: the phase 1 cipher key, expanded when SKEYID_e is shorter than the key."""
    if len(skeyid_e) >= length:
        return skeyid_e[:length]
    k = be.prf(h, skeyid_e, b"\x00")
    out = k
    while len(out) < length:
        k = be.prf(h, skeyid_e, k)
        out += k
    return out[:length]


def phase1_iv(be, h, gxi, gxr, block):
    """RFC 2409 Appendix B: IV = hash(g^xi | g^xr), cut to the cipher block."""
    return be.hash(h, gxi + gxr)[:block]


def phase2_iv(be, h, last_block, message_id, block):
    """RFC 2409 Appendix B: IV of a phase 2 / informational exchange = hash(last phase 1 block | M-ID)."""
    return be.hash(h, last_block + message_id.to_bytes(4, "big"))[:block]


def hash_i(be, h, skeyid, gxi, gxr, cky_i, cky_r, sai_b, idii_b):
    """RFC 2409 5: HASH_I (the initiator's proof)."""
    return be.prf(h, skeyid, gxi + gxr + cky_i + cky_r + sai_b + idii_b)


def hash_r(be, h, skeyid, gxi, gxr, cky_i, cky_r, sai_b, idir_b):
    """RFC 2409 5: HASH_R (the responder's proof)."""
    return be.prf(h, skeyid, gxr + gxi + cky_r + cky_i + sai_b + idir_b)


def qm_hash1(be, h, skeyid_a, message_id, rest):
    """RFC 2409 5.5 HASH(1) (and 5.7's informational HASH(1)): `rest` = the payloads after HASH as sent."""
    return be.prf(h, skeyid_a, message_id.to_bytes(4, "big") + rest)


def qm_hash2(be, h, skeyid_a, message_id, ni_b, rest):
    """RFC 2409 5.5 HASH(2)."""
    return be.prf(h, skeyid_a, message_id.to_bytes(4, "big") + ni_b + rest)


def qm_hash3(be, h, skeyid_a, message_id, ni_b, nr_b):
    """RFC 2409 5.5 HASH(3)."""
    return be.prf(h, skeyid_a, b"\x00" + message_id.to_bytes(4, "big") + ni_b + nr_b)


def keymat(be, h, skeyid_d, protocol, spi, ni_b, nr_b, length, gxy=b""):
    """RFC 2409 5.5 KEYMAT for one direction (`spi` = 4 octets chosen by the receiving side); PFS adds g(qm)^xy."""
    seed = gxy + bytes((protocol,)) + bytes(spi) + ni_b + nr_b
    k = be.prf(h, skeyid_d, seed)
    out = k
    while len(out) < length:
        k = be.prf(h, skeyid_d, k + seed)
        out += k
    return out[:length]


def split_esp_keys(material, enc_len, auth_len, salt_len):
    """KEYMAT -> (encryption key, integrity key, salt): encryption first (RFC 4106 8.1 puts the salt after it)."""
    enc = material[:enc_len]
    if salt_len:
        return enc, b"", material[enc_len:enc_len + salt_len]
    return enc, material[enc_len:enc_len + auth_len], b""
