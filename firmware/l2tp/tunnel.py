"""Tunnel (control connection) machine for both roles (RFC 2661 5.1, 5.7, 7.2).

Theory of operation. A Tunnel is sans-IO: it is driven by `start(now)` (LAC), `open_session`,
`close_session`, `close`, `datagram_received(data, now)` and `handle_timer(now)`, and read by pulling
`datagrams_to_send()`, `next_event()` and `get_timer()`. It never reads a clock or draws randomness itself:
`rng(n) -> bytes` is given at construction. Reliable delivery (Ns/Nr, windows, retransmission, ZLB acks)
is the ControlChannel's job; this module decides what to send.

RFC 2661 7.2 control connection states, as (role, state, message) -> action:

    LAC idle            start()           send SCCRQ                      -> wait-ctl-reply
    LAC wait-ctl-reply  SCCRP (auth ok)   send SCCCN, TunnelUp            -> established
    LNS idle            SCCRQ (auth ok)   send SCCRP                      -> wait-ctl-conn
    LNS wait-ctl-conn   SCCCN (auth ok)   TunnelUp                        -> established
    any                 StopCCN           ack at once, hold state         -> closing -> closed
    any                 close()           send StopCCN until acked        -> closing -> closed
    any                 anything else     send StopCCN result 7 (FSM)     -> closing

Tunnel authentication (RFC 2661 4.4.3 Challenge / Challenge Response, 5.1.1): whichever side has a secret
puts a random Challenge in its SCCRQ/SCCRP and expects MD5(message type of the reply + secret + challenge)
back in the SCCRP (type 2) / SCCCN (type 3). A challenge we cannot answer (no secret) or a wrong answer
ends the tunnel with StopCCN result 4 ("not authorized").

Keepalive (RFC 2661 5.5, 6.5): after `hello_interval` s with nothing from the peer we send a HELLO; the
channel's retransmission limit then declares the peer dead. Unknown mandatory AVPs in a tunnel message end
the tunnel, in a session message the session (RFC 2661 4.1, StopCCN/CDN result 2, error 8).

Replies to an unverified source (RFC 2661 says nothing; this is QUIC's anti-amplification rule, RFC 9000
8.1): an LNS tunnel is unverified until the peer acknowledges our SCCRP (which needs the tunnel id the SCCRP
carried, so a spoofed source cannot). Until then it sends at most `amplification` times the octets it
received, except that the first reply always goes out (it is what the SCCRQ asks for, and its size is ours);
what does not fit is not sent (a retransmission that never happened) and counted in `unverified_held`.

Sessions at the LNS start unauthenticated; the endpoint says when PPP authenticated one
(`authenticate_session`). A tunnel holds at most `max_pending_sessions` unauthenticated sessions; the
owning TunnelTable (`owner`) adds per-source and total limits and the pre-authentication timeout
(admission.py). Every API entry point tells the owner the tunnel may have output (`_touch`), so the table
only ever looks at tunnels that changed.

Peer-supplied strings (Host Name, Vendor Name, the text of a StopCCN or CDN Result Code) pass through
`sluice.safe.safe_text` before they are stored or reported: they reach logs and `sluice status`.

The tie breaker (RFC 2661 4.4.3) only matters when both ends dial each other at once; an LNS-only or
LAC-only node never does, so the Tie Breaker AVP is sent when configured and otherwise ignored.
"""

from sluice.hal.crypto.digest import md5
from sluice.l2tp import avp as A
from sluice.l2tp import header as H
from sluice.l2tp import message as M
from sluice.l2tp.control import ControlChannel
from sluice.l2tp.errors import L2tpError
from sluice.l2tp.events import SessionDown, TunnelDown, TunnelUp
from sluice.l2tp import session as S
from sluice.safe import safe_text

LAC = "LAC"
LNS = "LNS"

IDLE = "idle"
WAIT_CTL_REPLY = "wait-ctl-reply"
WAIT_CTL_CONN = "wait-ctl-conn"
ESTABLISHED = "established"
CLOSING = "closing"
CLOSED = "closed"

# RFC 2661 4.4.2 StopCCN result codes
STOP_CLEAR = 1
STOP_GENERAL_ERROR = 2
STOP_ALREADY_EXISTS = 3
STOP_NOT_AUTHORIZED = 4
STOP_BAD_VERSION = 5
STOP_SHUTDOWN = 6
STOP_FSM_ERROR = 7

