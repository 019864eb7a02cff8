"""L2TP inside IPsec transport mode (RFC 3193): IKE on UDP 500/4500, ESP raw or UDP-encapsulated.

The IKE machines (`sluice.ike.table.IkeTable`) negotiate; this module owns their sockets and the ESP data
path. For L2TP the peer key is (outer address, outer port, inner UDP source port): outer port distinguishes
several clients behind one NAT (each gets its own NAT mapping for UDP 4500), the inner port the L2TP
endpoints, so no two clients ever share a key even when all of them use 1701 inside.

Per packet: one SPI lookup, one `open`/`seal` (built once per SA by `sluice.esp`), an 8-byte UDP header.
"""

import socket
import struct

from sluice.esp import udpencap
from sluice.esp.errors import EspError
from sluice.esp.sa import Inbound, Outbound, NEXT_HEADER_UDP

IKE_PORT = 500
NATT_PORT = 4500
L2TP_PORT = 1701
KEEPALIVE_INTERVAL = 20.0  # RFC 3948 4: NAT keepalives, 20 s is what racoon and strongSwan use
IPPROTO_ESP = 50
_UDP = struct.Struct("!HHHH")
_PKTINFO_SPACE = socket.CMSG_SPACE(12)


class _InSa:
    __slots__ = ("sa", "peer", "encap", "last_rx")

    def __init__(self, sa, peer, encap):
        self.sa = sa
        self.peer = peer  # the IKE peer (address, port) this SA belongs to
        self.encap = encap
        self.last_rx = 0.0


