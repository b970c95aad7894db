"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2 and Fig. 7).

Slide a square of ``baseline`` (grey, or 0) over the image and record how much a score drops:
``value = score(original) - score(occluded)``, positive where hiding the region lowers the
score. Windows start at 0 and step by ``stride``; there are ``ceil((H - size) / stride) + 1``
positions per axis, and the last one is cut at the image edge. Two read-outs:

* ``grid``: one value per window position (the Z&F heat map);
* ``pixels``: each pixel the mean over the windows covering it (image-sized).

The score (``target``) is a class probability, a feature map's total activation
``sum_idx y_(l),idx,k`` ("the strongest feature map of layer 5", §4.2), or any callable on the
model output.
"""

import math
from dataclasses import dataclass

import numpy as np

from .checks import check_array, check_int, check_pair
from .layers import softmax
from .progress import Progress


@dataclass
class Occlusion:
    """Result of :func:`occlusion` (leading ``N`` dropped when a single image was given).

    Attributes
    ----------
    grid : (N, n_rows, n_cols) ``original - occluded`` per window position (divided by
        ``original`` when ``relative``).
    pixels : (N, H, W) per-pixel mean of ``grid`` over the windows covering the pixel (NaN
        where no window covers it, which only happens when ``stride > size``).
    original : (N,) score of the unoccluded image.
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
    """Start positions ``0, stride, …`` of windows along an axis of length ``n``:
    ``ceil((n - size) / stride) + 1`` of them, the last one cut at the edge."""
    return np.arange(math.ceil((n - size) / stride) + 1) * stride


def score_function(model, target):
    """Turn ``target`` into ``(f, upto)``: ``f(y_(upto)) -> (B,)`` scores.

    ``target`` is a class index (its softmax probability), ``(layer, k)`` (the total
    activation of feature map ``k``), or a callable on the model output ``y_(L)``.
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
        C = model.output_shapes[l][-1]
        k = check_int(target[1], "target k", minimum=0, maximum=C - 1)
        return (lambda y: y[..., k].reshape(len(y), -1).sum(axis=1, dtype=np.float64)), l
    if len(model.output_shapes[L]) != 1:
        raise ValueError(f"target: a class index needs class scores at the output, this model "
                         f"outputs {model.output_shapes[L]}")
    K = model.output_shapes[L][0]
    c = check_int(target, "target", minimum=0, maximum=K - 1)
    return (lambda y: softmax(y.astype(np.float64))[:, c]), L


def occlusion(model, x, target, size, stride=1, baseline=0.0, relative=False, batch_size=256,
              progress=None):
    """Occlusion sensitivity of ``target`` to a ``size`` window slid over ``x``.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential`.
    x : (H, W, C_0) one image, or (N, H, W, C_0) a batch.
    target : class index ``c`` (score = ``softmax(y_(L))_c``), ``(layer, k)`` (score =
        ``sum_idx y_(l),idx,k``), or a callable ``f(y_(L)) -> (B,)``.
    size, stride : int or ``(h, w)``; ``1 <= size <= (H, W)``, ``stride >= 1``.
    baseline : the occluder's value: a number or an array broadcastable to ``(H, W, C_0)``.
    relative : divide each change by the original score (the "relative decrease").
    batch_size : occluded copies evaluated per forward pass.
    progress : True / False to force a progress bar; None shows it on a terminal.

    Returns
    -------
    :class:`Occlusion`.
    """
    single = np.ndim(x) == 3
    x = check_array(x[None] if single else x, "x", ndim=4)
    H, W, C = model.input_shape
    if x.shape[1:] != (H, W, C):
        raise ValueError(f"x: expected images of shape {(H, W, C)}, got {x.shape[1:]}")
    sh, sw = check_pair(size, "size", minimum=1)
    if sh > H or sw > W:
        raise ValueError(f"size: the window ({sh}, {sw}) is larger than the image ({H}, {W})")
    st = check_pair(stride, "stride", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    base = check_array(np.asarray(baseline, dtype=np.float64), "baseline").astype(x.dtype)
    try:
        base = np.broadcast_to(base, (H, W, C))
    except ValueError:
        raise ValueError(f"baseline: expected a number or an array broadcastable to "
                         f"{(H, W, C)}, got shape {base.shape}") from None
    f, upto = score_function(model, target)

    rows, cols = window_starts(H, sh, st[0]), window_starts(W, sw, st[1])
    windows = [(r, c) for r in rows for c in cols]
    N = len(x)
    original = f(model.forward(x, upto=upto))
    occluded = np.empty((N, len(windows)))
    with Progress(N * len(windows), "occlusion", enabled=progress) as bar:
        for i in range(N):
            for start in range(0, len(windows), batch_size):
                chunk = windows[start:start + batch_size]
                batch = np.repeat(x[i:i + 1], len(chunk), axis=0)   # (B, H, W, C)
                for b, (r, c) in enumerate(chunk):
                    batch[b, r:r + sh, c:c + sw] = base[r:r + sh, c:c + sw]
                occluded[i, start:start + len(chunk)] = f(model.forward(batch, upto=upto))
                bar.update(len(chunk))
    occluded = occluded.reshape(N, len(rows), len(cols))
    grid = original[:, None, None] - occluded
    if relative:
        if np.any(original == 0):
            raise ValueError("relative: the original score is 0, so a relative change is "
                             "undefined; use relative=False")
        grid = grid / original[:, None, None]
    pixels = per_pixel_mean(grid, rows, cols, (sh, sw), (H, W))
    out = Occlusion(grid, pixels, original, occluded, rows, cols, (sh, sw), st)
    if single:
        out.grid, out.pixels, out.occluded = grid[0], pixels[0], occluded[0]
    return out


def per_pixel_mean(grid, rows, cols, size, shape):
    """Spread each window's value over its pixels and average: ``(N, nr, nc) -> (N, H, W)``."""
    N = len(grid)
    total = np.zeros((N, *shape))
    count = np.zeros(shape)
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            total[:, r:r + size[0], c:c + size[1]] += grid[:, a, b, None, None]
            count[r:r + size[0], c:c + size[1]] += 1
    with np.errstate(invalid="ignore"):
        return total / count
