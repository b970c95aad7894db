"""Training: cross-entropy, softmax, SGD / Adam, divergence, determinism, a task a CNN can learn."""

import dataclasses
import io

import numpy as np
import pytest
from gradcheck import assert_gradient, numerical_gradient

import tinyconv as tc
from tinyconv.architectures import build, shift_images
from tinyconv.progress import Progress
from tinyconv.training import train_step


def bars(n, seed, size=10, length=5, noise=0.3):
    """Images of one short bar, horizontal (class 0) or vertical (class 1), at a random place,
    plus Gaussian noise -> ``(n, size, size, 1)`` float32, labels ``(n,)``."""
    rng = np.random.default_rng(seed)
    X = noise * rng.standard_normal((n, size, size, 1))
    y = rng.integers(0, 2, n)
    for i in range(n):
        r, c = rng.integers(0, size - length + 1), rng.integers(0, size)
        if y[i] == 0:
            X[i, c, r:r + length, 0] += 1.0         # horizontal: along a row
        else:
            X[i, r:r + length, c, 0] += 1.0         # vertical: along a column
    return X.astype(np.float32), y


def bar_model(seed=0):
    return tc.Sequential([
        tc.Conv2D(1, 4, 3, padding="same"), tc.ReLU(), tc.MaxPool2D(2),
        tc.Flatten(), tc.Dense(5 * 5 * 4, 2),
    ], input_shape=(10, 10, 1), seed=seed)


def tiny_model(seed=0):
    return tc.Sequential([tc.Conv2D(1, 3, 3), tc.ReLU(), tc.Flatten(), tc.Dense(3 * 4 * 4, 3)],
                         input_shape=(6, 6, 1), seed=seed)


# --------------------------------------------------------------------------- learning


def test_a_small_cnn_learns_horizontal_versus_vertical_bars():
    X, y = bars(600, seed=1)
    X_test, y_test = bars(400, seed=2)
    model = bar_model()
    history = tc.fit(model, X, y, epochs=4, batch_size=16, optimizer=tc.SGD(model, lr=0.05),
                     seed=0, validation=(X_test, y_test))
    assert history[-1]["loss"] < history[0]["loss"]
    assert {"epoch", "loss", "accuracy", "seconds", "val_loss", "val_accuracy"} <= set(history[-1])
    scores = tc.evaluate(model, X_test, y_test)
    assert scores["accuracy"] > 0.95, scores["confusion"]
    assert scores["accuracy"] == history[-1]["val_accuracy"]


def test_the_same_seed_gives_bit_identical_weights():
    X, y = bars(200, seed=3)
    runs = []
    for _ in range(2):
        model = bar_model(seed=5)
        tc.fit(model, X, y, epochs=2, batch_size=16, optimizer=tc.SGD(model, lr=0.05), seed=9)
        runs.append([layer.params[key] for layer, key in model.parameters()])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    other = bar_model(seed=5)
    tc.fit(other, X, y, epochs=2, batch_size=16, optimizer=tc.SGD(other, lr=0.05), seed=10)
    assert not np.array_equal(other.layers[0].params["W"], runs[0][0])


