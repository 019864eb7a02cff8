"""The validated configuration model: servers, users, clients and globals, built from parsed UCI sections.

Theory of operation
-------------------
`validate(sections, filename)` walks the sections that `sluice.config.uci.parse` produced, converts every option
to its typed value, checks the values against each other, and returns a `Config`, or raises one `ConfigError`
listing every problem found. Each message has the form

    FILE: SECTION: option NAME 'VALUE': what is wrong and what is allowed

where SECTION is `type 'name'` for a named section and `@type[N]` for an anonymous one. The value of a secret
option (password, psk, tunnel_secret) is always written `<hidden>`. Things that work but deserve attention
(unknown options or section types, plain L2TP, a weak key explicitly allowed) go to `Config.warnings`.

Section types:
- `server`: an L2TP network server (LNS) that Windows, Apple, Android and Linux clients dial;
- `user`: a login for the servers (username, password, optional static address);
- `client`: an outgoing L2TP connection (LAC). The same options may come from a netifd interface in
  /etc/config/network (`config interface 'vpn'` with `option proto 'sluice'`); other interfaces and other
  section types of such a file are skipped silently;
- `globals`: daemon-wide settings.

Defaults follow architecture.md's security defaults: IPsec is required (`ipsec '1'`) unless a section says
`ipsec '0'`, which is allowed and warned about; legacy algorithms need `legacy '1'`; weak pre-shared keys are
refused unless `allow_weak_psk '1'`.
"""

import os

from . import values as V
from .errors import ConfigError
from .uci import section_ref
from .values import check_psk, genpsk  # noqa: F401  (public helpers of this module)

HIDDEN = "<hidden>"
SECRET_OPTIONS = frozenset(("password", "psk", "tunnel_secret", "radius_secret"))
PASSWORD_MIN_LENGTH = 8  # PPP passwords and tunnel secrets shorter than this are warned about
NETIFD_PROTO = "sluice"
# Options netifd itself reads on any interface; accepted without a warning in `config interface` sections.
NETIFD_OPTIONS = frozenset((
    "proto", "auto", "disabled", "metric", "ip4table", "ip6table", "force_link", "delegate", "dns", "dns_search",
    "dns_metric", "device", "type", "macaddr", "multipath", "defaultroute", "peerdns", "mtu", "ifname",
    "ip6assign", "ip6hint", "ip6class", "ip6ifaceid", "sourcefilter",
))

_BAD = object()  # a value that failed to parse (already reported)


def _show(value):
    out = []
    for c in value:
        if c == "\n":
            out.append("\\n")
        elif ord(c) < 32 or ord(c) == 127:
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    return "'" + "".join(out) + "'"


class _Model:
    """Base of the model classes: a repr that lists every field and hides secrets."""

    __slots__ = ()
    _secret = ()
    _table = {}

    def __init__(self, **fields):
        """Every field at its default (None where there is none), then `fields`; for tests and tools that build
        a configuration without a file. No validation happens here."""
        for name in self.__slots__:
            default = self._table.get(name, (None, None))[1]
            setattr(self, name, list(default) if isinstance(default, list) else default)
        for name, value in fields.items():
            setattr(self, name, value)

    def __repr__(self):
        fields = []
        for name in self.__slots__:
            v = getattr(self, name, None)
            if name in self._secret and v:
                v = HIDDEN
                fields.append("%s=%s" % (name, v))
            else:
                fields.append("%s=%r" % (name, v))
        return "%s(%s)" % (type(self).__name__, ", ".join(fields))

    def as_dict(self):
        """The fields as a dict with secrets replaced by `<hidden>` (for status output and `sluice check`)."""
        out = {}
        for name in self.__slots__:
            v = getattr(self, name, None)
            out[name] = HIDDEN if name in self._secret and v else v
        return out


