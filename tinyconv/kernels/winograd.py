"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 convolution with 2.25 times fewer
multiplications (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016,
§4 and §4.1).

Cut the zero-padded input into 4x4 *tiles* that overlap by 2: tile ``t = (n, ti, tj)`` covers
padded rows ``2 ti … 2 ti + 3`` and columns ``2 tj … 2 tj + 3``, and gives the 2x2 outputs
``y[n, 2 ti + (0, 1), 2 tj + (0, 1), :]``. For one channel ``c`` and one 3x3 filter ``g``
(eq. 8):

    y_tile = A^T [ (G g G^T) ⊙ (B^T d B) ] A

with the constant matrices :data:`BT` (4x4), :data:`G` (4x3) and :data:`AT` (2x4) below. Summed
over channels, the 16 elementwise products become 16 matrix products, one per position
``(a, b)`` of the 4x4 transformed tile (eq. 12):

    M[ab] = V[ab] @ U[ab],   V[ab] (T, C_in) the transformed tiles, U[ab] (C_in, C_out) the
                             transformed filters,

so a 2x2 output tile costs 16 multiplications per channel pair instead of 36. The transforms
are additions only (and halves, in ``G``, applied once to the weights). The results are the
convolution's up to rounding: the additions come in another order.

The weight gradient follows the same maps backwards: ``y = A^T M A`` sends ``dy`` back as
``dM = A dy A^T`` (:func:`winograd_signal_tiles`), ``M[ab] = V[ab] @ U[ab]`` gives ``dU[ab] =
V[ab]^T @ dM[ab]``, and ``U = G g G^T`` gives ``dg = G^T dU G``
(:func:`winograd_weights_gradient`).

Kernels here: :func:`winograd_tiles` (``V`` from the padded input), :func:`winograd_untiles`
(the outputs from ``M``) and :func:`winograd_signal_tiles` (``dM`` from ``dy``), each beside its
``*_reference`` of the same signature, and :func:`winograd_weights` and
:func:`winograd_weights_gradient` (plain NumPy: they run once per call on the small weights).
"""

import numpy as np
from numba import njit, prange

from ._runtime import _into, _output, _run, _wraps

#: ``B^T``: the input tile transform, ``V = B^T d B`` (Lavin & Gray 2016, eq. 10).
BT = np.array([[1, 0, -1, 0],
               [0, 1, 1, 0],
               [0, -1, 1, 0],
               [0, 1, 0, -1]], dtype=np.float64)
#: ``G``: the filter transform, ``U = G g G^T``.
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], dtype=np.float64)
#: ``A^T``: the output transform, ``y = A^T M A``.
AT = np.array([[1, 1, 1, 0],
               [0, 1, -1, -1]], dtype=np.float64)


def winograd_weights(W):
    """``U = G g G^T`` of every filter: ``(3, 3, C_in, C_out)`` HWIO -> ``(16, C_in, C_out)``
    (position ``a * 4 + b`` of the 4x4 transformed tile first), in ``W``'s dtype."""
    U = np.einsum("ai,ijck,bj->abck", G, W.astype(np.float64), G)      # (4, 4, C_in, C_out)
    return U.reshape(16, *W.shape[2:]).astype(W.dtype)


def winograd_weights_gradient(dU):
    """``dg = G^T dU G`` of every filter: ``(16, C_in, C_out)`` -> ``(3, 3, C_in, C_out)``."""
    dg = np.einsum("ai,abck,bj->ijck", G, dU.reshape(4, 4, *dU.shape[1:]).astype(np.float64), G)
    return dg.astype(dU.dtype)


def winograd_tiles_reference(xp, th, tw, out=None):
    """The transformed tiles ``V = B^T d B`` (plain NumPy).

    Parameters
    ----------
    xp : (N, 2 th + 2, 2 tw + 2, C) the zero-padded input (at least that large).
    th, tw : tiles per column and per row.
    out : optional (16, N th tw, C) array to write into.

    Returns
    -------
    V : (16, N th tw, C): ``V[a*4 + b, (n*th + ti)*tw + tj, c]``.
    """
    N, C = xp.shape[0], xp.shape[3]
    d = np.lib.stride_tricks.sliding_window_view(xp, (4, 4), axis=(1, 2))
    d = d[:, :2 * th:2, :2 * tw:2]                               # (N, th, tw, C, 4, 4)
    V = np.einsum("ai,ntscij,bj->abntsc", BT, d, BT)              # (4, 4, N, th, tw, C)
    return _into(out, V.reshape(16, N * th * tw, C).astype(xp.dtype))


