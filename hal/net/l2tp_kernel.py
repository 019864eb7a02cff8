"""Kernel L2TPv2 (l2tp_core, l2tp_netlink, l2tp_ppp): a tunnel on our UDP socket, a PPPoL2TP socket per session.

Theory of operation. Sluice runs the L2TP control connection itself (sluice.l2tp: SCCRQ..ICCN, Hello,
StopCCN, CDN). Once a tunnel is established, the kernel data path hands the kernel:

1. the tunnel: generic netlink family `l2tp` (its id resolved through nlctrl), L2TP_CMD_TUNNEL_CREATE with
   L2TP_ATTR_FD = our UDP socket for that tunnel (bound to :1701, connected to the peer, as xl2tpd and
   accel-ppp do). The kernel sets the socket's encap hook: data messages (T bit clear) of known sessions
   stay in the kernel, control messages still reach our socket as before. Closing the socket destroys the
   tunnel, so a killed daemon leaves no kernel tunnel behind;
2. per session: a PPPoL2TP socket (AF_PPPOX, PX_PROTO_OL2TP) connected with the packed 50-byte
   struct sockaddr_pppol2tpin6 (Linux include/uapi/linux/if_pppol2tp.h; see sockaddr_pppol2tp). That creates the kernel session
   (or attaches to one made with L2TP_CMD_SESSION_CREATE) and registers a PPP channel: see ppp_kernel.py.

iproute2's `ip l2tp` makes only L2TPv3 tunnels with kernel-owned sockets; the message shapes are the same
(tests compare them with its captured messages). L2TP_CMD_SESSION_CREATE for PPP sessions needs a kernel
with CONFIG_L2TP_V3; the PPPoL2TP connect alone works everywhere, so `open_session` uses it.
"""

import struct

from sluice.hal.net import netlink as nl
from sluice.hal.net.netlink import NE

GENL_NAME = "l2tp"
GENL_VERSION = 1

CMD_TUNNEL_CREATE = 1
CMD_TUNNEL_DELETE = 2
CMD_TUNNEL_MODIFY = 3
CMD_TUNNEL_GET = 4
CMD_SESSION_CREATE = 5
CMD_SESSION_DELETE = 6
CMD_SESSION_MODIFY = 7
CMD_SESSION_GET = 8

ATTR_PW_TYPE = 1
ATTR_ENCAP_TYPE = 2
ATTR_OFFSET = 3
ATTR_DATA_SEQ = 4
ATTR_L2SPEC_TYPE = 5
ATTR_L2SPEC_LEN = 6
ATTR_PROTO_VERSION = 7
ATTR_IFNAME = 8
ATTR_CONN_ID = 9
ATTR_PEER_CONN_ID = 10
ATTR_SESSION_ID = 11
ATTR_PEER_SESSION_ID = 12
ATTR_UDP_CSUM = 13
ATTR_VLAN_ID = 14
ATTR_COOKIE = 15
ATTR_PEER_COOKIE = 16
ATTR_DEBUG = 17
ATTR_RECV_SEQ = 18
ATTR_SEND_SEQ = 19
ATTR_LNS_MODE = 20
ATTR_USING_IPSEC = 21
ATTR_RECV_TIMEOUT = 22
ATTR_FD = 23
ATTR_IP_SADDR = 24
ATTR_IP_DADDR = 25
ATTR_UDP_SPORT = 26
ATTR_UDP_DPORT = 27
ATTR_MTU = 28
ATTR_MRU = 29
ATTR_STATS = 30

STATS = {1: "tx_packets", 2: "tx_bytes", 3: "tx_errors", 4: "rx_packets", 5: "rx_bytes", 6: "rx_seq_discards",
         7: "rx_oos_packets", 8: "rx_errors"}

PWTYPE_ETH = 5
PWTYPE_PPP = 7
ENCAP_UDP = 0
L2SPEC_NONE = 0
L2SPEC_DEFAULT = 1

# AF_PPPOX sockets (Linux include/uapi/linux/if_pppox.h, if_pppol2tp.h)
AF_PPPOX = 24
SOCK_DGRAM = 2
PX_PROTO_OL2TP = 1
AF_INET6 = 10
SOL_PPPOL2TP = 273
PPPOL2TP_SO_DEBUG = 1
PPPOL2TP_SO_RECVSEQ = 2
PPPOL2TP_SO_SENDSEQ = 3
PPPOL2TP_SO_LNSMODE = 4
PPPOL2TP_SO_REORDERTO = 5


