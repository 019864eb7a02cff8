"""The LNS side's table of tunnels: routes control messages by tunnel id, creates tunnels on SCCRQ.

Theory of operation. Every control message carries our tunnel id in its header (RFC 2661 3.1), except an
SCCRQ, which carries 0 and names the peer's id in its Assigned Tunnel ID AVP (RFC 2661 6.1). The table
therefore keys tunnels two ways: by our id, and by (peer, peer's Assigned Tunnel ID), so that a retransmitted
SCCRQ reaches the tunnel the first copy created instead of creating a second one. `peer` is whatever the
engine uses to tell peers apart (outer address and port now, the IPsec SA as well later); it is only hashed
and compared, which is what lets several clients behind one NAT each have their own tunnel.

Our tunnel ids are random, non-zero and unique (RFC 2661 3.1 leaves the choice to us; random ids make blind
injection harder). A message for an unknown tunnel id, or from a peer other than the tunnel's, is counted
and dropped: RFC 2661 does not require an answer, and answering would let anyone make us send traffic.
Tunnels that have closed and have nothing left to report are removed.

Sans-IO like the tunnels: `datagram_received(data, peer, now)`, `handle_timer(now)`; pull
`datagrams_to_send() -> [(peer, bytes)]`, `next_event() -> (tunnel, event)`, `get_timer()`.
"""

from sluice.l2tp import avp as A
from sluice.l2tp import header as H
from sluice.l2tp import message as M
from sluice.l2tp.errors import L2tpError
from sluice.l2tp.tunnel import LNS, Tunnel, TunnelConfig


class TunnelTable:
    """All LNS tunnels of one listening socket."""

    def __init__(self, rng, config=None, max_tunnels=4096):
        self.rng = rng
        self.config = config or TunnelConfig()
        self.max_tunnels = max_tunnels
        self.by_id = {}  # our tunnel id -> Tunnel
        self.by_peer = {}  # (peer, peer's assigned tunnel id) -> Tunnel
        self.stats = {"malformed": 0, "not_control": 0, "unknown_tunnel": 0, "wrong_peer": 0, "created": 0,
                      "full": 0, "removed": 0}

    def tunnels(self):
        return list(self.by_id.values())

    def get(self, tunnel_id):
        return self.by_id.get(tunnel_id)

    def datagram_received(self, data, peer, now):
        try:
            h = H.parse(data)
        except L2tpError:
            self.stats["malformed"] += 1
            return None
        if not h.is_control:
            self.stats["not_control"] += 1  # data messages take the engine's own path
            return None
        if h.tunnel_id == 0:
            tunnel = self._for_sccrq(data, h, peer, now)
        else:
            tunnel = self.by_id.get(h.tunnel_id)
            if tunnel is None:
                self.stats["unknown_tunnel"] += 1
                return None
            if tunnel.peer != peer:
                self.stats["wrong_peer"] += 1
                return None
        if tunnel is not None:
            tunnel.datagram_received(data, now)
            self._reap()
        return tunnel

    def _for_sccrq(self, data, h, peer, now):
        try:
            msg = M.parse(data, h.offset, h.end, self.config.secret)
        except L2tpError:
            self.stats["malformed"] += 1
            return None
        peer_tid = msg.get(A.ASSIGNED_TUNNEL_ID)
        if msg.type != M.SCCRQ or not peer_tid:
            self.stats["unknown_tunnel"] += 1
            return None
        key = (peer, peer_tid)
        tunnel = self.by_peer.get(key)
        if tunnel is not None:
            return tunnel  # a retransmitted SCCRQ: the tunnel's channel re-acknowledges it
        if len(self.by_id) >= self.max_tunnels:
            self.stats["full"] += 1
            return None
        tid = self._new_id()
        if tid is None:
            self.stats["full"] += 1
            return None
        tunnel = Tunnel(LNS, tid, self.rng, self.config)
        tunnel.peer = peer
        self.by_id[tid] = tunnel
        self.by_peer[key] = tunnel
        self.stats["created"] += 1
        return tunnel

    def move_peer(self, tunnel, peer):
        """The tunnel's peer now has another key (its NAT mapping moved): re-key it, keeping the SCCRQ index
        consistent, so a later SCCRQ from the old key cannot reach it and one from the new key finds it."""
        old = (tunnel.peer, tunnel.peer_tunnel_id)
        if self.by_peer.get(old) is tunnel:
            del self.by_peer[old]
        tunnel.peer = peer
        if tunnel.state != "closed":
            self.by_peer[(peer, tunnel.peer_tunnel_id)] = tunnel

    def _new_id(self):
        for _ in range(64):
            b = self.rng(2)
            tid = (b[0] << 8) | b[1]
            if tid and tid not in self.by_id:
                return tid
        return None

    def _reap(self):
        gone = [t for t in self.by_id.values() if t.state == "closed" and not t.has_output()]
        for t in gone:
            del self.by_id[t.local_tunnel_id]
            key = (t.peer, t.peer_tunnel_id)
            if self.by_peer.get(key) is t:
                del self.by_peer[key]
            self.stats["removed"] += 1

    def datagrams_to_send(self):
        out = []
        for t in self.by_id.values():
            if t.channel.out:
                peer = t.peer
                for d in t.datagrams_to_send():
                    out.append((peer, d))
        return out

    def next_event(self):
        for t in self.by_id.values():
            if t.events:
                return (t, t.events.pop(0))
        self._reap()  # everything reported: closed tunnels can go now
        return None

    def get_timer(self):
        best = None
        for t in self.by_id.values():
            d = t.get_timer()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def handle_timer(self, now):
        for t in list(self.by_id.values()):
            d = t.get_timer()
            if d is not None and d <= now:
                t.handle_timer(now)
        self._reap()

    def status(self):
        return {"tunnels": [t.status() for t in self.by_id.values()], "counters": dict(self.stats)}