@pytest.mark.parametrize("make_optimizer", [
    lambda m: tc.SGD(m, lr=0.05, momentum=0.9),
    lambda m: tc.SGD(m, lr=0.05, momentum=0.0, weight_decay=1e-4),
    lambda m: tc.Adam(m, lr=1e-2),
], ids=["sgd-momentum", "sgd-plain", "adam"])
def test_each_optimizer_reduces_the_loss(make_optimizer, rng):
    X = rng.standard_normal((64, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = tiny_model()
    before = tc.evaluate(model, X, y)["loss"]
    tc.fit(model, X, y, epochs=15, batch_size=16, optimizer=make_optimizer(model))
    assert tc.evaluate(model, X, y)["loss"] < 0.7 * before


def one_dense(w, g):
    model = tc.Sequential([tc.Flatten(), tc.Dense(2, 1)], input_shape=(1, 2, 1))
    model.layers[1].params.update(W=np.array(w, np.float64).reshape(2, 1), b=np.zeros(1))
    model.layers[1].grads.update(W=np.array(g, np.float64).reshape(2, 1), b=np.zeros(1))
    return model, model.layers[1]


def test_sgd_momentum_follows_the_heavy_ball_rule():
    model, dense = one_dense([1.0, 2.0], [0.5, -1.0])
    opt = tc.SGD(model, lr=0.1, momentum=0.9)
    opt.step()                                   # v = -lr g; w = w + v
    np.testing.assert_allclose(dense.params["W"].ravel(), [0.95, 2.1])
    opt.step()                                   # same g: v = 0.9 v - lr g
    np.testing.assert_allclose(dense.params["W"].ravel(), [0.95 - 0.095, 2.1 + 0.19])


def test_adam_first_step_is_lr_times_the_sign():
    model, dense = one_dense([1.0, 2.0], [0.5, -1e-3])
    tc.Adam(model, lr=0.01).step()
    np.testing.assert_allclose(dense.params["W"].ravel(), [0.99, 2.01], rtol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # the overflow being tested
def test_divergence_raises_and_leaves_no_nan_in_the_weights(rng):
    X = rng.standard_normal((64, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = tiny_model()
    with pytest.raises(FloatingPointError, match="diverged"):
        tc.fit(model, X, y, epochs=3, batch_size=16, optimizer=tc.SGD(model, lr=1e30))
    for layer, key in model.parameters():
        assert np.isfinite(layer.params[key]).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # inf / inf inside the update
def test_a_step_with_non_finite_gradients_writes_nothing(rng):
    model = tiny_model()
    opt = tc.Adam(model)
    before = [layer.params[key].copy() for layer, key in model.parameters()]
    model.layers[0].grads["W"][0, 0, 0, 0] = np.inf
    with pytest.raises(FloatingPointError, match=r"conv1\.W"):
        opt.step()
    for (layer, key), old in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(layer.params[key], old)
    assert opt.t == 0


def test_train_step_returns_loss_and_correct_count(rng):
    model = tiny_model()
    X = rng.standard_normal((8, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    logits = model(X)
    loss, correct = train_step(model, tc.SGD(model, lr=1e-3), X, y)
    assert loss == pytest.approx(tc.cross_entropy(logits, y)[0])
    assert correct == int((logits.argmax(1) == y).sum())


# --------------------------------------------------------------------------- losses


def test_cross_entropy_with_huge_logits_is_finite():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [3.0, 1e4, -1e4]])
    y = np.array([1, 1, 1])
    loss, dz = tc.cross_entropy(z, y)
    assert np.isfinite(loss) and np.isfinite(dz).all()
    assert loss == pytest.approx(2e4 / 3)          # only the first example is wrong, by 2e4
    np.testing.assert_allclose(dz[0], [1 / 3, -1 / 3, 0], atol=1e-12)
    loss32, dz32 = tc.cross_entropy(z.astype(np.float32), y)
    assert np.isfinite(loss32) and np.isfinite(dz32).all() and dz32.dtype == np.float32


def test_cross_entropy_matches_a_direct_float64_computation(rng):
    z = 3 * rng.standard_normal((6, 5))
    y = rng.integers(0, 5, 6)
    loss, dz = tc.cross_entropy(z, y)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(6), y])), rel=1e-12)
    np.testing.assert_allclose(dz, (p - np.eye(5)[y]) / 6, rtol=1e-12, atol=1e-15)
    # and its gradient is the derivative of its loss (smooth, so a small step)
    num = numerical_gradient(lambda: np.array(tc.cross_entropy(z, y)[0]), z, np.array(1.0),
                             h=1e-5)
    assert_gradient(dz, num, "d loss / d logits")


def test_softmax_sums_to_one(rng):
    for z in (rng.standard_normal((4, 7)), 1e4 * rng.standard_normal((4, 7)),
              rng.standard_normal((3, 2)).astype(np.float32)):
        p = tc.softmax(z)
        assert (p >= 0).all() and p.dtype == z.dtype
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(tc.softmax(np.zeros((2, 4))), 0.25)
    np.testing.assert_allclose(tc.softmax(rng.standard_normal((3, 2)), axis=0).sum(axis=0), 1)


@pytest.mark.parametrize("labels, error, match", [
    (np.array([0, 3]), ValueError, r"labels: expected class labels in \[0, 3\)"),
    (np.array([0, -1]), ValueError, "labels"),
    (np.array([0.0, 1.0]), TypeError, "labels: expected integer class labels"),
    (np.array([0, 1, 2]), ValueError, r"labels: expected shape \(2,\)"),
])
def test_cross_entropy_checks_labels(labels, error, match):
    with pytest.raises(error, match=match):
        tc.cross_entropy(np.zeros((2, 3)), labels)


def test_cross_entropy_checks_logits():
    with pytest.raises(ValueError, match="logits: expected finite"):
        tc.cross_entropy(np.array([[np.nan, 0.0]]), [0])
    with pytest.raises(ValueError, match="logits: expected 2 dimensions"):
        tc.cross_entropy(np.zeros(3), [0])


# --------------------------------------------------------------------------- evaluate, fit


def test_evaluate_returns_a_confusion_matrix_that_sums_to_n(rng):
    model = tiny_model()
    X = rng.standard_normal((37, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 37)
    scores = tc.evaluate(model, X, y, batch_size=8)
    confusion = scores["confusion"]
    assert confusion.shape == (3, 3) and confusion.sum() == 37
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(y, minlength=3))
    assert scores["accuracy"] == pytest.approx(np.trace(confusion) / 37)
    logits = tc.predict(model, X)
    np.testing.assert_array_equal(scores["predictions"], logits.argmax(1))
    # BLAS blocks a matrix product by its number of rows, so a batch of 5 and a batch of 37
    # may round differently: equal to float32 round-off, not bit for bit
    in_batches, at_once = tc.predict(model, X, batch_size=5), model(X)
    np.testing.assert_allclose(in_batches, at_once, rtol=1e-5, atol=1e-6)
    top2 = np.sort(at_once, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4          # not a near-tie between two classes
    np.testing.assert_array_equal(in_batches.argmax(1)[clear], at_once.argmax(1)[clear])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"y": np.zeros(5, np.int64)}, ValueError, "y: expected shape"),
    ({"y": np.full(8, 3)}, ValueError, "y: expected class labels"),
    ({"X": np.zeros((8, 6, 6, 1), np.uint8)}, TypeError, "X"),
])
def test_fit_checks_its_arguments(rng, kwargs, error, match):
    model = tiny_model()
    args = {"X": rng.standard_normal((8, 6, 6, 1)), "y": rng.integers(0, 3, 8), **kwargs}
    with pytest.raises(error, match=match):
        tc.fit(model, args.pop("X"), args.pop("y"), **args)


