"""Two-party L2TP tests: an LAC Tunnel and an LNS TunnelTable talk through an in-memory network.

The network can drop, duplicate and reorder datagrams with a seeded rng; time is injected. Tests read like
the message sequence charts of RFC 2661 Appendix A. MicroPython subset only (see docs/design.md).
"""

from sluice.l2tp import avp as A
from sluice.l2tp import header as H
from sluice.l2tp import message as M
from sluice.l2tp.admission import TableLimits
from sluice.l2tp.demux import TunnelTable
from sluice.l2tp.events import SessionDown, SessionUp, TunnelDown, TunnelUp
from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig

try:
    from harness import SeededRng
except ImportError:
    from tests.core.harness import SeededRng

PEER = ("192.0.2.10", 1701)


def kind(data):
    """Message name of a control datagram on the wire ('ZLB' for an ack)."""
    h = H.parse(data)
    return M.parse(data, h.offset, h.end).name()


class Net:
    """LAC <-> LNS in memory. loss/dup/reorder are probabilities applied to every datagram in both directions."""

    def __init__(self, lac, table, seed=1, loss=0.0, dup=0.0, reorder=0.0, peer=PEER):
        self.lac = lac
        self.table = table
        self.rng = SeededRng(seed)
        self.loss, self.dup, self.reorder = loss, dup, reorder
        self.peer = peer
        self.to_lns = []
        self.to_lac = []
        self.lac_events = []
        self.lns_events = []
        self.wire = []  # ('>' or '<', message name) of every datagram sent
        self.cut = False  # True: everything is lost (peer death)
        self.now = 0.0

    def _put(self, queue, data, arrow):
        self.wire.append((arrow, kind(data)))
        if self.cut or self.rng.random() < self.loss:
            return
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            if queue and self.rng.random() < self.reorder:
                queue.insert(int(self.rng.random() * len(queue)), data)
            else:
                queue.append(data)

    def collect(self):
        for d in self.lac.datagrams_to_send():
            self._put(self.to_lns, d, ">")
        for peer, d in self.table.datagrams_to_send():
            assert peer == self.peer
            self._put(self.to_lac, d, "<")
        while True:
            ev = self.lac.next_event()
            if ev is None:
                break
            self.lac_events.append(ev)
        while True:
            item = self.table.next_event()
            if item is None:
                break
            self.lns_events.append(item[1])

    def lac_to_lns(self):
        """Deliver what the LAC sent; return the names delivered."""
        self.collect()
        q, self.to_lns = self.to_lns, []
        for d in q:
            self.table.datagram_received(d, self.peer, self.now)
        self.collect()
        return [kind(d) for d in q]

    def lns_to_lac(self):
        self.collect()
        q, self.to_lac = self.to_lac, []
        for d in q:
            self.lac.datagram_received(d, self.now)
        self.collect()
        return [kind(d) for d in q]

    def timers(self, now):
        self.now = now
        for t in [self.lac] + self.table.tunnels():
            d = t.get_timer()
            if d is not None and d <= now:
                t.handle_timer(now)
        self.table.handle_timer(now)
        self.collect()

    def next_deadline(self):
        ds = [d for d in (self.lac.get_timer(), self.table.get_timer()) if d is not None]
        return min(ds) if ds else None

    def run(self, until, max_steps=20000):
        """Exchange and fire timers until `until` (bounded in steps), jumping time when the wire is quiet."""
        steps = 0
        while steps < max_steps:
            steps += 1
            self.collect()
            if self.to_lns or self.to_lac:
                self.lac_to_lns()
                self.lns_to_lac()
                self.now += 0.01  # one-way delay
                self.timers(self.now)
                continue
            d = self.next_deadline()
            if d is None or d > until:
                break
            self.timers(max(d, self.now))
        assert steps < max_steps, "network did not settle"
        self.now = max(self.now, until)

    def lns_tunnel(self):
        ts = self.table.tunnels()
        assert len(ts) == 1, ts
        return ts[0]


def protocol_limits():
    return TableLimits(max_pending=None, max_pending_per_source=None, preauth_timeout=None)


