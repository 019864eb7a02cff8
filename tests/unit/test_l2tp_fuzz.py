"""Hypothesis: hostile datagrams into the LNS TunnelTable and into established tunnels never raise and never
disturb an established tunnel or its sessions (state, ids, Nr), and malformed ones are counted."""

import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
from harness import SeededRng  # noqa: E402

from sluice.l2tp import avp as A  # noqa: E402
from sluice.l2tp import data as D  # noqa: E402
from sluice.l2tp import header as H  # noqa: E402
from sluice.l2tp import message as M  # noqa: E402
from sluice.l2tp.demux import TunnelTable  # noqa: E402
from sluice.l2tp.errors import L2tpError  # noqa: E402
from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig  # noqa: E402

PEER = ("192.0.2.7", 1701)
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def established():
    """An LAC and an LNS table with one tunnel and two sessions up; every datagram exchanged, in order."""
    lac = Tunnel(LAC, 0x1234, SeededRng(1), TunnelConfig(host_name="lac", secret=b"k"))
    table = TunnelTable(SeededRng(2), TunnelConfig(host_name="lns", secret=b"k"))
    seen = []
    lac.start(0.0)
    lac.open_session(0.0)
    lac.open_session(0.0)
    now = 0.0
    for _ in range(8):
        for d in lac.datagrams_to_send():
            seen.append(d)
            table.datagram_received(d, PEER, now)
        for _p, d in table.datagrams_to_send():
            seen.append(d)
            lac.datagram_received(d, now)
        now += 0.3
        for t in [lac] + table.tunnels():
            if t.get_timer() is not None and t.get_timer() <= now:
                t.handle_timer(now)
    lns = table.tunnels()[0]
    assert lac.state == lns.state == "established" and len(lns.sessions) == 2
    while lac.next_event() is not None:
        pass
    while table.next_event() is not None:
        pass
    return lac, table, lns, seen


LAC0, TABLE0, LNS0, SEEN = established()


def snapshot(t):
    return (t.state, t.peer_tunnel_id, sorted((s.local_id, s.peer_id, s.state) for s in t.sessions.values()),
            t.channel.nr)


def fresh():
    # Building the pair is cheap and deterministic: a new one per example keeps examples independent.
    return established()


def mutated(base, cut, edits):
    b = bytearray(base[:cut] if cut else base)
    for pos, val in edits:
        if b:
            b[pos % len(b)] = val
    return bytes(b)


def keep_old_ns(d, ns):
    """d with its Ns set to an already-delivered value (when it still has a header to set it in)."""
    if len(d) >= 12 and d[0] & 0x80:
        d = d[:8] + bytes(((ns >> 8) & 0xFF, ns & 0xFF)) + d[10:]
    return d


datagrams = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda i, cut: SEEN[i % len(SEEN)][:cut], st.integers(0, 1000), st.integers(0, 200)),
    st.builds(mutated, st.sampled_from(SEEN), st.integers(0, 200),
              st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6)),
)


@FUZZ
@given(st.lists(datagrams, max_size=8))
def test_table_never_raises_and_established_tunnel_is_undisturbed(batch):
    lac, table, lns, seen = fresh()
    before = snapshot(lns)
    for d in batch:
        if len(d) >= 12 and (d[0] & 0x80) and ((d[4] << 8) | d[5]) == lns.local_tunnel_id:
            d = keep_old_ns(d, 1)  # a duplicate at worst: re-acked, never delivered again
        counted = table.stats["malformed"]
        try:
            H.parse(d)
            bad_header = False
        except L2tpError:
            bad_header = True
        table.datagram_received(d, PEER, 10.0)
        if bad_header:
            assert table.stats["malformed"] == counted + 1  # a counted drop
        table.datagrams_to_send()
        assert table.next_event() is None
    assert snapshot(lns) == before
    assert len(table.tunnels()) >= 1


@FUZZ
@given(st.lists(datagrams, max_size=8))
def test_lac_tunnel_never_raises_and_is_undisturbed(batch):
    lac, table, lns, seen = fresh()
    before = snapshot(lac)
    for d in batch:
        lac.datagram_received(keep_old_ns(d, 0), 10.0)
        lac.datagrams_to_send()
    assert snapshot(lac) == before
    assert lac.next_event() is None


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 0xFFFF))
def test_in_sequence_garbage_never_raises(body, sid):
    # Garbage with a correct header and the expected Ns may be processed; it must never raise, and whatever
    # it does, the tunnel ends in a consistent state.
    lac, table, lns, seen = fresh()
    d = H.encode_control(lns.local_tunnel_id, sid, lns.channel.nr, lns.channel.ns, body)
    table.datagram_received(d, PEER, 10.0)
    table.handle_timer(100.0)
    table.datagrams_to_send()
    while table.next_event() is not None:
        pass
    assert lns.state in ("established", "closing", "closed")


@FUZZ
@given(st.binary(max_size=100))
def test_codecs_raise_only_their_own_errors(buf):
    for fn in (H.parse, lambda b: D.parse_data(b, 0, len(b)), lambda b: D.parse_data(b, 1, len(b)),
               lambda b: M.parse(b, 0, len(b), b"secret"),
               lambda b: list(A.iter_avps(b, 0, len(b), b"secret"))):
        try:
            fn(buf)
        except L2tpError:
            pass


