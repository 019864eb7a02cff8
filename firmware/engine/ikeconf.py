"""IKE settings from a configuration section: proposals, lifetimes, DPD, and the certificate files read once.

Read at start (files, the wall clock for certificate validity as a callable), so that the IKE machines
built from it later (a client builds one per server address) do no IO of their own.
"""

from sluice.ike import proposals as P
from sluice.ike.table import IkeConfig

IKE_PORT = 500


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


def _ike_config(section, role, files, esp_filter=None, **extra):
    psk = section.psk.encode() if section.psk else None
    if role == "initiator":
        ike_default, esp_default = P.initiator_ike, P.initiator_esp
    else:
        ike_default, esp_default = P.default_ike, P.default_esp
    cert, key, ca = files
    esp = _proposals(section.esp, esp_default, "esp", section.legacy)
    if esp_filter is not None:
        esp = esp_filter(esp)
    return IkeConfig(
        role=role, psk=psk, cert=cert, key=key, ca=ca,
        ike=_proposals(section.ike, ike_default, "ike", section.legacy),
        esp=esp,
        ike_lifetime=getattr(section, "ike_lifetime", 28800), esp_lifetime=getattr(section, "lifetime", 3600),
        dpd_delay=section.dpd_delay, dpd_timeout=section.dpd_timeout, utc_now=_utc_now, **extra)


def _files(section):
    return (_read(section.cert), _read(section.key), _read(section.ca))


def kernel_esp_filter(probe, log):
    """ESP proposals -> only those the kernel can install (`probe(names)` -> the names it can, e.g.
    hal.net.ppp_kernel.kernel_transforms): a router without kmod-crypto-gcm must not agree to AES-GCM and then
    fail to install it. Probed once per algorithm, at start; what is dropped is logged once, with the package."""
    known = {}

    def only_kernel(pset):
        names = [P.esp_algorithms(t) for t in pset]
        ask = sorted(set(n for n in names if n not in known))
        if ask:
            ok = set(probe(ask))
            for n in ask:
                known[n] = n in ok
            lost = [n for n in ask if not known[n]]
            if lost:
                log.warning("the kernel cannot carry ESP %s (missing crypto modules, e.g. kmod-crypto-gcm): not "
                            "negotiated", ", ".join(lost))
        kept = P.only_esp(pset, set(n for n in names if known[n]))
        if not len(kept):
            raise RuntimeError("the kernel can carry none of the ESP proposals (%s): install its crypto modules "
                               "or set option datapath 'user'" % ", ".join(sorted(set(names))))
        return kept

    return only_kernel


def responder_config(section, esp_filter=None):
    # With a wildcard listen address IKE must hash and name the address each datagram really arrived on
    # (learned per datagram): 0.0.0.0 in NAT-D would make every client think the server is behind NAT.
    local = None if section.listen in ("0.0.0.0", "") else section.listen
    return _ike_config(section, "responder", _files(section), esp_filter, local_ip=local)


def initiator_config(section, esp_filter=None):
    """(local_ip, server_ip) -> IkeConfig for a client section; certificate files are read now, once."""
    files = _files(section)
    if esp_filter is not None:  # the kernel is probed now, at start, and not in the first dial's set-up time
        _ike_config(section, "initiator", files, esp_filter)

    def make(local_ip, server_ip):
        cfg = _ike_config(section, "initiator", files, esp_filter, server_name=getattr(section, "server_name", None),
                          local_ip=local_ip)
        cfg.target = (server_ip, IKE_PORT)
        return cfg

    return make
