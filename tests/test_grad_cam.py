"""Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017): weights, maps, both upsamplings."""

import numpy as np
import pytest
from gradcheck import assert_gradient, numerical_gradient
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv.grad_cam import bilinear_matrix, bilinear_upsample, receptive_field_spread


@pytest.fixture
def model():
    return small_cnn()


def test_weights_are_the_spatial_mean_of_a_centred_difference_gradient(model):
    x = random_input(model, 2)
    l = model.index("conv1")          # pre-ReLU: no pooling ties among zeros
    ys = model.activations(x)
    y = ys[l].copy()

    def logits():
        out = y
        for layer in model.layers[l:]:
            out = layer.forward(out)
        return out

    dy = tc.units.class_signal(ys[-1], np.array([1, 2]))
    num = numerical_gradient(logits, y, dy)                       # d y_(L),c / d y_(l)
    cam = tc.grad_cam(model, x, [1, 2], layer="conv1")
    assert_gradient(cam.weights, num.mean(axis=(1, 2)), "alpha_k")
    expected = np.maximum(np.einsum("nhwk,nk->nhw", y, num.mean(axis=(1, 2))), 0)
    np.testing.assert_allclose(cam.map, expected, rtol=1e-6, atol=1e-9)


def test_default_layer_is_the_last_with_locations(model):
    cam = tc.grad_cam(model, random_input(model, 1))
    assert model.names[cam.layer] == "relu2"
    assert cam.map.shape == (1, *model.output_shapes[cam.layer][:2])
    assert cam.upsampled.shape == cam.spread.shape == (1, 11, 9)
    assert (cam.map >= 0).all()


def test_bilinear_matches_hand_values():
    # 2 -> 4 with half-pixel centres: positions -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_allclose(bilinear_matrix(2, 4), [[1, 0], [.75, .25], [.25, .75], [0, 1]])
    m = np.arange(6.0).reshape(1, 2, 3)
    np.testing.assert_allclose(bilinear_upsample(m, 2, 3), m)    # same size: identity
    assert np.allclose(bilinear_matrix(3, 7).sum(1), 1)


def test_spread_puts_a_unit_on_its_receptive_field(model):
    l = model.index("relu2")
    maps = np.zeros((1, *model.output_shapes[l][:2]))
    maps[0, 1, 0] = 1.0
    out = receptive_field_spread(model, l, maps)
    r0, r1, c0, c1 = tc.receptive_field(model, l).box(1, 0)
    inside = np.zeros(out.shape[1:], bool)
    inside[r0:r1, c0:c1] = True
    assert (out[0][inside] > 0).all() and (out[0][~inside] == 0).all()


def test_guided_grad_cam_is_guided_backprop_times_the_upsampled_map(model):
    x = random_input(model, 2)
    cam = tc.grad_cam(model, x, 3, layer="conv2")
    guided = tc.project(model, x, "logits", 3, rule="guided")
    np.testing.assert_allclose(tc.guided_grad_cam(model, x, 3, layer="conv2"),
                               guided * cam.upsampled[..., None])


@pytest.mark.parametrize("layer", ["flatten", "logits", "input", 0])
def test_layers_without_locations_are_refused(model, layer):
    with pytest.raises(ValueError, match="layer"):
        tc.grad_cam(model, random_input(model, 1), layer=layer)


@pytest.mark.parametrize("target", [4, -1, [1, 2, 3]])
def test_bad_target(model, target):
    with pytest.raises(ValueError, match="target"):
        tc.guided_grad_cam(model, random_input(model, 2), target)
