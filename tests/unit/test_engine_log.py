"""The daemon's log: one line per event whatever a peer puts in a string (issue 13, item 6), and floods folded
into a count (item 14). Fixed clock, in memory.
"""

import io

from sluice.engine.log import ERROR, INFO, WARNING, Log
from sluice.safe import is_safe, safe_text


def lines(buf):
    return buf.getvalue().splitlines()


def test_a_forged_user_name_cannot_write_a_line_of_its_own():
    buf = io.StringIO()
    log = Log("t", stream=buf)
    evil = "bob\n12:00:00 sluice-srv: info: session up: admin at 10.77.0.2 from 192.0.2.9:1701"
    log.info("user %s authenticated from %s", evil, "192.0.2.9:1701")
    log.warning("authentication failed: %s", "x\r\x1b[1Ay\u2028z")
    out = lines(buf)
    assert len(out) == 2, out
    assert "session up: admin" in out[0] and "\\n12:00:00" in out[0]
    assert "\\r\\x1b[1Ay\\u2028z" in out[1]
    assert "\n" not in log.recent[-1][2] and len(log.recent) == 1
    # Numbers and None are formatted as they are.
    log.info("%d tunnels, %s, %.1f s", 3, None, 1.25)
    assert lines(buf)[-1].endswith("3 tunnels, None, 1.2 s")


def test_safe_text_bounds_and_keeps_readable_names():
    assert safe_text("José") == "José" and is_safe("alice")
    assert safe_text("a" * 500) == "a" * 61 + "..." and len(safe_text("a" * 500)) == 64
    assert safe_text("ab\ncd", 4) == "a..."
    assert safe_text(b"\xff\xfeok") == "\\xff\\xfeok"
    assert safe_text("\u202egnp.exe") == "\\u202egnp.exe"
    assert not is_safe("a\nb")


def test_a_flood_of_one_event_is_folded_into_a_count():
    buf = io.StringIO()
    clock = [100.0]
    log = Log("t", stream=buf, window=10.0, burst=5, clock=lambda: clock[0])
    # 4,105 refusals in 30 s (what the SCCRQ flood wrote before issue 13, one line each)
    for i in range(4105):
        clock[0] = 100.0 + i * 30.0 / 4105
        log.limited("tunnel refused", WARNING, "refusing a tunnel from %s: table full", "192.0.2.%d" % (i % 250))
    log.flush(clock[0] + 10.0)
    out = lines(buf)
    summaries = [x for x in out if "more like this" in x]
    assert len(out) == 3 * 5 + 3 and len(summaries) == 3, out
    folded = sum(int(x.split("tunnel refused: ")[1].split(" ")[0]) for x in summaries)
    assert folded + 15 == 4105
    assert "the last: refusing a tunnel from 192.0.2." in summaries[-1]
    print("\n4,105 events in 30 s: %d lines" % len(out))


def test_keys_fold_separately_and_next_flush_says_when():
    buf = io.StringIO()
    log = Log("t", stream=buf, window=10.0, burst=1, clock=lambda: 0.0)
    assert log.next_flush() is None
    assert log.limited("a", INFO, "a %d", 1, now=0.0) is True
    assert log.limited("a", INFO, "a %d", 2, now=1.0) is False
    assert log.limited("b", ERROR, "b", now=2.0) is True
    assert log.folded("a") == 1 and log.next_flush() == 10.0
    assert log.flush(5.0) == 0
    assert log.flush(10.0) == 1
    assert lines(buf)[-1].endswith("a: 1 more like this in 10 s were not logged; the last: a 2")
    # A new event after the window writes the pending summary first.
    log.limited("b", ERROR, "b", now=3.0)
    log.limited("b", ERROR, "b", now=13.0)
    assert lines(buf)[-2].split(": ", 2)[2].startswith("b: 1 more like this")
    assert lines(buf)[-1].endswith(": b")


def test_any_line_repeated_in_a_flood_is_folded_too():
    # The server's own "tunnel N down" line, written through plain info(): 4,105 of them in 30 s.
    buf = io.StringIO()
    clock = [0.0]
    log = Log("t", stream=buf, window=10.0, clock=lambda: clock[0])
    for i in range(4105):
        clock[0] = i * 30.0 / 4105
        log.info("tunnel %d down: %s", i, "no SCCCN within 3 s of the SCCRQ")
    log.info("server up")  # another line is not held back
    log.flush(40.0)
    out = lines(buf)
    assert len(out) == 3 * 20 + 1 + 3, len(out)
    assert sum(1 for x in out if "tunnel: " in x and "more like this" in x) == 3
    # Switched off, every line is written.
    buf = io.StringIO()
    log = Log("t", stream=buf, auto_burst=None)
    for i in range(100):
        log.info("tunnel %d down", i)
    assert len(lines(buf)) == 100


def test_lines_written_whole_through_a_bare_format_are_never_folded():
    # Config warnings at start are logged as ("%s", warning): every one of them must show.
    buf = io.StringIO()
    log = Log("t", stream=buf, clock=lambda: 0.0)
    for i in range(50):
        log.warning("%s", "sluice.conf: user %d: the password is shorter than 8 characters" % i)
    assert len(lines(buf)) == 50
