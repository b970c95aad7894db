"""The same inputs give the same results: across runs, and across numba thread counts."""

import numba
import numpy as np
import pytest

import tinyconv as tc
from tinyconv import kernels, tour
from tinyconv.architectures import build


@pytest.fixture(scope="module")
def digits():
    X, y = tc.load_mnist("bundled-test")
    return tc.to_float(X[:64]), y[:64]


def test_figures_are_byte_identical_across_two_runs(tmp_path):
    model = tc.pretrained("mnist")
    first = tour.tour(tmp_path / "a", examples=40, progress=False, model=model)
    second = tour.tour(tmp_path / "b", examples=40, progress=False, model=model)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def run_everything(model, x, y):
    """One pass of every technique plus one training step, returned as arrays."""
    out = {"logits": model(x),
           "deconvnet": tc.project(model, x, "conv2", 3, rule="deconvnet"),
           "guided": tc.project(model, x, "relu3", 5, rule="guided"),
           "saliency": tc.saliency(model, x),
           "occlusion": tc.occlusion(model, x[0], int(y[0]), 4, stride=2).grid,
           "maxact": tc.max_activating(model, x, "conv3", top=5).values}
    trained = build("mnist", seed=1)
    tc.fit(trained, x, y, epochs=1, batch_size=16, seed=2, progress=False)
    out.update({f"{layer.name}.{k}": v for layer in trained.layers
                for k, v in layer.params.items()})
    return out


def test_one_and_two_numba_threads_agree(digits, monkeypatch):
    x, y = digits
    model = tc.pretrained("mnist")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_everything(model, x, y)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        policy = run_everything(model, x, y)        # the shipped thread policy
        # and with the policy off, so that two numba threads really run the kernels
        monkeypatch.setattr(kernels._runtime, "ONE_THREAD_BESIDE_BLAS", False)
        two = run_everything(model, x, y)
    finally:
        numba.set_num_threads(before)
    for key in one:
        np.testing.assert_array_equal(one[key], policy[key], err_msg=key)
        scale = max(np.abs(one[key]).max(), 1e-30)
        assert np.abs(one[key] - two[key]).max() <= 1e-5 * scale, key


def test_two_runs_with_one_seed_are_bit_identical(digits):
    x, y = digits
    a = run_everything(tc.pretrained("mnist"), x, y)
    b = run_everything(tc.pretrained("mnist"), x, y)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
