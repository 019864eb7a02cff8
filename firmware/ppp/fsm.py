"""The RFC 1661 option-negotiation automaton, shared by LCP, IPCP and IPv6CP.

Theory of operation: the automaton of RFC 1661 4.1 is data. ``TABLE[(event, state)]`` gives the actions
and the next state; a pair missing from the table is an event that cannot happen in that state (RFC 1661
4.1, "illegal event"), which is counted and ignored rather than allowed to corrupt the state. The machine
knows nothing of option meanings: a per-protocol *handler* (LcpOptions, IpcpOptions, Ipv6cpOptions) builds
our Configure-Request and judges the peer's, and hears of Ack/Nak/Reject. The *layer* callbacks (tlu, tld,
tls, tlf, RFC 1661 4.4) go to the owner, the PppLink, which moves between phases.

Sans-IO: the machine never reads a clock. Every input takes ``now``; ``deadline`` is the restart timer
(RFC 1661 4.6) as an absolute time or None; packets go out through the ``send(code, ident, data)`` callable
the owner gives. Counters: Max-Configure, Max-Terminate, Max-Failure (RFC 1661 4.6).

Implementation choices (RFC 1661 4.1 leaves them open): the "restart option" of Open in Stopped/Opened is
not taken (Open there changes nothing); the "passive option" is not used (TO- in Req-Sent/Ack-Rcvd/Ack-Sent
gives up with tlf); the Identifier changes with every Configure-Request, retransmissions included, so that a
late Ack for an older request is discarded (RFC 1661 5.1 allows either).
"""

from sluice.ppp.framing import PppError, build_options, parse_options

# RFC 1661 5: codes common to LCP and the NCPs.
CONF_REQ = 1
CONF_ACK = 2
CONF_NAK = 3
CONF_REJ = 4
TERM_REQ = 5
TERM_ACK = 6
CODE_REJ = 7

INITIAL, STARTING, CLOSED, STOPPED, CLOSING, STOPPING, REQ_SENT, ACK_RCVD, ACK_SENT, OPENED = range(10)
# The automaton's table is keyed by RFC 1661 4.2's numbered states; their names follow the project's one
# convention for states (lowercase words joined by hyphens, docs/design.md), as shown in status and logs.
STATE_NAMES = ("initial", "starting", "closed", "stopped", "closing", "stopping", "req-sent", "ack-rcvd",
               "ack-sent", "opened")

UP, DOWN, OPEN, CLOSE, TO_P, TO_M, RCR_P, RCR_M, RCA, RCN, RTR, RTA, RUC, RXJ_P, RXJ_M, RXR = range(16)
EVENT_NAMES = ("Up", "Down", "Open", "Close", "TO+", "TO-", "RCR+", "RCR-", "RCA", "RCN", "RTR", "RTA", "RUC",
               "RXJ+", "RXJ-", "RXR")


def _t(rows):
    table = {}
    for ev, per_state in rows:
        for state, spec in per_state:
            actions, nxt = spec
            table[(ev, state)] = (tuple(actions.split()) if actions else (), nxt)
    return table


_I, _S, _C, _T, _G, _P, _RS, _AR, _AS, _O = range(10)

