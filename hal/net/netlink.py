"""Netlink framing and a thin request/reply socket: what XFRM and generic netlink (L2TP) share.

Theory of operation. A netlink message is a 16-byte header (length, type, flags, sequence, port id) and a
payload; attributes are (length, type) + value, each padded to 4 bytes (RFC 3549 2.3.2, Linux
include/uapi/linux/netlink.h). Everything is host byte order except what a protocol says is network
order (ports, SPIs, addresses). The codec here is pure (bytes in, bytes out) so that tests compare it with
iproute2's captured messages without a kernel; `NetlinkSocket` is the only part that touches the OS.

MicroPython: only `struct` (no `=` prefix: the byte order is picked from sys.byteorder; explicit padding),
`socket` with numeric constants, and `bind()` given a raw sockaddr_nl when a tuple is refused.
"""

import struct
import sys

NE = "<" if sys.byteorder == "little" else ">"   # host ("native") byte order, without alignment
# The C alignment of a 64-bit field: 8 everywhere Sluice runs except i386 (4). It decides the tail
# padding of kernel structs that hold u64s (xfrm_usersa_info is 224 bytes, 220 on i386).
try:
    U64_ALIGN = struct.calcsize("BQ") - 8
except Exception:  # noqa: BLE001  (an interpreter without native alignment)
    U64_ALIGN = 8
if U64_ALIGN not in (4, 8):
    U64_ALIGN = 8

AF_NETLINK = 16
SOCK_RAW = 3
NETLINK_XFRM = 6
NETLINK_GENERIC = 16

# nlmsghdr.nlmsg_flags
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3

NLA_F_NESTED = 0x8000
HDR_LEN = 16


class NetlinkError(OSError):
    """The kernel refused a request: errno (positive) and what we asked, in plain words."""


class NetlinkParseError(ValueError):
    """A netlink message or attribute is malformed (lengths, truncation)."""


def align4(n):
    return (n + 3) & ~3


def pad_to(data, align):
    extra = (-len(data)) % align
    return data + bytes(extra) if extra else data


def message(mtype, flags, seq, payload, pid=0):
    """One netlink message: header + payload (the payload is padded to 4 bytes, the length excludes that)."""
    return struct.pack(NE + "IHHII", HDR_LEN + len(payload), mtype, flags, seq, pid) + pad_to(payload, 4)


def attr(atype, value):
    """One attribute, padded to 4 bytes (nla_len counts the header and the value, not the padding)."""
    return pad_to(struct.pack(NE + "HH", 4 + len(value), atype) + value, 4)


def attr_u8(atype, v):
    return attr(atype, struct.pack("B", v))


def attr_u16(atype, v):
    return attr(atype, struct.pack(NE + "H", v))


def attr_u32(atype, v):
    return attr(atype, struct.pack(NE + "I", v))


def attr_u64(atype, v):
    return attr(atype, struct.pack(NE + "Q", v))


def attr_str(atype, s):
    """A NUL-terminated string attribute (NLA_NUL_STRING / addattrstrz)."""
    return attr(atype, s.encode() + b"\0")


def split_messages(buf):
    """[(type, flags, seq, pid, payload bytes)] for every message in one datagram."""
    out = []
    off = 0
    n = len(buf)
    while off < n:
        if n - off < HDR_LEN:
            raise NetlinkParseError("netlink: %d trailing bytes, shorter than a header" % (n - off))
        length, mtype, flags, seq, pid = struct.unpack_from(NE + "IHHII", buf, off)
        if length < HDR_LEN or off + length > n:
            raise NetlinkParseError("netlink: message length %d at offset %d of %d" % (length, off, n))
        out.append((mtype, flags, seq, pid, bytes(buf[off + HDR_LEN:off + length])))
        off += align4(length)
    return out


def parse_attrs(buf, off=0):
    """{type: value bytes} of the attributes from `off` to the end (NLA_F_NESTED and byte-order bits masked).

    A repeated type keeps the last value; callers that need repeats use iter_attrs."""
    d = {}
    for t, v in iter_attrs(buf, off):
        d[t] = v
    return d


def iter_attrs(buf, off=0):
    out = []
    n = len(buf)
    while off < n:
        if n - off < 4:
            if any(buf[off:]):
                raise NetlinkParseError("netlink: %d stray bytes after the attributes" % (n - off))
            break
        alen, atype = struct.unpack_from(NE + "HH", buf, off)
        if alen < 4 or off + alen > n:
            raise NetlinkParseError("netlink: attribute %d length %d at offset %d of %d" % (atype & 0x3fff, alen,
                                                                                             off, n))
        out.append((atype & 0x3fff, bytes(buf[off + 4:off + alen])))
        off += align4(alen)
    return out


def u8(v):
    return v[0]


def u16(v):
    return struct.unpack(NE + "H", v[:2])[0]


def u32(v):
    return struct.unpack(NE + "I", v[:4])[0]


def u64(v):
    return struct.unpack(NE + "Q", v[:8])[0]


def ack_errno(payload):
    """The errno an NLMSG_ERROR carries (0 for an ACK), as a positive number."""
    if len(payload) < 4:
        raise NetlinkParseError("netlink: NLMSG_ERROR of %d bytes" % len(payload))
    return -struct.unpack(NE + "i", payload[:4])[0]


def ip4(text):
    """'a.b.c.d' -> 4 bytes (without socket.inet_aton, which MicroPython lacks)."""
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %r" % (text,))
    out = bytearray(4)
    for i in range(4):
        p = parts[i]
        if not p.isdigit() or int(p) > 255:
            raise ValueError("not an IPv4 address: %r" % (text,))
        out[i] = int(p)
    return bytes(out)


