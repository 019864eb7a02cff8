"""The kernel runs the unit socket's BPF filter (sluice.hal.net.unit_packet) on a real device.

This host has no PPP, so the socket is opened on one end of a veth pair (namespaces "cli" -- "srv", RFC 5737 and
link-local addresses only); an AF_PACKET SOCK_DGRAM socket sees the packet from the network header there as on
a ppp unit. From "cli": a DHCPINFORM-like datagram to port 67, UDP to another port, a ping, an ICMPv6 Router
Solicitation and an echo request to ff02::1; from "srv" itself a datagram to port 67 (outgoing). Only the
datagram to port 67 and the Router Solicitation are read; ARP, Neighbor Discovery and MLD the kernels exchange
meanwhile are refused too.
"""

import select
import socket
import time

import pytest

import netns
import radius_lab
from sluice.hal.net import unit_packet

ok, why = netns.can_use_netns()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]


def test_only_dhcp_and_router_solicitations_cross():
    with netns.Lab(prefix="up") as lab:
        cli = lab.ns("cli")
        srv = lab.ns("srv")
        a, b = lab.link(cli, "192.0.2.10/24", srv, "192.0.2.1/24")
        lab.run(cli, "ip", "-6", "addr", "add", "fe80::10/64", "dev", a, "nodad")
        lab.run(srv, "ip", "-6", "addr", "add", "fe80::1/64", "dev", b, "nodad")
        sock = radius_lab.in_netns(srv, lambda: unit_packet.open_unit_socket(b))
        try:
            def client_side():
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind(("192.0.2.10", 68))
                u.sendto(b"\x01" + b"\x00" * 239, ("192.0.2.1", 67))
                u.sendto(b"data", ("192.0.2.1", 5353))
                u.close()
                r = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
                r.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                idx = socket.if_nametoindex(a)
                r.sendto(b"\x85\x00\x00\x00\x00\x00\x00\x00", ("ff02::2", 0, 0, idx))   # the kernel sums it
                r.sendto(b"\x80\x00\x00\x00\x00\x01\x00\x01", ("ff02::1", 0, 0, idx))
                r.close()

            lab.run(cli, "ping", "-c", "1", "-W", "2", "192.0.2.1")
            radius_lab.in_netns(cli, client_side)

            def server_side():
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.sendto(b"\x02" + b"\x00" * 239, ("192.0.2.10", 67))
                u.close()

            radius_lab.in_netns(srv, server_side)
            got = []
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and len(got) < 10:
                ready, _, _ = select.select([sock], [], [], 0.2)
                if ready:
                    got.append(sock.recv(4096))
        finally:
            sock.close()
        kinds = []
        for pkt in got:
            if pkt[0] >> 4 == 4:
                kinds.append(("udp", int.from_bytes(pkt[22:24], "big"), pkt[28]))
            else:
                kinds.append(("icmp6", pkt[40]))
        assert kinds == [("udp", 67, 1), ("icmp6", 133)]
