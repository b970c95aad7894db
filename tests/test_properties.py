"""Property tests (hypothesis): gradients, adjoints, kernels and shapes on random configurations.

Shapes are drawn non-square (``W != H``) with independent kernel sizes, strides (up to 3),
paddings (int, pair, "same", "valid") and dilations, so a height/width mix-up cannot hide.
Configurations where the kernel does not fit the padded input are ``assume()``-d away.
Gradients are checked in float64 against centred differences (see ``gradcheck.py``), with
inputs kept further than the step from ReLU kinks and pooling ties.
"""

import contextlib

import numpy as np
from gradcheck import assert_gradient, check_layer, numerical_gradient
from hypothesis import assume, given
from hypothesis import strategies as st

import tinyconv as tc
from tinyconv import kernels, reference

seeds = st.integers(0, 2**32 - 1)
small = st.integers(1, 3)
paddings = st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                     st.sampled_from(["same", "valid"]))


def pair(lo, hi):
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi))


@st.composite
def sizes(draw, lo, hi):
    """``(H, W)`` in ``[lo, hi]`` with ``H != W``."""
    H = draw(st.integers(lo, hi))
    W = draw(st.integers(lo, hi - 1))
    return H, W + (W >= H)


@st.composite
def image_shapes(draw, lo=1, hi=7, batch=2, channels=2):
    """``(N, H, W, C)`` with ``H != W``."""
    H, W = draw(sizes(lo, hi))
    return draw(st.integers(1, batch)), H, W, draw(st.integers(1, channels))


def fits(layer, in_shape):
    """The layer's output shape, or reject the example if the kernel does not fit."""
    try:
        return layer.output_shape(in_shape)
    except ValueError:
        assume(False)


