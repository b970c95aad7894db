"""What every kernel shares: the runner that picks the thread count, numba's cache folder,
the line printed while compiling, and the small helpers of the public kernels.

Nothing here imports a tinyconv module: the kernels stand on NumPy, numba and the standard
library only.
"""

import atexit
import os
import shutil
import sys
import tempfile
from collections import Counter

import numba
import numpy as np
from numba.core import caching, config, event

#: Kernels whose output has fewer elements than this run on one thread: waking a sleeping
#: worker costs more than the whole job.
PARALLEL_MIN_SIZE = 1 << 15

#: The line printed when the first kernel is compiled rather than loaded from the cache.
COMPILING_MESSAGE = ("tinyconv: compiling numba kernels for the first run "
                     "(about {seconds} s on 2 cores; cached afterwards)")
COMPILE_SECONDS = "10-30"

#: The line printed when numba has no writable folder for its cache.
CACHE_MESSAGE = ("tinyconv: numba cannot cache compiled kernels {where} ({why}); caching them "
                 "in {folder} for this run only (set NUMBA_CACHE_DIR to a writable folder)")


# --------------------------------------------------------------------------- thread policy


def _cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _env_threads(*names):
    """The first of the variables ``names`` that holds a positive int, else None."""
    for name in names:
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


#: The variable that chooses the thread policy, and its values.
POLICY_VARIABLE = "TINYCONV_KERNEL_THREADS"
POLICIES = ("auto", "1", "numba")


def one_thread_beside_blas(cores, blas_threads, policy="auto"):
    """The thread policy: whether the kernels run on one numba thread.

    All four kernels are memory-bound copies and sums between two BLAS GEMMs. On a machine
    with at most two cores where BLAS already runs more than one thread, a second numba
    thread buys little when the machine is idle and, as soon as another process takes a
    core, makes every kernel wait for a thread that is not running (``docs/speed.md``).

    Parameters
    ----------
    cores : int, the cores this process may use.
    blas_threads : int, BLAS's thread count.
    policy : ``"auto"`` (the rule above), ``"1"`` (always one thread) or ``"numba"``
        (numba's thread count, ``numba.get_num_threads()``, for every job that is not
        small); the variable ``TINYCONV_KERNEL_THREADS`` sets it, and its default is
        ``"numba"``: on a quiet 2-core machine ``"auto"`` made a 2x2 max-pool of
        256x28x28x32 1.57x and the shipped model's forward at batch 256 1.19x slower
        (``docs/speed.md``), so one thread is a choice for a machine shared with other work.
    """
    if policy not in POLICIES:
        raise ValueError(f"{POLICY_VARIABLE}: expected one of {', '.join(POLICIES)}, "
                         f"got {policy!r}")
    if policy != "auto":
        return policy == "1"
    return cores <= 2 and blas_threads > 1


#: Whether every kernel runs on one numba thread (see :func:`one_thread_beside_blas`); BLAS's
#: thread count is read from the variables OpenBLAS, MKL and OpenMP read (their default: one
#: thread per core).
ONE_THREAD_BESIDE_BLAS = one_thread_beside_blas(
    _cores(),
    _env_threads("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS") or _cores(),
    os.environ.get(POLICY_VARIABLE, "numba").strip() or "numba")


# --------------------------------------------------------------------------- numba's cache


def _probe():
    """A function for asking numba's cache locators where this package's cache would go."""


