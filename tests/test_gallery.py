"""The after-Zeiler-&-Fergus figures: gallery computes, plots.methods draws what it is given."""

import numpy as np
import pytest
from toy_models import random_input, small_cnn

from tinyconv import gallery, max_activating
from tinyconv.plots import methods


def small():
    model = small_cnn(seed=3, dtype=np.float32)
    return model, np.abs(random_input(model, 6, seed=4))


def test_every_map_returns_eight_signed_maps_of_the_input_shape_and_draws_them():
    model, X = small()
    result = gallery.every_map(model, X[0], target=1, cam_layer="relu2", smooth_n=3,
                               ig_steps=4, occlusion_size=3)
    assert result["target"] == 1 and len(result["signed"]) == 8
    for title, m in result["signed"]:
        # occlusion has one value per pixel, the rest one per input channel
        assert m.shape in (X[0].shape, (*X[0].shape[:2], 1)) and np.isfinite(m).all(), title
    fig = methods.every_map(result)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 10                        # input + 8 signed maps + Grad-CAM


def test_class_models_draw_one_panel_per_class():
    model, _ = small()
    result = gallery.class_models(model, classes=[0, 2, 3], steps=3)
    assert [r.image.shape for r in result["results"]] == [model.input_shape] * 3
    fig = methods.class_models(result)
    assert sum(1 for ax in fig.axes if ax.images) == 3


def test_preferred_images_pair_each_unit_with_its_top_patches():
    model, X = small()
    result = gallery.preferred_images(model, X, "conv2", n=2, top=4, steps=3)
    assert len(result["units"]) == 2
    r = result["field"].size
    for unit in result["units"]:
        assert unit["patches"].shape == (4, *r, X.shape[-1])
    fig = methods.preferred_images(result, "conv2")
    assert sum(1 for ax in fig.axes if ax.images) == 4


def test_preferred_images_take_a_ranking_already_computed_and_refuse_another_layers():
    model, X = small()
    ranking = max_activating(model, X, "conv2", top=4)
    own = gallery.preferred_images(model, X, "conv2", n=2, top=4, steps=3)
    given = gallery.preferred_images(model, X, "conv2", n=2, top=3, steps=3, ranking=ranking)
    assert [u["k"] for u in given["units"]] == [u["k"] for u in own["units"]]
    for a, b in zip(own["units"], given["units"], strict=True):
        np.testing.assert_array_equal(a["patches"][:3], b["patches"])   # the top 3 of 4
    other = max_activating(model, X, "conv1", top=4)
    with pytest.raises(ValueError, match="^ranking:"):
        gallery.preferred_images(model, X, "conv2", ranking=other, top=4, steps=3)
    with pytest.raises(ValueError, match="^ranking:"):                     # too short
        gallery.preferred_images(model, X, "conv2", ranking=ranking, top=5, steps=3)
    with pytest.raises(ValueError, match="^ranking:"):                     # not every feature
        gallery.preferred_images(model, X, "conv2", top=4, steps=3,
                                 ranking=max_activating(model, X, "conv2", k=[0], top=4))
