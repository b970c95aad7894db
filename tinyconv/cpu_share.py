"""BLAS beside other programs: a pass through a model uses only the cores they leave free.

The cause, measured on a 2-core machine (``benchmarks/bench_contention.py``, ``docs/speed.md``):
OpenBLAS gives each of its threads one fixed share of a product and then waits, spinning,
for the last share. When another busy program holds a core, the thread whose share is left
is not running, and the one that is running spins: a training epoch of the shipped model took
1.2 s alone and 6.4 s beside a neighbour multiplying matrices on both cores (once 13.0 s, of
which 12.9 s of CPU time: waiting, not work). Held to one BLAS thread beside the neighbour it
took 2.9 s.

So each pass through a :class:`~tinyconv.model.Sequential` (forward, activations, backward)
runs inside :func:`share_cores`: if other programs' threads are running, BLAS is held to the
cores they leave free (at least one) for that pass, and gets its thread count back after it
(unless somebody else set another count meanwhile, which is then left alone). Counting them
is cheap and done at most every :data:`LOOK_EVERY` seconds: the kernel's count of runnable
threads (``/proc/loadavg``) less this process' own (``/proc/self/task/*/stat``), scaled to
the CPUs this process may use. Holding BLAS to fewer threads may change the last bits of a
product (README, "What may change the last bits"); ``TINYCONV_SHARE_CORES=0`` turns the
policy off and keeps them. Where there is no ``/proc`` (not Linux), or no threadpoolctl, or its
BLAS is unknown to threadpoolctl, nothing changes. With a BLAS whose
thread count is per calling thread (MKL on OpenMP), only the thread that holds the count is
held.
"""

import functools
import os
import threading
import time
from contextlib import contextmanager

#: Seconds during which one count of the busy cores is used again.
LOOK_EVERY = 0.05

#: The variable that turns the policy off (``0``).
VARIABLE = "TINYCONV_SHARE_CORES"

_lock = threading.Lock()        # the BLAS thread count is one per process: one holder at a time
#: ``at``, ``others``: when :func:`_others` last counted, and what; ``held``: ``[(BLAS
#: library, its thread count before, the count the pass set)]`` while a pass holds them.
_state = {"at": -1.0, "others": 0, "held": []}


def _forget_after_fork():
    # a forked child: whoever held the count is not there, so it gets its count back now
    global _lock
    _lock = threading.Lock()
    _give_back(_state["held"])


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _give_back(held):
    """Each library of ``held`` back to its count, unless somebody set another meanwhile."""
    for lib, before, ours in held:
        try:
            if lib.get_num_threads() == ours:
                lib.set_num_threads(before)
        except Exception:           # a library threadpoolctl can no longer reach
            pass
    held.clear()


def running_elsewhere():
    """Threads of other processes that are running or ready to run now, or 0 if unknown
    (:func:`count_elsewhere` of ``/proc/loadavg`` and this process' threads' states)."""
    try:
        before = _our_states()
        with open("/proc/loadavg") as f:
            loadavg = f.read()
        after = _our_states()
        # a thread of ours seen running on either side of the machine's count is ours
        states = [max(before.get(tid, "S"), after.get(tid, "S"), key="R".__eq__)
                  for tid in before.keys() | after.keys()]
        others = count_elsewhere(loadavg, states)
    except (OSError, ValueError, IndexError):
        return 0
    # the count is the whole machine's; a process that may use only some of its CPUs (taskset,
    # a cpuset) expects its share of them
    return others * _cores() // (os.cpu_count() or _cores())


def _our_states():
    """``{thread id: state letter}`` of this process' threads (``R``: running or runnable)."""
    states = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                states[tid] = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):      # the thread ended meanwhile
            pass
    return states


def count_elsewhere(loadavg, states):
    """Runnable threads of other processes.

    Parameters
    ----------
    loadavg : the text of ``/proc/loadavg``; its fourth field is ``runnable/total`` over the
        whole machine.
    states : this process' threads' states (``R`` running or runnable), the looking thread,
        which is running, among them.
    """
    runnable = int(loadavg.split()[3].split("/")[0])
    ours = max(1, sum(state == "R" for state in states))
    return max(0, runnable - ours)


def _others():
    """:func:`running_elsewhere`, counted again only every :data:`LOOK_EVERY` seconds."""
    now = time.monotonic()
    if now - _state["at"] >= LOOK_EVERY:
        _state["at"], _state["others"] = now, running_elsewhere()
    return _state["others"]


@functools.cache
def _blas():
    """threadpoolctl's handle on the BLAS libraries loaded (NumPy's among them), or None
    (looked up once)."""
    try:
        from threadpoolctl import ThreadpoolController
        blas = ThreadpoolController().select(user_api="blas")
    except Exception:               # not installed, or a BLAS it cannot steer
        return None
    return blas if blas.lib_controllers else None


def threads_to_use(threads, cores, others):
    """The policy: ``threads`` BLAS threads, fewer if ``others`` threads of other programs
    are running on ``cores`` cores — the cores they leave free, at least one."""
    return max(1, min(threads, cores - others))


@contextmanager
def share_cores():
    """The body runs with BLAS on the cores other programs leave free (module docstring).

    Nested in another ``share_cores`` (a pass inside a pass), or while another thread is
    inside one, it changes nothing: the one that holds the count sets it and puts it back.
    """
    lock = _lock                    # the one acquired is the one released, fork or not
    if os.environ.get(VARIABLE, "1") == "0" or not lock.acquire(blocking=False):
        yield
        return
    held = _state["held"]
    try:
        others = _others()
        blas = _blas() if others else None        # threadpoolctl only once it is needed
        counts = [(lib, lib.get_num_threads()) for lib in blas.lib_controllers] if blas else []
        threads = max((n for _, n in counts), default=1)
        want = threads_to_use(threads, _cores(), others)
        for lib, n in counts if want < threads else []:
            held.append((lib, n, want))     # first: a Ctrl-C after it still gives n back
            lib.set_num_threads(want)
        yield
    finally:
        _give_back(held)
        lock.release()

