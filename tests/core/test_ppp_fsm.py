"""The RFC 1661 4.1 automaton on its own, with a handler that accepts everything and a recording layer.

Each test is one row (or a short path) of the RFC 1661 4.1 state transition table, quoted in the comment.
MicroPython subset.
"""

from sluice.ppp import fsm
from sluice.ppp.fsm import (ACK_RCVD, ACK_SENT, CLOSED, CLOSING, INITIAL, OPENED, REQ_SENT, STARTING, STOPPED,
                            STOPPING, Fsm, OptionHandler)


class AcceptAll(OptionHandler):
    def __init__(self, verdict=fsm.ACK):
        OptionHandler.__init__(self)
        self.verdict = verdict

    def request_options(self):
        return [(1, b"\x05\xdc")]

    def judge(self, t, v, pending):
        return (self.verdict, b"\x05\x00") if self.verdict == fsm.NAK else (self.verdict, v)

    def on_ack(self, opts):
        pass

    def on_nak(self, t, v):
        pass

    def on_reject(self, t, v):
        pass


class Recorder:
    def __init__(self):
        self.calls = []
        self.sent = []

    def tlu(self, f, now):
        self.calls.append("tlu")

    def tld(self, f, now):
        self.calls.append("tld")

    def tls(self, f, now):
        self.calls.append("tls")

    def tlf(self, f, now):
        self.calls.append("tlf")

    def send(self, code, ident, data):
        self.sent.append(code)


def _machine(verdict=fsm.ACK):
    r = Recorder()
    f = Fsm("T", AcceptAll(verdict), r, r.send, restart_timer=3.0, max_configure=10, max_failure=5,
            max_terminate=2)
    f.handler.fsm = f
    return f, r


def _opened():
    f, r = _machine()
    f.open(0.0)
    f.up(0.0)
    f.packet(fsm.CONF_ACK, f.req_ident, f.req_data, 0.0)
    f.packet(fsm.CONF_REQ, 7, b"\x01\x04\x05\xdc", 0.0)
    assert f.state == OPENED
    del r.calls[:]
    del r.sent[:]
    return f, r


def test_table_covers_every_received_event_in_states_2_to_9():
    # RFC 1661 4.1: in Closed..Opened every received-packet event and timeout has an action ("-" included).
    for ev in (fsm.RCR_P, fsm.RCR_M, fsm.RCA, fsm.RCN, fsm.RTR, fsm.RTA, fsm.RUC, fsm.RXJ_P, fsm.RXJ_M, fsm.RXR,
               fsm.DOWN, fsm.OPEN, fsm.CLOSE):
        for st in range(2, 10):
            assert (ev, st) in fsm.TABLE, (fsm.EVENT_NAMES[ev], fsm.STATE_NAMES[st])
    # Up is only possible while the lower layer is down (Initial, Starting).
    assert [s for s in range(10) if (fsm.UP, s) in fsm.TABLE] == [INITIAL, STARTING]
    # Timeouts only in the states that run the restart timer.
    assert sorted(s for s in range(10) if (fsm.TO_P, s) in fsm.TABLE) == [CLOSING, STOPPING, REQ_SENT, ACK_RCVD,
                                                                           ACK_SENT]


def test_open_then_up_sends_a_configure_request():
    # Initial --Open/tls--> Starting --Up/irc,scr--> Req-Sent
    f, r = _machine()
    f.open(0.0)
    assert (f.state, r.calls) == (STARTING, ["tls"])
    f.up(0.0)
    assert (f.state, r.sent) == (REQ_SENT, [fsm.CONF_REQ])
    assert f.deadline == 3.0 and f.restart_count == 9


def test_both_orders_reach_opened():
    # Req-Sent --RCA/irc--> Ack-Rcvd --RCR+/sca,tlu--> Opened
    f, r = _machine()
    f.open(0.0)
    f.up(0.0)
    f.packet(fsm.CONF_ACK, f.req_ident, f.req_data, 0.0)
    assert f.state == ACK_RCVD
    f.packet(fsm.CONF_REQ, 1, b"", 0.0)
    assert f.state == OPENED and r.calls[-1] == "tlu" and r.sent[-1] == fsm.CONF_ACK
    assert f.deadline is None
    # Req-Sent --RCR+/sca--> Ack-Sent --RCA/irc,tlu--> Opened
    f, r = _machine()
    f.open(0.0)
    f.up(0.0)
    f.packet(fsm.CONF_REQ, 1, b"", 0.0)
    assert f.state == ACK_SENT
    f.packet(fsm.CONF_ACK, f.req_ident, f.req_data, 0.0)
    assert f.state == OPENED and r.calls[-1] == "tlu"


def test_ack_with_wrong_identifier_or_options_is_discarded():
    # RFC 1661 5.2: the Identifier must match the last request and the options must be exactly ours.
    f, r = _machine()
    f.open(0.0)
    f.up(0.0)
    f.packet(fsm.CONF_ACK, (f.req_ident + 1) & 0xFF, f.req_data, 0.0)
    f.packet(fsm.CONF_ACK, f.req_ident, f.req_data + b"\x00", 0.0)
    assert f.state == REQ_SENT and f.stats["discarded"] == 2


