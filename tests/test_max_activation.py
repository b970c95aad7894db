import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv.max_activation import tolerance


def brute_force(model, X, layer, descending=True):
    """Every activation at once, then one stable sort per feature."""
    y = model.forward(X, upto=layer)
    N, H_l, W_l, C = y.shape
    flat = y.reshape(N, H_l * W_l, C)
    where = flat.argmax(axis=1)                                  # (N, C)
    values = flat.max(axis=1)
    order = np.argsort(-values if descending else values, axis=0, kind="stable")
    rows, cols = np.divmod(where, W_l)
    loc = np.stack([np.take_along_axis(rows, order, 0), np.take_along_axis(cols, order, 0)], -1)
    return order.T, np.take_along_axis(values, order, 0).T, loc.transpose(1, 0, 2)


def assert_ranking_agrees(got, idx, val, score="activation", dtype=np.float32):
    """The documented batch-size claim: values within ``tolerance``, indices identical except
    among examples whose reference scores lie within that tolerance of each other."""
    tol = tolerance(val, dtype, score)
    np.testing.assert_array_less(np.abs(got.values - val), tol + 1e-300)
    close = np.abs(np.diff(val, axis=1)) <= tol[:, 1:] + tol[:, :-1]     # (K, n - 1)
    near = np.zeros(val.shape, dtype=bool)
    near[:, 1:] |= close
    near[:, :-1] |= close
    np.testing.assert_array_equal(got.indices[~near], idx[~near])
    for row, ref in zip(got.indices, idx, strict=True):        # near-ties only swap places
        assert sorted(row) == sorted(ref)
    return near


@pytest.mark.parametrize("batch_size", [1, 7, 64])
@pytest.mark.parametrize("descending", [True, False])
def test_streaming_equals_a_brute_force_sort(batch_size, descending):
    model = small_cnn(seed=1, dtype=np.float32)
    X = random_input(model, 40, seed=2)
    idx, val, loc = brute_force(model, X, "relu2", descending)
    got = tc.max_activating(model, X, "relu2", top=None, batch_size=batch_size,
                            descending=descending)
    near = assert_ranking_agrees(got, idx, val)
    np.testing.assert_array_equal(got.locations[~near], loc[~near])
    top = tc.max_activating(model, X, "relu2", k=[4, 1], top=5, batch_size=batch_size,
                            descending=descending)
    kept = ~near[[4, 1], :5]
    np.testing.assert_array_equal(top.indices[kept], idx[[4, 1], :5][kept])
    assert top.values.shape == (2, 5) and top.locations.shape == (2, 5, 2)


def test_float64_rankings_equal_a_brute_force_sort_exactly():
    model = small_cnn(seed=1, dtype=np.float64)
    X = random_input(model, 40, seed=2)
    idx, val, loc = brute_force(model, X, "relu2")
    for batch_size in (1, 7, 64):
        got = tc.max_activating(model, X, "relu2", top=None, batch_size=batch_size)
        np.testing.assert_array_equal(got.indices, idx)
        np.testing.assert_array_equal(got.locations, loc)
        np.testing.assert_allclose(got.values, val, rtol=1e-12)


def test_near_ties_may_swap_but_nothing_else_moves():
    """Copies of examples perturbed below float32 round-off: their scores tie within the
    tolerance, so only they may change places between batch sizes."""
    model = small_cnn(seed=1, dtype=np.float32)
    base = random_input(model, 12, seed=2)
    nudged = base[:3] * np.float32(1 + 2e-7)              # three near-copies
    X = np.concatenate([base, nudged])
    idx, val, _ = brute_force(model, X, "relu2")
    runs = [tc.max_activating(model, X, "relu2", top=None, batch_size=b) for b in (1, 5, 24)]
    nears = [assert_ranking_agrees(r, idx, val) for r in runs]
    assert all(n.any() for n in nears)                       # the case really has near-ties
    assert not all(n.all() for n in nears)                   # and places that must not move
    # negative control: a ranking with two far-apart examples swapped is refused
    far = runs[0]
    j = int(np.flatnonzero(~nears[0][0])[0])
    far.indices[0, [j, -1]] = far.indices[0, [-1, j]]
    with pytest.raises(AssertionError):
        assert_ranking_agrees(far, idx, val)


