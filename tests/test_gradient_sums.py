"""What SmoothGrad and Integrated Gradients share: runs of copies, and the affine layers at the
bottom of a model, through which a sum of gradients goes back once."""

import importlib

import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv import gradient_sums
from tinyconv.gradient_sums import affine_prefix, back_through_prefix, example_groups, runs

# the module, not the function of the same name that the package exports
ig_module = importlib.import_module("tinyconv.integrated_gradients")


@pytest.mark.parametrize("start, stop, N", [(0, 7, 3), (5, 12, 4), (8, 9, 4), (0, 4, 4),
                                            (3, 20, 1)])
def test_runs_cover_the_chunk_once_each_a_run_of_one_copy(start, stop, N):
    seen = []
    for j, examples, rows in runs(start, stop, N):
        points = np.arange(start, stop)[rows]
        np.testing.assert_array_equal(points, j * N + np.arange(N)[examples])
        seen.extend(points)
    assert seen == list(range(start, stop))


def two_convs():
    """conv - conv - relu - flatten - dense: two affine layers, then a ReLU."""
    return tc.Sequential([tc.Conv2D(2, 3, 3, padding=1), tc.Conv2D(3, 2, 2, stride=2),
                          tc.ReLU(), tc.Flatten(), tc.Dense(2 * 5 * 4, 3)],
                         (11, 9, 2), seed=3).astype(np.float64)


def relu_first():
    return tc.Sequential([tc.ReLU(), tc.Conv2D(2, 3, 3), tc.ReLU(), tc.Flatten(),
                          tc.Dense(3 * 9 * 7, 3)], (11, 9, 2), seed=3).astype(np.float64)


def linear():
    return tc.Sequential([tc.Flatten(), tc.Dense(198, 3)], (11, 9, 2), seed=3).astype(
        np.float64)


@pytest.mark.parametrize("make, a", [(small_cnn, 1), (two_convs, 2), (relu_first, 0),
                                     (linear, 1)])
def test_the_affine_prefix_stops_at_the_first_other_layer_and_below_the_last(make, a):
    assert affine_prefix(make()) == a


def test_the_shipped_models_prefix_is_conv1():
    assert affine_prefix(tc.pretrained("mnist")) == 1


@pytest.mark.parametrize("make", [small_cnn, two_convs, linear])
def test_back_through_the_prefix_is_the_transposed_jacobian(make, rng):
    # A^T s checked as <A u, s> = <u, A^T s> with the affine part's own forward
    model = make()
    a = affine_prefix(model)
    x = random_input(model, 2)
    u = rng.standard_normal(x.shape)
    s = rng.standard_normal((2, *model.output_shapes[a]))
    A_u = model.forward(x + u, upto=a) - model.forward(x, upto=a)       # A u (c cancels)
    At_s = back_through_prefix(model, random_input(model, 2, seed=9), s, a)   # any x
    np.testing.assert_allclose(np.sum(A_u * s), np.sum(u * At_s), rtol=1e-10)


def riemann_by_definition(model, x, target, base, steps, method):
    """IG as its formula says: the gradient at each path point, from the input up."""
    alphas, weights = ig_module.riemann_nodes(steps, method)
    total = np.zeros_like(x)
    for alpha, w in zip(alphas, weights, strict=True):
        total += w * tc.project(model, base + alpha * (x - base), len(model), target,
                                rule="gradient")
    return (x - base) * total


@pytest.mark.parametrize("make", [small_cnn, two_convs, relu_first, linear])
@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_integrated_gradients_above_the_prefix_is_the_definition(make, batch_size):
    model = make()
    x = random_input(model, 3)
    base = random_input(model, 1, seed=1)[0]
    r = tc.integrated_gradients(model, x, 2, baseline=base, steps=6, method="right",
                                batch_size=batch_size)
    np.testing.assert_allclose(r.attributions,
                               riemann_by_definition(model, x, 2, base, 6, "right"),
                               rtol=1e-9, atol=1e-13)


def test_integrated_gradients_in_groups_of_examples_is_the_same(monkeypatch):
    model = small_cnn()
    x = random_input(model, 5)
    whole = tc.integrated_gradients(model, x, 1, steps=7, batch_size=4)
    one_example = (8 + 2 * 8) * int(np.prod(model.output_shapes[1]))    # float64 model
    monkeypatch.setattr(gradient_sums, "GROUP_BYTES", 2 * one_example)   # groups of 2, 2, 1
    grouped = tc.integrated_gradients(model, x, 1, steps=7, batch_size=4)
    np.testing.assert_allclose(grouped.attributions, whole.attributions, rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(grouped.gap, whole.gap, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("make", [two_convs, relu_first])
@pytest.mark.parametrize("base", ["gradient", "guided"])
def test_smoothgrads_mean_above_the_prefix_is_the_mean_of_the_maps(make, base):
    model = make()
    x = random_input(model, 3)
    noise = 0.3 * np.random.default_rng(5).standard_normal((6, *x.shape))
    rule = "guided" if base == "guided" else "gradient"
    maps = [tc.project(model, x + e, len(model), 0, rule=rule) for e in noise]
    np.testing.assert_allclose(
        tc.smoothgrad(model, x, 0, n=6, base=base, noise=noise, batch_size=4),
        np.mean(maps, axis=0), rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("N, per, limit, sizes", [(5, 10, 20, [2, 2, 1]), (3, 10, 1, [1, 1, 1]),
                                                  (4, 10, 10 ** 9, [4]), (1, 0, 20, [1])])
def test_example_groups_cut_the_examples_by_their_bytes(monkeypatch, N, per, limit, sizes):
    monkeypatch.setattr(gradient_sums, "GROUP_BYTES", limit)
    groups = example_groups(N, per)
    assert [g.stop - g.start for g in groups] == sizes
    assert np.array_equal(np.r_[tuple(groups)], np.arange(N))


@pytest.mark.parametrize("kind, base", [("mean", "gradient"), ("mean", "guided"),
                                        ("var", "gradient"), ("square", "input_x_gradient")])
def test_smoothgrad_in_groups_of_examples_is_the_same(monkeypatch, kind, base):
    model = small_cnn()
    x = random_input(model, 5)
    whole = tc.smoothgrad(model, x, 1, n=3, kind=kind, base=base, batch_size=4)
    monkeypatch.setattr(gradient_sums, "GROUP_BYTES", 1)             # one example per group
    np.testing.assert_allclose(tc.smoothgrad(model, x, 1, n=3, kind=kind, base=base,
                                             batch_size=4), whole, rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("ignore:overflow|invalid value:RuntimeWarning")
def test_integrated_gradients_names_an_overflow_above_the_input():
    # x itself is finite; conv1's outputs of it are not (float32 tops out near 3.4e38)
    model = tc.pretrained("mnist")
    with pytest.raises(ValueError, match=r"^x, baseline: layer 1's outputs .* overflow float32"):
        tc.integrated_gradients(model, np.full((1, 28, 28, 1), 3e38, np.float32), 0, steps=3)
