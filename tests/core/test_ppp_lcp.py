"""LCP behaviour over time: keepalive, dead peers, termination, loss, Max-Configure, loopback (RFC 1661).

Two PppLinks in memory with a simulated clock (ppp_pair.Pair.run jumps to the next timer). MicroPython subset.
"""

try:
    import ppp_pair
except ImportError:  # run from the repository root
    from tests.core import ppp_pair
try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.ppp.config import PppConfig
from sluice.ppp.framing import build_frame, parse_options, parse_packet, split
from sluice.ppp.link import PppLink

Pair = ppp_pair.Pair
client_config = ppp_pair.client_config
server_config = ppp_pair.server_config

LCP = 0xC021


def _up(**kw):
    p = Pair(**kw)
    p.open()
    p.run(10)
    assert p.first("client", "IpUp") is not None
    return p


def test_echo_keepalive_keeps_a_live_link_up():
    # RFC 1661 5.8: Echo-Request every echo_interval, answered by Echo-Reply with the peer's magic number.
    p = _up(client_cfg=client_config(echo_interval=10), server_cfg=server_config(echo_interval=10))
    p.run(300)
    assert p.client.stats["echo_sent"] >= 25 and p.client.stats["echo_replies"] == p.client.stats["echo_sent"]
    assert p.server.stats["echo_replies"] >= 25
    assert "LinkDown" not in p.kinds("client") + p.kinds("server")
    assert ("c>s", LCP, 9) in p.trace and ("s>c", LCP, 10) in p.trace


def test_dead_peer_detected_after_echo_failure_unanswered_requests():
    p = _up(client_cfg=client_config(echo_interval=5, echo_failure=3), server_cfg=server_config(echo_interval=0))
    t_cut = p.now
    before = p.client.stats["echo_sent"]
    p.tamper = lambda direction, frame: None  # the wire goes dark
    p.run(t_cut + 200)
    down = p.first("client", "LinkDown")
    assert down.reason == "the peer did not answer 3 LCP Echo-Requests (dead peer)", down.reason
    # 3 unanswered requests 5 s apart, a 4th tick declares it, then Terminate-Request x2 at 3 s.
    assert p.client.stats["echo_sent"] - before == 3
    assert p.server.stats["echo_sent"] == 0  # echo_interval=0 turns keepalive off


def test_client_terminates():
    # c>s LCP Terminate-Request ; s>c Terminate-Ack ; both links finish (RFC 1661 5.5)
    p = _up()
    p.client.close(p.now, "user asked to disconnect")
    p.run(p.now + 30)
    assert ("c>s", LCP, 5) in p.trace and ("s>c", LCP, 6) in p.trace
    assert p.first("client", "LinkDown").reason == "user asked to disconnect"
    assert p.first("server", "LinkDown").reason.startswith("the peer closed the link")
    assert p.client.status()["phase"] == "dead" and p.server.status()["phase"] == "dead"
    assert p.client.get_timer() is None and p.server.get_timer() is None


def test_server_terminates():
    p = _up()
    p.server.close(p.now, "server shutting down", b"Server shutting down")
    p.run(p.now + 30)
    assert ("s>c", LCP, 5) in p.trace and ("c>s", LCP, 6) in p.trace
    assert p.first("server", "LinkDown").reason == "server shutting down"
    assert p.first("client", "LinkDown").reason == "the peer closed the link: Server shutting down"


def test_terminate_request_is_retransmitted_max_terminate_times():
    # RFC 1661 4.6: Max-Terminate (2) Terminate-Requests, 3 s apart, then the link finishes without an Ack.
    p = _up(client_cfg=client_config(max_terminate=2))
    sent = []

    def dark(direction, frame):
        if direction == "c>s" and frame[2:4] == b"\xc0\x21" and frame[4] == 5:
            sent.append(p.now)
        return None
    p.tamper = dark
    start = p.now
    p.client.close(p.now, "bye")
    p.run(start + 6)
    assert sent == [start, start + 3.0]
    assert p.first("client", "LinkDown").reason == "bye"
    assert p.client.status()["phase"] == "dead"


