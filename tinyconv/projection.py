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

from dataclasses import dataclass

import numpy as np

from .units import class_backward, unit_signal


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
    l = model.index(layer)
    if l == 0:
        raise ValueError("layer: projecting the input onto itself is the identity; pick l >= 1")
    y = model.forward(x, upto=l)
    signal, _ = unit_signal(model, y, l, k, idx)
    # a map of the input never reads the parameter gradients: leave them (a dW per conv)
    return model.backward(signal, rule=rule, start=l, param_grads=False)    # checks rule


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
    dx, _, _ = class_backward(model, x, target, rule="gradient", what="saliency")
    return np.abs(dx).max(axis=-1)                              # (N, H, W)


@dataclass
class Projection:
    """The top examples of ``MaxAct_(l),k``, each projected back from its strongest unit.

    Attributes
    ----------
    layer : ``l``; k : the feature index; rule : the backward rule used.
    examples : (n,) example indices, best first (from a :class:`~tinyconv.MaxActivation`).
    locations : (n, 2) ``(row, col)`` of each example's unit ``y_(l),idx,k`` (-1 after Flatten).
    maps : (n, H, W, C_0) :func:`project` of that unit.
    """

    layer: int
    k: int
    rule: str
    examples: np.ndarray
    locations: np.ndarray
    maps: np.ndarray


def project_top(model, X, ranking, k, n=None, rule="deconvnet"):
    """:func:`project` the ``n`` top examples of feature ``k`` in ``ranking``, each from the
    unit where it responded most: the lecture's "saliency maps and corresponding patches"
    (Zeiler & Fergus 2014, §2.1 and Fig. 2).

    Parameters
    ----------
    X : (N, H, W, C_0) the data set ``ranking`` was computed on.
    ranking : :class:`~tinyconv.MaxActivation` that ranked feature ``k``.
    n : how many of its examples (None: all it kept).

    Returns
    -------
    :class:`Projection` with ``maps`` of shape ``(n, H, W, C_0)``.
    """
    examples, _, locations = ranking.row(k)
    examples, locations = examples[:n], locations[:n]
    idx = locations if model.spatial(ranking.layer) else None
    maps = project(model, X[examples], ranking.layer, k, idx=idx, rule=rule)
    return Projection(ranking.layer, int(k), rule, examples, locations, maps)
