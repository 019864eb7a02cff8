"""IKEv1 Main Mode (RFC 2409 5, identity protection), initiator and responder, PSK and RSA signatures.

Theory of operation
-------------------
    Initiator                                   Responder
    HDR, SA [VIDs]                      -->                                      MM_INIT -> MM_SA
                                        <--    HDR, SA [VIDs]
    HDR, KE, Ni [CR] [NAT-D, NAT-D]     -->                                      MM_SA -> MM_KE
                                        <--    HDR, KE, Nr [NAT-D, NAT-D] [CR]
    HDR*, IDii, [CERT,] HASH_I|SIG_I [N(INITIAL-CONTACT)]   -->  (from port 4500 if a NAT was seen)
                                        <--    HDR*, IDir, [CERT,] HASH_R|SIG_R  MM_AUTH -> ESTABLISHED

Each role is one small class with a state from sluice.ike.ikesa (MM_INIT, MM_SA, MM_KE, MM_AUTH) and one
method per message it accepts; a message not expected in the current state is counted and dropped. The
responder picks the first transform of the initiator's it accepts and echoes it unchanged
(sluice.ike.proposals.match_ike); SAi_b and IDii_b are hashed exactly as received (sluice.ike.crypt.raw_body).
NAT-D (RFC 3947 3) is sent only when both sides announced NAT-T; the float to 4500 follows RFC 3947 4.
Keys: sluice.ike.keys. Authentication failures become NegotiationFailed events in plain words.
"""

from sluice.hal.crypto.digest import ct_equal
from sluice.ike import constants as C
from sluice.ike import keys as K
from sluice.ike import informational as info
from sluice.ike import natd, natt, vendor
from sluice.ike.certs import CertError
from sluice.ike.crypt import IkeCrypt, raw_body
from sluice.ike.ikesa import ESTABLISHED, MM_AUTH, MM_INIT, MM_KE, MM_SA
from sluice.ike.payloads import (CertPayload, CertRequestPayload, HashPayload, IdPayload, IkeMalformed,
                                 KePayload, NatDPayload, NoncePayload, NotifyPayload, SaPayload, SigPayload,
                                 VendorIdPayload, find, find_all)
from sluice.ike.proposals import (IkeChoice, NoProposalChosen, check_ike_reply, decode_ike_transform,
                                  ike_sa_payload, match_ike)
from sluice.ike.message import Message

NONCE_LEN = 32
REPLY_FACTOR = 2    # message 2 is at most this many times the size of the message 1 it answers


class AuthFailed(ValueError):
    """Phase 1 authentication did not verify; the message says why in plain words (never a secret)."""


def _natd_list(payloads):
    return [p for p in payloads if isinstance(p, NatDPayload)]


