"""Tests for tinyconv.interop: to_torch / from_torch and the layout helpers.

Every random model is converted to torch and run side by side: each layer's output and the
input gradient must agree, and the round trip back must give the same bits. Inputs are
standard normal and weights He-normal with random biases, so ReLU inputs and pooling windows
sit far from kinks and ties compared with float32 rounding.
"""

import sys
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import tinyconv as tc  # noqa: E402
from tinyconv.interop import (  # noqa: E402
    flatten_permutation,
    from_torch,
    nchw_to_nhwc,
    nhwc_to_nchw,
    to_torch,
)

SEEDS = range(24)
CONV_PADDINGS = [0, 1, (1, 2), (2, 0), "same", "same", "valid"]
POOL_STRIDES = [None, 1, 2, (1, 2), (3, 2)]
POOL_PADDINGS = [0, 1, "same", "valid", (2, 1)]


def _draw(rng, make, shape):
    """The first of up to 100 drawn layers that fits ``shape`` and leaves a map >= 1x1."""
    for _ in range(100):
        try:
            layer = make()
            out = layer.output_shape(shape)
        except ValueError:
            continue
        if min(out[:2]) >= 1:
            return layer, out
    raise AssertionError("no layer fits; widen the input sizes")


def random_model(seed, dtype=np.float32):
    """A small random CNN (conv blocks, Flatten, one or two Dense), an input and a projection.

    Non-square inputs and kernels; strides, dilations and paddings (ints, pairs, "same" with
    odd totals, "valid") vary per axis; pools may overlap or skip (stride != size).
    """
    rng = np.random.default_rng(seed)
    H, W = (int(v) for v in rng.choice(np.arange(9, 18), size=2, replace=False))
    C = int(rng.integers(1, 4))
    layers, shape = [], (H, W, C)

    def pair(lo, hi):
        return tuple(int(v) for v in rng.integers(lo, hi, size=2))

    for _ in range(int(rng.integers(1, 4))):
        conv, shape = _draw(rng, lambda c=shape[2]: tc.Conv2D(
            c, int(rng.integers(2, 6)), kernel=pair(1, 5),
            stride=tuple(int(v) for v in rng.choice([1, 1, 2], size=2)),
            padding=CONV_PADDINGS[rng.integers(len(CONV_PADDINGS))],
            dilation=tuple(int(d) for d in rng.choice([1, 1, 2], size=2))), shape)
        layers.append(conv)
        if rng.random() < 0.8:
            layers.append(tc.ReLU())
        if rng.random() < 0.6:
            pool, shape = _draw(rng, lambda: tc.MaxPool2D(
                pair(2, 4), POOL_STRIDES[rng.integers(len(POOL_STRIDES))],
                POOL_PADDINGS[rng.integers(len(POOL_PADDINGS))]), shape)
            layers.append(pool)
    layers.append(tc.Flatten())
    if rng.random() < 0.3:
        layers.append(tc.ReLU())           # a shape-keeping layer between Flatten and Dense
    n = int(np.prod(shape))
    if rng.random() < 0.5:
        hidden = int(rng.integers(3, 8))
        layers += [tc.Dense(n, hidden), tc.ReLU(), tc.Dense(hidden, int(rng.integers(2, 5)))]
    else:
        layers.append(tc.Dense(n, int(rng.integers(2, 5))))
    model = tc.Sequential(layers, (H, W, C), seed=seed).astype(dtype)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = (0.1 * rng.standard_normal(layer.params["b"].shape)).astype(dtype)
    x = rng.standard_normal((3, H, W, C)).astype(dtype)
    r = rng.standard_normal((3, *model.output_shapes[-1])).astype(dtype)
    return model, x, r


def assert_close(actual, expected, rel):
    """``|actual - expected| <= rel * (|expected| + max |expected|)`` elementwise."""
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=rel * scale)


def torch_outputs(module, x_nhwc):
    """Run ``module`` on ``x_nhwc`` one child at a time -> ``{module name: output}``."""
    h, outs = torch.from_numpy(nhwc_to_nchw(x_nhwc)), {}
    with torch.no_grad():
        for name, child in module.named_children():
            h = child(h)
            outs[name] = h.numpy()
    return outs


