"""A small logger: one line per event to stderr (procd/netifd forward it to syslog) or to syslog directly.

The stdlib `logging` package costs about a megabyte resident for features a daemon with two log
destinations never uses. Nothing on the per-packet path logs.
"""

import sys
import time

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_NAMES = {DEBUG: "debug", INFO: "info", WARNING: "warning", ERROR: "error"}


class Log:
    __slots__ = ("tag", "level", "stream", "syslog", "recent")

    def __init__(self, tag="sluice", level=INFO, stream=None, use_syslog=False):
        self.tag = tag
        self.level = level
        self.stream = stream if stream is not None else sys.stderr
        self.syslog = None
        if use_syslog:
            import syslog

            syslog.openlog(tag, syslog.LOG_PID, syslog.LOG_DAEMON)
            self.syslog = syslog
        self.recent = []  # the last few warnings/errors, shown by `sluice status`

    def log(self, level, msg, *args):
        if level < self.level:
            return
        if args:
            msg = msg % args
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
