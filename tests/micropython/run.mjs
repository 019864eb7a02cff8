// Run tests/core/test_*.py under MicroPython 1.27 (the WebAssembly port, in node).
//
// Usage: node tests/micropython/run.mjs [options] [test_module | test_module.test_name ...]
//
//   --heap SIZE          router mode: start with a GC heap of SIZE bytes (suffix K or M, e.g. 4M), one
//                        interpreter per module, and FAIL an import or test after which the live heap
//                        (what is still reachable once it returned) exceeds SIZE: that state alone would not fit
//                        a router's fixed heap. Per-module figures are printed at the end.
//   --isolate            a fresh interpreter per module (implied by --heap)
//   --timeout SEC        limit for the whole run (default 300)
//   --test-timeout SEC   limit for one test or one module import (default 30); the rest then run in a
//                        fresh interpreter
//   --frozen             keep the port's frozen micropython-lib modules (functools, abc, logging, unittest,
//                        ...) importable. Off by default: a router's MicroPython has only the C built-ins.
//   --root DIR           repository root (default: two levels above this file)
//
// Heap figures, and what this port can and cannot show: its garbage collector never runs while Python code
// is on the stack (gc_collect() only sets a flag; the collection happens when control returns to JS, and a
// full heap grows instead). So each import and each test is its own top-level call, followed by a collection,
// and for each we know exactly: "live" = heap in use after it returned and was collected (retained state),
// and "allocated" = bytes allocated while it ran (nothing is freed mid-call: the allocation churn, which
// matters on the per-packet path). The peak of live data inside a test is not observable here.
//
// Layout in the virtual filesystem, as pyproject.toml maps it: firmware/ -> /lib/sluice/, hal/ ->
// /lib/sluice/hal/ (.py files only), tests/core/*.py -> /work/tests/core/. sys.path is /work/tests/core
// (pytest's "prepend" import mode: `import harness`), /lib, /work (`from tests.core import harness`).
//
// Output: one line per test, "PASS mod.test", "FAIL mod.test: <exception>" followed by the traceback
// indented, "SKIP mod.test: <reason>"; output the tests print themselves is shown as "  > line". The last
// line is exactly "N passed, M failed" (", K skipped" added when K > 0). A failed import counts as one
// failure. Exit status 0 only when nothing failed; 2 for usage or setup errors.
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

// Python side, defined once per interpreter; the worker calls these one top-level call at a time.
const DRIVER = String.raw`
import sys, gc, io, json, micropython

def _rec(kind, name, detail=""):
    print("\x1e" + json.dumps([kind, name, detail]))

def _mem():
    # mem_info() prints "GC: total: T, used: U, ..."; the worker parses it between these markers.
    print("\x1emem{")
    micropython.mem_info()
    print("\x1emem}")

def _trace(e):
    buf = io.StringIO()
    sys.print_exception(e, buf)
    return buf.getvalue()

_modules = {}

def _import(name, listed, find):
    _rec("START", name + " (import)")
    try:
        mod = __import__(name)
    except BaseException as e:
        _rec("FAIL", name + " (import)", _trace(e))
        return
    _modules[name] = mod
    names = listed
    if find:
        # Source order first (dir() order is hash order here), then anything defined another way.
        found = [n for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n))]
        names = [n for n in listed if n in found] + sorted(n for n in found if n not in listed)
    skip = getattr(mod, "MICROPYTHON_SKIP", None)
    _rec("IMPORTED", name, [names, str(skip) if skip else None])

def _test(name, t):
    tid = name + "." + t
    fn = getattr(_modules[name], t, None)
    if fn is None:
        _rec("FAIL", tid, "no such test in " + name)
        return
    _rec("START", tid)
    kind, detail = "PASS", ""
    try:
        fn()
    except BaseException as e:
        if type(e).__name__ == "SkipTest":
            kind, detail = "SKIP", str(e)
        else:
            kind, detail = "FAIL", _trace(e)
    _mem()  # before any collection: what the test allocated
    _rec(kind, tid, detail)

_plan = json.load(open("/work/plan.json"))
sys.path[:] = ["/work/tests/core", "/lib", "/work"] + ([".frozen"] if _plan["frozen"] else [])
`;

function usage(msg) {
  if (msg) process.stderr.write("run.mjs: " + msg + "\n");
  process.stderr.write(
    "usage: node tests/micropython/run.mjs [--heap SIZE] [--isolate] [--timeout SEC] [--test-timeout SEC] " +
      "[--frozen] [--root DIR] [test_module[.test_name] ...]\n"
  );
  process.exit(2);
}

function parseSize(s) {
  const m = /^(\d+)([kKmM]?)$/.exec(s || "");
  if (!m) usage("bad size: " + s);
  return parseInt(m[1], 10) * { "": 1, k: 1024, m: 1048576 }[m[2].toLowerCase()];
}

