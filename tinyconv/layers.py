"""Layers: Conv2D, ReLU, MaxPool2D, Flatten, Dense — each backward right under its forward.

The protocol every layer follows, and what they share (padding, geometry, the backward
rules): :mod:`tinyconv.layer`. The two windowed layers have a module each,
:mod:`tinyconv.conv` and :mod:`tinyconv.pool`; this module has the others and gathers all
five, so ``tinyconv.layers.Conv2D`` and friends are where they always were.

Activations are ``(N, H, W, C)`` (the lecture's ``y_(l),idx,k``, feature index ``k`` last),
conv weights ``(kh, kw, C_in, C_out)``. The three backward rules differ only inside ReLU
(:func:`relu_backward`; Springenberg et al. 2014, Fig. 1); convolution always goes back by
the transposed convolution with the same filters and max-pooling always goes back through
its switches. The definitions in plain loops are in :mod:`tinyconv.reference`.
"""

import numpy as np

from .checks import check_array, check_dtype, check_int
from .conv import Conv2D
from .layer import (
    RULES,
    Geometry,
    Layer,
    _he_normal,
    check_rule,
    own_passes_opt_out,
    resolve_padding,
)
from .pool import MaxPool2D

__all__ = ["LAYER_TYPES", "RULES", "Conv2D", "Dense", "Flatten", "Geometry", "Layer",
           "MaxPool2D", "ReLU", "check_rule", "relu_backward", "resolve_padding", "softmax"]


def softmax(z, axis=-1):
    """Numerically stable softmax: ``exp(z - max z) / sum exp(z - max z)``.

    Parameters
    ----------
    z : (N, K) logits (any shape; normalised along ``axis``).

    Returns
    -------
    p : same shape as ``z``, non-negative, sums to 1 along ``axis``.
    """
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)



# --------------------------------------------------------------------------- ReLU


def relu_backward(dy, x, rule, out=None):
    """The one place where the three backward rules differ.

    Parameters
    ----------
    dy : signal arriving from above, same shape as ``x``.
    x : the ReLU's forward input.
    rule : ``"gradient"`` ``dy * (x > 0)`` (true derivative, ReLU'(0) = 0);
        ``"deconvnet"`` ``dy * (dy > 0)`` (Zeiler & Fergus: rectify the signal going back);
        ``"guided"`` ``dy * (x > 0) * (dy > 0)`` (Springenberg et al.: both masks).
    out : optional array to write the result into (``dy`` itself may be it).
    """
    if rule == "gradient":
        mask = x > 0
    elif rule == "deconvnet":
        mask = dy > 0
    else:
        mask = (x > 0) & (dy > 0)
    return np.multiply(dy, mask, out=out)


class ReLU(Layer):
    """``y = max(x, 0)`` elementwise; any input shape."""

    def __init__(self, name=None):
        super().__init__(name)
        self._x = None

    pointwise = True
    rectifier = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own_passes_opt_out(cls, "rectifier", ("forward", "backward", "keep"))

    def forward_unpadded(self, x):
        """``max(x, 0)``, nothing cached."""
        return np.maximum(x, 0)

    def forward(self, x, check=True):
        """``(N, ...) -> (N, ...)``; caches the input for the backward masks."""
        if check:
            x = check_array(x, "x")
        self.keep(x)
        return np.maximum(x, 0)

    def keep(self, x):
        """Cache ``x`` for the backward masks without computing ``max(x, 0)``: the layer
        above computes it in its own pass (:attr:`Layer.takes_rectifier`)."""
        self._x = x

    def backward(self, dy, rule="gradient", check=True, overwrite=False):
        """See :func:`relu_backward`. ``overwrite``: ``dy`` is a new array of this backward
        pass that nothing else holds (the output of the max-pool above,
        :attr:`Layer.takes_rectifier`), and the result is written into it."""
        self._need_cache("_x")
        if check:
            check_rule(rule)
            dy = check_array(dy, "dy", shape=self._x.shape)
        return relu_backward(dy, self._x, rule, out=dy if overwrite else None)


# --------------------------------------------------------------------------- Flatten


class Flatten(Layer):
    """``(N, H, W, C) -> (N, H*W*C)`` in C order (the unit ``(row, col, k)`` goes to
    ``(row * W + col) * C + k``)."""

    affine = True

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def geometry(self, in_shape):
        return None

    def forward(self, x, check=True):
        if check:
            x = check_array(x, "x")
        self._in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, rule="gradient", check=True):
        """``(N, H*W*C) -> (N, H, W, C)``."""
        self._need_cache("_in_shape")
        if check:
            check_rule(rule)
            dy = check_array(dy, "dy", shape=(self._in_shape[0], int(np.prod(self._in_shape[1:]))))
        return dy.reshape(self._in_shape)

    _in_shape = None


# --------------------------------------------------------------------------- Dense


class Dense(Layer):
    """Fully connected: ``y = x W + b``, ``(N, in) -> (N, out)``; ``W`` is ``(in, out)``."""

    affine = True

    def __init__(self, in_features, out_features, name=None, rng=None, dtype=np.float32):
        super().__init__(name)
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.out_features = check_int(out_features, "out_features", minimum=1)
        self._dtype0 = check_dtype(dtype)
        self.init_params(rng)
        self._x = None

    def init_params(self, rng):
        dtype = self.dtype or self._dtype0
        self.params = {
            "W": _he_normal(rng, (self.in_features, self.out_features), self.in_features, dtype),
            "b": np.zeros(self.out_features, dtype=dtype)}
        self.grads = {key: np.zeros_like(p) for key, p in self.params.items()}

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "name": self.name}

    def output_shape(self, in_shape):
        if tuple(in_shape) != (self.in_features,):
            raise ValueError(f"{self._label()}: in_features is {self.in_features}, but its input "
                             f"has shape {tuple(in_shape)} (flattened: {int(np.prod(in_shape))})"
                             " — put a Flatten before it or fix in_features")
        return (self.out_features,)

    def geometry(self, in_shape):
        return None

    def forward(self, x, check=True, param_grads=False):
        """``(N, in) -> (N, out)``. (``param_grads``, a training step's hint to the layers
        with parameters, changes nothing here.)"""
        if check:
            x = check_array(x, "x", ndim=2, shape=(None, self.in_features))
        x = self._cast(x)
        self._x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy, rule="gradient", check=True, input_grad=True):
        """``dx = dy W^T``; with ``rule="gradient"`` also ``dW = x^T dy``, ``db = sum dy``
        (``input_grad=False``: no ``dx``, returns None)."""
        self._need_cache("_x")
        if check:
            check_rule(rule)
            dy = check_array(dy, "dy", shape=(self._x.shape[0], self.out_features))
        dy = self._cast(dy)
        if rule == "gradient":
            self.grads["W"] = self._x.T @ dy
            self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T if input_grad else None


LAYER_TYPES = {cls.__name__: cls for cls in (Conv2D, ReLU, MaxPool2D, Flatten, Dense)}
