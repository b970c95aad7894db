"""Sequential: construction checks, names and indices, activations, backward from any layer."""

import numpy as np
import pytest

import tinyconv as tc


def small_model(seed=0):
    return tc.Sequential([
        tc.Conv2D(2, 4, (3, 2), padding="same"), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(4, 3, 2, stride=(1, 2), name="top"), tc.ReLU(),
        tc.Flatten(), tc.Dense(3 * 2 * 3, 5, name="logits"),
    ], input_shape=(8, 10, 2), seed=seed)


@pytest.fixture
def model():
    return small_model()


# --------------------------------------------------------------------------- structure


def test_names_indices_and_shapes(model):
    assert model.names == ["input", "conv1", "relu1", "pool1", "top", "relu2", "flatten1",
                           "logits"]
    assert len(model) == 7
    assert model.index("input") == 0 and model.index("top") == 4 and model.index(-1) == 7
    assert model.index(np.int64(3)) == 3 and model.index(-8) == 0
    assert model.output_shapes == [(8, 10, 2), (8, 10, 4), (8, 10, 4), (4, 5, 4), (3, 2, 3),
                                   (3, 2, 3), (18,), (5,)]
    assert model.spatial("pool1") and not model.spatial("logits")
    summary = model.summary()
    assert "logits" in summary and "(3, 2, 3)" in summary
    counts = [model.n_parameters(l) for l in range(len(model) + 1)]
    assert counts[0] == 0 and counts[2] == 0 and counts[1] == 3 * 2 * 2 * 4 + 4
    assert model.n_parameters() == sum(counts) == sum(
        layer.params[key].size for layer, key in model.parameters())
    assert summary.splitlines()[-1].split()[-1] == str(counts[-1])
    assert "Conv2D" in repr(model)


def test_activations_match_output_shapes_and_forward(model, rng):
    x = rng.standard_normal((3, 8, 10, 2)).astype(np.float32)
    ys = model.activations(x)
    assert len(ys) == len(model) + 1
    np.testing.assert_array_equal(ys[0], x)
    assert [y.shape[1:] for y in ys] == model.output_shapes
    np.testing.assert_array_equal(model(x), ys[-1])
    np.testing.assert_array_equal(model.forward(x, upto="pool1"), ys[3])
    assert len(model.activations(x, upto=2)) == 3


