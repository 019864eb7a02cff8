"""What an endpoint asks the engine to do.

Theory of operation. An endpoint (`sluice.endpoint.client`, `sluice.endpoint.server`) takes datagrams,
timers and commands and decides everything; it never touches a socket, a device, a clock or a process.
Each decision that needs the outside world becomes one of these records, appended in order to the
endpoint's queue and drained by the engine with `actions()`. The engine carries them out in that order:
network sends, data-plane changes (SAs and sessions for whichever backend carries packets), host
configuration (addresses, routes), hooks and log lines.

Records are small classes with `__slots__`; `kind` is a short string so an engine can dispatch on a dict.
"""


class Action:
    __slots__ = ()
    kind = "?"

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in self.__slots__ if k not in _SECRET))


_SECRET = ("child",)  # ChildSaUp carries keys: never in a repr


class SendIke(Action):
    """One IKE datagram (or an RFC 3948 NAT keepalive) out of UDP `port` (500 or 4500)."""

    __slots__ = ("port", "peer", "data")
    kind = "send_ike"

    def __init__(self, port, peer, data):
        self.port = port  # our source port: 500, or 4500 (data then starts with the non-ESP marker)
        self.peer = peer  # (ip, port)
        self.data = data  # bytes as they go on the wire after the UDP header


class SendL2tp(Action):
    """One L2TP message (control, or a data message carrying a PPP control frame) for an L2TP peer."""

    __slots__ = ("key", "data")
    kind = "send_l2tp"

    def __init__(self, key, data):
        self.key = key    # the L2TP peer key: (ip, port) plain, (ip, port, inner port) inside IPsec
        self.data = data  # the UDP/1701 payload; the data plane adds UDP and ESP as the key says


class InstallSa(Action):
    """A new ESP SA pair negotiated by IKE: the data plane builds its transforms (once per SA)."""

    __slots__ = ("child", "soft_bytes", "hard_bytes")
    kind = "install_sa"

    def __init__(self, child, soft_bytes, hard_bytes):
        self.child = child            # sluice.ike.events.ChildSaUp (peer, SPIs, transform, keys, encap)
        self.soft_bytes = soft_bytes  # report the SA as expiring past this many bytes (None: no byte limit)
        self.hard_bytes = hard_bytes  # stop using it past this many


class InstallSaInbound(Action):
    """The inbound half of an SA pair being renewed (sluice.ike.events.ChildSaInbound): a data plane that can
    take it ahead of the InstallSa that follows does (both do: the kernel's as an XFRM state with a short hard
    lifetime, the user-space one as an inbound SA that the pair's InstallSa keeps)."""

    __slots__ = ("child",)
    kind = "install_sa_inbound"

    def __init__(self, child):
        self.child = child


class RemoveSa(Action):
    """An ESP SA pair is gone: the data plane forgets both directions."""

    __slots__ = ("spi_in", "spi_out")
    kind = "remove_sa"

    def __init__(self, spi_in, spi_out):
        self.spi_in = spi_in
        self.spi_out = spi_out


class OutboundSa(Action):
    """Which SA carries traffic to `peer` from now on (None: none, traffic to it is dropped)."""

    __slots__ = ("peer", "spi_out", "encap")
    kind = "outbound_sa"

    def __init__(self, peer, spi_out, encap):
        self.peer = peer
        self.spi_out = spi_out
        self.encap = encap


class MovePeer(Action):
    """The peer's NAT mapping moved: SAs and L2TP keys of `old` now belong to `new` (both (ip, port))."""

    __slots__ = ("old", "new")
    kind = "move_peer"

    def __init__(self, old, new):
        self.old = old
        self.new = new


class SessionUp(Action):
    """A PPP session carries IP: the data plane forwards between the tunnel device and this session."""

    __slots__ = ("key", "peer", "header", "sequencing", "address", "ifname", "rate", "mtu")
    kind = "session_up"

    def __init__(self, key, peer, header, sequencing, address, ifname, rate=None, mtu=None):
        self.key = key                # (our tunnel id, our session id): how data messages name it
        self.peer = peer              # the L2TP peer key the messages must come from and go to
        self.header = header          # the L2TP data header for our messages without Ns (bytes)
        self.sequencing = sequencing  # True: every data message needs Ns (the engine's encoder keeps it)
        self.address = address        # the client's inner IPv4 address (server) or ours (client)
        self.ifname = ifname          # the tunnel device
        self.rate = rate              # bytes per second each way (a per-user limit), or None
        self.mtu = mtu                # the session's send MTU (option mtu capped by the peer's MRU), or None