class _MainMode:
    __slots__ = ("sa", "t", "offer", "choice", "sai_b", "dh", "gxi", "gxr", "ni", "nr", "skeyid", "local")

    def __init__(self, sa, table):
        self.sa = sa
        self.t = table
        self.offer = None       # our SaPayload (initiator)
        self.choice = None      # IkeChoice
        self.sai_b = None       # the initiator's SA payload body as sent
        self.dh = None
        self.gxi = self.gxr = None
        self.ni = self.nr = None
        self.skeyid = None
        self.local = None       # (ip, port) our side as the peer's packets reach us

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.sa.state)

    # --- shared steps ---------------------------------------------------------------------------------------

    def _set_choice(self, choice):
        sa = self.sa
        self.choice = choice
        sa.auth = choice.auth
        sa.algs = choice.algs
        sa.hash = K.hash_name(choice.algs.hash)
        ours = self.t.cfg.ike_lifetime
        offered = choice.life_seconds
        sa.lifetime = min(ours, offered) if offered else ours

    def _derive(self, gxy):
        """RFC 2409 5: SKEYID and its children, the phase 1 cipher and its first IV."""
        sa, be, h = self.sa, self.t.be, self.sa.hash
        if sa.auth == C.AUTH_PSK:
            psk = self.t.psk_for(sa.peer[0])
            if psk is None:
                raise AuthFailed("no pre-shared key is configured for %s" % sa.peer[0])
            self.skeyid = K.skeyid_psk(be, h, psk, self.ni, self.nr)
        else:
            self.skeyid = K.skeyid_sig(be, h, self.ni, self.nr, gxy)
        sa.skeyid_d, sa.skeyid_a, e = K.skeyid_dae(be, h, self.skeyid, gxy, sa.icookie, sa.rcookie)
        algs = self.choice.algs
        cname, klen, block = K.cipher_params(algs.encr, algs.key_bits)
        key = K.encryption_key(be, h, e, klen)
        sa.crypt = IkeCrypt(be, h, cname, key, K.phase1_iv(be, h, self.gxi, self.gxr, block))

    def _natd_payloads(self, local):
        sa = self.sa
        return natd.natd_payloads(self._natd_hash, sa.icookie, sa.rcookie, local, sa.peer, sa.caps.natd_type())

    def _natd_hash(self, data):
        return self.t.be.hash(self.sa.hash, data)

    def _detect_nat(self, payloads, local):
        sa = self.sa
        got = _natd_list(payloads)
        if sa.caps is None or sa.caps.natt is None or len(got) < 2:
            sa.nat = None
            return
        sa.nat = natd.detect(self._natd_hash, sa.icookie, sa.rcookie, local, sa.peer, got)

    def _my_id(self):
        cfg = self.t.cfg
        if self.sa.auth != C.AUTH_PSK and self.t.certs is not None:
            return IdPayload(C.ID_DER_ASN1_DN, self.t.certs.subject_der())
        return IdPayload.ipv4(self.sa.local_ip or cfg.local_ip or "0.0.0.0")

    def _proof(self, mine):
        """The payloads after our ID: HASH (PSK) or CERT + SIG (RFC 2409 5.1)."""
        sa, be, h = self.sa, self.t.be, self.sa.hash
        idb = mine.encode_body()
        if self.sa.role == "initiator":
            hv = K.hash_i(be, h, self.skeyid, self.gxi, self.gxr, sa.icookie, sa.rcookie, self.sai_b, idb)
        else:
            hv = K.hash_r(be, h, self.skeyid, self.gxi, self.gxr, sa.icookie, sa.rcookie, self.sai_b, idb)
        if sa.auth == C.AUTH_PSK:
            return [HashPayload(hv)]
        certs = self.t.certs
        return [CertPayload(C.CERT_X509_SIG, d) for d in certs.chain_der()] + [SigPayload(certs.sign(hv))]

    def _verify(self, payloads, plain, first):
        """Check the peer's ID and HASH/SIG of message 5 or 6; raise AuthFailed."""
        sa, be, h = self.sa, self.t.be, self.sa.hash
        idp = find(payloads, IdPayload)
        if idp is None:
            raise AuthFailed("the peer sent no ID payload in message %d" % (5 if sa.role == "responder" else 6))
        idb = raw_body(first, plain, C.PT_ID)
        if sa.role == "responder":
            expect = K.hash_i(be, h, self.skeyid, self.gxi, self.gxr, sa.icookie, sa.rcookie, self.sai_b, idb)
        else:
            expect = K.hash_r(be, h, self.skeyid, self.gxi, self.gxr, sa.icookie, sa.rcookie, self.sai_b, idb)
        sa.peer_id = idp.text()
        if sa.auth == C.AUTH_PSK:
            hp = find(payloads, HashPayload)
            if hp is None or not ct_equal(hp.data, expect):
                who = "HASH_I" if sa.role == "responder" else "HASH_R"
                raise AuthFailed("pre-shared key mismatch (%s did not verify); check that both sides use the "
                                 "same key" % who)
            return
        certs = self.t.certs
        if certs is None:
            raise AuthFailed("the peer uses certificates but no CA is configured here")
        try:
            certs.verify_peer([p.data for p in payloads
                               if type(p) is CertPayload and p.encoding == C.CERT_X509_SIG],
                              find(payloads, SigPayload), expect, idp, sa.role == "initiator")
        except CertError as e:
            raise AuthFailed(str(e))

    def _established(self, now):
        sa, t = self.sa, self.t
        sa.state = ESTABLISHED
        sa.established_at = now
        sa.mm = None
        t.phase1_done(sa, now)


