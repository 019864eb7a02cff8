"""LCP options and the LCP-only codes (RFC 1661 5.7-5.9, 6; RFC 1662 7.1; RFC 1994 3; RFC 2759 2).

Theory of operation: LcpOptions is the option handler an Fsm drives for protocol 0xC021.

- MRU (6.1): we ask for ours when it differs from the default 1500; the peer's is recorded (Nak below 128).
- Auth-Protocol (6.2): the server asks for its preferred method and, on Nak, moves to the next method of its
  list (jumping to the peer's suggestion when the list has it); a Reject, or a list run dry, ends the link
  with a reason naming what was offered and what to allow. The client Acks a method its config allows and
  Naks any other with the first method it allows; it never asks to authenticate the server (Reject).
- Magic-Number (6.4): a random non-zero number; a request carrying our own number means a looped-back link:
  Nak with a fresh number and count; Max-Failure such loops end the link.
- ACCM (RFC 1662 7.1) is meaningless on L2TP (no async HDLC): Acked and ignored. PFC/ACFC (6.5, 6.6) are
  Acked: we parse compressed frames; we never send compressed ones, which the RFC permits.
- Anything else (Quality-Protocol, Callback, Multilink...) is Rejected.

Codes 8-11 (Protocol-Reject, Echo-Request/Reply, Discard-Request) arrive through ``other_code`` and are
acted on only in Opened (RFC 1661 5.7, 5.8). The owner (PppLink) gets Protocol-Rejects and Echo-Replies.
"""

from sluice.ppp import fsm
from sluice.ppp.config import AUTH_NAMES
from sluice.ppp.framing import PROTO_CHAP, PROTO_PAP, p16, p32, u16, u32

OPT_MRU = 1
OPT_ACCM = 2
OPT_AUTH = 3
OPT_QUALITY = 4
OPT_MAGIC = 5
OPT_PFC = 7
OPT_ACFC = 8

PROTOCOL_REJ = 8
ECHO_REQ = 9
ECHO_REP = 10
DISCARD_REQ = 11

MIN_MRU = 128
DEFAULT_MRU = 1500

_AUTH_WIRE = {"pap": p16(PROTO_PAP), "chap": p16(PROTO_CHAP) + b"\x05", "mschapv2": p16(PROTO_CHAP) + b"\x81"}


def auth_method(value):
    """'pap', 'chap', 'mschapv2' or None (unknown) for an Auth-Protocol option value."""
    if len(value) == 2 and u16(value) == PROTO_PAP:
        return "pap"
    if len(value) == 3 and u16(value) == PROTO_CHAP:
        return {5: "chap", 0x81: "mschapv2"}.get(value[2])
    return None


def auth_names(methods):
    return ", ".join(AUTH_NAMES[m] for m in methods)


