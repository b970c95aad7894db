"""The layer protocol (:class:`Layer`), and what every layer type shares: the backward rules,
padding, window geometry, initialisation.

Every layer follows one protocol (:class:`Layer` gives the defaults)::

    name: str | None                       # set by Sequential when None
    params, grads: dict[str, ndarray]      # same keys; empty for ReLU, MaxPool2D, Flatten
    forward(x, check=True)                 # y_(l) from y_(l-1); caches what backward needs.
                                           # check=False skips validating x (Sequential
                                           # validates once, at the model's input)
    backward(dy, rule="gradient", check=True[, input_grad=True])
                                           # returns dx; only rule="gradient" writes grads.
                                           # check=False trusts dy and rule (Sequential
                                           # checks rule once). Layers with parameters
                                           # (Conv2D, Dense) take input_grad=False: grads
                                           # only, no dx, returns None
    output_shape(in_shape)                 # (H, W, C) -> (H', W', C'), no data needed
    geometry(in_shape)                     # method: ((kh, sh, pad_top, dh),
                                           # (kw, sw, pad_left, dw)) for receptive fields;
                                           # None if the layer mixes all positions
                                           # (Flatten, Dense)
    pads(H, W)                             # windowed layers only (Conv2D, MaxPool2D):
                                           # ((pad_top, pad_bottom), (pad_left, pad_right))
    affine                                 # True if y = A x + c with a fixed A
                                           # (Conv2D, Dense, Flatten): SmoothGrad and
                                           # IG sum gradients above such layers (a
                                           # subclass that adds a nonlinearity sets
                                           # it to False)
    rectifier, takes_rectifier             # a ReLU and a max-pool above it run as one
                                           # pass (the same numbers): see Layer
    init_params(rng)                       # (re)draw the parameters
    astype(dtype)                          # cast params and grads in place; returns self
    config()                               # constructor arguments (JSON-able), for
                                           # save/load and repr

Activations are ``(N, H, W, C)`` (the lecture's ``y_(l),idx,k``, feature index ``k`` last),
conv weights ``(kh, kw, C_in, C_out)``. The layer types live in :mod:`tinyconv.layers`
(and, the two windowed ones, :mod:`tinyconv.conv` and :mod:`tinyconv.pool`).
"""

from typing import NamedTuple

import numpy as np

from .checks import check_dtype, check_pair

RULES = ("gradient", "deconvnet", "guided")


def _kernels():
    """:mod:`tinyconv.kernels`, imported on first use rather than with the package: importing
    numba takes about 0.4 s, which a script that only builds a model, loads one or asks for
    its receptive fields never needs to pay. After the first call this is a dictionary
    lookup."""
    from . import kernels
    return kernels


def check_rule(rule):
    """Return ``rule`` if it is one of :data:`RULES`, else raise ``ValueError``."""
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
    return rule



def resolve_padding(padding, size, extent, stride):
    """Padding before and after one spatial axis.

    Parameters
    ----------
    padding : int, ``"valid"`` or ``"same"`` (one axis' share of the layer's padding).
    size : the input's extent along the axis.
    extent : effective kernel extent, ``dilation * (kernel - 1) + 1``.
    stride : int.

    Returns
    -------
    (before, after) : ints. ``"same"`` follows TensorFlow: the total is
    ``max(extent - stride, 0)`` if ``size % stride == 0`` else ``max(extent - size % stride, 0)``,
    the odd pixel going after (bottom / right), so that ``H_out = ceil(H / stride)``.
    """
    if padding == "valid":
        return 0, 0
    if padding == "same":
        rest = size % stride
        total = max(extent - (stride if rest == 0 else rest), 0)
        return total // 2, total - total // 2
    return padding, padding


def _padding_arg(padding):
    """Validate a ``padding`` argument -> ``(ph, pw)`` of ints or strings."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(
                f"padding: expected an int, a pair, 'valid' or 'same', got {padding!r}")
        return padding, padding
    ph, pw = check_pair(padding, "padding", minimum=0)
    return ph, pw


def _window_out(size, kernel, stride, dilation, before, after):
    """Output extent along one axis:
    ``(size + before + after - dilation*(kernel-1) - 1) // stride + 1``."""
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


class Geometry(NamedTuple):
    """How one spatial axis of a layer reads its input: output unit ``u`` reads the input
    units ``u * stride - pad + i * dilation`` for ``i = 0 … size - 1`` (``pad``: the padding
    before the axis)."""

    size: int
    stride: int
    pad: int
    dilation: int


