"""Winograd's F(2x2, 3x3) and F(2x2, 5x5) (Lavin & Gray 2016): the matrices and the tile
transforms against their references and the definition of a convolution, when Conv2D uses them,
and its gradients."""

import numpy as np
import pytest
from gradcheck import check_layer
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv as tc
from tinyconv import kernels, reference, workspace
from tinyconv.workspace import (
    Im2colArgs,
    transposed_args,
    winograd_applies,
    winograd_dx_args,
    winograd_weights_apply,
)

TILES = [kernels.winograd_tiles, kernels.winograd_tiles_reference]
MIN_TILES = dict(workspace.WINOGRAD_MIN_TILES)


@pytest.fixture(autouse=True)
def small_batches_go_by_winograd(monkeypatch):
    """The batches here are a few examples, too few tiles for the layer to choose Winograd
    (workspace.WINOGRAD_MIN_TILES): lift the minimum, so that they test it."""
    monkeypatch.setattr(workspace, "WINOGRAD_MIN_TILES", {3: 0, 5: 0})
UNTILES = [kernels.winograd_untiles, kernels.winograd_untiles_reference]


def assert_close(actual, desired):
    """Equal up to rounding, relative to the largest value: the transforms add values across
    a tile, so an error is a fraction of the tile's largest, not of each output's own (5x5's
    transforms pass through values up to about 100 times the inputs: 1e-6 of the scale in
    float32, against 1e-7 for 3x3)."""
    tol = 1e-5 if np.asarray(actual).dtype == np.float32 else 1e-12
    scale = max(np.abs(desired).max(), 1e-30)
    assert np.abs(actual - desired).max() <= tol * scale, np.abs(actual - desired).max() / scale


@pytest.mark.parametrize("r", [3, 5])
def test_the_matrices_compute_two_outputs_of_a_row(r):
    # A^T [(G g) ⊙ (B^T d)] = the two outputs of correlating r + 1 inputs d with a filter g
    BT, G, AT = kernels.winograd.MATRICES[r]
    rng = np.random.default_rng(r)
    for _ in range(5):
        d, g = rng.standard_normal(r + 1), rng.standard_normal(r)
        np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), [d[:r] @ g, d[1:] @ g],
                                   rtol=1e-13, atol=1e-13)


def by_tiles(x, W, b, pads, tiles, untiles):
    """The convolution as Winograd computes it: pad, tiles, (r + 1)^2 GEMMs, outputs."""
    (pt, pb), (pl, pr) = pads
    r = W.shape[0]
    N, H, W_in, C = x.shape
    H_out, W_out = H + pt + pb - (r - 1), W_in + pl + pr - (r - 1)
    th, tw = (H_out + 1) // 2, (W_out + 1) // 2
    xp = np.zeros((N, 2 * th + r - 1, 2 * tw + r - 1, C), x.dtype)
    xp[:, pt:pt + H, pl:pl + W_in] = x
    M = np.matmul(tiles(xp, th, tw, r=r), kernels.winograd_weights(W))
    return untiles(M, th, tw, b, H_out, W_out)


