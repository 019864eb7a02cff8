"""Real-client proposal profiles against the Sluice server: strongSwan + xl2tpd + pppd in a guest offering
exactly what Windows, Apple, Android (up to 11) and NetworkManager-l2tp offer (shared/docs/clients.md).

- client-profile-<name>: strongSwan IKEv1 (ipsec.conf `ike=`/`esp=` with the strict `!` suffix, so the
  guest offers exactly the profile's list and nothing else) + xl2tpd + pppd dial `sluice server` (ipsec '1',
  PSK) on the host. Checks as cells/sluice_ipsec.py: addresses, MS-CHAPv2 in pppd's LCP ConfAck, ping, TCP
  both ways (iperf3), growing ESP counters in the guest kernel, tshark (no plaintext L2TP, nothing
  malformed), Sluice drops the session after xl2tpd stops. Beyond those: the IKE and ESP proposals strongSwan
  reports as negotiated (`ipsec statusall`, strongSwan's own naming) are among those the profile offered.
- client-profile-android-nolegacy: the Android profile (MODP1024 only) against a server without
  `option legacy '1'` must fail, and Sluice's log must say so in plain words, naming MODP1024 and `legacy`
  (the "what to change" line of proposals._legacy_hint), with no SA in the guest and no L2TP on the wire.

A proposal string that the guest's strongSwan (5.9.8) refuses is dropped from the offer and named in the
cell's detail (charon logs "skipped invalid proposal string" or refuses the conn): the cell then tests what
that strongSwan can offer, and says so.
"""

import re
import time

from .. import lab as lab_mod
from .. import peers
from . import capture
from .base import (CellFailure, check, install, start_xl2tpd, stop_xl2tpd, IpsecStack, guest_logs,
                   save_guest_logs, result)
from .sluice import _wait_status, _server_sessions, _sluice_failure
from .sluice_ipsec import _check_wire, _guest_for, lns_session_checks, CAPTURE_FILTER, SNAPLEN

# The profiles, from shared/docs/clients.md (each list in the client's order of preference).
PROFILES = {
    # Windows 10/11 built-in: phase 1 as seen in the field (tail order unverified there); ESP, no PFS.
    "windows": (
        ["aes256-sha1-ecp384", "aes128-sha1-ecp256", "aes256-sha1-modp2048", "3des-sha1-modp2048",
         "3des-sha1-modp1024"],
        ["aes256-sha1", "aes128-sha1", "3des-sha1"]),
    # macOS/iOS (racoon-derived): 14 phase 1 transforms; ESP AES-256/AES-128/3DES x SHA1/MD5.
    "apple": (
        ["aes256-sha256-modp2048", "aes256-sha1-modp2048", "aes256-md5-modp2048", "aes256-sha512-modp2048",
         "aes256-sha256-modp1536", "aes256-sha1-modp1536", "aes256-md5-modp1536",
         "aes256-sha256-modp1024", "aes256-sha1-modp1024", "aes256-md5-modp1024",
         "aes128-sha1-modp1024", "aes128-md5-modp1024", "3des-sha1-modp1024", "3des-md5-modp1024"],
        ["aes256-sha1", "aes128-sha1", "3des-sha1", "aes256-md5", "aes128-md5", "3des-md5"]),
    # Android up to 11 (racoon): MODP1024 in every phase 1 proposal; ESP x SHA1/MD5, no PFS.
    "android": (
        ["aes256-sha1-modp1024", "aes256-md5-modp1024", "aes128-sha1-modp1024", "aes128-md5-modp1024",
         "3des-sha1-modp1024", "3des-md5-modp1024"],
        ["aes256-sha1", "aes128-sha1", "3des-sha1", "aes256-md5", "aes128-md5", "3des-md5"]),
    # NetworkManager-l2tp default: the union of the Windows and Apple lists.
    "networkmanager": (
        ["aes256-sha256-modp2048", "aes256-sha256-modp1536", "aes256-sha256-modp1024",
         "aes256-sha1-modp2048", "aes256-sha1-modp1536", "aes256-sha1-modp1024",
         "aes256-sha1-ecp384", "aes128-sha1-ecp256", "3des-sha1-modp2048", "3des-sha1-modp1024"],
        ["aes256-sha1", "aes128-sha1", "3des-sha1"]),
}

# strongSwan's names for what it negotiated (`ipsec statusall`: "IKE proposal: AES_CBC_256/HMAC_SHA1_96/
# PRF_HMAC_SHA1/MODP_2048", CHILD line "AES_CBC_256/HMAC_SHA1_96"), per ipsec.conf keyword.
_ENCR = {"aes256": "AES_CBC_256", "aes128": "AES_CBC_128", "3des": "3DES_CBC"}
_INTEG = {"sha1": "HMAC_SHA1_96", "md5": "HMAC_MD5_96", "sha256": "HMAC_SHA2_256_128", "sha512": "HMAC_SHA2_512_256"}
_PRF = {"sha1": "PRF_HMAC_SHA1", "md5": "PRF_HMAC_MD5", "sha256": "PRF_HMAC_SHA2_256", "sha512": "PRF_HMAC_SHA2_512"}
_GROUP = {"modp1024": "MODP_1024", "modp1536": "MODP_1536", "modp2048": "MODP_2048", "ecp256": "ECP_256",
          "ecp384": "ECP_384"}

