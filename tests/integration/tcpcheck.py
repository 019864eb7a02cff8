"""Bounded TCP transfer for namespace tests: `serve HOST PORT` prints the sha256 and size of what it got;
`send HOST PORT NBYTES SEED` sends deterministic pseudo-random data and prints its sha256 and size."""

import hashlib
import random
import socket
import sys


def serve(host, port, timeout=60):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(1)
    s.settimeout(timeout)
    print("listening", flush=True)
    c, _ = s.accept()
    c.settimeout(timeout)
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    print(h.hexdigest(), n, flush=True)


def send(host, port, nbytes, seed, timeout=60):
    rnd = random.Random(int(seed))
    c = socket.create_connection((host, int(port)), timeout=timeout)
    h = hashlib.sha256()
    left = int(nbytes)
    while left:
        chunk = rnd.getrandbits(8 * min(left, 65536)).to_bytes(min(left, 65536), "big")
        c.sendall(chunk)
        h.update(chunk)
        left -= len(chunk)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    c.close()
    print(h.hexdigest(), nbytes, flush=True)


def sink(host, port, timeout=60):
    """Count bytes only: the receiving end of a throughput measurement (no hashing in the way)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(1)
    s.settimeout(timeout)
    print("listening", flush=True)
    c, _ = s.accept()
    c.settimeout(timeout)
    buf = bytearray(262144)
    n = 0
    while True:
        k = c.recv_into(buf)
        if not k:
            break
        n += k
    print(n, flush=True)


def blast(host, port, nbytes, timeout=60):
    """Send nbytes of one repeated block as fast as TCP takes them."""
    block = bytes(range(256)) * 256
    c = socket.create_connection((host, int(port)), timeout=timeout)
    left = int(nbytes)
    view = memoryview(block)
    while left:
        k = min(left, len(block))
        c.sendall(view[:k])
        left -= k
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    c.close()
    print(nbytes, flush=True)


if __name__ == "__main__":
    {"serve": serve, "send": send, "sink": sink, "blast": blast}[sys.argv[1]](*sys.argv[2:])
