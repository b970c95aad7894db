"""Integrated Gradients (Sundararajan et al. 2017): Riemann rules, completeness, bad input."""

import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv.integrated_gradients import riemann_nodes


@pytest.fixture
def model():
    return small_cnn()


@pytest.mark.parametrize("method", ["trapezoid", "left", "right", "middle"])
def test_every_rule_integrates_a_linear_model_exactly(method):
    # F linear along the path: any rule whose weights sum to 1 closes the gap
    model = tc.Sequential([tc.Flatten(), tc.Dense(12, 3)], (2, 3, 2), seed=0).astype(np.float64)
    x = random_input(model, 4)
    r = tc.integrated_gradients(model, x, 1, baseline=0.5, steps=3, method=method)
    np.testing.assert_allclose(r.gap, 0, atol=1e-12)
    np.testing.assert_allclose(r.attributions.reshape(4, -1),
                               (x - 0.5).reshape(4, -1) * model.layers[1].params["W"][:, 1],
                               rtol=1e-12)


def test_the_nodes_and_weights():
    np.testing.assert_allclose(riemann_nodes(4, "left")[0], [0, .25, .5, .75])
    np.testing.assert_allclose(riemann_nodes(4, "right")[0], [.25, .5, .75, 1])
    np.testing.assert_allclose(riemann_nodes(4, "middle")[0], [.125, .375, .625, .875])
    alphas, weights = riemann_nodes(4, "trapezoid")
    np.testing.assert_allclose(alphas, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(weights, [1 / 6, 1 / 3, 1 / 3, 1 / 6])


def test_is_a_riemann_sum_of_centred_difference_gradients(model):
    x = random_input(model, 2)
    base = random_input(model, 1, seed=1)[0]
    alphas, weights = riemann_nodes(5, "middle")
    expected = np.zeros_like(x)
    for a, w in zip(alphas, weights, strict=True):
        expected += w * tc.project(model, base + a * (x - base), "logits", 2, rule="gradient")
    r = tc.integrated_gradients(model, x, 2, baseline=base, steps=5, method="middle")
    np.testing.assert_allclose(r.attributions, (x - base) * expected, rtol=1e-10, atol=1e-14)
    logits = model.forward(x)[:, 2] - model.forward(np.broadcast_to(base, x.shape))[:, 2]
    np.testing.assert_allclose(r.difference, logits, rtol=1e-12)


def test_the_gap_shrinks_with_steps_and_does_not_depend_on_batch_size(model):
    x = random_input(model, 3)
    coarse = tc.integrated_gradients(model, x, 0, steps=2)
    fine = tc.integrated_gradients(model, x, 0, steps=200, batch_size=37)
    assert np.abs(fine.gap).max() < np.abs(coarse.gap).max()
    np.testing.assert_allclose(tc.integrated_gradients(model, x, 0, steps=200, batch_size=600)
                               .attributions, fine.attributions, rtol=1e-10, atol=1e-14)


def test_completeness_on_the_shipped_model():
    model = tc.pretrained("mnist")
    images, _ = tc.load_mnist("bundled-test")
    X = tc.to_float(images[:100])
    r = tc.integrated_gradients(model, X, baseline=0.0, steps=64, method="trapezoid",
                                batch_size=256)
    relative = np.abs(r.gap) / np.abs(r.difference)
    assert (relative <= 0.01).mean() >= 0.95
    # negative control: Captum's trapezoid weights (1/m) leave a gap of about 1/64 = 1.6 %
    total = r.attributions.reshape(len(X), -1).sum(1, dtype=np.float64)
    assert (np.abs(total * 63 / 64 - r.difference) / np.abs(r.difference) <= 0.01).mean() < 0.5


@pytest.mark.parametrize("kwargs, name, error", [
    ({"steps": 0}, "steps", ValueError), ({"steps": -5}, "steps", ValueError),
    ({"steps": 1}, "steps", ValueError), ({"steps": 2.5}, "steps", TypeError),
    ({"method": "gausslegendre"}, "method", ValueError),
    ({"baseline": np.zeros((11, 9, 1))}, "baseline", ValueError),
    ({"baseline": np.zeros((3, 11, 9, 2))}, "baseline", ValueError),
    ({"baseline": np.nan}, "baseline", ValueError), ({"baseline": "black"}, "baseline", TypeError),
    ({"target": 4}, "target", ValueError), ({"batch_size": 0}, "batch_size", ValueError),
])
def test_bad_arguments_are_named(model, kwargs, name, error):
    with pytest.raises(error, match=name):
        tc.integrated_gradients(model, random_input(model, 2), **kwargs)


def test_one_step_is_enough_for_the_other_rules(model):
    r = tc.integrated_gradients(model, random_input(model, 2), 1, steps=1, method="right")
    assert r.attributions.shape == (2, 11, 9, 2) and r.gap.shape == (2,)
