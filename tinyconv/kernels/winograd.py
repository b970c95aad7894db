"""Winograd's minimal filtering F(2x2, 3x3) and F(2x2, 5x5): a 3x3 convolution with 2.25 times
fewer multiplications, a 5x5 one with 2.78 times fewer (Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks", CVPR 2016, §4 and §4.1).

For an ``r x r`` filter, cut the zero-padded input into ``n x n`` *tiles*, ``n = r + 1``, that
overlap by ``r - 1``: tile ``t = (n, ti, tj)`` covers padded rows ``2 ti … 2 ti + n - 1`` and
columns ``2 tj … 2 tj + n - 1``, and gives the 2x2 outputs
``y[n, 2 ti + (0, 1), 2 tj + (0, 1), :]``.
For one channel ``c`` and one filter ``g`` (eq. 8):

    y_tile = A^T [ (G g G^T) ⊙ (B^T d B) ] A

with the constant matrices of :data:`MATRICES`: for 3x3, :data:`BT` (4x4), :data:`G` (4x3) and
:data:`AT` (2x4); for 5x5, :data:`BT5` (6x6), :data:`G5` (6x5) and :data:`AT5` (2x6). Summed
over channels, the ``n^2`` elementwise products become ``n^2`` matrix products, one per
position ``(a, b)`` of the transformed tile (eq. 12):

    M[ab] = V[ab] @ U[ab],   V[ab] (T, C_in) the transformed tiles, U[ab] (C_in, C_out) the
                             transformed filters,

so a 2x2 output tile costs ``n^2`` multiplications per channel pair instead of ``4 r^2``: 16
instead of 36 for 3x3, 36 instead of 100 for 5x5. The 3x3 transforms are additions only (and
halves, in ``G``, applied once to the weights); the 5x5 ones also multiply by 2, 4 and 5. The
results are the convolution's up to rounding: the sums come in another order (and, for 5x5,
through intermediate values up to about 100 times the inputs, so float32 keeps about 1e-6 of
the output's scale where 3x3 keeps 1e-7).

Where the matrices come from (Toom-Cook, Lavin & Gray §4): the two outputs of a row are the
coefficients of a product of polynomials, evaluated at ``n - 1`` points and at infinity (0, 1
and -1 for 3x3; 0, ±1 and ±2 for 5x5); ``B^T`` and ``G`` evaluate, the product is pointwise, and
``A^T`` interpolates. ``tests/test_winograd.py`` checks each family on the definition.

The weight gradient of a 3x3 layer follows the same maps backwards: ``y = A^T M A`` sends ``dy``
back as ``dM = A dy A^T`` (:func:`winograd_signal_tiles`), ``M[ab] = V[ab] @ U[ab]`` gives
``dU[ab] = V[ab]^T @ dM[ab]``, and ``U = G g G^T`` gives ``dg = G^T dU G``
(:func:`winograd_weights_gradient`).

Kernels here: :func:`winograd_tiles` (``V`` from the padded input), :func:`winograd_untiles`
(the outputs from ``M``) and :func:`winograd_signal_tiles` (``dM`` from ``dy``, 3x3 only), each
beside its ``*_reference`` of the same signature, and :func:`winograd_weights` and
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

#: ``B^T`` of F(2x2, 5x5) (points 0, 1, -1, 2, -2 and infinity): ``V = B^T d B``.
BT5 = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
#: ``G`` of F(2x2, 5x5): ``U = G g G^T``.
G5 = np.array([[1 / 4, 0, 0, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3],
               [1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3],
               [0, 0, 0, 0, 1]], dtype=np.float64)
#: ``A^T`` of F(2x2, 5x5): ``y = A^T M A``.
AT5 = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 1]], dtype=np.float64)

#: ``(B^T, G, A^T)`` by filter size ``r``: the tiles are ``(r + 1) x (r + 1)``.
MATRICES = {3: (BT, G, AT), 5: (BT5, G5, AT5)}


def _filter_size(planes):
    """``r`` from the ``(r + 1)^2`` planes of ``V``, ``M`` or ``dU`` (16 or 36)."""
    n = int(round(planes ** 0.5))
    if n * n != planes or n - 1 not in MATRICES:
        raise ValueError(f"expected 16 or 36 planes (3x3 or 5x5 filters), got {planes}")
    return n - 1


def winograd_weights(W):
    """``U = G g G^T`` of every filter: ``(r, r, C_in, C_out)`` HWIO, ``r`` 3 or 5 ->
    ``((r + 1)^2, C_in, C_out)`` (position ``a * (r + 1) + b`` of the transformed tile first), in
    ``W``'s dtype."""
    G_r = MATRICES[W.shape[0]][1]
    U = np.einsum("ai,ijck,bj->abck", G_r, W.astype(np.float64), G_r)  # (n, n, C_in, C_out)
    return U.reshape(-1, *W.shape[2:]).astype(W.dtype)


