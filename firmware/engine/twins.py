"""In-memory twins of the engine's IO: a loop with a fixed (virtual) clock, UDP and raw ESP sockets on a
simulated network with an optional NAT, and a TUN device. With them a client and a server run together in
one test process, through IPsec, with no kernel (the WireGuard `bindtest`/`ChannelTUN` idea).

The clock only moves when nothing is ready: then it jumps to the next timer. Every run is bounded by a step
count and a virtual-time limit.
"""

import heapq


class VirtualLoop:
    def __init__(self, start=1000.0):
        self.t = start
        self.readers = {}  # id(obj) -> (obj, callback)
        self.timers = []
        self._seq = 0
        self.errors = 0

    def time(self):
        return self.t

    def add_reader(self, obj, callback):
        self.readers[id(obj)] = (obj, callback)

    def remove_reader(self, obj):
        self.readers.pop(id(obj), None)

    def call_at(self, deadline, callback):
        if deadline is None:
            return
        self._seq += 1
        heapq.heappush(self.timers, (deadline, self._seq, callback))

    def _run_due(self):
        """Run every ready reader and every timer due now; True when anything ran."""
        ran = False
        for obj, cb in list(self.readers.values()):
            if getattr(obj, "pending", _none)():
                cb(self.t)
                ran = True
        while self.timers and self.timers[0][0] <= self.t:
            _, _, cb = heapq.heappop(self.timers)
            cb(self.t)
            ran = True
        return ran

    def step(self):
        """Run what is ready now; if nothing is, advance the clock to the next timer. False when idle."""
        if self._run_due():
            return True
        if self.timers:
            self.t = max(self.t, self.timers[0][0])
            return True
        return False

    def run(self, until, max_steps=20000, max_time=600.0):
        """Step until `until()` is true, at most max_steps steps and max_time virtual seconds."""
        end = self.t + max_time
        for _ in range(max_steps):
            if until():
                return True
            if self.t > end or not self.step():
                break
        return until()

    def advance(self, seconds, max_steps=20000):
        """Let `seconds` of virtual time pass, running whatever comes due."""
        end = self.t + seconds
        for _ in range(max_steps):
            if self._run_due():
                continue
            nxt = self.timers[0][0] if self.timers else end
            if nxt > end:
                self.t = end
                return
            self.t = nxt


def _none():
    return False


class MemoryNet:
    """Hosts by address; UDP (ip, port) sockets; raw ESP sockets per host; NATs that map inside hosts."""

    def __init__(self):
        self.udp = {}       # (ip, port) -> MemoryUdp
        self.raw = {}       # ip -> MemoryRawEsp
        self.nats = {}      # inside ip -> Nat
        self.dropped = 0
        self.wire = []      # (proto, src, dst, bytes) of everything sent, for sequence-chart checks
        self.keep_wire = True

    def host(self, ip, resolve=None):
        return MemoryHost(self, ip, resolve or {})

    def nat(self, inside_ip, public_ip):
        n = Nat(public_ip)
        self.nats[inside_ip] = n
        return n

    def send_udp(self, src, dst, data):
        nat = self.nats.get(src[0])
        if nat is not None:
            src = nat.out(src)
        if self.keep_wire:
            self.wire.append(("udp", src, dst, bytes(data)))
        for n in self.nats.values():
            if dst[0] == n.public:
                dst = n.back(dst)
                if dst is None:
                    self.dropped += 1
                    return
        sock = self.udp.get(dst) or self.udp.get(("0.0.0.0", dst[1]))
        if sock is None or (sock.connected is not None and sock.connected != src):
            self.dropped += 1
            return
        sock.inbox.append((bytes(data), src))

    def send_esp(self, src_ip, dst_ip, packet):
        if src_ip in self.nats:
            self.dropped += 1  # a NAT does not carry raw ESP for several hosts: NAT-T is needed
            return
        if self.keep_wire:
            self.wire.append(("esp", src_ip, dst_ip, bytes(packet)))
        sock = self.raw.get(dst_ip)
        if sock is None:
            self.dropped += 1
            return
        header = bytes([0x45]) + bytes(11) + bytes(int(x) for x in src_ip.split(".")) + \
            bytes(int(x) for x in dst_ip.split("."))
        sock.inbox.append((header + bytes(packet), (src_ip, 0)))


