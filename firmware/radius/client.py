"""RadiusClient: requests to a list of RADIUS servers with retransmission and failover, as a sans-IO machine.

Theory of operation. One RadiusClient serves one kind of server (authentication or accounting; the engine
makes one of each). ``request(code, attrs, now)`` queues a request and returns a handle. The request goes to
the first server that is not marked dead (in configured order), with an Identifier free for that server
(RFC 2865 3: the Identifier, together with the source address and port, matches replies to requests, so
identifiers are kept per server). It is retransmitted unchanged every ``timeout`` seconds up to ``retries``
times (RFC 5080 2.2.1: a retransmission keeps Identifier and authenticator); then the server is marked dead
for ``dead_time`` seconds and the request is rebuilt for the next server (new Identifier, new Request
Authenticator, its own secret). When every server has had its tries, the request ends with
RadiusFailed(handle, "RADIUS unreachable: ..."): a login never hangs on RADIUS. With every server dead, new
requests still try them all (a dead mark only reorders).

Replies: ``datagram_received(data, server, now)`` with `server` the opaque key (the engine's (host, port))
the datagram came from. A reply is accepted only when it is the right code for the request, its Response
Authenticator verifies with that server's secret and, for Access replies, it carries a valid
Message-Authenticator (RFC 3579 3.2; required against BlastRADIUS; ``require_ma_accounting`` makes it
required on Accounting-Response too). Anything else is counted in ``stats`` and dropped, and the request
keeps waiting: a forged reply cannot end it. Accepted replies come out as RadiusReply(handle, packet).

Bounds: at most ``max_pending`` requests in flight (further ones fail at once with a clear reason), 256 per
server by the Identifier space. Outputs are pulled: ``datagrams_to_send()`` -> [(server, bytes)],
``next_event()``, ``get_timer()``; time comes in as ``now``, randomness from the injected ``rng``.
"""

from sluice.radius import packet as P


class RadiusServer:
    """One configured server: where it is (an opaque key for the engine) and its shared secret."""

    __slots__ = ("key", "secret", "name", "dead_until", "next_ident", "sent", "replies", "timeouts")

    def __init__(self, key, secret, name=None):
        self.key = key  # opaque hashable, e.g. ('192.0.2.1', 1812); the engine maps it to a socket address
        self.secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        self.name = name if name is not None else (
            "%s:%s" % (key[0], key[1]) if isinstance(key, tuple) and len(key) == 2 else str(key))
        self.dead_until = None
        self.next_ident = 0
        self.sent = 0
        self.replies = 0
        self.timeouts = 0

    def __repr__(self):
        return "RadiusServer(%r)" % (self.name,)  # never the secret


class RadiusReply:
    """A verified reply to one of our requests."""

    __slots__ = ("handle", "packet", "server")

    def __init__(self, handle, packet, server):
        self.handle = handle  # what request() returned
        self.packet = packet  # the decoded Packet (code, attrs)
        self.server = server  # the RadiusServer's name that answered

    def __repr__(self):
        return "RadiusReply(handle=%r, %r, server=%r)" % (self.handle, self.packet, self.server)


class RadiusFailed:
    """A request ended without a reply: every server timed out, or the pending table was full."""

    __slots__ = ("handle", "reason")

    def __init__(self, handle, reason):
        self.handle = handle  # what request() returned
        self.reason = reason  # plain words for the log: which servers were tried and how often

    def __repr__(self):
        return "RadiusFailed(handle=%r, reason=%r)" % (self.handle, self.reason)


class _Pending:
    __slots__ = ("handle", "code", "attrs", "server_index", "tried", "ident", "authenticator", "data",
                 "sends", "deadline", "servers_tried", "refused")

    def __init__(self, handle, code, attrs):
        self.handle = handle
        self.code = code
        self.attrs = attrs
        self.server_index = -1
        self.tried = 0  # servers tried so far
        self.ident = None
        self.authenticator = None
        self.data = None
        self.sends = 0
        self.deadline = None
        self.servers_tried = []
        self.refused = None  # (server name, why) of the last reply that failed verification


