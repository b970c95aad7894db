"""Layers: Conv2D, ReLU, MaxPool2D, Flatten, Dense — each backward right under its forward.

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
    init_params(rng)                       # (re)draw the parameters
    astype(dtype)                          # cast params and grads in place; returns self
    config()                               # constructor arguments (JSON-able), for
                                           # save/load and repr

Activations are ``(N, H, W, C)`` (the lecture's ``y_(l),idx,k``, feature index ``k`` last),
conv weights ``(kh, kw, C_in, C_out)``. The three backward rules differ only inside ReLU
(:func:`relu_backward`; Springenberg et al. 2014, Fig. 1); convolution always goes back by
the transposed convolution with the same filters and max-pooling always goes back through
its switches. The definitions in plain loops are in :mod:`tinyconv.reference`.
"""

from typing import NamedTuple

import numpy as np

from .checks import check_array, check_int, check_pair
from .workspace import (
    DX_CHUNK_BYTES,  # noqa: F401  (read here by benchmarks/bench_conv.py)
    ConvWorkspace,
    Im2colArgs,
)

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
    #: ``(kh, kw, C_in, C_out)`` weights when the layer is a convolution ``y = conv(x, W) + b``
    #: (linear in ``x`` up to a constant), else None
    conv_kernel = None

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
        """Cast the parameters (and grads) to ``dtype`` in place; returns ``self``."""
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


def _he_normal(rng, shape, fan_in, dtype):
    """He et al. 2015 initialisation: N(0, 2 / fan_in), suited to ReLU networks."""
    rng = np.random.default_rng(rng)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


# --------------------------------------------------------------------------- Conv2D


