"""``from_torch``: a ``torch.nn.Sequential`` as a tinyconv model, weights copied bit for bit
(see :mod:`tinyconv.interop`); anything without an exact counterpart is refused by name."""

import numpy as np

from ..checks import check_int
from ..layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, resolve_padding
from ..model import Sequential
from .layouts import _import_torch, flatten_permutation

# --------------------------------------------------------------------------- from torch


def _pair(v):
    """torch's int-or-tuple arguments -> ``(h, w)``."""
    return tuple(int(e) for e in v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _fold_padding(label, pad, own, size, kernel, stride, dilation):
    """The tinyconv ``padding`` for a padding module ``pad`` (or None) + the layer's own.

    ``own`` is ``((top, bottom), (left, right))``. Symmetric totals give ``(ph, pw)``; totals
    equal to TensorFlow's ``"same"`` for this input ``size`` give ``"same"``; others cannot be
    expressed and raise ValueError naming the modules.
    """
    if pad is not None:
        left, right, top, bottom = pad[1].padding
        own = ((own[0][0] + top, own[0][1] + bottom), (own[1][0] + left, own[1][1] + right))
    (pt, pb), (pl, pr) = own
    if pt == pb and pl == pr:
        return pt, pl
    same = tuple(resolve_padding("same", n, d * (k - 1) + 1, s)
                 for n, k, s, d in zip(size, kernel, stride, dilation, strict=True))
    if own == same:
        return "same"
    where = f"{pad[0]} then {label}" if pad is not None else label
    raise ValueError(f"{where}: padding (top, bottom, left, right) = {(pt, pb, pl, pr)} is "
                     f"neither symmetric nor TensorFlow's 'same' {same[0] + same[1]} for a "
                     f"{size[0]}x{size[1]} input, so tinyconv cannot express it")


def _conv_from_torch(m, label, pad, shape, name, dtype):
    """nn.Conv2d (after an optional zero-padding module ``pad``) -> Conv2D."""
    if m.groups != 1:
        raise ValueError(f"{label}: groups={m.groups} is not supported (only groups=1)")
    if m.padding_mode != "zeros":
        raise ValueError(f"{label}: padding_mode={m.padding_mode!r} is not supported "
                         "(only 'zeros')")
    if len(shape) != 3 or shape[2] != m.in_channels:
        raise ValueError(f"{label}: expects {m.in_channels} input channels, but its input "
                         f"has shape {shape} (H, W, C)")
    kernel, stride, dilation = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
    if isinstance(m.padding, str):
        if pad is None:
            padding = m.padding            # torch's "same" (stride 1) is TensorFlow's
        else:
            total = [0 if m.padding == "valid" else d * (k - 1)
                     for k, d in zip(kernel, dilation, strict=True)]
            own = tuple((t // 2, t - t // 2) for t in total)
            padding = _fold_padding(label, pad, own, shape[:2], kernel, stride, dilation)
    else:
        ph, pw = _pair(m.padding)
        padding = _fold_padding(label, pad, ((ph, ph), (pw, pw)), shape[:2], kernel, stride,
                                dilation)
    layer = Conv2D(m.in_channels, m.out_channels, kernel, stride, padding, dilation,
                   bias=m.bias is not None, name=name, rng=0, dtype=dtype)
    # OIHW (C_out, C_in, kh, kw) -> HWIO (kh, kw, C_in, C_out)
    layer.params["W"] = m.weight.detach().cpu().numpy().transpose(2, 3, 1, 0).copy()
    if m.bias is not None:
        layer.params["b"] = m.bias.detach().cpu().numpy().copy()
    return layer


def _pool_from_torch(m, label, pad, shape, name):
    """nn.MaxPool2d (after an optional -inf padding module ``pad``) -> MaxPool2D."""
    if m.ceil_mode:
        raise ValueError(f"{label}: ceil_mode=True is not supported")
    if _pair(m.dilation) != (1, 1):
        raise ValueError(f"{label}: dilation={m.dilation} is not supported (only 1)")
    if m.return_indices:
        raise ValueError(f"{label}: return_indices=True is not supported")
    if len(shape) != 3:
        raise ValueError(f"{label}: expects an (H, W, C) input, got shape {shape}")
    size = _pair(m.kernel_size)
    stride = size if m.stride is None or m.stride == [] else _pair(m.stride)
    ph, pw = _pair(m.padding)
    padding = _fold_padding(label, pad, ((ph, ph), (pw, pw)), shape[:2], size, stride, (1, 1))
    try:
        return MaxPool2D(size, stride, padding, name=name)
    except ValueError as err:
        raise ValueError(f"{label}: {err}") from None


def _dense_from_torch(m, label, shape, flat_from, name, dtype):
    """nn.Linear -> Dense; rows put back in (H, W, C) order after a Flatten."""
    if shape != (m.in_features,):
        raise ValueError(f"{label}: in_features is {m.in_features}, but its input has shape "
                         f"{shape} (put a Flatten before it or fix in_features)")
    layer = Dense(m.in_features, m.out_features, name=name, rng=0, dtype=dtype)
    weight_t = m.weight.detach().cpu().numpy().T                   # (in, out), torch order
    W = np.empty_like(weight_t, order="C")
    if flat_from is None:
        W[...] = weight_t
    else:
        W[flatten_permutation(flat_from)] = weight_t               # back to (H, W, C) order
    layer.params["W"] = W
    # a bias-free Linear is a Dense with b = 0 (x W + 0 == x W exactly)
    b = np.zeros(m.out_features, dtype) if m.bias is None else m.bias.detach().cpu().numpy()
    layer.params["b"] = b.copy()
    return layer


def _numpy_dtype(torch, module):
    """The one float dtype of ``module``'s parameters, as a NumPy type."""
    dtypes = {p.dtype for p in module.parameters()}
    if len(dtypes) > 1:
        raise ValueError(f"module: parameters mix dtypes {sorted(map(str, dtypes))}; "
                         "convert it with .float() or .double() first")
    dtype = dtypes.pop() if dtypes else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"module: expected float32 or float64 parameters, got {dtype}")
    return np.float32 if dtype == torch.float32 else np.float64


#: torch's per-module hook tables (``Module`` attributes) and what each hook does
HOOK_TABLES = {"_forward_hooks": "forward", "_forward_pre_hooks": "forward pre",
               "_backward_hooks": "backward", "_backward_pre_hooks": "backward pre"}


def _refuse_hooks(torch, module):
    """Hooks change what torch computes (a forward hook may replace a module's output), and a
    copy of the weights cannot carry them: refuse, naming the module, rather than return a
    model that silently computes something else."""
    tables = torch.nn.modules.module
    for attribute, kind in HOOK_TABLES.items():
        if getattr(tables, "_global" + attribute, None):
            raise ValueError(f"module: a global {kind} hook is registered (register_module_"
                             f"{kind.replace(' ', '_')}_hook); tinyconv would not run it — "
                             "remove it first")
    for key, m in [("", module), *module.named_children()]:
        label = (f"module {key!r} ({type(m).__name__})" if key
                 else "module (the Sequential)")
        for attribute, kind in HOOK_TABLES.items():
            if getattr(m, attribute, None):
                raise ValueError(f"{label} has a {kind} hook; tinyconv would not run it, so "
                                 "the copy would compute something else — remove it first")


def from_torch(module, input_shape):
    """A tinyconv :class:`~tinyconv.model.Sequential` with the weights of a torch one.

    Parameters
    ----------
    module : ``torch.nn.Sequential`` of ``Conv2d``, ``ReLU``, ``MaxPool2d``, ``Flatten`` and
        ``Linear``, optionally with ``ZeroPad2d`` / ``ConstantPad2d(value=0)`` before a
        ``Conv2d`` and ``ConstantPad2d(value=-inf)`` before a ``MaxPool2d`` (as
        :func:`to_torch` writes them). Float32 or float64 parameters.
    input_shape : ``(H, W, C)`` of one example (channel last), where torch's input is
        ``(N, C, H, W)``.

    Returns
    -------
    Sequential
        In the parameters' dtype. Layers take the torch module names, except the automatic
        ``"0"``, ``"1"``, … which give tinyconv's defaults (``conv1``, ``relu1``, …); folded
        padding modules disappear. ``model(nchw_to_nhwc(x))`` equals ``module(x)`` for
        ``x`` of shape ``(N, C, H, W)`` (after a Linear; see Notes).

    Raises
    ------
    TypeError
        If ``module`` is not a ``torch.nn.Sequential``.
    ValueError
        For a module that has no exact tinyconv counterpart (BatchNorm2d, Conv2d with
        ``groups > 1`` or ``padding_mode != "zeros"``, MaxPool2d with ``ceil_mode=True`` or
        ``dilation > 1``, padding that is neither symmetric nor TensorFlow's ``"same"``, …),
        naming the module and what is unsupported; for shapes that do not fit; for a module
        (or the Sequential itself) with a forward, forward-pre, backward or backward-pre hook,
        or a global one, since the copy could not run it.
    ImportError
        If torch is not installed.

    Notes
    -----
    The inverse of :func:`to_torch`: ``W = weight.transpose(2, 3, 1, 0)`` for a Conv2d
    (OIHW -> HWIO); for a Linear ``W = weight.T``, except after a Flatten of an ``(H, W, C)``
    map, where ``W[perm] = weight.T`` with ``perm = flatten_permutation((H, W, C))``.
    Module types are matched exactly (a subclass may compute something else).
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"module: expected a torch.nn.Sequential, got {type(module).__name__}")
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"input_shape: expected (H, W, C), got {input_shape!r}")
    shape = input_shape = tuple(check_int(d, "input_shape", minimum=1) for d in input_shape)
    _refuse_hooks(torch, module)
    dtype = _numpy_dtype(torch, module)
    layers, pad, flat_from = [], None, None
    for key, m in module.named_children():
        kind = type(m)
        label = f"module {key!r} ({kind.__name__})"
        if pad is not None and kind not in (nn.Conv2d, nn.MaxPool2d):
            raise ValueError(f"{pad[0]}: a padding module must be followed by a Conv2d "
                             f"(value 0) or a MaxPool2d (value -inf), got {label}")
        if kind in (nn.ZeroPad2d, nn.ConstantPad2d):
            if min(m.padding) < 0:
                raise ValueError(f"{label}: negative padding {m.padding} (cropping) is not "
                                 "supported")
            pad = (label, m)
            continue
        name = None if key.isdigit() else key
        if kind is nn.Conv2d:
            if pad is not None and pad[1].value != 0:
                raise ValueError(f"{pad[0]}: pads with {pad[1].value} before {label}; "
                                 "convolutions pad with zeros only")
            layer = _conv_from_torch(m, label, pad, shape, name, dtype)
        elif kind is nn.MaxPool2d:
            if pad is not None and pad[1].value != float("-inf"):
                raise ValueError(f"{pad[0]}: pads with {pad[1].value} before {label}; that "
                                 "value can win the max, tinyconv pools pad with -inf only")
            layer = _pool_from_torch(m, label, pad, shape, name)
        elif kind is nn.ReLU:
            layer = ReLU(name=name)
        elif kind is nn.Flatten:
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ValueError(f"{label}: start_dim={m.start_dim}, end_dim={m.end_dim} is "
                                 "not supported (only the default 1, -1)")
            if len(shape) == 3:
                flat_from = shape
            layer = Flatten(name=name)
        elif kind is nn.Linear:
            layer = _dense_from_torch(m, label, shape, flat_from, name, dtype)
            flat_from = None
        else:
            raise ValueError(f"{label} is not supported: from_torch reads Conv2d, ReLU, "
                             "MaxPool2d, Flatten, Linear and the padding modules to_torch "
                             "writes (ZeroPad2d, ConstantPad2d)")
        pad = None
        layer.name = name or f"module {key!r}"   # so a shape error names the module
        shape = tuple(int(d) for d in layer.output_shape(shape))
        layer.name = name
        layers.append(layer)
    if pad is not None:
        raise ValueError(f"{pad[0]}: a padding module must be followed by a Conv2d or a "
                         "MaxPool2d, but it is the last module")
    if not layers:
        raise ValueError("module: expected at least one layer, got an empty Sequential")
    return Sequential(layers, input_shape)
