import numpy as np
import pytest
from toy_models import random_input, small_cnn

import tinyconv as tc
from tinyconv.max_activation import BLOCK


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


def assert_same_ranking(got, want):
    """Indices, values and locations equal bit for bit."""
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got.locations, want.locations)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
@pytest.mark.parametrize("descending", [True, False])
def test_streaming_equals_a_brute_force_sort(batch_size, descending):
    model = small_cnn(seed=1, dtype=np.float32)
    X = random_input(model, 40, seed=2)             # one block: the brute force's one pass
    idx, val, loc = brute_force(model, X, "relu2", descending)
    got = tc.max_activating(model, X, "relu2", top=None, batch_size=batch_size,
                            descending=descending)
    np.testing.assert_array_equal(got.indices, idx)
    np.testing.assert_array_equal(got.values, val)
    np.testing.assert_array_equal(got.locations, loc)
    top = tc.max_activating(model, X, "relu2", k=[4, 1], top=5, batch_size=batch_size,
                            descending=descending)
    np.testing.assert_array_equal(top.indices, idx[[4, 1], :5])
    assert top.values.shape == (2, 5) and top.locations.shape == (2, 5, 2)


def test_several_blocks_equal_a_brute_force_sort_of_their_forward_passes():
    """Past one block, the scores are those of one forward pass per block of BLOCK."""
    model = small_cnn(seed=1, dtype=np.float32)
    X = random_input(model, 2 * BLOCK + 9, seed=2)
    y = np.concatenate([model.forward(X[b:b + BLOCK], upto="relu2")
                        for b in range(0, len(X), BLOCK)])
    values = y.reshape(len(X), -1, y.shape[-1]).max(axis=1)                  # (N, C)
    order = np.argsort(-values, axis=0, kind="stable")
    got = tc.max_activating(model, X, "relu2", top=None, batch_size=50)
    np.testing.assert_array_equal(got.indices, order.T)
    np.testing.assert_array_equal(got.values, np.take_along_axis(values, order, 0).T)


def test_float64_rankings_equal_a_brute_force_sort_exactly():
    model = small_cnn(seed=1, dtype=np.float64)
    X = random_input(model, 40, seed=2)
    idx, val, loc = brute_force(model, X, "relu2")
    for batch_size in (1, 7, 64):
        got = tc.max_activating(model, X, "relu2", top=None, batch_size=batch_size)
        np.testing.assert_array_equal(got.indices, idx)
        np.testing.assert_array_equal(got.locations, loc)
        np.testing.assert_array_equal(got.values, val)


def near_ties(model, n, seed):
    """``n`` random inputs, exact copies of ten of them and near-copies of ten more (scaled
    by 1 + 2e-7, below float32 round-off), shuffled so that the copies fall in other blocks."""
    base = random_input(model, n, seed=seed)
    rng = np.random.default_rng(seed)
    exact, nudged = rng.choice(n, 10, replace=False), rng.choice(n, 10, replace=False)
    X = np.concatenate([base, base[exact], base[nudged] * np.float32(1 + 2e-7)])
    return X[rng.permutation(len(X))]


@pytest.mark.parametrize("layer", ["relu2", "logits"])
def test_ties_and_near_ties_keep_their_places_whatever_the_batch_size(layer):
    """The ranking and every score are the same bit for bit for every batch size, also among
    examples whose scores tie or differ by round-off only."""
    model = small_cnn(seed=5, dtype=np.float32)
    X = near_ties(model, 3 * BLOCK, seed=6)
    runs = [tc.max_activating(model, X, layer, top=None, batch_size=b)
            for b in (1, 7, BLOCK, 100, len(X))]
    gaps = np.abs(np.diff(runs[0].values, axis=1))
    assert (gaps <= 1e-6 * np.abs(runs[0].values[:, 1:])).any()   # the case has near-ties
    for got in runs[1:]:
        assert_same_ranking(got, runs[0])


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
