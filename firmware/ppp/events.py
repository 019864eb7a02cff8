"""Events a PppLink hands to the engine through next_event() (docs/design.md, PPP)."""


class Authenticated:
    """The peer (server side) or we (client side) passed authentication."""

    __slots__ = ("username",)

    def __init__(self, username):
        self.username = username  # the authenticated name (server: as the peer sent it; client: ours)

    def __repr__(self):
        return "Authenticated(username=%r)" % (self.username,)


class AuthFailed:
    """Authentication failed; a LinkDown follows."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason  # plain words for the log and `sluice status`

    def __repr__(self):
        return "AuthFailed(reason=%r)" % (self.reason,)


class IpUp:
    """IPCP reached Opened: IPv4 packets may flow."""

    __slots__ = ("local_ip", "peer_ip", "dns")

    def __init__(self, local_ip, peer_ip, dns):
        self.local_ip = local_ip  # our address, 'a.b.c.d'
        self.peer_ip = peer_ip  # the peer's address, 'a.b.c.d', or None if it never stated one
        self.dns = dns  # list of DNS server addresses (client: learned; server: the ones we handed out)

    def __repr__(self):
        return "IpUp(local_ip=%r, peer_ip=%r, dns=%r)" % (self.local_ip, self.peer_ip, self.dns)


class Ipv6Up:
    """IPv6CP reached Opened: link-local addresses fe80::<ifid> on both ends."""

    __slots__ = ("local_ifid", "peer_ifid")

    def __init__(self, local_ifid, peer_ifid):
        self.local_ifid = local_ifid  # our 8-octet interface identifier (bytes)
        self.peer_ifid = peer_ifid  # the peer's 8-octet interface identifier (bytes)

    def __repr__(self):
        return "Ipv6Up(local_ifid=%r, peer_ifid=%r)" % (self.local_ifid, self.peer_ifid)


class LinkDown:
    """The link is finished (LCP This-Layer-Finished); nothing more will be sent."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason  # plain words: who closed it and why

    def __repr__(self):
        return "LinkDown(reason=%r)" % (self.reason,)


class VerifyCredentials:
    """Server with external_auth: a user not in the local table sent credentials; the owner checks them (e.g.
    over RADIUS) and answers with PppLink.auth_result(now, this_event, ok, ...). It holds the peer's PAP
    password or CHAP response: never log its fields (its repr shows only the method and the user)."""

    __slots__ = ("method", "username", "password", "ident", "challenge", "response")

    def __init__(self, method, username, password=None, ident=None, challenge=None, response=None):
        self.method = method  # 'pap', 'chap' or 'mschapv2'
        self.username = username  # as the peer sent it (str; may hold "DOMAIN\\")
        self.password = password  # PAP: the password the peer sent (bytes); else None
        self.ident = ident  # CHAP/MS-CHAPv2: the Identifier of our Challenge and the peer's Response
        self.challenge = challenge  # CHAP/MS-CHAPv2: our challenge value (16 octets)
        self.response = response  # CHAP: the 16-octet MD5 response; MS-CHAPv2: the 49-octet Response Value

    def __repr__(self):
        return "VerifyCredentials(method=%r, username=%r)" % (self.method, self.username)
