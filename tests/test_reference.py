"""The loop definitions of tinyconv.reference, and every fast path held against them (float64).

Each configuration is non-square; the set covers stride > 1, padding > 0, dilation, and each
of the kernels' loops: one input channel with stride 1 (column-major buffers), few channels
(tap rows copied as runs), many channels or dilated columns (tap by tap).
"""

import numpy as np
import pytest
from gradcheck import assert_gradient, numerical_gradient

import tinyconv as tc
from tinyconv import kernels, reference

# (C_in, kernel, stride, padding, dilation, bias)
CONV_CASES = [
    (1, (3, 2), (1, 1), (1, 0), (1, 1), True),      # one channel, stride 1: by column
    (1, (2, 3), (2, 1), "same", (2, 1), False),     # ... dilated rows, no bias
    (1, (3, 3), (1, 2), (2, 1), (1, 1), True),      # one channel, strided columns
    (3, (2, 3), (2, 1), (1, 2), (1, 1), True),      # few channels: runs
    (5, (3, 2), (1, 3), "same", (2, 2), True),      # dilated columns: tap by tap
    (17, (2, 2), (2, 2), (1, 1), (1, 1), False),    # many channels: tap by tap
]
POOL_CASES = [
    ((2, 3), (2, 3), (0, 0)),
    ((3, 2), (1, 2), (1, 1)),
    ((3, 3), (2, 2), "same"),
    ((2, 1), (1, 1), (1, 0)),
]


def test_conv2d_by_hand():
    # 2 x 3 image, one channel, 2 x 2 kernel of ones plus bias 10: each output sums a window
    x = np.arange(6, dtype=np.float64).reshape(1, 2, 3, 1)          # [[0, 1, 2], [3, 4, 5]]
    W = np.ones((2, 2, 1, 1))
    y = reference.conv2d(x, W, np.array([10.0]), (1, 1), ((0, 0), (0, 0)), (1, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[18, 22]])
    # padding 1 on the left only: the first window sees a column of zeros and 0, 3
    y = reference.conv2d(x, W, None, (1, 1), ((0, 0), (1, 0)), (1, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[3, 8, 12]])


def test_cross_correlation_is_not_convolution(rng):
    """The negative control: flipping the kernel (a true convolution) changes the result, so
    the comparisons below would catch a layer that flips its filters."""
    x = rng.standard_normal((1, 4, 5, 2))
    W = rng.standard_normal((2, 3, 2, 3))
    pads = ((0, 0), (0, 0))
    y = reference.conv2d(x, W, None, (1, 1), pads, (1, 1))
    flipped = reference.conv2d(x, W[::-1, ::-1], None, (1, 1), pads, (1, 1))
    assert np.abs(y - flipped).max() > 0.1


@pytest.mark.parametrize("C_in, kernel, stride, padding, dilation, bias", CONV_CASES)
def test_conv2d_backward_is_the_gradient_of_conv2d(rng, C_in, kernel, stride, padding, dilation,
                                                   bias):
    layer = tc.Conv2D(C_in, 2, kernel, stride, padding, dilation, bias=bias)
    pads = layer.pads(5, 6)
    x = rng.standard_normal((2, 5, 6, C_in))
    W = rng.standard_normal((*kernel, C_in, 2))
    b = rng.standard_normal(2)
    dy = rng.standard_normal((2, *layer.output_shape((5, 6, C_in))[:2], 2))
    dx, dW, db = reference.conv2d_backward(dy, x, W, stride, pads, dilation)

    def f():
        return reference.conv2d(x, W, b, stride, pads, dilation)
    assert_gradient(dx, numerical_gradient(f, x, dy), "dx")
    assert_gradient(dW, numerical_gradient(f, W, dy), "dW")
    assert_gradient(db, numerical_gradient(f, b, dy), "db")


