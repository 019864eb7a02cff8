"""Hypothesis over the PPP machines: hostile frames never raise, and frames that are not meant to end an
Opened link do not end it (RFC 1661: malformed packets are silently discarded)."""

import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))

import ppp_pair  # noqa: E402
from sluice.ppp import fsm  # noqa: E402
from sluice.ppp.framing import PppError, build_options, parse_options, split  # noqa: E402

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

_OPENED = {}


def _opened_pair(seed):
    # One negotiated pair per seed, copied per example by replaying (cheap: ~20 frames).
    p = ppp_pair.Pair(seed=seed, client_cfg=ppp_pair.client_config(ipv6=True),
                      server_cfg=ppp_pair.server_config(ipv6=True))
    p.open()
    p.run(5)
    assert p.client.status()["ipcp"] == "opened" and p.server.status()["ipcp"] == "opened"
    return p


PROTOS = st.sampled_from([0xC021, 0xC023, 0xC223, 0x8021, 0x8057, 0x80FD, 0x0021, 0x0057, 0x8031, 0x4021, 0x00FD])

# Codes that an Opened link must survive: Configure-Ack/Nak/Reject with a stale Identifier, Code-Reject of a
# non-configuration code, Echo, Discard, CHAP/PAP replays, unknown codes. Excluded on purpose: Configure-Request
# (renegotiates, RFC 1661 4.1), Terminate-Request/Ack, Code-Reject of codes 1-7 and Protocol-Reject of our
# NCPs (each legitimately ends or restarts a layer).
SAFE_CODES = st.sampled_from([2, 3, 4, 9, 10, 11, 12, 13, 42, 255])


@st.composite
def control_frames(draw):
    proto = draw(PROTOS)
    code = draw(SAFE_CODES) if proto in (0xC021, 0x8021, 0x8057) else draw(st.integers(0, 255))
    ident = draw(st.integers(0, 255))
    data = draw(st.binary(max_size=64))
    if code == 7:
        data = b"\x09" + data
    length = draw(st.one_of(st.just(4 + len(data)), st.integers(0, 0xFFFF)))
    hdr = draw(st.sampled_from([b"\xff\x03", b""]))
    p = bytes((proto >> 8, proto & 0xFF)) if (proto >> 8) or not draw(st.booleans()) else bytes((proto,))
    return hdr + p + bytes((code, ident, length >> 8, length & 0xFF)) + data


@SETTINGS
@given(frames=st.lists(st.one_of(st.binary(max_size=80), control_frames()), min_size=1, max_size=8),
       to_server=st.booleans())
def test_hostile_frames_do_not_break_an_opened_link(frames, to_server):
    p = _opened_pair(3)
    link = p.server if to_server else p.client
    for f in frames:
        link.frame_received(f, p.now)  # must not raise
        link.frames_to_send()
    st_ = link.status()
    assert st_["phase"] == "network" and st_["lcp"] == "opened" and st_["ipcp"] == "opened", (st_, frames)
    assert all(type(e).__name__ != "LinkDown" for e in iter(link.next_event, None))


@SETTINGS
@given(frames=st.lists(st.binary(max_size=60), max_size=12), role=st.sampled_from(["client", "server"]),
       step=st.integers(0, 30))
def test_random_bytes_at_any_phase_never_raise(frames, role, step):
    p = ppp_pair.Pair(seed=5)
    p.open()
    # Stop the honest exchange part-way, then inject.
    for _ in range(step):
        moved = p._carry(p.client, p.server, "c>s") + p._carry(p.server, p.client, "s>c")
        if not moved:
            break
    link = p.client if role == "client" else p.server
    for f in frames:
        link.frame_received(f, p.now)
    link.frames_to_send()
    link.handle_timer(p.now + 100.0)
    link.status()


@SETTINGS
@given(ops=st.lists(st.tuples(st.integers(0, 10), st.integers(0, 255), st.binary(max_size=12)), max_size=40))
def test_automaton_survives_any_sequence(ops):
    # h2-style: every (state, input) sequence leaves a valid state and never raises.
    class H(fsm.OptionHandler):
        def request_options(self):
            return [(1, b"\x05\xdc")]

        def judge(self, t, v, pending):
            return (fsm.ACK, v) if t == 1 else (fsm.REJ, v)

        def on_ack(self, o):
            pass

        def on_nak(self, t, v):
            pass

        def on_reject(self, t, v):
            pass

    class L:
        def tlu(self, f, now):
            pass
        tld = tls = tlf = tlu

    sent = []
    f = fsm.Fsm("X", H(), L(), lambda c, i, d: sent.append(c))
    f.handler.fsm = f
    now = 0.0
    for op, ident, data in ops:
        now += 1.0
        if op == 0:
            f.open(now)
        elif op == 1:
            f.up(now)
        elif op == 2:
            f.down(now)
        elif op == 3:
            f.close(now)
        elif op == 4:
            f.timeout(now + 5.0)
        elif op == 5:
            f.packet(fsm.CONF_ACK, f.req_ident if f.req_ident is not None else ident, f.req_data, now)
        else:
            f.packet(op - 5, ident, data, now)
        assert 0 <= f.state <= 9
        if f.state in (fsm.CLOSING, fsm.STOPPING, fsm.REQ_SENT, fsm.ACK_RCVD, fsm.ACK_SENT):
            assert f.deadline is not None
        else:
            assert f.deadline is None or f.state == fsm.STOPPING


@SETTINGS
@given(opts=st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=10))
def test_option_codec_round_trip(opts):
    assert parse_options(build_options(opts)) == opts


@SETTINGS
@given(data=st.binary(max_size=40))
def test_option_parser_is_strict(data):
    try:
        opts = parse_options(data)
    except PppError:
        return
    assert build_options(opts) == data  # what parses re-encodes to the same octets: nothing skipped


@SETTINGS
@given(data=st.binary(max_size=8))
def test_split_never_reads_past_the_end(data):
    try:
        proto, off = split(data)
    except PppError:
        return
    assert off <= len(data) and proto & 1
