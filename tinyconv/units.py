"""The lecture's unit ``y_(l),idx,k``: choose it, locate it, check it, and make its signal.

Every technique of the lecture starts from one unit — feature ``k`` of layer ``l`` at the
spatial location ``idx = (row, col)`` — or from one class score ``y_(L),c``. This module is
the one home of what they all need about it:

* checking a feature index ``k``, a location ``idx`` and a class ``target`` against the model,
  with messages that name the argument;
* the strongest location of map ``k`` and the strongest map of an example (Zeiler & Fergus
  2014, §4: "the strongest activation" of a feature map), and a map's total activation;
* the one-hot *signal* that starts a backward pass at that unit (Zeiler & Fergus 2014, §2.1:
  "set all other activations in the layer to zero and pass the feature maps as input to the
  attached deconvnet layer");
* which layers are convolutions, and the unit at the centre of a map.

Shapes: ``y = y_(l)`` is ``(N, H_l, W_l, C_l)`` at a spatial layer, ``(N, C_l)`` after Flatten.
"""

import numpy as np

from .checks import check_int
from .layers import Conv2D, check_rule


def check_feature(model, l, k, name="k"):
    """``k`` checked as a feature index of layer ``l``: an int in ``[0, C_l)``."""
    C = model.output_shapes[l][-1]
    return check_int(k, name, minimum=0, maximum=C - 1)


def check_features(model, l, k, name="k"):
    """``k`` as an array of feature indices of layer ``l``: one index, a list of them, or None
    for all ``C_l`` features -> ``(K,)`` int64."""
    C = model.output_shapes[l][-1]
    if k is None:
        return np.arange(C)
    ks = np.atleast_1d(np.asarray(k))
    if ks.dtype.kind not in "iu" or ks.ndim != 1 or ks.size == 0:
        raise TypeError(f"{name}: expected a feature index, a list of them or None, got {k!r}")
    if ks.min() < 0 or ks.max() >= C:
        raise ValueError(f"{name}: expected feature indices in [0, {C}), got {ks.tolist()}")
    return ks.astype(np.int64)


def is_spatial(model, l):
    """Whether layer ``l``'s output has locations ``idx`` (``(H_l, W_l, C_l)``, not flat): the
    model's own :meth:`~tinyconv.model.Sequential.spatial`."""
    return model.spatial(l)


def check_idx(model, l, idx, N, name="idx"):
    """A location argument -> ``(N, 2)`` int64 ``(row, col)`` per example.

    ``idx`` is one ``(row, col)`` pair for every example or ``(N, 2)`` ints, each inside the
    ``H_l x W_l`` map of layer ``l``. Layers without locations (after Flatten) refuse any idx.
    """
    return check_locations(idx, N, model.output_shapes[l], model.names[l], name)


def check_locations(idx, N, shape, layer_name, name="idx"):
    """:func:`check_idx` for a layer known by its per-example output ``shape`` and its name
    (what a :class:`~tinyconv.ReceptiveField` knows) -> ``(N, 2)`` int64."""
    if len(shape) != 3:
        raise ValueError(f"{name}: layer {layer_name!r} (output {tuple(shape)}) has no spatial "
                         f"locations; pass {name}=None")
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu" or idx.shape not in ((2,), (N, 2)):
        raise ValueError(f"{name}: expected a (row, col) pair of ints or ({N}, 2) ints, "
                         f"got {idx.dtype} {idx.shape}")
    idx = np.broadcast_to(idx, (N, 2)).astype(np.int64)
    H_l, W_l = shape[:2]
    bad = (idx[:, 0] < 0) | (idx[:, 0] >= H_l) | (idx[:, 1] < 0) | (idx[:, 1] >= W_l)
    if bad.any():
        raise ValueError(f"{name}: locations must lie in the {H_l}x{W_l} map of layer "
                         f"{layer_name!r}, got {idx[bad][0].tolist()}")
    return idx


def strongest_locations(y, k):
    """Each example's strongest location of feature map ``k``.

    Parameters
    ----------
    y : (N, H_l, W_l, C_l) activations ``y_(l)``.
    k : feature index.

    Returns
    -------
    (N, 2) int64 ``(row, col)`` of ``argmax_idx y_(l),idx,k``; ties go to the first in
    row-major order.
    """
    return strongest_responses(y, [k])[1][:, 0]


def strongest_responses(y, features):
    """Each example's strongest response in each of the feature maps ``features``, and where.

    Parameters
    ----------
    y : (N, H_l, W_l, C_l) activations ``y_(l)``.
    features : (K,) feature indices.

    Returns
    -------
    values : (N, K) ``max_idx y_(l),idx,k`` in ``y``'s dtype;
    locations : (N, K, 2) int64 ``(row, col)`` of that maximum (the first in row-major order
        on a tie, as in :func:`strongest_locations`).
    """
    N, H_l, W_l, C_l = y.shape
    flat = y.reshape(N, H_l * W_l, C_l)                                 # (N, H_l W_l, C_l)
    if not np.array_equal(features, np.arange(C_l)):    # every map: no copy (half the time)
        flat = flat[..., features]                                      # (N, H_l W_l, K)
    where = flat.argmax(axis=1)                                         # (N, K)
    values = np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0, :]
    return values, np.stack(np.divmod(where, W_l), axis=-1).astype(np.int64)


