"""sluice.engine.jsonc against the json package: the same text out, the same values in, ValueError for the rest."""

import json
import random

import pytest

from sluice.engine import jsonc

VALUES = [
    {"ok": True, "sessions": [{"user": "j\u00f6rg", "rx": 1.5, "tx": 1 << 70, "ip": None, "up": False}]},
    [], {}, "", 0, -1, 1.0, -0.0, 1e-7, 3e100, "\u2028\x00\x1f\"\\/<>\U0001f600", {"a": {"b": [{"c": [[]]}]}},
]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_is_json_dumps_and_loads_reads_it_back(value):
    assert jsonc.dumps(value) == json.dumps(value)
    assert jsonc.loads(json.dumps(value)) == value
    assert jsonc.loads(" \n" + json.dumps(value, indent=2) + "\r\n\t") == value


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "{'a': 1}", '{"a" 1}', "1 2", '"\x01"', "tru", "[" * 100000,
                                  "NaN", "[Infinity]", "-Infinity", '{"a": 1}}', "\ufeff{}", "0x10", "01"])
def test_what_is_not_json_raises_value_error(text):
    with pytest.raises(ValueError):
        jsonc.loads(text)


def test_unserialisable_values_raise_type_error_as_json_does():
    with pytest.raises(TypeError):
        jsonc.dumps({"a": {1, 2}})
    with pytest.raises(TypeError):
        json.dumps({"a": {1, 2}})


def test_random_mutations_of_a_request_agree_with_json():
    # Whatever json accepts (but NaN/Infinity, which a request has no use for) jsonc reads the same; what json
    # refuses jsonc refuses.
    rng = random.Random(7)
    base = json.dumps({"cmd": "status", "name": "office", "args": [1, 2.5, True, None, "x\u00e9"]})
    for _ in range(3000):
        b = list(base)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            op = rng.randrange(3)
            if op == 0:
                del b[i]
            elif op == 1:
                b.insert(i, rng.choice('{}[]",:0123456789.eE+-tfnul \\x\u00e9'))
            else:
                b[i] = rng.choice('{}[]",:0123456789 ')
        text = "".join(b)
        try:
            want = json.loads(text)
        except ValueError:
            want = ValueError
        try:
            got = jsonc.loads(text)
        except ValueError:
            got = ValueError
        if want is not ValueError and "NaN" not in text and "Infinity" not in text:
            assert got == want, text
        elif want is ValueError:
            assert got is ValueError, text
