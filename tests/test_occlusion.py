import importlib

import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv.occlusion import window_starts

# the fast path's module
module = importlib.import_module("tinyconv.occlusion_fast")


def naive_occlusion(score, x, size, stride, baseline):
    """One window at a time, the whole image through the model each time."""
    H, W = x.shape[:2]
    rows = list(range(0, max(H - size[0], 0) + stride[0], stride[0]))
    cols = list(range(0, max(W - size[1], 0) + stride[1], stride[1]))
    rows = [r for r in rows if r - stride[0] < H - size[0]] or [0]
    cols = [c for c in cols if c - stride[1] < W - size[1]] or [0]
    # a window that would start outside the image ends at its edge instead
    rows = [r if r < H else H - size[0] for r in rows]
    cols = [c if c < W else W - size[1] for c in cols]
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
    # ceil((n - size) / stride) + 1 windows, the last one may hang over the edge, but none
    # starts outside the image
    np.testing.assert_array_equal(window_starts(28, 4, 1), np.arange(25))
    np.testing.assert_array_equal(window_starts(28, 5, 3), np.arange(0, 25, 3))
    np.testing.assert_array_equal(window_starts(10, 1, 4), [0, 4, 8, 9])
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
    (dict(target=0, size=2, baseline="grey"), TypeError, "baseline"),
    (dict(target=0, size=2, baseline=None), TypeError, "baseline"),
    (dict(target=0, size=2, baseline=True), TypeError, "baseline"),
    (dict(target=0, size=2, baseline=[0.1, "a"]), TypeError, "baseline"),
    (dict(target=0, size=2, baseline=np.zeros((2, 2))), ValueError, "baseline"),
    (dict(target=0, size=2, baseline=np.zeros((11, 9, 2, 1))), ValueError, "baseline"),
    (dict(target=0, size=2, baseline=np.array([0.0, np.nan])), ValueError, "baseline"),
    (dict(target=0, size=2, baseline=np.inf), ValueError, "baseline"),
])
def test_bad_arguments_name_themselves(kwargs, error, match):
    model = small_cnn()
    with pytest.raises(error, match=match):
        tc.occlusion(model, random_input(model, 1)[0], **kwargs)


@pytest.mark.parametrize("x, error", [
    (np.zeros((11, 9)), ValueError), (np.zeros((1, 1, 11, 9, 2)), ValueError),
    (np.zeros((11, 9, 2), dtype=np.int64), TypeError), ([[0.0, 1.0], [2.0]], TypeError),
    (np.full((11, 9, 2), np.nan), ValueError), (np.zeros((9, 11, 2)), ValueError),
])
def test_bad_images_name_x(x, error):
    with pytest.raises(error, match="x: "):
        tc.occlusion(small_cnn(), x, 0, 2)


def test_a_nested_list_is_one_image():
    model = small_cnn()
    x = random_input(model, 1)[0]
    np.testing.assert_array_equal(tc.occlusion(model, x.tolist(), 0, 3).grid,
                                  tc.occlusion(model, x, 0, 3).grid)


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


def stacked_convs(seed=0):
    """Stride-1 convolutions back to back (no pooling between them), so that a window's patch
    leaves each one hanging over the map's edge into the next one's padding; one dilated,
    one non-square, one padded more than 'same'."""
    return tc.Sequential([
        tc.Conv2D(2, 3, 3, padding="same", name="conv1"), tc.ReLU(name="relu1"),
        tc.Conv2D(3, 4, (3, 5), padding="same", dilation=(2, 1), name="conv2"),
        tc.ReLU(name="relu2"),
        tc.Conv2D(4, 3, 3, padding=2, name="conv3"), tc.ReLU(name="relu3"),
        tc.MaxPool2D(2, name="pool"), tc.Flatten(name="flatten"), tc.Dense(5 * 4 * 3, 3),
    ], input_shape=(9, 7, 2), seed=seed).astype(np.float64)


@pytest.mark.parametrize("size", [1, 2, (2, 3), (3, 1), 4])
@pytest.mark.parametrize("target", [1, ("relu2", 2)])
@pytest.mark.parametrize("batch_size", [1, 4, 9])
def test_fast_path_through_the_change_of_stride_1_convolutions(size, target, batch_size,
                                                               monkeypatch):
    """Small windows go through stride-1 convolutions by their change (one GEMM with the
    unrolled kernel), larger ones by recomputed blocks; both must equal the full
    recomputation. Small batches hold windows of one edge only (a batch whose patches all
    hang over the right edge, say), large ones mix them."""
    calls = []
    change = module.advance_change
    monkeypatch.setattr(module, "advance_change", lambda *a: calls.append(1) or change(*a))
    model = stacked_convs(seed=13)
    X = random_input(model, 2, seed=14)
    fast = tc.occlusion(model, X, target, size, baseline=0.3, batch_size=batch_size)
    full = tc.occlusion(model, X, target, size, baseline=0.3, fast=False)
    h, w = (size, size) if isinstance(size, int) else size
    assert bool(calls) == (h * w <= 3 * 3)          # patches no larger than conv1's kernel
    np.testing.assert_allclose(fast.occluded, full.occluded, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, dilation, size", [(5, 1, (4, 4)), ((3, 5), (2, 1), (2, 3)),
                                                    (3, 2, (1, 2))])
