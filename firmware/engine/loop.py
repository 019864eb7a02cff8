"""The engine's single-threaded event loop: file descriptors, one timer heap, signals.

Protocol machines report their next deadline through `get_timer()`; the loop keeps a heap of
(deadline, machine-owner) entries and re-asks the owner when an entry comes due, so stale entries cost
nothing and the data path never touches timers.

File descriptors are registered once with the kernel (`epoll`, level-triggered, so a reader that leaves
packets queued is woken again like with select): an iteration of a busy data path costs one `epoll_wait`
whatever the number of sockets, instead of building and scanning a list of every fd per `select`.
Where epoll is missing (not Linux, MicroPython's unix port) `poll` with the same register-once shape is
used, and `select` as the last resort. One registration per fd carries both interests (readable, and
writable while a writer waits for room); an fd that reports an error or hang-up wakes both, as select does.
"""

import heapq
import os
import select
import time

from sluice.hal.platform.signals import signal

monotonic = time.monotonic


# Interest and readiness bits, as epoll and poll number them on Linux (select's results are mapped to them).
_IN = getattr(select, "EPOLLIN", getattr(select, "POLLIN", 1))
_OUT = getattr(select, "EPOLLOUT", getattr(select, "POLLOUT", 4))
_FAIL = (getattr(select, "EPOLLERR", getattr(select, "POLLERR", 8)) | getattr(select, "EPOLLHUP", getattr(
    select, "POLLHUP", 16)) | getattr(select, "POLLNVAL", 32))
_READY_IN = _IN | _FAIL  # select reports an fd with an error or hang-up as readable and writable: so do we
_READY_OUT = _OUT | _FAIL


class _Epoll:
    """fd registrations kept in the kernel; wait() gives the ready (fd, events) pairs."""

    __slots__ = ("_ep",)
    name = "epoll"

    def __init__(self):
        self._ep = select.epoll()

    def set(self, fd, mask, old):
        """Watch fd for `mask` (_IN, _OUT or both; 0: stop) where it was watched for `old`."""
        ep = self._ep
        try:
            if not mask:
                ep.unregister(fd)
            elif old:
                ep.modify(fd, mask)
            else:
                ep.register(fd, mask)
        except FileExistsError:
            ep.modify(fd, mask)  # a number reused before its old registration was dropped
        except FileNotFoundError:
            if mask:
                ep.register(fd, mask)  # closed and reopened under the same number: the kernel forgot it
        except (OSError, ValueError):
            pass  # closed before remove_*: the kernel dropped it with its last reference

    def wait(self, timeout):
        return self._ep.poll(timeout)

    def close(self):
        self._ep.close()


class _Poll:
    __slots__ = ("_p",)
    name = "poll"

    def __init__(self):
        self._p = select.poll()

    def set(self, fd, mask, old):
        if mask:
            self._p.register(fd, mask)  # poll's register replaces an existing one
        else:
            try:
                self._p.unregister(fd)
            except KeyError:
                pass

    def wait(self, timeout):
        return self._p.poll(timeout * 1000.0)

    def close(self):
        pass


class _Select:
    __slots__ = ("_r", "_w")
    name = "select"

    def __init__(self):
        self._r = []
        self._w = []

    def set(self, fd, mask, old):
        for lst, bit in ((self._r, _IN), (self._w, _OUT)):
            if mask & bit and fd not in lst:
                lst.append(fd)
            elif not mask & bit and fd in lst:
                lst.remove(fd)

    def wait(self, timeout):
        r, w, _ = select.select(self._r, self._w, [], timeout)
        if not w:
            return [(fd, _IN) for fd in r]
        ev = {}
        for fd in r:
            ev[fd] = _IN
        for fd in w:
            ev[fd] = ev.get(fd, 0) | _OUT
        return list(ev.items())

    def close(self):
        pass


def _poller():
    if hasattr(select, "epoll"):
        return _Epoll()
    if hasattr(select, "poll"):
        return _Poll()
    return _Select()


