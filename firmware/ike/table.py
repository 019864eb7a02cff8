"""IkeTable: every ISAKMP SA and ESP SA pair of one daemon, behind one sans-IO front (the engine's contract).

Contract (docs/design.md conventions; the engine codes against exactly this):

    from sluice.ike.table import IkeTable, IkeConfig
    from sluice.ike import events as ikeev
    cfg = IkeConfig(role='responder'|'initiator', psk=bytes or None, get_psk=None or callable(peer_ip)->bytes,
                    cert=None or PEM bytes, key=None or PEM bytes, ca=None or PEM bytes,
                    server_name=None (initiator: expected name in the server cert),
                    ike=ProposalSet (phase 1), esp=ProposalSet (phase 2), ike_lifetime=28800, esp_lifetime=3600,
                    dpd_delay=30, dpd_timeout=120, local_ip='a.b.c.d', vendor_ids=(), ...)
    table = IkeTable(cfg, rng, backend)          # backend: a sluice.hal.crypto backend module, None = default
    table.datagram_received(data, local, peer, now)  # data without the non-ESP marker; local=(ip, 500|4500)
    table.initiate(peer, now)                    # initiator: Main Mode toward (ip, 500), then Quick Mode
    table.traffic_seen(peer_key, now)            # authenticated inbound ESP from this peer (DPD idleness)
    table.close(now) / table.delete_peer(peer, now)  # DELETEs: ESP SAs, then the ISAKMP SA
    table.datagrams_to_send() -> [(local_port, peer, bytes)]  # 500 or 4500; the engine adds the marker on 4500
    table.next_event() -> event or None          # sluice.ike.events
    table.get_timer() -> float or None ; table.handle_timer(now)

Further IkeConfig options: utc_now (callable() -> aware datetime; needed to check certificate validity, the
machine reads no clock), sha256_96 (Android 6/7 ESP truncation), initial_contact, retransmit_base/_tries
(1, 2, 4, 8 s), half_open_timeout/_per_ip/_total (45 s, 16, 256), rekey_grace (30 s), fragment_size (1280:
bigger Main Mode messages go as type-132 fragments to peers that announced FRAGMENTATION, like Apple's). With cert/key/ca the
backend must offer RSA and X.509 (openssl): IkeTable() raises ValueError otherwise.

Events: IkeSaUp, ChildSaUp, ChildSaDown, IkeSaDown, PeerDead, NegotiationFailed (sluice.ike.events); SPIs are
ints. IkeSaDown does not take ESP SAs down (IKEv1 ESP SAs outlive their ISAKMP SA, and a phase 1 rekey replaces the
ISAKMP SA under live ESP SAs): every ESP SA that ends is reported by its own ChildSaDown; PeerDead means the
peer is gone (DPD) and comes before the ChildSaDowns of its SAs.

Theory of operation
-------------------
Lookup: a message with a zero responder cookie and exchange Main is a new Main Mode (responder side), or a
retransmission of one (same initiator cookie and peer: answered from the cache); everything else is found by
its cookie pair; a Main Mode message 2 to one of our initiators is found by the initiator cookie. Type-132
fragments are reassembled first (sluice.ike.fragments). Half-open ISAKMP SAs are bounded per source address
and in total; they are dropped `half_open_timeout` seconds after creation.

Peers are keyed by (ip, port) after the float, so two clients behind one NAT (one address, two ports) are two
peers; INITIAL-CONTACT (RFC 2407 4.6.3.3) removes the older SAs of that exact (ip, port) only.

Rekeying: ESP SAs are renegotiated with a new Quick Mode on the newest ISAKMP SA of the peer at the soft
lifetime: the side that ran the Quick Mode as initiator at 90% (minus up to 5% jitter from the rng), the other
side at 95% unless the peer has done it by then. A new ESP SA for a peer that has a live one is its
replacement (`rekey_of`); the old one stays usable for `rekey_grace` seconds, then is deleted (DELETE sent,
ChildSaDown 'replaced'). Phase 1 is renewed by its initiator at the same soft point; a responder accepts a new
Main Mode from a peer whose ISAKMP SA is alive without touching the ESP SAs.

Aggressive Mode is refused (one NegotiationFailed per peer says how to fix the client). Malformed input is
counted in `stats` and dropped; nothing a peer sends escapes datagram_received (an exception that is a bug of
ours is counted as `internal_error`, which the tests require to stay 0).
"""

