"""The engine's single-threaded event loop: file descriptors, one timer heap, signals.

Protocol machines report their next deadline through `get_timer()`; the loop keeps a heap of
(deadline, machine-owner) entries and re-asks the owner when an entry comes due, so stale entries cost
nothing and the data path never touches timers.
"""

import heapq
import os
import select
import signal
import time

monotonic = time.monotonic


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
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.readers[self._wake_r] = self._drain_wakeup
        self._signal_handlers = {}

    def add_reader(self, fd, callback):
        self.readers[fd if isinstance(fd, int) else fd.fileno()] = callback

    def remove_reader(self, fd):
        self.readers.pop(fd if isinstance(fd, int) else fd.fileno(), None)

    def add_writer(self, fd, callback):
        self.writers[fd if isinstance(fd, int) else fd.fileno()] = callback

    def remove_writer(self, fd):
        self.writers.pop(fd if isinstance(fd, int) else fd.fileno(), None)

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
            ready, writable, _ = select.select(list(self.readers), list(self.writers), [], wait)
        except InterruptedError:
            ready, writable = [], []
        now = monotonic()
        for fd in ready:
            cb = self.readers.get(fd)
            if cb is not None:
                self._call(cb, now)
        for fd in writable:
            cb = self.writers.get(fd)
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
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