class EventLoop:
    def __init__(self, on_error=None):
        self.on_error = on_error  # on_error(exc): a callback raised; the loop carries on
        self.errors = 0
        self.readers = {}  # fd -> callback(now)
        self.writers = {}  # fd -> callback(now), while a socket has output waiting for room
        self.timers = []  # heap of (deadline, seq, callback)
        self._seq = 0
        self.running = False
        self.signals = []
        self.poller = _poller()
        self._mask = {}  # fd -> the interest registered with the poller (_IN, _OUT)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.add_reader(self._wake_r, self._drain_wakeup)
        self._signal_handlers = {}

    def add_reader(self, fd, callback):
        """Call callback(now) whenever fd (an int or anything with fileno()) is readable; replaces a
        callback already set for fd."""
        fd = fd if isinstance(fd, int) else fd.fileno()
        self.readers[fd] = callback
        self._interest(fd, _IN, True)

    def remove_reader(self, fd):
        fd = fd if isinstance(fd, int) else fd.fileno()
        if self.readers.pop(fd, None) is not None:
            self._interest(fd, _IN, False)

    def add_writer(self, fd, callback):
        """Call callback(now) whenever fd can take output (while a socket has output waiting for room)."""
        fd = fd if isinstance(fd, int) else fd.fileno()
        self.writers[fd] = callback
        self._interest(fd, _OUT, True)

    def remove_writer(self, fd):
        fd = fd if isinstance(fd, int) else fd.fileno()
        if self.writers.pop(fd, None) is not None:
            self._interest(fd, _OUT, False)

    def _interest(self, fd, bit, on):
        old = self._mask.get(fd, 0)
        mask = (old | bit) if on else (old & ~bit)
        if on or mask != old:
            # Registering again when already on costs one syscall on the control path and repairs a
            # registration the kernel dropped when an fd was closed without remove_* and its number reused.
            self.poller.set(fd, mask, old)
        if mask:
            self._mask[fd] = mask
        else:
            self._mask.pop(fd, None)

    def call_at(self, deadline, callback):
        """Run callback(now) at or after deadline (monotonic seconds)."""
        if deadline is None:
            return
        self._seq += 1
        heapq.heappush(self.timers, (deadline, self._seq, callback))

    def on_signal(self, signum, callback):
        """Run callback() from the loop (not from the signal handler) when signum arrives."""
        self._signal_handlers[signum] = callback
        signal.signal(signum, lambda s, f: self.signals.append(s))
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def _drain_wakeup(self, now):
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def stop(self):
        self.running = False

    def run_once(self, max_wait=1.0):
        now = monotonic()
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, _, cb = heapq.heappop(timers)
            self._call(cb, now)
        wait = max_wait
        if timers:
            wait = max(0.0, min(wait, timers[0][0] - now))
        try:
            ready = self.poller.wait(wait)
        except InterruptedError:
            ready = ()
        now = monotonic()
        readers, writers = self.readers, self.writers
        for fd, ev in ready:
            if ev & _READY_IN:
                cb = readers.get(fd)
                if cb is not None:
                    self._call(cb, now)
            if ev & _READY_OUT:
                cb = writers.get(fd)
                if cb is not None:
                    self._call(cb, now)
        while self.signals:
            s = self.signals.pop(0)
            handler = self._signal_handlers.get(s)
            if handler is not None:
                self._call(lambda now: handler(), now)

    def _call(self, cb, now):
        # A bug in one handler must not take down every tunnel the daemon carries: report it and go on.
        try:
            cb(now)
        except Exception as e:
            self.errors += 1
            if self.on_error is None:
                raise
            self.on_error(e)

    def run(self, until=None):
        """Run until stop() or until the callable `until()` is true."""
        self.running = True
        while self.running and not (until and until()):
            self.run_once()

    def close(self):
        self.poller.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
