"""IPv6 inside the tunnel: what the endpoints decide once IPv6CP is up (sans-IO, MicroPython subset).

Theory of operation. IPv6CP (sluice.ppp.ipv6cp) only agrees on interface identifiers, so both ends have a
link-local address fe80::<ifid> and nothing else. Everything global comes from Router Advertisements, sent
by the server over the PPP link itself as IPv6 packets (PPP protocol 0x0057) that the data plane hands up
to the endpoint because they are addressed link-local or multicast:

    server                                          client
      IPv6CP Opened and IPCP Opened (the data plane carries a session only once IPv4 is up)
      Session6Up, route <its /64> -> TUN             Session6Up, fe80::<ifid>/64 on the TUN
      RA (Prefix <its /64> A=1 L=1, RDNSS, MTU) -->  <-- RS (to ff02::2; 3 tries, 4 s apart, RFC 4861 6.3.7)
      RA again at 16 s, twice (6.2.4), then every    SLAAC: <prefix>:<ifid>/64 (RFC 4862 5.5.3), routes,
      RA_INTERVAL s with jitter, and to each RS      hook `connect` again with INTERNAL_IP6_* and ROUTES6

Why a /64 per session and not one shared /64 (the choice a small router has to make). On a PPP link the
prefix in the RA is what the client builds its addresses from, and Windows, macOS and iOS add temporary
(privacy) addresses of their own choosing (RFC 8981). With one shared /64 the server could not know which
session owns which address without snooping Neighbor Discovery, and could neither route to a session nor
check a session's source addresses in O(1). With a /64 per session the route is one entry per session, the
source check is an 8-octet compare, every address the client invents works, and it is what RFC 8273 and the
BBF's PPP access networks do. It costs address space a small router has: a /56 delegated by the ISP holds 255
sessions (the first /64 stays for the server), a /60 holds 15; a ULA /48 (fd00::/8) works without an ISP. A
lone /64 cannot be split, so `option ip6prefix` must be /63 or shorter (config check).
"""

from sluice.endpoint import actions as A
from sluice.ip6 import addr as ip6
from sluice.ip6 import nd
from sluice.ip6.addr import Ip6Error
from sluice.ip6.nd import NdError

PPP_IPV6 = b"\xff\x03\x00\x57"  # PPP address, control, protocol IPv6 (RFC 5072 3)
RA_INTERVAL = 600        # MaxRtrAdvInterval (RFC 4861 6.2.1 default)
RA_MIN_INTERVAL = 200    # MinRtrAdvInterval: 0.33 * MaxRtrAdvInterval
INITIAL_RAS = 3          # MAX_INITIAL_RTR_ADVERTISEMENTS (RFC 4861 10)
INITIAL_INTERVAL = 16    # MAX_INITIAL_RTR_ADVERT_INTERVAL
MIN_DELAY_BETWEEN_RAS = 3
ROUTER_LIFETIME = 1800   # 3 * MaxRtrAdvInterval
VALID_LIFETIME = 86400
PREFERRED_LIFETIME = 14400
DNS_LIFETIME = 1800      # RFC 8106 5.1: at least MaxRtrAdvInterval; we use 3 times it
RS_TRIES = 3             # MAX_RTR_SOLICITATIONS
RS_INTERVAL = 4          # RTR_SOLICITATION_INTERVAL
MAX_SESSION_PREFIXES = 65535


class PrefixPool:
    """The /64s of one configured prefix (/48 .. /63), by index; index 0 stays for the server."""

    __slots__ = ("base", "plen", "size", "used", "next")

    def __init__(self, base, plen):
        if not 16 <= plen <= 63:
            raise Ip6Error("a prefix to hand out /64s from must be /16 to /63 (got /%d)" % plen)
        self.base = base[:8]
        self.plen = plen
        n = 64 - plen
        self.size = (1 << n) - 1 if n < 16 else MAX_SESSION_PREFIXES  # usable /64s (index 1..size)
        self.used = {}
        self.next = 1

    def allocate(self):
        """The next free /64 (8 octets), or None when all are in use."""
        for _ in range(self.size):
            i = self.next
            self.next = i + 1 if i < self.size else 1
            if i not in self.used:
                p = self._prefix(i)
                self.used[i] = p
                return p
        return None

    def release(self, prefix):
        for i, p in list(self.used.items()):
            if p == prefix:
                del self.used[i]

    def _prefix(self, i):
        v = int.from_bytes(self.base, "big") | i
        return v.to_bytes(8, "big")


