"""A training epoch beside a busy neighbour: how much a second busy process slows each library.

A user's machine is rarely idle. This times one training epoch of the shipped model (the
``epoch`` case of ``bench_model.py``: 4,000 bundled digits, batch 128, SGD) in a tinyconv
worker and in a torch worker, first with the machine as it is ("idle"), then while a
**neighbour** process — started and stopped by this script, and never running longer than
``--neighbour-seconds`` — multiplies 512 x 512 float32 matrices with NumPy in a loop on
every core (OpenBLAS at its default thread count, as an unrelated program would run). The
ratio busy / idle is the slowdown (the project's target for tinyconv: at most 2).

``--investigate`` repeats the tinyconv measurement with the worker's thread policy changed one
variable at a time (BLAS keeping its threads beside the neighbour, ``TINYCONV_SHARE_CORES=0``;
numba's or OpenBLAS' threads cut to 1, OpenMP's idle threads spinning, numba's workqueue
threading layer, OpenBLAS' idle threads put to sleep at once), so that the table says which
pool suffers.

Run ``python benchmarks/bench_contention.py [--quick] [--investigate] [--threads 2]``.
"""

import os
import subprocess
import sys
import time

import _setup  # first: re-executes without OPENBLAS_* variables before NumPy loads

# isort: split
from bench_model import EPOCH_DIGITS, QUICK_EPOCH_DIGITS, make

#: torch's layout for its epoch: channels_last, the faster of the two on this model's training
#: step in every bench_model run (benchmarks/README.md); the ratio here is torch's own busy / idle
TORCH_LAYOUT = "channels_last"

TARGET = 2.0                  # busy / idle epoch time, tinyconv
NEIGHBOUR_SECONDS = 120       # the neighbour stops on its own after this, whatever happens

#: The neighbour: NumPy GEMMs in a loop until a deadline (argv[1] seconds from now).
NEIGHBOUR = """
import sys, time
import numpy as np
a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
end = time.monotonic() + float(sys.argv[1])
print("ready", flush=True)
while time.monotonic() < end:
    a = (a @ a) * np.float32(1e-3) + np.float32(1.0)
"""

#: ``--investigate``: (label, extra environment of the tinyconv worker).
POLICIES = [
    ("as shipped (numba 2, BLAS 2 on the cores the neighbour leaves, OMP_WAIT_POLICY=PASSIVE)",
     {}),
    ("TINYCONV_SHARE_CORES=0 (BLAS keeps its 2 threads beside the neighbour)",
     {"TINYCONV_SHARE_CORES": "0"}),
    ("OMP_WAIT_POLICY=ACTIVE (idle OpenMP threads spin)", {"OMP_WAIT_POLICY": "ACTIVE"}),
    ("numba 1 thread", {"NUMBA_NUM_THREADS": "1"}),
    ("OpenBLAS 1 thread", {"OPENBLAS_NUM_THREADS": "1"}),
    ("numba 1 + OpenBLAS 1", {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}),
    ("numba workqueue threading layer", {"NUMBA_THREADING_LAYER": "workqueue"}),
    ("OPENBLAS_THREAD_TIMEOUT=4 (idle BLAS threads sleep at once)",
     {"OPENBLAS_THREAD_TIMEOUT": "4"}),
]


class Neighbour:
    """A busy process beside the benchmark, for at most ``seconds`` (context manager)."""

    def __init__(self, seconds):
        env = {k: v for k, v in os.environ.items() if k not in (*_setup.BLAS_VARS,
                                                                 *_setup.THREAD_VARS)}
        self.proc = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(seconds)],
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.proc.stdout.readline()               # "ready": NumPy loaded, the loop starts
        time.sleep(0.5)                           # its threads are up and spinning

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()


