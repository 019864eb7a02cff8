"""Client set-up instructions for one user of a Sluice server: what a router owner hands to each person.

`setup(config, server, username, host)` returns one dict per operating system with the exact values and steps
the public set-up guides walk people through by hand (hwdsl2/setup-ipsec-vpn's client docs are the usual ones):

- `windows`: a PowerShell `Add-VpnConnection` command (L2TP, the pre-shared key, MS-CHAPv2, encryption
  required), using only parameters Microsoft documents for that cmdlet (WINDOWS_PARAMETERS), and the registry
  value a server behind NAT needs (`AssumeUDPEncapsulationContextOnSendRule` = 2, Windows error 809 otherwise).
- `apple`: a configuration profile (`.mobileconfig`, an XML property list) with one VPN payload of type L2TP:
  the keys Apple documents for L2TP (PayloadType `com.apple.vpn.managed`, VPNType `L2TP`, IPSec
  AuthenticationMethod `SharedSecret` with SharedSecret as data and LocalIdentifierType `KeyID`, PPP AuthName /
  AuthPassword / CommRemoteAddress, IPv4 OverridePrimary so all traffic goes through the tunnel). macOS and iOS.
- `android`: the fields of Settings > VPN > Add for "L2TP/IPSec PSK" (Android up to 11; 12 and later create only
  IKEv2 profiles).
- `linux`: an `nmcli` command for NetworkManager-l2tp (vpn.data keys gateway, user, password-flags,
  ipsec-enabled, ipsec-psk; the password in vpn.secrets).

Every value comes from the validated configuration; nothing here talks to the network. The output holds the
user's password and the pre-shared key: it is for the router owner, behind the rpcd write ACL.
"""

import plistlib
import uuid

OSES = ("windows", "apple", "android", "linux")

# Parameters of Add-VpnConnection (Microsoft's VpnClient module documentation, "Add-VpnConnection", parameter
# set with -TunnelType): the command we write may use these and nothing else.
WINDOWS_PARAMETERS = frozenset((
    "Name", "ServerAddress", "TunnelType", "EncryptionLevel", "AuthenticationMethod", "SplitTunneling",
    "AllUserConnection", "L2tpPsk", "RememberCredential", "UseWinlogonCredential", "EapConfigXmlStream", "Force",
    "PassThru", "ServerList", "DnsSuffix", "IdleDisconnectSeconds", "MachineCertificateIssuerFilter",
    "MachineCertificateEKUFilter", "CimSession", "ThrottleLimit", "AsJob", "WhatIf", "Confirm",
))
REGISTRY_NAT = ("REG ADD HKLM\\SYSTEM\\CurrentControlSet\\Services\\PolicyAgent "
                "/v AssumeUDPEncapsulationContextOnSendRule /t REG_DWORD /d 0x2 /f")


class SetupError(ValueError):
    """The configuration cannot make instructions (no such user, no key, no address for clients)."""


def _ps(value):
    """A PowerShell single-quoted string literal: ' doubled, nothing else is special inside."""
    return "'" + value.replace("'", "''") + "'"


def _sh(value):
    """A POSIX shell single-quoted word."""
    return "'" + value.replace("'", "'\\''") + "'"


