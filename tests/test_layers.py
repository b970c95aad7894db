"""Layers: forward against plain loops, the three backward rules, ties, bad input, gradcheck."""

import numpy as np
import pytest
from gradcheck import assert_gradient, check_layer, numerical_gradient, relative_error

import tinyconv as tc
from tinyconv import reference, workspace
from tinyconv.layers import relu_backward, resolve_padding

# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize("kernel, stride, padding, dilation", [
    ((3, 2), (2, 1), 0, 1),
    ((2, 3), (1, 3), (1, 2), (2, 1)),
    ((3, 3), 2, "same", 1),
    ((1, 4), (3, 2), "same", (1, 2)),
    ((2, 2), 1, "valid", 2),
])
def test_conv2d_forward_matches_the_definition(rng, kernel, stride, padding, dilation):
    layer = tc.Conv2D(3, 4, kernel, stride, padding, dilation, rng=1, dtype=np.float64)
    layer.params["b"][:] = rng.standard_normal(4)
    x = rng.standard_normal((2, 7, 9, 3))
    y = layer.forward(x)
    want = reference.conv2d(x, layer.params["W"], layer.params["b"], layer.stride,
                            layer.pads(7, 9), layer.dilation)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    assert y.shape[1:] == layer.output_shape((7, 9, 3))


