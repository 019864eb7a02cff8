"""From PPP's credential checks to Access-Requests, and from Access replies to PPP verdicts.

Theory of operation: the server's PppLink (with ``external_auth``) emits VerifyCredentials(method, username,
password | ident, challenge, response). ``access_request_attrs`` turns it into the attributes of an
Access-Request (RFC 2865 5.2 User-Password for PAP; 5.3 CHAP-Password and 5.40 CHAP-Challenge for CHAP-MD5;
RFC 2548 2.3.2 MS-CHAP-Challenge and 2.3.2 MS-CHAP2-Response for MS-CHAPv2), plus what identifies the NAS and
the session. ``access_verdict`` reads an Access-Accept/Reject (an Access-Challenge is a reject for PPP: we
have no way to put a second question to the user) into the keyword arguments of PppLink.auth_result and
the session limits: Framed-IP-Address, Session-Timeout, Idle-Timeout, Acct-Interim-Interval, Class (to echo
in accounting, RFC 2865 5.25), Reply-Message (printable only). ``accounting_attrs`` builds Start,
Interim-Update and Stop (RFC 2866 5) with octets split into the 32-bit counter and Gigawords (RFC 2869 5.1).
"""

from sluice.radius import packet as P


def nas_attrs(nas_identifier=None, nas_ip=None, nas_port=None, calling_station=None):
    """The attributes that say which NAS and port a request comes from (RFC 2865 5.4, 5.5, 5.31, 5.32, 5.41)."""
    out = []
    if nas_identifier:
        out.append(P.attr_str(P.NAS_IDENTIFIER, nas_identifier))
    if nas_ip:
        out.append(P.attr_ip(P.NAS_IP_ADDRESS, nas_ip))
    if not nas_identifier and not nas_ip:
        raise P.RadiusError("a request needs NAS-Identifier or NAS-IP-Address (RFC 2865 4.1)")
    if nas_port is not None:
        out.append(P.attr_int(P.NAS_PORT, nas_port))
    out.append(P.attr_int(P.NAS_PORT_TYPE, P.NAS_PORT_VIRTUAL))
    if calling_station:
        out.append(P.attr_str(P.CALLING_STATION_ID, calling_station))
    return out


def access_request_attrs(cred, nas):
    """Access-Request attributes for a VerifyCredentials `cred`; `nas` from nas_attrs()."""
    user = cred.username.encode()
    if not 0 < len(user) <= 253:
        raise P.RadiusError("User-Name must be 1..253 octets")
    out = [(P.USER_NAME, user)]
    if cred.method == "pap":
        out.append((P.USER_PASSWORD, cred.password))  # hidden by packet.encode_request
    elif cred.method == "chap":
        # RFC 2865 5.3: CHAP Ident then the 16-octet response; 5.40: the challenge we sent.
        out.append((P.CHAP_PASSWORD, bytes((cred.ident & 0xFF,)) + cred.response))
        out.append((P.CHAP_CHALLENGE, cred.challenge))
    elif cred.method == "mschapv2":
        # RFC 2548 2.3.2: MS-CHAP2-Response = Ident, Flags, Peer-Challenge(16), Reserved(8), Response(24);
        # the PPP Response Value is Peer-Challenge, 8 reserved, NT-Response, Flags (RFC 2759 4).
        v = cred.response
        out.append(P.vsa(P.VENDOR_MICROSOFT, P.MS_CHAP_CHALLENGE, cred.challenge))
        out.append(P.vsa(P.VENDOR_MICROSOFT, P.MS_CHAP2_RESPONSE,
                         bytes((cred.ident & 0xFF, v[48])) + v[0:16] + v[16:24] + v[24:48]))
    else:
        raise P.RadiusError("unknown method %r" % (cred.method,))
    out.append(P.attr_int(P.SERVICE_TYPE, P.SERVICE_FRAMED))
    out.append(P.attr_int(P.FRAMED_PROTOCOL, P.FRAMED_PPP))
    return out + list(nas)