function parseArgs(argv) {
  const o = {
    heap: null, isolate: false, timeout: 300, testTimeout: 30, frozen: false,
    root: path.resolve(HERE, "..", ".."), select: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : usage(a + " needs a value"));
    if (a === "--heap") o.heap = parseSize(val());
    else if (a === "--isolate") o.isolate = true;
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
      find: only === null, // also run test_* the source scan missed
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
  if (!fs.existsSync(srcDir)) return n;
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
  let mem = null; // inside a mem_info() block
  let lastMem = null;
  let records = []; // records of the current call
  const onLine = (stream) => (line) => {
    if (mem !== null) {
      if (line === REC + "mem}") [lastMem, mem] = [mem, null];
      else {
        const m = /^GC: total: (\d+), used: (\d+)/.exec(line);
        if (m) Object.assign(mem, { total: +m[1], used: +m[2] });
      }
    } else if (line === REC + "mem{") mem = {};
    else if (line.startsWith(REC)) {
      const rec = JSON.parse(line.slice(1));
      if (rec[0] === "START") post({ type: "start", id: rec[1] });
      else records.push(rec);
    } else post({ type: "out", stream, line });
  };
  const { loadMicroPython } = await import(PKG + "/micropython.mjs");
  const mp = await loadMicroPython({
    heapsize: heap || 4 * 1048576,
    stdout: onLine("stdout"),
    stderr: onLine("stderr"),
  });
  const FS = mp.FS;
  FS.mkdirTree("/work/tests/core");
  copyTree(FS, path.join(root, "firmware"), "/lib/sluice");
  copyTree(FS, path.join(root, "hal"), "/lib/sluice/hal");
  copyTree(FS, path.join(root, "tests", "core"), "/work/tests/core");
  FS.writeFile("/work/plan.json", JSON.stringify(plan));

  const call = (code) => {
    records = [];
    mp.runPython(code);
    return records;
  };
  // gc.collect() only sets a flag in this port; the collection happens as the call returns to JS.
  const live = () => {
    call("import gc\ngc.collect()");
    call("_mem()");
    return lastMem;
  };
  try {
    call(DRIVER);
    post({ type: "ready", version: mp.pyimport("sys").version, mem: live() });
    for (const entry of plan.modules) {
      const base = live().used;
      const recs = call("_import(" + JSON.stringify(entry.module) + ", " + JSON.stringify(entry.tests) + ", " +
        (entry.find ? "True" : "False") + ")");
      const after = live();
      const imp = recs.find((r) => r[0] === "IMPORTED");
      if (!imp) {
        post({ type: "result", rec: recs[0], mem: { live: after.used, total: after.total } });
        continue;
      }
      const [names, skip] = imp[2];
      post({ type: "imported", module: entry.module, tests: names, mem: { live: after.used, cost: after.used - base, total: after.total } });
      for (const t of names) {
        const id = entry.module + "." + t;
        if (skip) {
          post({ type: "result", rec: ["SKIP", id, skip] });
          continue;
        }
        const before = lastMem.used;
        const rec = call("_test(" + JSON.stringify(entry.module) + ", " + JSON.stringify(t) + ")")[0];
        const [allocated, total] = [lastMem.used - before, lastMem.total]; // before the collection
        const after = live();
        post({ type: "result", rec, mem: { allocated, live: after.used, total } });
      }
    }
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
    .replace(/^ *File "<stdin>".*\n/gm, "") // the driver's own frames
    .replace(/\/lib\/sluice\/hal\//g, "hal/")
    .replace(/\/lib\/sluice\//g, "firmware/")
    .replace(/\/work\/tests\/core\//g, "tests/core/");
}

function lastLine(text) {
  const lines = text.trim().split("\n");
  return lines[lines.length - 1];
}

const KiB = (n) => (n / 1024).toFixed(0) + " KiB";

async function main() {
  process.stdout.on("error", (e) => process.exit(e.code === "EPIPE" ? 0 : 1)); // e.g. piped into head
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
  const finished = new Set(); // ids with a result
  const durations = []; // [seconds, id]
  const heap = { base: null, maxLive: [0, ""], maxAlloc: [0, ""], maxTotal: 0, byModule: new Map() };
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
  const noteHeap = (id, m) => {
    if (!m) return;
    const mod = id.split(/[. ]/)[0];
    const row = heap.byModule.get(mod) || { import: 0, live: 0, alloc: 0, allocId: "" };
    if (m.cost !== undefined) row.import = m.cost;
    row.live = Math.max(row.live, m.live);
    if (m.allocated > row.alloc) [row.alloc, row.allocId] = [m.allocated, id];
    heap.byModule.set(mod, row);
    if (m.live > heap.maxLive[0]) heap.maxLive = [m.live, id];
    if (m.allocated > heap.maxAlloc[0]) heap.maxAlloc = [m.allocated, id];
    heap.maxTotal = Math.max(heap.maxTotal, m.total);
  };

  // Modules skipped by MICROPYTHON_SKIP are reported here and never reach the interpreter.
  for (const m of plan.modules) if (m.skip !== null) for (const t of m.tests) report("SKIP", m.module + "." + t, m.skip);
  let pending = plan.modules.filter((m) => m.skip === null);

  // One interpreter runs `modules` until it ends or a limit is hit: "end", "test-timeout" or "timeout".
  const runOnce = (modules) =>
    new Promise((resolve) => {
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { root: opts.root, heap: opts.heap, plan: { modules, frozen: plan.frozen } },
        stdout: false,
        stderr: false,
      });
      let current = null; // [id, started at]
      let over = false;
      let prevLive = 0;
      // The import or test that takes the live heap over --heap fails (the ones after it are not blamed).
      const overLimit = (live) => {
        const crossed = opts.heap && live > opts.heap && prevLive <= opts.heap;
        prevLive = live;
        return crossed ? "over --heap " + opts.heap + ": " + live + " bytes still live after it returned" : null;
      };
      const stop = async (outcome, why) => {
        if (over) return;
        over = true;
        clearInterval(watchdog);
        if (why) report("FAIL", current ? current[0] : "run", why);
        await worker.terminate();
        resolve(outcome);
      };
      const watchdog = setInterval(() => {
        const now = Date.now();
        if (now - t0 > opts.timeout * 1000) stop("timeout", "run timeout: over " + opts.timeout + " s (--timeout)");
        else if (current && now - current[1] > opts.testTimeout * 1000)
          stop("test-timeout", "test timeout: over " + opts.testTimeout + " s (--test-timeout)");
      }, 100);
      worker.on("message", (m) => {
        if (m.type === "ready") {
          version = m.version;
          if (heap.base === null) heap.base = m.mem.used;
        } else if (m.type === "out") say("  > " + m.line);
        else if (m.type === "start") current = [m.id, Date.now()];
        else if (m.type === "imported") {
          // From here on the module's test list is the one the interpreter found.
          const entry = modules.find((e) => e.module === m.module);
          [entry.tests, entry.find] = [m.tests, false];
          noteHeap(m.module + " (import)", m.mem);
          const oom = overLimit(m.mem.live);
          if (oom) report("FAIL", m.module + " (import)", oom);
          current = null;
        } else if (m.type === "result") {
          let [kind, id, detail] = m.rec;
          if (current && current[0] === id) durations.push([(Date.now() - current[1]) / 1000, id]);
          current = null;
          noteHeap(id, m.mem);
          const oom = m.mem && overLimit(m.mem.live);
          if (oom && kind !== "FAIL") [kind, detail] = ["FAIL", oom];
          if (kind === "FAIL" && id.endsWith(" (import)")) modules.find((e) => e.module + " (import)" === id).tests = [];
          report(kind, id, detail);
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
      .filter((m) => m && (m.find || m.tests.length));
  const batches = opts.isolate || opts.heap ? pending.map((m) => [m]) : [pending];
  let outcome = "end";
  for (const batch of batches) {
    pending = batch;
    outcome = await runOnce(pending);
    while (outcome === "test-timeout" && (pending = remaining()).length) {
      pending = pending.map((m) => ({ ...m, find: false }));
      outcome = await runOnce(pending);
    }
    if (outcome === "timeout") break;
  }
  pending = batches.flat();
  const notRun = outcome === "timeout" ? remaining().reduce((n, m) => n + m.tests.length, 0) : 0;

  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (heap.base !== null) {
    say(
      "heap" + (opts.heap ? " (--heap " + opts.heap + ")" : "") + ": interpreter " + KiB(heap.base) +
        "; most live after a test " + KiB(heap.maxLive[0]) + " (" + heap.maxLive[1] + ")" +
        "; most allocated by one test " + KiB(heap.maxAlloc[0]) + " (" + heap.maxAlloc[1] + ")" +
        "; GC heap grew to " + KiB(heap.maxTotal)
    );
    if (opts.heap)
      for (const [mod, r] of heap.byModule)
        say("  " + mod + ": import " + KiB(r.import) + ", live " + KiB(r.live) + ", allocated up to " +
          KiB(r.alloc) + (r.allocId ? " (" + r.allocId.split(".").pop() + ")" : ""));
  }
  const slow = durations.filter((d) => d[0] >= 1).sort((a, b) => b[0] - a[0]).slice(0, 5);
  if (slow.length) say("slowest: " + slow.map((d) => d[1] + " " + d[0].toFixed(1) + " s").join(", "));
  if (notRun) say("not run: " + notRun + " tests (run timeout)");
  say((version ? version.replace(/^[\d.]+; /, "") + ", " : "") + secs + " s");
  say(count.PASS + " passed, " + count.FAIL + " failed" + (count.SKIP ? ", " + count.SKIP + " skipped" : ""));
  process.exitCode = count.FAIL ? 1 : 0;
}

if (isMainThread) await main();
else await workerMain();