CHARON_FAST_FAIL = {
    # The failing variant must not sit in IKEv1's default retransmission schedule (about 165 s).
    "/etc/strongswan.d/charon-lab-retransmit.conf": "charon {\n    retransmit_tries = 2\n    retransmit_timeout = 2\n}\n",
}


def _ike_name(p):
    e, h, g = p.split("-")
    return "%s/%s/%s/%s" % (_ENCR[e], _INTEG[h], _PRF[h], _GROUP[g])


def _esp_name(p):
    e, h = p.split("-")
    return "%s/%s" % (_ENCR[e], _INTEG[h])


def _start_with_profile(guest, ike, esp, server_ip, extra_files=None):
    """Install and start strongSwan offering ike/esp strictly; drop proposals charon refuses.

    Returns (ike, esp, dropped) as really offered."""
    stack = IpsecStack("strongswan")
    dropped = []
    for _ in range(3):
        files = dict(stack.files(guest, server_ip))
        files.update(peers.strongswan_l2tp(server_ip, ike=",".join(ike) + "!", esp=",".join(esp) + "!",
                                           extra=("keyingtries=1",)))
        files.update(extra_files or {})
        install(guest, files)
        try:
            stack.start(guest)
        except CellFailure:
            pass
        log = guest.read("/var/log/charon.log")
        bad = re.findall(r"skipped invalid proposal string: (\S+)", log)
        bad += re.findall(r"invalid (?:IKE|ESP|AH) proposal string: (\S+)", log)
        bad = [b.rstrip("!") for b in bad]
        if not bad:
            loaded = "l2tp:" in guest.ssh("ipsec statusall 2>/dev/null", check=False).stdout
            check(loaded, "%s: charon did not load the l2tp conn with the profile\n%s" % (
                guest.name, log[-2000:]))
            return ike, esp, dropped
        stack.stop(guest)
        dropped += bad
        ike = [p for p in ike if p not in bad]
        esp = [p for p in esp if p not in bad]
        check(ike and esp, "the guest's strongSwan refused the whole profile (%s)" % ", ".join(dropped))
    raise CellFailure("%s: charon kept refusing proposals: %s" % (guest.name, ", ".join(dropped)))


def _negotiated(guest):
    """(IKE proposal, ESP proposal) as `ipsec statusall` names them, '' where absent."""
    out = guest.ssh("ipsec statusall 2>/dev/null", check=False).stdout
    ike = re.search(r"IKE proposal: (\S+)", out)
    esp = re.search(r"l2tp\{\d+\}:\s+((?:AES|3DES)\S+?)(?:,|\s)", out)
    return (ike.group(1) if ike else ""), (esp.group(1) if esp else ""), out


