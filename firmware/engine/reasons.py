"""Plain-words renderings of protocol outcomes for logs and `sluice status`."""


def why(ev):
    """'result 2, message' from an L2TP/PPP down event, or its message alone."""
    msg = getattr(ev, "message", None) or getattr(ev, "reason", None) or ""
    code = getattr(ev, "result_code", None)
    if code is None:
        return msg or "no reason given"
    return "result %s%s" % (code, (", " + msg) if msg else "")


def peer_str(peer):
    if isinstance(peer, tuple) and len(peer) == 2:
        return "%s:%d" % peer
    return str(peer)
