"""A model computes in float32 or float64, and says so at once for any other dtype."""

import numpy as np
import pytest

import tinyconv as tc
from tinyconv.checks import check_array, check_dtype

REFUSED = [np.int32, np.int64, np.complex64, np.float16, np.longdouble, np.bool_, "int8"]


def tiny_model(**kw):
    return tc.Sequential([tc.Conv2D(1, 2, 3, padding=1, rng=0, **kw), tc.ReLU(),
                          tc.MaxPool2D(2), tc.Flatten(), tc.Dense(8, 3, rng=1, **kw)], (4, 4, 1))


@pytest.mark.parametrize("dtype", REFUSED, ids=str)
@pytest.mark.parametrize("make", [lambda dtype: tc.Conv2D(1, 2, 3, dtype=dtype),
                                  lambda dtype: tc.Dense(4, 2, dtype=dtype)],
                         ids=["Conv2D", "Dense"])
def test_layers_refuse_a_dtype_they_cannot_compute_in(make, dtype):
    # an int32 Dense used to keep 0.9 as 0: every weight truncated, no error
    with pytest.raises(TypeError, match=r"^dtype: expected float32 or float64"):
        make(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble, np.int32, np.complex64], ids=str)
def test_astype_refuses_a_dtype_the_kernels_do_not_have(dtype):
    model = tiny_model()
    with pytest.raises(TypeError, match=r"^dtype: expected float32 or float64"):
        model.astype(dtype)
    with pytest.raises(TypeError, match=r"^dtype: expected float32 or float64"):
        model.layers[0].astype(dtype)
    assert model.dtype == np.float32            # nothing was cast


def test_an_unknown_dtype_name_names_the_argument():
    with pytest.raises(TypeError, match=r"^dtype: expected float32 or float64, got 'f33'"):
        tc.Conv2D(1, 2, 3, dtype="f33")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", ">f8"], ids=str)
def test_float32_and_float64_in_any_spelling_are_native(dtype):
    dt = check_dtype(dtype)
    assert dt in (np.float32, np.float64) and dt.isnative
    assert tc.Conv2D(1, 2, 3, dtype=dtype).dtype == dt


@pytest.mark.parametrize("order", [">f4", ">f8"])
def test_big_endian_input_is_read_as_the_same_numbers(order):
    x = np.random.default_rng(0).random((2, 4, 4, 1))
    model = tiny_model()
    swapped = x.astype(order)
    assert not swapped.dtype.isnative
    native = x.astype(np.dtype(order).newbyteorder("="))
    np.testing.assert_array_equal(model(swapped), model(native))
    got = check_array(swapped, "x")
    assert got.dtype.isnative and got.dtype.itemsize == swapped.dtype.itemsize
    np.testing.assert_array_equal(got, x.astype(swapped.dtype.newbyteorder("=")))


def test_big_endian_float16_is_still_refused():
    with pytest.raises(TypeError, match=r"^x: expected a floating-point array"):
        check_array(np.ones(3, ">f2"), "x")


def test_a_parameter_free_model_computes_in_the_dtype_it_is_cast_to():
    model = tc.Sequential([tc.MaxPool2D(2), tc.ReLU(), tc.Flatten()], (4, 4, 1))
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 1))      # float64
    assert model(x).dtype == np.float32                             # the default
    model.astype(np.float64)
    assert model.dtype == np.float64
    y = model(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, np.maximum(x.reshape(2, 2, 2, 2, 2, 1).max(axis=(2, 4)),
                                                0).reshape(2, -1))
    assert tc.saliency(model, x, target=0).dtype == np.float64


def test_a_model_with_parameters_follows_astype_both_ways():
    model = tiny_model()
    x = np.random.default_rng(0).random((2, 4, 4, 1))
    assert model(x).dtype == np.float32
    assert model.astype(np.float64)(x).dtype == np.float64
    assert all(p.dtype == np.float64 for layer in model.layers for p in layer.params.values())
    assert model.astype(np.float32)(x).dtype == np.float32
