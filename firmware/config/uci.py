"""UCI file syntax: parser and exporter.

Theory of operation
-------------------
This reads the format of OpenWrt's `/etc/config/*` files as uci's own parser (openwrt/uci `file.c`) reads
them, so one parser serves routers and plain hosts alike. A file is a sequence of commands:

    package <name>                  (optional; names the file's package)
    config <type> [<name>]          opens a section; without a name the section is anonymous
    option <name> [<value>]         sets an option of the current section
    list <name> <value>             appends a value to a list option

Commands end at the end of the line or at `;` (as uci reads it, below). uci also accepts the one-letter
forms `p`, `c`, `o`, `l`. An argument (token) is made of segments written next to each other and joined:
`'ab'"cd"ef` is `abcdef`.

- Inside single quotes everything is literal, including backslashes and newlines.
- Inside double quotes and in bare text, `\\x` is `x` (uci keeps the escaped character and drops the
  backslash: there are no `\\n`-style escapes). A backslash before a newline joins the next line on.
- A newline inside quotes is part of the value (multi-line values).
- An unquoted `#` starts a comment that runs to the end of the line.
- The command word ends only at a space or a tab (uci splits it off with strtok " \\t"): `option\\fa b` is an
  invalid command. Between arguments every C isspace() character (space, \\t, \\n, \\v, \\f, \\r) separates.
- `;`: parse_str stops at it and writes the token's closing NUL where the token's text ends. When nothing was
  removed from the token (no quotes, no backslashes) that is on the `;` itself, which is then gone, and so is
  the rest of the line: `option a b; option c d` sets only a. After a quoted token (`option a 'b'; option c d`)
  or a `;` standing alone (`option a b ; option c d`) the next command is read. A `;` where an argument is due
  ends that argument (so `config t ; option a b` has one argument too many), and a command cannot start with
  `;` (`;;` is an invalid command).
- Section and option names use only `A-Z a-z 0-9 _` (uci_validate_name); types any printable ASCII except space;
  package names also allow `-`.

The lexer is a port of file.c's functions, working on one line buffer edited in place as the C does, because
uci's reading of `;` comes from those edits; tests/unit/test_uci_real.py compares it with the real `uci export`
over random text when a uci binary is at hand.

Semantics follow libuci: a second `config` with the name of an existing section re-opens it (an error if the type
differs, as in uci's strict mode); `option` replaces a value in place (uci's tests/shunit2
references/import_merge.result shows the position kept); `list` on a plain option turns it into a list that
starts with the old value; `option` after a list replaces the list; an `option` with an empty value is ignored
(uci_set with an empty value and no complete lookup is a no-op).

Where this parser differs from uci, on purpose: a NUL character anywhere is refused (uci reads C strings and
silently cuts values there); every error is fatal, as in uci's default strict mode (`uci -S` and the shell's
config_load skip bad lines instead); `package` only names the file (uci_load's single-package mode ignores it
too, but `uci import` would switch packages). Error messages are ours: they say what was expected where uci says
"invalid command" or "insufficient arguments".

Anonymous sections are addressed as `@type[N]` (N counts every section of that type, named or not, from 0;
negative N counts from the end), as `uci show` and `uci get` do.

Secrets in messages. An error never shows a value, or any part of a line, that may belong to a secret option
(`secret_like(name)`: password, psk, tunnel_secret and anything named like them): "too many arguments" and
a bad option name hide what follows the name, and an invalid command that follows a secret option (the value
on the next line) or that does not look like a misspelt keyword is not echoed. A value cut short by an
unquoted `#` or `;` right after it (`option password abc#def` and `abc;def` are "abc" to uci too) is recorded
in `Section.cut` (option name -> line) so that validation can warn about it.

`export()` writes uci's export form (uci_export_package): section names and values single-quoted, package
names, section types and option names bare, `'` written as `'\\''` everywhere. Like uci's, it does not read
back for types holding `#`, `;`, quotes or backslashes.
"""

from .errors import UciSyntaxError

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_PACKAGE_CHARS = _NAME_CHARS | frozenset("-")
_COMMANDS = {
    "package": "package", "p": "package",
    "config": "config", "c": "config",
    "option": "option", "o": "option",
    "list": "list", "l": "list",
}