def test_timeouts_retransmit_then_give_up():
    # Req-Sent --TO+/scr--> Req-Sent ... --TO-/tlf--> Stopped, after Max-Configure requests (RFC 1661 4.6)
    f, r = _machine()
    f.open(0.0)
    f.up(0.0)
    now = 0.0
    for _ in range(20):
        if f.deadline is None:
            break
        now = f.deadline
        f.timeout(now)
    assert r.sent.count(fsm.CONF_REQ) == 10
    assert f.state == STOPPED and r.calls[-1] == "tlf" and now == 30.0


def test_opened_rtr_goes_through_stopping():
    # Opened --RTR/tld,zrc,sta--> Stopping --TO-/tlf--> Stopped
    f, r = _opened()
    f.packet(fsm.TERM_REQ, 9, b"", 1.0)
    assert f.state == STOPPING and r.calls == ["tld"] and r.sent == [fsm.TERM_ACK]
    assert f.deadline == 4.0 and f.restart_count == 0
    f.timeout(4.0)
    assert f.state == STOPPED and r.calls == ["tld", "tlf"]


def test_opened_close_sends_terminate_and_rta_finishes():
    # Opened --Close/tld,irc,str--> Closing --RTA/tlf--> Closed
    f, r = _opened()
    f.close(1.0)
    assert f.state == CLOSING and r.sent == [fsm.TERM_REQ] and r.calls == ["tld"]
    f.packet(fsm.TERM_ACK, f.term_ident, b"", 1.5)
    assert f.state == CLOSED and r.calls == ["tld", "tlf"] and f.deadline is None


def test_opened_rcr_renegotiates():
    # Opened --RCR+/tld,scr,sca--> Ack-Sent
    f, r = _opened()
    f.packet(fsm.CONF_REQ, 12, b"", 1.0)
    assert f.state == ACK_SENT and r.calls == ["tld"] and r.sent == [fsm.CONF_REQ, fsm.CONF_ACK]


def test_opened_rxj_minus_is_catastrophic():
    # Opened --RXJ-/tld,irc,str--> Stopping  (a Code-Reject of Configure-Request, RFC 1661 5.6)
    f, r = _opened()
    f.packet(fsm.CODE_REJ, 3, b"\x01\x01\x00\x04", 1.0)
    assert f.state == STOPPING and r.calls == ["tld"] and r.sent == [fsm.TERM_REQ]


def test_rxj_plus_keeps_the_state():
    # Opened --RXJ+--> Opened (a Code-Reject of a code we can live without)
    f, r = _opened()
    f.packet(fsm.CODE_REJ, 3, b"\x0b\x01\x00\x04", 1.0)
    assert f.state == OPENED and r.calls == [] and r.sent == []


def test_unknown_code_is_code_rejected():
    # any state 2..9 --RUC/scj--> same state
    f, r = _opened()
    f.packet(99, 3, b"xy", 1.0)
    assert f.state == OPENED and r.sent == [fsm.CODE_REJ]


def test_closed_answers_requests_with_terminate_ack():
    # Closed --RCR/sta--> Closed
    f, r = _machine()
    f.up(0.0)
    assert f.state == CLOSED
    f.packet(fsm.CONF_REQ, 1, b"", 0.0)
    assert f.state == CLOSED and r.sent == [fsm.TERM_ACK]


def test_stopped_rcr_restarts_negotiation():
    # Stopped --RCR+/irc,scr,sca--> Ack-Sent
    f, r = _opened()
    f.packet(fsm.TERM_REQ, 9, b"", 1.0)
    f.timeout(4.0)
    assert f.state == STOPPED
    del r.sent[:]
    f.packet(fsm.CONF_REQ, 5, b"", 5.0)
    assert f.state == ACK_SENT and r.sent == [fsm.CONF_REQ, fsm.CONF_ACK]


def test_nak_loop_turns_into_reject_after_max_failure():
    f, r = _machine(fsm.NAK)
    f.open(0.0)
    f.up(0.0)
    del r.sent[:]
    for i in range(7):
        f.packet(fsm.CONF_REQ, i, b"\x01\x04\x05\xdc", 0.0)
    assert r.sent == [fsm.CONF_NAK] * 5 + [fsm.CONF_REJ] * 2


def test_illegal_events_are_counted_not_acted_on():
    f, r = _machine()
    f.timeout(100.0)  # no timer running in Initial
    f.packet(fsm.CONF_REQ, 1, b"", 0.0)  # lower layer not up
    assert f.state == INITIAL and r.sent == [] and f.stats["discarded"] == 1
    f.up(0.0)
    f.up(0.0)  # Up in Closed is not in the table
    assert f.stats["illegal"] == 1 and f.state == CLOSED
