"""IKEv1 Quick Mode (RFC 2409 5.5) for L2TP/IPsec: one ESP SA pair in transport mode for UDP/1701 (RFC 3193).

Theory of operation
-------------------
    Initiator                                         Responder
    HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr] [, NAT-OAi, NAT-OAr]  -->             QM_INIT -> QM_SENT
                                      <--  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr] [, NAT-OA...]
                                                                     [, N(RESPONDER-LIFETIME)]
    HDR*, HASH(3)                     -->                                             QM_SENT -> QM_DONE

All three messages share one random message id and its IV chain (sluice.ike.crypt). HASH(1)/(2) cover the
payloads after the HASH payload exactly as sent (sluice.ike.crypt.chain_spans); HASH(3) covers the nonces.

* Proposals: the initiator offers the configured ESP transforms that share the first one's PFS group (one KE
  per offer); the responder picks with sluice.ike.proposals.match_esp, transport modes only.
* Selectors (RFC 2407 4.6.2): IDci/IDcr are single IPv4 addresses, protocol 17, port 1701 from us; from a
  peer, protocol 17 with port 1701 or 0 (clients may use any L2TP source port, RFC 3193 5). No IDs means the
  phase 1 addresses (RFC 2409 5.5).
* NAT (RFC 3947 5): when phase 1 found a NAT and NAT-T was agreed, the mode is UDP-Encapsulated-Transport
  (4, or 61444 for draft peers) and both NAT-OA payloads are sent (5.2); received ones are only recorded,
  since a user-space ESP receiver does not check the inner UDP checksum (RFC 3948 3.1.2).
* Lifetime: the initiator proposes `esp_lifetime`; the responder keeps the offer unchanged (the echo must match
  what was offered) and, when its own lifetime is shorter, says so with RESPONDER-LIFETIME (RFC 2407 4.6.3.1);
  both sides then use the smaller value.
* KEYMAT (sluice.ike.keys.keymat) per direction with the receiving side's SPI; with PFS g(qm)^xy is mixed in.
* The responder retransmits message 2 until message 3 arrives; a repeated message 2 is answered with the
  cached message 3 (sluice.ike.ikesa).
"""

from sluice.hal.crypto.digest import ct_equal
from sluice.hal.crypto import transforms
from sluice.ike import constants as C
from sluice.ike import keys as K
from sluice.ike import natt
from sluice.ike.crypt import chain_spans
from sluice.ike.payloads import (HashPayload, IdPayload, IkeMalformed, KePayload, NatOaPayload, NoncePayload,
                                 NotifyPayload, SaPayload, attr_int, encode_attributes, encode_payloads, find,
                                 find_all, life_attr, parse_attributes)
from sluice.ike.proposals import (EspChoice, NoProposalChosen, ProposalSet, check_esp_reply,
                                  decode_esp_transform, esp_sa_payload, match_esp)

QM_INIT = "qm-init"
QM_SENT = "qm-sent"
QM_DONE = "qm-done"

L2TP_PORT = 1701
NONCE_LEN = 32
DEFAULT_LIFETIME = 28800  # RFC 2407 4.5: no life attribute means 8 hours


class QuickModeFailed(ValueError):
    """Quick Mode cannot complete; the message says why in plain words."""


def _open(sa, msg):
    """Decrypt a Quick Mode message: (payloads after HASH, HASH value, raw bytes after HASH, next IV)."""
    payloads, plain, nxt = sa.crypt.open_payloads(msg.header, msg.body)
    if not payloads or not isinstance(payloads[0], HashPayload):
        raise IkeMalformed("Quick Mode message does not start with HASH (RFC 2409 5.5)")
    spans = chain_spans(msg.header.next_payload, plain)
    rest = bytes(plain[spans[1][1]:spans[-1][2]]) if len(spans) > 1 else b""
    return payloads[1:], payloads[0].data, rest, nxt


def _check_ids(ids):
    """RFC 3193: the selectors must be UDP/1701 (or port 0) between single IPv4 or IPv6 addresses."""
    if not ids:
        return None
    if len(ids) != 2:
        raise QuickModeFailed("Quick Mode carried %d ID payloads; RFC 2409 5.5 needs none or two" % len(ids))
    for idp in ids:
        if idp.id_type not in (C.ID_IPV4_ADDR, C.ID_IPV6_ADDR) or idp.protocol != 17 \
                or idp.port not in (0, L2TP_PORT):
            raise QuickModeFailed("the peer asked for traffic selector %r; L2TP/IPsec needs one address, UDP "
                                  "port 1701 (or any port)" % (idp,))
    return ids