class Section:
    """One `config` section: `type`, `name` (None when anonymous), `options` (ordered dict name -> str or list)."""

    __slots__ = ("type", "name", "options", "line", "cut")

    # Options whose values never appear in a repr.
    SECRET_OPTIONS = frozenset(("password", "psk", "tunnel_secret", "secret", "key_password", "radius_secret"))

    def __init__(self, type, name=None, options=None, line=0):
        self.type = type
        self.name = name
        self.options = {} if options is None else options
        self.cut = {}  # option name -> line where an unquoted `#` cut its value short (not compared)
        self.line = line  # line of the `config` command (for messages; not compared)

    def get(self, name, default=None):
        return self.options.get(name, default)

    def __eq__(self, other):
        if not isinstance(other, Section):
            return NotImplemented
        return (self.type == other.type and self.name == other.name
                and list(self.options.items()) == list(other.options.items()))

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = None

    def __repr__(self):
        shown = []
        for k, v in self.options.items():
            shown.append("%s=%s" % (k, "<hidden>" if k in self.SECRET_OPTIONS else repr(v)))
        return "Section(%r, %r, {%s})" % (self.type, self.name, ", ".join(shown))


def valid_name(s):
    """True for a valid section or option name: non-empty, only A-Z a-z 0-9 _."""
    return bool(s) and all(c in _NAME_CHARS for c in s)


def valid_type(s):
    """True for a valid section type: non-empty printable ASCII without spaces (uci_validate_type)."""
    return bool(s) and all(32 < ord(c) < 127 for c in s)


def valid_package(s):
    return bool(s) and all(c in _PACKAGE_CHARS for c in s)


