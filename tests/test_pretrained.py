"""Tests for the shipped MNIST model: ``tinyconv/data/mnist_cnn.npz`` and ``pretrained()``.

Nothing is retrained here: the file is loaded and scored on the 1,000 held-out bundled digits,
which its training never saw.
"""

from importlib import resources

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.architectures import build
from tinyconv.serialize import model_spec


@pytest.fixture(scope="module")
def model():
    return tc.pretrained("mnist")


def test_the_file_ships_and_is_small():
    with resources.as_file(resources.files("tinyconv") / "data" / "mnist_cnn.npz") as path:
        assert path.is_file()
        assert path.stat().st_size <= 1_000_000


def test_architecture_is_build_mnist(model):
    assert model_spec(model) == model_spec(build("mnist"))
    assert model.dtype == np.float32
    for trained, fresh in zip(model.layers, build("mnist").layers, strict=True):
        assert trained.params.keys() == fresh.params.keys()
        for key in trained.params:
            assert trained.params[key].shape == fresh.params[key].shape
            assert np.isfinite(trained.params[key]).all()


def test_held_out_accuracy(model):
    images, labels = tc.load_mnist("bundled-test")
    scores = tc.evaluate(model, tc.to_float(images), labels)
    assert scores["accuracy"] >= 0.97
    # every digit is learnt, not just most of them
    recall = np.diag(scores["confusion"]) / scores["confusion"].sum(axis=1)
    assert recall.min() >= 0.9


def test_each_call_gives_a_fresh_copy(model):
    other = tc.pretrained()
    other.layers[0].params["W"][:] = 0
    assert np.abs(model.layers[0].params["W"]).sum() > 0


def test_unknown_name():
    with pytest.raises(ValueError, match="'mnist'"):
        tc.pretrained("cifar")
