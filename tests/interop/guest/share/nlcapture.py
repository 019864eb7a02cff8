"""Guest-side: run shell commands and record every netlink message they cause, both directions.

Runs in a peer-lab guest (python3 only) from the 9p share. An `nlmon` device taps every netlink message
the kernel passes between sockets; an AF_PACKET socket on it reads each one with its direction
(PACKET_USER: sent by a process; PACKET_KERNEL: sent by the kernel, replies and multicast events) and the
netlink family (sll_protocol). Steps come as JSON on stdin, the answer is one JSON line on stdout:

    [{"name": "...", "cmd": "ip xfrm state add ...", "settle": 0.3, "background": "ip xfrm monitor"}]
    -> {"ok": true, "uname": "...", "ip": "...", "steps": [{"name", "cmd", "rc", "out", "messages":
        [{"dir": "user"|"kernel", "family": 6, "hex": "..."}]}]}

`background` is started before `cmd` and killed after `settle` seconds (e.g. `ip xfrm monitor`, so that the
kernel's multicast events have a listener and pass the tap).
"""

import json
import os
import select
import socket
import subprocess
import sys
import time

ETH_P_ALL = 0x0003
PACKET_USER = 6
PACKET_KERNEL = 7


def drain(sock, wait):
    out = []
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        r, _, _ = select.select([sock], [], [], max(0.0, left))
        if not r:
            if left <= 0:
                return out
            continue
        data, addr = sock.recvfrom(1 << 20)
        # addr: (ifname, proto, pkttype, hatype, hwaddr); proto is the netlink family.
        direction = {PACKET_USER: "user", PACKET_KERNEL: "kernel"}.get(addr[2], str(addr[2]))
        out.append({"dir": direction, "family": addr[1], "hex": data.hex()})


def main():
    steps = json.load(sys.stdin)
    subprocess.run("ip link del nlmon0 2>/dev/null; ip link add nlmon0 type nlmon && ip link set nlmon0 up",
                   shell=True, check=True)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind(("nlmon0", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    results = []
    try:
        drain(sock, 0.2)
        for step in steps:
            bg = None
            if step.get("background"):
                bg = subprocess.Popen(step["background"], shell=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, preexec_fn=os.setsid)
                time.sleep(0.5)
                drain(sock, 0.1)  # the listener's own set-up messages
            p = subprocess.run(step["cmd"], shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
            msgs = drain(sock, float(step.get("settle", 0.3)))
            bg_out = ""
            if bg is not None:
                os.killpg(bg.pid, 9)
                bg_out = bg.communicate()[0].decode(errors="replace")
                msgs += drain(sock, 0.1)
            # The tap also sees our own reads of nothing and the background tool's messages: keep only
            # the families we study (XFRM 6, generic 16) and drop the rtnetlink chatter of `ip`.
            msgs = [m for m in msgs if m["family"] in (6, 16)]
            results.append({"name": step["name"], "cmd": step["cmd"], "rc": p.returncode, "out": p.stdout[-4000:],
                            "background": step.get("background", ""), "background_out": bg_out[-4000:],
                            "messages": msgs})
    finally:
        sock.close()
        subprocess.run("ip link del nlmon0", shell=True)
    ver = subprocess.run(["ip", "-V"], stdout=subprocess.PIPE, text=True).stdout.strip()
    sys.stdout.write(json.dumps({"ok": True, "uname": " ".join(os.uname()), "ip": ver, "steps": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
