"""PAP (RFC 1334 2): the peer sends Peer-ID and Password in the clear; the authenticator Acks or Naks.

Theory of operation: the client (peer) retransmits Authenticate-Request on the restart timer until it gets
Authenticate-Ack/Nak or gives up after Max-Configure tries (RFC 1334 2.2.1). The server waits, bounded by the
same budget, answers each request, and repeats its verdict for a retransmitted request (its Ack may have
been lost). Results in ``result``: None, ('ok', username) or ('fail', reason).

External verdicts (``config.external_auth``): a user ``get_password`` does not know is put in ``ask`` (a
VerifyCredentials for the link to hand out) and the server waits, at most ``auth_wait`` seconds, for
``backend_verdict``; repeated requests meanwhile are ignored (the verdict goes out when it comes).
"""

from sluice.hal.crypto.digest import ct_equal
from sluice.ppp import events
from sluice.ppp.framing import PppError
from sluice.safe import NAME_LIMIT, safe_text

AUTH_REQ = 1
AUTH_ACK = 2
AUTH_NAK = 3


def build_request(peer_id, password):
    if len(peer_id) > 255 or len(password) > 255:
        raise PppError("PAP Peer-ID or Password longer than 255 octets")
    return bytes((len(peer_id),)) + peer_id + bytes((len(password),)) + password


def parse_request(data):
    """(peer_id, password) of an Authenticate-Request body (RFC 1334 2.2.1), every length checked."""
    if len(data) < 1:
        raise PppError("PAP request without Peer-ID Length")
    n = data[0]
    if 1 + n + 1 > len(data):
        raise PppError("PAP Peer-ID overruns the packet")
    peer_id = bytes(data[1:1 + n])
    m = data[1 + n]
    if 2 + n + m > len(data):
        raise PppError("PAP Password overruns the packet")
    return peer_id, bytes(data[2 + n:2 + n + m])


def build_reply(message):
    return bytes((len(message),)) + message


def parse_reply(data):
    if len(data) < 1 or 1 + data[0] > len(data):
        raise PppError("PAP reply Msg-Length overruns the packet")
    return bytes(data[1:1 + data[0]])


class PapServer:
    def __init__(self, config, send):
        self.config = config
        self.send = send
        self.result = None
        self.deadline = None
        self.verdict = None
        self.ask = None  # a VerifyCredentials the link hands to its owner
        self.awaiting = None  # (ident, username) while an external verdict is pending

    def start(self, now):
        self.deadline = now + self.config.restart_timer * (self.config.max_configure + 1)

    def timeout(self, now):
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            if self.awaiting is not None:
                ident, user = self.awaiting
                self.awaiting = None
                self.verdict = (AUTH_NAK, build_reply(b"Login incorrect"))
                self.send(AUTH_NAK, ident, self.verdict[1])
                self.result = ("fail", "no verdict for user %s from the authentication backend in %d s" % (
                    user, self.config.auth_wait))
                return
            self.result = ("fail", "the peer sent no PAP Authenticate-Request")

    def backend_verdict(self, now, ok, reason=None, authenticator_response=None, message=None):
        """The owner's verdict on the credentials in `ask` (PppLink.auth_result)."""
        ident, username = self.awaiting
        self.awaiting = None
        self.deadline = None
        self.verdict = (AUTH_ACK, build_reply(b"Login ok")) if ok else (AUTH_NAK, build_reply(b"Login incorrect"))
        self.send(self.verdict[0], ident, self.verdict[1])
        self.result = ("ok", username) if ok else (
            "fail", "authentication failed for user %s (%s)" % (username, reason or "rejected"))

    def packet(self, code, ident, data, now):
        if code != AUTH_REQ:
            raise PppError("PAP code %d is not for the authenticator" % code)
        peer_id, password = parse_request(data)
        if self.verdict is not None:
            self.send(self.verdict[0], ident, self.verdict[1])
            return
        if self.awaiting is not None:
            self.awaiting = (ident, self.awaiting[1])  # answer the latest copy when the verdict comes
            return
        try:
            username = peer_id.decode()
        except Exception:
            raise PppError("PAP Peer-ID is not UTF-8")
        want = self.config.get_password(username) if self.config.get_password else None
        if want is None and self.config.external_auth:
            self.awaiting = (ident, username)
            self.ask = events.VerifyCredentials("pap", username, password=password)
            self.deadline = now + self.config.auth_wait
            return
        ok = want is not None and ct_equal(password, want.encode())
        self.verdict = (AUTH_ACK, build_reply(b"Login ok")) if ok else (AUTH_NAK, build_reply(b"Login incorrect"))
        self.send(self.verdict[0], ident, self.verdict[1])
        self.deadline = None
        if ok:
            self.result = ("ok", safe_text(username, NAME_LIMIT))
        else:
            why = "unknown user" if want is None else "wrong password"
            self.result = ("fail", "authentication failed for user %s (%s)" % (safe_text(username), why))


class PapClient:
    def __init__(self, config, rng, send):
        self.config = config
        self.send = send
        self.result = None
        self.deadline = None
        self.ident = rng(1)[0]
        self.tries = 0

    def start(self, now):
        self._request(now)

    def _request(self, now):
        self.ident = (self.ident + 1) & 0xFF
        self.tries += 1
        self.deadline = now + self.config.restart_timer
        cfg = self.config
        self.send(AUTH_REQ, self.ident, build_request((cfg.username or "").encode(), (cfg.password or "").encode()))

    def timeout(self, now):
        if self.deadline is None or now < self.deadline:
            return
        if self.tries >= self.config.max_configure:
            self.deadline = None
            self.result = ("fail", "the server did not answer %d PAP requests" % self.tries)
            return
        self._request(now)

    def packet(self, code, ident, data, now):
        if code not in (AUTH_ACK, AUTH_NAK):
            raise PppError("PAP code %d is not for the peer" % code)
        if ident != self.ident:
            raise PppError("PAP reply to a request we did not send")
        msg = parse_reply(data)
        self.deadline = None
        if code == AUTH_ACK:
            self.result = ("ok", self.config.username)
        else:
            try:
                text = msg.decode()
            except Exception:
                text = ""
            self.result = ("fail", "the server rejected user %s: wrong user name or password%s"
                           % (self.config.username, " (%s)" % safe_text(text, 128) if text else ""))
