"""RadiusSessions: accounting and the RADIUS-given limits of the server's sessions, as a sans-IO table.

Theory of operation. The server endpoint tells the table when a session starts (``start``, after IPCP is up:
Accounting Start, RFC 2866 5.1) and when it ends (``stop``, with the counters and an Acct-Terminate-Cause,
RFC 2866 5.10). In between, ``handle_timer(now, counters_of)`` sends Interim-Update every Acct-Interim-Interval
(RFC 2869 5.16; from the Access-Accept, else the configured default, never below 60 s) and enforces the
limits RADIUS gave: Session-Timeout (RFC 2865 5.27) and Idle-Timeout (5.28). `counters_of(key)` returns the
session's (in_octets, out_octets, in_packets, out_packets), "in" being what the user sent us (RFC 2866 5.3):
idleness is seen as counters that did not move between two checks (checked every quarter of the
Idle-Timeout), so the data path needs no per-packet hook. A session past a limit comes out of
``expired()`` as (key, terminate cause, reason); the endpoint closes its PPP link and then calls ``stop``.

``find(identify(dae_request))`` maps a Disconnect/CoA request to sessions (RFC 5176 3: by Acct-Session-Id,
User-Name, Framed-IP-Address; every attribute given must match). ``set_session_timeout`` applies a CoA.

Accounting requests go through a RadiusClient (`acct`, or None for limits only); its outcomes are drained
here and failures come out of ``messages()`` as log lines. Acct-Session-Id is unique per NAS start: eight hex
digits drawn from `rng` at construction, then a counter.
"""

from sluice.radius import auth
from sluice.radius import packet as P

MIN_INTERIM = 60  # RFC 2869 5.16: SHOULD NOT be less than 60 seconds


class _Session:
    __slots__ = ("key", "session_id", "username", "framed_ip", "started", "class_", "interim", "next_interim",
                 "session_deadline", "idle_timeout", "next_idle_check", "last_counters", "last_active",
                 "authentic", "expired")

    def __init__(self, key, session_id, username, framed_ip, started):
        self.key = key
        self.session_id = session_id
        self.username = username
        self.framed_ip = framed_ip
        self.started = started
        self.class_ = []
        self.interim = None
        self.next_interim = None
        self.session_deadline = None
        self.idle_timeout = None
        self.next_idle_check = None
        self.last_counters = None
        self.last_active = started
        self.authentic = P.ACCT_AUTH_RADIUS
        self.expired = False


