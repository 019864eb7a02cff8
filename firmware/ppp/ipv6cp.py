"""IPv6CP options (RFC 5072 4): Interface-Identifier negotiation for link-local addresses.

Theory of operation: each end asks for a random non-zero 64-bit Interface-Identifier (4.1). A peer asking for
zero, or for our own identifier, is Nak-ed with a fresh random suggestion; a Nak of ours is taken when its
value is non-zero and differs from the peer's, else we draw again. IPv6-Compression-Protocol (4.2) and
unknown options are Rejected. When the link runs without IPv6, this handler is never created and LCP
Protocol-Rejects the peer's IPv6CP instead (RFC 1661 5.7).
"""

from sluice.ppp import fsm

OPT_IFID = 1
OPT_COMPRESSION = 2

_ZERO = b"\x00" * 8


class Ipv6cpOptions(fsm.OptionHandler):
    def __init__(self, config, rng):
        fsm.OptionHandler.__init__(self)
        self.config = config
        self.rng = rng
        self.reset()

    def reset(self):
        self.fatal = None
        self.peer = {}
        self.local = self._random()
        self.send_ifid = True

    def _random(self, avoid=None):
        while True:
            v = self.rng(8)
            if v != _ZERO and v != avoid:
                return v

    def peer_ifid(self):
        return self.peer.get("ifid")

    def request_options(self):
        return [(OPT_IFID, self.local)] if self.send_ifid else []

    def on_ack(self, opts):
        pass

    def on_nak(self, t, v):
        if t == OPT_IFID and len(v) == 8:
            theirs = self.peer.get("ifid")
            self.local = v if (v != _ZERO and v != theirs) else self._random(theirs)

    def on_reject(self, t, v):
        if t == OPT_IFID:
            self.send_ifid = False

    def judge(self, t, v, pending):
        if t == OPT_IFID:
            if len(v) != 8:
                return fsm.REJ, v
            if v == _ZERO or v == self.local:
                return fsm.NAK, self._random(self.local)
            pending["ifid"] = v
            return fsm.ACK, v
        return fsm.REJ, v
