"""Kernel mode stays lean: no `cryptography` and no OpenSSL for IKE; `crypto auto` measured once per boot.

The memory figures themselves come from the interop cells (sluice-guest-*-kernel report VmRSS); here only what
decides them: which modules and libraries a kernel-mode daemon loads, and the boot-keyed cache of the choice.
"""

import os
import subprocess
import sys

import pytest

from sluice.engine import runner as R
from sluice.hal import crypto
from sluice.hal.crypto import select

HERE = os.path.dirname(os.path.abspath(__file__))
BOOT = "0d6b2c3e-7f1a-4c55-9e0b-5a8f3d2c1b00"


# A kernel-mode server and client (kernel plane on the XFRM twin, as test_kernelplane), `crypto auto`, built in a
# fresh interpreter, then IKE's primitives used through the backend they chose. pytest itself imports hashlib,
# socket and more: a stand-in for the one decorator test_kernelplane uses at import.
KERNEL_DAEMONS = (
    "import io, sys, types\n"
    "pt = types.ModuleType('pytest'); sys.modules['pytest'] = pt\n"
    "pt.mark = types.SimpleNamespace(parametrize=lambda *a, **k: (lambda f: f))\n"
    "import test_kernelplane as T\n"
    "from twinpair import CONF, PSK\n"
    "from sluice.config import loads\n"
    "from sluice.engine import runner as R\n"
    "from sluice.engine.log import Log\n"
    "text = CONF % {'auth': 'mschapv2', 'password': 'x', 'ipsec': '1', 'psk': PSK, 'crypto': 'auto',\n"
    "               'redial': 0, 'server_extra': '', 'client_extra': '', 'user_extra': ''}\n"
    "cfg = loads(text, name='lean.conf')\n"
    "log = Log('lean', stream=io.StringIO())\n"
    "for role in ('server', 'client'):\n"
    "    kp, loop = T.make(role)[1], T.Loop()\n"
    "    build = R.build_server if role == 'server' else R.build_client\n"
    "    sec = cfg.servers[0] if role == 'server' else cfg.clients[0]\n"
    "    extra = {'tun': object()} if role == 'server' else {}\n"
    "    r = build(cfg, sec, loop, log, datapath='kernel', kernel=kp, kernel_sockets=T.Sockets(),\n"
    "              host=T.Host(), **extra)\n"
    "    be = r.plane.backend\n"
    "    a, b = be.dh(14), be.dh(14)\n"
    "    a.generate(bytes); b.generate(bytes)\n"
    "    assert a.shared(b.public) == b.shared(a.public)\n"
    "    c = be.cipher('aes-cbc', bytes(32))\n"
    "    assert c.decrypt(bytes(16), c.encrypt(bytes(16), bytes(64))) == bytes(64)\n"
    "    be.prf('sha1', b'k', b'd'); be.prf('sha256', b'k', b'd'); be.hash('md5', b'd')\n"
    "    print('BACKEND', be.NAME)\n"
    "    print('MSCHAP', role, 'sluice.hal.crypto.pure.des' in sys.modules)\n"
)


def _install(tmp_path):
    """The package laid out in `tmp_path` as installed (firmware -> sluice, hal -> sluice/hal)."""
    import shutil

    root = os.path.dirname(os.path.dirname(HERE))
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(os.path.join(root, "firmware"), str(tmp_path / "sluice"), ignore=skip)
    shutil.copytree(os.path.join(root, "hal"), str(tmp_path / "sluice" / "hal"), ignore=skip)