def winograd_untiles_reference(M, th, tw, b, H_out, W_out, out=None):
    """The outputs ``y = A^T M A + b`` of every tile, cut to ``H_out x W_out`` (plain NumPy).

    Parameters
    ----------
    M : (16, N th tw, C_out) the products ``M[ab] = V[ab] @ U[ab]``.
    b : (C_out,) bias (zeros for none).
    out : optional (N, H_out, W_out, C_out) array to write into.
    """
    T, K = M.shape[1:]
    N = T // (th * tw)
    m = M.reshape(4, 4, N, th, tw, K)
    y = np.einsum("ai,ijntsk,bj->ntasbk", AT, m, AT)              # (N, th, 2, tw, 2, K)
    y = y.reshape(N, 2 * th, 2 * tw, K)[:, :H_out, :W_out] + b
    return _into(out, y.astype(M.dtype))


def winograd_signal_tiles_reference(dy, th, tw, out=None):
    """The tile signals ``dM = A dy A^T`` of every 2x2 tile of ``dy`` (plain NumPy).

    Parameters
    ----------
    dy : (N, H_out, W_out, C_out) the signal at the outputs; the tiles past an odd edge read 0.
    th, tw : tiles per column and per row (``ceil(H_out / 2)``, ``ceil(W_out / 2)``).
    out : optional (16, N th tw, C_out) array to write into.

    Returns
    -------
    dM : (16, N th tw, C_out): ``dM[a*4 + b, (n*th + ti)*tw + tj, k]``.
    """
    N, H_out, W_out, K = dy.shape
    full = np.zeros((N, 2 * th, 2 * tw, K), dy.dtype)
    full[:, :H_out, :W_out] = dy
    t = full.reshape(N, th, 2, tw, 2, K)
    dM = np.einsum("ia,ntisjk,jb->abntsk", AT, t, AT)             # (4, 4, N, th, tw, K)
    return _into(out, dM.reshape(16, N * th * tw, K).astype(dy.dtype))


@njit(cache=True, parallel=True)
def _tiles(xp, th, tw, V):
    N, _, _, C = xp.shape
    for t in prange(N * th):                      # one row of tiles (n, ti) per task
        n = t // th
        r = 2 * (t - n * th)
        for tj in range(tw):
            tile = t * tw + tj
            q = 2 * tj
            for c in range(C):                    # innermost and contiguous: vectorised
                d00, d01, d02, d03 = (xp[n, r, q, c], xp[n, r, q + 1, c],
                                      xp[n, r, q + 2, c], xp[n, r, q + 3, c])
                d10, d11, d12, d13 = (xp[n, r + 1, q, c], xp[n, r + 1, q + 1, c],
                                      xp[n, r + 1, q + 2, c], xp[n, r + 1, q + 3, c])
                d20, d21, d22, d23 = (xp[n, r + 2, q, c], xp[n, r + 2, q + 1, c],
                                      xp[n, r + 2, q + 2, c], xp[n, r + 2, q + 3, c])
                d30, d31, d32, d33 = (xp[n, r + 3, q, c], xp[n, r + 3, q + 1, c],
                                      xp[n, r + 3, q + 2, c], xp[n, r + 3, q + 3, c])
                # B^T d, row by row: d0 - d2, d1 + d2, d2 - d1, d1 - d3
                a0, a1, a2, a3 = d00 - d20, d01 - d21, d02 - d22, d03 - d23
                b0, b1, b2, b3 = d10 + d20, d11 + d21, d12 + d22, d13 + d23
                e0, e1, e2, e3 = d20 - d10, d21 - d11, d22 - d12, d23 - d13
                f0, f1, f2, f3 = d10 - d30, d11 - d31, d12 - d32, d13 - d33
                # (.) B: the same combination of each row's four columns
                V[0, tile, c], V[1, tile, c] = a0 - a2, a1 + a2
                V[2, tile, c], V[3, tile, c] = a2 - a1, a1 - a3
                V[4, tile, c], V[5, tile, c] = b0 - b2, b1 + b2
                V[6, tile, c], V[7, tile, c] = b2 - b1, b1 - b3
                V[8, tile, c], V[9, tile, c] = e0 - e2, e1 + e2
                V[10, tile, c], V[11, tile, c] = e2 - e1, e1 - e3
                V[12, tile, c], V[13, tile, c] = f0 - f2, f1 + f2
                V[14, tile, c], V[15, tile, c] = f2 - f1, f1 - f3


