"""Small-packet rate: `send HOST PORT SECONDS SIZE` sends SIZE-byte UDP payloads as fast as it can for SECONDS
and prints how many it sent; `recv HOST PORT SECONDS` prints `listening`, then counts what arrives until
SECONDS plus a grace second have passed (or 0.5 s of silence after the first packet) and prints
`COUNT FIRST_TO_LAST_SECONDS`. Bounded by wall time in both directions.
"""

import socket
import sys
import time


def send(host, port, seconds, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, int(port)))
    payload = bytes(int(size))
    n = 0
    end = time.monotonic() + float(seconds)
    snd = s.send
    while True:
        for _ in range(256):
            try:
                snd(payload)
                n += 1
            except OSError:
                pass  # ENOBUFS: the queue below is full; that packet is lost at the sender
        if time.monotonic() >= end:
            break
    print(n, flush=True)


def recv(host, port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((host, int(port)))
    print("listening", flush=True)
    buf = bytearray(2048)
    n = 0
    first = last = None
    end = time.monotonic() + float(seconds) + 1.5
    s.settimeout(0.5)
    while True:
        now = time.monotonic()
        if now >= end:
            break
        try:
            s.recv_into(buf)
        except socket.timeout:
            if first is not None:
                break
            continue
        n += 1
        last = time.monotonic()
        if first is None:
            first = last
    print(n, "%.4f" % ((last - first) if n > 1 else 0.0), flush=True)


if __name__ == "__main__":
    {"send": send, "recv": recv}[sys.argv[1]](*sys.argv[2:])