def test_kernel_mode_daemons_never_load_cryptography_nor_openssl():
    # KERNEL_DAEMONS: `cryptography` is never imported, neither its native library nor OpenSSL's libcrypto
    # (CPython's hashlib maps it: ~4 MB resident) is mapped.
    code = ("import sys; sys.path.insert(0, %r)\n" % HERE) + KERNEL_DAEMONS + (
        "maps = open('/proc/self/maps').read()\n"
        "print('MODULES', [m for m in sys.modules if m.split('.')[0] in ('cryptography', '_hashlib', 'hashlib')])\n"
        "print('MAPPED', sorted(set(l.split()[-1] for l in maps.splitlines()\n"
        "                           if 'cryptography' in l or '_rust' in l or 'libcrypto' in l)))\n"
        "print('LOG', log.stream.getvalue() if hasattr(log, 'stream') else '')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=120).stdout
    assert out.count("BACKEND pure") == 2, out
    assert "MODULES []" in out and "MAPPED []" in out, out
    # MS-CHAPv2's pure DES and MD4: a server loads them on first use, a client that may answer MS-CHAPv2 at start
    assert "MSCHAP server False" in out and "MSCHAP client True" in out, out


def test_kernel_mode_daemons_load_neither_socket_py_signal_py_selectors_nor_enum(tmp_path):
    # socket.py costs a daemon ~1.2 MB resident over the `_socket` it wraps (enum ~0.8 MB of it, selectors,
    # functools...) and signal.py imports enum too: the daemon takes the C modules from sluice.hal.net.sockets
    # and sluice.hal.platform.signals. What `sluice server|client` imports (cli, daemon, control, loop with its
    # signal handler) and KERNEL_DAEMONS run in a fresh interpreter without site (the editable-install finder
    # imports re, hence enum), the package laid out as installed. A finder first on sys.meta_path names whoever
    # imports one of them, test helpers included (test_kernelplane's twins use the same C module).
    _install(tmp_path)
    code = (
        "import sys\n"
        "BANNED, WHO = ('socket', 'signal', 'selectors', 'enum', 're', 'json'), []\n"
        "class Watch:\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name in BANNED:\n"
        "            f = sys._getframe(1)\n"
        "            while f is not None and f.f_globals.get('__name__', '').startswith(('importlib', '_frozen')):\n"
        "                f = f.f_back\n"
        "            WHO.append((name, f and f.f_globals.get('__name__')))\n"
        "sys.meta_path.insert(0, Watch)\n"
        "from sluice import cli\n"
        "assert cli.daemon_args(['server', '-c', '/etc/config/sluice', '-n', 'main']).func is cli.cmd_server\n"
        "import sluice.engine.daemon, sluice.engine.control, sluice.engine.host\n"
        "from sluice.engine.loop import EventLoop\n"
        "from sluice.hal.platform.signals import signal\n"
        "EventLoop().on_signal(signal.SIGHUP, lambda: None)\n"
    ) + KERNEL_DAEMONS + (
        "from sluice.engine.control import ControlServer\n"
        "class Srv:\n"
        "    stats, log = {'requests': 0, 'too_long': 0}, None\n"
        "    handler = staticmethod(lambda req: {'ok': req == {'cmd': 'status'}, 'sessions': [{'user': 'j\u00f6', 'rx': 1.5}]})\n"
        "print('REPLY', ControlServer._reply(Srv(), b'{\"cmd\": \"status\"}\\n'))\n"
        "print('IMPORTED', WHO)\n"
        "print('LOADED', sorted(m for m in BANNED if m in sys.modules))\n"
    )
    path = os.pathsep.join((str(tmp_path), HERE))
    out = subprocess.run([sys.executable, "-S", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=120, env=dict(os.environ, PYTHONPATH=path)).stdout
    assert out.count("BACKEND pure") == 2, out
    assert "IMPORTED []" in out and "LOADED []" in out, out
    # ... nor re and json with the first control request (sluice.engine.jsonc: LuCI asks for status all along)
    assert 'REPLY b\'{"ok": true, "sessions": [{"user": "j\\\\u00f6", "rx": 1.5}]}\\n\'' in out, out


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, fmt, *a):
        self.lines.append(fmt % a if a else fmt)


def test_kernel_mode_auto_takes_the_pure_backend_unmeasured(monkeypatch):
    monkeypatch.setattr(select, "choose", lambda *a: pytest.fail("kernel mode has no ESP backend to measure"))
    log = _Log()
    assert R.choose_crypto("auto", log, esp=False).NAME == "pure"
    assert "ESP is the kernel's" in log.lines[-1]


def test_kernel_mode_with_certificates_takes_openssl():
    pytest.importorskip("cryptography")
    log = _Log()
    assert R.choose_crypto("auto", log, esp=False, certs=True).NAME == "openssl"
    assert "certificates need RSA" in log.lines[-1]


def test_kernel_mode_honours_a_named_backend():
    log = _Log()
    assert R.choose_crypto("pure", log, esp=False).NAME == "pure"
    assert "for IKE (set by option crypto)" in log.lines[-1]


def test_uses_certs_reads_the_section():
    sec = type("S", (), {"cert": None, "key": None, "ca": None})
    assert not R._uses_certs(sec)
    sec.ca = "/etc/sluice/ca.pem"
    assert R._uses_certs(sec)


# -- the per-boot cache of `crypto auto` -------------------------------------------------------------------

@pytest.fixture
def measured(monkeypatch):
    """select.choose replaced by a counter that picks 'pure' (what it measures is select's own tests' job)."""
    calls = []

    def choose(budget=0.02):
        calls.append(budget)
        crypto.set_default("pure")
        return "pure"

    monkeypatch.setattr(select, "choose", choose)
    return calls


def _boot(tmp_path, text=BOOT):
    p = tmp_path / "boot_id"
    p.write_text(text + "\n")
    return str(p)


def test_first_start_of_a_boot_measures_and_the_next_reuses(tmp_path, measured):
    run = tmp_path / "run"
    run.mkdir()
    boot = _boot(tmp_path)
    assert select.choose_cached(str(run), boot_path=boot) == ("pure", False)
    assert (run / select.CACHE_NAME).read_text() == BOOT + " pure\n"
    assert select.choose_cached(str(run), boot_path=boot) == ("pure", True)
    assert len(measured) == 1
    assert [p.name for p in run.iterdir()] == [select.CACHE_NAME]  # no temporary file left


def test_the_run_directory_is_made_at_the_first_start(tmp_path, measured):
    run = tmp_path / "run" / "sluice"
    assert select.choose_cached(str(run), boot_path=_boot(tmp_path)) == ("pure", False)
    assert (run / select.CACHE_NAME).read_text() == BOOT + " pure\n"


def test_a_stale_boot_id_measures_again(tmp_path, measured):
    run = tmp_path / "run"
    run.mkdir()
    (run / select.CACHE_NAME).write_text("11111111-2222-3333-4444-555555555555 openssl\n")
    assert select.choose_cached(str(run), boot_path=_boot(tmp_path)) == ("pure", False)
    assert (run / select.CACHE_NAME).read_text() == BOOT + " pure\n"
    assert len(measured) == 1


@pytest.mark.parametrize("content", [
    b"", b"\x00\xff" * 40, BOOT.encode() + b" rot13\n", BOOT.encode() + b" pure extra\n", BOOT.encode() + b"\n",
    BOOT.encode() + b" ../../tmp/evil\n", b"x" * 100000,
])
def test_a_garbage_cache_file_is_ignored_and_replaced(tmp_path, measured, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / select.CACHE_NAME).write_bytes(content)
    assert select.choose_cached(str(run), boot_path=_boot(tmp_path)) == ("pure", False)
    assert (run / select.CACHE_NAME).read_text() == BOOT + " pure\n"


def test_a_cache_file_others_may_write_or_a_symlink_is_not_trusted(tmp_path, measured):
    run = tmp_path / "run"
    run.mkdir()
    path = run / select.CACHE_NAME
    path.write_text(BOOT + " pure\n")
    path.chmod(0o666)
    assert select.read_cache(str(path), BOOT) is None
    path.chmod(0o644)
    assert select.read_cache(str(path), BOOT) == "pure"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(BOOT + " pure\n")
    path.unlink()
    path.symlink_to(elsewhere)
    assert select.read_cache(str(path), BOOT) is None
    (run / "dir").mkdir()
    assert select.read_cache(str(run / "dir"), BOOT) is None


def test_an_unwritable_run_directory_still_chooses(tmp_path, measured):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    boot = _boot(tmp_path)
    for _ in range(2):  # measured each time: nowhere to keep the answer, and no error for it
        assert select.choose_cached(str(not_a_dir), boot_path=boot) == ("pure", False)
    assert len(measured) == 2


@pytest.mark.parametrize("text", ["", "not-a-boot-id!", "x" * 60])
def test_no_usable_boot_id_means_no_cache(tmp_path, measured, text):
    run = tmp_path / "run"
    run.mkdir()
    boot = _boot(tmp_path, text)
    assert select.choose_cached(str(run), boot_path=boot) == ("pure", False)
    assert select.choose_cached(str(run), boot_path=str(tmp_path / "missing")) == ("pure", False)
    assert list(run.iterdir()) == [] and len(measured) == 2


def test_a_cached_backend_that_fails_its_known_answers_is_measured_again(tmp_path, measured, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    boot = _boot(tmp_path)
    (run / select.CACHE_NAME).write_text(BOOT + " pure\n")
    monkeypatch.setattr(select.kat, "ok", lambda rows: False)
    assert select.choose_cached(str(run), boot_path=boot) == ("pure", False)
    assert len(measured) == 1


def test_user_mode_auto_uses_the_cache_in_the_run_directory(tmp_path, measured, monkeypatch):
    monkeypatch.setenv("SLUICE_RUNDIR", str(tmp_path))
    monkeypatch.setattr(select, "BOOT_ID", _boot(tmp_path))
    monkeypatch.setattr(select.choose_cached, "__defaults__", (0.02, select.BOOT_ID))
    log = _Log()
    assert R.choose_crypto("auto", log).NAME == "pure"
    assert "measured now" in log.lines[-1]
    assert R.choose_crypto("auto", log).NAME == "pure"
    assert "measured earlier this boot" in log.lines[-1]
    assert len(measured) == 1


# -- what a daemon's steady state imports ------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["server", "--config", "/etc/config/sluice", "--section", "main", "--name", "main"],
    ["server", "-c", "/etc/config/sluice", "-v", "--syslog"],
    ["server", "--config=/etc/config/sluice", "--name=lns"],
    ["client", "-c", "/etc/sluice.conf", "-n", "lac", "-v"],
    ["client", "--config", "/etc/config/sluice", "--section", "office", "--name", "office", "--syslog", "--netifd",
     "--hook", "/lib/netifd/sluice-script"],
])
def test_daemon_command_lines_parse_as_argparse_does(argv):
    from sluice import cli

    fast = cli.daemon_args(argv)
    assert fast is not None
    assert vars(fast) == vars(cli.build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [
    [], ["status"], ["server"], ["server", "--conf", "x"], ["server", "--config"], ["server", "-c", "x", "-c", "y"],
    ["server", "-c", "x", "--hook", "h"], ["server", "-vc", "x"], ["client", "-c", "x", "--netifd=1"],
    ["client", "-c", "-x"], ["server", "-c", "x", "extra"], ["server", "--help"], ["client", "-c", "x", "-h"],
])
def test_anything_else_is_left_to_argparse(argv):
    from sluice import cli

    assert cli.daemon_args(argv) is None


