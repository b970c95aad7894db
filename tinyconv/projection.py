"""Send one unit ``y_(l),idx,k`` back to the input: gradient, deconvnet, guided backprop.

Zeiler & Fergus 2014, §2.1 ("Deconvnet"): to see what a unit responds to, set it to one and
every other unit of its layer to zero, then go back through the network — transposed
convolutions with the same filters, unpooling through the recorded switches, and a ReLU on the
way back. The three rules differ only in that ReLU (see :func:`tinyconv.layers.relu_backward`):

* ``"gradient"``: the sensitivity ``s = d y_(l),idx,k / d x`` (Simonyan et al. 2014);
* ``"deconvnet"``: rectify the signal going back (Zeiler & Fergus 2014);
* ``"guided"``: both masks (Springenberg et al. 2015, "guided backpropagation").

Everything here is a call to :meth:`Sequential.backward`; there is no second backprop.
"""

import numpy as np

from .checks import check_int
from .layers import check_rule


def strongest_locations(y, k):
    """Each example's strongest location of feature map ``k``.

    Parameters
    ----------
    y : (N, H_l, W_l, C_l) activations ``y_(l)``.
    k : feature index.

    Returns
    -------
    (N, 2) int64 ``(row, col)``; ties go to the first in row-major order.
    """
    N, H_l, W_l, _ = y.shape
    flat = y[..., k].reshape(N, H_l * W_l).argmax(axis=1)
    return np.stack(np.divmod(flat, W_l), axis=1).astype(np.int64)


def unit_seed(model, y, layer, k, idx=None):
    """The one-hot signal on ``y_(l),idx,k``: ``(N, *output_shapes[l])`` zeros with a 1 per example.

    Parameters
    ----------
    y : ``y_(l)`` of the current forward pass (used when ``idx`` is None, for the argmax).
    layer : ``l`` (int). k : feature index in ``[0, C_l)``.
    idx : None (each example's strongest location), one ``(row, col)``, or ``(N, 2)`` ints.
        Must be None for a layer without spatial locations (after Flatten).

    Returns
    -------
    seed : array shaped like ``y``; idx : the ``(N, 2)`` locations used (None if not spatial).
    """
    shape = model.output_shapes[layer]
    k = check_int(k, "k", minimum=0, maximum=shape[-1] - 1)
    seed = np.zeros_like(y)
    N = len(y)
    if len(shape) != 3:
        if idx is not None:
            raise ValueError(f"idx: layer {model.names[layer]!r} (output {shape}) has no spatial "
                             f"locations; pass idx=None")
        seed[:, k] = 1
        return seed, None
    if idx is None:
        idx = strongest_locations(y, k)
    else:
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu" or idx.shape not in ((2,), (N, 2)):
            raise ValueError(f"idx: expected a (row, col) pair of ints or ({N}, 2) ints, "
                             f"got {idx.dtype} {idx.shape}")
        idx = np.broadcast_to(idx, (N, 2)).astype(np.int64)
        H_l, W_l = shape[:2]
        bad = (idx[:, 0] < 0) | (idx[:, 0] >= H_l) | (idx[:, 1] < 0) | (idx[:, 1] >= W_l)
        if bad.any():
            raise ValueError(f"idx: locations must lie in the {H_l}x{W_l} map of layer "
                             f"{model.names[layer]!r}, got {idx[bad][0].tolist()}")
    seed[np.arange(N), idx[:, 0], idx[:, 1], k] = 1
    return seed, idx


def project(model, x, layer, k, idx=None, rule="deconvnet"):
    """Project the unit ``y_(l),idx,k`` back to the input with one of the three rules.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential`.
    x : (N, H, W, C_0) input.
    layer : name or number ``l``; k : feature index in ``[0, C_l)``.
    idx : None (each example's strongest location of map ``k``), a ``(row, col)`` pair for all
        examples, or ``(N, 2)`` ints. Must be None for layers after Flatten.
    rule : ``"deconvnet"`` (default), ``"guided"`` or ``"gradient"``.

    Returns
    -------
    (N, H, W, C_0) array: the reconstruction (for ``"gradient"``, ``d y_(l),idx,k / d x``).
    """
    check_rule(rule)
    l = model.index(layer)
    if l == 0:
        raise ValueError("layer: projecting the input onto itself is the identity; pick l >= 1")
    y = model.forward(x, upto=l)
    seed, _ = unit_seed(model, y, l, k, idx)
    return model.backward(seed, rule=rule, start=l)


def saliency(model, x, target=None):
    """Simonyan et al. 2014 saliency: ``|d z_c / d x|``, max over channels.

    Parameters
    ----------
    x : (N, H, W, C_0) input.
    target : class index ``c`` for every example, ``(N,)`` ints (one each), or None for each
        example's predicted class. The score ``z_c`` is the pre-softmax logit ``y_(L),c``.

    Returns
    -------
    (N, H, W) non-negative map.
    """
    L = len(model.layers)
    if len(model.output_shapes[L]) != 1:
        raise ValueError(f"model: saliency needs class scores (N, K) at the output, "
                         f"this model outputs {model.output_shapes[L]} per example")
    logits = model.forward(x)
    N, K = logits.shape
    if target is None:
        target = logits.argmax(axis=1)
    target = np.asarray(target)
    if target.dtype.kind not in "iu" or target.shape not in ((), (N,)):
        raise ValueError(f"target: expected a class index or ({N},) class indices, "
                         f"got {target.dtype} {target.shape}")
    if target.min() < 0 or target.max() >= K:
        raise ValueError(f"target: expected class indices in [0, {K}), got {target.tolist()}")
    seed = np.zeros_like(logits)
    seed[np.arange(N), np.broadcast_to(target, (N,))] = 1
    return np.abs(model.backward(seed, rule="gradient", start=L)).max(axis=-1)
