// Run tests/core/test_*.py under MicroPython 1.27 (the WebAssembly port, in node).
//
// Usage: node tests/micropython/run.mjs [options] [test_module | test_module.test_name ...]
//
//   --heap SIZE          emulate a router: GC heap of SIZE bytes (suffix K or M, e.g. 4M). The WebAssembly
//                        port grows its heap on demand (MICROPY_GC_SPLIT_HEAP_AUTO: a new split, doubling the
//                        total, only after a full collection failed to find room), so growth past SIZE is
//                        exactly where a fixed SIZE-byte heap would have raised MemoryError: the test running
//                        when it happens FAILs. Heap figures are printed at the end in every mode.
//   --timeout SEC        limit for the whole run (default 300)
//   --test-timeout SEC   limit for one test or one module import (default 60)
//   --frozen             keep the port's frozen micropython-lib modules (functools, abc, logging, unittest,
//                        ...) importable. Off by default: a router's MicroPython has only the C built-ins.
//   --root DIR           repository root (default: two levels above this file)
//
// Layout in the virtual filesystem, as pyproject.toml maps it: firmware/ -> /lib/sluice/, hal/ ->
// /lib/sluice/hal/ (.py files only), tests/core/*.py -> /work/tests/core/. sys.path starts with
// /work/tests/core (pytest's rootdir-less "prepend" import mode), then /lib, then /work.
//
// Output: one line per test, "PASS mod.test", "FAIL mod.test: <exception>" followed by the traceback
// indented, "SKIP mod.test: <reason>"; the last line is exactly "N passed, M failed" (", K skipped" added
// when K > 0). A failed import counts as one failure. Exit status 0 only when nothing failed; 2 for usage
// or setup errors.
//
// Skips: a module with a top-level `MICROPYTHON_SKIP = 'reason'` is not imported at all (it may use what
// MicroPython lacks) and each of its test functions is reported SKIP; a test that raises an exception whose
// class is named SkipTest (unittest.SkipTest under CPython, which pytest also treats as a skip) is SKIP.
//
// The interpreter runs in a worker thread so that a test stuck in a loop can be stopped: the main thread
// keeps the clock and terminates the worker.

import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = "@micropython/micropython-webassembly-pyscript";
const REC = "\x1e"; // starts a record line from the driver; anything else is the tests' own output

// The Python side: imports each module, runs its tests, reports records. Runs inside MicroPython.
const DRIVER = String.raw`
import sys, gc, io, json, micropython

def _emit(kind, name, detail=""):
    print("\x1e" + json.dumps([kind, name, detail]))

def _heap(tag):
    # mem_info() prints "GC: total: T, used: U, ..."; the worker parses it between these markers.
    print("\x1emem{" + tag)
    micropython.mem_info()
    print("\x1emem}")

def _trace(e):
    buf = io.StringIO()
    sys.print_exception(e, buf)
    return buf.getvalue()

def _run(plan):
    _heap("start")
    for entry in plan["modules"]:
        name = entry["module"]
        _emit("START", name + " (import)")
        try:
            mod = __import__(name)
        except BaseException as e:
            _heap("import")
            _emit("FAIL", name + " (import)", _trace(e))
            continue
        skip = getattr(mod, "MICROPYTHON_SKIP", None)
        names = entry["tests"]
        if entry["all"]:
            # Source order first (dir() order is hash order here), then anything defined another way.
            found = [n for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n))]
            names = [n for n in names if n in found] + sorted(n for n in found if n not in names)
        gc.collect()
        _heap("import")
        _emit("IMPORTED", name, names)
        for t in names:
            tid = name + "." + t
            if skip:
                _emit("SKIP", tid, str(skip))
                continue
            fn = getattr(mod, t, None)
            if fn is None:
                _emit("FAIL", tid, "no such test in " + name)
                continue
            _emit("START", tid)
            kind, detail = "PASS", ""
            try:
                fn()
            except BaseException as e:
                if type(e).__name__ == "SkipTest":
                    kind, detail = "SKIP", str(e)
                else:
                    kind, detail = "FAIL", _trace(e)
            e = None
            alloc = gc.mem_alloc()
            gc.collect()
            _heap(str(alloc))
            _emit(kind, tid, detail)
    _emit("DONE", "")

_plan = json.load(open("/work/plan.json"))
sys.path[:] = ["/work/tests/core", "/lib", "/work"] + ([".frozen"] if _plan["frozen"] else [])
_run(_plan)
`;