class ServerConfig(_Model):
    """One `config server` section: an L2TP server (LNS), optionally behind IPsec."""

    __slots__ = (
        "name", "ref", "enabled", "listen", "port", "local_ip", "pool_start", "pool_end", "dns", "auth", "ipsec",
        "ifname", "mtu", "hello_interval", "max_sessions", "tunnel_secret", "psk", "legacy", "cert", "key", "ca",
        "ike", "esp", "allow_weak_psk", "lcp_echo_interval", "lcp_echo_failure", "ipv6", "hostname", "dpd_delay",
        "dpd_timeout", "ike_lifetime", "lifetime", "lifetime_kbytes", "max_sessions_per_user", "rate_kbit",
        "public_host", "ip6prefix", "dns6",
        "client_routes", "domain", "radius_auth", "radius_acct", "radius_secret", "radius_nas_id", "radius_dae_port",
        "datapath",
    )
    _secret = ("tunnel_secret", "psk", "radius_secret")


class UserConfig(_Model):
    """One `config user` section: a login for the servers."""

    __slots__ = ("name", "ref", "enabled", "username", "password", "ip", "rate_kbit")
    _secret = ("password",)


class ClientConfig(_Model):
    """One `config client` section, or a netifd `config interface` with proto 'sluice': an L2TP client (LAC)."""

    __slots__ = (
        "name", "ref", "interface", "enabled", "server", "port", "username", "password", "auth", "ipsec", "psk",
        "legacy", "cert", "key", "ca", "ike", "esp", "server_name", "defaultroute", "routes", "ifname", "mtu",
        "peerdns", "redial", "redial_delay", "hello_interval", "tunnel_secret", "allow_weak_psk",
        "lcp_echo_interval", "lcp_echo_failure", "ipv6", "hostname", "dpd_delay", "dpd_timeout", "metric",
        "route_lan", "route_src", "route_table", "killswitch", "lan_network", "lifetime_kbytes", "routes6",
        "datapath",
    )
    _secret = ("password", "tunnel_secret", "psk")


class GlobalConfig(_Model):
    """The `config globals` section: daemon-wide settings."""

    __slots__ = ("log_level", "crypto", "rundir")


class Config(_Model):
    """The whole validated configuration."""

    __slots__ = ("path", "servers", "users", "clients", "globals", "warnings")

    def __init__(self, path, servers, users, clients, globals_, warnings):
        self.path = path
        self.servers = servers
        self.users = users
        self.clients = clients
        self.globals = globals_
        self.warnings = warnings

    def server(self, name):
        for s in self.servers:
            if s.name == name:
                return s
        return None

    def client(self, name):
        for c in self.clients:
            if c.name == name:
                return c
        return None

    def user(self, username):
        for u in self.users:
            if u.username == username:
                return u
        return None


# -- option tables: name -> (parser, default). A parser of None marks an option handled by hand. --------------

def _int(lo, hi):
    return lambda s: V.parse_int(s, lo, hi)


def _dur(lo, hi):
    return lambda s: V.parse_duration(s, lo, hi)


LIST = "list"  # marker: the option is a list of values, each parsed by the given parser

_IPSEC_OPTIONS = {
    "ipsec": (V.parse_bool, True),
    "psk": (V.parse_secret, None),
    "legacy": (V.parse_bool, False),
    "cert": (V.parse_path, None),
    "key": (V.parse_path, None),
    "ca": (V.parse_path, None),
    "ike": ((LIST, V.parse_ike), None),
    "esp": ((LIST, V.parse_esp), None),
    "allow_weak_psk": (V.parse_bool, False),
    "dpd_delay": (_dur(0, 3600), 30),  # RFC 3706; 0 = off
    "dpd_timeout": (_dur(5, 3600), 150),
}
DATAPATHS = ("auto", "kernel", "user")
_PPP_OPTIONS = {
    "enabled": (V.parse_bool, True),
    "port": (_int(1, 65535), 1701),
    "mtu": (_int(576, 1500), 1400),  # 1400 is what Windows and NetworkManager-l2tp use
    "hello_interval": (_dur(0, 3600), 60),  # RFC 2661 5.5 HELLO; 0 = off
    "tunnel_secret": (V.parse_secret, None),  # RFC 2661 4.2 tunnel authentication
    "lcp_echo_interval": (_dur(0, 3600), 30),
    "lcp_echo_failure": (_int(0, 100), 4),
    "ipv6": (V.parse_bool, False),
    "hostname": (V.parse_host, None),  # L2TP Host Name AVP; default: the system's host name
    "ifname": (V.parse_ifname, None),
    # Who carries ESP, L2TP data and PPP data: 'user' (Sluice, over a TUN device), 'kernel' (XFRM, l2tp_ppp
    # and a ppp unit per session; Sluice keeps IKE, L2TP control and PPP negotiation) or 'auto' (kernel where
    # the probe finds xfrm_user, l2tp_netlink, l2tp_ppp, /dev/ppp and esp4 and the section uses nothing only
    # the user-space path carries, else user). 'auto' is the default: on a router the kernel path is faster,
    # smaller and the only one that reaches the SoC's crypto engine.
    "datapath": (V.parse_choice(DATAPATHS), "auto"),
}

