"""SmoothGrad: average a map over noisy copies of the input, so the noise of the map averages out.

Smilkov, Thorat, Kim, Viégas & Wattenberg, "SmoothGrad: removing noise by adding noise", 2017,
§3, eq. (3): ``M̂_c(x) = 1/n Σ_j M_c(x + ε_j)`` with ``ε_j ~ N(0, σ²)`` and ``σ`` a fraction of
the input's range ``max x - min x`` (§4.1 finds 10-20 % best; the default is 15 %, ``n = 50``).
Variants: ``"square"`` averages ``M_c²`` (SmoothGrad², Hooker et al. 2019) and ``"var"`` takes
the variance ``E[M_c²] - E[M_c]²`` over the copies (VarGrad, Adebayo et al. 2018). The base map
``M_c`` is the gradient ``d y_(L),c / d x``, input × gradient, or guided backprop (§4.4).
"""

import numbers

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
from .units import check_target, class_backward, n_classes

KINDS = ("mean", "square", "var")
BASES = ("gradient", "input_x_gradient", "guided")


def check_positive(v, name):
    """``v`` as a float if it is a finite real number > 0, else ``ValueError``/``TypeError``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a positive number, got {type(v).__name__} {v!r}")
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
    return float(v)


def base_map(model, x, target, base, stop=0):
    """One base map ``M_c(x)``: ``(B, H, W, C_0)`` for ``x`` ``(B, H, W, C_0)``, ``target (B,)``;
    with ``stop = l``, the gradient or guided signal at ``y_(l)`` instead,
    ``(B, *output_shapes[l])``."""
    rule = "guided" if base == "guided" else "gradient"
    dx, _, _ = class_backward(model, x, target, rule=rule, what="smoothgrad", stop=stop)
    return x * dx if base == "input_x_gradient" else dx


def copy_sums(model, x, noise, target, base, a, batch_size, total, squares=None):
    """Add ``Σ_j M_c(x + ε_j)`` to ``total`` (and ``Σ_j M_c(x + ε_j)²`` to ``squares`` unless
    None), both ``(N, H, W, C_0)`` float64, for ``x (N, H, W, C_0)`` and ``noise (n, N, H, W,
    C_0)``. With ``a > 0`` the maps are gradients (or guided signals): their sum is taken at
    ``y_(a)`` and sent back through the affine layers once (:mod:`tinyconv.gradient_sums`).
    """
    n, N = len(noise), len(x)
    # every copy is one example of a long batch: (n, N, H, W, C_0) -> (n N, H, W, C_0)
    copies = (x[None] + noise).astype(x.dtype).reshape(n * N, *x.shape[1:])
    targets = np.tile(target, n)                                  # (n N,), copy j of example i
    at_a = np.zeros((N, *model.output_shapes[a]), sum_dtype(model, a))   # the sum at y_(a)
    for start in range(0, n * N, batch_size):
        stop = min(start + batch_size, n * N)
        m = base_map(model, copies[start:stop], targets[start:stop], base, stop=a)
        for _, i, rows in runs(start, stop, N):
            at_a[i] += m[rows]
            if squares is not None:                               # then a = 0
                squares[i] += m[rows].astype(np.float64) ** 2
    total += back_through_prefix(model, x, at_a, a)


def smoothgrad(model, x, target=None, sigma=0.15, n=50, kind="mean", base="gradient", seed=0,
               noise=None, batch_size=64):
    """SmoothGrad of the class score ``y_(L),c`` (Smilkov et al. 2017, §3 eq. 3).

    Parameters
    ----------
    model : :class:`~tinyconv.Sequential` with class scores ``(N, K)`` at the output.
    x : (N, H, W, C_0) input.
    target : a class index ``c``, ``(N,)`` ints, or None for each example's predicted class
        on the clean input (the same class for all of its noisy copies).
    sigma : noise standard deviation as a fraction of each example's range ``max x - min x``.
    n : number of noisy copies per example.
    kind : ``"mean"`` (SmoothGrad), ``"square"`` (SmoothGrad²) or ``"var"`` (VarGrad).
    base : ``"gradient"``, ``"input_x_gradient"`` (``(x + ε) * gradient`` at the copy) or
        ``"guided"`` (guided backprop).
    seed : seeds ``numpy.random.default_rng`` for the noise.
    noise : optional ``(n, N, H, W, C_0)`` array ``ε`` added as it is (then ``sigma`` and
        ``seed`` are not used, and ``n`` must equal ``len(noise)``): lets a test pin the copies.
    batch_size : noisy copies per forward/backward pass (as for
        :func:`~tinyconv.integrated_gradients`, 16 to 256 run alike on the MNIST model).

    Returns
    -------
    (N, H, W, C_0) array in the model's dtype.
    """
    n_classes(model, "smoothgrad")
    x = check_array(x, "x", ndim=4).astype(model.dtype, copy=False)   # (N, H, W, C_0)
    target = check_target(target, model.forward(x))               # the forward checks x
    n = check_int(n, "n", minimum=1)
    check_choice(kind, "kind", KINDS)
    check_choice(base, "base", BASES)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    N = len(x)
    if noise is None:
        sigma = check_positive(sigma, "sigma")
        scale = sigma * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))          # (N,)
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((n, *x.shape)) * scale[None, :, None, None, None]
    else:
        noise = check_array(noise, "noise", shape=(None, *x.shape))
        if len(noise) != n:
            raise ValueError(f"noise: expected n = {n} noisy copies (noise.shape[0]), "
                             f"got {len(noise)}")
    # a mean of gradients is taken above the affine layers and sent back through them once
    # (tinyconv.gradient_sums); a map of each copy needs each copy's gradient at the input
    a = affine_prefix(model) if kind == "mean" and base != "input_x_gradient" else 0
    total = np.zeros(x.shape, np.float64)                         # Σ_j M_c(x + ε_j)
    squares = np.zeros(x.shape, np.float64) if kind != "mean" else None   # Σ_j M_c(x + ε_j)²
    # per example: the float64 sums and its n copies
    per_example = 8 * (units(model, a) + (squares is not None) * x[0].size) + n * x[0].nbytes
    for e in example_groups(N, per_example):
        copy_sums(model, x[e], noise[:, e], target[e], base, a, batch_size, total[e],
                  None if squares is None else squares[e])
    mean = total / n
    if kind == "mean":
        return mean.astype(x.dtype)
    mean_sq = squares / n
    return (mean_sq if kind == "square" else mean_sq - mean ** 2).astype(x.dtype)
