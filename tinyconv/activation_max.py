"""Activation maximisation: the input a unit, a feature map or a class "wants to see".

Erhan, Bengio, Courville & Vincent, "Visualizing Higher-Layer Features of a Deep Network",
2009, §3.1: find ``x* = argmax_x y_(l),idx,k(x)`` by gradient ascent from a random start.
Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks", 2013, §2: the same for a
class logit ``y_(L),c`` with an L2 penalty — a *class model*. Yosinski, Clune, Nguyen, Fuchs &
Lipson, "Understanding Neural Networks Through Deep Visualization", 2015, §3: regularisers that
keep the image natural, applied after each step ``x <- x + lr ∇ / max|∇|``:

* L2 decay ``x <- b + (1 - l2)(x - b)`` towards the background ``b = clip_range[0]``;
* a Gaussian blur of width ``blur_sigma`` every ``blur_every`` steps;
* jitter: the gradient is taken at the image shifted by up to ``jitter`` pixels;
* clipping small values: the fraction ``clip_small`` of pixels closest to ``b`` is set to ``b``;

and the image is clipped to ``clip_range``. The gradient comes from the model's own backward.
"""

from dataclasses import dataclass

import numpy as np

from .checks import check_choice, check_int
from .smoothgrad import check_positive
from .units import centre_unit, check_feature, is_spatial, unit_signal

OBJECTIVES = ("unit", "map")


@dataclass
class ActivationMaximization:
    """Result of :func:`activation_maximization`.

    Attributes
    ----------
    image : (H, W, C_0) the preferred input ``x*``.
    history : (steps,) float64 the objective before each step.
    layer : ``l``; k : feature (or class) index; idx : ``(row, col)`` or None.
    """

    image: np.ndarray
    history: np.ndarray
    layer: int
    k: int
    idx: tuple | None


def gaussian_blur(x, sigma):
    """Blur ``(..., H, W, C)`` images with a separable Gaussian of width ``sigma`` pixels
    (edges reflected), rows then columns."""
    radius = max(int(3 * sigma + 0.5), 1)
    t = np.arange(-radius, radius + 1)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    H, W = x.shape[-3:-1]
    pad = np.pad(x, [(0, 0)] * (x.ndim - 3) + [(radius, radius), (radius, radius), (0, 0)],
                 mode="reflect")
    rows = sum(g[i] * pad[..., i:i + H, :, :] for i in range(len(g)))     # (..., H, W+2r, C)
    return sum(g[i] * rows[..., :, i:i + W, :] for i in range(len(g)))    # (..., H, W, C)


def objective_signal(model, y, l, k, idx, objective):
    """The objective's value ``(1,)`` and its signal ``d objective / d y_(l)`` (shaped as y)."""
    if objective == "map":                     # Σ_idx y_(l),idx,k: ones over map k
        signal = np.zeros_like(y)
        signal[..., k] = 1
        return float(y[..., k].sum()), signal
    signal, _ = unit_signal(model, y, l, k, idx)
    return float((signal * y).sum()), signal


def activation_maximization(model, layer, k, idx=None, objective="unit", steps=200, lr=0.05,
                            l2=0.0, blur_every=0, blur_sigma=0.5, jitter=0, clip_small=0.0,
                            clip_range=(0.0, 1.0), seed=0, init=None):
    """Gradient ascent on the input towards a unit, a map or a class (Erhan et al. 2009).

    Parameters
    ----------
    model : :class:`~tinyconv.Sequential`.
    layer : name or number ``l >= 1``; the last layer with ``k`` a class gives a class model
        (Simonyan et al. 2013).
    k : feature index in ``[0, C_l)`` (a class at the output).
    idx : ``(row, col)`` of the unit for ``objective="unit"`` at a spatial layer; None takes
        the centre of the map. Must be None after Flatten.
    objective : ``"unit"`` (``y_(l),idx,k``) or ``"map"`` (``Σ_idx y_(l),idx,k``, spatial only).
    steps : ascent steps; lr : the largest change of any pixel in one step (the gradient is
        divided by its largest magnitude, so ``lr`` does not depend on the unit's scale).
    l2, blur_every, blur_sigma, jitter, clip_small : Yosinski et al.'s regularisers (module
        docstring); 0 switches one off.
    clip_range : ``(lo, hi)`` the image stays in. seed : seeds the start and the jitter.
    init : optional ``(H, W, C_0)`` start; default ``lo + (hi - lo) (0.5 + 0.01 ε)``.

    Returns
    -------
    :class:`ActivationMaximization` with ``image (H, W, C_0)`` and ``history (steps,)``.
    """
    return maximize_features(model, layer, [k], idx=idx, objective=objective, steps=steps,
                             lr=lr, l2=l2, blur_every=blur_every, blur_sigma=blur_sigma,
                             jitter=jitter, clip_small=clip_small, clip_range=clip_range,
                             seed=seed, init=init)[0]