def test_probabilities_agree_across_batch_sizes():
    model = small_cnn(seed=5, dtype=np.float32)
    X = random_input(model, 30, seed=6)
    ref = tc.max_activating(model, X, "logits", top=None, batch_size=len(X))
    for batch_size in (1, 4):
        got = tc.max_activating(model, X, "logits", top=None, batch_size=batch_size)
        assert_ranking_agrees(got, ref.indices, ref.values, "probability")


def test_ties_go_to_the_smaller_example_index_whatever_the_batch_size():
    model = small_cnn(seed=3, dtype=np.float32)
    base = random_input(model, 5, seed=4)
    X = np.concatenate([base, base, base])          # every score appears three times
    results = [tc.max_activating(model, X, "conv1", k=0, top=6, batch_size=b).indices
               for b in (1, 4, 15)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    best = results[0][0]
    assert list(best[:3]) == sorted(best[:3])       # the three copies of the top example
    assert {int(i) % 5 for i in best[:3]} == {int(best[0])}


def test_head_is_ranked_by_class_probability():
    model = small_cnn(seed=5, dtype=np.float32)
    X = random_input(model, 30, seed=6)
    p = tc.softmax(model(X).astype(np.float64))
    got = tc.max_activating(model, X, -1, k=2, top=4)
    assert got.score == "probability"
    np.testing.assert_array_equal(got.indices[0], np.argsort(-p[:, 2], kind="stable")[:4])
    np.testing.assert_allclose(got.values[0], np.sort(p[:, 2])[::-1][:4])
    low = tc.max_activating(model, X, "logits", k=2, top=4, descending=False)
    np.testing.assert_allclose(low.values[0], np.sort(p[:, 2])[:4])
    assert (low.locations == -1).all()


def test_top_is_capped_at_the_data_set_size():
    model = small_cnn(dtype=np.float32)
    got = tc.max_activating(model, random_input(model, 3), "conv2", top=9)
    assert got.indices.shape == (6, 3)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(layer=99), ValueError, "layer"),
    (dict(layer="conv1", k=5), ValueError, "k"),
    (dict(layer="conv1", k="a"), TypeError, "k"),
    (dict(layer="conv1", top=0), ValueError, "top"),
    (dict(layer="conv1", batch_size=0), ValueError, "batch_size"),
    (dict(layer="conv1", score="probability"), ValueError, "score"),
    (dict(layer="conv1", descending="yes"), TypeError, "descending"),
])
def test_bad_arguments_name_themselves(kwargs, error, match):
    model = small_cnn(dtype=np.float32)
    with pytest.raises(error, match=match):
        tc.max_activating(model, random_input(model, 4), **kwargs)


def test_rejects_integer_images():
    model = small_cnn(dtype=np.float32)
    with pytest.raises(TypeError, match="X"):
        tc.max_activating(model, np.zeros((2, *model.input_shape), np.uint8), "conv1")


def test_a_memmap_is_read_batch_by_batch(tmp_path):
    model = small_cnn(seed=7, dtype=np.float32)
    X = random_input(model, 30, seed=8)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    got = tc.max_activating(model, mapped, "relu2", top=5, batch_size=7)
    want = tc.max_activating(model, X, "relu2", top=5, batch_size=7)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.values, want.values)


def test_nan_in_a_later_batch_names_X():
    model = small_cnn(dtype=np.float32)
    X = random_input(model, 10)
    X[8, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="X: expected finite"):
        tc.max_activating(model, X, "conv1", batch_size=4)
