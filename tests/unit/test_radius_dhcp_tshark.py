"""Our RADIUS and DHCPACK packets as Wireshark's dissectors read them (tshark, given the shared secret).

tshark decrypts the User-Password we hid (RFC 2865 5.2), validates the Response Authenticator of our replies
(and flags one signed with another secret), and names option 249 as Microsoft's classless static routes.
"""

import shutil
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from scapy.utils import wrpcap

from sluice.dhcp import inform as D
from sluice.radius import packet as P

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed (apt-get install tshark)")

SECRET = b"a-long-shared-secret-1"
RA = bytes(range(16))
NAS, RAD = "192.0.2.2", "192.0.2.1"


def _fields(tmp_path, packets, *fields):
    pcap = str(tmp_path / "r.pcap")
    wrpcap(pcap, packets)
    cmd = [TSHARK, "-r", pcap, "-o", "radius.shared_secret:" + SECRET.decode(), "-o",
           "radius.validate_authenticator:TRUE", "-T", "fields", "-E", "separator=|"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def _udp(src, dst, sport, dport, data):
    return IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(data)


def test_tshark_decrypts_our_password_and_validates_our_replies(tmp_path):
    req = P.encode_request(P.ACCESS_REQUEST, 42, [(P.USER_NAME, b"alice"), (P.USER_PASSWORD, b"correct horse")],
                           SECRET, RA)
    good = P.encode_reply(P.ACCESS_ACCEPT, 42, RA, [P.attr_int(P.SESSION_TIMEOUT, 60)], SECRET)
    forged = P.encode_reply(P.ACCESS_ACCEPT, 42, RA, [P.attr_int(P.SESSION_TIMEOUT, 60)], b"not-the-secret")
    acct = P.encode_request(P.ACCOUNTING_REQUEST, 7, [P.attr_int(P.ACCT_STATUS_TYPE, P.ACCT_START),
                                                      P.attr_str(P.ACCT_SESSION_ID, "5A1C0001")], SECRET)
    acct_rep = P.encode_reply(P.ACCOUNTING_RESPONSE, 7, acct[4:20], [], SECRET)
    rows = _fields(tmp_path, [_udp(NAS, RAD, 40000, 1812, req), _udp(RAD, NAS, 1812, 40000, good),
                              _udp(RAD, NAS, 1812, 40000, forged), _udp(NAS, RAD, 40001, 1813, acct),
                              _udp(RAD, NAS, 1813, 40001, acct_rep)],
                   "radius.code", "radius.User_Password", "radius.authenticator.valid",
                   "radius.authenticator.invalid", "radius.Acct_Session_Id")
    assert rows[0][:2] == ["1", "correct horse"]
    assert rows[1][0] == "2" and rows[1][2:4] == ["1", "0"]
    assert rows[2][0] == "2" and rows[2][2:4] == ["0", "1"]
    assert rows[3][0] == "4" and rows[3][4] == "5A1C0001"
    assert rows[4][0] == "5" and rows[4][2:4] == ["1", "0"]


def test_tshark_reads_our_dhcpack(tmp_path):
    bootp = bytearray(236)
    bootp[0], bootp[1], bootp[2] = 1, 1, 6
    bootp[12:16] = bytes((192, 0, 2, 10))
    inform = D.ipv4_udp(bytes((192, 0, 2, 10)), b"\xff" * 4, 68, 67, bytes(bootp) + D.MAGIC + bytes((53, 1, 8, 255)))
    ack = D.answer_inform(inform, "192.0.2.1", ["198.51.100.0/24", "203.0.113.0/25"], ["192.0.2.53"], "example.org")
    rows = _fields(tmp_path, [IP(inform), IP(ack)], "dhcp.option.dhcp", "dhcp.option.type",
                   "dhcp.option.domain_name", "dhcp.option.domain_name_server", "udp.checksum.status",
                   "ip.checksum.status")
    assert rows[0][0] == "8" and rows[1][0] == "5"  # DHCPINFORM, DHCPACK
    assert rows[1][1].startswith("53,54,1,6,15,121,249,"), rows[1]
    assert rows[1][2] == "example.org" and rows[1][3] == "192.0.2.53"
    pcap = str(tmp_path / "r.pcap")
    out = subprocess.run([TSHARK, "-r", pcap, "-V", "-Y", "dhcp.option.dhcp == 5"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "Option: (249) Private/Classless Static Route (Microsoft)" in out
    assert "198.51.100.0/24-192.0.2.1" in out or "198.51.100.0/24" in out, out