@FUZZ
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=40), st.booleans())
def test_data_encoder_round_trips_through_our_parser(tid, sid, payload, seq):
    enc = D.DataEncoder(tid, sid, sequencing=seq)
    msg = enc.encode(payload)
    t, s, ns, off, end = D.parse_data(msg, 0, len(msg))
    assert (t, s, msg[off:end]) == (tid, sid, payload)
    assert ns == (0 if seq else None)


# Every message type in every state of both roles (the h2 approach): never raises; a message that is not in
# the state table ends the tunnel (StopCCN, TunnelDown), never leaves it half-changed.
MINIMAL = {
    M.SCCRQ: [(A.PROTOCOL_VERSION, (1, 0)), (A.HOST_NAME, "x"), (A.FRAMING_CAPABILITIES, 3),
              (A.ASSIGNED_TUNNEL_ID, 77)],
    M.SCCRP: [(A.PROTOCOL_VERSION, (1, 0)), (A.HOST_NAME, "x"), (A.FRAMING_CAPABILITIES, 3),
              (A.ASSIGNED_TUNNEL_ID, 77)],
    M.SCCCN: [],
    M.STOPCCN: [(A.ASSIGNED_TUNNEL_ID, 77), (A.RESULT_CODE, (1, None, None))],
    M.HELLO: [],
    M.OCRQ: [(A.ASSIGNED_SESSION_ID, 5), (A.CALL_SERIAL_NUMBER, 1), (A.MINIMUM_BPS, 1), (A.MAXIMUM_BPS, 2),
             (A.BEARER_TYPE, 0), (A.FRAMING_TYPE, 1), (A.CALLED_NUMBER, "1")],
    M.OCRP: [(A.ASSIGNED_SESSION_ID, 5)],
    M.OCCN: [(A.TX_CONNECT_SPEED, 1), (A.FRAMING_TYPE, 1)],
    M.ICRQ: [(A.ASSIGNED_SESSION_ID, 5), (A.CALL_SERIAL_NUMBER, 1)],
    M.ICRP: [(A.ASSIGNED_SESSION_ID, 5)],
    M.ICCN: [(A.TX_CONNECT_SPEED, 1), (A.FRAMING_TYPE, 1)],
    M.CDN: [(A.RESULT_CODE, (3, None, None)), (A.ASSIGNED_SESSION_ID, 5)],
    M.WEN: [(A.CALL_ERRORS, (0, 0, 0, 0, 0, 0))],
    M.SLI: [(A.ACCM, (0, 0))],
}


def machine_in(where):
    """(tunnel, feed) with the tunnel in the named role/state; feed(body, sid) delivers the next in-order message."""
    if where.startswith("lac"):
        lac = Tunnel(LAC, 0x1234, SeededRng(1), TunnelConfig())
        lac.start(0.0)
        lac.datagrams_to_send()
        if where == "lac-established":
            lac2, table, lns, seen = fresh()
            lac = lac2
        ch = lac.channel
        peer_ns = [ch.nr]

        def feed(body, sid):
            lac.datagram_received(H.encode_control(lac.local_tunnel_id, sid, peer_ns[0], ch.ns, body), 5.0)

        return lac, feed
    lac, table, lns, seen = fresh()
    if where == "lns-wait-ctl-conn":
        table = TunnelTable(SeededRng(2), TunnelConfig())
        sccrq = M.build(M.SCCRQ, MINIMAL[M.SCCRQ])
        table.datagram_received(H.encode_control(0, 0, 0, 0, sccrq), PEER, 0.0)
        lns = table.tunnels()[0]
    ch = lns.channel

    def feed(body, sid):
        table.datagram_received(H.encode_control(lns.local_tunnel_id, sid, ch.nr, ch.ns, body), PEER, 5.0)

    return lns, feed


ALLOWED = {
    # (where, message) -> the state the tunnel may be in afterwards when the message is acceptable there
    ("lac-wait-ctl-reply", M.SCCRP): "established",
    ("lns-wait-ctl-conn", M.SCCCN): "established",
}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(["lac-wait-ctl-reply", "lac-established", "lns-wait-ctl-conn", "lns-established"]),
       st.sampled_from(sorted(MINIMAL)), st.sampled_from([0, 5]))
def test_every_message_in_every_state(where, msg_type, sid):
    t, feed = machine_in(where)
    before = t.state
    feed(M.build(msg_type, MINIMAL[msg_type]), sid)
    t.datagrams_to_send()
    events = []
    while True:
        e = t.next_event()
        if e is None:
            break
        events.append(type(e).__name__)
    if (where, msg_type) in ALLOWED:
        assert t.state == ALLOWED[(where, msg_type)]
    elif msg_type in (M.SCCRQ, M.SCCRP, M.SCCCN, M.STOPCCN) or (msg_type in M.SESSION_MESSAGES
                                                                and before != "established"):
        # Out of the state table (or a StopCCN): the tunnel ends, and says so exactly once.
        assert t.state in ("closing", "closed") and events.count("TunnelDown") == 1, (where, msg_type, events)
    else:
        assert t.state == before and "TunnelDown" not in events, (where, msg_type, events)