class _Link6:
    """One session's IPv6 on the server."""

    __slots__ = ("sess", "local_ifid", "peer_ifid", "prefix", "ra_next", "ra_last", "initial_left", "rs_seen",
                 "ras_sent")

    def __init__(self, sess, local_ifid, peer_ifid):
        self.sess = sess
        self.local_ifid = local_ifid
        self.peer_ifid = peer_ifid
        self.prefix = None      # 8 octets once the session's IPv6 is up (IPv6CP and IPCP both Opened)
        self.ra_next = None
        self.ra_last = -1e9
        self.initial_left = INITIAL_RAS
        self.rs_seen = 0
        self.ras_sent = 0


class ServerIpv6:
    """The server side: a /64 per session, RAs on each link, the route and the data plane told."""

    def __init__(self, srv, q, rng):
        self.srv = srv
        self.q = q
        self.rng = rng
        base, plen = ip6.parse_prefix(srv.ip6prefix)
        self.pool = PrefixPool(base, plen)
        self.dns = [ip6.parse(a) for a in (getattr(srv, "dns6", None) or [])]
        self.links = {}  # (tid, sid) -> _Link6
        self.counters = {"rs_in": 0, "ra_out": 0, "nd_malformed": 0, "no_prefix6": 0, "link_local_in": 0,
                         "echo_replies": 0}

    # -- from the endpoint ---------------------------------------------------------------------------------

    def set_dns(self, dns6):
        self.dns = [ip6.parse(a) for a in dns6]

    def available(self):
        """Whether a new link may negotiate IPv6CP: only while a /64 is free for it."""
        return len(self.pool.used) + len(self.links) < self.pool.size

    def ipv6_up(self, sess, ev, now):
        """IPv6CP Opened; the session's IPv6 starts once IPv4 is up as well (the data plane needs both)."""
        old = self.links.get((sess.tid, sess.sid))
        if old is not None:
            if (old.local_ifid, old.peer_ifid) == (ev.local_ifid, ev.peer_ifid):
                return  # IPv6CP renegotiated the same identifiers: nothing changes
            self.down(sess)  # new identifiers: start over with a fresh /64
        self.links[(sess.tid, sess.sid)] = _Link6(sess, ev.local_ifid, ev.peer_ifid)
        if sess.up_since is not None:
            self._start(self.links[(sess.tid, sess.sid)], now)

    def ip_up(self, sess, now):
        link = self.links.get((sess.tid, sess.sid))
        if link is not None and link.prefix is None:
            self._start(link, now)

    def down(self, sess):
        link = self.links.pop((sess.tid, sess.sid), None)
        if link is None or link.prefix is None:
            return
        self.q.add(A.Session6Down((sess.tid, sess.sid)))
        self.q.add(A.Host("route_del", self._net(link) + "/64", self.srv.ifname))
        self.pool.release(link.prefix)

    def frame_in(self, sess, data, p, end, now):
        """An IPv6 packet from the session that the data plane did not carry (link-local or multicast)."""
        link = self.links.get((sess.tid, sess.sid))
        if link is None or link.prefix is None:
            return
        self.counters["link_local_in"] += 1
        try:
            src, dst, hops, msg = nd.parse_packet(data, p, end)
        except NdError:
            return  # MLD reports, DAD probes for other protocols...: nothing a PPP router needs to answer
        t = msg[0]
        try:
            if t == nd.RS:
                if hops != 255:
                    raise NdError("Router Solicitation with hop limit %d" % hops)  # RFC 4861 6.1.1
                nd.parse_rs(msg)
                self.counters["rs_in"] += 1
                link.rs_seen += 1
                # RFC 4861 6.2.6: answer at once unless an RA went out less than MIN_DELAY_BETWEEN_RAS ago.
                due = max(now, link.ra_last + MIN_DELAY_BETWEEN_RAS)
                if due <= now:
                    self._send_ra(link, now)
                elif link.ra_next is None or due < link.ra_next:
                    link.ra_next = due
            elif t == nd.ECHO_REQUEST and dst == ip6.link_local(link.local_ifid):
                reply = nd.packet(dst, src, 64, nd.echo_reply(msg))
                self._send(link, reply)
                self.counters["echo_replies"] += 1
        except NdError:
            self.counters["nd_malformed"] += 1

    def get_timer(self):
        best = None
        for link in self.links.values():
            d = link.ra_next
            if d is not None and (best is None or d < best):
                best = d
        return best

    def handle_timer(self, now):
        for link in list(self.links.values()):
            if link.ra_next is not None and link.ra_next <= now and not link.sess.closed:
                self._send_ra(link, now)

    def summary(self):
        st = dict(self.counters)
        st["prefix"] = self.srv.ip6prefix
        st["in_use"] = len(self.pool.used)
        st["size"] = self.pool.size
        return st

    def status(self, sess):
        link = self.links.get((sess.tid, sess.sid))
        if link is None:
            return None
        return {"prefix": self._net(link) + "/64" if link.prefix is not None else None,
                "link_local": ip6.text(ip6.link_local(link.peer_ifid)), "rs": link.rs_seen, "ra": link.ras_sent}

    # -- inside --------------------------------------------------------------------------------------------

    def _net(self, link):
        return ip6.text(link.prefix + b"\x00" * 8)

    def _start(self, link, now):
        sess = link.sess
        prefix = self.pool.allocate()
        if prefix is None:
            self.counters["no_prefix6"] += 1
            self.q.log("warning", "no IPv6 /64 left in %s for %s: the session stays IPv4 only", self.srv.ip6prefix,
                       sess.username)
            return
        link.prefix = prefix
        net = self._net(link) + "/64"
        self.q.add(A.Session6Up((sess.tid, sess.sid), prefix, link.peer_ifid, link.local_ifid))
        self.q.add(A.Host("route_add", net, self.srv.ifname, None))
        self.q.log("info", "IPv6 up for %s: %s, link-local %s", sess.username, net,
                   ip6.text(ip6.link_local(link.peer_ifid)))
        self._send_ra(link, now)

    def ra_for(self, link):
        srv = self.srv
        ra = nd.RouterAdvert(router_lifetime=ROUTER_LIFETIME, mtu=srv.mtu, dns=self.dns, dns_lifetime=DNS_LIFETIME,
                             prefixes=[nd.Prefix(link.prefix + b"\x00" * 8, 64, nd.FLAG_L | nd.FLAG_A, VALID_LIFETIME,
                                                 PREFERRED_LIFETIME)])
        return nd.packet(ip6.link_local(link.local_ifid), ip6.ALL_NODES, 255, ra.encode())

    def _send_ra(self, link, now):
        self._send(link, self.ra_for(link))
        self.counters["ra_out"] += 1
        link.ras_sent += 1
        link.ra_last = now
        if link.initial_left > 1:
            link.initial_left -= 1
            link.ra_next = now + INITIAL_INTERVAL
        else:
            link.initial_left = 0
            jitter = int.from_bytes(self.rng(2), "big") % (RA_INTERVAL - RA_MIN_INTERVAL)
            link.ra_next = now + RA_MIN_INTERVAL + jitter  # RFC 4861 6.2.4: uniformly in [Min, Max]

    def _send(self, link, pkt):
        sess = link.sess
        self.q.add(A.SendL2tp(sess.peer, sess.enc.next_header() + PPP_IPV6 + pkt))


