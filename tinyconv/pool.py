"""MaxPool2D: max-pooling that records its switches (Zeiler & Fergus 2014, §2.1).

The loops that define it: :func:`tinyconv.reference.maxpool2d`.
"""

import numpy as np

from .checks import check_array, check_pair
from .layer import (
    Layer,
    _kernels,
    _padding_arg,
    _window_out,
    check_rule,
    own_passes_opt_out,
    resolve_padding,
)


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

    #: forward(x, rectify=True) pools max(x, 0): a ReLU below it need not write its output
    takes_rectifier = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own_passes_opt_out(cls, "takes_rectifier", ("forward", "backward"))

    def forward(self, x, check=True, rectify=False):
        """``y[n, oh, ow, c]`` = max over the window; records ``self.switches``.

        ``rectify``: ``x`` is the input of the ReLU below (:attr:`Layer.rectifier`), and the
        pool takes the max of ``max(x, 0)`` in the same pass: the numbers and switches of
        this layer on the ReLU's output, bit for bit, without that output in memory."""
        if check:
            x = check_array(x, "x", ndim=4)
        N, H, W, C = x.shape
        H_out, W_out, _ = self.output_shape((H, W, C))
        (pt, _), (pl, _) = self.pads(H, W)
        y, self.switches = _kernels().maxpool(x, *self.size, *self.stride, pt, pl, H_out, W_out,
                                              rectify=rectify)
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