SERVER_OPTIONS = dict(_PPP_OPTIONS, **_IPSEC_OPTIONS)
SERVER_OPTIONS.update({
    "listen": (V.parse_listen, "0.0.0.0"),
    "local_ip": (V.parse_unicast, "10.77.0.1"),
    "pool_start": (V.parse_unicast, "10.77.0.10"),
    "pool_end": (V.parse_unicast, "10.77.0.250"),
    "dns": ((LIST, V.parse_unicast), []),
    "auth": ((LIST, V.parse_auth), ["mschapv2", "chap"]),
    "max_sessions": (_int(1, 65535), None),
    "max_sessions_per_user": (_int(0, 65535), 0),  # 0: no limit per user
    # each session, kbit/s each way; 0: none. User-space path: a token bucket per session; kernel path: tc on the
    # session's ppp unit (tbf out, ingress policer in; needs tc, else `auto` keeps the user-space path)
    "rate_kbit": (_int(0, 10000000), 0),
    "ike_lifetime": (_dur(300, 86400), 28800),
    "lifetime": (_dur(300, 86400), 3600),
    # ESP byte lifetime in kilobytes (RFC 2407 4.5); 0 = none of ours (a peer's proposal still applies).
    "lifetime_kbytes": (_int(0, 0x7FFFFFFF), 0),
    # Pushed to Windows/macOS clients in the DHCPACK to their DHCPINFORM (options 121/249, 15).
    "client_routes": ((LIST, V.parse_cidr), []),
    "domain": (V.parse_domain, None),
    # RADIUS (RFC 2865/2866/5176): servers in failover order; one shared secret; DAE port 0 = off.
    "radius_auth": ((LIST, V.parse_hostport(1812)), []),
    "radius_acct": ((LIST, V.parse_hostport(1813)), []),
    "radius_secret": (V.parse_secret, None),
    "radius_nas_id": (V.parse_text, None),
    "radius_dae_port": (_int(0, 65535), 0),
    # The address or DNS name clients dial (the router's WAN address or a dynamic-DNS name): only used to write
    # client set-up instructions (`sluice client-setup`, LuCI's Clients page).
    "public_host": (V.parse_host, None),
    # IPv6 in the tunnel (with option ipv6 '1'): a /64 per session from this prefix, and RDNSS servers.
    "ip6prefix": (V.parse_ip6prefix, None),
    "dns6": ((LIST, V.parse_ip6), []),
})
SERVER_DEFAULT_MAX_SESSIONS = 64
POOL_MAX = 65536

CLIENT_OPTIONS = dict(_PPP_OPTIONS, **_IPSEC_OPTIONS)
CLIENT_OPTIONS.update({
    "server": (V.parse_host, None),
    "username": (V.parse_text, None),
    "password": (V.parse_secret, None),
    "auth": ((LIST, V.parse_auth), ["mschapv2", "chap", "pap"]),
    "server_name": (V.parse_text, None),
    "defaultroute": (V.parse_bool, False),
    "routes": ((LIST, V.parse_cidr), []),
    "peerdns": (V.parse_bool, True),
    "redial": (V.parse_bool, True),
    "redial_delay": (_dur(1, 86400), 10),
    "metric": (_int(0, 65535), None),
    # LAN through the tunnel on a router (sluice.hal.platform.lanroute, run by the netifd hook).
    "route_lan": (V.parse_bool, False),
    "route_src": ((LIST, V.parse_cidr), []),
    "route_table": (_int(1, 252), 1701),
    "killswitch": (V.parse_bool, False),
    "lan_network": (V.parse_text, "lan"),
    "lifetime_kbytes": (_int(0, 0x7FFFFFFF), 0),
    "routes6": ((LIST, V.parse_cidr6), []),  # IPv6 prefixes through the tunnel (with option ipv6 '1')
})