function usage(msg) {
  if (msg) process.stderr.write("run.mjs: " + msg + "\n");
  process.stderr.write(
    "usage: node tests/micropython/run.mjs [--heap SIZE] [--timeout SEC] [--test-timeout SEC] [--frozen] " +
      "[--root DIR] [test_module[.test_name] ...]\n"
  );
  process.exit(2);
}

function parseSize(s) {
  const m = /^(\d+)([kKmM]?)$/.exec(s || "");
  if (!m) usage("bad size: " + s);
  return parseInt(m[1], 10) * ({ "": 1, k: 1024, m: 1048576 }[m[2].toLowerCase()]);
}

function parseArgs(argv) {
  const o = { heap: null, timeout: 300, testTimeout: 60, frozen: false, root: path.resolve(HERE, "..", ".."), select: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : usage(a + " needs a value"));
    if (a === "--heap") o.heap = parseSize(val());
    else if (a === "--timeout") o.timeout = Number(val());
    else if (a === "--test-timeout") o.testTimeout = Number(val());
    else if (a === "--frozen") o.frozen = true;
    else if (a === "--root") o.root = path.resolve(val());
    else if (a === "-h" || a === "--help") usage();
    else if (a.startsWith("-")) usage("unknown option " + a);
    else o.select.push(a);
  }
  if (!(o.timeout > 0) || !(o.testTimeout > 0)) usage("timeouts must be positive numbers");
  return o;
}

// Which modules and tests to run; test names come from the source in definition order.
function makePlan(opts) {
  const coreDir = path.join(opts.root, "tests", "core");
  if (!fs.existsSync(coreDir)) usage("no directory " + coreDir);
  const available = fs.readdirSync(coreDir).filter((f) => /^test_\w+\.py$/.test(f)).map((f) => f.slice(0, -3)).sort();
  const wanted = new Map(); // module -> null (all) or [test names]
  if (opts.select.length === 0) for (const m of available) wanted.set(m, null);
  for (const sel of opts.select) {
    const s = path.basename(sel).replace(/::/g, ".").replace(/\.py$/, "");
    const dot = s.indexOf(".");
    const mod = dot < 0 ? s : s.slice(0, dot);
    if (!available.includes(mod)) usage("no test module " + mod + " in " + coreDir);
    if (dot < 0) wanted.set(mod, null);
    else if (wanted.get(mod) !== null) wanted.set(mod, (wanted.get(mod) || []).concat([s.slice(dot + 1)]));
  }
  const modules = [];
  for (const [mod, only] of wanted) {
    const src = fs.readFileSync(path.join(coreDir, mod + ".py"), "utf8");
    const defs = [...src.matchAll(/^def\s+(test_\w+)\s*\(/gm)].map((m) => m[1]);
    const skip = /^MICROPYTHON_SKIP\s*=\s*(?:'([^'\n]*)'|"([^"\n]*)")/m.exec(src);
    modules.push({
      module: mod,
      all: only === null,
      tests: only === null ? defs : only,
      skip: skip ? skip[1] ?? skip[2] : null,
    });
  }
  return { modules, frozen: opts.frozen };
}

// ---------------------------------------------------------------- worker: owns the interpreter

function copyTree(FS, srcDir, vfsDir) {
  let n = 0;
  FS.mkdirTree(vfsDir);
  for (const ent of fs.readdirSync(srcDir, { withFileTypes: true })) {
    if (ent.name.startsWith(".") || ent.name === "__pycache__") continue;
    const src = path.join(srcDir, ent.name);
    if (ent.isDirectory()) n += copyTree(FS, src, vfsDir + "/" + ent.name);
    else if (ent.isFile() && ent.name.endsWith(".py")) {
      FS.writeFile(vfsDir + "/" + ent.name, fs.readFileSync(src));
      n++;
    }
  }
  return n;
}

