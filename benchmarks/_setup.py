"""Shared set-up for every ``bench_*.py``: a clean BLAS environment, pinned threads, timing, tables.

Import this module *before* NumPy. On import it checks the environment for variables that slow
OpenBLAS down (``OPENBLAS_CORETYPE`` forces a kernel family, ``OPENBLAS_L2_SIZE`` overrides
the cache size its sgemm blocks for; either can halve NumPy's float32 GEMM). If one is set,
the script re-executes itself with both removed, because OpenBLAS reads them once, when NumPy
loads it, and unsetting them afterwards changes nothing. The new process reports what was
removed in its header.

Then a script parses the shared options with :func:`arg_parser`, calls :func:`configure` (pins
BLAS, numba and torch to the same thread count and returns the header lines; NumPy, numba and
torch are imported there, never at the top of this module) and :func:`start_run` or
:func:`start_shapes` (the idle check, the mode line and the load monitor).

Every ratio against torch or Captum comes from :func:`compare` (or :func:`compare_passes`
for a layer's two passes): tinyconv and the reference each run in a fresh :class:`Worker`
process (the script itself with ``--worker tinyconv|torch``, served by :func:`serve`), with
:data:`THREAD_VARS` pinned and :data:`BLAS_VARS` removed from its environment before NumPy
loads (:func:`thread_env`); the two take turns for several rounds on cases that each worker
builds from the same seeded inputs, and each reports its first call apart. A script may add
:data:`CONTROL`, tinyconv's worker in a second process, as one more side: the A/A control,
whose ratio to tinyconv says how far apart two identical contenders land in the same run
(``--no-control`` skips it). ``--in-process``
keeps the older way, :func:`interleaved` (the callables in turns in one process). tinyconv
alone is timed with :func:`measure` (warm-up, then the median and minimum of repeated
``time.perf_counter`` runs). :class:`Table` objects print the results; :func:`layer_passes`,
:func:`pass_cells` and :func:`pass_table` are the one-layer comparison several scripts share,
:func:`time_layer` times a layer's forward and backward each alone.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

#: Environment variables that change OpenBLAS' kernel choice or blocking.
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Thread pools a child process gets pinned through its environment (see :func:`thread_env`).
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Set in the re-executed process: what the first process removed.
_MARKER = "TINYCONV_BENCH_REMOVED_ENV"


def _reexec_without_blas_vars():
    """Replace this process by a fresh one without :data:`BLAS_VARS` (no-op if none is set)."""
    found = {k: os.environ[k] for k in BLAS_VARS if k in os.environ}
    if not found:
        return
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    env[_MARKER] = " ".join(f"{k}={v}" for k, v in found.items())
    # on stderr: stdout is the report, which says the same in its header ("env: started without")
    print(f"re-executing without {env[_MARKER]}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # sys.orig_argv keeps interpreter options (-X, -u, ...) as well as the script's arguments
    argv = [sys.executable, *sys.orig_argv[1:]]
    os.execve(sys.executable, argv, env)


_reexec_without_blas_vars()


def is_reference(side):
    """Whether the worker ``side`` runs the reference (torch, Captum in a layout), not
    tinyconv or its A/A twin (``"tinyconv again"``)."""
    return not side.startswith("tinyconv")


def _reference_loads_first():
    """In a reference worker (``--worker SIDE`` with :func:`is_reference`): load torch now,
    before the script imports tinyconv. ``import tinyconv`` sets ``OMP_WAIT_POLICY=PASSIVE``
    for its own OpenMP pool unless the user set it, and torch's OpenMP runtime reads that
    variable once, as it loads; loaded first, torch runs with the environment a torch user's
    program would give it. Returns that value (``"unset"`` if so), or None when this is no
    reference worker or torch is not installed."""
    argv = sys.argv
    if "--worker" not in argv or argv.index("--worker") + 1 >= len(argv):
        return None
    if not is_reference(argv[argv.index("--worker") + 1]):
        return None
    given = os.environ.get("OMP_WAIT_POLICY", "unset")
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    return given


#: ``OMP_WAIT_POLICY`` as torch's OpenMP runtime read it in this worker (see above).
TORCH_WAIT_POLICY = _reference_loads_first()
#: What ``import tinyconv`` sets for its own pools unless the user did (tinyconv/__init__.py),
#: as this process was given them, before the script imported tinyconv: a reference worker
#: gets these back (:func:`thread_env`), so tinyconv's choice never reaches torch.
TINYCONV_DEFAULTS = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")
GIVEN_ENV = {k: os.environ.get(k) for k in TINYCONV_DEFAULTS}


# --------------------------------------------------------------------------- environment


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_lines(info):
    lines = []
    for lib in info:
        if lib.get("user_api") not in ("blas", "openmp"):
            continue
        arch = lib.get("architecture") or lib.get("corename") or "-"
        lines.append(f"{lib['user_api']}: {lib.get('internal_api')} {lib.get('version')} "
                     f"arch={arch} threads={lib.get('num_threads')} "
                     f"({os.path.basename(lib.get('filepath', ''))})")
    return lines


def configure(threads=2, torch=True, blas_threads=None):
    """Pin every thread pool to ``threads`` and describe the machine.

    Parameters
    ----------
    threads : threads for OpenMP and BLAS (via threadpoolctl), numba and torch.
    torch : also import and pin torch (its OpenMP / MKL pools then show in the BLAS lines).
    blas_threads : BLAS's threads, if not ``threads`` (a worker started with another
        ``OPENBLAS_NUM_THREADS`` than ``threads``, as ``bench_contention.py --investigate``
        starts some).

    Returns
    -------
    lines : list of str, the header every benchmark prints: what was removed from the
        environment, CPU, versions, the active BLAS and thread counts.
    """
    import numba
    import numpy as np

    import tinyconv
    try:
        import threadpoolctl
    except ImportError:         # optional: without it BLAS keeps its own thread count
        threadpoolctl = None

    lines = []
    removed = os.environ.get(_MARKER)
    if removed:
        lines.append(f"env: started without {removed} (they slow OpenBLAS' sgemm)")
    else:
        lines.append(f"env: clean (none of {', '.join(BLAS_VARS)} set)")

    versions = (f"python {platform.python_version()}, numpy {np.__version__}, "
                f"numba {numba.__version__}, tinyconv {tinyconv.__version__}")
    if torch:
        import torch as _torch
        _torch.set_num_threads(threads)
        versions += f", torch {_torch.__version__}"
    if threadpoolctl is not None:
        versions += f", threadpoolctl {threadpoolctl.__version__}"

    # numba first: this starts its thread pool (its OpenMP library loads now), so that the
    # limit below reaches that library too
    numba_threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(numba_threads)
    # a global limit (not a `with` block): it stays in force for the whole script; the
    # reference is kept so that it is not garbage-collected and restored early
    global _LIMITS
    if threadpoolctl is not None:
        blas_threads = threads if blas_threads is None else blas_threads
        _LIMITS = threadpoolctl.threadpool_limits(limits={"blas": blas_threads,
                                                          "openmp": threads})

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    lines.append(f"cpu: {_cpu_model()}, {os.cpu_count()} logical cores ({usable} usable), "
                 f"{platform.system()} {platform.release()}")
    lines.append(f"versions: {versions}")
    if threadpoolctl is not None:
        lines += _blas_lines(threadpoolctl.threadpool_info())
        blas = str(blas_threads)
    else:
        lines.append("blas: threadpoolctl not installed: the BLAS kernel is not verified")
        blas = f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')} (from the environment)"
    thread_line = f"threads: BLAS {blas}, numba {numba_threads}"
    if torch:
        thread_line += f", torch {_torch.get_num_threads()}"
    lines.append(thread_line)
    return lines


_LIMITS = None


class LoadMonitor:
    """How much of the machine *other* processes used between construction and :meth:`line`.

    Benchmarks on a shared machine are only as good as its idleness: this reads the CPU
    counters of ``/proc/stat`` (Linux) and subtracts this process' own CPU time (threads and
    waited-for children included), so a busy neighbour shows up in the report.
    """

    def __init__(self):
        self._start = self._snapshot()

    @staticmethod
    def _snapshot():
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(ticks) - ticks[3] - ticks[4]) / hz       # all CPUs, minus idle and iowait
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return time.perf_counter(), busy, own

    def others(self):
        """Fraction of all CPUs used by other processes so far (None if unknown)."""
        end = self._snapshot()
        if self._start is None or end is None:
            return None
        wall = end[0] - self._start[0]
        other = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return max(0.0, other / (wall * (os.cpu_count() or 1))) if wall > 0 else None

    def line(self, what="during this run"):
        frac = self.others()
        if frac is None:
            return "load: unknown (no /proc/stat)"
        warn = "  <- a busy machine: trust the min columns more than the medians" \
            if frac > 0.10 else ""
        return (f"load: other processes used {100 * frac:.0f}% of the CPUs {what}; "
                f"loadavg {os.getloadavg()[0]:.2f}{warn}")


def idle_check(seconds=1.0):
    """Sample the machine for ``seconds`` before a benchmark starts; returns the report line."""
    mon = LoadMonitor()
    time.sleep(seconds)
    return mon.line(f"in the {seconds:g} s before the start")


# --------------------------------------------------------------------------- a script's start


def arg_parser(doc, quick_help, compare=None, control=False):
    """The options every benchmark takes: ``--quick``, ``--markdown PATH``, ``--threads N`` and,
    in a script that compares with torch or a library built on it, ``--no-torch``.

    Parameters
    ----------
    doc : the script's docstring; its first line describes the script.
    quick_help : the help of ``--quick``: what it makes smaller.
    compare : the library the script compares with (``"PyTorch"``, ``"Captum"``), or None: then
        there is no ``--no-torch`` and ``--threads`` pins BLAS and numba only.
    control : the script runs the A/A control (:data:`CONTROL`): add ``--no-control``.

    Returns
    -------
    argparse.ArgumentParser, for the script to add its own options to and parse.
    """
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--markdown", metavar="PATH", help="also write the tables as markdown")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads for BLAS, numba, torch" if compare
                    else "threads for BLAS and numba")
    if compare:
        ap.add_argument("--no-torch", action="store_true",
                        help=f"skip the {compare} comparison")
        ap.add_argument("--in-process", action="store_true",
                        help=f"time tinyconv and {compare} in this one process, in turns "
                        "(default: each in its own fresh worker process)")
        ap.add_argument("--rounds", type=int, default=None,
                        help=f"rounds in which the tinyconv and {compare} workers take turns "
                        f"(default {ROUNDS}, --quick {QUICK_ROUNDS})")
        ap.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    if control:
        ap.add_argument("--no-control", action="store_true",
                        help="skip the A/A control (tinyconv's worker in a second process)")
    return ap


def thread_env(threads, reference=False, **extra):
    """The environment of a child process: this one's without :data:`BLAS_VARS`, with numba,
    OpenMP, OpenBLAS and MKL pinned to ``threads`` (:data:`THREAD_VARS`), and the variables
    ``extra`` added. The children read these when their libraries load, before any code of
    theirs runs, so the pinning holds for every thread pool they start. A ``reference``
    child (torch's side) gets :data:`TINYCONV_DEFAULTS` as the user gave them, not as this
    process's ``import tinyconv`` set them."""
    found = " ".join(f"{k}={os.environ[k]}" for k in BLAS_VARS if k in os.environ)
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    if reference:
        for k, v in GIVEN_ENV.items():
            env.pop(k, None)
            if v is not None:
                env[k] = v
    removed = os.environ.get(_MARKER) or found
    if removed:
        env[_MARKER] = removed          # the child's header says what was removed
    env.update({k: str(threads) for k in THREAD_VARS})
    env.update(extra)
    return env


def start_run(header, mode):
    """Start the measured part of a script (after what must stay out of it, such as the first
    numba calls): append the :func:`idle_check` line and ``"mode: " + mode`` to ``header``.

    Returns
    -------
    LoadMonitor, started between the two lines; its :meth:`LoadMonitor.line` ends the header.
    """
    header.append(idle_check())
    monitor = LoadMonitor()
    header.append(f"mode: {mode}")
    return monitor


def start_shapes(header, shapes, quick, divisor, min_batch=1, turns=False):
    """:func:`start_run` for a script that times a list of shapes whose first number is the batch.

    In quick mode each batch is divided by ``divisor`` (but kept at least ``min_batch``) and
    the other sizes stay. The mode line says which mode this is, that times are medians, and,
    with ``turns``, that tinyconv and torch are timed in turns.

    Returns
    -------
    (shapes to time, LoadMonitor)
    """
    if quick:
        shapes = [(max(min_batch, s[0] // divisor), *s[1:]) for s in shapes]
    mode = (("quick (smaller batches, fewer runs)" if quick else "full")
            + "; times are medians over repeated runs after warm-up"
            + (", tinyconv and torch timed in turns" if turns else ""))
    return shapes, start_run(header, mode)


# --------------------------------------------------------------------------- timing


class Timing:
    """The median and minimum of ``n`` timed runs, in seconds."""

    def __init__(self, times):
        self.times = list(times)
        self.median = statistics.median(self.times)
        self.min = min(self.times)
        self.n = len(self.times)

    @property
    def ms(self):
        return 1e3 * self.median

    def __repr__(self):
        return f"Timing(median={self.ms:.3f} ms, min={1e3 * self.min:.3f} ms, n={self.n})"


def measure(fn, quick=False, warmup=None, budget=None, min_runs=None, max_runs=None):
    """Time ``fn()``: warm-up calls, then enough runs to fill ``budget`` seconds.

    The last warm-up call sets the number of runs: ``clamp(budget / t, min_runs, max_runs)``.
    Defaults: full mode 2 warm-ups, 2 s, 5..50 runs; quick mode 1 warm-up, 0.3 s, 3..10 runs.

    Returns
    -------
    Timing
    """
    warmup = warmup if warmup is not None else (1 if quick else 2)
    budget = budget if budget is not None else (0.3 if quick else 2.0)
    min_runs = min_runs if min_runs is not None else (3 if quick else 5)
    max_runs = max_runs if max_runs is not None else (10 if quick else 50)
    t = 0.0
    for _ in range(max(warmup, 1)):
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
    n = int(min(max(budget / max(t, 1e-9), min_runs), max_runs))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(times)


def first_call(fn):
    """Seconds taken by one call of ``fn()`` (meant for the first call in a fresh process)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns, quick):
    """Time several callables in turns, so that a busy spell of the machine falls on all of
    them alike: rounds in which each one is called twice and the second call is timed.

    The untimed call lets the other library's idle threads wind down first: OpenBLAS and
    OpenMP workers spin for a while after a call, and would slow whatever runs next. A warm-up
    round (each callable once, never timed) sets the number of rounds, which fill a budget
    (full: 8 s, 10 to 40 rounds; quick: 1 s, 3 to 6 rounds). A single callable has nothing to
    take turns with: it is timed by :func:`measure`.

    Returns
    -------
    list of Timing, one per callable, in the order of ``fns``.
    """
    fns = list(fns)
    if len(fns) == 1:
        return [measure(fns[0], quick=quick)]
    budget, lo, hi = (1.0, 3, 6) if quick else (8.0, 10, 40)
    t_round = 2 * sum(first_call(fn) for fn in fns)      # the warm-up round
    times = [[] for _ in fns]
    for _ in range(int(min(max(budget / max(t_round, 1e-9), lo), hi))):
        for fn, ts in zip(fns, times, strict=True):
            fn()
            ts.append(first_call(fn))
    return [Timing(ts) for ts in times]


def torch_available(skip=False):
    """Whether to compare against torch: not skipped (``--no-torch``) and importable."""
    if skip:
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def layer_passes(layer, x, dy):
    """The two passes of one tinyconv layer that are compared with torch, called with
    ``check=False`` as ``Sequential`` calls them.

    Returns ``{"forward": fn, "fwd+bwd": fn}``: ``layer.forward(x)``, and that followed by
    ``layer.backward(dy)`` (which returns ``dx``).
    """
    def forward():
        return layer.forward(x, check=False)

    def forward_backward():
        layer.forward(x, check=False)
        return layer.backward(dy, check=False)

    return {"forward": forward, "fwd+bwd": forward_backward}


#: torch's two memory layouts of an NCHW tensor. Every reference run by torch is timed in
#: both, and a ratio is against the faster one (by median).
TORCH_LAYOUTS = ("NCHW", "channels_last")


def torch_format(torch, layout):
    """The ``torch.memory_format`` of a layout of :data:`TORCH_LAYOUTS`."""
    return {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}[layout]


def nchw(torch, a, layout):
    """The NHWC NumPy array ``a`` as an NCHW tensor (a copy) with the strides of ``layout``.

    The strides are set explicitly: a view of the transpose (or ``np.ascontiguousarray`` of
    it) picks the layout by accident. With one channel, NHWC strides ``(HW, 1, W, 1)`` are
    channels_last's too, torch's convolutions then run channels_last, and the shipped model's
    forward takes a third to two thirds of its NCHW time (batches 64 and 256, several runs).
    """
    return torch.from_numpy(a).permute(0, 3, 1, 2).clone(memory_format=torch_format(torch,
                                                                                    layout))


def torch_copy(model, layout):
    """``tc.to_torch(model)`` with its weights in ``layout`` (one of :data:`TORCH_LAYOUTS`),
    the network for inputs made by :func:`nchw` in that layout."""
    import torch

    import tinyconv
    return tinyconv.to_torch(model).to(memory_format=torch_format(torch, layout))


def faster_layout(results, case, layouts=TORCH_LAYOUTS):
    """The reference's ``case`` in the faster of ``layouts`` by median, from
    :func:`compare`'s results (whose torch cases are ``f"{case}|{layout}"``):
    ``(layout, Result)``; if no layout was timed, ``(None, the first layout's Result)`` (its
    error says why), or ``(None, None)`` without a torch worker."""
    found = [(lay, results.get(("torch", f"{case}|{lay}"))) for lay in layouts]
    timed = [(lay, r) for lay, r in found if r is not None and r.timing is not None]
    if timed:
        return min(timed, key=lambda lr: lr[1].timing.median)
    return None, found[0][1]


def compare_passes(script, make, keys, args, layouts=TORCH_LAYOUTS):
    """Each pass of tinyconv against the same pass of torch in every layout, by :func:`compare`,
    and against itself in a second worker (:data:`CONTROL`) unless ``args.no_control``.

    ``make(side, case)`` gets ``case = f"{key}|{pass}|{layout}"`` (tinyconv's layout is
    ``NHWC``); ``keys`` name the shapes (e.g. the shape's numbers joined by commas, which
    ``make`` parses). The passes are ``forward`` and ``fwd+bwd``.

    Returns
    -------
    (dict ``(key, pass) -> (tinyconv Result, torch Result of the faster layout by median or
    None, that layout or None, the control's Result or None)``, the worker header lines)
    """
    groups = [[("tinyconv", f"{key}|{p}|NHWC"), *(("torch", f"{key}|{p}|{lay}") for lay in layouts)]
              for key in keys for p in ("forward", "fwd+bwd")]
    results, lines = compare(script, make, groups, args)
    out = {}
    for key in keys:
        for p in ("forward", "fwd+bwd"):
            ours = results[("tinyconv", f"{key}|{p}|NHWC")]
            twin = results.get((CONTROL, f"{key}|{p}|NHWC"))
            lay, best = faster_layout(results, f"{key}|{p}", layouts)
            out[key, p] = (ours, best, lay, twin) if lay is not None else (ours, None, None, twin)
    return out, lines


def pass_cells(ours, theirs, layout, work, twin=None):
    """The cells of one pass in a tinyconv-against-torch table.

    ``ours`` and ``theirs`` are Timings (``theirs`` None without torch), ``twin`` the
    control's (:data:`CONTROL`; None without it), ``work`` is what the pass does in units of
    1e9 (GFLOP, GB), so that ``work / median`` is a rate (GFLOP/s, GB/s).

    Returns
    -------
    tuple: tinyconv ms, min ms, rate; torch ms, min ms, layout, rate; tinyconv / torch (the
    ratio of the medians); tinyconv / the control (the A/A ratio of the medians). The torch
    cells are None without torch, the last without the control.
    """
    cells = (ours.ms, 1e3 * ours.min, work / ours.median)
    aa = ours.median / twin.median if twin is not None else None
    if theirs is None:
        return cells + (None,) * 5 + (aa,)
    return cells + (theirs.ms, 1e3 * theirs.min, layout, work / theirs.median,
                    ours.median / theirs.median, aa)


def time_layer(layer, x, dy, quick, **backward_kwargs):
    """A layer's ``forward(x)`` and ``backward(dy, **backward_kwargs)``, each timed alone by
    :func:`measure` with ``check=False`` as ``Sequential`` calls them (the backward runs on
    what the last forward on ``x`` left). Returns ``(forward Timing, backward Timing)``."""
    forward = measure(lambda: layer.forward(x, check=False), quick=quick)
    backward = measure(lambda: layer.backward(dy, check=False, **backward_kwargs), quick=quick)
    return forward, backward


# --------------------------------------------------------------------------- separate processes

#: A contender named ``who + AGAIN`` runs ``who``'s worker a second time, in a process of its
#: own: the A/A control, the ratio two identical contenders get on this machine in this run.
AGAIN = " again"
#: tinyconv's worker a second time: the A/A control of :func:`compare` and
#: :func:`compare_passes`, and of the scripts that start workers themselves.
CONTROL = "tinyconv" + AGAIN
CONTROL_NOTE = ("A/A (median) = tinyconv / tinyconv again, the same worker in a second process "
                "taking its turn in every round: how far from 1.00 two identical contenders "
                "land in this run (--no-control skips it; --in-process leaves it out). A "
                "ratio against the reference no farther from 1.00 is a tie.")


def spread(control):
    """``max(control, 1 / control)``: how far (as a factor) an A/A ratio is from 1.00."""
    return max(control, 1 / control)


def margin_floor(controls):
    """A run's typical A/A spread and the line that names it: ``(floor, note)``.

    ``floor`` is the median :func:`spread` over the run's A/A ratios ``controls`` (None
    skipped; 1.0 if there are none), how far apart two identical contenders typically landed
    in that run; :func:`verdict` takes it as its ``floor``. ``note`` goes under the verdict
    table so that a reader can redo each verdict from the printed columns; without any
    control (``--no-control``, ``--in-process``) it says that the median alone decides."""
    factors = sorted(spread(c) for c in controls if c is not None)
    if not factors:
        return 1.0, "margin floor: none, no A/A control in this run (the median alone decides)"
    floor = statistics.median(factors)
    return floor, ("margin floor, this run's typical A/A spread (median over its rows): "
                   f"{floor:.3f}")


def verdict(ratio, target, control=None, floor=1.0):
    """``"met"``, ``"tie"`` or ``"missed"``: a ratio of medians (tinyconv / reference)
    against its ``target``, at the resolution of this run's A/A control.

    The margin ``s`` is the larger of this row's ``control`` (tinyconv / tinyconv again on the
    same case, as a :func:`spread`) and ``floor``, the run's typical spread
    (:func:`margin_floor` over its rows), so that one row's lucky A/A of 1.00 does not make a
    1 % difference a result. Met when ``ratio * s <= target``, missed when
    ``ratio >= target * s``, a tie in between. Without a control (``None`` and ``floor``
    1.0: ``--no-control``, ``--in-process``) the median alone decides. None when ``ratio`` is.
    """
    if ratio is None:
        return None
    s = max(floor, 1.0 if control is None else spread(control))
    if ratio * s <= target:
        return "met"
    return "missed" if ratio >= target * s else "tie"


VERDICT_NOTE = ("verdict = the ratio of medians against the target at this run's resolution: "
                "met or missed only when it is farther from the target than two identical "
                "contenders landed (as a factor: this row's A/A control, or the median over "
                "the run's rows if that is larger), a tie otherwise; without the control, by "
                "the median alone.")


#: The two contenders of a comparison; each runs in a worker process of its own.
SIDES = ("tinyconv", "torch")
#: Rounds in which the workers take turns (full, --quick), and one round's timed calls:
#: (seconds to fill, fewest, most).
ROUNDS, QUICK_ROUNDS = 5, 1
ROUND_RUNS, QUICK_ROUND_RUNS = (0.4, 3, 20), (0.05, 1, 2)


class Result:
    """One case of one contender: the first call in its fresh process (seconds: numba's
    compile or cache load, torch's lazy set-up) and the :class:`Timing` of every timed call
    of every round; or ``error``, why the case could not run (a missing library)."""

    def __init__(self, first=None, times=(), error=None):
        self.first = first
        self.timing = Timing(times) if times else None
        self.error = error

    def __repr__(self):
        return f"Result(first={self.first}, timing={self.timing}, error={self.error!r})"


def _worker_main(side, make, threads):
    """The loop of a worker process (``bench_x.py --worker SIDE``).

    It pins its thread pools (:func:`configure`), sends one line describing itself (the
    header lines: BLAS kernel and threads as threadpoolctl sees them, and the environment
    variables it started with), then serves requests from stdin, one JSON line each:
    ``{"case": name, "runs": [budget, fewest, most]}`` builds ``make(side, name)`` (once per
    case; its first call is timed on its own), calls it once untimed (the other worker's
    idle threads wind down, caches fill) and then times calls until the budget is spent;
    ``{"drop": name}`` forgets a case, ``{"stop": true}`` ends the loop. The replies go to
    the original stdout; anything the libraries print goes to stderr.
    """
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(obj):
        try:
            reply.write(json.dumps(obj) + "\n")
            reply.flush()
        except BrokenPipeError:             # the script that started this worker is gone
            os._exit(0)

    try:
        # the worker's environment pins BLAS to ``threads`` unless a policy asked for another
        blas = os.environ.get("OPENBLAS_NUM_THREADS", "")
        header = configure(threads, torch=side == "torch",
                           blas_threads=int(blas) if blas.isdigit() else None)
    except ImportError as e:                  # torch missing: this side cannot run
        send({"error": f"{e.name or e} not installed"})
        return
    env = {k: os.environ.get(k) for k in (*BLAS_VARS, *THREAD_VARS)}
    if TORCH_WAIT_POLICY is not None:
        header.append(f"torch loaded before tinyconv, OMP_WAIT_POLICY {TORCH_WAIT_POLICY} "
                      "(torch's default unless the user set it)")
    send({"side": side, "pid": os.getpid(), "header": header, "env": env})
    built = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("stop"):
            break
        if "drop" in req:
            built.pop(req["drop"], None)
            continue
        if "probe" in req:                     # one untimed call whose result is sent
            try:
                send({"value": make(side, req["probe"])()})
            except Exception as e:  # noqa: BLE001 -- reported in the table
                send({"error": f"{type(e).__name__}: {e}"})
            continue
        name = req["case"]
        try:
            first = None
            if name not in built:
                fn = make(side, name)
                first = first_call(fn)
                built[name] = fn
            fn = built[name]
            if req.get("warm", True):
                fn()
            budget, lo, hi = req["runs"]
            times = []
            while len(times) < hi and (len(times) < lo or sum(times) < budget):
                times.append(first_call(fn))
            send({"first": first, "times": times})
        except ImportError as e:
            send({"error": f"{e.name or e} not installed"})
        except Exception as e:  # noqa: BLE001 -- reported in the table, the run goes on
            send({"error": f"{type(e).__name__}: {e}"})


class Worker:
    """A fresh Python process running ``script --worker side``: see :func:`_worker_main`.

    Its environment is :func:`thread_env` (OpenBLAS overrides removed, every thread pool
    pinned to ``threads``) plus ``env``. ``info`` is its first line (or ``{"error": ...}``).
    """

    def __init__(self, script, side, threads, env=None, argv=()):
        self.side = side
        # a side ``who + AGAIN`` is ``who``'s worker in a second process
        cmd = [sys.executable, os.path.abspath(script), "--worker", side.removesuffix(AGAIN),
               "--threads", str(threads), *argv]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=thread_env(
                                         threads, reference=is_reference(side),
                                         **(env or {})))
        self.info = self._recv()

    def _recv(self):
        line = self.proc.stdout.readline()
        if not line:
            return {"error": f"worker exited with {self.proc.wait()} (see stderr)"}
        return json.loads(line)

    def ok(self):
        return "error" not in self.info and self.proc.poll() is None

    def run(self, case, runs, warm=True):
        """One round of ``case`` (``warm``: with an untimed call first); the worker's reply."""
        if not self.ok():
            return {"error": self.info.get("error", "worker gone")}
        self.proc.stdin.write(json.dumps({"case": case, "runs": list(runs), "warm": warm})
                              + "\n")
        self.proc.stdin.flush()
        out = self._recv()
        if "error" in out and self.proc.poll() is not None:
            self.info = out
        return out

    def probe(self, case):
        """Call ``make(side, case)()`` once in the worker; its JSON result (or ``error``)."""
        if not self.ok():
            return {"error": self.info.get("error", "worker gone")}
        self.proc.stdin.write(json.dumps({"probe": case}) + "\n")
        self.proc.stdin.flush()
        return self._recv()

    def drop(self, case):
        if self.ok():
            self.proc.stdin.write(json.dumps({"drop": case}) + "\n")
            self.proc.stdin.flush()

    def lines(self):
        """Header lines: this worker's pid, environment check and BLAS lines."""
        if "error" in self.info:
            return [f"worker {self.side}: {self.info['error']}: skipped"]
        env = self.info["env"]
        bad = [k for k in BLAS_VARS if env.get(k) is not None]
        pins = ", ".join(f"{k}={env.get(k)}" for k in THREAD_VARS)
        out = [f"worker {self.side} (pid {self.info['pid']}): "
               + (f"STILL SET: {', '.join(bad)}" if bad else f"{' and '.join(BLAS_VARS)} "
                  "unset before NumPy loaded") + f"; {pins}"]
        out += [f"  {line}" for line in self.info["header"]
                if line.startswith(("blas", "openmp", "threads", "versions", "torch loaded"))]
        return out

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"stop": True}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fresh_worker_rounds(script, contenders, rounds, threads, argv=()):
    """Run ``script --worker WHO *argv`` once per contender and round, each a fresh process.

    The order is reversed every other round, so a busy spell of the machine falls on every
    contender; each child gets :func:`thread_env` (OpenBLAS overrides removed, every pool
    pinned to ``threads``) and prints one JSON line, its last. A contender ``who + AGAIN``
    runs ``--worker who``. A child that replies ``{"missing": name}`` (torch not installed)
    ends the other contenders' rounds: only the first of ``contenders`` (and its ``AGAIN``
    twin) goes on. A child that fails ends the script with its stderr.

    Returns
    -------
    (dict contender -> list of replies, one per round it ran; the missing package or None)
    """
    replies, missing, live = {who: [] for who in contenders}, None, list(contenders)
    for r in range(rounds):
        for who in (live if r % 2 == 0 else live[::-1]):
            if who not in live:
                continue
            done = subprocess.run([sys.executable, os.path.abspath(script), "--worker",
                                   who.removesuffix(AGAIN), "--threads", str(threads), *argv],
                                  env=thread_env(threads, reference=is_reference(who)),
                                  capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{who} worker failed:\n{done.stderr}")
            reply = json.loads(done.stdout.strip().splitlines()[-1])
            if "missing" in reply:
                missing = reply["missing"]
                live = [c for c in live if c.removesuffix(AGAIN) == contenders[0]]
                continue
            replies[who].append(reply)
    return replies, missing


def rounds_parser(doc, workers, repeats, quick_help):
    """The options of a script whose contenders run by :func:`fresh_worker_rounds`:
    ``--rounds`` (5), ``--repeats``, ``--threads`` (2), ``--quick``, ``--markdown PATH`` and
    the hidden ``--worker`` (one of ``workers``). The script adds its own and parses."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--markdown", metavar="PATH", help="also write the tables to PATH")
    ap.add_argument("--worker", choices=workers, help=argparse.SUPPRESS)
    return ap


def pin_worker(threads, torch=False):
    """In a child of :func:`fresh_worker_rounds`, after ``import tinyconv`` (which loads
    NumPy): every pool threadpoolctl finds, and with ``torch`` torch's, to ``threads``.
    Without threadpoolctl the pools keep the thread counts of the child's environment
    (:func:`thread_env`). Returns False, having printed the ``{"missing": name}`` reply that
    :func:`fresh_worker_rounds` expects, when ``torch`` is asked for and not installed."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass
    if torch:
        try:
            import torch as torch_module
        except ImportError as e:
            print(json.dumps({"missing": e.name or str(e)}))
            return False
        torch_module.set_num_threads(threads)
    return True


def times_of(fn, repeats, warmup=2):
    """``repeats`` wall times of ``fn()`` in seconds, after ``warmup`` untimed calls: the
    timing of a :func:`fresh_worker_rounds` child, whose rounds are fixed counts of calls
    (:func:`measure` fills a time budget instead)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def rounds_line(args, load0, calls, extra=""):
    """The first line of a :func:`fresh_worker_rounds` script's text: rounds, ``calls`` per
    worker and round (``"passes"``, ``"repeats"``), threads, ``extra``, the 1-minute load
    average ``load0`` at the start and now, the cores."""
    return (f"{args.rounds} rounds x {args.repeats} {calls}, {args.threads} threads per "
            f"process, {extra}load average (1 min) {load0:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores")


def finish_text(args, script, doc, lines, missing, reference="torch",
                install="torch==2.13.0"):
    """The end of a script whose output is text: a line saying that ``reference`` was skipped
    for want of ``missing`` (if it was), the lines printed, and written to ``--markdown``
    (:func:`write_text_markdown`)."""
    if missing:
        lines = [*lines, f"{reference}: {missing} not installed: skipped (pip install "
                 f"{install}; README says how to get the CPU build)"]
    text = "\n".join(lines)
    sys.stdout.write(text + "\n")
    if args.markdown:
        write_text_markdown(args.markdown, script, doc, text, args.quick)


def serve(args, make):
    """A script's ``--worker SIDE`` mode: serve ``make``'s cases (see :func:`_worker_main`)."""
    _worker_main(args.worker, make, args.threads)


def run_mode(args):
    """The mode line's account of how contenders are timed (for :func:`start_run`)."""
    if getattr(args, "in_process", False):
        return ("IN-PROCESS: tinyconv and torch share this process and are timed in turns "
                "(not what benchmarks/README.md quotes)")
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    budget, lo, hi = QUICK_ROUND_RUNS if args.quick else ROUND_RUNS
    return (f"separate processes: tinyconv and torch each in a fresh worker, {rounds} "
            f"alternating round(s) per case, each an untimed call then {lo}-{hi} timed calls "
            f"filling {budget:g} s; best and median over all timed calls; first call "
            "timed apart")


#: Rounds and timed calls per round of a long case (a training epoch): fewer, and no untimed
#: call before each round (a call of seconds needs no warming).
LONG_ROUNDS, LONG_RUNS = 3, (0.0, 1, 1)


def compare(script, make, groups, args, env=None, sides=SIDES, probes=(), long=()):
    """Time cases of tinyconv and of its reference, each side in its own worker process.

    Parameters
    ----------
    script : the calling script's path (``__file__``): the workers run it with ``--worker``.
    make : ``make(side, case) -> callable``, called in the worker (and here, with
        ``--in-process``); it builds the case from the same seeded inputs on both sides.
    groups : list of lists of ``(side, case)``: the members of a group take turns, round by
        round (the order reversed every other round), and are dropped after their last round.
    args : the parsed options (``quick``, ``threads``, ``rounds``, ``in_process``, ``no_torch``,
        and ``no_control`` in a script whose :func:`arg_parser` has ``control``: unless it is
        set, every tinyconv job gets a twin just after it in its group, ``(CONTROL, case)``,
        timed by tinyconv's worker in a second process, the A/A control; ``--in-process``
        has none, since it would be the same process).
    env : extra environment variables for the workers.
    sides : which workers to start (:data:`CONTROL`'s too, with the control).
    probes : ``(side, case)`` pairs whose ``make(side, case)()`` is called once, untimed, after
        the timings, and whose JSON result is returned under ``("probe", side, case)``
        (e.g. a check that both libraries compute the same numbers).
    long : cases that take seconds: :data:`LONG_ROUNDS` rounds of :data:`LONG_RUNS` calls.

    Returns
    -------
    (dict ``(side, case) -> Result``, header lines describing the workers)
    """
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    runs = QUICK_ROUND_RUNS if args.quick else ROUND_RUNS
    skip = {"torch"} if getattr(args, "no_torch", False) else set()
    results = {}
    if getattr(args, "in_process", False):
        return (_compare_in_process(make, groups, args, skip, probes),
                ["workers: none (--in-process)"])
    if not getattr(args, "no_control", True) and "tinyconv" in sides:
        groups = [[member for job in group
                   for member in ([job, (CONTROL, job[1])] if job[0] == "tinyconv" else [job])]
                  for group in groups]
        sides = (*sides, CONTROL)
    workers = {side: Worker(script, side, args.threads, env) for side in sides
               if side not in skip}
    try:
        for group in groups:
            group = [job for job in group if job[0] in workers]
            first, times, errors = {}, {job: [] for job in group}, {}
            slow = any(case in long for _, case in group)
            for r in range(min(rounds, LONG_ROUNDS) if slow else rounds):
                for job in (group if r % 2 == 0 else group[::-1]):
                    if job in errors:
                        continue
                    out = workers[job[0]].run(job[1], LONG_RUNS if slow else runs,
                                              warm=not slow)
                    if "error" in out:
                        errors[job] = out["error"]
                        continue
                    if out["first"] is not None:
                        first[job] = out["first"]
                    times[job] += out["times"]
            for job in group:
                results[job] = Result(first.get(job), times[job], errors.get(job))
                workers[job[0]].drop(job[1])
        for side, case in probes:
            if side in workers:
                results[("probe", side, case)] = workers[side].probe(case)
        lines = [line for w in workers.values() for line in w.lines()]
    finally:
        for w in workers.values():
            w.close()
    for side in skip:
        lines.append(f"worker {side}: --no-torch: skipped")
    return results, lines


def _compare_in_process(make, groups, args, skip, probes):
    """:func:`compare` with every callable in this process, each group timed in turns."""
    results = {}
    for group in groups:
        group = [job for job in group if job[0] not in skip]
        fns, firsts = [], []
        for job in group:
            try:
                fn = make(*job)
                firsts.append(first_call(fn))
                fns.append(fn)
            except ImportError as e:
                results[job] = Result(error=f"{e.name or e} not installed")
        live = [job for job in group if job not in results]
        for job, first, t in zip(live, firsts, interleaved(fns, args.quick) if fns else [],
                                 strict=True):
            results[job] = Result(first, t.times)
    for side, case in probes:
        if side not in skip:
            try:
                results[("probe", side, case)] = {"value": make(side, case)()}
            except ImportError as e:
                results[("probe", side, case)] = {"error": f"{e.name or e} not installed"}
    return results


# --------------------------------------------------------------------------- tables


class Table:
    """A titled table printed with aligned columns, or rendered as markdown.

    Cells are strings or numbers; floats are shown with ``fmt`` (per column, or ``"{:.3g}"``).
    Numeric columns are right-aligned.
    """

    def __init__(self, title, columns, fmt=None, notes=()):
        self.title = title
        self.columns = list(columns)
        self.fmt = dict(fmt or {})
        self.rows = []
        self.notes = list(notes)

    def add(self, *cells):
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table {self.title!r} has "
                             f"{len(self.columns)} columns")
        self.rows.append(cells)

    def _cell(self, col, v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return self.fmt.get(col, "{:.3g}").format(v)
        return str(v)

    def _grid(self):
        cells = [[self._cell(c, v) for c, v in zip(self.columns, row, strict=True)]
                 for row in self.rows]
        numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in self.rows)
                   for i in range(len(self.columns))]
        return cells, numeric

    def render(self):
        """Plain text, columns aligned, for the terminal."""
        cells, numeric = self._grid()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]

        def line(items):
            return "  ".join(s.rjust(w) if num else s.ljust(w)
                             for s, w, num in zip(items, widths, numeric, strict=True)).rstrip()

        out = [self.title, line(self.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in cells]
        out += self.notes
        return "\n".join(out)

    def markdown(self):
        """A GitHub-flavoured markdown table under a bold title."""
        cells, numeric = self._grid()
        out = [f"**{self.title}**", "",
               "| " + " | ".join(self.columns) + " |",
               "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in cells]
        if self.notes:
            out += [""] + [f"{n}  " for n in self.notes]
        return "\n".join(out)


def pass_table(title, shape, rate, note, turns):
    """The table of tinyconv against torch, one row per shape and pass, with the cells that
    :func:`pass_cells` returns after the first two (the shape's name, the pass).

    Parameters
    ----------
    title : the table's title.
    shape : the heading of the first column.
    rate : the unit of ``work / median`` (``"GFLOP/s"``, ``"GB/s"``); torch's column is
        ``"torch " + rate``.
    note : what the rate counts and how to read the columns.
    turns : the Timings come from :func:`compare_passes` with torch: the note then says how.
    """
    return Table(
        title,
        [shape, "pass", "tinyconv ms", "tinyconv min", rate, "torch ms", "torch min",
         "torch layout", f"torch {rate}", "tinyconv/torch", "A/A (median)"],
        fmt={"tinyconv ms": "{:.2f}", "tinyconv min": "{:.2f}", "torch ms": "{:.2f}",
             "torch min": "{:.2f}", rate: "{:.1f}", f"torch {rate}": "{:.1f}",
             "tinyconv/torch": "{:.2f}", "A/A (median)": "{:.2f}"},
        notes=[note + (" tinyconv and torch (both layouts) ran in separate worker processes "
                       "taking turns, see the mode line." if turns else ""), CONTROL_NOTE])


def write_text_markdown(path, script, doc, text, quick=False):
    """Write a script's printed ``text`` to ``path`` as a markdown section: the first line of
    its docstring ``doc`` as the title, the text as it was printed, and the command that
    reproduces it, ``python benchmarks/<script's file name>`` (with ``--quick`` if it ran so),
    for scripts whose output is not :class:`Table` objects; those go through :func:`report`."""
    title = doc.splitlines()[0]
    command = f"python benchmarks/{os.path.basename(script)}{' --quick' if quick else ''}"
    with open(path, "w") as f:
        f.write(f"### {title}\n\n```\n{text.rstrip()}\n```\n\nCommand: {command}\n")


def report(title, header, tables, markdown_path=None):
    """Print ``header`` lines and ``tables``; optionally write them all to a markdown file."""
    print(title)
    print("\n".join(header))
    for t in tables:
        print()
        print(t.render())
    sys.stdout.flush()
    if markdown_path:
        text = [f"### {title}", "", "```", *header, "```", ""]
        for t in tables:
            text += [t.markdown(), ""]
        with open(markdown_path, "w") as f:
            f.write("\n".join(text))
        print(f"\nmarkdown written to {markdown_path}")
