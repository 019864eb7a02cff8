"""Bounded TCP transfer for namespace tests: `serve HOST PORT` prints the sha256 and size of what it got;
`send HOST PORT NBYTES SEED` sends deterministic pseudo-random data and prints its sha256 and size."""

import hashlib
import random
import socket
import sys


def serve(host, port, timeout=60):
    s = socket.socket()
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


if __name__ == "__main__":
    {"serve": serve, "send": send}[sys.argv[1]](*sys.argv[2:])
