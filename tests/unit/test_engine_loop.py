"""The event loop: readers registered once (epoll, or poll/select where epoll is missing), timers, signals.

Every test runs against each poller the loop can fall back to, with real socketpairs (no timing asserted).
"""

import os
import signal
import socket

import pytest

from sluice.engine import loop as loopmod
from sluice.engine.loop import EventLoop

POLLERS = [p for p in (loopmod._Epoll, loopmod._Poll, loopmod._Select)
           if hasattr(loopmod.select, {"epoll": "epoll", "poll": "poll", "select": "select"}[p.name])]


@pytest.fixture(params=POLLERS, ids=lambda p: p.name)
def loop(request, monkeypatch):
    monkeypatch.setattr(loopmod, "_poller", request.param)
    lp = EventLoop()
    assert lp.poller.name == request.param.name
    yield lp
    lp.close()


def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    return a, b


def drain(sock):
    n = 0
    while True:
        try:
            sock.recv(100)
        except BlockingIOError:
            return n
        n += 1


def test_default_poller_is_epoll_on_linux():
    lp = EventLoop()
    try:
        assert lp.poller.name == ("epoll" if hasattr(loopmod.select, "epoll") else "poll")
    finally:
        lp.close()


def test_reader_runs_when_readable_and_not_otherwise(loop):
    a, b = pair()
    seen = []
    loop.add_reader(a, lambda now: seen.append(drain(a)))
    loop.run_once(max_wait=0)
    assert seen == []
    b.send(b"x")
    b.send(b"y")
    loop.run_once(max_wait=1.0)
    assert seen == [2]
    a.close(), b.close()


def test_level_triggered_a_reader_that_leaves_data_is_woken_again(loop):
    a, b = pair()
    got = []
    loop.add_reader(a, lambda now: got.append(a.recv(10)))  # one datagram per wake-up
    for m in (b"1", b"2", b"3"):
        b.send(m)
    for _ in range(3):
        loop.run_once(max_wait=1.0)
    assert got == [b"1", b"2", b"3"]
    a.close(), b.close()


def test_add_reader_again_replaces_the_callback(loop):
    a, b = pair()
    first, second = [], []
    loop.add_reader(a, lambda now: first.append(drain(a)))
    loop.add_reader(a.fileno(), lambda now: second.append(drain(a)))
    b.send(b"x")
    loop.run_once(max_wait=1.0)
    assert first == [] and second == [1]
    a.close(), b.close()


def test_removed_reader_is_not_called_and_removing_twice_is_harmless(loop):
    a, b = pair()
    seen = []
    loop.add_reader(a, lambda now: seen.append(1))
    loop.remove_reader(a)
    loop.remove_reader(a)
    b.send(b"x")
    loop.run_once(max_wait=0.01)
    assert seen == []
    a.close(), b.close()


def test_a_reader_removed_by_an_earlier_callback_in_the_same_round_is_skipped(loop):
    a, b = pair()
    c, d = pair()
    seen = []

    def first(now):
        seen.append("a")
        drain(a)
        loop.remove_reader(c)

    def second(now):
        seen.append("c")
        drain(c)
        loop.remove_reader(a)

    loop.add_reader(a, first)
    loop.add_reader(c, second)
    b.send(b"x")
    d.send(b"y")
    loop.run_once(max_wait=1.0)
    assert seen in (["a"], ["c"])
    for s in (a, b, c, d):
        s.close()


def test_fd_closed_before_remove_and_its_number_reused(loop):
    a, b = pair()
    fd = a.fileno()
    loop.add_reader(a, lambda now: None)
    a.close()
    loop.remove_reader(fd)  # the kernel already forgot it: no error
    b.close()
    # The next descriptors get the freed numbers: a new reader on them must work.
    c, d = pair()
    seen = []
    loop.add_reader(c, lambda now: seen.append(drain(c)))
    d.send(b"z")
    loop.run_once(max_wait=1.0)
    assert seen == [1]
    c.close(), d.close()


def test_timers_run_in_order_and_a_failing_callback_does_not_stop_the_loop():
    errors = []
    lp = EventLoop(on_error=errors.append)
    try:
        order = []
        now = loopmod.monotonic()
        lp.call_at(now - 1, lambda t: order.append(2))
        lp.call_at(now - 2, lambda t: order.append(1))
        lp.call_at(now - 0.5, lambda t: 1 / 0)
        lp.call_at(None, lambda t: order.append("never"))
        lp.run_once(max_wait=0)
        assert order == [1, 2]
        assert lp.errors == 1 and isinstance(errors[0], ZeroDivisionError)
    finally:
        lp.close()


def test_signal_is_handled_from_the_loop(loop):
    seen = []
    old = signal.getsignal(signal.SIGUSR1)
    try:
        loop.on_signal(signal.SIGUSR1, lambda: seen.append("usr1"))
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(5):
            loop.run_once(max_wait=0.2)
            if seen:
                break
        assert seen == ["usr1"]
    finally:
        signal.signal(signal.SIGUSR1, old)
        signal.set_wakeup_fd(-1)


def test_run_until(loop):
    n = []
    loop.call_at(loopmod.monotonic(), lambda t: n.append(1))
    loop.run(until=lambda: bool(n))
    assert n == [1]


def test_writer_runs_while_set_and_shares_the_fd_with_a_reader(loop):
    a, b = pair()
    got = []
    loop.add_reader(a, lambda now: got.append(("r", drain(a))))
    loop.add_writer(a, lambda now: got.append(("w", None)))
    loop.run_once(max_wait=1.0)
    assert got == [("w", None)]  # nothing to read yet; a datagram socket has room to write
    b.send(b"x")
    del got[:]
    loop.run_once(max_wait=1.0)
    assert sorted(got, key=str) == [("r", 1), ("w", None)]
    loop.remove_writer(a)
    loop.remove_writer(a)
    del got[:]
    b.send(b"y")
    loop.run_once(max_wait=1.0)
    assert got == [("r", 1)]  # the reader's registration survived the writer's removal
    loop.remove_reader(a)
    b.send(b"z")
    loop.run_once(max_wait=0.01)
    assert got == [("r", 1)]
    a.close(), b.close()


def test_a_writer_alone_and_removed_again(loop):
    a, b = pair()
    got = []
    loop.add_writer(a.fileno(), lambda now: got.append(1))
    loop.run_once(max_wait=1.0)
    loop.remove_writer(a)
    loop.run_once(max_wait=0.01)
    assert got == [1]
    a.close(), b.close()
