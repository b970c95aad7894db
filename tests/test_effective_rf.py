import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc


def positive_linear(seed=0):
    """Two stacked convolutions with all-positive weights and no ReLU: the gradient of a unit
    is the same for every input, every entry of it positive inside the receptive field."""
    model = tc.Sequential([tc.Conv2D(2, 3, 3, name="conv1"),
                           tc.Conv2D(3, 2, (3, 2), stride=2, name="conv2")],
                          input_shape=(12, 11, 2), seed=seed).astype(np.float64)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.params["W"][...] = rng.uniform(0.1, 1.0, layer.params["W"].shape)
    return model


def test_a_linear_network_with_positive_weights_has_the_erf_it_computes():
    model = positive_linear()
    x = random_input(model, 5, seed=1)
    erf = tc.effective_receptive_field(model, x, "conv2", k=1, idx=(2, 3))
    # analytically: d y_(2),idx,1 / d x = sum over the conv1 units under idx of W2 * W1
    W1, W2 = model.layers[0].params["W"], model.layers[1].params["W"]
    expected = np.zeros((12, 11, 2))
    for a in range(3):
        for b in range(2):
            r, c = 2 * 2 + a, 2 * 3 + b                           # conv1 unit under the tap
            expected[r:r + 3, c:c + 3] += np.einsum("uvcd,d->uvc", W1, W2[a, b, :, 1])
    np.testing.assert_allclose(erf, expected.sum(axis=-1), rtol=1e-12)
    r0, r1, c0, c1 = tc.receptive_field(model, "conv2").box(2, 3)
    support = np.zeros(erf.shape, dtype=bool)
    support[r0:r1, c0:c1] = True
    assert np.all(erf[support] > 0) and np.all(erf[~support] == 0)


def test_k_none_averages_the_features_and_idx_none_is_the_centre():
    model = positive_linear(seed=2)
    x = random_input(model, 3, seed=3)
    centre = tc.units.centre_unit(model, "conv2")
    each = [tc.effective_receptive_field(model, x, "conv2", k=k, idx=centre) for k in (0, 1)]
    np.testing.assert_allclose(tc.effective_receptive_field(model, x, "conv2"),
                               (each[0] + each[1]) / 2, rtol=1e-12)


def test_mean_over_examples_does_not_depend_on_the_batch_size():
    model = small_cnn(seed=4)
    x = random_input(model, 9, seed=5)
    erf = tc.effective_receptive_field(model, x, "relu2", k=2, batch_size=4)
    g = tc.project(model, x, "relu2", 2, idx=tc.units.centre_unit(model, "relu2"),
                   rule="gradient")
    np.testing.assert_allclose(erf, np.abs(g).sum(axis=-1).mean(axis=0), rtol=1e-12)
    assert erf.shape == model.input_shape[:2] and erf.max() > 0


@pytest.mark.parametrize("kwargs, error, match", [
    ({"layer": 0}, ValueError, "layer:"),
    ({"layer": "flatten"}, ValueError, "layer:"),
    ({"layer": "conv1", "k": 9}, ValueError, "k:"),
    ({"layer": "conv1", "idx": (99, 0)}, ValueError, "idx:"),
    ({"layer": "conv1", "batch_size": 0}, ValueError, "batch_size"),
])
def test_bad_arguments_name_themselves(kwargs, error, match):
    model = small_cnn(seed=6)
    with pytest.raises(error, match=match):
        tc.effective_receptive_field(model, random_input(model, 2), **kwargs)