class SessionOpen(Action):
    """An L2TP session is established and its PPP negotiation starts now (sent before its first PPP frame).

    A user-space data plane needs nothing here; a kernel one creates the kernel session and PPP unit, so that
    the peer's PPP frames reach the channel and unit fds (sluice.engine.kernelplane)."""

    __slots__ = ("key", "peer", "peer_tunnel_id", "peer_session_id", "sequencing")
    kind = "session_open"

    def __init__(self, key, peer, peer_tunnel_id, peer_session_id, sequencing):
        self.key = key                          # (our tunnel id, our session id)
        self.peer = peer                        # the L2TP peer key, as in SendL2tp
        self.peer_tunnel_id = peer_tunnel_id
        self.peer_session_id = peer_session_id
        self.sequencing = sequencing


class SendToSession(Action):
    """One IPv4 packet into a session (the server's own answer, e.g. a DHCPACK): framed and sent like data."""

    __slots__ = ("key", "packet")
    kind = "send_to_session"

    def __init__(self, key, packet):
        self.key = key
        self.packet = packet


class SessionDown(Action):
    __slots__ = ("key",)
    kind = "session_down"

    def __init__(self, key):
        self.key = key


class Session6Up(Action):
    """IPv6 of an up session: the data plane carries PPP protocol 0x0057 for it (after its SessionUp)."""

    __slots__ = ("key", "prefix", "peer_ifid", "local_ifid")
    kind = "session6_up"

    def __init__(self, key, prefix, peer_ifid, local_ifid=None):
        self.key = key              # (our tunnel id, our session id), as in SessionUp
        self.prefix = prefix        # server: the session's /64 (8 octets), the only sources it may use; client: None
        self.peer_ifid = peer_ifid  # the peer's IPv6CP interface identifier (8 octets): its link-local fe80::<id>
        self.local_ifid = local_ifid  # ours (server): the kernel plane puts fe80::<id>/64 on the session's ppp unit


class Session6Down(Action):
    """The session's IPv6 is gone (sent before its SessionDown)."""

    __slots__ = ("key",)
    kind = "session6_down"

    def __init__(self, key):
        self.key = key


class Host(Action):
    """One host configuration step, in order: addr_flush, addr_add, link_up, route_add, route_del,
    pin_route (keep the path to the server outside the tunnel), forwarding; for IPv6 addr_add6 / addr_del6
    (ifname, 'address/len'), forwarding6 (route_add / route_del take IPv6 prefixes as they are)."""

    __slots__ = ("op", "args")
    kind = "host"

    def __init__(self, op, *args):
        self.op = op
        self.args = args


class RunHook(Action):
    """Run the client's hook with these variables (the engine adds its own environment)."""

    __slots__ = ("env",)
    kind = "hook"

    def __init__(self, env):
        self.env = env


class OpenTransport(Action):
    """Client: resolve the server and make the sockets for a dial; the engine answers with
    `transport_ready(address, local_ip, now)` or `transport_failed(reason, now)`."""

    __slots__ = ("server", "port", "ipsec")
    kind = "open_transport"

    def __init__(self, server, port, ipsec):
        self.server = server
        self.port = port
        self.ipsec = ipsec


class CloseTransport(Action):
    __slots__ = ()
    kind = "close_transport"


class Log(Action):
    """One log line. `key` names the kind of event: the engine folds repeats of one key into a count."""

    __slots__ = ("level", "text", "key")
    kind = "log"

    def __init__(self, level, text, key=None):
        self.level = level  # 'info', 'warning', 'error'
        self.text = text    # peer-supplied parts already made safe (sluice.endpoint.safe)
        self.key = key      # the format string or a name; None: never folded


class InternalError(Action):
    """A bug of ours surfaced inside a machine (not a malformed packet): logged once with its traceback,
    repeats counted (the engine rate-limits by where it happened)."""

    __slots__ = ("where", "error")
    kind = "internal_error"

    def __init__(self, where, error):
        self.where = where
        self.error = error


class Queue:
    """The endpoint's outbox."""

    __slots__ = ("items",)

    def __init__(self):
        self.items = []

    def add(self, action):
        self.items.append(action)

    def log(self, level, fmt, *args):
        self.items.append(Log(level, fmt % args if args else fmt, fmt))

    def drain(self):
        out = self.items
        self.items = []
        return out
