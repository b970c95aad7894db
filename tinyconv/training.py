"""Training: softmax cross-entropy, the fit / evaluate loops, and the recipe of the shipped
model (:data:`MNIST_RECIPE`, :func:`train_recipe`). The optimizers (SGD with momentum, Adam)
live in :mod:`tinyconv.optimizers` and are re-exported here.

``fit`` is deterministic: the same model seed, data, and ``seed`` give bit-identical weights
with the same BLAS kernels and BLAS thread count (numba's thread count never matters; when
the others do: README, "The shipped model and `tinyconv train`").
A step whose loss, gradients or updated weights are not finite raises ``FloatingPointError``
before anything is written, so a diverging run never leaves NaN weights behind.
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from .architectures import ARCHITECTURES, build, shift_images
from .checks import check_array, check_choice, check_int
from .layers import softmax
from .model import Sequential
from .optimizers import SGD, Adam, Optimizer, real_number
from .progress import Progress
from .units import n_classes


def check_labels(labels, name, n, n_classes):
    """Labels as int64 ``(n,)`` with values in ``[0, n_classes)``; ``ValueError`` otherwise."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class labels, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) to match the inputs, got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name}: expected class labels in [0, {n_classes}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient, by log-sum-exp (finite for any finite z).

    Parameters
    ----------
    logits : (N, K) pre-softmax scores ``z``.
    labels : (N,) ints in ``[0, K)``.

    Returns
    -------
    loss : float, ``mean_i (logsumexp(z_i) - z_i,y_i)``.
    dlogits : (N, K), ``(softmax(z) - onehot(y)) / N``.
    """
    logits = check_array(logits, "logits", ndim=2)
    N, K = logits.shape
    labels = check_labels(labels, "labels", N, K)
    shifted = logits - logits.max(axis=1, keepdims=True)        # largest entry is 0
    log_norm = np.log(np.exp(shifted).sum(axis=1))              # in [0, log K]
    loss = float(np.mean(log_norm - shifted[np.arange(N), labels]))
    dlogits = softmax(logits)
    dlogits[np.arange(N), labels] -= 1
    return loss, dlogits / N


def train_step(model, optimizer, xb, yb):
    """One mini-batch: forward, loss, backward (``rule="gradient"``), update.

    Returns ``(loss, number of correct predictions)``.
    """
    logits = model.forward(xb, param_grads=True)
    # weights that are huge but finite overflow here first: report the divergence, not the
    # non-finite logits that cross_entropy would reject as bad input
    if not np.isfinite(logits).all():
        raise FloatingPointError(f"training diverged: the logits overflowed to NaN/inf "
                                 f"(lr={optimizer.lr}); nothing was written — lower the "
                                 "learning rate")
    loss, dlogits = cross_entropy(logits, yb)
    if not np.isfinite(loss):
        raise FloatingPointError(f"training diverged: the loss is {loss} (lr={optimizer.lr}); "
                                 "nothing was written — lower the learning rate")
    model.backward(dlogits, rule="gradient", input_grad=False)   # d loss / d x is not needed
    optimizer.step()
    return loss, int((logits.argmax(axis=1) == yb).sum())


def check_model(model, what):
    """``K`` of a :class:`~tinyconv.model.Sequential` whose output is ``(N, K)`` class
    scores; ``TypeError`` / ``ValueError`` naming ``model`` otherwise."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a tinyconv Sequential, got {type(model).__name__}")
    return n_classes(model, what)


def check_inputs(model, X, name):
    """``X`` as a non-empty, finite ``(N, H, W, C_0)`` float array of the model's input."""
    return check_array(X, name, shape=(None, *model.input_shape))


def check_validation(model, validation, K):
    """``validation=(X_val, y_val)`` checked like ``X`` and ``y``, naming ``validation``."""
    if not isinstance(validation, (tuple, list)) or len(validation) != 2:
        raise ValueError(f"validation: expected a pair (X_val, y_val), got "
                         f"{type(validation).__name__}"
                         + (f" of length {len(validation)}"
                            if isinstance(validation, (tuple, list)) else ""))
    X_val = check_inputs(model, validation[0], "validation[0] (X_val)")
    y_val = check_labels(validation[1], "validation[1] (y_val)", len(X_val), K)
    return X_val, y_val