@pytest.mark.parametrize("r", [3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tiles, untiles", list(zip(TILES, UNTILES, strict=True)),
                         ids=["numba", "reference"])
@pytest.mark.parametrize("shape, pads", [
    ((2, 7, 9, 3, 4), ((1, 1), (1, 1))), ((1, 6, 5, 2, 3), ((0, 0), (2, 1))),
    ((3, 5, 8, 1, 1), ((2, 2), (0, 2))), ((1, 3, 3, 4, 2), ((0, 0), (0, 0)))])
def test_winograd_is_the_convolution(dtype, tiles, untiles, shape, pads, r):
    # odd and even output sizes, so the last tile of a row or column is cut
    N, H, W_in, C, K = shape
    H, W_in = H + r - 3, W_in + r - 3                   # the same output sizes for 5x5
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, H, W_in, C)).astype(dtype)
    W = rng.standard_normal((r, r, C, K)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    assert_close(by_tiles(x, W, b, pads, tiles, untiles),
                 reference.conv2d(x, W, b, (1, 1), pads, (1, 1)))


@pytest.mark.parametrize("r", [3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kernels_equal_their_references_and_write_into_out(dtype, r, threads):
    rng = np.random.default_rng(2)
    xp = rng.standard_normal((5, 10 + r, 8 + r, 9)).astype(dtype)
    V = kernels.winograd_tiles(xp, 5, 4, r=r)
    assert V.shape == ((r + 1) ** 2, 5 * 5 * 4, 9)
    assert_close(V, kernels.winograd_tiles_reference(xp, 5, 4, r=r))
    out = np.empty_like(V)
    assert kernels.winograd_tiles(xp, 5, 4, out=out, r=r) is out
    M = rng.standard_normal(((r + 1) ** 2, 5 * 5 * 4, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    y = kernels.winograd_untiles(M, 5, 4, b, 9, 7)
    assert_close(y, kernels.winograd_untiles_reference(M, 5, 4, b, 9, 7))
    with pytest.raises(ValueError, match="^out: expected"):
        kernels.winograd_untiles(M, 5, 4, b, 9, 7, out=np.empty((5, 9, 8, 3), dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_signal_tiles_equal_their_reference(dtype, threads):
    # the weight gradient's, 3x3 only
    rng = np.random.default_rng(2)
    dy = rng.standard_normal((5, 9, 7, 3)).astype(dtype)           # odd: cut tiles
    assert_close(kernels.winograd_signal_tiles(dy, 5, 4),
                 kernels.winograd_signal_tiles_reference(dy, 5, 4))


@pytest.mark.parametrize("r", [3, 5])
def test_the_weights_transform_is_g_g_gt(r):
    W = np.random.default_rng(3).standard_normal((r, r, 2, 5))
    U = kernels.winograd_weights(W).reshape(r + 1, r + 1, 2, 5)
    G = kernels.winograd.MATRICES[r][1]
    np.testing.assert_allclose(U[..., 1, 3], G @ W[..., 1, 3] @ G.T, rtol=1e-14)


def test_a_filter_size_without_matrices_is_refused():
    xp = np.zeros((1, 8, 8, 2))
    with pytest.raises(ValueError, match="^r: expected 3 or 5, got 4"):
        kernels.winograd_tiles(xp, 2, 2, r=4)
    with pytest.raises(ValueError, match="16 or 36 planes"):
        kernels.winograd_untiles(np.zeros((25, 4, 2)), 2, 2, np.zeros(2), 4, 4)


def args_of(layer, H, W_in):
    return layer._im2col_args(H, W_in)


@pytest.mark.parametrize("kernel, stride, dilation, C_in, C_out, side, applies", [
    (3, 1, 1, 8, 8, 14, True), (3, 1, 1, 7, 8, 14, False), (3, 1, 1, 8, 7, 14, False),
    (3, 1, 1, 8, 8, 13, False), (3, 2, 1, 8, 8, 28, False), (3, 1, 2, 8, 8, 16, False),
    ((3, 2), 1, 1, 8, 8, 14, False), (5, 1, 1, 16, 16, 14, True), (5, 1, 1, 15, 16, 14, False),
    (5, 1, 1, 16, 15, 14, False), (5, 1, 1, 8, 8, 14, False), (5, 1, 1, 16, 16, 13, False),
    (5, 2, 1, 16, 16, 28, False), ((5, 3), 1, 1, 16, 16, 14, False), (7, 1, 1, 16, 16, 14, False),
    (1, 1, 1, 16, 16, 14, False)])
def test_when_winograd_applies(kernel, stride, dilation, C_in, C_out, side, applies):
    layer = tc.Conv2D(C_in, C_out, kernel, stride=stride, dilation=dilation, padding="same")
    H = side * stride
    args = args_of(layer, H, H)
    assert min(args.H_out, args.W_out) == side
    assert winograd_applies(args, C_in, C_out) is applies


@pytest.mark.parametrize("C_in, C_out, r, applies", [
    (64, 64, 3, True), (128, 64, 3, True), (63, 64, 3, False), (64, 32, 3, False),
    (64, 64, 5, False)])                         # 5x5: y and dx only
def test_when_the_weight_gradient_goes_by_winograd_too(C_in, C_out, r, applies):
    args = args_of(tc.Conv2D(C_in, C_out, r, padding="same"), 14, 14)
    assert winograd_weights_apply(args, C_in, C_out) is applies


def test_the_weight_gradient_by_winograd_is_the_definition(monkeypatch):
    # several chunks (the sum over tiles runs across them), an odd output (cut tiles)
    monkeypatch.setattr(workspace, "WINOGRAD_CHUNK_BYTES", 1 << 16)
    layer, x = layer_case(64, 64, 17, 16, 1, np.float64)
    args = args_of(layer, 17, 16)
    assert winograd_weights_apply(args, 64, 64)
    dy = np.random.default_rng(8).standard_normal((3, 17, 16, 64))
    dW, db = layer._workspace.winograd_weight_gemm(x, args, dy, True)
    dW_ref, db_ref = reference.conv2d_backward(dy, x, layer.params["W"], (1, 1),
                                               layer.pads(17, 16), (1, 1))[1:3]
    assert_close(dW, dW_ref)
    assert_close(db, db_ref)


def test_dx_is_a_convolution_with_k_minus_1_minus_pad_padding():
    args = Im2colArgs(3, 3, 1, 1, 1, 1, 1, 0, 14, 13)             # H_in = W_in = 15
    assert transposed_args(args, 15, 15) == Im2colArgs(3, 3, 1, 1, 1, 1, 1, 2, 15, 15)
    # a pad larger than k - 1 (the transposed convolution would crop) and a stride: none
    assert transposed_args(Im2colArgs(3, 3, 1, 1, 1, 1, 3, 0, 18, 13), 15, 15) is None
    assert transposed_args(Im2colArgs(3, 3, 2, 2, 1, 1, 1, 1, 8, 8), 15, 15) is None


def layer_case(C_in, C_out, H, W_in, padding, dtype, seed=0, r=3):
    layer = tc.Conv2D(C_in, C_out, r, padding=padding, rng=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    layer.params["b"][:] = rng.standard_normal(C_out)
    x = rng.standard_normal((3, H, W_in, C_in)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C_in, C_out, H, W_in, padding, r, paths", [
    (64, 64, 14, 15, 1, 3, "y, dW and dx"),
    (8, 9, 14, 15, 1, 3, "y and dx"),
    (9, 8, 16, 14, "same", 3, "y and dx"),
    (8, 8, 17, 15, 0, 3, "dx only"),         # y is 15 x 13: too small for it
    (8, 8, 14, 14, 3, 3, "y only"),          # dx would crop: pad 3 > k - 1
    (4, 16, 20, 20, 1, 3, "none"),           # too few input channels either way
    (16, 17, 14, 15, 2, 5, "y only"),        # 5x5 (the shipped model's conv2): y only
    (17, 16, 15, 14, "same", 5, "y only"),
    (16, 16, 18, 17, 0, 5, "none"),          # y is 14 x 13
    (8, 32, 14, 14, 2, 5, "none"),           # 5x5 needs 16 channels each side
])
def test_conv2d_forward_and_backward_by_winograd_are_the_definition(C_in, C_out, H, W_in,
                                                                      padding, r, paths, dtype):
    layer, x = layer_case(C_in, C_out, H, W_in, padding, dtype, r=r)
    args = args_of(layer, H, W_in)
    used = (winograd_applies(args, C_in, C_out), winograd_weights_apply(args, C_in, C_out),
            winograd_dx_args(args, H, W_in, C_in, C_out) is not None)
    assert used == {"y, dW and dx": (True, True, True), "y and dx": (True, False, True),
                    "dx only": (False, False, True), "y only": (True, False, False),
                    "none": (False, False, False)}[paths]
    pads = layer.pads(H, W_in)
    W, b = layer.params["W"], layer.params["b"]
    y = layer.forward(x)
    assert_close(y, reference.conv2d(x, W, b, (1, 1), pads, (1, 1)))
    dy = np.random.default_rng(9).standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    dx_ref, dW_ref, db_ref = reference.conv2d_backward(dy, x, W, (1, 1), pads, (1, 1))
    assert_close(dx, dx_ref)
    assert_close(layer.grads["W"], dW_ref)
    assert_close(layer.grads["b"], db_ref)


@pytest.mark.parametrize("r, C", [(3, 8), (5, 16)])
def test_chunks_and_kept_buffers_give_the_same_numbers(monkeypatch, r, C):
    layer, x = layer_case(C, C, 14, 16, "same", np.float64, r=r)
    whole = layer.forward(x)
    dy = np.random.default_rng(4).standard_normal(whole.shape)
    dx = layer.backward(dy)
    # one example per chunk (the last chunk smaller than the buffer: a batch of 3 then of 2)
    monkeypatch.setattr(workspace, "WINOGRAD_CHUNK_BYTES", 1)
    fresh = tc.Conv2D(C, C, r, padding="same")
    fresh.params = layer.params
    for batch in (x, x[:2], x):                   # the kept buffers, made anew and kept
        np.testing.assert_allclose(fresh.forward(batch), whole[:len(batch)], rtol=1e-13)
        np.testing.assert_allclose(fresh.backward(dy[:len(batch)]), dx[:len(batch)],
                                   rtol=1e-13, atol=1e-13)
    # another input size, in a padded buffer of another shape
    big = np.random.default_rng(5).standard_normal((2, 18, 15, C))
    np.testing.assert_allclose(fresh.forward(big), reference.conv2d(
        big, layer.params["W"], layer.params["b"], (1, 1), fresh.pads(18, 15), (1, 1)),
        rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("r, C", [(3, 8), (5, 16)])
@pytest.mark.parametrize("padding", [1, 2, "same", (1, 0), (0, 2)])
def test_an_input_one_smaller_reads_no_stale_border(padding, r, C):
    # 16 x 16 and 15 x 15 inputs tile into padded buffers of one shape: the rows and columns
    # the smaller one leaves must read as zeros, not as the larger one's numbers
    layer = tc.Conv2D(C, C, r, padding=padding, rng=0, dtype=np.float64)
    rng = np.random.default_rng(6)
    W, b = layer.params["W"], layer.params["b"]
    for H in (16, 15, 16, 15) if r == 3 else (18, 17, 18, 17):
        x = rng.standard_normal((2, H, H, C))
        y = layer.forward(x)
        pads = layer.pads(H, H)
        np.testing.assert_allclose(y, reference.conv2d(x, W, b, (1, 1), pads, (1, 1)),
                                   rtol=1e-12, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        np.testing.assert_allclose(layer.backward(dy), reference.conv2d_backward(
            dy, x, W, (1, 1), pads, (1, 1))[0], rtol=1e-12, atol=1e-12)


def test_an_input_array_refilled_in_place_gets_its_own_weight_gradient():
    # the Winograd forward writes no im2col matrix, so the backward must not take one that an
    # earlier pass left for this very array (a training loop that refills one batch buffer)
    layer = tc.Conv2D(8, 8, 3, padding=1, rng=0, dtype=np.float64)
    rng = np.random.default_rng(7)
    batch = np.empty((4, 16, 16, 8))
    for _ in range(3):
        batch[:] = rng.standard_normal(batch.shape)
        y = layer.forward(batch)
        dy = rng.standard_normal(y.shape)
        layer.backward(dy)
        dW = reference.conv2d_backward(dy, batch, layer.params["W"], (1, 1),
                                       layer.pads(16, 16), (1, 1))[1]
        np.testing.assert_allclose(layer.grads["W"], dW, rtol=1e-12, atol=1e-12)


@settings(max_examples=6, deadline=None)
@given(st.integers(14, 16), st.integers(14, 17), st.sampled_from([0, 1, 2, "same"]),
       st.sampled_from([(3, 8), (5, 16)]), st.integers(0, 2**32 - 1))
def test_winograd_layer_gradients(H, W_in, padding, size, seed):
    # float64 against centred differences, on layers that go by Winograd both ways
    r, C = size
    layer, x = layer_case(C, C, H, W_in, padding, np.float64, seed=seed % 1000, r=r)
    args = args_of(layer, H, W_in)
    if not winograd_applies(args, C, C):
        layer = tc.Conv2D(C, C, r, padding=r - 1, rng=seed % 1000, dtype=np.float64)
    y = layer.forward(x)
    check_layer(layer, x, np.random.default_rng(seed).standard_normal(y.shape))


def test_a_training_pass_computes_a_5x5_layer_by_im2col(monkeypatch):
    # Winograd's forward leaves no columns for dW: a pass for the weight gradient (a training
    # step) goes by im2col, whose numbers it gives bit for bit; an explanation's pass does not
    model = tc.Sequential([tc.Conv2D(16, 16, 5, padding="same", rng=0), tc.ReLU(), tc.Flatten(),
                           tc.Dense(14 * 14 * 16, 3, rng=1)], input_shape=(14, 14, 16))
    x = np.random.default_rng(10).standard_normal((4, 14, 14, 16)).astype(np.float32)
    conv = model.layers[0]
    assert winograd_applies(conv._im2col_args(14, 14), 16, 16)
    assert not winograd_applies(conv._im2col_args(14, 14), 16, 16, param_grads=True)
    by_winograd = model.forward(x)
    for_training = model.forward(x, param_grads=True)
    dy = np.random.default_rng(11).standard_normal((4, 3)).astype(np.float32)
    model.backward(dy)
    dW = conv.grads["W"].copy()
    monkeypatch.setattr(tc.conv, "winograd_applies", lambda *args: False)
    by_im2col = model.forward(x)
    np.testing.assert_array_equal(for_training, by_im2col)
    assert not np.array_equal(by_winograd, by_im2col)
    assert_close(by_winograd, by_im2col)
    model.backward(dy)
    np.testing.assert_array_equal(dW, conv.grads["W"])


def test_train_step_tells_the_layers_a_weight_gradient_follows(monkeypatch):
    seen = []
    forward = tc.Conv2D.forward
    monkeypatch.setattr(tc.Conv2D, "forward", lambda self, x, check=True, param_grads=False:
                        seen.append(param_grads) or forward(self, x, check, param_grads))
    model = tc.architectures.build("small")
    opt = tc.SGD(model, lr=0.01)
    x = np.random.default_rng(12).random((2, 28, 28, 1), dtype=np.float32)
    tc.training.train_step(model, opt, x, np.array([1, 2]))
    model.forward(x)
    assert seen == [True, True, False, False]


@pytest.mark.parametrize("r, C, examples, applies", [
    (3, 8, 8, False), (3, 8, 9, True), (5, 16, 30, False), (5, 16, 31, True)])
def test_a_batch_of_too_few_tiles_goes_by_im2col(monkeypatch, r, C, examples, applies):
    # a 14 x 14 output is 49 tiles an example: 400 tiles are 9 examples for 3x3, 1500 are
    # 31 for 5x5
    monkeypatch.setattr(workspace, "WINOGRAD_MIN_TILES", MIN_TILES)
    layer = tc.Conv2D(C, C, r, padding="same", rng=0)
    args = args_of(layer, 14, 14)
    assert workspace.winograd_tile_count(args, examples) == 49 * examples
    assert winograd_applies(args, C, C)                 # whatever the batch
    assert winograd_applies(args, C, C, examples) is applies
    x = np.random.default_rng(13).standard_normal((examples, 14, 14, C)).astype(np.float32)
    y = layer.forward(x)
    monkeypatch.setattr(tc.conv, "winograd_applies", lambda *args: False)
    by_im2col = layer.forward(x)
    assert np.array_equal(y, by_im2col) is not applies  # Winograd rounds otherwise
    assert_close(y, by_im2col)


@pytest.mark.parametrize("r, C", [(3, 8), (5, 16)])
def test_transformed_filters_are_kept_until_the_filters_change(r, C):
    # U = G g G^T is kept from call to call; an update in place (an optimizer's step), a new
    # filter array or NaN must each give the filters' own U, never the kept one of older filters
    layer, x = layer_case(C, C, 14, 16, "same", np.float64, r=r)
    y = layer.forward(x)
    ws = layer._workspace
    kept = ws.buffers["U forward"]
    layer.forward(x)
    assert ws.buffers["U forward"] is kept                       # the same filters: not redone

    def definition():
        return reference.conv2d(x, layer.params["W"], layer.params["b"], (1, 1),
                                layer.pads(14, 16), (1, 1))

    layer.params["W"] *= 0.5                                     # in place
    assert_close(layer.forward(x), definition())
    assert ws.buffers["U forward"] is not kept
    np.testing.assert_allclose(layer.forward(x), 0.5 * (y - layer.params["b"])
                               + layer.params["b"], rtol=1e-12, atol=1e-12)
    layer.params["W"] = np.random.default_rng(8).standard_normal(layer.params["W"].shape)
    assert_close(layer.forward(x), definition())                 # a new array
    layer.params["W"][0, 0, 0, 0] = np.nan
    first = layer.forward(x)
    assert np.isnan(first).any()
    layer.params["W"][0, 0, 0, 0] = 1.0                          # NaN gone again
    assert_close(layer.forward(x), definition())


@pytest.mark.parametrize("r", [3, 5])
def test_each_output_depends_on_its_own_window_alone(r):
    # The transforms must keep what the direct sum has: an output sees its r x r window and
    # nothing else. One huge input may then spoil only the outputs whose windows hold it, and
    # one inf may make only those non-finite. (F(4x4, 5x5) broke both: a pixel of 1e6 moved
    # outputs outside its windows by 0.7 on values of about 6, and an inf reached 8 x 8
    # outputs where the direct sum reaches 5 x 5.)
    rng = np.random.default_rng(14)
    layer = tc.Conv2D(16, 16, r, padding="valid", rng=rng)
    args = args_of(layer, 20, 20)
    assert winograd_applies(args, 16, 16, 1)
    x = rng.standard_normal((1, 20, 20, 16)).astype(np.float32)
    W, b = (layer.params[k].astype(np.float64) for k in "Wb")
    inside = np.zeros((21 - r, 21 - r), bool)            # the outputs whose window holds (6, 6)
    inside[max(0, 7 - r):7, max(0, 7 - r):7] = True
    big = x.copy()
    big[0, 6, 6, 0] = 1e6
    y = layer.forward(big)
    ref = reference.conv2d(big.astype(np.float64), W, b, (1, 1), ((0, 0), (0, 0)), (1, 1))
    err = np.abs(y - ref)[0][~inside]                     # (outputs outside, C_out)
    assert err.max() <= 1e-4 * np.abs(ref[0][~inside]).max(), err.max()
    x[0, 6, 6, 0] = np.inf
    y = layer.forward(x, check=False)         # as a model passes a hidden layer's input
    assert np.array_equal(~np.isfinite(y[0]).all(axis=-1), inside)
