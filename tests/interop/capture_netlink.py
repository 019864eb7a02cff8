"""Regenerate tests/unit/data/netlink_vectors.json: iproute2's own netlink messages and the kernel's replies.

Boots one peer-lab guest (the `trixie` image: Debian 13, kernel 6.12, iproute2 6.15), runs each `ip` command
below under guest/share/nlcapture.py (an nlmon tap read with AF_PACKET: every netlink message, both
directions, with its family) and writes what it saw, with the exact command, to the vector file that
tests/unit/test_hal_netlink_vectors.py reads. CI never runs this; the vectors are committed.

    python -m tests.interop.capture_netlink [--flavour trixie] [--out tests/unit/data/netlink_vectors.json]

Addresses are RFC 5737 (192.0.2.2 is the guest, 192.0.2.99 a peer that is not there); keys are fixed
patterns, not secrets. Each step's messages are the ones the tap saw while the command ran.
"""

import json
import os
import sys
import time

from . import lab as lab_mod

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "unit", "data", "netlink_vectors.json")

K16 = "0x" + "00112233445566778899aabbccddeeff"
K20 = "0x" + "0102030405060708090a0b0c0d0e0f1011121314"
K24 = "0x" + "000102030405060708090a0b0c0d0e0f1011121314151617"
K32 = "0x" + "".join("%02x" % i for i in range(32))
K36 = "0x" + "".join("%02x" % (0x40 + i) for i in range(36))   # AES-256 key + 4-byte salt (RFC 4106 8.1)
K48 = "0x" + "".join("%02x" % (0x80 + i) for i in range(48))
K64 = "0x" + "".join("%02x" % (0xa0 + i) for i in range(64))

ME, PEER = "192.0.2.2", "192.0.2.99"

