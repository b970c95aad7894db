"""Peak memory: the tour, the sanity checks, and MaxAct over a data set 12 times the bundled one.

Each measurement runs in its own process, so that one peak never hides another:

- **The tour**: ``python -m tinyconv tour --out DIR`` (every figure of the lecture) with
  ``--examples`` small and with all 1,000 held-out digits. The peak resident set size comes
  from the kernel's accounting of the finished child (``os.wait4``, ``ru_maxrss``).
- **The sanity checks**: ``python -m tinyconv sanity --examples 100`` (Adebayo et al. 2018,
  data randomisation included), its wall time against the 3-minute target and its peak
  resident set size, the same way (``--quick``: 4 digits).
- **MaxAct**: ``tc.max_activating(model, X, "conv2")`` (all 32 feature maps, top 9) over the
  5,000 bundled digits and over 60,000 (the bundled set tiled 12 times), once as a float32
  array in memory and once as an ``np.memmap`` on disk (``np.load(path, mmap_mode="r")``).
  Inside the child, ``/proc/self/status`` gives the resident size before the ranking and its
  peak during it (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the call),
  and a sampling thread records the peak of anonymous memory (``RssAnon``: the heap, not
  pages of a mapped file). The ranking streams batches and keeps only the running top list,
  so its working memory must not grow with the number of digits.

Run ``python benchmarks/bench_memory.py [--quick] [--markdown PATH] [--threads 2]``.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

TOUR_TARGET_MB = 1024
SANITY_TARGET_S = 180            # tinyconv sanity --examples 100, on 2 cores
MB = 2 ** 20

#: Run in a fresh process: ``python -c MAXACT N KIND PATH``; prints JSON (bytes, seconds).
MAXACT = r"""
import json, sys, threading, time
import numpy as np
import tinyconv as tc

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

n, kind, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
model = tc.pretrained("mnist")
base = tc.to_float(tc.load_mnist("bundled")[0])            # (5000, 28, 28, 1) float32
model(base[:2])                                            # numba's first calls, not measured
if kind == "array":
    X = np.concatenate([base] * -(-n // len(base)))[:n]
else:                                                      # written in pieces, then mapped
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 28, 28, 1))
    for i in range(0, n, len(base)):
        out[i:i + len(base)] = base[:n - i]
    out.flush()
    del out
    X = np.load(path, mmap_mode="r")
del base
result = {"input": int(X.nbytes), "peak_before": status("VmHWM"), "before": status("VmRSS"),
          "anon_before": status("RssAnon")}
with open("/proc/self/clear_refs", "w") as f:            # reset VmHWM to the current size
    f.write("5")
anon, done = [result["anon_before"]], threading.Event()

def sample():
    while not done.wait(0.005):
        anon.append(status("RssAnon"))

sampler = threading.Thread(target=sample)
sampler.start()
t0 = time.perf_counter()
r = tc.max_activating(model, X, "conv2", top=9, progress=False)
result["seconds"] = time.perf_counter() - t0
done.set()
sampler.join()
result.update(peak=status("VmHWM"), anon_peak=max(anon), checksum=int(r.indices.sum()))
print(json.dumps(result))
"""


def run_child(cmd, env):
    """Run ``cmd``; returns (stdout, peak RSS in bytes from the kernel, wall seconds)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n"
                               f"{err.read()[-2000:]}")
        return out.read(), usage.ru_maxrss * 1024, wall     # ru_maxrss is in KiB on Linux