def test_unrolled_kernel_convolves_a_patch(kernel, dilation, size):
    """delta (h*w*C_in) @ T = the convolution of delta surrounded by zeros: every output unit
    it reaches, (h + k_eff - 1) x (w + k_eff - 1) of them."""
    conv = tc.Conv2D(3, 4, kernel, padding="same", dilation=dilation, name="conv")
    model = tc.Sequential([conv], input_shape=(8, 9, 3), seed=1).astype(np.float64)
    step = module.clean_plan(model, random_input(model, 1)[0], 1).steps[0]
    T = module.unrolled_conv(step, *size)
    delta = random_input(tc.Sequential([tc.ReLU()], (*size, 3)), 2, seed=2)
    full = tc.Conv2D(3, 4, kernel, padding=[d * (k - 1) for k, d in zip(
        conv.kernel, conv.dilation, strict=True)], dilation=dilation, bias=False)
    full.params["W"] = conv.params["W"]
    expected = full.forward(delta)
    np.testing.assert_allclose((delta.reshape(2, -1) @ T).reshape(expected.shape), expected,
                               rtol=1e-12, atol=1e-12)


def test_pixels_that_no_output_reads_change_nothing():
    """A stride-2 kernel of 2 on 7 rows never reads row 6: occluding it changes nothing."""
    model = tc.Sequential([tc.Conv2D(1, 2, 2, stride=2), tc.ReLU(), tc.Flatten(),
                           tc.Dense(3 * 3 * 2, 2)], input_shape=(7, 7, 1), seed=4)
    model.astype(np.float64)
    x = random_input(model, 1, seed=5)[0] + 1.0
    for fast in (True, False):
        # zero up to round-off: the original score comes from a batch of one, the rest not
        grid = tc.occlusion(model, x, 0, 1, fast=fast).grid
        assert np.abs(grid[6]).max() < 1e-12 and np.abs(grid[:, 6]).max() < 1e-12
        assert np.abs(grid[:6, :6]).max() > 1e-6


@pytest.mark.parametrize("batch_size", [1, 6])
def test_fast_path_when_the_last_spatial_layer_is_a_convolution(batch_size):
    """The patches of a final stride-1 convolution hang over the map's edge into the Flatten."""
    model = tc.Sequential([tc.Conv2D(2, 3, 3, padding="same"), tc.ReLU(), tc.Flatten(),
                           tc.Dense(6 * 5 * 3, 2)], input_shape=(6, 5, 2), seed=6)
    model.astype(np.float64)
    X = random_input(model, 2, seed=7)
    for target in (1, ("conv1", 2)):
        fast = tc.occlusion(model, X, target, (1, 2), baseline=-1.0, batch_size=batch_size)
        full = tc.occlusion(model, X, target, (1, 2), baseline=-1.0, fast=False)
        np.testing.assert_allclose(fast.occluded, full.occluded, rtol=1e-12, atol=1e-12)


def test_windows_that_change_nothing_score_the_original():
    """Over a background equal to the occluder the window changes no pixel; after a max-pool
    a window on a pixel that is not its cell's maximum changes nothing either. Both are
    dropped on the way, and must still score exactly as the full recomputation."""
    model = tc.Sequential([tc.MaxPool2D(2), tc.Conv2D(1, 3, 3, padding="same"), tc.ReLU(),
                           tc.Flatten(), tc.Dense(4 * 5 * 3, 2)], input_shape=(8, 10, 1),
                          seed=8).astype(np.float64)
    rng = np.random.default_rng(9)
    x = np.zeros(model.input_shape)
    x[2:6, 2:8] = rng.uniform(0.1, 0.2, (4, 6, 1))
    x[2:6:2, 2:8:2] = rng.uniform(1.0, 2.0, (2, 3, 1))     # the maximum of each 2x2 cell
    dropped = []
    advance = module.advance

    def spy(step, patch, *args):
        out = advance(step, patch, *args)
        dropped.append(len(patch) - len(out[2]))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "advance", spy)
        fast = tc.occlusion(model, x, 1, 1, batch_size=16)
    full = tc.occlusion(model, x, 1, 1, fast=False)
    np.testing.assert_allclose(fast.occluded, full.occluded, rtol=1e-12, atol=1e-12)
    assert np.all(fast.grid[x[..., 0] == 0] == 0)            # background: the original
    assert sum(dropped) > 0                                  # non-maxima died in the pool
    assert np.any(fast.grid != 0)


@pytest.mark.parametrize("size, stride", [(4, 1), (7, 3)])
def test_fast_path_on_the_shipped_model_and_a_digit(size, stride):
    """The configuration of the tour: float32, a black background equal to the occluder."""
    model = tc.pretrained("mnist")
    images, labels = tc.load_mnist("bundled-test")
    x = tc.to_float(images[:1])[0]
    for target in (int(labels[0]), ("relu2", 5)):
        fast = tc.occlusion(model, x, target, size, stride=stride)
        full = tc.occlusion(model, x, target, size, stride=stride, fast=False)
        scale = np.abs(full.occluded).max()
        assert np.abs(fast.occluded - full.occluded).max() <= 1e-5 * scale