def distinct_values(rng, shape, gap=0.01):
    """Values that are all different by at least ``gap`` (>> 2h): no pooling ties."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * gap).reshape(shape)


def away_from_zero(rng, shape, margin=0.05):
    """Values with ``|x| >= margin`` (>> h): no ReLU kinks."""
    return np.where(rng.random(shape) < 0.5, -1, 1) * (margin + np.abs(rng.standard_normal(shape)))


# --------------------------------------------------------------------------- layer gradients


@st.composite
def conv_cases(draw):
    N, H, W, C = draw(image_shapes())
    # 6 more channels give kw * C >= 16 for most kernels: Conv2D's row-major buffers
    C += draw(st.sampled_from([0, 6]))
    layer = tc.Conv2D(C, draw(small), kernel=draw(pair(1, 4)), stride=draw(pair(1, 3)),
                      padding=draw(paddings), dilation=draw(pair(1, 2)), bias=draw(st.booleans()),
                      rng=draw(seeds), dtype=np.float64)
    out = fits(layer, (H, W, C))
    return layer, (N, H, W, C), out, draw(seeds)


@given(conv_cases())
def test_conv2d_gradients(case):
    layer, in_shape, out_shape, seed = case
    rng = np.random.default_rng(seed)
    if layer.bias:
        layer.params["b"][:] = rng.standard_normal(layer.out_channels)
    x = rng.standard_normal(in_shape)
    assert layer.forward(x).shape == (in_shape[0], *out_shape)
    check_layer(layer, x, rng.standard_normal((in_shape[0], *out_shape)))


@given(st.one_of(image_shapes(), st.tuples(small, st.integers(1, 12))), seeds)
def test_relu_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape)
    layer = tc.ReLU()
    assert layer.output_shape(shape[1:]) == layer.forward(x).shape[1:]
    check_layer(layer, x, rng.standard_normal(shape))


@st.composite
def pool_cases(draw):
    N, H, W, C = draw(image_shapes())
    kh, kw = draw(pair(1, 3))
    # each side's padding must be smaller than the window (MaxPool2D rejects it otherwise)
    padding = draw(st.one_of(st.integers(0, min(kh, kw) - 1),
                             st.tuples(st.integers(0, kh - 1), st.integers(0, kw - 1)),
                             st.sampled_from(["same", "valid"])))
    layer = tc.MaxPool2D((kh, kw), stride=draw(st.none() | pair(1, 3)), padding=padding)
    out = fits(layer, (H, W, C))
    return layer, (N, H, W, C), out, draw(seeds)


@given(pool_cases())
def test_maxpool_gradients(case):
    layer, in_shape, out_shape, seed = case
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, in_shape)
    assert layer.forward(x).shape == (in_shape[0], *out_shape)
    check_layer(layer, x, rng.standard_normal((in_shape[0], *out_shape)))


@given(image_shapes(), seeds)
def test_flatten_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    layer = tc.Flatten()
    x = rng.standard_normal(shape)
    out = layer.output_shape(shape[1:])
    assert layer.forward(x).shape == (shape[0], *out)
    check_layer(layer, x, rng.standard_normal((shape[0], *out)))


@given(small, st.integers(1, 12), st.integers(1, 5), seeds)
def test_dense_gradients(N, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    layer = tc.Dense(n_in, n_out, rng=seed, dtype=np.float64)
    layer.params["b"][:] = rng.standard_normal(n_out)
    x = rng.standard_normal((N, n_in))
    assert layer.forward(x).shape == (N, *layer.output_shape((n_in,)))
    check_layer(layer, x, rng.standard_normal((N, n_out)))


# --------------------------------------------------------------------------- the definitions


@given(conv_cases())
def test_conv2d_equals_the_loop_definition(case):
    """Forward, dx, dW and db of the fast layer against tinyconv.reference (float64)."""
    layer, (N, H, W, C), out_shape, seed = case
    rng = np.random.default_rng(seed)
    if layer.bias:
        layer.params["b"][:] = rng.standard_normal(layer.out_channels)
    x = rng.standard_normal((N, H, W, C))
    dy = rng.standard_normal((N, *out_shape))
    geometry = (layer.stride, layer.pads(H, W), layer.dilation)
    b = layer.params["b"] if layer.bias else None
    close = {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(layer.forward(x),
                               reference.conv2d(x, layer.params["W"], b, *geometry), **close)
    dx, dW, db = reference.conv2d_backward(dy, x, layer.params["W"], *geometry)
    np.testing.assert_allclose(layer.backward(dy), dx, **close)
    np.testing.assert_allclose(layer.grads["W"], dW, **close)
    if layer.bias:
        np.testing.assert_allclose(layer.grads["b"], db, **close)


@given(pool_cases())
def test_maxpool_equals_the_loop_definition(case):
    """Pooled values, switches (ties included) and unpooling, exactly."""
    layer, (N, H, W, C), out_shape, seed = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (N, H, W, C)).astype(np.float64)      # many ties
    y, switches = reference.maxpool2d(x, layer.size, layer.stride, layer.pads(H, W))
    np.testing.assert_array_equal(layer.forward(x), y)
    np.testing.assert_array_equal(layer.switches, switches)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(layer.backward(dy),
                                  reference.maxpool2d_backward(dy, switches, H, W))


# --------------------------------------------------------------------------- adjoints


@given(conv_cases())
def test_conv_backward_is_the_transposed_convolution(case):
    """``<conv(x), y> == <x, conv^T(y)>`` for a bias-free Conv2D (its backward is conv^T)."""
    conv, in_shape, out_shape, seed = case
    layer = tc.Conv2D(**{**conv.config(), "bias": False}, rng=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(in_shape)
    y = rng.standard_normal((in_shape[0], *out_shape))
    lhs = np.sum(layer.forward(x) * y)
    rhs = np.sum(x * layer.backward(y, rule="gradient"))
    assert np.isclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@given(pool_cases())
def test_unpool_is_the_adjoint_of_switch_selection(case):
    """``<select(x, switches), y> == <x, unpool(y, switches)>``; select(x) is the pooled output."""
    layer, (N, H, W, C), out_shape, seed = case
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, (N, H, W, C))
    pooled = layer.forward(x)
    s = layer.switches
    selected = x.reshape(N, H * W, C)[np.arange(N)[:, None, None, None], s,
                                      np.arange(C)[None, None, None, :]]
    np.testing.assert_array_equal(selected, pooled)
    y = rng.standard_normal(pooled.shape)
    for unpool in (kernels.unpool, kernels.unpool_reference):
        assert np.isclose(np.sum(selected * y), np.sum(x * unpool(y, s, H, W)),
                          rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- kernels vs references


@st.composite
def window_cases(draw, dilation=True, pads_below_window=False):
    N, H, W, C = draw(image_shapes(hi=9, batch=3, channels=3))
    kh, kw = draw(pair(1, 4))
    sh, sw = draw(pair(1, 3))
    dh, dw = draw(pair(1, 2)) if dilation else (1, 1)
    top, bottom = (draw(st.integers(0, k - 1)) if pads_below_window else draw(st.integers(0, 3))
                   for k in (kh, kh))
    left, right = (draw(st.integers(0, k - 1)) if pads_below_window else draw(st.integers(0, 3))
                   for k in (kw, kw))
    H_out = (H + top + bottom - dh * (kh - 1) - 1) // sh + 1
    W_out = (W + left + right - dw * (kw - 1) - 1) // sw + 1
    assume(H_out >= 1 and W_out >= 1)
    return (N, H, W, C), (kh, kw, sh, sw, dh, dw, top, left, H_out, W_out), draw(seeds)


@contextlib.contextmanager
def threads(parallel):
    """Run the kernels through prange on all threads (``parallel``) or on one, whatever the
    input's size (small inputs otherwise always take one thread)."""
    old = kernels.PARALLEL_MIN_SIZE
    kernels.PARALLEL_MIN_SIZE = 0 if parallel else 2**62
    try:
        yield
    finally:
        kernels.PARALLEL_MIN_SIZE = old


