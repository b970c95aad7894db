"""Integrated Gradients: the gradient averaged along the straight path from a baseline to x.

Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017, §3 eq. (1)
and its Riemann approximation (§4, eq. 3):

    IG_i(x) = (x_i - x'_i) ∫_0^1 dF(x' + α (x - x')) / dx_i dα
            ≈ (x_i - x'_i) Σ_j w_j dF(x' + α_j (x - x')) / dx_i

with ``F = y_(L),c`` the class logit and ``x'`` the baseline. *Completeness* (§3, Prop. 1):
``Σ_i IG_i = F(x) - F(x')`` exactly; the sum's error measures the quadrature, so it is returned
as ``gap``. Nodes ``α_j`` and weights ``w_j`` (``j = 0 … m-1``, ``m = steps``; each set of
weights sums to 1, so a path on which F is linear has no gap):

=============  =====================================  ==================================
method         α_j                                    w_j
=============  =====================================  ==================================
``left``       j / m                                  1 / m
``right``      (j + 1) / m                            1 / m
``middle``     (j + 1/2) / m                          1 / m
``trapezoid``  j / (m - 1)                            1 / (m - 1), halved at both ends
=============  =====================================  ==================================

``left``, ``right`` and ``middle`` are Captum's ``riemann_*`` rules. Captum's
``riemann_trapezoid`` takes the same nodes but weights ``1 / m`` (halved at the ends), which
sum to ``(m - 1) / m``: its attributions are ours times ``(m - 1) / m`` exactly, and its
completeness gap carries a bias of ``-(F(x) - F(x')) / m`` (1.6 % at 64 steps) that ours has not.
"""

from dataclasses import dataclass

import numpy as np

from .checks import check_array, check_choice, check_int
from .gradient_sums import (
    affine_prefix,
    back_through_prefix,
    example_groups,
    runs,
    sum_dtype,
    units,
)
from .units import check_target, class_signal, n_classes

METHODS = ("trapezoid", "left", "right", "middle")


@dataclass
class IntegratedGradients:
    """Result of :func:`integrated_gradients`.

    Attributes
    ----------
    attributions : (N, H, W, C_0) ``IG_i(x)`` per pixel and channel.
    gap : (N,) float64 ``Σ_i IG_i - (F(x) - F(x'))``, the completeness error.
    difference : (N,) float64 ``F(x) - F(x')``.
    target : (N,) int64 the classes ``c`` used.
    """

    attributions: np.ndarray
    gap: np.ndarray
    difference: np.ndarray
    target: np.ndarray


def riemann_nodes(steps, method):
    """The path positions ``α`` ``(steps,)`` and weights ``w`` ``(steps,)`` of a rule."""
    m = steps
    if method == "trapezoid":
        alphas = np.linspace(0.0, 1.0, m)
        weights = np.full(m, 1.0 / (m - 1))        # the textbook rule on m - 1 intervals
        weights[[0, -1]] /= 2
        return alphas, weights
    first = {"left": 0.0, "right": 1.0, "middle": 0.5}[method] / m
    return first + np.arange(m) / m, np.full(m, 1.0 / m)