# RFC 1661 4.1, the state transition table, column by column.
TABLE = _t((
    (UP, ((_I, ("", _C)), (_S, ("irc scr", _RS)))),
    (DOWN, ((_C, ("", _I)), (_T, ("tls", _S)), (_G, ("", _I)), (_P, ("", _S)), (_RS, ("", _S)),
            (_AR, ("", _S)), (_AS, ("", _S)), (_O, ("tld", _S)))),
    (OPEN, ((_I, ("tls", _S)), (_S, ("", _S)), (_C, ("irc scr", _RS)), (_T, ("", _T)), (_G, ("", _P)),
            (_P, ("", _P)), (_RS, ("", _RS)), (_AR, ("", _AR)), (_AS, ("", _AS)), (_O, ("", _O)))),
    (CLOSE, ((_I, ("", _I)), (_S, ("tlf", _I)), (_C, ("", _C)), (_T, ("", _C)), (_G, ("", _G)), (_P, ("", _G)),
             (_RS, ("irc str", _G)), (_AR, ("irc str", _G)), (_AS, ("irc str", _G)), (_O, ("tld irc str", _G)))),
    (TO_P, ((_G, ("str", _G)), (_P, ("str", _P)), (_RS, ("scr", _RS)), (_AR, ("scr", _RS)), (_AS, ("scr", _AS)))),
    (TO_M, ((_G, ("tlf", _C)), (_P, ("tlf", _T)), (_RS, ("tlf", _T)), (_AR, ("tlf", _T)), (_AS, ("tlf", _T)))),
    (RCR_P, ((_C, ("sta", _C)), (_T, ("irc scr sca", _AS)), (_G, ("", _G)), (_P, ("", _P)), (_RS, ("sca", _AS)),
             (_AR, ("sca tlu", _O)), (_AS, ("sca", _AS)), (_O, ("tld scr sca", _AS)))),
    (RCR_M, ((_C, ("sta", _C)), (_T, ("irc scr scn", _RS)), (_G, ("", _G)), (_P, ("", _P)), (_RS, ("scn", _RS)),
             (_AR, ("scn", _AR)), (_AS, ("scn", _RS)), (_O, ("tld scr scn", _RS)))),
    (RCA, ((_C, ("sta", _C)), (_T, ("sta", _T)), (_G, ("", _G)), (_P, ("", _P)), (_RS, ("irc", _AR)),
           (_AR, ("scr", _RS)), (_AS, ("irc tlu", _O)), (_O, ("tld scr", _RS)))),
    (RCN, ((_C, ("sta", _C)), (_T, ("sta", _T)), (_G, ("", _G)), (_P, ("", _P)), (_RS, ("irc scr", _RS)),
           (_AR, ("scr", _RS)), (_AS, ("irc scr", _AS)), (_O, ("tld scr", _RS)))),
    (RTR, ((_C, ("sta", _C)), (_T, ("sta", _T)), (_G, ("sta", _G)), (_P, ("sta", _P)), (_RS, ("sta", _RS)),
           (_AR, ("sta", _RS)), (_AS, ("sta", _RS)), (_O, ("tld zrc sta", _P)))),
    (RTA, ((_C, ("", _C)), (_T, ("", _T)), (_G, ("tlf", _C)), (_P, ("tlf", _T)), (_RS, ("", _RS)),
           (_AR, ("", _RS)), (_AS, ("", _AS)), (_O, ("tld scr", _RS)))),
    (RUC, tuple((s, ("scj", s)) for s in (_C, _T, _G, _P, _RS, _AR, _AS, _O))),
    (RXJ_P, ((_C, ("", _C)), (_T, ("", _T)), (_G, ("", _G)), (_P, ("", _P)), (_RS, ("", _RS)), (_AR, ("", _RS)),
             (_AS, ("", _AS)), (_O, ("", _O)))),
    (RXJ_M, ((_C, ("tlf", _C)), (_T, ("tlf", _T)), (_G, ("tlf", _C)), (_P, ("tlf", _T)), (_RS, ("tlf", _T)),
             (_AR, ("tlf", _T)), (_AS, ("tlf", _T)), (_O, ("tld irc str", _P)))),
    (RXR, ((_C, ("", _C)), (_T, ("", _T)), (_G, ("", _G)), (_P, ("", _P)), (_RS, ("", _RS)), (_AR, ("", _AR)),
           (_AS, ("", _AS)), (_O, ("ser", _O)))),
))


