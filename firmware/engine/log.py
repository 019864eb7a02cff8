"""A small logger: one line per event to stderr (procd/netifd forward it to syslog) or to syslog directly.

The stdlib `logging` package costs about a megabyte resident for features a daemon with two log
destinations never uses. Nothing on the per-packet path logs.

One event, one line. Every string argument passes through `sluice.safe.safe_text` (control characters and
newlines escaped, length bounded) before it is formatted in, so text a peer chose (a user name, a Host
Name, a StopCCN message) can never write a line of its own into the log, `status`'s recent events or
syslog. The format strings are ours and are left alone.

Repeated events that a peer can trigger at will (refused tunnels and sessions, failed authentications,
malformed packets, evictions) go through `limited(key, level, msg, *args)`: per `key`, the first `burst`
lines of each `window` seconds are written, the rest are counted, and when the window ends one line says how
many were folded and shows the last of them. As a safety net for the calls nobody thought of, every other
line is limited the same way by its format string, with a larger burst (`auto_burst`, 20 per window; None
turns it off): a flood of any one kind of line costs at most that many lines and a summary per window. `flush(now)` writes the summaries of windows that ended (the
daemon calls it on a timer; `next_flush()` says when it is next due); a new event of the same key after its
window also writes the summary first.
"""

import sys
import time

from sluice.safe import safe_text

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_NAMES = {DEBUG: "debug", INFO: "info", WARNING: "warning", ERROR: "error"}
ARG_LIMIT = 2048  # one argument's share of a line, after escaping
WINDOW = 10.0  # seconds per rate-limit window
BURST = 5  # lines per key and window before folding
AUTO_BURST = 20  # lines per format string and window before folding, for calls not made through limited()
MAX_KEYS = 256  # keys are ours (not peer-chosen), but bound them anyway


def _strip_specs(msg):
    r"""msg without its %-conversions (flags, width or *, .precision, then a letter or %), as
    re.sub(r"%[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[a-zA-Z%]", "", msg) would: without `re`, which the daemon needs
    nowhere else (about 0.5 MB resident)."""
    out = []
    i, n = 0, len(msg)
    while i < n:
        j = i + 1
        if msg[i] == "%":
            while j < n and msg[j] in "-#0 +":
                j += 1
            if j < n and msg[j] == "*":
                j += 1
            else:
                while j < n and "0" <= msg[j] <= "9":
                    j += 1
            if j + 1 < n and msg[j] == "." and "0" <= msg[j + 1] <= "9":
                j += 1
                while j < n and "0" <= msg[j] <= "9":
                    j += 1
            if j < n and ("a" <= msg[j] <= "z" or "A" <= msg[j] <= "Z" or msg[j] == "%"):
                i = j + 1
                continue
            j = i + 1
        out.append(msg[i:j])
        i = j
    return "".join(out)


_FOLDABLE = {}


def _foldable(msg):
    """True for a format string that names a kind of event: enough literal text that folding lines by it
    folds like with like. "%s" alone (config warnings, reasons passed whole) is never folded."""
    r = _FOLDABLE.get(msg)
    if r is None:
        r = len(_strip_specs(msg).strip(" :,.;-()")) >= 8
        if len(_FOLDABLE) < 1024:
            _FOLDABLE[msg] = r
    return r


def _safe_arg(a):
    if a is None or isinstance(a, (bool, int, float)):
        return a
    return safe_text(a if isinstance(a, str) else str(a), ARG_LIMIT)


class _Fold:
    __slots__ = ("start", "shown", "folded", "level", "last")

    def __init__(self, start):
        self.start = start
        self.shown = 0
        self.folded = 0
        self.level = DEBUG
        self.last = None  # (msg, args) of the last folded event


