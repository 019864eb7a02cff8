"""MS-CHAPv2 (RFC 2759): the response and authenticator-response computations and both sides' messages.

Theory of operation: the server's CHAP Challenge carries a 16-octet Authenticator-Challenge. The peer answers
with Peer-Challenge (16), 8 reserved zero octets, the 24-octet NT-Response and a zero flags octet (RFC 2759 4).
The server checks the NT-Response against the password it holds and answers Success with
"S=<40 hex> M=<text>" (the AuthenticatorResponse, RFC 2759 8.7), which the client MUST verify: it proves the
server knows the password too. Failure carries "E=691 R=0 C=<challenge> V=3 M=<text>" (RFC 2759 6).
Every primitive comes from sluice.hal.crypto.digest (MD4, SHA-1, DES).
"""

from sluice.hal.crypto import digest

# RFC 2759 8.7
_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"

RESPONSE_LEN = 49


def _utf16le(s):
    out = bytearray()
    for ch in s:
        c = ord(ch)
        if c > 0xFFFF:
            # Outside the BMP: a surrogate pair, as Windows encodes it.
            c -= 0x10000
            hi = 0xD800 | (c >> 10)
            lo = 0xDC00 | (c & 0x3FF)
            out += bytes((hi & 0xFF, hi >> 8, lo & 0xFF, lo >> 8))
        else:
            out += bytes((c & 0xFF, c >> 8))
    return bytes(out)


def nt_password_hash(password):
    """RFC 2759 8.3 NtPasswordHash: MD4 of the Unicode (UTF-16LE) password."""
    return digest.md4(_utf16le(password))


def hash_nt_password_hash(password_hash):
    """RFC 2759 8.4 HashNtPasswordHash."""
    return digest.md4(password_hash)


def user_name_for_hash(username):
    """RFC 2759 8.2: the user name without any "DOMAIN\\" prefix, as bytes."""
    i = username.rfind("\\")
    if i >= 0:
        username = username[i + 1:]
    return username.encode()


def challenge_hash(peer_challenge, authenticator_challenge, username):
    """RFC 2759 8.2 ChallengeHash: first 8 octets of SHA1(PeerChallenge | AuthChallenge | UserName)."""
    return digest.sha1(peer_challenge + authenticator_challenge + user_name_for_hash(username))[:8]


def _des_key(key7):
    # RFC 2759 8.6 DesEncrypt: 56 key bits spread over 8 octets, low (parity) bit of each left zero.
    k = int.from_bytes(key7, "big")
    out = bytearray(8)
    for i in range(8):
        out[i] = ((k >> (49 - 7 * i)) & 0x7F) << 1
    return bytes(out)


def challenge_response(challenge8, password_hash):
    """RFC 2759 8.5 ChallengeResponse: three DES encryptions keyed by the 21-octet padded hash."""
    z = password_hash + b"\x00" * 5
    return (digest.des_encrypt_block(_des_key(z[0:7]), challenge8) +
            digest.des_encrypt_block(_des_key(z[7:14]), challenge8) +
            digest.des_encrypt_block(_des_key(z[14:21]), challenge8))


def generate_nt_response(authenticator_challenge, peer_challenge, username, password):
    """RFC 2759 8.1 GenerateNTResponse."""
    ch = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(ch, nt_password_hash(password))


def generate_authenticator_response(password, nt_response, peer_challenge, authenticator_challenge, username):
    """RFC 2759 8.7 GenerateAuthenticatorResponse: the "S=..." string (42 characters)."""
    phh = hash_nt_password_hash(nt_password_hash(password))
    d = digest.sha1(phh + nt_response + _MAGIC1)
    ch = challenge_hash(peer_challenge, authenticator_challenge, username)
    d = digest.sha1(d + ch + _MAGIC2)
    return "S=" + _hex_upper(d)


def _hex_upper(b):
    return "".join("%02X" % x for x in b)


def build_response_value(peer_challenge, nt_response):
    """The 49-octet Value of an MS-CHAPv2 Response packet (RFC 2759 4)."""
    return peer_challenge + b"\x00" * 8 + nt_response + b"\x00"


def parse_response_value(value):
    """(peer_challenge, nt_response) of a Response Value; ValueError subclass on a bad length."""
    from sluice.ppp.framing import PppError
    if len(value) != RESPONSE_LEN:
        raise PppError("MS-CHAPv2 Response Value is %d octets, not 49" % len(value))
    return value[0:16], value[24:48]


def success_message(auth_response, text="Access granted"):
    """Server Success Message (RFC 2759 5)."""
    return (auth_response + " M=" + text).encode()


def failure_message(authenticator_challenge, error=691, retry=0, text="Authentication failure"):
    """Server Failure Message (RFC 2759 6), with the challenge the peer would use to retry."""
    return ("E=%d R=%d C=%s V=3 M=%s" % (error, retry, _hex_upper(authenticator_challenge), text)).encode()


def check_success(message, expected):
    """True if a Success Message carries exactly the AuthenticatorResponse we expect (RFC 2759 5)."""
    try:
        text = bytes(message).decode()
    except Exception:
        return False
    if len(text) < 42 or text[:2] != "S=":
        return False
    got = text[2:42].upper()
    if len(text) > 42 and text[42] != " ":
        return False
    want = expected[2:]
    r = 0
    for i in range(40):
        r |= ord(got[i]) ^ ord(want[i])
    return r == 0


def parse_failure(message):
    """{'E': '691', 'R': '0', 'C': ..., 'V': '3', 'M': text} of a Failure Message (lenient: peers vary)."""
    try:
        text = bytes(message).decode()
    except Exception:
        text = ""
    out = {}
    m = text.find("M=")
    if m >= 0:
        out["M"] = text[m + 2:]
        text = text[:m]
    for part in text.split():
        if len(part) > 2 and part[1] == "=":
            out[part[0]] = part[2:]
    return out
