import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv.occlusion import window_starts


def naive_occlusion(score, x, size, stride, baseline):
    """One window at a time, the whole image through the model each time."""
    H, W = x.shape[:2]
    rows = list(range(0, max(H - size[0], 0) + stride[0], stride[0]))
    cols = list(range(0, max(W - size[1], 0) + stride[1], stride[1]))
    rows = [r for r in rows if r - stride[0] < H - size[0]] or [0]
    cols = [c for c in cols if c - stride[1] < W - size[1]] or [0]
    orig = score(x[None])[0]
    grid = np.zeros((len(rows), len(cols)))
    total, count = np.zeros((H, W)), np.zeros((H, W))
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            xo = x.copy()
            xo[r:r + size[0], c:c + size[1]] = baseline[r:r + size[0], c:c + size[1]]
            grid[a, b] = orig - score(xo[None])[0]
            total[r:r + size[0], c:c + size[1]] += grid[a, b]
            count[r:r + size[0], c:c + size[1]] += 1
    return grid, total / count, orig


def targets(model):
    return {
        "class": (2, lambda x: tc.softmax(model(x).astype(np.float64))[:, 2]),
        "feature": (("relu1", 3), lambda x: model.forward(x, upto="relu1")[..., 3].sum()[None]),
        "callable": (lambda y: y[:, 0] - y[:, 1],
                     lambda x: (lambda y: y[:, 0] - y[:, 1])(model(x))),
    }


@pytest.mark.parametrize("kind", ["class", "feature", "callable"])
@pytest.mark.parametrize("size, stride", [(3, 1), ((4, 2), (3, 2)), (5, 4)])
def test_equals_a_naive_loop(kind, size, stride):
    model = small_cnn(seed=1)
    x = random_input(model, 1, seed=2)[0]
    target, score = targets(model)[kind]
    baseline = np.full(model.input_shape, 0.25)
    sz = (size, size) if isinstance(size, int) else size
    st = (stride, stride) if isinstance(stride, int) else stride
    grid, pixels, orig = naive_occlusion(score, x, sz, st, baseline)
    got = tc.occlusion(model, x, target, size, stride=stride, baseline=0.25, batch_size=7)
    np.testing.assert_allclose(got.grid, grid, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.pixels, pixels, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.original, orig)
    rel = tc.occlusion(model, x, target, size, stride=stride, baseline=0.25, relative=True)
    np.testing.assert_allclose(rel.grid, grid / orig, rtol=1e-9)


def test_window_count_and_the_cut_last_window():
    # ceil((n - size) / stride) + 1 windows, the last one may hang over the edge
    np.testing.assert_array_equal(window_starts(28, 4, 1), np.arange(25))
    np.testing.assert_array_equal(window_starts(28, 5, 3), np.arange(0, 25, 3))
    np.testing.assert_array_equal(window_starts(11, 3, 4), [0, 4, 8])
    np.testing.assert_array_equal(window_starts(5, 5, 2), [0])


def test_a_batch_is_the_stack_of_single_images():
    model = small_cnn(seed=3)
    X = random_input(model, 3, seed=4)
    both = tc.occlusion(model, X, 1, (2, 3), stride=2)
    assert both.grid.shape == (3, 6, 4) and both.pixels.shape == (3, 11, 9)
    for i in range(3):
        one = tc.occlusion(model, X[i], 1, (2, 3), stride=2)
        assert one.grid.shape == (6, 4)
        np.testing.assert_allclose(one.grid, both.grid[i])


def test_array_baseline_and_uncovered_pixels():
    model = small_cnn(seed=5)
    x = random_input(model, 1)[0]
    mean = x.mean(axis=(0, 1))                       # per-channel mean as the occluder
    a = tc.occlusion(model, x, 0, 2, stride=3, baseline=mean)
    b = tc.occlusion(model, x, 0, 2, stride=3, baseline=np.broadcast_to(mean, x.shape))
    np.testing.assert_array_equal(a.grid, b.grid)
    assert np.isnan(a.pixels[2, 2]) and not np.isnan(a.pixels[0, 0])   # stride > size: gaps


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(target=0, size=12), ValueError, "size"),
    (dict(target=0, size=0), ValueError, "size"),
    (dict(target=0, size=-2), ValueError, "size"),
    (dict(target=0, size=2, stride=0), ValueError, "stride"),
    (dict(target=0, size=2.5), TypeError, "size"),
    (dict(target=4, size=2), ValueError, "target"),
    (dict(target=-1, size=2), ValueError, "target"),
    (dict(target=("conv1", 9), size=2), ValueError, "target k"),
    (dict(target=("nope", 0), size=2), ValueError, "layer"),
    (dict(target=(1, 2, 3), size=2), ValueError, "target"),
    (dict(target=lambda y: y, size=2), ValueError, "target"),
    (dict(target=0, size=2, baseline=np.zeros(3)), ValueError, "baseline"),
    (dict(target=0, size=2, baseline=np.nan), ValueError, "baseline"),
    (dict(target=0, size=2, batch_size=0), ValueError, "batch_size"),
])
def test_bad_arguments_name_themselves(kwargs, error, match):
    model = small_cnn()
    with pytest.raises(error, match=match):
        tc.occlusion(model, random_input(model, 1)[0], **kwargs)


def test_relative_change_of_a_zero_score_is_refused():
    model = small_cnn()
    with pytest.raises(ValueError, match="relative"):
        tc.occlusion(model, np.zeros(model.input_shape), lambda y: 0 * y[:, 0], 2, relative=True)


@pytest.mark.parametrize("kind", ["class", "feature", "callable"])
@pytest.mark.parametrize("size, stride", [(1, 1), (3, 1), ((4, 2), (3, 2)), ((11, 9), 1),
                                          ((2, 5), (4, 1))])
def test_fast_path_equals_full_recomputation(kind, size, stride):
    """Recomputing only the projective field of each window gives the same scores."""
    model = small_cnn(seed=11, input_shape=(15, 13, 2))
    X = random_input(model, 2, seed=12)
    target, _ = targets(model)[kind]
    fast = tc.occlusion(model, X, target, size, stride=stride, baseline=-0.5, batch_size=5)
    full = tc.occlusion(model, X, target, size, stride=stride, baseline=-0.5, fast=False)
    np.testing.assert_allclose(fast.occluded, full.occluded, rtol=1e-12, atol=1e-12)


def test_fast_path_in_float32_on_a_deeper_pooled_model():
    model = tc.Sequential([
        tc.Conv2D(1, 4, 5, padding="same"), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(4, 6, 3, padding="same", dilation=2), tc.ReLU(), tc.MaxPool2D(3, stride=2,
                                                                              padding=1),
        tc.Conv2D(6, 8, 3, stride=2), tc.ReLU(), tc.Flatten(), tc.Dense(32, 3),
    ], input_shape=(20, 18, 1), seed=3)
    x = random_input(model, 1, seed=4)[0]
    for target in (1, ("conv2", 5)):
        fast = tc.occlusion(model, x, target, 4, baseline=0.5)
        full = tc.occlusion(model, x, target, 4, baseline=0.5, fast=False)
        scale = np.abs(full.occluded).max()
        assert np.abs(fast.occluded - full.occluded).max() <= 1e-5 * scale
