"""Layers: Conv2D, ReLU, MaxPool2D, Flatten, Dense — each backward right under its forward.

Every layer follows one protocol::

    name: str
    params, grads: dict[str, ndarray]      # same keys; empty for ReLU, MaxPool2D, Flatten
    forward(x)                             # caches what backward needs
    backward(dy, rule="gradient")          # returns dx; only rule="gradient" writes grads
    output_shape(in_shape)                 # (H, W, C) -> (H', W', C'), no data needed
    geometry(in_shape)                     # ((kh, sh, pad_top, dh), (kw, sw, pad_left, dw))
                                           # for receptive fields; None if the layer mixes
                                           # all positions (Flatten, Dense)
    config()                               # constructor arguments, for save/load

Activations are ``(N, H, W, C)`` (the lecture's ``y_(l),idx,k``, feature index last), conv
weights ``(kh, kw, C_in, C_out)``. The three backward rules differ only inside ReLU
(Springenberg et al. 2014, Fig. 1); convolution always goes back by the transposed
convolution with the same filters and max-pooling always goes back through its switches.
"""

from typing import NamedTuple

import numpy as np

from .checks import check_array, check_int, check_pair

RULES = ("gradient", "deconvnet", "guided")

#: Conv2D goes through a batch in chunks of examples whose im2col matrix (kh*kw times the
#: input) is at most this many bytes, one example at least: the matrix lives in a buffer the
#: layer keeps, and this bounds it. Smaller chunks, sized for the cache, were measured slower
#: on the benchmark shapes: several small GEMMs cost more than one large one, and the
#: backward pass has to im2col every chunk but the last again.
CHUNK_BYTES = 64 << 20

#: The backward pass computes ``dcols = dy W^T`` and folds it back with col2im a few examples
#: at a time, at most this many bytes of dcols (one example at least), so that col2im reads
#: dcols from the cache the GEMM has just written it to. Unlike the forward's im2col matrix,
#: nothing else needs dcols, so small pieces cost nothing: 4 MB took dcols + col2im from 36 to
#: 22 ms on a 256 x 14 x 14 x 32 -> 64 layer and from 19 to 12 ms on the MNIST network's
#: second convolution (1, 2 and 8 MB were measured too, and the whole batch at once).
DX_CHUNK_BYTES = 4 << 20


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


def resolve_padding(padding, size, k_eff, stride):
    """Padding before and after one spatial axis.

    Parameters
    ----------
    padding : int, ``"valid"`` or ``"same"`` (one axis' share of the layer's padding).
    size : the input's extent along the axis.
    k_eff : effective kernel extent, ``d * (k - 1) + 1``.
    stride : int.

    Returns
    -------
    (before, after) : ints. ``"same"`` follows TensorFlow: the total is
    ``max(k_eff - stride, 0)`` if ``size % stride == 0`` else ``max(k_eff - size % stride, 0)``,
    the odd pixel going after (bottom / right), so that ``H_out = ceil(H / stride)``.
    """
    if padding == "valid":
        return 0, 0
    if padding == "same":
        rest = size % stride
        total = max(k_eff - (stride if rest == 0 else rest), 0)
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


def _window_out(size, k, stride, dilation, before, after):
    """Output extent along one axis: ``(size + before + after - d*(k-1) - 1) // stride + 1``."""
    return (size + before + after - dilation * (k - 1) - 1) // stride + 1


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
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _he_normal(rng, shape, fan_in, dtype):
    """He et al. 2015 initialisation: N(0, 2 / fan_in), suited to ReLU networks."""
    rng = np.random.default_rng(rng)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


# --------------------------------------------------------------------------- Conv2D