class Conv2D(Layer):
    """2-D convolution (cross-correlation) by im2col + GEMM (Zeiler & Fergus 2014, §2).

    ``y[n, oh, ow, o] = b[o] + sum_{i,j,c} x[n, oh*sh - pt + i*dh, ow*sw - pl + j*dw, c]
    * W[i, j, c, o]``, with zeros outside the image (the loops:
    :func:`tinyconv.reference.conv2d`). Computed as ``cols @ W2 + b``, cols from
    :func:`tinyconv.kernels.im2col` and ``W2 = W.reshape(kh*kw*C_in, C_out)``; backward
    computes ``dW = cols^T dy``, ``db = sum dy`` and ``dx = col2im(dy W2^T)``. A
    :class:`tinyconv.workspace.ConvWorkspace` runs these GEMMs fast (kept buffers, chunks).

    Parameters
    ----------
    in_channels, out_channels : C_in, C_out.
    kernel, stride, dilation : int or ``(h, w)`` pair.
    padding : int, ``(ph, pw)``, ``"valid"`` or ``"same"`` (TensorFlow's rule; see
        :func:`resolve_padding`).
    bias : whether to add ``b``.
    rng : seed or ``numpy.random.Generator`` for the He-normal weights (None: fresh entropy).
    dtype : parameter dtype, float32 by default.

    Shapes: input ``(N, H_in, W_in, C_in)``, output ``(N, H_out, W_out, C_out)`` with
    ``H_out = (H_in + pad_top + pad_bottom - dh*(kh-1) - 1) // sh + 1``; the weights ``W``
    are ``(kh, kw, C_in, C_out)`` (HWIO), ``b`` is ``(C_out,)``.
    """

    def __init__(self, in_channels, out_channels, kernel, stride=1, padding=0, dilation=1,
                 bias=True, name=None, rng=None, dtype=np.float32):
        super().__init__(name)
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        self.kernel = check_pair(kernel, "kernel", minimum=1)
        self.stride = check_pair(stride, "stride", minimum=1)
        self.dilation = check_pair(dilation, "dilation", minimum=1)
        self.padding = _padding_arg(padding)
        if not isinstance(bias, bool):
            raise TypeError(f"bias: expected a bool, got {type(bias).__name__}")
        self.bias = bias
        self._dtype0 = np.dtype(dtype)
        self.init_params(rng)
        self._x = None
        self._workspace = ConvWorkspace()

    def init_params(self, rng):
        kh, kw = self.kernel
        fan_in = kh * kw * self.in_channels
        shape = (kh, kw, self.in_channels, self.out_channels)
        dtype = self.dtype or self._dtype0
        self.params = {"W": _he_normal(rng, shape, fan_in, dtype)}
        if self.bias:
            self.params["b"] = np.zeros(self.out_channels, dtype=dtype)
        self.grads = {key: np.zeros_like(p) for key, p in self.params.items()}

    def config(self):
        pad = self.padding if isinstance(self.padding[0], str) else list(self.padding)
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel": list(self.kernel), "stride": list(self.stride),
                "padding": pad[0] if isinstance(pad[0], str) else pad,
                "dilation": list(self.dilation), "bias": self.bias, "name": self.name}

    def pads(self, H, W):
        """``((pad_top, pad_bottom), (pad_left, pad_right))`` for an ``H x W`` input."""
        return tuple(
            resolve_padding(p, n, d * (size - 1) + 1, s)
            for p, n, size, s, d in zip(self.padding, (H, W), self.kernel, self.stride,
                                        self.dilation, strict=True))

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"{self._label()}: expects (H, W, C) input, got shape "
                             f"{tuple(in_shape)}")
        H, W, C = in_shape
        if C != self.in_channels:
            raise ValueError(f"{self._label()}: in_channels is {self.in_channels}, "
                             f"but the input has {C} channels")
        out = []
        for n, size, s, d, (before, after), axis in zip(
                (H, W), self.kernel, self.stride, self.dilation, self.pads(H, W), "HW",
                strict=True):
            n_out = _window_out(n, size, s, d, before, after)
            if n_out < 1:
                raise ValueError(
                    f"{self._label()}: kernel extent {d * (size - 1) + 1} is larger than the "
                    f"padded input ({n} + {before + after} along {axis})")
            out.append(n_out)
        return out[0], out[1], self.out_channels

    def geometry(self, in_shape):
        (pt, _), (pl, _) = self.pads(in_shape[0], in_shape[1])
        return ((self.kernel[0], self.stride[0], pt, self.dilation[0]),
                (self.kernel[1], self.stride[1], pl, self.dilation[1]))

    def forward_unpadded(self, x):
        """``conv(x, W) + b`` without padding, nothing cached (see
        :meth:`Layer.forward_unpadded`): ``(N, H, W, C_in) -> (N, H_out, W_out, C_out)`` with
        ``H_out = (H - dh*(kh-1) - 1) // sh + 1``."""
        x = np.ascontiguousarray(self._cast(x))
        N, H, W, _ = x.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        H_out, W_out = _window_out(H, kh, sh, dh, 0, 0), _window_out(W, kw, sw, dw, 0, 0)
        cols = _kernels().im2col(x, kh, kw, sh, sw, dh, dw, 0, 0, H_out, W_out)
        y = cols @ self.params["W"].reshape(-1, self.out_channels)   # (N*H_out*W_out, C_out)
        if self.bias:
            y += self.params["b"]
        return y.reshape(N, H_out, W_out, self.out_channels)

    @property
    def conv_kernel(self):
        """The HWIO ``W`` of ``y = conv(x, W) + b`` (see :attr:`Layer.conv_kernel`)."""
        return self.params["W"]

    def _im2col_args(self, H, W):
        """The window arguments of im2col / col2im for an ``H x W`` input."""
        H_out, W_out, _ = self.output_shape((H, W, self.in_channels))
        (pt, _), (pl, _) = self.pads(H, W)
        return Im2colArgs(*self.kernel, *self.stride, *self.dilation, pt, pl, H_out, W_out)

    def forward(self, x, check=True):
        """``y_(l) = conv(y_(l-1), W) + b``:
        ``(N, H_in, W_in, C_in) -> (N, H_out, W_out, C_out)``."""
        if check:
            x = check_array(x, "x", ndim=4, shape=(None, None, None, self.in_channels))
        x = np.ascontiguousarray(self._cast(x))
        N, H_in, W_in, _ = x.shape
        args = self._im2col_args(H_in, W_in)
        W2 = self.params["W"].reshape(-1, self.out_channels)    # (kh*kw*C_in, C_out)
        b = self.params["b"] if self.bias else None              # (C_out,)
        # cols = im2col(x): one row per output location (n, oh, ow), one column per kernel
        # tap (i, j, c): (N*H_out*W_out, kh*kw*C_in); then one GEMM, and the bias:
        # y = cols @ W2 + b: (N*H_out*W_out, C_out)
        y = self._workspace.im2col_gemm(x, args, W2, b)
        self._x = x         # for the backward pass (by reference, as Dense and ReLU keep theirs)
        return y.reshape(N, args.H_out, args.W_out, self.out_channels)

    def backward(self, dy, rule="gradient", check=True, input_grad=True):
        """Transposed convolution: ``dx = col2im(dy W2^T)``; with ``rule="gradient"`` also
        ``dW = cols^T dy`` and ``db = sum dy``. ``(N, H_out, W_out, C_out) -> (N, H_in, W_in,
        C_in)``; ``input_grad=False`` skips ``dx`` and returns None.
        """
        self._need_cache("_x")
        x = self._x
        args = self._im2col_args(x.shape[1], x.shape[2])
        if check:
            check_rule(rule)
            dy = check_array(dy, "dy", shape=(len(x), args.H_out, args.W_out, self.out_channels))
        dy2 = np.ascontiguousarray(self._cast(dy)).reshape(-1, self.out_channels)
        # dy2: (N*H_out*W_out, C_out), one row per output location, as the rows of cols
        if rule == "gradient":
            # dW2 = cols^T dy2: (kh*kw*C_in, C_out); db = dy2 summed over rows: (C_out,)
            dW2, db = self._workspace.weight_gemm(x, args, dy2, self.bias)
            self.grads["W"] = dW2.reshape(self.params["W"].shape)
            if self.bias:
                self.grads["b"] = db
        if not input_grad:
            return None
        # if we im2col on the forward, we col2im on the backward: dcols = dy2 W2^T is
        # (N*H_out*W_out, kh*kw*C_in), and col2im adds each row back onto its window
        W2 = self.params["W"].reshape(-1, self.out_channels)    # (kh*kw*C_in, C_out)
        return self._workspace.col2im_gemm(dy2, W2, args, x.shape)


