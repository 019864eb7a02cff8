"""Secrets (password, psk, tunnel_secret) never appear in errors, warnings or reprs, whatever their value and
whatever else is wrong with the file."""

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.config import ConfigError, loads
from sluice.config.uci import parse, quote

# A marker prefix makes an accidental match with ordinary message text impossible; the rest is arbitrary,
# including quotes, newlines and control characters (which some checks reject, with a message).
SECRET = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                 max_size=30).map(lambda s: "\u2603sekr" + s)

TEMPLATE = """
config server 'main'
    option ipsec '%(ipsec)s'
    option psk %(psk)s
    option tunnel_secret %(tsec)s
    option allow_weak_psk '%(weak)s'
    option port '%(port)s'
config user
    option username 'alice'
    option password %(pw)s
config user
    option username '%(user2)s'
    option password %(pw2)s
%(extra)sconfig client 'c'
    option server '192.0.2.1'
    option username 'u'
    option password %(pw)s
    option psk %(psk)s
    option ipsec '%(ipsec)s'
%(bogus)s"""


LOADED = []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(SECRET, SECRET, SECRET, SECRET, st.sampled_from(["0", "1"]), st.sampled_from(["0", "1"]),
       st.sampled_from(["1701", "x"]), st.booleans())
def test_secrets_never_in_messages(psk, pw, pw2, tsec, ipsec, weak, port, broken):
    values = {"psk": quote(psk), "pw": quote(pw), "pw2": quote(pw2), "tsec": quote(tsec), "ipsec": ipsec,
              "weak": weak, "port": port, "user2": "alice" if broken else "bob",
              "extra": "    list password 'extra'\n" if broken else ""}
    with_bogus = dict(values, bogus="    option bogus %s\n" % quote(pw))
    text = TEMPLATE % with_bogus
    secrets = (psk, pw, pw2, tsec)
    try:
        config = loads(text, "sluice.conf")
        LOADED.append(1)
        out = [repr(config), str(config.warnings)] + [repr(x) for x in config.servers + config.clients + config.users]
        out += [str(x.as_dict()) for x in config.servers + config.clients + config.users]
    except ConfigError as e:
        out = [str(e), repr(e)] + e.errors
    # Section reprs hide the secret options (not `bogus`: a value under an unknown name is not known secret).
    out.append(repr(parse(TEMPLATE % dict(values, bogus=""))))
    blob = "\n".join(out)
    for s in secrets:
        assert s not in blob
        assert repr(s)[1:-1] not in blob  # nor in escaped form
    assert "<hidden>" in blob


@settings(max_examples=100, deadline=None, derandomize=True)
@given(SECRET)
def test_secrets_never_in_syntax_errors(pw):
    # Unquoted values with spaces are a syntax error; the message must not echo the words of a password.
    words = pw.replace("\n", " ").replace("'", " ").replace('"', " ").replace("\\", " ").replace("#", " ")
    words = words.replace(";", " ")
    text = "config user\n    option password %s extra words\n" % words
    try:
        parse(text, "sluice.conf")
    except ConfigError as e:
        assert words.split()[0] not in str(e)
        assert "extra" not in str(e)


def test_the_property_saw_valid_configs_too():
    # The property above must also have exercised configurations that load (reprs, warnings), not only errors.
    test_secrets_never_in_messages()
    assert LOADED
