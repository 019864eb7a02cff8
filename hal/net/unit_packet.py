"""The server's window on a kernel ppp unit: an AF_PACKET socket that sees only what Sluice must answer.

On the kernel data path IP packets never reach Sluice (the ppp unit carries them in the kernel), but two kinds
must: a client's DHCPINFORM (IPv4 UDP to port 67, answered with routes and DNS) and its ICMPv6 Router
Solicitations (answered with a Router Advertisement). One AF_PACKET SOCK_DGRAM socket per unit, bound to the
unit, with a classic BPF filter (SO_ATTACH_FILTER) that the kernel runs before it copies anything: ordinary
data packets are refused inside the kernel and never cross. The socket is made with protocol 0 (it receives
nothing), the filter attached, then bound to (unit, ETH_P_ALL), so no packet slips in before the filter; with
PACKET_IGNORE_OUTGOING (Linux 4.20) the unit's transmitted packets are not even cloned for it, and the filter
refuses PACKET_OUTGOING as well for older kernels. A ppp unit has no link-layer header, so the filter's offset
0 is the IP header. Answers go out with sendto((unit, ethertype)) as IP packets of the unit.

FILTER (what it accepts, in this order):
    pkttype == PACKET_OUTGOING                               -> refuse
    IPv4, protocol UDP, not a later fragment, dport 67       -> accept
    IPv6, next header ICMPv6 (no extension header), type 133 -> accept (Router Solicitation, RFC 4861 4.1)
    anything else                                            -> refuse
"""

import struct

from sluice.hal.net.sockets import socket

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
SNAPLEN = 2048          # a DHCPINFORM or an RS fits; more is cut by the kernel (counted malformed by the reader)

# Classic BPF opcodes (include/uapi/linux/filter.h)
LD_W_ABS = 0x20
LD_H_ABS = 0x28
LD_B_ABS = 0x30
LD_H_IND = 0x48
LDX_B_MSH = 0xB1
ALU_AND_K = 0x54
JEQ_K = 0x15
JSET_K = 0x45
RET_K = 0x06
SKF_AD_PKTTYPE = 0xFFFFF000 + 4   # SKF_AD_OFF + SKF_AD_PKTTYPE


# The program with symbolic jump targets: (label or None, code, jump if true, jump if false, k).
_PROGRAM = (
    (None, LD_W_ABS, None, None, SKF_AD_PKTTYPE),
    (None, JEQ_K, "refuse", None, PACKET_OUTGOING),
    (None, LD_B_ABS, None, None, 0),             # the version nibble
    (None, ALU_AND_K, None, None, 0xF0),
    (None, JEQ_K, None, "ipv6", 0x40),
    (None, LD_B_ABS, None, None, 9),             # IPv4 protocol
    (None, JEQ_K, None, "refuse", 17),
    (None, LD_H_ABS, None, None, 6),             # flags + fragment offset
    (None, JSET_K, "refuse", None, 0x1FFF),      # a later fragment has no UDP header
    (None, LDX_B_MSH, None, None, 0),            # X = IHL * 4
    (None, LD_H_IND, None, None, 2),             # UDP destination port
    (None, JEQ_K, "accept", "refuse", 67),
    ("ipv6", JEQ_K, None, "refuse", 0x60),
    (None, LD_B_ABS, None, None, 6),             # IPv6 next header
    (None, JEQ_K, None, "refuse", 58),
    (None, LD_B_ABS, None, None, 40),            # ICMPv6 type
    (None, JEQ_K, "accept", "refuse", 133),
    ("accept", RET_K, None, None, SNAPLEN),
    ("refuse", RET_K, None, None, 0),
)


def assemble(program=_PROGRAM):
    """[(code, jt, jf, k)] with the labels turned into the kernel's relative forward jumps."""
    at = {}
    for i, ins in enumerate(program):
        if ins[0] is not None:
            at[ins[0]] = i
    out = []
    for i, (_label, code, jt, jf, k) in enumerate(program):
        out.append((code, 0 if jt is None else at[jt] - i - 1, 0 if jf is None else at[jf] - i - 1, k))
    return out


FILTER = assemble()

# A client's unit: only Router Advertisements (RFC 4861 4.2) from the server, which Sluice's client applies
# (address, routes, DNS for the hook) as on the user-space path. Nothing of IPv4.
_CLIENT_PROGRAM = (
    (None, LD_W_ABS, None, None, SKF_AD_PKTTYPE),
    (None, JEQ_K, "refuse", None, PACKET_OUTGOING),
    (None, LD_B_ABS, None, None, 0),
    (None, ALU_AND_K, None, None, 0xF0),
    (None, JEQ_K, None, "refuse", 0x60),
    (None, LD_B_ABS, None, None, 6),             # IPv6 next header
    (None, JEQ_K, None, "refuse", 58),
    (None, LD_B_ABS, None, None, 40),            # ICMPv6 type
    (None, JEQ_K, "accept", "refuse", 134),
    ("accept", RET_K, None, None, SNAPLEN),
    ("refuse", RET_K, None, None, 0),
)
CLIENT_FILTER = assemble(_CLIENT_PROGRAM)


def filter_bytes(prog=FILTER):
    """struct sock_filter[]: u16 code, u8 jt, u8 jf, u32 k (native byte order), as the kernel reads it."""
    return b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in prog)


def attach_filter(sock, prog=FILTER):
    """SO_ATTACH_FILTER: struct sock_fprog {u16 len; struct sock_filter *filter} (the kernel copies it). The
    pointer is the address of an array's buffer (array.buffer_info), which costs nothing to import; ctypes
    (libffi) would cost a daemon resident memory for this one call."""
    import array

    buf = array.array("B", filter_bytes(prog))
    fprog = struct.pack("HP", len(prog), buf.buffer_info()[0])
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    del buf     # the kernel copied the program during setsockopt


def open_unit_socket(ifname, prog=FILTER):
    """The filtered AF_PACKET SOCK_DGRAM socket of unit `ifname` (a server's FILTER, a client's CLIENT_FILTER),
    non-blocking."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
    try:
        attach_filter(s, prog)
        try:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass  # before Linux 4.20: the filter refuses PACKET_OUTGOING itself
        s.bind((ifname, ETH_P_ALL))
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s