def assert_layers_match(model, module, x, rel):
    """Every ``y_(l)`` of ``model`` equals the torch module named after layer ``l``."""
    ys, outs = model.activations(x), torch_outputs(module, x)
    perm = None  # flattened maps are in torch's (C, H, W) order until a Dense consumes them
    for l, layer in enumerate(model.layers, 1):  # noqa: E741
        if isinstance(layer, tc.Flatten) and len(model.output_shapes[l - 1]) == 3:
            perm = flatten_permutation(model.output_shapes[l - 1])
        elif isinstance(layer, tc.Dense):
            perm = None
        got, want = outs[layer.name], ys[l]
        if got.ndim == 4:
            got = nchw_to_nhwc(got)
        elif perm is not None:
            want = want[:, perm]
        assert got.dtype == want.dtype
        assert_close(got, want, rel)


# --------------------------------------------------------------------------- to_torch


@pytest.mark.parametrize("seed", SEEDS)
def test_every_layer_matches_torch(seed):
    model, x, _ = random_model(seed)
    assert_layers_match(model, to_torch(model), x, rel=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_input_gradient_matches_torch(seed):
    model, x, r = random_model(seed)
    module = to_torch(model)
    model.forward(x)
    dx = model.backward(r)                     # d (r . y_(L)) / d x
    xt = torch.from_numpy(nhwc_to_nchw(x)).requires_grad_()
    (module(xt) * torch.from_numpy(r)).sum().backward()
    assert np.abs(dx).max() > 0
    assert_close(nchw_to_nhwc(xt.grad.numpy()), dx, rel=1e-5)


def test_random_models_cover_every_branch():
    """The random models above reach every conversion path (no untested branch)."""
    seen = set()
    for seed in SEEDS:
        model, _, _ = random_model(seed)
        module = to_torch(model)
        for child in module.children():
            if isinstance(child, nn.ZeroPad2d):
                seen.add("conv: ZeroPad2d (odd 'same')")
            elif isinstance(child, nn.ConstantPad2d):
                seen.add("pool: ConstantPad2d(-inf)")
            elif isinstance(child, nn.Conv2d):
                pad = child.padding if isinstance(child.padding, str) else "int"
                seen.add(f"conv: padding={pad}")
                if max(child.dilation) > 1:
                    seen.add("conv: dilation > 1")
                if max(child.stride) > 1:
                    seen.add("conv: stride > 1")
                if child.kernel_size[0] != child.kernel_size[1]:
                    seen.add("conv: non-square kernel")
            elif isinstance(child, nn.MaxPool2d):
                seen.add(f"pool: torch padding {'> 0' if np.max(child.padding) else '0'}")
                if child.stride != child.kernel_size:
                    seen.add("pool: stride != size")
        kinds = [type(layer).__name__ for layer in model.layers]
        if kinds.count("Dense") == 2:
            seen.add("two Dense")
        if "Flatten" in kinds and kinds[kinds.index("Flatten") + 1] == "ReLU":
            seen.add("ReLU between Flatten and Dense")
        if model.input_shape[0] != model.input_shape[1]:
            seen.add("non-square input")
    assert seen == {
        "conv: ZeroPad2d (odd 'same')", "pool: ConstantPad2d(-inf)", "conv: padding=same",
        "conv: padding=valid", "conv: padding=int", "conv: dilation > 1", "conv: stride > 1",
        "conv: non-square kernel", "pool: torch padding > 0", "pool: torch padding 0",
        "pool: stride != size", "two Dense", "ReLU between Flatten and Dense", "non-square input"}


def test_float64_model_gives_float64_torch_module():
    model, x, r = random_model(3, dtype=np.float64)
    module = to_torch(model)
    assert {p.dtype for p in module.parameters()} == {torch.float64}
    assert_layers_match(model, module, x, rel=1e-12)
    xt = torch.from_numpy(nhwc_to_nchw(x)).requires_grad_()
    (module(xt) * torch.from_numpy(r)).sum().backward()
    model.forward(x)
    assert_close(nchw_to_nhwc(xt.grad.numpy()), model.backward(r), rel=1e-12)


def test_weights_are_copied_exactly_and_module_is_in_eval_mode():
    model, _, _ = random_model(5)
    module = tc.to_torch(model)                # the public name of interop.to_torch
    assert not module.training and not any(m.training for m in module.modules())
    conv, dense = model.layers[0], model.layers[-1]
    np.testing.assert_array_equal(
        getattr(module, conv.name).weight.detach().numpy(), conv.params["W"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(getattr(module, dense.name).bias.detach().numpy(),
                                  dense.params["b"])


def test_flatten_permutation_maps_torch_order_to_ours():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))     # (N, H, W, C), non-square
    torch_flat = nn.Flatten()(torch.from_numpy(nhwc_to_nchw(x))).numpy()
    np.testing.assert_array_equal(torch_flat, x.reshape(2, -1)[:, flatten_permutation((3, 5, 4))])


def test_module_names_follow_layer_names_and_stay_legal():
    model = tc.Sequential([
        tc.Conv2D(1, 2, kernel=2, padding="same", name="conv.a"),   # odd total: a pad module
        tc.ReLU(name="eval"),                   # an nn.Module attribute: must not shadow it
        tc.MaxPool2D(2, padding="same", name="conv.a_pad"),         # clashes with the pad name
        tc.Flatten(name="flat"), tc.Dense(2 * 3 * 2, 3, name="out"),
    ], input_shape=(3, 5, 1), seed=0)
    module = to_torch(model)
    assert list(module._modules) == ["conv_a_pad_", "conv_a", "eval_", "conv_a_pad_pad",
                                     "conv_a_pad", "flat", "out"]
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 1)).astype(np.float32)
    assert_close(module(torch.from_numpy(nhwc_to_nchw(x))).detach().numpy(), model(x), 1e-5)


