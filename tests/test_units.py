import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv import units


@pytest.fixture(scope="module")
def model():
    return small_cnn(seed=0)


def test_strongest_responses_match_a_loop(model):
    y = model.forward(random_input(model, 4, seed=1), upto="relu1")       # (4, 11, 9, 5)
    values, where = units.strongest_responses(y, np.array([3, 0]))
    for i in range(4):
        for j, k in enumerate((3, 0)):
            r, c = np.unravel_index(np.argmax(y[i, :, :, k]), y.shape[1:3])
            assert tuple(where[i, j]) == (r, c)
            assert values[i, j] == y[i, r, c, k]
    np.testing.assert_array_equal(units.strongest_locations(y, 3), where[:, 0])


def test_ties_go_to_the_first_location_in_row_major_order():
    y = np.zeros((1, 3, 3, 1))
    y[0, 2, 0, 0] = y[0, 1, 2, 0] = 5.0
    assert units.strongest_locations(y, 0).tolist() == [[1, 2]]


def test_strongest_feature_sums_each_map(model):
    y = np.zeros((2, 2, 2, 3))
    y[0, :, :, 1] = 1.0          # total 4
    y[0, 0, 0, 2] = 3.0          # larger single value, smaller total
    y[1, :, :, 2] = 0.5
    assert units.strongest_feature(y).tolist() == [1, 2]
    assert units.strongest_feature_at(y, (0, 0)) == 2            # mean over examples at (0, 0)


def test_unit_signal_is_one_hot_at_the_unit(model):
    y = model.forward(random_input(model, 3, seed=2), upto="pool1")
    signal, idx = units.unit_signal(model, y, 3, 4)
    assert signal.shape == y.shape and signal.sum() == 3
    for i, (r, c) in enumerate(idx):
        assert signal[i, r, c, 4] == 1
    signal, idx = units.unit_signal(model, model.forward(random_input(model, 3), upto=7), 7, 1)
    assert idx is None and signal[:, 1].tolist() == [1, 1, 1] and signal.sum() == 3


@pytest.mark.parametrize("idx, match", [
    ((11, 0), "idx: locations must lie in the 11x"),
    ((0, -1), "idx: locations must lie"),
    ((0.5, 1), "idx: expected a .row, col. pair"),
    (np.zeros((2, 2), int), r"idx: expected a \(row, col\) pair of ints or \(3, 2\)"),
])
def test_check_idx_names_the_argument(model, idx, match):
    with pytest.raises(ValueError, match=match):
        units.check_idx(model, 1, idx, 3)


def test_layers_without_locations_refuse_an_idx(model):
    with pytest.raises(ValueError, match="idx: layer 'flatten'.*no spatial locations"):
        units.check_idx(model, 6, (0, 0), 1)
    with pytest.raises(ValueError, match="layer: 'logits' has no spatial"):
        units.centre_unit(model, "logits")


def test_check_features_and_targets(model):
    assert units.check_features(model, 1, None).tolist() == [0, 1, 2, 3, 4]
    assert units.check_features(model, 1, [4, 1]).tolist() == [4, 1]
    with pytest.raises(ValueError, match=r"k: expected feature indices in \[0, 5\)"):
        units.check_features(model, 1, [5])
    with pytest.raises(TypeError, match="k:"):
        units.check_features(model, 1, 1.5)
    logits = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    assert units.check_target(None, logits).tolist() == [1, 0]
    assert units.check_target(2, logits).tolist() == [2, 2]
    with pytest.raises(ValueError, match="target: expected class indices"):
        units.check_target(3, logits)
    np.testing.assert_array_equal(units.class_signal(logits, np.array([1, 0])),
                                  [[0, 1, 0], [1, 0, 0]])


def test_conv_layers_and_centre_unit(model):
    assert units.conv_layers(model) == [model.index("conv1"), model.index("conv2")]
    assert units.centre_unit(model, "conv1") == (5, 4)            # 11 x 9 map
    assert units.centre_unit(model, 1) == (5, 4)
    n = tc.Sequential([tc.Flatten(), tc.Dense(4, 2)], input_shape=(2, 2, 1), seed=0)
    assert units.conv_layers(n) == []