@pytest.mark.parametrize("C_in, kernel, stride, padding, dilation, bias", CONV_CASES)
def test_conv2d_layer_equals_the_definition(rng, threads, C_in, kernel, stride, padding,
                                            dilation, bias):
    layer = tc.Conv2D(C_in, 3, kernel, stride, padding, dilation, bias=bias, rng=0,
                      dtype=np.float64)
    if bias:
        layer.params["b"][:] = rng.standard_normal(3)
    x = rng.standard_normal((3, 7, 6, C_in))
    y = layer.forward(x)
    b = layer.params["b"] if bias else None
    args = (layer.stride, layer.pads(7, 6), layer.dilation)
    np.testing.assert_allclose(y, reference.conv2d(x, layer.params["W"], b, *args),
                               rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    want_dx, want_dW, want_db = reference.conv2d_backward(dy, x, layer.params["W"], *args)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], want_dW, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.grads["b"], want_db, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("C_in, kernel, stride, padding, dilation, bias", CONV_CASES)
def test_im2col_and_col2im_equal_the_definition(rng, threads, C_in, kernel, stride, padding,
                                                dilation, bias):
    """The kernels alone: ``im2col(x) @ W2`` is the convolution and ``col2im(dy W2^T)`` its
    ``dx``, with cols in either memory order."""
    layer = tc.Conv2D(C_in, 2, kernel, stride, padding, dilation, bias=bias)
    args = layer._im2col_args(7, 6)
    x = rng.standard_normal((2, 7, 6, C_in))
    W = rng.standard_normal((*kernel, C_in, 2))
    W2 = W.reshape(-1, 2)
    ref = (layer.stride, layer.pads(7, 6), layer.dilation)
    dy = rng.standard_normal((2, args.H_out, args.W_out, 2))
    want_dx = reference.conv2d_backward(dy, x, W, *ref)[0]
    for order in ("C", "F"):
        cols = kernels.im2col(x, *args, out=np.empty((2 * args.H_out * args.W_out, len(W2)),
                                                     order=order))
        y = (cols @ W2).reshape(dy.shape)
        np.testing.assert_allclose(y, reference.conv2d(x, W, None, *ref), rtol=1e-12,
                                   atol=1e-12)
        dcols = np.asarray(dy.reshape(-1, 2) @ W2.T, order=order)
        dx = kernels.col2im(dcols, *x.shape, *args)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


def test_maxpool2d_by_hand():
    # ties go to the first maximum in row-major order; padding (here -inf-free) never wins
    x = np.array([[3.0, 3.0, 1.0, 5.0],
                  [3.0, 3.0, 5.0, 5.0]])[None, :, :, None]
    y, switches = reference.maxpool2d(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
    np.testing.assert_array_equal(y[0, 0, :, 0], [3, 5])
    np.testing.assert_array_equal(switches[0, 0, :, 0], [0, 3])
    neg = -1 - np.arange(4.0).reshape(1, 2, 2, 1)                    # all below zero
    y, switches = reference.maxpool2d(neg, (2, 2), (1, 1), ((1, 0), (1, 0)))
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -1], [-1, -1]])
    np.testing.assert_array_equal(switches[0, :, :, 0], [[0, 0], [0, 0]])
    dx = reference.maxpool2d_backward(np.ones((1, 2, 2, 1)), switches, 2, 2)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[4, 0], [0, 0]])  # four windows share it


@pytest.mark.parametrize("size, stride, padding", POOL_CASES)
@pytest.mark.parametrize("with_ties", [False, True])
def test_maxpool_layer_and_kernels_equal_the_definition(rng, threads, size, stride, padding,
                                                        with_ties):
    x = rng.integers(-3, 2, (2, 7, 6, 3)).astype(np.float64) if with_ties else \
        -np.abs(rng.standard_normal((2, 7, 6, 3)))          # all negative: padding must not win
    pool = tc.MaxPool2D(size, stride, padding)
    pads = pool.pads(7, 6)
    want, want_switches = reference.maxpool2d(x, pool.size, pool.stride, pads)
    np.testing.assert_array_equal(pool.forward(x), want)
    np.testing.assert_array_equal(pool.switches, want_switches)
    H_out, W_out, _ = pool.output_shape((7, 6, 3))
    y, switches = kernels.maxpool(x, *pool.size, *pool.stride, pads[0][0], pads[1][0], H_out,
                                  W_out)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(switches, want_switches)
    dy = rng.standard_normal(want.shape)
    want_dx = reference.maxpool2d_backward(dy, want_switches, 7, 6)
    np.testing.assert_array_equal(pool.backward(dy), want_dx)
    np.testing.assert_array_equal(kernels.unpool(dy, switches, 7, 6), want_dx)
