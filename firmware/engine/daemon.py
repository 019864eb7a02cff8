"""Runs one server or client in the foreground: loop, control socket, signals, clean stop.

procd and netifd supervise Sluice, so it never forks into the background; SIGTERM stops it cleanly
(LCP Terminate, CDN, StopCCN sent and given a moment to be acknowledged), SIGHUP reloads the config.
"""

import os
import signal

from sluice.engine.control import ControlServer
from sluice.engine.log import ERROR
from sluice.engine.loop import EventLoop, monotonic

STOP_GRACE = 3.0


class Daemon:
    def __init__(self, name, role, log, load_config, select_section, make_endpoint):
        self.name = name
        self.role = role
        self.log = log
        self.load_config = load_config  # () -> Config
        self.select_section = select_section  # Config -> section
        self.loop = EventLoop(on_error=self._internal_error)
        config = load_config()
        for w in config.warnings:
            log.warning("%s", w)
        self.endpoint = make_endpoint(config, select_section(config), self.loop)
        self.control = None
        self.exit_code = 0

    def _internal_error(self, exc):
        import traceback

        # One line (the traceback's newlines escaped), and rate-limited: input that trips a bug can be repeated.
        self.log.limited("internal error", ERROR, "internal error (the daemon carries on): %s",
                         "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())

    def handle(self, req):
        cmd = req.get("cmd")
        now = monotonic()
        if cmd == "status":
            st = self.endpoint.status()
            st["name"] = self.name
            st["pid"] = os.getpid()
            st["recent"] = [{"time": t, "level": lvl, "message": m} for t, lvl, m in self.log.recent]
            return {"ok": True, "status": st}
        if cmd in ("connect", "disconnect"):
            if self.role != "client":
                return {"ok": False, "error": "%s is a server: connect/disconnect apply to clients" % self.name}
            getattr(self.endpoint, cmd)(now)
            return {"ok": True}
        if cmd == "rekey":
            n = self.endpoint.transport.rekey(now) if self.endpoint.transport is not None else 0
            return {"ok": True, "rekeyed": n}
        if cmd == "reload":
            self.reload()
            return {"ok": True}
        return {"ok": False, "error": "unknown command %r" % (cmd,)}

    def reload(self):
        from sluice.config import ConfigError

        try:
            config = self.load_config()
        except (ConfigError, OSError) as e:
            self.log.error("reload refused, keeping the running configuration: %s", e)
            return
        self.endpoint.reload(config, self.select_section(config))

    def _flush_log(self, now):
        """Summaries of rate-limited log lines, once their window is over (see engine/log.py)."""
        self.log.flush(now)
        self.loop.call_at(now + self.log.window, self._flush_log)

    def run(self):
        loop = self.loop
        self.control = ControlServer(self.name, self.handle, self.log, loop=loop)
        loop.add_reader(self.control, self.control.on_readable)
        self._flush_log(monotonic())
        stop = []
        loop.on_signal(signal.SIGTERM, lambda: stop.append(1))
        loop.on_signal(signal.SIGINT, lambda: stop.append(1))
        loop.on_signal(signal.SIGHUP, self.reload)
        try:
            if self.role == "client":
                self.endpoint.start(monotonic())
            else:
                self.endpoint.start()
            loop.run(until=lambda: bool(stop))
            self.log.info("stopping")
            self.endpoint.shutdown(monotonic())
            deadline = monotonic() + STOP_GRACE
            loop.run(until=lambda: monotonic() > deadline or self.endpoint.idle())
            self.endpoint.finish(monotonic())
        finally:
            self.endpoint.close()
            self.control.close()
            loop.close()
        return self.exit_code
