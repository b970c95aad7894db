"""im2col and col2im: a convolution as one matrix product, and its transpose.

The layout of the im2col matrix, and the loops that fill and fold it, are described in
:mod:`tinyconv.kernels`; why there are three im2col loops: ``docs/speed.md``.
"""

import numpy as np
from numba import njit, prange

from ._runtime import _into, _output, _run, _wraps


@njit(cache=True)
def _inside(shift, size, stride, n_out):
    """The outputs ``q`` in ``[0, n_out)`` whose tap ``q * stride - shift`` is in ``[0, size)``,
    as a range ``lo <= hi`` (both in ``[0, n_out]``)."""
    lo = min(max(0, -((-shift) // stride)), n_out)          # ceil(shift / stride)
    hi = max(lo, min(n_out, (size - 1 + shift) // stride + 1))
    return lo, hi


def im2col_reference(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out, out=None):
    """Unfold every receptive window of ``x`` into one row (plain NumPy).

    Parameters
    ----------
    x : (N, H, W, C) array
    kh, kw, sh, sw, dh, dw : kernel size, stride and dilation per axis.
    pad_top, pad_left : zero padding before each axis (the amount after is implied by H_out).
    H_out, W_out : output size, ``(H + pad_top + pad_bottom - dh*(kh-1) - 1) // sh + 1``.
    out : optional (N * H_out * W_out, kh * kw * C) array to write into (may be a view).

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
    return _into(out, cols.reshape(N * H_out * W_out, kh * kw * C))


# Three loops fill cols, all with the same numbers, each the fastest for one kind of layer
# (docs/speed.md): many channels go tap by tap, the channel loop innermost; with few
# channels a window's tap row is one run of x, copied as a slice; with one channel and
# stride 1, cols is column-major and each column is a shifted row of x.


@njit(cache=True, parallel=True)
def _im2col_by_tap(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out, cols):
    N, H, W, C = x.shape
    for t in prange(N * H_out):                   # one output row (n, oh) per task
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


@njit(cache=True, parallel=True)
def _im2col_by_run(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out, cols):
    # needs dw == 1: then the taps (i, 0..kw-1) of a window are kw*C consecutive numbers of x
    N, H, W, C = x.shape
    x2 = x.reshape(N * H, W * C)                  # (N*H, W*C): one image row per line
    L = kw * C
    lo, hi = _inside(pad_left, W - kw + 1, sw, W_out)   # windows with no tap in the padding
    for t in prange(N * H_out):
        n = t // H_out
        oh = t - n * H_out
        for ow in range(W_out):
            row = t * W_out + ow
            for i in range(kh):
                r = oh * sh - pad_top + i * dh
                if r < 0 or r >= H:
                    cols[row, i * L:(i + 1) * L] = 0
                elif lo <= ow < hi:
                    s = (ow * sw - pad_left) * C
                    cols[row, i * L:(i + 1) * L] = x2[n * H + r, s:s + L]
                else:
                    for j in range(kw):
                        c = ow * sw - pad_left + j
                        for ch in range(C):
                            inside = 0 <= c < W
                            cols[row, (i * kw + j) * C + ch] = x[n, r, c, ch] if inside else 0


@njit(cache=True, parallel=True)
def _im2col_by_column(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out, cols):
    # needs C == 1 and sw == 1, and is fast when cols is column-major: column (i, j) of the
    # block of output row (n, oh) is then image row r shifted by j*dw, one straight copy
    N, H, W, _ = x.shape
    x2 = x.reshape(N * H, W)
    for t in prange(N * H_out):
        n = t // H_out
        oh = t - n * H_out
        row0 = t * W_out
        for i in range(kh):
            r = oh * sh - pad_top + i * dh
            if r < 0 or r >= H:                   # a row of padding
                cols[row0:row0 + W_out, i * kw:(i + 1) * kw] = 0
                continue
            for j in range(kw):
                q = i * kw + j
                lo, hi = _inside(pad_left - j * dw, W, 1, W_out)
                cols[row0:row0 + lo, q] = 0
                s = lo - pad_left + j * dw        # x2[n*H + r, s] is what output lo sees
                cols[row0 + lo:row0 + hi, q] = x2[n * H + r, s:s + hi - lo]
                cols[row0 + hi:row0 + W_out, q] = 0


@_wraps(_im2col_by_tap, _im2col_by_run, _im2col_by_column)
def im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out, out=None):
    """numba twin of :func:`im2col_reference` (same signature, same result)."""
    x = np.ascontiguousarray(x)
    N, H, W, C = x.shape
    cols = _output(out, (N * H_out * W_out, kh * kw * C), x.dtype)
    if C == 1 and sw == 1 and cols.strides[0] < cols.strides[1]:
        kernel = _im2col_by_column
    elif C < 16 and dw == 1:
        kernel = _im2col_by_run
    else:
        kernel = _im2col_by_tap
    _run(kernel, cols.size, x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out,
         _whole_rows(cols))
    return cols


def _whole_rows(cols):
    """``cols``, or, if it is the left-hand columns of a row-major array (``buf[:, :K]``, as
    Conv2D's ``[cols, 1]`` buffer), the rows of that array: C-contiguous, with ``cols`` as its
    first ``K`` columns. The kernels write only those, so the result is the same, and the
    loops run over a C-contiguous array, which numba compiles into straight copies."""
    parent = cols.base
    if (cols.flags.c_contiguous or not isinstance(parent, np.ndarray)
            or parent.ndim != 2 or not parent.flags.c_contiguous
            or parent.dtype != cols.dtype or parent.strides != cols.strides
            or parent.shape[0] < cols.shape[0]
            or parent.ctypes.data != cols.ctypes.data):
        return cols
    return parent[:cols.shape[0]]


# --------------------------------------------------------------------------- col2im


def col2im_reference(cols, N, H, W, C, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out,
                     out=None):
    """Fold rows back onto the image, summing overlaps: the adjoint of im2col (plain NumPy).

    If we im2col on the forward pass, we col2im on the backward pass: ``<im2col(x), cols> ==
    <x, col2im(cols)>``. Taps that fall in the padding are dropped.

    Parameters
    ----------
    cols : (N * H_out * W_out, kh * kw * C) array
    N, H, W, C : shape of the image to rebuild.
    the rest : as in :func:`im2col_reference`; ``out`` an optional (N, H, W, C) array.

    Returns
    -------
    x : (N, H, W, C) array; each pixel sums its taps in (i, j) order.
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
    return _into(out, x)


@njit(cache=True, parallel=True)
def _col2im_by_column(cols_t, N, H, W, kh, kw, sh, dh, dw, pad_top, pad_left, H_out, W_out, x):
    # One channel, stride 1 along W: cols_t is cols transposed, (kh*kw, N*H_out*W_out)
    # C-contiguous, so that tap q's values for image n are one run of H_out*W_out numbers;
    # x is (N, H, W). Each task owns one image (so one image is one thread's work): it adds
    # each tap's run, row by row, into the image, which stays in the L1 cache, while the
    # reads stream through memory. (A task per image row read kh*kw runs of W_out numbers
    # from as many places: 1.5 to 1.6 times slower, docs/speed.md.) Every pixel adds its
    # taps in (i, j) order, as the reference does, so the two agree to the last bit.
    for n in prange(N):
        for r in range(H):
            for c in range(W):
                x[n, r, c] = 0
        for i in range(kh):
            for j in range(kw):
                q = i * kw + j
                lo_j, hi_j = _inside(pad_left - j * dw, W, 1, W_out)
                d = j * dw - pad_left                 # pixel ow + d gets window ow's tap
                for oh in range(H_out):
                    r = oh * sh - pad_top + i * dh
                    if r < 0 or r >= H:
                        continue
                    first = (n * H_out + oh) * W_out           # cols row of (n, oh, ow = 0)
                    for ow in range(lo_j, hi_j):
                        x[n, r, ow + d] += cols_t[q, first + ow]


@njit(cache=True, parallel=True)
def _col2im(cols, N, H, W, C, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out, x):
    # cols is C-contiguous: (N*H_out*W_out, kh*kw*C)
    # A gather, not a scatter: each task owns one image row (n, r) and collects the taps of
    # every window that covers its pixels. Windows overlap, so scattering window by window
    # would have two threads add into one pixel; gathering needs no locks, splits over any
    # axis (here N*H rows, so one big image still uses every thread) and keeps the row in
    # the L1 cache while its sums build up. Every pixel adds its taps in (i, j) order, as the
    # reference does, so the two agree to the last bit.
    x2 = x.reshape(N * H, W * C)                  # (N*H, W*C): one image row per line
    L = kw * C
    # windows with no tap in the padding; without dilation their tap row is L numbers of x
    lo, hi = _inside(pad_left, W - kw + 1, sw, W_out) if dw == 1 else (0, 0)
    for t in prange(N * H):
        n = t // H
        r = t - n * H
        for c in range(W):
            for ch in range(C):
                x[n, r, c, ch] = 0
        for i in range(kh):
            oh_s = r + pad_top - i * dh           # = oh * sh if tap i of row oh lands on r
            if oh_s < 0 or oh_s % sh != 0 or oh_s // sh >= H_out:
                continue
            first = (n * H_out + oh_s // sh) * W_out       # cols row of (n, oh, ow = 0)
            # windows right to left, so that each pixel meets its taps j in rising order;
            # the loop over channels innermost, which numba vectorises
            for ow in range(W_out - 1, -1, -1):
                row = first + ow
                if lo <= ow < hi and C < 16:
                    # few channels, a window inside the image: its tap row is one run
                    s = (ow * sw - pad_left) * C
                    for q in range(L):
                        x2[t, s + q] += cols[row, i * L + q]
                    continue
                for j in range(kw):
                    c = ow * sw - pad_left + j * dw
                    if 0 <= c < W:
                        base = (i * kw + j) * C
                        for ch in range(C):
                            x[n, r, c, ch] += cols[row, base + ch]


@_wraps(_col2im, _col2im_by_column)
def col2im(cols, N, H, W, C, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H_out, W_out, out=None):
    """numba twin of :func:`col2im_reference` (same signature, same result)."""
    x = _output(out, (N, H, W, C), cols.dtype)
    if not x.flags.c_contiguous:
        raise ValueError("out: expected a C-contiguous array")
    # one memory order, so numba compiles each kernel once per dtype: cols^T for one channel
    # and stride 1 (a view of a column-major cols), cols itself otherwise (a view if
    # row-major); any other layout is copied
    if C == 1 and sw == 1:
        _run(_col2im_by_column, cols.size, np.ascontiguousarray(cols.T), N, H, W, kh, kw, sh,
             dh, dw, pad_top, pad_left, H_out, W_out, x.reshape(N, H, W))
        return x
    _run(_col2im, cols.size, np.ascontiguousarray(cols), N, H, W, C, kh, kw, sh, sw, dh, dw,
         pad_top, pad_left, H_out, W_out, x)
    return x

