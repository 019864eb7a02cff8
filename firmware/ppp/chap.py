"""CHAP (RFC 1994) with MD5 (algorithm 5) and MS-CHAPv2 (algorithm 0x81, RFC 2759), both sides.

Theory of operation: the authenticator (server) sends Challenge(id, value, name); the peer (client) answers
Response(id, value, name); the authenticator answers Success or Failure with the same id (RFC 1994 4.1). The
server retransmits its Challenge on the restart timer until a Response arrives (RFC 1994 4.1, "the
Challenge packet MUST be retransmitted"); a repeated Response after the verdict gets the same verdict again,
since Success/Failure can be lost. The client bounds its wait with an overall deadline; the server drives,
except that our Response is repeated on the restart timer until Success or Failure arrives: a lost Success
would otherwise leave us waiting while the server has moved on (the server repeats its verdict for a
repeated Response, as pppd does). Results are read from ``result``: None while running, ('ok', username) or
('fail', reason).

External verdicts (``config.external_auth``, server side): a user ``get_password`` does not know is put in
``ask`` (a VerifyCredentials with our challenge and the peer's response, for the link to hand out); the
server stops retransmitting its challenge and waits at most ``auth_wait`` seconds for ``backend_verdict``
(for MS-CHAPv2 a success carries the "S=..." authenticator response the backend computed, e.g. RADIUS's
MS-CHAP2-Success; a failure may carry the backend's MS-CHAPv2 error code, e.g. 648 password expired). A
repeated Response meanwhile is ignored; the verdict answers it.

Sans-IO: randomness (challenges) from the injected rng, time from ``now``, packets out via ``send``.
"""

from sluice.hal.crypto import digest
from sluice.hal.crypto.digest import ct_equal
from sluice.ppp import events, mschapv2
from sluice.ppp.framing import PppError
from sluice.safe import NAME_LIMIT, safe_text

CHALLENGE = 1
RESPONSE = 2
SUCCESS = 3
FAILURE = 4

MD5 = 5
MSCHAPV2 = 0x81


def md5_response(ident, secret, challenge):
    """RFC 1994 2: MD5 over Identifier, secret and challenge."""
    return digest.md5(bytes((ident & 0xFF,)) + secret + challenge)


def build_challenge(value, name):
    """Value-Size, Value, Name (RFC 1994 4.1); the same layout serves Response."""
    if len(value) > 255:
        raise PppError("CHAP value too long")
    return bytes((len(value),)) + value + name


def parse_challenge(data):
    """(value, name) of a Challenge or Response body; PppError when Value-Size overruns."""
    if len(data) < 1:
        raise PppError("CHAP packet without Value-Size")
    n = data[0]
    if n < 1 or 1 + n > len(data):
        raise PppError("CHAP Value-Size %d does not fit the packet" % n)
    return bytes(data[1:1 + n]), bytes(data[1 + n:])


def _decode_name(raw):
    try:
        return raw.decode()
    except Exception:
        raise PppError("user name is not UTF-8")


