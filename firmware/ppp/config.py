"""PppConfig: what one PPP link may negotiate (docs/design.md, PPP). A plain class, MicroPython-friendly."""

AUTH_METHODS = ("mschapv2", "chap", "pap")
AUTH_NAMES = {"mschapv2": "MS-CHAPv2", "chap": "CHAP-MD5", "pap": "PAP"}


class PppConfig:
    """Settings for one PppLink. `auth` is the server's preference order and the client's allowed list."""

    __slots__ = ("mru", "auth", "username", "password", "get_password", "assign_address", "local_ip", "dns",
                 "nbns", "echo_interval", "echo_failure", "ipv6", "restart_timer", "max_configure",
                 "max_failure", "max_terminate", "server_name", "external_auth", "auth_wait")

    def __init__(self, mru=1400, auth=AUTH_METHODS, username=None, password=None, get_password=None,
                 assign_address=None, local_ip=None, dns=None, nbns=None, echo_interval=30, echo_failure=4,
                 ipv6=False, restart_timer=3.0, max_configure=10, max_failure=5, max_terminate=2,
                 server_name="sluice", external_auth=False, auth_wait=30.0):
        for a in auth:
            if a not in AUTH_METHODS:
                raise ValueError("unknown PPP auth method %r (allowed: mschapv2, chap, pap)" % (a,))
        if not 128 <= mru <= 65535:
            raise ValueError("PPP mru %r is outside 128..65535" % (mru,))
        self.mru = mru
        self.auth = tuple(auth)
        self.username = username
        self.password = password
        self.get_password = get_password  # server: username -> password or None
        self.assign_address = assign_address  # server: username -> 'a.b.c.d' or None
        self.local_ip = local_ip
        self.dns = list(dns or [])
        self.nbns = list(nbns or [])
        self.echo_interval = echo_interval  # seconds between LCP Echo-Requests; 0 turns keepalive off
        self.echo_failure = echo_failure  # unanswered Echo-Requests before the peer is declared dead
        self.ipv6 = ipv6
        self.restart_timer = restart_timer  # RFC 1661 4.6
        self.max_configure = max_configure
        self.max_failure = max_failure
        self.max_terminate = max_terminate
        self.server_name = server_name  # CHAP Name field of our challenges
        # server: users get_password does not know are asked of the owner (events.VerifyCredentials, answered
        # by PppLink.auth_result) instead of failing; auth_wait bounds the wait for that verdict.
        self.external_auth = external_auth
        self.auth_wait = auth_wait

    def __repr__(self):
        # Never the password, not even its length.
        return "PppConfig(mru=%r, auth=%r, username=%r, local_ip=%r, dns=%r, ipv6=%r)" % (
            self.mru, self.auth, self.username, self.local_ip, self.dns, self.ipv6)
