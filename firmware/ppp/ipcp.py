"""IPCP options (RFC 1332 3, RFC 1877 1) for both ends of the link.

Theory of operation: IpcpOptions is the option handler an Fsm drives for protocol 0x8021.

Server: we ask for our own IP-Address (config local_ip). The peer's IP-Address must be the one
``assign_address(username)`` returned: its 0.0.0.0 (or any other address) is Nak-ed with the assigned one, and
a request that leaves the option out gets it added to a Nak (RFC 1661 5.3 lets a Nak carry options the peer
did not send). Primary/Secondary DNS and NBNS (RFC 1877) are Nak-ed with ours when the peer asks and we have
them, Rejected when we have none. IP-Compression-Protocol (Van Jacobson, RFC 1332 3.2) is Rejected: the user
space data path does not do header compression.

Client: we ask for 0.0.0.0 and, unless the server rejects them, for DNS 0.0.0.0 twice; the server's Naks
fill in the values. The server's own IP-Address is Acked as long as it is not 0.0.0.0.
"""

from sluice.ppp import fsm
from sluice.ppp.framing import ip_to_bytes, ip_to_str

OPT_ADDRESSES = 1  # RFC 1332 3.1, deprecated
OPT_COMPRESSION = 2
OPT_ADDRESS = 3
OPT_DNS1 = 129
OPT_NBNS1 = 130
OPT_DNS2 = 131
OPT_NBNS2 = 132

_ZERO = b"\x00\x00\x00\x00"


class IpcpOptions(fsm.OptionHandler):
    def __init__(self, role, config, owner):
        fsm.OptionHandler.__init__(self)
        self.role = role
        self.config = config
        self.owner = owner  # gives assigned_address() on the server
        self.reset()

    def reset(self):
        cfg = self.config
        self.fatal = None
        self.peer = {}
        if self.role == "server":
            self.local = ip_to_bytes(cfg.local_ip) if cfg.local_ip else None
            self.want = {}
        else:
            self.local = _ZERO
            self.want = {OPT_DNS1: _ZERO, OPT_DNS2: _ZERO}
        self.send_address = self.local is not None

    def dns(self):
        """The DNS servers known: learned (client) or handed out (server)."""
        if self.role == "server":
            return list(self.config.dns[:2])
        return [ip_to_str(self.want[t]) for t in (OPT_DNS1, OPT_DNS2) if t in self.want and self.want[t] != _ZERO]

    def local_ip(self):
        return ip_to_str(self.local) if self.local is not None else None

    def peer_ip(self):
        a = self.peer.get("address")
        return ip_to_str(a) if a is not None else None

    # -- our request -----------------------------------------------------------------------------------

    def request_options(self):
        opts = []
        if self.send_address and self.local is not None:
            opts.append((OPT_ADDRESS, self.local))
        for t in (OPT_DNS1, OPT_DNS2):
            if t in self.want:
                opts.append((t, self.want[t]))
        return opts

    def on_ack(self, opts):
        pass

    def on_nak(self, t, v):
        if len(v) != 4:
            return
        if t == OPT_ADDRESS:
            if self.role == "client" and v != _ZERO:
                self.local = v
            # The server keeps its configured address: it is not the peer's to choose.
        elif t in (OPT_DNS1, OPT_DNS2) and t in self.want:
            self.want[t] = v

    def on_reject(self, t, v):
        if t == OPT_ADDRESS:
            self.send_address = False
            if self.role == "client":
                self.fatal = "the server rejected the IP-Address option: it will not give us an address"
        elif t in self.want:
            del self.want[t]

    # -- the peer's request ----------------------------------------------------------------------------

    def judge(self, t, v, pending):
        if t == OPT_ADDRESS:
            if len(v) != 4:
                return fsm.REJ, v
            if self.role == "server":
                assigned = self.owner.assigned_address()
                if assigned is None:
                    return fsm.REJ, v  # the owner has already failed the link with the reason
                if v != assigned:
                    return fsm.NAK, assigned
                pending["address"] = v
                return fsm.ACK, v
            if v == _ZERO:
                return fsm.REJ, v  # the server wants us to choose its address: we have none to give
            pending["address"] = v
            return fsm.ACK, v
        if t in (OPT_DNS1, OPT_DNS2, OPT_NBNS1, OPT_NBNS2):
            if len(v) != 4 or self.role != "server":
                return fsm.REJ, v
            table = self.config.dns if t in (OPT_DNS1, OPT_DNS2) else self.config.nbns
            i = 0 if t in (OPT_DNS1, OPT_NBNS1) else 1
            if i >= len(table):
                return fsm.REJ, v  # RFC 1877 1: Reject when we have no such server
            ours = ip_to_bytes(table[i])
            if v != ours:
                return fsm.NAK, ours
            return fsm.ACK, v
        return fsm.REJ, v  # IP-Compression-Protocol, IP-Addresses, anything unknown

    def missing(self, seen):
        if self.role == "server" and OPT_ADDRESS not in seen:
            assigned = self.owner.assigned_address()
            if assigned is not None:
                return ((OPT_ADDRESS, assigned),)
        return ()
