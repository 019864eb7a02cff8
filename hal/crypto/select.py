"""Backend selection: run every backend's known-answer tests, time ESP seal+open, pick the fastest correct.

`choose()` is what the engine calls at start: it loads each backend (afalg, openssl, pure), skips the
ones that cannot run here (with their reason), runs `kat.run` on the rest, times seal+open of the
reference transforms at 64 and 1400 bytes for a short bounded time, and makes the fastest backend that
passed every KAT the default (`sluice.hal.crypto.backend('auto')`). `report()` returns the same facts
as rows for `sluice crypto`; `report_text()` formats them; `main(argv)` is the CLI entry.
"""

try:
    import time as _time
    _perf = getattr(_time, "perf_counter", None)
except ImportError:  # pragma: no cover
    _time = None
    _perf = None

from sluice.hal import crypto
from sluice.hal.crypto import kat

SIZES = (64, 1400)
REFERENCE = ("aes128gcm16", "aes128-sha1", "aes256-sha256")


def _clock():
    if _perf is not None:
        return _perf
    ticks = getattr(_time, "ticks_us", None)
    if ticks is not None:  # MicroPython
        return lambda: ticks() / 1e6
    return _time.time


class _Counter:
    def __init__(self):
        self.n = 0

    def __call__(self, k):
        self.n += 1
        return (self.n & 0xFF).to_bytes(1, "big") * k


def time_transform(backend, name, size, budget=0.02, max_iter=2000, clock=None):
    """Microseconds per seal+open of a size-byte payload, measured for at most `budget` seconds."""
    from sluice.hal.crypto import transforms
    clock = clock or _clock()
    ek, ak, sl = transforms.esp_key_lengths(name)
    t = backend.esp_transform(name, bytes(range(1, ek + 1)), bytes(range(2, ak + 2)), bytes(range(3, sl + 3)),
                              _Counter())
    pt = bytes(size - size % t.block + t.block)
    hdr = b"\x00\x00\x10\x00\x00\x00\x00\x01"
    pkt = t.seal(hdr, pt)
    if t.open(pkt) != pt:
        raise ValueError("round trip failed")
    n = 0
    start = clock()
    end = start + budget
    now = start
    while n < max_iter and (n == 0 or now < end):
        t.open(t.seal(hdr, pt))
        n += 1
        now = clock()
    return (now - start) / n * 1e6


class Row:
    """One backend's facts for `sluice crypto`."""

    __slots__ = ("backend", "unavailable", "kats", "kat_ok", "speed", "chosen")

    def __init__(self, backend):
        self.backend = backend
        self.unavailable = None  # reason string when the backend cannot run here
        self.kats = []  # kat.run() rows
        self.kat_ok = False
        self.speed = {}  # (transform, size) -> us per seal+open, or None when unsupported
        self.chosen = False

    def as_dict(self):
        return {"backend": self.backend, "unavailable": self.unavailable, "kat_ok": self.kat_ok,
                "kats": [{"name": k[0], "source": k[1], "result": k[2], "detail": k[3]} for k in self.kats],
                "speed_us": dict(("%s@%d" % k, v) for k, v in self.speed.items()), "chosen": self.chosen}


def report(budget=0.02, transforms=REFERENCE, names=None):
    """[Row] for every backend; the fastest one that passed its KATs has chosen = True."""
    rows = []
    for name in names or crypto.NAMES:
        row = Row(name)
        rows.append(row)
        try:
            mod = crypto.load(name)
        except ImportError as e:
            row.unavailable = "cannot import: %s" % (e,)
            continue
        why = mod.available()
        if why is not None:
            row.unavailable = why
            continue
        row.kats = kat.run(mod)
        row.kat_ok = kat.ok(row.kats)
        if not row.kat_ok:
            continue
        for tname in transforms:
            for size in SIZES:
                if not mod.supports(tname):
                    row.speed[(tname, size)] = None
                    continue
                try:
                    row.speed[(tname, size)] = time_transform(mod, tname, size, budget)
                except Exception:
                    row.speed[(tname, size)] = None
                    row.kat_ok = False
    best = None
    for row in rows:
        if not row.kat_ok:
            continue
        score = _score(row)
        if score is not None and (best is None or score < best[0]):
            best = (score, row)
    if best is not None:
        best[1].chosen = True
    return rows


def _score(row):
    # Large packets dominate throughput; every reference transform must be there to compare fairly.
    total = 0.0
    for (tname, size), us in row.speed.items():
        if size != SIZES[-1]:
            continue
        if us is None:
            return None
        total += us
    return total


