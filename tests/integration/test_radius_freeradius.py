"""sluice.radius against a real FreeRADIUS (Debian's freeradius 3.2) in network namespaces.

Topology (RFC 5737 addresses only): namespace "nas" 192.0.2.2 and 192.0.2.3 (two Sluice servers sharing one
RADIUS) -- namespace "rad" 192.0.2.1 running FreeRADIUS (auth 1812, acct 1813; every client with
require_message_authenticator, so it drops any request of ours whose Message-Authenticator is wrong).

What is checked, each against FreeRADIUS's own verdict:
  - PAP, CHAP-MD5 and MS-CHAPv2 logins of a PPP client through a PppLink server with external_auth: the
    VerifyCredentials becomes an Access-Request, FreeRADIUS's reply becomes auth_result; the PPP client
    verifies MS-CHAPv2's authenticator response computed by FreeRADIUS; Framed-IP-Address reaches IPCP;
    Session-Timeout / Idle-Timeout / Reply-Message are read; wrong passwords are rejected.
  - FreeRADIUS's Access replies carry a Message-Authenticator; the same reply with it removed (and the
    Response Authenticator recomputed, as a BlastRADIUS forger would) or with it altered is refused.
  - Accounting Start, Interim-Update and Stop land in FreeRADIUS's detail file with our values.
  - Failover: a first server that never answers, then FreeRADIUS; and "RADIUS unreachable" when none does.
  - radclient sends Disconnect-Request and CoA-Request to our DAE listener and gets ACK / NAK back
    (radclient verifies our Response Authenticator); one without Message-Authenticator gets nothing.
"""

import os
import shutil
import subprocess
import time

import pytest

import netns
import radius_lab
from sluice.ppp.config import PppConfig
from sluice.ppp.events import VerifyCredentials
from sluice.ppp.link import PppLink
from sluice.radius import auth, packet as P
from sluice.radius.client import RadiusClient, RadiusFailed, RadiusReply, RadiusServer
from sluice.radius.dae import DaeListener, identify
from sluice.radius.sessions import RadiusSessions

ok, why = netns.can_use_netns()
if ok and radius_lab.freeradius_binary() is None:
    ok, why = False, "needs FreeRADIUS (Debian package freeradius)"
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

SECRET = "Sh4red-secret-for-tests"
SECRET2 = "Another-secret-nas-two"
RAD = "192.0.2.1"
NAS1 = "192.0.2.2"
NAS2 = "192.0.2.3"
NAS3 = "192.0.2.4"  # a NAS FreeRADIUS answers as it does out of the box: no Message-Authenticator in replies

# FreeRADIUS before 3.2.5 (Debian 12 has 3.2.1) sends no Message-Authenticator in Access replies unless told
# to: this is the BlastRADIUS mitigation its authors published for those versions, applied for NAS1 and NAS2.
POST_AUTH = """\
        if (&Packet-Src-IP-Address != 192.0.2.4) {
            update reply {
                Message-Authenticator := 0x00
            }
        }
        Post-Auth-Type REJECT {
            update reply {
                Message-Authenticator := 0x00
            }
        }
"""

USERS = """\
papuser Cleartext-Password := "pap-secret-1"
        Framed-IP-Address = 198.51.100.77,
        Session-Timeout = 3600,
        Idle-Timeout = 600,
        Reply-Message = "Hello, %{User-Name}"

chapuser Cleartext-Password := "chap-secret-1"
        Framed-IP-Address = 198.51.100.78,
        Session-Timeout = 1800

msuser  Cleartext-Password := "ms-secret-1"
        Framed-IP-Address = 198.51.100.79,
        Session-Timeout = 900,
        Acct-Interim-Interval = 120,
        Class = "sluice-class-1"
"""


