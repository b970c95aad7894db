import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc


def unit_value(model, x, layer, k, row, col):
    return model.forward(x, upto=layer)[:, row, col, k]


@pytest.mark.parametrize("rule", ["gradient", "deconvnet", "guided"])
def test_projection_of_an_interior_unit_is_zero_outside_its_box(rule):
    model = small_cnn(seed=1, input_shape=(15, 13, 2))
    x = random_input(model, 3, seed=2)
    l = model.index("relu2")
    rf = tc.receptive_field(model, l)
    H_l, W_l, _ = model.output_shapes[l]
    row, col = H_l // 2, W_l // 2
    r0, r1, c0, c1 = rf.box(row, col)
    assert rf.box(row, col, clip=False) == (r0, r1, c0, c1)      # interior
    p = tc.project(model, x, l, 3, idx=(row, col), rule=rule)
    outside = np.ones(p.shape[1:3], bool)
    outside[r0:r1, c0:c1] = False
    assert p.shape == x.shape
    assert np.all(p[:, outside] == 0)


def test_gradient_rule_equals_finite_differences_of_the_unit():
    model = small_cnn(seed=3)
    x = random_input(model, 2, seed=4)
    l, k, row, col = model.index("conv2"), 2, 1, 1
    g = tc.project(model, x, l, k, idx=(row, col), rule="gradient")
    h, num = 1e-6, np.zeros_like(x)
    for ix in np.ndindex(x.shape[1:]):
        xp, xm = x.copy(), x.copy()
        xp[(slice(None), *ix)] += h
        xm[(slice(None), *ix)] -= h
        num[(slice(None), *ix)] = (unit_value(model, xp, l, k, row, col)
                                   - unit_value(model, xm, l, k, row, col)) / (2 * h)
    err = np.abs(g - num).max() / max(np.abs(num).max(), 1e-8)
    assert err < 1e-6


def test_idx_none_takes_each_examples_strongest_location():
    model = small_cnn(seed=5)
    x = random_input(model, 4, seed=6)
    y = model.forward(x, upto="relu1")
    best = [np.unravel_index(y[i, ..., 2].argmax(), y.shape[1:3]) for i in range(4)]
    auto = tc.project(model, x, "relu1", 2, rule="guided")
    for i, (r, c) in enumerate(best):
        one = tc.project(model, x[i:i + 1], "relu1", 2, idx=(int(r), int(c)), rule="guided")
        np.testing.assert_array_equal(auto[i:i + 1], one)


def test_rules_agree_without_relu_and_differ_with_it():
    lin = tc.Sequential([tc.Conv2D(1, 3, 3, padding=1), tc.MaxPool2D(2),
                         tc.Conv2D(3, 2, 2)], input_shape=(8, 8, 1), seed=0).astype(np.float64)
    x = random_input(lin, 2)
    maps = [tc.project(lin, x, 3, 1, idx=(1, 1), rule=r) for r in ("gradient", "deconvnet",
                                                                     "guided")]
    np.testing.assert_array_equal(maps[0], maps[1])
    np.testing.assert_array_equal(maps[0], maps[2])
    model = small_cnn(seed=7)
    x = random_input(model, 2)
    g, d = (tc.project(model, x, "relu2", 0, rule=r) for r in ("gradient", "deconvnet"))
    assert not np.allclose(g, d)


def test_dense_layers_are_seeded_without_a_location():
    model = small_cnn(seed=8)
    x = random_input(model, 3)
    g = tc.project(model, x, "logits", 1, rule="gradient")
    s = tc.saliency(model, x, target=1)
    np.testing.assert_allclose(s, np.abs(g).max(axis=-1))
    with pytest.raises(ValueError, match="idx: .*no spatial"):
        tc.project(model, x, "logits", 1, idx=(0, 0))


def test_saliency_defaults_to_the_predicted_class():
    model = small_cnn(seed=9)
    x = random_input(model, 3)
    pred = model(x).argmax(axis=1)
    np.testing.assert_array_equal(tc.saliency(model, x), tc.saliency(model, x, target=pred))
    assert tc.saliency(model, x).shape == (3, *model.input_shape[:2])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(layer=99, k=0), ValueError, "layer"),
    (dict(layer="nope", k=0), ValueError, "layer"),
    (dict(layer="conv1", k=5), ValueError, "k"),
    (dict(layer="conv1", k=-1), ValueError, "k"),
    (dict(layer="conv1", k=1.0), TypeError, "k"),
    (dict(layer="conv1", k=0, idx=(11, 0)), ValueError, "idx"),
    (dict(layer="conv1", k=0, idx=(0, -1)), ValueError, "idx"),
    (dict(layer="conv1", k=0, idx=(0.5, 1)), ValueError, "idx"),
    (dict(layer="conv1", k=0, rule="backprop"), ValueError, "rule"),
    (dict(layer=0, k=0), ValueError, "layer"),
])
def test_bad_arguments_name_themselves(kwargs, error, match):
    model = small_cnn()
    with pytest.raises(error, match=match):
        tc.project(model, random_input(model, 2), **kwargs)


def test_saliency_rejects_out_of_range_targets():
    model = small_cnn()
    with pytest.raises(ValueError, match="target"):
        tc.saliency(model, random_input(model, 2), target=4)
    with pytest.raises(ValueError, match="target"):
        tc.saliency(model, random_input(model, 2), target=np.array([0, 1, 2]))