class IpsecTransport:
    def __init__(self, loop, log, ike_config, local_ip, deliver, on_event, rng, backend=None, ike_table=None):
        from sluice.engine.timers import TimerSlot

        self.loop = loop
        self.log = log
        self.local_ip = local_ip
        self.deliver = deliver  # deliver(buf, start, end, l2tp_peer_key, now)
        self.on_event = on_event  # on_event(kind, ike_peer, now, reason=None): 'sa-up', 'peer-down', 'failed'
        self.rng = rng
        self.backend = backend
        if ike_table is None:
            from sluice.ike.table import IkeTable

            ike_table = IkeTable(ike_config, rng, None if isinstance(backend, str) else backend)
        self.ike = ike_table
        self.role = getattr(ike_config, "role", "responder")
        self.target = getattr(ike_config, "target", None)  # initiator: the server's (address, 500)
        self.inbound = {}  # SPI (4 bytes) -> _InSa
        self.outbound = {}  # IKE peer -> (Outbound, encap): the SA we send on
        self.spares = {}  # IKE peer -> [(Outbound, encap)] every live outbound SA, oldest first
        self.sas_of = {}  # IKE peer -> number of live inbound SAs
        self.natted = {}  # IKE peer -> True when we are behind NAT (we send keepalives)
        self.local_for = {}  # peer address -> our address it reached on UDP 500 (wildcard listen)
        self.s500 = self.s4500 = self.raw = None
        self.buf = bytearray(65535)
        self.view = memoryview(self.buf)
        self.timer = TimerSlot(loop, self._ike_timer)
        self.counters = {"esp_in": 0, "esp_out": 0, "unknown_spi": 0, "esp_errors": 0, "not_l2tp": 0,
                         "no_sa": 0, "ike_malformed": 0}

    # -- sockets -------------------------------------------------------------------------------------------

    def attach(self, loop):
        from sluice.hal.net.udp import bind_udp

        # Bound first: a peer's first IKE packet waits in the socket while the backends prove themselves
        # (seconds on a slow CPU) instead of meeting a closed port and a retransmit.
        client = self.role == "initiator"
        self.s500 = bind_udp(self.local_ip, IKE_PORT, fallback_ephemeral=client)
        self.s4500 = bind_udp(self.local_ip, NATT_PORT, fallback_ephemeral=client)
        try:
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_ESP)
            self.raw.setblocking(False)
        except OSError as e:
            # Without CAP_NET_RAW only UDP-encapsulated ESP works; say so once.
            self.log.warning("no raw ESP socket (%s): only NAT-T (UDP 4500) peers can connect", e.strerror)
            self.raw = None
        if self.local_ip in ("0.0.0.0", ""):
            # NAT-D hashes our address as the peer sees it: learn it per datagram (IP_PKTINFO).
            self.s500.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_PKTINFO", 8), 1)
        loop.add_reader(self.s500, self._on_500)
        loop.add_reader(self.s4500, self._on_4500)
        if self.raw is not None:
            loop.add_reader(self.raw, self._on_raw)
        self._pick_backend()

    def _pick_backend(self):
        from sluice.hal.crypto import select

        if isinstance(self.backend, str) and self.backend != "auto":
            # `option crypto` in globals names one backend: it still has to pass its known answers.
            from sluice.hal import crypto
            from sluice.hal.crypto import kat

            mod = crypto.load(self.backend)
            reason = mod.available()
            if reason is not None or not kat.ok(kat.run(mod)):
                raise RuntimeError("crypto backend %r cannot be used here: %s" % (
                    self.backend, reason or "it failed its known-answer tests (`sluice crypto` shows which)"))
            crypto.set_default(self.backend)
            self.backend = None
            self.log.info("ESP crypto backend: %s (set by option crypto)", mod.__name__.rsplit(".", 1)[-1])
        elif self.backend in (None, "auto"):
            self.backend = None
            # Every backend proves itself on its known answers, then the fastest here carries ESP.
            chosen = select.choose()
            if chosen is None:
                raise RuntimeError("no crypto backend passed its known-answer tests: run `sluice crypto`")
            self.log.info("ESP crypto backend: %s (`sluice crypto` shows the measurements)", chosen)

    def initiate(self, now):
        self.ike.initiate(self.target, now)
        self._pump(now)

    # -- receive -------------------------------------------------------------------------------------------

    def _on_500(self, now):
        for _ in range(16):
            try:
                data, anc, _flags, peer = self.s500.recvmsg(65535, _PKTINFO_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            local = self.local_ip
            for level, kind, cdata in anc:
                if level == socket.IPPROTO_IP and len(cdata) >= 12:
                    local = socket.inet_ntoa(cdata[8:12])  # in_pktinfo.ipi_addr: the header's destination
                    self.local_for[peer[0]] = local
            self.ike.datagram_received(data, (local, IKE_PORT), peer, now)
            self._pump(now)

    def _on_4500(self, now):
        buf, view = self.buf, self.view
        for _ in range(64):
            try:
                n, peer = self.s4500.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if n == 1 and buf[0] == 0xFF:
                continue  # NAT keepalive (RFC 3948 2.3)
            if n < 8:
                self.counters["esp_errors"] += 1
                continue
            if buf[0] == 0 and buf[1] == 0 and buf[2] == 0 and buf[3] == 0:
                local = self.local_for.get(peer[0], self.local_ip)
                self.ike.datagram_received(bytes(view[4:n]), (local, NATT_PORT), peer, now)
                self._pump(now)
                continue
            self._esp_in(bytes(view[:n]), peer, True, now)

    def _on_raw(self, now):
        buf, view = self.buf, self.view
        for _ in range(64):
            try:
                n, addr = self.raw.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            ihl = (buf[0] & 0x0F) * 4
            if n < ihl + 8:
                self.counters["esp_errors"] += 1
                continue
            self._esp_in(bytes(view[ihl:n]), (addr[0], None), False, now)

    def _esp_in(self, packet, outer, encap, now):
        rec = self.inbound.get(packet[:4])
        if rec is None:
            self.counters["unknown_spi"] += 1
            return
        peer = rec.peer
        # The SA is bound to its peer's address: ESP for it from elsewhere is dropped before any crypto.
        if outer[0] != peer[0] or encap != rec.encap:
            self.counters["unknown_spi"] += 1
            return
        try:
            payload, nh = rec.sa.open(packet)
        except EspError:
            self.counters["esp_errors"] += 1
            return
        self.counters["esp_in"] += 1
        if encap and outer[1] != peer[1]:
            # Authenticated ESP from a new port of the same address: the NAT re-mapped the client (RFC 3948
            # lets us follow it). Move the IKE SA, our SAs and the L2TP tunnels to the new mapping.
            if self.ike.follow_peer(peer, outer):
                self._pump(now)
            peer = rec.peer
        if now - rec.last_rx > 1.0:  # DPD only needs to know the peer is alive, not every packet
            rec.last_rx = now
            self.ike.traffic_seen(peer, now)
        n = len(payload)
        if nh != NEXT_HEADER_UDP or n < 8 or ((payload[2] << 8) | payload[3]) != L2TP_PORT:
            self.counters["not_l2tp"] += 1  # transport-mode policy: only UDP to 1701 is carried
            return
        sport = (payload[0] << 8) | payload[1]
        self.deliver(payload, 8, n, (peer[0], peer[1], sport), now)

    # -- send ----------------------------------------------------------------------------------------------

    def send(self, key, parts):
        """Seal one L2TP datagram (given as parts) for the L2TP peer `key` and send it."""
        ike_peer = (key[0], key[1])
        out = self.outbound.get(ike_peer)
        if out is None:
            self.counters["no_sa"] += 1
            return
        sa, encap = out
        n = 8
        for p in parts:
            n += len(p)
        inner = _UDP.pack(L2TP_PORT, key[2], n, 0) + b"".join(parts)
        try:
            pkt = sa.seal(inner, NEXT_HEADER_UDP)
            if encap:
                self.s4500.sendto(pkt, ike_peer)
            elif self.raw is not None:
                self.raw.sendto(pkt, (ike_peer[0], 0))
            else:
                self.counters["esp_errors"] += 1  # raw ESP negotiated but no raw socket (no CAP_NET_RAW)
                return
            self.counters["esp_out"] += 1
        except (EspError, OSError):
            self.counters["esp_errors"] += 1

    # -- IKE -----------------------------------------------------------------------------------------------

    def _ike_timer(self, now):
        d = self.ike.get_timer()
        if d is not None and d <= now:
            self.ike.handle_timer(now)
        self._pump(now)

    def _pump(self, now):
        from sluice.ike import events as ev

        ike = self.ike
        for local_port, peer, data in ike.datagrams_to_send():
            try:
                if local_port == NATT_PORT:
                    self.s4500.sendto(udpencap.add_marker(data), peer)
                else:
                    self.s500.sendto(data, peer)
            except OSError:
                pass
        while True:
            e = ike.next_event()
            if e is None:
                break
            if isinstance(e, ev.ChildSaUp):
                self._child_up(e, now)
            elif isinstance(e, ev.ChildSaDown):
                self._child_down(e, now)
            elif isinstance(e, ev.IkeSaUp):
                self.log.info("IKE SA up with %s:%d (%s)%s", e.peer[0], e.peer[1], e.auth,
                              ", behind NAT" if e.nat_local else (", peer behind NAT" if e.nat_remote else ""))
                if e.nat_local and e.peer not in self.natted:
                    self.natted[e.peer] = True
                    self.loop.call_at(now + KEEPALIVE_INTERVAL, lambda t, p=e.peer: self._keepalive(p, t))
            elif isinstance(e, ev.IkeSaDown):
                self.log.info("IKE SA with %s:%d down: %s", e.peer[0], e.peer[1], e.reason)
            elif isinstance(e, ev.PeerMoved):
                self._peer_moved(e.old, e.new, now)
            elif isinstance(e, ev.PeerDead):
                self.log.warning("peer %s:%d is dead (no answer to DPD)", e.peer[0], e.peer[1])
                self._drop_peer(e.peer, now, "the peer stopped answering (DPD)")
            elif isinstance(e, ev.NegotiationFailed):
                self.log.warning("IPsec negotiation with %s failed: %s", e.peer[0], e.reason)
                self.on_event("failed", e.peer, now, e.reason)
        self.timer.arm(ike.get_timer())

    def _child_up(self, e, now):
        backend = self.backend
        try:
            inb = Inbound(e.spi_in, e.transform, e.enc_in, e.auth_in, e.salt_in, self.rng, backend, None, now)
            out = Outbound(e.spi_out, e.transform, e.enc_out, e.auth_out, e.salt_out, self.rng, backend, None, now)
        except (ValueError, EspError) as err:
            self.log.error("cannot install ESP SA %s with %s: %s", e.transform, e.peer[0], err)
            return
        key = e.spi_in.to_bytes(4, "big")
        self.inbound[key] = _InSa(inb, e.peer, e.encap)
        self.sas_of[e.peer] = self.sas_of.get(e.peer, 0) + 1
        first = e.peer not in self.outbound
        self.outbound[e.peer] = (out, e.encap)  # the newest SA carries outbound traffic (RFC 2409 rekeying)
        self.spares.setdefault(e.peer, []).append((out, e.encap))
        self.log.info("ESP SA %s with %s:%d in 0x%08x out 0x%08x%s%s", e.transform, e.peer[0], e.peer[1],
                      e.spi_in, e.spi_out, " UDP-encapsulated" if e.encap else "",
                      " (rekey)" if e.rekey_of else "")
        if first:
            self.on_event("sa-up", e.peer, now)

    def _child_down(self, e, now):
        rec = self.inbound.pop(e.spi_in.to_bytes(4, "big"), None)
        if rec is None:
            return
        left = self.sas_of.get(e.peer, 1) - 1
        live = [o for o in self.spares.get(e.peer, []) if o[0].spi != e.spi_out]
        self.spares[e.peer] = live
        out = self.outbound.get(e.peer)
        if out is not None and out[0].spi == e.spi_out:
            # The SA we sent on is gone (a peer may delete the newer pair first): fall back to the newest
            # live one rather than stop sending.
            if live:
                self.outbound[e.peer] = live[-1]
            else:
                del self.outbound[e.peer]
        if left <= 0:
            self._forget(e.peer)
            self.on_event("peer-down", e.peer, now, e.reason)
        else:
            self.sas_of[e.peer] = left

    def _peer_moved(self, old, new, now):
        self.log.info("peer %s:%d moved to %s:%d (NAT mapping changed)", old[0], old[1], new[0], new[1])
        for rec in self.inbound.values():
            if rec.peer == old:
                rec.peer = new
        for table in (self.outbound, self.spares, self.sas_of, self.natted):
            if old in table:
                table[new] = table.pop(old)
        self.on_event("peer-moved", old, now, new)

    def _forget(self, peer):
        self.outbound.pop(peer, None)
        self.spares.pop(peer, None)
        self.sas_of.pop(peer, None)
        self.natted.pop(peer, None)  # its keepalive chain stops at the next tick

    def _drop_peer(self, peer, now, reason):
        for k in [k for k, r in self.inbound.items() if r.peer == peer]:
            del self.inbound[k]
        self._forget(peer)
        self.on_event("peer-down", peer, now, reason)

    def _keepalive(self, peer, now):
        if peer not in self.natted:
            return
        try:
            self.s4500.sendto(udpencap.KEEPALIVE, peer)
        except OSError:
            pass
        self.loop.call_at(now + KEEPALIVE_INTERVAL, lambda t, p=peer: self._keepalive(p, t))

    def rekey(self, now):
        """Start a new Quick Mode with every peer; the old SAs carry traffic until the new ones are up."""
        started = [p for p in list(self.outbound) if self.ike.rekey(p, now)]
        self._pump(now)
        return len(started)

    def shutdown(self, now):
        """Delete every SA with the peers (DELETE notifications) before the daemon exits."""
        try:
            self.ike.close(now)
        except Exception:  # pragma: no cover - a machine must not stop the daemon from exiting
            pass
        self._pump(now)

    def status(self):
        sas = []
        for spi, rec in self.inbound.items():
            out = self.outbound.get(rec.peer)
            sas.append({"peer": "%s:%d" % rec.peer, "spi_in": "0x%08x" % rec.sa.spi,
                        "spi_out": "0x%08x" % out[0].spi if out else None, "transform": rec.sa.transform,
                        "encap": rec.encap, "packets_in": rec.sa.packets, "bytes_in": rec.sa.bytes,
                        "packets_out": out[0].packets if out else 0})
        st = {"ipsec": True, "sas": sas}
        st.update(self.counters)
        return st

    def close(self, loop):
        for s in (self.s500, self.s4500, self.raw):
            if s is not None:
                loop.remove_reader(s)
                s.close()


# What a client offers when the config names no proposals. A responder accepts a wide modern set
# (proposals.default_ike/default_esp); an initiator offers a short list in preference order, the way Windows
# and Apple do: the full cross product (about 40 phase-1 transforms) makes the first Main Mode message
# 1.6 kB, which IP fragments, and NATs that drop fragments would block it.
INITIATOR_IKE = ("aes256-sha256-modp2048,aes256-sha256-ecp256,aes128-sha256-modp2048,aes256-sha1-modp2048,"
                 "aes128-sha1-modp2048,aes256-sha384-ecp384,aes256-sha256-modp3072,aes256-sha512-modp4096")
INITIATOR_IKE_LEGACY = "aes256-sha1-modp1024,aes128-sha1-modp1024,3des-sha1-modp1024,3des-md5-modp1024"
INITIATOR_ESP = "aes256gcm16,aes128gcm16,aes256-sha1,aes128-sha1,aes256-sha256,aes128-sha256"
INITIATOR_ESP_LEGACY = "3des-sha1,aes256-md5,aes128-md5,3des-md5"


def _initiator_default(kind):
    from sluice.ike import proposals as P

    base, extra = (INITIATOR_IKE, INITIATOR_IKE_LEGACY) if kind == "ike" else (INITIATOR_ESP, INITIATOR_ESP_LEGACY)

    def make(legacy):
        ps = P.ProposalSet.parse(base, kind)
        if legacy:
            ps.extend(P.ProposalSet.parse(extra, kind))
        return ps

    return make


def _proposals(values, default, kind, legacy):
    from sluice.ike import proposals as P

    if values:
        return P.ProposalSet.parse(",".join(values), kind)
    return default(legacy)


def crypto_choice(config):
    """`option crypto` of `config globals`: 'auto' (measure at start) or one backend's name."""
    g = getattr(config, "globals", None)
    return getattr(g, "crypto", None) or "auto"


def _read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def _utc_now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def _ike_config(section, role, **extra):
    from sluice.ike import proposals as P
    from sluice.ike.table import IkeConfig

    psk = section.psk.encode() if section.psk else None
    if role == "initiator":
        ike_default, esp_default = _initiator_default("ike"), _initiator_default("esp")
    else:
        ike_default, esp_default = P.default_ike, P.default_esp
    return IkeConfig(
        role=role, psk=psk, cert=_read(section.cert), key=_read(section.key), ca=_read(section.ca),
        ike=_proposals(section.ike, ike_default, "ike", section.legacy),
        esp=_proposals(section.esp, esp_default, "esp", section.legacy),
        ike_lifetime=getattr(section, "ike_lifetime", 28800), esp_lifetime=getattr(section, "lifetime", 3600),
        dpd_delay=section.dpd_delay, dpd_timeout=section.dpd_timeout, utc_now=_utc_now, **extra)


def responder_config(section, config):
    # With a wildcard listen address IKE must hash and name the address each datagram really arrived on
    # (learned per datagram): 0.0.0.0 in NAT-D would make every client think the server is behind NAT.
    local = None if section.listen in ("0.0.0.0", "") else section.listen
    return _ike_config(section, "responder", local_ip=local)


def source_address(server_ip):
    """The address this host sends from toward server_ip (what the server sees unless a NAT rewrites it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((server_ip, IKE_PORT))  # no packet is sent: this only asks the routing table
        return s.getsockname()[0]
    finally:
        s.close()


def initiator_config(section, server_ip):
    cfg = _ike_config(section, "initiator", server_name=getattr(section, "server_name", None),
                      local_ip=source_address(server_ip))
    cfg.target = (server_ip, IKE_PORT)
    return cfg
