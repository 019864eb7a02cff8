"""ESP security associations in user space, transport mode (RFC 4303; RFC 3193 for L2TP/IPsec).

Theory of operation. One `Outbound` and one `Inbound` per negotiated SA, built once from the keys IKE
derived (spi, transform name, encryption key, integrity key, salt). Building picks the transform from
the crypto HAL (`sluice.hal.crypto`), which precomputes everything it can (cipher contexts, HMAC
states); after that a packet costs one transform call and a couple of slices.

Packet layout (RFC 4303 2): SPI(4) | sequence number(4) | IV | payload | padding | pad length(1) |
next header(1) | ICV. In transport mode for L2TP the payload is the UDP/1701 datagram (header included)
and next header is 17.

- Sequence numbers start at 1 and never wrap: at 2^32 - 1 `seal` raises EspSeqOverflow, and the SA
  reports SOFT well before that so IKE can rekey (RFC 4303 3.3.3). No ESN (IKEv1 has none).
- Padding is the default scheme 1, 2, 3, ... to the cipher's block (4 for GCM) (RFC 4303 2.4) and is
  checked on receipt after the ICV.
- Anti-replay: `ReplayWindow` is checked before the ICV and advanced only after it (RFC 4303 3.4.3).
- Lifetimes: counters of bytes and packets, creation time given by the caller; `state(now)` says OK,
  SOFT (rekey now) or HARD (stop); seal/open refuse traffic past a hard byte or packet limit.

Sans-IO: no clock, no sockets, no logging. Randomness (CBC IVs) comes from the `rng` passed in.
"""

from sluice.esp.errors import (EspAuthError, EspExpired, EspMalformed, EspPaddingError, EspReplayError,
                               EspSeqOverflow)
from sluice.esp.lifetime import HARD, OK, SEQ_HARD, SEQ_SOFT, SOFT
from sluice.esp.replay import ReplayWindow

NEXT_HEADER_UDP = 17
NEXT_HEADER_NONE = 59  # dummy packet (RFC 4303 2.6): the caller drops it

_PAD = bytes(range(1, 256))  # RFC 4303 2.4 default padding: 1, 2, 3, ...


def _get_backend(backend):
    if backend is None or isinstance(backend, str):
        from sluice.hal.crypto import backend as named_backend
        return named_backend(backend)
    return backend


class _Sa:
    __slots__ = ("spi", "transform", "bytes", "packets", "created", "lifetime", "_t", "_spi_b")

    def __init__(self, spi, transform, enc_key, auth_key, salt, rng, backend, lifetime, now):
        if not 0 < spi <= 0xFFFFFFFF or spi < 256:
            # SPIs 1..255 are reserved by IANA (RFC 4303 2.1), 0 is never a valid SPI.
            raise ValueError("SPI must be in 256..2^32-1")
        self.spi = spi
        self.transform = transform
        self.bytes = 0
        self.packets = 0
        self.created = now
        self.lifetime = lifetime
        self._t = _get_backend(backend).esp_transform(transform, enc_key, auth_key, salt, rng)
        self._spi_b = spi.to_bytes(4, "big")

    def __repr__(self):
        return "<%s spi=0x%08x %s packets=%d>" % (type(self).__name__, self.spi, self.transform, self.packets)

    def _seq_state(self):
        return OK

    def state(self, now):
        """lifetime.OK, SOFT (time to rekey) or HARD (must stop) at instant `now`."""
        s = self._seq_state()
        lt = self.lifetime
        if lt is not None:
            s = max(s, lt.state(now - self.created, self.bytes, self.packets))
        return s

    def needs_rekey(self, now):
        return self.state(now) != OK

    def expired(self, now):
        return self.state(now) == HARD

    def deadline(self, now):
        """Absolute time of the next time-based lifetime change (for the engine's timer), or None."""
        return None if self.lifetime is None else self.lifetime.deadline(self.created, now)

    def _check_hard(self):
        lt = self.lifetime
        if lt is not None and ((lt.hard_bytes is not None and self.bytes >= lt.hard_bytes)
                               or (lt.hard_packets is not None and self.packets >= lt.hard_packets)):
            raise EspExpired("SA 0x%08x is past its hard lifetime" % self.spi)