def assert_same(fast, ref, dtype):
    """Exact in float64; to 1e-6 in float32."""
    assert fast.dtype == ref.dtype == dtype
    if dtype == np.float64:
        np.testing.assert_array_equal(fast, ref)
    else:
        np.testing.assert_allclose(fast, ref, rtol=1e-6, atol=1e-6)


@given(window_cases(), st.sampled_from([np.float64, np.float32]), st.booleans(),
       st.sampled_from(["C", "F"]), st.sampled_from([0, 9]))
def test_im2col_and_col2im_equal_their_references(case, dtype, parallel, order, more_channels):
    """Every path: one thread or all, row- or column-major cols (Conv2D uses both), few
    channels or many (col2im goes pixel by pixel from 8 on)."""
    (N, H, W, C), args, seed = case
    C += more_channels
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    with threads(parallel):
        cols = kernels.im2col(x, *args, out=np.empty((N * args[-2] * args[-1],
                                                      args[0] * args[1] * C), dtype, order))
        assert_same(cols, kernels.im2col_reference(x, *args), dtype)
        dcols = np.asarray(rng.standard_normal(cols.shape).astype(dtype), order=order)
        back = kernels.col2im(dcols, N, H, W, C, *args)
    assert_same(back, kernels.col2im_reference(dcols, N, H, W, C, *args), dtype)
    # if we im2col on the forward, we col2im on the backward: they are adjoint
    if dtype == np.float64:
        assert np.isclose(np.sum(cols * dcols), np.sum(x * back), rtol=1e-12, atol=1e-12)


@given(window_cases(dilation=False, pads_below_window=True),
       st.sampled_from([np.float64, np.float32]), st.booleans(), st.booleans(), st.booleans())
def test_maxpool_and_unpool_equal_their_references(case, dtype, with_ties, parallel, rectify):
    (N, H, W, C), (kh, kw, sh, sw, _, _, top, left, H_out, W_out), seed = case
    rng = np.random.default_rng(seed)
    # few distinct values make ties common: both must pick the first maximum (with rectify,
    # every negative value ties at 0)
    x = (rng.integers(-2, 3, (N, H, W, C)) if with_ties
         else rng.standard_normal((N, H, W, C))).astype(dtype)
    args = (kh, kw, sh, sw, top, left, H_out, W_out)
    with threads(parallel):
        y, s = kernels.maxpool(x, *args, rectify=rectify)
    y_ref, s_ref = kernels.maxpool_reference(x, *args, rectify=rectify)
    assert_same(y, y_ref, dtype)
    np.testing.assert_array_equal(s, s_ref)
    if rectify:             # a ReLU and the pool in one pass: the pool of the ReLU's output
        y_relu, s_relu = kernels.maxpool(np.maximum(x, 0), *args)
        np.testing.assert_array_equal(y, y_relu)
        np.testing.assert_array_equal(s, s_relu)
    assert s.min() >= 0          # every window holds a real pixel
    dy = rng.standard_normal(y.shape).astype(dtype)
    with threads(parallel):
        dx = kernels.unpool(dy, s, H, W)
    assert_same(dx, kernels.unpool_reference(dy, s, H, W), dtype)


