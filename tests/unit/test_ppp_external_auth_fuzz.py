"""Hypothesis over PPP server authentication waiting for an external (RADIUS) verdict: whatever the peer
sends and whenever verdicts (right, stale or repeated) arrive, nothing raises, at most one verdict settles
the link, a stale one (including one asked before a replayed Configure-Request renegotiated LCP) never
does, and the wait ends within auth_wait."""

import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))

import ppp_pair  # noqa: E402
from sluice.ppp.events import VerifyCredentials  # noqa: E402

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("frame"), st.binary(max_size=60)),
    st.tuples(st.just("replay"), st.integers(0, 20)),
    st.tuples(st.just("verdict"), st.booleans()),
    st.tuples(st.just("stale"), st.booleans()),
    st.tuples(st.just("wait"), st.floats(0.0, 5.0)),
), max_size=12)


@SETTINGS
@given(auth=st.sampled_from(["pap", "chap", "mschapv2"]), actions=ACTIONS)
def test_waiting_for_a_verdict_survives_anything(auth, actions):
    p = ppp_pair.Pair(client_cfg=ppp_pair.client_config(auth=(auth,), username="rita", password="pw"),
                      server_cfg=ppp_pair.server_config(auth=(auth,), external_auth=True, auth_wait=10.0))
    seen = []

    def tap(direction, frame):
        if direction == "c>s":
            seen.append(frame)
        return frame
    p.tamper = tap
    p.open()
    p.run(1.0)
    asks = [e for e in p.events["server"] if isinstance(e, VerifyCredentials)]
    assert len(asks) == 1
    settled = 0
    for kind, arg in actions:
        if kind == "frame":
            p.server.frame_received(arg, p.now)
        elif kind == "replay" and seen:
            p.server.frame_received(seen[arg % len(seen)], p.now)
        elif kind == "verdict":
            p._drain_events()
            renegotiated = len([e for e in p.events["server"] if isinstance(e, VerifyCredentials)]) > 1
            kw = {"authenticator_response": "S=" + "A" * 40} if auth == "mschapv2" else {}
            took = p.server.auth_result(p.now, asks[0], arg, **kw)
            assert not (took and renegotiated), "a verdict on credentials from before LCP renegotiated settled"
            settled += bool(took)
        elif kind == "stale":
            assert not p.server.auth_result(p.now, VerifyCredentials(auth, "rita"), arg)
        else:
            p.now += arg
            if p.server.get_timer() is not None and p.server.get_timer() <= p.now:
                p.server.handle_timer(p.now)
        p.server.frames_to_send()
    assert settled <= 1
    p.run(p.now + 15)
    kinds = p.kinds("server")
    assert kinds.count("VerifyCredentials") >= 1  # a replayed Configure-Request renegotiates and asks again
    assert "Authenticated" in kinds or "AuthFailed" in kinds or "LinkDown" in kinds, kinds
    assert p.now < 40
