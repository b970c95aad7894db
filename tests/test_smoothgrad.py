"""SmoothGrad (Smilkov et al. 2017): the mean (square, variance) of a map over noisy copies."""

import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc


@pytest.fixture
def model():
    return small_cnn()


def per_copy(model, x, target, noise, base):
    """The base map at each noisy copy, one at a time: (n, N, H, W, C)."""
    maps = []
    for e in noise:
        xe = x + e
        if base == "gradient":
            maps.append(tc.project(model, xe, "logits", target, rule="gradient"))
        elif base == "guided":
            maps.append(tc.project(model, xe, "logits", target, rule="guided"))
        else:
            maps.append(tc.input_x_gradient(model, xe, target))
    return np.stack(maps)


@pytest.mark.parametrize("base", ["gradient", "input_x_gradient", "guided"])
@pytest.mark.parametrize("kind", ["mean", "square", "var"])
def test_the_kinds_and_bases_are_their_definitions(model, base, kind):
    x = random_input(model, 3)
    noise = 0.2 * np.random.default_rng(5).standard_normal((7, *x.shape))
    maps = per_copy(model, x, 1, noise, base)
    expected = {"mean": maps.mean(0), "square": (maps ** 2).mean(0), "var": maps.var(0)}[kind]
    ours = tc.smoothgrad(model, x, 1, n=7, kind=kind, base=base, noise=noise, batch_size=4)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


def test_does_not_depend_on_batch_size_and_is_seeded(model):
    x = random_input(model, 3)
    a = tc.smoothgrad(model, x, 2, n=5, batch_size=1, seed=3)
    np.testing.assert_allclose(tc.smoothgrad(model, x, 2, n=5, batch_size=64, seed=3), a,
                               rtol=1e-12, atol=1e-14)
    assert not np.allclose(tc.smoothgrad(model, x, 2, n=5, seed=4), a)


def test_sigma_is_a_fraction_of_each_examples_range(model):
    # with seed=s the noise is sigma (max x - min x) times default_rng(s).standard_normal
    x = random_input(model, 1)
    noise = np.random.default_rng(0).standard_normal((4, *x.shape))
    rng_range = x.max() - x.min()
    ours = tc.smoothgrad(model, x, 0, sigma=0.1, n=4, seed=0)
    expected = tc.smoothgrad(model, x, 0, n=4, noise=0.1 * rng_range * noise)
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    assert not np.allclose(tc.smoothgrad(model, x, 0, sigma=0.1, n=4, seed=0),
                           tc.smoothgrad(model, x, 0, n=4, noise=0.1 * noise))


def test_zero_noise_gives_the_plain_gradient(model):
    x = random_input(model, 2)
    ours = tc.smoothgrad(model, x, 3, n=2, noise=np.zeros((2, *x.shape)))
    np.testing.assert_allclose(ours, tc.project(model, x, "logits", 3, rule="gradient"))


@pytest.mark.parametrize("kwargs, name, error", [
    ({"sigma": 0.0}, "sigma", ValueError), ({"sigma": -0.1}, "sigma", ValueError),
    ({"sigma": "big"}, "sigma", TypeError), ({"n": 0}, "n", ValueError),
    ({"n": -3}, "n", ValueError), ({"kind": "median"}, "kind", ValueError),
    ({"base": "deconvnet"}, "base", ValueError), ({"target": 9}, "target", ValueError),
    ({"noise": np.zeros((3, 1, 11, 9, 2))}, "noise", ValueError),
    ({"n": 2, "noise": np.zeros((3, 2, 11, 9, 2))}, "noise", ValueError),
    ({"batch_size": 0}, "batch_size", ValueError),
])
def test_bad_arguments_are_named(model, kwargs, name, error):
    with pytest.raises(error, match=name):
        tc.smoothgrad(model, random_input(model, 2), **{"n": 3, **kwargs})
