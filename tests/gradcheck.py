"""Finite-difference gradient checks (float64, centred differences, relative error).

``numerical_gradient(f, x, dy)`` estimates ``d <f(x), dy> / dx`` one entry at a time::

    num[ix] = sum((f(x + h e_ix) - f(x - h e_ix)) * dy) / (2 h)

contracting with a random upstream ``dy`` so one pass checks the whole Jacobian-vector
product. The layers are piecewise linear (conv, ReLU, max-pool, dense), so away from kinks
and ties the centred difference is exact and the only error is rounding, about
``eps * |f| * sqrt(f.size) / h``; that is why ``h`` can be as large as 1e-3 (the tests keep
inputs further than ``h`` from every kink) and why the relative error has a floor: an entry
whose true gradient is 0 must not divide rounding noise by ~0.

``relative_error(a, n) = max |a - n| / max(|a| + |n|, floor)``, judged ``< 1e-6``.
"""

import numpy as np

H = 1e-3        # step; the functions checked are piecewise linear, see above
FLOOR = 1e-4    # |a| + |n| below this counts as this
TOL = 1e-6      # relative error accepted


def numerical_gradient(f, x, dy, h=H):
    """Centred-difference estimate of ``d sum(f() * dy) / dx``.

    Parameters
    ----------
    f : callable with no arguments returning an array; it must read ``x`` (which is
        perturbed in place, one entry at a time, and restored).
    x : float64 array, the variable (an input or a parameter array the function uses).
    dy : float64 array shaped like ``f()``, the upstream gradient.
    h : step.

    Returns
    -------
    num : array shaped like ``x``.
    """
    assert x.dtype == np.float64 and dy.dtype == np.float64, "check gradients in float64"
    num = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(), dtype=np.float64)      # copy: f may return a cached buffer
        x[ix] = old - h
        neg = np.array(f(), dtype=np.float64)
        x[ix] = old
        num[ix] = np.sum((pos - neg) * dy) / (2 * h)
    return num


def relative_errors(analytic, numeric, floor=FLOOR):
    """Entrywise ``|a - n| / max(|a| + |n|, floor)``."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    assert a.shape == n.shape, f"shapes differ: analytic {a.shape}, numeric {n.shape}"
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)


def relative_error(analytic, numeric, floor=FLOOR):
    """The largest entry of :func:`relative_errors` (0 for empty arrays)."""
    errors = relative_errors(analytic, numeric, floor)
    return float(errors.max()) if errors.size else 0.0


def assert_gradient(analytic, numeric, what="gradient", tol=TOL, floor=FLOOR):
    """Raise ``AssertionError`` naming ``what`` and the worst entry if the error is ``>= tol``.

    Returns the relative error.
    """
    errors = relative_errors(analytic, numeric, floor)
    err = float(errors.max()) if errors.size else 0.0
    if not err < tol:
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(errors), errors.shape))
        raise AssertionError(
            f"{what}: relative error {err:.3g} >= {tol:g} (worst entry {worst}: analytic "
            f"{float(np.asarray(analytic)[worst])!r}, numeric {float(numeric[worst])!r})")
    return err


def check_layer(layer, x, dy, h=H):
    """Check ``dx`` and every ``d param`` of one layer against centred differences.

    ``layer`` must be in float64 and ``x``, ``dy`` float64; runs ``forward(x)`` then
    ``backward(dy, rule="gradient")`` and compares with :func:`numerical_gradient`.
    Returns the relative errors, ``{"x": …, "W": …, …}``.
    """
    layer.forward(x)
    dx = layer.backward(dy, rule="gradient")
    analytic = {"x": dx, **{k: g.copy() for k, g in layer.grads.items()}}
    errors = {}
    errors["x"] = assert_gradient(
        analytic["x"], numerical_gradient(lambda: layer.forward(x), x, dy, h), "dx")
    for key, p in layer.params.items():
        num = numerical_gradient(lambda: layer.forward(x), p, dy, h)
        errors[key] = assert_gradient(analytic[key], num, f"d{key}")
    return errors
