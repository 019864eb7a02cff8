"""The IPsec half of an endpoint: the IKE table plus the bindings of ESP SAs to peers.

Theory of operation. `IkeTable` negotiates; this layer decides what the data plane does with the result and
tells its owner (the client or server endpoint) what it means for L2TP:

- every ChildSaUp becomes `InstallSa`; the newest SA of a peer carries its outbound traffic (RFC 2409
  rekeying: the old one keeps receiving until it is deleted), so each change of "newest" is `OutboundSa`;
- every ChildSaDown becomes `RemoveSa`; when the SA we sent on goes first (a peer may delete the newer pair
  first) the newest live one takes over rather than traffic stopping; when the last goes, the owner hears
  `peer_down`;
- a NAT re-mapping (PeerMoved from IKE, or authenticated ESP from a new port through `esp_from`) becomes
  `MovePeer` and the owner's `peer_moved`;
- byte lifetimes (ours or the peer's proposal, whichever is smaller, RFC 2407 4.5) go to the data plane with
  the SA; it reports `sa_expiring` once at the soft mark (a rekey starts) and once at the hard mark (the SA
  is deleted; the rekeyed one carries on). Time lifetimes are the IKE table's own.
- a peer that is behind NAT from our point of view gets an RFC 3948 keepalive every 20 s.

The owner is told through four methods: ipsec_sa_up(peer, now, round_trip), ipsec_peer_down(peer, reason, now),
ipsec_peer_moved(old, new, now), ipsec_failed(peer, reason, now).
"""

from sluice.endpoint.actions import (InstallSa, InstallSaInbound, InternalError, Log, MovePeer, OutboundSa, RemoveSa,
                                     SendIke)
from sluice.ike import events as ev

IKE_PORT = 500
NATT_PORT = 4500
KEEPALIVE_INTERVAL = 20.0  # RFC 3948 4: what racoon and strongSwan use
NON_ESP_MARKER = b"\x00\x00\x00\x00"
KEEPALIVE = b"\xff"
SOFT_BYTES = 0.9  # rekey at 90 % of a byte lifetime, like the time lifetime's initiator side


class _Sa:
    __slots__ = ("peer", "spi_in", "spi_out", "transform", "encap", "rekey")

    def __init__(self, peer, spi_in, spi_out, transform, encap):
        self.peer = peer
        self.spi_in = spi_in
        self.spi_out = spi_out
        self.transform = transform
        self.encap = encap
        self.rekey = False  # a byte-lifetime rekey was started for it