PROTOCOL_VERSION = (1, 0)  # RFC 2661 4.4.3
FRAMING_CAPS = 3  # synchronous and asynchronous (RFC 2661 4.4.3)


class TunnelConfig:
    """Settings for one tunnel. The secret is kept as bytes and never shown."""

    __slots__ = ("host_name", "secret", "receive_window", "hello_interval", "retransmit_initial",
                 "retransmit_cap", "max_retries", "ack_delay", "vendor_name", "firmware_revision",
                 "sequencing", "max_sessions", "hide_avps", "stop_hold", "tie_breaker", "max_pending_sessions",
                 "amplification")

    def __init__(self, host_name="sluice", secret=None, receive_window=8, hello_interval=60.0,
                 retransmit_initial=1.0, retransmit_cap=8.0, max_retries=5, ack_delay=0.2,
                 vendor_name="Sluice", firmware_revision=0x0100, sequencing=False, max_sessions=1024,
                 hide_avps=False, stop_hold=31.0, tie_breaker=False, max_pending_sessions=4, amplification=3):
        if isinstance(secret, str):
            secret = secret.encode()
        if not 1 <= receive_window <= 0xFFFF:
            raise ValueError("receive_window must be 1..65535")
        self.host_name = host_name  # Host Name AVP
        self.secret = secret or None  # tunnel secret (bytes) for Challenge/Response and hidden AVPs
        self.receive_window = receive_window  # our Receive Window Size
        self.hello_interval = hello_interval  # seconds of silence before a HELLO; 0 or None: never
        self.retransmit_initial = retransmit_initial  # first retransmission timeout, doubling
        self.retransmit_cap = retransmit_cap  # the longest retransmission timeout
        self.max_retries = max_retries  # retransmissions before the peer is declared dead
        self.ack_delay = ack_delay  # how long to wait for a reply to piggyback an ack on before a ZLB
        self.vendor_name = vendor_name
        self.firmware_revision = firmware_revision
        self.sequencing = sequencing  # ask for sequenced data messages (LAC: Sequencing Required in ICCN)
        self.max_sessions = max_sessions  # sessions per tunnel we accept
        self.hide_avps = hide_avps  # send Assigned Session IDs hidden (needs a secret; RFC 2661 4.3)
        self.stop_hold = stop_hold  # how long a closed tunnel keeps re-acking StopCCN (RFC 2661 5.7)
        self.tie_breaker = tie_breaker  # send a Tie Breaker AVP in SCCRQ
        self.max_pending_sessions = max_pending_sessions  # LNS: unauthenticated sessions per tunnel
        self.amplification = amplification  # LNS: octets sent per octet received until the peer is verified

    def __repr__(self):
        return "TunnelConfig(host_name=%r, secret=%s, hello_interval=%r)" % (
            self.host_name, "<set>" if self.secret else None, self.hello_interval)