@pytest.mark.parametrize("make, match", [
    (lambda m: tc.SGD(m, lr=0), "lr"),
    (lambda m: tc.SGD(m, lr=float("nan")), "lr"),
    (lambda m: tc.SGD(m, lr="0.1"), "lr"),
    (lambda m: tc.SGD(m, momentum=1.0), "momentum"),
    (lambda m: tc.Adam(m, betas=(0.9, 1.0)), "betas"),
    (lambda m: tc.SGD(m, momentum="0.9"), "momentum"),
    (lambda m: tc.SGD(m, momentum=None), "momentum"),
    (lambda m: tc.SGD(m, weight_decay=-1e-4), "weight_decay"),
    (lambda m: tc.SGD(m, weight_decay="1e-4"), "weight_decay"),
    (lambda m: tc.Adam(m, betas=0.9), "betas"),
    (lambda m: tc.Adam(m, betas=("0.9", 0.999)), "betas"),
    (lambda m: tc.Adam(m, betas=(0.9, 0.99, 0.999)), "betas"),
    (lambda m: tc.Adam(m, eps=0), "eps"),
    (lambda m: tc.Adam(m, eps=float("inf")), "eps"),
])
def test_optimizers_check_their_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make(tiny_model())
    tc.SGD(tiny_model(), lr=np.float32(0.1))                # any real number will do


