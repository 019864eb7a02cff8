"""openwrt/README.md's examples against the code: the firewall zone for the server's clients names the device the
server really creates, and every UCI block in the README reads with the UCI parser (which follows uci's file.c)."""

import re
from pathlib import Path

from sluice.config import loads
from sluice.config.uci import parse

README = Path(__file__).resolve().parents[2] / "openwrt" / "README.md"


def blocks():
    """The fenced code blocks of the README, in order."""
    out, cur = [], None
    for line in README.read_text().splitlines(True):
        if line.startswith("```"):
            if cur is None:
                cur = []
            else:
                out.append("".join(cur))
                cur = None
        elif cur is not None:
            cur.append(line)
    return out


def uci_blocks():
    return [b for b in blocks() if re.match(r"\s*(#.*\n\s*)*config ", b)]


def test_every_uci_block_parses():
    assert len(uci_blocks()) >= 3
    for b in uci_blocks():
        parse(b, "README")


def test_firewall_example_names_the_servers_device():
    """Regression (issue 11): the README's zone said `list device 'sluice-main'`; the server's TUN is sls0."""
    (server_block,) = [b for b in uci_blocks() if "config server" in b]
    # the README's key is a placeholder; a strong one makes the block a configuration the daemon accepts
    text = re.sub(r"option psk '[^']*'", "option psk 'Zq3xk9Pq7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY'", server_block)
    cfg = loads(text, name="README")
    (zone_block,) = [b for b in uci_blocks() if "config zone" in b]
    zones = [s for s in parse(zone_block) if s.type == "zone"]
    devices = [d for z in zones for d in z.options.get("device", [])]
    assert devices == [cfg.servers[0].ifname] == ["sls0"]
