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


def row_block_case(rng, H, W, kernel, padding, dtype=np.float64, C_out=3, N=5):
    layer = tc.Conv2D(1, C_out, kernel, padding=padding, dtype=dtype)
    args = layer._im2col_args(H, W)
    x = rng.standard_normal((N, H, W, 1)).astype(dtype)
    Wt = rng.standard_normal(layer.params["W"].shape).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, args, Wt, b


@pytest.mark.parametrize("chunk_bytes", [1, 3000, 1 << 30])
@pytest.mark.parametrize("H, W, kernel, padding", [(28, 28, 5, "same"), (9, 12, (2, 4), "same"),
                                                   (13, 20, 3, "valid"), (6, 7, 3, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_blocks_give_im2col_s_numbers(rng, monkeypatch, chunk_bytes, H, W, kernel, padding,
                                          dtype):
    """B output columns per unfolded window: the same products as im2col's, and the banded
    matrix's zeros add exact zeros, so the numbers differ only in how BLAS groups the sum
    (rounding), in every chunking."""
    monkeypatch.setattr(workspace, "CHUNK_BYTES", chunk_bytes)
    x, args, Wt, b = row_block_case(rng, H, W, kernel, padding, dtype)
    B = workspace.row_block_width(args, 1)
    assert B is not None and args.W_out % B == 0
    cols = kernels.im2col_reference(x, *args)
    W2 = Wt.reshape(-1, Wt.shape[-1])
    ws = ConvWorkspace()
    for bias in (b, None):
        want = ws.im2col_gemm(x, args, W2, bias)
        np.testing.assert_allclose(want, cols @ W2 + (0 if bias is None else bias),
                                   rtol=1e-5, atol=1e-5)
        got = ws.row_block_gemm(x, args, Wt, bias, B)
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=scale * (1e-6 if dtype == np.float32
                                                                    else 1e-14))


def test_row_blocks_clear_the_border_another_size_left(rng):
    """A 12 x 12 input without padding fills the whole padded buffer; an 8 x 8 one with a
    5 x 5 'same' window needs the same buffer shape with a zero border of 2."""
    ws = ConvWorkspace()
    x, args, Wt, b = row_block_case(rng, 12, 12, 5, "valid")
    B = workspace.row_block_width(args, 1)
    ws.row_block_gemm(x + 100, args, Wt, b, B)
    x, args, Wt, b = row_block_case(rng, 8, 8, 5, "same")
    got = ws.row_block_gemm(x, args, Wt, b, workspace.row_block_width(args, 1))
    want = kernels.im2col_reference(x, *args) @ Wt.reshape(-1, Wt.shape[-1]) + b
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_row_blocks_apply_to_one_input_channel_at_stride_one_without_a_weight_gradient():
    def width(W_out, C_in=1, stride=1, dilation=1, param_grads=False):
        args = workspace.Im2colArgs(3, 3, stride, stride, dilation, dilation, 1, 1, 10, W_out)
        return workspace.row_block_width(args, C_in, param_grads)
    assert [width(w) for w in (28, 24, 7, 20, 12, 2)] == [7, 8, 7, 5, 6, 2]
    assert width(11) is None and width(1) is None                  # no divisor from 2 to 8
    assert width(28, C_in=2) is None and width(28, stride=2) is None
    assert width(28, dilation=2) is None and width(28, param_grads=True) is None


def test_a_row_block_forward_leaves_no_columns_for_the_backward(rng):
    """The backward after a row-block forward unfolds x itself: its weight gradient and dx
    are the definition's (an older im2col matrix of the same array must not be reused)."""
    layer = tc.Conv2D(1, 4, 5, padding="same", dtype=np.float64)
    x = rng.standard_normal((3, 14, 14, 1))
    layer.forward(x, param_grads=True)             # im2col: leaves its columns behind
    x[:] = rng.standard_normal(x.shape)            # the caller refills the same array
    y = layer.forward(x)                           # row blocks
    assert workspace.row_block_width(layer._im2col_args(14, 14), 1) is not None
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    args = layer._im2col_args(14, 14)
    cols = kernels.im2col_reference(x, *args)
    dy2 = dy.reshape(-1, 4)
    W2 = layer.params["W"].reshape(-1, 4)
    np.testing.assert_allclose(layer.grads["W"].reshape(-1, 4), cols.T @ dy2, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(dx, kernels.col2im_reference(dy2 @ W2.T, *x.shape, *args),
                               rtol=1e-10, atol=1e-10)