class _Parser:
    """A port of uci's line parser (file.c: uci_getln, uci_parse_line, next_arg, parse_str, parse_single_quote,
    parse_double_quote, parse_backslash, assert_eol) working the way the C does: on one line buffer that it
    edits in place, with NUL ('\\0') ending strings. The in-place edits are what give uci its reading of `;`
    (a NUL written over it by the token before), so they are kept rather than re-derived."""

    def __init__(self, text, filename):
        # fgets: lines end at "\n" only (str.splitlines would also split at \f, \v, \r and more)
        self.lines = [ln + "\n" for ln in text.split("\n")]
        self.lines[-1] = self.lines[-1][:-1]
        if not self.lines[-1]:
            self.lines.pop()
        self.next_line = 0
        self.filename = filename
        self.buf = []
        self.pos = 0
        self.filled = 0
        self.line = 0  # physical lines read so far
        self.cmd_line = 0
        self.sections = []
        self.by_name = {}
        self.current = None
        self.package = None
        self.after_secret = False  # the previous command set a secret-like option
        self.hash_cut = False      # the last token read was ended by a `#` right after unquoted text

    def error(self, message, line=None):
        raise UciSyntaxError(self.filename, self.line if line is None else line, message)

    # -- the line buffer ---------------------------------------------------------------------------------

    def getln(self, offset):
        """uci_getln: the next line (with its newline) replaces the buffer from `offset` on."""
        del self.buf[offset:]
        if self.next_line >= len(self.lines):
            self.buf.append("\0")
            return
        ln = self.lines[self.next_line]
        self.next_line += 1
        self.line += 1
        self.buf.extend(ln)
        self.filled = len(self.buf)
        self.buf.append("\0")

    def ch(self, i):
        return self.buf[i] if i < len(self.buf) else "\0"

    def cur(self):
        return self.ch(self.pos)

    def string_at(self, i):
        out = []
        while True:
            c = self.ch(i)
            if c == "\0":
                return "".join(out)
            out.append(c)
            i += 1

    def skip_whitespace(self):
        while self.cur() != "\0" and self.cur() in _CSPACE:
            self.pos += 1

    # -- tokens ------------------------------------------------------------------------------------------

    def backslash(self):
        """parse_backslash: False for a backslash that ends the line (the next line is joined on)."""
        self.pos += 1
        c = self.cur()
        if c == "\0" or c == "\n" or (c == "\r" and self.ch(self.pos + 1) == "\n" and self.ch(self.pos + 2) == "\0"):
            self.getln(self.pos)
            return False
        return True

    def addc(self, t):
        self.buf[t] = self.buf[self.pos]
        self.pos += 1
        return t + 1

    def quoted(self, t, q):
        opened = self.line
        self.pos += 1
        while True:
            c = self.cur()
            if c == q:
                self.pos += 1
                return t
            if c == "\0":
                self.getln(self.pos)  # a multi-line value
                if self.cur() == "\0":
                    self.error("unterminated %s (opened on line %d): expected a closing %s" % (q, opened, q), opened)
            elif c == "\\" and q == '"':
                if self.backslash():
                    t = self.addc(t)
            else:
                t = self.addc(t)

    def parse_str(self, t):
        go_on = True
        bare = False  # the last thing read was unquoted text
        while True:
            c = self.cur()
            if c == "'" or c == '"':
                t = self.quoted(t, c)
                bare = False
            elif c == "#":
                self.hash_cut = bare  # `abc#def`: uci, too, ends the value at the `#`
                self.buf[self.pos] = "\0"
                break
            elif c == "\0":
                break
            elif c == ";":
                go_on = False
                # `abc;def` with nothing removed from the token: uci writes the token's end over the `;` and
                # the rest of the line is gone, so the value is cut short as with `#`.
                self.hash_cut = bare and t == self.pos
                break
            elif c == "\\":
                if self.backslash():
                    t = self.addc(t)
                    bare = True
            else:
                t = self.addc(t)
                bare = True
            c = self.cur()
            if c == "\0" or c in _CSPACE:
                break
        if self.cur() != "\0" and go_on:
            self.pos += 1
        # The token ends with a NUL where its text ends. For a token with nothing removed from it (no quotes,
        # no backslashes) that is where parse_str stopped: a `;` right after it is overwritten, and with it
        # the rest of the line.
        if t < len(self.buf):
            self.buf[t] = "\0"
        return t

    def next_arg(self):
        """next_arg: the next argument ('' when there is none); a `;` standing alone is consumed."""
        self.skip_whitespace()
        val = self.pos
        if self.cur() == ";":
            self.buf[self.pos] = "\0"
            self.pos += 1
        else:
            self.parse_str(val)
        return self.string_at(val)

    def assert_eol(self, usage, secret=False):
        self.skip_whitespace()
        extra = self.next_arg()
        if extra:
            self.error("too many arguments (%s): expected %s" % ("<hidden>" if secret else _show(extra), usage),
                       self.cmd_line)

    # -- commands ----------------------------------------------------------------------------------------

    def parse(self):
        if "\0" in "".join(self.lines):
            s = "".join(self.lines)
            self.error("NUL character in the file", s.count("\n", 0, s.find("\0")) + 1)
        while self.next_line < len(self.lines):
            self.pos = 0
            self.getln(0)
            if self.buf[0] != "\0":
                self.parse_line()
        return self.sections

    def parse_line(self):
        """uci_parse_line: commands split by strtok(" \t"), each command reading its own arguments."""
        self.skip_whitespace()
        while True:
            self.cmd_line = self.line
            i = self.pos
            while self.ch(i) in " \t":
                i += 1
            if self.ch(i) == "\0":
                return
            j = i
            while self.ch(j) != "\0" and self.ch(j) not in " \t":
                j += 1
            word = "".join(self.buf[i:j])
            if j < len(self.buf):
                self.buf[j] = "\0"  # strtok
            if word[0] == "#":
                return
            cmd = _COMMANDS.get(word)
            if cmd is None and word.rstrip(_CSPACE) in _COMMANDS:
                # "config\n": uci says invalid command (strtok keeps the newline in the word); say what is missing
                self.error(_USAGE_MISSING[_COMMANDS[word.rstrip(_CSPACE)]])
            if cmd is None:
                if self.after_secret or not _looks_like_keyword(word):
                    # Probably (part of) a secret value: on the line after `option psk`, for example.
                    self.error("invalid command (not shown: it may be part of a secret value; quote values "
                               "that contain spaces, ';' or '#'): expected package, config, option or list")
                self.error("invalid command %s: expected package, config, option or list" % _show(word))
            if cmd in ("option", "list") and self.current is None:
                self.error("%s before the first config section: expected config <type> [<name>] first" % cmd)
            # uci_increase_pos past the command word and its NUL
            if j + 1 > self.filled:
                self.error(_USAGE_MISSING[cmd])
            self.pos = j + 1
            self.after_secret = False
            getattr(self, "_cmd_" + cmd)()

    def _cmd_package(self):
        name = self.next_arg()
        if not name:
            self.error(_USAGE_MISSING["package"])
        if not valid_package(name):
            self.error("invalid package name %s: use only A-Z, a-z, 0-9, _ and -" % _show(name))
        self.assert_eol("package <name>")
        self.package = name

    def _cmd_config(self):
        line = self.cmd_line
        stype = self.next_arg()
        if not stype:
            self.error(_USAGE_MISSING["config"])
        if not valid_type(stype):
            self.error("invalid section type %s: use printable characters without spaces" % _show(stype))
        name = self.next_arg() or None
        if name is not None and not valid_name(name):
            self.error("invalid section name %s: use only A-Z, a-z, 0-9 and _" % _show(name))
        self.assert_eol("config <type> [<name>]")
        if name is None:
            sec = Section(stype, None, {}, line)
            self.sections.append(sec)
        else:
            sec = self.by_name.get(name)
            if sec is None:
                sec = Section(stype, name, {}, line)
                self.sections.append(sec)
                self.by_name[name] = sec
            elif sec.type != stype:
                self.error("section '%s' was declared as %s on line %d; a section of a different type may not "
                           "reuse its name" % (name, _show(sec.type), sec.line), line)
        self.current = sec

    def _cmd_option(self, is_list=False):
        kw = "list" if is_list else "option"
        name = self.next_arg()
        if not name:
            self.error(_USAGE_MISSING[kw])
        self.after_secret = secret_like(name)
        if not valid_name(name):
            self.error("invalid option name %s: use only A-Z, a-z, 0-9 and _" % _show_name(name))
        line = self.cmd_line
        self.hash_cut = False
        value = self.next_arg()
        cut = self.hash_cut
        self.assert_eol("%s <name> <value> (quote values that contain spaces)" % kw, secret=self.after_secret)
        if cut and value:
            self.current.cut[name] = line
        opts = self.current.options
        old = opts.get(name)
        if is_list:
            if isinstance(old, list):
                old.append(value)
            else:
                opts[name] = [value] if old is None else [old, value]
        elif value != "":
            opts[name] = value

    def _cmd_list(self):
        self._cmd_option(is_list=True)