def cell_client_profile(bed, profile="windows", legacy=False, auth="mschapv2"):
    """strongSwan+xl2tpd+pppd offering one real client's profile -> Sluice LNS; the whole tunnel must work."""
    lab, lac = bed.lab, _guest_for(bed, "strongswan")
    stack = IpsecStack("strongswan")
    tag = "client-profile-" + profile
    ike, esp = PROFILES[profile]
    cap = None
    proc = lab.sluice("server", peers.sluice_server(lab_mod.HOST_IP, auth, ipsec=True,
                                                    extra=["option legacy '1'"] if legacy else ()), "lns")
    try:
        st = _wait_status(lab, proc, "lns", lambda s: s.get("role", "server") == "server", 15)
        if st is None:
            raise _sluice_failure(lab, proc, "Sluice LNS (IPsec) did not answer on its control socket", lac)
        install(lac, peers.xl2tpd_lac(lab_mod.HOST_IP, auth))
        ike, esp, dropped = _start_with_profile(lac, ike, esp, lab_mod.HOST_IP)
        start_xl2tpd(lac)
        cap = capture.Capture(lab, tag + "-setup", CAPTURE_FILTER, SNAPLEN).start()
        ok, r = stack.up(lac)
        if not ok:
            raise _sluice_failure(lab, proc, "strongSwan offering the %s profile could not bring up IPsec with "
                                  "Sluice (rc %s):\n%s" % (profile, r.get("rc"), r.get("output", "")[-2000:]), lac)
        ike_s = r["elapsed"]
        got_ike, got_esp, status = _negotiated(lac)
        check(got_ike in [_ike_name(p) for p in ike], "strongSwan negotiated IKE %r, not one the %s profile offered "
              "(%s)\n%s" % (got_ike, profile, ", ".join(ike), status[-1500:]))
        check(got_esp in [_esp_name(p) for p in esp], "strongSwan negotiated ESP %r, not one the %s profile offered "
              "(%s)\n%s" % (got_esp, profile, ", ".join(esp), status[-1500:]))
        up, wire, tx, rx = lns_session_checks(lab, lac, proc, cap, tag, auth)
        note = ("; the guest's strongSwan refused %s (dropped from the offer)" % ", ".join(dropped)) if dropped else ""
        return result(ike_s + up["elapsed"], tx, "%s profile (%d IKE / %d ESP offered%s) -> Sluice LNS%s: "
                      "negotiated %s + %s, IKE %.2f s + L2TP/PPP %.2f s, tx %.1f / rx %.1f Mbit/s%s%s" % (
                          profile, len(ike), len(esp), ", strict", " legacy '1'" if legacy else "",
                          got_ike, got_esp, ike_s, up["elapsed"], tx, rx,
                          ", tshark: " + wire + ", no plaintext L2TP" if wire else "", note))
    except lab_mod.LabError as e:
        raise _sluice_failure(lab, proc, str(e), lac) from None
    finally:
        if cap is not None:
            cap.stop()
        save_guest_logs(bed, tag, lac, stack.log, "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lac)
        stack.stop(lac)
        lab.stop(proc, 5)


def _short(line):
    """The log line's start and its what-to-change hint, without the long list of offers in between."""
    i = line.find("the client offered only")
    start = line.find("no acceptable")
    head = line[start:start + 40] if start >= 0 else line[:40]
    return "%s ... %s" % (head, line[i:]) if i > 0 else line[-200:]


LEGACY_LINE = re.compile(r".*\bMODP1024\b.*\blegacy\b.*")
FAIL_WAIT = 20.0


def cell_client_profile_refused(bed, profile="android"):
    """A MODP1024-only client against a server without legacy: IKE must fail, and Sluice must say why."""
    lab, lac = bed.lab, _guest_for(bed, "strongswan")
    stack = IpsecStack("strongswan")
    tag = "client-profile-%s-nolegacy" % profile
    ike, esp = PROFILES[profile]
    cap = None
    proc = lab.sluice("server", peers.sluice_server(lab_mod.HOST_IP, "mschapv2", ipsec=True), "lns")
    try:
        st = _wait_status(lab, proc, "lns", lambda s: s.get("role", "server") == "server", 15)
        if st is None:
            raise _sluice_failure(lab, proc, "Sluice LNS (IPsec) did not answer on its control socket", lac)
        ike, esp, dropped = _start_with_profile(lac, ike, esp, lab_mod.HOST_IP, CHARON_FAST_FAIL)
        cap = capture.Capture(lab, tag, CAPTURE_FILTER, SNAPLEN).start()
        r = lac.labctl("timed", FAIL_WAIT, "ipsec", "up", "l2tp", timeout=FAIL_WAIT + 15)
        check("established successfully" not in r.get("output", ""),
              "strongSwan offering only MODP1024 got an SA from a server without legacy:\n%s" % r.get("output"))
        check(not stack.has_sa(lac, lab_mod.HOST_IP), "the guest holds an SA with Sluice:\n%s" % lac.sh("ip xfrm state"))
        # The plain-words line may land a moment after charon gives up.
        deadline = time.monotonic() + 5
        line = None
        while line is None and time.monotonic() < deadline:
            with open(proc.log_path) as f:
                m = LEGACY_LINE.search(f.read())
            line = m.group(0).strip() if m else None
            if line is None:
                time.sleep(0.2)
        if line is None:
            raise _sluice_failure(lab, proc, "Sluice refused the MODP1024-only client without a log line naming "
                                  "MODP1024 and `legacy`", lac, "\n" + guest_logs(lac, stack.log))
        check(proc.poll() is None, "Sluice exited after refusing the client")
        check(not _server_sessions(lab.sluice_status("lns")), "Sluice lists a session: %r" % (lab.sluice_status("lns"),))
        wire = _check_wire(cap.stop(), lac, "refused")
        refusal = re.search(r"(NO_PROPOSAL_CHOSEN|no proposal chosen|received \S+ error notify)", r.get("output", "")
                            + lac.read(stack.log))
        return result(None, None, "%s profile (MODP1024 only) -> Sluice without legacy: refused as expected%s; "
                      "Sluice log: %s%s" % (profile, " (strongSwan saw %s)" % refusal.group(1) if refusal else "",
                                            _short(line), "; tshark: " + wire + ", no L2TP" if wire else ""))
    except lab_mod.LabError as e:
        raise _sluice_failure(lab, proc, str(e), lac) from None
    finally:
        if cap is not None:
            cap.stop()
        save_guest_logs(bed, tag, lac, stack.log)
        stack.stop(lac)
        lac.ssh("rm -f %s" % " ".join(CHARON_FAST_FAIL), check=False)  # later cells keep charon's defaults
        lab.stop(proc, 5)
