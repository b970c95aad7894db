"""Max-pooling with switches, and unpooling through them (Zeiler & Fergus 2014, §2.1).

The switches hold, for each pooled unit, the flat position ``row * W + col`` of its maximum in
the unpadded input; unpooling sends each value back there.
"""

import numpy as np
from numba import njit, prange

from ._runtime import _run, _wraps


def maxpool_reference(x, kh, kw, sh, sw, pad_top, pad_left, H_out, W_out, rectify=False):
    """Max-pool and record the switches (plain NumPy).

    Parameters
    ----------
    x : (N, H, W, C) array
    kh, kw, sh, sw : window size and stride per axis.
    pad_top, pad_left : padding before each axis; padded cells never win (they are -inf).
    H_out, W_out : output size.
    rectify : pool ``max(x, 0)`` instead of ``x``: a ReLU and the pool above it in one pass
        (the numbers, switches included, of the pool of ``np.maximum(x, 0)``).

    Returns
    -------
    y : (N, H_out, W_out, C) array, the max over each window.
    switches : (N, H_out, W_out, C) int64, flat position ``row * W + col`` in ``x`` of that
        max. Ties go to the first maximum in row-major window order.
    """
    if rectify:
        x = np.maximum(x, 0)
    N, H, W, C = x.shape
    y = np.full((N, H_out, W_out, C), -np.inf, dtype=x.dtype)
    switches = np.full((N, H_out, W_out, C), -1, dtype=np.int64)
    for i in range(kh):             # row-major over the window, strict '>' keeps the first max
        for j in range(kw):
            r = np.arange(H_out) * sh - pad_top + i
            c = np.arange(W_out) * sw - pad_left + j
            ok_r, ok_c = (r >= 0) & (r < H), (c >= 0) & (c < W)
            rr, cc = np.flatnonzero(ok_r), np.flatnonzero(ok_c)
            cand = x[:, r[ok_r]][:, :, c[ok_c]]                       # (N, #rr, #cc, C)
            cur = y[:, rr[:, None], cc[None, :]]
            better = cand > cur
            pos = (r[ok_r][:, None] * W + c[ok_c][None, :])[None, :, :, None]
            y[:, rr[:, None], cc[None, :]] = np.where(better, cand, cur)
            sw_cur = switches[:, rr[:, None], cc[None, :]]
            switches[:, rr[:, None], cc[None, :]] = np.where(better, pos, sw_cur)
    return y, switches


@njit(inline="always")
def _read(x, n, r, c, ch, rectify, low):
    """``x[n, r, c, ch]``, or ``max(x[n, r, c, ch], 0)`` with ``rectify`` (``low``: 0 in
    ``x``'s dtype). As ``np.maximum(x, 0)``: NaN stays NaN, and -0.0 becomes +0.0."""
    v = x[n, r, c, ch]
    if rectify and v <= low:
        v = low
    return v


@njit(cache=True, parallel=True)
def _maxpool(x, kh, kw, sh, sw, pad_top, pad_left, H_out, W_out, rectify, low, y, switches):
    N, H, W, C = x.shape
    for t in prange(N * H_out):                   # one output row (n, oh) per task
        n = t // H_out
        oh = t - n * H_out
        r0 = oh * sh - pad_top
        i0 = max(0, -r0)                          # first window row inside the image
        i1 = min(kh, H - r0)
        for ow in range(W_out):
            c0 = ow * sw - pad_left
            j0 = max(0, -c0)
            j1 = min(kw, W - c0)
            if i0 >= i1 or j0 >= j1:              # a window all padding: nothing wins
                for ch in range(C):
                    y[n, oh, ow, ch] = -np.inf
                    switches[n, oh, ow, ch] = -1
                continue
            # the first real cell seeds the max; later cells need a strict '>' to replace
            # it, so ties keep the first in row-major order. Channels innermost: the compare
            # and the two selects run on whole vectors of channels.
            pos = (r0 + i0) * W + c0 + j0
            for ch in range(C):
                y[n, oh, ow, ch] = _read(x, n, r0 + i0, c0 + j0, ch, rectify, low)
                switches[n, oh, ow, ch] = pos
            for i in range(i0, i1):
                for j in range(j0, j1):
                    pos = (r0 + i) * W + c0 + j
                    for ch in range(C):
                        v = _read(x, n, r0 + i, c0 + j, ch, rectify, low)
                        better = v > y[n, oh, ow, ch]
                        y[n, oh, ow, ch] = v if better else y[n, oh, ow, ch]
                        switches[n, oh, ow, ch] = pos if better else switches[n, oh, ow, ch]


@_wraps(_maxpool)
def maxpool(x, kh, kw, sh, sw, pad_top, pad_left, H_out, W_out, rectify=False):
    """numba twin of :func:`maxpool_reference` (same signature, same result)."""
    x = np.ascontiguousarray(x)
    N, _, _, C = x.shape
    y = np.empty((N, H_out, W_out, C), dtype=x.dtype)
    switches = np.empty((N, H_out, W_out, C), dtype=np.int64)
    low = x.dtype.type(0)           # 0 in x's dtype: a Python 0 would make numba mix in float64
    _run(_maxpool, y.size, x, kh, kw, sh, sw, pad_top, pad_left, H_out, W_out, bool(rectify),
         low, y, switches)
    return y, switches


# --------------------------------------------------------------------------- unpool


def unpool_reference(dy, switches, H, W):
    """Route each pooled value back to where its max came from (plain NumPy).

    This is both the gradient of max-pooling and the deconvnet's "unpooling" (Zeiler & Fergus
    2014, §2.1): the adjoint of selecting ``x`` at the switches. Windows that overlap
    (stride < size) can send two values to one pixel; they add.

    Parameters
    ----------
    dy : (N, H_out, W_out, C) array
    switches : (N, H_out, W_out, C) int64 flat positions ``row * W + col``.
    H, W : spatial size of the pooled layer's input.

    Returns
    -------
    dx : (N, H, W, C) array, zero wherever no switch points.
    """
    N, _, _, C = dy.shape
    dx = np.zeros((N, H * W, C), dtype=dy.dtype)
    n = np.arange(N)[:, None, None, None]
    ch = np.arange(C)[None, None, None, :]
    np.add.at(dx, (np.broadcast_to(n, dy.shape), switches, np.broadcast_to(ch, dy.shape)), dy)
    return dx.reshape(N, H, W, C)


@njit(cache=True, parallel=True)
def _unpool(dy, switches, dx):
    N, H_out, W_out, C = dy.shape
    for n in prange(N):             # one example per task: its scatter stays in its own image
        for p in range(dx.shape[1]):
            dx[n, p] = 0
        for oh in range(H_out):
            for ow in range(W_out):
                for ch in range(C):
                    dx[n, switches[n, oh, ow, ch] * C + ch] += dy[n, oh, ow, ch]


@_wraps(_unpool)
def unpool(dy, switches, H, W):
    """numba twin of :func:`unpool_reference` (same signature, same result)."""
    dy = np.ascontiguousarray(dy)
    N, _, _, C = dy.shape
    dx = np.empty((N, H, W, C), dtype=dy.dtype)
    _run(_unpool, dx.size, dy, np.ascontiguousarray(switches), dx.reshape(N, H * W * C))
    return dx
