"""export() writes uci's export form, and parse(export(x)) == x for any section list uci can hold."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.config.uci import Section, export, parse, quote

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=12)
# uci types: printable ASCII without spaces (uci_validate_type).
# Only the ones uci's bare export reads back (no # ; ' " \\).
TYPE = st.text(alphabet=[chr(c) for c in range(33, 127) if chr(c) not in "#;'\"\\"], min_size=1, max_size=12)
# Any text without NUL (uci values are C strings): quotes, backslashes, newlines, '#', ';', unicode.
VALUE = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40)


@st.composite
def sections(draw):
    out = []
    used_names = set()
    for _ in range(draw(st.integers(0, 5))):
        stype = draw(TYPE)
        name = draw(st.one_of(st.none(), NAME))
        if name in used_names:
            name = None  # a repeated name re-opens the section: not a distinct section
        if name is not None:
            used_names.add(name)
        opts = {}
        for oname in draw(st.lists(NAME, max_size=6, unique=True)):
            if draw(st.booleans()):
                opts[oname] = draw(VALUE.filter(lambda v: v != ""))  # uci ignores option x ''
            else:
                opts[oname] = draw(st.lists(VALUE, min_size=1, max_size=4))
        out.append(Section(stype, name, opts))
    return out


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(sections())
def test_export_round_trip(secs):
    text = export(secs)
    assert parse(text, "rt.conf") == secs
    # Exporting again is stable.
    assert export(parse(text)) == text


def test_export_form_matches_uci():
    # uci_export_package: "\nconfig TYPE 'NAME'\n", "\toption NAME 'VALUE'\n", "\tlist NAME 'VALUE'\n", final "\n";
    # uci_escape writes ' as '\''.
    secs = [Section("server", "main", {"psk": "it's", "dns": ["1.1.1.1", "8.8.8.8"]}), Section("user", None, {})]
    assert export(secs, package="sluice") == (
        "package sluice\n\nconfig server 'main'\n\toption psk 'it'\\''s'\n\tlist dns '1.1.1.1'\n"
        "\tlist dns '8.8.8.8'\n\nconfig user\n\n")


def test_quote():
    assert quote("") == "''"
    assert quote("a'b") == "'a'\\''b'"
    assert quote("''") == "''\\'''\\'''"
    assert parse("config t\noption v " + quote("a'b\\\"c") + "\n")[0].options["v"] == "a'b\\\"c"


def test_types_and_names_are_written_bare_as_uci_does():
    # Regression (issue 11): uci_export_package writes the section type (and option names) with uci_escape only:
    # bare, ' as '\''. Types with # ; " \ or ' do not read back, in uci as here (see test_uci_real.py).
    secs = [Section("a'b#c;d", None, {}), Section("t-1.x", "n", {"o": "v"})]
    assert export(secs) == "\nconfig a'\\''b#c;d\n\nconfig t-1.x 'n'\n\toption o 'v'\n\n"
