"""ESP errors: each a ValueError subclass, each carrying a short reason and never key or packet bytes."""


class EspError(ValueError):
    """Base class of everything sluice.esp raises about a packet or an SA."""


class EspMalformed(EspError):
    """The packet cannot be ESP for this SA: too short, misaligned, wrong SPI (RFC 4303 2, 3.4.2)."""


class EspAuthError(EspError):
    """The ICV did not verify (RFC 4303 3.4.4): tampered, wrong key, or not ours."""


class EspReplayError(EspError):
    """Sequence number zero, already seen, or left of the anti-replay window (RFC 4303 3.4.3)."""


class EspPaddingError(EspError):
    """Authenticated, but the padding or pad length is wrong (RFC 4303 2.4)."""


class EspSeqOverflow(EspError):
    """The outbound counter would wrap: the SA must be rekeyed (RFC 4303 3.3.3)."""


class EspExpired(EspError):
    """The SA has passed a hard lifetime (RFC 4301 4.4.2.1): it must not be used any more."""