class LcpOptions(fsm.OptionHandler):
    def __init__(self, role, config, rng, owner):
        fsm.OptionHandler.__init__(self)
        self.role = role
        self.config = config
        self.rng = rng
        self.owner = owner
        self.reset()

    def reset(self):
        cfg = self.config
        self.fatal = None
        self.peer = {}
        self.want_mru = cfg.mru if cfg.mru != DEFAULT_MRU else None
        self.magic = self._new_magic()
        self.use_magic = True
        self.loops = 0
        self.auth_index = 0 if (self.role == "server" and cfg.auth) else None
        self.auth_offered = []
        self.auth_suggested = []
        self.acked = {}  # what the peer acknowledged of our request: 'mru', 'magic', 'auth'
        self.peer_offered = []  # client: the methods the server asked for

    def _new_magic(self):
        while True:
            m = u32(self.rng(4))
            if m:
                return m

    # -- our request -----------------------------------------------------------------------------------

    def request_options(self):
        opts = []
        if self.want_mru is not None:
            opts.append((OPT_MRU, p16(self.want_mru)))
        if self.auth_index is not None:
            m = self.config.auth[self.auth_index]
            if m not in self.auth_offered:
                self.auth_offered.append(m)
            opts.append((OPT_AUTH, _AUTH_WIRE[m]))
        if self.use_magic:
            opts.append((OPT_MAGIC, p32(self.magic)))
        return opts

    def on_ack(self, opts):
        acked = {}
        for t, v in opts:
            if t == OPT_MRU:
                acked["mru"] = u16(v)
            elif t == OPT_AUTH:
                acked["auth"] = auth_method(v)
            elif t == OPT_MAGIC:
                acked["magic"] = u32(v)
        self.acked = acked

    def on_nak(self, t, v):
        if t == OPT_MRU and len(v) == 2:
            mru = u16(v)
            self.want_mru = mru if MIN_MRU <= mru <= DEFAULT_MRU else None
        elif t == OPT_MAGIC and len(v) == 4:
            self.magic = self._new_magic()  # RFC 1661 6.4: a different number MUST be chosen
        elif t == OPT_AUTH and self.auth_index is not None:
            suggested = auth_method(v)
            if suggested is not None and suggested not in self.auth_suggested:
                self.auth_suggested.append(suggested)
            self._next_auth(suggested)

    def _next_auth(self, suggested):
        methods = self.config.auth
        if suggested in methods and suggested not in self.auth_offered:
            self.auth_index = methods.index(suggested)
            return
        for i in range(len(methods)):
            if methods[i] not in self.auth_offered:
                self.auth_index = i
                return
        others = [m for m in ("mschapv2", "chap", "pap") if m not in methods]
        hint = [m for m in self.auth_suggested if m in others] or others
        reason = "peer rejected every authentication protocol we allow (offered: %s)" % auth_names(self.auth_offered)
        if hint:
            reason += "; allow " + " or ".join("'%s'" % m for m in hint)
        self.fatal = reason

    def on_reject(self, t, v):
        if t == OPT_MRU:
            self.want_mru = None
        elif t == OPT_MAGIC:
            self.use_magic = False
        elif t == OPT_AUTH:
            self.fatal = ("the peer refused to authenticate (it rejected the Auth-Protocol option, offered: %s)"
                          % auth_names(self.auth_offered))

    # -- the peer's request ----------------------------------------------------------------------------

    def judge(self, t, v, pending):
        if t == OPT_MRU:
            if len(v) != 2:
                return fsm.REJ, v
            mru = u16(v)
            if mru < MIN_MRU:
                return fsm.NAK, p16(MIN_MRU)
            pending["mru"] = mru
            return fsm.ACK, v
        if t == OPT_ACCM:
            return (fsm.ACK, v) if len(v) == 4 else (fsm.REJ, v)
        if t == OPT_AUTH:
            return self._judge_auth(v, pending)
        if t == OPT_MAGIC:
            if len(v) != 4:
                return fsm.REJ, v
            m = u32(v)
            if m == 0:
                return fsm.NAK, p32(self._new_magic())
            if self.use_magic and m == self.magic:
                # RFC 1661 6.4: our own number came back; perhaps a loop. Suggest another, and change ours.
                self.loops += 1
                if self.loops >= self.config.max_failure:
                    self.fatal = ("the link is looped back (our own LCP magic number came back %d times)"
                                  % self.loops)
                self.magic = self._new_magic()
                return fsm.NAK, p32(self._new_magic())
            pending["magic"] = m
            return fsm.ACK, v
        if t in (OPT_PFC, OPT_ACFC):
            if v:
                return fsm.REJ, v
            pending["pfc" if t == OPT_PFC else "acfc"] = True
            return fsm.ACK, v
        return fsm.REJ, v

    def _judge_auth(self, v, pending):
        if self.role != "client":
            return fsm.REJ, v  # we never authenticate ourselves to a client
        allowed = self.config.auth
        if not allowed:
            return fsm.REJ, v
        m = auth_method(v)
        if m is not None and m not in self.peer_offered:
            self.peer_offered.append(m)
        if m is not None and m in allowed:
            pending["auth"] = m
            return fsm.ACK, v
        if m is None and len(v) >= 2 and u16(v) not in (PROTO_PAP, PROTO_CHAP) and "unknown" not in self.peer_offered:
            self.peer_offered.append("unknown")
        return fsm.NAK, _AUTH_WIRE[allowed[0]]  # RFC 1661 6.2: Nak with the protocol we want

    # -- codes 8-11 ------------------------------------------------------------------------------------

    def other_code(self, code, ident, data, now):
        f = self.fsm
        if code == PROTOCOL_REJ:
            if f.state == fsm.OPENED and len(data) >= 2:
                self.owner.protocol_rejected(u16(data), now)
            else:
                f.stats["discarded"] += 1
            return True
        if code == ECHO_REQ:
            if f.state != fsm.OPENED or len(data) < 4:
                f.stats["discarded"] += 1
                return True
            m = u32(data)
            if self.use_magic and m == self.magic:
                f.stats["discarded"] += 1  # our own echo came back: looped link
                return True
            f.send(ECHO_REP, ident, p32(self.magic if self.use_magic else 0) + data[4:])
            return True
        if code == ECHO_REP:
            if f.state == fsm.OPENED and len(data) >= 4 and not (self.use_magic and u32(data) == self.magic):
                self.owner.echo_reply(ident, now)
            else:
                f.stats["discarded"] += 1
            return True
        if code == DISCARD_REQ:
            return True
        return False

    def echo_request(self, ident):
        """Body of an Echo-Request (RFC 1661 5.8): our magic number."""
        return p32(self.magic if self.use_magic else 0)
