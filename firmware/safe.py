"""Peer-supplied text made safe for logs and `sluice status`: the one place that does it.

A PPP user name, an L2TP Host Name or Vendor Name, the message in a peer's StopCCN/CDN or PAP/MS-CHAP
failure, an IKE vendor string: anything a peer chose ends up in a log line or in status. A newline in it
would write whole forged lines ("session up: admin at ...") into the log, into `status`'s recent events and,
under procd, into syslog as records of their own; terminal escapes and bidirectional overrides can make a
line read differently from what it holds. `safe_text` returns a single printable line of bounded length:

- C0 controls, DEL and C1 controls are escaped (`\\n`, `\\r`, `\\t`, else `\\xNN`), as are the Unicode line and
  paragraph separators and the bidirectional embedding/override/isolate controls (`\\uNNNN`);
- everything else, non-ASCII letters included, is kept as it is (a user name "José" stays readable);
- the result is at most `limit` characters: longer text is cut and ends in "..." (the cut never splits an
  escape).

It is pure and runs under MicroPython (the L2TP and PPP machines call it where such text enters an event or
their status); bytes are decoded as UTF-8 with anything undecodable shown as `\\xNN`.
"""

DEFAULT_LIMIT = 64
NAME_LIMIT = 255  # a user name that authenticated (PAP Peer-ID and CHAP Name fit 255 octets): shown whole

# U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR, and the bidi controls (embeddings, overrides, isolates,
# marks are harmless and kept).
_UNICODE_ESCAPED = (0x2028, 0x2029, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
                    0xFEFF)
_SHORT = {10: "\\n", 13: "\\r", 9: "\\t"}


def _escape(c):
    o = ord(c)
    if o < 0x20 or 0x7F <= o < 0xA0:
        return _SHORT.get(o) or "\\x%02x" % o
    if o in _UNICODE_ESCAPED:
        return "\\u%04x" % o
    return c


def _from_bytes(b):
    try:
        return bytes(b).decode()
    except Exception:
        return "".join(chr(c) if c < 0x80 else "\\x%02x" % c for c in bytes(b))


def safe_text(value, limit=DEFAULT_LIMIT):
    """`value` (str, bytes or anything with a str()) as one printable line of at most `limit` characters."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = _from_bytes(value)
    elif not isinstance(value, str):
        value = str(value)
    if len(value) > 4 * limit + 4:
        value = value[:4 * limit + 4]  # more than can be shown either way: bound the work
    pieces = []
    total = 0
    for c in value:
        e = _escape(c)
        pieces.append(e)
        total += len(e)
    if total <= limit:
        return "".join(pieces)
    room = limit - 3 if limit > 3 else 0
    out = []
    n = 0
    for e in pieces:
        if n + len(e) > room:
            break
        out.append(e)
        n += len(e)
    return "".join(out) + "..."


def is_safe(value, limit=DEFAULT_LIMIT):
    """True when safe_text would return `value` unchanged (a str already fit for a log line)."""
    return isinstance(value, str) and safe_text(value, limit) == value
