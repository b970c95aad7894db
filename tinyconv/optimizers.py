"""The optimizers: SGD with (heavy-ball) momentum and Adam, over a model's ``(layer, key)``
parameter slots.

An optimizer reads ``layer.params[key]`` and ``layer.grads[key]`` afresh at every step, so it
stays bound to the *layers* of the model it was made for (``model.astype()`` swaps the arrays,
not the layers); :func:`tinyconv.training.fit` refuses one made for other layers.
"""

import numbers

import numpy as np


def real_number(v, name, lo, hi=np.inf, lo_open=False, what=None):
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
        self.lr = real_number(lr, "lr", 0, lo_open=True, what="a positive finite number")
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
        self.momentum = real_number(momentum, "momentum", 0, 1)
        self.weight_decay = real_number(weight_decay, "weight_decay", 0,
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
        self.b1, self.b2 = (real_number(b, "betas", 0, 1, what="two numbers in [0, 1)")
                            for b in betas)
        self.eps = real_number(eps, "eps", 0, lo_open=True, what="a positive finite number")
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
