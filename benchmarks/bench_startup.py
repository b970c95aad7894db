"""Start-up costs: ``import tinyconv``, and numba's first compile against its on-disk cache.

- **Import**: the wall time of ``python -c "import tinyconv"`` in fresh processes (the median
  and minimum of several), beside ``python -c "pass"``, ``import numpy`` and ``import numba``
  for scale; then ``python -X importtime`` says which imports the time goes to.
- **First calls**: a small float32 and float64 model that touches every kernel (Conv2D:
  im2col, col2im; MaxPool2D: maxpool, unpool), one forward + backward per dtype, in three
  fresh processes: with ``NUMBA_CACHE_DIR`` an empty directory (the first compile ever), a
  second process on that same directory (it must load what the first one wrote), and the
  default cache (what a user's second session sees). Each row says how many kernel
  specialisations numba compiled and how many it loaded from disk.

Run ``python benchmarks/bench_startup.py [--quick] [--markdown PATH] [--threads 2]``.
"""

import json
import subprocess
import sys
import tempfile
import time

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

IMPORT_TARGET = 0.5          # seconds, python -c "import tinyconv" with a warm cache
IMPORT_RUNS, QUICK_IMPORT_RUNS = 9, 2
TOP_IMPORTS = 15

#: Run in a fresh process: import, then the first forward + backward per dtype; prints JSON.
#: The model has a one-channel convolution (like MNIST's first), a dilated one and a plain
#: one, so that each way Conv2D can unfold its input (im2col) is called.
PROBE = """
import json, time
t0 = time.perf_counter()
import numpy as np
import tinyconv as tc
out = {"import": time.perf_counter() - t0}
for dtype in ("float32", "float64"):
    model = tc.Sequential([tc.Conv2D(1, 3, 3, padding="same"), tc.ReLU(), tc.MaxPool2D(2),
                           tc.Conv2D(3, 4, 3, padding=(1, 2), dilation=(1, 2)), tc.ReLU(),
                           tc.Conv2D(4, 2, 3, padding=1), tc.ReLU(), tc.Flatten(),
                           tc.Dense(4 * 3 * 2, 4)],
                          input_shape=(8, 6, 1), seed=0).astype(dtype)
    x = np.random.default_rng(0).standard_normal((2, 8, 6, 1)).astype(dtype)
    for key in (dtype, dtype + " again"):
        t0 = time.perf_counter()
        y = model(x)
        model.backward(np.ones_like(y))
        out[key] = time.perf_counter() - t0
import numba
from tinyconv import kernels
jitted = [k for k in vars(kernels).values() if isinstance(k, numba.core.dispatcher.Dispatcher)]
out["kernels"] = len(jitted)
out["called"] = sum(1 for k in jitted if k.signatures)
out["hits"] = sum(sum(k.stats.cache_hits.values()) for k in jitted)
out["misses"] = sum(sum(k.stats.cache_misses.values()) for k in jitted)
print(json.dumps(out))
"""


def wall(code, env, runs):
    """Wall-clock seconds of ``python -c code`` in ``runs`` fresh processes (one unmeasured
    run first, so the files are in the OS page cache)."""
    cmd = [sys.executable, "-c", code]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return _setup.Timing(times)


def import_profile(env):
    """``python -X importtime -c "import tinyconv"`` -> [(module, depth, self_s, cumulative_s)]."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tinyconv"],
                         env=env, check=True, capture_output=True, text=True).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|")
        if not self_us.strip().isdigit():               # the header line
            continue
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((name.strip(), depth, int(self_us) / 1e6, int(cum_us) / 1e6))
    return rows


def probe(env):
    """Run :data:`PROBE` in a fresh process; returns its JSON and the process' wall time."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                         capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - t0
    return result


