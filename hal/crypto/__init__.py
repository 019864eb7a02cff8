"""The crypto HAL: one interface for ESP transforms and IKE primitives, several backends.

Backends are modules with the same functions (see docs in each): `available()`, `supports(name)`,
`esp_transform(name, enc_key, auth_key, salt, rng)`, `hash`, `prf`, `cipher`, `dh`.
- `openssl`: the `cryptography` package (plus RSA/X.509);
- `afalg`: the Linux kernel crypto API over AF_ALG sockets (a SoC engine where the kernel routes there);
- `pure`: pure Python (`sluice.hal.crypto.pure.backend`), for MicroPython and as the reference of last resort.
`backend(name)` returns one; `auto` is what `sluice.hal.crypto.select.choose()` measured, or until that ran,
the first of openssl, pure that imports. Nothing heavy is imported until a backend is asked for.
"""

NAMES = ("afalg", "openssl", "pure")
_MODULES = {"openssl": "sluice.hal.crypto.openssl", "afalg": "sluice.hal.crypto.afalg",
            "pure": "sluice.hal.crypto.pure.backend"}
_chosen = {}


def load(name):
    """Import a backend module by name. Raises ImportError (missing library) or KeyError (unknown name)."""
    path = _MODULES[name]
    return __import__(path, None, None, [path.rsplit(".", 1)[1]])


def set_default(name):
    """Make `name` what backend(None) / backend('auto') returns (select.choose() calls this)."""
    _chosen["auto"] = load(name)


def backend(name=None):
    """The backend module called `name`; None or 'auto' gives the chosen default."""
    if name is None or name == "auto":
        mod = _chosen.get("auto")
        if mod is None:
            for cand in ("openssl", "pure"):
                try:
                    mod = load(cand)
                except ImportError:
                    continue
                if mod.available() is None:
                    break
            _chosen["auto"] = mod
        return mod
    return load(name)
