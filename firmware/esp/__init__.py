"""User-space ESP (RFC 4303) in transport mode, raw or UDP-encapsulated (RFC 3948).

`Outbound` / `Inbound` (sluice.esp.sa) are built once per SA; `ReplayWindow` (sluice.esp.replay)
is RFC 4303 3.4.3's window; `Lifetime` (sluice.esp.lifetime) holds soft/hard limits; `udpencap`
tells NAT-keepalives, IKE and ESP apart on UDP/4500. Crypto comes only from sluice.hal.crypto.
"""

from sluice.esp.errors import (EspAuthError, EspError, EspExpired, EspMalformed, EspPaddingError,  # noqa: F401
                               EspReplayError, EspSeqOverflow)
from sluice.esp.lifetime import HARD, OK, SOFT, Lifetime  # noqa: F401
from sluice.esp.replay import ReplayWindow  # noqa: F401
from sluice.esp.sa import EspSa, Inbound, Outbound  # noqa: F401
