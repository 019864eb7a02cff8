"""User-space ESP (RFC 4303) in transport mode, raw or UDP-encapsulated (RFC 3948).

`Outbound` / `Inbound` (sluice.esp.sa) are built once per SA; `ReplayWindow` (sluice.esp.replay)
is RFC 4303 3.4.3's window; `Lifetime` (sluice.esp.lifetime) holds soft/hard limits; `udpencap`
tells NAT-keepalives, IKE and ESP apart on UDP/4500. Crypto comes only from sluice.hal.crypto.
"""

from sluice.esp.errors import (EspAuthError, EspError, EspExpired, EspMalformed, EspPaddingError,
                               EspReplayError, EspSeqOverflow)
from sluice.esp.lifetime import HARD, OK, SOFT, Lifetime
from sluice.esp.replay import ReplayWindow
from sluice.esp.sa import EspSa, Inbound, Outbound

__all__ = ["EspAuthError", "EspError", "EspExpired", "EspMalformed", "EspPaddingError", "EspReplayError",
           "EspSeqOverflow", "HARD", "OK", "SOFT", "Lifetime", "ReplayWindow", "EspSa", "Inbound", "Outbound"]