def pair(lac_secret=None, lns_secret=None, seed=1, lac_cfg=None, lns_cfg=None, limits=None, **net):
    lac_cfg = lac_cfg or TunnelConfig(host_name="lac.example", secret=lac_secret)
    lns_cfg = lns_cfg or TunnelConfig(host_name="lns.example", secret=lns_secret)
    lac = Tunnel(LAC, 0x1234, SeededRng(seed + 100), lac_cfg)
    if limits is None:
        # These are protocol tests: no PPP runs here to authenticate sessions, so the admission limits on
        # unauthenticated sessions (tests/core/test_l2tp_admission.py) are off.
        limits = protocol_limits()
        lns_cfg.max_pending_sessions = lns_cfg.max_sessions
    table = TunnelTable(SeededRng(seed + 200), lns_cfg, limits=limits)
    return lac, table, Net(lac, table, seed, **net)


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def test_tunnel_and_session_establishment_sequence():
    lac, table, net = pair()
    lac.start(0.0)
    sid = lac.open_session(0.0)
    assert lac.state == "wait-ctl-reply"
    # SCCRQ -->
    assert net.lac_to_lns() == ["SCCRQ"]
    lns = net.lns_tunnel()
    assert lns.state == "wait-ctl-conn" and lns.peer_tunnel_id == 0x1234 and lns.peer_host_name == "lac.example"
    # <-- SCCRP
    assert net.lns_to_lac() == ["SCCRP"]
    assert lac.state == "established" and lac.peer_tunnel_id == lns.local_tunnel_id
    assert of(net.lac_events, TunnelUp)[0].peer_host_name == "lns.example"
    # SCCCN -->   ICRQ -->  (the queued session goes out as soon as the tunnel is up)
    assert net.lac_to_lns() == ["SCCCN", "ICRQ"]
    assert lns.state == "established"
    up = of(net.lns_events, TunnelUp)[0]
    assert (up.tunnel_id, up.peer_tunnel_id) == (lns.local_tunnel_id, 0x1234)
    # <-- ICRP (acknowledges SCCCN and ICRQ: nothing else to send)
    assert net.lns_to_lac() == ["ICRP"]
    # ICCN -->
    assert net.lac_to_lns() == ["ICCN"]
    lac_up = of(net.lac_events, SessionUp)[0]
    lns_up = of(net.lns_events, SessionUp)[0]
    assert lac_up.session_id == sid and lac_up.peer_session_id == lns_up.session_id
    assert lns_up.peer_session_id == sid and lns_up.tunnel_id == lns.local_tunnel_id
    # <-- ZLB, after the ack delay because the LNS has nothing to piggyback on
    assert net.lns_to_lac() == []
    net.timers(0.1)
    assert net.lns_to_lac() == []
    net.timers(0.25)
    assert net.lns_to_lac() == ["ZLB"]
    assert lac.channel.idle() and lns.channel.idle()
    assert lac.get_timer() == 60.25  # only the HELLO timer: 60 s after the last message (RFC 2661 6.5)


def test_status_reports_state_ids_sessions_and_counters():
    lac, table, net = pair()
    lac.start(0.0)
    lac.open_session(0.0)
    net.run(2.0)
    st = lac.status()
    assert st["state"] == "established" and st["tunnel_id"] == 0x1234
    assert st["peer_tunnel_id"] == net.lns_tunnel().local_tunnel_id
    assert len(st["sessions"]) == 1 and st["sessions"][0]["state"] == "established"
    for k in ("sent", "received", "retransmits", "malformed"):
        assert k in st["counters"]
    assert st["counters"]["sent"] == 4 and st["counters"]["retransmits"] == 0


def _establish_under(seed, loss, dup, reorder, sessions=1):
    lac, table, net = pair(seed=seed, loss=loss, dup=dup, reorder=reorder)
    lac.start(0.0)
    sids = [lac.open_session(0.0) for _ in range(sessions)]
    net.run(40.0)
    return lac, table, net, sids


def test_establishment_survives_loss_duplication_and_reordering():
    for seed in range(1, 9):
        lac, table, net, sids = _establish_under(seed, 0.25, 0.2, 0.3, sessions=3)
        assert lac.state == "established", (seed, lac.status())
        lns = net.lns_tunnel()
        assert lns.state == "established"
        # Exactly one TunnelUp and one SessionUp per session on each side, however often messages repeat.
        assert len(of(net.lac_events, TunnelUp)) == 1 and len(of(net.lns_events, TunnelUp)) == 1
        assert sorted(e.session_id for e in of(net.lac_events, SessionUp)) == sorted(sids)
        assert len(of(net.lns_events, SessionUp)) == 3
        assert not of(net.lac_events, TunnelDown) and not of(net.lns_events, TunnelDown)
        pairs_lac = sorted((e.session_id, e.peer_session_id) for e in of(net.lac_events, SessionUp))
        pairs_lns = sorted((e.peer_session_id, e.session_id) for e in of(net.lns_events, SessionUp))
        assert pairs_lac == pairs_lns


def test_losses_cause_retransmissions_and_duplicates_are_reacked():
    lac, table, net, sids = _establish_under(3, 0.3, 0.3, 0.0)
    lns = net.lns_tunnel()
    total = lac.channel.stats["retransmits"] + lns.channel.stats["retransmits"]
    dups = lac.channel.stats["duplicates"] + lns.channel.stats["duplicates"]
    assert total > 0 and dups > 0
    assert lac.status()["counters"]["retransmits"] == lac.channel.stats["retransmits"]


