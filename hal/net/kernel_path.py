"""What a kernel data-plane backend calls: ESP SA pairs, L2TP/1701 policies, kernel L2TP sessions with PPP units.

Theory of operation. The engine's endpoints decide (sluice.ike negotiates SAs, sluice.l2tp runs the control
connection, sluice.ppp runs LCP/auth/NCPs); a kernel backend carries out their actions through this object:

    kp = KernelPath()                       # opens NETLINK_XFRM + genetlink l2tp; kp.start() flushes leftovers
    kp.install_child(local_ip, child_sa_up, reqid, mark)   # sluice.ike.events.ChildSaUp: in + out SA
    kp.install_policies(local_ip, peer_ip, reqid, mark, peer_port)   # once per peer (refcounted)
    s = kp.open_session(udp_sock, tid, ptid, sid, psid, peer, ifname, mru)   # tunnel on first use + PPP unit
    s.unit.chan_fd / s.unit.unit_fd         # LCP/auth frames and NCP frames for sluice.ppp (no FF 03)
    kp.counters(local_ip, peer_ip, spi_in, spi_out, mark)  # DPD / idle: bytes, packets, use time per direction
    kp.events.fileno(), kp.events.read()    # SaExpired(soft|hard), SaMapping
    kp.remove_child(...), kp.close_session(s), kp.remove_policies(...), kp.stop()

Rekey: install the new pair (same reqid) first; the kernel sends on the newest valid outbound SA of a reqid,
and accepts inbound on either SPI; remove the old pair after the grace period. XFRM_MSG_UPDSA cannot rekey
(the kernel keeps an SA's algorithms and keys on update). Leftovers: SAs and policies are found by Sluice's
reqid range (xfrm.REQID_BASE); kernel tunnels, sessions and PPP units die with the daemon's sockets.
Inbound SAs carry no mark: inbound ESP is not marked, and the kernel matches an SA's mark against skb->mark.
They may carry a set-mark (install_child's set_mark_in): what they decrypt gets it in skb->mark, which a socket
with SO_RCVMARK reads (a server tells apart clients behind one NAT by it).
"""

from sluice.hal.net import l2tp_kernel, netlink, ppp_kernel, xfrm


class KernelSession:
    """One L2TP session in the kernel: its PPPoL2TP socket and PPP unit."""

    __slots__ = ("tunnel_id", "session_id", "pppox", "unit")

    def __init__(self, tunnel_id, session_id, pppox, unit):
        self.tunnel_id = tunnel_id
        self.session_id = session_id
        self.pppox = pppox      # the PPPoL2TP socket (closing it deletes the kernel session)
        self.unit = unit        # ppp_kernel.PppUnit

    def __repr__(self):
        return "KernelSession(%d/%d %r)" % (self.tunnel_id, self.session_id, self.unit)