def test_loss_and_duplication_still_converge():
    # Seeded loss and duplication on both directions; retransmission on the restart timer recovers.
    for seed in (1, 2, 3, 4, 5, 6, 7, 8):
        p = Pair(seed=seed, loss=0.15, dup=0.15, client_cfg=client_config(echo_interval=0),
                 server_cfg=server_config(echo_interval=0))
        p.open()
        p.run(120)
        assert p.first("client", "IpUp") is not None, (seed, p.events, p.client.status())
        assert p.first("server", "IpUp") is not None, (seed, p.events)
        assert "LinkDown" not in p.kinds("client"), seed


def test_max_configure_exhaustion():
    # A server whose peer never speaks: 10 Configure-Requests 3 s apart, then tlf (RFC 1661 4.6).
    sent = []
    link = PppLink("server", server_config(), harness.SeededRng(3))
    now = 0.0
    link.open(now)
    for _ in range(100):
        sent += link.frames_to_send()
        t = link.get_timer()
        if t is None:
            break
        now = t
        link.handle_timer(now)
    sent += link.frames_to_send()
    assert len(sent) == 10 and all(parse_packet(f, 4)[0] == 1 for f in sent)
    ev = link.next_event()
    assert ev.reason.startswith("the peer never answered LCP (10 Configure-Requests sent"), ev.reason
    assert now == 30.0
    assert link.next_event() is None and link.get_timer() is None


def test_magic_number_loopback_detected():
    # RFC 1661 6.4: a link wired to itself sees its own magic number; it Naks, changes number, and gives up.
    link = PppLink("client", client_config(), harness.SeededRng(11))
    now = 0.0
    link.open(now)
    for _ in range(200):
        out = link.frames_to_send()
        if not out:
            t = link.get_timer()
            if t is None:
                break
            now = t
            link.handle_timer(now)
            continue
        for f in out:
            link.frame_received(f, now)
    ev = link.next_event()
    assert ev is not None and "looped back" in ev.reason, ev


def test_peer_asking_for_our_magic_gets_a_nak_with_another():
    p = Pair()
    s = p.server
    s.open(0.0)
    ours = dict(parse_options(parse_packet(s.frames_to_send()[0], 4)[2]))[5]
    s.frame_received(build_frame(LCP, 1, 1, b"\x05\x06" + ours), 0.0)
    nak = [f for f in s.frames_to_send() if f[4] == 3]
    assert len(nak) == 1
    suggested = dict(parse_options(parse_packet(nak[0], 4)[2]))[5]
    assert suggested != ours and suggested != b"\x00\x00\x00\x00"


def test_windows_style_lcp_request_is_acked_or_rejected_option_by_option():
    # MRU 1400, Magic, PFC, ACFC, Callback (13) and Multilink MRRU (17): the last two are Rejected as received.
    s = PppLink("server", server_config(), harness.SeededRng(5))
    s.open(0.0)
    s.frames_to_send()
    req = b"\x01\x04\x05\x78" + b"\x05\x06\x11\x22\x33\x44" + b"\x07\x02" + b"\x08\x02" + b"\x0d\x03\x06" + \
        b"\x11\x04\x06\x4e"
    s.frame_received(build_frame(LCP, 1, 0x10, req), 0.0)
    out = s.frames_to_send()
    assert len(out) == 1
    code, ident, data = parse_packet(out[0], 4)
    assert (code, ident, data) == (4, 0x10, b"\x0d\x03\x06\x11\x04\x06\x4e")
    s.frame_received(build_frame(LCP, 1, 0x11, req[:14]), 0.0)
    code, ident, data = parse_packet(s.frames_to_send()[0], 4)
    assert (code, ident, data) == (2, 0x11, req[:14])