@pytest.fixture(scope="module")
def radlab():
    with netns.Lab(prefix="rd") as lab:
        nas = lab.ns("nas")
        rad = lab.ns("rad")
        a, _ = lab.link(nas, NAS1 + "/24", rad, RAD + "/24")
        netns.sh("ip", "-n", nas, "addr", "add", NAS2 + "/24", "dev", a)
        netns.sh("ip", "-n", nas, "addr", "add", NAS3 + "/24", "dev", a)
        fr = radius_lab.FreeRadius(lab, rad, RAD, {"nas1": (NAS1, SECRET), "nas2": (NAS2, SECRET2),
                                                   "nas3": (NAS3, SECRET)}, USERS, POST_AUTH)
        t0 = time.monotonic()
        fr.start()
        lab.startup = time.monotonic() - t0
        lab.nas, lab.rad, lab.fr = nas, rad, fr
        yield lab
        fr.stop()


def _client(lab, addr=NAS1, secret=SECRET, servers=None, **kw):
    sock = radius_lab.udp_socket_in(lab.nas, addr)
    keys = servers or [(RAD, 1812)]
    return RadiusClient([RadiusServer(k, secret) for k in keys], os.urandom, **kw), sock


def _one(machine, sock, timeout=10.0):
    """Run until the machine has an event; return it."""
    box = []

    def done():
        e = machine.next_event()
        if e is not None:
            box.append(e)
        return bool(box)
    radius_lab.pump([(machine, sock)], time.monotonic() + timeout, stop=done)
    assert box, "no RADIUS outcome in %.0f s" % timeout
    return box[0]


def _ppp_login(lab, method, username, password):
    """A PPP client and a PppLink server (external_auth) in memory; the server asks FreeRADIUS over UDP."""
    scfg = PppConfig(auth=(method,), get_password={}.get, assign_address=lambda u: "198.51.100.200",
                     local_ip="198.51.100.1", dns=["192.0.2.53"], external_auth=True, auth_wait=20.0)
    server = PppLink("server", scfg, os.urandom)
    client = PppLink("client", PppConfig(auth=(method,), username=username, password=password), os.urandom)
    rc, sock = _client(lab)
    logins = auth.RadiusLogins(rc, "sluice-test", NAS1)
    events = {"client": [], "server": []}
    verdicts = []
    now = time.monotonic
    client.open(now())
    server.open(now())
    deadline = now() + 30
    while now() < deadline and not (any(type(e).__name__ in ("IpUp", "LinkDown") for e in events["client"])):
        for _ in range(50):
            moved = 0
            for f in client.frames_to_send():
                server.frame_received(f, now())
                moved += 1
            for f in server.frames_to_send():
                client.frame_received(f, now())
                moved += 1
            if not moved:
                break
        for who, link in (("client", client), ("server", server)):
            for _ in range(20):
                e = link.next_event()
                if e is None:
                    break
                events[who].append(e)
                if isinstance(e, VerifyCredentials):
                    logins.ask("the-link", e, now(), nas_port=1)
        radius_lab.pump([(rc, sock)], now() + 0.05)
        for key, v in logins.verdicts():
            assert key == "the-link"
            verdicts.append(v)
            server.auth_result(now(), **v.auth_result_kwargs())
        for link in (client, server):
            t = link.get_timer()
            if t is not None and t <= now():
                link.handle_timer(now())
    sock.close()
    return events, verdicts


def _kinds(evs):
    return [type(e).__name__ for e in evs]


def test_freeradius_starts_fast(radlab):
    assert radlab.startup < 10.0, radlab.startup


@pytest.mark.parametrize("method,user,password,address", [
    ("pap", "papuser", "pap-secret-1", "198.51.100.77"),
    ("chap", "chapuser", "chap-secret-1", "198.51.100.78"),
    ("mschapv2", "msuser", "ms-secret-1", "198.51.100.79"),
])
def test_ppp_login_through_freeradius(radlab, method, user, password, address):
    events, verdicts = _ppp_login(radlab, method, user, password)
    assert _kinds(events["server"]) == ["VerifyCredentials", "Authenticated", "IpUp"], (events, radlab.fr.log()[-2000:])
    # The client accepted the server: for MS-CHAPv2 it checked FreeRADIUS's authenticator response.
    assert _kinds(events["client"]) == ["Authenticated", "IpUp"], events["client"]
    assert events["client"][1].local_ip == address  # Framed-IP-Address through IPCP
    assert verdicts[0].ok and verdicts[0].session_timeout in (3600, 1800, 900)
    if method == "pap":
        assert verdicts[0].idle_timeout == 600 and verdicts[0].reply_message == "Hello, papuser"