# --------------------------------------------------------------------------- ReLU


def relu_backward(dy, x, rule):
    """The one place where the three backward rules differ.

    Parameters
    ----------
    dy : signal arriving from above, same shape as ``x``.
    x : the ReLU's forward input.
    rule : ``"gradient"`` ``dy * (x > 0)`` (true derivative, ReLU'(0) = 0);
        ``"deconvnet"`` ``dy * (dy > 0)`` (Zeiler & Fergus: rectify the signal going back);
        ``"guided"`` ``dy * (x > 0) * (dy > 0)`` (Springenberg et al.: both masks).
    """
    if rule == "gradient":
        mask = x > 0
    elif rule == "deconvnet":
        mask = dy > 0
    else:
        mask = (x > 0) & (dy > 0)
    return dy * mask


class ReLU(Layer):
    """``y = max(x, 0)`` elementwise; any input shape."""

    def __init__(self, name=None):
        super().__init__(name)
        self._x = None

    pointwise = True

    def forward_unpadded(self, x):
        """``max(x, 0)``, nothing cached."""
        return np.maximum(x, 0)

    def forward(self, x, check=True):
        """``(N, ...) -> (N, ...)``; caches the input for the backward masks."""
        if check:
            x = check_array(x, "x")
        self._x = x
        return np.maximum(x, 0)

    def backward(self, dy, rule="gradient", check=True):
        """See :func:`relu_backward`."""
        self._need_cache("_x")
        if check:
            check_rule(rule)
            dy = check_array(dy, "dy", shape=self._x.shape)
        return relu_backward(dy, self._x, rule)


# --------------------------------------------------------------------------- MaxPool2D


