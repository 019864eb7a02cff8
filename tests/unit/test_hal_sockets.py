"""sluice.hal.net.sockets.accept: what socket.py's accept gives, from the `_socket` the daemon uses."""

import os
import socket as pysocket
import types

import pytest

from sluice.hal.net.sockets import accept, socket


@pytest.mark.parametrize("timeout", [None, 0.0, 5.0])
def test_accept_makes_the_socket_socket_py_makes(tmp_path, timeout):
    got = {}
    for name, mod in (("py", pysocket), ("c", socket)):
        path = str(tmp_path / (name + ".sock"))
        listener = mod.socket(mod.AF_UNIX, mod.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        peer = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
        peer.connect(path)
        listener.settimeout(timeout)
        s, addr = accept(listener) if mod is socket else listener.accept()
        peer.sendall(b"ping")
        if name == "c":
            assert type(s) is socket.socket
            assert s.recv(4) == b"ping"
        got[name] = (s.family, s.type, s.proto, s.gettimeout(), os.get_blocking(s.fileno()), addr)
        for x in (s, peer, listener):
            x.close()
    assert got["c"] == got["py"]


def test_a_socket_with_its_own_accept_is_left_to_it():
    # MicroPython's socket (its C module) has accept(), as socket.py's has.
    assert accept(types.SimpleNamespace(accept=lambda: ("sock", "addr"))) == ("sock", "addr")