def test_steps_pair_each_relu_with_the_pool_above_it_and_add_up_to_forward(model, rng):
    # conv1, relu1 + pool1, top, relu2 (no pool above it), flatten1, logits
    assert model.steps() == [(0, 1), (1, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
    # a pass that stops at y_(relu1) runs the ReLU alone; one from there starts at the pool
    assert model.steps(upto="relu1") == [(0, 1), (1, 2)]
    assert model.steps(start="relu1", upto="pool1") == [(2, 3)]
    assert model.steps(start="conv1", upto="pool1") == [(1, 3)]
    assert model.steps(start="pool1") == [(3, 4), (4, 5), (5, 6), (6, 7)]
    assert model.steps(start=2, upto=2) == []
    with pytest.raises(ValueError, match=r"^start: expected a layer at or below upto \(2\)"):
        model.steps(start="top", upto="relu1")
    x = rng.standard_normal((3, 8, 10, 2)).astype(np.float32)
    y = x
    for a, b in model.steps():
        y = model.forward(y, start=a, upto=b)
    np.testing.assert_array_equal(y, model(x))          # step by step = one pass, bit for bit


def test_same_seed_same_parameters():
    a, b, c = small_model(7), small_model(7), small_model(8)
    for (la, key), (lb, _), (lc, _) in zip(a.parameters(), b.parameters(), c.parameters(),
                                            strict=True):
        np.testing.assert_array_equal(la.params[key], lb.params[key])
        assert la.params[key].dtype == np.float32
        if key == "W":
            assert not np.array_equal(la.params[key], lc.params[key])


def test_astype_float64_and_input_cast(model, rng):
    x = rng.standard_normal((2, 8, 10, 2))
    assert model.dtype == np.float32 and model(x).dtype == np.float32
    model.astype(np.float64)
    assert model.dtype == np.float64 and model(x.astype(np.float32)).dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        model.astype(np.int32)


# --------------------------------------------------------------------------- backward


def test_backward_is_the_chain_of_layer_backwards(model, rng):
    model.astype(np.float64)
    x = rng.standard_normal((2, 8, 10, 2))
    for rule in ("gradient", "deconvnet", "guided"):
        for start in (7, "top", 2, 1):
            l = model.index(start)
            ys = model.activations(x)
            dy = rng.standard_normal(ys[l].shape)
            got = model.backward(dy, rule=rule, start=start)
            want = dy
            for layer in reversed(model.layers[:l]):
                want = layer.backward(want, rule=rule)
            np.testing.assert_array_equal(got, want)
            assert got.shape == x.shape
    ys = model.activations(x)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(model.backward(dy, start=0), dy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_runs_a_relu_and_the_pool_above_it_as_one_pass(model, rng, monkeypatch, dtype):
    # forward() hands relu1's input to pool1 (rectify=True) instead of writing relu1's output;
    # activations() runs every layer alone. The two must agree bit for bit, switches too (a
    # window of negatives only ties at 0), and so must every rule's backward after them.
    model.astype(dtype)
    x = rng.standard_normal((3, 8, 10, 2)).astype(dtype)
    relu, pool = model.layers[1], model.layers[2]
    rectified, relu_calls = [], []
    pool_forward, relu_forward = pool.forward, relu.forward
    monkeypatch.setattr(pool, "forward", lambda y, check=True, rectify=False: (
        rectified.append(rectify), pool_forward(y, check, rectify))[1])
    monkeypatch.setattr(relu, "forward", lambda y, check=True: (
        relu_calls.append(1), relu_forward(y, check))[1])
    ys = model.activations(x)
    switches = pool.switches
    assert rectified == [False] and len(relu_calls) == 1
    for rule in ("gradient", "deconvnet", "guided"):
        dy = rng.standard_normal(ys[-1].shape).astype(dtype)
        model.activations(x)
        want = model.backward(dy, rule=rule)
        y = model.forward(x)
        np.testing.assert_array_equal(y, ys[-1])
        np.testing.assert_array_equal(pool.switches, switches)
        np.testing.assert_array_equal(model.backward(dy, rule=rule), want)
    assert rectified[1:] == [False, True] * 3 and len(relu_calls) == 4   # fused in forward()
    # a forward that stops at the ReLU, or starts at the pool, has nothing to fuse
    np.testing.assert_array_equal(model.forward(x, upto=2), ys[2])
    np.testing.assert_array_equal(model.forward(ys[2], start=2, upto=3), ys[3])
    assert rectified[-1] is False


def test_subclasses_with_passes_of_their_own_run_alone(rng):
    # a ReLU or pool subclass that defines its own forward or backward is not promised to be
    # max(x, 0) or to take rectify= / overwrite=: the model runs it as it is, unless the
    # subclass declares the fusion itself
    class ReLU6(tc.ReLU):
        def forward(self, x, check=True):
            self.keep(x)
            return np.minimum(np.maximum(x, 0), 6)

    class Logging(tc.ReLU):
        def backward(self, dy, rule="gradient", check=True):
            return super().backward(dy, rule, check)

    class LoggingPool(tc.MaxPool2D):
        def forward(self, x, check=True):
            return super().forward(x, check)

    class Declared(tc.ReLU):
        rectifier = True

        def keep(self, x):
            super().keep(x)

    assert not ReLU6.rectifier and not Logging.rectifier and Declared.rectifier
    assert not LoggingPool.takes_rectifier and tc.MaxPool2D.takes_rectifier
    x = 10 * rng.standard_normal((2, 4, 4, 1)).astype(np.float32)
    for relu, pool in [(ReLU6(), tc.MaxPool2D(2)), (Logging(), tc.MaxPool2D(2)),
                       (tc.ReLU(), LoggingPool(2)), (Declared(), tc.MaxPool2D(2))]:
        model = tc.Sequential([tc.Conv2D(1, 2, 3, padding="same", rng=0), relu, pool],
                              input_shape=(4, 4, 1))
        y = model.forward(x)
        np.testing.assert_array_equal(y, model.activations(x)[-1])
        dy = rng.standard_normal(y.shape).astype(np.float32)
        np.testing.assert_array_equal(model.backward(dy), model.backward(dy))


def test_a_relu_below_a_pool_masks_the_pools_new_array_in_place(model, rng, monkeypatch):
    # backward() lets relu1 write into the array that pool1's backward just made; the result
    # is the chain of the layers' own backwards (test above), and no array of the caller's is
    # ever written: not dy at the top, not one that starts at the ReLU or the pool
    relu, pool = model.layers[1], model.layers[2]
    made, returned = [], []
    pool_backward, relu_backward = pool.backward, relu.backward
    monkeypatch.setattr(pool, "backward", lambda *a, **k: (
        made.append(pool_backward(*a, **k)), made[-1])[1])
    monkeypatch.setattr(relu, "backward", lambda *a, **k: (
        returned.append(relu_backward(*a, **k)), returned[-1])[1])
    x = rng.standard_normal((2, 8, 10, 2)).astype(np.float32)
    ys = model.activations(x)
    for rule in ("gradient", "deconvnet", "guided"):
        dy = rng.standard_normal(ys[-1].shape).astype(np.float32)
        kept = dy.copy()
        model.backward(dy, rule=rule)
        np.testing.assert_array_equal(dy, kept)
        assert returned[-1] is made[-1]                 # masked in place: no new array
        for start in (2, 3):        # the caller's dy goes into relu1 (2) or into pool1 (3)
            dy = rng.standard_normal(ys[start].shape).astype(np.float32)
            kept = dy.copy()
            want = relu_backward(pool_backward(dy, rule) if start == 3 else dy.copy(), rule)
            got = model.backward(dy, rule=rule, start=start, stop=1)     # the signal at y_(1)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(dy, kept)
            assert (returned[-1] is made[-1]) == (start == 3)


def test_backward_without_input_grad_stops_at_the_lowest_parameters(model, rng):
    """Training's backward: the same parameter gradients, no dx, nothing below conv1 run."""
    model.astype(np.float64)
    x = rng.standard_normal((2, 8, 10, 2))
    dy = rng.standard_normal((2, 5))
    model.forward(x)
    dx = model.backward(dy)
    want = {(layer.name, key): layer.grads[key].copy() for layer, key in model.parameters()}
    for layer, key in model.parameters():
        layer.grads[key][...] = np.nan
    assert model.backward(dy, input_grad=False) is None
    for layer, key in model.parameters():
        np.testing.assert_array_equal(layer.grads[key], want[(layer.name, key)])
    assert dx.shape == x.shape
    # from a layer with no parameters below it there is nothing to do
    model.forward(x, upto="relu1")
    relu_only = tc.Sequential([tc.ReLU(), tc.Flatten()], input_shape=(2, 2, 1))
    relu_only.forward(np.ones((1, 2, 2, 1)))
    assert relu_only.backward(np.ones((1, 4)), input_grad=False) is None
    assert model.backward(np.ones((2, 8, 10, 4)), start="relu1", input_grad=False) is None


def test_backward_needs_a_forward_pass_that_reached_start(model, rng):
    with pytest.raises(ValueError, match="start: no forward pass"):
        model.backward(np.ones((1, 5)))
    model.forward(rng.standard_normal((1, 8, 10, 2)), upto="pool1")
    with pytest.raises(ValueError, match="start: the last forward pass stopped at layer 3"):
        model.backward(np.ones((1, 5)))
    model.backward(np.ones((1, 4, 5, 4)), start="pool1")


def test_backward_checks_dy_and_rule(model, rng):
    model.forward(rng.standard_normal((2, 8, 10, 2)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 5\)"):
        model.backward(np.ones((2, 6)))
    with pytest.raises(ValueError, match="dy: expected 2 dimensions"):
        model.backward(np.ones((2, 5, 1)))
    with pytest.raises(TypeError, match="dy"):
        model.backward(np.ones((2, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="dy: expected finite"):
        model.backward(np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match="rule"):
        model.backward(np.ones((2, 5)), rule="lrp")
    with pytest.raises(ValueError, match="layer"):
        model.backward(np.ones((2, 5)), start=9)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("make, error, match", [
    (lambda: tc.Sequential([], (4, 4, 1)), ValueError, "layers"),
    (lambda: tc.Sequential([tc.ReLU(), "relu"], (4, 4, 1)), TypeError, r"layers\[1\]"),
    (lambda: tc.Sequential([tc.ReLU(name="a"), tc.ReLU(name="a")], (4, 4, 1)), ValueError,
     "layers: names must be unique"),
    (lambda: tc.Sequential([tc.ReLU(name="input")], (4, 4, 1)), ValueError, "reserved"),
    (lambda: tc.Sequential([tc.ReLU()], (4, 4)), ValueError, "input_shape"),
    (lambda: tc.Sequential([tc.ReLU()], (4, 0, 1)), ValueError, "input_shape"),
    (lambda: tc.Sequential([tc.ReLU()], (4, 4.0, 1)), ValueError, "input_shape"),
    (lambda: tc.Sequential([tc.Conv2D(3, 2, 3)], (8, 8, 1)), ValueError,
     "conv1: in_channels is 3, but the input has 1 channels"),
    (lambda: tc.Sequential([tc.Conv2D(1, 2, (3, 9))], (8, 8, 1)), ValueError,
     "conv1: kernel extent 9 is larger than the padded input"),
    (lambda: tc.Sequential([tc.Flatten(), tc.Dense(63, 2, name="fc")], (8, 8, 1)), ValueError,
     "fc: in_features is 63, but its input has shape"),
    (lambda: tc.Sequential([tc.Conv2D(1, 2, 3), tc.Dense(72, 2)], (8, 8, 1)), ValueError,
     "in_features"),
])
def test_bad_stacks_fail_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_unknown_layer_names_and_numbers(model):
    with pytest.raises(ValueError, match="layer: expected one of .*'logits'.*got 'conv9'"):
        model.index("conv9")
    with pytest.raises(ValueError, match=r"layer: expected a number in \[0, 7\]"):
        model.index(8)
    with pytest.raises(ValueError, match="layer"):
        model.index(-9)
    with pytest.raises(TypeError, match="layer"):
        model.index(True)
    with pytest.raises(TypeError, match="layer"):
        model.index(1.0)
    with pytest.raises(ValueError, match="layer"):
        model.forward(np.zeros((1, 8, 10, 2), np.float32), upto="nope")


@pytest.mark.parametrize("x, error, match", [
    (np.zeros((8, 10, 2)), ValueError, "x: expected 4 dimensions"),
    (np.zeros((1, 8, 10, 3)), ValueError, r"x: expected examples of shape \(8, 10, 2\)"),
    (np.zeros((1, 10, 8, 2)), ValueError, r"x: expected examples of shape \(8, 10, 2\)"),
    (np.zeros((0, 8, 10, 2)), ValueError, "x: expected a non-empty array"),
    (np.full((1, 8, 10, 2), np.inf), ValueError, "x: expected finite"),
    (np.zeros((1, 8, 10, 2), np.uint8), TypeError, "x: .*tinyconv.to_float"),
    (np.zeros((1, 8, 10, 2), bool), TypeError, "x: expected a floating-point array"),
    (np.zeros((1, 8, 10, 2), complex), TypeError, "x: expected a floating-point array"),
    (np.zeros((1, 8, 10, 2), object), TypeError, "x: expected a floating-point array"),
    ([[1, [2]]], TypeError, "x: expected a floating-point array"),
])
def test_bad_input_names_x(model, x, error, match):
    with pytest.raises(error, match=match):
        model.forward(x)
    with pytest.raises(error, match=match):
        model.activations(x)


def test_views_work_like_contiguous_copies(model, rng):
    x = rng.standard_normal((4, 8, 10, 2))
    for view in (x[::-1], x[::2], x[:, ::-1, ::-1], np.asfortranarray(x)):
        copy = np.ascontiguousarray(view)
        np.testing.assert_array_equal(model(view), model(copy))
        ys = model.activations(view)
        dy = rng.standard_normal((2 * len(view), 5))[::-2]
        dx = model.backward(dy, rule="guided")
        model.activations(copy)
        np.testing.assert_array_equal(dx, model.backward(np.ascontiguousarray(dy), rule="guided"))
        np.testing.assert_array_equal(ys[-1], model(copy))


def _stop_model():
    layers = [tc.Conv2D(2, 3, 3, padding=1, name="conv1"), tc.ReLU(name="relu1"),
              tc.MaxPool2D(2, name="pool1"), tc.Conv2D(3, 4, 3, name="conv2"),
              tc.ReLU(name="relu2"), tc.Flatten(name="flatten"), tc.Dense(24, 5, name="logits")]
    return tc.Sequential(layers, (8, 10, 2), seed=4).astype(np.float64)


def test_backward_can_stop_at_a_layer_and_leave_the_parameter_gradients_alone():
    model = _stop_model()
    x = np.random.default_rng(5).standard_normal((3, 8, 10, 2))
    dy = np.random.default_rng(6).standard_normal((3, 5))
    model.forward(x)
    by_hand = dy
    for layer in reversed(model.layers[3:]):                    # down to y_(pool1)
        by_hand = layer.backward(by_hand)

    def grads():
        return [{k: v.copy() for k, v in layer.grads.items()} for layer in model.layers]

    def same(a, b):
        return all(np.array_equal(a[i][k], b[i][k]) for i in range(len(a)) for k in a[i])

    kept = grads()
    np.testing.assert_array_equal(
        model.backward(dy, stop="pool1", param_grads=False), by_hand)
    maps = {rule: model.backward(dy, rule=rule, param_grads=False)
            for rule in ("gradient", "guided")}
    assert same(grads(), kept)                                  # untouched by either rule
    for rule, dx in maps.items():                               # and the same maps of x
        np.testing.assert_array_equal(dx, model.backward(dy, rule=rule))
    assert not same(grads(), kept)                              # control: "gradient" writes them
    with pytest.raises(ValueError, match="^stop: "):
        model.backward(dy, stop="logits")


def test_forward_can_start_at_a_layer_and_backward_then_goes_down_to_it_only():
    model = _stop_model()
    x = np.random.default_rng(5).standard_normal((3, 8, 10, 2))
    ys = model.activations(x)
    dy = np.random.default_rng(6).standard_normal((3, 5))
    full = model.backward(dy, stop="pool1", param_grads=False)
    np.testing.assert_array_equal(model.forward(ys[3], start="pool1"), ys[-1])
    np.testing.assert_array_equal(model.forward(ys[3], start=3, upto="relu2"), ys[5])
    model.forward(ys[3], start="pool1")
    np.testing.assert_array_equal(model.backward(dy, stop="pool1", param_grads=False), full)
    # the caches below y_(3) are an older pass': going below it is refused, not answered
    with pytest.raises(ValueError, match="^stop: the last forward pass began at layer 3"):
        model.backward(dy, stop="relu1")
    with pytest.raises(ValueError, match="^stop: the last forward pass began at layer 3"):
        model.backward(dy)
    with pytest.raises(ValueError, match="^stop: the last forward pass began at layer 3"):
        model.backward(dy, input_grad=False)                   # conv2's dW needs no lower cache
    model.forward(ys[4], start="conv2")
    with pytest.raises(ValueError, match="began at layer 4"):
        model.backward(dy, input_grad=False)                   # the lowest parameters: conv1
    model.forward(x)                                           # a whole pass: anything goes
    np.testing.assert_array_equal(model.backward(dy, param_grads=False),
                                  model.backward(dy, rule="gradient", param_grads=False))


@pytest.mark.parametrize("start, y_shape, match", [
    ("pool1", (3, 8, 10, 3), r"^x: expected y_\(3\) of shape \(4, 5, 3\)"),
    ("flatten", (3, 2, 3, 4), r"^x: expected 2 dimensions, got shape \(3, 2, 3, 4\)"),
    ("logits", (3, 24), r"^start: expected a layer at or below upto \(6\)"),
])
def test_a_forward_from_a_layer_checks_its_input(start, y_shape, match):
    model = _stop_model()
    upto = "flatten" if start == "logits" else None
    with pytest.raises(ValueError, match=match):
        model.forward(np.zeros(y_shape), start=start, upto=upto)