@njit(cache=True, parallel=True)
def _untiles(M, th, tw, b, y):
    N, H_out, W_out, K = y.shape
    for t in prange(N * th):
        n = t // th
        r = 2 * (t - n * th)
        for tj in range(tw):
            tile = t * tw + tj
            q = 2 * tj
            for k in range(K):
                # A^T m: row 0 is m0 + m1 + m2, row 1 is m1 - m2 - m3 (rows of 4)
                s0 = M[0, tile, k] + M[4, tile, k] + M[8, tile, k]
                s1 = M[1, tile, k] + M[5, tile, k] + M[9, tile, k]
                s2 = M[2, tile, k] + M[6, tile, k] + M[10, tile, k]
                s3 = M[3, tile, k] + M[7, tile, k] + M[11, tile, k]
                u0 = M[4, tile, k] - M[8, tile, k] - M[12, tile, k]
                u1 = M[5, tile, k] - M[9, tile, k] - M[13, tile, k]
                u2 = M[6, tile, k] - M[10, tile, k] - M[14, tile, k]
                u3 = M[7, tile, k] - M[11, tile, k] - M[15, tile, k]
                # (.) A, cut at the map's edge (an odd H_out or W_out)
                y[n, r, q, k] = s0 + s1 + s2 + b[k]
                if q + 1 < W_out:
                    y[n, r, q + 1, k] = s1 - s2 - s3 + b[k]
                if r + 1 < H_out:
                    y[n, r + 1, q, k] = u0 + u1 + u2 + b[k]
                    if q + 1 < W_out:
                        y[n, r + 1, q + 1, k] = u1 - u2 - u3 + b[k]


@njit(cache=True, parallel=True)
def _signal_tiles(dy, th, tw, dM):
    N, H_out, W_out, K = dy.shape
    for t in prange(N * th):
        n = t // th
        r = 2 * (t - n * th)
        for tj in range(tw):
            tile = t * tw + tj
            q = 2 * tj
            down, right = r + 1 < H_out, q + 1 < W_out          # past an odd edge: 0
            for k in range(K):
                g00 = dy[n, r, q, k]
                g01 = dy[n, r, q + 1, k] if right else 0.0
                g10 = dy[n, r + 1, q, k] if down else 0.0
                g11 = dy[n, r + 1, q + 1, k] if down and right else 0.0
                # A g, row by row: g0, g0 + g1, g0 - g1, -g1 (each a row of 2)
                a0, a1 = g00, g01
                b0, b1 = g00 + g10, g01 + g11
                e0, e1 = g00 - g10, g01 - g11
                f0, f1 = -g10, -g11
                # (.) A^T: the same combination of each row's two columns
                dM[0, tile, k], dM[1, tile, k] = a0, a0 + a1
                dM[2, tile, k], dM[3, tile, k] = a0 - a1, -a1
                dM[4, tile, k], dM[5, tile, k] = b0, b0 + b1
                dM[6, tile, k], dM[7, tile, k] = b0 - b1, -b1
                dM[8, tile, k], dM[9, tile, k] = e0, e0 + e1
                dM[10, tile, k], dM[11, tile, k] = e0 - e1, -e1
                dM[12, tile, k], dM[13, tile, k] = f0, f0 + f1
                dM[14, tile, k], dM[15, tile, k] = f0 - f1, -f1


@_wraps(_signal_tiles)
def winograd_signal_tiles(dy, th, tw, out=None):
    """numba twin of :func:`winograd_signal_tiles_reference` (same signature, same numbers)."""
    dy = np.ascontiguousarray(dy)
    dM = _output(out, (16, dy.shape[0] * th * tw, dy.shape[3]), dy.dtype)
    _run(_signal_tiles, dM.size, dy, th, tw, dM)
    return dM


@_wraps(_tiles)
def winograd_tiles(xp, th, tw, out=None):
    """numba twin of :func:`winograd_tiles_reference` (same signature, same numbers up to
    rounding)."""
    xp = np.ascontiguousarray(xp)
    V = _output(out, (16, xp.shape[0] * th * tw, xp.shape[3]), xp.dtype)
    _run(_tiles, V.size, xp, th, tw, V)
    return V


@_wraps(_untiles)
def winograd_untiles(M, th, tw, b, H_out, W_out, out=None):
    """numba twin of :func:`winograd_untiles_reference` (same signature, same numbers up to
    rounding)."""
    M = np.ascontiguousarray(M)
    y = _output(out, (M.shape[1] // (th * tw), H_out, W_out, M.shape[2]), M.dtype)
    _run(_untiles, y.size, M, th, tw, np.ascontiguousarray(b, dtype=M.dtype), y)
    return y
