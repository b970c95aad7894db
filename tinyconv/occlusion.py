"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2 and Fig. 7).

Slide a window of ``baseline`` (grey, or 0) over the image and record how much a score drops:
``value = score(original) - score(occluded)``, positive where hiding the region lowers the
score. Along each axis of length ``n`` the windows of extent ``size`` start at
``0, stride, 2 stride, …``; there are ``ceil((n - size) / stride) + 1`` of them, the last one
cut at the image edge, and none starts outside the image (:func:`window_starts`). Two
read-outs:

* ``grid``: one value per window position (the Z&F heat map);
* ``pixels``: each pixel the mean over the windows covering it (image-sized).

The score (``target``) is a class probability, a feature map's total activation
``sum_idx y_(l),idx,k`` ("the strongest feature map of layer 5", §4.2), or any callable on the
model output. The plain path (:func:`occluded_scores`) runs every occluded copy through the
whole model; the fast path (:mod:`tinyconv.occlusion_fast`) recomputes only the units each
window can reach, with the same result up to round-off.
"""

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .checks import check_array, check_int, check_pair
from .layers import softmax
from .occlusion_fast import clean_plan, occluded_scores_fast
from .progress import Progress
from .units import check_feature, map_totals, n_classes


@dataclass
class Occlusion:
    """Result of :func:`occlusion` (leading ``N`` dropped when a single image was given).

    Attributes
    ----------
    grid : (N, n_rows, n_cols) ``original - occluded`` per window position (divided by
        ``original`` when ``relative``).
    pixels : (N, H, W) per-pixel mean of ``grid`` over the windows covering the pixel (NaN
        where no window covers it, which only happens when ``stride > size``).
    original : (N,) score of the unoccluded image (a float for a single image).
    occluded : (N, n_rows, n_cols) raw score with each window occluded.
    rows, cols : window start positions along each axis.
    size, stride : ``(h, w)`` pairs used.
    """

    grid: np.ndarray
    pixels: np.ndarray
    original: np.ndarray
    occluded: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    size: tuple
    stride: tuple


def window_starts(n, size, stride):
    """Start positions of the windows along an axis of length ``n`` (``1 <= size <= n``).

    ``0, stride, 2 stride, …``: ``ceil((n - size) / stride) + 1`` of them, so that the last
    window reaches the image edge; it may hang over it, and is then cut there (Captum's grid).
    When ``stride > size`` that last start can lie past the edge (a window hiding nothing);
    it then moves back to ``n - size``, so every window covers pixels and the edge is covered.
    """
    starts = np.arange(math.ceil((n - size) / stride) + 1) * stride
    return np.where(starts < n, starts, n - size)


def score_function(model, target):
    """Turn ``target`` into ``(f, upto)``: ``f(y_(upto)) -> (B,)`` float64 scores.

    ``target`` is a class index ``c`` (its softmax probability ``softmax(y_(L))_c``),
    ``(layer, k)`` (the total activation ``sum_idx y_(l),idx,k`` of feature map ``k``), or a
    callable on the model output ``y_(L)``.
    """
    L = len(model.layers)
    if callable(target):
        def f(y):
            s = np.asarray(target(y), dtype=np.float64)
            if s.shape != (len(y),):
                raise ValueError(f"target: the callable must return ({len(y)},) scores, "
                                 f"got shape {s.shape}")
            return s
        return f, L
    if isinstance(target, tuple):
        if len(target) != 2:
            raise ValueError(f"target: expected (layer, k), got {target!r}")
        l = model.index(target[0])
        k = check_feature(model, l, target[1], name="target k")
        return (lambda y: map_totals(y[..., k:k + 1])[:, 0]), l
    K = n_classes(model, "a class index as target")
    c = check_int(target, "target", minimum=0, maximum=K - 1)
    return (lambda y: softmax(y.astype(np.float64))[:, c]), L


def check_baseline(baseline, shape, dtype):
    """The occluder as an ``(H, W, C_0)`` array of ``dtype``: a number, or real numbers
    broadcastable to ``shape``; anything else raises, naming ``baseline``."""
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        base = np.asarray(float(baseline))
    else:
        base = np.asarray(baseline) if isinstance(baseline, (np.ndarray, list, tuple)) else None
        if base is None or base.dtype.kind not in "fiu":
            raise TypeError(f"baseline: expected a number or an array of numbers "
                            f"broadcastable to {shape}, got {type(baseline).__name__} "
                            f"{baseline!r:.40}")
    base = check_array(base.astype(np.float64), "baseline")
    try:
        return np.broadcast_to(base, shape).astype(dtype)
    except ValueError:
        raise ValueError(f"baseline: expected a number or an array broadcastable to "
                         f"{shape}, got shape {base.shape}") from None


def occlusion(model, x, target, size, stride=1, baseline=0.0, relative=False, batch_size=None,
              fast=True, progress=None):
    """Occlusion sensitivity of ``target`` to a ``size`` window slid over ``x``.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential`.
    x : (H, W, C_0) one image, or (N, H, W, C_0) a batch (arrays or nested lists of floats).
    target : class index ``c`` (score = ``softmax(y_(L))_c``), ``(layer, k)`` (score =
        ``sum_idx y_(l),idx,k``), or a callable ``f(y_(L)) -> (B,)``.
    size, stride : int or ``(h, w)``; ``1 <= size <= (H, W)``, ``stride >= 1``. Windows
        start at ``0, stride, …`` and the last one ends at the image edge (see
        :func:`window_starts`).
    baseline : the occluder's value: a number or an array broadcastable to ``(H, W, C_0)``.
    relative : divide each change by the original score (the "relative decrease").
    batch_size : at most this many occluded copies per forward pass (the windows are
        split into batches of equal size); None: 1024 with ``fast`` (a copy carries only a
        patch, so all the windows of a small image go at once) and 256 without (a copy is a
        whole image).
    fast : recompute only the units each window can reach (its projective field) and copy the
        rest from the clean pass, and skip the windows that change nothing; ``False`` runs
        every occluded copy through the whole model (the plain reference, same result to
        round-off). See :mod:`tinyconv.occlusion_fast`.
    progress : True / False to force a progress bar; None shows it on a terminal.

    Returns
    -------
    :class:`Occlusion`.
    """
    x = check_array(x, "x")
    if x.ndim not in (3, 4):
        raise ValueError(f"x: expected one (H, W, C) image or an (N, H, W, C) batch, got shape "
                         f"{x.shape}")
    single = x.ndim == 3
    x = x[None] if single else x
    H, W, C = model.input_shape
    if x.shape[1:] != (H, W, C):
        raise ValueError(f"x: expected images of shape {(H, W, C)}, got {x.shape[1:]}")
    sh, sw = check_pair(size, "size", minimum=1)
    if sh > H or sw > W:
        raise ValueError(f"size: the window ({sh}, {sw}) is larger than the image ({H}, {W})")
    st = check_pair(stride, "stride", minimum=1)
    batch_size = (1024 if fast else 256) if batch_size is None else \
        check_int(batch_size, "batch_size", minimum=1)
    base = check_baseline(baseline, (H, W, C), x.dtype)
    f, upto = score_function(model, target)

    rows, cols = window_starts(H, sh, st[0]), window_starts(W, sw, st[1])
    n = len(rows) * len(cols)
    windows = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(n, 2)
    # batches of one size (the last window repeated to fill the last one), so that the
    # layers reuse their scratch arrays from batch to batch instead of making new ones
    n_batches = -(-n // batch_size)
    B = -(-n // n_batches)
    windows = np.concatenate([windows, np.repeat(windows[-1:], n_batches * B - n, axis=0)])
    N = len(x)
    # the fast path scores each image's clean pass (which it needs anyway) as the original
    original = np.empty(N) if fast else f(model.forward(x, upto=upto))
    occluded = np.empty((N, n_batches * B))
    with Progress(N * n, "occlusion", enabled=progress) as bar:
        for i in range(N):
            if fast:
                plan = clean_plan(model, x[i], upto)
                original[i] = f(plan.output)[0]
            for start in range(0, n, B):
                args = dict(model=model, x=x[i], windows=windows[start:start + B],
                            size=(sh, sw), baseline=base, score=f, upto=upto)
                occluded[i, start:start + B] = \
                    occluded_scores_fast(**args, plan=plan) if fast else occluded_scores(**args)
                bar.update(min(B, n - start))
    occluded = occluded[:, :n].reshape(N, len(rows), len(cols))
    grid = original[:, None, None] - occluded
    if relative:
        if np.any(original == 0):
            raise ValueError("relative: the original score is 0, so a relative change is "
                             "undefined; use relative=False")
        grid = grid / original[:, None, None]
    pixels = per_pixel_mean(grid, rows, cols, (sh, sw), (H, W))
    out = Occlusion(grid, pixels, original, occluded, rows, cols, (sh, sw), st)
    if single:
        out.grid, out.pixels, out.occluded, out.original = grid[0], pixels[0], occluded[0], \
            original[0]
    return out


def occluded_scores(*, model, x, windows, size, baseline, score, upto):
    """Scores of ``len(windows)`` occluded copies of ``x``, each through the whole model.

    Parameters
    ----------
    model : the :class:`~tinyconv.model.Sequential`. x : (H, W, C_0) image.
    windows : (B, 2) top-left corners. size : ``(h, w)``.
    baseline : (H, W, C_0) occluder. score, upto : from :func:`score_function`.

    Returns
    -------
    (B,) scores.
    """
    batch = np.repeat(x[None], len(windows), axis=0)             # (B, H, W, C_0)
    for b, (r, c) in enumerate(windows):
        batch[b, r:r + size[0], c:c + size[1]] = baseline[r:r + size[0], c:c + size[1]]
    return score(model.forward(batch, upto=upto))


def per_pixel_mean(grid, rows, cols, size, shape):
    """Spread each window's value over its pixels and average: ``(N, nr, nc) -> (N, H, W)``.

    Window ``(a, b)`` covers pixel ``(r, c)`` when ``A[r, a]`` and ``B[c, b]``, with
    ``A[r, a] = rows[a] <= r < rows[a] + h`` (likewise ``B``), so the sum over the windows
    covering each pixel is ``A @ grid @ B^T`` and their number ``A @ 1 @ B^T``.
    """
    A = (rows <= np.arange(shape[0])[:, None]) & (np.arange(shape[0])[:, None] < rows + size[0])
    B = (cols <= np.arange(shape[1])[:, None]) & (np.arange(shape[1])[:, None] < cols + size[1])
    A, B = A.astype(np.float64), B.astype(np.float64)                # (H, nr), (W, nc)
    total = A @ grid @ B.T                                              # (N, H, W)
    count = A.sum(axis=1)[:, None] * B.sum(axis=1)[None, :]
    with np.errstate(invalid="ignore"):
        return total / count
