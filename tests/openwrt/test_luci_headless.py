"""The LuCI files (luci-app-sluice views, luci-proto-sluice protocol) loaded and rendered in headless Chromium.

What is real: the Sluice JS files, parsed and run by Chromium's V8 and rendered into its DOM. What is a stand-in:
the LuCI framework (E, _, L, view, form, rpc, poll, uci, network) in luci/harness.js, which mimics LuCI's call
shapes and names its inputs `cbid.<config>.<section>.<option>` as LuCI does. The UCI fixture is made from UCI
text by sluice's own parser. The DOM is read back from `chromium --dump-dom` and parsed here.
The page is served by http.server on 127.0.0.1 (random port); Chromium runs with a fresh profile and no
network features.
"""

import functools
import html.parser
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")

VIEWS = "/openwrt/luci-app-sluice/htdocs/luci-static/resources/view/sluice/"
PROTO = "/openwrt/luci-proto-sluice/htdocs/luci-static/resources/protocol/sluice.js"

SLUICE_UCI = """
config globals 'globals'
	option log_level 'info'

config server 'main'
	option enabled '1'
	option psk 'Zq3-not-a-real-key-but-long-enough'
	option local_ip '10.77.0.1'
	option pool_start '10.77.0.10'
	option pool_end '10.77.0.250'
	list dns '10.77.0.1'
	list dns '192.0.2.53'

config user
	option username 'alice'
	option password 'alice-secret'

config user
	option username 'bob'
	option password 'bob-secret'
	option ip '10.77.0.99'
	option enabled '0'
"""

STATUS = {"name": "main", "role": "server", "last_error": "",
          "tunnels": [{"peer": "203.0.113.9:4500", "local_id": 7, "peer_id": 1, "state": "established",
                       "sessions": [{"username": "alice", "ip": "10.77.0.10", "state": "up"}]}],
          "sas": [{"peer": "203.0.113.9", "spi_in": "c0ffee01", "spi_out": "0badf00d", "cipher": "aes-cbc-256/sha1"}],
          "counters": {"malformed": 0, "rx_packets": 1234}}


def uci_json(text):
    from sluice.config.uci import parse
    out, n = {}, 0
    for sec in parse(text):
        sid = sec.name
        if sid is None:
            sid = "cfg%02x" % n
            n += 1
        out[sid] = dict(sec.options, **{".type": sec.type})
    return out