def test_one_wide_kernel_drops_its_meaningless_dilation():
    """Dilation along a 1-wide kernel changes nothing; torch 2.13 can crash on it (oneDNN,
    channels-last, width-1 input, stride 2), so to_torch writes dilation 1 there."""
    model = tc.Sequential([
        tc.Conv2D(1, 3, kernel=(2, 1), stride=(1, 2), padding=1, dilation=(2, 2)),
        tc.Flatten(), tc.Dense(3 * 3 * 2, 2),
    ], input_shape=(3, 2, 1), seed=0)
    module = to_torch(model)
    assert module.conv1.dilation == (2, 1)
    x = np.random.default_rng(2).standard_normal((2, 3, 2, 1)).astype(np.float32)
    assert_layers_match(model, module, x, rel=1e-5)


def test_to_torch_is_public_beside_from_torch_and_not_a_model_method():
    # the engine must not import interop (that would be the cycle model -> interop -> model)
    assert tc.to_torch is to_torch and tc.from_torch is from_torch
    assert not hasattr(tc.Sequential, "to_torch")


def test_to_torch_rejects_non_models():
    with pytest.raises(TypeError, match="model: expected a tinyconv Sequential"):
        to_torch(nn.Sequential())


def test_missing_torch_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)       # `import torch` now fails
    model, _, _ = random_model(0)
    with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
        to_torch(model)
    with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
        from_torch(None, (4, 4, 1))


# --------------------------------------------------------------------------- round trip


def _windows(geometry):
    """(kernel, stride, pad_before, dilation) per axis, dilation 1 where the kernel is 1 wide
    (to_torch drops that dilation; see test_one_wide_kernel_drops_its_meaningless_dilation)."""
    if geometry is None:                   # Flatten mixes all positions
        return None
    return tuple((k, s, p, d if k > 1 else 1) for k, s, p, d in geometry)