def check_optimizer(optimizer, model):
    """``optimizer`` if it updates exactly ``model``'s parameters.

    An optimizer holds ``(layer, key)`` slots and reads ``layer.params[key]`` afresh at each
    step, so it keeps working after ``model.astype()`` (same layers, new arrays); one made for
    another model, or for this model before ``tinyconv.load`` made new layers, would update
    arrays the model never reads and report a flat loss. Layers are compared by identity.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer: expected a tinyconv SGD or Adam (or None), got "
                        f"{type(optimizer).__name__}")
    mine = [(id(layer), key) for layer, key in model.parameters()]
    theirs = [(id(layer), key) for layer, key in optimizer.slots]
    if mine != theirs:
        raise ValueError("optimizer: it was made for another model (or for this one before "
                         "it was reloaded), so it would update arrays this model does not "
                         f"use; make a new one with {type(optimizer).__name__}(model, ...)")
    return optimizer


def fit(model, X, y, epochs=1, batch_size=64, optimizer=None, seed=0, validation=None,
        progress=None, on_epoch=None, lr_schedule=None, augment=None):
    """Train ``model`` on ``(X, y)`` with mini-batches shuffled by ``seed``.

    Parameters
    ----------
    model : a :class:`~tinyconv.model.Sequential` whose output ``y_(L)`` is ``(N, K)``
        class scores (refused before any work otherwise).
    X : (N, H, W, C_0) finite floating-point images (see :func:`tinyconv.to_float`).
    y : (N,) int class labels in ``[0, K)``, ``K`` = the model's output size.
    epochs, batch_size : ints >= 1.
    optimizer : an :class:`SGD` or :class:`Adam` made for this ``model`` (default
        ``Adam(model)``); one made for another model, or for this one before a reload, is
        refused (``ValueError``). ``model.astype()`` keeps it valid.
    seed : int >= 0; epoch ``e`` is shuffled by ``default_rng((seed, e))`` and ``augment``
        draws from ``default_rng(seed)``, so with the model's own seed this fixes the run bit
        for bit, and epoch ``e`` is the same whether it runs in one call or one call per epoch.
    validation : optional ``(X_val, y_val)`` evaluated after each epoch.

    Every argument is checked before the first batch.
    progress : True / False to force the progress bar; None shows it on a terminal.
    on_epoch : optional callable ``f(record)`` called after each epoch (e.g. to log).
    lr_schedule : optional callable ``f(epoch) -> lr`` (epochs count from 1), set on the
        optimizer before each epoch; None keeps the optimizer's ``lr``.
    augment : optional callable ``f(X, rng) -> X'`` (same shape), applied to the training
        images afresh before each epoch, e.g. random shifts
        (:func:`~tinyconv.architectures.shift_images`).

    Returns
    -------
    history : list of dicts, one per epoch: ``epoch, lr, loss, accuracy, seconds`` and, with
    validation, ``val_loss, val_accuracy``.
    """
    # every argument is checked here, before the first batch: a mistake in `validation` or
    # `on_epoch` must not surface only after an epoch of work
    K = check_model(model, "fit")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    X = check_inputs(model, X, "X")
    y = check_labels(y, "y", len(X), K)
    if validation is not None:
        validation = check_validation(model, validation, K)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress: expected True, False or None, got {progress!r}")
    for name, f in (("lr_schedule", lr_schedule), ("augment", augment),
                    ("on_epoch", on_epoch)):
        if f is not None and not callable(f):
            raise TypeError(f"{name}: expected a callable or None, got {type(f).__name__}")
    optimizer = Adam(model) if optimizer is None else check_optimizer(optimizer, model)
    augment_rng = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        if lr_schedule is not None:
            optimizer.lr = real_number(lr_schedule(epoch), "lr_schedule", 0, lo_open=True,
                                 what=f"a positive finite learning rate for epoch {epoch}")
        X_epoch = X if augment is None else check_array(
            augment(X, augment_rng), "augment", shape=X.shape)
        order = np.random.default_rng((seed, epoch)).permutation(len(X))
        total_loss = correct = seen = 0
        with Progress(len(X), f"epoch {epoch}/{epochs}", enabled=progress) as bar:
            for start in range(0, len(X), batch_size):
                batch = order[start:start + batch_size]
                loss, ok = train_step(model, optimizer, X_epoch[batch], y[batch])
                total_loss += loss * len(batch)
                correct += ok
                seen += len(batch)
                bar.update(len(batch), loss=total_loss / seen, acc=correct / seen)
        record = {"epoch": epoch, "lr": optimizer.lr, "loss": total_loss / seen,
                  "accuracy": correct / seen, "seconds": time.perf_counter() - t0}
        if validation is not None:
            scores = evaluate(model, *validation)
            record.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return history


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    """How a model is trained, as plain fields: everything ``tinyconv train`` decides.

    :func:`train_recipe` turns a recipe into a trained model; ``tinyconv train`` builds one
    from its options (whose defaults are :data:`MNIST_RECIPE`) and calls it, so a script
    that calls ``train_recipe`` with the same recipe and digits gets the same weights bit for
    bit. Change a recipe with ``dataclasses.replace(MNIST_RECIPE, epochs=3)``.

    Attributes
    ----------
    arch : a name of :data:`tinyconv.architectures.ARCHITECTURES` (``"mnist"``, ``"small"``).
    seed : int >= 0; seeds the weights (``build(arch, seed)``), the shuffling and the shifts.
    optimizer : ``"adam"`` (Kingma & Ba 2015) or ``"sgd"`` (heavy-ball momentum).
    lr : learning rate of the first epoch.
    schedule : ``"exponential"``: ``lr * lr_decay^(e - 1)`` in epoch ``e``; ``"cosine"``:
        ``lr * (1 + cos(pi (e - 1) / epochs)) / 2`` (``lr_decay`` unused).
    lr_decay : factor in (0, 1] per epoch of the exponential schedule (1: constant).
    momentum, weight_decay : SGD's momentum ``mu`` in [0, 1) and L2 factor ``>= 0``
        (unused by Adam).
    batch_size, epochs : ints >= 1.
    shift : each epoch, every training digit is shifted by up to ``shift`` pixels
        (:func:`~tinyconv.architectures.shift_images`); 0 turns augmentation off.
    """

    arch: str = "mnist"
    seed: int = 0
    optimizer: str = "sgd"
    lr: float = 0.05
    schedule: str = "exponential"
    lr_decay: float = 0.85
    momentum: float = 0.9
    weight_decay: float = 5e-3
    batch_size: int = 32
    epochs: int = 15
    shift: int = 2

    def __post_init__(self):
        check_choice(self.arch, "arch", ARCHITECTURES)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_choice(self.schedule, "schedule", SCHEDULES)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.shift, "shift", minimum=0)
        real_number(self.lr, "lr", 0, lo_open=True, what="a positive finite number")
        if real_number(self.lr_decay, "lr_decay", 0, lo_open=True, what="a number in (0, 1]") > 1:
            raise ValueError(f"lr_decay: expected a number in (0, 1], got {self.lr_decay!r}")

    def lr_at(self, epoch):
        """The learning rate of epoch ``epoch`` (counting from 1)."""
        if self.schedule == "cosine":
            return self.lr * (1 + math.cos(math.pi * (epoch - 1) / self.epochs)) / 2
        return self.lr * self.lr_decay ** (epoch - 1)

    def build(self):
        """The untrained model: ``build(arch, seed)``."""
        return build(self.arch, seed=self.seed)

    def make_optimizer(self, model):
        """An :class:`Adam` or :class:`SGD` bound to ``model`` with this recipe's fields."""
        if self.optimizer == "sgd":
            return SGD(model, lr=self.lr, momentum=self.momentum,
                       weight_decay=self.weight_decay)
        return Adam(model, lr=self.lr)

    def augment(self):
        """The ``augment=`` of :func:`fit`: random shifts of up to ``shift`` pixels, or None."""
        if not self.shift:
            return None

        def shift(X, rng):
            return shift_images(X, self.shift, rng)
        return shift

    def describe(self):
        """One line, e.g. ``Adam lr=0.002 x 0.85 per epoch, batch size 32, 15 epochs, …``."""
        name = {"adam": "Adam", "sgd": "SGD"}[self.optimizer]
        text = f"{name} lr={self.lr:g}"
        if self.optimizer == "sgd":
            text += f" momentum {self.momentum:g}, weight decay {self.weight_decay:g},"
        if self.schedule == "cosine":
            text += " cosine schedule"
        elif self.lr_decay < 1:
            text += f" x {self.lr_decay:g} per epoch"
        text += (f", batch size {self.batch_size}, {self.epochs} "
                 f"epoch{'s' * (self.epochs > 1)}, seed {self.seed}")
        return text + (f", random shifts <= {self.shift} px" if self.shift else "")


OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("exponential", "cosine")

#: The recipe of the shipped ``tinyconv/data/mnist_cnn.npz`` (``tc.pretrained("mnist")``),
#: trained on the 4,000 bundled training digits.
MNIST_RECIPE = Recipe()


def train_recipe(recipe, X, y, validation=None, model=None, progress=None, on_epoch=None):
    """Train by ``recipe``: build the model, make its optimizer, and :func:`fit` with the
    recipe's schedule and augmentation.

    ``train_recipe(MNIST_RECIPE, *bundled training digits)`` reproduces the shipped model
    bit for bit, as ``tinyconv train`` does, with the library versions and BLAS kernels it
    was trained with (measured with 1 and 2 BLAS and numba threads; README, "The shipped
    model and `tinyconv train`").

    Parameters
    ----------
    recipe : a :class:`Recipe`.
    X, y : (N, 28, 28, 1) float images (``to_float``) and (N,) labels, as for :func:`fit`.
    validation, progress, on_epoch : as for :func:`fit`.
    model : the untrained model (default ``recipe.build()``; pass it to report on it first).

    Returns
    -------
    ``(model, history)``: the trained :class:`~tinyconv.model.Sequential` and :func:`fit`'s
    history.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe: expected a tinyconv Recipe, got {type(recipe).__name__}")
    model = recipe.build() if model is None else model
    history = fit(model, X, y, epochs=recipe.epochs, batch_size=recipe.batch_size,
                  optimizer=recipe.make_optimizer(model), seed=recipe.seed,
                  validation=validation, progress=progress, on_epoch=on_epoch,
                  lr_schedule=recipe.lr_at, augment=recipe.augment())
    return model, history


def predict(model, X, batch_size=256):
    """Logits ``y_(L)`` for ``X`` of shape ``(N, H, W, C_0)``, computed in batches -> ``(N, K)``.

    The result equals ``model(X)`` to the round-off of the model's dtype, not bit for bit:
    BLAS may take another kernel or blocking for a matrix product with another number of
    rows (OpenBLAS sums a small product in another order), so another ``batch_size`` may
    round the last bits differently (about 1e-7 relative in float32). ``argmax`` agrees
    except between classes whose scores tie to that round-off.
    """
    check_model(model, "predict")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    X = check_inputs(model, X, "X")
    return np.concatenate([model.forward(X[i:i + batch_size])
                           for i in range(0, len(X), batch_size)])


def evaluate(model, X, y, batch_size=256):
    """Loss, accuracy and predictions of ``model`` on ``(X, y)``.

    The logits come from :func:`predict` in batches of ``batch_size``: the loss matches an
    all-at-once computation to round-off, and the predictions except at near-ties.

    Returns
    -------
    dict with ``loss`` (float), ``accuracy`` (float in [0, 1]), ``predictions`` (N,) ints and
    ``confusion`` (K, K) ints, rows = true class, columns = predicted class.
    """
    logits = predict(model, X, batch_size)
    N, K = logits.shape
    y = check_labels(y, "y", N, K)
    loss, _ = cross_entropy(logits, y)
    pred = logits.argmax(axis=1)
    confusion = np.zeros((K, K), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    return {"loss": loss, "accuracy": float((pred == y).mean()), "predictions": pred,
            "confusion": confusion}