@pytest.mark.parametrize("method", ["pap", "chap", "mschapv2"])
def test_ppp_wrong_password_rejected_by_freeradius(radlab, method):
    user = {"pap": "papuser", "chap": "chapuser", "mschapv2": "msuser"}[method]
    events, verdicts = _ppp_login(radlab, method, user, "not-the-password")
    assert _kinds(events["server"]) == ["VerifyCredentials", "AuthFailed", "LinkDown"], events["server"]
    assert events["server"][1].reason.startswith("authentication failed for user %s (rejected by RADIUS" % user)
    assert _kinds(events["client"]) == ["AuthFailed", "LinkDown"]


def test_replies_carry_message_authenticator_and_forgeries_are_refused(radlab):
    rc, sock = _client(radlab)
    h = rc.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"papuser"), (P.USER_PASSWORD, b"pap-secret-1")] +
                   auth.nas_attrs("sluice-test", NAS1), time.monotonic())
    (key, raw), = rc.datagrams_to_send()
    req = P.decode(raw)
    sock.sendto(raw, key)
    deadline = time.monotonic() + 5
    reply = None
    while reply is None and time.monotonic() < deadline:
        try:
            reply, _ = sock.recvfrom(4096)
        except BlockingIOError:
            time.sleep(0.02)
    assert reply is not None, radlab.fr.log()[-2000:]
    pkt = P.decode(reply)
    assert pkt.code == P.ACCESS_ACCEPT
    assert pkt.get(P.MESSAGE_AUTHENTICATOR) is not None, "FreeRADIUS sent no Message-Authenticator"
    assert P.verify_reply(reply, req.authenticator, SECRET.encode(), True) is None
    # Forger's version: the Message-Authenticator stripped, the Response Authenticator recomputed.
    stripped = P.encode_reply(pkt.code, pkt.ident, req.authenticator,
                              [a for a in pkt.attrs if a[0] != P.MESSAGE_AUTHENTICATOR], SECRET.encode(), False)
    altered = bytearray(reply)
    i = bytes(altered).find(b"\x50\x12")
    altered[i + 5] ^= 0x55
    rc.datagram_received(stripped, key, time.monotonic())
    rc.datagram_received(bytes(altered), key, time.monotonic())
    assert rc.next_event() is None and rc.stats["bad_authenticator"] == 2
    rc.datagram_received(reply, key, time.monotonic())
    e = rc.next_event()
    assert isinstance(e, RadiusReply) and e.handle == h
    sock.close()


def test_freeradius_reply_without_message_authenticator_is_refused(radlab):
    # NAS3 gets FreeRADIUS's default replies (no Message-Authenticator): genuine, and still refused.
    rc, sock = _client(radlab, NAS3, timeout=0.5, retries=1)
    rc.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"papuser"), (P.USER_PASSWORD, b"pap-secret-1")] +
               auth.nas_attrs("sluice-test", NAS3), time.monotonic())
    e = _one(rc, sock)
    assert isinstance(e, RadiusFailed), e
    assert rc.stats["bad_authenticator"] == 2 and rc.stats["replies"] == 0
    assert e.reason.startswith("RADIUS: every reply was refused (last from 192.0.2.1:1812: Message-Authenticator "
                               "missing or wrong)"), e.reason
    assert "Login OK: [papuser] (from client nas3" in radlab.fr.log()
    sock.close()