async function workerMain() {
  const { root, heap, plan } = workerData;
  const post = (m) => parentPort.postMessage(m);
  let mem = null;
  const onLine = (stream) => (line) => {
    if (mem !== null) {
      if (line === REC + "mem}") {
        post({ type: "mem", ...mem });
        mem = null;
      } else {
        const m = /^GC: total: (\d+), used: (\d+)/.exec(line);
        if (m) Object.assign(mem, { total: +m[1], used: +m[2] });
      }
    } else if (line.startsWith(REC + "mem{")) mem = { tag: line.slice(5) };
    else if (line.startsWith(REC)) post({ type: "rec", rec: JSON.parse(line.slice(1)) });
    else post({ type: "out", stream, line });
  };
  const { loadMicroPython } = await import(PKG + "/micropython.mjs");
  const mp = await loadMicroPython({
    heapsize: heap || 16 * 1048576,
    stdout: onLine("stdout"),
    stderr: onLine("stderr"),
  });
  const FS = mp.FS;
  FS.mkdirTree("/work/tests/core");
  const files =
    copyTree(FS, path.join(root, "firmware"), "/lib/sluice") +
    copyTree(FS, path.join(root, "hal"), "/lib/sluice/hal") +
    copyTree(FS, path.join(root, "tests", "core"), "/work/tests/core");
  FS.writeFile("/work/plan.json", JSON.stringify(plan));
  post({ type: "ready", files, version: mp.pyimport("sys").version });
  try {
    mp.runPython(DRIVER);
    // Measured from a fresh top-level frame: the driver's own frames still pin the last test's garbage.
    mp.runPython("import gc, micropython\ngc.collect()\nprint('\\x1emem{end')\nmicropython.mem_info()\nprint('\\x1emem}')");
  } catch (e) {
    post({ type: "fatal", text: String(e && e.message ? e.message : e) });
    return;
  }
  post({ type: "end" });
}

// ---------------------------------------------------------------- main: keeps time, prints, counts