def test_many_sessions_respect_the_peer_window():
    lac_cfg = TunnelConfig(host_name="lac", receive_window=4)
    lns_cfg = TunnelConfig(host_name="lns", receive_window=2)
    lac, table, net = pair(lac_cfg=lac_cfg, lns_cfg=lns_cfg, seed=5, loss=0.1, reorder=0.2)
    lac.start(0.0)
    sids = [lac.open_session(0.0) for _ in range(20)]
    assert len(set(sids)) == 20 and 0 not in sids
    # SCCRQ --> ; <-- SCCRP (RWS 2)
    net.lac_to_lns()
    net.lns_to_lac()
    # The LAC now has 20 ICRQs to send but at most two outstanding.
    assert lac.channel.peer_window == 2 and len(lac.channel.unacked) <= 2
    for _ in range(300):
        net.collect()
        assert len(lac.channel.unacked) <= 2 and len(net.lns_tunnel().channel.unacked) <= 4
        net.lac_to_lns()
        net.lns_to_lac()
        net.timers(net.now + 0.3)
    assert len(of(net.lac_events, SessionUp)) == 20
    assert len(net.lns_tunnel().sessions) == 20


def test_tunnel_authentication_both_secrets_match():
    lac, table, net = pair(lac_secret="correct horse", lns_secret="correct horse")
    lac.start(0.0)
    # SCCRQ (Challenge) -->
    net.lac_to_lns()
    # <-- SCCRP (Challenge Response, Challenge)
    net.lns_to_lac()
    # SCCCN (Challenge Response) -->
    net.lac_to_lns()
    assert lac.state == "established" and net.lns_tunnel().state == "established"
    assert lac.challenge is not None and net.lns_tunnel().challenge is not None


def _auth_failure(lac_secret, lns_secret):
    lac, table, net = pair(lac_secret=lac_secret, lns_secret=lns_secret)
    lac.start(0.0)
    lac.open_session(0.0)
    net.run(40.0)
    return lac, net


def test_tunnel_authentication_secret_mismatch_fails_with_result_4():
    lac, net = _auth_failure("one secret", "another secret")
    # SCCRQ -->  <-- SCCRP (wrong answer)  StopCCN (result 4) -->
    assert ("<", "SCCRP") in net.wire and (">", "StopCCN") in net.wire
    down = of(net.lac_events, TunnelDown)
    assert len(down) == 1 and down[0].result_code == 4 and "secret" in down[0].message
    assert "one secret" not in down[0].message
    lns_down = of(net.lns_events, TunnelDown)
    assert len(lns_down) == 1 and lns_down[0].result_code == 4
    assert not of(net.lac_events, TunnelUp)
    assert lac.state == "closed" and net.table.tunnels() == []  # closed and reaped on both sides


def test_tunnel_authentication_only_lns_has_a_secret():
    lac, net = _auth_failure(None, "lns only")
    down = of(net.lac_events, TunnelDown)[0]
    assert down.result_code == 4 and "no tunnel secret" in down.message


def test_tunnel_authentication_only_lac_has_a_secret():
    lac, net = _auth_failure("lac only", None)
    # SCCRQ (Challenge) -->  <-- StopCCN (result 4)
    assert net.wire[:2] == [(">", "SCCRQ"), ("<", "StopCCN")]
    down = of(net.lac_events, TunnelDown)[0]
    assert down.result_code == 4
    assert "no tunnel secret" in down.message


def test_sccrq_retransmission_backoff_and_give_up():
    lac, table, net = pair()
    lac.start(0.0)
    net.cut = True
    sent_at = []
    now = 0.0
    for _ in range(100):
        net.collect()
        for arrow, name in net.wire[len(sent_at):]:
            sent_at.append(now)
        d = lac.get_timer()
        if d is None:
            break
        now = d
        net.timers(now)
    # RFC 2661 5.8: 1 s doubling, capped at 8 s; five retransmissions then give up.
    assert sent_at == [0.0, 1.0, 3.0, 7.0, 15.0, 23.0]
    assert now == 31.0 and lac.state == "closed"
    down = of(net.lac_events, TunnelDown)[0]
    assert down.result_code is None and "no reply to SCCRQ" in down.message