def test_accounting_start_interim_stop_in_the_detail_file(radlab):
    rc, sock = _client(radlab, servers=[(RAD, 1813)], require_ma_accounting=False)
    nas = auth.nas_attrs("sluice-test", NAS1, 7)
    sid = "5a1c0001"
    for status, kw in ((P.ACCT_START, {}),
                       (P.ACCT_INTERIM, {"session_time": 30, "in_octets": 1000, "out_octets": 2000,
                                         "in_packets": 10, "out_packets": 20}),
                       (P.ACCT_STOP, {"session_time": 61, "in_octets": (1 << 32) + 5, "out_octets": 4000,
                                      "in_packets": 11, "out_packets": 22, "terminate_cause": P.TERM_USER_REQUEST})):
        rc.request(P.ACCOUNTING_REQUEST, auth.accounting_attrs(status, sid, "msuser", nas, "198.51.100.79", **kw),
                   time.monotonic())
        e = _one(rc, sock)
        assert isinstance(e, RadiusReply) and e.packet.code == P.ACCOUNTING_RESPONSE, (e, radlab.fr.log()[-2000:])
    sock.close()
    recs = [r for r in radlab.fr.detail_records() if r.get("Acct-Session-Id") == sid]
    assert [r["Acct-Status-Type"] for r in recs] == ["Start", "Interim-Update", "Stop"], recs
    start, interim, stop = recs
    assert start["User-Name"] == "msuser" and start["NAS-Identifier"] == "sluice-test"
    assert start["Framed-IP-Address"] == "198.51.100.79" and start["NAS-Port"] == "7"
    assert interim["Acct-Input-Octets"] == "1000" and interim["Acct-Output-Packets"] == "20"
    assert stop["Acct-Input-Octets"] == "5" and stop["Acct-Input-Gigawords"] == "1"
    assert stop["Acct-Session-Time"] == "61" and stop["Acct-Terminate-Cause"] == "User-Request"


def test_two_nas_share_the_server(radlab):
    # Two Sluice servers (two NAS addresses, each its own secret) log in the same user at once.
    machines = []
    for addr, secret in ((NAS1, SECRET), (NAS2, SECRET2)):
        rc, sock = _client(radlab, addr, secret)
        rc.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"papuser"), (P.USER_PASSWORD, b"pap-secret-1")] +
                   auth.nas_attrs("nas-" + addr, addr), time.monotonic())
        machines.append((rc, sock))
    got = {}

    def done():
        for i, (m, _) in enumerate(machines):
            e = m.next_event()
            if e is not None:
                got[i] = e
        return len(got) == 2
    radius_lab.pump(machines, time.monotonic() + 10, stop=done)
    assert sorted(got) == [0, 1]
    for e in got.values():
        assert isinstance(e, RadiusReply) and e.packet.code == P.ACCESS_ACCEPT
        assert e.packet.get_ip(P.FRAMED_IP_ADDRESS) == "198.51.100.77"
    for _, s in machines:
        s.close()


def test_failover_to_the_second_server_and_unreachable(radlab):
    # 192.0.2.1:1912 has nothing listening; after 2 tries 0.5 s apart the request goes to FreeRADIUS.
    rc, sock = _client(radlab, servers=[(RAD, 1912), (RAD, 1812)], timeout=0.5, retries=1)
    t0 = time.monotonic()
    rc.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"papuser"), (P.USER_PASSWORD, b"pap-secret-1")] +
               auth.nas_attrs("sluice-test", NAS1), t0)
    e = _one(rc, sock)
    assert isinstance(e, RadiusReply) and e.server == "192.0.2.1:1812" and e.packet.code == P.ACCESS_ACCEPT
    assert 1.0 <= time.monotonic() - t0 < 3.0
    assert rc.status()[0]["timeouts"] == 1 and rc.status()[0]["dead"]
    sock.close()
    # Nothing answers at all: a clear outcome in bounded time, never a hang.
    rc, sock = _client(radlab, servers=[(RAD, 1912), ("192.0.2.9", 1812)], timeout=0.5, retries=1)
    t0 = time.monotonic()
    rc.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"papuser")] + auth.nas_attrs("sluice-test", NAS1), t0)
    e = _one(rc, sock)
    assert isinstance(e, RadiusFailed)
    assert e.reason == ("RADIUS unreachable: no reply from 192.0.2.1:1912, 192.0.2.9:1812 after 2 tries each, "
                        "1 s apart") or e.reason.startswith("RADIUS unreachable: no reply from 192.0.2.1:1912, "
                                                            "192.0.2.9:1812 after 2 tries each")
    assert time.monotonic() - t0 < 3.0
    sock.close()


def _radclient(lab, kind, attrs, port=3799, timeout=6):
    cmd = ["ip", "netns", "exec", lab.rad, "radclient", "-x", "-t", "1", "-r", "2", "%s:%d" % (NAS1, port), kind,
           SECRET]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True), attrs