from sluice.ike import constants as C
from sluice.ike import informational as info
from sluice.ike.dpd import DEAD, PROBE, Dpd
from sluice.ike.events import ChildSaDown, ChildSaUp, IkeSaDown, IkeSaUp, NegotiationFailed, PeerDead, PeerMoved
from sluice.ike.fragments import FragmentReassembler
from sluice.ike.ikesa import MM_SA, ChildSa, IkeSa
from sluice.ike.main_mode import AuthFailed, MainModeInitiator, MainModeResponder
from sluice.ike.message import parse_header, parse_message
from sluice.ike.natt import IKE_PORT
from sluice.ike.payloads import DeletePayload, FragmentPayload, IkeMalformed, NotifyPayload
from sluice.ike.proposals import NoProposalChosen, default_esp, default_ike
from sluice.ike.quick_mode import QM_DONE, QuickModeFailed, QuickModeInitiator, QuickModeResponder

ZERO_COOKIE = b"\x00" * 8


class IkeConfig:
    """Everything the IKE machines need from configuration. Secrets are never shown by repr()."""

    def __init__(self, role="responder", psk=None, get_psk=None, cert=None, key=None, ca=None, server_name=None,
                 ike=None, esp=None, ike_lifetime=28800, esp_lifetime=3600, dpd_delay=30, dpd_timeout=120,
                 local_ip=None, vendor_ids=(), initial_contact=True, sha256_96=False, retransmit_base=1.0,
                 retransmit_tries=4, half_open_timeout=45.0, half_open_per_ip=16, half_open_total=256,
                 rekey_grace=30.0, utc_now=None, fragment_size=1280):
        if role not in ("responder", "initiator"):
            raise ValueError("role is 'responder' or 'initiator', not %r" % (role,))
        self.role = role
        self.psk = None if psk is None else bytes(psk)
        self.get_psk = get_psk              # callable(peer_ip) -> bytes or None (server: per-peer keys)
        self.cert = cert                    # our certificate, PEM (a bundle: leaf first, then intermediates)
        self.key = key                      # our RSA private key, PEM
        self.ca = ca                        # the CA(s) that must have issued the peer's certificate, PEM
        self.server_name = server_name      # initiator: the name the server certificate must carry
        self.ike = ike if ike is not None else default_ike()
        self.esp = esp if esp is not None else default_esp()
        self.ike_lifetime = ike_lifetime
        self.esp_lifetime = esp_lifetime
        self.dpd_delay = dpd_delay          # idle seconds before R-U-THERE; 0 turns DPD off
        self.dpd_timeout = dpd_timeout
        self.local_ip = local_ip            # our address for IDs and NAT-D
        self.vendor_ids = tuple(vendor_ids)  # extra VIDs for our message 1
        self.initial_contact = initial_contact
        self.sha256_96 = sha256_96          # ESP HMAC-SHA-256 truncated to 96 bits (Android 6/7)
        self.retransmit_base = retransmit_base
        self.retransmit_tries = retransmit_tries
        self.half_open_timeout = half_open_timeout
        self.half_open_per_ip = half_open_per_ip
        self.half_open_total = half_open_total
        self.rekey_grace = rekey_grace
        self.utc_now = utc_now              # callable() -> aware datetime, for certificate validity
        self.fragment_size = fragment_size  # larger Main Mode messages go as fragments when the peer can (0: never)

    def __repr__(self):
        return "IkeConfig(role=%s, psk=%s, cert=%s, ike=%d transforms, esp=%d transforms)" % (
            self.role, "<set>" if (self.psk or self.get_psk) else None, "<set>" if self.cert else None,
            len(self.ike), len(self.esp))