class IpsecLayer:
    def __init__(self, ike, owner, queue, lifetime_bytes=None):
        self.ike = ike                      # sluice.ike.table.IkeTable (crypto backend injected by the engine)
        self.owner = owner
        self.q = queue
        self.lifetime_bytes = lifetime_bytes  # ours, or None
        self.sas = {}        # spi_in -> _Sa
        self.out = {}        # peer -> [_Sa], live SAs oldest first; the last one carries outbound traffic
        self.keepalive = {}  # peer -> next keepalive deadline (we are behind NAT toward it)
        self.counters = {"peer_moves": 0, "byte_rekeys": 0, "byte_expiries": 0}

    # -- input ---------------------------------------------------------------------------------------------

    def datagram_received(self, data, local, peer, now):
        self.ike.datagram_received(data, local, peer, now)
        self.pump(now)

    def esp_from(self, spi_in, outer, now):
        """Authenticated ESP on `spi_in` arrived from `outer` (ip, port), another port than the SA's peer:
        the NAT re-mapped the client (RFC 3948 lets us follow). Returns the peer the SA belongs to now."""
        sa = self.sas.get(spi_in)
        if sa is None:
            return None
        # The data plane reports only fresh packets (sequence number above the replay window): a replayed
        # packet from another port never moves a peer (issue 13 item 3).
        if outer != sa.peer and outer[0] == sa.peer[0]:
            if self.ike.esp_from_new_port(spi_in, outer, now):
                self.pump(now)
        return self.sas[spi_in].peer if spi_in in self.sas else None

    def traffic_seen(self, peer, now):
        self.ike.traffic_seen(peer, now)

    def unknown_spi(self, spi, outer, encap, size, now):
        """ESP for an SPI we do not have: tell a peer that lost us (we restarted) so it renegotiates now."""
        peer = outer if encap else (outer[0], IKE_PORT)
        if self.ike.invalid_spi(spi, peer, encap, size, now):
            self.pump(now)

    def suspect(self, peer, now):
        """L2TP got no answer over this peer's SA: check the IKE SA with DPD at once."""
        self.ike.suspect_peer(peer, now)
        self.pump(now)

    def sa_expiring(self, spi_in, hard, now):
        """The data plane saw an SA pass its soft (hard=False) or hard byte lifetime."""
        sa = self.sas.get(spi_in)
        if sa is None:
            return
        if hard:
            self.counters["byte_expiries"] += 1
            self.q.log("info", "ESP SA 0x%08x with %s reached its byte lifetime", spi_in, _p(sa.peer))
            self.ike.expire_child(spi_in, now, "byte lifetime reached")
        elif not sa.rekey:
            sa.rekey = True
            self.counters["byte_rekeys"] += 1
            self.ike.rekey(sa.peer, now)
        self.pump(now)

    def get_timer(self):
        d = self.ike.get_timer()
        for t in self.keepalive.values():
            if d is None or t < d:
                d = t
        return d

    def handle_timer(self, now):
        d = self.ike.get_timer()
        if d is not None and d <= now:
            self.ike.handle_timer(now)
        for peer, t in list(self.keepalive.items()):
            if t <= now:
                self.q.add(SendIke(NATT_PORT, peer, KEEPALIVE))
                self.keepalive[peer] = now + KEEPALIVE_INTERVAL
        self.pump(now)

    # -- commands ------------------------------------------------------------------------------------------

    def initiate(self, target, now):
        self.ike.initiate(target, now)
        self.pump(now)

    def rekey(self, now):
        """Start a new Quick Mode with every peer; the old SAs carry traffic until the new ones are up."""
        n = 0
        for peer in list(self.out):
            if self.ike.rekey(peer, now):
                n += 1
        self.pump(now)
        return n

    def delete_all(self, now):
        """DELETE every SA with every peer (shutdown, or a client going idle)."""
        self.ike.close(now)
        self.pump(now)

    def peers(self):
        return list(self.out)

    # -- the IKE table's output ----------------------------------------------------------------------------

    def pump(self, now):
        ike = self.ike
        for port, peer, data in ike.datagrams_to_send():
            self.q.add(SendIke(port, peer, NON_ESP_MARKER + data if port == NATT_PORT else data))
        while True:
            e = ike.next_event()
            if e is None:
                break
            if isinstance(e, ev.ChildSaUp):
                self._child_up(e, now)
            elif isinstance(e, ev.ChildSaInbound):
                self.q.add(InstallSaInbound(e))
            elif isinstance(e, ev.ChildSaDown):
                self._child_down(e, now)
            elif isinstance(e, ev.IkeSaUp):
                self.q.log("info", "IKE SA up with %s (%s)%s", _p(e.peer), e.auth,
                           ", behind NAT" if e.nat_local else (", peer behind NAT" if e.nat_remote else ""))
                if e.nat_local and e.peer not in self.keepalive:
                    self.keepalive[e.peer] = now + KEEPALIVE_INTERVAL
            elif isinstance(e, ev.IkeSaDown):
                self.q.log("info", "IKE SA with %s down: %s", _p(e.peer), e.reason)
            elif isinstance(e, ev.PeerMoved):
                self._moved(e.old, e.new, now)
            elif isinstance(e, ev.PeerDead):
                self.q.log("warning", "peer %s is dead (no answer to DPD)", _p(e.peer))
                self._drop_peer(e.peer, "the peer stopped answering (DPD)", now)
            elif isinstance(e, ev.NegotiationFailed):
                if getattr(e, "verified", True):
                    self.q.log("warning", "IPsec negotiation with %s failed: %s", e.peer[0], e.reason)
                else:  # the source may be spoofed: one folded line for all of them
                    self.q.add(Log("warning", "IPsec negotiation failed (unverified source): %s" % e.reason,
                                   "ike-unverified"))
                self.owner.ipsec_failed(e.peer, e.reason, now)
            elif isinstance(e, ev.InternalError):
                self.q.add(InternalError("IKE", e.error))

    def _lifetime(self, e):
        limits = [x for x in (self.lifetime_bytes, (getattr(e, "life_kbytes", None) or 0) * 1024) if x]
        if not limits:
            return None, None
        hard = min(limits)
        return int(hard * SOFT_BYTES), hard

    def _child_up(self, e, now):
        soft, hard = self._lifetime(e)
        self.q.add(InstallSa(e, soft, hard))
        sa = _Sa(e.peer, e.spi_in, e.spi_out, e.transform, e.encap)
        self.sas[e.spi_in] = sa
        live = self.out.get(e.peer)
        first = not live
        if first:
            live = self.out[e.peer] = []
        live.append(sa)
        self.q.add(OutboundSa(e.peer, e.spi_out, e.encap))
        self.q.log("info", "ESP SA %s with %s in 0x%08x out 0x%08x%s%s", e.transform, _p(e.peer), e.spi_in,
                   e.spi_out, " UDP-encapsulated" if e.encap else "", " (rekey)" if e.rekey_of else "")
        if first:
            self.owner.ipsec_sa_up(e.peer, now, e.round_trip)

    def _child_down(self, e, now):
        sa = self.sas.pop(e.spi_in, None)
        if sa is None:
            return
        self.q.add(RemoveSa(e.spi_in, e.spi_out))
        live = self.out.get(sa.peer, [])
        was_current = bool(live) and live[-1] is sa
        if sa in live:
            live.remove(sa)
        if not live:
            self._forget(sa.peer)
            self.owner.ipsec_peer_down(sa.peer, e.reason, now)
        elif was_current:
            # The SA we sent on is gone: fall back to the newest live one rather than stop sending.
            self.q.add(OutboundSa(sa.peer, live[-1].spi_out, live[-1].encap))

    def _moved(self, old, new, now):
        if old == new:
            return
        self.counters["peer_moves"] += 1
        self.q.log("info", "peer %s moved to %s (NAT mapping changed)", _p(old), _p(new))
        for sa in self.sas.values():
            if sa.peer == old:
                sa.peer = new
        for table in (self.out, self.keepalive):
            if old in table:
                table[new] = table.pop(old)
        self.q.add(MovePeer(old, new))
        self.owner.ipsec_peer_moved(old, new, now)

    def _forget(self, peer):
        self.out.pop(peer, None)
        self.keepalive.pop(peer, None)
        self.q.add(OutboundSa(peer, None, False))

    def _drop_peer(self, peer, reason, now):
        for spi, sa in list(self.sas.items()):
            if sa.peer == peer:
                del self.sas[spi]
                self.q.add(RemoveSa(spi, sa.spi_out))
        had = peer in self.out
        self._forget(peer)
        if had:
            self.owner.ipsec_peer_down(peer, reason, now)

    def status(self):
        return [{"peer": _p(sa.peer), "spi_in": "0x%08x" % sa.spi_in, "spi_out": "0x%08x" % sa.spi_out,
                 "transform": sa.transform, "encap": sa.encap,
                 "current": bool(self.out.get(sa.peer)) and self.out[sa.peer][-1] is sa}
                for sa in self.sas.values()]


def _p(peer):
    return "%s:%d" % (peer[0], peer[1])


class IpsecFront:
    """The inputs both endpoints hand to their IPsec layer (`self.ipsec`, None when IPsec is off)."""

    ipsec = None

    def ike_received(self, data, local, peer, now):
        if self.ipsec is not None:
            self.ipsec.datagram_received(data, local, peer, now)

    def esp_from(self, spi_in, outer, now):
        return self.ipsec.esp_from(spi_in, outer, now) if self.ipsec is not None else None

    def traffic_seen(self, peer, now):
        if self.ipsec is not None:
            self.ipsec.traffic_seen(peer, now)

    def unknown_spi(self, spi, outer, encap, size, now):
        if self.ipsec is not None:
            self.ipsec.unknown_spi(spi, outer, encap, size, now)

    def sa_expiring(self, spi_in, hard, now):
        if self.ipsec is not None:
            self.ipsec.sa_expiring(spi_in, hard, now)

    def rekey(self, now):
        return self.ipsec.rekey(now) if self.ipsec is not None else 0