USER_OPTIONS = {
    "enabled": (V.parse_bool, True),
    "username": (V.parse_text, None),
    "password": (V.parse_secret, None),
    "ip": (V.parse_unicast, None),
    "rate_kbit": (_int(0, 10000000), 0),  # this user's sessions: kbit/s each way (0: the server's rate_kbit)
}

LOG_LEVELS = ("debug", "info", "notice", "warning", "error")
CRYPTO_BACKENDS = ("auto", "openssl", "afalg", "pure")
GLOBAL_OPTIONS = {
    "log_level": (V.parse_choice(LOG_LEVELS), "info"),
    "crypto": (V.parse_choice(CRYPTO_BACKENDS), "auto"),
    "rundir": (V.parse_path, "/var/run/sluice"),
}


ServerConfig._table = SERVER_OPTIONS
ClientConfig._table = CLIENT_OPTIONS
UserConfig._table = USER_OPTIONS
GlobalConfig._table = GLOBAL_OPTIONS


class _Checker:
    """Collects errors and warnings for one file."""

    def __init__(self, filename, sections):
        self.filename = filename
        self.sections = sections
        self.errors = []
        self.warnings = []


class _SectionReader:
    """Reads one section's options through a table, reporting problems with the section's label."""

    def __init__(self, chk, sec, table, extra_known=()):
        self.chk = chk
        self.sec = sec
        self.table = table
        self.extra_known = extra_known
        if sec.name is not None:
            self.label = "%s '%s'" % (sec.type, sec.name)
        else:
            self.label = section_ref(chk.sections, sec)
        self.ref = section_ref(chk.sections, sec)
        self.explicit = set()

    def _head(self, name, value):
        kw = "list" if isinstance(self.sec.options.get(name), list) else "option"
        shown = HIDDEN if name in SECRET_OPTIONS else _show(value)
        return "%s: %s: %s %s %s" % (self.chk.filename, self.label, kw, name, shown)

    def error(self, name, value, message):
        self.chk.errors.append("%s: %s" % (self._head(name, value), message))

    def warn(self, name, value, message):
        self.chk.warnings.append("%s: %s" % (self._head(name, value), message))

    def section_error(self, message):
        self.chk.errors.append("%s: %s: %s" % (self.chk.filename, self.label, message))

    def section_warn(self, message):
        self.chk.warnings.append("%s: %s: %s" % (self.chk.filename, self.label, message))

    def read(self, obj):
        """Set every option of the table on obj (default when absent, _BAD when invalid)."""
        opts = self.sec.options
        for name, (parser, default) in self.table.items():
            raw = opts.get(name)
            if raw is None:
                setattr(obj, name, list(default) if isinstance(default, list) else default)
                continue
            self.explicit.add(name)
            if isinstance(parser, tuple):
                setattr(obj, name, self._read_list(name, raw, parser[1]))
            else:
                setattr(obj, name, self._read_one(name, raw, parser))
        for name in opts:
            if name not in self.table and name not in self.extra_known:
                self._unknown(name)
        for name, line in sorted(getattr(self.sec, "cut", {}).items()):
            what = "the value" if name not in SECRET_OPTIONS else "the secret"
            self.warn(name, opts.get(name), "%s ends at an unquoted '#' or ';' on line %d: uci drops the rest of "
                      "the line, so %s is shorter than written; put the whole value in single quotes"
                      % (what, line, what))

    def _read_one(self, name, raw, parser):
        if isinstance(raw, list):
            self.error(name, raw[-1], "must be given once, as option %s, not as a list" % name)
            return _BAD
        try:
            return parser(raw)
        except V.Invalid as e:
            self.error(name, raw, str(e))
            return _BAD

    def _read_list(self, name, raw, parser):
        # A list may also be written as one option with values separated by spaces, as netifd accepts for dns.
        items = raw if isinstance(raw, list) else raw.split()
        out = []
        bad = False
        for item in items:
            try:
                v = parser(item)
            except V.Invalid as e:
                self.error(name, item, str(e))
                bad = True
                continue
            if v not in out:
                out.append(v)
        if not items:
            self.error(name, "", "must not be empty")
            return _BAD
        return _BAD if bad else out

    def _unknown(self, name):
        import difflib

        known = sorted(self.table)
        close = difflib.get_close_matches(name, known, n=1)
        hint = " (did you mean %s?)" % close[0] if close else ""
        self.chk.warnings.append("%s: %s: unknown option %s ignored%s" % (
            self.chk.filename, self.label, name, hint))