class Outbound(_Sa):
    """Seals payloads into ESP packets for one outbound SA."""

    __slots__ = ("seq", "_block", "_trailers")

    def __init__(self, spi, transform, enc_key, auth_key=b"", salt=b"", rng=None, backend=None, lifetime=None,
                 now=0.0):
        _Sa.__init__(self, spi, transform, enc_key, auth_key, salt, rng, backend, lifetime, now)
        self.seq = 0
        self._block = self._t.block
        self._trailers = {}

    def _seq_state(self):
        return SOFT if self.seq >= SEQ_SOFT else OK

    def _trailer_table(self, nh):
        # Padding + pad length + next header for every pad length, built once per next-header value.
        if not 0 <= nh <= 255:
            raise ValueError("next header must be 0..255")
        tab = [_PAD[:pad] + bytes((pad, nh)) for pad in range(self._block)]
        self._trailers[nh] = tab
        return tab

    def seal(self, payload, next_header=NEXT_HEADER_UDP):
        """The ESP packet (SPI through ICV) carrying payload (bytes or bytearray)."""
        seq = self.seq + 1
        if seq >= SEQ_HARD:
            raise EspSeqOverflow("SA 0x%08x used every sequence number" % self.spi)
        if self.lifetime is not None:
            self._check_hard()
        tab = self._trailers.get(next_header) or self._trailer_table(next_header)
        pkt = self._t.seal(self._spi_b + seq.to_bytes(4, "big"),
                           payload + tab[(-(len(payload) + 2)) % self._block])
        self.seq = seq
        self.bytes += len(payload)
        self.packets += 1
        return pkt

    def seal_view(self, view, start, end, next_header=NEXT_HEADER_UDP):
        """`seal` for a payload that sits in a writable memoryview at view[start:end]: the trailer (padding,
        pad length, next header) is written in place after it, so view needs `tail_room` bytes after end,
        and the payload is never copied before the cipher reads it. Same packet as seal(bytes(payload))."""
        seq = self.seq + 1
        if seq >= SEQ_HARD:
            raise EspSeqOverflow("SA 0x%08x used every sequence number" % self.spi)
        if self.lifetime is not None:
            self._check_hard()
        tab = self._trailers.get(next_header) or self._trailer_table(next_header)
        n = end - start
        tr = tab[(-(n + 2)) % self._block]
        k = end + len(tr)
        view[end:k] = tr
        pkt = self._t.seal(self._spi_b + seq.to_bytes(4, "big"), view[start:k])
        self.seq = seq
        self.bytes += n
        self.packets += 1
        return pkt

    @property
    def tail_room(self):
        """Bytes seal_view may write after the payload: the longest trailer."""
        return self._block + 1


class Inbound(_Sa):
    """Opens ESP packets of one inbound SA: length, SPI, replay, ICV, padding, in that order."""

    __slots__ = ("window", "stats", "_fixed", "_min", "_align", "_iv_icv")

    def __init__(self, spi, transform, enc_key, auth_key=b"", salt=b"", rng=None, backend=None, lifetime=None,
                 now=0.0, window=64):
        _Sa.__init__(self, spi, transform, enc_key, auth_key, salt, rng, backend, lifetime, now)
        t = self._t
        self.window = ReplayWindow(window)
        self.stats = {"malformed": 0, "auth": 0, "replay": 0, "padding": 0}
        self._fixed = 8 + t.iv_len + t.icv_len
        self._align = t.block
        # At least one cipher block (or, for GCM, one 4-byte unit holding pad length and next header).
        self._min = self._fixed + t.block

    def open(self, packet):
        """(payload, next_header) of an ESP packet (bytes, or a memoryview the caller keeps unchanged until
        this returns); raises an EspError subclass and counts it."""
        pt, end, nh = self.open_in(packet)
        return pt[:end], nh

    def open_in(self, packet):
        """`open` without copying the payload out: (plaintext, end, next_header), the payload being
        plaintext[:end] (the ESP trailer follows it). For the data path, which reads the payload in place.

        The replay window's check and update (ReplayWindow.check/update) are written out here: this runs
        once per packet and two method calls cost more than the arithmetic."""
        n = len(packet)
        if n < self._min or (n - self._fixed) % self._align:
            self.stats["malformed"] += 1
            raise EspMalformed("ESP packet length %d does not fit %s" % (n, self.transform))
        if packet[:4] != self._spi_b:
            self.stats["malformed"] += 1
            raise EspMalformed("SPI is not 0x%08x" % self.spi)
        seq = (packet[4] << 24) | (packet[5] << 16) | (packet[6] << 8) | packet[7]
        w = self.window
        top = w.top
        # Before the ICV: cheap (RFC 4303 3.4.3). Sequence number 0 is never sent.
        if seq <= top and (seq == 0 or top - seq >= w.size or (w.bitmap >> (top - seq)) & 1):
            self.stats["replay"] += 1
            raise EspReplayError("sequence number %d replayed or too old" % seq)
        if self.lifetime is not None:
            self._check_hard()
        pt = self._t.open(packet)
        if pt is None:
            self.stats["auth"] += 1
            raise EspAuthError("ICV mismatch on SA 0x%08x" % self.spi)
        m = len(pt)
        padlen = pt[m - 2]
        end = m - 2 - padlen
        if padlen and (end < 0 or pt[end:m - 2] != _PAD[:padlen]):
            self.stats["padding"] += 1
            raise EspPaddingError("bad ESP padding")
        # Only now: a forged packet never moves the window.
        if seq > top:
            shift = seq - top
            w.bitmap = 1 if shift >= w.size else ((w.bitmap << shift) | 1) & w._mask
            w.top = seq
        else:
            w.bitmap |= 1 << (top - seq)
        self.bytes += end
        self.packets += 1
        return pt, end, pt[m - 1]


class EspSa:
    """Both directions of one negotiated SA pair, for callers that want one object per peer."""

    __slots__ = ("outbound", "inbound")

    def __init__(self, outbound, inbound):
        self.outbound = outbound
        self.inbound = inbound

    def __repr__(self):
        return "<EspSa out=%r in=%r>" % (self.outbound, self.inbound)

    def seal(self, payload, next_header=NEXT_HEADER_UDP):
        return self.outbound.seal(payload, next_header)

    def open(self, packet):
        return self.inbound.open(packet)

    def state(self, now):
        return max(self.outbound.state(now), self.inbound.state(now))