class ClientIpv6:
    """The client side: link-local from IPv6CP, RS, SLAAC from the RA, routes, what the hook reports."""

    def __init__(self, cli, q):
        self.cli = cli
        self.q = q
        self.reset()

    def reset(self):
        self.local_ifid = self.peer_ifid = None
        self.started = False
        self.rs_left = 0
        self.rs_next = None
        self.address = None   # our global address (text), from the RA's prefix and our interface id
        self.plen = 64
        self.dns = []         # text
        self.routes = []      # CIDRs (text) installed through the tunnel
        self.router = None    # the server's link-local address (text)
        self.seen = None      # what the last RA said (to run the hook again only on a change)
        self.key = self.enc = None
        self.counters = {"ra_in": 0, "rs_out": 0, "nd_malformed": 0, "ra_ignored": 0}

    def ipv6_up(self, ev, tid, sid):
        """IPv6CP Opened (again, after a renegotiation: with new identifiers, IPv6 starts over)."""
        if self.started and (self.local_ifid, self.peer_ifid) != (ev.local_ifid, ev.peer_ifid):
            self.down(tid, sid, True)
        self.local_ifid, self.peer_ifid = ev.local_ifid, ev.peer_ifid

    def start(self, key, tid, sid, enc, now):
        """IPCP and IPv6CP are both up: link-local on the TUN, the data plane told, the first RS."""
        if self.started or self.local_ifid is None:
            return
        self.started = True
        self.key, self.enc = key, enc
        c = self.cli
        self.q.add(A.Host("addr_add6", c.ifname, ip6.text(ip6.link_local(self.local_ifid)) + "/64"))
        self.q.add(A.Session6Up((tid, sid), None, self.peer_ifid))
        self.rs_left = RS_TRIES
        self._send_rs(now)

    def down(self, tid, sid, addresses=False):
        """The session is going: the data plane and our routes (the addresses go with the teardown's addr_flush,
        or here with `addresses`)."""
        if not self.started:
            self.reset()
            return
        self.q.add(A.Session6Down((tid, sid)))
        for r in reversed(self.routes):
            self.q.add(A.Host("route_del", r, None))
        if addresses:
            ifname = self.cli.ifname
            if self.address is not None:
                self.q.add(A.Host("addr_del6", ifname, "%s/%d" % (self.address, self.plen)))
            self.q.add(A.Host("addr_del6", ifname, ip6.text(ip6.link_local(self.local_ifid)) + "/64"))
        self.reset()

    def frame_in(self, data, p, end, now):
        """An IPv6 packet handed up by the data plane; True when the RA changed what the hook reports."""
        if not self.started:
            return False
        try:
            src, _dst, hops, msg = nd.parse_packet(data, p, end)
            if msg[0] != nd.RA:
                return False
            if not nd.valid_nd_source(src, hops):
                raise NdError("RA not from a link-local source with hop limit 255")
            ra = nd.parse_ra(msg)
        except NdError:
            self.counters["nd_malformed"] += 1
            return False
        self.counters["ra_in"] += 1
        self.rs_left = 0
        self.rs_next = None
        return self._apply(ra, src)

    def _apply(self, ra, src):
        c = self.cli
        address = None
        for pi in ra.prefixes:
            # RFC 4862 5.5.3: A set, not link-local, preferred <= valid, prefix + our 64-bit id = 128 bits.
            if (not pi.flags & nd.FLAG_A or ip6.is_link_local(pi.prefix) or pi.preferred > pi.valid
                    or pi.valid == 0 or pi.length != 64):
                self.counters["ra_ignored"] += 1
                continue
            address = ip6.text(pi.prefix[:8] + self.local_ifid)
            break
        dns = [ip6.text(a) for a in ra.dns] if ra.dns_lifetime else []
        routes = list(getattr(c, "routes6", None) or [])
        for r in ra.routes:
            if r.lifetime:
                routes.append("%s/%d" % (ip6.text(r.prefix), r.length))
        if c.defaultroute and ra.router_lifetime:
            routes += ["::/1", "8000::/1"]  # like IPv4: covers everything, the original default route stays
        seen = (address, tuple(dns), tuple(routes))
        if seen == self.seen:
            return False
        self.seen = seen
        self.router = ip6.text(src)
        q = self.q
        if address != self.address:
            if self.address is not None:
                q.add(A.Host("addr_del6", c.ifname, "%s/%d" % (self.address, self.plen)))
            if address is not None:
                q.add(A.Host("addr_add6", c.ifname, "%s/%d" % (address, self.plen)))
            self.address = address
        for r in reversed(self.routes):
            if r not in routes:
                q.add(A.Host("route_del", r, None))
        for r in routes:
            if r not in self.routes:
                q.add(A.Host("route_add", r, c.ifname, None))
        self.routes = routes
        self.dns = dns
        q.log("info", "IPv6 from the server's RA: %s, DNS %s, routes %s", address or "no address",
              " ".join(dns) or "none", " ".join(routes) or "none")
        return True

    def get_timer(self):
        return self.rs_next

    def handle_timer(self, now):
        if self.rs_next is not None and now >= self.rs_next:
            self._send_rs(now)

    def _send_rs(self, now):
        if self.rs_left <= 0:
            self.rs_next = None
            return
        self.rs_left -= 1
        pkt = nd.packet(ip6.link_local(self.local_ifid), ip6.ALL_ROUTERS, 255, nd.router_solicitation())
        self.q.add(A.SendL2tp(self.key, self.enc.next_header() + PPP_IPV6 + pkt))
        self.counters["rs_out"] += 1
        self.rs_next = now + RS_INTERVAL if self.rs_left > 0 else None

    def hook_env(self):
        """vpnc-script's IPv6 variables (openconnect names); empty when the session has no IPv6 address."""
        a = self.address
        return {
            "INTERNAL_IP6_ADDRESS": a or "",
            "INTERNAL_IP6_NETMASK": ("%s/%d" % (a, self.plen)) if a else "",
            "INTERNAL_IP6_DNS": " ".join(self.dns) if a and self.cli.peerdns else "",
            "INTERNAL_IP6_LINKLOCAL": ip6.text(ip6.link_local(self.local_ifid)) if self.started else "",
            "ROUTES6": " ".join(_once(self.routes)) if a else "",  # the two /1 halves reported as ::/0
        }

    def status(self):
        if not self.started:
            return None
        return {"address": self.address, "link_local": ip6.text(ip6.link_local(self.local_ifid)),
                "router": self.router, "dns": self.dns, "routes": self.routes}


def _once(routes):
    out = []
    for r in routes:
        r = "::/0" if r in ("::/1", "8000::/1") else r
        if r not in out:
            out.append(r)
    return out
