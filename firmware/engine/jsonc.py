"""JSON for the control socket through CPython's C accelerator `_json` alone, without the json package.

json's encoder and decoder modules import `re`, and `re` imports `enum`: about 1 MB resident for the rest of
the daemon's life once the first `sluice status` arrives (LuCI's status page asks every few seconds). The
package hands the work to `_json` anyway; this calls it directly. Output is json.dumps' (ensure_ascii,
separators ', ' and ': '). Input is a JSON text; anything else raises ValueError (a malformed document makes
`_json` import json.decoder for its error type, so only a bad request brings `re` in). Without `_json`
(another interpreter), the json package does it.
"""

try:
    import _json
except ImportError:  # not CPython
    _json = None


def _refuse(obj):
    raise TypeError("%s is not JSON serializable" % type(obj).__name__)


def _constant(name):
    raise ValueError("%s is not JSON" % name)  # NaN, Infinity: json accepts them, a request has no use for them


class _Context:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo = None


_encode = _scan = None
if _json is not None:
    _encode = _json.make_encoder(None, _refuse, _json.encode_basestring_ascii, None, ": ", ", ", False, False,
                                 True)
    _scan = _json.make_scanner(_Context())


def dumps(obj):
    if _encode is None:
        import json

        return json.dumps(obj)
    return "".join(_encode(obj, 0))


def loads(text):
    if _scan is None:
        import json

        return json.loads(text)
    text = text.strip(" \t\n\r")
    try:
        obj, end = _scan(text, 0)
    except StopIteration as e:
        raise ValueError("not JSON (at character %d)" % e.value) from None
    except RecursionError:
        raise ValueError("not JSON (nested too deep)") from None
    if end != len(text):
        raise ValueError("not JSON (extra data at character %d)" % end)
    return obj
