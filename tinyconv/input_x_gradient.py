"""Input × gradient: each pixel's value times the class score's sensitivity to it.

Shrikumar, Greenside, Shcherbina & Kundaje, "Not Just a Black Box: Learning Important Features
Through Propagating Activation Differences", 2016, §2 ("gradient * input"): the saliency map
``d y_(L),c / d x`` of Simonyan et al. (2014) says how much the score would change per unit
change of a pixel; multiplied by the pixel itself it becomes a first-order estimate of that
pixel's *contribution* — for a linear model ``y = w . x`` it is exactly ``w_i x_i``.
"""

import numpy as np

from .units import class_backward


def input_x_gradient(model, x, target=None):
    """``x * d y_(L),c / d x`` for each example's class ``c`` (Shrikumar et al. 2016, §2).

    Parameters
    ----------
    model : :class:`~tinyconv.Sequential` whose output ``y_(L)`` is ``(N, K)`` class scores.
    x : (N, H, W, C_0) input.
    target : a class index ``c`` for every example, ``(N,)`` ints, or None for each example's
        predicted class. The score is the pre-softmax logit ``y_(L),c``.

    Returns
    -------
    (N, H, W, C_0) array in the model's dtype; summed over pixels it equals
    ``y_(L),c(x) - y_(L),c(0)`` for a model without ReLUs and biases.
    """
    dx, _, _ = class_backward(model, x, target, what="input_x_gradient")
    return np.asarray(x, dtype=dx.dtype) * dx      # x was checked by the forward pass
