"""The definitions, in plain loops: convolution and max-pooling as a textbook writes them.

Read this module first. :class:`tinyconv.layers.Conv2D` and :class:`tinyconv.layers.MaxPool2D`
compute the same numbers fast (im2col + one GEMM, numba loops with switches); the tests
assert, in float64, that every fast path equals these loops. Nothing here is fast: each
function walks the output positions ``(oh, ow)`` and the kernel taps ``(i, j)`` one by one,
vectorised only over the batch and the channels.

Shapes follow the lecture: activations ``y_(l)`` are ``(N, H, W, C)`` (feature index ``k``
last), conv weights are HWIO ``(kh, kw, C_in, C_out)``. Geometry arguments are pairs, one
number per spatial axis: ``stride = (sh, sw)``, ``dilation = (dh, dw)``,
``pads = ((pad_top, pad_bottom), (pad_left, pad_right))`` — what a layer's ``stride``,
``dilation`` and ``pads(H_in, W_in)`` give.
"""

import numpy as np


def out_size(size, kernel, stride, dilation, before, after):
    """Output extent along one axis:
    ``(size + before + after - dilation*(kernel-1) - 1) // stride + 1``."""
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def _zero_padded(x, pads):
    """``x`` of shape ``(N, H, W, C)`` inside a frame of zeros:
    ``(N, pad_top + H + pad_bottom, pad_left + W + pad_right, C)``."""
    (pt, pb), (pl, pr) = pads
    N, H_in, W_in, C = x.shape
    xp = np.zeros((N, pt + H_in + pb, pl + W_in + pr, C), dtype=x.dtype)
    xp[:, pt:pt + H_in, pl:pl + W_in] = x
    return xp


def conv2d(x, W, b, stride, pads, dilation):
    """Convolution (cross-correlation, as in every CNN library) by its definition.

    ``y[n, oh, ow, o] = b[o] + sum_{i, j, c} xp[n, oh*sh + i*dh, ow*sw + j*dw, c] W[i, j, c, o]``,
    ``xp`` being ``x`` zero-padded by ``pads`` (Zeiler & Fergus 2014, §2: each layer
    convolves the previous layer's output with learned filters).

    Parameters
    ----------
    x : (N, H_in, W_in, C_in) array, the layer input ``y_(l-1)``.
    W : (kh, kw, C_in, C_out) weights (HWIO).
    b : (C_out,) bias, or None.
    stride, pads, dilation : as in the module notes.

    Returns
    -------
    y : (N, H_out, W_out, C_out) array, ``H_out = (H_in + pt + pb - dh*(kh-1) - 1) // sh + 1``
        (the same along W).
    """
    kh, kw, _, C_out = W.shape
    (sh, sw), (dh, dw) = stride, dilation
    xp = _zero_padded(x, pads)
    H_out = out_size(x.shape[1], kh, sh, dh, *pads[0])
    W_out = out_size(x.shape[2], kw, sw, dw, *pads[1])
    y = np.zeros((x.shape[0], H_out, W_out, C_out), dtype=x.dtype)
    for oh in range(H_out):
        for ow in range(W_out):
            for i in range(kh):
                for j in range(kw):
                    # (N, C_in) @ (C_in, C_out): tap (i, j) of every example's window
                    y[:, oh, ow] += xp[:, oh * sh + i * dh, ow * sw + j * dw] @ W[i, j]
    return y if b is None else y + b


