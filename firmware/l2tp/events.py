"""Events the L2TP machines report to the engine (pulled with next_event())."""


class TunnelUp:
    """The control connection is established (RFC 2661 7.2, SCCCN sent or received)."""

    __slots__ = ("tunnel_id", "peer_tunnel_id", "peer_host_name")

    def __init__(self, tunnel_id, peer_tunnel_id, peer_host_name):
        self.tunnel_id = tunnel_id  # our tunnel id (what the peer puts in headers)
        self.peer_tunnel_id = peer_tunnel_id  # the peer's Assigned Tunnel ID
        self.peer_host_name = peer_host_name  # the peer's Host Name AVP, str

    def __repr__(self):
        return "TunnelUp(%d, %d, %r)" % (self.tunnel_id, self.peer_tunnel_id, self.peer_host_name)


class TunnelDown:
    """The control connection is gone; every session in it is gone too (reported first)."""

    __slots__ = ("tunnel_id", "result_code", "error_code", "message")

    def __init__(self, tunnel_id, result_code, error_code, message):
        self.tunnel_id = tunnel_id  # our tunnel id
        self.result_code = result_code  # RFC 2661 4.4.2 StopCCN result code (sent or received), or None
        self.error_code = error_code  # RFC 2661 4.4.2 general error code, or None
        self.message = message  # why, in words (the peer's error message or ours)

    def __repr__(self):
        return "TunnelDown(%d, %r, %r, %r)" % (self.tunnel_id, self.result_code, self.error_code, self.message)


class SessionUp:
    """A session (call) is established: data messages may flow (RFC 2661 7.4.1, ICCN)."""

    __slots__ = ("tunnel_id", "session_id", "peer_session_id", "sequencing")

    def __init__(self, tunnel_id, session_id, peer_session_id, sequencing):
        self.tunnel_id = tunnel_id  # our tunnel id
        self.session_id = session_id  # our session id (what the peer puts in data headers)
        self.peer_session_id = peer_session_id  # the peer's Assigned Session ID (what we put in headers)
        self.sequencing = sequencing  # True when data messages must carry Ns (Sequencing Required AVP)

    def __repr__(self):
        return "SessionUp(%d, %d, %d, %r)" % (self.tunnel_id, self.session_id, self.peer_session_id,
                                              self.sequencing)


class SessionDown:
    """A session is gone (CDN sent or received, or its tunnel went down)."""

    __slots__ = ("tunnel_id", "session_id", "result_code", "message")

    def __init__(self, tunnel_id, session_id, result_code, message):
        self.tunnel_id = tunnel_id  # our tunnel id
        self.session_id = session_id  # our session id
        self.result_code = result_code  # RFC 2661 4.4.2 CDN result code, or None
        self.message = message  # why, in words

    def __repr__(self):
        return "SessionDown(%d, %d, %r, %r)" % (self.tunnel_id, self.session_id, self.result_code, self.message)