class AccessVerdict:
    """What an Access reply means for the session."""

    __slots__ = ("question", "ok", "reason", "authenticator_response", "message", "address", "session_timeout",
                 "idle_timeout", "interim_interval", "class_", "reply_message")

    def __init__(self, question=None):
        self.question = question  # the VerifyCredentials this answers (PppLink.auth_result checks it)
        self.ok = False  # Access-Accept (and, for MS-CHAPv2, an MS-CHAP2-Success came with it)
        self.reason = None  # plain words when not ok, for PppLink.auth_result and the log
        self.authenticator_response = None  # MS-CHAPv2: "S=<40 hex>" from MS-CHAP2-Success
        self.message = None  # MS-CHAPv2 failure: the MS-CHAP-Error text "E=..." (bytes), passed to the peer
        self.address = None  # Framed-IP-Address 'a.b.c.d' (None: from our pool; 255.255.255.254 means pool too)
        self.session_timeout = None  # seconds, Session-Timeout (RFC 2865 5.27)
        self.idle_timeout = None  # seconds, Idle-Timeout (RFC 2865 5.28)
        self.interim_interval = None  # seconds, Acct-Interim-Interval (RFC 2869 5.16)
        self.class_ = []  # Class values to echo in accounting (RFC 2865 5.25)
        self.reply_message = None  # Reply-Message, printable, for the log

    def auth_result_kwargs(self):
        """Keyword arguments for PppLink.auth_result(now, **kwargs)."""
        return {"question": self.question, "ok": self.ok, "reason": self.reason, "authenticator_response": self.authenticator_response,
                "message": self.message, "address": self.address}

    def __repr__(self):
        return "AccessVerdict(ok=%r, reason=%r, address=%r, session_timeout=%r)" % (
            self.ok, self.reason, self.address, self.session_timeout)


def access_verdict(pkt, method, question=None):
    """An AccessVerdict for a verified reply `pkt` to an Access-Request made for `method` (for `question`)."""
    v = AccessVerdict(question)
    msgs = pkt.get_all(P.REPLY_MESSAGE)
    if msgs:
        v.reply_message = P.printable(b" ".join(msgs), 200)
    if pkt.code == P.ACCESS_REJECT:
        v.reason = "rejected by RADIUS" + (": " + v.reply_message if v.reply_message else "")
        err = pkt.get_vsa(P.VENDOR_MICROSOFT, P.MS_CHAP_ERROR)
        if method == "mschapv2" and err is not None and len(err) > 1:
            v.message = bytes(err[1:])  # RFC 2548 2.1.5: Ident, then the "E=..." string
        return v
    if pkt.code == P.ACCESS_CHALLENGE:
        v.reason = "RADIUS sent an Access-Challenge, which PPP cannot put to the user"
        return v
    if pkt.code != P.ACCESS_ACCEPT:
        v.reason = "RADIUS answered with code %d" % pkt.code
        return v
    try:
        ip = pkt.get_ip(P.FRAMED_IP_ADDRESS)
        v.session_timeout = pkt.get_int(P.SESSION_TIMEOUT)
        v.idle_timeout = pkt.get_int(P.IDLE_TIMEOUT)
        v.interim_interval = pkt.get_int(P.ACCT_INTERIM_INTERVAL)
    except ValueError as e:
        v.reason = "RADIUS Access-Accept with a malformed attribute: %s" % e
        return v
    # RFC 2865 5.8: 255.255.255.255 = the user chooses, 255.255.255.254 = the NAS chooses (our pool).
    if ip is not None and ip not in ("255.255.255.255", "255.255.255.254", "0.0.0.0"):
        v.address = ip
    v.class_ = pkt.get_all(P.CLASS)
    if method == "mschapv2":
        s = pkt.get_vsa(P.VENDOR_MICROSOFT, P.MS_CHAP2_SUCCESS)
        # RFC 2548 2.3.3: Ident, then "S=" and 40 hex digits.
        if s is None or len(s) < 43 or s[1:3] != b"S=":
            v.reason = "RADIUS accepted MS-CHAPv2 without a valid MS-CHAP2-Success"
            return v
        try:
            v.authenticator_response = bytes(s[1:43]).decode()
        except Exception:
            v.reason = "RADIUS MS-CHAP2-Success is not text"
            return v
    v.ok = True
    return v