def epochs(worker, case, rounds):
    """``rounds`` timed epochs in ``worker`` (no untimed call: the worker already ran one)."""
    times = []
    for _ in range(rounds):
        out = worker.run(case, _setup.LONG_RUNS, warm=False)
        if "error" in out:
            return out["error"]
        times += out["times"]
    return _setup.Timing(times)


def measure_pair(worker, case, rounds, seconds):
    """(idle Timing, busy Timing) of ``case`` in ``worker`` (first call made beforehand)."""
    idle = epochs(worker, case, rounds)
    with Neighbour(seconds):
        busy = epochs(worker, case, rounds)
    return idle, busy


def main(argv=None):
    ap = _setup.arg_parser(__doc__, f"{QUICK_EPOCH_DIGITS} digits, 1 round", "PyTorch")
    ap.add_argument("--investigate", action="store_true",
                    help="also time tinyconv under other thread policies")
    ap.add_argument("--neighbour-seconds", type=float, default=NEIGHBOUR_SECONDS,
                    help="the longest the busy neighbour may run")
    args = ap.parse_args(argv)
    if args.worker:
        return _setup.serve(args, make)

    header = _setup.configure(args.threads, torch=False)
    monitor = _setup.start_run(header, "quick" if args.quick else "full")
    header.append(f"neighbour: a separate python process multiplying 512x512 float32 matrices "
                  f"with NumPy in a loop (OpenBLAS' default threads), stopped after each busy "
                  f"measurement and never older than {args.neighbour_seconds:g} s")
    n = QUICK_EPOCH_DIGITS if args.quick else EPOCH_DIGITS
    rounds = 1 if args.quick else (args.rounds or _setup.LONG_ROUNDS)

    table = _setup.Table(
        f"One training epoch ({n} digits, batch 128, SGD), idle and beside a busy neighbour",
        ["library", "thread policy", "idle s", "idle best", "busy s", "busy best",
         "busy / idle (median)", "busy / idle (best)"],
        fmt={"idle s": "{:.2f}", "idle best": "{:.2f}", "busy s": "{:.2f}",
             "busy best": "{:.2f}", "busy / idle (median)": "{:.2f}",
             "busy / idle (best)": "{:.2f}"},
        notes=[f"{rounds} epoch(s) each way in the same worker after one untimed epoch; "
               f"the project's target for tinyconv is busy / idle <= {TARGET}. Command: "
               "python benchmarks/bench_contention.py"
               + (" --quick" if args.quick else "") + (" --investigate" if args.investigate
                                                        else "")])
    sides = ["tinyconv"] + ([] if args.no_torch else ["torch"])
    runs = [(side, POLICIES[0][0] if side == "tinyconv" else
             f"torch defaults, 2 threads, {TORCH_LAYOUT}", {}) for side in sides]
    if args.investigate:
        runs += [("tinyconv", label, env) for label, env in POLICIES[1:]]
    for side, label, env in runs:
        # bench_model's torch cases name the layout last (_setup.TORCH_LAYOUTS)
        case = f"epoch|{n}" if side == "tinyconv" else f"epoch|{n}|{TORCH_LAYOUT}"
        print(f"[bench_contention] {side}: {label} ...", file=sys.stderr, flush=True)
        with _setup.Worker(__file__, side, args.threads, env) as w:
            if not w.ok():
                table.add(side, label, w.info["error"], None, None, None, None, None)
                continue
            if not env:
                header += w.lines()
            w.run(case, _setup.LONG_RUNS, warm=False)          # first call, not counted
            idle, busy = measure_pair(w, case, rounds, args.neighbour_seconds)
        if isinstance(idle, str) or isinstance(busy, str):
            table.add(side, label, str(idle), None, str(busy), None, None, None)
            continue
        table.add(side, label, idle.median, idle.min, busy.median, busy.min,
                  busy.median / idle.median, busy.min / idle.min)
    header.append(monitor.line())
    _setup.report("bench_contention: a training epoch beside a busy neighbour", header,
                  [table], args.markdown)


if __name__ == "__main__":
    main()
