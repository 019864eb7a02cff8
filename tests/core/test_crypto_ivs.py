"""CBC IVs drawn from the rng in blocks (sluice.hal.crypto.ivs): every random byte used once, one rng call
per IV_CHUNK bytes instead of one per packet, and the ESP packets still carry those bytes (pure backend,
where the IV on the wire is the random block itself; RFC 3602 3). Runs under MicroPython too."""

try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.hal.crypto import ivs
from sluice.hal.crypto.pure import backend as pure


class CountingRng:
    def __init__(self):
        self.calls = []
        self._rng = harness.SeededRng(11)

    def __call__(self, n):
        self.calls.append(n)
        return self._rng(n)


def test_each_random_byte_is_handed_out_once_in_order():
    rng = CountingRng()
    ref = harness.SeededRng(11)
    src = ivs.IvSource(rng, chunk=64)
    got = b"".join(src.take(16) for _ in range(12))
    assert got == ref(64) + ref(64) + ref(64)
    assert rng.calls == [64, 64, 64]


def test_a_block_that_does_not_fit_the_rest_of_the_chunk_starts_a_new_one():
    rng = CountingRng()
    src = ivs.IvSource(rng, chunk=40)
    a, b, c = src.take(16), src.take(16), src.take(16)  # 32 of 40 used, then 8 left: refill
    assert rng.calls == [40, 40] and len(set((a, b, c))) == 3


def test_an_rng_that_returns_a_fixed_block_still_works_and_a_short_one_is_refused():
    fixed = bytes(range(16))
    src = ivs.IvSource(lambda n: fixed)  # what the known-answer tests pass
    assert src.take(16) == fixed and src.take(16) == fixed
    short = ivs.IvSource(lambda n: b"\x01" * 8)
    harness.raises(ValueError, short.take, 16)


def test_cbc_transform_draws_one_chunk_per_64_aes_packets():
    rng = CountingRng()
    ref = harness.SeededRng(11)
    t = pure.esp_transform("aes128-sha1", bytes(16), bytes(20), b"", rng)
    hdr = b"\x00\x00\x10\x00\x00\x00\x00\x01"
    ivs_seen = [t.seal(hdr, bytes(16))[8:24] for _ in range(65)]
    assert rng.calls == [ivs.IV_CHUNK, ivs.IV_CHUNK]
    first = ref(ivs.IV_CHUNK)
    assert ivs_seen[:64] == [first[i:i + 16] for i in range(0, ivs.IV_CHUNK, 16)]
    assert ivs_seen[64] == ref(ivs.IV_CHUNK)[:16]
    assert len(set(ivs_seen)) == 65