class KernelPath:
    """The kernel data path of one daemon: what it installed, so that stop() removes exactly that."""

    def __init__(self, xfrm_api=None, l2tp_api=None, events=None):
        self.xfrm = xfrm_api or xfrm.Xfrm()
        self._l2tp = l2tp_api
        self.events = events
        self.sas = {}           # (dst, spi) -> mark: SAs we installed
        self.policies = {}      # (local, peer, peer_port, mark) -> [refcount, [PolicySpec]]
        self.tunnels = {}       # tunnel_id -> number of open sessions
        self.sessions = []

    @property
    def l2tp(self):
        if self._l2tp is None:
            self._l2tp = l2tp_kernel.L2tpKernel()
        return self._l2tp

    def start(self, subscribe=True):
        """Remove leftovers of an earlier run (our reqid range) and subscribe to EXPIRE/MAPPING."""
        removed = self.xfrm.flush_ours()
        if subscribe and self.events is None:
            self.events = xfrm.XfrmEvents()
        return removed

    # --- ESP -----------------------------------------------------------------------------------------------

    def esp_supported(self, names):
        """The ESP transform names ('aes256gcm16', 'aes128-sha1') this kernel can install, probed on our socket."""
        from sluice.hal.net.ppp_kernel import kernel_transforms

        return kernel_transforms(names, self.xfrm)

    def install_child(self, local_ip, child, reqid, mark=None, limits=None, natt_port=4500, reqid_in=None,
                      inbound_present=False, set_mark_in=None):
        """Install the SA pair of a sluice.ike.events.ChildSaUp (keys are used here and not kept).

        reqid_in (default reqid) is the inbound SA's: one per peer address when several clients share it
        (xfrm.l2tp_policies); `mark` goes on the outbound SA only. set_mark_in (value, mask): the inbound SA's
        set-mark, written into skb->mark of what it decrypts. inbound_present: the inbound SA was added
        ahead (at Quick Mode message 2) and is updated (UPDSA: this pair's lifetime) rather than added."""
        peer_ip, peer_port = child.peer[0], child.peer[1]
        encap_out = (natt_port, peer_port) if child.encap else None
        encap_in = (peer_port, natt_port) if child.encap else None
        inbound = xfrm.SaSpec(peer_ip, local_ip, child.spi_in, child.transform, child.enc_in, child.auth_in,
                              child.salt_in, reqid=reqid if reqid_in is None else reqid_in, encap=encap_in,
                              limits=limits, set_mark=set_mark_in)
        outbound = xfrm.SaSpec(local_ip, peer_ip, child.spi_out, child.transform, child.enc_out, child.auth_out,
                               child.salt_out, reqid=reqid, encap=encap_out, mark=mark, limits=limits)
        (self.xfrm.update_sa if inbound_present else self.xfrm.add_sa)(inbound)
        self.sas[(local_ip, child.spi_in)] = (peer_ip, None)
        try:
            self.xfrm.add_sa(outbound)
        except netlink.NetlinkError:
            self._del_sa(local_ip, child.spi_in)
            raise
        self.sas[(peer_ip, child.spi_out)] = (local_ip, mark)

    def _del_sa(self, dst, spi):
        src, mark = self.sas.pop((dst, spi), (None, None))
        try:
            self.xfrm.delete_sa(dst, spi, mark, src)
        except netlink.NetlinkError as e:
            if e.args[0] not in (2, 3):      # already gone (hard expiry, peer delete): fine
                raise

    def remove_child(self, local_ip, peer_ip, spi_in, spi_out):
        self._del_sa(local_ip, spi_in)
        self._del_sa(peer_ip, spi_out)

    def counters(self, local_ip, peer_ip, spi_in, spi_out, mark=None):
        """{'in': SaState, 'out': SaState} with bytes, packets, add_time, use_time (None for an SA that is gone)."""
        out = {}
        for key, dst, src, spi, m in (("in", local_ip, peer_ip, spi_in, None), ("out", peer_ip, local_ip, spi_out,
                                                                                  mark)):
            try:
                out[key] = self.xfrm.get_sa(dst, spi, m, src)
            except netlink.NetlinkError:
                out[key] = None
        return out

    def install_policies(self, local_ip, peer_ip, reqid_out, mark=None, peer_port=1701, reqid_in=None,
                         local_port=1701, which=None):
        """The two UDP/1701 transport policies for a peer; refcounted per (local, peer, peer port, mark).

        which 'out' or 'in' installs only that one: several clients behind one NAT each have an outbound policy
        (with their own mark) and share the inbound one of their address."""
        key = (local_ip, peer_ip, peer_port, mark) if which is None else (local_ip, peer_ip, peer_port, mark, which)
        entry = self.policies.get(key)
        if entry:
            entry[0] += 1
            return key
        pols = xfrm.l2tp_policies(local_ip, peer_ip, reqid_out, reqid_in, mark, local_port, peer_port)
        if which is not None:
            pols = [p for p in pols if p.dir == (xfrm.DIR_OUT if which == "out" else xfrm.DIR_IN)]
        done = []
        try:
            for p in pols:
                self.xfrm.add_policy(p)
                done.append(p)
        except netlink.NetlinkError:
            for p in done:
                self.xfrm.delete_policy(p.selector, p.dir, p.mark)
            raise
        self.policies[key] = [1, pols]
        return key

    def remove_policies(self, key):
        entry = self.policies.get(key)
        if not entry:
            return
        entry[0] -= 1
        if entry[0] > 0:
            return
        del self.policies[key]
        for p in entry[1]:
            try:
                self.xfrm.delete_policy(p.selector, p.dir, p.mark)
            except netlink.NetlinkError as e:
                if e.args[0] != 2:
                    raise

    # --- L2TP + PPP ---------------------------------------------------------------------------------------------

    def open_session(self, udp_sock, tunnel_id, peer_tunnel_id, session_id, peer_session_id, peer, ifname=None,
                     mru=1500, lns_mode=False):
        """Kernel tunnel (on first use of tunnel_id) + session + PPP unit. udp_sock: bound, connected to `peer`."""
        if tunnel_id not in self.tunnels:
            self.l2tp.create_tunnel(udp_sock, tunnel_id, peer_tunnel_id)
            self.tunnels[tunnel_id] = 0
        pppox = l2tp_kernel.open_session(udp_sock, tunnel_id, session_id, peer_tunnel_id, peer_session_id, peer,
                                         lns_mode=lns_mode)
        try:
            unit = ppp_kernel.make_unit(pppox, ifname, mru)
        except BaseException:
            pppox.close()
            raise
        self.tunnels[tunnel_id] += 1
        s = KernelSession(tunnel_id, session_id, pppox, unit)
        self.sessions.append(s)
        return s

    def close_session(self, s):
        s.unit.close()
        s.pppox.close()
        if s in self.sessions:
            self.sessions.remove(s)
            self.tunnels[s.tunnel_id] -= 1

    def close_tunnel(self, tunnel_id):
        """After the last session (and before closing the tunnel's UDP socket, which would also end it)."""
        for s in [s for s in self.sessions if s.tunnel_id == tunnel_id]:
            self.close_session(s)
        if self.tunnels.pop(tunnel_id, None) is not None:
            try:
                self.l2tp.delete_tunnel(tunnel_id)
            except netlink.NetlinkError as e:
                if e.args[0] != 2:
                    raise

    def stop(self):
        """Remove everything this object installed (idempotent)."""
        for tid in list(self.tunnels):
            self.close_tunnel(tid)
        for key in list(self.policies):
            self.policies[key][0] = 1
            self.remove_policies(key)
        for dst, spi in list(self.sas):
            self._del_sa(dst, spi)
        if self.events is not None:
            self.events.close()
            self.events = None


