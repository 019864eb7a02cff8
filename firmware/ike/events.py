"""Events the IKE table reports to the engine (pulled with IkeTable.next_event()).

`peer` is always the (ip, port) the peer is reached at now: port 4500 after the NAT-T float (RFC 3947 4).
SPIs are ints (what sluice.esp.Inbound/Outbound take). Reasons are plain words for logs and status.
"""


class IkeSaUp:
    """Phase 1 (Main Mode) completed: the ISAKMP SA is authenticated (RFC 2409 5)."""

    __slots__ = ("peer", "nat_local", "nat_remote", "auth")

    def __init__(self, peer, nat_local, nat_remote, auth):
        self.peer = peer              # (ip, port) of the peer now (4500 after the float)
        self.nat_local = nat_local    # True: our address was rewritten (we send NAT keepalives)
        self.nat_remote = nat_remote  # True: the peer's address was rewritten (it is behind a NAT)
        self.auth = auth              # 'psk' or 'rsasig'

    def __repr__(self):
        return "IkeSaUp(%r, nat_local=%r, nat_remote=%r, %s)" % (self.peer, self.nat_local, self.nat_remote,
                                                                 self.auth)


class ChildSaUp:
    """Quick Mode completed: one ESP SA pair in transport mode for UDP/1701 (RFC 2409 5.5, RFC 3193)."""

    __slots__ = ("peer", "spi_in", "spi_out", "transform", "enc_in", "auth_in", "salt_in", "enc_out", "auth_out",
                 "salt_out", "encap", "lifetime_s", "rekey_of", "life_kbytes", "round_trip")

    def __init__(self, peer, spi_in, spi_out, transform, enc_in, auth_in, salt_in, enc_out, auth_out, salt_out,
                 encap, lifetime_s, rekey_of, life_kbytes=None, round_trip=None):
        self.peer = peer              # (ip, port) the ESP packets go to (port used only when encap)
        self.spi_in = spi_in          # int, the SPI the peer puts on packets to us (we chose it)
        self.spi_out = spi_out        # int, the SPI we put on packets to the peer (it chose it)
        self.transform = transform    # sluice.hal.crypto.transforms name, e.g. 'aes256-sha1', 'aes128gcm16'
        self.enc_in = enc_in          # inbound encryption key (bytes)
        self.auth_in = auth_in        # inbound integrity key (bytes, b'' for GCM)
        self.salt_in = salt_in        # inbound GCM salt (4 bytes, b'' for CBC)
        self.enc_out = enc_out        # outbound encryption key
        self.auth_out = auth_out      # outbound integrity key
        self.salt_out = salt_out      # outbound GCM salt
        self.encap = encap            # True: UDP-encapsulated ESP on port 4500 (RFC 3948)
        self.lifetime_s = lifetime_s  # agreed lifetime in seconds (the table rekeys before it ends)
        self.rekey_of = rekey_of      # spi_in of the SA this one replaces, or None
        self.life_kbytes = life_kbytes  # a byte lifetime in kilobytes from the negotiation, or None
        self.round_trip = round_trip  # s from our Quick Mode message 1 to the peer's message 2, or None (we answered)

    def __repr__(self):
        # Keys never appear in a repr.
        return "ChildSaUp(%r, in=0x%08x, out=0x%08x, %s, encap=%r, life=%r, rekey_of=%r)" % (
            self.peer, self.spi_in, self.spi_out, self.transform, self.encap, self.lifetime_s, self.rekey_of)


class ChildSaInbound:
    """A Quick Mode we answer that renews a live SA pair reached message 2: the inbound half is known now. The
    peer installs the pair on our message 2 and sends on its new outbound SA at once (strongSwan does, before
    its message 3 even left); a data plane that takes this inbound SA now drops none of those packets. The
    ChildSaUp of message 3 carries the pair (the same spi_in); if message 3 never comes, nothing follows (the
    plane's early SA runs out by itself, EARLY_INBOUND_S)."""

    __slots__ = ("peer", "spi_in", "transform", "enc_in", "auth_in", "salt_in", "encap")

    def __init__(self, peer, spi_in, transform, enc_in, auth_in, salt_in, encap):
        self.peer = peer
        self.spi_in = spi_in
        self.transform = transform
        self.enc_in = enc_in
        self.auth_in = auth_in
        self.salt_in = salt_in
        self.encap = encap

    def __repr__(self):
        return "ChildSaInbound(%r, in=0x%08x, %s, encap=%r)" % (self.peer, self.spi_in, self.transform, self.encap)


class ChildSaDown:
    """An ESP SA pair is gone: deleted by the peer, expired, replaced after a rekey, or its peer went away."""

    __slots__ = ("peer", "spi_in", "spi_out", "reason")

    def __init__(self, peer, spi_in, spi_out, reason):
        self.peer = peer        # (ip, port)
        self.spi_in = spi_in    # int
        self.spi_out = spi_out  # int
        self.reason = reason    # plain words

    def __repr__(self):
        return "ChildSaDown(%r, in=0x%08x, out=0x%08x, %r)" % (self.peer, self.spi_in, self.spi_out, self.reason)


class IkeSaDown:
    """An established ISAKMP SA is gone (deleted, expired, replaced, peer dead)."""

    __slots__ = ("peer", "reason")

    def __init__(self, peer, reason):
        self.peer = peer      # (ip, port)
        self.reason = reason  # plain words

    def __repr__(self):
        return "IkeSaDown(%r, %r)" % (self.peer, self.reason)


class PeerDead:
    """RFC 3706: no answer to R-U-THERE within dpd_timeout; the engine tears down L2TP for this peer."""

    __slots__ = ("peer",)

    def __init__(self, peer):
        self.peer = peer  # (ip, port)

    def __repr__(self):
        return "PeerDead(%r)" % (self.peer,)


class PeerMoved:
    """The peer's NAT mapping changed (RFC 3947 4, RFC 3948): its SAs now live at `new`."""

    __slots__ = ("old", "new")

    def __init__(self, old, new):
        self.old = old  # (ip, port) the SAs were keyed by
        self.new = new  # (ip, port) an authenticated message just came from

    def __repr__(self):
        return "PeerMoved(%r -> %r)" % (self.old, self.new)


class NegotiationFailed:
    """Phase 1 or Quick Mode could not complete; `reason` says what happened and what to change."""

    __slots__ = ("peer", "reason", "verified")

    def __init__(self, peer, reason, verified=True):
        self.peer = peer          # (ip, port)
        self.reason = reason      # plain words, never a secret
        self.verified = verified  # False: only a first message was seen, the source may be spoofed (log sparingly)

    def __repr__(self):
        return "NegotiationFailed(%r, %r%s)" % (self.peer, self.reason, "" if self.verified else ", unverified")


class InternalError:
    """A bug of ours (not a malformed packet) surfaced while handling input or a timer; the input was dropped,
    the half-open negotiation it belonged to ended, and the table goes on. The engine logs it with its
    traceback (CPython keeps it on `error.__traceback__`), rate-limited."""

    __slots__ = ("peer", "error")

    def __init__(self, peer, error):
        self.peer = peer      # (ip, port) the input came from, or None (a timer)
        self.error = error    # the exception object

    def __repr__(self):
        return "InternalError(%r, %s: %s)" % (self.peer, type(self.error).__name__, self.error)
