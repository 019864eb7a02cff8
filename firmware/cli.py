"""`sluice`: the command line. Daemons stay in the foreground; the rest talk to them over the control socket."""

import os
import sys

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


def _load(path, section=None):
    from sluice.config import load

    return load(path) if section is None else load(path, section=section)


def _pick(sections, wanted, kind, path):
    from sluice.config import ConfigError

    if wanted:
        for s in sections:
            if s.name == wanted:
                return s
        raise ConfigError(["%s: no %s section named %r (have: %s)" % (
            path, kind, wanted, ", ".join(repr(s.name) for s in sections) or "none")])
    enabled = [s for s in sections if getattr(s, "enabled", True)]
    if len(enabled) == 1:
        return enabled[0]
    if not enabled:
        raise ConfigError(["%s: no enabled %s section" % (path, kind)])
    raise ConfigError(["%s: several %s sections (%s): choose one with --section" % (
        path, kind, ", ".join(repr(s.name) for s in enabled))])


def _make_log(args, name, config=None):
    from sluice.engine.log import Log, DEBUG, INFO, WARNING, ERROR

    levels = {"debug": DEBUG, "info": INFO, "notice": INFO, "warning": WARNING, "error": ERROR}
    level = levels.get(getattr(getattr(config, "globals", None), "log_level", "info"), INFO)
    return Log("sluice-" + name, DEBUG if args.verbose else level, use_syslog=args.syslog)


def _apply_globals(config):
    """`config globals`: the run directory for control sockets (the environment still wins, for tests)."""
    g = getattr(config, "globals", None)
    if g is not None and g.rundir and "SLUICE_RUNDIR" not in os.environ:
        os.environ["SLUICE_RUNDIR"] = g.rundir


def cmd_server(args):
    from sluice.engine.daemon import Daemon
    from sluice.engine.runner import build_server

    config = _load(args.config)
    section = _pick(config.servers, args.section, "server", args.config)
    name = args.name or section.name or "server"
    log = _make_log(args, name, config)
    _apply_globals(config)
    d = Daemon(name, "server", log, lambda: _load(args.config),
               lambda c: _pick(c.servers, section.name, "server", args.config),
               lambda c, s, loop: build_server(c, s, loop, log))
    return d.run()


def cmd_client(args):
    from sluice.engine.daemon import Daemon

    config = _load(args.config)
    section = _pick(config.clients, args.section, "client", args.config)
    name = args.name or section.name or "client"
    log = _make_log(args, name, config)
    _apply_globals(config)
    d = Daemon(name, "client", log, lambda: _load(args.config),
               lambda c: _pick(c.clients, section.name, "client", args.config),
               lambda c, s, loop: _client(c, s, loop, log, args))
    return d.run()


def _client(config, section, loop, log, args):
    from sluice.engine.runner import build_client

    r = build_client(config, section, loop, log, hook=args.hook, configure_host=not args.netifd,
                     interface=args.section or section.name)
    # Under netifd a refused login ends the daemon (exit status 3) so that the handler's teardown can report
    # AUTH_FAILED and block the restart, as ppp.sh does for pppd's exit status 19.
    r.endpoint.stop_on_auth_failure = bool(args.netifd)
    return r


def _daemon_names(args):
    from sluice.engine.control import running_daemons

    if args.name:
        return [args.name]
    return running_daemons()