class Conv2D(Layer):
    """2-D convolution (cross-correlation) by im2col + GEMM.

    ``y[n, oh, ow, o] = b[o] + sum_{i,j,c} x[n, oh*sh - pt + i*dh, ow*sw - pl + j*dw, c]
    * W[i, j, c, o]``, with zeros outside the image. Computed as ``[cols, 1] @ [W2; b]``
    (cols from :func:`tinyconv.kernels.im2col`, ``W2 = W.reshape(kh*kw*C_in, C_out)``), for
    big batches a chunk of examples at a time (:data:`CHUNK_BYTES`); backward computes ``dW``
    and ``db`` as ``[cols, 1]^T dy`` and ``dx`` as ``col2im(dy W2^T)``.

    Parameters
    ----------
    in_channels, out_channels : C_in, C_out.
    kernel, stride, dilation : int or ``(h, w)`` pair.
    padding : int, ``(ph, pw)``, ``"valid"`` or ``"same"`` (TensorFlow's rule; see
        :func:`resolve_padding`).
    bias : whether to add ``b``.
    rng : seed or ``numpy.random.Generator`` for the He-normal weights (None: fresh entropy).
    dtype : parameter dtype, float32 by default.

    Shapes: input ``(N, H, W, C_in)``, output ``(N, H_out, W_out, C_out)`` with
    ``H_out = (H + pad_top + pad_bottom - dh*(kh-1) - 1) // sh + 1``; ``W`` is
    ``(kh, kw, C_in, C_out)`` (HWIO), ``b`` is ``(C_out,)``.
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
        self._x = self._in_buffer = None
        self._buffers = {}

    def init_params(self, rng):
        kh, kw = self.kernel
        fan_in = kh * kw * self.in_channels
        shape = (kh, kw, self.in_channels, self.out_channels)
        dtype = self.dtype or self._dtype0
        self.params = {"W": _he_normal(rng, shape, fan_in, dtype)}
        if self.bias:
            self.params["b"] = np.zeros(self.out_channels, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def config(self):
        pad = self.padding if isinstance(self.padding[0], str) else list(self.padding)
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel": list(self.kernel), "stride": list(self.stride),
                "padding": pad[0] if isinstance(pad[0], str) else pad,
                "dilation": list(self.dilation), "bias": self.bias, "name": self.name}

    def pads(self, H, W):
        """``((pad_top, pad_bottom), (pad_left, pad_right))`` for an ``H x W`` input."""
        return tuple(
            resolve_padding(p, n, d * (k - 1) + 1, s)
            for p, n, k, s, d in zip(self.padding, (H, W), self.kernel, self.stride,
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
        for n, k, s, d, (before, after), axis in zip(
                (H, W), self.kernel, self.stride, self.dilation, self.pads(H, W), "HW",
                strict=True):
            size = _window_out(n, k, s, d, before, after)
            if size < 1:
                raise ValueError(
                    f"{self._label()}: kernel extent {d * (k - 1) + 1} is larger than the padded "
                    f"input ({n} + {before + after} along {axis})")
            out.append(size)
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
        H_out, W_out, _ = self.output_shape((H, W, self.in_channels))
        (pt, _), (pl, _) = self.pads(H, W)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        return kh, kw, sh, sw, dh, dw, pt, pl, H_out, W_out

    def _chunks(self, N, P, K, itemsize):
        """Example ranges ``(n0, n1)`` covering ``0..N``, each with at most
        :data:`CHUNK_BYTES` of im2col matrix (``P`` rows of ``K`` numbers per example) and
        at least one example; and the rows of the largest, the size of the kept buffers."""
        step = max(1, CHUNK_BYTES // (P * K * itemsize))
        return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)], min(N, step) * P

    def _buffer(self, name, shape, dtype, ones_column=False):
        """A scratch matrix kept from call to call, new only when the shape or dtype changes.

        A fresh array of megabytes costs a page fault per page on first touch (more than
        filling it; see :mod:`tinyconv.kernels`). ``ones_column`` sets the last column to 1
        once, when the array is made; im2col never writes it. The matrix is row-major,
        except for one input channel and stride 1 along W: a window's rows are then only kw
        numbers long, and in a column-major matrix each column of cols is one straight copy
        of an image row (im2col and col2im both use that). NumPy's GEMM takes either order.
        """
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            by_column = self.in_channels == 1 and self.stride[1] == 1
            buf = np.empty(shape, dtype=dtype, order="F" if by_column else "C")
            if ones_column:
                buf[:, -1] = 1
            self._buffers[name] = buf
        return buf

    def _cols(self, x, n0, n1, args, rows, reuse=False):
        """``[cols, 1]`` of examples ``n0:n1`` of ``x`` (``[cols]`` without bias), in the
        kept buffer. With ``reuse``, im2col is skipped if the buffer already holds them
        (the backward pass after a forward of the same ``x``)."""
        K = args[0] * args[1] * self.in_channels
        ext = self._buffer("cols", (rows, K + self.bias), x.dtype, ones_column=self.bias)
        ext = ext[:(n1 - n0) * args[-2] * args[-1]]
        held = self._in_buffer
        if not (reuse and held is not None and held[0] is x and held[1:] == (n0, n1)):
            _kernels().im2col(x[n0:n1], *args, out=ext[:, :K])   # (n*H_out*W_out, K)
            self._in_buffer = (x, n0, n1)
        return ext

    def forward(self, x, check=True):
        """``y_(l) = conv(y_(l-1), W) + b``: ``(N, H, W, C_in) -> (N, H_out, W_out, C_out)``."""
        if check:
            x = check_array(x, "x", ndim=4, shape=(None, None, None, self.in_channels))
        x = np.ascontiguousarray(self._cast(x))
        N, H, W, _ = x.shape
        args = self._im2col_args(H, W)
        H_out, W_out, C_out = args[-2], args[-1], self.out_channels
        P, K = H_out * W_out, args[0] * args[1] * self.in_channels
        W2 = self.params["W"].reshape(K, C_out)             # (kh*kw*C_in, C_out)
        if self.bias:
            # cols gets one more column, of ones, and W2 the bias as one more row:
            # [cols, 1] @ [W2; b] = cols @ W2 + b in the one GEMM, with no second pass over y;
            # the backward's GEMM then gives db as the last row of [cols, 1]^T dy
            W2 = np.concatenate([W2, self.params["b"][None, :]])   # (K + 1, C_out)
        y = np.empty((N * P, C_out), dtype=x.dtype)         # (N*H_out*W_out, C_out)
        # the whole batch in one GEMM, unless its im2col matrix would exceed CHUNK_BYTES
        chunks, rows = self._chunks(N, P, K + 1, x.itemsize)
        for n0, n1 in chunks:
            ext = self._cols(x, n0, n1, args, rows)         # (n*H_out*W_out, K [+ 1])
            np.matmul(ext, W2, out=y[n0 * P:n1 * P])
        self._x = x         # for the backward pass (by reference, as Dense and ReLU keep theirs)
        return y.reshape(N, H_out, W_out, C_out)

    def backward(self, dy, rule="gradient", check=True, input_grad=True):
        """Transposed convolution: ``dx = col2im(dy W^T)``; with ``rule="gradient"`` also
        ``dW = cols^T dy`` and ``db = sum dy``. ``(N, H_out, W_out, C_out) -> (N, H, W, C_in)``;
        ``input_grad=False`` skips ``dx`` and returns None.
        """
        check_rule(rule)
        self._need_cache("_x")
        x = self._x
        N, H, W, C = x.shape
        args = self._im2col_args(H, W)
        if check:
            dy = check_array(dy, "dy", shape=(N, args[-2], args[-1], self.out_channels))
        dy2 = np.ascontiguousarray(self._cast(dy)).reshape(-1, self.out_channels)
        P, K = args[-2] * args[-1], args[0] * args[1] * C   # dy2: (N*H_out*W_out, C_out)
        W2 = self.params["W"].reshape(K, self.out_channels)
        grads = np.zeros((K + self.bias, self.out_channels), dtype=dy2.dtype)
        dx = np.empty(x.shape, dtype=dy2.dtype) if input_grad else None
        chunks, rows = self._chunks(N, P, K + 1, x.itemsize)
        if input_grad:      # examples per piece of dcols (DX_CHUNK_BYTES), and its buffer
            step = max(1, DX_CHUNK_BYTES // (P * K * x.itemsize))
            buf = self._buffer("dcols", (min(N, step) * P, K), dy2.dtype)
        # last chunk first: the forward pass left its cols in the buffer
        for n0, n1 in reversed(chunks):
            dy_c = dy2[n0 * P:n1 * P]                       # (n*H_out*W_out, C_out)
            if rule == "gradient":
                ext = self._cols(x, n0, n1, args, rows, reuse=True)
                if ext.flags.c_contiguous:
                    # [cols, 1]^T dy computed as (dy^T [cols, 1])^T: with row-major cols,
                    # OpenBLAS ran it 17% faster this way round on shapes 2 and 4 of
                    # benchmarks/bench_conv.py; with column-major cols, no faster
                    grads += (dy_c.T @ ext).T               # (K [+ 1], C_out)
                else:
                    grads += ext.T @ dy_c
            if input_grad:
                # if we im2col on the forward, we col2im on the backward: dcols = dy W2^T,
                # then each window's row is folded back onto the image; a few examples at a
                # time (DX_CHUNK_BYTES), so that dcols is still in the cache for col2im
                for m0 in range(n0, n1, step):
                    m1 = min(n1, m0 + step)
                    dcols = buf[:(m1 - m0) * P]             # (m*H_out*W_out, K)
                    np.matmul(dy2[m0 * P:m1 * P], W2.T, out=dcols)
                    _kernels().col2im(dcols, m1 - m0, H, W, C, *args, out=dx[m0:m1])
        if rule == "gradient":
            self.grads["W"] = grads[:K].reshape(self.params["W"].shape)
            if self.bias:
                self.grads["b"] = grads[K]                  # sum of dy over locations
        return dx


# --------------------------------------------------------------------------- ReLU


def relu_backward(dy, x, rule):
    """The one place where the three backward rules differ (DESIGN.md table).

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
        check_rule(rule)
        self._need_cache("_x")
        if check:
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
        for p, k in zip(self.padding, self.size, strict=True):
            if not isinstance(p, str) and p >= k:
                raise ValueError(f"padding: must be smaller than the window {self.size}, "
                                 f"got {self.padding}")
        self.switches = self._in_shape = None

    def config(self):
        pad = self.padding[0] if isinstance(self.padding[0], str) else list(self.padding)
        return {"size": list(self.size), "stride": list(self.stride), "padding": pad,
                "name": self.name}

    def pads(self, H, W):
        """``((pad_top, pad_bottom), (pad_left, pad_right))`` for an ``H x W`` input."""
        return tuple(resolve_padding(p, n, k, s) for p, n, k, s in
                     zip(self.padding, (H, W), self.size, self.stride, strict=True))

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"{self._label()}: expects (H, W, C) input, got shape "
                             f"{tuple(in_shape)}")
        H, W, C = in_shape
        out = []
        for n, k, s, (before, after), axis in zip((H, W), self.size, self.stride,
                                                  self.pads(H, W), "HW", strict=True):
            size = _window_out(n, k, s, 1, before, after)
            if size < 1:
                raise ValueError(f"{self._label()}: window {k} is larger than the padded input "
                                 f"({n} + {before + after} along {axis})")
            out.append(size)
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
        check_rule(rule)
        self._need_cache("switches")
        if check:
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
        check_rule(rule)
        self._need_cache("_in_shape")
        if check:
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
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

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
        check_rule(rule)
        self._need_cache("_x")
        if check:
            dy = check_array(dy, "dy", shape=(self._x.shape[0], self.out_features))
        dy = self._cast(dy)
        if rule == "gradient":
            self.grads["W"] = self._x.T @ dy
            self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"].T if input_grad else None


LAYER_TYPES = {cls.__name__: cls for cls in (Conv2D, ReLU, MaxPool2D, Flatten, Dense)}
