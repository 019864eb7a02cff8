"""DaeListener: Disconnect-Request and CoA-Request from RADIUS servers (RFC 5176), as a sans-IO machine.

Theory of operation. The engine binds UDP `radius_dae_port` (3799 by convention, RFC 5176 3) and hands every
datagram to ``datagram_received(data, peer, now)``, `peer` being (host, port). A request is accepted only when
its source host is a configured DAE client, its code is Disconnect-Request (40) or CoA-Request (43), its
Request Authenticator verifies with that client's secret (RFC 5176 3.5, computed as for accounting) and its
Message-Authenticator verifies (required unless ``require_message_authenticator`` is off; RFC 5176 3.3).
Anything else is counted in ``stats`` and dropped without a reply (RFC 5176 3: silently discarded).

An accepted request becomes DaeRequest(ref, kind, packet, peer); the engine finds the sessions it names
(``identify(packet)``: User-Name, Acct-Session-Id, Framed-IP-Address, NAS-Identifier) and answers with
``answer(ref, ok, error_cause, now)``: Disconnect-ACK/NAK or CoA-ACK/NAK, signed with a Message-Authenticator
and the Response Authenticator. A retransmitted request (same peer, Identifier and authenticator) gets the
same reply again from a small cache, or nothing while the first copy is still being decided (RFC 5176 2.3,
RFC 5080 2.2.2). Requests the engine never answers expire after ``answer_time`` seconds (with a NAK
Error-Cause 506, Resources Unavailable). Both tables are bounded.
"""

from sluice.radius import packet as P


class DaeRequest:
    """A verified Disconnect-Request or CoA-Request for the engine to act on and answer."""

    __slots__ = ("ref", "kind", "packet", "peer")

    def __init__(self, ref, kind, packet, peer):
        self.ref = ref  # pass back to answer()
        self.kind = kind  # 'disconnect' or 'coa'
        self.packet = packet  # the decoded Packet (attributes naming the session; for CoA the new values)
        self.peer = peer  # (host, port) it came from

    def __repr__(self):
        return "DaeRequest(ref=%r, kind=%r, %r, peer=%r)" % (self.ref, self.kind, self.packet, self.peer)


def identify(pkt):
    """What a DAE request names: {'user_name', 'acct_session_id', 'framed_ip', 'nas_identifier'} (each str or
    None; peer strings made printable). A request naming no session is answered NAK 402 by the engine."""
    def text(atype):
        v = pkt.get(atype)
        return P.printable(v, 253) if v is not None else None
    try:
        ip = pkt.get_ip(P.FRAMED_IP_ADDRESS)
    except ValueError:
        ip = None
    return {"user_name": text(P.USER_NAME), "acct_session_id": text(P.ACCT_SESSION_ID), "framed_ip": ip,
            "nas_identifier": text(P.NAS_IDENTIFIER)}


class _Open:
    __slots__ = ("peer", "ident", "authenticator", "code", "secret", "deadline", "reply", "proxy_state")

    def __init__(self, peer, ident, authenticator, code, secret, deadline, proxy_state):
        self.peer = peer
        self.ident = ident
        self.authenticator = authenticator
        self.code = code
        self.secret = secret
        self.deadline = deadline
        self.reply = None
        self.proxy_state = proxy_state  # RFC 2865 5.33 / RFC 5176 3.1: copied unchanged, in order, to the reply


class DaeListener:
    """`clients`: {host: secret} of the RADIUS servers allowed to send Disconnect/CoA (RFC 5176 3)."""

    def __init__(self, clients, require_message_authenticator=True, answer_time=5.0, cache_time=30.0,
                 max_open=64):
        self.clients = {}
        for host, secret in clients.items():
            self.clients[host] = secret.encode() if isinstance(secret, str) else bytes(secret)
        self.require_message_authenticator = require_message_authenticator
        self.answer_time = answer_time
        self.cache_time = cache_time
        self.max_open = max_open
        self._open = {}  # ref -> _Open (waiting for answer(), then cached with its reply)
        self._seen = {}  # (peer, ident, authenticator) -> ref
        self._next_ref = 1
        self._out = []
        self._events = []
        self.stats = {"received": 0, "accepted": 0, "malformed": 0, "unknown_client": 0, "wrong_code": 0,
                      "bad_authenticator": 0, "duplicates": 0, "table_full": 0, "acks": 0, "naks": 0,
                      "expired": 0}

    def datagram_received(self, data, peer, now):
        self.stats["received"] += 1
        self._expire(now)
        secret = self.clients.get(peer[0])
        if secret is None:
            self.stats["unknown_client"] += 1
            return
        try:
            pkt = P.decode(data)
        except ValueError:
            self.stats["malformed"] += 1
            return
        if pkt.code == P.DISCONNECT_REQUEST:
            kind = "disconnect"
        elif pkt.code == P.COA_REQUEST:
            kind = "coa"
        else:
            self.stats["wrong_code"] += 1
            return
        if P.verify_request(data, secret, self.require_message_authenticator) is not None:
            self.stats["bad_authenticator"] += 1
            return
        key = (peer, pkt.ident, pkt.authenticator)
        ref = self._seen.get(key)
        if ref is not None:
            self.stats["duplicates"] += 1
            o = self._open[ref]
            if o.reply is not None:
                self._out.append((peer, o.reply))
            return
        if len(self._open) >= self.max_open:
            self.stats["table_full"] += 1
            return
        ref = self._next_ref
        self._next_ref += 1
        self._open[ref] = _Open(peer, pkt.ident, pkt.authenticator, pkt.code, secret, now + self.answer_time,
                                pkt.get_all(P.PROXY_STATE))
        self._seen[key] = ref
        self.stats["accepted"] += 1
        self._events.append(DaeRequest(ref, kind, pkt, peer))

    def answer(self, ref, ok, error_cause=None, now=0.0, attrs=()):
        """ACK (ok) or NAK (with an RFC 5176 3.5 Error-Cause) the request `ref`; ignored if unknown/answered."""
        o = self._open.get(ref)
        if o is None or o.reply is not None:
            return
        if o.code == P.DISCONNECT_REQUEST:
            code = P.DISCONNECT_ACK if ok else P.DISCONNECT_NAK
        else:
            code = P.COA_ACK if ok else P.COA_NAK
        out = list(attrs) + [(P.PROXY_STATE, v) for v in o.proxy_state]
        if not ok and error_cause is not None:
            out.append(P.attr_int(P.ERROR_CAUSE, error_cause))
        o.reply = P.encode_reply(code, o.ident, o.authenticator, out, o.secret)
        o.deadline = now + self.cache_time
        self.stats["acks" if ok else "naks"] += 1
        self._out.append((o.peer, o.reply))

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
        for o in self._open.values():
            if best is None or o.deadline < best:
                best = o.deadline
        return best

    def handle_timer(self, now):
        self._expire(now)

    def _expire(self, now):
        gone = [ref for ref, o in self._open.items() if o.deadline <= now]
        gone.sort()
        for ref in gone:
            o = self._open[ref]
            if o.reply is None:
                self.stats["expired"] += 1
                self.answer(ref, False, P.ERR_RESOURCES_UNAVAILABLE, now)
                continue
            del self._open[ref]
            self._seen.pop((o.peer, o.ident, o.authenticator), None)
