"""L2TP straight over UDP (option ipsec '0'): the transport the engine uses when IPsec is off."""


class PlainUdp:
    """One UDP socket; the peer key is the (address, port) the datagram came from.

    A client passes a connected socket and sends with peer None.
    """

    __slots__ = ("sock", "deliver", "buf", "view", "errors")

    def __init__(self, sock, deliver, bufsize=65535):
        self.sock = sock
        self.deliver = deliver  # deliver(buf, start, end, peer, now)
        self.buf = bytearray(bufsize)
        self.view = memoryview(self.buf)
        self.errors = 0

    def attach(self, loop):
        loop.add_reader(self.sock, self.readable)

    def readable(self, now):
        buf, sock, deliver = self.buf, self.sock, self.deliver
        for _ in range(64):
            try:
                n, peer = sock.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ICMP errors surface here (port unreachable): the L2TP machines notice silence themselves.
                self.errors += 1
                return
            deliver(buf, 0, n, peer, now)

    def send(self, peer, parts):
        try:
            if peer is None:
                self.sock.sendmsg(parts)
            else:
                self.sock.sendmsg(parts, (), 0, peer)
        except OSError:
            self.errors += 1

    def shutdown(self, now):
        pass

    def rekey(self, now):
        return 0

    def status(self):
        return {"ipsec": False, "send_errors": self.errors}

    def close(self, loop):
        loop.remove_reader(self.sock)
        self.sock.close()