def test_hello_keepalive_and_peer_death():
    lac, table, net = pair()
    lac.start(0.0)
    lac.open_session(0.0)
    net.run(5.0)
    lns = net.lns_tunnel()
    n = len(net.wire)
    # 60 s of silence: the side whose timer runs out first sends HELLO, the other acks with a ZLB and,
    # having just heard from its peer, restarts its own timer (RFC 2661 6.5)
    net.run(61.0)
    assert net.wire[n:] in ([("<", "HELLO"), (">", "ZLB")], [(">", "HELLO"), ("<", "ZLB")])
    assert lac.state == "established" and lns.state == "established"
    # The LNS dies: the LAC's next HELLO goes unanswered, 1+2+4+8+8 s of retransmissions, then down.
    net.cut = True
    net.table = TunnelTable(SeededRng(7), TunnelConfig())  # a silent stand-in
    net.run(200.0)
    down = of(net.lac_events, TunnelDown)
    assert len(down) == 1 and "stopped answering" in down[0].message
    assert [e.session_id for e in of(net.lac_events, SessionDown)] == list(e.session_id for e in
                                                                           of(net.lac_events, SessionUp))
    assert lac.state == "closed"
    assert lac.status()["counters"]["retransmits"] == 5


def test_hello_not_sent_while_traffic_flows():
    lac, table, net = pair()
    lac.start(0.0)
    net.run(5.0)
    lns = net.lns_tunnel()
    for t in range(10, 200, 30):
        # <-- ICRQ-like chatter: open and close sessions every 30 s keeps the tunnel busy
        sid = lac.open_session(float(t))
        net.run(float(t) + 2)
        lac.close_session(sid, float(t) + 2)
        net.run(float(t) + 4)
    hellos = [w for w in net.wire if w[1] == "HELLO" and w[0] == ">"]
    assert hellos == []
    assert lns.state == "established"


def test_stopccn_from_lac():
    lac, table, net = pair()
    lac.start(0.0)
    lac.open_session(0.0)
    net.run(5.0)
    lns = net.lns_tunnel()
    lac.close(6.0, 6, "requester is being shut down")
    # StopCCN -->
    assert net.lac_to_lns() == ["StopCCN"]
    down = of(net.lns_events, TunnelDown)[0]
    assert (down.result_code, down.message) == (6, "requester is being shut down")
    assert len(of(net.lns_events, SessionDown)) == 1
    # <-- ZLB at once (RFC 2661 5.7), and the LAC is done
    assert net.lns_to_lac() == ["ZLB"]
    assert lac.state == "closed" and lns.state == "closing"
    # A retransmitted StopCCN is re-acknowledged while the LNS holds state...
    lns.datagram_received(lac.channel.out[0] if lac.channel.out else _resend_last(lac), 7.0)
    net.collect()
    assert net.to_lac and kind(net.to_lac[-1]) == "ZLB"
    # ...and the LNS forgets the tunnel after the hold time.
    net.timers(6.0 + 31.0)
    assert table.tunnels() == []
    assert len(of(net.lns_events, TunnelDown)) == 1


def _resend_last(tunnel):
    from sluice.l2tp.header import encode_control

    ch = tunnel.channel
    body = M.build(M.STOPCCN, [(A.ASSIGNED_TUNNEL_ID, tunnel.local_tunnel_id), (A.RESULT_CODE, (6, None, None))])
    return encode_control(tunnel.peer_tunnel_id, 0, (ch.ns - 1) & 0xFFFF, ch.nr, body)


def test_stopccn_from_lns():
    lac, table, net = pair()
    lac.start(0.0)
    sid = lac.open_session(0.0)
    net.run(5.0)
    lns = net.lns_tunnel()
    lns.close(6.0, 2, "general error", error_code=4)
    # <-- StopCCN
    assert net.lns_to_lac() == ["StopCCN"]
    down = of(net.lac_events, TunnelDown)[0]
    assert (down.result_code, down.error_code, down.message) == (2, 4, "general error")
    sd = of(net.lac_events, SessionDown)
    assert [e.session_id for e in sd] == [sid]
    # ZLB -->
    assert net.lac_to_lns() == ["ZLB"]
    net.timers(7.0)
    assert table.tunnels() == []


def test_cdn_from_lac_and_from_lns():
    lac, table, net = pair()
    lac.start(0.0)
    s1 = lac.open_session(0.0)
    s2 = lac.open_session(0.0)
    net.run(5.0)
    lns = net.lns_tunnel()
    lns_ids = dict((e.peer_session_id, e.session_id) for e in of(net.lns_events, SessionUp))
    # CDN --> (LAC clears s1)
    lac.close_session(s1, 6.0, 3, "administrative")
    assert net.lac_to_lns() == ["CDN"]
    down = [e for e in of(net.lns_events, SessionDown)]
    assert len(down) == 1 and down[0].session_id == lns_ids[s1] and down[0].result_code == 3
    assert down[0].message == "administrative"
    assert sorted(lns.sessions) == [lns_ids[s2]]
    # <-- CDN (LNS clears s2)
    lns.close_session(lns_ids[s2], 7.0, 4, "server is full")
    assert net.lns_to_lac() == ["CDN"]
    d2 = [e for e in of(net.lac_events, SessionDown) if e.session_id == s2]
    assert len(d2) == 1 and (d2[0].result_code, d2[0].message) == (4, "server is full")
    assert lac.sessions == {} and lns.sessions == {}
    assert lac.state == "established" and lns.state == "established"