class ChapServer:
    """The authenticator side for one link."""

    def __init__(self, algorithm, config, rng, send):
        self.algorithm = algorithm
        self.config = config
        self.rng = rng
        self.send = send  # send(code, ident, data)
        self.result = None
        self.deadline = None
        self.ident = rng(1)[0]
        self.challenge = b""
        self.tries = 0
        self.verdict = None  # (code, ident, message) sent, repeated on a duplicate Response
        self.username = None
        self.ask = None  # a VerifyCredentials the link hands to its owner
        self.awaiting = None  # the Response's ident while an external verdict is pending

    def start(self, now):
        self._challenge(now)

    def _challenge(self, now):
        self.ident = (self.ident + 1) & 0xFF
        # RFC 1994 2.3: challenges must be fresh and unpredictable; MS-CHAPv2 fixes 16 octets (RFC 2759 3).
        self.challenge = self.rng(16)
        self.tries += 1
        self.deadline = now + self.config.restart_timer
        self.send(CHALLENGE, self.ident, build_challenge(self.challenge, self.config.server_name.encode()))

    def timeout(self, now):
        if self.deadline is None or now < self.deadline:
            return
        if self.awaiting is not None:
            self.deadline = None
            self._verdict(False, None, None)
            self.result = ("fail", "no verdict for user %s from the authentication backend in %d s" % (
                self.username, self.config.auth_wait))
            return
        if self.tries >= self.config.max_configure:
            self.deadline = None
            self.result = ("fail", "the peer did not answer %d CHAP challenges" % self.tries)
            return
        self._challenge(now)

    def backend_verdict(self, now, ok, reason=None, authenticator_response=None, message=None):
        """The owner's verdict on the credentials in `ask` (PppLink.auth_result)."""
        self.deadline = None
        if ok and self.algorithm == MSCHAPV2 and not _is_auth_response(authenticator_response):
            ok = False
            reason = "the backend accepted MS-CHAPv2 but sent no authenticator response (MS-CHAP2-Success)"
        self._verdict(ok, authenticator_response, message)
        self.result = ("ok", self.username) if ok else (
            "fail", "authentication failed for user %s (%s)" % (self.username, reason or "rejected"))

    def _verdict(self, ok, authenticator_response, message):
        ident = self.awaiting
        self.awaiting = None
        if self.algorithm == MD5:
            msg = b"Access granted" if ok else b"Authentication failure"
        elif ok:
            msg = mschapv2.success_message("S=" + authenticator_response[2:].upper())
        else:
            # The backend's error code (RADIUS MS-CHAP-Error "E=648 ...", password expired) in our own Failure
            # text: R=0 and our challenge, since this link offers no retry.
            msg = mschapv2.failure_message(self.challenge, _failure_code(message))
        self.verdict = (SUCCESS if ok else FAILURE, ident, msg)
        self.send(*self.verdict)

    def packet(self, code, ident, data, now):
        if code != RESPONSE:
            raise PppError("CHAP code %d is not for the authenticator" % code)
        if ident != self.ident:
            raise PppError("CHAP Response for an old challenge")
        if self.verdict is not None:
            self.send(*self.verdict)  # RFC 1994 4.2: our Success/Failure was lost
            return
        if self.awaiting is not None:
            return  # the backend is deciding; its verdict answers this copy too
        value, name = parse_challenge(data)
        username = _decode_name(name)
        password = self.config.get_password(username) if self.config.get_password else None
        if password is None and self.algorithm == MSCHAPV2 and "\\" in username:
            password = self.config.get_password(username[username.rfind("\\") + 1:])
        if password is None and self.config.external_auth:
            if self.algorithm == MD5:
                if len(value) != 16:
                    raise PppError("CHAP-MD5 Response Value is %d octets, not 16" % len(value))
            else:
                mschapv2.parse_response_value(value)  # length check before it leaves the link
            self.username = safe_text(username, NAME_LIMIT)
            self.awaiting = ident
            self.ask = events.VerifyCredentials("chap" if self.algorithm == MD5 else "mschapv2", username,
                                                ident=ident, challenge=self.challenge, response=value)
            self.deadline = now + self.config.auth_wait
            return
        self.username = safe_text(username, NAME_LIMIT)
        self.deadline = None
        if self.algorithm == MD5:
            ok = password is not None and ct_equal(value, md5_response(ident, password.encode(), self.challenge))
            msg = b"Access granted" if ok else b"Authentication failure"
        else:
            peer_challenge, nt_response = mschapv2.parse_response_value(value)
            ok = False
            if password is not None:
                want = mschapv2.generate_nt_response(self.challenge, peer_challenge, username, password)
                ok = ct_equal(nt_response, want)
            if ok:
                msg = mschapv2.success_message(mschapv2.generate_authenticator_response(
                    password, nt_response, peer_challenge, self.challenge, username))
            else:
                msg = mschapv2.failure_message(self.challenge)
        self.verdict = (SUCCESS if ok else FAILURE, ident, msg)
        self.send(*self.verdict)
        if ok:
            self.result = ("ok", self.username)  # peer-chosen text (a DOMAIN\ prefix): made safe for logs
        else:
            why = "unknown user" if password is None else "wrong password"
            self.result = ("fail", "authentication failed for user %s (%s)" % (safe_text(username), why))


def _is_auth_response(text):
    if not isinstance(text, str) or len(text) != 42 or text[:2] != "S=":
        return False
    for ch in text[2:]:
        if ch not in "0123456789ABCDEFabcdef":
            return False
    return True


