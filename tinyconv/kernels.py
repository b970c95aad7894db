"""The hot loops: im2col / col2im, max-pooling with switches, unpooling.

This is the only file with numba code. Every kernel takes arrays and ints only (padding
amounts, strides, output sizes are computed by the layers in Python) and stands beside a
plain-NumPy ``*_reference`` with the same signature; the tests assert that the two agree.
Read the references first: they say what is computed, the kernels say how to do it fast.

Layout, declared once for the whole package::

    activations  (N, H, W, C)        NHWC, channel last
    conv weights (kh, kw, C_in, C_out) HWIO
    im2col rows  (N * H_out * W_out, kh * kw * C)   row = one output location (n, oh, ow),
                 column = (i, j, c) in C order, so ``cols @ W.reshape(kh * kw * C_in, C_out)``
                 is the convolution.

Padding is never materialised: a kernel tap that falls outside the image reads as 0 (im2col)
or is skipped (col2im, max-pool). The max-pool *switches* hold, for each pooled unit, the flat
position ``row * W + col`` of its maximum in the unpadded input (Zeiler & Fergus 2014, §2.1).
"""

import os

import numpy as np
from numba import njit, prange

# numba runs prange loops on an OpenMP pool whose idle threads spin by default; when other
# processes share the cores, every parallel call then waits for a spinning thread to be
# scheduled (milliseconds for a microsecond kernel). Idle threads that sleep avoid that. The
# OpenMP runtime reads this when numba first loads it, after this import; a value the user
# set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# --------------------------------------------------------------------------- im2col


def im2col_reference(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out):
    """Unfold every receptive window of ``x`` into one row (plain NumPy).

    Parameters
    ----------
    x : (N, H, W, C) array
    kh, kw, sh, sw, dh, dw : kernel size, stride and dilation per axis.
    pad_top, pad_left : zero padding before each axis (the amount after is implied by H_out).
    H_out, W_out : output size, ``(H + pad_top + pad_bottom - dh*(kh-1) - 1) // sh + 1``.

    Returns
    -------
    cols : (N * H_out * W_out, kh * kw * C) array, ``cols[(n*H_out + oh)*W_out + ow,
        (i*kw + j)*C + c] = x[n, oh*sh - pad_top + i*dh, ow*sw - pad_left + j*dw, c]``
        (0 outside the image).
    """
    N, H, W, C = x.shape
    cols = np.zeros((N, H_out, W_out, kh, kw, C), dtype=x.dtype)
    rows = np.arange(H_out) * sh - pad_top
    cols_ = np.arange(W_out) * sw - pad_left
    for i in range(kh):
        for j in range(kw):
            r = rows + i * dh                     # (H_out,) input row of tap (i, j)
            c = cols_ + j * dw                    # (W_out,)
            ok_r, ok_c = (r >= 0) & (r < H), (c >= 0) & (c < W)
            patch = x[:, r[ok_r]][:, :, c[ok_c]]  # (N, #ok_r, #ok_c, C)
            cols[:, np.flatnonzero(ok_r)[:, None], np.flatnonzero(ok_c)[None, :], i, j] = patch
    return cols.reshape(N * H_out * W_out, kh * kw * C)


@njit(cache=True, parallel=True)
def im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out):
    """numba twin of :func:`im2col_reference` (same signature, same result)."""
    N, H, W, C = x.shape
    cols = np.empty((N * H_out * W_out, kh * kw * C), dtype=x.dtype)
    # one parallel task per output row (n, oh): each writes its own W_out rows of cols
    for t in prange(N * H_out):
        n = t // H_out
        oh = t - n * H_out
        for ow in range(W_out):
            row = t * W_out + ow
            for i in range(kh):
                r = oh * sh - pad_top + i * dh
                for j in range(kw):
                    c = ow * sw - pad_left + j * dw
                    base = (i * kw + j) * C
                    if r < 0 or r >= H or c < 0 or c >= W:
                        for ch in range(C):
                            cols[row, base + ch] = 0
                    else:
                        for ch in range(C):
                            cols[row, base + ch] = x[n, r, c, ch]
    return cols


# --------------------------------------------------------------------------- col2im


