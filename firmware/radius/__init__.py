"""RADIUS for the server: a small sans-IO codec and client machine (RFC 2865, 2866, 2869, 3579, 5176, 2548).

Why our own codec and not `pyrad`: the protocol core must run under MicroPython (no `hashlib.md5` there
without `sluice.hal.crypto`, no `socket`/`select`, no dictionary files to parse), must stay sans-IO like
the rest of the core (`pyrad`'s client owns a socket and blocks in `select` while it retransmits, which
would hang the engine's single loop during a login) and must stay small on a router (the wire format we
need is a few hundred lines; `pyrad` brings dictionaries, `six`/`netaddr` and its own I/O). What we need
of RADIUS is narrow: Access-Request for PAP/CHAP/MS-CHAPv2, accounting, Disconnect/CoA, the
authenticators and Message-Authenticator; all of it is here and checked against FreeRADIUS in
tests/integration/test_radius_freeradius.py.

Modules:
  packet   the wire codec: attributes, the authenticators, User-Password hiding, Message-Authenticator,
           Microsoft vendor attributes (RFC 2548); strict parsing raising RadiusError.
  client   RadiusClient: requests with identifiers per server, retransmission, failover over several
           servers, a clear "unreachable" outcome; bounded pending table.
  dae      DaeListener: Disconnect-Request / CoA-Request (RFC 5176) checked and answered with ACK/NAK.
  auth     building Access-Requests from PPP's credential checks and reading the verdicts (RadiusLogins
           joins server PppLinks to a RadiusClient); accounting attributes.
  sessions RadiusSessions: Accounting Start/Interim/Stop, Session-Timeout and Idle-Timeout, DAE lookups.
"""
