"""Carries out what an endpoint decides: the thin engine around `sluice.endpoint`.

After every input (a datagram the data plane handed up, a timer, a command) the runner drains the
endpoint's actions and hands each to the piece of IO it names: the data plane (`userplane.UserPlane`), the
host configuration and hooks (`host.HostRunner`), the log. It then re-arms the one timer the endpoint
asked for. It decides nothing about the protocols.

`build_server` / `build_client` make the pieces from a configuration: the crypto backend is chosen here
once and injected into both IKE and ESP (with `option crypto 'pure'`, `cryptography` is never imported).
"""

import os

from sluice.engine.timers import TimerSlot
from sluice.hal.net.sockets import socket

_LEVELS = ("info", "warning", "error", "debug")


class Runner:
    def __init__(self, loop, log, endpoint, plane, host, net=None, clock=None):
        self.loop = loop
        self.log = log
        self.endpoint = endpoint
        self.plane = plane
        self.host = host
        self.net = net          # client: resolve + sockets for each dial (RealNet or a twin)
        self.clock = clock
        self.timer = TimerSlot(loop, self._fire)
        self.transport = None   # client: (address, ipsec) the plane's sockets are open for
        self.radius = None      # RadiusSockets when the server uses RADIUS
        self.internal_errors = 0
        self._dispatch = {
            "send_ike": lambda a, now: self.plane.send_ike(a.port, a.peer, a.data),
            "send_l2tp": lambda a, now: self.plane.send_l2tp(a.key, a.data),
            "install_sa": self._install_sa,
            "install_sa_inbound": self._install_sa_inbound,
            "remove_sa": lambda a, now: self.plane.remove_sa(a.spi_in, a.spi_out),
            "outbound_sa": lambda a, now: self.plane.outbound_sa(a.peer, a.spi_out, a.encap),
            "move_peer": lambda a, now: self.plane.move_peer(a.old, a.new),
            "session_open": lambda a, now: self.plane.session_open(a),
            "session_up": lambda a, now: self.plane.session_up(a),
            "session_down": lambda a, now: self.plane.session_down(a.key),
            "session6_up": lambda a, now: self.plane.session6_up(a),
            "session6_down": lambda a, now: self.plane.session6_down(a.key),
            "host": self._host,
            "hook": lambda a, now: self.host.run_hook(a.env),
            "open_transport": self._open_transport,
            "close_transport": lambda a, now: self._close_transport(),
            "log": lambda a, now: self.log.event(a.key, _level(a.level), a.text),
            "internal_error": lambda a, now: self.on_internal_error(a.error),
            "send_to_session": lambda a, now: self.plane.send_to_session(a.key, a.packet),
            "send_radius": lambda a, now: self.radius.send(a.which, a.dst, a.data),
        }

    @property
    def exit_code(self):
        """What the endpoint asked the daemon to exit with (a refused login under netifd), or None."""
        return getattr(self.endpoint, "exit_code", None)

    def on_internal_error(self, exc):
        """Set by the daemon to its rate-limited reporter; by default, count and log once per kind."""
        self.internal_errors += 1
        self.log.error("internal error in a protocol machine (the daemon carries on): %s: %s",
                       type(exc).__name__, exc)

    def now(self):
        if self.clock is not None:
            return self.clock()
        t = getattr(self.loop, "time", None)  # the in-memory twin's virtual clock
        return t() if t is not None else _monotonic()

    # -- driving the endpoint ------------------------------------------------------------------------------

    def flush(self, now):
        ep = self.endpoint
        for _ in range(64):  # an action may feed the endpoint (open_transport): drain until quiet, bounded
            acts = ep.actions()
            if not acts:
                break
            for a in acts:
                self._dispatch[a.kind](a, now)
        self.timer.arm(ep.get_timer())

    def _fire(self, now):
        self.endpoint.handle_timer(now)
        self.flush(now)

    def start(self, now):
        self.endpoint.start(now)
        self.flush(now)

    def command(self, name, now, *args, **kw):
        r = getattr(self.endpoint, name)(now, *args, **kw)
        self.flush(now)
        return r

    def reload(self, config, section):
        now = self.now()
        if getattr(self.endpoint, "users", None) is not None:
            self.endpoint.reload(section, config.users, now)
        else:
            self.endpoint.reload(section, now)
        self.flush(now)

    def idle(self):
        return self.endpoint.idle() and self.host.idle()

    def finish(self, now, deadline):
        """The daemon is about to exit: last goodbyes, then whatever host steps and hooks are still queued."""
        self.command("finish", now)
        finish = getattr(self.plane, "finish", None)
        if finish is not None:
            finish()
        self.host.run_now(deadline)

    def close(self):
        self.plane.close()
        if self.radius is not None:
            self.radius.close()

    # -- what the data plane hands up ----------------------------------------------------------------------

    def on_ike(self, data, local, peer, now):
        self.endpoint.ike_received(data, local, peer, now)
        self.flush(now)

    def on_l2tp(self, data, key, now):
        self.endpoint.l2tp_received(data, key, now)
        self.flush(now)

    def on_esp_from(self, spi_in, outer, now):
        self.endpoint.esp_from(spi_in, outer, now)
        self.flush(now)

    hint_unknown_spi = True  # tell a peer that lost us (after our restart) with INVALID-SPI (rate-limited)

    def on_unknown_spi(self, spi, outer, encap, size, now):
        self.endpoint.unknown_spi(spi, outer, encap, size, now)
        self.flush(now)

    def on_dhcp(self, key, packet, now):
        self.endpoint.dhcp_inform(key, packet, now)
        self.flush(now)

    def on_radius(self, which, data, src, now):
        self.endpoint.radius_received(which, data, src, now)
        self.flush(now)

    def on_traffic(self, peer, now):
        self.endpoint.traffic_seen(peer, now)

    def on_expiring(self, spi_in, hard, now):
        now = self.now() if now is None else now
        self.endpoint.sa_expiring(spi_in, hard, now)
        self.flush(now)

    # -- actions with IO beyond the plane ------------------------------------------------------------------

    def _host(self, a, now):
        step = getattr(self.plane, "host_step", None)
        op, args = step(a.op, a.args) if step is not None else (a.op, a.args)
        self.host.host(op, args)

    def _install_sa(self, a, now):
        err = self.plane.install_sa(a)
        if err:
            self.log.error("%s", err)

    def _install_sa_inbound(self, a, now):
        early = getattr(self.plane, "install_sa_inbound", None)  # both planes take it; a test's may not
        if early is not None:
            early(a)

    def _open_transport(self, a, now):
        net = self.net
        try:
            addr = net.resolve(a.server, a.port)
            if self.transport == "fixed":  # a test handed in a connected socket
                self.endpoint.transport_ready(addr, None, now)
                return
            want = (addr, a.ipsec)
            if self.transport is not None and self.transport != want:
                self._close_transport()
            if self.transport is None:
                if a.ipsec:
                    self.plane.open_ipsec()
                else:
                    self.plane.open_plain(net.connected_udp(addr))
                self.transport = want
            local = net.source_address(addr[0]) if a.ipsec else None
        except (RuntimeError, OSError) as e:
            self.endpoint.transport_failed(getattr(e, "strerror", None) or str(e), now)
            return
        self.endpoint.transport_ready(addr, local, now)

    def _close_transport(self):
        self.plane.close_sockets()
        self.transport = None

    # -- status --------------------------------------------------------------------------------------------

    def status(self):
        now = self.now()
        st = self.endpoint.status(now)
        plane = self.plane
        st["ifname"] = plane.tun.name if plane.tun is not None else getattr(plane, "ifname", None)
        datapath = getattr(plane, "datapath", "user")
        st["datapath"] = datapath
        why = getattr(self, "datapath_why", None)
        if why:
            st["datapath_why"] = why   # e.g. why `auto` chose the user-space path
        wall = _wall()
        for t in st.get("tunnels", ()):
            for s in t.get("sessions", ()):
                c = plane.session_counters((t.get("tunnel_id"), s.get("session_id")))
                if c is not None:
                    s.update(c)     # a kernel-path server's user-space session says "datapath": "user" itself
                if "datapath" not in s:
                    s["datapath"] = datapath
                if "since" in s:
                    s["since"] = round(wall - (now - s["since"]), 1)  # wall-clock time the session started
        ipsec = st.get("ipsec")
        if ipsec is not None:
            counts = plane.sa_counters()
            for sa in ipsec["sas"]:
                sa.update(counts.get(int(sa["spi_in"], 16), {}))
                out = counts.get(int(sa["spi_out"], 16), {})
                sa["packets_out"] = out.get("packets_out", 0)
                sa["bytes_out"] = out.get("bytes_out", 0)
        # Kept for the tools that read it (LuCI, the interop lab): the transport as one block.
        transport = {"ipsec": ipsec is not None or bool(plane.s500), "sas": ipsec["sas"] if ipsec else []}
        transport.update(plane.counters)
        if ipsec is not None:
            transport["ike"] = ipsec["ike"]
        st["transport"] = transport
        st["counters"] = dict(st.get("counters") or {})
        if st.get("role") == "client" and plane.single is not None:
            c = plane.session_counters(plane.single.key) or {}
            for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes"):
                st["counters"][k] = c.get(k, 0)
        if st.get("state") == "up" and not self.host.idle():
            # The protocols are up but addresses, routes or the hook are still being applied: not usable yet.
            st["state"] = "configuring"
        st["internal_errors"] = self.internal_errors
        return st