def _failure_code(message):
    """The E= error code of an MS-CHAPv2 failure text (RFC 2759 6) if it is a plain 3-digit number, else 691."""
    if message is None or len(message) < 5 or message[:2] != b"E=":
        return 691
    code = bytes(message[2:5])
    if (len(message) > 5 and message[5] != 0x20) or not all(0x30 <= b <= 0x39 for b in code):
        return 691
    return int(code)


class ChapClient:
    """The peer side: answers challenges with the configured username/password."""

    def __init__(self, algorithm, config, rng, send):
        self.algorithm = algorithm
        self.config = config
        self.rng = rng
        self.send = send
        self.result = None
        self.deadline = None
        self.answered = None  # (ident, response data) of our last Response
        self.expected = None  # MS-CHAPv2: the "S=..." the server must return
        self.give_up = None
        self.resend_at = None
        self.resent = 0

    def start(self, now):
        # The server drives; we only bound the wait (RFC 1994 leaves the peer's patience to us).
        self.give_up = now + self.config.restart_timer * (self.config.max_configure + 1)
        self.deadline = self.give_up

    def timeout(self, now):
        if self.give_up is not None and now >= self.give_up:
            self.deadline = self.give_up = self.resend_at = None
            self.result = ("fail", "the server did not finish CHAP authentication in time")
            return
        if self.resend_at is not None and now >= self.resend_at and self.answered is not None:
            self.resent += 1
            self.send(RESPONSE, self.answered[0], self.answered[1])
            self.resend_at = now + self.config.restart_timer if self.resent < self.config.max_configure else None
        self.deadline = self.resend_at if self.resend_at is not None and self.resend_at < self.give_up \
            else self.give_up

    def packet(self, code, ident, data, now):
        cfg = self.config
        if code == CHALLENGE:
            value, _ = parse_challenge(data)
            if self.answered is not None and self.answered[0] == ident:
                self.send(RESPONSE, ident, self.answered[1])  # a retransmitted Challenge
                return
            user = (cfg.username or "").encode()
            password = cfg.password or ""
            if self.algorithm == MD5:
                body = build_challenge(md5_response(ident, password.encode(), value), user)
            else:
                if len(value) != 16:
                    raise PppError("MS-CHAPv2 challenge is %d octets, not 16" % len(value))
                peer_challenge = self.rng(16)
                nt = mschapv2.generate_nt_response(value, peer_challenge, cfg.username or "", password)
                self.expected = mschapv2.generate_authenticator_response(
                    password, nt, peer_challenge, value, cfg.username or "")
                body = build_challenge(mschapv2.build_response_value(peer_challenge, nt), user)
            self.answered = (ident, body)
            self.send(RESPONSE, ident, body)
            self.resend_at = now + cfg.restart_timer
            self.deadline = min(self.resend_at, self.give_up) if self.give_up is not None else self.resend_at
        elif code == SUCCESS:
            if self.answered is None or ident != self.answered[0]:
                raise PppError("CHAP Success for a response we did not send")
            if self.algorithm == MSCHAPV2 and not mschapv2.check_success(data, self.expected):
                # RFC 2759 5: the peer MUST verify the authenticator response.
                self.result = ("fail", "the server's MS-CHAPv2 authenticator response did not verify: it does not "
                                       "know our password (wrong server, or a man in the middle)")
            else:
                self.result = ("ok", cfg.username)
            self.deadline = self.give_up = self.resend_at = None
        elif code == FAILURE:
            if self.answered is None or ident != self.answered[0]:
                raise PppError("CHAP Failure for a response we did not send")
            detail = ""
            if self.algorithm == MSCHAPV2:
                f = mschapv2.parse_failure(data)
                if "E" in f:
                    text = ": " + safe_text(f["M"], 128) if f.get("M") else ""
                    detail = " (error %s%s)" % (safe_text(f["E"], 8), text)
            self.result = ("fail", "the server rejected user %s: wrong user name or password%s"
                           % (cfg.username, detail))
            self.deadline = self.give_up = self.resend_at = None
        else:
            raise PppError("CHAP code %d is not for the peer" % code)
