"""Log text shared by both endpoints, apart so that a client does not load the server (its pool, tunnel table
and admission limits) for two small functions."""


def peer_text(peer):
    """'192.0.2.7:1701', or for L2TP inside IPsec '192.0.2.7:4500 (L2TP port 1701)'."""
    if isinstance(peer, tuple):
        if len(peer) == 2:
            return "%s:%d" % peer
        if len(peer) == 3:
            return "%s:%d (L2TP port %d)" % peer
    return str(peer)


def why(ev):
    """'result 2, message' from an L2TP/PPP down event, or its message alone."""
    msg = getattr(ev, "message", None) or getattr(ev, "reason", None) or ""
    code = getattr(ev, "result_code", None)
    if code is None:
        return msg or "no reason given"
    return "result %s%s" % (code, (", " + msg) if msg else "")
