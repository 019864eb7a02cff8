"""Runs one server or client in the foreground: loop, control socket, signals, clean stop.

procd and netifd supervise Sluice, so it never forks into the background; SIGTERM stops it cleanly
(LCP Terminate, CDN, StopCCN sent and given a moment to be acknowledged), SIGHUP reloads the config.
"""

import os
import time

from sluice.engine.control import ControlServer
from sluice.engine.log import ERROR
from sluice.engine.loop import EventLoop, monotonic
from sluice.hal.platform.signals import signal

STOP_GRACE = 3.0
ERROR_REPEAT_WINDOW = 60.0  # an identical internal error within this many seconds is only counted


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
        self.endpoint.on_internal_error = self._internal_error  # bugs inside machines: same rate-limited report
        self.control = None
        self.exit_code = 0
        self._errors = {}  # (exception type, file, line) -> [first seen, repeats since]

    def _internal_error(self, exc):
        """A bug of ours surfaced in a handler: the traceback once, then how often it repeated (the daemon
        carries on; a reachable bug must not become a log flood)."""
        import traceback

        # One line (the traceback's newlines escaped), and rate-limited: input that trips a bug can be repeated.
        self.log.limited("internal error", ERROR, "internal error (the daemon carries on): %s",
                         "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())

    def handle(self, req):
        cmd = req.get("cmd")
        now = monotonic()
        ep = self.endpoint
        if cmd == "status":
            st = ep.status()
            st["name"] = self.name
            st["pid"] = os.getpid()
            st["internal_errors"] = self.loop.errors
            st["time"] = int(time.time())  # the router's clock, for "since" from uptimes
            st["recent"] = [{"time": t, "level": lvl, "message": m} for t, lvl, m in self.log.recent]
            return {"ok": True, "status": st}
        if cmd == "disconnect" and self.role == "server":
            user = req.get("user")
            if not isinstance(user, str) or not user:
                return {"ok": False, "error": "%s is a server: name the user to disconnect (--user)" % self.name}
            n = ep.command("disconnect", now, user=user)
            if not n:
                return {"ok": False, "error": "no session of user %r on %s" % (user[:64], self.name)}
            return {"ok": True, "disconnected": n}
        if cmd in ("connect", "disconnect"):
            if req.get("user") is not None:
                return {"ok": False, "error": "%s is a client: --user applies to servers" % self.name}
            if self.role != "client":
                return {"ok": False, "error": "%s is a server: connect/disconnect apply to clients" % self.name}
            ep.command(cmd, now)
            return {"ok": True}
        if cmd == "rekey":
            return {"ok": True, "rekeyed": ep.command("rekey", now)}
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

    def _endpoint_exit(self):
        """The exit status an endpoint asked for (a client refused login under netifd), or None."""
        return getattr(self.endpoint, "exit_code", None)

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
            self.endpoint.start(monotonic())
            loop.run(until=lambda: bool(stop) or self._endpoint_exit() is not None)
            if self._endpoint_exit() is not None:
                self.exit_code = self._endpoint_exit()
            self.log.info("stopping")
            self.endpoint.command("shutdown", monotonic())
            deadline = monotonic() + STOP_GRACE
            loop.run(until=lambda: monotonic() > deadline or self.endpoint.idle())
            self.endpoint.finish(monotonic(), monotonic() + STOP_GRACE)
        finally:
            self.endpoint.close()
            self.control.close()
            loop.close()
        return self.exit_code
