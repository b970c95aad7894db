"""Deletion and insertion (Petsiuk et al. 2018) on a model whose score is a known function."""

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.faithfulness import blur, curve, deletion, insertion, order, random_maps, sobel


def linear_model(w):
    """p(class 0) = sigmoid(sum w * x): logit 0 is ``w . x``, logit 1 is 0."""
    H, W_in = w.shape
    model = tc.Sequential([tc.Flatten(), tc.Dense(H * W_in, 2)], (H, W_in, 1)).astype(np.float64)
    dense = model.layers[1]
    dense.params["W"][:] = 0
    dense.params["W"][:, 0] = w.ravel()
    dense.params["b"][:] = 0
    return model


@pytest.fixture
def case(rng):
    w = rng.random((4, 4)) + 0.1
    x = rng.random((3, 4, 4, 1)) + 0.1
    return linear_model(w), x, w * x[..., 0]           # w * x: each pixel's exact share


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_deletion_follows_the_known_score_and_falls_monotonically(case):
    model, x, share = case
    c = deletion(model, x, share, 0, step=5)
    assert c.fractions.tolist() == [0, 5 / 16, 10 / 16, 15 / 16, 1]
    ranking = order(share)
    for i in range(3):
        # after s steps the min(5 s, 16) most important pixels are gone
        kept = [share[i].ravel()[ranking[i, min(5 * s, 16):]].sum() for s in range(5)]
        np.testing.assert_allclose(c.scores[i], sigmoid(np.array(kept)), rtol=1e-12)
    assert np.all(np.diff(c.scores, axis=1) < 0)
    assert c.scores[:, -1] == pytest.approx(0.5)       # blank image: both logits 0


def test_insertion_rises_monotonically_and_ends_at_the_image(case):
    model, x, share = case
    c = insertion(model, x, share, 0, step=3, canvas="blank")
    assert np.all(np.diff(c.scores, axis=1) > 0)
    np.testing.assert_allclose(c.scores[:, -1], sigmoid(share.sum(axis=(1, 2))), rtol=1e-12)


def test_the_right_order_beats_the_reversed_one(case):
    model, x, share = case
    good, bad = deletion(model, x, share, 0, step=2), deletion(model, x, -share, 0, step=2)
    assert np.all(good.auc < bad.auc)
    good, bad = (insertion(model, x, m, 0, canvas="blank", step=2) for m in (share, -share))
    assert np.all(good.auc > bad.auc)
    # the trapezoid area of the recorded points
    np.testing.assert_allclose(good.auc, np.trapezoid(good.scores, good.fractions, axis=1))


def test_batch_size_does_not_change_the_curves(case):
    model, x, share = case
    a = curve(model, x, share, np.array([0, 1, 0]), step=3, batch_size=1)
    b = curve(model, x, share, np.array([0, 1, 0]), step=3, batch_size=1000)
    assert np.array_equal(a.scores, b.scores)
    np.testing.assert_allclose(a.scores[1], 1 - curve(model, x, share, 0, step=3).scores[1])


def test_blur_keeps_mass_away_from_the_border_and_sobel_finds_edges():
    x = np.zeros((1, 21, 21, 1))
    x[0, 10, 10, 0] = 1.0
    out = blur(x, sigma=1.5)
    assert out.sum() == pytest.approx(1.0) and out[0, 10, 10, 0] < 1
    assert out[0, 10, 10, 0] == out.max()
    step = np.zeros((1, 6, 6))
    step[:, :, 3:] = 1.0
    edges = sobel(step)
    assert edges[0, 2:4, 2:4].min() > 0 and edges[0, 2:4, 0].max() == 0


def test_random_maps_are_seeded():
    assert np.array_equal(random_maps((2, 3, 3), seed=1), random_maps((2, 3, 3), seed=1))
    assert not np.array_equal(random_maps((2, 3, 3), seed=1), random_maps((2, 3, 3), seed=2))


def test_bad_input_names_the_argument(case):
    model, x, share = case
    with pytest.raises(ValueError, match="maps: expected shape"):
        deletion(model, x, share[:, :3], 0)
    with pytest.raises(ValueError, match="target"):
        deletion(model, x, share, 2)
    with pytest.raises(ValueError, match="target"):
        deletion(model, x, share, np.array([0, 1]))
    with pytest.raises(ValueError, match="kind"):
        curve(model, x, share, 0, kind="both")
    with pytest.raises(ValueError, match="canvas"):
        curve(model, x, share, 0, canvas="noise")
    with pytest.raises(ValueError, match="step"):
        curve(model, x, share, 0, step=0)
