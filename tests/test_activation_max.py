"""Activation maximisation (Erhan et al. 2009; Simonyan et al. 2013; Yosinski et al. 2015)."""

import numpy as np
import pytest
from toy_models import small_cnn

import tinyconv as tc
from tinyconv.activation_max import maximize_features


@pytest.fixture
def model():
    return small_cnn()


def test_the_objective_rises_and_the_image_stays_in_range(model):
    r = tc.activation_maximization(model, "conv2", 3, idx=(1, 1), steps=30, lr=0.05)
    assert r.history.shape == (30,) and r.image.shape == (11, 9, 2)
    assert np.isfinite(r.image).all() and r.image.min() >= 0 and r.image.max() <= 1
    assert r.history[-1] > r.history[0] + 0.1 * abs(r.history[0])


def test_a_sign_error_would_be_caught(model, monkeypatch):
    # negative control: a backward that returns -gradient makes the same ascent go down
    honest = tc.activation_maximization(model, "logits", 2, steps=15)
    backward = model.backward
    monkeypatch.setattr(model, "backward", lambda *a, **kw: -backward(*a, **kw))
    flipped = tc.activation_maximization(model, "logits", 2, steps=15)
    assert honest.history[-1] > honest.history[0] > flipped.history[-1]


@pytest.mark.parametrize("objective, layer", [("unit", "conv2"), ("map", "conv2"),
                                              ("unit", "logits")])
def test_regularisers_keep_it_finite_seeded_and_in_range(model, objective, layer):
    kw = dict(objective=objective, steps=12, l2=0.05, blur_every=4, blur_sigma=0.7, jitter=1,
              clip_small=0.1, clip_range=(-1.0, 2.0), seed=7)
    a = tc.activation_maximization(model, layer, 1, **kw)
    b = tc.activation_maximization(model, layer, 1, **kw)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.history, b.history)
    assert np.isfinite(a.image).all() and a.image.min() >= -1 and a.image.max() <= 2
    assert not np.array_equal(tc.activation_maximization(model, layer, 1, **{**kw, "seed": 8})
                              .image, a.image)


@pytest.mark.parametrize("objective, layer, ks", [("unit", "conv2", [1, 3, 0]),
                                                  ("map", "conv2", [2, 1]),
                                                  ("unit", "logits", [0, 2, 1, 2])])
def test_features_ascended_at_once_are_the_ascents_one_by_one(model, objective, layer, ks):
    """maximize_features runs the ascents as one batch: the same images and histories as one
    call per feature, to float32 round-off (the batch changes only the GEMMs' sizes)."""
    kw = dict(objective=objective, steps=12, l2=0.05, blur_every=4, blur_sigma=0.7, jitter=1,
              clip_small=0.1, seed=3)
    together = maximize_features(model, layer, ks, **kw)
    assert [r.k for r in together] == ks
    for k, r in zip(ks, together, strict=True):
        alone = tc.activation_maximization(model, layer, k, **kw)
        np.testing.assert_allclose(r.image, alone.image, atol=1e-5)
        np.testing.assert_allclose(r.history, alone.history, rtol=1e-5, atol=1e-6)
        assert (r.layer, r.idx) == (alone.layer, alone.idx)
    # negative control: another feature's ascent is another image
    assert not np.allclose(together[0].image, together[1].image, atol=1e-3)


def test_a_conv1_unit_prefers_its_own_filter():
    # y_(1),idx,k is linear in its 5x5 patch with weights W[..., 0, k]: ascent moves the patch
    # along the filter until the clip range bends it towards sign(W) (0.81 correlated)
    model = tc.pretrained("mnist")
    W = model.layers[0].params["W"]                               # (5, 5, 1, 16)
    r0, r1, c0, c1 = tc.receptive_field(model, "conv1").box(14, 14)
    filters = W[..., 0, :].reshape(25, 16)                       # (kh*kw, C_1)
    own, best_other = [], []
    for k in range(16):
        patch = tc.activation_maximization(model, "conv1", k, steps=20).image[r0:r1, c0:c1, 0]
        r = np.array([np.corrcoef(patch.ravel(), filters[:, j])[0, 1] for j in range(16)])
        own.append(r[k])
        best_other.append(np.delete(r, k).max())
    assert min(own) > 0.9
    # negative control: each preferred image matches its own filter better than any other
    # (signed: two filters of a trained model can be near negatives of each other)
    assert all(o > b for o, b in zip(own, best_other, strict=True))


@pytest.mark.parametrize("kwargs, name, error", [
    ({"layer": "input"}, "layer", ValueError), ({"k": 99}, "k", ValueError),
    ({"objective": "total"}, "objective", ValueError),
    ({"layer": "logits", "objective": "map"}, "objective", ValueError),
    ({"layer": "logits", "idx": (0, 0)}, "idx", ValueError),
    ({"idx": (9, 0)}, "idx", ValueError), ({"steps": 0}, "steps", ValueError),
    ({"lr": 0.0}, "lr", ValueError), ({"clip_range": (1, 0)}, "clip_range", ValueError),
    ({"l2": 1.5}, "l2", ValueError), ({"init": np.zeros((3, 3, 1))}, "init", ValueError),
])
def test_bad_arguments_are_named(model, kwargs, name, error):
    args = {"layer": "conv2", "k": 0, "steps": 2, **kwargs}
    with pytest.raises(error, match=name):
        tc.activation_maximization(model, args.pop("layer"), args.pop("k"), **args)


def test_the_ascent_leaves_the_parameter_gradients_alone(model):
    # the ascent reads only d y / d x: a training step's gradients survive it untouched
    kept = {(layer.name, key): np.full_like(v, 7.0) for layer in model.layers
            for key, v in layer.params.items()}
    for layer in model.layers:
        layer.grads.update({key: kept[layer.name, key].copy() for key in layer.params})
    tc.activation_maximization(model, "logits", 1, steps=3)
    for layer in model.layers:
        for key in layer.params:
            np.testing.assert_array_equal(layer.grads[key], kept[layer.name, key])