class RadiusClient:
    """Requests to `servers` (a list of RadiusServer, in preference order)."""

    def __init__(self, servers, rng, timeout=3.0, retries=2, dead_time=30.0, max_pending=256,
                 require_ma_accounting=False, kind="RADIUS"):
        if not servers:
            raise ValueError("RadiusClient needs at least one server")
        self.servers = list(servers)
        self.rng = rng
        for s in self.servers:
            s.next_ident = rng(1)[0]  # a restarted daemon does not reuse the last run's identifiers first
        self.timeout = timeout
        self.retries = retries
        self.dead_time = dead_time
        self.max_pending = max_pending
        self.require_ma_accounting = require_ma_accounting
        self.kind = kind  # "RADIUS authentication" / "RADIUS accounting", for reasons
        self._pending = {}  # handle -> _Pending
        self._by_ident = {}  # (server key, ident) -> handle
        self._out = []
        self._events = []
        self._next_handle = 1
        self.stats = {"requests": 0, "sent": 0, "retransmits": 0, "replies": 0, "failed": 0, "malformed": 0,
                      "unmatched": 0, "bad_authenticator": 0, "wrong_code": 0, "unknown_server": 0,
                      "table_full": 0}

    # -- API ---------------------------------------------------------------------------------------------

    def request(self, code, attrs, now):
        """Queue a request (attrs: [(type, value bytes)], User-Password in the clear); returns its handle."""
        handle = self._next_handle
        self._next_handle += 1
        self.stats["requests"] += 1
        if len(self._pending) >= self.max_pending:
            self.stats["table_full"] += 1
            self.stats["failed"] += 1
            self._events.append(RadiusFailed(handle, "%s: %d requests already pending; refused" % (
                self.kind, len(self._pending))))
            return handle
        p = _Pending(handle, code, list(attrs))
        self._pending[handle] = p
        self._next_server(p, now)
        return handle

    def cancel(self, handle):
        """Forget a request (its session went away); a late reply is then counted as unmatched."""
        p = self._pending.pop(handle, None)
        if p is not None and p.ident is not None:
            self._by_ident.pop((self.servers[p.server_index].key, p.ident), None)

    def pending(self):
        return len(self._pending)

    def datagrams_to_send(self):
        out = self._out
        self._out = []
        return out

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        return None

    def get_timer(self):
        best = None
        for p in self._pending.values():
            if p.deadline is not None and (best is None or p.deadline < best):
                best = p.deadline
        return best

    def handle_timer(self, now):
        due = [p for p in self._pending.values() if p.deadline is not None and p.deadline <= now]
        due.sort(key=lambda p: p.handle)  # deterministic order on the wire
        for p in due:
            if p.handle not in self._pending:
                continue
            if p.sends <= self.retries:
                p.sends += 1
                p.deadline = now + self.timeout
                self.stats["retransmits"] += 1
                self._emit(p)
                continue
            server = self.servers[p.server_index]
            server.timeouts += 1
            server.dead_until = now + self.dead_time
            self._by_ident.pop((server.key, p.ident), None)
            self._next_server(p, now)

    def datagram_received(self, data, server_key, now):
        server = None
        for s in self.servers:
            if s.key == server_key:
                server = s
                break
        if server is None:
            self.stats["unknown_server"] += 1
            return
        try:
            pkt = P.decode(data)
        except ValueError:
            self.stats["malformed"] += 1
            return
        handle = self._by_ident.get((server_key, pkt.ident))
        p = self._pending.get(handle) if handle is not None else None
        if p is None:
            self.stats["unmatched"] += 1
            return
        if pkt.code not in P.REPLIES.get(p.code, ()):
            self.stats["wrong_code"] += 1
            return
        require = p.code == P.ACCESS_REQUEST or self.require_ma_accounting
        why = P.verify_reply(data, p.authenticator, server.secret, require)
        if why is not None:
            self.stats["bad_authenticator"] += 1
            p.refused = (server.name, why)
            return
        del self._pending[handle]
        del self._by_ident[(server_key, pkt.ident)]
        server.replies += 1
        server.dead_until = None
        self.stats["replies"] += 1
        self._events.append(RadiusReply(handle, pkt, server.name))

    def status(self):
        return [{"server": s.name, "sent": s.sent, "replies": s.replies, "timeouts": s.timeouts,
                 "dead": s.dead_until is not None} for s in self.servers]

    # -- internals ---------------------------------------------------------------------------------------

    def _order(self, now):
        """Server indexes: alive ones first (configured order), then the dead ones."""
        alive = []
        dead = []
        for i in range(len(self.servers)):
            d = self.servers[i].dead_until
            if d is not None and d <= now:
                self.servers[i].dead_until = d = None
            (dead if d is not None else alive).append(i)
        return alive + dead

    def _next_server(self, p, now):
        for i in self._order(now):
            if i in p.servers_tried:
                continue
            ident = self._free_ident(self.servers[i])
            if ident is None:
                continue
            p.servers_tried.append(i)
            p.server_index = i
            p.ident = ident
            server = self.servers[i]
            self._by_ident[(server.key, ident)] = p.handle
            p.authenticator = self.rng(16) if p.code == P.ACCESS_REQUEST else None
            try:
                p.data = P.encode_request(p.code, ident, p.attrs, server.secret, p.authenticator)
            except ValueError as e:  # e.g. a peer's 200-octet PAP password: RADIUS cannot carry it
                del self._by_ident[(server.key, ident)]
                del self._pending[p.handle]
                self.stats["failed"] += 1
                self._events.append(RadiusFailed(p.handle, "%s: the request cannot be encoded: %s" % (self.kind, e)))
                return
            if p.authenticator is None:
                p.authenticator = p.data[4:20]
            p.sends = 1
            p.deadline = now + self.timeout
            self._emit(p)
            return
        del self._pending[p.handle]
        self.stats["failed"] += 1
        names = ", ".join(self.servers[i].name for i in p.servers_tried) or "none"
        if p.refused is not None:
            # Not unreachable: something answered, and we refused it. Say which and why.
            why = "%s: every reply was refused (last from %s: %s); tried %s" % (
                self.kind, p.refused[0], p.refused[1], names)
            if "Message-Authenticator" in p.refused[1]:
                why += ("; the server must send Message-Authenticator in Access replies (FreeRADIUS before 3.2.5: "
                        "add 'update reply { Message-Authenticator := 0x00 }' to post-auth)")
        elif p.servers_tried:
            why = "%s unreachable: no reply from %s after %d tries each, %.0f s apart" % (
                self.kind, names, self.retries + 1, self.timeout)
        else:
            why = "%s: every server has 256 requests in flight; refused" % self.kind
        self._events.append(RadiusFailed(p.handle, why))

    def _free_ident(self, server):
        for _ in range(256):
            ident = server.next_ident
            server.next_ident = (ident + 1) & 0xFF
            if (server.key, ident) not in self._by_ident:
                return ident
        return None

    def _emit(self, p):
        server = self.servers[p.server_index]
        server.sent += 1
        self.stats["sent"] += 1
        self._out.append((server.key, p.data))
