"""UCI file syntax: parser and exporter.

Theory of operation
-------------------
This reads the format of OpenWrt's `/etc/config/*` files as uci's own parser (openwrt/uci `file.c`) reads
them, so one parser serves routers and plain hosts alike. A file is a sequence of commands:

    package <name>                  (optional; names the file's package)
    config <type> [<name>]          opens a section; without a name the section is anonymous
    option <name> [<value>]         sets an option of the current section
    list <name> <value>             appends a value to a list option

Commands end at the end of the line or at `;`. uci also accepts the one-letter forms `p`, `c`, `o`, `l`.
An argument (token) is made of segments written next to each other and joined: `'ab'"cd"ef` is `abcdef`.

- Inside single quotes everything is literal, including backslashes and newlines.
- Inside double quotes and in bare text, `\\x` is `x` (uci keeps the escaped character and drops the
  backslash: there are no `\\n`-style escapes). A backslash before a newline joins the lines.
- A newline inside quotes is part of the value (multi-line values).
- An unquoted `#` starts a comment that runs to the end of the line; an unquoted `;` ends the command.
- Section and option names use only `A-Z a-z 0-9 _` (uci_validate_name); types any printable ASCII except space;
  package names also allow `-`.

Semantics follow libuci: a second `config` with the name of an existing section re-opens it (an error if the type
differs, as in uci's strict mode); `option` replaces a value in place (uci's tests/shunit2
references/import_merge.result shows the position kept); `list` on a plain option turns it into a list that
starts with the old value; `option` after a list replaces the list; an `option` with an empty value is ignored
(uci_set with an empty value and no complete lookup is a no-op).

Where this parser differs from uci, on purpose: uci's handling of `;` depends on how the token before it was
quoted (`config foo ; option a b` is "too many arguments" there, and an unquoted token directly before `;`
swallows the rest of the line); here `;` always ends the command, and empty commands (`;;`) are skipped.
A backslash-newline between arguments is read as white space (uci reads it as an empty argument).

Anonymous sections are addressed as `@type[N]` (N counts every section of that type, named or not, from 0;
negative N counts from the end), as `uci show` and `uci get` do.

Secrets in messages. An error never shows a value, or any part of a line, that may belong to a secret option
(`secret_like(name)`: password, psk, tunnel_secret and anything named like them): "too many arguments" and
a bad option name hide what follows the name, and an invalid command that follows a secret option (the value
on the next line, or after an unquoted `;`) or that does not look like a misspelt keyword is not echoed.
A value cut short by an unquoted `#` (`option password abc#def` is "abc" to uci too) is recorded in
`Section.cut` (option name -> line) so that validation can warn about it.

`export()` writes uci's export form (uci_export_package): each value single-quoted, `'` written as `'\\''`.
"""

from .errors import UciSyntaxError

_HSPACE = " \t\r\f\v"  # white space that does not end a line
_SPACE = _HSPACE + "\n"
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
    SECRET_OPTIONS = frozenset(("password", "psk", "tunnel_secret", "secret", "key_password"))

    def __init__(self, type, name=None, options=None, line=0):
        self.type = type
        self.name = name
        self.options = {} if options is None else options
        self.line = line  # line of the `config` command (for messages; not compared)
        self.cut = {}  # option name -> line where an unquoted `#` cut its value short (not compared)

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


_SECRET_WORDS = ("pass", "psk", "secret", "key", "pwd", "token")


def secret_like(name):
    """True for an option name that is, or looks like, a secret option's: its value is never shown."""
    low = name.lower()
    return name in Section.SECRET_OPTIONS or any(w in low for w in _SECRET_WORDS)


def _looks_like_keyword(word):
    """A token that can be shown in an "invalid command" error: a short word, e.g. a misspelt `option`."""
    return 0 < len(word) <= 12 and all(c in _NAME_CHARS or c == "-" for c in word)


def valid_name(s):
    """True for a valid section or option name: non-empty, only A-Z a-z 0-9 _."""
    return bool(s) and all(c in _NAME_CHARS for c in s)


def valid_type(s):
    """True for a valid section type: non-empty printable ASCII without spaces (uci_validate_type)."""
    return bool(s) and all(32 < ord(c) < 127 for c in s)


