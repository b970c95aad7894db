"""ConvWorkspace: the scheduling of Conv2D's GEMMs gives the plain GEMMs' numbers.

Chunks, kept buffers, the bias column, the reuse of the forward's last chunk and the dcols
pieces are speed only: each test compares with ``im2col(x) @ W2 + b``,
``im2col(x)^T dy``, ``sum dy`` and ``col2im(dy W2^T)`` computed in one piece (float64).
"""

import numpy as np
import pytest

import tinyconv as tc
from tinyconv import kernels, workspace
from tinyconv.workspace import ConvWorkspace


def case(rng, C_in=2, N=5, stride=(1, 2)):
    layer = tc.Conv2D(C_in, 3, (3, 2), stride=stride, padding=1)
    args = layer._im2col_args(6, 7)
    x = rng.standard_normal((N, 6, 7, C_in))
    W2 = rng.standard_normal((3 * 2 * C_in, 3))
    b = rng.standard_normal(3)
    dy2 = rng.standard_normal((N * args.H_out * args.W_out, 3))
    return x, args, W2, b, dy2


@pytest.fixture
def im2col_calls(monkeypatch):
    """Count the calls of kernels.im2col and record the memory order col2im is handed."""
    calls = {"im2col": 0, "col2im": []}
    im2col, col2im = kernels.im2col, kernels.col2im

    def counting_im2col(*args, **kwargs):
        calls["im2col"] += 1
        return im2col(*args, **kwargs)

    def recording_col2im(cols, *args, **kwargs):
        calls["col2im"].append((cols.shape, cols.flags.c_contiguous, cols.flags.f_contiguous))
        return col2im(cols, *args, **kwargs)
    monkeypatch.setattr(kernels, "im2col", counting_im2col)
    monkeypatch.setattr(kernels, "col2im", recording_col2im)
    return calls


def test_chunks_cover_the_batch_within_the_limit(monkeypatch):
    monkeypatch.setattr(workspace, "CHUNK_BYTES", 1000)
    ranges, rows = workspace.chunks(7, 4, 10, 8)                # 320 bytes an example
    assert ranges == [(0, 3), (3, 6), (6, 7)] and rows == 12
    ranges, rows = workspace.chunks(2, 40, 10, 8)               # 3200 bytes: one at least
    assert ranges == [(0, 1), (1, 2)] and rows == 40
    monkeypatch.setattr(workspace, "CHUNK_BYTES", 1 << 30)
    assert workspace.chunks(7, 4, 10, 8) == ([(0, 7)], 28)


@pytest.mark.parametrize("chunk_bytes", [1, 2000, 1 << 30])
@pytest.mark.parametrize("dx_chunk_bytes", [1, 3000, 1 << 30])
@pytest.mark.parametrize("C_in, stride", [(2, (1, 2)), (1, (2, 1))])   # row-, column-major
def test_the_schedule_gives_the_plain_gemms(rng, monkeypatch, chunk_bytes, dx_chunk_bytes,
                                            C_in, stride):
    monkeypatch.setattr(workspace, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(workspace, "DX_CHUNK_BYTES", dx_chunk_bytes)
    x, args, W2, b, dy2 = case(rng, C_in, stride=stride)
    cols = kernels.im2col_reference(x, *args)                   # (N*H_out*W_out, K)
    ws = ConvWorkspace()
    for bias in (b, None):
        want = cols @ W2 + (0 if bias is None else bias)
        np.testing.assert_allclose(ws.im2col_gemm(x, args, W2, bias), want, rtol=1e-12,
                                   atol=1e-12)
        dW2, db = ws.weight_gemm(x, args, dy2, bias is not None)
        np.testing.assert_allclose(dW2, cols.T @ dy2, rtol=1e-12, atol=1e-12)
        if bias is None:
            assert db is None
        else:
            np.testing.assert_allclose(db, dy2.sum(axis=0), rtol=1e-12, atol=1e-12)
    dx = ws.col2im_gemm(dy2, W2, args, x.shape)
    np.testing.assert_allclose(dx, kernels.col2im_reference(dy2 @ W2.T, *x.shape, *args),
                               rtol=1e-12, atol=1e-12)
    assert ws.buffers["cols"].flags.f_contiguous == (C_in == 1 and stride[1] == 1)


def test_backward_reuses_the_last_chunk_of_the_same_input(rng, monkeypatch, im2col_calls):
    monkeypatch.setattr(workspace, "CHUNK_BYTES", 3 * 24 * 13 * 8)  # 3 examples a chunk
    x, args, W2, b, dy2 = case(rng)
    ws = ConvWorkspace()
    ws.im2col_gemm(x, args, W2, b)
    assert im2col_calls["im2col"] == 2                              # chunks (0, 3), (3, 5)
    ws.weight_gemm(x, args, dy2, True)
    assert im2col_calls["im2col"] == 3                              # only (0, 3) again
    ws.weight_gemm(x, args, dy2, True)          # (0, 3) is held, but (3, 5) comes first
    assert im2col_calls["im2col"] == 5
    ws.im2col_gemm(x, args, W2, b)
    # the negative control: equal numbers in another array are not the same input
    ws.weight_gemm(x.copy(), args, dy2, True)
    assert im2col_calls["im2col"] == 9


def test_buffers_are_kept_and_remade_only_when_they_must(rng):
    x, args, W2, b, dy2 = case(rng)
    ws = ConvWorkspace()
    ws.im2col_gemm(x, args, W2, b)
    kept = ws.buffers["cols"]
    np.testing.assert_array_equal(kept[:, -1], 1)                   # the bias column
    ws.im2col_gemm(x + 1, args, W2, b)
    assert ws.buffers["cols"] is kept
    ws.im2col_gemm(x[:2], args, W2, b)                              # a smaller batch
    assert ws.buffers["cols"] is not kept and len(ws.buffers["cols"]) < len(kept)
    ws.im2col_gemm(x, args, W2, None)                               # no bias column
    assert ws.buffers["cols"].shape[1] == len(W2)


@pytest.mark.parametrize("C_in, stride", [(2, (1, 2)), (1, (2, 1))])
def test_col2im_gets_whole_contiguous_pieces(rng, monkeypatch, im2col_calls, C_in, stride):
    """Each piece of dcols is a contiguous array of its own size, also the smaller last one:
    numba then compiles col2im for one memory order only."""
    x, args, W2, b, dy2 = case(rng, C_in, stride=stride)
    P, K = args.H_out * args.W_out, len(W2)
    monkeypatch.setattr(workspace, "DX_CHUNK_BYTES", 2 * P * K * 8)   # 2 examples a piece
    ConvWorkspace().col2im_gemm(dy2, W2, args, x.shape)
    by_column = C_in == 1 and stride[1] == 1
    assert im2col_calls["col2im"] == [((n * P, K), not by_column, by_column)
                                      for n in (2, 2, 1)]
