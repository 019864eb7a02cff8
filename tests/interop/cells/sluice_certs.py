"""Sluice client with X.509 certificates -> strongSwan (authby=rsasig) + xl2tpd + pppd server in a guest.

The PKI is made on the host with `cryptography` for each run (RSA 2048, validity from an hour ago to a week
ahead): a CA (basicConstraints CA:TRUE, keyCertSign), a server certificate for g1 with subjectAltName
DNS:vpn.example.net and IP:192.0.2.2 and the serverAuth extended key usage (what Sluice's client checks,
like Windows' "verify the name and usage attributes", firmware/ike/certs.py), and a client certificate with
clientAuth. strongSwan gets its certificate, key and the CA under /etc/ipsec.d and `: RSA server.key` in
ipsec.secrets; it authenticates the client by the chain to that CA (rightca), Sluice the server by the
chain, the name `server_name` and the EKU. IKEv1 Main Mode with RSA signatures (RFC 2409 section 5.1).

- sluice-lac-ipsec-certs-strongswan: the tunnel comes up (checks as sluice-lac-ipsec-*: addresses, ping, TCP
  both ways, ESP counters, tshark: ISAKMP both ways and no plaintext L2TP, SA gone after Sluice stops), and
  strongSwan's log shows it authenticated the client's certificate subject with RSA signatures.
"""

import datetime
import ipaddress
import os
import re
import time

from .. import lab as lab_mod
from .. import peers
from . import capture
from .base import (check, install, start_xl2tpd, stop_xl2tpd, start_strongswan, stop_strongswan,
                   save_guest_logs, guest_logs, result, STRONGSWAN_LOGGING)
from .sluice import _wait_status, _client_session, _sluice_failure
from .sluice_ipsec import lac_session_checks, CAPTURE_FILTER, SNAPLEN, UP_TIMEOUT

SERVER_NAME = "vpn.example.net"
CA_CN = "Sluice Lab CA"
CLIENT_CN = "alice.lab.example"
IPSEC_D = "/etc/ipsec.d"