def choose(budget=0.02):
    """Run KATs and timings, make the winner the default backend, and return its name (or None)."""
    rows = report(budget)
    for row in rows:
        if row.chosen:
            crypto.set_default(row.backend)
            return row.backend
    # Nothing complete: fall back to any backend that passed its KATs.
    for row in rows:
        if row.kat_ok:
            crypto.set_default(row.backend)
            return row.backend
    return None


def report_text(rows=None, budget=0.02):
    """The `sluice crypto` table: one block per backend, KAT results, us per seal+open, packets/s."""
    if rows is None:
        rows = report(budget)
    lines = []
    for row in rows:
        head = "%-8s" % row.backend
        if row.unavailable:
            lines.append(head + " unavailable: " + row.unavailable)
            continue
        status = "KAT pass" if row.kat_ok else "KAT FAIL"
        lines.append(head + " " + status + ("  <- auto" if row.chosen else ""))
        for name, source, result, detail in row.kats:
            lines.append("    %-13s %-4s %s%s" % (name, result, source, (" (" + detail + ")") if detail else ""))
        for (tname, size) in sorted(row.speed):
            us = row.speed[(tname, size)]
            if us is None:
                lines.append("    %-16s %5d B  unsupported" % (tname, size))
            else:
                lines.append("    %-16s %5d B  %9.1f us seal+open  %9.0f pkt/s" % (tname, size, us, 1e6 / us))
    return "\n".join(lines)


def main(argv=None):
    """`sluice crypto [--json] [--time SECONDS]`: print each backend, its KATs and its speed."""
    argv = list(argv or [])
    budget = 0.02
    as_json = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--json":
            as_json = True
        elif a == "--time" and i + 1 < len(argv):
            i += 1
            budget = float(argv[i])
        else:
            print("usage: sluice crypto [--json] [--time SECONDS]")
            return 2
        i += 1
    rows = report(budget)
    if as_json:
        import json
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(report_text(rows))
    return 0 if any(r.kat_ok for r in rows) else 1


# -- `crypto auto` measured once per boot ------------------------------------------------------------------

BOOT_ID = "/proc/sys/kernel/random/boot_id"
CACHE_NAME = "crypto-auto"
_BOOT_CHARS = "0123456789abcdef-"


def boot_id(path=BOOT_ID):
    """This boot's id (the kernel's random UUID), or None where there is none to read."""
    try:
        with open(path) as f:
            b = f.read(64).strip()
    except (OSError, ValueError):
        return None
    return b if 8 <= len(b) <= 40 and all(c in _BOOT_CHARS for c in b) else None


def read_cache(path, boot):
    """The backend name cached for this boot, or None: a missing, stale, foreign or malformed file is ignored.

    The file is trusted only as far as its text says a known backend name; it must be a regular file of ours,
    not writable by others (else anyone who can write the run directory would pick our ESP cipher code).
    """
    import os

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        text = os.read(fd, 128)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        words = text.decode("ascii").split()
    except UnicodeError:
        return None
    if len(words) != 2 or words[0] != boot or words[1] not in crypto.NAMES:
        return None
    return words[1]


def write_cache(path, boot, name):
    """Write `boot name` atomically (a private temporary file, then rename); False where it cannot."""
    import os

    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError:
        return False
    try:
        try:
            os.write(fd, ("%s %s\n" % (boot, name)).encode("ascii"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def choose_cached(directory, budget=0.02, boot_path=BOOT_ID):
    """(name, cached): choose() at the first start of a boot, its answer reused at the next starts.

    The timings cost a start about a third of a second and, by loading every backend, the memory of all of
    them; the winner only changes with the hardware, the kernel or the libraries, i.e. (nearly always) with a
    boot. A cached backend still has to load and pass its known-answer tests, else it is measured again.
    """
    import os

    boot = boot_id(boot_path)
    path = os.path.join(directory, CACHE_NAME) if directory else None
    if boot is not None and path is not None:
        name = read_cache(path, boot)
        if name is not None:
            try:
                mod = crypto.load(name)
            except ImportError:
                mod = None
            if mod is not None and mod.available() is None and kat.ok(kat.run(mod)):
                crypto.set_default(name)
                return name, True
    name = choose(budget)
    if name is not None and boot is not None and path is not None:
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)  # as the control socket will (before it does)
        except OSError:
            return name, False
        write_cache(path, boot, name)
    return name, False