class Nat:
    """Endpoint-independent mapping of (inside ip, port) to (public ip, port); `flush` re-maps everything."""

    def __init__(self, public):
        self.public = public
        self.map = {}
        self.rev = {}
        self.next_port = 40000

    def out(self, src):
        m = self.map.get(src)
        if m is None:
            m = (self.public, self.next_port)
            self.next_port += 1
            self.map[src] = m
            self.rev[m] = src
        return m

    def back(self, dst):
        return self.rev.get(dst)

    def flush(self):
        self.map.clear()
        self.rev.clear()


class MemoryHost:
    """The sockets factory of one host (what `runner.RealSockets` is for the real machine)."""

    def __init__(self, net, ip, resolve):
        self.net = net
        self.ip = ip
        self.names = resolve

    def udp(self, address, port, client):
        key = (address if address not in ("", "0.0.0.0") else self.ip, port)
        if key in self.net.udp:
            if not client:
                raise RuntimeError("cannot listen on UDP %s:%d: in use" % key)
            port = 30000 + len(self.net.udp)
            key = (key[0], port)
        s = MemoryUdp(self.net, key)
        self.net.udp[key] = s
        return s

    def raw_esp(self):
        s = MemoryRawEsp(self.net, self.ip)
        self.net.raw[self.ip] = s
        return s

    def resolve(self, host, port):
        return (self.names.get(host, host), port)

    def connected_udp(self, addr):
        s = self.udp(self.ip, 1701, True)
        s.connect(addr)
        return s

    def source_address(self, server_ip):
        return self.ip


class MemoryUdp:
    def __init__(self, net, addr):
        self.net = net
        self.addr = addr
        self.inbox = []
        self.connected = None
        self.closed = False

    def fileno(self):
        return -1 if self.closed else 1

    def pending(self):
        return bool(self.inbox)

    def getsockname(self):
        return self.addr

    def connect(self, addr):
        self.connected = addr

    def setsockopt(self, *a):
        pass

    def recvfrom_into(self, buf):
        if not self.inbox:
            raise BlockingIOError()
        data, src = self.inbox.pop(0)
        buf[:len(data)] = data
        return len(data), src

    def recvmsg(self, bufsize, ancsize=0):
        if not self.inbox:
            raise BlockingIOError()
        data, src = self.inbox.pop(0)
        return data[:bufsize], [], 0, src

    def sendto(self, data, addr):
        self.net.send_udp(self.addr, addr, bytes(data))
        return len(data)

    def sendmsg(self, parts, anc=(), flags=0, addr=None):
        data = b"".join(bytes(p) for p in parts)
        self.net.send_udp(self.addr, addr if addr is not None else self.connected, data)
        return len(data)

    def close(self):
        if not self.closed:
            self.closed = True
            if self.net.udp.get(self.addr) is self:
                del self.net.udp[self.addr]


class MemoryRawEsp:
    def __init__(self, net, ip):
        self.net = net
        self.ip = ip
        self.inbox = []
        self.closed = False

    def fileno(self):
        return -1 if self.closed else 1

    def pending(self):
        return bool(self.inbox)

    def recvfrom_into(self, buf):
        if not self.inbox:
            raise BlockingIOError()
        data, src = self.inbox.pop(0)
        buf[:len(data)] = data
        return len(data), src

    def sendto(self, packet, addr):
        self.net.send_esp(self.ip, addr[0], packet)
        return len(packet)

    def close(self):
        self.closed = True
        if self.net.raw.get(self.ip) is self:
            del self.net.raw[self.ip]


class MemoryTun:
    """The tunnel device: `inject` plays the kernel routing a packet into it, `taken` what it delivered."""

    def __init__(self, name):
        self.name = name
        self.inbox = []
        self.taken = []
        self.closed = False

    def fileno(self):
        return -1 if self.closed else 1

    def pending(self):
        return bool(self.inbox)

    def inject(self, packet):
        self.inbox.append(bytes(packet))

    def read_into(self, buf):
        if not self.inbox:
            return 0
        p = self.inbox.pop(0)
        buf[:len(p)] = p
        return len(p)

    def write(self, packet):
        self.taken.append(bytes(packet))
        return len(packet)

    def close(self):
        self.closed = True
