"""KernelPath (the calls a kernel data-plane backend makes) over XfrmTwin: no kernel needed.

Reads like the life of one client session: a Quick Mode's ChildSaUp becomes an SA pair, the peer gets its
L2TP/1701 policies, traffic shows in the counters, a rekey installs the new pair before the old goes, the
kernel's soft EXPIRE arrives, stop() leaves nothing, and a restart after a crash flushes exactly ours.
"""

from sluice.hal.crypto import transforms
from sluice.hal.net import kernel_path, netlink as nl, xfrm
from sluice.hal.net.xfrm_twin import XfrmTwin
from sluice.ike.events import ChildSaUp

ME, PEER = "192.0.2.1", "203.0.113.5"
MARK = (xfrm.REQID_BASE | 7, 0xFFFFFFFF)


def child(spi_in, spi_out, encap=True, transform="aes256-sha1"):
    ek, ak, sl = transforms.esp_key_lengths(transform)
    return ChildSaUp((PEER, 4500 if encap else 500), spi_in, spi_out, transform, bytes(ek), bytes(ak), bytes(sl),
                     bytes(range(ek)), bytes(range(ak)), bytes(range(sl)), encap, 3600, None)


def path():
    twin = XfrmTwin()
    return twin, kernel_path.KernelPath(xfrm.Xfrm(twin), l2tp_api=object(), events=twin)


def test_session_life():
    twin, kp = path()
    assert kp.start(subscribe=False) == (0, 0)
    kp.install_child(ME, child(0xA1, 0xB1), xfrm.REQID_BASE | 7, MARK)
    key = kp.install_policies(ME, PEER, xfrm.REQID_BASE | 7, MARK, peer_port=0)
    assert kp.install_policies(ME, PEER, xfrm.REQID_BASE | 7, MARK, peer_port=0) == key   # refcounted
    sas = {s.spi: s for s in kp.xfrm.list_sas()}
    assert sas[0xA1].src == PEER and sas[0xA1].mark is None and sas[0xA1].encap == (2, 4500, 4500)
    assert sas[0xB1].dst == PEER and sas[0xB1].mark == MARK
    assert sorted(p.dir for p in kp.xfrm.list_policies()) == [xfrm.DIR_IN, xfrm.DIR_OUT]

    twin.count(PEER, 0xB1, 1400, 1)
    twin.count(ME, 0xA1, 2800, 2)
    c = kp.counters(ME, PEER, 0xA1, 0xB1, MARK)
    assert (c["in"].bytes, c["in"].packets, c["out"].bytes, c["out"].packets) == (2800, 2, 1400, 1)

    # Rekey: new pair first (same reqid: the kernel sends on the newest), then the old one goes.
    kp.install_child(ME, child(0xA2, 0xB2), xfrm.REQID_BASE | 7, MARK)
    kp.remove_child(ME, PEER, 0xA1, 0xB1)
    assert sorted(s.spi for s in kp.xfrm.list_sas()) == [0xA2, 0xB2]

    twin.expire(PEER, 0xB2, hard=False)
    (ev,) = [xfrm.parse_event(t, p) for t, p in twin.recv_events()]
    assert not ev.hard and ev.sa.spi == 0xB2

    kp.remove_policies(key)
    assert len(kp.xfrm.list_policies()) == 2          # one user left
    kp.stop()
    assert kp.xfrm.list_sas() == [] and kp.xfrm.list_policies() == []
    kp.stop()                                          # idempotent


def test_gone_sa_is_not_an_error_on_removal():
    twin, kp = path()
    kp.install_child(ME, child(0xA1, 0xB1, encap=False, transform="aes128gcm16"), xfrm.REQID_BASE | 1)
    twin.expire(ME, 0xA1, hard=True)
    assert kp.counters(ME, PEER, 0xA1, 0xB1)["in"] is None
    kp.remove_child(ME, PEER, 0xA1, 0xB1)
    assert kp.xfrm.list_sas() == []


def test_restart_flushes_only_our_leftovers():
    twin, kp = path()
    kp.install_child(ME, child(0xA1, 0xB1), xfrm.REQID_BASE | 7, MARK)
    kp.install_policies(ME, PEER, xfrm.REQID_BASE | 7, MARK)
    kp.xfrm.add_sa(xfrm.SaSpec(ME, "198.51.100.9", 0xF00, "aes128-sha1", bytes(16), bytes(20), reqid=1))
    # kill -9: the KernelPath object is gone, the kernel table is not.
    kp2 = kernel_path.KernelPath(xfrm.Xfrm(twin), l2tp_api=object(), events=twin)
    assert kp2.start(subscribe=False) == (2, 2)
    assert [s.spi for s in kp2.xfrm.list_sas()] == [0xF00]


def test_twin_answers_like_the_kernel():
    twin, kp = path()
    spec = xfrm.SaSpec(ME, PEER, 0xB1, "aes256-sha1", bytes(32), bytes(20), reqid=5, mark=MARK)
    kp.xfrm.add_sa(spec)
    for fn, args, errno in ((kp.xfrm.add_sa, (spec,), 17), (kp.xfrm.get_sa, (PEER, 0xB1), 3),
                            (kp.xfrm.delete_sa, (PEER, 0xB2, MARK), 3)):
        try:
            fn(*args)
            raise AssertionError("no error from %r" % (fn,))
        except nl.NetlinkError as e:
            assert e.args[0] == errno
    assert kp.xfrm.get_sa(PEER, 0xB1, MARK).reqid == 5   # found only with its mark


def test_probe_says_what_is_missing():
    # This host's kernel has no kernel L2TP (nor ESP): the probe must say so in words, not raise.
    from sluice.hal.net import ppp_kernel

    ok, why = ppp_kernel.probe()
    if ok:
        import pytest

        pytest.skip("this kernel has XFRM, L2TP and PPP: nothing missing to report")
    assert "missing" in why and "errno" in why