def test_apple_byte_swapped_result_codes_are_read_correctly():
    lac, table, net = pair()
    lac.start(0.0)
    sid = lac.open_session(0.0)
    net.run(5.0)
    net.lns_tunnel()  # exactly one tunnel on the LNS side
    lns_sid = of(net.lns_events, SessionUp)[0].session_id
    # CDN --> as macOS sends it: result 3 (admin) and error 0 in little-endian order
    body = M.build(M.CDN, [(A.RESULT_CODE, (0x0300, 0, "User hung up")), (A.ASSIGNED_SESSION_ID, sid)])
    lac.channel.send(lns_sid, body, 6.0)
    lac.sessions.pop(sid)
    net.lac_to_lns()
    sd = of(net.lns_events, SessionDown)[0]
    assert (sd.result_code, sd.message) == (3, "User hung up")
    # StopCCN --> with result 1 (0x0100 on the wire)
    body = M.build(M.STOPCCN, [(A.ASSIGNED_TUNNEL_ID, 0x1234), (A.RESULT_CODE, (0x0100, None, None))])
    lac.channel.send(0, body, 7.0)
    net.lac_to_lns()
    td = of(net.lns_events, TunnelDown)[0]
    assert td.result_code == 1


def test_retransmitted_sccrq_maps_to_the_same_tunnel():
    lac, table, net = pair()
    lac.start(0.0)
    net.collect()
    sccrq = net.to_lns[0]
    table.datagram_received(sccrq, PEER, 0.0)
    table.datagram_received(sccrq, PEER, 1.0)  # the LAC retransmitted before our SCCRP arrived
    assert len(table.tunnels()) == 1
    lns = table.tunnels()[0]
    assert lns.channel.stats["duplicates"] == 1
    # The same SCCRQ from another peer (another client behind the same NAT, other port) is another tunnel.
    table.datagram_received(sccrq, ("192.0.2.10", 4500), 1.0)
    assert len(table.tunnels()) == 2
    ids = [t.local_tunnel_id for t in table.tunnels()]
    assert len(set(ids)) == 2 and 0 not in ids


def test_unknown_tunnel_and_wrong_peer_are_counted_drops():
    lac, table, net = pair()
    lac.start(0.0)
    net.run(3.0)
    lns = net.lns_tunnel()
    hello = M.build(M.HELLO, [])
    from sluice.l2tp.header import encode_control

    table.datagram_received(encode_control(lns.local_tunnel_id ^ 0x5555, 0, 9, 9, hello), PEER, 4.0)
    table.datagram_received(encode_control(lns.local_tunnel_id, 0, 9, 9, hello), ("198.51.100.7", 1701), 4.0)
    table.datagram_received(b"\x00\x02\x00\x01\x00\x01", PEER, 4.0)
    table.datagram_received(b"\xc8\x02\x00", PEER, 4.0)
    assert table.stats["unknown_tunnel"] == 1 and table.stats["wrong_peer"] == 1
    assert table.stats["not_control"] == 1 and table.stats["malformed"] == 1
    assert table.datagrams_to_send() == [] and lns.state == "established"


def test_unknown_mandatory_avp_clears_session_or_tunnel():
    lac, table, net = pair()
    lac.start(0.0)
    lac.open_session(0.0)
    net.run(5.0)
    lns = net.lns_tunnel()
    vendor_m = A.encode(7, b"x", mandatory=True, vendor=311)
    vendor_opt = A.encode(8, b"y", mandatory=False, vendor=311)
    # HELLO + optional vendor AVP -->  is just a HELLO
    lac.channel.send(0, M.build(M.HELLO, []) + vendor_opt, 6.0)
    net.lac_to_lns()
    assert lns.state == "established"
    # ICRQ + unknown mandatory vendor AVP -->  <-- CDN (result 2, error 8), the tunnel stays
    icrq = M.build(M.ICRQ, [(A.ASSIGNED_SESSION_ID, 999), (A.CALL_SERIAL_NUMBER, 5)]) + vendor_m
    lac.channel.send(0, icrq, 7.0)
    net.lac_to_lns()
    net.collect()
    cdn = net.to_lac[-1]
    h = H.parse(cdn)
    m = M.parse(cdn, h.offset, h.end)
    assert m.name() == "CDN" and h.session_id == 999 and m.get(A.RESULT_CODE)[:2] == (2, 8)
    assert len(lns.sessions) == 1 and lns.state == "established"
    # HELLO + unknown mandatory AVP -->  <-- StopCCN (result 2, error 8)
    lac.channel.send(0, M.build(M.HELLO, []) + vendor_m, 8.0)
    net.lac_to_lns()
    down = of(net.lns_events, TunnelDown)[0]
    assert (down.result_code, down.error_code) == (2, 8)
    net.run(20.0)
    assert lac.state == "closing" and of(net.lac_events, TunnelDown)[0].result_code == 2
    net.run(60.0)  # the LAC holds state to re-ack the StopCCN, then lets go (RFC 2661 5.7)
    assert lac.state == "closed" and table.tunnels() == []