// Map virtual filesystem paths in tracebacks back to the repository.
function repoPaths(text) {
  return text
    .replace(/^ *File "<stdin>".*\n/gm, "") // the driver's own frame
    .replace(/\/lib\/sluice\/hal\//g, "hal/")
    .replace(/\/lib\/sluice\//g, "firmware/")
    .replace(/\/work\/tests\/core\//g, "tests/core/");
}

function lastLine(text) {
  const lines = text.trim().split("\n");
  return lines[lines.length - 1];
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  try {
    await import(PKG + "/micropython.mjs");
  } catch (e) {
    process.stderr.write(
      "run.mjs: cannot load " + PKG + " (" + e.code + "): run `make setup` (cd tests/micropython && npm ci)\n"
    );
    process.exit(2);
  }
  const plan = makePlan(opts);
  const t0 = Date.now();
  const count = { PASS: 0, FAIL: 0, SKIP: 0 };
  const heap = { initial: null, total: null, maxAlloc: 0, endUsed: null };
  const finished = new Set(); // test ids with a result
  let version = "";

  const say = (s) => process.stdout.write(s + "\n");
  const report = (kind, id, detail) => {
    count[kind]++;
    finished.add(id);
    if (kind === "PASS") say("PASS " + id);
    else if (kind === "SKIP") say("SKIP " + id + ": " + detail);
    else {
      const text = repoPaths(detail || "").trimEnd();
      say("FAIL " + id + ": " + lastLine(text || "failed"));
      if (text.includes("\n")) for (const l of text.split("\n")) say("    " + l);
    }
  };

  // Modules skipped by MICROPYTHON_SKIP are reported here and never reach the interpreter.
  for (const m of plan.modules) if (m.skip !== null) for (const t of m.tests) report("SKIP", m.module + "." + t, m.skip);
  let pending = plan.modules.filter((m) => m.skip === null);

  // One interpreter runs `pending` until it ends or a limit is hit; resolves to "end", "test-timeout" or "timeout".
  const runOnce = (modules) =>
    new Promise((resolve) => {
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { root: opts.root, heap: opts.heap, plan: { modules, frozen: plan.frozen } },
        stdout: false,
        stderr: false,
      });
      let current = null; // [id, started at]
      let lastMem = null;
      let over = false;
      const stop = async (outcome, why) => {
        if (over) return;
        over = true;
        clearInterval(watchdog);
        if (why) report("FAIL", current ? current[0] : "run", why);
        await worker.terminate();
        resolve(outcome);
      };
      // A heap that had to grow past the --heap size means a fixed heap would have run out here.
      const grew = () => {
        if (!lastMem || heap.total === null || lastMem.total <= heap.total) return null;
        const before = heap.total;
        heap.total = lastMem.total;
        heap.grewIn = current ? current[0] : "?";
        if (!opts.heap || lastMem.total <= heap.initial) return null;
        return "MemoryError under --heap " + opts.heap + ": GC heap had to grow from " + before + " to " +
          lastMem.total + " bytes";
      };
      const watchdog = setInterval(() => {
        const now = Date.now();
        if (now - t0 > opts.timeout * 1000) stop("timeout", "run timeout: over " + opts.timeout + " s (--timeout)");
        else if (current && now - current[1] > opts.testTimeout * 1000)
          stop("test-timeout", "test timeout: over " + opts.testTimeout + " s (--test-timeout)");
      }, 100);
      worker.on("message", (m) => {
        if (m.type === "ready") version = m.version;
        else if (m.type === "out") say("  > " + m.line);
        else if (m.type === "mem") {
          lastMem = m;
          if (m.tag === "start" && heap.initial === null) heap.initial = heap.total = m.total;
          else if (/^\d+$/.test(m.tag)) heap.maxAlloc = Math.max(heap.maxAlloc, +m.tag);
          heap.endUsed = m.used;
        } else if (m.type === "rec") {
          let [kind, id, detail] = m.rec;
          if (kind === "START") current = [id, Date.now()];
          else if (kind === "IMPORTED") {
            // From here on the module's test list is the one the interpreter found.
            const entry = modules.find((e) => e.module === id);
            entry.tests = detail;
            entry.all = false;
            const oom = grew();
            if (oom) report("FAIL", id + " (import)", oom + " while importing");
            current = null;
          } else if (kind === "PASS" || kind === "FAIL" || kind === "SKIP") {
            const oom = grew();
            if (oom && kind !== "FAIL") [kind, detail] = ["FAIL", oom + " during this test"];
            if (kind === "FAIL" && id.endsWith(" (import)")) modules.find((e) => e.module + " (import)" === id).tests = [];
            current = null;
            report(kind, id, detail);
          }
        } else if (m.type === "fatal") stop("end", "runner error: " + repoPaths(m.text));
        else if (m.type === "end") stop("end", null);
      });
      worker.on("error", (e) => stop("end", "worker error: " + (e && e.stack ? e.stack : e)));
      worker.on("exit", () => stop("end", current ? "interpreter exited during the test" : null));
    });

  // A stuck test costs only itself: the rest run in a fresh interpreter.
  const remaining = () =>
    pending
      .map((m) =>
        finished.has(m.module + " (import)") ? null : { ...m, tests: m.tests.filter((t) => !finished.has(m.module + "." + t)) }
      )
      .filter((m) => m && (m.all || m.tests.length));
  let outcome = await runOnce(pending);
  while (outcome === "test-timeout" && (pending = remaining()).length) {
    pending = pending.map((m) => ({ ...m, all: false }));
    outcome = await runOnce(pending);
  }
  const notRun = outcome === "timeout" ? remaining().reduce((n, m) => n + m.tests.length, 0) : 0;

  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (heap.initial !== null)
    say(
      "heap: " + (opts.heap ? "limit " + opts.heap + " B (" + heap.initial + " B usable)" : "initial " + heap.initial + " B") +
        ", grew to " + heap.total + " B" + (heap.grewIn ? " (last growth in " + heap.grewIn + ")" : "") + "; max allocated after a test (before gc) " + heap.maxAlloc +
        " B; in use at end (after gc) " + heap.endUsed + " B"
    );
  if (notRun) say("not run: " + notRun + " tests (run timeout)");
  say((version ? version.replace(/^[\d.]+; /, "") + ", " : "") + secs + " s");
  say(count.PASS + " passed, " + count.FAIL + " failed" + (count.SKIP ? ", " + count.SKIP + " skipped" : ""));
  process.exitCode = count.FAIL ? 1 : 0;
}

if (isMainThread) await main();
else await workerMain();