def test_a_kernel_mode_daemon_imports_no_argparse_re_json_subprocess_nor_hashlib(tmp_path):
    # What `sluice server|client` loads before and while it runs (the control socket's JSON: sluice.engine.jsonc,
    # see the test above). Each of these was resident in every daemon: argparse + re + gettext and the parser ~2 MB,
    # subprocess ~0.8 MB, json ~0.3 MB, hashlib/hmac ~4 MB (libcrypto). The package is laid out as installed
    # (firmware -> sluice, hal -> sluice/hal) and run without site, whose editable-install finder imports re.
    _install(tmp_path)
    code = (
        "import sys\n"
        "from sluice import cli\n"
        "args = cli.daemon_args(['client', '-c', '/etc/config/sluice', '-n', 'office', '--netifd'])\n"
        "assert args.func is cli.cmd_client\n"
        "import sluice.config, sluice.engine.daemon, sluice.engine.runner, sluice.engine.kernelplane\n"
        "import sluice.engine.host, sluice.engine.control, sluice.engine.log, sluice.endpoint.client\n"
        "import sluice.endpoint.server, sluice.ike.table, sluice.engine.ikeconf, sluice.hal.net.kernel_path\n"
        "from sluice.hal.crypto.pure import backend\n"
        "from sluice.engine.log import Log\n"
        "Log('t').info('a line with %s and %d', 'x', 1)\n"
        "from sluice.engine.runner import RealSockets\n"
        "assert RealSockets(None).resolve('127.0.0.1', 1701) == ('127.0.0.1', 1701)  # a str: the idna codec\n"
        "bad = ('argparse', 're', 'json', 'subprocess', 'hashlib', 'hmac', '_hashlib', 'cryptography',\n"
        "       'encodings.idna', 'unicodedata')\n"
        "print('LOADED', sorted(m for m in bad if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(tmp_path))).stdout
    assert "LOADED []" in out, out


def test_a_client_does_not_load_the_server_endpoint():
    code = ("import sys\nimport sluice.endpoint.client\n"
            "print('LOADED', sorted(m for m in sys.modules if m in ('sluice.endpoint.server', 'sluice.endpoint.pool',"
            " 'sluice.l2tp.demux')))\n")
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=60).stdout
    assert "LOADED []" in out, out
