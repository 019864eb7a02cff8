"""Sluice's AF_ALG crypto backend inside a guest whose kernel has the crypto user API (this host's has not).

`sluice crypto --json` runs in the guest: every backend runs the same cited known-answer tests (FIPS 197,
RFC 3602, the GCM spec, RFC 2202/4231, RFC 4868, RFC 3526/5903) and is timed at 64 and 1400 bytes, so the
AF_ALG figures sit next to OpenSSL's measured on the same emulated CPU.
"""

import json

from .base import CellFailure, check, result
from .sluice_guest import SLUICE_DIR, install_sluice

MODULES = "af_alg algif_skcipher algif_aead algif_hash"


def cell_afalg(bed):
    g = bed.g1
    install_sluice(g)
    g.ssh("modprobe -a %s" % MODULES, check=False, timeout=30)
    out = g.ssh("env PYTHONPATH=%s python3 -m sluice crypto --json --time 0.2" % SLUICE_DIR, timeout=600,
                check=False)
    try:
        rows = dict((r["backend"], r) for r in json.loads(out.stdout))
    except ValueError:
        raise CellFailure("sluice crypto in %s printed no JSON:\n%s\n%s" % (g.name, out.stdout[-2000:],
                                                                          out.stderr[-2000:]))
    af = rows.get("afalg")
    check(af is not None and not af["unavailable"], "AF_ALG unavailable in the guest: %r" % (af,))
    failed = [k for k in af["kats"] if k["result"] != "pass"]
    check(af["kat_ok"] and not failed, "AF_ALG known-answer tests failed: %r" % (failed,))
    ossl = rows.get("openssl") or {}
    parts = []
    for key in sorted(af["speed_us"]):
        a = af["speed_us"][key]
        o = (ossl.get("speed_us") or {}).get(key)
        parts.append("%s afalg %.1f us%s" % (key, a, (" / openssl %.1f us (ratio %.2f)" % (o, a / o)) if o else ""))
    chosen = [r["backend"] for r in rows.values() if r.get("chosen")]
    others = []
    for name in ("openssl", "pure"):
        r = rows.get(name) or {}
        if r.get("unavailable"):
            others.append("%s unavailable (%s)" % (name, r["unavailable"]))
        elif not r.get("kat_ok"):
            bad = [(k["name"], k["detail"]) for k in r.get("kats", []) if k["result"] != "pass"]
            others.append("%s KAT FAIL %r" % (name, bad))
    return result(None, None, "AF_ALG KATs pass (%d vectors); auto picks %s; %s%s" % (
        len(af["kats"]), ",".join(chosen) or "none", "; ".join(parts),
        ("; " + "; ".join(others)) if others else ""))
