"""LAN through the tunnel: policy routing and the kill switch, rendered from a client's UCI options.

Theory of operation
-------------------
A Sluice client interface (`config interface 'vpn'`, proto 'sluice') can carry the whole LAN, or chosen LAN
subnets or hosts, through the tunnel without making the tunnel the router's own default route:

    option route_lan '1'              the LAN interface's subnets (netifd interface `lan_network`, default 'lan')
    list route_src '192.168.1.0/24'   and/or chosen subnets or hosts (a bare address means /32)
    option route_table '1701'         the routing table used (default 1701; also the rule priority base)
    option killswitch '1'             drop forwarding from those sources unless it leaves through the tunnel

Policy routing (iproute2 commands, run on connect and reversed on disconnect):

    ip rule add from SRC lookup main suppress_prefixlength 0 priority P     LAN-specific routes still win
    ip rule add from SRC lookup T priority P+1                               everything else: table T
    ip route replace default dev TUNDEV table T

`suppress_prefixlength 0` makes the main table answer for everything but its default route, so traffic from a
source to other LAN subnets and to routes the server pushed stays where it was, and only what would have left
by the WAN's default route goes into the tunnel. The router's own traffic (IKE/ESP to the server) does not come
"from" a LAN source, so it never loops into the tunnel.

The kill switch is a separate nftables table with its own forward hook. nftables evaluates every base chain
of a hook; an `accept` ends only this chain while a `drop` is final, so this table can only remove traffic,
never open what fw4 closes. It is persistent: it names the TUN device, not its state, so while the tunnel is
down (device absent) nothing from the sources is forwarded anywhere but to other sources (LAN to LAN).

Everything here is a pure function of the options, so the output is tested as text (and the nft text with
`nft -c -f`); `apply` and `main` are the thin IO edge.
"""

import ipaddress
import json
import subprocess
import sys

DEFAULT_TABLE = 1701
NFT_TABLE_PREFIX = "sluice_ks_"


class LanRouteError(ValueError):
    """An option of the LAN-routing set is invalid (names the option and the value)."""


def _bool(value, name):
    if value in (None, ""):
        return False
    if value in ("1", "yes", "on", "true", "enabled", True):
        return True
    if value in ("0", "no", "off", "false", "disabled", False):
        return False
    raise LanRouteError("option %s: %r is not a boolean (use '1' or '0')" % (name, value))


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        # A list option written as `option` (space-joined) is tolerated, as netifd does for some options.
        return value.split()
    return list(value)


def _networks(values, name):
    nets = []
    for v in values:
        try:
            net = ipaddress.IPv4Network(v, strict=False)
        except ValueError:
            raise LanRouteError("option %s: %r is not an IPv4 address or CIDR" % (name, v))
        if net not in nets:
            nets.append(net)
    return nets


def _ifname(value, name):
    if not value or len(value) > 15 or not all(c.isalnum() or c in "-_." for c in value):
        raise LanRouteError("%s: %r is not a network device name (1-15 of A-Z a-z 0-9 - _ .)" % (name, value))
    return value


def tun_ifname(iface):
    """The TUN device of netifd interface `iface`: sluice-<iface>, cut to 15 characters (IFNAMSIZ - 1)."""
    return ("sluice-" + iface)[:15]


class LanRoutePlan:
    """What one client interface asks for: `sources` (IPv4Network list), `table`, `priority`, `killswitch`."""

    __slots__ = ("iface", "sources", "table", "priority", "killswitch")

    def __init__(self, iface, sources, table, priority, killswitch):
        self.iface = iface
        self.sources = sources
        self.table = table
        self.priority = priority
        self.killswitch = killswitch

    def __repr__(self):
        return "LanRoutePlan(%r, sources=%s, table=%d, killswitch=%s)" % (
            self.iface, [str(n) for n in self.sources], self.table, self.killswitch)


def plan(iface, options, lan_subnets=()):
    """Reads the LAN-routing options of one interface section (dict name -> str or list).

    `lan_subnets` are the LAN interface's subnets (CIDR strings), used when route_lan is '1'; the caller finds
    them (netifd's `ubus call network.interface.lan status`) so that this stays pure.
    """
    sources = []
    if _bool(options.get("route_lan"), "route_lan"):
        if not lan_subnets:
            raise LanRouteError("option route_lan is '1' but the LAN interface has no IPv4 subnet")
        sources += _networks(lan_subnets, "route_lan")
    for net in _networks(_as_list(options.get("route_src")), "route_src"):
        if net not in sources:
            sources.append(net)
    raw = options.get("route_table") or DEFAULT_TABLE
    try:
        table = int(raw)
    except (TypeError, ValueError):
        table = -1
    # 253-255 are default/main/local; 0 is unspec. The rule priorities P and P+1 must stay below 32766 (main).
    if not 1 <= table <= 32765 or table in (253, 254, 255):
        raise LanRouteError("option route_table: %r is not a free routing table (1-32765, not 253-255)" % (raw,))
    killswitch = _bool(options.get("killswitch"), "killswitch")
    if killswitch and not sources:
        raise LanRouteError("option killswitch is '1' but no sources: set route_lan '1' or list route_src")
    return LanRoutePlan(iface, sources, table, table, killswitch)