def cmd_status(args):
    from sluice.engine.control import request

    names = _daemon_names(args)
    result = []
    for n in names:
        try:
            reply = request(n, {"cmd": "status"})
            result.append(reply.get("status", {"name": n, "error": reply.get("error")}))
        except (OSError, ValueError) as e:
            result.append({"name": n, "error": "not running (%s)" % (getattr(e, "strerror", None) or e)})
    if args.json:
        import json

        out = result[0] if args.name and result else result
        json.dump(out, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        if not result:
            print("no sluice daemon is running")
        for st in result:
            print(format_status(st))
    return 0 if all("error" not in st for st in result) else EXIT_RUNTIME


def _bytes(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return "%d %s" % (n, unit) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1000.0
    return "%.1f TB" % n


def _datapath_note(st):
    return "; kernel data path (XFRM, l2tp_ppp, ppp units)" if st.get("datapath") == "kernel" else ""


def format_status(st):
    if "error" in st:
        return "%s: %s" % (st.get("name"), st["error"])
    lines = []
    if st.get("role") == "server":
        pool = st.get("pool", {})
        lines.append("%s: server on %s, TUN %s, pool %s-%s (%d in use), %d session(s)" % (
            st["name"], st.get("listen"), st.get("ifname"), pool.get("start"), pool.get("end"),
            pool.get("used", 0), st.get("sessions", 0)) + _datapath_note(st))
    else:
        c = st.get("counters", {})
        lines.append("%s: client to %s, TUN %s, %s%s; rx %s, tx %s" % (
            st["name"], st.get("server"), st.get("ifname"), st.get("state"),
            "" if st.get("wanted", True) else " (disconnected by request)",
            _bytes(c.get("rx_bytes", 0)), _bytes(c.get("tx_bytes", 0))) + _datapath_note(st))
    for t in st.get("tunnels", []):
        lines.append("  tunnel %s <-> %s (peer tunnel %s): %s" % (
            t.get("tunnel_id", t.get("local_tunnel_id")), t.get("peer"), t.get("peer_tunnel_id"), t.get("state")))
        for s in t.get("sessions", []):
            extra = ""
            if "rx_bytes" in s:
                extra = ", rx %s, tx %s" % (_bytes(s["rx_bytes"]), _bytes(s["tx_bytes"]))
            if s.get("datapath") == "kernel":
                extra += ", kernel data path (%s)" % (s.get("unit") or "no ppp unit")
            lines.append("    session %s: %s %s %s, up %ss%s" % (
                s.get("session_id"), s.get("user") or "", s.get("ip") or "-", s.get("state"), s.get("uptime"), extra))
            v6 = s.get("ipv6")
            if v6:
                lines.append("      IPv6 %s, link-local %s%s" % (
                    v6.get("prefix") or v6.get("address") or "waiting for the RA", v6.get("link_local"),
                    ", rx %s, tx %s" % (_bytes(s["rx6_bytes"]), _bytes(s["tx6_bytes"])) if "rx6_bytes" in s else ""))
    tr = st.get("transport") or {}
    for sa in tr.get("sas", []):
        lines.append("  ESP SA %s with %s: in %s (%d packets), out %s (%d packets)%s" % (
            sa.get("transform"), sa.get("peer"), sa.get("spi_in"), sa.get("packets_in", 0), sa.get("spi_out"),
            sa.get("packets_out", 0), ", UDP-encapsulated" if sa.get("encap") else ""))
    if st.get("last_error"):
        lines.append("  last error: %s" % st["last_error"])
    return "\n".join(lines)


def cmd_control(args):
    from sluice.engine.control import request

    names = _daemon_names(args)
    if not names:
        print("no sluice daemon is running", file=sys.stderr)
        return EXIT_RUNTIME
    code = 0
    for n in names:
        req = {"cmd": args.command}
        if getattr(args, "user", None):
            req["user"] = args.user
        try:
            reply = request(n, req)
        except (OSError, ValueError) as e:
            print("%s: not running (%s)" % (n, e), file=sys.stderr)
            code = EXIT_RUNTIME
            continue
        if not reply.get("ok"):
            print("%s: %s" % (n, reply.get("error")), file=sys.stderr)
            code = EXIT_RUNTIME
    return code


def cmd_check(args):
    config = _load(args.config)
    for w in config.warnings:
        print("warning: %s" % w, file=sys.stderr)
    print("%s: %d server(s), %d client(s), %d user(s): OK" % (
        args.config, len(config.servers), len(config.clients), len(config.users)))
    enabled = [s for s in config.servers if getattr(s, "enabled", True)]
    for s in config.servers:
        # what the firewall needs (the TUN device) and how each is started (several need --section)
        print("  server %r: %s, TUN %s, %s%s" % (
            s.name, "enabled" if getattr(s, "enabled", True) else "disabled", s.ifname,
            "L2TP/IPsec" if s.ipsec else "plain L2TP", ", start with --section %s" % s.name
            if len(enabled) > 1 and s in enabled else ""))
    return 0


def cmd_client_setup(args):
    from sluice.clientsetup import OSES, SetupError, render_text, setup

    config = _load(args.config)
    server = _pick(config.servers, args.section, "server", args.config)
    try:
        d = setup(config, server, args.user, host=args.host, oses=[args.os] if args.os else OSES)
    except SetupError as e:
        print("error: %s" % e, file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        import json

        json.dump(d, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    elif args.os == "apple":
        sys.stdout.write(d["apple"]["mobileconfig"])  # sluice client-setup bob --os apple > bob.mobileconfig
    else:
        print(render_text(d))
    return 0


def cmd_genpsk(args):
    from sluice.config.model import genpsk

    print(genpsk())
    return 0


def cmd_crypto(args):
    from sluice.hal.crypto import select as crypto_select

    argv = (["--json"] if args.json else []) + ["--time", str(args.time)]
    return crypto_select.main(argv)


_DAEMON_OPTS = {"--config": "config", "-c": "config", "--section": "section", "-s": "section", "--name": "name",
                "-n": "name"}
_DAEMON_FLAGS = {"--verbose": "verbose", "-v": "verbose", "--syslog": "syslog"}
_CLIENT_OPTS = {"--hook": "hook"}
_CLIENT_FLAGS = {"--netifd": "netifd"}


class DaemonArgs:
    """What argparse makes of a `server`/`client` command line (see daemon_args)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return "DaemonArgs(%s)" % ", ".join("%s=%r" % kv for kv in sorted(self.__dict__.items()))


def daemon_args(argv):
    """`server|client` with only their own options, each once, parsed without argparse; else None and argparse
    parses it as always (help, abbreviations, errors). argparse, re and gettext, with a parser that stayed
    alive for the daemon's life, were about 2 MB of a daemon's resident memory."""
    if not argv or argv[0] not in ("server", "client"):
        return None
    client = argv[0] == "client"
    opts, flags = dict(_DAEMON_OPTS), dict(_DAEMON_FLAGS)
    got = {"cmd": argv[0], "func": cmd_client if client else cmd_server, "config": None, "section": None,
           "name": None, "verbose": False, "syslog": False}
    if client:
        opts.update(_CLIENT_OPTS)
        flags.update(_CLIENT_FLAGS)
        got.update(hook=None, netifd=False)
    seen = set()
    i = 1
    while i < len(argv):
        a, value = argv[i], None
        if a.startswith("--") and "=" in a:
            a, value = a.split("=", 1)
        if a in opts:
            key = opts[a]
            if value is None:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    return None
                i += 1
                value = argv[i]
            got[key] = value
        elif a in flags and value is None:
            key = flags[a]
            got[key] = True
        else:
            return None
        if key in seen:
            return None
        seen.add(key)
        i += 1
    return DaemonArgs(**got) if got["config"] is not None else None


def _parse(argv):
    """argparse's answer, or None after printing the help; the parser is garbage once this returns."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return None
    return args


def build_parser():
    import argparse

    p = argparse.ArgumentParser(prog="sluice", description="L2TP/IPsec VPN client and server")
    p.add_argument("--version", action="version", version="sluice 0.1.0")
    sub = p.add_subparsers(dest="cmd")

    def daemon_args(sp):
        sp.add_argument("--config", "-c", required=True, help="configuration file (UCI syntax)")
        sp.add_argument("--section", "-s", help="which server/client section to run (default: the only one)")
        sp.add_argument("--name", "-n", help="daemon name for the control socket (default: the section name)")
        sp.add_argument("--verbose", "-v", action="store_true", help="debug logging")
        sp.add_argument("--syslog", action="store_true", help="log to syslog instead of stderr")

    sp = sub.add_parser("server", help="run an L2TP server (LNS) in the foreground")
    daemon_args(sp)
    sp.set_defaults(func=cmd_server)
    sp = sub.add_parser("client", help="run an L2TP client (LAC) in the foreground")
    daemon_args(sp)
    sp.add_argument("--hook", help="script run on connect/disconnect (vpnc-script style environment)")
    sp.add_argument("--netifd", action="store_true",
                    help="leave addresses and routes to the hook (netifd configures the interface)")
    sp.set_defaults(func=cmd_client)
    sp = sub.add_parser("status", help="show tunnels and sessions of running daemons")
    sp.add_argument("--name", "-n", help="only this daemon")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_status)
    for c, what in (("connect", "connect a running client"),
                    ("disconnect", "disconnect a running client, or with --user a user's sessions on a server"),
                    ("rekey", "renegotiate the ESP SAs of a running daemon now")):
        sp = sub.add_parser(c, help=what)
        sp.add_argument("--name", "-n", help="the daemon (default: all running)")
        if c == "disconnect":
            sp.add_argument("--user", "-u", help="server: close every session of this user")
        sp.set_defaults(func=cmd_control, command=c)
    sp = sub.add_parser("client-setup", help="set-up instructions for one user's phone or computer")
    sp.add_argument("user", help="the user name (a config user section)")
    sp.add_argument("--os", choices=("windows", "apple", "android", "linux"),
                    help="only this system (apple: prints the .mobileconfig profile itself)")
    sp.add_argument("--config", "-c", default="/etc/config/sluice")
    sp.add_argument("--section", "-s", help="which server section (default: the only enabled one)")
    sp.add_argument("--host", help="the address or name clients dial (default: option public_host)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_client_setup)
    sp = sub.add_parser("check", help="validate a configuration file")
    sp.add_argument("--config", "-c", required=True)
    sp.set_defaults(func=cmd_check)
    sp = sub.add_parser("genpsk", help="print a strong pre-shared key")
    sp.set_defaults(func=cmd_genpsk)
    sp = sub.add_parser("crypto", help="list crypto backends with their self-test results and speed")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--time", type=float, default=0.02, help="seconds of measurement per transform and size")
    sp.set_defaults(func=cmd_crypto)
    return p


def main(argv=None):
    args = daemon_args(sys.argv[1:] if argv is None else list(argv)) or _parse(argv)
    if args is None:
        return EXIT_CONFIG
    from sluice.config import ConfigError

    try:
        code = args.func(args)
    except ConfigError as e:
        for line in getattr(e, "errors", None) or [str(e)]:
            print("error: %s" % line, file=sys.stderr)
        code = EXIT_CONFIG
    except RuntimeError as e:
        print("error: %s" % e, file=sys.stderr)
        code = EXIT_RUNTIME
    except OSError as e:
        # Start-up failures from the system (no /dev/net/tun, an address that is not ours, no route).
        print("error: %s%s" % (e.strerror or e, (": " + e.filename) if getattr(e, "filename", None) else ""),
              file=sys.stderr)
        code = EXIT_RUNTIME
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