class IkeTable:
    def __init__(self, cfg, rng, backend=None):
        if backend is None or isinstance(backend, str):
            from sluice.hal.crypto import backend as load_backend
            backend = load_backend(backend)
        self.cfg = cfg
        self.rng = rng
        self.be = backend
        self.certs = None
        if cfg.cert is not None or cfg.ca is not None:
            from sluice.ike.certs import CertAuth
            self.certs = CertAuth(cfg, backend)
        self._sas = {}          # icookie + rcookie -> IkeSa
        self._init_pending = {}  # icookie -> IkeSa (our message 1 sent, no responder cookie yet)
        self._resp_index = {}   # (icookie, peer) -> IkeSa (responder: to answer a repeated message 1)
        self._children = {}     # spi_in -> ChildSa
        self._serial = 0        # creation counter of children
        self._out = []
        self._events = []
        self._frags = FragmentReassembler()
        self._frag_id = 0
        self.stats = {"malformed": 0, "unknown_sa": 0, "half_open_limit": 0, "duplicate": 0, "refused": 0,
                      "unsupported_exchange": 0, "internal_error": 0, "aggressive": 0}
        self._told_aggressive = []  # peers already told that Aggressive Mode is not supported (bounded)

    def __repr__(self):
        return "<IkeTable %s: %d IKE SAs, %d ESP SAs>" % (self.cfg.role, len(self._sas) + len(self._init_pending),
                                                         len(self._children))

    # --- pull API -------------------------------------------------------------------------------------------

    def datagrams_to_send(self):
        out = self._out
        self._out = []
        return out

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        return None

    def get_timer(self):
        best = self._frags.get_timer()
        for sa in self._all_sas():
            d = sa.deadline()
            if d is not None and (best is None or d < best):
                best = d
        for ch in self._children.values():
            for d in (self._child_soft(ch), ch.down_at, ch.hard_at):
                if d is not None and (best is None or d < best):
                    best = d
        return best

    # --- helpers used by the exchanges ------------------------------------------------------------------------

    def emit(self, ev):
        self._events.append(ev)

    def psk_for(self, ip):
        if self.cfg.get_psk is not None:
            return self.cfg.get_psk(ip)
        return self.cfg.psk

    def auth_offer(self):
        return C.AUTH_RSA_SIG if (self.cfg.cert is not None and self.cfg.key is not None) else C.AUTH_PSK

    def auth_methods(self):
        out = []
        if self.cfg.psk is not None or self.cfg.get_psk is not None:
            out.append(C.AUTH_PSK)
        if self.certs is not None and self.certs.can_sign():
            out.append(C.AUTH_RSA_SIG)
        return tuple(out)

    def spi_in_use(self, spi):
        if spi in self._children:
            return True
        for sa in self._all_sas():
            for qm in sa.qms.values():
                if qm.spi_in == spi:
                    return True
        return False

    def has_other_sa(self, sa):
        for o in self._all_sas():
            if o is not sa and o.peer[0] == sa.peer[0] and o.established:
                return True
        return False

    def _all_sas(self):
        return list(self._sas.values()) + list(self._init_pending.values())

    def _remove_sa(self, sa):
        sa.state = "DELETED"
        self._sas.pop(sa.spi(), None)
        if self._init_pending.get(sa.icookie) is sa:
            del self._init_pending[sa.icookie]
        for k in [k for k, v in self._resp_index.items() if v is sa]:
            del self._resp_index[k]

    def refuse(self, sa, notify_type, reason, now):
        """Phase 1 cannot go on: tell the peer in clear (RFC 2408 5), report, forget the SA."""
        self.stats["refused"] += 1
        sa.send(info.plain_notify(sa.icookie, sa.rcookie, notify_type))
        self._fail_phase1(sa, reason)

    def _fail_phase1(self, sa, reason):
        self.emit(NegotiationFailed(sa.peer, reason))
        self._remove_sa(sa)
        for ch in self._children.values():
            if ch.rekeying and ch.peer[0] == sa.peer[0] and self._best_sa(ch.peer) is None:
                ch.rekeying = False   # its soft deadline (past) makes the next handle_timer try again

    def _best_sa(self, peer):
        best = None
        for sa in self._sas.values():
            if sa.established and sa.peer == peer and (best is None or sa.established_at > best.established_at):
                best = sa
        return best

    # --- API --------------------------------------------------------------------------------------------------

    def initiate(self, peer, now):
        """Start Main Mode toward `peer` (ip, port); Quick Mode for UDP/1701 follows by itself."""
        icookie = self._new_cookie()
        sa = IkeSa(self, "initiator", icookie, ZERO_COOKIE, (peer[0], peer[1]), self.cfg.local_ip, now)
        sa.mm = MainModeInitiator(sa, self)
        self._init_pending[icookie] = sa
        sa.mm.start(now)
        return sa

    def _new_cookie(self):
        for _ in range(16):
            c = self.rng(8)
            if c != ZERO_COOKIE and c not in self._init_pending:
                return c
        raise ValueError("no cookie")

    def traffic_seen(self, peer_key, now):
        for sa in self._sas.values():
            if sa.peer == peer_key and sa.dpd is not None:
                sa.dpd.traffic(now)

    def delete_peer(self, peer, now, reason="deleted locally"):
        """DELETE every ESP SA, then every ISAKMP SA, of `peer` (ip, port) as the events named it.

        An initiator may also name its server as (ip, 500) after the float to 4500: one server, one address.
        """
        match = [x for x in list(self._children.values()) + self._all_sas() if x.peer == peer]
        if not match and self.cfg.role == "initiator":
            peer = [x.peer for x in list(self._children.values()) + self._all_sas() if x.peer[0] == peer[0]]
            if not peer:
                return
            peer = peer[0]
        for ch in [c for c in self._children.values() if c.peer == peer]:
            self._child_down(ch, reason, now, send_delete=True)
        for sa in [s for s in self._all_sas() if s.peer == peer]:
            self._ike_down(sa, reason, send_delete=True)

    def rekey(self, peer, now):
        """Renegotiate the ESP SA of `peer` now (`sluice rekey`); False when there is nothing to renew yet."""
        sa = self._best_sa(peer)
        old = self._live_child(peer, now)
        if sa is None or old is None or old.rekeying:
            return False
        self.start_quick_mode(sa, now, old)
        return True

    def expire_child(self, spi_in, now, reason="lifetime expired"):
        """An ESP SA passed a limit the data plane counts (bytes): DELETE it; a rekeyed one carries on."""
        ch = self._children.get(spi_in)
        if ch is not None:
            self._child_down(ch, reason, now, send_delete=True)

    def close(self, now):
        peers = []
        for x in list(self._children.values()) + self._all_sas():
            if x.peer not in peers:
                peers.append(x.peer)
        for p in peers:
            self.delete_peer(p, now, "closed")

    # --- receive ----------------------------------------------------------------------------------------------

    def datagram_received(self, data, local, peer, now):
        try:
            self._receive(bytes(data), local, peer, now, 0)
        except (ValueError, IndexError, KeyError):
            # Codec errors are IkeMalformed; DhError, SignatureError etc. are ValueErrors too.
            self.stats["malformed"] += 1
        except Exception:
            # A bug of ours must not take the daemon down with it; tests assert this stays 0.
            self.stats["internal_error"] += 1

    def _receive(self, data, local, peer, now, depth):
        h = parse_header(data)
        if h.next_payload == C.PT_FRAGMENT and not h.flags & C.FLAG_E:
            if depth:
                raise IkeMalformed("a fragment inside a fragment")
            frag = parse_message(data).find(FragmentPayload)
            whole = self._frags.add((peer, h.icookie), frag, now)
            if whole is not None:
                self._receive(whole, local, peer, now, 1)
            return
        if h.exchange == C.EXCH_MAIN and h.rcookie == ZERO_COOKIE:
            return self._main_mode_1(data, h, local, peer, now)
        if h.exchange == C.EXCH_AGGRESSIVE and h.rcookie == ZERO_COOKIE:
            return self._aggressive(peer)
        sa = self._sas.get(h.icookie + h.rcookie)
        if sa is None:
            pend = self._init_pending.get(h.icookie)
            if pend is not None and pend.peer[0] == peer[0]:
                if h.exchange == C.EXCH_MAIN and pend.state == MM_SA:
                    del self._init_pending[h.icookie]
                    pend.rcookie = h.rcookie
                    self._sas[pend.spi()] = pend
                    sa = pend
                elif h.exchange == C.EXCH_INFORMATIONAL and not h.flags & C.FLAG_E:
                    return self._plain_info(pend, parse_message(data))
        if sa is None:
            self.stats["unknown_sa"] += 1
            return
        if sa.peer[0] != peer[0]:
            self.stats["unknown_sa"] += 1
            return
        if sa.is_duplicate(h.message_id, data):
            self.stats["duplicate"] += 1
            return
        msg = parse_message(data)
        if h.exchange == C.EXCH_MAIN:
            return self._main_mode(sa, msg, data, local, peer, now)
        if h.exchange == C.EXCH_QUICK:
            return self._quick_mode(sa, msg, data, local, peer, now)
        if h.exchange == C.EXCH_INFORMATIONAL:
            if not h.flags & C.FLAG_E:
                return self._plain_info(sa, msg)
            if sa.crypt is None:
                raise IkeMalformed("encrypted Informational before phase 1 keys")
            payloads = info.open_protected(sa, msg)
            self._alive(sa, local, peer, now)
            return self._informational(sa, payloads, now)
        self.stats["unsupported_exchange"] += 1

    def _aggressive(self, peer):
        """Aggressive Mode (RFC 2409 5.4 with a PSK exposes a crackable hash) is refused, once per peer in words."""
        self.stats["aggressive"] += 1
        if peer in self._told_aggressive:
            return
        self._told_aggressive.append(peer)
        if len(self._told_aggressive) > 64:
            self._told_aggressive.pop(0)
        self.emit(NegotiationFailed(peer, "the client uses Aggressive Mode (on Android: the 'IPsec identifier' "
                                          "field is filled in); leave it empty: only Main Mode is accepted"))

    def _alive(self, sa, local, peer, now):
        """An authenticated message arrived: follow a NAT mapping change (RFC 3947 4), note liveness."""
        if sa.established and local[1] != IKE_PORT and peer != sa.peer:
            self._move_peer(sa, peer)
        if sa.dpd is not None:
            sa.dpd.traffic(now)

    def _move_peer(self, sa, peer):
        old = sa.peer
        sa.peer = peer
        for ch in self._children.values():
            if ch.peer == old and ch.ike is sa:
                ch.peer = peer
        if old != peer:
            self.emit(PeerMoved(old, peer))  # the engine re-keys its ESP SAs and L2TP tunnels

    def follow_peer(self, old, new):
        """Authenticated ESP came from a new NAT mapping of `old` (RFC 3948 allows following it): move there."""
        for sa in self._all_sas():
            if sa.peer == old and sa.established:
                self._move_peer(sa, new)
                return True
        return False

    def _main_mode_1(self, data, h, local, peer, now):
        old = self._resp_index.get((h.icookie, peer))
        if old is not None:
            if not old.is_duplicate(0, data):
                self.stats["malformed"] += 1
            return
        if self.cfg.role == "initiator" and not [s for s in self._sas.values() if s.peer[0] == peer[0]]:
            self.stats["refused"] += 1
            return
        half = [s for s in self._all_sas() if not s.established]
        if len(half) >= self.cfg.half_open_total or \
                len([s for s in half if s.peer[0] == peer[0]]) >= self.cfg.half_open_per_ip:
            self.stats["half_open_limit"] += 1
            return
        msg = parse_message(data)
        rcookie = self._new_cookie()
        sa = IkeSa(self, "responder", h.icookie, rcookie, peer, self.cfg.local_ip or local[0], now)
        sa.local_port = local[1]  # a peer may start on 4500 already (a rekey from behind a NAT)
        sa.mm = MainModeResponder(sa, self)
        self._sas[sa.spi()] = sa
        self._resp_index[(h.icookie, peer)] = sa
        self._main_mode(sa, msg, data, local, peer, now)

    def _main_mode(self, sa, msg, data, local, peer, now):
        if sa.mm is None:
            self.stats["malformed"] += 1
            return
        try:
            sa.mm.receive(msg, data, local, peer, now)
        except AuthFailed as e:
            self._fail_phase1(sa, str(e))
        except IkeMalformed:
            sa.stats["malformed"] += 1
            self.stats["malformed"] += 1
        except ValueError as e:
            # A bad DH public value, an unsupported group or cipher: phase 1 cannot complete.
            self._fail_phase1(sa, "Main Mode failed: %s" % (e,))

    def _quick_mode(self, sa, msg, data, local, peer, now):
        mid = msg.header.message_id
        if not sa.established or not msg.header.flags & C.FLAG_E or mid == 0:
            self.stats["malformed"] += 1
            return
        qm = sa.qms.get(mid)
        new = False
        if qm is None:
            if mid in sa.used_mids:
                self.stats["duplicate"] += 1
                return
            qm = QuickModeResponder(sa, self, mid, now)
            new = True
        try:
            if new:
                sa.qms[mid] = qm
            qm.receive(msg, data, now)
        except IkeMalformed:
            # Includes a HASH that did not verify: nothing authenticated, nothing changes.
            if new:
                del sa.qms[mid]
            self.stats["malformed"] += 1
            return
        except (NoProposalChosen, QuickModeFailed) as e:
            sa.qms.pop(mid, None)
            sa.used_mids.add(mid)
            sa.answered(mid)
            ntype = C.N_NO_PROPOSAL_CHOSEN if isinstance(e, NoProposalChosen) else C.N_INVALID_ID_INFORMATION
            if isinstance(qm, QuickModeResponder):
                info.notify(sa, ntype, b"", C.PROTO_IPSEC_ESP, qm.spi_in.to_bytes(4, "big"))
            self._qm_failed(sa, qm, str(e))
            return
        except ValueError as e:
            sa.qms.pop(mid, None)
            sa.used_mids.add(mid)
            sa.answered(mid)
            self._qm_failed(sa, qm, "Quick Mode failed: %s" % (e,))
            return
        sa.used_mids.add(mid)
        self._alive(sa, local, peer, now)
        if qm.state == QM_DONE:
            del sa.qms[mid]

    def _qm_failed(self, sa, qm, reason):
        if qm.rekey_of is not None:
            ch = self._children.get(qm.rekey_of)
            if ch is not None:
                ch.rekeying = False
        self.emit(NegotiationFailed(sa.peer, reason))

    def _plain_info(self, sa, msg):
        """A clear Informational: only believed while phase 1 is negotiating, and only to end it."""
        if sa.established:
            self.stats["malformed"] += 1
            return
        for n in msg.find_all(NotifyPayload):
            if n.notify_type < C.N_CONNECTED:
                self._fail_phase1(sa, "the peer refused Main Mode with %s; compare the phase 1 proposals and the "
                                      "authentication method on both sides" % n.name())
                return

    def _informational(self, sa, payloads, now):
        for p in payloads:
            if isinstance(p, NotifyPayload):
                self._notify(sa, p, now)
            elif isinstance(p, DeletePayload):
                self._delete(sa, p, now)

    def _notify(self, sa, n, now):
        t = n.notify_type
        if t == C.N_R_U_THERE:
            info.notify(sa, C.N_R_U_THERE_ACK, n.data, C.PROTO_ISAKMP, sa.spi())
        elif t == C.N_R_U_THERE_ACK:
            if sa.dpd is not None and len(n.data) == 4:
                sa.dpd.ack(int.from_bytes(n.data, "big"), now)
        elif t == C.N_INITIAL_CONTACT:
            self._initial_contact(sa, now)
        elif t < C.N_CONNECTED and sa.qms:
            for mid in list(sa.qms):
                qm = sa.qms.pop(mid)
                sa.answered(mid)
                self._qm_failed(sa, qm, "the peer refused Quick Mode with %s; compare the ESP proposals on both "
                                        "sides" % n.name())

    def _delete(self, sa, d, now):
        if d.protocol == C.PROTO_ISAKMP:
            if sa.spi() in d.spis:
                self._ike_down(sa, "deleted by the peer", send_delete=False)
            return
        if d.protocol != C.PROTO_IPSEC_ESP or d.spi_size != 4:
            return
        for s in d.spis:
            v = int.from_bytes(s, "big")
            for ch in list(self._children.values()):
                if ch.peer[0] == sa.peer[0] and (ch.spi_out == v or ch.spi_in == v):
                    self._child_down(ch, "deleted by the peer", now, send_delete=False)

    def _initial_contact(self, sa, now):
        """RFC 2407 4.6.3.3: the peer at this exact (ip, port) started afresh; its older SAs are stale."""
        # Children negotiated before this ISAKMP SA came up (racoon sends INITIAL-CONTACT in a separate
        # Informational after phase 1, Windows inside message 5: both land here).
        for ch in [c for c in self._children.values() if c.peer == sa.peer and c.serial < sa.mark]:
            self._child_down(ch, "the peer restarted (INITIAL-CONTACT)", now, send_delete=False)
        for o in [s for s in self._all_sas() if s is not sa and s.peer == sa.peer]:
            self._ike_down(o, "the peer restarted (INITIAL-CONTACT)", send_delete=False)

    # --- phase 1 and children --------------------------------------------------------------------------------

    def phase1_done(self, sa, now):
        cfg = self.cfg
        sa.mark = self._serial
        if cfg.dpd_delay > 0 and sa.caps is not None and sa.caps.dpd:
            sa.dpd = Dpd(cfg.dpd_delay, cfg.dpd_timeout, int.from_bytes(self.rng(4), "big"), now)
        if sa.role == "initiator":
            sa.rekey_at = now + sa.lifetime * self._soft_fraction(True)
        if sa.initial_contact:
            self._initial_contact(sa, now)   # the stale SAs go first, then the new one comes up
        nat = sa.nat
        self.emit(IkeSaUp(sa.peer, bool(nat and nat.local_behind_nat), bool(nat and nat.remote_behind_nat),
                          C.AUTH_NAMES.get(sa.auth, str(sa.auth))))
        for o in self._sas.values():
            if o is not sa and o.peer == sa.peer and o.established:
                o.replaced = True
                o.dpd = None
        for ch in self._children.values():
            if ch.peer == sa.peer:
                ch.ike = sa
        if sa.role == "initiator" and cfg.role == "initiator":
            # A phase 1 rekey takes over the old ISAKMP SA; the old one is deleted now that this one works.
            for o in [x for x in self._sas.values() if x is not sa and x.peer == sa.peer and x.replaced]:
                self._ike_down(o, "replaced by a new ISAKMP SA", send_delete=True)
            old = self._live_child(sa.peer, now)
            if old is None or self._child_soft(old) is None or now >= self._child_soft(old):
                self.start_quick_mode(sa, now, old)

    def _soft_fraction(self, initiated):
        r = self.rng(1)[0] / 255.0
        return (0.90 - 0.05 * r) if initiated else (0.95 - 0.01 * r)

    def _live_child(self, peer, now):
        best = None
        for ch in self._children.values():
            if ch.peer == peer and ch.replaced_by is None and (best is None or ch.created > best.created):
                best = ch
        return best

    def start_quick_mode(self, sa, now, rekey=None):
        qm = QuickModeInitiator(sa, self, sa.new_message_id(), now)
        sa.qms[qm.mid] = qm
        ids = mode = None
        if rekey is not None:
            qm.rekey_of = rekey.spi_in
            rekey.rekeying = True
            ids, mode = rekey.ids, rekey.mode
        qm.start(now, ids, mode)
        return qm

    def child_up(self, sa, qm, name, keys_in, keys_out, encap, initiated, now):
        rekey_of = qm.rekey_of
        if rekey_of is None or rekey_of not in self._children:
            old = self._live_child(sa.peer, now)
            rekey_of = old.spi_in if old is not None else None
        if rekey_of is not None:
            old = self._children[rekey_of]
            old.replaced_by = qm.spi_in
            old.rekeying = False
            old.down_at = min(now + self.cfg.rekey_grace, old.hard_at)   # never past its own lifetime
        life = qm.lifetime
        ids = None
        if qm.ids:
            ids = (qm.ids[0], qm.ids[1]) if initiated else (qm.ids[1], qm.ids[0])
        ch = ChildSa(sa.peer, sa, qm.spi_in, qm.spi_out, name, encap, life, now,
                     now + life * self._soft_fraction(initiated), initiated, ids, qm.mode)
        ch.serial = self._serial
        self._serial += 1
        self._children[qm.spi_in] = ch
        self.emit(ChildSaUp(sa.peer, qm.spi_in, qm.spi_out, name, keys_in[0], keys_in[1], keys_in[2],
                            keys_out[0], keys_out[1], keys_out[2], encap, life, rekey_of, qm.life_kbytes))

    def _child_soft(self, ch):
        if ch.replaced_by is not None or ch.rekeying:
            return None
        return ch.soft_at

    def _child_down(self, ch, reason, now, send_delete):
        if self._children.pop(ch.spi_in, None) is None:
            return
        if send_delete:
            sa = self._best_sa(ch.peer)
            if sa is not None:
                info.delete_esp(sa, [ch.spi_in])
        self.emit(ChildSaDown(ch.peer, ch.spi_in, ch.spi_out, reason))

    def _ike_down(self, sa, reason, send_delete):
        if sa.state == "DELETED":
            return
        was_up = sa.established
        if send_delete and sa.established:
            info.delete_isakmp(sa)
        self._remove_sa(sa)
        if was_up:
            self.emit(IkeSaDown(sa.peer, reason))

    # --- timers -----------------------------------------------------------------------------------------------

    def handle_timer(self, now):
        self._frags.expire(now)
        for sa in self._all_sas():
            if sa.state == "DELETED":
                continue
            for mid, r in sa.retransmit_due(now):
                if mid == 0:
                    self._fail_phase1(sa, "the peer did not answer %s (%d retransmissions); check that it is "
                                          "reachable on UDP 500/4500" % (r.what, self.cfg.retransmit_tries))
                    break
                qm = sa.qms.pop(mid, None)
                if qm is not None:
                    self._qm_failed(sa, qm, "the peer did not answer %s (%d retransmissions)"
                                    % (r.what, self.cfg.retransmit_tries))
            if sa.state == "DELETED":
                continue
            if not sa.established:
                if now >= sa.half_open_until:
                    self._fail_phase1(sa, "Main Mode did not complete within %d s"
                                      % int(self.cfg.half_open_timeout))
                continue
            if sa.dpd is not None:
                what = sa.dpd.due(now)
                if what == PROBE:
                    seq = sa.dpd.next_seq(now)
                    info.notify(sa, C.N_R_U_THERE, seq.to_bytes(4, "big"), C.PROTO_ISAKMP, sa.spi())
                elif what == DEAD:
                    self._peer_dead(sa, now)
                    continue
            if sa.rekey_at is not None and now >= sa.rekey_at and not sa.replaced:
                sa.rekey_at = None
                self.initiate((sa.peer[0], IKE_PORT), now)
            if sa.lifetime is not None and now >= sa.established_at + sa.lifetime:
                self._ike_down(sa, "ISAKMP SA lifetime ended", send_delete=True)
        for ch in list(self._children.values()):
            if ch.spi_in not in self._children:
                continue
            if ch.down_at is not None and now >= ch.down_at:
                self._child_down(ch, "replaced by a rekeyed SA", now, send_delete=True)
            elif now >= ch.hard_at:
                self._child_down(ch, "lifetime expired", now, send_delete=True)
            elif self._child_soft(ch) is not None and now >= ch.soft_at:
                sa = self._best_sa(ch.peer)
                if sa is not None:
                    self.start_quick_mode(sa, now, ch)
                elif self.cfg.role == "initiator":
                    # No ISAKMP SA left: the next phase 1 with this peer runs the Quick Mode (phase1_done).
                    ch.rekeying = True
                    if not [s for s in self._all_sas() if s.peer[0] == ch.peer[0]]:
                        self.initiate((ch.peer[0], IKE_PORT), now)
                else:
                    ch.soft_at = ch.hard_at  # a responder cannot dial a client: let it run out

    def _peer_dead(self, sa, now):
        peer = sa.peer
        self.emit(PeerDead(peer))
        for ch in [c for c in self._children.values() if c.peer == peer]:
            self._child_down(ch, "the peer is dead (no answer to DPD)", now, send_delete=False)
        for o in [s for s in self._all_sas() if s.peer == peer]:
            self._ike_down(o, "the peer is dead (no answer to DPD)", send_delete=False)
