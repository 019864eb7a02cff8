"""Sluice configuration: UCI-syntax files (/etc/config/sluice, netifd interfaces in /etc/config/network, or any
file on a plain host) loaded into one validated model.

    load(path, section=None) -> Config      read, parse, validate; warn when a file with secrets is readable
    loads(text, name='<string>', section=None) -> Config
    ConfigError (.errors: list of one-line messages), UciSyntaxError (.filename, .line, .message)

`section` keeps only the server, client or netifd interface of that name (plus users and globals), so that a
network file with several interfaces, or a file with several servers, can run one of them.
"""

import os

from .errors import ConfigError, UciSyntaxError  # noqa: F401
from .model import Config, ClientConfig, GlobalConfig, ServerConfig, UserConfig  # noqa: F401
from .model import SECRET_OPTIONS, check_psk, genpsk, select, validate  # noqa: F401


def loads(text, name="<string>", section=None, check_files=False):
    """A Config from UCI text; `name` is the file name used in messages."""
    from .uci import parse

    sections = parse(text, name)
    if section is not None:
        sections = select(sections, name, section)
    return validate(sections, name, check_files=check_files)


def load(path, section=None):
    """A Config from the UCI file at `path`; ConfigError on any problem (unreadable file included)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        st = os.stat(path)
    except OSError as e:
        raise ConfigError("%s: cannot read the configuration: %s" % (path, e.strerror or e))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        # The byte itself is not shown: it may be part of a password.
        raise UciSyntaxError(path, line, "not valid UTF-8; save the file as UTF-8")
    config = loads(text, path, section, check_files=True)
    if st.st_mode & 0o077 and _holds_secret(config) and not _is_netifd_file(config):
        config.warnings.append(
            "%s: holds passwords or keys but is readable by other users (mode %04o); run chmod 600 %s" % (
                path, st.st_mode & 0o7777, path))
    return config


def _is_netifd_file(config):
    """netifd's /etc/config/network (`config interface` sections with proto 'sluice', no server or user of ours):
    OpenWrt ships it 0644 with the WAN's PPPoE and Wi-Fi secrets in it, so its mode is the system's business, not
    something to warn about at every start."""
    return bool(config.clients) and all(c.interface for c in config.clients) and not config.servers \
        and not config.users


def _holds_secret(config):
    for obj in config.servers + config.clients + config.users:
        for name in SECRET_OPTIONS:
            if getattr(obj, name, None):
                return True
    return False
