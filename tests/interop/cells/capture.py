"""Packet captures on the lab bridge, read back with tshark: an independent dissector's view of a cell.

tcpdump runs in the lab namespace on br0 (UDP 1701 only, short snap length); the capture is read by tshark
(Wireshark's L2TP/PPP dissectors, not our codecs) for the L2TP control message types each side sent and for
anything Wireshark flags as malformed or as an expert-info error. Captures cover the set-up and the
teardown, not the bulk iperf3 transfer (which would only make the file large).
"""

import os
import shutil
import subprocess
import time

# RFC 2661 section 3.2, Message Type AVP values.
L2TP_MESSAGE_TYPES = {1: "SCCRQ", 2: "SCCRP", 3: "SCCCN", 4: "StopCCN", 6: "HELLO", 7: "OCRQ", 8: "OCRP",
                      9: "OCCN", 10: "ICRQ", 11: "ICRP", 12: "ICCN", 14: "CDN", 15: "WEN", 16: "SLI"}
EXPERT_ERROR = "0x00800000"  # Wireshark's PI_ERROR severity
# IKE, NAT-T, L2TP and ESP; plus non-first IP fragments, which carry no UDP header for `udp port` to match
# (a Main Mode message with many proposals exceeds 1500 bytes).
IPSEC_FILTER = "udp port 500 or udp port 4500 or udp port 1701 or ip proto 50 or (ip[6:2] & 0x1fff != 0)"


def available():
    return bool(shutil.which("tcpdump") and shutil.which("tshark"))


class Capture:
    """tcpdump -i br0 FILTER (default: L2TP) into the lab's log directory; stop() before reading."""

    def __init__(self, lab, name, bpf="udp port 1701", snaplen=512):
        self.lab = lab
        self.bpf = bpf
        self.snaplen = snaplen
        self.path = os.path.join(lab.logdir, name + ".pcap")
        self.proc = None

    def start(self):
        if not available():
            return self
        self.proc = self.lab.popen(["tcpdump", "-i", "br0", "-U", "-s", str(self.snaplen), "-w", self.path, self.bpf],
                                   os.path.basename(self.path) + ".log")
        # tcpdump says "listening on" once the socket is open; give it that long, bounded.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(self.proc.log_path) as f:
                    if "listening on" in f.read():
                        break
            except OSError:
                pass
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is not None:
            time.sleep(0.3)  # let the last frames land
            self.lab.stop(self.proc, 3)
            self.proc = None
        return self


def dissect(path, timeout=60):
    """{'control': [(src, type name)], 'errors': [str], 'frames': n} from tshark, or None without tshark/file."""
    if not (available() and os.path.exists(path)):
        return None

    def tshark(*args):
        p = subprocess.run(["tshark", "-n", "-r", path] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        return p.stdout

    control = []
    frames = 0
    for line in tshark("-Y", "l2tp", "-T", "fields", "-E", "separator=|", "-e", "ip.src",
                       "-e", "l2tp.avp.message_type").splitlines():
        frames += 1
        src, _, types = line.partition("|")
        for t in filter(None, types.split(",")):
            control.append((src, L2TP_MESSAGE_TYPES.get(int(t), "type %s" % t)))
    errors = [l.strip() for l in tshark("-Y", "_ws.malformed || _ws.expert.severity == %s" % EXPERT_ERROR).splitlines()
              if l.strip()]
    return {"control": control, "errors": errors, "frames": frames}


def tshark_fields(path, display_filter, field, timeout=60):
    """One value of `field` per frame matching `display_filter` ([] without tshark or file)."""
    if not (available() and os.path.exists(path)):
        return []
    p = subprocess.run(["tshark", "-n", "-r", path, "-Y", display_filter, "-T", "fields", "-e", field],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    return [l.strip() for l in p.stdout.splitlines()]


def sent_by(d, src):
    return [t for s, t in d["control"] if s == src]