def main(argv=None):
    args = _setup.arg_parser(
        __doc__, "fewer import runs, no compile into an empty cache").parse_args(argv)

    header = _setup.configure(args.threads, torch=False)
    env = _setup.thread_env(args.threads)
    runs = QUICK_IMPORT_RUNS if args.quick else IMPORT_RUNS
    mode = "quick" if args.quick else "full"
    monitor = _setup.start_run(header, f"{mode}; each import row is {runs} fresh processes "
                               "(after one unmeasured run), wall clock from the parent")

    # a process on the default cache first, so that the cache is warm for every row below
    print("[bench_startup] warming numba's default cache ...", file=sys.stderr, flush=True)
    probe(env)

    imp_t = _setup.Table(
        "Import time: python -c CODE in a fresh process (warm numba cache)",
        ["CODE", "median s", "min s", "runs", "minus python s", "target"],
        fmt={"median s": "{:.3f}", "min s": "{:.3f}", "minus python s": "{:.3f}"},
        notes=[f"target: import tinyconv <= {IMPORT_TARGET} s (median); 'minus python' "
               "subtracts the median of 'pass' (the interpreter's own start-up)."])
    base = None
    for code in ("pass", "import numpy", "import numba", "import tinyconv"):
        print(f"[bench_startup] {code} ...", file=sys.stderr, flush=True)
        t = wall(code, env, runs)
        base = t.median if base is None else base
        target = None
        if code == "import tinyconv":
            met = "met" if t.median <= IMPORT_TARGET else "NOT met"
            target = f"<= {IMPORT_TARGET} s: {met}"
        imp_t.add(code, t.median, t.min, t.n, t.median - base, target)

    prof = import_profile(env)
    total = next((cum for name, _, _, cum in prof if name == "tinyconv"), None)
    top = sorted((r for r in prof if r[0] != "tinyconv"), key=lambda r: -r[3])[:TOP_IMPORTS]
    prof_t = _setup.Table(
        "Where import tinyconv spends its time (python -X importtime, one run)",
        ["module", "depth", "self ms", "cumulative ms", "% of import tinyconv"],
        fmt={"self ms": "{:.1f}", "cumulative ms": "{:.1f}", "% of import tinyconv": "{:.0f}%"},
        notes=["depth 1 = imported by tinyconv/__init__ directly (or by the first tinyconv "
               "module that needs it); a module's cumulative time includes everything it "
               f"imported first. import tinyconv in this run: "
               f"{1e3 * total:.0f} ms." if total else "import tinyconv not found"])
    for name, depth, self_s, cum in top:
        prof_t.add(name, depth, 1e3 * self_s, 1e3 * cum,
                   100.0 * cum / total if total else None)

    print("[bench_startup] first calls ...", file=sys.stderr, flush=True)
    comp_t = _setup.Table(
        "First forward + backward of a small model touching every kernel (fresh processes)",
        ["numba cache", "import s", "float32 first s", "float64 first s", "float32 second s",
         "kernels called", "compiled", "loaded from disk", "process wall s"],
        fmt={"import s": "{:.2f}", "float32 first s": "{:.2f}", "float64 first s": "{:.2f}",
             "float32 second s": "{:.4f}", "process wall s": "{:.2f}"},
        notes=["model: Conv2D(1->3, 3x3, same) - ReLU - MaxPool2D(2) - Conv2D(3->4, 3x3, "
               "dilation (1, 2), same size) - ReLU - Conv2D(4->2, 3x3, pad 1) - ReLU - Flatten "
               "- Dense on a 2x8x6x1 input; "
               "'first' = the first forward + "
               "backward of that dtype in the process (numba compiles its kernels for that "
               "dtype, or loads them from its cache);",
               "kernels called: numba functions in tinyconv.kernels that ran (a helper called "
               "only from inside another kernel counts when it is compiled, not when its "
               "caller is loaded from the cache); compiled / loaded = specialisations (one per "
               "kernel and dtype) numba compiled in the process / found in its on-disk cache."])
    with tempfile.TemporaryDirectory() as cache_dir:
        empty = _setup.thread_env(args.threads, NUMBA_CACHE_DIR=cache_dir)
        cases = [("default (warm)", env)]
        if args.quick:
            comp_t.notes.append("the empty-cache rows (a first compile takes ~10 s per dtype) "
                                "are skipped in --quick")
        else:
            cases = [("empty directory (first compile ever)", empty),
                     ("same directory, second process", empty)] + cases
        for label, e in cases:
            r = probe(e)
            comp_t.add(label, r["import"], r["float32"], r["float64"], r["float32 again"],
                       f"{r['called']} of {r['kernels']}", r["misses"], r["hits"], r["wall"])

    header.append(monitor.line())
    _setup.report("bench_startup: import time and numba's compile cache", header,
                  [imp_t, prof_t, comp_t], args.markdown)


if __name__ == "__main__":
    main()