def ip4_text(b):
    return "%d.%d.%d.%d" % (b[0], b[1], b[2], b[3])


def sockaddr_nl(pid=0, groups=0):
    """struct sockaddr_nl, for an interpreter whose bind() takes raw bytes (MicroPython)."""
    return struct.pack(NE + "HHII", AF_NETLINK, 0, pid, groups)


class NetlinkSocket:
    """One netlink socket: `request()` for a reply, an ACK or a dump; `events()` for multicast groups.

    Blocking with a timeout for requests (the kernel answers at once); the engine puts an events-only
    socket into its loop through `fileno()` and reads it with `recv_events()` when it is readable.
    """

    def __init__(self, protocol, groups=0, timeout=5.0, rcvbuf=1 << 20):
        from sluice.hal.net.sockets import socket

        self.sock = socket.socket(AF_NETLINK, SOCK_RAW, protocol)
        try:
            self.sock.bind((0, groups))
        except TypeError:
            self.sock.bind(sockaddr_nl(0, groups))
        try:
            self.sock.setsockopt(1, 8, rcvbuf)  # SOL_SOCKET, SO_RCVBUF: a burst of events must not overflow
        except OSError:
            pass
        self.timeout = timeout
        self.seq = 0
        self.events = []   # multicast messages read while waiting for a reply (events-and-requests socket)
        self.lost = 0      # times the kernel reported dropped events (ENOBUFS)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xFFFFFFFF or 1
        return self.seq

    def _recv(self):
        self.sock.settimeout(self.timeout)
        try:
            return self.sock.recv(1 << 16)
        except OSError as e:
            if "timed out" in str(e) or getattr(e, "errno", None) in (11, 110):
                raise NetlinkError(110, "netlink: no answer from the kernel within %.0f s" % self.timeout)
            raise

    def request(self, build, what, dump=False):
        """Send `build(seq)` (a complete message) and return [(type, payload)] of the answer.

        An ACK-only request returns []; a get returns its one reply; a dump returns every part until
        NLMSG_DONE. A refusal raises NetlinkError(errno, '<what>: <strerror>')."""
        seq = self.next_seq()
        self.sock.send(build(seq))
        out = []
        while True:
            for mtype, flags, mseq, _pid, payload in split_messages(self._recv()):
                if mseq != seq:
                    if mseq == 0:
                        self.events.append((mtype, payload))
                    continue
                if mtype == NLMSG_ERROR:
                    err = ack_errno(payload)
                    if err:
                        raise NetlinkError(err, "%s: %s" % (what, strerror(err)))
                    return out
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_NOOP:
                    continue
                out.append((mtype, payload))
                if not dump and not flags & NLM_F_MULTI:
                    return out

    def recv_events(self, nonblocking=True, limit=64):
        """[(type, payload)] of the multicast messages waiting (and those queued during requests).

        Reads until nothing is left (at most `limit` datagrams). When the kernel dropped events because the
        socket's buffer was full (ENOBUFS), `self.lost` grows: the caller should re-read the state it tracks."""
        out = self.events
        self.events = []
        self.sock.settimeout(0 if nonblocking else self.timeout)
        try:
            for _ in range(limit):
                try:
                    data = self.sock.recv(1 << 16)
                except OSError as e:
                    if getattr(e, "errno", None) == 105 or (e.args and e.args[0] == 105):
                        self.lost += 1
                        continue
                    break
                for mtype, _flags, _seq, _pid, payload in split_messages(data):
                    out.append((mtype, payload))
                self.sock.settimeout(0)
        finally:
            self.sock.settimeout(self.timeout)
        return out


_ERRNO = {1: "operation not permitted (root or CAP_NET_ADMIN needed)", 2: "no such entry",
          3: "no such process", 9: "bad file descriptor", 16: "busy", 17: "it exists already",
          19: "no such device (is the kernel module loaded?)", 22: "invalid argument",
          38: "not implemented by this kernel", 93: "protocol not supported (is the kernel module loaded?)",
          95: "not supported", 97: "address family not supported", 110: "timed out"}


def strerror(err):
    return "%s (errno %d)" % (_ERRNO.get(err, "error"), err)


# --- generic netlink (Linux include/uapi/linux/genetlink.h) ----------------------------------------------------

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2


def genl_message(family, cmd, version, flags, seq, attrs):
    """A generic netlink message: nlmsghdr, genlmsghdr (cmd, version, 2 reserved bytes), attributes."""
    return message(family, flags, seq, struct.pack("BBxx", cmd, version) + attrs)


def encode_getfamily(name, seq):
    """CTRL_CMD_GETFAMILY by name, as iproute2 sends it (version 0, no ACK: the reply is the answer)."""
    return genl_message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0, NLM_F_REQUEST, seq, attr_str(CTRL_ATTR_FAMILY_NAME, name))


def parse_family_id(payload):
    """The family id in a CTRL_CMD_NEWFAMILY reply."""
    attrs = parse_attrs(payload, 4)
    if CTRL_ATTR_FAMILY_ID not in attrs:
        raise NetlinkParseError("genetlink: family reply without CTRL_ATTR_FAMILY_ID")
    return u16(attrs[CTRL_ATTR_FAMILY_ID])


def resolve_family(sock, name):
    """The id of generic netlink family `name`; NetlinkError(ENOENT) when the kernel has no such family
    (asking also makes the kernel load the module, as `ip l2tp` does)."""
    for mtype, payload in sock.request(lambda seq: encode_getfamily(name, seq), "genetlink family %r" % name):
        if mtype == GENL_ID_CTRL:
            return parse_family_id(payload)
    raise NetlinkError(2, "genetlink family %r: no answer" % name)