def test_small_mru_is_naked_up_to_128():
    s = PppLink("server", server_config(), harness.SeededRng(5))
    s.open(0.0)
    s.frames_to_send()
    s.frame_received(build_frame(LCP, 1, 3, b"\x01\x04\x00\x40"), 0.0)
    code, ident, data = parse_packet(s.frames_to_send()[0], 4)
    assert (code, data) == (3, b"\x01\x04\x00\x80")


def test_max_failure_turns_naks_into_rejects():
    # RFC 1661 4.6: after Max-Failure (5) Naks without an Ack, the option is Rejected instead.
    s = PppLink("server", server_config(max_failure=5), harness.SeededRng(5))
    s.open(0.0)
    s.frames_to_send()
    codes = []
    for i in range(7):
        s.frame_received(build_frame(LCP, 1, 20 + i, b"\x01\x04\x00\x40"), 0.0)
        codes.append(parse_packet(s.frames_to_send()[-1], 4)[0])
    assert codes == [3, 3, 3, 3, 3, 4, 4]


def test_compressed_frames_are_understood():
    # ACFC (RFC 1661 6.6): a frame without FF 03 still parses; PFC (6.5): a one-octet protocol field.
    s = PppLink("server", server_config(), harness.SeededRng(5))
    s.open(0.0)
    s.frames_to_send()
    s.frame_received(b"\xc0\x21" + b"\x01\x07\x00\x0a" + b"\x05\x06\x01\x02\x03\x04", 0.0)
    code, ident, data = parse_packet(s.frames_to_send()[0], 4)
    assert (code, ident) == (2, 7)
    assert split(b"\x21\x45") == (0x21, 1)
    assert split(b"\xff\x03\x21\x45") == (0x21, 3)
    assert split(b"\xff\x03\x00\x21\x45") == (0x21, 4)
    assert split(b"\x80\x21\x01") == (0x8021, 2)


def test_malformed_frames_are_counted_and_dropped():
    p = _up()
    c = p.client
    bad = (b"", b"\xff\x03", b"\xff\x03\xc0", b"\xff\x03\xc0\x21\x01", b"\xff\x03\xc0\x21\x01\x01\x00\x09\x01",
           b"\xff\x03\xc0\x21\x01\x01\x00\x02", b"\xff\x03\x80\x21\x01\x01\x00\x07\x03\x01\x00",
           b"\xff\x03\xc2\x23\x01\x01\x00\x05\x10", b"\xff\x03\x00\x20")
    for f in bad:
        c.frame_received(f, p.now)
    assert c.stats["malformed"] >= 7
    assert c.status()["phase"] == "network" and c.status()["lcp"] == "opened"


def test_code_reject_for_unknown_lcp_code():
    p = _up()
    p.client.frame_received(build_frame(LCP, 42, 9, b"\xaa\xbb"), p.now)
    out = p.client.frames_to_send()
    code, ident, data = parse_packet(out[0], 4)
    assert code == 7 and data == b"\x2a\x09\x00\x06\xaa\xbb"  # RFC 1661 5.6: the rejected packet, whole


def test_config_repr_hides_the_password():
    cfg = PppConfig(username="alice", password="s3cret-pw")
    assert "s3cret" not in repr(cfg)
    link = PppLink("client", cfg, harness.SeededRng(1))
    assert "s3cret" not in repr(link) and "s3cret" not in repr(link.status())


def test_discard_request_and_early_echo_are_silently_dropped():
    # RFC 1661 5.8/5.9: Discard-Request is dropped; Echo-Request outside Opened is dropped too.
    s = PppLink("server", server_config(), harness.SeededRng(5))
    s.open(0.0)
    s.frames_to_send()
    s.frame_received(build_frame(LCP, 9, 1, b"\x01\x02\x03\x04"), 0.0)
    assert s.frames_to_send() == []
    p = _up()
    p.client.frame_received(build_frame(LCP, 11, 2, b"\x01\x02\x03\x04junk"), p.now)
    assert p.client.frames_to_send() == [] and p.client.status()["lcp"] == "opened"