# C isspace() in the "C" locale: what skip_whitespace skips and what ends an argument. The command word itself
# ends only at a space or a tab (strtok(..., " \t")), so "option\fa b" is an invalid command.
_CSPACE = " \t\n\v\f\r"
_USAGE_MISSING = {
    "package": "package without name: expected package <name>",
    "config": "config without type: expected config <type> [<name>]",
    "option": "option without name: expected option <name> <value>",
    "list": "list without name: expected list <name> <value>",
}


_SECRET_WORDS = ("pass", "psk", "secret", "key", "pwd", "token")


def secret_like(name):
    """True for an option name that is, or looks like, a secret option's: its value is never shown."""
    low = name.lower()
    return name in Section.SECRET_OPTIONS or any(w in low for w in _SECRET_WORDS)


def _looks_like_keyword(word):
    """A token that can be shown in an "invalid command" error: a short word, e.g. a misspelt `option`."""
    return 0 < len(word) <= 12 and all(c in _NAME_CHARS or c == "-" for c in word)


def _show_name(name):
    """An invalid option name for an error: whole unless it looks like a secret option's, then only the part
    up to the first character not allowed in a name (`psk=abc` shows as 'psk...')."""
    if not secret_like(name):
        return _show(name[:40] + ("..." if len(name) > 40 else ""))
    i = 0
    while i < len(name) and name[i] in _NAME_CHARS:
        i += 1
    return _show(name[:i] + "...")


def _show(s):
    """A token for an error message: quoted, control characters escaped."""
    out = []
    for c in s:
        if c == "\n":
            out.append("\\n")
        elif ord(c) < 32 or ord(c) == 127:
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    return "'" + "".join(out) + "'"


def parse(text, filename="<string>"):
    """Parse UCI text into a list of Section, in file order. Raises UciSyntaxError (file, line, what was expected)."""
    return _Parser(text, filename).parse()


def parse_package(text, filename="<string>"):
    """Like parse(), and also return the name from a `package` command: (package or None, sections)."""
    p = _Parser(text, filename)
    sections = p.parse()
    return p.package, sections


def find(sections, ref):
    """The section named `ref`, or addressed as `@type[N]` (N from 0, negative from the end); None if absent.
    Raises ValueError for a malformed `@...` reference."""
    if ref.startswith("@"):
        b = ref.find("[")
        if b < 2 or not ref.endswith("]"):
            raise ValueError("bad section reference %r: expected @type[N]" % ref)
        stype = ref[1:b]
        try:
            idx = int(ref[b + 1:-1])
        except ValueError:
            raise ValueError("bad section reference %r: expected @type[N] with an integer N" % ref)
        matches = [s for s in sections if s.type == stype]
        if -len(matches) <= idx < len(matches):
            return matches[idx]
        return None
    for s in sections:
        if s.name == ref:
            return s
    return None


def section_ref(sections, section):
    """How to address `section`: its name, or `@type[N]` for an anonymous one."""
    if section.name is not None:
        return section.name
    idx = 0
    for s in sections:
        if s is section:
            return "@%s[%d]" % (section.type, idx)
        if s.type == section.type:
            idx += 1
    raise ValueError("section not in the list")


def quote(value):
    """A value in uci's export form: single-quoted, each ' written as '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def _escape(text):
    """uci_escape: the text bare, each ' written as '\\''. uci writes package names, section types and option names
    this way, without quotes around them."""
    return text.replace("'", "'\\''")


def export(sections, package=None):
    """Text in uci's export form (uci_export_package); parse(export(s)) == s for every valid section list whose
    option values are non-empty (uci drops `option x ''`)."""
    out = []
    if package is not None:
        out.append("package %s\n" % _escape(package))
    for sec in sections:
        out.append("\nconfig %s" % _escape(sec.type))
        if sec.name is not None:
            out.append(" %s" % quote(sec.name))
        out.append("\n")
        for name, value in sec.options.items():
            if isinstance(value, list):
                for item in value:
                    out.append("\tlist %s %s\n" % (_escape(name), quote(item)))
            else:
                out.append("\toption %s %s\n" % (_escape(name), quote(value)))
    out.append("\n")
    return "".join(out)
