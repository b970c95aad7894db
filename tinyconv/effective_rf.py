"""The effective receptive field: how much each input pixel actually moves a unit.

Luo, Li, Urtasun & Zemel, "Understanding the Effective Receptive Field in Deep Convolutional
Neural Networks", NeurIPS 2016, §2: put a gradient of 1 on one unit ``y_(l),idx,k`` and 0
everywhere else, send it back to the input, and average the absolute input gradient over
examples. The result is non-zero only inside the analytic receptive field of
:mod:`tinyconv.receptive_field`, but it is concentrated near the field's centre.

Every gradient here is :func:`tinyconv.project`'s with ``rule="gradient"``, except that the
features of one batch share its forward pass: one forward, then one backward per feature.
"""

import numpy as np

from .checks import check_array, check_int
from .units import centre_unit, check_features, check_idx, unit_signal


def effective_receptive_field(model, x, layer, k=None, idx=None, batch_size=256):
    """Mean absolute input gradient of the unit(s) ``y_(l),idx,k`` (Luo et al. 2016, §2).

    ``ERF[h, w] = mean_i mean_k sum_c |d y_(l),idx,k(x_i) / d x_i,h,w,c|``: the mean over
    the examples and over the features ``k``, of the absolute gradient summed over the input
    channels ``c``.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential`.
    x : (N, H, W, C_0) examples, sent back ``batch_size`` at a time.
    layer : name or number ``l`` of a spatial layer (``l >= 1``).
    k : a feature index, a list of them, or None for all ``C_l`` features (one backward pass
        per feature: each unit's gradient is taken alone, then their absolute values are
        averaged).
    idx : the unit's ``(row, col)`` (the same for every example), or ``(N, 2)`` ints; None:
        the centre of the ``H_l x W_l`` map (:func:`tinyconv.units.centre_unit`), as in
        Luo et al.

    Returns
    -------
    (H, W) float64, non-negative; zero outside the unit's theoretical receptive field.
    """
    x = check_array(x, "x", ndim=4)
    l = model.index(layer)
    if l == 0:
        raise ValueError("layer: the input's receptive field is the pixel itself; pick l >= 1")
    features = check_features(model, l, k)
    idx = check_idx(model, l, centre_unit(model, l) if idx is None else idx, len(x))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    total = np.zeros(model.input_shape[:2])                              # (H, W)
    for start in range(0, len(x), batch_size):
        batch = slice(start, start + batch_size)
        y = model.forward(x[batch], upto=l)                              # (B, H_l, W_l, C_l)
        for f in features:
            signal, _ = unit_signal(model, y, l, int(f), idx[batch])
            g = model.backward(signal, start=l, param_grads=False)         # d y_(l),idx,f / d x
            total += np.abs(g).sum(axis=-1).sum(axis=0)                  # (B, H, W, C_0) -> (H, W)
    return total / (len(x) * len(features))