def ip_commands(p, tundev, action):
    """The iproute2 argv lists to run on `action` 'up' (tunnel connected) or 'down'.

    'up' first removes what a previous 'up' may have left (a daemon restart without 'down'), so both are
    idempotent; callers ignore the exit status of `del` and `flush` (absent rules or table are fine).
    """
    _ifname(tundev, "TUNDEV")
    cmds = []
    for net in p.sources:
        src = str(net)
        cmds.append(["ip", "-4", "rule", "del", "from", src, "lookup", "main", "suppress_prefixlength", "0",
                     "priority", str(p.priority)])
        cmds.append(["ip", "-4", "rule", "del", "from", src, "lookup", str(p.table), "priority",
                     str(p.priority + 1)])
    cmds.append(["ip", "-4", "route", "flush", "table", str(p.table)])
    if action == "down" or not p.sources:
        return cmds
    if action != "up":
        raise LanRouteError("action %r is not 'up' or 'down'" % (action,))
    cmds.append(["ip", "-4", "route", "replace", "default", "dev", tundev, "table", str(p.table)])
    for net in p.sources:
        src = str(net)
        cmds.append(["ip", "-4", "rule", "add", "from", src, "lookup", "main", "suppress_prefixlength", "0",
                     "priority", str(p.priority)])
        cmds.append(["ip", "-4", "rule", "add", "from", src, "lookup", str(p.table), "priority",
                     str(p.priority + 1)])
    return cmds


def nft_table_name(iface):
    return NFT_TABLE_PREFIX + iface


def render_nft(p, tundev):
    """The kill-switch ruleset (nft -f text) for plan `p`; with the kill switch off, a ruleset that removes it.

    `table ... {}` followed by `delete table` is the idempotent "remove if present" idiom of nft -f.
    """
    _ifname(tundev, "TUNDEV")
    name = nft_table_name(p.iface)
    lines = ["table inet %s {}" % name, "delete table inet %s" % name]
    if not p.killswitch:
        return "\n".join(lines) + "\n"
    elems = ", ".join(str(n) for n in p.sources)
    lines += [
        "table inet %s {" % name,
        "\tset sources {",
        "\t\ttype ipv4_addr",
        "\t\tflags interval",
        "\t\tauto-merge",
        "\t\telements = { %s }" % elems,
        "\t}",
        "",
        "\tchain forward {",
        # before fw4's forward chain (priority filter = 0): a drop here is final whatever fw4 says
        "\t\ttype filter hook forward priority filter - 5; policy accept;",
        '\t\tip saddr @sources oifname "%s" accept' % tundev,
        "\t\tip saddr @sources ip daddr @sources accept",
        '\t\tip saddr @sources counter drop comment "sluice kill switch: %s is down"' % p.iface,
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


# ---- IO edge -------------------------------------------------------------------------------------------

def _lan_subnets(lan_iface):
    """Subnets of netifd interface `lan_iface`, from `ubus call network.interface.<lan> status`."""
    try:
        out = subprocess.run(["ubus", "call", "network.interface." + lan_iface, "status"],
                             capture_output=True, text=True, timeout=10).stdout
        status = json.loads(out)
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    return ["%s/%s" % (a["address"], a["mask"]) for a in status.get("ipv4-address", [])]


def apply(p, tundev, action, run=subprocess.run):
    """Runs the ip commands and loads the nft text; `run` is injectable for tests.

    `arm` loads only the kill switch (no routing): the netifd handler runs it before the first dial, so a
    router that boots while the server is unreachable never forwards its LAN in the clear (issue 13 item 10).
    """
    if action == "arm":
        if p.killswitch:
            run(["nft", "-f", "-"], input=render_nft(p, tundev), text=True, check=False)
        return
    for cmd in ip_commands(p, tundev, action):
        run(cmd, check=False)
    if action == "up" or not p.killswitch:
        # the kill switch stays loaded on 'down': that is its purpose
        run(["nft", "-f", "-"], input=render_nft(p, tundev), text=True, check=False)


def main(argv=None):
    """`python3 -m sluice.hal.platform.lanroute CONFIG SECTION TUNDEV up|down|arm|nft [--print]`."""
    import argparse

    from sluice.config.uci import find, parse

    ap = argparse.ArgumentParser(prog="sluice-lanroute")
    ap.add_argument("config")
    ap.add_argument("section")
    ap.add_argument("tundev")
    ap.add_argument("action", choices=("up", "down", "arm", "nft"))
    ap.add_argument("--print", action="store_true", help="print the commands instead of running them")
    args = ap.parse_args(argv)
    with open(args.config) as f:
        sections = parse(f.read(), args.config)
    sec = find(sections, args.section)
    if sec is None:
        sys.stderr.write("%s: no section %s\n" % (args.config, args.section))
        return 2
    opts = sec.options
    try:
        lan = _lan_subnets(opts.get("lan_network") or "lan") if _bool(opts.get("route_lan"), "route_lan") else []
        p = plan(args.section, opts, lan)
    except LanRouteError as e:
        sys.stderr.write("%s: config interface '%s': %s\n" % (args.config, args.section, e))
        return 2
    if args.action == "nft":
        sys.stdout.write(render_nft(p, args.tundev))
        return 0
    if args.print:
        if args.action == "arm":
            print("nft -f - # kill switch" if p.killswitch else "# no kill switch")
            return 0
        for cmd in ip_commands(p, args.tundev, args.action):
            print(" ".join(cmd))
        return 0
    apply(p, args.tundev, args.action)
    return 0


if __name__ == "__main__":
    sys.exit(main())