def winograd_weights_gradient(dU):
    """``dg = G^T dU G`` of every filter: ``((r + 1)^2, C_in, C_out)`` -> ``(r, r, C_in,
    C_out)``."""
    G_r = MATRICES[_filter_size(dU.shape[0])][1]
    n = G_r.shape[0]
    dg = np.einsum("ai,abck,bj->ijck", G_r, dU.reshape(n, n, *dU.shape[1:]).astype(np.float64),
                   G_r)
    return dg.astype(dU.dtype)


def winograd_tiles_reference(xp, th, tw, out=None, r=3):
    """The transformed tiles ``V = B^T d B`` (plain NumPy).

    Parameters
    ----------
    xp : (N, 2 th + r - 1, 2 tw + r - 1, C) the zero-padded input (at least that large).
    th, tw : tiles per column and per row.
    out : optional ((r + 1)^2, N th tw, C) array to write into.
    r : the filter size, 3 or 5 (tiles of ``r + 1``).

    Returns
    -------
    V : ((r + 1)^2, N th tw, C): ``V[a (r + 1) + b, (n th + ti) tw + tj, c]``.
    """
    BT_r = MATRICES[r][0]
    n = r + 1
    N, C = xp.shape[0], xp.shape[3]
    d = np.lib.stride_tricks.sliding_window_view(xp, (n, n), axis=(1, 2))
    d = d[:, :2 * th:2, :2 * tw:2]                               # (N, th, tw, C, n, n)
    V = np.einsum("ai,ntscij,bj->abntsc", BT_r, d, BT_r)          # (n, n, N, th, tw, C)
    return _into(out, V.reshape(n * n, N * th * tw, C).astype(xp.dtype))


def winograd_untiles_reference(M, th, tw, b, H_out, W_out, out=None):
    """The outputs ``y = A^T M A + b`` of every tile, cut to ``H_out x W_out`` (plain NumPy).

    Parameters
    ----------
    M : ((r + 1)^2, N th tw, C_out) the products ``M[ab] = V[ab] @ U[ab]`` (16 planes for 3x3
        filters, 36 for 5x5).
    b : (C_out,) bias (zeros for none).
    out : optional (N, H_out, W_out, C_out) array to write into.
    """
    AT_r = MATRICES[_filter_size(M.shape[0])][2]
    n = AT_r.shape[1]
    T, K = M.shape[1:]
    N = T // (th * tw)
    m = M.reshape(n, n, N, th, tw, K)
    y = np.einsum("ai,ijntsk,bj->ntasbk", AT_r, m, AT_r)          # (N, th, 2, tw, 2, K)
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


@njit(inline="always")
def _put_outputs(y, n, r, q, k, y00, y01, y10, y11, bias):
    """A tile's 2x2 outputs plus the bias into ``y[n, r:r + 2, q:q + 2, k]``, cut at the map's
    edge (an odd ``H_out`` or ``W_out``)."""
    H_out, W_out = y.shape[1], y.shape[2]
    y[n, r, q, k] = y00 + bias
    if q + 1 < W_out:
        y[n, r, q + 1, k] = y01 + bias
    if r + 1 < H_out:
        y[n, r + 1, q, k] = y10 + bias
        if q + 1 < W_out:
            y[n, r + 1, q + 1, k] = y11 + bias


@njit(cache=True, parallel=True)
def _untiles(M, th, tw, b, y):
    N, K = y.shape[0], y.shape[3]
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
                # (.) A
                _put_outputs(y, n, r, q, k, s0 + s1 + s2, s1 - s2 - s3, u0 + u1 + u2,
                             u1 - u2 - u3, b[k])


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


@njit(inline="always")
def _bt5(d0, d1, d2, d3, d4, d5, two, four, five):
    """``B^T d`` of F(2x2, 5x5) for one column (or row) of six values: :data:`BT5`'s rows."""
    return (four * d0 - five * d2 + d4,
            d3 + d4 - four * (d1 + d2),
            d4 - d3 + four * (d1 - d2),
            d4 - d2 + two * (d3 - d1),
            d4 - d2 - two * (d3 - d1),
            four * d1 - five * d3 + d5)


#: What the 5x5 kernels let LLVM do: reorder and fuse the sums and ignore the sign of zero (no
#: assumption about inf or NaN). Without it numba vectorises neither kernel's channel loop
#: (docs/speed.md).
_REORDER = {"reassoc", "contract", "nsz"}


