"""The LuCI files (luci-app-sluice views, luci-proto-sluice protocol) loaded and rendered in headless Chromium.

What is real: the Sluice JS files, parsed and run by Chromium's V8 and rendered into its DOM. What is a stand-in:
the LuCI framework (E, _, L, view, form, rpc, poll, uci, network) in luci/harness.js, which mimics LuCI's call
shapes and names its inputs `cbid.<config>.<section>.<option>` as LuCI does; its rpc stand-in applies rpc.js's
reply rules (a failed ubus call resolves with its numeric code, then `expect` and `filter`). The status the views
render is what a running daemon sent (fixtures/status-*.json, written and checked by test_live_contracts.py), and
the Clients page gets what sluice.clientsetup produces. The UCI fixture is made from UCI text by sluice's own
parser. The DOM is read back from `chromium --dump-dom` and parsed here.
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

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def daemon_status(name):
    """A status a running daemon sent (see test_live_contracts.py), as rpcd hands it over."""
    return json.loads((FIXTURES / name).read_text())


SERVER_ST = daemon_status("status-server.json")
CLIENT_ST = daemon_status("status-client.json")


def fmt_bytes(n):
    """status.js's fmtBytes, for the expected text."""
    units, i, n = ["B", "KiB", "MiB", "GiB", "TiB"], 0, float(n)
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return ("%.1f" % n if i else "%d" % n) + " " + units[i]


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


def chromium(tmp_path, url, screenshot=None, height=1000):
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--user-data-dir=%s" % (tmp_path / "profile"), "--virtual-time-budget=5000"]
    if screenshot:
        args += ["--screenshot=%s" % screenshot, "--window-size=1150,%d" % height, "--hide-scrollbars"]
    else:
        args += ["--dump-dom"]
    r = subprocess.run(args + [url], capture_output=True, text=True, timeout=60, env=dict(os.environ, TZ="UTC"))
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


