"""BLAS beside other programs (tinyconv/cpu_share.py): a pass holds BLAS to the free cores,
and gives it its thread count back."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tinyconv as tc
from tinyconv import cpu_share

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads():
    """The thread count of NumPy's BLAS (another BLAS a library loaded, such as SciPy's own
    OpenBLAS, is not tinyconv's)."""
    libs = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    numpy_blas = [lib for lib in libs if "numpy" in lib.filepath] or libs
    return max(lib.get_num_threads() for lib in numpy_blas)


@pytest.fixture
def two_blas_threads(monkeypatch):
    """BLAS on 2 threads, the policy on, and a machine of 2 cores (whatever this one has)."""
    if cpu_share._blas() is None:
        pytest.skip("threadpoolctl does not know NumPy's BLAS here")
    monkeypatch.setenv(cpu_share.VARIABLE, "1")
    monkeypatch.setattr(cpu_share, "_cores", lambda: 2)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        yield


def pretend_running_elsewhere(monkeypatch, n):
    monkeypatch.setattr(cpu_share, "running_elsewhere", lambda: n)
    monkeypatch.setitem(cpu_share._state, "at", -1.0)      # count again at once
    monkeypatch.setitem(cpu_share._state, "others", n)     # and forget the pretence after


@pytest.mark.parametrize("threads, cores, others, expected", [
    (2, 2, 0, 2),     # an idle machine: every thread
    (2, 2, 1, 1),     # one core taken: one thread
    (2, 2, 2, 1),     # both taken: still one
    (2, 2, 7, 1),
    (4, 8, 5, 3),     # three cores left
    (4, 8, 2, 4),     # more free cores than threads: the threads asked for
    (1, 2, 0, 1),     # never more than asked for
])
def test_the_policy_uses_the_cores_others_leave(threads, cores, others, expected):
    assert cpu_share.threads_to_use(threads, cores, others) == expected


def test_beside_a_busy_program_blas_gets_one_thread_and_its_count_back(two_blas_threads,
                                                                         monkeypatch):
    pretend_running_elsewhere(monkeypatch, 2)
    seen = []
    with cpu_share.share_cores():
        seen.append(blas_threads())
    assert seen == [1] and blas_threads() == 2


def test_the_count_comes_back_when_the_pass_fails(two_blas_threads, monkeypatch):
    pretend_running_elsewhere(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="the pass failed"):
        with cpu_share.share_cores():
            assert blas_threads() == 1
            raise RuntimeError("the pass failed")
    assert blas_threads() == 2


def test_on_an_idle_machine_or_when_turned_off_nothing_changes(two_blas_threads, monkeypatch):
    pretend_running_elsewhere(monkeypatch, 0)
    with cpu_share.share_cores():
        assert blas_threads() == 2
    pretend_running_elsewhere(monkeypatch, 2)
    monkeypatch.setenv(cpu_share.VARIABLE, "0")
    with cpu_share.share_cores():
        assert blas_threads() == 2


def test_a_users_own_limit_is_never_raised(two_blas_threads, monkeypatch):
    monkeypatch.setattr(cpu_share, "_cores", lambda: 8)     # 7 cores free: more than asked for
    pretend_running_elsewhere(monkeypatch, 1)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        with cpu_share.share_cores():
            assert blas_threads() == 1
        assert blas_threads() == 1


def test_a_nested_pass_and_another_threads_pass_leave_the_count_to_the_holder(
        two_blas_threads, monkeypatch):
    pretend_running_elsewhere(monkeypatch, 2)
    inside, other = [], []
    with cpu_share.share_cores():
        pretend_running_elsewhere(monkeypatch, 0)     # the inner one would say "2 threads"
        with cpu_share.share_cores():
            inside.append(blas_threads())

        def other_thread():
            with cpu_share.share_cores():
                other.append(blas_threads())
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        inside.append(blas_threads())
    assert inside == [1, 1] and other == [1] and blas_threads() == 2


