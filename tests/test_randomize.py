"""randomize: exactly the named layers re-drawn as at construction; the original untouched."""

import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv.randomize import cascade, copy_model, independent, parameter_layers, randomize


def params_of(model):
    return {(layer.name, key): value.copy() for layer in model.layers
            for key, value in layer.params.items()}


@pytest.mark.parametrize("names", [["logits"], ["conv2"], ["conv1", "logits"]])
def test_changes_exactly_the_named_layers(names):
    model = small_cnn(seed=1)
    twin = randomize(model, names, seed=3)
    for (name, key), value in params_of(model).items():
        other = twin.layers[model.index(name) - 1].params[key]
        if name in names and key == "W":
            assert not np.array_equal(value, other), (name, key)
        elif name not in names:
            assert np.array_equal(value, other) and value.dtype == other.dtype, (name, key)


def test_the_original_is_left_bit_identical_and_shares_no_array():
    model = small_cnn(seed=1)
    before = params_of(model)
    x = random_input(model, 3)
    y = model(x)
    twin = randomize(model, ["conv1", "conv2", "logits"], seed=0)
    for layer in twin.layers:
        for value in layer.params.values():
            value += 1.0                                   # writing the copy ...
    after = params_of(model)
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)     # ... changes nothing
    assert np.array_equal(model(x), y)


def test_an_empty_list_is_an_exact_copy():
    model = small_cnn(seed=2)
    x = random_input(model, 2)
    assert np.array_equal(randomize(model, [], seed=0)(x), model(x))
    assert np.array_equal(copy_model(model)(x), model(x))


def test_re_drawn_as_at_construction_and_seeded():
    model = small_cnn(seed=1)
    twin = randomize(model, ["conv2"], seed=5)
    fresh = tc.Conv2D(5, 6, 3, stride=2, padding=1, dtype=np.float64)
    fresh.init_params(np.random.default_rng([5, model.index("conv2")]))
    assert np.array_equal(twin.layers[model.index("conv2") - 1].params["W"], fresh.params["W"])
    assert not twin.layers[model.index("conv2") - 1].params["b"].any()
    again = randomize(model, ["conv2"], seed=5)
    other = randomize(model, ["conv2"], seed=6)
    W = lambda m: m.layers[model.index("conv2") - 1].params["W"]        # noqa: E731
    assert np.array_equal(W(twin), W(again))
    assert not np.array_equal(W(twin), W(other))


def test_a_layer_gets_the_same_random_weights_in_every_schedule():
    model = small_cnn(seed=1)
    alone = randomize(model, ["logits"], seed=4)
    with_more = randomize(model, ["logits", "conv2"], seed=4)
    assert np.array_equal(alone.layers[-1].params["W"], with_more.layers[-1].params["W"])


def test_cascade_goes_top_down_one_more_layer_each_step_and_independent_one_at_a_time():
    model = small_cnn(seed=1)
    assert [model.names[l] for l in parameter_layers(model)] == ["conv1", "conv2", "logits"]
    steps = cascade(model, seed=0)
    assert [name for name, _ in steps] == ["logits", "conv2", "conv1"]
    original = params_of(model)
    for i, (_, m) in enumerate(steps):
        changed = {name for (name, key), v in params_of(m).items()
                   if not np.array_equal(v, original[(name, key)])}
        assert changed == set(["logits", "conv2", "conv1"][:i + 1])
    for name, m in independent(model, seed=0):
        changed = {n for (n, key), v in params_of(m).items()
                   if not np.array_equal(v, original[(n, key)])}
        assert changed == {name}


def test_bad_layers_and_seed_name_the_argument():
    model = small_cnn(seed=1)
    with pytest.raises(ValueError, match="layers: 'relu1' has no parameters"):
        randomize(model, ["relu1"])
    with pytest.raises(ValueError, match="layers:"):
        randomize(model, ["conv9"])
    with pytest.raises(ValueError, match="layers:"):
        randomize(model, [0])
    with pytest.raises(TypeError, match="layers:"):
        randomize(model, 1.5)
    with pytest.raises(ValueError, match="seed"):
        randomize(model, ["conv1"], seed=-1)
