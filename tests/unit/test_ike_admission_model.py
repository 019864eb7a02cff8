"""sluice.ike.admission.HalfOpenTable under random operation sequences (Hypothesis): its counts, indexes,
deadlines and queue always agree with a plain model, and every structure stays bounded."""

from hypothesis import given, settings, strategies as st

from sluice.ike.admission import ADMIT, UNVERIFIED, VERIFIED, HalfOpenTable


class Cfg:
    half_open_total = 6
    half_open_per_ip = 3
    half_open_queue = 2
    half_open_queue_wait = 10.0
    half_open_timeout = 45.0
    half_open_timeout_busy = 5.0
    half_open_busy = None


class FakeSa:
    def __init__(self, ip, now):
        self.peer = (ip, 500)
        self.created = now
        self.half_open_until = None
        self.admit = self.admit_ix = self.admit_ticket = self.admit_fifo = None


class Rng:
    def __init__(self):
        self.s = 1

    def __call__(self, n):
        out = bytearray()
        for _ in range(n):
            self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
            out.append(self.s >> 16 & 0xFF)
        return bytes(out)


OPS = st.lists(st.tuples(st.sampled_from(["new", "verify", "done", "tick", "queue"]), st.integers(0, 3),
                         st.integers(0, 50)), max_size=120)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ops=OPS)
def test_half_open_table_agrees_with_a_model(ops):
    ho = HalfOpenTable(Cfg(), Rng())
    live = []
    now = 0.0
    n = 0
    for op, ipn, r in ops:
        ip = "10.0.0.%d" % ipn
        if op == "new":
            if ho.check(ip) != ADMIT:
                continue
            v = ho.victim()
            if v is not None:
                assert v in live
                ho.remove(v)
                live.remove(v)
            sa = FakeSa(ip, now)
            ho.add(sa, now)
            live.append(sa)
        elif op == "verify" and live:
            ho.verified(live[r % len(live)], now)
        elif op == "done" and live:
            sa = live.pop(r % len(live))
            ho.remove(sa)
        elif op == "tick":
            now += r / 5.0
            for sa in ho.expired(now):
                assert sa in live and sa.half_open_until <= now
                ho.remove(sa)
                live.remove(sa)
        elif op == "queue":
            n += 1
            ho.enqueue((n, ip), b"x" * r, None, (ip, 500), now)
        while ho.freed:
            fip = ho.freed.pop()
            while ho.check(fip) == ADMIT and ho.dequeue(fip, now) is not None:
                pass
        # Invariants.
        assert len(ho) == len(live) <= Cfg.half_open_total
        for k, sa in enumerate(ho._all):
            assert sa.admit_ix == k and sa.admit in (UNVERIFIED, VERIFIED)
        per = {}
        for sa in live:
            per[sa.peer[0]] = per.get(sa.peer[0], 0) + 1
            assert sa.half_open_until > now or sa.half_open_until <= now   # a number
        assert per == ho._per_ip and max(per.values() or [0]) <= Cfg.half_open_per_ip
        for f in ho._fifos.values():
            assert f.live == len([sa for sa in live if sa.admit_fifo is f and sa.admit_ticket is not None])
            assert len(f.items) - f.head <= 2 * f.live + 64
        timed = [sa.half_open_until for sa in live if sa.admit_ticket is not None]
        expect = min(timed) if timed else None
        assert ho.deadline() == expect
        assert ho.queued() <= Cfg.half_open_total and len(ho._queued_keys) == ho.queued()
        for q in ho._queue.values():
            assert 0 < len(q) <= Cfg.half_open_queue
