"""Value syntax for configuration options: booleans, integers, durations, IPv4 addresses and prefixes, host
names, interface names, IKE/ESP proposals, and the pre-shared key strength check.

Each parser takes the option's text and returns the typed value or raises `Invalid` with a message that says
what is allowed; the message never repeats the value (the caller decides whether the value may be shown).
"""

import os

from .errors import ConfigError


class Invalid(ValueError):
    """A value does not fit its option; the message says what is allowed."""


_DIGITS = frozenset("0123456789")

TRUE_WORDS = ("1", "yes", "on", "true", "enabled")
FALSE_WORDS = ("0", "no", "off", "false", "disabled")


def parse_bool(s):
    low = s.lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    raise Invalid("must be a boolean: 1/0, yes/no, on/off or true/false")


def _digits(s):
    return bool(s) and all(c in _DIGITS for c in s)


def parse_int(s, lo, hi):
    if not _digits(s) or int(s) < lo or int(s) > hi:
        raise Invalid("must be an integer from %d to %d" % (lo, hi))
    return int(s)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def format_duration(secs):
    for unit, mult in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % mult == 0:
            return "%d%s" % (secs // mult, unit)
    return "%ds" % secs


def parse_duration(s, lo, hi):
    """Seconds from `30`, `30s`, `5m`, `2h` or `1d` (strongSwan's UCI notation)."""
    num, mult = s, 1
    if s and s[-1].lower() in _UNITS:
        num, mult = s[:-1], _UNITS[s[-1].lower()]
    if not _digits(num) or not lo <= int(num) * mult <= hi:
        raise Invalid("must be a duration from %s to %s, written like 30s, 5m, 2h or 1d" % (
            format_duration(lo), format_duration(hi)))
    return int(num) * mult


def ipv4_to_int(s):
    """The address as an integer. Strict dotted quad: four decimal numbers 0-255, no leading zeros (inet_aton would
    read 010 as octal 8, other tools as decimal 10), no spaces, no shorthand like 10.1."""
    parts = s.split(".")
    if len(parts) != 4 or not all(_digits(p) and len(p) <= 3 and int(p) <= 255 for p in parts):
        raise Invalid("must be an IPv4 address: four numbers from 0 to 255 like 192.0.2.1")
    for p in parts:
        if len(p) > 1 and p[0] == "0":
            raise Invalid("is ambiguous: a number with a leading zero may be read as octal; write it without "
                          "leading zeros")
    return (int(parts[0]) << 24) | (int(parts[1]) << 16) | (int(parts[2]) << 8) | int(parts[3])


def int_to_ipv4(n):
    return "%d.%d.%d.%d" % ((n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255)


def parse_ipv4(s):
    ipv4_to_int(s)
    return s


def is_unicast(n):
    first = n >> 24
    return first != 0 and first != 127 and first < 224


def parse_unicast(s):
    """An address a host can have: not 0.x, 127.x, multicast, reserved or broadcast."""
    if not is_unicast(ipv4_to_int(s)):
        raise Invalid("must be a unicast IPv4 address (not 0.x.x.x, 127.x.x.x, multicast or broadcast)")
    return s


def parse_listen(s):
    """A local address to bind: 0.0.0.0 (all) or a unicast address."""
    n = ipv4_to_int(s)
    if n != 0 and not is_unicast(n) and (n >> 24) != 127:
        raise Invalid("must be 0.0.0.0 (all addresses) or a local unicast IPv4 address")
    return s


def parse_cidr(s):
    """`a.b.c.d/n` (host bits zero) or a bare address (/32); returned as `a.b.c.d/n`."""
    addr, slash, plen = s.partition("/")
    if not slash:
        ipv4_to_int(addr)
        return addr + "/32"
    try:
        n = ipv4_to_int(addr)
    except Invalid:
        raise Invalid("must be an IPv4 prefix like 192.0.2.0/24")
    if not _digits(plen) or int(plen) > 32 or (len(plen) > 1 and plen[0] == "0"):
        raise Invalid("must be an IPv4 prefix like 192.0.2.0/24 (prefix length 0 to 32)")
    bits = int(plen)
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    if n & ~mask & 0xFFFFFFFF:
        raise Invalid("has host bits set: did you mean %s/%d?" % (int_to_ipv4(n & mask), bits))
    return s


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def parse_host(s):
    """An IPv4 address or a DNS host name (RFC 1123 2.1: labels of letters, digits and hyphens)."""
    if s and all(c in _DIGITS or c == "." for c in s):
        return parse_ipv4(s)
    name = s[:-1] if s.endswith(".") else s
    labels = name.split(".")
    if (not name or len(name) > 253
            or not all(0 < len(lb) <= 63 and lb[0] != "-" and lb[-1] != "-" and all(c in _HOST_CHARS for c in lb)
                       for lb in labels)):
        raise Invalid("must be an IPv4 address or a host name (letters, digits, hyphens and dots)")
    return s


def parse_domain(s):
    """A DNS domain name for clients (DHCP option 15): labels of letters, digits and hyphens."""
    if all(c in _DIGITS or c == "." for c in s):
        raise Invalid("must be a domain name like example.org, not an address")
    try:
        return parse_host(s)
    except Invalid:
        raise Invalid("must be a domain name like example.org (letters, digits, hyphens and dots)")


def parse_hostport(default_port):
    """`HOST[:PORT]` -> (host, port); HOST an IPv4 address or a host name."""
    def parse(s):
        host, colon, port = s.partition(":")
        if colon:
            if not _digits(port) or not 1 <= int(port) <= 65535:
                raise Invalid("must be HOST or HOST:PORT with a port 1 to 65535")
            port = int(port)
        else:
            port = default_port
        try:
            return (parse_host(host), port)
        except Invalid:
            raise Invalid("must be HOST or HOST:PORT, HOST an IPv4 address or a host name")
    return parse


_IFNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
IFNAME_MAX = 15  # IFNAMSIZ - 1


def parse_ifname(s):
    if len(s) > IFNAME_MAX:
        raise Invalid("is %d characters long; interface names have at most %d" % (len(s), IFNAME_MAX))
    if not s or s in (".", "..") or not all(c in _IFNAME_CHARS for c in s):
        raise Invalid("must be an interface name of 1 to %d characters from A-Z a-z 0-9 _ . -" % IFNAME_MAX)
    return s


def parse_path(s):
    if not s.startswith("/"):
        raise Invalid("must be an absolute path (starting with /)")
    return s


AUTH_METHODS = ("pap", "chap", "mschapv2")


def parse_auth(s):
    low = s.lower()
    if low not in AUTH_METHODS:
        raise Invalid("must be one of pap, chap, mschapv2")
    return low


def parse_choice(choices):
    def parse(s):
        if s not in choices:
            raise Invalid("must be one of %s" % ", ".join(choices))
        return s
    return parse


def parse_text(s):
    """Free text without control characters (a user name, a host name for L2TP)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in s):
        raise Invalid("must not contain control characters")
    if len(s.encode("utf-8")) > 255:
        raise Invalid("must be at most 255 bytes long")
    return s


def parse_secret(s):
    """A password or key: PPP (PAP's Passwd-Length, RFC 1334 2.2.1) caps it at 255 bytes."""
    if any(ord(c) < 32 or ord(c) == 127 for c in s):
        raise Invalid("must not contain control characters")
    if len(s.encode("utf-8")) > 255:
        raise Invalid("must be at most 255 bytes long")
    return s


# -- IKE and ESP proposals (strongSwan's notation: enc-integ-dh, comma-separated) ----------------------------
#
# The grammar is owned by sluice.ike.proposals (ProposalSet.parse), which the IKE machines use; the configuration
# checks each value with that same parser so that what `sluice check` accepts is what the daemon runs. The small
# parser below is a fallback for a build without the IKE package: one proposal, one token per category.

ENCRYPTION = ("aes128", "aes192", "aes256", "3des")
AEAD = ("aes128gcm16", "aes192gcm16", "aes256gcm16")
INTEGRITY = ("sha1", "sha256", "sha2_256", "sha384", "sha2_384", "sha512", "sha2_512", "md5")
DH_GROUPS = ("modp1024", "modp1536", "modp2048", "modp3072", "modp4096", "ecp256", "ecp384")
# Only with option legacy '1' (architecture.md, security defaults): old Android, Apple and Windows set-ups.
LEGACY = frozenset(("des", "3des", "md5", "modp768", "modp1024", "modp1536"))


def _ike_parser():
    try:
        from sluice.ike.proposals import ProposalSet
    except ImportError:
        return None
    return ProposalSet.parse


def _fallback(s, kind):
    parts = s.lower().split("-")
    enc = [p for p in parts if p in ENCRYPTION or (kind == "esp" and p in AEAD)]
    integ = [p for p in parts if p in INTEGRITY]
    dh = [p for p in parts if p in DH_GROUPS]
    unknown = [p for p in parts if p not in enc and p not in integ and p not in dh]
    aead = enc and enc[0] in AEAD
    if (unknown or len(enc) != 1 or len(dh) > 1 or (kind == "ike" and not dh)
            or (not aead and len(integ) != 1) or (aead and integ)):
        if kind == "ike":
            raise Invalid("must be an IKE proposal encryption-integrity-dhgroup like aes256-sha1-modp2048")
        raise Invalid("must be an ESP proposal like aes256-sha1, aes128gcm16 or aes256-sha256-modp2048 (PFS)")
    return s


def _proposal(s, kind):
    parse = _ike_parser()
    if parse is None:
        return _fallback(s, kind)
    try:
        parse(s, kind)
    except ValueError as e:
        msg = str(e)
        # The IKE parser names the proposal and the whole string; our caller already shows the value.
        marker = " in %r: " % s
        if msg.startswith("proposal ") and marker in msg:
            head, rest = msg.split(marker, 1)
            prop = head[len("proposal "):]
            msg = rest if prop == repr(s) else "%s: %s" % (prop, rest)
        raise Invalid(msg)
    return s


def parse_ike(s):
    """A phase 1 proposal string, e.g. aes256-sha1-modp2048 (several tokens per category combine)."""
    return _proposal(s, "ike")


def parse_esp(s):
    """A phase 2 proposal string, e.g. aes256-sha1, aes128gcm16 or aes256-sha1-modp2048 (PFS)."""
    return _proposal(s, "esp")


def legacy_parts(proposal):
    """The algorithms in a proposal string that need option legacy '1'."""
    out = []
    for tok in proposal.lower().replace(",", "-").split("-"):
        tok = tok.strip()
        if tok in LEGACY and tok not in out:
            out.append(tok)
    return out


# -- pre-shared keys ---------------------------------------------------------------------------------------

PSK_MIN_LENGTH = 16
# Keys seen in tutorials and default configs; compared lower-case with punctuation removed.
KNOWN_BAD_PSKS = frozenset((
    "vpn", "secret", "password", "psk", "ipsec", "l2tp", "test", "changeme", "admin", "openwrt", "qwerty",
    "letmein", "default", "sharedsecret", "presharedkey", "mysecret", "vpnpassword", "ipsecvpn", "vpnsecret",
    "yourpsk", "yoursharedsecret", "youripsecpresharedkey", "yourpresharedkey", "mypsk", "examplepsk",
    "123456", "12345678", "1234567890", "1234567890123456", "0123456789abcdef", "passwordpassword",
    "secretsecret", "qwertyuiopasdfgh", "abcdefghijklmnop",
))


def check_psk(psk):
    """Why `psk` is weak (a short phrase that never contains the key), or None if it is acceptable."""
    if not psk:
        return "it is empty"
    folded = "".join(c for c in psk.lower() if c.isalnum())
    if folded in KNOWN_BAD_PSKS or psk.lower() in KNOWN_BAD_PSKS:
        return "it is a well-known example key"
    if len(psk) < PSK_MIN_LENGTH:
        return "it is shorter than %d characters" % PSK_MIN_LENGTH
    if len(set(psk)) < 8:
        return "it uses fewer than 8 different characters"
    for period in range(1, len(psk) // 2 + 1):
        if all(psk[i] == psk[i - period] for i in range(period, len(psk))):
            return "it repeats a short pattern"
    if all(c in _DIGITS for c in psk):
        return "it has only digits"
    return None


def genpsk(rng=os.urandom):
    """A strong pre-shared key: 32 random bytes, base64url without padding (43 characters of A-Z a-z 0-9 - _),
    which survive UCI quoting, shells and the PSK boxes of Windows, Apple and Android unchanged."""
    import base64

    raw = rng(32)
    if len(raw) != 32:
        raise ConfigError("genpsk: the random source returned %d bytes, not 32" % len(raw))
    key = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    # A key that starts with '-' reads as a command-line flag; rotate it (entropy unchanged).
    for _ in range(len(key)):
        if not key.startswith("-"):
            break
        key = key[1:] + key[0]
    return key


# -- IPv6 (the text forms are parsed by the core's sluice.ip6.addr, which the engine uses too) ---------------

def parse_ip6(s):
    """An IPv6 unicast address (e.g. a DNS server): not ::, not multicast; returned in canonical form."""
    from sluice.ip6 import addr as ip6

    try:
        b = ip6.parse(s)
    except ValueError:
        raise Invalid("must be an IPv6 address like 2001:db8::53")
    if b == ip6.ZERO or ip6.is_multicast(b) or ip6.is_link_local(b):
        raise Invalid("must be a global or ULA unicast IPv6 address (not ::, multicast or link-local)")
    return ip6.text(b)


def parse_cidr6(s):
    """`2001:db8::/32` (host bits zero) or a bare address (/128); returned in canonical form."""
    from sluice.ip6 import addr as ip6

    if "/" not in s:
        s = s + "/128"
    try:
        b, plen = ip6.parse_prefix(s)
    except ValueError as e:
        raise Invalid("must be an IPv6 prefix like 2001:db8:1::/48 (%s)" % e)
    return "%s/%d" % (ip6.text(b), plen)


def parse_ip6prefix(s):
    """The prefix a server hands out a /64 per session from: /16 to /63 (a lone /64 cannot be split)."""
    from sluice.ip6 import addr as ip6

    try:
        b, plen = ip6.parse_prefix(s)
    except ValueError as e:
        raise Invalid("must be an IPv6 prefix like 2001:db8:77::/48 or a /56 (%s)" % e)
    if not 16 <= plen <= 63:
        raise Invalid("must be /16 to /63: each session gets a /64 of its own, so a /64 cannot be shared out "
                      "(use a /56 or /60 delegated to this router, or a ULA prefix like fd12:3456:789a::/48)")
    if ip6.is_multicast(b) or ip6.is_link_local(b) or b == ip6.ZERO:
        raise Invalid("must be a global or ULA prefix (not multicast, link-local or ::)")
    return "%s/%d" % (ip6.text(b), plen)