def valid_package(s):
    return bool(s) and all(c in _PACKAGE_CHARS for c in s)


class _Parser:
    def __init__(self, text, filename):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.line = 1
        self.filename = filename
        self.sections = []
        self.by_name = {}
        self.current = None
        self.package = None
        self.after_secret = False  # the previous command set a secret-like option
        self.hash_cut = False  # the current command's last token was ended by an unquoted `#`

    def error(self, message, line=None):
        raise UciSyntaxError(self.filename, self.line if line is None else line, message)

    # -- lexing ------------------------------------------------------------------------------------------

    def _skip_comment(self):
        j = self.s.find("\n", self.i)
        self.i = self.n if j < 0 else j

    def _word(self):
        """One token. Returns (text, ends_command, seen) where seen is False for a token that held only
        backslash-newlines (read as white space)."""
        s, n = self.s, self.n
        buf = []
        seen = False
        bare = False  # the last thing read was unquoted text
        while self.i < n:
            c = s[self.i]
            if c == "'":
                opened = self.line
                j = s.find("'", self.i + 1)
                if j < 0:
                    self.error("unterminated ' (opened on line %d): expected a closing '" % opened, opened)
                seg = s[self.i + 1:j]
                self.line += seg.count("\n")
                buf.append(seg)
                self.i = j + 1
                seen = True
                bare = False
            elif c == '"':
                self._double_quoted(buf)
                seen = True
                bare = False
            elif c == "\\":
                if self._backslash(buf):
                    seen = bare = True
            elif c == "#":
                # `#` right after unquoted text: uci, too, ends the value here and skips the rest of the line.
                self.hash_cut = bare
                self._skip_comment()
                return "".join(buf), True, seen
            elif c == ";":
                self.i += 1
                return "".join(buf), True, seen
            elif c in _SPACE:
                break
            else:
                buf.append(c)
                self.i += 1
                seen = bare = True
        return "".join(buf), False, seen

    def _backslash(self, buf):
        """At a backslash: a line continuation (False) or an escaped character appended to buf (True)."""
        s, i = self.s, self.i
        nxt = s[i + 1:i + 2]
        if nxt == "":
            self.i = i + 1  # a backslash at the very end of the file is dropped, as in uci
            return False
        if nxt == "\n":
            self.i = i + 2
            self.line += 1
            return False
        if nxt == "\r" and s[i + 2:i + 3] == "\n":
            self.i = i + 3
            self.line += 1
            return False
        buf.append(nxt)
        self.i = i + 2
        return True

    def _double_quoted(self, buf):
        s, n = self.s, self.n
        opened = self.line
        self.i += 1
        while True:
            if self.i >= n:
                self.error('unterminated " (opened on line %d): expected a closing "' % opened, opened)
            c = s[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\":
                if self.i + 1 >= n:
                    self.error('unterminated " (opened on line %d): expected a closing "' % opened, opened)
                self._backslash(buf)
                continue
            if c == "\n":
                self.line += 1
            buf.append(c)
            self.i += 1

    def _args(self):
        """The arguments of the current command, up to the end of the line, a `;` or a comment."""
        s, n = self.s, self.n
        args = []
        while True:
            while self.i < n and s[self.i] in _HSPACE:
                self.i += 1
            if self.i >= n or s[self.i] == "\n":
                return args
            c = s[self.i]
            if c == ";":
                self.i += 1
                return args
            if c == "#":
                self._skip_comment()
                return args
            word, ends, seen = self._word()
            if seen:
                args.append(word)
            if ends:
                return args

    # -- commands ----------------------------------------------------------------------------------------

    def parse(self):
        s, n = self.s, self.n
        nul = s.find("\0")
        if nul >= 0:
            self.error("NUL character in the file", s.count("\n", 0, nul) + 1)
        while True:
            while self.i < n and s[self.i] in _SPACE:
                if s[self.i] == "\n":
                    self.line += 1
                self.i += 1
            if self.i >= n:
                return self.sections
            c = s[self.i]
            if c == "#":
                self._skip_comment()
                continue
            if c == ";":
                self.i += 1
                continue
            start = self.i
            while self.i < n and s[self.i] not in _SPACE and s[self.i] != ";":
                self.i += 1
            word = s[start:self.i]
            cmd = _COMMANDS.get(word)
            if cmd is None:
                if self.after_secret or not _looks_like_keyword(word):
                    # Probably (part of) a secret value: on the line after `option psk`, or after a `;`.
                    self.error("invalid command (not shown: it may be part of a secret value; quote values "
                               "that contain spaces, ';' or '#'): expected package, config, option or list")
                self.error("invalid command %s: expected package, config, option or list" % _show(word))
            line = self.line
            self.hash_cut = False
            args = self._args()
            self.after_secret = False
            getattr(self, "_cmd_" + cmd)(args, line)

    def _too_many(self, args, usage, line):
        self.error("too many arguments (%s): expected %s" % (" ".join(_show(a) for a in args), usage), line)

    def _cmd_package(self, args, line):
        if not args or not args[0]:
            self.error("package without name: expected package <name>", line)
        if len(args) > 1:
            self._too_many(args[1:], "package <name>", line)
        if not valid_package(args[0]):
            self.error("invalid package name %s: use only A-Z, a-z, 0-9, _ and -" % _show(args[0]), line)
        self.package = args[0]

    def _cmd_config(self, args, line):
        if not args or not args[0]:
            self.error("config without type: expected config <type> [<name>]", line)
        if len(args) > 2:
            self._too_many(args[2:], "config <type> [<name>]", line)
        stype = args[0]
        if not valid_type(stype):
            self.error("invalid section type %s: use printable characters without spaces" % _show(stype), line)
        name = args[1] if len(args) > 1 and args[1] else None
        if name is None:
            sec = Section(stype, None, {}, line)
            self.sections.append(sec)
        elif not valid_name(name):
            self.error("invalid section name %s: use only A-Z, a-z, 0-9 and _" % _show(name), line)
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

    def _cmd_option(self, args, line, is_list=False):
        kw = "list" if is_list else "option"
        usage = "list <name> <value>" if is_list else "option <name> <value>"
        if self.current is None:
            self.error("%s before the first config section: expected config <type> [<name>] first" % kw, line)
        if not args or not args[0]:
            self.error("%s without name: expected %s" % (kw, usage), line)
        name = args[0]
        self.after_secret = secret_like(name)
        if len(args) > 2:
            if self.after_secret:
                self.error("too many arguments (<hidden>): expected %s (quote values that contain spaces)" % usage,
                           line)
            self._too_many(args[2:], usage + " (quote values that contain spaces)", line)
        if not valid_name(name):
            self.error("invalid option name %s: use only A-Z, a-z, 0-9 and _" % _show_name(name), line)
        if self.hash_cut and len(args) > 1:
            self.current.cut[name] = line
        value = args[1] if len(args) > 1 else ""
        opts = self.current.options
        old = opts.get(name)
        if is_list:
            if isinstance(old, list):
                old.append(value)
            else:
                opts[name] = [value] if old is None else [old, value]
        elif value != "":
            opts[name] = value

    def _cmd_list(self, args, line):
        self._cmd_option(args, line, is_list=True)


def _show_name(name):
    """An invalid option name for an error: whole unless it looks like a secret option's, then only the part
    up to the first character that is not allowed in a name (`psk=abc` shows as 'psk...')."""
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


def _type_token(stype):
    # uci writes the type bare; quote it only when bare text would not read back the same.
    for c in stype:
        if c in "'\"\\#;" or c in _SPACE:
            return quote(stype)
    return stype


def export(sections, package=None):
    """Text in uci's export form (uci_export_package); parse(export(s)) == s for every valid section list whose
    option values are non-empty (uci drops `option x ''`)."""
    out = []
    if package is not None:
        out.append("package %s\n" % package)
    for sec in sections:
        out.append("\nconfig %s" % _type_token(sec.type))
        if sec.name is not None:
            out.append(" %s" % quote(sec.name))
        out.append("\n")
        for name, value in sec.options.items():
            if isinstance(value, list):
                for item in value:
                    out.append("\tlist %s %s\n" % (name, quote(item)))
            else:
                out.append("\toption %s %s\n" % (name, quote(value)))
    out.append("\n")
    return "".join(out)