def _random_spi(table):
    for _ in range(16):
        spi = int.from_bytes(table.rng(4), "big")
        if spi >= 256 and not table.spi_in_use(spi):
            return spi
    raise ValueError("no free SPI")


class _QuickMode:
    __slots__ = ("sa", "t", "mid", "state", "spi_in", "spi_out", "ni", "nr", "dh", "gxy", "offer", "choice",
                 "ids", "mode", "rekey_of", "lifetime", "life_kbytes", "natoa", "started")

    def __init__(self, sa, table, mid, now):
        self.sa = sa
        self.t = table
        self.mid = mid
        self.state = QM_INIT
        self.spi_in = _random_spi(table)
        self.spi_out = None
        self.ni = self.nr = None
        self.dh = None
        self.gxy = b""
        self.offer = None
        self.choice = None
        self.ids = None         # (IDci, IDcr) payloads, or None
        self.mode = None
        self.rekey_of = None
        self.lifetime = None
        self.life_kbytes = None  # a byte lifetime the peer proposed or answered (RFC 2407 4.5), or None
        self.natoa = []         # peer's NAT-OA addresses, recorded
        self.started = now

    def __repr__(self):
        return "<%s %08x %s>" % (type(self).__name__, self.mid, self.state)

    def _nat(self):
        sa = self.sa
        return sa.nat is not None and sa.nat.any and sa.caps is not None and sa.caps.natt is not None

    def _keys(self, spi):
        """(transform name, (enc, auth, salt)) of KEYMAT for one direction (RFC 2409 5.5)."""
        sa, t = self.sa, self.t
        name = transforms.from_proposal(self.choice.algs.name(), sha256_96=t.cfg.sha256_96)
        ek, ak, sl = transforms.esp_key_lengths(name)
        # always the initiator's nonce first
        km = K.keymat(t.be, sa.hash, sa.skeyid_d, C.PROTO_IPSEC_ESP, spi.to_bytes(4, "big"), self.ni, self.nr,
                      ek + ak + sl, self.gxy)
        return name, K.split_esp_keys(km, ek, ak, sl)

    def _encap(self):
        # RFC 3948: once a NAT was found, ESP must travel inside UDP/4500 whatever mode the peer wrote.
        return natt.is_udp_encap(self.mode) or (self._nat() and self.sa.local_port == natt.NAT_T_PORT)

    def _finish(self, now, initiated):
        """Derive KEYMAT for both directions and hand the SA pair to the table."""
        name, kin = self._keys(self.spi_in)
        kout = self._keys(self.spi_out)[1]
        self.gxy = b""
        self.state = QM_DONE
        self.t.child_up(self.sa, self, name, kin, kout, self._encap(), initiated, now)