class MainModeInitiator(_MainMode):
    """Our side sends message 1 (a client dialling a server, or a rekey of phase 1)."""

    __slots__ = ()

    def start(self, now):
        sa, t = self.sa, self.t
        self.offer = ike_sa_payload(t.cfg.ike, t.auth_offer(), t.cfg.ike_lifetime)
        # DPD is announced even with dpd_delay 0: we always answer R-U-THERE (RFC 3706 5.3), we just never ask.
        vids = [VendorIdPayload(v) for v in vendor.initiator_vids(dpd=True)]
        if t.cfg.vendor_ids:
            vids += [VendorIdPayload(v) for v in t.cfg.vendor_ids]
        msg = Message.build(sa.icookie, sa.rcookie, C.EXCH_MAIN, [self.offer] + vids)
        data = msg.encode()
        self.sai_b = self.offer.encode_body()
        sa.state = MM_SA
        sa.send_expecting_reply(0, data, now, "Main Mode message 1")

    def receive(self, msg, data, local, peer, now):
        sa = self.sa
        if sa.state == MM_SA and not msg.header.flags & C.FLAG_E:
            return self._message2(msg, data, local, now)
        if sa.state == MM_KE and not msg.header.flags & C.FLAG_E:
            return self._message4(msg, data, local, now)
        if sa.state == MM_AUTH and msg.header.flags & C.FLAG_E:
            return self._message6(msg, data, now)
        sa.stats["malformed"] += 1

    def _message2(self, msg, data, local, now):
        sa, t = self.sa, self.t
        sap = msg.find(SaPayload)
        if sap is None:
            raise IkeMalformed("Main Mode message 2 without an SA payload")
        try:
            choice = check_ike_reply(sap, self.offer)
        except NoProposalChosen as e:
            choice = self._same_algorithms(sap, e)
        self._set_choice(choice)
        sa.caps = vendor.capabilities(msg.find_all(VendorIdPayload))
        sa.answered(0)
        self.dh = t.be.dh(choice.algs.group)
        self.gxi = self.dh.generate(t.rng)
        self.ni = t.rng(NONCE_LEN)
        out = [KePayload(self.gxi), NoncePayload(self.ni)]
        if sa.auth != C.AUTH_PSK and t.certs is not None:
            # Responders that send their certificate only when asked (strongSwan's default) need this.
            out.append(CertRequestPayload(C.CERT_X509_SIG, t.certs.ca_request()))
        self.local = self._local(local)
        if not sa.local_ip:
            sa.local_ip = self.local[0]   # for our ID and the Quick Mode selectors
        if sa.caps.natt is not None:
            out += self._natd_payloads(self.local)
        reply = Message.build(sa.icookie, sa.rcookie, C.EXCH_MAIN, out).encode()
        sa.remember(0, data, reply)
        sa.state = MM_KE
        sa.send_expecting_reply(0, reply, now, "Main Mode message 3")

    def _same_algorithms(self, sap, refusal):
        """strongSwan as responder rebuilds the chosen transform (its own attribute order and lifetime) instead
        of echoing ours byte for byte (RFC 2409 5): accept it when the algorithms and the authentication method
        are ones we offered."""
        t = self.t
        if len(sap.proposals) == 1 and len(sap.proposals[0].transforms) == 1:
            prop = sap.proposals[0]
            o = decode_ike_transform(prop, prop.transforms[0])
            if prop.protocol == C.PROTO_ISAKMP and o.problem is None and o.algs is not None \
                    and o.algs in t.cfg.ike and o.auth == t.auth_offer():
                return IkeChoice(sap, o.algs, o.auth, o.life_seconds, o.life_kbytes)
        raise AuthFailed(str(refusal))

    def _local(self, local):
        return (self.t.cfg.local_ip or local[0], local[1])

    def _message4(self, msg, data, local, now):
        sa, t = self.sa, self.t
        ke = msg.find(KePayload)
        nr = msg.find(NoncePayload)
        if ke is None or nr is None:
            raise IkeMalformed("Main Mode message 4 without KE or nonce")
        self.gxr = ke.data
        self.nr = nr.data
        gxy = self.dh.shared(self.gxr)      # DhError (a ValueError) for a bad public value
        self.dh = None
        sa.answered(0)
        self._derive(gxy)
        self._detect_nat(msg.payloads, self.local)
        if natt.must_float(sa.caps, sa.nat):
            # RFC 3947 4: from message 5 on, both ports are 4500.
            sa.local_port = natt.NAT_T_PORT
            sa.peer = (sa.peer[0], natt.NAT_T_PORT)
        mine = self._my_id()
        out = [mine] + self._proof(mine)
        if t.cfg.initial_contact and not t.has_other_sa(sa):
            out.append(NotifyPayload(C.N_INITIAL_CONTACT, sa.spi(), b"", C.PROTO_ISAKMP))
        reply = sa.crypt.seal(sa.icookie, sa.rcookie, C.EXCH_MAIN, 0, out)
        sa.remember(0, data, reply)
        sa.state = MM_AUTH
        sa.send_expecting_reply(0, reply, now, "Main Mode message 5")

    def _message6(self, msg, data, now):
        sa = self.sa
        try:
            payloads, plain, nxt = sa.crypt.open_payloads(msg.header, msg.body)
        except IkeMalformed:
            if sa.auth == C.AUTH_PSK:
                raise AuthFailed("pre-shared key mismatch (message 6 did not decrypt); check that both sides use "
                                 "the same key")
            raise
        try:
            self._verify(payloads, plain, msg.header.next_payload)
        except AuthFailed:
            # The responder already counts this SA as up: tell it, under the keys we share, to drop it.
            sa.crypt.commit(0, nxt)
            info.delete_isakmp(sa)
            raise
        sa.crypt.commit(0, nxt)
        sa.answered(0)
        sa.remember(0, data, None)
        self._established(now)