def test_hidden_assigned_session_ids_round_trip():
    cfg_lac = TunnelConfig(host_name="lac", secret="hide me", hide_avps=True)
    cfg_lns = TunnelConfig(host_name="lns", secret="hide me", hide_avps=True)
    lac, table, net = pair(lac_cfg=cfg_lac, lns_cfg=cfg_lns)
    lac.start(0.0)
    sid = lac.open_session(0.0)
    seen = []
    for _ in range(4):
        net.collect()
        seen.extend(net.to_lns)
        net.lac_to_lns()
        net.lns_to_lac()
    icrq = [d for d in seen if kind(d) == "ICRQ"][0]
    avps = list(A.iter_avps(icrq, 12, len(icrq), b"hide me"))
    hidden = [a for a in avps if a.hidden]
    assert [a.attr for a in hidden] == [A.ASSIGNED_SESSION_ID]
    assert avps[1].attr == A.RANDOM_VECTOR  # the vector comes before the hidden AVP (RFC 2661 4.3)
    assert int.from_bytes(hidden[0].raw, "big") == sid
    assert (sid >> 8, sid & 0xFF) != tuple(icrq[-2:])  # not in the clear
    assert of(net.lac_events, SessionUp)[0].session_id == sid
    assert of(net.lns_events, SessionUp)[0].peer_session_id == sid


def test_hidden_avp_without_our_secret_clears_the_tunnel():
    lac, table, net = pair()
    lac.start(0.0)
    net.run(3.0)
    # HELLO (Random Vector, hidden Host Name) -->   but the LNS has no secret to reveal it
    rng = SeededRng(3)
    body = M.build(M.HELLO, [(A.HOST_NAME, "x")], b"hide me", (A.HOST_NAME,), rng)
    lac.channel.send(0, body, 4.0)
    net.lac_to_lns()
    # <-- StopCCN (result 2): a message it cannot read ends the tunnel with a reason that says why
    down = of(net.lns_events, TunnelDown)
    assert len(down) == 1 and down[0].result_code == 2 and "tunnel secret" in down[0].message
    assert "hide me" not in down[0].message


def test_close_before_established_and_session_queued():
    lac, table, net = pair()
    lac.start(0.0)
    sid = lac.open_session(0.0)
    lac.close_session(sid, 0.1, 3, "changed my mind")
    assert of([lac.next_event()], SessionDown)[0].session_id == sid
    net.run(5.0)
    assert lac.state == "established" and net.lns_tunnel().sessions == {}
    assert not [w for w in net.wire if w[1] == "ICRQ"]


def test_sequence_numbers_wrap_around():
    lac, table, net = pair()
    lac.start(0.0)
    net.run(3.0)
    lns = net.lns_tunnel()
    # Move both directions close to the 16-bit edge, consistently on both sides.
    lac.channel.ns = lac.channel.una = lns.channel.nr = 0xFFFE
    lns.channel.ns = lns.channel.una = lac.channel.nr = 0xFFFD
    sids = [lac.open_session(4.0) for _ in range(6)]
    net.run(10.0)
    assert len(of(net.lac_events, SessionUp)) == 6
    assert lac.channel.ns == 10 and lns.channel.nr == 10 and lac.channel.idle()  # 0xFFFE + 6 ICRQ + 6 ICCN
    assert lac.state == "established" and sorted(lac.sessions) == sorted(sids)


def _up():
    lac, table, net = pair()
    lac.start(0.0)
    net.run(3.0)
    return lac, table, net, net.lns_tunnel()


def _last_to_lac(net):
    net.collect()
    d = net.to_lac[-1]
    h = H.parse(d)
    return h, M.parse(d, h.offset, h.end)