class Watching(tc.ReLU):
    """A ReLU that notes BLAS's thread count whenever a pass goes through it."""

    seen = []

    def forward(self, x, check=True):
        self.seen.append(blas_threads())
        return super().forward(x, check)

    def backward(self, dy, rule="gradient", check=True):
        self.seen.append(blas_threads())
        return super().backward(dy, rule, check)


def test_every_pass_through_a_model_shares_the_cores(two_blas_threads, monkeypatch, rng):
    watch = Watching()
    watch.seen = []
    model = tc.Sequential([tc.Conv2D(1, 4, 3, rng=0), watch, tc.Flatten(),
                           tc.Dense(4 * 6 * 6, 3, rng=1)], input_shape=(8, 8, 1))
    x = rng.random((2, 8, 8, 1), dtype=np.float32)
    pretend_running_elsewhere(monkeypatch, 0)
    expected = model(x)
    pretend_running_elsewhere(monkeypatch, 2)
    busy = model(x)
    model.activations(x)
    model.backward(np.ones_like(busy))
    assert watch.seen == [2, 1, 1, 1] and blas_threads() == 2
    np.testing.assert_array_equal(busy, expected)        # a product this small: same bits


def test_a_count_somebody_else_set_during_a_pass_is_left_alone(two_blas_threads, monkeypatch):
    pretend_running_elsewhere(monkeypatch, 2)
    limit = None
    with cpu_share.share_cores():
        limit = threadpoolctl.ThreadpoolController().select(user_api="blas").limit(limits=3)
    try:
        assert blas_threads() == 3                          # not "given back" to 2
    finally:
        limit.restore_original_limits()


def test_a_pass_that_is_not_counted_again_uses_the_last_count(two_blas_threads, monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_share, "LOOK_EVERY", 600.0)      # however slow this machine is
    monkeypatch.setattr(cpu_share, "running_elsewhere", lambda: calls.append(1) or 2)
    monkeypatch.setitem(cpu_share._state, "at", -1.0)
    monkeypatch.setitem(cpu_share._state, "others", 0)
    for _ in range(5):
        with cpu_share.share_cores():
            assert blas_threads() == 1
    assert len(calls) == 1                                 # within LOOK_EVERY: counted once


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_a_child_forked_inside_a_pass_gets_the_count_back_and_its_own_lock(two_blas_threads,
                                                                           monkeypatch):
    pretend_running_elsewhere(monkeypatch, 2)
    with cpu_share.share_cores():
        pid = os.fork()
        if pid == 0:                                      # the child: report through its status
            ok = blas_threads() == 2
            try:
                with cpu_share.share_cores():              # its lock is free, and released
                    pass
            except Exception:
                ok = False
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert blas_threads() == 1                        # the parent is still held
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_a_busy_program_beside_this_one_is_counted():
    spin = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass\n"
    with subprocess.Popen([sys.executable, "-c", spin]) as proc:
        try:
            counts, deadline = [], time.monotonic() + 5
            while max(counts, default=0) < 1 and time.monotonic() < deadline:
                counts.append(cpu_share.running_elsewhere())
                time.sleep(0.01)
        finally:
            proc.kill()
    assert max(counts) >= 1, counts


@pytest.mark.parametrize("loadavg, states, expected", [
    ("0.52 0.40 0.31 3/211 4242\n", ["R", "S", "R"], 1),   # 3 runnable, 2 of them ours
    ("0.52 0.40 0.31 1/211 4242\n", ["R", "S"], 0),        # only the thread that looks
    ("1.00 1.00 1.00 2/211 4242\n", ["S", "S"], 1),        # the looking thread counts as ours
    ("9.00 9.00 9.00 5/211 4242\n", ["R", "R", "R", "R", "R", "R"], 0),   # never below 0
])
def test_the_count_is_the_machines_runnable_threads_less_ours(loadavg, states, expected):
    assert cpu_share.count_elsewhere(loadavg, states) == expected
