"""What `sluice status --json` promises: the fields other programs read (LuCI's views, the rpcd plugin, the CLI's
own text form), in one place that the daemon's tests and the OpenWrt contract tests both check against.

A daemon's status is one JSON object; `sluice status --json` without --name prints a list of them, and the rpcd
plugin wraps that list as {"daemons": [...]} (rpcd accepts only an object). Only the fields below are promised;
others (per-machine counters, PPP details) may come and go. Schemas are written as data:

    {key: spec}   an object that must have these keys (more are allowed)
    [spec]        a list whose every item matches spec
    (t1, t2)      any of these types; None stands for JSON null
    "server"      this exact string

`check(status)` returns the problems found (empty when the status keeps the promise).
"""

NUM = (int, float)
STR_OR_NULL = (str, None)

SA = {
    "peer": str,  # "192.0.2.2:500" (the IKE peer; :4500 behind NAT)
    "spi_in": str, "spi_out": STR_OR_NULL,  # "0x1234abcd"
    "transform": str,  # "aes256gcm16", "aes128-sha1", ...
    "encap": bool,  # UDP-encapsulated (NAT-T)
    "packets_in": int, "bytes_in": int, "packets_out": int,
}
TRANSPORT = {"ipsec": bool}  # and "sas": [SA] when ipsec is true (checked in check())

SERVER_SESSION = {
    "tunnel_id": int, "session_id": int,
    "user": STR_OR_NULL,  # the PPP user name once authenticated (made safe by the PPP layer)
    "ip": STR_OR_NULL,  # the address handed to the client
    "state": str,  # "negotiating" | "up"
    "uptime": NUM,  # seconds since the session came up (0 while negotiating)
    "rx_bytes": int, "tx_bytes": int, "rx_packets": int, "tx_packets": int,  # IP bytes from / to the client
    "datapath": str,  # who carries this session's packets: "kernel" | "user"
}
SERVER_TUNNEL = {
    "tunnel_id": int, "peer_tunnel_id": (int, None), "state": str,
    "peer": str,  # where the client connects from: "192.0.2.2:4500 (L2TP port 1701)"
    "peer_host_name": STR_OR_NULL,
    "sessions": [SERVER_SESSION],
}
SERVER = {
    "name": str, "role": "server", "pid": int,
    "time": int,  # the router's clock (Unix seconds) when the status was taken: since = time - uptime
    "listen": str, "ifname": STR_OR_NULL,
    "datapath": str,  # "kernel" | "user": the daemon's data plane (each session says its own)
    "pool": {"start": str, "end": str, "used": int},
    "sessions": int,
    "tunnels": [SERVER_TUNNEL],
    "counters": dict,
    "transport": (TRANSPORT, None),
    "last_error": STR_OR_NULL,  # in plain words, the newest problem (an authentication failure, a full pool)
    "recent": [{"time": NUM, "level": str, "message": str}],
}

CLIENT_SESSION = {"session_id": int, "ip": STR_OR_NULL, "peer_ip": STR_OR_NULL, "dns": [str], "state": str,
                  "uptime": NUM}
CLIENT_TUNNEL = {"tunnel_id": int, "peer_tunnel_id": (int, None), "state": str, "peer": str,
                 "sessions": [CLIENT_SESSION]}
CLIENT = {
    "name": str, "role": "client", "pid": int, "time": int,
    "server": str, "ifname": STR_OR_NULL,
    "datapath": str,  # "kernel" | "user"
    "state": str,  # "idle" | "connecting" | "configuring" (addresses, routes, hook being applied) | "up" | "waiting"
    "wanted": bool,  # false after `sluice disconnect`
    "tunnels": [CLIENT_TUNNEL],
    "counters": {"rx_bytes": int, "tx_bytes": int, "rx_packets": int, "tx_packets": int, "connects": int},
    "transport": (TRANSPORT, None),
    "last_error": STR_OR_NULL,
    "recent": [{"time": NUM, "level": str, "message": str}],
}
# A daemon that did not answer: `sluice status --json --name X` prints this (and exits 1).
NOT_RUNNING = {"name": str, "error": str}


def _check(value, spec, path, out):
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            out.append("%s: expected an object, got %s" % (path, _kind(value)))
            return
        for key, sub in spec.items():
            if key not in value:
                out.append("%s.%s: missing" % (path, key))
            else:
                _check(value[key], sub, "%s.%s" % (path, key), out)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            out.append("%s: expected a list, got %s" % (path, _kind(value)))
            return
        for i, item in enumerate(value):
            _check(item, spec[0], "%s[%d]" % (path, i), out)
    elif isinstance(spec, tuple):
        probs = []
        for alt in spec:
            p = []
            _check(value, alt, path, p)
            if not p:
                return
            probs.append(p)
        out.append("%s: %s matches none of the allowed forms" % (path, _kind(value)))
    elif isinstance(spec, str):
        if value != spec:
            out.append("%s: expected %r, got %r" % (path, spec, value))
    elif spec is None:
        if value is not None:
            out.append("%s: expected null, got %s" % (path, _kind(value)))
    elif spec is bool:
        if not isinstance(value, bool):
            out.append("%s: expected a boolean, got %s" % (path, _kind(value)))
    elif spec in (int, float):
        if isinstance(value, bool) or not isinstance(value, spec):
            out.append("%s: expected %s, got %s" % (path, "an integer" if spec is int else "a number", _kind(value)))
    elif not isinstance(value, spec):
        out.append("%s: expected %s, got %s" % (path, spec.__name__, _kind(value)))


def _kind(v):
    return "null" if v is None else type(v).__name__


def check(status):
    """Problems with one daemon's status object (server, client, or not running); [] when it keeps the promise."""
    out = []
    if isinstance(status, dict) and "error" in status and "role" not in status:
        _check(status, NOT_RUNNING, "status", out)
        return out
    role = status.get("role") if isinstance(status, dict) else None
    if role not in ("server", "client"):
        return ["status.role: expected 'server' or 'client', got %r" % (role,)]
    _check(status, SERVER if role == "server" else CLIENT, "status", out)
    tr = status.get("transport")
    if isinstance(tr, dict) and tr.get("ipsec") is True:
        _check(tr.get("sas"), [SA], "status.transport.sas", out)
    return out
