"""``to_torch``: a tinyconv model as an equivalent ``torch.nn.Sequential``, weights copied
bit for bit (see :mod:`tinyconv.interop`)."""

from collections import OrderedDict

import numpy as np

from ..layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from ..model import Sequential
from .layouts import _import_torch, flatten_permutation

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
    # the argument first: a wrong one is named whether torch is installed or not
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a tinyconv Sequential, got {type(model).__name__}")
    torch = _import_torch()
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
