"""PppLink: one PPP link over an L2TP session, from LCP to IPCP/IPv6CP, as a sans-IO machine.

Theory of operation (RFC 1661 3.2, the phase diagram):

    Dead --open--> Establish --LCP Opened--> Authenticate --ok--> Network --IPCP Opened--> (IpUp)
      ^                |                          |                  |
      +----- LCP tlf --+---------- Terminate <----+--- close/fail ---+

L2TP has already brought the lower layer up, so ``open(now)`` sends LCP's Up and Open together. LCP, IPCP and
IPv6CP are each an Fsm (RFC 1661 4) with an option handler; PAP/CHAP/MS-CHAPv2 run between LCP Opened and the
network phase. Packets of a protocol that is not yet allowed are dropped silently (RFC 1661 3.4, 3.5);
packets of a protocol we do not run (CCP, which Windows sends for MPPE; IPv6CP when IPv6 is off; anything
unknown) get an LCP Protocol-Reject once LCP is Opened (RFC 1661 5.7). LCP Echo keepalive (5.8) runs in
Opened: ``echo_failure`` unanswered requests in a row end the link.

Authentication by the owner (server, ``config.external_auth``): credentials of a user ``get_password`` does
not know come out as a VerifyCredentials event and the authenticator waits (bounded by ``auth_wait``);
the owner answers with ``auth_result(now, question, ok, ...)`` (for MS-CHAPv2 with the authenticator response, for
RADIUS the MS-CHAP2-Success value, and optionally the address to assign, e.g. Framed-IP-Address). Local
users are checked in the link as before.

Inputs: ``open(now)``, ``frame_received(frame, now)``, ``close(now, reason)``, ``handle_timer(now)``,
``auth_result(now, question, ok, ...)``.
Outputs, pulled: ``frames_to_send()`` (each FF 03 + 2-octet protocol), ``next_event()``, ``get_timer()``.
Malformed frames are counted in ``stats['malformed']`` and dropped; nothing from the wire raises.
"""

from sluice.ppp import chap, events, fsm, pap
from sluice.ppp.framing import (PROTO_CHAP, PROTO_IP, PROTO_IPCP, PROTO_IPV6, PROTO_IPV6CP, PROTO_LCP,
                                PROTO_NAMES, PROTO_PAP, build_frame, ip_to_bytes, p16, parse_packet, split)
from sluice.ppp.ipcp import IpcpOptions
from sluice.ppp.ipv6cp import Ipv6cpOptions
from sluice.ppp.lcp import ECHO_REQ, PROTOCOL_REJ, LcpOptions, auth_names
from sluice.safe import safe_text

DEAD = "dead"
ESTABLISH = "establish"
AUTHENTICATE = "authenticate"
NETWORK = "network"
TERMINATE = "terminate"

_MAX_REJECTED = 1000  # keeps a Protocol-Reject within any MRU we accept (RFC 1661 5.7)
_AUTH_PROTO = {"pap": PROTO_PAP, "chap": PROTO_CHAP, "mschapv2": PROTO_CHAP}


def _printable(data):
    return safe_text(bytes(data), 120)