class QuickModeInitiator(_QuickMode):
    """We propose the ESP SA (the client after phase 1, or either side when rekeying)."""

    __slots__ = ()

    def start(self, now, ids=None, mode=None):
        sa, t = self.sa, self.t
        cfg = t.cfg
        group = cfg.esp.transforms[0].group
        pset = ProposalSet("esp", [x for x in cfg.esp if x.group == group])
        if mode is None:
            mode = natt.udp_transport_mode(sa.caps) if self._nat() else C.ENCAP_TRANSPORT
        self.mode = mode
        self.offer = esp_sa_payload(pset, self.spi_in.to_bytes(4, "big"), mode, cfg.esp_lifetime)
        self.ni = t.rng(NONCE_LEN)
        rest = [self.offer, NoncePayload(self.ni)]
        if group:
            self.dh = t.be.dh(group)
            rest.append(KePayload(self.dh.generate(t.rng)))
        if ids is None:
            local_ip = sa.local_ip or cfg.local_ip
            ids = (IdPayload.ipv4(local_ip, 17, L2TP_PORT), IdPayload.ipv4(sa.peer[0], 17, L2TP_PORT))
        self.ids = ids
        rest += [ids[0], ids[1]]
        if natt.is_udp_encap(mode):
            ptype = sa.caps.natoa_type()
            rest += [NatOaPayload(sa.local_ip or cfg.local_ip, ptype), NatOaPayload(sa.peer[0], ptype)]
        _, raw = encode_payloads(rest)
        hp = HashPayload(K.qm_hash1(t.be, sa.hash, sa.skeyid_a, self.mid, raw))
        data = sa.crypt.seal(sa.icookie, sa.rcookie, C.EXCH_QUICK, self.mid, [hp] + rest)
        self.state = QM_SENT
        sa.send_expecting_reply(self.mid, data, now, "Quick Mode message 1")

    def _same_algorithms(self, sap, refusal):
        """A responder that rebuilt the transform (strongSwan: its own attribute order and lifetime) instead of
        echoing it: accept the same algorithms, PFS group and mode as one we offered, with a 4-octet SPI."""
        if len(sap.proposals) == 1 and len(sap.proposals[0].transforms) == 1:
            prop = sap.proposals[0]
            o = decode_esp_transform(prop, prop.transforms[0])
            offered = [decode_esp_transform(p, tp).algs for p in self.offer.proposals for tp in p.transforms]
            if prop.protocol == C.PROTO_IPSEC_ESP and len(prop.spi) == 4 and o.problem is None \
                    and o.algs in offered and o.mode == self.mode:
                return EspChoice(sap, o)
        raise QuickModeFailed(str(refusal))

    def receive(self, msg, data, now):
        sa, t = self.sa, self.t
        if self.state != QM_SENT:
            sa.stats["malformed"] += 1
            return
        payloads, hv, rest, nxt = _open(sa, msg)
        if not ct_equal(hv, K.qm_hash2(t.be, sa.hash, sa.skeyid_a, self.mid, self.ni, rest)):
            raise IkeMalformed("Quick Mode HASH(2) did not verify")
        sa.crypt.commit(self.mid, nxt)
        sa.answered(self.mid)
        sap = find(payloads, SaPayload)
        nr = find(payloads, NoncePayload)
        if sap is None or nr is None:
            raise QuickModeFailed("Quick Mode message 2 lacks SA or nonce")
        try:
            self.choice = check_esp_reply(sap, self.offer)
        except NoProposalChosen as e:
            self.choice = self._same_algorithms(sap, e)
        self.nr = nr.data
        self.spi_out = int.from_bytes(self.choice.peer_spi, "big")
        if self.dh is not None:
            ke = find(payloads, KePayload)
            if ke is None:
                raise QuickModeFailed("the responder accepted PFS but sent no KE payload")
            self.gxy = self.dh.shared(ke.data)
            self.dh = None
        # RFC 2409 5.5 wants the IDs echoed, but strongSwan as responder behind/before a NAT answers with the
        # addresses it sees; any single-address UDP/1701 pair is acceptable for L2TP, so only their form is checked.
        _check_ids(find_all(payloads, IdPayload))
        self.natoa = [p.text() for p in find_all(payloads, NatOaPayload)]
        life = self.choice.life_seconds or DEFAULT_LIFETIME
        for n in find_all(payloads, NotifyPayload):
            if n.notify_type == C.N_RESPONDER_LIFETIME:
                try:
                    attrs = parse_attributes(n.data, "RESPONDER-LIFETIME")
                except IkeMalformed:
                    continue
                kind = None
                for at, v in attrs:
                    if at == C.P2_LIFE_TYPE:
                        kind = v
                    elif at == C.P2_LIFE_DURATION and v:
                        v = attr_int(v)
                        if kind == C.LIFE_SECONDS:
                            life = min(life, v)
                        elif kind == C.LIFE_KILOBYTES:
                            self.life_kbytes = v if not self.life_kbytes else min(self.life_kbytes, v)
        self.lifetime = min(life, t.cfg.esp_lifetime)
        h3 = HashPayload(K.qm_hash3(t.be, sa.hash, sa.skeyid_a, self.mid, self.ni, self.nr))
        reply = sa.crypt.seal(sa.icookie, sa.rcookie, C.EXCH_QUICK, self.mid, [h3])
        sa.remember(self.mid, data, reply)
        sa.send(reply)
        self._finish(now, True)