class MainModeResponder(_MainMode):
    """A peer's message 1 created this SA."""

    __slots__ = ()

    def receive(self, msg, data, local, peer, now):
        sa = self.sa
        enc = msg.header.flags & C.FLAG_E
        if sa.state == MM_INIT and not enc:
            return self._message1(msg, data, now)
        if sa.state == MM_SA and not enc:
            return self._message3(msg, data, local, now)
        if sa.state == MM_KE and enc:
            return self._message5(msg, data, local, peer, now)
        sa.stats["malformed"] += 1

    def _message1(self, msg, data, now):
        sa, t = self.sa, self.t
        sap = msg.find(SaPayload)
        if sap is None:
            raise IkeMalformed("Main Mode message 1 without an SA payload")
        sa.caps = vendor.capabilities(msg.find_all(VendorIdPayload))
        try:
            choice = match_ike(sap, t.cfg.ike, t.auth_methods())
        except NoProposalChosen as e:
            t.refuse(sa, C.N_NO_PROPOSAL_CHOSEN, str(e), now)
            return
        self._set_choice(choice)
        self.sai_b = raw_body(msg.header.next_payload, data[C.HEADER_LEN:], C.PT_SA)
        vids = [VendorIdPayload(v) for v in vendor.responder_vids(sa.caps, dpd=True)]
        reply = Message.build(sa.icookie, sa.rcookie, C.EXCH_MAIN, [choice.sa] + vids).encode()
        if len(reply) > REPLY_FACTOR * len(data):
            # The source is unverified (it may be spoofed): never answer with much more than it sent.
            reply = Message.build(sa.icookie, sa.rcookie, C.EXCH_MAIN, [choice.sa]).encode()
        sa.remember(0, data, reply)
        sa.state = MM_SA
        sa.send(reply)

    def _message3(self, msg, data, local, now):
        sa, t = self.sa, self.t
        ke = msg.find(KePayload)
        ni = msg.find(NoncePayload)
        if ke is None or ni is None:
            raise IkeMalformed("Main Mode message 3 without KE or nonce")
        self.gxi = ke.data
        self.ni = ni.data
        dh = t.be.dh(self.choice.algs.group)
        self.gxr = dh.generate(t.rng)
        gxy = dh.shared(self.gxi)
        self.nr = t.rng(NONCE_LEN)
        try:
            self._derive(gxy)
        except AuthFailed as e:
            t.refuse(sa, C.N_AUTHENTICATION_FAILED, str(e), now)
            return
        self.local = (t.cfg.local_ip or local[0], local[1])
        self._detect_nat(msg.payloads, self.local)
        out = [KePayload(self.gxr), NoncePayload(self.nr)]
        if sa.caps.natt is not None and _natd_list(msg.payloads):
            out += self._natd_payloads(self.local)
        if sa.auth != C.AUTH_PSK and t.certs is not None:
            out.append(CertRequestPayload(C.CERT_X509_SIG, t.certs.ca_request()))
        reply = Message.build(sa.icookie, sa.rcookie, C.EXCH_MAIN, out).encode()
        sa.remember(0, data, reply)
        sa.state = MM_KE
        sa.send(reply)

    def _message5(self, msg, data, local, peer, now):
        sa = self.sa
        try:
            payloads, plain, nxt = sa.crypt.open_payloads(msg.header, msg.body)
        except IkeMalformed:
            if sa.auth == C.AUTH_PSK:
                raise AuthFailed("pre-shared key mismatch (message 5 did not decrypt); check that both sides use "
                                 "the same key")
            raise
        self._verify(payloads, plain, msg.header.next_payload)
        sa.crypt.commit(0, nxt)
        for n in find_all(payloads, NotifyPayload):
            if n.notify_type == C.N_INITIAL_CONTACT:
                sa.initial_contact = True
        sa.local_port = local[1]  # RFC 3947 4: answer where message 5 came from, on the port it came to
        sa.peer = peer
        mine = self._my_id()
        reply = sa.crypt.seal(sa.icookie, sa.rcookie, C.EXCH_MAIN, 0, [mine] + self._proof(mine))
        sa.remember(0, data, reply)
        sa.send(reply)
        self._established(now)
