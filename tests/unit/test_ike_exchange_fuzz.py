"""Mutated messages at every step of a real exchange: counted and dropped, never an exception, never a state
the peer did not authenticate (Hypothesis, derandomized so that runs are repeatable)."""

import os
import sys

from hypothesis import given, settings, strategies as st

from sluice.hal import crypto

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import ike_pair  # noqa: E402

BE = crypto.backend("openssl")


def _mutate(data, how, pos, val):
    pos %= max(1, len(data))
    if how == 0:
        return data[:pos] + bytes((data[pos] ^ (val or 1),)) + data[pos + 1:]
    if how == 1:
        return data[:pos]
    if how == 2:
        return data[:pos] + bytes((val,)) * 7 + data[pos:]
    # Keep the header (so that the SA is found) and randomise the rest.
    return data[:28] + bytes(((val + k * 31) & 0xFF) for k in range(len(data) - 28))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(step=st.integers(0, 8), how=st.integers(0, 3), pos=st.integers(0, 4000), val=st.integers(0, 255),
       nat=st.booleans())
def test_one_mutated_message_never_breaks_a_side(step, how, pos, val, nat):
    p = ike_pair.Pair(backend=BE, nat=nat)
    seen = []

    def tamper(direction, data):
        seen.append(direction)
        if len(seen) - 1 != step:
            return ()
        return (_mutate(data, how, pos, val),)   # the genuine message follows the forged one

    p.tamper = tamper
    p.connect()
    p.advance(60.0)
    for t in (p.client, p.server):
        assert t.stats["internal_error"] == 0
    # The genuine exchange still completes (the forged message changed nothing that mattered), or a forged
    # copy of a plaintext message that arrived first was taken for the real one and the retransmission
    # sorted it out; in every case both sides agree.
    ce = [e for e in p.events("client") if type(e).__name__ == "ChildSaUp"]
    se = [e for e in p.events("server") if type(e).__name__ == "ChildSaUp"]
    if ce and se:
        assert ce[-1].spi_in == se[-1].spi_out and ce[-1].enc_in == se[-1].enc_out