def _octets(out, t_low, t_giga, n):
    out.append(P.attr_int(t_low, n & 0xFFFFFFFF))
    if n >> 32:
        out.append(P.attr_int(t_giga, n >> 32))


def accounting_attrs(status, session_id, username, nas, framed_ip=None, session_time=None, in_octets=0,
                     out_octets=0, in_packets=0, out_packets=0, terminate_cause=None, class_=(),
                     authentic=P.ACCT_AUTH_RADIUS, delay=0):
    """Accounting-Request attributes (RFC 2866 5). `status`: P.ACCT_START, P.ACCT_INTERIM or P.ACCT_STOP.
    Input is from the user towards us (RFC 2866 5.3), output is what we sent to the user."""
    out = [P.attr_int(P.ACCT_STATUS_TYPE, status), P.attr_str(P.ACCT_SESSION_ID, session_id),
           P.attr_str(P.USER_NAME, username), P.attr_int(P.ACCT_AUTHENTIC, authentic),
           P.attr_int(P.SERVICE_TYPE, P.SERVICE_FRAMED), P.attr_int(P.FRAMED_PROTOCOL, P.FRAMED_PPP),
           P.attr_int(P.ACCT_DELAY_TIME, int(delay))]
    if framed_ip:
        out.append(P.attr_ip(P.FRAMED_IP_ADDRESS, framed_ip))
    for c in class_:
        out.append((P.CLASS, c))
    if status != P.ACCT_START:
        out.append(P.attr_int(P.ACCT_SESSION_TIME, int(session_time or 0)))
        _octets(out, P.ACCT_INPUT_OCTETS, P.ACCT_INPUT_GIGAWORDS, in_octets)
        _octets(out, P.ACCT_OUTPUT_OCTETS, P.ACCT_OUTPUT_GIGAWORDS, out_octets)
        out.append(P.attr_int(P.ACCT_INPUT_PACKETS, in_packets))
        out.append(P.attr_int(P.ACCT_OUTPUT_PACKETS, out_packets))
    if status == P.ACCT_STOP and terminate_cause is not None:
        out.append(P.attr_int(P.ACCT_TERMINATE_CAUSE, terminate_cause))
    return out + list(nas)


class RadiusLogins:
    """Glue for the server endpoint: VerifyCredentials from PppLinks in, (key, AccessVerdict) out.

    ``ask(key, cred, now)`` sends the Access-Request on the RadiusClient `client` (whose events this drains:
    the endpoint reads verdicts here, not from the client); `key` is whatever the endpoint uses for the link.
    ``verdicts()`` returns the (key, AccessVerdict) pairs reached since the last call: a reply, an
    unreachable or refused RADIUS, or credentials RADIUS cannot carry; every ask gets exactly one unless
    ``forget(key)`` came first (the link went away)."""

    def __init__(self, client, nas_identifier=None, nas_ip=None):
        self.client = client
        self.nas_identifier = nas_identifier
        self.nas_ip = nas_ip
        self._asked = {}  # request handle -> (key, VerifyCredentials)
        self._done = []

    def ask(self, key, cred, now, nas_port=None, calling_station=None):
        try:
            nas = nas_attrs(self.nas_identifier, self.nas_ip, nas_port, calling_station)
            attrs = access_request_attrs(cred, nas)
        except ValueError as e:
            v = AccessVerdict(cred)
            v.reason = "cannot ask RADIUS: %s" % e
            self._done.append((key, v))
            return
        self._asked[self.client.request(P.ACCESS_REQUEST, attrs, now)] = (key, cred)

    def forget(self, key):
        for h, (k, _) in list(self._asked.items()):
            if k == key:
                del self._asked[h]
                self.client.cancel(h)

    def verdicts(self):
        for _ in range(10000):
            e = self.client.next_event()
            if e is None:
                break
            asked = self._asked.pop(e.handle, None)
            if asked is None:
                continue
            key, cred = asked
            if hasattr(e, "packet"):
                v = access_verdict(e.packet, cred.method, cred)
            else:
                v = AccessVerdict(cred)
                v.reason = e.reason
            self._done.append((key, v))
        out = self._done
        self._done = []
        return out