class PppLink:
    """One PPP link; role is 'client' (authenticates itself, gets an address) or 'server'."""

    def __init__(self, role, config, rng):
        if role not in ("client", "server"):
            raise ValueError("PppLink role must be 'client' or 'server'")
        self.role = role
        self.config = config
        self.rng = rng
        self.phase = DEAD
        self._out = []
        self._events = []
        self.stats = {"rx_frames": 0, "tx_frames": 0, "malformed": 0, "discarded": 0, "protocol_rejects": 0,
                      "echo_sent": 0, "echo_replies": 0, "data_frames": 0}
        c = config
        self.lcp_opts = LcpOptions(role, config, rng, self)
        self.lcp = fsm.Fsm("LCP", self.lcp_opts, self, self._sender(PROTO_LCP), c.restart_timer, c.max_configure,
                           c.max_failure, c.max_terminate)
        self.lcp_opts.fsm = self.lcp
        self.ipcp_opts = IpcpOptions(role, config, self)
        self.ipcp = fsm.Fsm("IPCP", self.ipcp_opts, self, self._sender(PROTO_IPCP), c.restart_timer,
                            c.max_configure, c.max_failure, c.max_terminate)
        self.ipcp_opts.fsm = self.ipcp
        self.ipv6cp = None
        if c.ipv6:
            self.ipv6cp_opts = Ipv6cpOptions(config, rng)
            self.ipv6cp = fsm.Fsm("IPv6CP", self.ipv6cp_opts, self, self._sender(PROTO_IPV6CP), c.restart_timer,
                                  c.max_configure, c.max_failure, c.max_terminate)
            self.ipv6cp_opts.fsm = self.ipv6cp
        self.auth = None
        self.auth_method = None
        self.auth_done = False
        self.username = None
        self._assigned = None  # server: 4 octets from assign_address, False once it said None
        self.down_reason = None
        self.finished = False
        self.echo_deadline = None
        self.echo_outstanding = 0
        self.lcp_rx = 0

    def __repr__(self):
        return "PppLink(role=%r, phase=%r, lcp=%s)" % (self.role, self.phase, self.lcp.state_name())

    # -- API -------------------------------------------------------------------------------------------

    def open(self, now):
        """Start negotiating: L2TP's session is the lower layer, already up (RFC 1661 3.3)."""
        if self.phase != DEAD or self.finished:
            return
        self.phase = ESTABLISH
        self.lcp.open(now)
        self.lcp.up(now)
        self._settle(now)

    def close(self, now, reason="closed by the administrator", peer_text=b""):
        """Terminate the link (LCP Terminate-Request); a LinkDown(reason) follows."""
        if self.finished:
            return
        if self.down_reason is None:
            self.down_reason = reason
        if self.phase != DEAD:
            self.phase = TERMINATE
        self._stop_echo()
        self.lcp.close(now, peer_text)
        if self.lcp.state in (fsm.INITIAL, fsm.CLOSED, fsm.STOPPED):
            self._finish()  # nothing was running: no Terminate exchange to wait for

    def auth_result(self, now, question, ok, reason=None, authenticator_response=None, message=None, address=None):
        """The verdict on `question`, the VerifyCredentials this link emitted (server, external_auth).
        `reason`: plain words for the AuthFailed event when not ok; `authenticator_response`: MS-CHAPv2's
        "S=<40 hex>" (required for an MS-CHAPv2 success); `message`: an MS-CHAPv2 failure text
        "E=... R=... C=... V=3 ..." whose error code (E=) goes to the peer; `address`: the peer's IPv4 address ('a.b.c.d') instead of asking
        assign_address. Returns False, changing nothing, when `question` is not the one awaited: late, for
        another link, or asked before LCP renegotiated (a verdict on old credentials never settles new ones)."""
        a = self.auth
        if self.role != "server" or self.finished or a is None or self.auth_done or \
                getattr(a, "awaiting", None) is None or question is None or question is not self._question:
            return False
        self._question = None
        if ok and address is not None:
            try:
                self._assigned = ip_to_bytes(address)
            except ValueError:
                ok = False
                reason = "the backend assigned %r, not an IPv4 address" % (address,)
        a.backend_verdict(now, ok, reason, authenticator_response, message)
        self._settle(now)
        return True

    def frames_to_send(self):
        out = self._out
        self._out = []
        self.stats["tx_frames"] += len(out)
        return out

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        return None

    def get_timer(self):
        best = None
        for d in (self.lcp.deadline, self.ipcp.deadline, self.ipv6cp.deadline if self.ipv6cp else None,
                  self.auth.deadline if self.auth is not None and not self.auth_done else None,
                  self.echo_deadline):
            if d is not None and (best is None or d < best):
                best = d
        return best

    def handle_timer(self, now):
        self.lcp.timeout(now)
        self.ipcp.timeout(now)
        if self.ipv6cp is not None:
            self.ipv6cp.timeout(now)
        if self.auth is not None and not self.auth_done:
            self.auth.timeout(now)
        if self.echo_deadline is not None and now >= self.echo_deadline:
            self._echo_tick(now)
        self._settle(now)

    def frame_received(self, frame, now):
        self.stats["rx_frames"] += 1
        try:
            proto, off = split(frame)
            self._dispatch(proto, frame, off, now)
        except ValueError:  # PppError and UnicodeError: the codecs' verdict on what the peer sent
            self.stats["malformed"] += 1
        self._settle(now)

    def send_mtu(self, limit):
        """The MTU of the link's device: at most `limit` (our option mtu) and never above the MRU the peer
        asked for (RFC 1661 6.1; 1500 when it asked none), as pppd sets it."""
        return min(limit, self.lcp_opts.peer.get("mru", 1500))

    def status(self):
        ip = self.ipcp_opts
        st = {
            "role": self.role, "phase": self.phase, "lcp": self.lcp.state_name(), "ipcp": self.ipcp.state_name(),
            "ipv6cp": self.ipv6cp.state_name() if self.ipv6cp is not None else None,
            "auth": self.auth_method, "username": self.username if self.role == "server" else self.config.username,
            "local_ip": ip.local_ip() if self.ipcp.state == fsm.OPENED else None,
            "peer_ip": ip.peer_ip() if self.ipcp.state == fsm.OPENED else None,
            "dns": ip.dns() if self.ipcp.state == fsm.OPENED else [],
            "mru": self.lcp_opts.acked.get("mru", 1500), "peer_mru": self.lcp_opts.peer.get("mru", 1500),
            "echo_outstanding": self.echo_outstanding, "down_reason": self.down_reason,
        }
        counters = dict(self.stats)
        for name, f in (("lcp", self.lcp), ("ipcp", self.ipcp)):
            for k, v in f.stats.items():
                counters[name + "_" + k] = v
        st["counters"] = counters
        return st

    # -- owner services for the option handlers ------------------------------------------------------------

    def set_peer_address(self, addr):
        """Server: the peer's IPv4 address, decided by the endpoint after `Authenticated` (before IPCP asks).

        None means there is none to give: IPCP then fails the link with the reason. This is the pull side of
        address assignment: the link never calls out while a frame is being processed.
        """
        if addr is None:
            self._assigned = False
            self._fail_later = ("no IPv4 address to give to user %s (address pool exhausted or no pool "
                                "configured)" % (self.username,))
            return
        try:
            self._assigned = ip_to_bytes(addr)
        except ValueError:
            self._assigned = False
            self._fail_later = "%r is not an IPv4 address" % (addr,)

    def assigned_address(self):
        """Server: the peer's address set by `set_peer_address` (or, without one, from the config's
        assign_address(username), asked once); None if there is none."""
        if self._assigned is None:
            fn = self.config.assign_address
            addr = fn(self.username) if fn is not None else None
            if addr is None:
                self._assigned = False
                self._fail_later = ("no IPv4 address to give to user %s (address pool exhausted or no pool "
                                    "configured)" % (self.username,))
            else:
                try:
                    self._assigned = ip_to_bytes(addr)
                except ValueError:
                    self._assigned = False
                    self._fail_later = "assign_address returned %r, not an IPv4 address" % (addr,)
        return self._assigned or None

    def protocol_rejected(self, proto, now):
        """The peer Protocol-Rejected `proto` (RFC 1661 5.7)."""
        if proto == PROTO_LCP:
            self.down_reason = self.down_reason or "the peer Protocol-Rejected LCP"
            self.lcp.reject_event(True, now)
        elif proto == PROTO_IPCP:
            self.down_reason = self.down_reason or "the peer Protocol-Rejected IPCP: it will not carry IPv4"
            self.ipcp.protocol_rejected(now)
        elif proto == PROTO_IPV6CP and self.ipv6cp is not None:
            self.ipv6cp.protocol_rejected(now)  # IPv6 is optional: IPv4 carries on
        elif proto in (PROTO_PAP, PROTO_CHAP) and self.auth is not None and not self.auth_done:
            self.auth.result = ("fail", "the peer Protocol-Rejected %s" % PROTO_NAMES[proto])
        else:
            self.lcp.reject_event(False, now)

    def echo_reply(self, ident, now):
        self.stats["echo_replies"] += 1
        self.echo_outstanding = 0

    # -- layer callbacks from the automata (RFC 1661 4.4) ----------------------------------------------------

    def tls(self, f, now):
        pass

    def tlu(self, f, now):
        if f is self.lcp:
            self._lcp_up(now)
        elif f is self.ipcp:
            self._ipcp_up(now)
        elif f is self.ipv6cp:
            o = self.ipv6cp_opts
            self._events.append(events.Ipv6Up(o.local, o.peer_ifid()))

    def tld(self, f, now):
        if f is self.lcp:
            # RFC 1661 3.4: leaving Opened takes authentication and the NCPs down with it.
            self._stop_echo()
            self.auth = None
            self.auth_done = False
            self.ipcp.down(now)
            if self.ipv6cp is not None:
                self.ipv6cp.down(now)
            if self.phase != TERMINATE:
                self.phase = ESTABLISH

    def tlf(self, f, now):
        if f is self.lcp:
            if self.down_reason is None:
                self.down_reason = self._why_lcp_failed()
            self._finish()
        elif f is self.ipcp and self.phase == NETWORK:
            if self.down_reason is None:
                if self.ipcp.stats["rcvd_cr"] == 0:
                    self.down_reason = "the peer never sent IPCP (%d Configure-Requests of ours unanswered)" % (
                        self.ipcp.stats["sent_cr"],)
                else:
                    self.down_reason = "IPCP did not reach agreement on addresses"
            self._close_soon = True

    # -- internals ---------------------------------------------------------------------------------------

    _fail_later = None
    _close_soon = False
    _question = None  # the VerifyCredentials awaiting auth_result

    def _sender(self, proto):
        def send(code, ident, data):
            self._out.append(build_frame(proto, code, ident, data))
        return send

    def _emit_lcp(self, code, data):
        self._out.append(build_frame(PROTO_LCP, code, self.lcp._next_ident(), data))

    def _finish(self):
        if self.finished:
            return
        self.finished = True
        self.phase = DEAD
        self._stop_echo()
        self._events.append(events.LinkDown(self.down_reason or "closed"))

    def _why_lcp_failed(self):
        s = self.lcp.stats
        if self.lcp_rx == 0:
            return "the peer never answered LCP (%d Configure-Requests sent; is PPP running on the other end?)" % (
                s["sent_cr"],)
        return "LCP negotiation did not converge after %d Configure-Requests" % s["sent_cr"]

    def _dispatch(self, proto, frame, off, now):
        if self.finished:
            self.stats["discarded"] += 1
            return
        if proto == PROTO_LCP:
            code, ident, data = parse_packet(frame, off)
            self.lcp_rx += 1
            if code == fsm.TERM_REQ and self.down_reason is None:
                text = _printable(data)
                self.down_reason = "the peer closed the link" + (": " + text if text else "")
                hint = self._client_auth_hint()
                if hint:
                    self.down_reason += " (" + hint + ")"
            was = self.lcp.state
            self.lcp.packet(code, ident, data, now)
            if code == fsm.TERM_REQ and was in (fsm.REQ_SENT, fsm.ACK_RCVD, fsm.ACK_SENT):
                # The peer gave up negotiating; waiting out Max-Configure would only delay the news.
                self.close(now, self.down_reason)
            return
        if self.lcp.state != fsm.OPENED:
            self.stats["discarded"] += 1  # RFC 1661 3.4: only LCP before LCP is Opened
            return
        if proto == PROTO_PAP or proto == PROTO_CHAP:
            if self.auth is None or _AUTH_PROTO[self.auth_method] != proto:
                self.stats["discarded"] += 1
                return
            code, ident, data = parse_packet(frame, off)
            self.auth.packet(code, ident, data, now)
            return
        if proto == PROTO_IPCP:
            if self.phase != NETWORK:
                self.stats["discarded"] += 1  # RFC 1661 3.5: NCPs wait for authentication
                return
            code, ident, data = parse_packet(frame, off)
            self.ipcp.packet(code, ident, data, now)
            return
        if proto == PROTO_IPV6CP and self.ipv6cp is not None:
            if self.phase != NETWORK:
                self.stats["discarded"] += 1
                return
            code, ident, data = parse_packet(frame, off)
            self.ipv6cp.packet(code, ident, data, now)
            return
        if proto == PROTO_IP or (proto == PROTO_IPV6 and self.ipv6cp is not None):
            self.stats["data_frames"] += 1  # the engine's data path owns these; one that strays here is dropped
            return
        # CCP (MPPE), IPv6CP/IPv6 without ipv6, anything unknown: RFC 1661 5.7.
        self.stats["protocol_rejects"] += 1
        self._emit_lcp(PROTOCOL_REJ, (p16(proto) + bytes(frame[off:]))[:_MAX_REJECTED])

    def _client_auth_hint(self):
        if self.role != "client":
            return ""
        offered = [m for m in self.lcp_opts.peer_offered if m != "unknown"]
        if offered and not [m for m in offered if m in self.config.auth]:
            return "the server offered %s; we allow %s" % (auth_names(offered), auth_names(self.config.auth) or "nothing")
        return ""

    def _lcp_up(self, now):
        self.phase = AUTHENTICATE
        if self.config.echo_interval and self.config.echo_interval > 0:
            self.echo_outstanding = 0
            self.echo_deadline = now + self.config.echo_interval
        if self.role == "server":
            method = self.lcp_opts.acked.get("auth")
        else:
            method = self.lcp_opts.peer.get("auth")
        self.auth_method = method
        self.auth_done = False
        if method is None:
            self.auth = None
            self._network(now)
            return
        send = self._sender(_AUTH_PROTO[method])
        cfg = self.config
        if method == "pap":
            self.auth = pap.PapServer(cfg, send) if self.role == "server" else pap.PapClient(cfg, self.rng, send)
        else:
            alg = chap.MD5 if method == "chap" else chap.MSCHAPV2
            cls = chap.ChapServer if self.role == "server" else chap.ChapClient
            self.auth = cls(alg, cfg, self.rng, send)
        self.auth.start(now)

    def _network(self, now):
        self.phase = NETWORK
        self.ipcp.open(now)
        self.ipcp.up(now)
        if self.ipv6cp is not None:
            self.ipv6cp.open(now)
            self.ipv6cp.up(now)

    def _ipcp_up(self, now):
        o = self.ipcp_opts
        if self.role == "client" and o.local == b"\x00\x00\x00\x00":
            self.down_reason = "the server did not assign us an IPv4 address"
            self._close_soon = True
            return
        self._events.append(events.IpUp(o.local_ip(), o.peer_ip(), o.dns()))

    def _stop_echo(self):
        self.echo_deadline = None
        self.echo_outstanding = 0

    def _echo_tick(self, now):
        if self.lcp.state != fsm.OPENED:
            self.echo_deadline = None
            return
        if self.echo_outstanding >= self.config.echo_failure:
            self.close(now, "the peer did not answer %d LCP Echo-Requests (dead peer)" % self.echo_outstanding)
            return
        self.echo_outstanding += 1
        self.stats["echo_sent"] += 1
        self._emit_lcp(ECHO_REQ, self.lcp_opts.echo_request(0))
        self.echo_deadline = now + self.config.echo_interval

    def _settle(self, now):
        """Act on verdicts the handlers and authenticators reached during this input."""
        if self.finished:
            return
        for opts, peer_text in ((self.lcp_opts, b"No acceptable authentication protocol"),):
            if opts.fatal is not None:
                reason = opts.fatal
                opts.fatal = None
                self.close(now, reason, peer_text if "authentication" in reason or "authenticate" in reason else b"")
                return
        if self.ipcp_opts.fatal is not None:
            reason = self.ipcp_opts.fatal
            self.ipcp_opts.fatal = None
            self.close(now, reason)
            return
        a = self.auth
        if a is not None and not self.auth_done and getattr(a, "ask", None) is not None:
            self._question = a.ask
            self._events.append(a.ask)
            a.ask = None
        if a is not None and not self.auth_done and a.result is not None:
            self.auth_done = True
            kind, value = a.result
            if kind == "ok":
                if self.role == "server":
                    self.username = value
                self._events.append(events.Authenticated(value))
                self._network(now)
            else:
                self._events.append(events.AuthFailed(value))
                self.close(now, value, b"Authentication failed")
                return
        if self._fail_later is not None:
            reason = self._fail_later
            self._fail_later = None
            self.close(now, reason)
            return
        if self._close_soon:
            self._close_soon = False
            self.close(now, self.down_reason)