class MaxPool2D(Layer):
    """Max-pooling that records its *switches* (Zeiler & Fergus 2014, §2.1).

    Parameters
    ----------
    size : window, int or ``(h, w)``.
    stride : int or pair; defaults to ``size``.
    padding : int, pair, ``"valid"`` or ``"same"``; padded cells never win. Each side's padding
        must be smaller than the window, so every window holds at least one real pixel.

    Shapes: ``(N, H, W, C) -> (N, H_out, W_out, C)``; ``self.switches`` after a forward pass is
    ``(N, H_out, W_out, C)`` int64, the flat position ``row * W + col`` of each max in the input.
    """

    def __init__(self, size, stride=None, padding=0, name=None):
        super().__init__(name)
        self.size = check_pair(size, "size", minimum=1)
        self.stride = self.size if stride is None else check_pair(stride, "stride", minimum=1)
        self.padding = _padding_arg(padding)
        for p, size in zip(self.padding, self.size, strict=True):
            if not isinstance(p, str) and p >= size:
                raise ValueError(f"padding: must be smaller than the window {self.size}, "
                                 f"got {self.padding}")
        self.switches = self._in_shape = None

    def config(self):
        pad = self.padding[0] if isinstance(self.padding[0], str) else list(self.padding)
        return {"size": list(self.size), "stride": list(self.stride), "padding": pad,
                "name": self.name}

    def pads(self, H, W):
        """``((pad_top, pad_bottom), (pad_left, pad_right))`` for an ``H x W`` input."""
        return tuple(resolve_padding(p, n, size, s) for p, n, size, s in
                     zip(self.padding, (H, W), self.size, self.stride, strict=True))

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"{self._label()}: expects (H, W, C) input, got shape "
                             f"{tuple(in_shape)}")
        H, W, C = in_shape
        out = []
        for n, size, s, (before, after), axis in zip((H, W), self.size, self.stride,
                                                  self.pads(H, W), "HW", strict=True):
            n_out = _window_out(n, size, s, 1, before, after)
            if n_out < 1:
                raise ValueError(f"{self._label()}: window {size} is larger than the padded input "
                                 f"({n} + {before + after} along {axis})")
            out.append(n_out)
        return out[0], out[1], C

    def geometry(self, in_shape):
        (pt, _), (pl, _) = self.pads(in_shape[0], in_shape[1])
        return (self.size[0], self.stride[0], pt, 1), (self.size[1], self.stride[1], pl, 1)

    #: padded cells never win a max
    pad_value = -np.inf

    def forward_unpadded(self, x):
        """The max over each window of ``x`` without padding, no switches kept."""
        N, H, W, C = x.shape
        (kh, kw), (sh, sw) = self.size, self.stride
        H_out, W_out = _window_out(H, kh, sh, 1, 0, 0), _window_out(W, kw, sw, 1, 0, 0)
        if self.size != self.stride:
            return _kernels().maxpool(x, kh, kw, sh, sw, 0, 0, H_out, W_out)[0]
        # windows that tile x: the max of kh*kw strided slices, one per window cell
        y = x[:, :H_out * sh:sh, :W_out * sw:sw].copy()
        for i, j in np.ndindex(kh, kw):
            np.maximum(y, x[:, i:H_out * sh:sh, j:W_out * sw:sw], out=y)
        return y

    def forward(self, x, check=True):
        """``y[n, oh, ow, c]`` = max over the window; records ``self.switches``."""
        if check:
            x = check_array(x, "x", ndim=4)
        N, H, W, C = x.shape
        H_out, W_out, _ = self.output_shape((H, W, C))
        (pt, _), (pl, _) = self.pads(H, W)
        y, self.switches = _kernels().maxpool(x, *self.size, *self.stride, pt, pl, H_out, W_out)
        self._in_shape = x.shape
        return y

    def backward(self, dy, rule="gradient", check=True):
        """Unpool: each value goes back to its switch, the same for every rule.
        ``(N, H_out, W_out, C) -> (N, H, W, C)``, zero where no max came from."""
        self._need_cache("switches")
        if check:
            check_rule(rule)
            dy = check_array(dy, "dy", shape=self.switches.shape)
        _, H, W, _ = self._in_shape
        return _kernels().unpool(np.ascontiguousarray(dy), self.switches, H, W)


# --------------------------------------------------------------------------- Flatten


class Flatten(Layer):
    """``(N, H, W, C) -> (N, H*W*C)`` in C order (the unit ``(row, col, k)`` goes to
    ``(row * W + col) * C + k``)."""

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

    def __init__(self, in_features, out_features, name=None, rng=None, dtype=np.float32):
        super().__init__(name)
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.out_features = check_int(out_features, "out_features", minimum=1)
        self._dtype0 = np.dtype(dtype)
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

    def forward(self, x, check=True):
        """``(N, in) -> (N, out)``."""
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
