"""Conv2D: a convolution as im2col and one GEMM (Zeiler & Fergus 2014, §2).

The loops that define it: :func:`tinyconv.reference.conv2d`; how its GEMMs are made fast, and
when a 3x3 or 5x5 layer goes by Winograd's F(2x2, 3x3) or F(2x2, 5x5) instead (the same
numbers up to rounding):
:mod:`tinyconv.workspace`.
"""

import numpy as np

from .checks import check_array, check_dtype, check_int, check_pair
from .layer import (
    Layer,
    _he_normal,
    _padding_arg,
    _window_out,
    check_rule,
    resolve_padding,
)
from .workspace import (
    ConvWorkspace,
    Im2colArgs,
    row_block_width,
    transposed_filters,
    winograd_applies,
    winograd_dx_args,
    winograd_weights_apply,
)


class Conv2D(Layer):
    """2-D convolution (cross-correlation) by im2col + GEMM (Zeiler & Fergus 2014, §2).

    ``y[n, oh, ow, o] = b[o] + sum_{i,j,c} x[n, oh*sh - pt + i*dh, ow*sw - pl + j*dw, c]
    * W[i, j, c, o]``, with zeros outside the image (the loops:
    :func:`tinyconv.reference.conv2d`). Computed as ``cols @ W2 + b``, cols from
    :func:`tinyconv.kernels.im2col` and ``W2 = W.reshape(kh*kw*C_in, C_out)``; backward
    computes ``dW = cols^T dy``, ``db = sum dy`` and ``dx = col2im(dy W2^T)``. A
    :class:`tinyconv.workspace.ConvWorkspace` runs these GEMMs fast (kept buffers, chunks),
    and computes ``y`` of a large enough 3x3 or 5x5, stride-1 layer by Winograd's F(2x2, 3x3)
    or F(2x2, 5x5), and ``dx`` of a 3x3 one (:func:`tinyconv.workspace.winograd_applies`;
    Lavin & Gray 2016, §4 and §4.1); ``y`` of a stride-1 layer on one input channel, outside
    training, a block of neighbouring output columns per unfolded window
    (:func:`tinyconv.workspace.row_block_width`).

    Parameters
    ----------
    in_channels, out_channels : C_in, C_out.
    kernel, stride, dilation : int or ``(h, w)`` pair.
    padding : int, ``(ph, pw)``, ``"valid"`` or ``"same"`` (TensorFlow's rule; see
        :func:`resolve_padding`).
    bias : whether to add ``b``.
    rng : seed or ``numpy.random.Generator`` for the He-normal weights (None: fresh entropy).
    dtype : parameter dtype, float32 (the default) or float64; anything else raises TypeError.

    Shapes: input ``(N, H_in, W_in, C_in)``, output ``(N, H_out, W_out, C_out)`` with
    ``H_out = (H_in + pad_top + pad_bottom - dh*(kh-1) - 1) // sh + 1``; the weights ``W``
    are ``(kh, kw, C_in, C_out)`` (HWIO), ``b`` is ``(C_out,)``.
    """

    affine = True

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
        self._dtype0 = check_dtype(dtype)
        self.init_params(rng)
        self._x = None
        self._workspace = ConvWorkspace()
        self._unpadded_workspace = ConvWorkspace()    # forward_unpadded's, apart: no reuse

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
        args = Im2colArgs(kh, kw, sh, sw, dh, dw, 0, 0, H_out, W_out)
        W2 = self.params["W"].reshape(-1, self.out_channels)      # (kh*kw*C_in, C_out)
        # y = im2col(x) @ W2 + b: (N*H_out*W_out, C_out), in a workspace of its own, so that
        # the forward pass's kept im2col matrix stays what the backward pass expects
        y = self._unpadded_workspace.im2col_gemm(x, args, W2, self.params.get("b"))
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

    def forward(self, x, check=True, param_grads=False):
        """``y_(l) = conv(y_(l-1), W) + b``:
        ``(N, H_in, W_in, C_in) -> (N, H_out, W_out, C_out)``.

        ``param_grads``: True when a backward pass for the weight gradient follows (a
        training step, :meth:`tinyconv.model.Sequential.forward`); it changes only how ``y``
        is computed (:func:`tinyconv.workspace.winograd_applies`,
        :func:`tinyconv.workspace.row_block_width`), not what."""
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
        if winograd_applies(args, self.in_channels, self.out_channels, N, param_grads):
            # the same numbers up to rounding, with 2.25 (3x3) or 2.78 (5x5) times fewer
            # multiplications
            y = self._workspace.winograd_gemm(x, args, self.params["W"], b)
        elif (B := row_block_width(args, self.in_channels, param_grads)) is not None:
            # one input channel: B neighbouring outputs per unfolded window, the same
            # numbers up to rounding
            y = self._workspace.row_block_gemm(x, args, self.params["W"], b, B)
        else:
            y = self._workspace.im2col_gemm(x, args, W2, b)
        self._x = x         # for the backward pass (by reference, as Dense and ReLU keep theirs)
        return y.reshape(N, args.H_out, args.W_out, self.out_channels)

    def backward(self, dy, rule="gradient", check=True, input_grad=True):
        """Transposed convolution: ``dx = col2im(dy W2^T)`` (or, for a 3x3 stride-1 layer that
        Winograd suits, ``dy`` convolved with the flipped filters); with
        ``rule="gradient"`` also ``dW = cols^T dy`` and ``db = sum dy``. ``(N, H_out, W_out,
        C_out) -> (N, H_in, W_in, C_in)``; ``input_grad=False`` skips ``dx`` and returns None.
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
            if winograd_weights_apply(args, self.in_channels, self.out_channels, len(x)):
                # the same numbers up to rounding, through Winograd's transforms
                dW2, db = self._workspace.winograd_weight_gemm(
                    x, args, dy2.reshape(dy.shape), self.bias)
            else:
                dW2, db = self._workspace.weight_gemm(x, args, dy2, self.bias)
            self.grads["W"] = dW2.reshape(self.params["W"].shape)
            if self.bias:
                self.grads["b"] = db
        if not input_grad:
            return None
        # dx is the transposed convolution; for a 3x3, stride-1 layer it is a convolution too
        dx_args = winograd_dx_args(args, x.shape[1], x.shape[2], self.in_channels,
                                   self.out_channels, len(x))
        if dx_args is not None:
            # the same numbers up to rounding: dx = dy convolved with the flipped filters,
            # (3, 3, C_out, C_in), by Winograd's F(2x2, 3x3)
            dx = self._workspace.winograd_gemm(dy2.reshape(dy.shape), dx_args,
                                               transposed_filters(self.params["W"]), None,
                                               tag="dx")
            return dx.reshape(x.shape)
        # if we im2col on the forward, we col2im on the backward: dcols = dy2 W2^T is
        # (N*H_out*W_out, kh*kw*C_in), and col2im adds each row back onto its window
        W2 = self.params["W"].reshape(-1, self.out_channels)    # (kh*kw*C_in, C_out)
        return self._workspace.col2im_gemm(dy2, W2, args, x.shape)

