"""The same inputs give the same results: across runs, numba thread counts and batch sizes,
and across BLAS thread counts to round-off (what README.md's "The shipped model and
`tinyconv train`" promises).

Thread counts are read when NumPy and numba load, so the BLAS x numba matrix runs
``tests/thread_probe.py`` in fresh processes; the machine's other BLAS settings
(``OPENBLAS_CORETYPE``, ``OPENBLAS_L2_SIZE``) are inherited as they are.
"""

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from thread_probe import BATCH_SIZES

import tinyconv as tc
from tinyconv import kernels, tour
from tinyconv.architectures import build

PROBE = Path(__file__).with_name("thread_probe.py")

#: ``(BLAS threads, numba threads)`` of each probe process.
MATRIX = [(1, 1), (1, 2), (2, 1), (2, 2)]


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
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)


def test_two_runs_with_one_seed_are_bit_identical(digits):
    x, y = digits
    a = run_everything(tc.pretrained("mnist"), x, y)
    b = run_everything(tc.pretrained("mnist"), x, y)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# --------------------------------------------------------------------------- thread counts


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    """``{(blas, numba): arrays}``: tests/thread_probe.py run once per thread counts of
    :data:`MATRIX`, all at once, each in a fresh process."""
    tmp = tmp_path_factory.mktemp("threads")
    root = str(Path(tc.__file__).resolve().parents[1])      # the tinyconv under test
    procs = {}
    for blas, threads in MATRIX:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), MKL_NUM_THREADS=str(blas),
                   NUMBA_NUM_THREADS=str(threads),
                   PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        env.pop("TINYCONV_KERNEL_THREADS", None)            # the default policy
        out = tmp / f"blas{blas}-numba{threads}.npz"
        procs[blas, threads] = out, subprocess.Popen(
            [sys.executable, str(PROBE), str(out)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
    arrays = {}
    for key, (out, proc) in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"probe {key} exited {proc.returncode}:\n{err[-3000:]}"
        with np.load(out) as data:
            arrays[key] = dict(data)
    return arrays


@pytest.mark.parametrize("blas", [1, 2])
def test_the_numba_thread_count_changes_no_bit(probes, blas):
    """With 1 or 2 BLAS threads, numba's 1 or 2 threads give the same activations, input and
    weight gradients, trained weights and rankings, bit for bit: every kernel task writes its
    own rows, in a fixed order."""
    one, two = probes[blas, 1], probes[blas, 2]
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)


@pytest.mark.parametrize("threads", MATRIX)
@pytest.mark.parametrize("layer", ["logits", "conv3"])
def test_max_activating_is_the_same_for_every_batch_size(probes, threads, layer):
    """``max_activating(top=None)`` of the shipped model gives one ranking and the same
    scores for batch sizes 1 to 1000, at any thread counts, with tied and near-tied digits."""
    got = probes[threads]
    first = BATCH_SIZES[0]
    values = got[f"max_activating {layer} {first} values"]
    gaps = np.abs(np.diff(values, axis=1))
    # the scaled copies differ by round-off only; the exact copies tie too where BLAS rounds
    # a row the same wherever it sits in the block (on 2 threads with OPENBLAS_CORETYPE=Haswell
    # on an AVX-512 machine, no two scores were bit-equal)
    near = gaps <= 1e-6 * np.abs(values[:, 1:])
    assert (near & (gaps > 0)).any()
    for batch_size in BATCH_SIZES[1:]:
        for what in ("indices", "values"):
            np.testing.assert_array_equal(got[f"max_activating {layer} {batch_size} {what}"],
                                          got[f"max_activating {layer} {first} {what}"],
                                          err_msg=f"batch_size={batch_size} {what}")


def test_blas_thread_counts_agree_to_round_off(probes):
    """1 and 2 BLAS threads may sum a matrix product in another order (OpenBLAS blocks it by
    its threads, and how depends on its kernels), so only round-off is promised: the forward
    pass to 1e-5 of each layer's largest value, and the weights after a short training run
    to 1e-4 of each array's largest weight. (Input gradients are not compared: a max-pool
    switch may flip between two near-tied inputs and move a whole value.)"""
    one, two = probes[1, 1], probes[2, 1]
    compared = [key for key in one if key.startswith(("forward", "train_recipe"))]
    assert len(compared) == 11 + 8
    for key in compared:
        rtol = 1e-5 if key.startswith("forward") else 1e-4
        scale = np.abs(one[key]).max()
        assert np.abs(one[key] - two[key]).max() <= rtol * scale, key