def conv2d_backward(dy, x, W, stride, pads, dilation):
    """The gradients of :func:`conv2d`, by the same loops run backwards.

    Every product ``xp[n, r, c] W[i, j]`` that went into ``y[n, oh, ow]`` sends ``dy[n, oh, ow]``
    back to both factors: ``dxp[n, r, c] += dy W[i, j]^T`` and ``dW[i, j] += xp[n, r, c]^T dy``.
    The ``dx`` part is the transposed convolution that the deconvnet uses to project a
    unit back to the input (Zeiler & Fergus 2014, §2.1, "filtering").

    Parameters
    ----------
    dy : (N, H_out, W_out, C_out) array, the signal arriving at the layer's output.
    x, W, stride, pads, dilation : as in :func:`conv2d`.

    Returns
    -------
    dx : (N, H_in, W_in, C_in), what falls in the padding dropped.
    dW : (kh, kw, C_in, C_out).
    db : (C_out,), ``dy`` summed over examples and locations.
    """
    kh, kw, _, _ = W.shape
    (sh, sw), (dh, dw), ((pt, _), (pl, _)) = stride, dilation, pads
    xp = _zero_padded(x, pads)
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W, dtype=dy.dtype)
    _, H_out, W_out, _ = dy.shape
    for oh in range(H_out):
        for ow in range(W_out):
            for i in range(kh):
                for j in range(kw):
                    r, c = oh * sh + i * dh, ow * sw + j * dw
                    dxp[:, r, c] += dy[:, oh, ow] @ W[i, j].T      # (N, C_out) @ (C_out, C_in)
                    dW[i, j] += xp[:, r, c].T @ dy[:, oh, ow]      # (C_in, N) @ (N, C_out)
    dx = dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2]]
    return dx, dW, dy.sum(axis=(0, 1, 2))


def maxpool2d(x, size, stride, pads):
    """Max-pooling with switches, by its definition (Zeiler & Fergus 2014, §2.1).

    ``y[n, oh, ow, k]`` is the largest ``x[n, r, c, k]`` over the window's real cells
    ``r = oh*sh - pad_top + i``, ``c = ow*sw - pad_left + j``; padding is not a cell, so it
    never wins. The *switch* records where that maximum was, as the flat position
    ``r * W_in + c``. Cells are visited in row-major window order and only a strictly larger
    value replaces the current best, so a tie goes to the first maximum in that order.

    Parameters
    ----------
    x : (N, H_in, W_in, C) array.
    size : ``(kh, kw)`` window.
    stride, pads : as in the module notes (no dilation).

    Returns
    -------
    y : (N, H_out, W_out, C) array.
    switches : (N, H_out, W_out, C) int64, ``-1`` for a window that is all padding.
    """
    N, H_in, W_in, C = x.shape
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = size, stride, pads
    H_out = out_size(H_in, kh, sh, 1, pt, pb)
    W_out = out_size(W_in, kw, sw, 1, pl, pr)
    y = np.full((N, H_out, W_out, C), -np.inf, dtype=x.dtype)
    switches = np.full((N, H_out, W_out, C), -1, dtype=np.int64)
    for oh in range(H_out):
        for ow in range(W_out):
            for i in range(kh):
                for j in range(kw):
                    r, c = oh * sh - pt + i, ow * sw - pl + j
                    if not (0 <= r < H_in and 0 <= c < W_in):
                        continue                        # padding: never a candidate
                    value = x[:, r, c]                  # (N, C)
                    better = (value > y[:, oh, ow]) | (switches[:, oh, ow] < 0)
                    y[:, oh, ow] = np.where(better, value, y[:, oh, ow])
                    switches[:, oh, ow] = np.where(better, r * W_in + c, switches[:, oh, ow])
    return y, switches


def maxpool2d_backward(dy, switches, H_in, W_in):
    """The gradient of :func:`maxpool2d`, and the deconvnet's unpooling: each pooled value
    goes back to its switch; where overlapping windows share a maximum, the values add.

    Parameters
    ----------
    dy : (N, H_out, W_out, C) array.
    switches : (N, H_out, W_out, C) int64, from :func:`maxpool2d`.
    H_in, W_in : the pooled layer's input size.

    Returns
    -------
    dx : (N, H_in, W_in, C) array, zero wherever no switch points.
    """
    N, H_out, W_out, C = dy.shape
    dx = np.zeros((N, H_in * W_in, C), dtype=dy.dtype)
    for n in range(N):
        for oh in range(H_out):
            for ow in range(W_out):
                for k in range(C):
                    dx[n, switches[n, oh, ow, k], k] += dy[n, oh, ow, k]
    return dx.reshape(N, H_in, W_in, C)