def test_fit_calls_on_epoch_and_draws_progress_only_when_asked(rng, capsys):
    model = tiny_model()
    X, y = rng.standard_normal((20, 6, 6, 1)), rng.integers(0, 3, 20)
    seen = []
    tc.fit(model, X, y, epochs=2, batch_size=8, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2]
    assert capsys.readouterr().err == ""
    tc.fit(model, X, y, epochs=1, batch_size=8, progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_progress_bar_draws_to_its_stream():
    stream = io.StringIO()
    with Progress(4, "work", enabled=True, stream=stream) as bar:
        bar.update(2, loss=0.5, step=3)
        bar.update(2)
    out = stream.getvalue()
    assert "work" in out and "4/4" in out and "loss=0.5" in out and "step=3" in out
    assert out.endswith("\n")
    quiet = io.StringIO()
    with Progress(4, enabled=False, stream=quiet) as bar:
        bar.update(4)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("make", [lambda m: tc.SGD(m, lr=0.01), lambda m: tc.Adam(m)],
                         ids=["sgd", "adam"])
def test_a_step_keeps_the_parameters_dtype_after_astype(rng, make):
    # the optimizer's state was made for float64 parameters; the model is float32 since
    model = tiny_model().astype(np.float64)
    opt = make(model)
    model.astype(np.float32)
    X = rng.standard_normal((8, 6, 6, 1)).astype(np.float32)
    for _ in range(2):
        train_step(model, opt, X, rng.integers(0, 3, 8))
    assert {layer.params[k].dtype for layer, k in model.parameters()} == {np.dtype(np.float32)}


# --------------------------------------------------------------------------- recipes


def recipe_digits(n=64):
    images, labels = tc.load_mnist("bundled-train")
    return tc.to_float(images[:n]), labels[:n]


def test_train_recipe_is_the_per_epoch_loop_it_replaces():
    """The recipe's definition written out: one fit call per epoch, each with its own learning
    rate ``lr * decay^(e-1)`` and freshly shifted digits from ``default_rng(seed)``, shuffled
    by ``(seed, e)``. The shipped model was trained this way, so it stays reproducible."""
    recipe = dataclasses.replace(tc.MNIST_RECIPE, arch="small", epochs=2, batch_size=16,
                                 seed=3)
    X, y = recipe_digits()
    model, history = tc.train_recipe(recipe, X, y)
    by_hand = build("small", seed=3)
    # the shipped recipe's optimizer: SGD with heavy-ball momentum and L2 weight decay
    optimizer = tc.SGD(by_hand, lr=recipe.lr, momentum=recipe.momentum,
                       weight_decay=recipe.weight_decay)
    rng = np.random.default_rng(3)
    for epoch in (1, 2):
        optimizer.lr = recipe.lr * recipe.lr_decay ** (epoch - 1)
        X_epoch = shift_images(X, recipe.shift, rng)
        order = np.random.default_rng((3, epoch)).permutation(len(X))
        for start in range(0, len(X), 16):
            batch = order[start:start + 16]
            train_step(by_hand, optimizer, X_epoch[batch], y[batch])
    for a, b in zip(model.layers, by_hand.layers, strict=True):
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
    assert [r["lr"] for r in history] == [recipe.lr, recipe.lr * recipe.lr_decay]


def test_a_recipe_is_plain_fields_and_checks_them():
    sgd = dataclasses.replace(tc.MNIST_RECIPE, optimizer="sgd", momentum=0.5,
                              weight_decay=1e-3, schedule="cosine", epochs=4)
    model = sgd.build()
    optimizer = sgd.make_optimizer(model)
    assert isinstance(optimizer, tc.SGD)
    assert (optimizer.momentum, optimizer.weight_decay) == (0.5, 1e-3)
    assert [sgd.lr_at(e) for e in (1, 3)] == pytest.approx([sgd.lr, sgd.lr / 2])
    assert dataclasses.replace(sgd, shift=0).augment() is None
    for field, bad in [("optimizer", "rmsprop"), ("schedule", "step"), ("arch", "big"),
                       ("lr", 0.0), ("lr_decay", 1.5), ("epochs", 0), ("shift", -1)]:
        with pytest.raises(ValueError, match=field):
            dataclasses.replace(tc.MNIST_RECIPE, **{field: bad})
    with pytest.raises(TypeError, match="recipe"):
        tc.train_recipe({"lr": 1e-3}, *recipe_digits(8))


def test_fit_checks_its_schedule_and_augmentation(rng):
    X = rng.standard_normal((8, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    with pytest.raises(TypeError, match="lr_schedule"):
        tc.fit(tiny_model(), X, y, lr_schedule=0.1)
    with pytest.raises(ValueError, match="lr_schedule"):
        tc.fit(tiny_model(), X, y, lr_schedule=lambda epoch: -1.0)
    with pytest.raises(ValueError, match="augment"):
        tc.fit(tiny_model(), X, y, augment=lambda X, rng: X[:, :4])


def test_progress_without_a_total_shows_the_count():
    stream = io.StringIO()
    with Progress(None, "downloading", enabled=True, stream=stream) as bar:
        bar.update(1500)
    out = stream.getvalue()
    assert "downloading 1500" in out and "%" not in out


# --------------------------------------------------------------------------- fit checks first


def test_an_optimizer_of_another_model_is_refused_before_training(rng):
    model, other = tiny_model(), tiny_model(seed=1)
    X, y = rng.standard_normal((8, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, 8)
    before = [p.copy() for p in (layer.params[key] for layer, key in model.parameters())]
    with pytest.raises(ValueError, match="optimizer"):
        tc.fit(model, X, y, optimizer=tc.Adam(other))
    for (layer, key), old in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(layer.params[key], old)


def test_an_optimizer_made_before_a_reload_is_refused(rng, tmp_path):
    model = tiny_model()
    optimizer = tc.SGD(model, lr=0.1)
    tc.save(model, tmp_path / "m.npz")
    reloaded = tc.load(tmp_path / "m.npz")
    X, y = rng.standard_normal((8, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, 8)
    with pytest.raises(ValueError, match="optimizer"):
        tc.fit(reloaded, X, y, optimizer=optimizer)


def test_an_optimizer_still_fits_its_model_after_astype(rng):
    """astype replaces the arrays but not the layers: the optimizer still trains the model
    (the negative control of the two tests above)."""
    model = tiny_model()
    optimizer = tc.Adam(model, lr=0.05)
    model.astype(np.float64)
    X, y = rng.standard_normal((16, 6, 6, 1)), rng.integers(0, 3, 16)
    before = model.layers[0].params["W"].copy()
    tc.fit(model, X, y, epochs=2, optimizer=optimizer, progress=False)
    assert not np.array_equal(model.layers[0].params["W"], before)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"optimizer": "adam"}, TypeError, "optimizer"),
    ({"validation": (np.zeros((4, 6, 6, 1)),)}, ValueError, "validation"),
    ({"validation": np.zeros((4, 6, 6, 1))}, ValueError, "validation"),
    ({"validation": (np.zeros((4, 5, 5, 1)), np.zeros(4, np.int64))}, ValueError, "validation"),
    ({"validation": (np.zeros((4, 6, 6, 1)), np.full(4, 7))}, ValueError, "validation"),
    ({"validation": (np.full((4, 6, 6, 1), np.nan), np.zeros(4, np.int64))}, ValueError,
     "validation"),
    ({"on_epoch": "print"}, TypeError, "on_epoch"),
    ({"lr_schedule": 0.1}, TypeError, "lr_schedule"),
    ({"augment": True}, TypeError, "augment"),
    ({"progress": "yes"}, TypeError, "progress"),
    ({"X": np.zeros((8, 5, 5, 1))}, ValueError, "X"),
    ({"X": np.full((8, 6, 6, 1), np.inf)}, ValueError, "X"),
    ({"X": np.zeros((0, 6, 6, 1)), "y": np.zeros(0, np.int64)}, ValueError, "X"),
])
def test_every_fit_argument_is_checked_before_the_first_batch(rng, kwargs, error, match,
                                                              monkeypatch):
    steps = []
    monkeypatch.setattr(tc.training, "train_step", lambda *a: steps.append(1) or (1.0, 0))
    model = tiny_model()
    args = {"X": rng.standard_normal((8, 6, 6, 1)), "y": rng.integers(0, 3, 8), **kwargs}
    with pytest.raises(error, match=match):
        tc.fit(model, args.pop("X"), args.pop("y"), progress=False, **args)
    assert steps == []


def test_a_model_without_class_scores_is_refused_up_front(rng):
    maps = tc.Sequential([tc.Conv2D(1, 3, 3), tc.ReLU()], input_shape=(6, 6, 1), seed=0)
    X = rng.standard_normal((4, 6, 6, 1))
    with pytest.raises(ValueError, match=r"model: .*\(N, K\)"):
        tc.fit(maps, X, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"model: .*\(N, K\)"):
        tc.evaluate(maps, X, np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="model"):
        tc.fit("model", X, np.zeros(4, np.int64))
