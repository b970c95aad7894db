"""Shared set-up for every ``bench_*.py``: a clean BLAS environment, pinned threads, timing, tables.

Import this module *before* NumPy. On import it checks the environment for variables that slow
OpenBLAS down (``OPENBLAS_CORETYPE`` forces a kernel family, ``OPENBLAS_L2_SIZE`` overrides
the cache size its sgemm blocks for; either can halve NumPy's float32 GEMM). If one is set,
the script re-executes itself with both removed, because OpenBLAS reads them once, when NumPy
loads it, and unsetting them afterwards changes nothing. The new process reports what was
removed in its header.

Then a script parses the shared options with :func:`arg_parser`, calls :func:`configure` (pins
BLAS, numba and torch to the same thread count and returns the header lines; NumPy, numba and
torch are imported there, never at the top of this module) and, once the first numba calls are
out of the way, :func:`start_run` or :func:`start_shapes` (the idle check, the mode line and
the load monitor); it times callables with :func:`measure` (warm-up, then the median and
minimum of repeated ``time.perf_counter`` runs) or, to compare libraries, with
:func:`interleaved` (the callables in turns, so that all of them see the same machine), and
prints :class:`Table` objects. :func:`layer_passes`, :func:`time_passes` and
:func:`pass_cells` are the tinyconv-against-torch comparison of one layer that several scripts
share, and :func:`pass_table` the table they fill; :func:`time_layer` times a layer's forward and
backward each alone. :func:`thread_env` is the environment for a child process.
"""

import argparse
import os
import platform
import statistics
import sys
import time

#: Environment variables that change OpenBLAS' kernel choice or blocking.
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Set in the re-executed process: what the first process removed.
_MARKER = "TINYCONV_BENCH_REMOVED_ENV"


