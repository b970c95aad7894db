"""The fast occlusion path (projective fields, layer declarations) against the plain path."""

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.layers import Layer
from tinyconv.occlusion import window_starts


def random_layer(rng, C):
    """A random spatial layer: a convolution (any padding, stride, dilation) or a max-pool
    (stride != size, padding) — non-square throughout."""
    if rng.random() < 0.6:
        padding = [("same"), "valid", int(rng.integers(0, 5)),
                   (int(rng.integers(0, 3)), int(rng.integers(0, 3)))][rng.integers(0, 4)]
        return tc.Conv2D(C, int(rng.integers(1, 4)), tuple(rng.integers(1, 6, 2).tolist()),
                         stride=tuple(rng.integers(1, 3, 2).tolist()), padding=padding,
                         dilation=tuple(rng.integers(1, 3, 2).tolist()))
    size = tuple(rng.integers(1, 4, 2).tolist())
    padding = "same" if rng.random() < 0.3 else tuple(int(rng.integers(0, s)) for s in size)
    return tc.MaxPool2D(size, stride=tuple(rng.integers(1, 4, 2).tolist()), padding=padding)


def random_case(seed):
    """A random small model (float64), one image, and random occlusion arguments."""
    rng = np.random.default_rng(seed)
    while True:
        H, W, C = int(rng.integers(4, 17)), int(rng.integers(4, 17)), int(rng.integers(1, 3))
        layers, c = [], C
        for _ in range(int(rng.integers(1, 7))):
            layer = random_layer(rng, c)
            layers.append(layer)
            c = getattr(layer, "out_channels", c)
            if rng.random() < 0.6:
                layers.append(tc.ReLU())
        try:
            probe = tc.Sequential(layers, (H, W, C))
        except ValueError:                      # a map shrank below a kernel: draw again
            continue
        classes = rng.random() < 0.6
        if classes:
            layers += [tc.Flatten(), tc.Dense(int(np.prod(probe.output_shapes[-1])), 3)]
        model = tc.Sequential(layers, (H, W, C), seed=seed).astype(np.float64)
        break
    x = rng.standard_normal((H, W, C))
    kind = rng.integers(0, 3)
    if classes and kind == 0:
        target = int(rng.integers(0, 3))
    elif kind == 1 or not classes:
        spatial = [l for l in range(1, len(model.output_shapes))
                   if len(model.output_shapes[l]) == 3]
        l = int(rng.choice(spatial))
        target = (l, int(rng.integers(0, model.output_shapes[l][-1])))
    else:
        target = lambda y: y.reshape(len(y), -1)[:, 0] - y.reshape(len(y), -1).mean(axis=1)  # noqa: E731
    size = (int(rng.integers(1, H + 1)), int(rng.integers(1, W + 1)))
    stride = (int(rng.integers(1, H + 1)), int(rng.integers(1, W + 1)))
    baseline = [0.0, float(rng.normal()), rng.normal(size=C), rng.normal(size=(H, W, C)),
                x[0, 0]][rng.integers(0, 5)]
    return model, x, dict(target=target, size=size, stride=stride, baseline=baseline,
                          batch_size=int(rng.integers(1, 40)))


