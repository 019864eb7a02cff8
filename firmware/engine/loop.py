"""The engine's single-threaded event loop: file descriptors, one timer heap, signals.

Protocol machines report their next deadline through `get_timer()`; the loop keeps a heap of
(deadline, machine-owner) entries and re-asks the owner when an entry comes due, so stale entries cost
nothing and the data path never touches timers.

File descriptors are registered once with the kernel (`epoll`, level-triggered, so a reader that leaves
packets queued is woken again like with select): an iteration of a busy data path costs one `epoll_wait`
whatever the number of sockets, instead of building and scanning a list of every fd per `select`.
Where epoll is missing (not Linux, MicroPython's unix port) `poll` with the same register-once shape is
used, and `select` as the last resort.
"""

import heapq
import os
import select
import signal
import time

monotonic = time.monotonic


class _Epoll:
    """fd registrations kept in the kernel; wait() gives the ready (fd, events) pairs."""

    __slots__ = ("_ep",)
    name = "epoll"

    def __init__(self):
        self._ep = select.epoll()

    def register(self, fd):
        try:
            self._ep.register(fd, select.EPOLLIN)
        except FileExistsError:
            pass  # already watched: add_reader only replaced the callback

    def unregister(self, fd):
        try:
            self._ep.unregister(fd)
        except (OSError, ValueError):
            pass  # closed before remove_reader: the kernel dropped it with its last reference

    def wait(self, timeout):
        return self._ep.poll(timeout)

    def close(self):
        self._ep.close()


class _Poll(_Epoll):
    __slots__ = ()
    name = "poll"

    def __init__(self):
        self._ep = select.poll()

    def register(self, fd):
        self._ep.register(fd, select.POLLIN)  # poll's register replaces an existing one

    def unregister(self, fd):
        try:
            self._ep.unregister(fd)
        except KeyError:
            pass

    def wait(self, timeout):
        return self._ep.poll(timeout * 1000.0)

    def close(self):
        pass


class _Select:
    __slots__ = ("_fds",)
    name = "select"

    def __init__(self):
        self._fds = []

    def register(self, fd):
        if fd not in self._fds:
            self._fds.append(fd)

    def unregister(self, fd):
        if fd in self._fds:
            self._fds.remove(fd)

    def wait(self, timeout):
        ready, _, _ = select.select(self._fds, [], [], timeout)
        return [(fd, 1) for fd in ready]

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
        self.timers = []  # heap of (deadline, seq, callback)
        self._seq = 0
        self.running = False
        self.signals = []
        self.poller = _poller()
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
        self.poller.register(fd)

    def remove_reader(self, fd):
        fd = fd if isinstance(fd, int) else fd.fileno()
        if self.readers.pop(fd, None) is not None:
            self.poller.unregister(fd)

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
        readers = self.readers
        for fd, _ in ready:
            cb = readers.get(fd)
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