def test_same_padding_follows_tensorflow():
    # total max(k - s, 0) when s divides n, else max(k - n % s, 0); odd pixel at the end
    assert resolve_padding("same", 8, 3, 2) == (0, 1)
    assert resolve_padding("same", 7, 3, 2) == (1, 1)
    assert resolve_padding("same", 7, 4, 1) == (1, 2)
    assert resolve_padding("same", 5, 1, 3) == (0, 0)
    assert resolve_padding("valid", 5, 3, 1) == (0, 0)
    assert resolve_padding(2, 5, 3, 1) == (2, 2)
    for n in range(1, 12):
        for s in (1, 2, 3):
            layer = tc.Conv2D(1, 1, (3, 2), stride=s, padding="same")
            assert layer.output_shape((n, n + 1, 1))[:2] == (-(-n // s), -(-(n + 1) // s))


@pytest.mark.parametrize("size, stride, padding", [
    ((2, 3), None, 0), ((3, 2), (1, 2), (1, 1)), ((3, 3), 2, "same"), ((2, 1), (1, 1), "valid"),
])
def test_maxpool_forward_matches_the_definition(rng, size, stride, padding):
    layer = tc.MaxPool2D(size, stride, padding)
    x = -np.abs(rng.standard_normal((2, 7, 6, 3)))     # all negative: padding must not win
    y = layer.forward(x)
    want, switches = reference.maxpool2d(x, layer.size, layer.stride, layer.pads(7, 6))
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(layer.switches, switches)
    assert y.shape[1:] == layer.output_shape((7, 6, 3))
    assert (y < 0).all()


def test_dense_and_flatten_forward(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    flat = tc.Flatten().forward(x)
    assert flat.shape == (2, 60)
    assert flat[1, (2 * 4 + 3) * 5 + 4] == x[1, 2, 3, 4]    # unit (row, col, k), C order
    dense = tc.Dense(60, 7, rng=0, dtype=np.float64)
    np.testing.assert_allclose(dense.forward(flat), flat @ dense.params["W"] + dense.params["b"])


def test_float32_by_default_and_float64_on_request(rng):
    x = rng.standard_normal((1, 5, 4, 2))
    conv = tc.Conv2D(2, 3, 3, rng=0)
    assert conv.params["W"].dtype == np.float32 and conv.forward(x).dtype == np.float32
    conv.astype(np.float64)
    assert conv.forward(x).dtype == np.float64 and conv.grads["W"].dtype == np.float64
    assert tc.MaxPool2D(2).forward(x.astype(np.float32)).dtype == np.float32


def test_geometry_and_config():
    conv = tc.Conv2D(1, 2, (3, 5), stride=(1, 2), padding="same", dilation=(2, 1), name="c")
    (pt, _), (pl, _) = conv.pads(9, 8)
    assert conv.geometry((9, 8, 1)) == ((3, 1, pt, 2), (5, 2, pl, 1))
    assert tc.MaxPool2D((2, 3)).geometry((6, 6, 1)) == ((2, 2, 0, 1), (3, 3, 0, 1))
    assert tc.Flatten().geometry((2, 2, 1)) is None
    assert tc.ReLU().geometry((2, 2, 1)) == ((1, 1, 0, 1), (1, 1, 0, 1))
    again = tc.Conv2D(**conv.config())
    assert again.config() == conv.config() and repr(again) == repr(conv)


# --------------------------------------------------------------------------- the three rules


def test_relu_rules_match_the_design_table():
    x = np.array([[-2.0, -1.0, 1.0, 2.0]])
    dy = np.array([[-1.0, 1.0, -1.0, 1.0]])
    want = {"gradient": [0, 0, -1, 1],      # dy * (x > 0)
            "deconvnet": [0, 1, 0, 1],      # dy * (dy > 0)
            "guided": [0, 0, 0, 1]}         # dy * (x > 0) * (dy > 0)
    relu = tc.ReLU()
    np.testing.assert_array_equal(relu.forward(x), [[0, 0, 1, 2]])
    for rule, values in want.items():
        np.testing.assert_array_equal(relu.backward(dy, rule=rule), [values])
        np.testing.assert_array_equal(relu_backward(dy, x, rule), [values])


def test_relu_derivative_at_zero_is_zero():
    relu = tc.ReLU()
    relu.forward(np.zeros((1, 3)))
    dy = np.array([[1.0, -1.0, 2.0]])
    np.testing.assert_array_equal(relu.backward(dy, rule="gradient"), 0)
    np.testing.assert_array_equal(relu.backward(dy, rule="guided"), 0)
    np.testing.assert_array_equal(relu.backward(dy, rule="deconvnet"), [[1, 0, 2]])


def positive_model():
    """Positive weights, positive inputs, non-negative biases: every pre-activation is > 0."""
    model = tc.Sequential([
        tc.Conv2D(2, 3, (3, 2), padding="same"), tc.ReLU(), tc.MaxPool2D((2, 3)),
        tc.Conv2D(3, 2, 2, stride=(1, 2), padding=1), tc.ReLU(),
        tc.Flatten(), tc.Dense(4 * 2 * 2, 4), tc.ReLU(), tc.Dense(4, 3),
    ], input_shape=(6, 7, 2), seed=3).astype(np.float64)
    for layer in model.layers:
        for key, p in layer.params.items():
            p[:] = np.abs(p) + (0.1 if key == "W" else 0.0)
    return model


def test_rules_agree_when_every_pre_activation_is_positive(rng):
    model = positive_model()
    x = rng.random((2, 6, 7, 2)) + 0.1
    ys = model.activations(x)
    for layer, y in zip(model.layers, ys[:-1], strict=True):
        if isinstance(layer, tc.ReLU):
            assert (y > 0).all()
    for start in (len(model), model.index("relu2"), 2):
        shape = ys[start].shape
        dy = rng.random(shape) + 0.1                     # positive seed: deconvnet keeps it
        maps = [model.backward(dy, rule=rule, start=start)
                for rule in ("gradient", "deconvnet", "guided")]
        np.testing.assert_array_equal(maps[0], maps[1])
        np.testing.assert_array_equal(maps[0], maps[2])
        assert (maps[0] >= 0).all() and (maps[0] > 0).any()


def test_only_the_gradient_rule_writes_grads(rng):
    model = positive_model()
    x = rng.random((2, 6, 7, 2))
    dy = rng.standard_normal((2, 3))
    model.forward(x)
    model.backward(dy, rule="gradient")
    before = {(layer.name, key): layer.grads[key].copy() for layer, key in model.parameters()}
    assert any(np.any(g != 0) for g in before.values())
    for rule in ("deconvnet", "guided"):
        model.forward(x + 1)
        model.backward(-dy, rule=rule)
        for layer, key in model.parameters():
            np.testing.assert_array_equal(layer.grads[key], before[(layer.name, key)])


def test_an_unknown_rule_is_refused(rng):
    relu = tc.ReLU()
    relu.forward(rng.standard_normal((1, 2)))
    with pytest.raises(ValueError, match="rule"):
        relu.backward(np.ones((1, 2)), rule="saliency")
    for layer, x in layers_and_inputs(rng):
        dy = np.ones_like(layer.forward(x))
        with pytest.raises(ValueError, match="rule: expected one of"):
            layer.backward(dy, rule="saliency")
        layer.backward(dy, rule="gradient", check=False)    # check=False: trusted, not checked
    model = positive_model()
    model.forward(rng.random((1, 6, 7, 2)))
    with pytest.raises(ValueError, match="rule: expected one of"):     # once, at the model
        model.backward(np.ones((1, 3)), rule="saliency")


# --------------------------------------------------------------------------- max-pool ties


def test_maxpool_ties_go_to_the_first_maximum_in_row_major_order():
    # two 2x2 windows side by side, stride 2; C = 1; H = 2, W = 4
    x = np.array([[[3.0, 3.0, 1.0, 5.0],
                   [3.0, 3.0, 5.0, 5.0]]])[..., None]
    pool = tc.MaxPool2D(2)
    y = pool.forward(x)
    np.testing.assert_array_equal(y[0, 0, :, 0], [3, 5])
    # switches: flat position row * W + col of the first max in row-major window order
    np.testing.assert_array_equal(pool.switches[0, 0, :, 0], [0 * 4 + 0, 0 * 4 + 3])
    dx = pool.backward(np.array([[[[10.0], [20.0]]]]))
    want = np.zeros((1, 2, 4, 1))
    want[0, 0, 0, 0], want[0, 0, 3, 0] = 10, 20
    np.testing.assert_array_equal(dx, want)


def test_maxpool_tie_below_a_smaller_first_row():
    x = np.array([[[1.0, 2.0], [2.0, 2.0]]])[..., None]       # max 2 first at (0, 1)
    pool = tc.MaxPool2D(2)
    pool.forward(x)
    assert pool.switches.ravel().tolist() == [1]


# --------------------------------------------------------------------------- gradient checks


def test_gradcheck_accepts_right_and_rejects_wrong_gradients(rng):
    """The negative control: the checker must fail a gradient that is slightly wrong."""
    conv = tc.Conv2D(2, 3, (2, 3), stride=(2, 1), padding=1, rng=0, dtype=np.float64)
    x = rng.standard_normal((2, 5, 4, 2))
    dy = rng.standard_normal((2, *conv.output_shape((5, 4, 2))))
    check_layer(conv, x, dy)
    conv.forward(x)
    dx = conv.backward(dy)
    num = numerical_gradient(lambda: conv.forward(x), x, dy)
    assert relative_error(dx, num) < 1e-6
    with pytest.raises(AssertionError, match="relative error"):
        assert_gradient(dx * 1.01, num, "dx scaled by 1.01")
    wrong = dx.copy()
    wrong[1, 2, 3, 1] += 1e-3
    with pytest.raises(AssertionError, match=r"\(1, 2, 3, 1\)"):
        assert_gradient(wrong, num, "dx with one entry off")
    dW = conv.grads["W"].copy()
    dW[0, 0, 0, 0] *= -1
    with pytest.raises(AssertionError):
        assert_gradient(dW, numerical_gradient(lambda: conv.forward(x), conv.params["W"], dy))


@pytest.mark.parametrize("C_in, kernel, stride, bias", [
    (1, (3, 3), (2, 1), True),       # one channel, stride 1 along W: a column-major buffer
    (1, (2, 3), (1, 2), True),       # strided: row-major
    (6, (2, 3), (2, 1), True),       # few channels: row-major, tap rows copied as runs
    (17, (3, 2), (2, 1), False),     # many channels; no bias: no column of ones
])
def test_conv2d_gradients_with_either_buffer(rng, C_in, kernel, stride, bias):
    conv = tc.Conv2D(C_in, 3, kernel, stride=stride, padding=1, bias=bias, rng=0,
                     dtype=np.float64)
    if bias:
        conv.params["b"][:] = rng.standard_normal(3)
    x = rng.standard_normal((2, 5, 6, C_in))
    dy = rng.standard_normal((2, *conv.output_shape((5, 6, C_in))))
    check_layer(conv, x, dy)
    ext = conv._workspace.buffers["cols"]
    assert ext.flags.f_contiguous == (C_in == 1 and stride[1] == 1)
    assert ext.shape[1] == kernel[0] * kernel[1] * C_in + bias


@pytest.mark.parametrize("chunk_bytes", [1, 3000, 1 << 30])
@pytest.mark.parametrize("dx_chunk_bytes", [1, 5000, 1 << 30])
def test_conv2d_in_chunks_of_examples_is_the_same_convolution(rng, monkeypatch, chunk_bytes,
                                                              dx_chunk_bytes):
    """A batch split into chunks (one example each, or a few, or none), and the backward's
    dcols + col2im in pieces of one or two examples within those chunks, gives the gradients
    of the definition; backward walks the chunks last to first, reusing the forward's last
    cols."""
    monkeypatch.setattr(workspace, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(workspace, "DX_CHUNK_BYTES", dx_chunk_bytes)   # an example: 2304 bytes
    conv = tc.Conv2D(2, 3, (3, 2), stride=(1, 2), padding=1, rng=0, dtype=np.float64)
    conv.params["b"][:] = rng.standard_normal(3)
    x = rng.standard_normal((5, 6, 7, 2))
    dy = rng.standard_normal((5, *conv.output_shape((6, 7, 2))))
    assert (len(workspace.chunks(5, 6 * 4, 3 * 2 * 2 + 1, 8)[0]) > 1) == (chunk_bytes < 1 << 30)
    y = conv.forward(x)
    np.testing.assert_allclose(y, reference.conv2d(x, conv.params["W"], conv.params["b"],
                                                   conv.stride, conv.pads(6, 7), conv.dilation),
                               atol=1e-12)
    check_layer(conv, x, dy)
    for rule in ("deconvnet", "guided"):          # no dW: no im2col in the backward at all
        conv.forward(x)
        np.testing.assert_allclose(conv.backward(dy, rule=rule), conv.backward(dy), atol=1e-12)


def test_conv2d_dx_in_pieces_with_column_major_buffers(rng, monkeypatch):
    """One input channel, stride 1: dcols is column-major; one example at a time, it folds
    back to the same dx as the whole batch at once."""
    conv = tc.Conv2D(1, 4, 3, padding="same", rng=0, dtype=np.float64)
    x = rng.standard_normal((3, 7, 6, 1))
    dy = rng.standard_normal((3, 7, 6, 4))
    conv.forward(x)
    whole = conv.backward(dy)
    monkeypatch.setattr(workspace, "DX_CHUNK_BYTES", 1)
    conv.forward(x)
    np.testing.assert_allclose(conv.backward(dy), whole, rtol=1e-13, atol=1e-13)
    assert conv._workspace.buffers["dcols"].shape == (7 * 6 * 9,)     # one example's dcols


def test_conv2d_buffers_follow_the_batch(rng):
    """Kept buffers never leak between calls: any batch size, in any order, and backward
    goes through the latest forward."""
    conv = tc.Conv2D(2, 3, 3, padding="same", rng=0, dtype=np.float64)
    conv.params["b"][:] = rng.standard_normal(3)
    fresh = tc.Conv2D(**conv.config(), dtype=np.float64)
    fresh.params = {k: v.copy() for k, v in conv.params.items()}
    xs = [rng.standard_normal((n, 6, 5, 2)) for n in (3, 1, 3)]
    outputs = [conv.forward(x) for x in xs]
    for x, y in zip(xs, outputs, strict=True):
        np.testing.assert_array_equal(y, fresh.forward(x))      # results are not buffers
    dy = rng.standard_normal(outputs[-1].shape)
    dx = conv.backward(dy)
    np.testing.assert_array_equal(dx, fresh.backward(dy))
    for key in conv.grads:
        np.testing.assert_array_equal(conv.grads[key], fresh.grads[key])
    assert conv.backward(dy, input_grad=False) is None
    np.testing.assert_array_equal(conv.grads["W"], fresh.grads["W"])


def test_gradcheck_refuses_float32(rng):
    x = rng.standard_normal(3).astype(np.float32)
    with pytest.raises(AssertionError, match="float64"):
        numerical_gradient(lambda: x * 2, x, np.ones(3))


# --------------------------------------------------------------------------- bad input


def layers_and_inputs(rng):
    x4 = rng.standard_normal((2, 6, 5, 3))
    return [(tc.Conv2D(3, 2, 3, rng=0), x4), (tc.ReLU(), x4), (tc.MaxPool2D(2), x4),
            (tc.Flatten(), x4), (tc.Dense(90, 4, rng=0), x4.reshape(2, 90))]


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.complex128, object,
                                   np.float16])
def test_non_float_input_is_a_type_error(rng, dtype):
    for layer, x in layers_and_inputs(rng):
        with pytest.raises(TypeError, match="x: expected a floating-point array"):
            layer.forward(x.astype(dtype))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused(rng, bad):
    for layer, x in layers_and_inputs(rng):
        x = x.copy()
        x.flat[3] = bad
        with pytest.raises(ValueError, match="x: expected finite values"):
            layer.forward(x)


def test_empty_batch_is_refused(rng):
    for layer, x in layers_and_inputs(rng):
        with pytest.raises(ValueError, match="x: expected a non-empty array"):
            layer.forward(x[:0])


def test_wrong_ndim_and_channel_mismatch(rng):
    with pytest.raises(ValueError, match="x: expected 4 dimensions"):
        tc.Conv2D(3, 2, 3).forward(rng.standard_normal((6, 5, 3)))
    with pytest.raises(ValueError, match=r"x: expected shape \(any, any, any, 3\)"):
        tc.Conv2D(3, 2, 3).forward(rng.standard_normal((1, 6, 5, 2)))
    with pytest.raises(ValueError, match="x: expected 4 dimensions"):
        tc.MaxPool2D(2).forward(rng.standard_normal((6, 5)))
    with pytest.raises(ValueError, match=r"x: expected shape \(any, 90\)"):
        tc.Dense(90, 4).forward(rng.standard_normal((2, 91)))
    with pytest.raises(ValueError, match="x: expected 2 dimensions"):
        tc.Dense(90, 4).forward(rng.standard_normal((2, 90, 1)))


def test_kernel_larger_than_the_padded_input(rng):
    with pytest.raises(ValueError, match=r"kernel extent 5 is larger than the padded input \(3 "):
        tc.Conv2D(1, 1, (5, 1)).forward(rng.standard_normal((1, 3, 9, 1)))
    # dilation counts: extent d*(k-1)+1 = 5 along W, padded width 2 + 2
    with pytest.raises(ValueError, match=r"kernel extent 5 .*along W"):
        tc.Conv2D(1, 1, (1, 3), dilation=(1, 2), padding=1).forward(
            rng.standard_normal((1, 3, 2, 1)))
    tc.Conv2D(1, 1, (1, 3), dilation=(1, 2), padding=(0, 2)).forward(
        rng.standard_normal((1, 3, 2, 1)))
    with pytest.raises(ValueError, match="window 4 is larger than the padded input"):
        tc.MaxPool2D((2, 4)).forward(rng.standard_normal((1, 3, 3, 1)))


@pytest.mark.parametrize("make, match, error", [
    (lambda: tc.Conv2D(0, 2, 3), "in_channels", ValueError),
    (lambda: tc.Conv2D(1, 2, 0), "kernel", ValueError),
    (lambda: tc.Conv2D(1, 2, (1, 2, 3)), "kernel", ValueError),
    (lambda: tc.Conv2D(1, 2, 3, stride=0), "stride", ValueError),
    (lambda: tc.Conv2D(1, 2, 3, stride=1.5), "stride", TypeError),
    (lambda: tc.Conv2D(1, 2, 3, padding="full"), "padding", ValueError),
    (lambda: tc.Conv2D(1, 2, 3, padding=-1), "padding", ValueError),
    (lambda: tc.Conv2D(1, 2, 3, dilation=(1, 0)), "dilation", ValueError),
    (lambda: tc.Conv2D(1, 2, 3, bias="yes"), "bias", TypeError),
    (lambda: tc.Conv2D(1, 2, 3, name=5), "name", TypeError),
    (lambda: tc.MaxPool2D(2, padding=2), "padding", ValueError),
    (lambda: tc.MaxPool2D((2, 3), padding=(1, 3)), "padding", ValueError),
    (lambda: tc.MaxPool2D(True), "size", TypeError),
    (lambda: tc.Dense(0, 3), "in_features", ValueError),
    (lambda: tc.Dense(3, 2.0), "out_features", TypeError),
])
def test_bad_constructor_arguments_name_the_argument(make, match, error):
    with pytest.raises(error, match=match):
        make()


def test_backward_before_forward_and_wrong_dy(rng):
    for layer, x in layers_and_inputs(rng):
        y = layer.forward(x)
        fresh = type(layer)(**layer.config())
        with pytest.raises(ValueError, match="dy: .* call forward"):
            fresh.backward(np.ones_like(y))
        with pytest.raises(ValueError, match="dy: expected shape"):
            layer.backward(np.ones((y.shape[0] + 1, *y.shape[1:])))
        with pytest.raises(TypeError, match="dy"):
            layer.backward(np.ones(y.shape, dtype=np.int64))


def test_views_work_like_contiguous_copies(rng):
    """Non-contiguous and negative-stride views (of x and of dy) give the copy's results."""
    for layer, x in layers_and_inputs(rng):
        layer.astype(np.float64)
        big = np.concatenate([x, x], axis=0)
        for view in (x[::-1], big[::2], np.asfortranarray(x), x[..., ::-1]):
            assert not view.flags.c_contiguous
            y_copy = layer.forward(np.ascontiguousarray(view))
            dy_big = rng.standard_normal((2 * len(y_copy), *y_copy.shape[1:]))
            dx_copy = layer.backward(np.ascontiguousarray(dy_big[::-2]))
            np.testing.assert_array_equal(layer.forward(view), y_copy)
            np.testing.assert_array_equal(layer.backward(dy_big[::-2]), dx_copy)