def encode_tunnel_create(family, seq, tunnel_id, peer_tunnel_id, version=2, fd=None, local=None, peer=None,
                         sport=None, dport=None, encap=ENCAP_UDP, udp_csum=False):
    """L2TP_CMD_TUNNEL_CREATE. With `fd` the kernel uses our UDP socket (bound and connected: its addresses are
    the tunnel's); without, it opens its own from local/peer/sport/dport (what `ip l2tp` does)."""
    a = (nl.attr_u32(ATTR_CONN_ID, tunnel_id) + nl.attr_u32(ATTR_PEER_CONN_ID, peer_tunnel_id) +
         nl.attr_u8(ATTR_PROTO_VERSION, version) + nl.attr_u16(ATTR_ENCAP_TYPE, encap))
    if fd is not None:
        a += nl.attr_u32(ATTR_FD, fd)
    else:
        a += nl.attr(ATTR_IP_SADDR, nl.ip4(local)) + nl.attr(ATTR_IP_DADDR, nl.ip4(peer))
        if encap == ENCAP_UDP:
            a += nl.attr_u16(ATTR_UDP_SPORT, sport) + nl.attr_u16(ATTR_UDP_DPORT, dport)
            if udp_csum:
                a += nl.attr_u8(ATTR_UDP_CSUM, 1)
    return nl.genl_message(family, CMD_TUNNEL_CREATE, GENL_VERSION, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, a)


def encode_tunnel_delete(family, seq, tunnel_id):
    return nl.genl_message(family, CMD_TUNNEL_DELETE, GENL_VERSION, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq,
                           nl.attr_u32(ATTR_CONN_ID, tunnel_id))


def encode_session_create(family, seq, tunnel_id, peer_tunnel_id, session_id, peer_session_id, pw_type=PWTYPE_PPP,
                          l2spec_type=None, l2spec_len=None, ifname=None, recv_seq=False, send_seq=False,
                          lns_mode=None):
    """L2TP_CMD_SESSION_CREATE (iproute2's attribute order; L2TPv2 PPP sessions leave out the L2TPv3 L2SPEC)."""
    a = (nl.attr_u32(ATTR_CONN_ID, tunnel_id) + nl.attr_u32(ATTR_PEER_CONN_ID, peer_tunnel_id) +
         nl.attr_u32(ATTR_SESSION_ID, session_id) + nl.attr_u32(ATTR_PEER_SESSION_ID, peer_session_id) +
         nl.attr_u16(ATTR_PW_TYPE, pw_type))
    if l2spec_type is not None:
        a += nl.attr_u8(ATTR_L2SPEC_TYPE, l2spec_type)
    if l2spec_len is not None:
        a += nl.attr_u8(ATTR_L2SPEC_LEN, l2spec_len)
    if recv_seq:
        a += nl.attr_u8(ATTR_RECV_SEQ, 1)
    if send_seq:
        a += nl.attr_u8(ATTR_SEND_SEQ, 1)
    if ifname:
        a += nl.attr_str(ATTR_IFNAME, ifname)
    if lns_mode is not None:
        a += nl.attr_u8(ATTR_LNS_MODE, 1 if lns_mode else 0)
    return nl.genl_message(family, CMD_SESSION_CREATE, GENL_VERSION, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, a)


def encode_session_delete(family, seq, tunnel_id, session_id):
    return nl.genl_message(family, CMD_SESSION_DELETE, GENL_VERSION, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq,
                           nl.attr_u32(ATTR_CONN_ID, tunnel_id) + nl.attr_u32(ATTR_SESSION_ID, session_id))


def encode_dump(family, seq, cmd):
    return nl.genl_message(family, cmd, GENL_VERSION, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, seq, b"")


class KernelTunnel:
    """A tunnel or session as the kernel reports it (L2TP_CMD_TUNNEL_GET / SESSION_GET replies)."""

    __slots__ = ("tunnel_id", "peer_tunnel_id", "session_id", "peer_session_id", "version", "encap", "pw_type",
                 "local", "peer", "sport", "dport", "ifname", "stats")

    def __repr__(self):
        if self.session_id is not None:
            return "KernelSession(%s/%s -> %s/%s %s)" % (self.tunnel_id, self.session_id, self.peer_tunnel_id,
                                                         self.peer_session_id, self.ifname or "")
        return "KernelTunnel(%s -> %s v%s %s:%s -> %s:%s)" % (self.tunnel_id, self.peer_tunnel_id, self.version,
                                                              self.local, self.sport, self.peer, self.dport)


def parse_tunnel(payload):
    """A genetlink l2tp reply payload (genlmsghdr + attributes) -> KernelTunnel."""
    t = KernelTunnel()
    a = nl.parse_attrs(payload, 4)

    def get(k, conv):
        return conv(a[k]) if k in a else None

    t.tunnel_id = get(ATTR_CONN_ID, nl.u32)
    t.peer_tunnel_id = get(ATTR_PEER_CONN_ID, nl.u32)
    t.session_id = get(ATTR_SESSION_ID, nl.u32)
    t.peer_session_id = get(ATTR_PEER_SESSION_ID, nl.u32)
    t.version = get(ATTR_PROTO_VERSION, nl.u8)
    t.encap = get(ATTR_ENCAP_TYPE, nl.u16)
    t.pw_type = get(ATTR_PW_TYPE, nl.u16)
    t.local = get(ATTR_IP_SADDR, nl.ip4_text)
    t.peer = get(ATTR_IP_DADDR, nl.ip4_text)
    t.sport = get(ATTR_UDP_SPORT, nl.u16)
    t.dport = get(ATTR_UDP_DPORT, nl.u16)
    t.ifname = get(ATTR_IFNAME, lambda v: bytes(v).split(b"\0", 1)[0].decode())
    t.stats = {}
    if ATTR_STATS in a:
        for k, v in nl.iter_attrs(a[ATTR_STATS]):
            if k in STATS:
                t.stats[STATS[k]] = nl.u64(v)
    return t


