"""One model, several threads or processes: every call gives the single-thread answer or
raises the documented error at once, never a silently wrong answer."""

import copy
import multiprocessing
import threading

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.layers import Layer
from tinyconv.model import BUSY_MESSAGE, OTHER_THREAD_MESSAGE

THREADS = 4
CALLS = 25


@pytest.fixture(scope="module")
def digits():
    X, _ = tc.load_mnist("bundled-test")
    return tc.to_float(X[:32])


def work(model, x, i):
    """Call ``i`` of a thread: a forward pass, or a projection (forward then backward)."""
    if i % 2 == 0:
        return model(x)
    return tc.project(model, x, "conv2", 3, rule="deconvnet")


def run_threads(target, n=THREADS):
    errors = []

    def guarded(t):
        try:
            target(t)
        except BaseException as err:        # surfaced in the test thread below
            errors.append(err)
    threads = [threading.Thread(target=guarded, args=(t,)) for t in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_one_model_in_many_threads_is_right_or_refuses(digits):
    model = tc.pretrained("mnist")
    want = [work(model, digits, i) for i in range(2)]
    outcomes = {"right": 0, "refused": 0, "wrong": 0}
    lock = threading.Lock()

    def thread(t):
        for i in range(CALLS):
            try:
                got = work(model, digits, i + t)
            except RuntimeError as err:
                assert str(err) in (BUSY_MESSAGE.format(call="forward"),
                                    BUSY_MESSAGE.format(call="backward"),
                                    OTHER_THREAD_MESSAGE), err
                kind = "refused"
            else:
                kind = "right" if np.array_equal(got, want[(i + t) % 2]) else "wrong"
            with lock:
                outcomes[kind] += 1
    run_threads(thread)
    assert outcomes["wrong"] == 0, outcomes
    assert outcomes["right"] > 0, outcomes


def test_one_model_per_thread_gives_every_thread_the_answer(digits):
    model = tc.pretrained("mnist")
    want = [work(model, digits, i) for i in range(2)]
    copies = [copy.deepcopy(model) for _ in range(THREADS)]

    def thread(t):
        for i in range(CALLS // 2):
            np.testing.assert_array_equal(work(copies[t], digits, i + t), want[(i + t) % 2])
    run_threads(thread)


def test_a_model_may_pass_from_thread_to_thread_between_calls(digits):
    model = tc.pretrained("mnist")
    want = work(model, digits, 1)
    got = []
    for _ in range(3):             # one thread at a time, each with fresh scratch buffers
        run_threads(lambda _: got.append(work(model, digits, 1)), n=1)
    for answer in got:
        np.testing.assert_array_equal(answer, want)


def test_backward_through_another_threads_forward_pass_is_refused(digits):
    model = tc.pretrained("mnist")
    run_threads(lambda _: model(digits), n=1)
    with pytest.raises(RuntimeError) as err:
        model.backward(np.ones((len(digits), 10), np.float32))
    assert str(err.value) == OTHER_THREAD_MESSAGE
    model(digits)                  # after its own forward pass this thread may go back
    assert model.backward(np.ones((len(digits), 10), np.float32)).shape == digits.shape


class Gate(Layer):
    """An identity layer that holds its forward pass until released (to make a call that is
    still running when a second thread arrives)."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def forward(self, x, check=True):
        self.entered.set()
        assert self.release.wait(60)
        return x


def test_a_call_while_another_thread_is_inside_raises_at_once():
    gate = Gate()
    model = tc.Sequential([gate, tc.Flatten()], (2, 2, 1))
    x = np.ones((1, 2, 2, 1), np.float32)
    inside = threading.Thread(target=model, args=(x,))
    inside.start()
    try:
        assert gate.entered.wait(60)
        for call in (lambda: model(x), lambda: model.activations(x),
                     lambda: model.backward(np.ones((1, 4), np.float32))):
            with pytest.raises(RuntimeError, match="use one model per thread"):
                call()
    finally:
        gate.release.set()
        inside.join()
    np.testing.assert_array_equal(model(x), np.ones((1, 4)))   # free again afterwards


def test_a_copied_model_is_independent_and_has_its_own_guard(digits):
    model = tc.pretrained("mnist")
    model(digits)
    twin = copy.deepcopy(model)
    assert twin._lock is not model._lock and twin._owner is None
    np.testing.assert_array_equal(twin(digits), model(digits))


def test_a_layer_object_at_two_positions_is_refused_naming_both():
    relu = tc.ReLU()
    with pytest.raises(ValueError, match=r"layers\[2\]: the same ReLU object as layers\[0\]"):
        tc.Sequential([relu, tc.MaxPool2D(2), relu], (4, 4, 1))
    # equal but distinct objects are fine
    tc.Sequential([tc.ReLU(), tc.MaxPool2D(2), tc.ReLU()], (4, 4, 1))


def process_answer(seed):
    """In a fresh process: build the model from ``seed`` and compute the two answers."""
    from tinyconv.architectures import build
    model = build("mnist", seed=seed)
    x = np.random.default_rng(seed).random((8, 28, 28, 1), dtype=np.float32)
    return work(model, x, 0), work(model, x, 1)


def test_processes_each_with_their_own_model_agree():
    here = process_answer(3)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        answers = pool.map(process_answer, [3, 3])
    for there in answers:
        for a, b in zip(here, there, strict=True):
            np.testing.assert_array_equal(a, b)