class Layer:
    """Base class: the protocol above, with defaults for parameter-free, shape-keeping layers."""

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a str or None, got {type(name).__name__}")
        self.name = name
        self.params = {}
        self.grads = {}

    def __call__(self, x):
        return self.forward(x)

    def output_shape(self, in_shape):
        """``(H, W, C) -> (H', W', C')`` without data."""
        return tuple(in_shape)

    def geometry(self, in_shape):
        """Identity geometry: each output unit sees the one input unit at its location."""
        return (1, 1, 0, 1), (1, 1, 0, 1)

    def axes(self, in_shape):
        """:meth:`geometry` as named ``(Geometry(rows), Geometry(cols))``, or None."""
        geometry = self.geometry(in_shape)
        return None if geometry is None else tuple(Geometry(*g) for g in geometry)

    #: what the layer's padding stands for: a padded input cell holds this value
    pad_value = 0.0
    #: whether output unit ``(idx, k)`` depends on input unit ``(idx, k)`` alone (ReLU)
    pointwise = False
    #: whether ``y = A x + c`` for a fixed matrix ``A`` and vector ``c`` (Conv2D, Dense,
    #: Flatten): then its backward sends ``dy`` back as ``A^T dy`` whatever the input was
    affine = False
    #: ``(kh, kw, C_in, C_out)`` weights when the layer is a convolution ``y = conv(x, W) + b``
    #: (linear in ``x`` up to a constant), else None
    conv_kernel = None
    #: whether the layer is ``y = max(x, 0)`` and has ``keep(x)``, which caches ``x`` for the
    #: backward without computing ``y``, and ``backward(..., overwrite=True)`` (ReLU; a subclass
    #: that defines its own forward, backward or keep is taken to be something else, and runs
    #: alone, unless it sets the attribute itself: :func:`own_passes_opt_out`)
    rectifier = False
    #: whether ``forward(x, check, rectify=True)`` computes the layer on ``max(x, 0)`` in one
    #: pass, and ``backward`` returns a new array each time (MaxPool2D):
    #: :class:`tinyconv.model.Sequential` then runs a rectifier below it and the layer together
    #: on the way up, and lets the rectifier write its backward into that new array
    #: (``overwrite=True``) on the way down (a subclass with its own forward or backward runs
    #: alone, as above)
    takes_rectifier = False

    def forward_unpadded(self, x):
        """The layer on an input that is already padded (with :attr:`pad_value`): as
        :meth:`forward` with no padding, and nothing cached. A layer that pads overrides it."""
        return self.forward(x, check=False)

    def config(self):
        """The constructor arguments (JSON-able), for :mod:`tinyconv.serialize`."""
        return {"name": self.name}

    def init_params(self, rng):
        """(Re)draw the parameters from ``rng``; nothing to do for parameter-free layers."""

    def astype(self, dtype):
        """Cast the parameters (and grads) to ``dtype`` (float32 or float64) in place; returns
        ``self``."""
        dtype = check_dtype(dtype)
        for key in self.params:
            self.params[key] = self.params[key].astype(dtype)
            self.grads[key] = np.zeros_like(self.params[key])
        return self

    @property
    def dtype(self):
        """The parameters' dtype (None for parameter-free layers)."""
        return next(iter(self.params.values())).dtype if self.params else None

    def _cast(self, x):
        """Compute in the parameters' dtype (float32 by default, float64 for gradient checks)."""
        return x if self.dtype is None or x.dtype == self.dtype else x.astype(self.dtype)

    def _label(self):
        """The name for messages: ``self.name``, or the class name before a model names it."""
        return self.name or type(self).__name__

    def _need_cache(self, *names):
        if any(getattr(self, n, None) is None for n in names):
            raise ValueError(f"dy: {self._label()} has no forward pass to go back through; "
                             "call forward() before backward()")

    def __repr__(self):
        args = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({args})"


def own_passes_opt_out(cls, flag, methods):
    """For ``__init_subclass__`` of a layer that declares ``flag`` (``rectifier``,
    ``takes_rectifier``): a subclass that defines any of ``methods`` itself computes something
    the flag no longer promises (a ReLU6, a pool that logs), so the flag is False for it,
    unless the subclass sets the flag in its own body."""
    if flag not in cls.__dict__ and any(name in cls.__dict__ for name in methods):
        setattr(cls, flag, False)

def _he_normal(rng, shape, fan_in, dtype):
    """He et al. 2015 initialisation: N(0, 2 / fan_in), suited to ReLU networks."""
    rng = np.random.default_rng(rng)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