def col2im_reference(cols, N, H, W, C, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out):
    """Fold rows back onto the image, summing overlaps: the adjoint of im2col (plain NumPy).

    If we im2col on the forward pass, we col2im on the backward pass: ``<im2col(x), cols> ==
    <x, col2im(cols)>``. Taps that fall in the padding are dropped.

    Parameters
    ----------
    cols : (N * H_out * W_out, kh * kw * C) array
    N, H, W, C : shape of the image to rebuild.
    the rest : as in :func:`im2col_reference`.

    Returns
    -------
    x : (N, H, W, C) array
    """
    x = np.zeros((N, H, W, C), dtype=cols.dtype)
    cols6 = cols.reshape(N, H_out, W_out, kh, kw, C)
    rows = np.arange(H_out) * sh - pad_top
    cols_ = np.arange(W_out) * sw - pad_left
    for i in range(kh):
        for j in range(kw):
            r = rows + i * dh
            c = cols_ + j * dw
            ok_r, ok_c = (r >= 0) & (r < H), (c >= 0) & (c < W)
            # within one tap (i, j) distinct output locations hit distinct pixels (stride >= 1),
            # so a fancy-indexed += does not lose overlapping writes
            block = cols6[:, ok_r][:, :, ok_c, i, j]
            x[:, r[ok_r][:, None], c[ok_c][None, :]] += block
    return x


@njit(cache=True, parallel=True)
def col2im(cols, N, H, W, C, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out):
    """numba twin of :func:`col2im_reference` (same signature, same result)."""
    x = np.zeros((N, H, W, C), dtype=cols.dtype)
    # parallel over examples only: windows of one example overlap, so two threads must
    # never scatter into the same image
    for n in prange(N):
        # taps outermost, as in the reference: every pixel then receives its terms in the
        # same (i, j) order, so the two sums agree to the last bit
        for i in range(kh):
            for j in range(kw):
                base = (i * kw + j) * C
                for oh in range(H_out):
                    r = oh * sh - pad_top + i * dh
                    if r < 0 or r >= H:
                        continue
                    for ow in range(W_out):
                        c = ow * sw - pad_left + j * dw
                        if c < 0 or c >= W:
                            continue
                        row = (n * H_out + oh) * W_out + ow
                        for ch in range(C):
                            x[n, r, c, ch] += cols[row, base + ch]
    return x


# --------------------------------------------------------------------------- max-pool


def maxpool_reference(x, kh, kw, sh, sw, pad_top, pad_left, H_out, W_out):
    """Max-pool and record the switches (plain NumPy).

    Parameters
    ----------
    x : (N, H, W, C) array
    kh, kw, sh, sw : window size and stride per axis.
    pad_top, pad_left : padding before each axis; padded cells never win (they are -inf).
    H_out, W_out : output size.

    Returns
    -------
    y : (N, H_out, W_out, C) array, the max over each window.
    switches : (N, H_out, W_out, C) int64, flat position ``row * W + col`` in ``x`` of that
        max. Ties go to the first maximum in row-major window order.
    """
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


@njit(cache=True, parallel=True)
def maxpool(x, kh, kw, sh, sw, pad_top, pad_left, H_out, W_out):
    """numba twin of :func:`maxpool_reference` (same signature, same result)."""
    N, H, W, C = x.shape
    y = np.empty((N, H_out, W_out, C), dtype=x.dtype)
    switches = np.empty((N, H_out, W_out, C), dtype=np.int64)
    for t in prange(N * H_out):
        n = t // H_out
        oh = t - n * H_out
        for ow in range(W_out):
            for ch in range(C):
                best = -np.inf
                where = -1
                for i in range(kh):
                    r = oh * sh - pad_top + i
                    if r < 0 or r >= H:
                        continue
                    for j in range(kw):
                        c = ow * sw - pad_left + j
                        if c < 0 or c >= W:
                            continue
                        v = x[n, r, c, ch]
                        if v > best or where < 0:   # first cell seeds; then strict '>'
                            best = v
                            where = r * W + c
                y[n, oh, ow, ch] = best
                switches[n, oh, ow, ch] = where
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
def unpool(dy, switches, H, W):
    """numba twin of :func:`unpool_reference` (same signature, same result)."""
    N, H_out, W_out, C = dy.shape
    dx = np.zeros((N, H, W, C), dtype=dy.dtype)
    for n in prange(N):             # one example per task: its scatter stays in its own image
        for oh in range(H_out):
            for ow in range(W_out):
                for ch in range(C):
                    s = switches[n, oh, ow, ch]
                    dx[n, s // W, s % W, ch] += dy[n, oh, ow, ch]
    return dx