@pytest.mark.parametrize("seed", SEEDS)
def test_round_trip_is_exact(seed):
    model, x, _ = random_model(seed)
    back = from_torch(to_torch(model), model.input_shape)
    assert back.names == model.names and back.output_shapes == model.output_shapes
    for l, (a, b) in enumerate(zip(model.layers, back.layers, strict=True), 1):  # noqa: E741
        assert type(a) is type(b)
        assert a.params.keys() == b.params.keys()
        for key in a.params:
            assert a.params[key].dtype == b.params[key].dtype
            np.testing.assert_array_equal(a.params[key], b.params[key])
        in_shape = model.output_shapes[l - 1]
        if len(in_shape) == 3:  # same windows (padding may be spelled differently)
            assert _windows(a.geometry(in_shape)) == _windows(b.geometry(in_shape))
            if hasattr(a, "pads"):
                assert a.pads(*in_shape[:2]) == b.pads(*in_shape[:2])
    np.testing.assert_array_equal(back(x), model(x))


def test_round_trip_keeps_same_padding_and_float64():
    model = tc.Sequential([
        tc.Conv2D(2, 3, kernel=(3, 4), padding="same"),     # odd total along W: ZeroPad2d
        tc.ReLU(), tc.Conv2D(3, 3, kernel=3, padding="same"),   # torch's own padding="same"
        tc.MaxPool2D(3, stride=2, padding="same"), tc.Flatten(), tc.Dense(4 * 3 * 3, 2),
    ], input_shape=(7, 6, 2), seed=1).astype(np.float64)
    back = from_torch(to_torch(model), model.input_shape)
    assert back.dtype == np.float64
    assert [layer.config() for layer in back.layers] == [
        layer.config() for layer in model.layers]


# --------------------------------------------------------------------------- from_torch


def test_hand_built_torch_model():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(4 * 5 * 3, 3)).eval()
    model = from_torch(module, (10, 6, 1))
    assert model.names == ["input", "conv1", "relu1", "pool1", "flatten1", "dense1"]
    assert model.layers[0].padding == (1, 1) and model.dtype == np.float32
    x = np.random.default_rng(0).standard_normal((4, 10, 6, 1)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(nhwc_to_nchw(x))).numpy()
    assert_close(model(x), want, rel=1e-5)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_torch_model_with_padding_modules_bias_free_layers_and_float64():
    torch.manual_seed(1)
    module = nn.Sequential(OrderedDict([
        ("pad", nn.ZeroPad2d((1, 2, 0, 1))),         # TF "same" for this input: folded
        ("c1", nn.Conv2d(2, 3, (2, 4), bias=False)),
        ("c2", nn.Conv2d(3, 4, (2, 3), padding="same")),   # torch's own, asymmetric along H
        ("ninf", nn.ConstantPad2d(2, float("-inf"))),      # more than half a window
        ("pool", nn.MaxPool2d(3, stride=(2, 1))),
        ("flat", nn.Flatten()), ("act", nn.ReLU()),
        ("fc", nn.Linear(4 * 4 * 9, 3, bias=False)),
    ])).double().eval()
    model = from_torch(module, (5, 7, 2))
    assert model.names == ["input", "c1", "c2", "pool", "flat", "act", "fc"]
    assert [getattr(layer, "padding", None) for layer in model.layers[:3]] == [
        ("same", "same"), ("same", "same"), (2, 2)]
    assert model.layers[0].bias is False and model.dtype == np.float64
    np.testing.assert_array_equal(model.layers[-1].params["b"], np.zeros(3))
    x = np.random.default_rng(3).standard_normal((2, 5, 7, 2))
    with torch.no_grad():
        want = module(torch.from_numpy(nhwc_to_nchw(x))).numpy()
    assert_close(model(x), want, rel=1e-12)


def _bad(*modules):
    return nn.Sequential(*modules)


