"""Session (call) machines inside a tunnel (RFC 2661 7.4.1 incoming calls, both roles).

Theory of operation. Sluice's L2TP client (LAC) places one "incoming call" per PPP link and the server (LNS)
answers it; outgoing calls (OCRQ, RFC 2661 7.4.2) are refused with a CDN.

    LAC (RFC 2661 7.4.1)                              LNS (RFC 2661 7.4.1)
    wait-tunnel  --tunnel up------> send ICRQ          idle        --ICRQ--> send ICRP, wait-connect
    wait-reply   --ICRP-----------> send ICCN, est.    wait-connect --ICCN-> established
    any          --CDN------------> gone                any          --CDN--> gone

A Session never sends by itself: it asks its Tunnel (`tunnel._send_session`, `tunnel._emit`), which owns
the control channel and the event queue. Anything not in the table above (an ICRP while established, an
ICCN at an LAC) is a protocol error that closes the session with a CDN (result 2, RFC 2661 7.4).
"""

from sluice.l2tp import avp as A
from sluice.l2tp import message as M
from sluice.l2tp.events import SessionDown, SessionUp
from sluice.safe import safe_text

WAIT_TUNNEL = "wait-tunnel"
WAIT_REPLY = "wait-reply"
WAIT_CONNECT = "wait-connect"
ESTABLISHED = "established"

# RFC 2661 4.4.2 CDN result codes we use
CDN_GENERAL_ERROR = 2
CDN_ADMIN = 3
CDN_TEMPORARY = 4
CDN_PERMANENT = 5
# RFC 2661 4.4.2 general error codes
ERR_NONE = 0
ERR_BAD_VALUE = 3
ERR_NO_RESOURCES = 4
ERR_INVALID_SESSION = 5
ERR_UNKNOWN_MANDATORY = 8

TX_CONNECT_SPEED = 100000000  # we are not a modem: report a nominal speed
FRAMING_SYNC = 1  # RFC 2661 4.4.3 Framing Type: synchronous (PPP over L2TP is always sync-framed)


class Session:
    """One call: our id, the peer's id, where the exchange stands."""

    __slots__ = ("local_id", "peer_id", "state", "serial", "sequencing", "started", "authenticated")

    def __init__(self, local_id, state, started):
        self.local_id = local_id  # our Assigned Session ID: the peer's headers carry it
        self.peer_id = 0  # the peer's Assigned Session ID: our headers carry it; 0 until known
        self.state = state
        self.serial = 0  # Call Serial Number
        self.sequencing = False  # data messages carry Ns (Sequencing Required, RFC 2661 4.4.6)
        self.started = started
        self.authenticated = False  # LNS: the endpoint's PPP authenticated the peer (Tunnel.authenticate_session)

    def status(self):
        return {"session_id": self.local_id, "peer_session_id": self.peer_id, "state": self.state,
                "sequencing": self.sequencing, "authenticated": self.authenticated}

    # -- LAC ---------------------------------------------------------------------------------------------

    def send_icrq(self, tunnel, now):
        # RFC 2661 6.10
        tunnel._send_session(0, M.ICRQ, [
            (A.ASSIGNED_SESSION_ID, self.local_id),
            (A.CALL_SERIAL_NUMBER, self.serial),
            (A.BEARER_TYPE, 0),
        ], now)
        self.state = WAIT_REPLY

    def on_icrp(self, tunnel, msg, now):
        if self.state != WAIT_REPLY:
            return self.fail(tunnel, now, "ICRP in state %s" % self.state)
        peer = msg.get(A.ASSIGNED_SESSION_ID)
        if not peer:
            return self.fail(tunnel, now, "ICRP with Assigned Session ID 0", ERR_BAD_VALUE)
        self.peer_id = peer
        self.sequencing = bool(tunnel.config.sequencing)
        # RFC 2661 6.12
        items = [(A.TX_CONNECT_SPEED, TX_CONNECT_SPEED), (A.FRAMING_TYPE, FRAMING_SYNC)]
        if self.sequencing:
            items.append((A.SEQUENCING_REQUIRED, True))
        tunnel._send_session(self.peer_id, M.ICCN, items, now)
        self.state = ESTABLISHED
        tunnel._emit(SessionUp(tunnel.local_tunnel_id, self.local_id, self.peer_id, self.sequencing))

    # -- LNS ---------------------------------------------------------------------------------------------

    def on_icrq(self, tunnel, msg, now):
        self.peer_id = msg.get(A.ASSIGNED_SESSION_ID)
        self.serial = msg.get(A.CALL_SERIAL_NUMBER, 0)
        # RFC 2661 6.11
        tunnel._send_session(self.peer_id, M.ICRP, [(A.ASSIGNED_SESSION_ID, self.local_id)], now)
        self.state = WAIT_CONNECT

    def on_iccn(self, tunnel, msg, now):
        if self.state != WAIT_CONNECT:
            return self.fail(tunnel, now, "ICCN in state %s" % self.state)
        self.sequencing = A.SEQUENCING_REQUIRED in msg.values or bool(tunnel.config.sequencing)
        self.state = ESTABLISHED
        tunnel._emit(SessionUp(tunnel.local_tunnel_id, self.local_id, self.peer_id, self.sequencing))

    # -- both --------------------------------------------------------------------------------------------

    def on_cdn(self, tunnel, msg, now):
        result, error, text = msg.get(A.RESULT_CODE, (None, None, None))
        if text:
            text = safe_text(text, 128)
        tunnel._drop_session(self.local_id)
        why = text or ("result %s error %s" % (result, error) if error else "closed by the peer")
        tunnel._emit(SessionDown(tunnel.local_tunnel_id, self.local_id, result, why))

    def fail(self, tunnel, now, why, error=ERR_NONE, result=CDN_GENERAL_ERROR):
        """Close this session with a CDN because of a protocol problem; report it."""
        tunnel.close_session(self.local_id, now, result, why, error)
