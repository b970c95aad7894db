"""Training: softmax cross-entropy, SGD with momentum, Adam, the fit / evaluate loops, and
the recipe of the shipped model (:data:`MNIST_RECIPE`, :func:`train_recipe`).

``fit`` is deterministic: the same model seed, data, and ``seed`` give bit-identical weights.
A step whose loss, gradients or updated weights are not finite raises ``FloatingPointError``
before anything is written, so a diverging run never leaves NaN weights behind.
"""

import math
import numbers
import time
from dataclasses import dataclass

import numpy as np

from .architectures import ARCHITECTURES, build, shift_images
from .checks import check_array, check_choice, check_int
from .layers import softmax
from .progress import Progress


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


def _real(v, name, lo, hi=np.inf, lo_open=False, what=None):
    """``v`` as a float if it is a real number (not a bool) in ``[lo, hi)`` (``(lo, hi)`` with
    ``lo_open``), else ``ValueError`` naming ``name``: an optimizer's hyper-parameters."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v) \
        and (v > lo if lo_open else v >= lo) and v < hi
    if not ok:
        what = what or f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g})"
        raise ValueError(f"{name}: expected {what}, got {v!r}")
    return float(v)


class Optimizer:
    """Updates ``layer.params[key]`` from ``layer.grads[key]`` for every parameter of a model."""

    def __init__(self, model, lr):
        self.model = model
        self.lr = _real(lr, "lr", 0, lo_open=True, what="a positive finite number")
        self.slots = [(layer, key) for layer, key in model.parameters()]

    def step(self):
        """Apply one update. All new values are computed and checked before any is written."""
        # in the parameter's own dtype: state made before a model.astype() must not turn a
        # float32 model into float64 one step later
        new = [self._update(i, layer.params[key], layer.grads[key])
               .astype(layer.params[key].dtype, copy=False)
               for i, (layer, key) in enumerate(self.slots)]
        for (layer, key), value in zip(self.slots, new, strict=True):
            if not np.isfinite(value).all():
                raise FloatingPointError(
                    f"training diverged: {layer.name}.{key} would become NaN/inf "
                    f"(lr={self.lr}); nothing was written — lower the learning rate")
        for (layer, key), value in zip(self.slots, new, strict=True):
            layer.params[key] = value
        self._commit()

    def _commit(self):
        """Make the optimizer's own state of this step current (after the finite check)."""


class SGD(Optimizer):
    """SGD with (heavy-ball) momentum: ``v = mu v - lr g``; ``w = w + v``.

    Parameters
    ----------
    model : a :class:`~tinyconv.model.Sequential`.
    lr : learning rate; momentum : ``mu`` in [0, 1); weight_decay : L2 factor added to ``g``.
    """

    def __init__(self, model, lr=0.01, momentum=0.9, weight_decay=0.0):
        super().__init__(model, lr)
        self.momentum = _real(momentum, "momentum", 0, 1)
        self.weight_decay = _real(weight_decay, "weight_decay", 0,
                                  what="a finite number >= 0")
        self.velocity = [np.zeros_like(layer.params[key]) for layer, key in self.slots]
        self._pending = [None] * len(self.slots)

    def _update(self, i, w, g):
        if self.weight_decay:
            g = g + self.weight_decay * w
        self._pending[i] = v = self.momentum * self.velocity[i] - self.lr * g
        return w + v

    def _commit(self):
        self.velocity, self._pending = self._pending, [None] * len(self.slots)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015): bias-corrected first and second moments of the gradient.

    ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
    ``w -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``, ``v_hat`` alike.
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(model, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
        self.b1, self.b2 = (_real(b, "betas", 0, 1, what="two numbers in [0, 1)")
                            for b in betas)
        self.eps = _real(eps, "eps", 0, lo_open=True, what="a positive finite number")
        self.t = 0
        self.m = [np.zeros_like(layer.params[key]) for layer, key in self.slots]
        self.v = [np.zeros_like(layer.params[key]) for layer, key in self.slots]
        self._pending = [None] * len(self.slots)

    def _update(self, i, w, g):
        t = self.t + 1
        m = self.b1 * self.m[i] + (1 - self.b1) * g
        v = self.b2 * self.v[i] + (1 - self.b2) * g * g
        self._pending[i] = (m, v)
        m_hat = m / (1 - self.b1 ** t)
        v_hat = v / (1 - self.b2 ** t)
        return (w - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(w.dtype)

    def _commit(self):
        self.t += 1
        self.m = [m for m, _ in self._pending]
        self.v = [v for _, v in self._pending]


def train_step(model, optimizer, xb, yb):
    """One mini-batch: forward, loss, backward (``rule="gradient"``), update.

    Returns ``(loss, number of correct predictions)``.
    """
    logits = model.forward(xb)
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


def fit(model, X, y, epochs=1, batch_size=64, optimizer=None, seed=0, validation=None,
        progress=None, on_epoch=None, lr_schedule=None, augment=None):
    """Train ``model`` on ``(X, y)`` with mini-batches shuffled by ``seed``.

    Parameters
    ----------
    X : (N, H, W, C_0) floating-point images (see :func:`tinyconv.to_float`).
    y : (N,) int class labels in ``[0, K)``, ``K`` = the model's output size.
    epochs, batch_size : ints >= 1.
    optimizer : an :class:`SGD` or :class:`Adam` bound to ``model`` (default ``Adam(model)``).
    seed : int >= 0; epoch ``e`` is shuffled by ``default_rng((seed, e))`` and ``augment``
        draws from ``default_rng(seed)``, so with the model's own seed this fixes the run bit
        for bit, and epoch ``e`` is the same whether it runs in one call or one call per epoch.
    validation : optional ``(X_val, y_val)`` evaluated after each epoch.
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
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    X = check_array(X, "X", ndim=4)
    y = check_labels(y, "y", len(X), model.output_shapes[-1][0])
    for name, f in (("lr_schedule", lr_schedule), ("augment", augment)):
        if f is not None and not callable(f):
            raise TypeError(f"{name}: expected a callable or None, got {type(f).__name__}")
    optimizer = optimizer if optimizer is not None else Adam(model)
    augment_rng = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        if lr_schedule is not None:
            optimizer.lr = _real(lr_schedule(epoch), "lr_schedule", 0, lo_open=True,
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
    optimizer: str = "adam"
    lr: float = 2e-3
    schedule: str = "exponential"
    lr_decay: float = 0.85
    momentum: float = 0.9
    weight_decay: float = 0.0
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
        _real(self.lr, "lr", 0, lo_open=True, what="a positive finite number")
        if _real(self.lr_decay, "lr_decay", 0, lo_open=True, what="a number in (0, 1]") > 1:
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
    bit for bit (same machine and library versions), as ``tinyconv train`` does.

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
    """Logits ``y_(L)`` for ``X`` of shape ``(N, H, W, C_0)``, computed in batches -> ``(N, K)``."""
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    X = check_array(X, "X", ndim=4)
    return np.concatenate([model.forward(X[i:i + batch_size])
                           for i in range(0, len(X), batch_size)])


def evaluate(model, X, y, batch_size=256):
    """Loss, accuracy and predictions of ``model`` on ``(X, y)``.

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