def maximize_features(model, layer, ks, idx=None, objective="unit", steps=200, lr=0.05,
                      l2=0.0, blur_every=0, blur_sigma=0.5, jitter=0, clip_small=0.0,
                      clip_range=(0.0, 1.0), seed=0, init=None):
    """:func:`activation_maximization` of several features ``ks`` of one layer at once.

    The ascents run side by side as one batch ``(len(ks), H, W, C_0)``: each image starts
    from the same seeded image and sees the same jitter as it would alone, so the results
    are those of one call per feature, up to float round-off, in a tenth of the passes for
    ten features (the class models of Simonyan et al. 2013, §2, one per digit).

    Returns
    -------
    list of :class:`ActivationMaximization`, one per ``k`` of ``ks``, in order.
    """
    l = model.index(layer)
    if l == 0:
        raise ValueError("layer: the input maximises itself without bound; pick l >= 1")
    ks = [check_feature(model, l, k) for k in ks]
    if not ks:
        raise ValueError("ks: expected at least one feature")
    check_choice(objective, "objective", OBJECTIVES)
    if objective == "map" and not is_spatial(model, l):
        raise ValueError(f"objective: 'map' needs a layer with locations, {model.names[l]!r} "
                         f"outputs {model.output_shapes[l]}; use objective='unit'")
    if objective == "unit" and idx is None and is_spatial(model, l):
        idx = centre_unit(model, l)
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    blur_every = check_int(blur_every, "blur_every", minimum=0)
    jitter = check_int(jitter, "jitter", minimum=0)
    if not (0 <= l2 < 1 and 0 <= clip_small < 1):
        raise ValueError(f"l2, clip_small: expected values in [0, 1), got {l2!r}, {clip_small!r}")
    lo, hi = (float(v) for v in clip_range)
    if not lo < hi:
        raise ValueError(f"clip_range: expected (lo, hi) with lo < hi, got {clip_range!r}")
    rng = np.random.default_rng(seed)
    shape = model.input_shape
    if init is None:
        start = lo + (hi - lo) * (0.5 + 0.01 * rng.standard_normal(shape))
    else:
        start = np.array(init, dtype=np.float64)
        if start.shape != shape:
            raise ValueError(f"init: expected an image of shape {shape}, got {start.shape}")
    B = len(ks)
    x = np.repeat(start[None], B, axis=0)                          # (B, H, W, C_0)
    history = np.empty((B, steps))
    for step in range(steps):
        dr, dc = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
        shifted = np.roll(x, (dr, dc), axis=(1, 2))
        y = model.forward(shifted, upto=l)
        signal = np.empty_like(y)
        for b, k in enumerate(ks):                  # image b ascends feature k
            history[b, step], signal[b:b + 1] = objective_signal(model, y[b:b + 1], l, k, idx,
                                                                 objective)
        # the parameter gradients are never read here: leave them (a dW per conv per step)
        grad = np.roll(model.backward(signal, start=l, param_grads=False), (-dr, -dc),
                       axis=(1, 2))
        peak = np.abs(grad).reshape(B, -1).max(axis=1).reshape(B, 1, 1, 1)
        x = x + lr * grad / (peak + 1e-30)          # a dead unit (0 gradient) stays
        x = lo + (1 - l2) * (x - lo)
        if blur_every and (step + 1) % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
        if clip_small:
            norm = np.linalg.norm(x - lo, axis=-1)                   # (B, H, W) distance from b
            cut = np.quantile(norm.reshape(B, -1), clip_small, axis=1).reshape(B, 1, 1)
            x[norm <= cut] = lo
        x = np.clip(x, lo, hi)
    where = None if idx is None else tuple(int(v) for v in idx)
    return [ActivationMaximization(x[b].astype(model.dtype), history[b], l, k, where)
            for b, k in enumerate(ks)]
