"""IKE settings from a configuration section: proposals, lifetimes, DPD, and the certificate files read once.

Read at start (files, the wall clock for certificate validity as a callable), so that the IKE machines
built from it later (a client builds one per server address) do no IO of their own.
"""

from sluice.ike import proposals as P
from sluice.ike.table import IkeConfig

IKE_PORT = 500

# What a client offers when the config names no proposals. A responder accepts a wide modern set
# (proposals.default_ike/default_esp); an initiator offers a short list in preference order, the way Windows
# and Apple do: the full cross product (about 40 phase-1 transforms) makes the first Main Mode message
# 1.6 kB, which IP fragments, and NATs that drop fragments would block it.
INITIATOR_IKE = ("aes256-sha256-modp2048,aes256-sha256-ecp256,aes128-sha256-modp2048,aes256-sha1-modp2048,"
                 "aes128-sha1-modp2048,aes256-sha384-ecp384,aes256-sha256-modp3072,aes256-sha512-modp4096")
INITIATOR_IKE_LEGACY = "aes256-sha1-modp1024,aes128-sha1-modp1024,3des-sha1-modp1024,3des-md5-modp1024"
INITIATOR_ESP = "aes256gcm16,aes128gcm16,aes256-sha1,aes128-sha1,aes256-sha256,aes128-sha256"
INITIATOR_ESP_LEGACY = "3des-sha1,aes256-md5,aes128-md5,3des-md5"


def _initiator_default(kind):
    base, extra = (INITIATOR_IKE, INITIATOR_IKE_LEGACY) if kind == "ike" else (INITIATOR_ESP, INITIATOR_ESP_LEGACY)

    def make(legacy):
        ps = P.ProposalSet.parse(base, kind)
        if legacy:
            ps.extend(P.ProposalSet.parse(extra, kind))
        return ps

    return make


def _proposals(values, default, kind, legacy):
    if values:
        return P.ProposalSet.parse(",".join(values), kind)
    return default(legacy)


def _read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def _utc_now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def _ike_config(section, role, files, **extra):
    psk = section.psk.encode() if section.psk else None
    if role == "initiator":
        ike_default, esp_default = _initiator_default("ike"), _initiator_default("esp")
    else:
        ike_default, esp_default = P.default_ike, P.default_esp
    cert, key, ca = files
    return IkeConfig(
        role=role, psk=psk, cert=cert, key=key, ca=ca,
        ike=_proposals(section.ike, ike_default, "ike", section.legacy),
        esp=_proposals(section.esp, esp_default, "esp", section.legacy),
        ike_lifetime=getattr(section, "ike_lifetime", 28800), esp_lifetime=getattr(section, "lifetime", 3600),
        dpd_delay=section.dpd_delay, dpd_timeout=section.dpd_timeout, utc_now=_utc_now, **extra)


def _files(section):
    return (_read(section.cert), _read(section.key), _read(section.ca))


def responder_config(section):
    # With a wildcard listen address IKE must hash and name the address each datagram really arrived on
    # (learned per datagram): 0.0.0.0 in NAT-D would make every client think the server is behind NAT.
    local = None if section.listen in ("0.0.0.0", "") else section.listen
    return _ike_config(section, "responder", _files(section), local_ip=local)


def initiator_config(section):
    """(local_ip, server_ip) -> IkeConfig for a client section; certificate files are read now, once."""
    files = _files(section)

    def make(local_ip, server_ip):
        cfg = _ike_config(section, "initiator", files, server_name=getattr(section, "server_name", None),
                          local_ip=local_ip)
        cfg.target = (server_ip, IKE_PORT)
        return cfg

    return make
