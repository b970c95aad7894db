"""PyTorch interop: ``to_torch`` / ``from_torch`` with exact weight transfer.

The two engines store the same numbers in different layouts::

                      tinyconv                     torch
    activations       (N, H, W, C)   NHWC          (N, C, H, W)   NCHW
    conv weights      (kh, kw, C_in, C_out) HWIO   (C_out, C_in, kh, kw) OIHW
    dense weights     (in, out)                    (out, in)
    flatten order     (H, W, C), C order           (C, H, W), C order

Weights are copied bit for bit (a transpose never rounds). Padding that torch's own
``padding=`` argument cannot express (TensorFlow's ``"same"`` with an odd total, whose extra
pixel goes to the bottom/right) becomes an explicit ``nn.ZeroPad2d`` before the convolution,
or an ``nn.ConstantPad2d`` with ``-inf`` before a max-pool (tinyconv's padded cells never win).
torch is imported inside the functions only: tinyconv runs without it.
"""

from collections import OrderedDict

import numpy as np

from .checks import check_int
from .layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, resolve_padding
from .model import Sequential

TORCH_REQUIREMENT = "torch==2.13.0"


def _import_torch():
    """``import torch``, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as err:
        raise ImportError("tinyconv.interop needs PyTorch, an optional dependency: install "
                          f"it with `pip install {TORCH_REQUIREMENT}` (the CPU build is enough)"
                          ) from err
    return torch


# --------------------------------------------------------------------------- layouts


def _check_4d(x, name):
    """``x`` as an array, or ValueError if it is not 4-dimensional."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got {type(x).__name__} of dtype "
                        f"{x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-dimensional array, got shape {x.shape}")
    return x


def nhwc_to_nchw(x):
    """Channel-last activations to torch's channel-first layout.

    Parameters
    ----------
    x : (N, H, W, C) array, e.g. ``y_(l)`` of a tinyconv model.

    Returns
    -------
    (N, C, H, W) C-contiguous copy, ``out[i, k, row, col] == x[i, row, col, k]``.
    """
    return np.ascontiguousarray(_check_4d(x, "x").transpose(0, 3, 1, 2))


def nchw_to_nhwc(x):
    """torch's channel-first activations (or gradients) to tinyconv's channel-last layout.

    Parameters
    ----------
    x : (N, C, H, W) array, e.g. ``tensor.detach().numpy()``.

    Returns
    -------
    (N, H, W, C) C-contiguous copy, ``out[i, row, col, k] == x[i, k, row, col]``.
    """
    return np.ascontiguousarray(_check_4d(x, "x").transpose(0, 2, 3, 1))


def flatten_permutation(shape):
    """Where torch's flattened units come from in tinyconv's flattened vector.

    Parameters
    ----------
    shape : ``(H, W, C)``, the map being flattened (one example).

    Returns
    -------
    perm : (H*W*C,) int array with ``torch_flat[:, j] == tinyconv_flat[:, perm[j]]``.

    Notes
    -----
    tinyconv puts unit ``(row, col, k)`` at ``(row * W + col) * C + k``; torch puts it at
    ``(k * H + row) * W + col``. Hence a Dense layer after Flatten, ``y = x W + b`` with ``W``
    of shape ``(H*W*C, out)``, becomes ``nn.Linear`` with ``weight = W[perm].T``, and back:
    ``W[perm] = weight.T``.
    """
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(f"shape: expected (H, W, C), got {shape!r}")
    H, W, C = (check_int(d, "shape", minimum=1) for d in shape)
    return np.arange(H * W * C).reshape(H, W, C).transpose(2, 0, 1).ravel()


# --------------------------------------------------------------------------- to torch


def _module_names(nn, model):
    """One torch-legal, unique module name per layer: the layer's name where possible."""
    reserved = set(dir(nn.Sequential()))  # add_module refuses existing attributes ('eval', …)
    names = []
    for layer in model.layers:
        name = layer.name.replace(".", "_") or "layer"
        while name in reserved or name in names:
            name += "_"
        names.append(name)
    return names, reserved | set(names)


def _conv_to_torch(torch, layer, in_shape, dtype):
    """Conv2D -> (optional nn.ZeroPad2d, nn.Conv2d) with the same weights."""
    (pt, pb), (pl, pr) = layer.pads(in_shape[0], in_shape[1])
    pad = None
    if layer.padding[0] == "valid":
        padding = "valid"
    elif pt != pb or pl != pr:              # TF "same" with an odd total: extra bottom/right
        pad, padding = torch.nn.ZeroPad2d((pl, pr, pt, pb)), 0
    elif layer.padding[0] == "same" and layer.stride == (1, 1):
        padding = "same"                    # torch's own "same" (stride 1 only)
    else:
        padding = (pt, pl)
    # dilation is meaningless along an axis with a 1-wide kernel; torch 2.13's oneDNN path can
    # crash on it (channels-last input, width 1, stride 2), so it is set to 1 there
    dilation = tuple(1 if k == 1 else d for k, d in zip(layer.kernel, layer.dilation, strict=True))
    conv = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                           padding, dilation, bias=layer.bias, dtype=dtype)
    with torch.no_grad():
        # HWIO (kh, kw, C_in, C_out) -> OIHW (C_out, C_in, kh, kw)
        conv.weight.copy_(torch.from_numpy(layer.params["W"].transpose(3, 2, 0, 1).copy()))
        if layer.bias:
            conv.bias.copy_(torch.from_numpy(layer.params["b"]))
    return pad, conv