def _check_password_length(r, name, value, what):
    if value and value is not _BAD and len(value) < PASSWORD_MIN_LENGTH:
        r.warn(name, value, "%s is shorter than %d characters: a captured CHAP or MS-CHAPv2 login reveals a short "
               "one within minutes" % (what, PASSWORD_MIN_LENGTH))


def _ok(*vals):
    return all(v is not _BAD for v in vals)


def _check_ipsec(r, obj):
    """The IPsec options of a server or client: credentials, key strength, legacy algorithms."""
    if obj.ipsec is _BAD:
        return
    if not obj.ipsec:
        used = [n for n in ("psk", "cert", "key", "ca", "ike", "esp", "legacy")
                if n in r.explicit and getattr(obj, n) not in (None, False, _BAD)]
        r.section_warn("ipsec is '0': plain L2TP is not encrypted; PPP passwords (PAP in clear text, CHAP and "
                       "MS-CHAPv2 open to offline guessing) and all traffic can be read on the way; "
                       "set option ipsec '1' with a psk or certificate")
        if used:
            r.section_warn("option%s %s ignored because ipsec is '0'" % (
                "s" if len(used) > 1 else "", ", ".join(used)))
        return
    if _ok(obj.cert, obj.key):
        if obj.cert and not obj.key:
            r.error("cert", obj.cert, "needs option key (the certificate's private key)")
        if obj.key and not obj.cert:
            r.error("key", obj.key, "needs option cert (the certificate for this private key)")
    if not obj.psk and not obj.cert and _ok(obj.psk, obj.cert):
        # A disabled section (the package's shipped default) is only told what it will need.
        report = r.section_warn if getattr(obj, "enabled", True) is False else r.section_error
        report("ipsec is '1' and there is no option psk or cert: set option psk to a pre-shared key "
                        "(`sluice genpsk` makes a strong one) or option cert and key, or set ipsec '0' for plain "
                        "L2TP")
    if obj.psk and obj.psk is not _BAD:
        reason = check_psk(obj.psk)
        if reason is not None:
            if obj.allow_weak_psk is True:
                r.warn("psk", obj.psk, "weak pre-shared key (%s); accepted because allow_weak_psk is '1'" % reason)
            else:
                r.error("psk", obj.psk, "weak pre-shared key refused (%s): use `sluice genpsk` to make a strong "
                        "one, or set option allow_weak_psk '1' to accept it" % reason)
        if any(ord(c) > 126 for c in obj.psk):
            r.warn("psk", obj.psk, "contains characters outside ASCII, which some clients cannot type or encode "
                   "the same way")
    if obj.legacy is False:
        for name in ("ike", "esp"):
            props = getattr(obj, name)
            if not props or props is _BAD:
                continue
            for p in props:
                old = V.legacy_parts(p)
                if old:
                    r.error(name, p, "uses %s, which needs option legacy '1' (for old clients only)" % (
                        " and ".join(old)))
    if _ok(obj.dpd_delay, obj.dpd_timeout) and obj.dpd_delay and obj.dpd_timeout <= obj.dpd_delay:
        r.error("dpd_timeout", V.format_duration(obj.dpd_timeout),
                "must be longer than dpd_delay '%s'" % V.format_duration(obj.dpd_delay))


def _check_ppp(r, obj):
    if _ok(obj.ipv6, obj.mtu) and obj.ipv6 and obj.mtu < 1280:
        r.error("mtu", str(obj.mtu), "must be at least 1280 when ipv6 is '1' (RFC 8200 5)")


