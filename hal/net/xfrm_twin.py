"""XfrmTwin: an in-memory kernel SA/policy table behind the netlink socket interface, for tests without XFRM.

`xfrm.Xfrm(XfrmTwin())` runs the real encoder: every request is parsed back and applied to the table the way
the kernel answers it (EEXIST, ESRCH, ENOENT; marks must match; dumps list everything; UPDSA keeps the
algorithms). Tests play the data plane with `count(spi, bytes, packets)` and the kernel's timers with
`expire(spi, hard)`, whose events come out of `recv_events()` (use `XfrmTwin` as the events socket too).
"""

import struct

from sluice.hal.net import netlink as nl
from sluice.hal.net import xfrm
from sluice.hal.net.netlink import NE

_CUR = xfrm.SIZE_SELECTOR + xfrm.SIZE_ID + 16 + xfrm.SIZE_LFT_CFG   # offset of xfrm_lifetime_cur in usersa_info


class XfrmTwin:
    def __init__(self):
        self.sas = {}        # (dst, spi) -> bytearray payload (usersa_info + attrs), as the kernel echoes it
        self.policies = {}   # (selector key, dir, mark) -> payload
        self.pending = []    # events for recv_events()
        self.requests = []   # every message received, for tests that look at them
        self.index = 0
        self.missing = set()  # kernel algorithm names this twin's kernel lacks ("rfc4106(gcm(aes))"): ENOSYS

    def fileno(self):
        return -1

    def close(self):
        pass

    @staticmethod
    def _mark(attrs):
        v = attrs.get(xfrm.XFRMA_MARK)
        return (nl.u32(v), nl.u32(v[4:8])) if v else None

    @staticmethod
    def _with_set_mark(stored, set_mark):
        at = nl.align4(xfrm.SIZE_USERSA_INFO)
        keep = b"".join(nl.attr(t, v) for t, v in nl.iter_attrs(bytes(stored), at)
                        if t not in (xfrm.XFRMA_SET_MARK, xfrm.XFRMA_SET_MARK_MASK))
        return bytearray(bytes(stored[:at]) + keep + xfrm.encode_set_mark(set_mark))

    def request(self, build, what, dump=False):
        msg = build(len(self.requests) + 1)
        self.requests.append(msg)
        ((mtype, _flags, _seq, _pid, payload),) = nl.split_messages(msg)
        if mtype in (xfrm.NEWSA, xfrm.UPDSA):
            s = xfrm.parse_sa(payload)
            for alg in (s.crypt, s.auth, s.aead):
                if alg is not None and alg[0] in self.missing:   # the kernel without the crypto module
                    raise nl.NetlinkError(38, "%s: %s" % (what, nl.strerror(38)))
            key = (s.dst, s.spi)
            if mtype == xfrm.NEWSA and key in self.sas:
                raise nl.NetlinkError(17, "%s: %s" % (what, nl.strerror(17)))
            if mtype == xfrm.UPDSA:
                if key not in self.sas:
                    raise nl.NetlinkError(3, "%s: %s" % (what, nl.strerror(3)))
                old = self.sas[key]
                # the kernel keeps algorithms and keys on update; limits (and encap) change
                lft = xfrm.SIZE_SELECTOR + xfrm.SIZE_ID + 16
                old[lft:lft + xfrm.SIZE_LFT_CFG] = payload[lft:lft + xfrm.SIZE_LFT_CFG]
                if s.set_mark is not None:   # a set-mark that is there replaces the SA's (xfrm_state_update)
                    self.sas[key] = self._with_set_mark(old, s.set_mark)
                return []
            self.sas[key] = bytearray(payload)
            return []
        if mtype in (xfrm.DELSA, xfrm.GETSA) and not dump:
            dst = nl.ip4_text(payload[0:4])
            spi = struct.unpack_from(">I", payload, 16)[0]
            mark = self._mark(nl.parse_attrs(payload, xfrm.SIZE_USERSA_ID))
            stored = self.sas.get((dst, spi))
            if stored is None or xfrm.parse_sa(bytes(stored)).mark != mark:
                raise nl.NetlinkError(3, "%s: %s" % (what, nl.strerror(3)))
            if mtype == xfrm.DELSA:
                del self.sas[(dst, spi)]
                return []
            return [(xfrm.NEWSA, bytes(stored))]
        if mtype == xfrm.GETSA:
            return [(xfrm.NEWSA, bytes(p)) for p in self.sas.values()]
        if mtype in (xfrm.NEWPOLICY, xfrm.UPDPOLICY):
            p = xfrm.parse_policy(payload)
            key = (repr(p.selector), p.dir, p.mark)
            if mtype == xfrm.NEWPOLICY and key in self.policies:
                raise nl.NetlinkError(17, "%s: %s" % (what, nl.strerror(17)))
            self.index += 8
            body = bytearray(payload)
            struct.pack_into(NE + "I", body, xfrm.SIZE_SELECTOR + xfrm.SIZE_LFT_CFG + xfrm.SIZE_LFT_CUR + 4,
                             self.index)
            self.policies[key] = body
            return []
        if mtype == xfrm.DELPOLICY:
            sel = xfrm.Selector.decode(payload, 0)
            index, pdir = struct.unpack_from(NE + "IB", payload, xfrm.SIZE_SELECTOR)
            mark = self._mark(nl.parse_attrs(payload, xfrm.SIZE_USERPOLICY_ID))
            for key, body in list(self.policies.items()):
                p = xfrm.parse_policy(bytes(body))
                if p.dir == pdir and p.mark == mark and (p.index == index if index else p.selector == sel):
                    del self.policies[key]
                    return []
            raise nl.NetlinkError(2, "%s: %s" % (what, nl.strerror(2)))
        if mtype == xfrm.GETPOLICY:
            return [(xfrm.NEWPOLICY, bytes(p)) for p in self.policies.values()]
        raise nl.NetlinkError(95, "%s: the twin does not do message type %d" % (what, mtype))

    # --- the test plays the kernel ---

    def count(self, dst, spi, nbytes, npackets, now=None):
        """Traffic through an SA: its current lifetime grows (and use_time is set, as on first use)."""
        body = self.sas[(dst, spi)]
        b, p, add, use = struct.unpack_from(NE + "4Q", body, _CUR)
        struct.pack_into(NE + "4Q", body, _CUR, b + nbytes, p + npackets, add, use or (now or add or 1))

    def expire(self, dst, spi, hard):
        """The kernel's timer: queue an XFRM_MSG_EXPIRE; a hard one also removes the SA."""
        body = self.sas[(dst, spi)]
        info = bytes(body[:xfrm.SIZE_USERSA_INFO])
        pad = (xfrm.SIZE_USERSA_INFO + 1 + nl.U64_ALIGN - 1) & ~(nl.U64_ALIGN - 1)
        ev = info + bytes([1 if hard else 0]) + bytes(pad - xfrm.SIZE_USERSA_INFO - 1)
        self.pending.append((xfrm.EXPIRE, ev))
        if hard:
            del self.sas[(dst, spi)]

    def recv_events(self, nonblocking=True):
        out, self.pending = self.pending, []
        return out