@pytest.mark.parametrize("module, match", [
    (_bad(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)),
     r"module '1' \(BatchNorm2d\) is not supported"),
    (_bad(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU())),
     r"module '1' \(Sequential\) is not supported"),
    (_bad(nn.Conv2d(1, 2, 3), nn.LeakyReLU()), r"module '1' \(LeakyReLU\) is not supported"),
    (_bad(nn.Conv2d(2, 4, 3, groups=2)), r"module '0' \(Conv2d\): groups=2"),
    (_bad(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")),
     r"module '0' \(Conv2d\): padding_mode='reflect'"),
    (_bad(nn.MaxPool2d(2, ceil_mode=True)), r"module '0' \(MaxPool2d\): ceil_mode=True"),
    (_bad(nn.MaxPool2d(2, dilation=2)), r"module '0' \(MaxPool2d\): dilation=2"),
    (_bad(nn.MaxPool2d(2, return_indices=True)), r"module '0' \(MaxPool2d\): return_indices"),
    (_bad(nn.Flatten(start_dim=2)), r"module '0' \(Flatten\): start_dim=2"),
    (_bad(nn.ZeroPad2d((2, 0, 0, 0)), nn.Conv2d(1, 2, 3)),
     r"module '0' \(ZeroPad2d\) then module '1' \(Conv2d\): padding .* neither symmetric"),
    (_bad(nn.ZeroPad2d(1), nn.MaxPool2d(2)),
     r"module '0' \(ZeroPad2d\): pads with 0.0 before module '1' \(MaxPool2d\)"),
    (_bad(nn.ConstantPad2d(1, float("-inf")), nn.Conv2d(1, 2, 3)),
     r"module '0' \(ConstantPad2d\): pads with -inf before module '1' \(Conv2d\)"),
    (_bad(nn.ZeroPad2d(1), nn.ReLU()), r"module '0' \(ZeroPad2d\): a padding module must be"),
    (_bad(nn.Conv2d(1, 2, 3), nn.ZeroPad2d(1)), r"module '1' \(ZeroPad2d\): .* last module"),
    (_bad(nn.ZeroPad2d(-1), nn.Conv2d(1, 2, 3)), r"module '0' \(ZeroPad2d\): negative"),
    (_bad(nn.ConstantPad2d(2, float("-inf")), nn.MaxPool2d(2)),
     r"module '1' \(MaxPool2d\): padding: must be smaller than the window"),
    (_bad(nn.Conv2d(3, 2, 3)), r"module '0' \(Conv2d\): expects 3 input channels"),
    (_bad(nn.Conv2d(1, 2, 9)), r"module '0': kernel extent 9 is larger"),
    (_bad(nn.Flatten(), nn.Linear(10, 2)), r"module '1' \(Linear\): in_features is 10"),
    (_bad(nn.Conv2d(1, 2, 3).half()), r"module: expected float32 or float64"),
    (_bad(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 1).double()), r"module: parameters mix dtypes"),
    (_bad(), r"module: expected at least one layer"),
])
def test_unsupported_modules_are_named(module, match):
    with pytest.raises(ValueError, match=match):
        from_torch(module, (6, 5, 1))


def test_from_torch_checks_its_arguments():
    with pytest.raises(TypeError, match="module: expected a torch.nn.Sequential"):
        from_torch(nn.Conv2d(1, 2, 3), (6, 5, 1))
    with pytest.raises(ValueError, match=r"input_shape: expected \(H, W, C\)"):
        from_torch(nn.Sequential(nn.ReLU()), (6, 5))
    with pytest.raises(ValueError, match="input_shape: expected an int >= 1"):
        from_torch(nn.Sequential(nn.ReLU()), (6, 0, 1))


# --------------------------------------------------------------------------- layout helpers


def test_layout_helpers_are_inverse_transposes():
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)     # (N, H, W, C)
    y = nhwc_to_nchw(x)
    assert y.shape == (2, 4, 3, 5) and y.flags.c_contiguous
    assert y[1, 3, 2, 4] == x[1, 2, 4, 3]
    np.testing.assert_array_equal(nchw_to_nhwc(y), x)
    with pytest.raises(ValueError, match="x: expected a 4-dimensional array"):
        nhwc_to_nchw(x[0])
    with pytest.raises(ValueError, match="x: expected a 4-dimensional array"):
        nchw_to_nhwc(x[0])