def _check_radius(r, s):
    if not _ok(s.radius_auth, s.radius_acct, s.radius_secret, s.radius_dae_port):
        return
    if (s.radius_auth or s.radius_acct) and not s.radius_secret:
        r.section_error("option radius_secret must be set when radius_auth or radius_acct is given (the secret "
                        "shared with the RADIUS servers)")
    if s.radius_secret and len(s.radius_secret) < 16:
        r.warn("radius_secret", s.radius_secret, "is shorter than 16 characters; RFC 2865 3 asks for at least "
               "16 and an attacker who sees one reply can try short secrets offline")
    if s.radius_dae_port and not (s.radius_auth or s.radius_acct):
        r.error("radius_dae_port", str(s.radius_dae_port), "needs radius_auth or radius_acct: only those servers "
                "may send Disconnect-Request and CoA")


def _read_server(chk, sec, index):
    r = _SectionReader(chk, sec, SERVER_OPTIONS)
    s = ServerConfig()
    s.name = sec.name
    s.ref = r.ref
    r.read(s)
    if s.ifname is None:
        s.ifname = "sls%d" % index
    _check_ipsec(r, s)
    _check_password_length(r, "tunnel_secret", s.tunnel_secret, "the tunnel secret")
    _check_ppp(r, s)
    _check_radius(r, s)
    if _ok(s.pool_start, s.pool_end):
        lo, hi = V.ipv4_to_int(s.pool_start), V.ipv4_to_int(s.pool_end)
        size = hi - lo + 1
        if hi < lo:
            r.error("pool_end", s.pool_end, "must not be below pool_start '%s'" % s.pool_start)
        elif size > POOL_MAX:
            r.error("pool_end", s.pool_end, "makes a pool of %d addresses from pool_start '%s'; at most %d are "
                    "allowed" % (size, s.pool_start, POOL_MAX))
        elif s.local_ip is not _BAD and lo <= V.ipv4_to_int(s.local_ip) <= hi:
            r.warn("local_ip", s.local_ip, "is inside the pool %s-%s; it will not be handed out to clients" % (
                s.pool_start, s.pool_end))
    return s, r


def _read_client(chk, sec, index, netifd=False):
    extra = NETIFD_OPTIONS if netifd else ()
    r = _SectionReader(chk, sec, CLIENT_OPTIONS, extra)
    c = ClientConfig()
    c.name = sec.name
    c.ref = r.ref
    c.interface = sec.name if netifd else None
    r.read(c)
    if netifd:
        raw = sec.options.get("disabled")
        if raw is not None:
            dis = r._read_one("disabled", raw, V.parse_bool)
            if dis is not _BAD and "enabled" not in r.explicit:
                c.enabled = not dis
    if c.ifname is None:
        if netifd:
            # netifd names a proto device <proto>-<interface> (at most 15 characters).
            c.ifname = ("%s-%s" % (NETIFD_PROTO, sec.name))[:V.IFNAME_MAX]
        else:
            c.ifname = "slc%d" % index
    for name, what in (("server", "the VPN server's address or host name"), ("username", "the PPP user name"),
                       ("password", "the PPP password")):
        if getattr(c, name) is None:
            r.section_error("option %s is required: %s" % (name, what))
    _check_ipsec(r, c)
    _check_ppp(r, c)
    _check_password_length(r, "password", c.password, "the password")
    _check_password_length(r, "tunnel_secret", c.tunnel_secret, "the tunnel secret")
    if c.server_name and c.server_name is not _BAD and not (c.cert or c.ca):
        r.warn("server_name", c.server_name, "ignored without option ca or cert (it names the server's certificate)")
    return c, r


def _read_user(chk, sec):
    r = _SectionReader(chk, sec, USER_OPTIONS)
    u = UserConfig()
    u.name = sec.name
    u.ref = r.ref
    r.read(u)
    if u.username is None:
        r.section_error("option username is required")
    elif u.username == "":
        r.error("username", "", "must not be empty")
    if u.password is None:
        r.section_error("option password is required")
    _check_password_length(r, "password", u.password, "the password")
    return u, r


def _read_globals(chk, sec):
    r = _SectionReader(chk, sec, GLOBAL_OPTIONS)
    g = GlobalConfig()
    r.read(g)
    return g


def _default_globals():
    g = GlobalConfig()
    for name, (_, default) in GLOBAL_OPTIONS.items():
        setattr(g, name, default)
    return g


