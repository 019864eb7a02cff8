"""The ESP transforms Sluice knows, by name, and the IKE algorithm tables every backend shares.

A name is what a proposal is turned into once IKE has agreed on it, in strongSwan's spelling:
`aes128-sha1` is ENCR_AES_CBC with a 128-bit key and AUTH_HMAC_SHA1_96 (RFC 3602, RFC 2404);
`aes256gcm16` is ENCR_AES_GCM_16 with a 256-bit key (RFC 4106; gcm8 and gcm12 carry truncated ICVs); `aes128-sha256_96` is the draft
HMAC-SHA-256 truncation to 96 bits that Android 6/7 use instead of RFC 4868's 128 bits.

Each entry: (kind, cipher, enc_key_len, integ, icv_len, legacy). `kind` is 'cbc' (cipher + HMAC,
encrypt-then-MAC over SPI..ciphertext, RFC 4303 3.3.2) or 'gcm' (AEAD, RFC 4106: 8-byte explicit IV,
4-byte salt from the keying material, AAD = SPI || sequence number). `legacy` marks what the
configuration must allow explicitly (3DES, MD5).
"""

# integrity: name -> (hash, icv bytes, key bytes); RFC 2403/2404 (96-bit), RFC 4868 2.3 (half the hash).
INTEG = {
    "md5": ("md5", 12, 16),
    "sha1": ("sha1", 12, 20),
    "sha256": ("sha256", 16, 32),
    "sha256_96": ("sha256", 12, 32),
    "sha384": ("sha384", 24, 48),
    "sha512": ("sha512", 32, 64),
}

# cipher: name -> (cipher, key bytes, block bytes)
CIPHERS = {
    "aes128": ("aes", 16, 16),
    "aes192": ("aes", 24, 16),
    "aes256": ("aes", 32, 16),
    "3des": ("3des", 24, 8),
}

HASH_SIZE = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
HASH_BLOCK = {"md5": 64, "sha1": 64, "sha256": 64, "sha384": 128, "sha512": 128}

GCM_SALT = 4  # RFC 4106 8.1: the last four octets of the keying material
GCM_IV = 8    # RFC 4106 3.1


class UnknownTransform(ValueError):
    """A transform name no table here knows."""


def _build():
    table = {}
    for cname in CIPHERS:
        cipher, klen, _ = CIPHERS[cname]
        for iname in INTEG:
            h, icv, _ = INTEG[iname]
            table[cname + "-" + iname] = ("cbc", cipher, klen, iname, icv, cipher == "3des" or h == "md5")
    for klen in (16, 24, 32):
        for icv in (8, 12, 16):  # RFC 4106 8.1: ENCR_AES_GCM_8 / _12 / _16
            table["aes%dgcm%d" % (klen * 8, icv)] = ("gcm", "aes", klen, None, icv, False)
    return table


ESP = _build()


def esp_spec(name):
    """The table entry for an ESP transform name; raises UnknownTransform."""
    spec = ESP.get(name)
    if spec is None:
        raise UnknownTransform("unknown ESP transform %r" % (name,))
    return spec


def esp_key_lengths(name):
    """(enc_key_len, auth_key_len, salt_len) a transform needs from the keying material (RFC 2409 5.5)."""
    kind, _, klen, integ, _, _ = esp_spec(name)
    if kind == "gcm":
        return klen, 0, GCM_SALT
    return klen, INTEG[integ][2], 0


def esp_overhead(name):
    """(iv_len, icv_len, pad_block): what ESP adds around a payload, for MTU arithmetic."""
    kind, cipher, _, _, icv, _ = esp_spec(name)
    if kind == "gcm":
        return GCM_IV, icv, 4
    block = 16 if cipher == "aes" else 8
    return block, icv, block


def check_keys(name, enc_key, auth_key, salt):
    """Raise ValueError (without the key bytes) when the key material does not fit the transform."""
    ek, ak, sl = esp_key_lengths(name)
    if len(enc_key) != ek:
        raise ValueError("%s needs a %d-byte encryption key, got %d bytes" % (name, ek, len(enc_key)))
    if len(auth_key or b"") != ak:
        raise ValueError("%s needs a %d-byte integrity key, got %d bytes" % (name, ak, len(auth_key or b"")))
    if len(salt or b"") != sl:
        raise ValueError("%s needs a %d-byte salt, got %d bytes" % (name, sl, len(salt or b"")))


def from_proposal(name, sha256_96=False):
    """The ESP transform name for an IKE proposal name such as 'aes256-sha256-modp2048' (PFS group dropped).

    sha256_96 selects the Android 6/7 96-bit HMAC-SHA-256 truncation instead of RFC 4868's 128 bits;
    IKE cannot negotiate it (same transform ID), so it comes from configuration.
    """
    parts = [p for p in name.split("-") if not (p.startswith("modp") or p.startswith("ecp") or p.startswith("group"))]
    if sha256_96 and len(parts) == 2 and parts[1] == "sha256":
        parts[1] = "sha256_96"
    out = "-".join(parts)
    esp_spec(out)
    return out
