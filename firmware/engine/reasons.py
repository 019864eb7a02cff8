"""Plain-words renderings of protocol outcomes for logs and `sluice status`."""


def why(ev):
    """'result 2, message' from an L2TP/PPP down event, or its message alone."""
    msg = getattr(ev, "message", None) or getattr(ev, "reason", None) or ""
    code = getattr(ev, "result_code", None)
    if code is None:
        return msg or "no reason given"
    return "result %s%s" % (code, (", " + msg) if msg else "")


def peer_str(peer):
    """'192.0.2.7:1701', or for L2TP inside IPsec '192.0.2.7:4500 (L2TP port 1701)'."""
    if isinstance(peer, tuple):
        if len(peer) == 2:
            return "%s:%d" % peer
        if len(peer) == 3:
            return "%s:%d (L2TP port %d)" % peer
    return str(peer)