def shoot(tmp_path, url, name, height=1000):
    """A screenshot for the README: written into openwrt/docs only with SLUICE_UPDATE_SCREENSHOT=1."""
    shot = tmp_path / name
    r = chromium(tmp_path, url, screenshot=shot, height=height)
    assert r.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000
    if os.environ.get("SLUICE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "openwrt" / "docs" / name)


def rows(dom, table_class):
    """Text of each cell, row by row, of the table with that class (title row left out)."""
    out, cur, inside = [], None, False
    for tag, attrs, text in dom.els:
        if tag == "table":
            inside = table_class in attrs.get("class", "").split()
        elif inside and tag == "tr":
            cur = []
            if "table-titles" not in attrs.get("class", ""):
                out.append(cur)
        elif inside and tag == "td" and cur is not None:
            cur.append(text)
    return out


def test_status_view_from_daemon_status(server, tmp_path):
    """Regression (issue 11): the views read st.sas, a.cipher, t.local_id/peer_id and s.username, which the daemon
    never sends (it sends transport.sas, transform, tunnel_id/peer_tunnel_id, user). Here the page renders what a
    running daemon sent, and every value shown is looked up in that status."""
    import datetime

    reply = {"daemons": [SERVER_ST, CLIENT_ST]}
    fixture = {"uci": {}, "rpc": {"sluice.status": reply, "sluice.disconnect": {"ok": True}},
               "clicks": ['button.sluice-disconnect-user[data-user="bob"]']}
    dom, result, url = render(server, tmp_path, "status", VIEWS + "status.js", fixture)
    assert result["rpc"][0] == {"call": "sluice.status", "params": {}}  # all daemons: no name
    assert result["polls"] == [5]
    # who, from where, address, since, bytes in and out, a disconnect button: one row per session
    sessions = [(t, s) for t in SERVER_ST["tunnels"] for s in t["sessions"]]
    assert len(sessions) == 2
    want = []
    for t, s in sessions:
        since = datetime.datetime.fromtimestamp(SERVER_ST["time"] - s["uptime"], datetime.timezone.utc)
        want.append([s["user"], t["peer"], s["ip"], since.strftime("%Y-%m-%d %H:%M:%S"), fmt_bytes(s["rx_bytes"]),
                     fmt_bytes(s["tx_bytes"]), {"user": "Sluice", "kernel": "kernel"}[s["datapath"]], "Disconnect"])
    assert rows(dom, "sluice-users") == want
    assert SERVER_ST["transport"]["sas"] and rows(dom, "sluice-sas") == [
        [a["peer"], a["transform"], "yes" if a["encap"] else "no", a["spi_in"], a["spi_out"], str(a["packets_in"]),
         str(a["packets_out"])] for a in SERVER_ST["transport"]["sas"]]
    (client_row,) = rows(dom, "sluice-client")
    csess = CLIENT_ST["tunnels"][0]["sessions"][0]
    assert client_row[:4] == [CLIENT_ST["server"], CLIENT_ST["state"], csess["ip"], " ".join(csess["dns"])]
    assert client_row[-1] == {"user": "Sluice", "kernel": "kernel"}[CLIENT_ST["datapath"]]
    assert [b[2] for b in dom.find("button") if "sluice-disconnect-user" not in b[1]["class"]] == [
        "Connect", "Disconnect"]
    # the disconnect button of bob asks the server daemon to close bob's sessions, then refreshes
    assert result["clicked_rpc"][:2] == [{"call": "sluice.disconnect", "params": {"name": "main", "user": "bob"}},
                                         {"call": "sluice.status", "params": {}}]
    assert "No errors." in dom.text()
    shoot(tmp_path, url, "luci-status.png")


def test_status_view_rpcd_error_is_shown_not_blank(server, tmp_path):
    """Regression (issue 11): rpcd answered "Invalid argument" ([2] over /ubus); rpc.js resolves with the number 2
    and the old view drew "- (-)" and empty tables. Now the page says what happened."""
    dom, result, _ = render(server, tmp_path, "status-2", VIEWS + "status.js", {"uci": {}, "rpc": {"sluice.status": 2}})
    assert "Sluice status unavailable: the router answered: Invalid argument" in dom.text()
    assert not rows(dom, "sluice-users")


def test_status_view_nothing_running(server, tmp_path):
    dom, result, _ = render(server, tmp_path, "status-none", VIEWS + "status.js",
                            {"uci": {}, "rpc": {"sluice.status": {"daemons": []}}})
    assert "Sluice is not running" in dom.text() and dom.find("button") == []


def test_status_view_last_error_in_plain_words(server, tmp_path):
    st = daemon_status("status-server-error.json")  # the server after a client's wrong password
    dom, result, _ = render(server, tmp_path, "status-err", VIEWS + "status.js",
                            {"uci": {}, "rpc": {"sluice.status": {"daemons": [st]}}})
    (err,) = dom.find("span", **{"class": "sluice-error-text"})
    assert err[2] == st["last_error"]
    (hint,) = dom.find("p", **{"class": "sluice-error-hint"})
    assert hint[2].startswith("A user name or password was refused.")


def test_peer_supplied_strings_stay_text(server, tmp_path):
    """User names, host names and error text come from peers: they must reach the page as text, never as HTML."""
    evil = '<img src=x onerror="document.title=1">'
    st = json.loads(json.dumps(SERVER_ST))
    st["tunnels"][0]["sessions"][0]["user"] = evil
    st["tunnels"][0]["peer"] = evil
    st["last_error"] = evil
    dom, result, _ = render(server, tmp_path, "status-evil", VIEWS + "status.js",
                            {"uci": {}, "rpc": {"sluice.status": {"daemons": [st]}}})
    assert dom.find("img") == []
    assert dom.text().count(evil) >= 3


def test_server_view(server, tmp_path):
    import re

    from sluice.config import check_psk

    fixture = {"uci": {"sluice": uci_json(SLUICE_UCI)}, "rpc": {"sluice.status": SERVER_ST},
               "rpc_after_poll": {"sluice.status": 2},
               "clicks": ['button[name="cbid.sluice.main._genpsk"]'], "read": ['input[name="cbid.sluice.main.psk"]']}
    dom, result, url = render(server, tmp_path, "server", VIEWS + "server.js", fixture)
    # the enable toggle reflects UCI, the key is a password field holding the UCI value
    (enabled,) = dom.find("input", name="cbid.sluice.main.enabled")
    assert enabled[1]["type"] == "checkbox" and "checked" in enabled[1]
    (psk,) = dom.find("input", name="cbid.sluice.main.psk")
    assert psk[1]["type"] == "password"
    assert dom.find("input", name="cbid.sluice.main.pool_end")[0][1]["value"] == "10.77.0.250"
    assert dom.find("input", name="cbid.sluice.main.public_host")
    assert [li[1]["data-value"] for li in dom.find("li")] == ["10.77.0.1", "192.0.2.53"]
    # users table: one row per `config user`, passwords hidden, disabled user unticked
    rws = dom.find("tr", **{"class": "tr cbi-section-table-row"})
    assert [r[1]["id"] for r in rws] == ["cbi-sluice-cfg00", "cbi-sluice-cfg01"]
    assert dom.find("input", name="cbid.sluice.cfg01.password")[0][1]["type"] == "password"
    assert "checked" in dom.find("input", name="cbid.sluice.cfg00.enabled")[0][1]
    assert "checked" not in dom.find("input", name="cbid.sluice.cfg01.enabled")[0][1]
    assert dom.find("button", **{"class": "cbi-button-add"})
    # status from rpc (what a running server sent), then refreshed by the poller (every 5 s)
    assert result["rpc"][0] == {"call": "sluice.status", "params": {"name": "main"}}
    assert result["polls"] == [5]
    assert result["polled_rpc"] == [{"call": "sluice.status", "params": {"name": "main"}}]
    (st,) = dom.find("p", **{"class": "sluice-status-text"})
    assert st[2] == "Not running (Invalid argument)"  # the poller's answer: rpcd's code 2, in words
    assert ["psk", "ipsec", "1"] in result["depends"]
    # Generate: a strong key in the key field, in genpsk's form, that the daemon's own check accepts
    key = result["values"]['input[name="cbid.sluice.main.psk"]']
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{42}", key) and check_psk(key) is None
    assert key != "Zq3-not-a-real-key-but-long-enough"
    # no secret is printed as text anywhere on the page
    assert "alice-secret" not in dom.text() and "Zq3-not" not in dom.text()
    fixture.pop("rpc_after_poll")
    fixture.pop("clicks")
    shoot(tmp_path, url, "luci-server.png")


def test_server_view_first_status_uses_daemon_fields(server, tmp_path):
    fixture = {"uci": {"sluice": uci_json(SLUICE_UCI)}, "rpc": {"sluice.status": SERVER_ST}}
    dom, result, _ = render(server, tmp_path, "server-st", VIEWS + "server.js", fixture)
    (st,) = dom.find("p", **{"class": "sluice-status-text"})
    n_sas = len(SERVER_ST["transport"]["sas"])
    assert st[2] == "Running: 2 connected, %d tunnels, %d IPsec SAs" % (len(SERVER_ST["tunnels"]), n_sas)
    assert n_sas >= 1


def test_server_view_daemon_down(server, tmp_path):
    fixture = {"uci": {"sluice": uci_json(SLUICE_UCI)},
               "rpc": {"sluice.status": {"error": "sluice is not running: main"}}}
    dom, result, _ = render(server, tmp_path, "server-down", VIEWS + "server.js", fixture)
    assert dom.find("p", **{"class": "sluice-status-text"})[0][2] == "Not running (sluice is not running: main)"


def client_setup_answer(password="it's <b>bold</b>"):
    """What `sluice client-setup --json` answers for alice: the real module, on SLUICE_UCI with the address
    clients dial and a key the daemon accepts."""
    from sluice.clientsetup import setup
    from sluice.config import loads
    from sluice.config.uci import quote

    text = (SLUICE_UCI.replace("option password 'alice-secret'", "option password " + quote(password))
            .replace("Zq3-not-a-real-key-but-long-enough", "Zq3xk9Pq7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY")
            .replace("config server 'main'\n", "config server 'main'\n\toption public_host 'vpn.example.net'\n"))
    cfg = loads(text)
    return setup(cfg, cfg.servers[0], "alice")


def test_clients_view(server, tmp_path):
    answer = client_setup_answer()
    fixture = {"uci": {"sluice": uci_json(SLUICE_UCI)}, "rpc": {"sluice.client_setup": answer}}
    dom, result, url = render(server, tmp_path, "clients", VIEWS + "clients.js", fixture)
    # only enabled users are offered; the first one is shown
    assert [o[2] for o in dom.find("option")] == ["alice"]
    assert result["rpc"] == [{"call": "sluice.client_setup", "params": {"user": "alice"}}]
    (ps,) = dom.find("pre", **{"class": "sluice-copy sluice-powershell"})
    assert ps[2] == answer["windows"]["powershell"]
    assert dom.find("pre", **{"class": "sluice-copy sluice-registry"})[0][2] == answer["windows"]["registry_nat"]
    assert dom.find("pre", **{"class": "sluice-copy sluice-nmcli"})[0][2] == answer["linux"]["nmcli"]
    (btn,) = dom.find("button", **{"class": "cbi-button cbi-button-action sluice-mobileconfig"})
    assert btn[1]["data-filename"] == "main-alice.mobileconfig"
    assert rows(dom, "sluice-android") == [[k, v] for k, v in answer["android"]["fields"]]
    # the password is shown as text (it holds markup here), never parsed
    assert dom.find("b") == [] and "it's <b>bold</b>" in dom.text()
    # the picture for the README, with an ordinary password
    fixture["rpc"]["sluice.client_setup"] = client_setup_answer("correct horse battery staple")
    shoot(tmp_path, url, "luci-clients.png", height=1750)


def test_clients_view_error(server, tmp_path):
    fixture = {"uci": {"sluice": uci_json(SLUICE_UCI)},
               "rpc": {"sluice.client_setup": {"error": "error: server 'main': set option public_host"}}}
    dom, result, _ = render(server, tmp_path, "clients-err", VIEWS + "clients.js", fixture)
    assert "set option public_host" in dom.find("p", **{"class": "alert-message warning sluice-setup-error"})[0][2]


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


def test_protocol_page_from_readme_interface(server, tmp_path):
    """Network → Interfaces → vpn with the README's client interface (parsed by the UCI parser) filled in."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_readme import uci_blocks

    (block,) = [b for b in uci_blocks() if "option proto 'sluice'" in b]
    network = uci_json(block)
    dom, result, url = render(server, tmp_path, "proto-vpn", PROTO, {"uci": {"network": network}, "rpc": {},
                                                                     "sid": "vpn"}, kind="protocol")
    assert dom.find("input", name="cbid.network.vpn.server")[0][1]["value"] == "vpn.example.com"
    assert "checked" in dom.find("input", name="cbid.network.vpn.killswitch")[0][1]
    shoot(tmp_path, url, "luci-proto.png", height=1100)