def _nm_value(value):
    """nmcli's vpn.data / vpn.secrets list: `key = value` pairs separated by commas; a comma or a backslash in a
    value is escaped with a backslash (nm_utils_str_utf8_safe rules do not apply to these keys)."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def windows(name, host, psk, user, password):
    params = [("Name", _ps(name)), ("ServerAddress", _ps(host)), ("TunnelType", "L2tp"),
              ("L2tpPsk", _ps(psk)), ("AuthenticationMethod", "MSChapv2"), ("EncryptionLevel", "Required"),
              ("RememberCredential", None), ("Force", None), ("PassThru", None)]
    assert all(p in WINDOWS_PARAMETERS for p, _ in params)
    cmd = "Add-VpnConnection " + " ".join("-%s %s" % (p, v) if v is not None else "-%s" % p for p, v in params)
    return {
        "powershell": cmd,
        "registry_nat": REGISTRY_NAT,
        "steps": [
            "Open PowerShell (no administrator rights needed) and run the Add-VpnConnection command below.",
            "Connect from Settings > Network & Internet > VPN, with user name %s and the password below." % user,
            "If the router is behind another router or your PC is behind NAT and Windows says error 809: run the "
            "REG ADD command below in an administrator Command Prompt, then restart Windows (large Windows "
            "updates reset it).",
        ],
    }


def apple_profile(name, host, psk, user, password, ident):
    """A .mobileconfig (XML property list) holding one L2TP VPN payload."""
    ns = uuid.uuid5(uuid.NAMESPACE_DNS, "%s.%s" % (ident, host))
    vpn = {
        "PayloadType": "com.apple.vpn.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": "net.sluice.%s.vpn" % ident,
        "PayloadUUID": str(uuid.uuid5(ns, "vpn")).upper(),
        "PayloadDisplayName": name,
        "UserDefinedName": name,
        "VPNType": "L2TP",
        "IPSec": {
            "AuthenticationMethod": "SharedSecret",
            "SharedSecret": psk.encode("utf-8"),
            "LocalIdentifierType": "KeyID",
        },
        "PPP": {
            "AuthName": user,
            "AuthPassword": password,
            "CommRemoteAddress": host,
            "TokenCard": False,
        },
        "IPv4": {"OverridePrimary": 1},
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": "net.sluice.%s" % ident,
        "PayloadUUID": str(uuid.uuid5(ns, "profile")).upper(),
        "PayloadDisplayName": name,
        "PayloadDescription": "L2TP/IPsec VPN to %s for %s" % (host, user),
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [vpn],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML).decode("utf-8")


def apple(name, host, psk, user, password, ident):
    return {
        "mobileconfig": apple_profile(name, host, psk, user, password, ident),
        "filename": "%s.mobileconfig" % ident,
        "steps": [
            "Download the profile and open it: on a Mac in System Settings > Privacy & Security > Profiles, on an "
            "iPhone or iPad in Settings > General > VPN & Device Management (send it by AirDrop or mail).",
            "Install it; the VPN '%s' appears under Settings > VPN, sending all traffic through the tunnel." % name,
            "By hand instead: Add VPN configuration, type L2TP over IPSec, server %s, account %s, password, "
            "shared secret as below, Send all traffic on." % (host, user),
        ],
    }


def android(name, host, psk, user, password):
    return {
        "fields": [
            ["Name", name], ["Type", "L2TP/IPSec PSK"], ["Server address", host], ["L2TP secret", "(not used)"],
            ["IPSec identifier", "(not used)"], ["IPSec pre-shared key", psk], ["Username", user],
            ["Password", password],
        ],
        "steps": [
            "Settings > Network & Internet > VPN > + (Add VPN) and fill in the fields below; leave the rest empty.",
            "Android 12 and later can no longer create L2TP/IPsec profiles (only IKEv2); a phone upgraded with "
            "a profile made earlier keeps it.",
            "Older Android versions offer only 3DES/MD5/MODP1024: if the phone cannot connect, turn on "
            "'Legacy ciphers' on the router.",
        ],
    }


def linux(name, host, psk, user, password):
    data = ", ".join("%s = %s" % (k, _nm_value(v)) for k, v in (
        ("gateway", host), ("user", user), ("password-flags", "0"), ("ipsec-enabled", "yes"), ("ipsec-psk", psk)))
    cmd = "nmcli connection add type vpn con-name %s vpn-type l2tp vpn.data %s vpn.secrets %s" % (
        _sh(name), _sh(data), _sh("password = " + _nm_value(password)))
    return {
        "nmcli": cmd,
        "connect": "nmcli connection up %s" % _sh(name),
        "steps": [
            "Install NetworkManager-l2tp (Debian/Ubuntu: network-manager-l2tp; Fedora: NetworkManager-l2tp).",
            "Run the nmcli command below, then connect from the network menu or with nmcli connection up.",
        ],
    }


def setup(config, server, username, host=None, oses=OSES):
    """Instructions for `username` on `server` (a ServerConfig of `config`); `host` overrides public_host."""
    users = [u for u in config.users if u.username == username]
    if not users:
        raise SetupError("no user %r in the configuration (have: %s)" % (
            username[:64], ", ".join(sorted(u.username for u in config.users)) or "none"))
    user = users[0]
    if not getattr(user, "enabled", True):
        raise SetupError("user %r is disabled: enable it first" % username)
    if not server.ipsec or not server.psk:
        raise SetupError("server %r has no pre-shared key (option psk): built-in clients need L2TP/IPsec with a "
                         "pre-shared key" % server.name)
    host = host or server.public_host
    if not host:
        raise SetupError("server %r: set option public_host to the address or DNS name clients dial (the "
                         "router's WAN address or a dynamic-DNS name), or pass --host" % server.name)
    name = "VPN %s" % host
    ident = "%s-%s" % (server.name or "server", "".join(c if c.isalnum() or c in "-_" else "_" for c in username))
    psk, password = server.psk, user.password
    out = {"user": username, "server": host, "name": name, "password": password, "psk": psk}
    for os_name in oses:
        if os_name == "windows":
            out["windows"] = windows(name, host, psk, username, password)
        elif os_name == "apple":
            out["apple"] = apple(name, host, psk, username, password, ident)
        elif os_name == "android":
            out["android"] = android(name, host, psk, username, password)
        elif os_name == "linux":
            out["linux"] = linux(name, host, psk, username, password)
        else:
            raise SetupError("unknown system %r: choose one of %s" % (os_name, ", ".join(OSES)))
    return out


def render_text(d):
    """Plain text for the terminal."""
    lines = ["L2TP/IPsec VPN for %s: server %s" % (d["user"], d["server"]),
             "  user name %s, password %s, pre-shared key (shared secret) %s" % (d["user"], d["password"], d["psk"]),
             ""]
    if "windows" in d:
        w = d["windows"]
        lines += ["== Windows 10/11"] + ["- " + s for s in w["steps"]] + ["", w["powershell"], "",
                                                                           "Behind NAT (error 809):", w["registry_nat"], ""]
    if "apple" in d:
        a = d["apple"]
        lines += ["== macOS, iPhone, iPad"] + ["- " + s for s in a["steps"]] + [
            "", "Profile (save as %s):" % a["filename"], a["mobileconfig"]]
    if "android" in d:
        lines += ["== Android (up to 11)"] + ["- " + s for s in d["android"]["steps"]] + [""]
        lines += ["  %-22s %s" % (k, v) for k, v in d["android"]["fields"]] + [""]
    if "linux" in d:
        lx = d["linux"]
        lines += ["== Linux (NetworkManager)"] + ["- " + s for s in lx["steps"]] + ["", lx["nmcli"], lx["connect"], ""]
    return "\n".join(lines)
