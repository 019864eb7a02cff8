"""Errors raised while reading a configuration.

`ConfigError` carries every problem found (`.errors`, a list of one-line strings), so that one run of
`sluice check` tells the user everything to fix. Messages name the file, the section and the option and never
contain the value of a secret option (password, psk, tunnel_secret).
"""


class ConfigError(ValueError):
    """One or more configuration errors; `.errors` lists them, one line each."""

    def __init__(self, errors):
        if isinstance(errors, str):
            errors = [errors]
        self.errors = list(errors)
        ValueError.__init__(self, "\n".join(self.errors))


class UciSyntaxError(ConfigError):
    """The file is not valid UCI syntax. `.filename`, `.line` (1-based) and `.message` locate the problem."""

    def __init__(self, filename, line, message):
        self.filename = filename
        self.line = line
        self.message = message
        ConfigError.__init__(self, ["%s:%d: %s" % (filename, line, message)])