def _writable_folder_problem(folder):
    """None if ``folder`` is (or can be made) a folder we can write in, else the reason."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def _cache_problem():
    """``(where, why)`` if numba has no usable cache folder for the kernels, else None.

    numba picks the first of its locators that can write: ``NUMBA_CACHE_DIR`` if set, else
    ``__pycache__`` beside the source, else the user's cache folder. With none it refuses to
    compile a kernel marked ``cache=True``; an unusable ``NUMBA_CACHE_DIR`` is skipped
    without a word.
    """
    if config.CACHE_DIR:
        why = _writable_folder_problem(config.CACHE_DIR)
        return None if why is None else (f"in NUMBA_CACHE_DIR={config.CACHE_DIR}", why)
    try:
        names = [n.strip().rsplit(".", 1)[-1] for n in config.CACHE_LOCATOR_CLASSES.split(",")
                 if n.strip()] if config.CACHE_LOCATOR_CLASSES else None
        locators = ([getattr(caching, n) for n in names] if names
                    else caching._CacheImpl._locator_classes)
        if any(cls.from_function(_probe, __file__) is not None for cls in locators):
            return None
    except Exception:       # numba's internals changed: leave the choice to numba
        return None
    return "beside the package or in the home folder", "no writable folder"


def _use_a_temporary_cache():
    """Point numba's cache at a fresh temporary folder if it has no usable one, with one line
    on stderr; the folder is removed when the process exits. Runs before any kernel is
    defined, since numba picks a kernel's cache folder when it is defined."""
    problem = _cache_problem()
    if problem is None:
        return None
    folder = tempfile.mkdtemp(prefix="tinyconv-numba-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    config.CACHE_DIR = folder
    where, why = problem
    print(CACHE_MESSAGE.format(where=where, why=why, folder=folder), file=sys.stderr,
          flush=True)
    return folder


_use_a_temporary_cache()


# --------------------------------------------------------------------------- compiling


class _FirstCompile(event.Listener):
    """Prints :data:`COMPILING_MESSAGE` once per process, when numba starts to compile one of
    this module's kernels: numba raises its ``numba:compile`` event only after the on-disk
    cache missed, so a run that loads every kernel from the cache prints nothing."""

    def __init__(self):
        self.printed = False

    def on_start(self, event):
        dispatcher = event.data.get("dispatcher") if isinstance(event.data, dict) else None
        py_func = getattr(dispatcher, "py_func", None)
        module = getattr(py_func, "__module__", None) or ""
        if self.printed or not module.startswith(__package__ + "."):
            return
        self.printed = True
        print(COMPILING_MESSAGE.format(seconds=COMPILE_SECONDS), file=sys.stderr, flush=True)

    def on_end(self, event):
        pass


event.register("numba:compile", _FirstCompile())


def _run(kernel, size, *args):
    """``kernel(*args)``, on one thread if it writes fewer than :data:`PARALLEL_MIN_SIZE`
    elements or if :data:`ONE_THREAD_BESIDE_BLAS` holds (numba's thread count is per calling
    thread, so this changes nothing else; the result is the same on any thread count)."""
    threads = numba.get_num_threads()
    if threads == 1 or (size >= PARALLEL_MIN_SIZE and not ONE_THREAD_BESIDE_BLAS):
        kernel(*args)
        return
    numba.set_num_threads(1)
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(threads)


class _Stats:
    """numba's compile statistics (``cache_path``, ``cache_hits``, ``cache_misses``) summed
    over the numba functions behind one public kernel, read when asked."""

    def __init__(self, kernels):
        self.kernels = kernels

    @property
    def cache_path(self):
        return self.kernels[0].stats.cache_path

    @property
    def cache_hits(self):
        return sum((Counter(fn.stats.cache_hits) for fn in self.kernels), Counter())

    @property
    def cache_misses(self):
        return sum((Counter(fn.stats.cache_misses) for fn in self.kernels), Counter())


def _wraps(*kernels):
    """Decorator: the Python function is the public face of the numba ``kernels``; it gets
    ``.kernels`` and ``.stats`` (their compile and on-disk cache statistics, as numba
    functions have)."""
    def decorate(fn):
        fn.kernels, fn.stats = kernels, _Stats(kernels)
        return fn
    return decorate


def _output(out, shape, dtype):
    """``out`` checked against ``shape`` and ``dtype``, or a new uninitialised array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"out: expected a {np.dtype(dtype)} array of shape {tuple(shape)}, "
                         f"got {out.dtype} {out.shape}")
    return out


def _into(out, result):
    """What a reference returns: ``result``, or ``result`` copied into ``out``."""
    if out is None:
        return result
    out[...] = result
    return out