class Fsm:
    """One RFC 1661 automaton. `handler` judges options; `layer` gets tlu/tld/tls/tlf; `send` transmits."""

    def __init__(self, name, handler, layer, send, restart_timer=3.0, max_configure=10, max_failure=5,
                 max_terminate=2):
        self.name = name
        self.handler = handler
        self.layer = layer
        self.send = send
        self.restart_timer = restart_timer
        self.max_configure = max_configure
        self.max_failure = max_failure
        self.max_terminate = max_terminate
        self.state = INITIAL
        self.deadline = None
        self.restart_count = 0
        self.nak_count = 0  # Configure-Naks sent since the last Configure-Ack (Max-Failure)
        self.ident = 0
        self.req_ident = None  # Identifier of our outstanding Configure-Request
        self.req_sent_at = 0.0
        self.req_data = b""
        self.term_ident = None
        self.stats = {"illegal": 0, "discarded": 0, "sent_cr": 0, "rcvd_cr": 0}
        # Filled while an event runs, read by the actions.
        self._reply = None
        self._rx = None
        self.term_reason = b""

    def state_name(self):
        return STATE_NAMES[self.state]

    # -- external events (RFC 1661 4.3) --------------------------------------------------------------------

    def up(self, now):
        self.nak_count = 0
        self._run(UP, now)

    def down(self, now):
        self._run(DOWN, now)

    def open(self, now):
        self.nak_count = 0
        self._run(OPEN, now)

    def close(self, now, reason=b""):
        self.term_reason = reason
        self._run(CLOSE, now)

    def timeout(self, now):
        if self.deadline is None or now < self.deadline:
            return
        self.deadline = None
        self._run(TO_P if self.restart_count > 0 else TO_M, now)

    def protocol_rejected(self, now):
        """Our peer Protocol-Rejected this protocol (RFC 1661 5.7): RXJ-, the layer finishes."""
        self._run(RXJ_M, now)

    def packet(self, code, ident, data, now):
        """One received control packet of this protocol (codes 1-7; other codes go through the handler)."""
        if code == CONF_REQ:
            self.stats["rcvd_cr"] += 1
            if self.state in (INITIAL, STARTING):
                self.stats["discarded"] += 1
                return
            try:
                good, reply_code, reply = self.handler.receive_request(data, self.nak_count >= self.max_failure)
            except PppError:
                self.stats["discarded"] += 1
                return
            self._rx = (ident, reply_code, reply)
            if (self.stats["rcvd_cr"] == 1 and self.state == _RS and self.stats["sent_cr"] == 1
                    and self.req_ident is not None and now - self.req_sent_at >= FIRST_CONTACT_GAP):
                # The peer's first request, later than a crossing would take, while ours is unanswered: ours
                # probably went out before the peer listened (over L2TP it crosses ICCN while the peer's pppd
                # is still starting), and the 3 s restart timer made set-up slow. Repeat it now, same
                # identifier (RFC 1661 5.1 allows that), and BEFORE our Configure-Ack: the peer cannot be
                # Opened until that Ack arrives, so a duplicate never makes it renegotiate.
                self.deadline = now + self.restart_timer
                self.stats["sent_cr"] += 1
                self.send(CONF_REQ, self.req_ident, self.req_data)
            self._run(RCR_P if good else RCR_M, now)
        elif code in (CONF_ACK, CONF_NAK, CONF_REJ):
            if ident != self.req_ident or self.state in (INITIAL, STARTING):
                self.stats["discarded"] += 1  # RFC 1661 5.2: not an answer to our last request
                return
            try:
                if code == CONF_ACK:
                    ok = data == self.req_data and self.handler.receive_ack(data)
                elif code == CONF_NAK:
                    ok = self.handler.receive_nak(data)
                else:
                    ok = self.handler.receive_reject(data, self.req_data)
            except PppError:
                ok = False
            if not ok:
                self.stats["discarded"] += 1
                return
            self.req_ident = None
            self._run(RCA if code == CONF_ACK else RCN, now)
        elif code == TERM_REQ:
            self._rx = (ident, None, None)
            self._run(RTR, now)
        elif code == TERM_ACK:
            if self.state in (CLOSING, STOPPING) and ident != self.term_ident:
                self.stats["discarded"] += 1
                return
            self._run(RTA, now)
        elif code == CODE_REJ:
            # RFC 1661 5.6: a rejected code we cannot live without (1-7) is fatal for this protocol.
            if len(data) < 1:
                self.stats["discarded"] += 1
                return
            self._run(RXJ_M if 1 <= data[0] <= 7 else RXJ_P, now)
        elif not self.handler.other_code(code, ident, data, now):
            self.unknown_code(code, ident, data, now)

    def unknown_code(self, code, ident, data, now):
        """RUC: answer with Code-Reject (RFC 1661 5.6) carrying the rejected packet."""
        self._rx = (ident, code, data)
        self._run(RUC, now)

    def reject_event(self, fatal, now):
        """RXJ+/RXJ- decided by the owner (LCP Protocol-Reject, RFC 1661 5.7)."""
        self._run(RXJ_M if fatal else RXJ_P, now)


    # -- the engine of the table ---------------------------------------------------------------------------

    def _run(self, event, now):
        entry = TABLE.get((event, self.state))
        if entry is None:
            self.stats["illegal"] += 1
            return
        actions, nxt = entry
        for a in actions:
            if a == "irc":
                self.restart_count = self.max_terminate if "str" in actions else self.max_configure
            elif a == "zrc":
                self.restart_count = 0
                self.deadline = now + self.restart_timer
            elif a == "scr":
                self._scr(now)
            elif a == "sca":
                ident, _, reply = self._rx
                self.nak_count = 0
                self.send(CONF_ACK, ident, reply)
            elif a == "scn":
                ident, code, reply = self._rx
                if code == CONF_NAK:
                    self.nak_count += 1
                self.send(code, ident, reply)
            elif a == "str":
                self._str(now)
            elif a == "sta":
                self.send(TERM_ACK, self._rx[0] if self._rx else self._next_ident(), b"")
            elif a == "scj":
                ident, code, data = self._rx
                # RFC 1661 5.6: the rejected packet, cut so that the reply stays within the minimum MRU.
                rejected = (bytes((code, ident & 0xFF)) + _p16(4 + len(data)) + data)[:_MAX_REJECTED]
                self.send(CODE_REJ, self._next_ident(), rejected)
            elif a == "ser":
                pass  # the handler answers Echo-Request itself (it knows the magic numbers)
            elif a == "tlu":
                self.state = nxt
                self.layer.tlu(self, now)
            elif a == "tld":
                self.layer.tld(self, now)
            elif a == "tls":
                self.layer.tls(self, now)
            elif a == "tlf":
                self.state = nxt
                self.layer.tlf(self, now)
        self._rx = None
        self.state = nxt
        # RFC 1661 4.6: the restart timer runs only while a request or a terminate is outstanding.
        if nxt not in (CLOSING, STOPPING, REQ_SENT, ACK_RCVD, ACK_SENT):
            self.deadline = None

    def _next_ident(self):
        self.ident = (self.ident + 1) & 0xFF
        return self.ident

    def _scr(self, now):
        self.req_sent_at = now
        self.req_data = self.handler.build_request()
        self.req_ident = self._next_ident()
        self.restart_count -= 1
        self.deadline = now + self.restart_timer
        self.stats["sent_cr"] += 1
        self.send(CONF_REQ, self.req_ident, self.req_data)

    def _str(self, now):
        self.term_ident = self._next_ident()
        self.restart_count -= 1
        self.deadline = now + self.restart_timer
        self.send(TERM_REQ, self.term_ident, self.term_reason)