class Tunnel:
    """One L2TP control connection and its sessions."""

    def __init__(self, role, local_tunnel_id, rng, config=None):
        if role not in (LAC, LNS):
            raise ValueError("role must be LAC or LNS")
        if not 0 < local_tunnel_id <= 0xFFFF:
            raise ValueError("local tunnel id must be 1..65535")
        self.role = role
        self.local_tunnel_id = local_tunnel_id
        self.rng = rng
        self.config = config = config or TunnelConfig()
        self.peer = None  # opaque peer key, set by TunnelTable on the LNS side
        self.owner = None  # the TunnelTable holding this tunnel (LNS), told when the tunnel may have output
        self.verified = role == LAC  # the peer has shown it receives what we send to it (see above)
        self.rx_octets = 0
        self.tx_octets = 0
        self.pending = 0  # LNS sessions not yet authenticated
        self.peer_tunnel_id = 0
        self.peer_host_name = None
        self.peer_vendor = None
        self.state = IDLE
        self.channel = ControlChannel(config.receive_window, config.retransmit_initial, config.retransmit_cap,
                                      config.max_retries, config.ack_delay)
        self.sessions = {}  # local session id -> Session
        self.events = []
        self.challenge = None  # the Challenge we sent, to check the answer
        self.hello_at = None
        self.close_at = None
        self.down = False  # TunnelDown reported
        self.stop_result = None  # (result, error, message) of the StopCCN sent or received
        self.serial = 0
        self.created = None
        self.up_since = None
        self.stats = {"malformed": 0, "unknown_session": 0, "ignored": 0, "auth_failures": 0,
                      "sessions_total": 0, "unverified_held": 0, "sessions_refused": 0}

    def __repr__(self):
        return "<Tunnel %s %d/%d %s>" % (self.role, self.local_tunnel_id, self.peer_tunnel_id, self.state)

    # -- API ---------------------------------------------------------------------------------------------

    def start(self, now):
        """LAC: send SCCRQ (RFC 2661 6.1)."""
        if self.role != LAC or self.state != IDLE:
            raise ValueError("start() is for an idle LAC tunnel")
        self._touch()
        self.created = now
        items = self._identity()
        if self.config.tie_breaker:
            items.append((A.TIE_BREAKER, self.rng(8)))
        if self.config.secret is not None:
            self.challenge = self.rng(16)
            items.append((A.CHALLENGE, self.challenge))
        self._send_tunnel(M.SCCRQ, items, now)
        self.state = WAIT_CTL_REPLY

    def open_session(self, now):
        """LAC: place an incoming call (ICRQ, RFC 2661 6.10), at once or when the tunnel comes up."""
        if self.role != LAC:
            raise ValueError("only an LAC opens sessions")
        if self.state in (CLOSING, CLOSED):
            raise ValueError("the tunnel is closed")
        self._touch()
        sid = self._new_session_id()
        sess = S.Session(sid, S.WAIT_TUNNEL, now)
        sess.authenticated = True  # the LAC's own calls: nothing to admit
        self.serial = (self.serial + 1) & 0xFFFFFFFF
        sess.serial = self.serial
        self._add_session(sess, now)
        if self.state == ESTABLISHED:
            sess.send_icrq(self, now)
        return sid

    def close_session(self, local_sid, now, result_code=S.CDN_ADMIN, message=None, error_code=None):
        """Clear one session with a CDN (RFC 2661 6.14) and report SessionDown. Unknown ids are ignored."""
        sess = self.sessions.get(local_sid)
        if sess is None:
            return
        self._touch()
        self._forget_session(sess)
        if sess.state != S.WAIT_TUNNEL and self.state == ESTABLISHED:
            self._send_session(sess.peer_id, M.CDN, [
                (A.RESULT_CODE, (result_code, error_code, message)),
                (A.ASSIGNED_SESSION_ID, local_sid),
            ], now)
        self._emit(SessionDown(self.local_tunnel_id, local_sid, result_code, message or "closed locally"))

    def close(self, now, result_code=STOP_CLEAR, message=None, error_code=None):
        """Clear the control connection with StopCCN (RFC 2661 6.4); sessions go with it."""
        if self.state in (CLOSING, CLOSED):
            return
        self._touch()
        self._stop(now, result_code, error_code, message or "closed locally")

    def abandon(self, now, why):
        """Drop the tunnel without a word to the peer (no StopCCN: for a half-open tunnel whose source is
        unverified, or one evicted under pressure); its sessions and the tunnel are reported down."""
        if self.state == CLOSED:
            return
        self._touch()
        self.stop_result = (None, None, why)
        self.channel.unacked = []
        self.channel.waiting = []
        self._report_down(None, None, why)
        self._finish()

    def authenticate_session(self, local_sid):
        """The endpoint's PPP authenticated the peer on this session: it stops counting as pending.
        True when the session exists and was pending."""
        sess = self.sessions.get(local_sid)
        if sess is None or sess.authenticated:
            return False
        self._touch()
        sess.authenticated = True
        self.pending -= 1
        return True

    def is_active(self):
        return self.state != CLOSED

    def datagrams_to_send(self):
        out = self.channel.drain()
        if self.verified:
            for d in out:
                self.tx_octets += len(d)
            return out
        allowed = self.config.amplification * self.rx_octets
        sent = []
        for d in out:
            if self.tx_octets == 0 or self.tx_octets + len(d) <= allowed:
                self.tx_octets += len(d)
                sent.append(d)
            else:
                self.stats["unverified_held"] += 1
        return sent

    def next_event(self):
        if self.events:
            return self.events.pop(0)
        return None

    def has_output(self):
        return bool(self.channel.out or self.events)

    def get_timer(self):
        if self.state == CLOSED:
            return None
        t = self.channel.get_timer()
        for d in (self.hello_at, self.close_at):
            if d is not None and (t is None or d < t):
                t = d
        return t

    def handle_timer(self, now):
        if self.state == CLOSED:
            return
        self._touch()
        ch = self.channel
        ch.handle_timer(now)
        if ch.failed is not None:
            self._dead(ch.failed)
            return
        if self.close_at is not None and now >= self.close_at:
            self._finish()
            return
        if self.hello_at is not None and now >= self.hello_at:
            # RFC 2661 6.5: a HELLO only when nothing else is in flight (retransmission already probes).
            if ch.idle():
                self._send_tunnel(M.HELLO, [], now)
            self.hello_at = now + self.config.hello_interval

    def datagram_received(self, data, now):
        """One control message from the peer. Malformed input is counted and dropped; nothing escapes."""
        if self.state == CLOSED:
            self.stats["ignored"] += 1
            return
        self._touch()
        self.rx_octets += len(data)
        try:
            h = H.parse(data)
            if not h.is_control:
                raise L2tpError("data message on the control path")
            if h.tunnel_id != self.local_tunnel_id and h.tunnel_id != 0:
                raise L2tpError("not our tunnel id")
            msg = M.parse(data, h.offset, h.end, self.config.secret)
        except L2tpError:
            self.stats["malformed"] += 1
            return
        if self.hello_at is not None:
            self.hello_at = now + self.config.hello_interval
        zlb = msg.type is None
        delivered = self.channel.receive(h.ns, h.nr, None if zlb else (h.session_id, msg), now)
        if not self.verified and self.channel.una != 0:
            self.verified = True  # the peer acknowledged our SCCRP: it receives at this address
        for sid, m in delivered:
            if self.state == CLOSED:
                break
            self._dispatch(sid, m, now)
        if self.state == CLOSING and self.close_at is None and self.channel.idle():
            self._finish()  # our StopCCN has been acknowledged (RFC 2661 5.7)

    def status(self):
        st = {
            "role": self.role, "state": self.state, "tunnel_id": self.local_tunnel_id,
            "peer_tunnel_id": self.peer_tunnel_id, "peer_host_name": self.peer_host_name,
            "peer_vendor": self.peer_vendor, "peer": self.peer if isinstance(self.peer, (str, int)) else
            (None if self.peer is None else str(self.peer)),
            "sessions": [s.status() for s in self.sessions.values()],
            "created": self.created, "up_since": self.up_since, "verified": self.verified,
            "pending_sessions": self.pending, "rx_octets": self.rx_octets, "tx_octets": self.tx_octets,
        }
        c = dict(self.channel.stats)
        c.update(self.stats)
        st["counters"] = c
        if self.stop_result is not None:
            st["stop"] = {"result": self.stop_result[0], "error": self.stop_result[1],
                          "message": self.stop_result[2]}
        return st

    # -- helpers for Session -----------------------------------------------------------------------------

    def _touch(self):
        if self.owner is not None:
            self.owner._touched(self)

    def _emit(self, ev):
        self.events.append(ev)

    def _add_session(self, sess, now):
        self.sessions[sess.local_id] = sess
        self.stats["sessions_total"] += 1
        if not sess.authenticated:
            self.pending += 1
        if self.owner is not None:
            self.owner._session_added(self, sess, now)

    def _forget_session(self, sess):
        if self.sessions.get(sess.local_id) is not sess:
            return
        del self.sessions[sess.local_id]
        if not sess.authenticated:
            self.pending -= 1
        if self.owner is not None:
            self.owner._session_removed(self, sess)

    def _hidden(self):
        if self.config.hide_avps and self.config.secret is not None:
            return (A.ASSIGNED_SESSION_ID,)
        return ()

    def _send_session(self, peer_sid, msg_type, items, now):
        body = M.build(msg_type, items, self.config.secret, self._hidden(), self.rng)
        self.channel.send(peer_sid, body, now)

    def _send_tunnel(self, msg_type, items, now):
        self.channel.send(0, M.build(msg_type, items), now)

    def _drop_session(self, sid):
        sess = self.sessions.get(sid)
        if sess is not None:
            self._forget_session(sess)

    def _new_session_id(self):
        for _ in range(100):
            b = self.rng(2)
            sid = (b[0] << 8) | b[1]
            if sid and sid not in self.sessions and (self.owner is None or not self.owner.sid_taken(sid)):
                return sid
        raise ValueError("no free session id")

    # -- dispatch ----------------------------------------------------------------------------------------

    def _identity(self):
        c = self.config
        return [
            (A.PROTOCOL_VERSION, PROTOCOL_VERSION),
            (A.HOST_NAME, c.host_name),
            (A.FRAMING_CAPABILITIES, FRAMING_CAPS),
            (A.BEARER_CAPABILITIES, 0),
            (A.FIRMWARE_REVISION, c.firmware_revision),
            (A.VENDOR_NAME, c.vendor_name),
            (A.ASSIGNED_TUNNEL_ID, self.local_tunnel_id),
            (A.RECEIVE_WINDOW_SIZE, c.receive_window),
        ]

    def _dispatch(self, sid, msg, now):
        t = msg.type
        if self.state == CLOSING:
            # RFC 2661 5.7: once StopCCN is out (or in), only the peer's StopCCN still matters; the channel
            # has already acknowledged whatever this is.
            if t == M.STOPCCN:
                self._stopped(now, msg.get(A.RESULT_CODE))
            else:
                self.stats["ignored"] += 1
            return
        if t not in M.NAMES:
            if msg.mandatory_type:
                # RFC 2661 4.4.1: unknown message type with the M bit clears the tunnel.
                self._stop(now, STOP_GENERAL_ERROR, S.ERR_UNKNOWN_MANDATORY, "unknown message type %d" % t)
            else:
                self.stats["ignored"] += 1
            return
        session_msg = t in M.SESSION_MESSAGES
        problem = msg.problem
        if problem is None and msg.unknown:
            problem = "unknown mandatory AVP %d:%d in %s" % (msg.unknown[0][0], msg.unknown[0][1], msg.name())
        if problem is None and msg.missing:
            problem = "%s without %s" % (msg.name(), A.NAMES[msg.missing[0]])
        if problem is None:
            problem = M.check_value_ranges(msg) if t in (M.SCCRQ, M.SCCRP, M.ICRQ, M.ICRP) else None
        if problem is not None:
            error = S.ERR_UNKNOWN_MANDATORY if msg.unknown else S.ERR_BAD_VALUE
            if not session_msg:
                if t == M.STOPCCN:
                    self._stopped(now, (STOP_GENERAL_ERROR, error, problem))
                else:
                    self._stop(now, STOP_GENERAL_ERROR, error, problem)
            elif t in (M.ICRQ, M.OCRQ):
                self._refuse_call(msg, now, S.CDN_GENERAL_ERROR, error, problem)
            else:
                sess = self.sessions.get(sid)
                if sess is not None:
                    sess.fail(self, now, problem, error)
            return
        if session_msg and self.state != ESTABLISHED:
            self._stop(now, STOP_FSM_ERROR, None, "%s before the tunnel is up" % msg.name())
            return
        handler = _HANDLERS.get(t)
        handler(self, sid, msg, now)

    def _fsm_error(self, msg, now):
        self._stop(now, STOP_FSM_ERROR, None, "unexpected %s in state %s" % (msg.name(), self.state))

    def _learn_peer(self, msg):
        v = msg.values
        self.peer_tunnel_id = v[A.ASSIGNED_TUNNEL_ID]
        self.channel.peer_tunnel_id = self.peer_tunnel_id
        host, vendor = v.get(A.HOST_NAME), v.get(A.VENDOR_NAME)
        self.peer_host_name = None if host is None else safe_text(host)
        self.peer_vendor = None if vendor is None else safe_text(vendor)
        rws = v.get(A.RECEIVE_WINDOW_SIZE)
        if rws:
            self.channel.peer_window = rws

    def _answer(self, msg_type, challenge):
        # RFC 2661 4.4.3: MD5 over the reply's message type (one octet), the secret, and the challenge.
        return md5(bytes((msg_type,)) + self.config.secret + challenge)

    def _check_answer(self, msg, msg_type, now):
        """False (after stopping the tunnel) when the peer's Challenge Response is missing or wrong."""
        if self.challenge is None:
            return True
        resp = msg.get(A.CHALLENGE_RESPONSE)
        if resp is None:
            why = "the peer did not answer our tunnel authentication challenge (is its tunnel secret set?)"
        elif resp != self._answer(msg_type, self.challenge):
            why = "tunnel authentication failed: the peer's tunnel secret differs from ours"
        else:
            return True
        self.stats["auth_failures"] += 1
        self._stop(now, STOP_NOT_AUTHORIZED, None, why)
        return False

    def _peer_challenge(self, msg, now):
        """The answer to the peer's Challenge, b"" when it sent none, None (after stopping) when we cannot."""
        chal = msg.get(A.CHALLENGE)
        if chal is None:
            return b""
        if self.config.secret is None:
            self.stats["auth_failures"] += 1
            self._stop(now, STOP_NOT_AUTHORIZED, None,
                       "the peer requires tunnel authentication but no tunnel secret is configured")
            return None
        return chal

    def _on_sccrq(self, sid, msg, now):
        if self.role != LNS or self.state != IDLE:
            return self._fsm_error(msg, now)
        self.created = now
        self._learn_peer(msg)
        ver = msg.get(A.PROTOCOL_VERSION)
        if ver != PROTOCOL_VERSION:
            return self._stop(now, STOP_BAD_VERSION, None, "protocol version %d.%d is not supported" % ver)
        chal = self._peer_challenge(msg, now)
        if chal is None:
            return
        items = self._identity()
        if chal:
            items.append((A.CHALLENGE_RESPONSE, self._answer(M.SCCRP, chal)))
        if self.config.secret is not None:
            self.challenge = self.rng(16)
            items.append((A.CHALLENGE, self.challenge))
        self._send_tunnel(M.SCCRP, items, now)
        self.state = WAIT_CTL_CONN

    def _on_sccrp(self, sid, msg, now):
        if self.role != LAC or self.state != WAIT_CTL_REPLY:
            return self._fsm_error(msg, now)
        self._learn_peer(msg)
        ver = msg.get(A.PROTOCOL_VERSION)
        if ver != PROTOCOL_VERSION:
            return self._stop(now, STOP_BAD_VERSION, None, "protocol version %d.%d is not supported" % ver)
        if not self._check_answer(msg, M.SCCRP, now):
            return
        chal = self._peer_challenge(msg, now)
        if chal is None:
            return
        items = []
        if chal:
            items.append((A.CHALLENGE_RESPONSE, self._answer(M.SCCCN, chal)))
        self._send_tunnel(M.SCCCN, items, now)
        self._established(now)
        for sess in list(self.sessions.values()):
            if sess.state == S.WAIT_TUNNEL:
                sess.send_icrq(self, now)

    def _on_scccn(self, sid, msg, now):
        if self.role != LNS or self.state != WAIT_CTL_CONN:
            return self._fsm_error(msg, now)
        if not self._check_answer(msg, M.SCCCN, now):
            return
        self._established(now)

    def _established(self, now):
        self.state = ESTABLISHED
        self.up_since = now
        if self.config.hello_interval:
            self.hello_at = now + self.config.hello_interval
        self._emit(TunnelUp(self.local_tunnel_id, self.peer_tunnel_id, self.peer_host_name))

    def _on_stopccn(self, sid, msg, now):
        self._stopped(now, msg.get(A.RESULT_CODE))

    def _on_hello(self, sid, msg, now):
        pass  # the channel acknowledges it (RFC 2661 6.5)

    def _on_icrq(self, sid, msg, now):
        if self.role != LNS:
            return self._refuse_call(msg, now, S.CDN_PERMANENT, None, "this end does not accept calls")
        why = None
        if len(self.sessions) >= self.config.max_sessions:
            why = "too many sessions"
        elif self.pending >= self.config.max_pending_sessions:
            why = "too many sessions waiting for authentication in this tunnel"
        elif self.owner is not None:
            why = self.owner._admit_session(self, now)
        if why is not None:
            self.stats["sessions_refused"] += 1
            return self._refuse_call(msg, now, S.CDN_TEMPORARY, S.ERR_NO_RESOURCES, why)
        sess = S.Session(self._new_session_id(), S.WAIT_CONNECT, now)
        self._add_session(sess, now)
        sess.on_icrq(self, msg, now)

    def _refuse_call(self, msg, now, result, error, why):
        peer_sid = msg.get(A.ASSIGNED_SESSION_ID) or 0
        self._send_session(peer_sid, M.CDN, [(A.RESULT_CODE, (result, error, why)), (A.ASSIGNED_SESSION_ID, 0)],
                           now)

    def _on_ocrq(self, sid, msg, now):
        # RFC 2661 7.4.2: we never take outgoing calls.
        self._refuse_call(msg, now, S.CDN_PERMANENT, None, "outgoing calls are not supported")

    def _with_session(self, sid, msg, now, what):
        sess = self.sessions.get(sid)
        if sess is None:
            self.stats["unknown_session"] += 1
            return
        getattr(sess, what)(self, msg, now)

    def _on_icrp(self, sid, msg, now):
        self._with_session(sid, msg, now, "on_icrp")

    def _on_iccn(self, sid, msg, now):
        self._with_session(sid, msg, now, "on_iccn")

    def _on_cdn(self, sid, msg, now):
        self._with_session(sid, msg, now, "on_cdn")

    def _on_ignored(self, sid, msg, now):
        # OCRP/OCCN (we never send OCRQ), WEN and SLI (we terminate PPP ourselves, so ACCM and
        # hardware error counts mean nothing here): parsed, acknowledged, ignored.
        self.stats["ignored"] += 1

    # -- teardown ----------------------------------------------------------------------------------------

    def _sessions_down(self, why):
        for sess in list(self.sessions.values()):
            self._forget_session(sess)
            self._emit(SessionDown(self.local_tunnel_id, sess.local_id, None, why))

    def _report_down(self, result, error, why):
        if self.down:
            return
        self.down = True
        self._sessions_down("tunnel down: " + why)
        self._emit(TunnelDown(self.local_tunnel_id, result, error, why))

    def _stop(self, now, result, error, why):
        """Send StopCCN (RFC 2661 6.4) and keep retransmitting it until acknowledged."""
        self.stop_result = (result, error, why)
        if self.peer_tunnel_id:
            self._send_tunnel(M.STOPCCN, [
                (A.ASSIGNED_TUNNEL_ID, self.local_tunnel_id),
                (A.RESULT_CODE, (result, error, why[:128] if why else None)),
            ], now)
        else:
            self.channel.unacked = []  # the peer never told us its tunnel id: nothing to wait for
            self.channel.waiting = []
        self.state = CLOSING
        self.hello_at = None
        self._report_down(result, error, why)
        if self.channel.idle():
            self._finish()

    def _stopped(self, now, rc):
        """The peer sent StopCCN: acknowledge at once, hold state to re-ack (RFC 2661 5.7)."""
        result, error, text = rc if rc is not None else (None, None, None)
        if text:
            text = safe_text(text, 128)
        why = text or "the peer closed the tunnel (result %s)" % result
        self.stop_result = (result, error, why)
        self.channel.send_zlb()
        self.channel.unacked = []  # nothing we sent matters any more
        self.channel.waiting = []
        self.channel.rtx_at = None
        self.state = CLOSING
        self.hello_at = None
        self.close_at = now + self.config.stop_hold
        self._report_down(result, error, why)

    def _dead(self, why):
        if self.state == WAIT_CTL_REPLY:
            why = "no reply to SCCRQ: " + why
        elif self.state == WAIT_CTL_CONN:
            why = "no SCCCN after our SCCRP: " + why
        elif self.state == ESTABLISHED:
            why = "the peer stopped answering: " + why
        self._report_down(None, None, why)
        self._finish()

    def _finish(self):
        self.state = CLOSED
        self.hello_at = self.close_at = None
        self.channel.rtx_at = self.channel.ack_at = None


_HANDLERS = {
    M.SCCRQ: Tunnel._on_sccrq,
    M.SCCRP: Tunnel._on_sccrp,
    M.SCCCN: Tunnel._on_scccn,
    M.STOPCCN: Tunnel._on_stopccn,
    M.HELLO: Tunnel._on_hello,
    M.ICRQ: Tunnel._on_icrq,
    M.ICRP: Tunnel._on_icrp,
    M.ICCN: Tunnel._on_iccn,
    M.CDN: Tunnel._on_cdn,
    M.OCRQ: Tunnel._on_ocrq,
    M.OCRP: Tunnel._on_ignored,
    M.OCCN: Tunnel._on_ignored,
    M.WEN: Tunnel._on_ignored,
    M.SLI: Tunnel._on_ignored,
}