@pytest.mark.skipif(shutil.which("radclient") is None, reason="needs radclient (Debian package freeradius-utils)")
def test_radclient_disconnect_and_coa_to_our_dae_listener(radlab):
    sock = radius_lab.udp_socket_in(radlab.nas, NAS1, 3799)
    dae = DaeListener({RAD: SECRET})
    sessions = {"5a1c0002": "msuser"}  # what the engine would have: Acct-Session-Id -> user
    seen = []

    def run(kind, attrs):
        p = subprocess.Popen(["ip", "netns", "exec", radlab.rad, "radclient", "-x", "-t", "1", "-r", "1",
                              "%s:3799" % NAS1, kind, SECRET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        p.stdin.write(attrs)
        p.stdin.close()

        def done():
            e = dae.next_event()
            if e is not None:
                seen.append(e)
                who = identify(e.packet)
                found = sessions.get(who["acct_session_id"]) == who["user_name"]
                if e.kind == "disconnect" and found:
                    del sessions[who["acct_session_id"]]  # the engine would close the PPP link here
                dae.answer(e.ref, found, None if found else P.ERR_SESSION_NOT_FOUND, time.monotonic())
            return p.poll() is not None
        radius_lab.pump([(dae, sock)], time.monotonic() + 10, stop=done)
        out = p.stdout.read()
        p.wait(5)
        return p.returncode, out

    rc, out = run("disconnect", 'User-Name = "msuser"\nAcct-Session-Id = "5a1c0002"\nMessage-Authenticator = 0x00\n')
    assert "Received Disconnect-ACK" in out, out
    assert sessions == {} and seen[-1].kind == "disconnect"
    rc, out = run("coa", 'User-Name = "msuser"\nAcct-Session-Id = "5a1c0009"\nSession-Timeout = 60\n'
                         'Message-Authenticator = 0x00\n')
    assert "Received CoA-NAK" in out and "Error-Cause = Session-Context-Not-Found" in out, out
    assert seen[-1].kind == "coa" and seen[-1].packet.get_int(P.SESSION_TIMEOUT) == 60
    # Without a Message-Authenticator: silently dropped, radclient gets no reply.
    n = len(seen)
    rc, out = run("disconnect", 'User-Name = "msuser"\nAcct-Session-Id = "5a1c0002"\n')
    assert rc != 0 and "Received" not in out, out
    assert len(seen) == n and dae.stats["bad_authenticator"] >= 1
    sock.close()


def test_session_accounting_after_a_radius_login(radlab):
    # msuser logs in over MS-CHAPv2; the session table accounts it with the Class FreeRADIUS gave.
    events, verdicts = _ppp_login(radlab, "mschapv2", "msuser", "ms-secret-1")
    v = verdicts[0]
    assert v.ok and v.interim_interval == 120 and v.class_ == [b"sluice-class-1"]
    rc, sock = _client(radlab, servers=[(RAD, 1813)], kind="RADIUS accounting")
    table = RadiusSessions(rc, auth.nas_attrs("sluice-test", NAS1), os.urandom)
    t0 = time.monotonic()
    sid = table.start("link-1", "msuser", events["server"][-1].peer_ip, t0, v)
    assert table.get_timer() is not None
    radius_lab.pump([(rc, sock)], t0 + 5, stop=lambda: rc.pending() == 0)
    table.stop("link-1", t0 + 42, (123456, 654321, 100, 200), P.TERM_ADMIN_RESET)
    radius_lab.pump([(rc, sock)], t0 + 5, stop=lambda: rc.pending() == 0)
    assert rc.pending() == 0 and table.messages() == []
    sock.close()
    recs = [r for r in radlab.fr.detail_records() if r.get("Acct-Session-Id") == sid]
    assert [r["Acct-Status-Type"] for r in recs] == ["Start", "Stop"], recs
    for r in recs:
        assert r["Class"] in ("sluice-class-1", "0x736c756963652d636c6173732d31")
        assert r["Framed-IP-Address"] == "198.51.100.79" and r["Acct-Authentic"] == "RADIUS"
    assert recs[1]["Acct-Output-Octets"] == "654321" and recs[1]["Acct-Terminate-Cause"] == "Admin-Reset"