def main(argv=None):
    args = _setup.arg_parser(
        __doc__, "a tour on 20 digits only, MaxAct on 1,000 and 2,000 digits").parse_args(argv)

    header = _setup.configure(args.threads, torch=False)
    if not os.path.exists("/proc/self/clear_refs"):
        header.append("no /proc/self/status and clear_refs (not Linux): nothing to measure")
        _setup.report("bench_memory: peak resident memory", header, [], args.markdown)
        return
    mode = "quick" if args.quick else "full"
    monitor = _setup.start_run(header, f"{mode}; every row is one fresh process")
    env = _setup.thread_env(args.threads)

    tour_t = _setup.Table(
        "tinyconv tour: peak resident memory of the whole process",
        ["command", "peak RSS MB", "wall s", "target"],
        fmt={"peak RSS MB": "{:.0f}", "wall s": "{:.1f}"},
        notes=[f"peak RSS: ru_maxrss of the finished child (os.wait4); target for the full "
               f"tour: <= {TOUR_TARGET_MB} MB."])
    examples = [20] if args.quick else [20, 200, None]
    with tempfile.TemporaryDirectory() as tmp:
        for n in examples:
            cmd = [sys.executable, "-m", "tinyconv", "tour", "--out", os.path.join(tmp, str(n))]
            label = "tinyconv tour --out DIR"
            if n is not None:
                cmd += ["--examples", str(n)]
                label += f" --examples {n}"
            print(f"[bench_memory] {label} ...", file=sys.stderr, flush=True)
            _, peak, wall = run_child(cmd, env)
            target = None
            if n is None:
                met = "met" if peak <= TOUR_TARGET_MB * MB else "NOT met"
                target = f"<= {TOUR_TARGET_MB} MB: {met}"
            tour_t.add(label, peak / MB, wall, target)
        if args.quick:
            tour_t.notes.append("the full tour (all 1,000 digits) is skipped in --quick")

        sanity_t = _setup.Table(
            "tinyconv sanity: wall time and peak resident memory of the whole process",
            ["command", "peak RSS MB", "wall s", "target"],
            fmt={"peak RSS MB": "{:.0f}", "wall s": "{:.1f}"},
            notes=[f"target for 100 digits: <= {SANITY_TARGET_S} s wall on 2 cores (numba's "
                   "kernels cached: the tour above ran them first)."])
        n = 4 if args.quick else 100
        label = f"tinyconv sanity --examples {n} --seed 0 --out DIR"
        print(f"[bench_memory] {label} ...", file=sys.stderr, flush=True)
        _, peak, wall = run_child([sys.executable, "-m", "tinyconv", "sanity", "--examples",
                                   str(n), "--seed", "0", "--out", os.path.join(tmp, "sanity")],
                                  env)
        target = None if args.quick else \
            f"<= {SANITY_TARGET_S} s: {'met' if wall <= SANITY_TARGET_S else 'NOT met'}"
        sanity_t.add(label, peak / MB, wall, target)

        sizes = [1000, 2000] if args.quick else [5000, 60000]
        max_t = _setup.Table(
            "max_activating(model, X, 'conv2') (32 maps, top 9, batch_size 256): memory",
            ["digits", "X", "X MB", "RSS before MB", "peak during MB", "growth MB",
             "anon peak MB", "anon growth MB", "process peak MB", "s"],
            fmt={c: "{:.0f}" for c in ("X MB", "RSS before MB", "peak during MB", "growth MB",
                                       "anon peak MB", "anon growth MB", "process peak MB")}
            | {"s": "{:.1f}"},
            notes=["RSS before: after loading the model and building X; peak during: VmHWM "
                   "reset just before the call; growth = peak during - RSS before (the "
                   "ranking's working memory); anon: RssAnon, sampled every 5 ms (a memmap's "
                   "file pages count in RSS but not here: they are page cache the kernel can "
                   "drop); process peak: ru_maxrss of the whole child, data loading included.",
                   "X must be an array (max_activating does not take a generator of batches); "
                   "an np.memmap is validated and read one batch at a time, so the data set "
                   "never has to fit in memory."])
        for kind in ("array", "memmap"):
            for n in sizes:
                print(f"[bench_memory] max_activating, {n} digits, {kind} ...", file=sys.stderr,
                      flush=True)
                path = os.path.join(tmp, f"digits_{n}.npy")
                out, peak, _ = run_child([sys.executable, "-c", MAXACT, str(n), kind, path],
                                         env)
                r = json.loads(out.strip().splitlines()[-1])
                if os.path.exists(path):
                    os.remove(path)
                max_t.add(f"{n:,}", "float32 array" if kind == "array" else "np.memmap",
                          r["input"] / MB, r["before"] / MB, r["peak"] / MB,
                          (r["peak"] - r["before"]) / MB, r["anon_peak"] / MB,
                          (r["anon_peak"] - r["anon_before"]) / MB, peak / MB, r["seconds"])

    header.append(monitor.line())
    _setup.report("bench_memory: peak resident memory", header, [tour_t, sanity_t, max_t],
                  args.markdown)


if __name__ == "__main__":
    main()