def check_baseline(baseline, x):
    """``x'`` as an array shaped like ``x``: a number, one ``(H, W, C_0)`` image or ``(N, …)``."""
    b = np.asarray(baseline)
    if b.dtype.kind not in "fiu" or b.dtype == bool:
        raise TypeError(f"baseline: expected a number or a float array, got {b.dtype}")
    if b.shape not in ((), x.shape[1:], x.shape):
        raise ValueError(f"baseline: expected a number, one image {x.shape[1:]} or one per "
                         f"example {x.shape}, got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("baseline: expected finite values, got NaN or inf")
    return np.broadcast_to(b, x.shape).astype(x.dtype)


def path_sum(model, x, base, target, alphas, weights, a, batch_size):
    """``Σ_j w_j dF/dx`` at the path points ``x' + α_j (x - x')``, ``F = y_(L),c``:
    ``(N, H, W, C_0)`` for ``x`` and ``base`` ``(N, H, W, C_0)``, ``target (N,)``.

    The first ``a`` layers are affine (:mod:`tinyconv.gradient_sums`), so the path is taken at
    ``y_(a)``, from its two ends, and the sum goes back through them once at the end. The
    ``N m`` points go through ``batch_size`` at a time; point ``p = j N + i`` is ``α_j`` for
    example ``i``.
    """
    N, m = len(x), len(alphas)
    y_base = model.forward(base, upto=a)                          # y_(a)(x')
    y_delta = model.forward(x, upto=a) - y_base                   # y_(a)(x) - y_(a)(x')
    if not np.isfinite(y_delta).all():
        raise ValueError(f"x, baseline: layer {a}'s outputs at x and at the baseline overflow "
                         f"{x.dtype} (their difference is not finite); scale them down")
    total = np.zeros(y_base.shape, sum_dtype(model, a))          # Σ_j w_j dF/dy_(a)
    for start in range(0, m * N, batch_size):
        stop = min(start + batch_size, m * N)
        chunk = list(runs(start, stop, N))
        points = np.empty((stop - start, *y_base.shape[1:]), y_base.dtype)   # y_(a) there
        for j, i, rows in chunk:
            np.multiply(y_delta[i], y_base.dtype.type(alphas[j]), out=points[rows])
            points[rows] += y_base[i]
        logits = model.forward(points, start=a)
        dy = class_signal(logits, target[np.arange(start, stop) % N])
        grad = model.backward(dy, stop=a, param_grads=False)      # dF/dy_(a) at the points
        for j, i, rows in chunk:
            total[i] += total.dtype.type(weights[j]) * grad[rows]
    return back_through_prefix(model, x, total, a)


def integrated_gradients(model, x, target=None, baseline=0.0, steps=50, method="trapezoid",
                         batch_size=64):
    """Integrated Gradients of the class logit ``y_(L),c`` (Sundararajan et al. 2017, §3-4).

    Parameters
    ----------
    model : :class:`~tinyconv.Sequential` with class scores ``(N, K)`` at the output.
    x : (N, H, W, C_0) input.
    target : a class index ``c``, ``(N,)`` ints, or None for each example's predicted class.
    baseline : ``x'``: a number (default 0, a black image), an ``(H, W, C_0)`` image or
        ``(N, H, W, C_0)`` images.
    steps : number of path points ``m`` (at least 2 for ``"trapezoid"``).
    method : ``"trapezoid"``, ``"left"``, ``"right"`` or ``"middle"`` Riemann sum.
    batch_size : path points per forward/backward pass (the ``N m`` points are batched).
        On the MNIST model 16 to 256 run alike; one pass of 800 is slower (its im2col
        columns no longer fit in the cache).

    Returns
    -------
    :class:`IntegratedGradients` with ``attributions (N, H, W, C_0)`` and ``gap (N,)``.
    """
    n_classes(model, "integrated_gradients")
    x = check_array(x, "x", ndim=4).astype(model.dtype, copy=False)   # (N, H, W, C_0)
    logits_x = model.forward(x)                                   # checks x against the model
    check_choice(method, "method", METHODS)
    steps = check_int(steps, "steps", minimum=2 if method == "trapezoid" else 1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    base = check_baseline(baseline, x)
    N = len(x)
    target = check_target(target, logits_x)
    logits_b = model.forward(base)
    rows = np.arange(N)
    difference = logits_x[rows, target].astype(np.float64) - logits_b[rows, target]
    alphas, weights = riemann_nodes(steps, method)
    total = np.zeros(x.shape, np.float64)                         # Σ_j w_j dF/dx at the points
    a = affine_prefix(model)
    # per example: the float64 sum at y_(a) and the path's two ends there
    for e in example_groups(N, units(model, a) * (8 + 2 * x.itemsize)):
        total[e] = path_sum(model, x[e], base[e], target[e], alphas, weights, a, batch_size)
    delta = x - base                                              # (N, H, W, C_0)
    attributions = (delta * total).astype(x.dtype)
    gap = attributions.reshape(N, -1).sum(axis=1, dtype=np.float64) - difference
    return IntegratedGradients(attributions, gap, difference, target)