# Linux 6.11 (the June 2024 l2tp_core series) finds an L2TPv2 session by tunnel and session ID whatever socket
# received it; before, a session is looked up in the tunnel of the socket the packet landed on, and with two
# tunnels to one address and port (two clients behind one NAT) the kernel picks one socket for both.
MULTI_NAT_RELEASE = (6, 11)


def kernel_release(uname=None):
    """(major, minor) of the running kernel ("6.12.48+deb13-amd64" -> (6, 12)); (0, 0) when unreadable."""
    if uname is None:
        import os

        uname = os.uname
    try:
        rel = uname()[2]
    except (OSError, IndexError):
        return (0, 0)
    parts = []
    for field in rel.split(".")[:2]:
        digits = ""
        for ch in field:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    if len(parts) < 2:
        return (0, 0)
    return (parts[0], parts[1])


def probe_multi_nat(uname=None):
    """(ok, reason): can this kernel carry two L2TP clients behind one NAT (one address, two tunnels)?"""
    if uname is None:
        import os

        uname = os.uname
    rel = kernel_release(uname)
    try:
        name = uname()[2]
    except (OSError, IndexError):
        name = "?"
    if rel >= MULTI_NAT_RELEASE:
        return True, "kernel %s finds L2TPv2 sessions by tunnel and session ID (6.11+)" % name
    return False, "kernel %s cannot carry two L2TP clients behind one NAT (needs Linux 6.11+)" % name