class RadiusSessions:
    """`acct`: a RadiusClient for accounting servers or None; `nas`: auth.nas_attrs(...)."""

    def __init__(self, acct, nas, rng, interim_default=None, max_sessions=65536):
        self.acct = acct
        self.nas = list(nas)
        self.interim_default = interim_default
        self.max_sessions = max_sessions
        self._boot = "".join("%02X" % b for b in rng(4))
        self._counter = 0
        self._sessions = {}  # key -> _Session
        self._expired = []
        self._messages = []
        self.stats = {"started": 0, "stopped": 0, "interim": 0, "acct_failed": 0, "session_timeouts": 0,
                      "idle_timeouts": 0}

    # -- API ---------------------------------------------------------------------------------------------

    def start(self, key, username, framed_ip, now, verdict=None, counters=None):
        """Session `key` is up (IPCP open). `verdict`: the AccessVerdict when RADIUS authenticated it (its
        limits and Class apply), None for a local user (accounted with Acct-Authentic Local). Returns the
        Acct-Session-Id."""
        if key in self._sessions or len(self._sessions) >= self.max_sessions:
            return None
        self._counter = (self._counter + 1) & 0xFFFFFFFF
        s = _Session(key, "%s%08X" % (self._boot, self._counter), username, framed_ip, now)
        interim = self.interim_default
        if verdict is not None:
            s.class_ = list(verdict.class_)
            if verdict.interim_interval:
                interim = verdict.interim_interval
            if verdict.session_timeout:
                s.session_deadline = now + verdict.session_timeout
            if verdict.idle_timeout:
                s.idle_timeout = verdict.idle_timeout
                s.next_idle_check = now + self._idle_step(s)
        else:
            s.authentic = P.ACCT_AUTH_LOCAL
        if interim:
            s.interim = max(MIN_INTERIM, interim)
            s.next_interim = now + s.interim
        s.last_counters = tuple(counters) if counters is not None else None
        self._sessions[key] = s
        self.stats["started"] += 1
        self._send(s, P.ACCT_START, now)
        return s.session_id

    def stop(self, key, now, counters, cause):
        """Session `key` ended: Accounting Stop with `counters` (in_octets, out_octets, in_packets,
        out_packets) and Acct-Terminate-Cause `cause` (packet.TERM_*)."""
        s = self._sessions.pop(key, None)
        if s is None:
            return
        self.stats["stopped"] += 1
        self._send(s, P.ACCT_STOP, now, counters, cause)

    def set_session_timeout(self, key, seconds, now):
        """A CoA's new Session-Timeout, counted from the start of the session (RFC 2865 5.27)."""
        s = self._sessions.get(key)
        if s is None:
            return False
        s.session_deadline = s.started + seconds if seconds else None
        return True

    def session_id(self, key):
        s = self._sessions.get(key)
        return s.session_id if s is not None else None

    def find(self, match):
        """Keys of the sessions a DAE request names (`match` from dae.identify); [] when it names none."""
        sid, user, ip = match.get("acct_session_id"), match.get("user_name"), match.get("framed_ip")
        if sid is None and user is None and ip is None:
            return []
        out = []
        for s in self._sessions.values():
            if sid is not None and s.session_id != sid:
                continue
            if user is not None and s.username != user:
                continue
            if ip is not None and s.framed_ip != ip:
                continue
            out.append(s.key)
        return out

    def get_timer(self):
        best = self.acct.get_timer() if self.acct is not None else None
        for s in self._sessions.values():
            if s.expired:
                continue
            for d in (s.next_interim, s.session_deadline, s.next_idle_check):
                if d is not None and (best is None or d < best):
                    best = d
        return best

    def handle_timer(self, now, counters_of):
        if self.acct is not None:
            self.acct.handle_timer(now)
        for key in sorted(self._sessions, key=lambda k: self._sessions[k].session_id):
            s = self._sessions[key]
            if s.expired:
                continue
            if s.session_deadline is not None and now >= s.session_deadline:
                s.expired = True
                self.stats["session_timeouts"] += 1
                self._expired.append((key, P.TERM_SESSION_TIMEOUT, "Session-Timeout from RADIUS reached (%d s)" % (
                    int(s.session_deadline - s.started))))
                continue
            if s.next_idle_check is not None and now >= s.next_idle_check:
                c = tuple(counters_of(key))
                if s.last_counters is None or c != s.last_counters:
                    s.last_active = now
                    s.last_counters = c
                if now - s.last_active >= s.idle_timeout:
                    s.expired = True
                    self.stats["idle_timeouts"] += 1
                    self._expired.append((key, P.TERM_IDLE_TIMEOUT, "Idle-Timeout from RADIUS reached (no traffic "
                                                                    "for %d s)" % s.idle_timeout))
                    continue
                s.next_idle_check = min(now + self._idle_step(s), s.last_active + s.idle_timeout)
            if s.next_interim is not None and now >= s.next_interim:
                s.next_interim = now + s.interim
                self.stats["interim"] += 1
                self._send(s, P.ACCT_INTERIM, now, counters_of(key))
        self._drain()

    def expired(self):
        """[(key, terminate cause, reason)] of sessions past a RADIUS limit, once each; close them, then stop()."""
        out = self._expired
        self._expired = []
        return out

    def messages(self):
        """Log lines (accounting failures) since the last call."""
        self._drain()
        out = self._messages
        self._messages = []
        return out

    def __len__(self):
        return len(self._sessions)

    # -- internals ---------------------------------------------------------------------------------------

    def _idle_step(self, s):
        return max(1.0, s.idle_timeout / 4.0)

    def _send(self, s, status, now, counters=None, cause=None):
        if self.acct is None:
            return
        c = tuple(counters) if counters is not None else (0, 0, 0, 0)
        attrs = auth.accounting_attrs(status, s.session_id, s.username, self.nas, s.framed_ip,
                                      int(now - s.started), c[0], c[1], c[2], c[3], cause, s.class_, s.authentic)
        self.acct.request(P.ACCOUNTING_REQUEST, attrs, now)
        self._drain()

    def _drain(self):
        if self.acct is None:
            return
        for _ in range(10000):
            e = self.acct.next_event()
            if e is None:
                return
            if not hasattr(e, "packet"):
                self.stats["acct_failed"] += 1
                self._messages.append("accounting record lost: %s" % e.reason)