STEPS = [
    # --- SAs: every kernel algorithm name Sluice uses, NAT-T encap, mark, reqid, lifetimes
    ("sa-add-aes256-sha1-encap-mark",
     "ip xfrm state add src %s dst %s proto esp spi 0xc0010001 reqid 0x5c000001 mode transport "
     "replay-window 32 enc 'cbc(aes)' %s auth-trunc 'hmac(sha1)' %s 96 encap espinudp 4500 4500 0.0.0.0 "
     "mark 0x5c000001 mask 0xffffffff "
     "limit byte-soft 900000000 limit byte-hard 1000000000 limit time-soft 3000 limit time-hard 3600"
     % (ME, PEER, K32, K20)),
    ("sa-add-aes256gcm16",
     "ip xfrm state add src %s dst %s proto esp spi 0xc0010002 reqid 0x5c000002 mode transport "
     "replay-window 32 aead 'rfc4106(gcm(aes))' %s 128" % (PEER, ME, K36)),
    ("sa-add-3des-md5",
     "ip xfrm state add src %s dst %s proto esp spi 0xc0010003 reqid 0x5c000003 mode transport "
     "replay-window 32 enc 'cbc(des3_ede)' %s auth-trunc 'hmac(md5)' %s 96" % (ME, PEER, K24, K16)),
    ("sa-add-aes128-sha256",
     "ip xfrm state add src %s dst %s proto esp spi 0xc0010004 reqid 0x5c000004 mode transport "
     "replay-window 32 enc 'cbc(aes)' %s auth-trunc 'hmac(sha256)' %s 128" % (ME, PEER, K16, K32)),
    ("sa-add-aes128-sha256_96",
     "ip xfrm state add src %s dst %s proto esp spi 0xc0010005 reqid 0x5c000005 mode transport "
     "replay-window 32 enc 'cbc(aes)' %s auth-trunc 'hmac(sha256)' %s 96" % (ME, PEER, K16, K32)),
    ("sa-add-aes192-sha384",
     "ip xfrm state add src %s dst %s proto esp spi 0xc0010006 reqid 0x5c000006 mode transport "
     "replay-window 32 enc 'cbc(aes)' %s auth-trunc 'hmac(sha384)' %s 192" % (ME, PEER, K24, K48)),
    ("sa-add-aes256-sha512",
     "ip xfrm state add src %s dst %s proto esp spi 0xc0010007 reqid 0x5c000007 mode transport "
     "replay-window 32 enc 'cbc(aes)' %s auth-trunc 'hmac(sha512)' %s 256" % (ME, PEER, K32, K64)),
    ("sa-update-aes256-sha1",
     "ip xfrm state update src %s dst %s proto esp spi 0xc0010003 reqid 0x5c000003 mode transport "
     "replay-window 32 enc 'cbc(aes)' %s auth-trunc 'hmac(sha1)' %s 96 "
     "limit time-soft 100 limit time-hard 200" % (ME, PEER, K32, K20)),
    ("sa-get-marked",
     "ip xfrm state get src %s dst %s proto esp spi 0xc0010001 mark 0x5c000001 mask 0xffffffff" % (ME, PEER)),
    # --- policies: transport mode, UDP 1701 selectors, reqid templates, a marked outbound one
    ("policy-add-out-marked",
     "ip xfrm policy add src %s/32 dst %s/32 proto udp sport 1701 dport 1701 dir out priority 2080 "
     "tmpl src %s dst %s proto esp reqid 0x5c000001 mode transport mark 0x5c000001 mask 0xffffffff"
     % (ME, PEER, ME, PEER)),
    ("policy-add-in",
     "ip xfrm policy add src %s/32 dst %s/32 proto udp sport 1701 dir in priority 2080 "
     "tmpl src %s dst %s proto esp reqid 0x5c000002 mode transport" % (PEER, ME, PEER, ME)),
    # Traffic through the marked outbound SA, so that the dumps below show counters.
    ("traffic",
     "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
     "s.setsockopt(socket.SOL_SOCKET, 36, 0x5c000001); s.bind(('%s', 1701)); "
     "[s.sendto(b'x' * 100, ('%s', 1701)) for i in range(5)]\"" % (ME, PEER)),
    ("sa-list", "ip -s xfrm state list"),
    ("policy-list", "ip xfrm policy list"),
    ("policy-delete-out-marked",
     "ip xfrm policy delete src %s/32 dst %s/32 proto udp sport 1701 dport 1701 dir out "
     "mark 0x5c000001 mask 0xffffffff" % (ME, PEER)),
    ("sa-delete-marked",
     "ip xfrm state delete src %s dst %s proto esp spi 0xc0010001 mark 0x5c000001 mask 0xffffffff" % (ME, PEER)),
    ("sa-delete",
     "ip xfrm state delete src %s dst %s proto esp spi 0xc0010004" % (ME, PEER)),
    # --- an inbound SA with a set-mark (what it decrypts gets skb->mark; a server's SO_RCVMARK reads it), and
    #     the kernel's answer for it. iproute2 says `output-mark VALUE mask MASK` (XFRMA_SET_MARK + _MASK).
    ("sa-add-inbound-output-mark",
     "ip xfrm state add src %s dst %s proto esp spi 0xc001000a reqid 0x5c000001 mode transport "
     "replay-window 32 aead 'rfc4106(gcm(aes))' %s 128 encap espinudp 4500 4500 0.0.0.0 "
     "output-mark 0x5c000001 mask 0xffffffff" % (PEER, ME, K36)),
    ("sa-get-inbound-output-mark",
     "ip xfrm state get src %s dst %s proto esp spi 0xc001000a" % (PEER, ME)),
    # --- the kernel's EXPIRE events (soft, then hard), as `ip xfrm monitor`'s socket receives them
    ("sa-expire",
     "ip xfrm state add src %s dst %s proto esp spi 0xc0010008 reqid 0x5c000008 mode transport "
     "replay-window 32 enc 'cbc(aes)' %s auth-trunc 'hmac(sha1)' %s 96 limit time-soft 1 limit time-hard 2"
     % (ME, PEER, K16, K20), 4.0, "ip xfrm monitor"),
    # --- kernel L2TP over generic netlink (iproute2 makes L2TPv3 tunnels with kernel sockets; the message
    #     shapes and the family resolution through nlctrl are what we compare)
    ("l2tp-add-tunnel",
     "ip l2tp add tunnel tunnel_id 100 peer_tunnel_id 200 encap udp local %s remote %s "
     "udp_sport 1701 udp_dport 1701" % (ME, PEER)),
    ("l2tp-add-session",
     "ip l2tp add session name l2tpeth9 tunnel_id 100 session_id 1000 peer_session_id 2000"),
    ("l2tp-show-tunnel", "ip l2tp show tunnel"),
    ("l2tp-del-session", "ip l2tp del session tunnel_id 100 session_id 1000"),
    ("l2tp-del-tunnel", "ip l2tp del tunnel tunnel_id 100"),
    ("cleanup", "ip xfrm state flush; ip xfrm policy flush"),
]


def steps_json():
    out = []
    for s in STEPS:
        d = {"name": s[0], "cmd": s[1]}
        if len(s) > 2:
            d["settle"] = s[2]
        if len(s) > 3:
            d["background"] = s[3]
        out.append(d)
    return json.dumps(out)


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    flavour = "trixie"
    out = OUT
    if "--flavour" in args:
        flavour = args[args.index("--flavour") + 1]
    if "--out" in args:
        out = args[args.index("--out") + 1]
    ok, why = lab_mod.can_run_lab()
    if not ok:
        print("error: " + why, file=sys.stderr)
        return 1
    t0 = time.monotonic()
    with lab_mod.Lab("slab-nlcap") as lab:
        g = lab.add_guest(flavour)
        g.wait_ready()
        p = g.ssh("python3 /lab/nlcapture.py", timeout=300, input=steps_json())
        res = json.loads(p.stdout.strip().splitlines()[-1])
    res["image"] = flavour
    res["generator"] = "python -m tests.interop.capture_netlink --flavour %s" % flavour
    bad = [s["name"] for s in res["steps"] if s["rc"] != 0]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")
    print("%s: %d steps, %d messages, failed: %s (%.0f s)" % (
        out, len(res["steps"]), sum(len(s["messages"]) for s in res["steps"]), bad or "none",
        time.monotonic() - t0))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
