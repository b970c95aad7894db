"""Tests for tinyconv.architectures: the named MNIST models and the shift augmentation."""

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.architectures import ARCHITECTURES, build, shift_images

MNIST_NAMES = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3",
               "pool3", "flatten", "logits"]


def test_default_is_mnist_with_the_documented_layers():
    model = build()
    assert model.names == ["input", *MNIST_NAMES]
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "ReLU", "MaxPool2D"] * 3 + ["Flatten", "Dense"]
    conv1, conv2, conv3 = (model.layers[model.index(n) - 1] for n in ("conv1", "conv2", "conv3"))
    assert conv1.params["W"].shape == (5, 5, 1, 16)
    assert conv2.params["W"].shape == (5, 5, 16, 32)
    assert conv3.params["W"].shape == (3, 3, 32, 64)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_predicted_shapes_match_a_forward_pass(name):
    model = build(name)
    assert model.input_shape == (28, 28, 1)
    x = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    ys = model.activations(x)
    assert [y.shape[1:] for y in ys] == [tuple(s) for s in model.output_shapes]
    assert ys[-1].shape == (3, 10) and ys[-1].dtype == np.float32


def test_mnist_output_shapes():
    shapes = dict(zip(build().names, build().output_shapes, strict=True))
    assert shapes["conv1"] == (28, 28, 16)
    assert shapes["pool1"] == (14, 14, 16)
    assert shapes["conv2"] == (14, 14, 32)
    assert shapes["pool2"] == (7, 7, 32)
    assert shapes["conv3"] == (7, 7, 64)
    assert shapes["pool3"] == (3, 3, 64)
    assert shapes["logits"] == (10,)


def test_mnist_receptive_fields_grow_from_a_stroke_to_the_whole_digit():
    model = build()
    sizes = {name: tc.receptive_field(model, name).size
             for name in ("conv1", "pool1", "conv2", "pool2", "conv3", "pool3")}
    assert sizes == {"conv1": (5, 5), "pool1": (6, 6), "conv2": (14, 14), "pool2": (16, 16),
                     "conv3": (24, 24), "pool3": (28, 28)}
    # every pixel of the 28x28 image is seen by some pool3 unit
    rf = tc.receptive_field(model, "pool3")
    seen = np.zeros((28, 28), dtype=bool)
    for row in range(3):
        for col in range(3):
            r0, r1, c0, c1 = rf.box(row, col)
            seen[r0:r1, c0:c1] = True
    assert seen.all()


def test_small_shapes_and_fields():
    model = build("small")
    assert model.output_shapes[-1] == (10,)
    assert tc.receptive_field(model, "pool2").size == (10, 10)
    assert sum(p.size for layer in model.layers for p in layer.params.values()) < 10_000


def test_seed_fixes_the_weights():
    a, b, c = build(seed=3), build(seed=3), build(seed=4)
    for la, lb, lc in zip(a.layers, b.layers, c.layers, strict=True):
        for key in la.params:
            np.testing.assert_array_equal(la.params[key], lb.params[key])
            if key == "W":
                assert not np.array_equal(la.params[key], lc.params[key])


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'mnist'.*'small'.*got 'lenet'"):
        build("lenet")
    with pytest.raises(ValueError, match="arch"):
        build(None)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        build(seed=-1)
    with pytest.raises(TypeError, match="seed"):
        build(seed=1.5)


def test_shift_images_moves_pixels_and_fills_zeros():
    X = np.zeros((200, 5, 6, 1), dtype=np.float32)
    X[:, 2, 3, 0] = 1.0
    out = shift_images(X, 2, np.random.default_rng(0))
    assert out.shape == X.shape and out.dtype == X.dtype
    positions = [tuple(np.argwhere(o[..., 0])[0]) for o in out]
    offsets = {(r - 2, c - 3) for r, c in positions}
    assert offsets <= {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert len(offsets) > 15                      # the shifts really vary
    assert (out.reshape(200, -1).sum(axis=1) == 1).all()   # one pixel each, nothing smeared


def test_shift_images_drops_what_leaves_the_image_and_is_seeded():
    X = np.ones((50, 4, 4, 2), dtype=np.float64)
    a = shift_images(X, 3, np.random.default_rng(7))
    b = shift_images(X, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert (a.sum(axis=(1, 2, 3)) <= X[0].sum()).all()
    assert (a.sum(axis=(1, 2, 3)) < X[0].sum()).any()
    np.testing.assert_array_equal(shift_images(X, 0, np.random.default_rng(0)), X)