def map_totals(y):
    """Each feature map's total activation, ``sum_idx y_(l),idx,k``.

    Parameters
    ----------
    y : (N, H_l, W_l, C_l) or (N, C_l) activations.

    Returns
    -------
    (N, C_l) float64 (summed in float64, so the order of a float32 sum does not matter).
    """
    return y.reshape(len(y), -1, y.shape[-1]).sum(axis=1, dtype=np.float64)


def strongest_feature(y):
    """Each example's strongest feature map: ``argmax_k sum_idx y_(l),idx,k`` -> ``(N,)``.

    Pass post-ReLU activations: before the ReLU a map's sum mixes signs, and a large positive
    part can hide behind a larger negative one.
    """
    return map_totals(y).argmax(axis=1)


def strongest_feature_at(y, idx):
    """The feature most active at location ``idx`` on average over the examples:
    ``argmax_k mean_i y_(l),idx,k`` (an int).

    Parameters
    ----------
    y : (N, H_l, W_l, C_l) activations ``y_(l)``; idx : one ``(row, col)`` (already checked).
    """
    row, col = idx
    return int(y[:, row, col, :].mean(axis=0, dtype=np.float64).argmax())


def unit_signal(model, y, l, k, idx=None):
    """The one-hot signal on ``y_(l),idx,k`` that a backward pass starts from.

    Parameters
    ----------
    y : ``y_(l)`` of the current forward pass (used when ``idx`` is None, for the argmax).
    l : layer number. k : feature index in ``[0, C_l)``.
    idx : None (each example's strongest location), one ``(row, col)``, or ``(N, 2)`` ints.
        Must be None for a layer without spatial locations (after Flatten).

    Returns
    -------
    signal : array shaped like ``y``, zero but for a 1 per example at ``(idx, k)``;
    idx : the ``(N, 2)`` locations used (None if the layer is not spatial).
    """
    k = check_feature(model, l, k)
    signal = np.zeros_like(y)
    N = len(y)
    if not is_spatial(model, l):
        if idx is not None:
            check_idx(model, l, idx, N)             # raises: no locations after Flatten
        signal[:, k] = 1
        return signal, None
    idx = strongest_locations(y, k) if idx is None else check_idx(model, l, idx, N)
    signal[np.arange(N), idx[:, 0], idx[:, 1], k] = 1
    return signal, idx


def n_classes(model, what):
    """``K`` of a model whose output ``y_(L)`` is ``(N, K)`` class scores; ``what`` names the
    technique for the message when it is not."""
    out = model.output_shapes[len(model.layers)]
    if len(out) != 1:
        raise ValueError(f"model: {what} needs class scores (N, K) at the output, this model "
                         f"outputs {out} per example")
    return out[0]


def check_target(target, logits, name="target"):
    """Class targets for a batch: ``(N,)`` int64.

    Parameters
    ----------
    target : a class index ``c`` for every example, ``(N,)`` ints (one each), or None for each
        example's predicted class ``argmax_c y_(L),c``.
    logits : (N, K) class scores ``y_(L)`` of the batch.
    """
    N, K = logits.shape
    if target is None:
        return logits.argmax(axis=1)
    t = np.asarray(target)
    if t.dtype.kind not in "iu" or t.shape not in ((), (N,)):
        raise ValueError(f"{name}: expected a class index or ({N},) class indices, "
                         f"got {t.dtype} {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= K):
        raise ValueError(f"{name}: expected class indices in [0, {K}), got {t.tolist()}")
    return np.broadcast_to(t, (N,)).astype(np.int64)


def class_signal(logits, target):
    """The one-hot signal on ``y_(L),c``: ``(N, K)`` zeros with a 1 at each example's class
    ``target`` (``(N,)`` ints from :func:`check_target`)."""
    signal = np.zeros_like(logits)
    signal[np.arange(len(logits)), target] = 1
    return signal


def conv_layers(model):
    """The layer numbers ``l`` of the model's convolutions, in order."""
    return [l for l, layer in enumerate(model.layers, 1) if isinstance(layer, Conv2D)]


def centre_unit(model, l):
    """The location ``(row, col)`` at the centre of layer ``l``'s ``H_l x W_l`` map (the lower
    right of the middle four when a side is even); ``l`` a layer name or number."""
    l = model.index(l)
    if not is_spatial(model, l):
        raise ValueError(f"layer: {model.names[l]!r} has no spatial locations")
    H_l, W_l = model.output_shapes[l][:2]
    return H_l // 2, W_l // 2


def class_backward(model, x, target=None, rule="gradient", what="this method", stop=0):
    """The class score ``y_(L),c`` sent back to the input: one forward, one backward pass.

    Parameters
    ----------
    x : (N, H, W, C_0) input.
    target : a class index ``c``, ``(N,)`` ints, or None for each example's predicted class.
    rule : ``"gradient"`` (``d y_(L),c / d x``), ``"deconvnet"`` or ``"guided"``.
    what : the technique's name, for the message when the model has no class scores.
    stop : go back only to ``y_(stop)`` (0: the input).

    Returns
    -------
    dx : (N, H, W, C_0) the backward signal at the input (at ``y_(stop)``, shaped like it);
    target : (N,) int64 the classes used; logits : (N, K) ``y_(L)``.
    The layers' parameter gradients ``grads`` are left as they were.
    """
    n_classes(model, what)
    check_rule(rule)
    logits = model.forward(x)
    target = check_target(target, logits)
    dy = class_signal(logits, target)                             # (N, K) at y_(L)
    dx = model.backward(dy, rule=rule, stop=stop, param_grads=False)   # shaped like y_(stop)
    return dx, target, logits
