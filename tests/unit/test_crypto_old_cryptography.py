"""The OpenSSL backend on an older `cryptography` (Debian 12 ships 38, whose AESGCM wants bytes).

Found by the AF_ALG interop cell: in the Debian guest the openssl backend failed its GCM known answers with
"TypeError: data must be bytes". The bytes path is forced here and held to the same ESP GCM packet vectors.
"""

from sluice.hal.crypto import kat, openssl


def test_gcm_bytes_path_passes_the_esp_packet_vectors(monkeypatch):
    monkeypatch.setattr(openssl, "_AEAD_TAKES_VIEWS", False)
    assert kat.kat_esp_gcm(openssl) is True