def make_pki(server_ip):
    """{name: PEM text} for ca.pem, server.pem, server.key, client.pem, client.key (fresh keys each call)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sluice Lab"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def cert(subject, pub, issuer, ikey, ca=False, san=None, eku=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=not ca,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                          crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        return b.sign(ikey, hashes.SHA256())

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.NoEncryption()).decode()

    def pem_cert(c):
        return c.public_bytes(serialization.Encoding.PEM).decode()

    ca_key, srv_key, cli_key = key(), key(), key()
    ca = cert(name(CA_CN), ca_key.public_key(), name(CA_CN), ca_key, ca=True)
    srv = cert(name(SERVER_NAME), srv_key.public_key(), ca.subject, ca_key,
               san=[x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address(server_ip))],
               eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    cli = cert(name(CLIENT_CN), cli_key.public_key(), ca.subject, ca_key,
               san=[x509.DNSName(CLIENT_CN)], eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    return {"ca.pem": pem_cert(ca), "server.pem": pem_cert(srv), "server.key": pem_key(srv_key),
            "client.pem": pem_cert(cli), "client.key": pem_key(cli_key)}


def strongswan_rsasig_server(pki, sendcert=None):
    """strongSwan IKEv1 responder, transport mode UDP 1701, RSA signatures, clients of the lab CA only.

    sendcert: strongSwan's leftsendcert (None keeps its default, `ifasked`: the certificate goes out only
    when the initiator sent a CERTREQ)."""
    conf = peers.strongswan_l2tp(None)["/etc/ipsec.conf"].replace("    authby=secret\n", "\n".join([
        "    authby=rsasig",
        "    leftcert=server.pem",
    ] + (["    leftsendcert=" + sendcert] if sendcert else []) + [
        '    leftid="O=Sluice Lab, CN=%s"' % SERVER_NAME,
        '    rightca="O=Sluice Lab, CN=%s"' % CA_CN,
        "    rightid=%any",
        ""]))
    return dict(STRONGSWAN_LOGGING, **{
        "/etc/ipsec.conf": conf,
        "/etc/ipsec.secrets": ": RSA server.key\n",
        IPSEC_D + "/cacerts/ca.pem": pki["ca.pem"],
        IPSEC_D + "/certs/server.pem": pki["server.pem"],
        IPSEC_D + "/private/server.key": pki["server.key"],
    })


def sluice_cert_client(server, paths):
    """A Sluice LAC config with certificates (README.md: cert, key, ca, server_name) instead of a PSK."""
    return "\n".join([
        "config client 'lab'",
        "    option server '%s'" % server,
        "    option username '%s'" % peers.USER,
        "    option password '%s'" % peers.PASSWORD,
        "    option ipsec '1'",
        "    option cert '%s'" % paths["client.pem"],
        "    option key '%s'" % paths["client.key"],
        "    option ca '%s'" % paths["ca.pem"],
        "    option server_name '%s'" % SERVER_NAME,
        "    list routes '10.77.0.0/24'",
        "    option ifname 'slc0'",
        "    option redial '0'",
        "",
    ])


def _certreq_note(charon_log):
    """What the log shows when Main Mode message 3 came without CERTREQ and message 6 without CERT."""
    m3 = re.findall(r"parsed ID_PROT request 0 \[ KE No[^\]]*\]", charon_log)
    m6 = re.findall(r"generating ID_PROT response 0 \[ ID[^\]]*\]", charon_log)
    if m3 and "CERTREQ" not in m3[-1] and m6 and "CERT" not in m6[-1]:
        return ("; Sluice's Main Mode message 3 had no CERTREQ (strongSwan: `%s`), so strongSwan (leftsendcert "
                "ifasked, its default) sent message 6 without CERT (`%s`)" % (m3[-1], m6[-1]))
    return ""


def cell_sluice_lac_certs(bed, auth="mschapv2", sendcert=None):
    lab, lns = bed.lab, bed.g1
    tag = "sluice-lac-ipsec-certs-strongswan" + ("-sendcert-" + sendcert if sendcert else "")
    pki = make_pki(lns.ip)
    paths = {n: lab.write("pki-" + n, text) for n, text in pki.items()}  # 0600 in the lab's log directory
    install(lns, dict(strongswan_rsasig_server(pki, sendcert), **peers.xl2tpd_lns(auth)))
    proc = cap = None
    try:
        start_strongswan(lns)
        loaded = lns.ssh("ipsec listcerts 2>/dev/null", check=False).stdout
        check(SERVER_NAME in loaded, "strongSwan did not load its certificate:\n%s\n%s" % (
            loaded[-1000:], guest_logs(lns, "/var/log/charon.log")))
        start_xl2tpd(lns)
        cap = capture.Capture(lab, tag + "-setup", CAPTURE_FILTER, SNAPLEN).start()
        t0 = time.monotonic()
        proc = lab.sluice("client", sluice_cert_client(lns.ip, paths), "lac")
        st = _wait_status(lab, proc, "lac", _client_session, UP_TIMEOUT)
        if st is None:
            raise _sluice_failure(lab, proc, "Sluice LAC (certificates) did not come up (waited up to %.0f s)%s"
                                  % (UP_TIMEOUT, _certreq_note(lns.read("/var/log/charon.log"))), lns, "\nlast status: %r\n%s" % (
                                      lab.sluice_status("lac"), guest_logs(lns, "/var/log/charon.log")))
        setup = time.monotonic() - t0
        sess = _client_session(st)
        clog = lns.read("/var/log/charon.log")
        # charon (IKEv1 pubkey authenticator): "authentication of 'O=..., CN=...' with RSA... successful".
        m = re.search(r"authentication of '([^']*CN=%s)' with (RSA\S*) successful" % re.escape(CLIENT_CN), clog)
        check(m, "strongSwan's log shows no successful RSA authentication of %s:\n%s" % (CLIENT_CN, clog[-1500:]))
        wire, up, down, _ = lac_session_checks(lab, lns, proc, sess, cap, tag, "strongswan", auth)
        return result(setup, up, "Sluice LAC (X.509, server_name %s, EKU serverAuth) -> strongSwan rsasig "
                      "(leftsendcert %s)+xl2tpd+pppd %s (authenticated '%s' with %s), %s, up %.1f / down %.1f "
                      "Mbit/s%s" % (SERVER_NAME, sendcert or "ifasked", lns.name, m.group(1), m.group(2), auth, up, down,
                          ", tshark: " + wire + ", no plaintext L2TP" if wire else ""))
    except lab_mod.LabError as e:
        if proc is not None:
            raise _sluice_failure(lab, proc, str(e), lns) from None
        raise
    finally:
        if cap is not None:
            cap.stop()
        if proc is not None:
            lab.stop(proc, 5)
        save_guest_logs(bed, tag, lns, "/var/log/charon.log", "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lns)
        stop_strongswan(lns)
        # Later cells use PSKs: take the certificates out of the guest again.
        lns.ssh("rm -f %s/cacerts/ca.pem %s/certs/server.pem %s/private/server.key" % (IPSEC_D, IPSEC_D, IPSEC_D),
                check=False)
        for p in paths.values():
            try:
                os.unlink(p)
            except OSError:
                pass
