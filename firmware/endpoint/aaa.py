"""The server's AAA: RADIUS logins, accounting, RADIUS-given limits and Disconnect/CoA, with no IO.

Theory of operation. `Aaa` composes the sans-IO pieces of `sluice.radius` (an authentication RadiusClient,
an accounting one, the DAE listener, `RadiusLogins`, `RadiusSessions`) behind the few calls the server
endpoint makes: `ask` (a PPP link's VerifyCredentials), `verdicts`, `started`/`stopped` (accounting), and
`handle_timer` (retransmissions, Interim-Update, Session-/Idle-Timeout). RADIUS datagrams come in through
`datagram_received(which, data, src, now)` and go out as `SendRadius` actions; `which` names the socket:
'auth', 'acct' or 'dae'. Server addresses are resolved by the engine before they get here.

Local users never reach RADIUS: the PPP link asks only for users it does not know (`external_auth`).
"""

from sluice.endpoint import actions as A
from sluice.radius import packet as P
from sluice.radius.auth import RadiusLogins, nas_attrs
from sluice.radius.client import RadiusClient, RadiusServer
from sluice.radius.dae import DaeListener, identify
from sluice.radius.sessions import RadiusSessions


class SendRadius(A.Action):
    """One RADIUS datagram out of the named socket ('auth', 'acct' or 'dae') to `dst` (ip, port)."""

    __slots__ = ("which", "dst", "data")
    kind = "send_radius"

    def __init__(self, which, dst, data):
        self.which = which
        self.dst = dst
        self.data = data


class Aaa:
    def __init__(self, auth_servers, acct_servers, secret, nas_id, nas_ip, rng, queue, dae_clients=None):
        self.q = queue
        self.auth = RadiusClient([RadiusServer(s, secret) for s in auth_servers], rng,
                                 kind="RADIUS authentication") if auth_servers else None
        self.acct = RadiusClient([RadiusServer(s, secret) for s in acct_servers], rng,
                                 kind="RADIUS accounting") if acct_servers else None
        self.dae = DaeListener(dict((h, secret) for h in dae_clients)) if dae_clients else None
        self.logins = RadiusLogins(self.auth, nas_id, nas_ip) if self.auth is not None else None
        self.sessions = RadiusSessions(self.acct, nas_attrs(nas_id, nas_ip), rng)
        self.verdict_of = {}  # session key -> AccessVerdict (RADIUS users only)

    # -- logins --------------------------------------------------------------------------------------------

    def ask(self, key, cred, now, nas_port, calling_station):
        if self.logins is None:
            return False
        self.logins.ask(key, cred, now, nas_port=nas_port, calling_station=calling_station)
        self._flush()
        return True

    def verdicts(self):
        if self.logins is None:
            return []
        out = self.logins.verdicts()
        for key, v in out:
            if v.ok:
                self.verdict_of[key] = v
        return out

    def forget(self, key):
        if self.logins is not None:
            self.logins.forget(key)
        self.verdict_of.pop(key, None)

    # -- accounting ----------------------------------------------------------------------------------------

    def started(self, key, username, ip, now, counters):
        sid = self.sessions.start(key, username, ip, now, self.verdict_of.get(key), counters)
        self._flush()
        return sid

    def stopped(self, key, now, counters, cause):
        self.sessions.stop(key, now, counters, cause)
        self.verdict_of.pop(key, None)
        self._flush()

    # -- input and timers ----------------------------------------------------------------------------------

    def datagram_received(self, which, data, src, now):
        m = {"auth": self.auth, "acct": self.acct, "dae": self.dae}.get(which)
        if m is not None:
            m.datagram_received(data, src, now)
            self._flush()

    def get_timer(self):
        best = None
        for m in (self.auth, self.dae):
            d = m.get_timer() if m is not None else None
            if d is not None and (best is None or d < best):
                best = d
        d = self.sessions.get_timer()
        if d is not None and (best is None or d < best):
            best = d
        return best

    def handle_timer(self, now, counters_of):
        if self.auth is not None:
            self.auth.handle_timer(now)
        if self.dae is not None:
            self.dae.handle_timer(now)
        self.sessions.handle_timer(now, counters_of)
        self._flush()

    def expired(self):
        return self.sessions.expired()

    def dae_requests(self):
        """[(ref, kind, keys)] of Disconnect/CoA requests and the sessions they name."""
        out = []
        if self.dae is None:
            return out
        for _ in range(64):
            e = self.dae.next_event()
            if e is None:
                break
            out.append((e.ref, e.kind, e.packet, self.sessions.find(identify(e.packet))))
        return out

    def answer(self, ref, ok, error_cause, now):
        self.dae.answer(ref, ok, error_cause, now)
        self._flush()

    def _flush(self):
        for which, m in (("auth", self.auth), ("acct", self.acct), ("dae", self.dae)):
            if m is not None:
                for dst, data in m.datagrams_to_send():
                    self.q.add(SendRadius(which, dst, data))
        for line in self.sessions.messages():
            self.q.log("warning", "%s", line)

    def status(self):
        st = {"sessions": len(self.sessions), "accounting": dict(self.sessions.stats)}
        if self.auth is not None:
            st["auth"] = self.auth.status()
        if self.dae is not None:
            st["dae"] = dict(self.dae.stats)
        return st


TERM_USER_REQUEST = P.TERM_USER_REQUEST
TERM_LOST_CARRIER = P.TERM_LOST_CARRIER
TERM_ADMIN_RESET = P.TERM_ADMIN_RESET
TERM_NAS_REBOOT = P.TERM_NAS_REBOOT
TERM_SESSION_TIMEOUT = P.TERM_SESSION_TIMEOUT
ERR_SESSION_NOT_FOUND = P.ERR_SESSION_NOT_FOUND
ERR_UNSUPPORTED_ATTRIBUTE = P.ERR_UNSUPPORTED_ATTRIBUTE
SESSION_TIMEOUT = P.SESSION_TIMEOUT