def test_outgoing_calls_refused_wen_and_sli_ignored():
    lac, table, net, lns = _up()
    # OCRQ -->  <-- CDN (result 5): we never place outgoing calls (RFC 2661 7.4.2)
    ocrq = M.build(M.OCRQ, [(A.ASSIGNED_SESSION_ID, 77), (A.CALL_SERIAL_NUMBER, 1), (A.MINIMUM_BPS, 1),
                            (A.MAXIMUM_BPS, 2), (A.BEARER_TYPE, 0), (A.FRAMING_TYPE, 1),
                            (A.CALLED_NUMBER, "123")])
    lac.channel.send(0, ocrq, 4.0)
    net.lac_to_lns()
    h, m = _last_to_lac(net)
    assert m.type == M.CDN and h.session_id == 77 and m.get(A.RESULT_CODE)[0] == 5
    # WEN --> and SLI --> are acknowledged and ignored
    lac.channel.send(0, M.build(M.WEN, [(A.CALL_ERRORS, (0, 1, 2, 3, 4, 5))]), 5.0)
    lac.channel.send(0, M.build(M.SLI, [(A.ACCM, (0, 0xFFFFFFFF))]), 5.0)
    net.run(10.0)
    assert lns.stats["ignored"] == 2 and lns.state == "established" and lac.channel.idle()


def test_unknown_message_type_with_and_without_m_bit():
    lac, table, net, lns = _up()
    # Message type 99 without the M bit: ignored (RFC 2661 4.4.1)
    lac.channel.send(0, A.encode(A.MESSAGE_TYPE, 99, mandatory=False), 4.0)
    net.run(5.0)
    assert lns.state == "established" and lns.stats["ignored"] == 1
    # With the M bit: the tunnel is cleared
    lac.channel.send(0, A.encode(A.MESSAGE_TYPE, 99), 6.0)
    net.lac_to_lns()
    down = of(net.lns_events, TunnelDown)[0]
    assert (down.result_code, down.error_code) == (2, 8) and "99" in down.message


def test_messages_out_of_state_are_fsm_errors():
    lac, table, net, lns = _up()
    # SCCRP --> to an LNS: not in its state table (RFC 2661 7.2) -> StopCCN result 7
    lac.channel.send(0, M.build(M.SCCRP, [(A.PROTOCOL_VERSION, (1, 0)), (A.FRAMING_CAPABILITIES, 3),
                                          (A.HOST_NAME, "x"), (A.ASSIGNED_TUNNEL_ID, 5)]), 4.0)
    net.lac_to_lns()
    assert of(net.lns_events, TunnelDown)[0].result_code == 7
    net.lns_to_lac()
    assert of(net.lac_events, TunnelDown)[0].result_code == 7


def test_session_message_before_tunnel_is_up():
    lac, table, net = pair()
    lac.start(0.0)
    net.lac_to_lns()  # SCCRQ -->
    net.lns_to_lac()  # <-- SCCRP
    lns = net.lns_tunnel()
    # ICRQ --> sent before the SCCCN (a broken peer): StopCCN result 7 from the LNS
    body = M.build(M.ICRQ, [(A.ASSIGNED_SESSION_ID, 5), (A.CALL_SERIAL_NUMBER, 1)])
    net.to_lns = []  # pretend the SCCCN (Ns 1) never existed
    lac.channel.out = []
    lac.channel.unacked = []
    lac.channel.ns = 1
    lac.channel.send(0, body, 0.5)
    net.lac_to_lns()
    assert lns.state in ("closing", "closed") and of(net.lns_events, TunnelDown)[0].result_code == 7


def test_session_limit_and_lac_refuses_incoming_calls():
    lns_cfg = TunnelConfig(host_name="lns", max_sessions=1)
    lac, table, net = pair(lns_cfg=lns_cfg)
    lac.start(0.0)
    s1 = lac.open_session(0.0)
    s2 = lac.open_session(0.0)
    net.run(5.0)
    up = [e.session_id for e in of(net.lac_events, SessionUp)]
    down = of(net.lac_events, SessionDown)
    assert len(up) == 1 and len(down) == 1 and set(up + [down[0].session_id]) == set([s1, s2])
    assert down[0].result_code == 4 and down[0].message == "too many sessions"
    # <-- ICRQ to the LAC: refused with CDN result 5
    lns = net.lns_tunnel()
    lns.channel.send(0, M.build(M.ICRQ, [(A.ASSIGNED_SESSION_ID, 9), (A.CALL_SERIAL_NUMBER, 1)]), 6.0)
    lns._touch()  # the channel was driven directly, past the Tunnel API that tells the table
    net.lns_to_lac()
    net.collect()
    d = net.to_lns[-1]
    h = H.parse(d)
    assert kind(d) == "CDN" and h.session_id == 9
    assert lac.state == "established"