class Log:
    __slots__ = ("tag", "level", "stream", "syslog", "recent", "folds", "window", "burst", "auto_burst", "clock")

    def __init__(self, tag="sluice", level=INFO, stream=None, use_syslog=False, window=WINDOW, burst=BURST,
                 clock=None, auto_burst=AUTO_BURST):
        self.tag = tag
        self.level = level
        self.stream = stream if stream is not None else sys.stderr
        self.syslog = None
        if use_syslog:
            import syslog

            syslog.openlog(tag, syslog.LOG_PID, syslog.LOG_DAEMON)
            self.syslog = syslog
        self.recent = []  # the last few warnings/errors, shown by `sluice status`
        self.folds = {}  # key -> _Fold
        self.window = window
        self.burst = burst
        self.auto_burst = auto_burst
        self.clock = clock or time.monotonic

    def log(self, level, msg, *args):
        if level < self.level:
            return
        if self.auto_burst is not None and level > DEBUG and _foldable(msg):
            self._limit(("auto", msg), self.auto_burst, level, msg, args, self.clock())
            return
        self._write(level, msg, args)

    def _write(self, level, msg, args):
        if args:
            msg = msg % tuple(_safe_arg(a) for a in args)
        if level >= WARNING:
            self.recent.append((time.time(), _NAMES[level], msg))
            del self.recent[:-10]
        if self.syslog is not None:
            prio = {DEBUG: 7, INFO: 6, WARNING: 4, ERROR: 3}[level]
            self.syslog.syslog(prio, msg)
            return
        self.stream.write("%s %s: %s: %s\n" % (time.strftime("%H:%M:%S"), self.tag, _NAMES[level], msg))
        self.stream.flush()

    def debug(self, msg, *args):
        self.log(DEBUG, msg, *args)

    def info(self, msg, *args):
        self.log(INFO, msg, *args)

    def warning(self, msg, *args):
        self.log(WARNING, msg, *args)

    def error(self, msg, *args):
        self.log(ERROR, msg, *args)

    # -- rate-limited events -------------------------------------------------------------------------------

    def event(self, key, level, text):
        """A line an endpoint formatted (its peer strings made safe here too), folded by its kind `key`: at most
        `burst` lines per window for warnings and errors, `auto_burst` for the rest, then one summary."""
        if level < self.level:
            return
        if key is None:
            self._write(level, "%s", (text,))
            return
        burst = self.burst if level >= WARNING else (self.auto_burst or self.burst)
        self._limit(("event", key), burst, level, "%s", (text,), self.clock())

    def limited(self, key, level, msg, *args, now=None):
        """Log like log(), at most `burst` lines per `key` and `window`; True when this one was written."""
        if level < self.level:
            return False
        return self._limit(key, self.burst, level, msg, args, self.clock() if now is None else now)

    def _limit(self, key, burst, level, msg, args, now):
        f = self.folds.get(key)
        if f is not None and now - f.start >= self.window:
            self._summary(key, f, now)
            f = None
        if f is None:
            if len(self.folds) >= MAX_KEYS:
                self.flush(now, force=True)
            f = self.folds[key] = _Fold(now)
        if f.shown < burst:
            f.shown += 1
            self._write(level, msg, args)
            return True
        f.folded += 1
        if level > f.level:
            f.level = level
        f.last = (msg, args)
        return False

    def folded(self, key):
        """How many events of `key` the current window has folded so far."""
        f = self.folds.get(key)
        return f.folded if f is not None else 0

    def flush(self, now=None, force=False):
        """Write the summary of every window that has ended (every window with `force`); returns how many."""
        if now is None:
            now = self.clock()
        n = 0
        for key, f in list(self.folds.items()):  # at most MAX_KEYS
            if force or now - f.start >= self.window:
                n += self._summary(key, f, now)
        return n

    def next_flush(self):
        """When the next summary is due (monotonic seconds), or None when nothing has been folded."""
        best = None
        for f in self.folds.values():
            if f.folded:
                d = f.start + self.window
                if best is None or d < best:
                    best = d
        return best

    def _summary(self, key, f, now):
        del self.folds[key]
        if not f.folded:
            return 0
        msg, args = f.last
        last = msg % tuple(_safe_arg(a) for a in args) if args else msg
        name = key[1].split("%")[0].rstrip(" :(") or "log line" if isinstance(key, tuple) else key
        self._write(f.level, "%s: %d more like this in %.0f s were not logged; the last: %s",
                    (name, f.folded, max(now - f.start, 0.0), last))
        return 1