SECTION_TYPES = ("server", "client", "user", "globals")


def select(sections, filename, name):
    """The sections to validate when one server/client is wanted by name: users and globals, and the named
    server, client or sluice interface. Raises ConfigError naming the candidates if there is none."""
    candidates = [s for s in sections if s.type in ("server", "client") or _is_sluice_interface(s)]
    chosen = [s for s in candidates if s.name == name]
    if not chosen:
        have = ", ".join("%s '%s'" % (s.type, s.name) for s in candidates if s.name) or "none"
        raise ConfigError("%s: no server, client or interface (proto '%s') section named '%s' (have: %s)" % (
            filename, NETIFD_PROTO, name, have))
    return [s for s in sections if s.type in ("user", "globals") or s is chosen[0]]


def _is_sluice_interface(sec):
    return sec.type == "interface" and sec.options.get("proto") == NETIFD_PROTO


def validate(sections, filename="<string>", check_files=False):
    """A Config from parsed sections, or ConfigError listing every problem. check_files: also check that the
    cert/key/ca files exist (load() does; text given to loads() may come from another host)."""
    chk = _Checker(filename, sections)
    servers, clients, users = [], [], []
    readers = {}
    globals_ = None
    network_file = any(s.type == "interface" for s in sections)
    for sec in sections:
        if sec.type == "server":
            obj, r = _read_server(chk, sec, len(servers))
            servers.append(obj)
        elif sec.type == "client":
            obj, r = _read_client(chk, sec, len(clients))
            clients.append(obj)
        elif sec.type == "user":
            obj, r = _read_user(chk, sec)
            users.append(obj)
        elif sec.type == "interface":
            if not _is_sluice_interface(sec):
                continue
            obj, r = _read_client(chk, sec, len(clients), netifd=True)
            clients.append(obj)
        elif sec.type == "globals" and not network_file:
            if globals_ is not None:
                chk.warnings.append("%s: %s: a second globals section; its options override the first" % (
                    filename, section_ref(sections, sec)))
            g = _read_globals(chk, sec)
            if globals_ is None:
                globals_ = g
            else:
                for name in GLOBAL_OPTIONS:
                    if name in sec.options:
                        setattr(globals_, name, getattr(g, name))
            continue
        else:
            if not network_file:
                chk.warnings.append("%s: %s: unknown section type '%s' ignored (expected %s)" % (
                    filename, section_ref(sections, sec) if sec.name is None else "%s '%s'" % (sec.type, sec.name),
                    sec.type, ", ".join(SECTION_TYPES[:-1]) + " or " + SECTION_TYPES[-1]))
            continue
        readers[id(obj)] = r
    _check_across(chk, servers, clients, users, readers)
    if check_files:
        for obj in servers + clients:
            r = readers[id(obj)]
            for name in ("cert", "key", "ca"):
                path = getattr(obj, name)
                if path and path is not _BAD and obj.ipsec is True and not os.path.isfile(path):
                    r.error(name, path, "no such file")
    if chk.errors:
        raise ConfigError(chk.errors)
    return Config(filename, servers, users, clients, globals_ or _default_globals(), chk.warnings)


