"""Configurations of the reference peers (xl2tpd + pppd, strongSwan, libreswan) and of Sluice, for the cells.

The reference configurations follow what is known to interoperate (shared/docs/peer-lab.md: strongSwan 5.9.8,
libreswan 4.10, xl2tpd 1.3.18, pppd 2.4.9) and what real deployments use (setup-ipsec-vpn style LNS:
MS-CHAPv2 only, noccp, MTU/MRU 1280, LCP echo 30 s x 4). Notes that matter:
- no `ipsec saref` line in xl2tpd.conf: any such line, even `= no`, switches xl2tpd to its user-space data
  path (pppd on a pty, about 5x slower); without it xl2tpd uses the kernel's l2tp_ppp;
- authentication is pinned per cell with pppd's require-*/refuse-* options, on the side that demands it
  (the LNS) and on the side that answers (the LAC), so a cell named `pap` cannot silently pass with CHAP;
- the password has a space in it, so quoting in pppd's secrets and options files is exercised.

Each function returns {guest path: file text}.
"""

USER = "alice"
PASSWORD = "correct horse"
# Lab only (guests live in a namespace of documentation addresses); strong enough for Sluice's check_psk.
PSK = "q7Xc2R9vLm4TnB8wKe1ZpD6sHy3JuF0aGiVoNtWb5Ek"
AUTH_METHODS = ("mschapv2", "chap", "pap")

POOL_LOCAL = "10.77.0.1"
PPPD_MRU = 1280  # pppd's mtu and mru at both reference ends: what a Sluice unit facing one may send
POOL_START = "10.77.0.10"
POOL_END = "10.77.0.250"

# pppd option names per method (pppd 2.4.9 man page, "Options").
_PPPD_NAME = {"mschapv2": "mschap-v2", "chap": "chap", "pap": "pap"}
_PPPD_ALL = ("pap", "chap", "mschap", "mschap-v2", "eap")


def _pppd_auth_lines(auth, server):
    if auth not in _PPPD_NAME:
        raise ValueError("unknown auth method %r (have: %s)" % (auth, ", ".join(AUTH_METHODS)))
    want = _PPPD_NAME[auth]
    lines = ["require-" + want] if server else []
    lines += ["refuse-" + m for m in _PPPD_ALL if m != want]
    return lines


def _secrets():
    # client  server  secret  addresses (pppd 2.4.9 "AUTHENTICATION"); quotes keep the space in the password.
    line = '"%s" * "%s" *\n' % (USER, PASSWORD)
    return {"/etc/ppp/chap-secrets": line, "/etc/ppp/pap-secrets": line}


def xl2tpd_lns(auth="mschapv2"):
    """xl2tpd + pppd as an LNS on the guest: hands out POOL_START.. with POOL_LOCAL as its own address."""
    files = {
        "/etc/xl2tpd/xl2tpd.conf": "\n".join([
            "[global]",
            "port = 1701",
            "access control = no",
            "",
            "[lns default]",
            "ip range = %s-%s" % (POOL_START, POOL_END),
            "local ip = %s" % POOL_LOCAL,
            "require authentication = yes",
            "name = lab-lns",
            "length bit = yes",
            "ppp debug = yes",
            "pppoptfile = /etc/ppp/options.xl2tpd",
            "",
        ]),
        "/etc/ppp/options.xl2tpd": "\n".join(
            ["auth"] + _pppd_auth_lines(auth, server=True) + [
                "ms-dns %s" % POOL_LOCAL,
                "noccp",
                "mtu %d" % PPPD_MRU,
                "mru %d" % PPPD_MRU,
                "lcp-echo-interval 30",
                "lcp-echo-failure 4",
                "nodefaultroute",
                "proxyarp",
                "debug",
                "logfile /var/log/pppd.log",
                "",
            ]),
    }
    files.update(_secrets())
    return files


def xl2tpd_lac(server_ip, auth="mschapv2", lac="lab"):
    """xl2tpd + pppd as a LAC (client) on the guest dialing `server_ip`; dial with `c LAC` on the control pipe."""
    files = {
        "/etc/xl2tpd/xl2tpd.conf": "\n".join([
            "[global]",
            "port = 1701",
            "access control = no",
            "",
            "[lac %s]" % lac,
            "lns = %s" % server_ip,
            "require authentication = no",
            "length bit = yes",
            "redial = no",
            "autodial = no",
            "ppp debug = yes",
            "pppoptfile = /etc/ppp/options.l2tp-client",
            "",
        ]),
        "/etc/ppp/options.l2tp-client": "\n".join(
            _pppd_auth_lines(auth, server=False) + [
                'name "%s"' % USER,
                'password "%s"' % PASSWORD,
                "noauth",
                "ipcp-accept-local",
                "ipcp-accept-remote",
                "noipdefault",
                "nodefaultroute",
                "usepeerdns",
                "noccp",
                "mtu %d" % PPPD_MRU,
                "mru %d" % PPPD_MRU,
                "lcp-echo-interval 30",
                "lcp-echo-failure 4",
                "debug",
                "logfile /var/log/pppd.log",
                "",
            ]),
    }
    files.update(_secrets())
    return files