def _pool_to_torch(torch, layer, in_shape):
    """MaxPool2D -> (optional nn.ConstantPad2d(-inf), nn.MaxPool2d)."""
    (pt, pb), (pl, pr) = layer.pads(in_shape[0], in_shape[1])
    kh, kw = layer.size
    # torch pads max-pools with -inf too, but only symmetrically and by at most half a window
    if pt == pb and pl == pr and 2 * pt <= kh and 2 * pl <= kw:
        return None, torch.nn.MaxPool2d(layer.size, layer.stride, (pt, pl))
    # exact because every window keeps a real pixel (MaxPool2D checks pad < size)
    pad = torch.nn.ConstantPad2d((pl, pr, pt, pb), float("-inf"))
    return pad, torch.nn.MaxPool2d(layer.size, layer.stride, 0)


def _dense_to_torch(torch, layer, flat_from, dtype):
    """Dense -> nn.Linear; rows permuted if the input is a torch-order flattened map."""
    W = layer.params["W"]                                 # (in, out)
    if flat_from is not None:
        W = W[flatten_permutation(flat_from)]             # rows in torch's (C, H, W) order
    linear = torch.nn.Linear(layer.in_features, layer.out_features, dtype=dtype)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))   # (out, in)
        linear.bias.copy_(torch.from_numpy(layer.params["b"]))
    return linear


def to_torch(model):
    """An equivalent ``torch.nn.Sequential`` with the same weights, in eval mode.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential` of Conv2D, ReLU, MaxPool2D, Flatten, Dense.

    Returns
    -------
    torch.nn.Sequential
        Float32 or float64 like ``model``; its modules are named after the layers (``"."``
        becomes ``"_"``; a name torch reserves, such as ``"eval"``, gets a trailing ``"_"``),
        and an inserted padding module is called ``"<name>_pad"``. It takes ``(N, C, H, W)``
        input (:func:`nhwc_to_nchw`); a spatial ``y_(l)`` comes out as ``(N, C_l, H_l, W_l)``.

    Raises
    ------
    TypeError
        If ``model`` is not a Sequential.
    ValueError
        For a layer type torch has no counterpart for here, naming the layer.
    ImportError
        If torch is not installed.

    Notes
    -----
    Conv2D ``W`` (kh, kw, C_in, C_out) becomes ``weight = W.transpose(3, 2, 0, 1)``;
    Dense ``W`` (in, out) becomes ``weight = W.T``, or ``W[perm].T`` with
    ``perm = flatten_permutation((H, W, C))`` when its input is a flattened ``(H, W, C)`` map
    (also through ReLUs between the Flatten and the Dense). So every Dense output, and the
    model's output, equals tinyconv's; a flattened activation that no Dense has consumed yet
    is in torch's order, ``torch_flat == tinyconv_flat[:, perm]``.

    Padding is resolved for the model's input size (``model.output_shapes``): ``"same"`` with
    an odd total becomes ``nn.ZeroPad2d((left, right, top, bottom))`` + ``padding=0``; a pool
    padding torch's ``MaxPool2d`` refuses (asymmetric, or more than half the window) becomes
    ``nn.ConstantPad2d(..., -inf)`` + ``padding=0``.
    """
    torch = _import_torch()
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a tinyconv Sequential, got {type(model).__name__}")
    dtype = torch.from_numpy(np.zeros(0, dtype=model.dtype)).dtype
    names, taken = _module_names(torch.nn, model)
    modules = OrderedDict()
    flat_from = None  # (H, W, C) of a flattened map not yet consumed by a Dense
    for l, (layer, name) in enumerate(zip(model.layers, names, strict=True), 1):
        in_shape, pad = model.output_shapes[l - 1], None
        if isinstance(layer, Conv2D):
            pad, module = _conv_to_torch(torch, layer, in_shape, dtype)
        elif isinstance(layer, MaxPool2D):
            pad, module = _pool_to_torch(torch, layer, in_shape)
        elif isinstance(layer, ReLU):
            module = torch.nn.ReLU()
        elif isinstance(layer, Flatten):
            if len(in_shape) == 3:
                flat_from = in_shape
            module = torch.nn.Flatten()
        elif isinstance(layer, Dense):
            module, flat_from = _dense_to_torch(torch, layer, flat_from, dtype), None
        else:
            raise ValueError(f"model: layer {l} ({layer.name!r}) is a {type(layer).__name__}, "
                             "which to_torch cannot convert")
        if pad is not None:
            pad_name = name + "_pad"
            while pad_name in taken:
                pad_name += "_"
            taken.add(pad_name)
            modules[pad_name] = pad
        modules[name] = module
    return torch.nn.Sequential(modules).eval()


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
