"""Input × gradient (Shrikumar et al. 2016): the product of the input and d y_(L),c / dx."""

import numpy as np
import pytest
from gradcheck import assert_gradient, numerical_gradient
from toy_models import random_input, small_cnn

import tinyconv as tc


def test_equals_input_times_a_centred_difference_gradient():
    model = small_cnn()
    x = random_input(model, 2)
    target = np.array([1, 3])
    dy = tc.units.class_signal(model.forward(x), target)
    num = numerical_gradient(lambda: model.forward(x), x, dy)
    assert_gradient(tc.input_x_gradient(model, x, target), x * num, "input x gradient")


def test_a_linear_model_gets_exact_contributions():
    # for y = w . x + b (no ReLU) input x gradient is w_i x_i: it sums to y_c - b_c
    model = tc.Sequential([tc.Flatten(), tc.Dense(12, 3)], (2, 3, 2), seed=0).astype(np.float64)
    x = random_input(model, 4)
    attr = tc.input_x_gradient(model, x, 2)
    dense = model.layers[1]
    expected = x.reshape(4, -1) * dense.params["W"][:, 2]
    np.testing.assert_allclose(attr.reshape(4, -1), expected, rtol=1e-12)
    np.testing.assert_allclose(attr.reshape(4, -1).sum(1),
                               model.forward(x)[:, 2] - dense.params["b"][2], rtol=1e-10)


def test_target_none_is_the_predicted_class_and_a_wrong_class_differs():
    model = small_cnn()
    x = random_input(model, 3)
    predicted = model.forward(x).argmax(1)
    np.testing.assert_array_equal(tc.input_x_gradient(model, x),
                                  tc.input_x_gradient(model, x, predicted))
    assert not np.allclose(tc.input_x_gradient(model, x, (predicted + 1) % 4),
                           tc.input_x_gradient(model, x, predicted))


@pytest.mark.parametrize("target", [4, -1, [0, 1], 1.5])
def test_bad_target_names_the_argument(target):
    model = small_cnn()
    with pytest.raises(ValueError, match="target"):
        tc.input_x_gradient(model, random_input(model, 3), target)


def test_a_model_without_class_scores_is_refused():
    model = tc.Sequential([tc.Conv2D(1, 2, 3)], (5, 5, 1), seed=0)
    with pytest.raises(ValueError, match="model"):
        tc.input_x_gradient(model, np.zeros((1, 5, 5, 1), np.float32))