class QuickModeResponder(_QuickMode):
    """The peer proposes; we choose, answer, and install on HASH(3)."""

    __slots__ = ()

    def receive(self, msg, data, now):
        if self.state == QM_INIT:
            return self._message1(msg, data, now)
        if self.state == QM_SENT:
            return self._message3(msg, data, now)
        self.sa.stats["malformed"] += 1

    def _message1(self, msg, data, now):
        sa, t = self.sa, self.t
        cfg = t.cfg
        payloads, hv, rest, nxt = _open(sa, msg)
        if not ct_equal(hv, K.qm_hash1(t.be, sa.hash, sa.skeyid_a, self.mid, rest)):
            raise IkeMalformed("Quick Mode HASH(1) did not verify")
        sa.crypt.commit(self.mid, nxt)
        sap = find(payloads, SaPayload)
        ni = find(payloads, NoncePayload)
        if sap is None or ni is None:
            raise QuickModeFailed("Quick Mode message 1 lacks SA or nonce")
        self.ni = ni.data
        self.choice = match_esp(sap, cfg.esp, C.ENCAP_TRANSPORT_MODES)  # NoProposalChosen goes to the table
        self.spi_out = int.from_bytes(self.choice.peer_spi, "big")
        self.mode = self.choice.mode
        self.ids = _check_ids(find_all(payloads, IdPayload))
        ke = find(payloads, KePayload)
        group = self.choice.algs.group
        out_ke = None
        if group:
            if ke is None:
                raise QuickModeFailed("the client chose PFS (%s) but sent no KE payload"
                                      % C.GROUP_NAMES.get(group, group))
            dh = t.be.dh(group)
            out_ke = KePayload(dh.generate(t.rng))
            self.gxy = dh.shared(ke.data)
        elif ke is not None:
            raise QuickModeFailed("the client sent a KE payload for a proposal without PFS")
        self.natoa = [p.text() for p in find_all(payloads, NatOaPayload)]
        offered = self.choice.life_seconds or DEFAULT_LIFETIME
        self.life_kbytes = self.choice.life_kbytes or None
        self.lifetime = min(offered, cfg.esp_lifetime)
        self.nr = t.rng(NONCE_LEN)
        spi_b = self.spi_in.to_bytes(4, "big")
        out = [self.choice.reply_sa(spi_b), NoncePayload(self.nr)]
        if out_ke is not None:
            out.append(out_ke)
        if self.ids:
            out += list(self.ids)
        if natt.is_udp_encap(self.mode) and sa.caps is not None:
            ptype = sa.caps.natoa_type()
            out += [NatOaPayload(sa.peer[0], ptype), NatOaPayload(sa.local_ip or cfg.local_ip, ptype)]
        if self.lifetime < offered:
            attrs = encode_attributes([(C.P2_LIFE_TYPE, C.LIFE_SECONDS),
                                       (C.P2_LIFE_DURATION, life_attr(self.lifetime))])
            out.append(NotifyPayload(C.N_RESPONDER_LIFETIME, spi_b, attrs, C.PROTO_IPSEC_ESP))
        _, raw = encode_payloads(out)
        hp = HashPayload(K.qm_hash2(t.be, sa.hash, sa.skeyid_a, self.mid, self.ni, raw))
        reply = sa.crypt.seal(sa.icookie, sa.rcookie, C.EXCH_QUICK, self.mid, [hp] + out)
        sa.remember(self.mid, data, reply)
        self.state = QM_SENT
        name, kin = self._keys(self.spi_in)
        t.child_inbound(sa, self, name, kin, self._encap(), now)  # before message 2 leaves
        sa.send_expecting_reply(self.mid, reply, now, "Quick Mode message 2")

    def _message3(self, msg, data, now):
        sa, t = self.sa, self.t
        payloads, hv, rest, nxt = _open(sa, msg)
        if not ct_equal(hv, K.qm_hash3(t.be, sa.hash, sa.skeyid_a, self.mid, self.ni, self.nr)):
            raise IkeMalformed("Quick Mode HASH(3) did not verify")
        sa.crypt.commit(self.mid, nxt)
        sa.answered(self.mid)
        sa.remember(self.mid, data, None)
        self._finish(now, False)