@pytest.mark.parametrize("seed", [*range(100), 154, 687])   # 154, 687: IndexError before
def test_fast_equals_plain_on_random_architectures(seed):
    model, x, kwargs = random_case(seed)
    fast = tc.occlusion(model, x, **kwargs)
    plain = tc.occlusion(model, x, **kwargs, fast=False)
    scale = max(np.abs(plain.occluded).max(), 1.0)
    np.testing.assert_allclose(fast.occluded, plain.occluded, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(fast.original, plain.original, rtol=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_every_window_lies_in_the_image_and_the_last_reaches_the_edge(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    size, stride = int(rng.integers(1, n + 1)), int(rng.integers(1, n + 3))
    starts = window_starts(n, size, stride)
    assert starts[0] == 0 and starts[-1] + size >= n           # both edges covered
    assert np.all((starts >= 0) & (starts < n))                # each covers a pixel at least
    assert np.all(np.diff(starts) >= 1) and np.all(np.diff(starts)[:-1] == stride)
    assert len(starts) == -(-(n - size) // stride) + 1


def test_the_grid_when_the_stride_does_not_divide_the_image():
    """10 pixels, windows of 1 every 4: 0, 4, 8 and the edge 9 (no window at 12)."""
    model = tc.Sequential([tc.Conv2D(1, 1, 1), tc.Flatten(), tc.Dense(10 * 10, 2)],
                          input_shape=(10, 10, 1), seed=0).astype(np.float64)
    x = np.random.default_rng(1).uniform(0.5, 1.0, (10, 10, 1))
    out = tc.occlusion(model, x, 0, 1, stride=4)
    np.testing.assert_array_equal(out.rows, [0, 4, 8, 9])
    assert np.all(out.grid != 0)                   # every window hides a pixel
    assert not np.isnan(out.pixels[9, 9])


class Square(Layer):
    """A pointwise layer unknown to the fast path: ``y = x ** 2``."""

    pointwise = True

    def forward(self, x, check=True):
        return x * x

    def forward_unpadded(self, x):
        return x * x


class MeanPool(Layer):
    """A 3x3 mean over the window with padding 1 of value 1.0 (an unusual pad value, so
    that a fast path ignoring it would be caught), stride (1, 2)."""

    pad_value = 1.0

    def geometry(self, in_shape):
        return (3, 1, 1, 1), (3, 2, 1, 1)

    def output_shape(self, in_shape):
        H, W, C = in_shape
        return H, (W + 2 - 3) // 2 + 1, C

    def forward_unpadded(self, x):
        N, H, W, C = x.shape
        W_out = (W - 3) // 2 + 1
        y = np.zeros((N, H - 2, W_out, x.shape[3]))
        for i in range(3):
            for j in range(3):
                y += x[:, i:i + H - 2, j:j + 2 * W_out - 1:2]
        return y / 9

    def forward(self, x, check=True):
        return self.forward_unpadded(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)),
                                            constant_values=self.pad_value))


def toy_model(mean_pool=MeanPool):
    return tc.Sequential([
        tc.Conv2D(2, 3, 3, padding="same"), Square(), mean_pool(), tc.ReLU(),
        tc.MaxPool2D(2, stride=1), tc.Flatten(), tc.Dense(9 * 4 * 3, 3),
    ], input_shape=(10, 9, 2), seed=3).astype(np.float64)


@pytest.mark.parametrize("size, stride", [(1, 1), (3, 2), ((2, 4), (3, 1))])
def test_new_layer_types_by_their_declarations_alone(size, stride):
    model = toy_model()
    X = np.random.default_rng(4).standard_normal((2, 10, 9, 2))
    for target in (1, (3, 2)):
        fast = tc.occlusion(model, X, target, size, stride=stride, baseline=0.5, batch_size=7)
        plain = tc.occlusion(model, X, target, size, stride=stride, baseline=0.5, fast=False)
        np.testing.assert_allclose(fast.occluded, plain.occluded, rtol=1e-12, atol=1e-12)


def test_a_wrong_declaration_is_caught():
    """Negative control: a mean-pool that pads with 0 on the fast path but with 1 on the
    plain path must give a different answer near the border."""

    class Lying(MeanPool):
        def forward(self, x, check=True):
            return self.forward_unpadded(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))

    model = toy_model(Lying)
    x = np.random.default_rng(4).standard_normal((10, 9, 2))
    fast = tc.occlusion(model, x, 1, 2, baseline=0.5)
    plain = tc.occlusion(model, x, 1, 2, baseline=0.5, fast=False)
    assert np.abs(fast.occluded - plain.occluded).max() > 1e-6


def test_the_model_layers_are_not_modified():
    """The fast path runs the model's own layers without copying or re-configuring them."""
    model = tc.pretrained("mnist")
    before = [layer.config() for layer in model.layers]
    x = tc.to_float(tc.load_mnist("bundled-test")[0][:1])[0]
    tc.occlusion(model, x, 3, 6, stride=3)
    assert [layer.config() for layer in model.layers] == before