class Dom(html.parser.HTMLParser):
    """Elements of the dumped DOM as (tag, attrs dict, text inside) in document order."""

    def __init__(self, text):
        super().__init__()
        self.els, self.stack = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        el = [tag, dict(attrs), ""]
        self.els.append(el)
        if tag not in ("input", "br", "meta", "link"):
            self.stack.append(el)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        for el in self.stack:
            el[2] += data

    def find(self, tag=None, **attrs):
        return [e for e in self.els if (tag is None or e[0] == tag)
                and all(e[1].get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def text(self):
        return self.find("body")[0][2]


@pytest.fixture(scope="module")
def server():
    fixtures = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/fixture/"):
                body = json.dumps(fixtures[self.path[9:]]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(ROOT)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1], fixtures
    httpd.shutdown()


def chromium(tmp_path, url, screenshot=None):
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--user-data-dir=%s" % (tmp_path / "profile"), "--virtual-time-budget=5000"]
    if screenshot:
        args += ["--screenshot=%s" % screenshot, "--window-size=1150,1000", "--hide-scrollbars"]
    else:
        args += ["--dump-dom"]
    r = subprocess.run(args + [url], capture_output=True, text=True, timeout=60)
    return r


def render(server, tmp_path, name, src, fixture, kind="view"):
    base, fixtures = server
    fixtures[name] = fixture
    url = "%s/tests/openwrt/luci/harness.html?src=%s&fixture=/fixture/%s&kind=%s" % (base, src, name, kind)
    r = chromium(tmp_path, url)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = Dom(r.stdout)
    res = dom.find("pre", id="harness-result")
    assert res and res[0][2], "harness did not finish: " + r.stdout[-2000:]
    result = json.loads(res[0][2])
    assert result["ok"], result.get("error")
    return dom, result, url


def test_server_view(server, tmp_path):
    fixture = {"uci": {"sluice": uci_json(SLUICE_UCI)}, "rpc": {"sluice.status": STATUS},
               "rpc_after_poll": {"sluice.status": dict(STATUS, tunnels=[], sas=[])}}
    dom, result, url = render(server, tmp_path, "server", VIEWS + "server.js", fixture)
    # the enable toggle reflects UCI, the key is a password field holding the UCI value
    (enabled,) = dom.find("input", name="cbid.sluice.main.enabled")
    assert enabled[1]["type"] == "checkbox" and "checked" in enabled[1]
    (psk,) = dom.find("input", name="cbid.sluice.main.psk")
    assert psk[1]["type"] == "password"
    assert dom.find("input", name="cbid.sluice.main.pool_end")[0][1]["value"] == "10.77.0.250"
    assert [li[1]["data-value"] for li in dom.find("li")] == ["10.77.0.1", "192.0.2.53"]
    # users table: one row per `config user`, passwords hidden, disabled user unticked
    rows = dom.find("tr", **{"class": "tr cbi-section-table-row"})
    assert [r[1]["id"] for r in rows] == ["cbi-sluice-cfg00", "cbi-sluice-cfg01"]
    assert dom.find("input", name="cbid.sluice.cfg01.password")[0][1]["type"] == "password"
    assert "checked" in dom.find("input", name="cbid.sluice.cfg00.enabled")[0][1]
    assert "checked" not in dom.find("input", name="cbid.sluice.cfg01.enabled")[0][1]
    assert dom.find("button", **{"class": "cbi-button-add"})
    # status from rpc, then refreshed by the poller (every 5 s) with the second answer
    assert result["rpc"][0] == {"call": "sluice.status", "params": {"name": "main"}}
    assert result["polls"] == [5]
    assert result["polled_rpc"] == [{"call": "sluice.status", "params": {"name": "main"}}]
    (st,) = dom.find("p", **{"class": "sluice-status-text"})
    assert st[2] == "Running: 0 tunnels, 0 sessions, 0 IPsec SAs"
    assert ["psk", "ipsec", "1"] in result["depends"]
    # no secret is printed as text anywhere on the page
    assert "alice-secret" not in dom.text() and "Zq3-not" not in dom.text()
    # screenshot for the README (the same harness, same fixture, the first status answer)
    fixture.pop("rpc_after_poll")
    # (written into openwrt/docs only with SLUICE_UPDATE_SCREENSHOT=1, so test runs leave the tree alone)
    shot = tmp_path / "luci-server.png"
    r = chromium(tmp_path, url, screenshot=shot)
    assert r.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000
    if os.environ.get("SLUICE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "openwrt" / "docs" / "luci-server.png")


def test_server_view_daemon_down(server, tmp_path):
    fixture = {"uci": {"sluice": uci_json(SLUICE_UCI)}, "rpc": {"sluice.status": "reject"}}
    dom, result, _ = render(server, tmp_path, "server-down", VIEWS + "server.js", fixture)
    assert dom.find("p", **{"class": "sluice-status-text"})[0][2] == "Not running"


def test_status_view(server, tmp_path):
    client = dict(STATUS, name="vpn", role="client", last_error="IKE: no proposal chosen")
    dom, result, _ = render(server, tmp_path, "status", VIEWS + "status.js",
                            {"uci": {}, "rpc": {"sluice.status": client}})
    text = dom.text()
    assert "203.0.113.9:4500" in text and "c0ffee01" in text and "rx_packets" in text and "1234" in text
    assert "last error: IKE: no proposal chosen" in text
    buttons = [b[2] for b in dom.find("button")]
    assert buttons == ["Connect", "Disconnect"]
    assert result["polls"] == [5]


def test_status_view_not_running(server, tmp_path):
    dom, result, _ = render(server, tmp_path, "status-down", VIEWS + "status.js",
                            {"uci": {}, "rpc": {"sluice.status": "reject"}})
    assert "Sluice is not running" in dom.text() and dom.find("button") == []


def test_protocol(server, tmp_path):
    dom, result, _ = render(server, tmp_path, "proto", PROTO, {"uci": {}, "rpc": {}, "sid": "office_tunnel_2"},
                            kind="protocol")
    assert result["name"] == "sluice" and result["pkg"] == "sluice"
    assert result["floating"] is True and result["virtual"] is True and result["devices"] is None
    assert result["ifname"] == "sluice-office_t"
    assert result["patterns"] == ["/^sluice-.+$/"] and result["matches"] == [True]
    names = {e[1]["name"].split(".")[-1] for e in dom.find("input")} | \
        {e[1]["data-name"].split(".")[-1] for e in dom.find("ul")}
    assert {"server", "username", "password", "ipsec", "psk", "legacy", "routes", "route_lan", "route_src",
            "killswitch", "mtu", "defaultroute", "peerdns"} <= names
    for secret in ("password", "psk"):
        assert dom.find("input", name="cbid.network.office_tunnel_2." + secret)[0][1]["type"] == "password"
