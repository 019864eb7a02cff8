"""The socket C module itself, not socket.py: a daemon's sockets without enum, selectors and their kin.

CPython's socket.py only wraps `_socket` (enums for the constants, makefile, sendfile, create_connection) and
costs a daemon ~1.2 MB resident for it (python3.13), enum alone ~0.8 MB. MicroPython's `socket` is its C
module already. `_socket.socket` has no accept() (see `accept` below), no `with`, no makefile; dup() gives an fd.
"""

try:
    import _socket as socket
except ImportError:  # MicroPython
    import socket


def accept(listener):
    """listener.accept() -> (sock, addr), also for `_socket`, whose socket has only _accept() -> (fd, addr)."""
    own = getattr(listener, "accept", None)
    if own is not None:  # MicroPython's socket, or socket.py's
        return own()
    fd, addr = listener._accept()
    s = socket.socket(listener.family, listener.type, listener.proto, fileno=fd)
    if socket.getdefaulttimeout() is None and listener.gettimeout():
        s.setblocking(True)  # as socket.py: a listener with a timeout gives a blocking socket whatever the flags
    return s, addr