@njit(cache=True, parallel=True, fastmath=_REORDER)
def _tiles5(xp, th, tw, consts, V):
    N, _, _, C = xp.shape
    two, four, five = consts[0], consts[1], consts[2]
    for t in prange(N * th):                      # one row of tiles (n, ti) per task
        n = t // th
        r = 2 * (t - n * th)
        u = np.empty((6, 6, C), xp.dtype)         # B^T d of one tile: u[i, j, c]
        for tj in range(tw):
            q = 2 * tj
            tile = t * tw + tj
            # two passes of short loops over the channels (innermost and contiguous: each one
            # vectorised), each reading six numbers and writing six
            for j in range(6):                    # B^T d: each column's six rows combined
                for c in range(C):
                    v = _bt5(xp[n, r, q + j, c], xp[n, r + 1, q + j, c], xp[n, r + 2, q + j, c],
                             xp[n, r + 3, q + j, c], xp[n, r + 4, q + j, c],
                             xp[n, r + 5, q + j, c], two, four, five)
                    for i in range(6):
                        u[i, j, c] = v[i]
            for i in range(6):                    # (.) B: each row's six columns combined
                for c in range(C):
                    v = _bt5(u[i, 0, c], u[i, 1, c], u[i, 2, c], u[i, 3, c], u[i, 4, c],
                             u[i, 5, c], two, four, five)
                    for k in range(6):
                        V[6 * i + k, tile, c] = v[k]


@njit(inline="always")
def _at5(m0, m1, m2, m3, m4, m5):
    """``A^T m`` of F(2x2, 5x5) for six values: :data:`AT5`'s two rows (``2 e`` as ``e + e``,
    the same number, so that the kernel only adds)."""
    e = m3 - m4
    return m0 + m1 + m2 + m3 + m4, m1 - m2 + (e + e) + m5


@njit(inline="always")
def _at5_column(M, j, tile, k):
    """:func:`_at5` of column ``j`` of a product tile (planes ``j, j + 6, …, j + 30``)."""
    return _at5(M[j, tile, k], M[j + 6, tile, k], M[j + 12, tile, k], M[j + 18, tile, k],
                M[j + 24, tile, k], M[j + 30, tile, k])


@njit(cache=True, parallel=True, fastmath=_REORDER)
def _untiles5(M, th, tw, b, y):
    N, K = y.shape[0], y.shape[3]
    for t in prange(N * th):
        n = t // th
        r = 2 * (t - n * th)
        for tj in range(tw):
            tile = t * tw + tj
            q = 2 * tj
            for k in range(K):
                # A^T m: each column's six rows combined into two
                c0, c1, c2 = (_at5_column(M, 0, tile, k), _at5_column(M, 1, tile, k),
                              _at5_column(M, 2, tile, k))
                c3, c4, c5 = (_at5_column(M, 3, tile, k), _at5_column(M, 4, tile, k),
                              _at5_column(M, 5, tile, k))
                # (.) A
                y00, y01 = _at5(c0[0], c1[0], c2[0], c3[0], c4[0], c5[0])
                y10, y11 = _at5(c0[1], c1[1], c2[1], c3[1], c4[1], c5[1])
                _put_outputs(y, n, r, q, k, y00, y01, y10, y11, b[k])


def _constants(dtype):
    """2, 4 and 5 in the data's dtype: the 5x5 tile kernel multiplies by them, and a Python
    number would make numba compute in float64 (and not vectorise)."""
    return np.array([2, 4, 5], dtype=dtype)


@_wraps(_signal_tiles)
def winograd_signal_tiles(dy, th, tw, out=None):
    """numba twin of :func:`winograd_signal_tiles_reference` (same signature, same numbers)."""
    dy = np.ascontiguousarray(dy)
    dM = _output(out, (16, dy.shape[0] * th * tw, dy.shape[3]), dy.dtype)
    _run(_signal_tiles, dM.size, dy, th, tw, dM)
    return dM


@_wraps(_tiles, _tiles5)
def winograd_tiles(xp, th, tw, out=None, r=3):
    """numba twin of :func:`winograd_tiles_reference` (same signature, same numbers up to
    rounding)."""
    if r not in MATRICES:
        raise ValueError(f"r: expected 3 or 5, got {r!r}")
    xp = np.ascontiguousarray(xp)
    V = _output(out, ((r + 1) ** 2, xp.shape[0] * th * tw, xp.shape[3]), xp.dtype)
    if r == 3:
        _run(_tiles, V.size, xp, th, tw, V)
    else:
        _run(_tiles5, V.size, xp, th, tw, _constants(xp.dtype), V)
    return V


@_wraps(_untiles, _untiles5)
def winograd_untiles(M, th, tw, b, H_out, W_out, out=None):
    """numba twin of :func:`winograd_untiles_reference` (same signature, same numbers up to
    rounding)."""
    r = _filter_size(M.shape[0])
    M = np.ascontiguousarray(M)
    y = _output(out, (M.shape[1] // (th * tw), H_out, W_out, M.shape[2]), M.dtype)
    b = np.ascontiguousarray(b, dtype=M.dtype)
    if r == 3:
        _run(_untiles, y.size, M, th, tw, b, y)
    else:
        _run(_untiles5, y.size, M, th, tw, b, y)
    return y