def test_unsupported_protocol_version_is_refused_with_result_5():
    lac, table, net = pair()
    body = M.build(M.SCCRQ, [(A.PROTOCOL_VERSION, (2, 0)), (A.HOST_NAME, "v3ish"), (A.FRAMING_CAPABILITIES, 3),
                             (A.ASSIGNED_TUNNEL_ID, 42)])
    table.datagram_received(H.encode_control(0, 0, 0, 0, body), PEER, 0.0)
    out = table.datagrams_to_send()
    assert len(out) == 1
    h = H.parse(out[0][1])
    m = M.parse(out[0][1], h.offset, h.end)
    assert m.type == M.STOPCCN and h.tunnel_id == 42 and m.get(A.RESULT_CODE)[0] == 5


def test_messages_crossing_our_stopccn_are_ignored():
    lac, table, net = pair()
    lac.start(0.0)
    net.run(3.0)
    net.lns_tunnel()
    lac.open_session(4.0)
    net.lac_to_lns()  # ICRQ -->
    lac.close(4.1, 1, "bye")  # StopCCN --> crosses the ICRP
    net.lns_to_lac()  # <-- ICRP, ignored: no second StopCCN, no session
    net.collect()
    assert [w for w in net.wire if w == (">", "StopCCN")] == [(">", "StopCCN")]
    assert not of(net.lac_events, SessionUp) and lac.stats["ignored"] == 1
    net.run(10.0)
    assert lac.state == "closed" and len(of(net.lns_events, TunnelDown)) == 1
    assert [w for w in net.wire if w == (">", "StopCCN")] == [(">", "StopCCN")]


def test_table_forgets_a_dead_tunnel_once_its_events_are_read():
    lac, table, net = pair()
    lac.start(0.0)
    net.run(3.0)
    lns = net.lns_tunnel()
    net.cut = True
    lns.close(4.0, 1, "bye")  # StopCCN never acknowledged: 31 s of retransmissions
    net.run(100.0)
    assert lns.state == "closed" and table.tunnels() == []
    assert table.stats["removed"] == 1 and table.get_timer() is None


# An SCCRQ shaped like Windows 10/11's (docs/clients.md: protocol 1.0, framing sync, firmware 0x0a00,
# vendor "Microsoft", receive window 8, no challenge), laid out by hand from RFC 2661 3.1 and 4.4.
WINDOWS_SCCRQ = (
    "c802 0066 0000 0000 0000 0000"  # header: T L S, ver 2, length 102, tunnel 0, session 0, Ns 0, Nr 0
    "8008 0000 0000 0001"  # Message Type: SCCRQ
    "8008 0000 0002 0100"  # Protocol Version 1.0
    "800a 0000 0003 0000 0001"  # Framing Capabilities: sync
    "800a 0000 0004 0000 0000"  # Bearer Capabilities: none
    "0008 0000 0006 0a00"  # Firmware Revision 0x0a00 (M bit clear)
    "800f 0000 0007 4445534b544f502d31"  # Host Name "DESKTOP-1"
    "000f 0000 0008 4d6963726f736f6674"  # Vendor Name "Microsoft" (M bit clear)
    "8008 0000 0009 0003"  # Assigned Tunnel ID 3
    "8008 0000 000a 0008"  # Receive Window Size 8
)


def test_lns_answers_a_windows_shaped_sccrq():
    import binascii

    raw = binascii.unhexlify("".join(WINDOWS_SCCRQ.split()))
    assert len(raw) == 0x66
    table = TunnelTable(SeededRng(9), TunnelConfig(host_name="lns.example"))
    table.datagram_received(raw, PEER, 0.0)
    (peer, reply), = table.datagrams_to_send()
    h = H.parse(reply)
    m = M.parse(reply, h.offset, h.end)
    # <-- SCCRP to tunnel 3, acknowledging Ns 0
    assert m.type == M.SCCRP and (h.tunnel_id, h.ns, h.nr) == (3, 0, 1)
    assert m.get(A.PROTOCOL_VERSION) == (1, 0) and m.get(A.HOST_NAME) == "lns.example"
    lns = table.tunnels()[0]
    assert m.get(A.ASSIGNED_TUNNEL_ID) == lns.local_tunnel_id and A.CHALLENGE not in m.values
    assert lns.peer_host_name == "DESKTOP-1" and lns.peer_vendor == "Microsoft"
    assert lns.channel.peer_window == 8
    # SCCCN -->  (Ns 1, Nr 1) completes it
    table.datagram_received(binascii.unhexlify("c802 0014 %04x 0000 0001 0001 8008 0000 0000 0003".replace(
        " ", "") % lns.local_tunnel_id), PEER, 0.1)
    assert lns.state == "established"
    assert isinstance(table.next_event()[1], TunnelUp)