# --------------------------------------------------------------------------- whole models


@st.composite
def model_cases(draw):
    """A random conv / relu / (pool) / … / flatten / (dense, relu) / dense stack."""
    H, W = draw(sizes(4, 9))
    input_shape = shape = (H, W, draw(st.integers(1, 2)))
    layers = []
    for _ in range(draw(st.integers(1, 2))):
        conv = tc.Conv2D(shape[2], draw(small), kernel=draw(pair(1, 3)),
                         stride=draw(pair(1, 2)), padding=draw(paddings),
                         dilation=draw(pair(1, 2)))
        shape = fits(conv, shape)
        layers += [conv, tc.ReLU()]
        if draw(st.booleans()):
            pool = tc.MaxPool2D(draw(pair(1, 3)), stride=draw(st.none() | pair(1, 2)),
                                padding=draw(st.sampled_from([0, "same", "valid"])))
            shape = fits(pool, shape)
            layers.append(pool)
    layers.append(tc.Flatten())
    features = int(np.prod(shape))
    if draw(st.booleans()):
        hidden = draw(st.integers(1, 3))
        layers += [tc.Dense(features, hidden), tc.ReLU()]
        features = hidden
    layers.append(tc.Dense(features, draw(st.integers(1, 3))))
    return layers, input_shape, draw(st.integers(1, 2)), draw(seeds)


def kink_pattern(layers):
    """Which side of every kink the last forward pass was on: ReLU masks and pool switches."""
    return [layer._x > 0 if isinstance(layer, tc.ReLU) else layer.switches.copy()
            for layer in layers if isinstance(layer, (tc.ReLU, tc.MaxPool2D))]


@given(model_cases())
def test_sequential_gradients_end_to_end(case):
    """A random model passes the check for the input and every parameter, in float64.

    Hidden units cannot be placed away from kinks by hand, so the check watches them: if any
    perturbed pass flips a ReLU mask or a pool switch, the example is rejected. Otherwise the
    model is linear along every perturbation, and the centred difference is exact.
    """
    layers, input_shape, N, seed = case
    model = tc.Sequential(layers, input_shape, seed=seed).astype(np.float64)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "b" in layer.params:         # non-zero biases: no pre-activation is exactly 0
            layer.params["b"][:] = 0.1 * rng.standard_normal(layer.params["b"].shape)
    x = rng.standard_normal((N, *input_shape))
    ys = model.activations(x)
    assert [y.shape[1:] for y in ys] == model.output_shapes
    dy = rng.standard_normal(ys[-1].shape)
    analytic = {"x": model.backward(dy, rule="gradient")}
    analytic.update({f"{layer.name}.{key}": layer.grads[key].copy()
                     for layer, key in model.parameters()})
    # the kinks above each layer at the unperturbed point
    base = [kink_pattern(model.layers[i:]) for i in range(len(model.layers))]
    flipped = []

    def forward_from(i):
        """``y_(L)`` from the cached ``y_(i)`` (perturbing y_(i) or layer i+1 leaves the
        layers below as they were), noting whether any kink above flipped."""
        def f():
            y = ys[i]
            for layer in model.layers[i:]:
                y = layer.forward(y, check=False)
            flipped.append(any(not np.array_equal(a, b) for a, b in zip(
                kink_pattern(model.layers[i:]), base[i], strict=True)))
            return y
        return f

    h = 1e-4
    numeric = {"x": numerical_gradient(forward_from(0), ys[0], dy, h)}     # y_(0) is x
    for i, layer in enumerate(model.layers):
        for key in layer.params:
            numeric[f"{layer.name}.{key}"] = numerical_gradient(
                forward_from(i), layer.params[key], dy, h)
    assume(not any(flipped))
    for what, num in numeric.items():
        assert_gradient(analytic[what], num, what)