_MAX_REJECTED = 1000
FIRST_CONTACT_GAP = 0.05  # seconds: requests that cross on a LAN arrive sooner than a starting pppd answers


def _p16(v):
    return bytes((v >> 8 & 0xFF, v & 0xFF))


ACK = CONF_ACK
NAK = CONF_NAK
REJ = CONF_REJ


class OptionHandler:
    """What an Fsm asks of a protocol: build our request, judge the peer's, learn from Ack/Nak/Reject.

    Subclasses implement ``request_options()`` -> [(type, value)], ``judge(type, value, pending)`` ->
    (ACK|NAK|REJ, value) recording accepted values in ``pending``, ``missing(seen_types)`` -> options to add
    to a Nak, ``on_ack(opts)``, ``on_nak(type, value)``, ``on_reject(type, value)``.
    """

    def __init__(self):
        self.fsm = None
        self.peer = {}  # what the peer's last acknowledged request asked for
        self.fatal = None  # set to a reason when negotiation cannot succeed; the owner closes the link

    def build_request(self):
        return build_options(self.request_options())

    def receive_request(self, data, reject_naks):
        """(good, reply_code, reply_data) for a peer's Configure-Request (RFC 1661 5.1-5.4)."""
        opts = parse_options(data)
        pending = {}
        naks = []
        rejs = []
        for t, v in opts:
            verdict, value = self.judge(t, v, pending)
            if verdict == NAK and reject_naks:
                verdict = REJ  # RFC 1661 4.6 Max-Failure: stop Nak-ing, reject instead
            if verdict == REJ:
                rejs.append((t, v))  # RFC 1661 5.4: listed exactly as received
            elif verdict == NAK:
                naks.append((t, value))
        if rejs:
            return False, CONF_REJ, build_options(rejs)
        if not reject_naks:
            for t, v in self.missing([t for t, _ in opts]):
                naks.append((t, v))
        if naks:
            return False, CONF_NAK, build_options(naks)
        self.peer = pending
        return True, CONF_ACK, data

    def receive_ack(self, data):
        self.on_ack(parse_options(data))
        return True

    def receive_nak(self, data):
        for t, v in parse_options(data):
            self.on_nak(t, v)
        return self.fatal is None

    def receive_reject(self, data, sent):
        rejected = parse_options(data)
        mine = parse_options(sent)
        for opt in rejected:
            if opt not in mine:
                return False  # RFC 1661 5.4: a Reject must only list options we sent, unchanged
        for t, v in rejected:
            self.on_reject(t, v)
        return self.fatal is None

    def missing(self, seen):
        return ()

    def other_code(self, code, ident, data, now):
        return False