def _check_across(chk, servers, clients, users, readers):
    # Names of interfaces and listening sockets are shared by every section.
    seen_if = {}
    for obj in servers + clients:
        r = readers[id(obj)]
        if obj.ifname is _BAD:
            continue
        other = seen_if.get(obj.ifname)
        if other is not None:
            r.error("ifname", obj.ifname, "is already used by %s" % other)
        else:
            seen_if[obj.ifname] = r.label
    seen_listen = {}
    pools = []
    for s in servers:
        r = readers[id(s)]
        if _ok(s.listen, s.port):
            key = (s.listen, s.port)
            for (addr, port), label in seen_listen.items():
                if port == s.port and (addr == s.listen or "0.0.0.0" in (addr, s.listen)):
                    r.error("listen", s.listen, "with port %d overlaps %s" % (s.port, label))
                    break
            seen_listen[key] = r.label
        if _ok(s.pool_start, s.pool_end):
            lo, hi = V.ipv4_to_int(s.pool_start), V.ipv4_to_int(s.pool_end)
            for plo, phi, label in pools:
                if lo <= phi and plo <= hi:
                    r.error("pool_start", s.pool_start, "pool %s-%s overlaps the pool of %s" % (
                        s.pool_start, s.pool_end, label))
            pools.append((lo, hi, r.label))
    local_ips = dict((s.local_ip, readers[id(s)].label) for s in servers if _ok(s.local_ip))
    seen_user = {}
    seen_ip = {}
    for u in users:
        r = readers[id(u)]
        if u.username and u.username is not _BAD:
            other = seen_user.get(u.username)
            if other is not None:
                r.error("username", u.username, "is a duplicate: %s has the same username" % other)
            else:
                seen_user[u.username] = r.label
        if u.ip and u.ip is not _BAD:
            other = seen_ip.get(u.ip)
            if other is not None:
                r.error("ip", u.ip, "is a duplicate: %s has the same static address" % other)
            else:
                seen_ip[u.ip] = r.label
            if u.ip in local_ips:
                r.error("ip", u.ip, "is the local_ip of %s; choose another address" % local_ips[u.ip])
    statics = set(seen_ip)
    for s in servers:
        _check_capacity(readers[id(s)], s, statics)
        _check_ip6(readers[id(s)], s)
    if users == [] and any(s.enabled is True for s in servers):
        chk.warnings.append("%s: no config user sections: nobody can log in to the server" % chk.filename)


def _check_capacity(r, s, statics):
    """Addresses for sessions: the pool less local_ip and the users' static addresses (the engine reserves them),
    plus the static addresses themselves. max_sessions defaults to that, at most 64; a larger explicit value is an
    error, since sessions beyond it would be refused for want of an address."""
    if not _ok(s.pool_start, s.pool_end, s.local_ip, s.max_sessions):
        return
    lo, hi = V.ipv4_to_int(s.pool_start), V.ipv4_to_int(s.pool_end)
    if hi < lo or hi - lo + 1 > POOL_MAX:
        return  # reported already
    reserved = set(V.ipv4_to_int(ip) for ip in statics)
    reserved.add(V.ipv4_to_int(s.local_ip))
    dynamic = (hi - lo + 1) - len([n for n in reserved if lo <= n <= hi])
    capacity = dynamic + len(statics)
    if dynamic == 0:
        r.error("pool_end", s.pool_end, "leaves no pool address for clients: every address from pool_start '%s' is "
                "local_ip or a user's static address" % s.pool_start)
    if s.max_sessions is None:
        s.max_sessions = max(1, min(SERVER_DEFAULT_MAX_SESSIONS, capacity))
    elif s.max_sessions > capacity:
        r.error("max_sessions", str(s.max_sessions),
                "is more than the %d address%s clients can get (pool_start '%s' to pool_end '%s'%s): widen the pool "
                "or lower max_sessions" % (capacity, "" if capacity == 1 else "es", s.pool_start, s.pool_end,
                                           ", with static addresses" if statics else ""))


def _check_ip6(r, s):
    """IPv6 needs a prefix to hand out, with a /64 for every session max_sessions allows."""
    if s.ipv6 is not True:
        if s.ip6prefix and s.ip6prefix is not _BAD:
            r.warn("ip6prefix", s.ip6prefix, "is unused while option ipv6 is not '1'")
        return
    if s.ip6prefix is None:
        r.section_error("option ip6prefix is required with ipv6 '1': the prefix each session gets a /64 from "
                        "(e.g. '2001:db8:77::/48', a /56 delegated to this router, or a ULA /48)")
        return
    if not _ok(s.ip6prefix, s.max_sessions):
        return
    plen = int(s.ip6prefix.rpartition("/")[2])
    room = (1 << (64 - plen)) - 1 if plen > 48 else 65535  # the first /64 stays for the server
    if room < s.max_sessions and "max_sessions" not in r.explicit:
        r.warn("ip6prefix", s.ip6prefix, "holds %d /64s for sessions: max_sessions lowered from %d to %d" % (
            room, s.max_sessions, room))
        s.max_sessions = room
    elif room < s.max_sessions:
        r.error("ip6prefix", s.ip6prefix, "holds %d /64s for sessions but max_sessions is %d: use a shorter prefix "
                "or lower max_sessions" % (room, s.max_sessions))