IKE_PROPOSALS = "aes256-sha1-modp2048,aes128-sha1-modp2048,aes256-sha256-modp2048!"
ESP_PROPOSALS = "aes256-sha1,aes128-sha1!"


def strongswan_l2tp(server_ip=None, ike=IKE_PROPOSALS, esp=ESP_PROPOSALS, extra=()):
    """strongSwan IKEv1 transport mode for UDP 1701, PSK. server_ip=None: the server (responder) side.

    ike/esp: ipsec.conf proposal lists (a trailing `!` makes them strict: exactly this list is offered or
    accepted); extra: more `key=value` lines for the conn (e.g. keyingtries)."""
    common = [
        "config setup",
        "    uniqueids=no",
        '    charondebug="ike 1, knl 1, cfg 1"',
        "",
        "conn l2tp",
        "    keyexchange=ikev1",
        "    type=transport",
        "    authby=secret",
        "    ike=" + ike,
        "    esp=" + esp,
    ] + ["    " + l for l in extra] + [
        "    dpddelay=30",
        "    dpdtimeout=120",
        "    dpdaction=clear",
        "    auto=add",
    ]
    if server_ip is None:
        conn = ["    left=%any", "    leftprotoport=17/1701", "    right=%any", "    rightprotoport=17/%any"]
    else:
        conn = ["    left=%defaultroute", "    leftprotoport=17/1701", "    right=" + server_ip,
                "    rightprotoport=17/1701"]
    return {
        "/etc/ipsec.conf": "\n".join(common + conn + [""]),
        "/etc/ipsec.secrets": '%%any %%any : PSK "%s"\n' % PSK,
    }


def libreswan_l2tp(local_ip, server_ip=None):
    """libreswan 4.10 IKEv1 transport mode for UDP 1701, PSK (ikev1-policy=accept: 4.x refuses IKEv1 otherwise)."""
    lines = [
        "config setup",
        "    ikev1-policy=accept",
        "    uniqueids=no",
        "    logfile=/var/log/pluto.log",
        "    plutodebug=none",
        "",
        "conn l2tp",
        "    ikev2=no",
        "    type=transport",
        "    authby=secret",
        "    ike=aes256-sha1;modp2048,aes128-sha1;modp2048",
        "    phase2alg=aes256-sha1,aes128-sha1",
        "    pfs=no",
        "    dpddelay=30",
        "    dpdtimeout=120",
        "    dpdaction=clear",
        "    left=" + local_ip,
        "    leftprotoport=17/1701",
    ]
    if server_ip is None:
        lines += ["    right=%any", "    rightprotoport=17/%any", "    auto=add"]
    else:
        lines += ["    right=" + server_ip, "    rightprotoport=17/1701", "    auto=add"]
    return {
        "/etc/ipsec.conf": "\n".join(lines + [""]),
        "/etc/ipsec.secrets": '%%any %%any : PSK "%s"\n' % PSK,
    }


def _sluice_ipsec(ipsec):
    if not ipsec:
        return ["    option ipsec '0'"]
    return ["    option ipsec '1'", "    option psk '%s'" % PSK]


def sluice_server(listen, auth="mschapv2", ipsec=False, extra=(), datapath="user"):
    """A Sluice LNS config (UCI syntax, README.md / docs/design.md), one user; plain L2TP unless ipsec.

    extra: more option lines for the server section (e.g. "option legacy '1'"). datapath: named explicitly,
    because the default 'auto' would take the kernel path in a guest and change what a user-space cell tests."""
    return "\n".join([
        "config server 'main'",
        "    option listen '%s'" % listen,
        "    option local_ip '%s'" % POOL_LOCAL,
        "    option pool_start '%s'" % POOL_START,
        "    option pool_end '%s'" % POOL_END,
        "    list dns '%s'" % POOL_LOCAL,
        "    list auth '%s'" % auth,
    ] + _sluice_ipsec(ipsec) + ["    " + l for l in extra] + [
        "    option datapath '%s'" % datapath,
        "    option ifname 'sls0'",
        "",
        "config user",
        "    option username '%s'" % USER,
        "    option password '%s'" % PASSWORD,
        "",
    ])


def sluice_client(server, ipsec=False, datapath="user"):
    """A Sluice LAC config dialing `server` (plain L2TP unless ipsec), routing the LNS's pool through the tunnel;
    datapath named explicitly as for sluice_server."""
    return "\n".join([
        "config client 'lab'",
        "    option server '%s'" % server,
        "    option username '%s'" % USER,
        "    option password '%s'" % PASSWORD,
    ] + _sluice_ipsec(ipsec) + [
        "    list routes '10.77.0.0/24'",
        "    option datapath '%s'" % datapath,
        "    option ifname 'slc0'",
        "    option redial '0'",
        "",
    ])
