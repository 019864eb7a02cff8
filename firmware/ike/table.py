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
    table.esp_from_new_port(spi_in, new, now) -> bool  # authenticated ESP above the replay window from a new
                                                 # (ip, port) of the same address: follow the NAT (PeerMoved)
    table.counters() -> dict                     # malformed, refused, half_open_drops, evictions, replays,
                                                 # internal_errors, ... and the admission state, for status
    table.close(now) / table.delete_peer(peer, now)  # DELETEs: ESP SAs, then the ISAKMP SA
    table.datagrams_to_send() -> [(local_port, peer, bytes)]  # 500 or 4500; the engine adds the marker on 4500
    table.next_event() -> event or None          # sluice.ike.events
    table.get_timer() -> float or None ; table.handle_timer(now)

Further IkeConfig options: utc_now (callable() -> aware datetime; needed to check certificate validity, the
machine reads no clock), sha256_96 (Android 6/7 ESP truncation), initial_contact, retransmit_base/_tries
(1, 2, 4, 8 s), rekey_grace (30 s), fragment_size (1280: bigger Main Mode messages go as type-132 fragments to
peers that announced FRAGMENTATION, like Apple's), seen_message_ids (128 per ISAKMP SA, for replay protection),
strict (tests: an internal error is raised after it is counted), and the admission control of
sluice.ike.admission: half_open_total (256), half_open_per_ip (16), half_open_queue (128 message 1s waiting per
address), half_open_queue_wait (10 s), half_open_timeout (45 s), half_open_timeout_busy (5 s once
half_open_busy, by default half the total, are half-open). With cert/key/ca the backend must offer RSA and
X.509 (openssl): IkeTable() raises ValueError otherwise.

Events: IkeSaUp, ChildSaUp, ChildSaDown, IkeSaDown, PeerDead, PeerMoved, NegotiationFailed (its `verified` is
False when only a first message was seen: the source may be spoofed, log it sparingly), InternalError (a bug of
ours, with the exception object: log it with its traceback) (sluice.ike.events); SPIs are ints. IkeSaDown does
not take ESP SAs down (IKEv1 ESP SAs outlive their ISAKMP SA, and a phase 1 rekey replaces the ISAKMP SA under
live ESP SAs): every ESP SA that ends is reported by its own ChildSaDown; PeerDead means the peer is gone (DPD)
and comes before the ChildSaDowns of its SAs.

Theory of operation
-------------------
Lookup: a message with a zero responder cookie and exchange Main is a new Main Mode (responder side), or a
retransmission of one (same initiator cookie and peer: answered from the cache); everything else is found by
its cookie pair; a Main Mode message 2 to one of our initiators is found by the initiator cookie. Type-132
fragments are reassembled first (sluice.ike.fragments).

Admission (sluice.ike.admission, what strongSwan's init_limit_half_open and block_threshold do): the
responder's half-open ISAKMP SAs are bounded per source address (beyond it, message 1s wait in a short queue:
many clients behind one NAT) and in total (beyond it, a victim is evicted: unverified before verified, from
the address holding most); under pressure they get shorter timeouts. A half-open SA whose source never sent
message 3 ends silently (counted): it was most likely spoofed. Every step is O(1) per packet: the responder's
half-open SAs live only in the admission structure, and get_timer() rescans the live SAs only after something
that can bring their deadlines forward (input for a known SA, an API call, a timer).

Replay and peer movement: the ids of protected Quick Mode and Informational messages are kept per ISAKMP SA
(bounded); an authenticated message with an id already seen is a replay: dropped, counted, never answered. An
R-U-THERE also carries a sequence number that must grow (RFC 3706 7), which catches a replay older than the
ids kept. A peer moves to a new port (RFC 3947 4) only on fresh authenticated traffic: a Quick Mode message of
a new exchange, an R-U-THERE with a higher sequence number, an R-U-THERE-ACK of one of our probes, or (from the
data path) ESP above its replay window (esp_from_new_port); never on a DELETE or a replay.

A wrong pre-shared key: the responder, when message 5 does not decrypt or verify, says AUTHENTICATION-FAILED in
clear; the initiator, waiting for message 6, takes that notify (or PAYLOAD-MALFORMED, INVALID-ID-INFORMATION,
INVALID-HASH-INFORMATION as libreswan, racoon and Windows send) or an Informational it cannot decrypt (what
strongSwan sends) as a key mismatch and says so at once.

Peers are keyed by (ip, port) after the float, so two clients behind one NAT (one address, two ports) are two
peers; INITIAL-CONTACT (RFC 2407 4.6.3.3) removes the older SAs of that exact (ip, port) only.

Rekeying: ESP SAs are renegotiated with a new Quick Mode on the newest ISAKMP SA of the peer at the soft
lifetime: the side that ran the Quick Mode as initiator at 90% (minus up to 5% jitter from the rng), the other
side at 95% unless the peer has done it by then. A new ESP SA for a peer that has a live one is its
replacement (`rekey_of`); the old one stays usable for `rekey_grace` seconds, then is deleted (DELETE sent,
ChildSaDown 'replaced'). Phase 1 is renewed by its initiator at the same soft point; a responder accepts a new
Main Mode from a peer whose ISAKMP SA is alive without touching the ESP SAs.

Aggressive Mode is refused (one NegotiationFailed per peer says how to fix the client). Malformed input (an
IkeMalformed or any other ValueError of the codec or crypto) is counted in `stats` and dropped; nothing a peer
sends escapes datagram_received. Any other exception is a bug of ours: counted as `internal_error`, kept in
`errors` and reported as an InternalError event, and the half-open negotiation it hit is ended so that nothing
half-updated stays behind (tests require the count to stay 0; with cfg.strict it is raised).
"""

from sluice.ike import constants as C
from sluice.ike import informational as info
from sluice.ike.admission import ADMIT, UNVERIFIED, VERIFIED, HalfOpenTable
from sluice.ike.dpd import DEAD, PROBE, Dpd
from sluice.ike.events import (ChildSaDown, ChildSaInbound, ChildSaUp, IkeSaDown, IkeSaUp, InternalError,
                               NegotiationFailed, PeerDead, PeerMoved)
from sluice.ike.fragments import FragmentReassembler
from sluice.ike.ikesa import DELETED, MM_AUTH, MM_KE, MM_SA, ChildSa, IkeSa
from sluice.ike.main_mode import AuthFailed, MainModeInitiator, MainModeResponder
from sluice.ike.message import Message, parse_header, parse_message
from sluice.ike.natt import IKE_PORT
from sluice.ike.payloads import DeletePayload, FragmentPayload, IkeMalformed, NotifyPayload
from sluice.ike.proposals import NoProposalChosen, default_esp, default_ike
from sluice.ike.quick_mode import QM_DONE, QuickModeFailed, QuickModeInitiator, QuickModeResponder

ZERO_COOKIE = b"\x00" * 8
SUSPECT_WITHIN = 6.0  # seconds of silence after a restart hint before a peer is declared dead

MAX_MESSAGE_1 = 8192

# Answers to our Main Mode message 5 that mean "your proof of identity did not verify" (RFC 2408 3.14.1):
# AUTHENTICATION-FAILED (Sluice), PAYLOAD-MALFORMED (strongSwan, libreswan), INVALID-ID-INFORMATION and
# INVALID-HASH-INFORMATION (racoon, Windows), INVALID-PAYLOAD-TYPE (message 5 decrypted to garbage).
AUTH_REFUSALS = (C.N_AUTHENTICATION_FAILED, C.N_PAYLOAD_MALFORMED, C.N_INVALID_ID_INFORMATION,
                 C.N_INVALID_HASH_INFORMATION, C.N_INVALID_PAYLOAD_TYPE, C.N_INVALID_SIGNATURE)


class IkeConfig:
    """Everything the IKE machines need from configuration. Secrets are never shown by repr()."""

    def __init__(self, role="responder", psk=None, get_psk=None, cert=None, key=None, ca=None, server_name=None,
                 ike=None, esp=None, ike_lifetime=28800, esp_lifetime=3600, dpd_delay=30, dpd_timeout=120,
                 local_ip=None, vendor_ids=(), initial_contact=True, sha256_96=False, retransmit_base=1.0,
                 retransmit_tries=4, half_open_timeout=45.0, half_open_per_ip=16, half_open_total=256,
                 rekey_grace=30.0, utc_now=None, fragment_size=1280, half_open_timeout_busy=5.0,
                 half_open_busy=None, half_open_queue=128, half_open_queue_wait=10.0, seen_message_ids=128,
                 strict=False):
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
        self.half_open_timeout_busy = half_open_timeout_busy  # under pressure (sluice.ike.admission)
        self.half_open_busy = half_open_busy    # half-open SAs that mean pressure (None: half of the total)
        self.half_open_queue = half_open_queue  # message 1s held per address at its limit (0: drop them)
        self.half_open_queue_wait = half_open_queue_wait
        self.seen_message_ids = seen_message_ids  # per ISAKMP SA, for replay protection of phase 2 messages
        self.strict = strict                # tests: an internal error is raised after it is counted
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
        self._timed = {}        # IkeSa -> True: the SAs whose timers are scanned (ours as initiator, established)
        self._timed_dirty = True  # their earliest deadline (and the ESP SAs') must be recomputed
        self._timed_deadline = None
        self.half_open = HalfOpenTable(cfg, rng)  # the responder's half-open SAs (sluice.ike.admission)
        self.errors = []        # the last internal errors (exception objects), newest last
        self._serial = 0        # creation counter of children
        self._out = []
        self._events = []
        self._frags = FragmentReassembler()
        self._frag_id = 0
        self.stats = {"malformed": 0, "unknown_sa": 0, "half_open_limit": 0, "duplicate": 0, "refused": 0,
                      "unsupported_exchange": 0, "internal_error": 0, "aggressive": 0, "evicted": 0,
                      "half_open_expired": 0, "replay": 0}
        self._told_aggressive = []  # peers already told that Aggressive Mode is not supported (bounded)
        self._now = 0.0             # the time of the input being handled (for hints that carry none)
        self._hinted = {}           # source address -> when we last sent it INVALID-SPI (bounded)
        self._hint_window = [0.0, 0]  # [start of the current second, hints sent in it]

    def __repr__(self):
        return "<IkeTable %s: %d IKE SAs, %d ESP SAs>" % (self.cfg.role, len(self._sas) + len(self._init_pending),
                                                         len(self._children))

    def counters(self):
        """Every counter a status shows, as one flat dict of ints (and `under_pressure`, a bool)."""
        st = self.stats
        ho = self.half_open
        fr = self._frags.stats
        return {"malformed": st["malformed"], "refused": st["refused"], "half_open_drops": st["half_open_limit"],
                "evictions": st["evicted"], "replays": st["replay"], "internal_errors": st["internal_error"],
                "half_open_expired": st["half_open_expired"], "unknown_sa": st["unknown_sa"],
                "duplicates": st["duplicate"], "aggressive": st["aggressive"],
                "unsupported_exchange": st["unsupported_exchange"], "queued": ho.stats["queued"],
                "queue_expired": ho.stats["queue_expired"], "fragments_dropped":
                    fr["dropped"] + fr["expired"] + fr["evicted"],
                "half_open": len(ho), "half_open_peak": ho.peak, "half_open_limit": ho.total,
                "waiting": ho.queued(), "under_pressure": ho.busy(), "ike_sas": len(self._timed),
                "esp_sas": len(self._children)}

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
        d = self.half_open.deadline()
        if d is not None and (best is None or d < best):
            best = d
        if self._timed_dirty:
            # Only input for a known SA, an API call or a timer can bring a deadline of the established SAs
            # forward; a flood of message 1s or of unknown cookies never makes us scan them again.
            self._timed_dirty = False
            self._timed_deadline = self._scan_deadline()
        d = self._timed_deadline
        if d is not None and (best is None or d < best):
            best = d
        return best

    def _scan_deadline(self):
        best = None
        for sa in self._timed:
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
        for sa in self._timed:
            for qm in sa.qms.values():
                if qm.spi_in == spi:
                    return True
        return False

    def has_other_sa(self, sa):
        for o in self._timed:
            if o is not sa and o.peer[0] == sa.peer[0] and o.established:
                return True
        return False

    def _all_sas(self):
        return list(self._sas.values()) + list(self._init_pending.values())

    def _remove_sa(self, sa):
        sa.state = DELETED
        k = sa.spi()
        if self._sas.get(k) is sa:
            del self._sas[k]
        if self._init_pending.get(sa.icookie) is sa:
            del self._init_pending[sa.icookie]
        if sa.resp_key is not None and self._resp_index.get(sa.resp_key) is sa:
            del self._resp_index[sa.resp_key]
        self._timed.pop(sa, None)
        self.half_open.remove(sa)

    def refuse(self, sa, notify_type, reason, now):
        """Phase 1 cannot go on: tell the peer in clear (RFC 2408 5), report, forget the SA."""
        self.stats["refused"] += 1
        sa.send(info.plain_notify(sa.icookie, sa.rcookie, notify_type))
        self._fail_phase1(sa, reason)

    def _fail_phase1(self, sa, reason):
        unverified = sa.admit == UNVERIFIED
        self.emit(NegotiationFailed(sa.peer, reason, not unverified))
        self._remove_sa(sa)
        if unverified:
            return      # a refused message 1: nothing of ours waited for it (and a flood costs O(1) each)
        for ch in self._children.values():
            if ch.rekeying and ch.peer[0] == sa.peer[0] and self._best_sa(ch.peer) is None:
                ch.rekeying = False   # its soft deadline (past) makes the next handle_timer try again
                self._timed_dirty = True

    def _best_sa(self, peer):
        best = None
        for sa in self._timed:
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
        self._timed[sa] = True
        self._timed_dirty = True
        sa.mm.start(now)
        return sa

    def _new_cookie(self):
        for _ in range(16):
            c = self.rng(8)
            if c != ZERO_COOKIE and c not in self._init_pending:
                return c
        raise ValueError("no cookie")

    def traffic_seen(self, peer_key, now):
        self._timed_dirty = True
        for sa in self._timed:
            if sa.peer == peer_key and sa.dpd is not None:
                sa.dpd.traffic(now)

    def delete_peer(self, peer, now, reason="deleted locally"):
        """DELETE every ESP SA, then every ISAKMP SA, of `peer` (ip, port) as the events named it.

        An initiator may also name its server as (ip, 500) after the float to 4500: one server, one address.
        """
        self._timed_dirty = True
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
        self._timed_dirty = True
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
        self._timed_dirty = True
        peers = []
        for x in list(self._children.values()) + self._all_sas():
            if x.peer not in peers:
                peers.append(x.peer)
        for p in peers:
            self.delete_peer(p, now, "closed")

    # --- receive ----------------------------------------------------------------------------------------------

    def datagram_received(self, data, local, peer, now):
        data = bytes(data)
        self._now = now
        try:
            self._receive(data, local, peer, now, 0)
        except ValueError:
            # Codec errors are IkeMalformed; DhError, SignatureError etc. are ValueErrors too: bad input.
            self.stats["malformed"] += 1
        except Exception as e:
            # IndexError, KeyError, AttributeError ...: a bug of ours, not bad input (sluice.ike.events).
            self._internal_error(e, data, peer)
        if self.half_open.freed:
            self._admit_queued(now)

    def _internal_error(self, e, data, peer):
        """Count and report a bug of ours; end the half-open negotiation the input was for (its state may be
        half updated); with cfg.strict (tests) raise it."""
        self.stats["internal_error"] += 1
        self.errors.append(e)
        if len(self.errors) > 8:
            self.errors.pop(0)
        self.emit(InternalError(peer, e))
        sa = None
        if data is not None and len(data) >= 16:
            sa = self._sas.get(data[:16]) or self._resp_index.get((data[:8], peer)) or \
                self._init_pending.get(data[:8])
        if sa is not None and sa.state != DELETED and not sa.established:
            self._fail_phase1(sa, "internal error (%s); the negotiation was ended" % type(e).__name__)
        if self.cfg.strict:
            raise e

    def _admit_queued(self, now):
        """Let queued message 1s in for the addresses that got a half-open slot back (sluice.ike.admission)."""
        ho = self.half_open
        for _ in range(64):
            if not ho.freed:
                return
            ip = ho.freed.pop()
            while ho.check(ip) == ADMIT:
                e = ho.dequeue(ip, now)
                if e is None:
                    break
                try:
                    self._main_mode_1(e.data, parse_header(e.data), e.local, e.peer, now)
                except ValueError:
                    self.stats["malformed"] += 1
                except Exception as x:
                    self._internal_error(x, e.data, e.peer)

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
        if sa is None and h.exchange == C.EXCH_INFORMATIONAL and not h.flags & C.FLAG_E:
            if self._restart_hint(parse_message(data), peer):
                return
        if sa is None:
            self.stats["unknown_sa"] += 1
            return
        self._timed_dirty = True
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
            if sa.role == "initiator" and sa.state == MM_AUTH:
                payloads = self._informational_in_phase1(sa, msg)
                if payloads is None:
                    return
            else:
                payloads = info.open_protected(sa, msg)
            mid = h.message_id
            if mid in sa.peer_mids or mid in sa.used_mids:
                # Already seen (or one of our own ids reflected): a replay. Nothing is answered or believed.
                self.stats["replay"] += 1
                return
            fresh = self._info_fresh(sa, payloads)
            if fresh is None:
                self.stats["replay"] += 1
                return
            sa.peer_mids.add(mid)
            self._alive(sa, local, peer, now, fresh)
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
                                          "field is filled in); leave it empty: only Main Mode is accepted", False))

    def _alive(self, sa, local, peer, now, fresh):
        """An authenticated, not replayed message arrived: note liveness; follow a NAT mapping change (RFC 3947
        4) only when the message is also proven fresh (`fresh`), so that a replay can never move the peer."""
        if fresh and sa.established and local[1] != IKE_PORT and peer != sa.peer:
            self._move_peer(sa.peer, peer)
        if sa.dpd is not None:
            sa.dpd.traffic(now)

    def _info_fresh(self, sa, payloads):
        """Whether a protected Informational (id not seen before) proves the peer sent it just now: True for an
        R-U-THERE-ACK of one of our outstanding probes or an R-U-THERE whose sequence number is above every
        earlier one (RFC 3706 7: each R-U-THERE increments it); None for an R-U-THERE below that (a replay of an
        old one whose message id was forgotten); False otherwise (DELETE, INITIAL-CONTACT: believed, but no
        reason to follow a new port)."""
        for p in payloads:
            if not isinstance(p, NotifyPayload) or len(p.data) != 4:
                continue
            seq = int.from_bytes(p.data, "big")
            if p.notify_type == C.N_R_U_THERE_ACK:
                return sa.dpd is not None and seq in sa.dpd.outstanding
            if p.notify_type == C.N_R_U_THERE:
                last = sa.peer_dpd_seq
                if last is None or 0 < ((seq - last) & 0xFFFFFFFF) < 0x80000000:
                    sa.peer_dpd_seq = seq
                    return True
                if seq == last:
                    return False    # the same number again: answered, but not a reason to move
                return None
        return False

    def _move_peer(self, old, new):
        """Every established SA and ESP SA of `old` (ip, port) now lives at `new`; False when `new` already
        belongs to another live peer (then nothing moves)."""
        if old == new:
            return False
        for x in self._timed:
            if x.peer == new and x.established:
                return False
        for ch in self._children.values():
            if ch.peer == new:
                return False
        moved = False
        for sa in self._timed:
            if sa.peer == old and sa.established:
                sa.peer = new
                moved = True
        for ch in self._children.values():
            if ch.peer == old:
                ch.peer = new
                moved = True
        if moved:
            self.emit(PeerMoved(old, new))  # the engine re-keys its ESP SAs and L2TP tunnels
        return moved

    def esp_from_new_port(self, spi_in, new, now):
        """The data path's report: authenticated ESP of our inbound SA `spi_in`, with a sequence number above
        its replay window (never a replayed or reordered one), arrived UDP-encapsulated from `new` (ip, port),
        the same address at another port: the peer's NAT re-mapped it (RFC 3948 allows following it).

        Moves every SA of that peer to `new` and returns True (a PeerMoved event follows); False when the SA is
        unknown, not encapsulated, `new` is another address, or `new` belongs to another live peer."""
        ch = self._children.get(spi_in)
        if ch is None or not ch.encap or new[0] != ch.peer[0] or new == ch.peer:
            return False
        old = ch.peer
        if not self._move_peer(old, new):
            return False
        for sa in self._timed:
            if sa.peer == new and sa.dpd is not None:
                sa.dpd.traffic(now)
        return True

    def follow_peer(self, old, new):
        """Older name: move the SAs of `old` to `new`. Only for authenticated ESP above the replay window;
        prefer esp_from_new_port(spi_in, new, now), which also checks that the SA is encapsulated."""
        for sa in self._timed:
            if sa.peer == old and sa.established:
                return self._move_peer(old, new)
        return False

    def _main_mode_1(self, data, h, local, peer, now):
        key = (h.icookie, peer)
        old = self._resp_index.get(key)
        if old is not None:
            if not old.is_duplicate(0, data):
                self.stats["malformed"] += 1
            return
        if len(data) > MAX_MESSAGE_1:
            # Kept while half-open (to answer a retransmission): a real one is well under 2 KB, even Windows'
            # with every proposal; 256 of these at most stay within a router's memory.
            raise IkeMalformed("a Main Mode message 1 of %d octets (at most %d)" % (len(data), MAX_MESSAGE_1))
        if self.cfg.role == "initiator":
            known = False
            for s in self._timed:
                if s.peer[0] == peer[0]:
                    known = True
                    break
            if not known:
                self.stats["refused"] += 1
                return
        msg = parse_message(data)   # garbage is dropped here: it never queues nor evicts anyone
        ho = self.half_open
        if ho.check(peer[0]) != ADMIT:
            # This address holds its share of half-open SAs: hold the message until one of them ends.
            if not ho.enqueue(key, data, local, peer, now):
                self.stats["half_open_limit"] += 1
            return
        victim = ho.victim()
        if victim is not None:
            self.stats["evicted"] += 1
            self._remove_sa(victim)   # silently: most victims are spoofed, and a flood must not flood the log
        rcookie = self._new_cookie()
        sa = IkeSa(self, "responder", h.icookie, rcookie, peer, self.cfg.local_ip or local[0], now)
        sa.local_port = local[1]  # a peer may start on 4500 already (a rekey from behind a NAT)
        sa.mm = MainModeResponder(sa, self)
        sa.resp_key = key
        self._sas[sa.spi()] = sa
        self._resp_index[key] = sa
        ho.add(sa, now)
        self._main_mode(sa, msg, data, local, peer, now)

    def _main_mode(self, sa, msg, data, local, peer, now):
        if sa.mm is None:
            self.stats["malformed"] += 1
            return
        try:
            sa.mm.receive(msg, data, local, peer, now)
            if sa.admit is not None and sa.state == MM_KE:
                self.half_open.verified(sa, now)    # message 3 came back: the source address is real
        except AuthFailed as e:
            if sa.role == "responder" and sa.state == MM_KE:
                # Message 5 did not decrypt or verify: tell the initiator in clear (it cannot read anything
                # under keys it does not share) so that it can say "wrong key" at once instead of retrying.
                self.refuse(sa, C.N_AUTHENTICATION_FAILED, str(e), now)
                return
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
                # An exchange that is over (its last message was answered from the cache above if it was the
                # same datagram): a replay, never processed again.
                self.stats["replay"] += 1
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
        # Authenticated and in an exchange whose id was new: fresh (HASH(2)/(3) also cover our own nonce).
        self._alive(sa, local, peer, now, True)
        if qm.state == QM_DONE:
            del sa.qms[mid]

    def _qm_failed(self, sa, qm, reason):
        if qm.rekey_of is not None:
            ch = self._children.get(qm.rekey_of)
            if ch is not None:
                ch.rekeying = False
        self.emit(NegotiationFailed(sa.peer, reason))

    def _plain_info(self, sa, msg):
        """A clear Informational: only believed while phase 1 is negotiating, and only to end it; on an
        established SA, INVALID-COOKIE or INVALID-SPI from the peer's address is a hint that it restarted
        (unverifiable: it only makes us probe with DPD sooner)."""
        if sa.established:
            for n in msg.find_all(NotifyPayload):
                if n.notify_type in (C.N_INVALID_COOKIE, C.N_INVALID_SPI):
                    self._suspect(sa.peer, "the peer says it does not know our SA (%s)" % n.name())
                    return
            self.stats["malformed"] += 1
            return
        for n in msg.find_all(NotifyPayload):
            if n.notify_type < C.N_CONNECTED:
                if sa.role == "initiator" and sa.state == MM_AUTH and n.notify_type in AUTH_REFUSALS:
                    self._fail_phase1(sa, self._auth_refused(sa, "it answered our Main Mode message 5 with %s"
                                                             % n.name()))
                else:
                    self._fail_phase1(sa, "the peer refused Main Mode with %s; compare the phase 1 proposals and "
                                          "the authentication method on both sides" % n.name())
                return

    # --- restarts: the lost peer's hints, and ours to it ----------------------------------------------------

    def _suspect(self, peer, why):
        """Probe `peer` with DPD now and declare it dead after SUSPECT_WITHIN s of silence (RFC 3706 with a
        shorter verdict): how a client notices a restarted server in seconds instead of minutes."""
        self.stats["suspect"] = self.stats.get("suspect", 0) + 1
        self._timed_dirty = True
        for sa in self._all_sas():
            if sa.peer[0] == peer[0] and sa.established and sa.dpd is not None and not sa.replaced:
                sa.dpd.suspect(self._now, SUSPECT_WITHIN)

    def _restart_hint(self, msg, peer):
        """An unprotected INVALID-SPI naming an SPI we send to that address: the peer restarted and lost our
        SAs (or someone on the path wants us to think so: all we do is probe it sooner)."""
        for n in msg.find_all(NotifyPayload):
            if n.notify_type == C.N_INVALID_SPI and n.protocol == C.PROTO_IPSEC_ESP and len(n.spi) == 4:
                spi = int.from_bytes(n.spi, "big")
                for ch in self._children.values():
                    if ch.spi_out == spi and ch.peer[0] == peer[0]:
                        self._suspect(ch.peer, "INVALID-SPI")
                        return True
        return False

    def suspect_peer(self, peer, now):
        """The endpoint's hint: L2TP got no answer over this peer's SA. Check the IKE SA at once (DPD)."""
        self._now = now
        self._suspect(peer, "L2TP unanswered")

    def invalid_spi(self, spi, peer, encap, size, now):
        """ESP for an SPI we do not know arrived from `peer`: after a restart we lost its SAs. Tell it with an
        unprotected INVALID-SPI notify (RFC 2408 3.14.1) so it can act (it can verify nothing: a hint), bounded
        per source and in total, and never bigger than what came in. Returns True when one was sent."""
        if size < 48 or not self._notify_budget(peer[0], now):
            return False
        n = NotifyPayload(C.N_INVALID_SPI, bytes(spi), b"", C.PROTO_IPSEC_ESP)
        icookie = self._new_cookie()
        data = Message.build(icookie, ZERO_COOKIE, C.EXCH_INFORMATIONAL, [n]).encode()
        self._out.append((4500 if encap else IKE_PORT, peer, data))
        self.stats["invalid_spi_sent"] = self.stats.get("invalid_spi_sent", 0) + 1
        return True

    def _notify_budget(self, ip, now):
        # One hint per source per second, ten per second in all, in a table of at most 256 sources.
        last = self._hinted.get(ip)
        if last is not None and now - last < 1.0:
            return False
        if now - self._hint_window[0] >= 1.0:
            self._hint_window[0] = now
            self._hint_window[1] = 0
        if self._hint_window[1] >= 10:
            return False
        self._hint_window[1] += 1
        if len(self._hinted) >= 256:
            self._hinted.clear()
        self._hinted[ip] = now
        return True

    def _auth_refused(self, sa, how):
        if sa.auth == C.AUTH_PSK:
            return ("pre-shared key mismatch: the server could not verify our identity (%s); check that both sides "
                    "use the same pre-shared key" % how)
        return ("the server refused our authentication (%s); check our certificate, the CA the server trusts and "
                "the identity it expects" % how)

    def _informational_in_phase1(self, sa, msg):
        """A protected Informational while we wait for message 6: its payloads, or None when it ended phase 1.

        strongSwan answers a message 5 it cannot decrypt (a key mismatch) with PAYLOAD-MALFORMED under its own
        keys, which we cannot decrypt either: at this point such a message means that the keys differ."""
        try:
            payloads = info.open_protected(sa, msg)
        except IkeMalformed:
            if sa.auth != C.AUTH_PSK:
                raise
            self._fail_phase1(sa, self._auth_refused(sa, "it answered our Main Mode message 5 with a notification "
                                                         "under other keys"))
            return None
        for n in payloads:
            if isinstance(n, NotifyPayload) and n.notify_type < C.N_CONNECTED:
                self._fail_phase1(sa, self._auth_refused(sa, "it answered our Main Mode message 5 with %s"
                                                         % n.name()))
                return None
        return payloads

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
            if not sa.initial_contact:      # once per ISAKMP SA: a replay must not remove newer SAs
                sa.initial_contact = True
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
        self.half_open.remove(sa)
        self._timed[sa] = True
        self._timed_dirty = True
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

    def child_inbound(self, sa, qm, name, keys_in, encap, now):
        """Our message 2 of a Quick Mode renewing a live SA pair: its inbound half, for the data plane to take
        before the peer sends on it (sluice.ike.events.ChildSaInbound). A first SA has no traffic to lose."""
        if self._live_child(sa.peer, now) is None:
            return
        self.emit(ChildSaInbound(sa.peer, qm.spi_in, name, keys_in[0], keys_in[1], keys_in[2], encap))

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
                            keys_out[0], keys_out[1], keys_out[2], encap, life, rekey_of, qm.life_kbytes,
                            now - qm.started if initiated else None))

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
        if sa.state == DELETED:
            return
        was_up = sa.established
        if send_delete and sa.established:
            info.delete_isakmp(sa)
        self._remove_sa(sa)
        if was_up:
            self.emit(IkeSaDown(sa.peer, reason))

    # --- timers -----------------------------------------------------------------------------------------------

    def handle_timer(self, now):
        self._timed_dirty = True
        self._now = now
        self._frags.expire(now)
        for sa in self.half_open.expired(now):
            if sa.state == DELETED:
                continue
            if sa.admit == VERIFIED:
                self._fail_phase1(sa, "Main Mode did not complete within %d s" % int(now - sa.created))
            else:
                # Message 3 never came back: most likely a spoofed source. Counted, never logged one by one.
                self.stats["half_open_expired"] += 1
                self._remove_sa(sa)
        for sa in list(self._timed):
            if sa.state == DELETED:
                continue
            for mid, r in sa.retransmit_due(now):
                if mid == 0:
                    self._fail_phase1(sa, self._no_answer(sa, r))
                    break
                qm = sa.qms.pop(mid, None)
                if qm is not None:
                    self._qm_failed(sa, qm, "the peer did not answer %s (%d retransmissions)"
                                    % (r.what, self.cfg.retransmit_tries))
            if sa.state == DELETED:
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
        if self.half_open.freed:
            self._admit_queued(now)
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

    def _no_answer(self, sa, r):
        why = "the peer did not answer %s (%d retransmissions); check that it is reachable on UDP 500/4500" % (
            r.what, self.cfg.retransmit_tries)
        if sa.state == MM_AUTH and sa.auth == C.AUTH_PSK:
            why += (", and that both sides use the same pre-shared key (some servers stay silent when the key "
                    "is wrong)")
        return why

    def _peer_dead(self, sa, now):
        peer = sa.peer
        self.emit(PeerDead(peer))
        for ch in [c for c in self._children.values() if c.peer == peer]:
            self._child_down(ch, "the peer is dead (no answer to DPD)", now, send_delete=False)
        for o in [s for s in self._all_sas() if s.peer == peer]:
            self._ike_down(o, "the peer is dead (no answer to DPD)", send_delete=False)