def sockaddr_pppol2tp(tunnel_fd, tunnel_id, session_id, peer_tunnel_id, peer_session_id, peer_ip="0.0.0.0",
                      peer_port=0, pid=0):
    """struct sockaddr_pppol2tpin6, packed, 50 bytes: family, protocol, then pppol2tpin6_addr (pid, fd, local
    tunnel/session, peer tunnel/session, the peer as a sockaddr_in6, IPv4-mapped). The ids are host order,
    the sockaddr_in6 network order.

    The IPv6 form for IPv4 tunnels too: the kernel takes the L2TP version and the ids by the address's length
    (pppol2tp_sockaddr_get_info) and never reads the address at connect (the tunnel socket has the peer). It
    ends in a zero byte (sin6_scope_id), which lets CPython pass it without ctypes (sysio.connect_raw)."""
    sin6 = (struct.pack(NE + "H", AF_INET6) + struct.pack(">HI", peer_port, 0) + bytes(10) + b"\xff\xff" +
            nl.ip4(peer_ip) + bytes(4))
    return (struct.pack(NE + "HIii", AF_PPPOX, PX_PROTO_OL2TP, pid, tunnel_fd) +
            struct.pack(NE + "HHHH", tunnel_id, session_id, peer_tunnel_id, peer_session_id) + sin6)


class L2tpKernel:
    """Kernel L2TP tunnels and sessions over generic netlink (one socket, blocking requests)."""

    def __init__(self, sock=None):
        self.nl = sock or nl.NetlinkSocket(nl.NETLINK_GENERIC)
        self.family = nl.resolve_family(self.nl, GENL_NAME)

    def close(self):
        self.nl.close()

    def create_tunnel(self, udp_sock, tunnel_id, peer_tunnel_id):
        """Put an established L2TPv2 tunnel into the kernel on our connected UDP socket."""
        fd = udp_sock if isinstance(udp_sock, int) else udp_sock.fileno()
        self.nl.request(lambda seq: encode_tunnel_create(self.family, seq, tunnel_id, peer_tunnel_id, 2, fd=fd),
                        "kernel L2TP tunnel %d" % tunnel_id)

    def delete_tunnel(self, tunnel_id):
        self.nl.request(lambda seq: encode_tunnel_delete(self.family, seq, tunnel_id),
                        "delete kernel L2TP tunnel %d" % tunnel_id)

    def create_session(self, tunnel_id, peer_tunnel_id, session_id, peer_session_id, lns_mode=None):
        """L2TP_CMD_SESSION_CREATE for a PPP session (needs CONFIG_L2TP_V3; open_session does not)."""
        self.nl.request(lambda seq: encode_session_create(self.family, seq, tunnel_id, peer_tunnel_id, session_id,
                                                          peer_session_id, lns_mode=lns_mode),
                        "kernel L2TP session %d/%d" % (tunnel_id, session_id))

    def delete_session(self, tunnel_id, session_id):
        self.nl.request(lambda seq: encode_session_delete(self.family, seq, tunnel_id, session_id),
                        "delete kernel L2TP session %d/%d" % (tunnel_id, session_id))

    def list_tunnels(self):
        return [parse_tunnel(p) for t, p in self.nl.request(lambda seq: encode_dump(self.family, seq, CMD_TUNNEL_GET),
                                                            "list kernel L2TP tunnels", dump=True)
                if t == self.family]

    def list_sessions(self):
        return [parse_tunnel(p) for t, p in self.nl.request(lambda seq: encode_dump(self.family, seq, CMD_SESSION_GET),
                                                            "list kernel L2TP sessions", dump=True)
                if t == self.family]


def open_session(udp_sock, tunnel_id, session_id, peer_tunnel_id, peer_session_id, peer=("0.0.0.0", 0),
                 lns_mode=False, send_seq=False):
    """A connected PPPoL2TP socket for one session of a kernel tunnel (creates the kernel session, or attaches
    to one made by L2TP_CMD_SESSION_CREATE). Closing it deletes the session. Returns the socket."""
    from sluice.hal.net.sockets import socket

    from sluice.hal.net import sysio

    fd = udp_sock if isinstance(udp_sock, int) else udp_sock.fileno()
    s = socket.socket(AF_PPPOX, SOCK_DGRAM, PX_PROTO_OL2TP)
    try:
        sysio.connect_raw(s, sockaddr_pppol2tp(fd, tunnel_id, session_id, peer_tunnel_id, peer_session_id,
                                               peer[0], peer[1]))
        if lns_mode:
            s.setsockopt(SOL_PPPOL2TP, PPPOL2TP_SO_LNSMODE, 1)
        if send_seq:
            s.setsockopt(SOL_PPPOL2TP, PPPOL2TP_SO_SENDSEQ, 1)
    except BaseException:
        s.close()
        raise
    return s