def _level(name):
    from sluice.engine import log as L

    return {"debug": L.DEBUG, "info": L.INFO, "warning": L.WARNING, "error": L.ERROR}.get(name, L.INFO)


def _monotonic():
    from sluice.engine.loop import monotonic

    return monotonic()


def _wall():
    import time

    return time.time()


# -- real IO ---------------------------------------------------------------------------------------------------

class RealSockets:
    """Sockets for the user-space plane (the in-memory twin is sluice.engine.twins.MemoryNet)."""

    def __init__(self, log):
        self.log = log

    def udp(self, address, port, client):
        from sluice.hal.net.udp import bind_udp

        return bind_udp(address, port, fallback_ephemeral=client)

    def raw_esp(self):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
            s.setblocking(False)
            return s
        except OSError as e:
            # Without CAP_NET_RAW only UDP-encapsulated ESP works; say so once.
            self.log.warning("no raw ESP socket (%s): only NAT-T (UDP 4500) peers can connect", e.strerror)
            return None

    def resolve(self, host, port):
        try:
            # An ASCII name as bytes: CPython passes a str through the idna codec, whose import brings re,
            # stringprep and unicodedata (~0.4 MB resident) into a daemon that needs none of them.
            name = host.encode("ascii") if isinstance(host, str) and host.isascii() else host
            infos = socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise RuntimeError("cannot resolve server %r: %s" % (host, e))
        return infos[0][4]

    def connected_udp(self, addr):
        from sluice.hal.net.udp import bind_udp

        s = bind_udp("0.0.0.0", 1701, fallback_ephemeral=True)
        try:
            s.connect(addr)
        except OSError:
            s.close()
            raise
        return s

    def source_address(self, server_ip):
        """The address this host sends from toward server_ip (asks the routing table; no packet is sent)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((server_ip, 500))
            return s.getsockname()[0]
        finally:
            s.close()


def choose_crypto(choice, log, esp=True, certs=False):
    """The crypto backend module for `option crypto` ('auto' measures, once per boot; a name must pass its
    known answers). Without ESP to carry (kernel mode: ESP is XFRM's), 'auto' takes the pure backend for IKE:
    C hashes, pow() for DH, pure AES for a few messages, and no OpenSSL mapped (about 30 MB less resident
    than measuring); certificates need RSA and X.509, i.e. openssl."""
    from sluice.hal import crypto

    if choice and choice != "auto":
        from sluice.hal.crypto import kat

        mod = crypto.load(choice)
        reason = mod.available()
        if reason is not None or not kat.ok(kat.run(mod)):
            raise RuntimeError("crypto backend %r cannot be used here: %s" % (
                choice, reason or "it failed its known-answer tests (`sluice crypto` shows which)"))
        log.info("crypto backend: %s for IKE%s (set by option crypto)", choice, " and ESP" if esp else "")
        return mod
    if not esp:
        name = "openssl" if certs else "pure"
        mod = crypto.load(name)
        reason = mod.available()
        if reason is not None:
            raise RuntimeError("crypto backend %r cannot be used here: %s" % (name, reason))
        log.info("crypto backend: %s for IKE (ESP is the kernel's%s)", name,
                 "; certificates need RSA" if certs else "")
        return mod
    from sluice.engine.control import rundir
    from sluice.hal.crypto import select

    chosen, cached = select.choose_cached(rundir())
    if chosen is None:
        raise RuntimeError("no crypto backend passed its known-answer tests: run `sluice crypto`")
    log.info("crypto backend: %s for IKE and ESP (%s; `sluice crypto` shows the measurements)", chosen,
             "measured earlier this boot" if cached else "measured now")
    return crypto.load(chosen)


def _uses_certs(section):
    return bool(getattr(section, "cert", None) or getattr(section, "key", None) or getattr(section, "ca", None))


def _tunnel_config(section):
    from sluice.l2tp.tunnel import TunnelConfig

    return TunnelConfig(host_name=section.hostname or socket.gethostname() or "sluice",
                        secret=(getattr(section, "tunnel_secret", None) or None),
                        hello_interval=getattr(section, "hello_interval", 60))


def _lifetime_bytes(section):
    kb = getattr(section, "lifetime_kbytes", 0) or 0
    return kb * 1024 if kb else None


def _kernel_unsupported(section, role, config=None):
    """Why this section needs the user-space path whatever the kernel has, or None."""
    if role == "server" and (getattr(section, "rate_kbit", 0) or
                             any(getattr(u, "rate_kbit", 0) for u in getattr(config, "users", ()) or ())):
        import shutil

        if not shutil.which("tc"):
            return ("rate_kbit on the kernel path needs tc (OpenWrt: tc-tiny, kmod-sched-core, kmod-sched); "
                    "without it only the user-space path polices rates")
    return None  # the server's IPv6 and DHCPINFORM answers: the kernel plane's unit sockets (kernelplane.py)


def choose_datapath(section, role, log, probe=None, config=None, multi_nat=None):
    """('kernel' | 'user', why) for `option datapath`: 'user' as asked; 'kernel' when the probe passes (else
    the daemon refuses to start, saying what is missing); 'auto' the kernel where it can, else user space.
    A server's clients that share an address with another on a kernel before 6.11 are carried in user space
    by the kernel plane itself (usersessions); the log says so when the kernel is that old."""
    want = getattr(section, "datapath", None) or "auto"
    if want == "user":
        return "user", "option datapath 'user'"
    why = _kernel_unsupported(section, role, config)
    if why is None:
        if probe is None:
            from sluice.hal.net.ppp_kernel import probe
        ok, why = probe()
        if ok and role == "server":
            from sluice.hal.net.kernel_path import probe_multi_nat

            shared, why2 = (multi_nat or probe_multi_nat)()
            if not shared:
                why += "; %s: the second and later client at one address run their L2TP/PPP data in user space" % why2
        if ok:
            log.info("data path: kernel (%s)", why)
            return "kernel", why
    if want == "kernel":
        raise RuntimeError("option datapath 'kernel' cannot be used here: %s" % why)
    log.info("data path: user space (option datapath 'auto': %s)", why)
    return "user", why


def build_server(config, section, loop, log, tun=None, sockets=None, host=None, rng=os.urandom, backend=None,
                 plain_sock=None, datapath=None, kernel=None, kernel_sockets=None):
    """A Runner for a server section: sockets bound first, then the crypto backend chosen, then IKE."""
    from sluice.endpoint.server import ServerEndpoint

    why = None
    if datapath is None:
        datapath, why = choose_datapath(section, "server", log, config=config)
    sockets = sockets or RealSockets(log)
    if tun is None:
        from sluice.hal.net.tun import TunDevice

        tun = TunDevice(section.ifname)
    if host is None:
        from sluice.engine.host import HostRunner

        host = HostRunner(loop, log)
    runner = Runner(loop, log, None, None, host, net=sockets)
    if datapath == "kernel":
        from sluice.engine.kernelplane import KernelPlane

        # The TUN stays as the anchor of local_ip (the server's Host steps name it); data uses the ppp units.
        plane = KernelPlane(loop, runner, "server", rng, section.ipsec, listen=section.listen,
                            sockets=kernel_sockets, kernel=kernel, host=host, ifname=section.ifname,
                            local_ip=section.local_ip, mtu=section.mtu, tun=tun, log=log, port=section.port)
        n = plane.start()
        if n and sum(n):
            log.info("removed %d XFRM states and %d policies an earlier run left behind" % tuple(n))
    else:
        from sluice.engine.userplane import UserPlane  # with ESP, l2tp.data, ppp.framing: not in kernel mode

        plane = UserPlane(loop, runner, "server", None, rng, tun, section.ipsec, listen=section.listen,
                          sockets=sockets)
    ike = None
    if section.ipsec:
        plane.open_ipsec()
        if backend is None:
            backend = choose_crypto(_crypto_option(config), log, datapath != "kernel", _uses_certs(section))
        from sluice.engine.ikeconf import responder_config
        from sluice.ike.table import IkeTable

        ike = IkeTable(responder_config(section, _kernel_esp(plane, log) if datapath == "kernel" else None), rng,
                       backend)
    elif datapath == "kernel":
        plane.open_plain(plain_sock if plain_sock is not None else
                         plane.sockets.l2tp_udp(section.listen, section.port))
    else:
        plane.open_plain(plain_sock if plain_sock is not None else sockets.udp(section.listen, section.port, False))
    plane.backend = backend
    runner.datapath_why = why
    if datapath == "kernel" and section.ipsec:
        log.info("ESP is the kernel's (XFRM); the crypto backend serves IKE only")
    aaa = None
    if getattr(section, "radius_auth", None) or getattr(section, "radius_acct", None):
        aaa, runner.radius = _radius(section, loop, runner, sockets, rng)
    ep = ServerEndpoint(section, config.users, rng, _tunnel_config(section), ike=ike,
                        lifetime_bytes=_lifetime_bytes(section), aaa=aaa)
    ep.counters_of = plane.counters_of
    plane.dhcp = bool(getattr(section, "client_routes", None) or getattr(section, "domain", None))
    runner.endpoint = ep
    runner.plane = plane
    plane.attach_tun()
    return runner


class RadiusSockets:
    """The server's RADIUS sockets: one each for authentication and accounting (ephemeral ports), and the
    Dynamic Authorization listener (RFC 5176) when `radius_dae_port` is set."""

    def __init__(self, loop, runner, socks):
        self.loop = loop
        self.socks = socks  # which -> socket
        for which, s in socks.items():
            loop.add_reader(s, lambda now, w=which, s=s: self._readable(w, s, now))
        self.runner = runner
        self.errors = 0

    def _readable(self, which, sock, now):
        for _ in range(16):
            try:
                data, src = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.errors += 1
                return
            self.runner.on_radius(which, data, src, now)

    def send(self, which, dst, data):
        s = self.socks.get(which)
        if s is None:
            return
        try:
            s.sendto(data, dst)
        except OSError:
            self.errors += 1

    def close(self):
        for s in self.socks.values():
            self.loop.remove_reader(s)
            s.close()


def _radius(section, loop, runner, sockets, rng):
    """Resolve the RADIUS servers (once, at start) and open the sockets; the endpoint gets addresses only."""
    from sluice.endpoint.aaa import Aaa

    def resolve(entries):
        out = []
        for host, port in entries or ():
            out.append((sockets.resolve(host, port)[0], port))
        return out

    auth, acct = resolve(section.radius_auth), resolve(section.radius_acct)
    # Any local address: the kernel picks the one that routes to each RADIUS server (the server's own
    # configuration lists the NAS by that address), which is seldom the address clients dial.
    listen = "0.0.0.0"
    socks = {}
    if auth:
        socks["auth"] = sockets.udp(listen, 0, True)
    if acct:
        socks["acct"] = sockets.udp(listen, 0, True)
    dae_clients = None
    if getattr(section, "radius_dae_port", 0):
        socks["dae"] = sockets.udp(listen, section.radius_dae_port, False)
        dae_clients = sorted(set(ip for ip, _ in auth + acct))
    secret = section.radius_secret.encode() if isinstance(section.radius_secret, str) else section.radius_secret
    nas_ip = None  # NAS-Identifier names us (RFC 2865 5.4 asks for one of the two)
    aaa = Aaa(auth, acct, secret, section.radius_nas_id or socket.gethostname(), nas_ip, rng, None,
              dae_clients=dae_clients)
    return aaa, RadiusSockets(loop, runner, socks)


def build_client(config, section, loop, log, hook=None, configure_host=True, interface=None, tun=None,
                 sockets=None, host=None, rng=os.urandom, backend=None, plain_sock=None, datapath=None, kernel=None,
                 kernel_sockets=None):
    from sluice.endpoint.client import ClientEndpoint

    if datapath is None:
        datapath = choose_datapath(section, "client", log, config=config)[0]
    sockets = sockets or RealSockets(log)
    if tun is None and datapath != "kernel":
        from sluice.hal.net.tun import TunDevice

        tun = TunDevice(section.ifname)
    if host is None:
        from sluice.engine.host import HostRunner

        host = HostRunner(loop, log, configure=configure_host, hook=hook)
    runner = Runner(loop, log, None, None, host, net=sockets)
    if datapath == "kernel":
        from sluice.engine.kernelplane import KernelPlane

        # The session's ppp unit is named ifname: the client's Host steps and hooks name it as they named the TUN.
        plane = KernelPlane(loop, runner, "client", rng, section.ipsec, sockets=kernel_sockets, kernel=kernel,
                            host=host, ifname=section.ifname, mtu=section.mtu, log=log)
        n = plane.start()
        if n and sum(n):
            log.info("removed %d XFRM states and %d policies an earlier run left behind" % tuple(n))
    else:
        from sluice.engine.userplane import UserPlane

        plane = UserPlane(loop, runner, "client", None, rng, tun, section.ipsec, sockets=sockets)
    make_ike = None  # no IPsec: no IKE
    if section.ipsec:
        if backend is None:
            backend = choose_crypto(_crypto_option(config), log, datapath != "kernel", _uses_certs(section))
        from sluice.engine.ikeconf import initiator_config
        from sluice.ike.table import IkeTable

        files = initiator_config(section, _kernel_esp(plane, log) if datapath == "kernel" else None)
        make_ike = _ike_factory(files, rng, backend, IkeTable)
    plane.backend = backend
    if datapath == "kernel" and section.ipsec:
        log.info("ESP is the kernel's (XFRM); the crypto backend serves IKE only")
    if "mschapv2" in (section.auth or ()):
        _load_mschap()
    ep = ClientEndpoint(section, rng, _tunnel_config(section), make_ike=make_ike,
                        lifetime_bytes=_lifetime_bytes(section), interface=interface)
    runner.endpoint = ep
    runner.plane = plane
    if plain_sock is not None:
        plane.open_plain(plain_sock)
        runner.transport = "fixed"
    plane.attach_tun()
    return runner


def _load_mschap():
    """MS-CHAPv2's MD4 and DES are pure Python, loaded on first use (a server or a PAP-only client never loads
    them): a client that may answer MS-CHAPv2 loads them at start, not between the server's Challenge and its
    Response (about 0.4 s of the set-up under the peer lab's emulated CPU)."""
    from sluice.hal.crypto import digest

    digest.md4(b"")
    digest.des_encrypt_block(bytes(8), bytes(8))


def _kernel_esp(plane, log):
    """The ESP proposal filter of the kernel data path: only what this kernel can install is negotiated."""
    from sluice.engine.ikeconf import kernel_esp_filter

    return kernel_esp_filter(plane.esp_supported, log)


def _ike_factory(files, rng, backend, table):
    """(local_ip, server_ip) -> IkeTable: the client builds one per server address it dials."""

    def make_ike(local_ip, server_ip):
        return table(files(local_ip, server_ip), rng, backend)

    return make_ike


def _crypto_option(config):
    g = getattr(config, "globals", None)
    return getattr(g, "crypto", None) or "auto"