def _reexec_without_blas_vars():
    """Replace this process by a fresh one without :data:`BLAS_VARS` (no-op if none is set)."""
    found = {k: os.environ[k] for k in BLAS_VARS if k in os.environ}
    if not found:
        return
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    env[_MARKER] = " ".join(f"{k}={v}" for k, v in found.items())
    print(f"re-executing without {env[_MARKER]}", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # sys.orig_argv keeps interpreter options (-X, -u, ...) as well as the script's arguments
    argv = [sys.executable, *sys.orig_argv[1:]]
    os.execve(sys.executable, argv, env)


_reexec_without_blas_vars()


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


def configure(threads=2, torch=True):
    """Pin every thread pool to ``threads`` and describe the machine.

    Parameters
    ----------
    threads : threads for BLAS (via threadpoolctl), numba and torch.
    torch : also import and pin torch (its OpenMP / MKL pools then show in the BLAS lines).

    Returns
    -------
    lines : list of str, the header every benchmark prints: what was removed from the
        environment, CPU, versions, the active BLAS and thread counts.
    """
    import numba
    import numpy as np
    import threadpoolctl

    import tinyconv

    lines = []
    removed = os.environ.get(_MARKER)
    if removed:
        lines.append(f"env: re-executed without {removed} (they slow OpenBLAS' sgemm)")
    else:
        lines.append(f"env: clean (none of {', '.join(BLAS_VARS)} set)")

    versions = (f"python {platform.python_version()}, numpy {np.__version__}, "
                f"numba {numba.__version__}, tinyconv {tinyconv.__version__}")
    if torch:
        import torch as _torch
        _torch.set_num_threads(threads)
        versions += f", torch {_torch.__version__}"
    versions += f", threadpoolctl {threadpoolctl.__version__}"

    # numba first: this starts its thread pool (its OpenMP library loads now), so that the
    # limit below reaches that library too
    numba_threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(numba_threads)
    # a global limit (not a `with` block): it stays in force for the whole script; the
    # reference is kept so that it is not garbage-collected and restored early
    global _LIMITS
    _LIMITS = threadpoolctl.threadpool_limits(limits=threads)

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    lines.append(f"cpu: {_cpu_model()}, {os.cpu_count()} logical cores ({usable} usable), "
                 f"{platform.system()} {platform.release()}")
    lines.append(f"versions: {versions}")
    lines += _blas_lines(threadpoolctl.threadpool_info())
    thread_line = f"threads: BLAS {threads}, numba {numba_threads}"
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


def arg_parser(doc, quick_help, compare=None):
    """The options every benchmark takes: ``--quick``, ``--markdown PATH``, ``--threads N`` and,
    in a script that compares with torch or a library built on it, ``--no-torch``.

    Parameters
    ----------
    doc : the script's docstring; its first line describes the script.
    quick_help : the help of ``--quick``: what it makes smaller.
    compare : the library the script compares with (``"PyTorch"``, ``"Captum"``), or None: then
        there is no ``--no-torch`` and ``--threads`` pins BLAS and numba only.

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
    return ap


def thread_env(threads, **extra):
    """The environment of a child process: this one's, with numba, OpenMP, OpenBLAS and MKL
    pinned to ``threads``, and the variables ``extra`` added."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
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


def time_passes(ours, theirs, quick):
    """Time each pass of tinyconv together with the same pass of torch in every layout.

    Parameters
    ----------
    ours : dict ``pass -> callable`` (tinyconv), e.g. from :func:`layer_passes`.
    theirs : dict ``layout -> {pass -> callable}`` (torch); empty to time tinyconv alone.
    quick : the budget of :func:`interleaved`.

    Each pass is one :func:`interleaved` call over tinyconv's callable and every layout's, so
    the ratio of tinyconv's median to torch's comes from the same rounds.

    Returns
    -------
    dict ``pass -> (tinyconv Timing, torch Timing, torch layout)``: torch's faster layout by
    median, or ``None, None`` without torch.
    """
    out = {}
    for pass_, fn in ours.items():
        layouts = list(theirs)
        ours_t, *torch_ts = interleaved([fn, *(theirs[lay][pass_] for lay in layouts)], quick)
        if not layouts:
            out[pass_] = (ours_t, None, None)
            continue
        best = min(range(len(layouts)), key=lambda i: torch_ts[i].median)
        out[pass_] = (ours_t, torch_ts[best], layouts[best])
    return out


def pass_cells(ours, theirs, layout, work):
    """The cells of one pass in a tinyconv-against-torch table.

    ``ours`` and ``theirs`` are Timings (``theirs`` None without torch), ``work`` is what the
    pass does in units of 1e9 (GFLOP, GB), so that ``work / median`` is a rate (GFLOP/s, GB/s).

    Returns
    -------
    tuple: tinyconv ms, min ms, rate; torch ms, min ms, layout, rate; tinyconv / torch (the
    ratio of the medians). The torch cells are None without torch.
    """
    cells = (ours.ms, 1e3 * ours.min, work / ours.median)
    if theirs is None:
        return cells + (None,) * 5
    return cells + (theirs.ms, 1e3 * theirs.min, layout, work / theirs.median,
                    ours.median / theirs.median)


def time_layer(layer, x, dy, quick, **backward_kwargs):
    """A layer's ``forward(x)`` and ``backward(dy, **backward_kwargs)``, each timed alone by
    :func:`measure` with ``check=False`` as ``Sequential`` calls them (the backward runs on
    what the last forward on ``x`` left). Returns ``(forward Timing, backward Timing)``."""
    forward = measure(lambda: layer.forward(x, check=False), quick=quick)
    backward = measure(lambda: layer.backward(dy, check=False, **backward_kwargs), quick=quick)
    return forward, backward


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
    turns : the Timings come from :func:`time_passes` with torch: the note then adds that
        tinyconv and both torch layouts were timed in turns.
    """
    return Table(
        title,
        [shape, "pass", "tinyconv ms", "tinyconv min", rate, "torch ms", "torch min",
         "torch layout", f"torch {rate}", "tinyconv/torch"],
        fmt={"tinyconv ms": "{:.2f}", "tinyconv min": "{:.2f}", "torch ms": "{:.2f}",
             "torch min": "{:.2f}", rate: "{:.1f}", f"torch {rate}": "{:.1f}",
             "tinyconv/torch": "{:.2f}"},
        notes=[note + (" For each pass, tinyconv and both torch layouts are timed in turns (per "
                       "round, each is called twice and timed the second time), so that all of "
                       "them see the same machine." if turns else "")])


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
