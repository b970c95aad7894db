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

import copy
import math
from dataclasses import dataclass

import numpy as np

from .checks import check_array, check_int, check_pair
from .layers import MaxPool2D, softmax
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
              fast=True, progress=None):
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
    fast : recompute only the units each window can reach (its projective field, from the
        analytic receptive fields) and copy the rest from the clean pass; ``False`` runs every
        occluded copy through the whole model (the plain reference, same result to round-off).
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
    scores = occluded_scores_fast if fast else occluded_scores
    with Progress(N * len(windows), "occlusion", enabled=progress) as bar:
        for i in range(N):
            for start in range(0, len(windows), batch_size):
                chunk = np.array(windows[start:start + batch_size]).reshape(-1, 2)
                occluded[i, start:start + len(chunk)] = scores(model, x[i], chunk, (sh, sw),
                                                               base, f, upto)
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
        out.grid, out.pixels, out.occluded, out.original = grid[0], pixels[0], occluded[0], \
            original[0]
    return out


def occluded_scores(model, x, windows, size, base, f, upto):
    """Scores of ``len(windows)`` occluded copies of ``x``, each through the whole model.

    Parameters
    ----------
    x : (H, W, C) image. windows : (B, 2) top-left corners. size : ``(h, w)``.
    base : (H, W, C) occluder. f, upto : from :func:`score_function`.

    Returns
    -------
    (B,) scores.
    """
    batch = np.repeat(x[None], len(windows), axis=0)             # (B, H, W, C)
    for b, (r, c) in enumerate(windows):
        batch[b, r:r + size[0], c:c + size[1]] = base[r:r + size[0], c:c + size[1]]
    return f(model.forward(batch, upto=upto))


def occluded_scores_fast(model, x, windows, size, base, f, upto):
    """:func:`occluded_scores`, recomputing only what each window can change.

    A window changes, in layer ``l``, only the units whose receptive field meets it. Going
    up layer by layer, each occluded copy carries just a *patch* of ``y_(l)`` — a block of
    the same size for every window of the batch, placed where that window reaches — and
    everything outside the patch is the clean activation. To advance a patch through a
    conv or pooling layer we cut from the clean (padded) input map the block those output
    units read, paste the patch over it, and run the layer without padding on the block.
    After the last spatial layer the patches are pasted into full copies of the clean map
    and the rest of the model runs as usual.
    """
    ys = model.activations(x[None], upto=upto)                   # clean y_(0) ... y_(upto)
    B = len(windows)
    H, W, _ = x.shape
    # layer 0: the patch is the window itself, moved inside the image where it is cut
    start = np.minimum(windows, np.array([H - size[0], W - size[1]]))      # (B, 2)
    patch = gather(x, start, size)                                          # (B, h, w, C)
    occ = gather(np.asarray(base), start, size)
    rows = start[:, 0, None] + np.arange(size[0]) >= windows[:, 0, None]   # (B, h)
    cols = start[:, 1, None] + np.arange(size[1]) >= windows[:, 1, None]   # (B, w)
    patch = np.where((rows[:, :, None] & cols[:, None, :])[..., None], occ, patch)
    l = 0
    for layer in model.layers[:upto]:
        geometry = layer.geometry(model.output_shapes[l])
        if geometry is None:
            break
        patch, start = advance(layer, geometry, ys[l][0], ys[l + 1].shape[1:3], patch, start)
        l += 1
    y = np.repeat(ys[l], B, axis=0)                                         # (B, *shape_l)
    scatter(y, patch, start)
    for layer in model.layers[l:upto]:
        y = layer.forward(y, check=False)
    return f(y)


def gather(a, start, size):
    """Blocks ``a[r:r+h, c:c+w]`` for every ``(r, c)`` of ``start``: ``(B, h, w, C)``."""
    r = start[:, 0, None] + np.arange(size[0])                  # (B, h)
    c = start[:, 1, None] + np.arange(size[1])                  # (B, w)
    return a[r[:, :, None], c[:, None, :]]


def scatter(y, patch, start):
    """Write each ``patch[b]`` into ``y[b]`` at ``start[b]`` (in place)."""
    B, h, w, _ = patch.shape
    r = start[:, 0, None] + np.arange(h)
    c = start[:, 1, None] + np.arange(w)
    y[np.arange(B)[:, None, None], r[:, :, None], c[:, None, :]] = patch


def advance(layer, geometry, clean_in, out_hw, patch, start):
    """Carry a patch of ``y_(l-1)`` through ``layer`` to a patch of ``y_(l)``.

    Parameters
    ----------
    layer : the layer; geometry : its per-axis ``(k, s, pad_before, d)``.
    clean_in : (H, W, C) clean ``y_(l-1)``; out_hw : ``(H_l, W_l)``.
    patch : (B, h, w, C) changed block of ``y_(l-1)`` per window, at ``start`` (B, 2).

    Returns
    -------
    (patch, start) for ``y_(l)``: every unit that may differ from the clean pass lies inside.
    """
    h_in = patch.shape[1:3]
    lo, size_out, take = [], [], []
    for axis, (k, s, p, d) in enumerate(geometry):
        k_eff = d * (k - 1) + 1
        o = start[:, axis]
        # units u whose inputs [u s - p, u s - p + k_eff) meet [o, o + h)
        u0 = np.maximum(-((p - k_eff + 1 + o) // -s), 0)          # ceil division
        u1 = np.minimum((o + h_in[axis] - 1 + p) // s, out_hw[axis] - 1)
        n = int((u1 - u0).max()) + 1
        u0 = np.minimum(u0, out_hw[axis] - n)                     # same block size for all
        lo.append(u0)
        size_out.append(n)
        take.append((n - 1) * s + k_eff)                          # input rows those units read
    # the clean input, padded as the layer pads it, so blocks are plain slices
    # (layers without padding, like ReLU, have no pads())
    (pt, pb), (pl, pr) = layer.pads(*clean_in.shape[:2]) if hasattr(layer, "pads") else \
        ((0, 0), (0, 0))
    fill = -np.inf if isinstance(layer, MaxPool2D) else 0.0     # padding never wins a max
    padded = np.pad(clean_in, ((pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    origin = np.stack([lo[0] * geometry[0][1], lo[1] * geometry[1][1]], axis=1)  # padded coords
    block = gather(padded, origin, take)                                     # (B, th, tw, C)
    # paste the patch where it overlaps the block (its position in padded coordinates)
    offset = start + np.array([pt, pl]) - origin                             # (B, 2)
    r = np.arange(take[0])[None, :] - offset[:, 0, None]                     # patch row index
    c = np.arange(take[1])[None, :] - offset[:, 1, None]
    inside = ((r >= 0) & (r < h_in[0]))[:, :, None] & ((c >= 0) & (c < h_in[1]))[:, None, :]
    src = patch[np.arange(len(patch))[:, None, None], np.clip(r, 0, h_in[0] - 1)[:, :, None],
                np.clip(c, 0, h_in[1] - 1)[:, None, :]]
    block = np.where(inside[..., None], src, block)
    valid = copy.copy(layer)                   # same parameters, no padding, own caches
    if hasattr(valid, "padding"):
        valid.padding = (0, 0)
    out = valid.forward(np.ascontiguousarray(block), check=False)   # (B, *size_out, C_l)
    return out, np.stack(lo, axis=1)


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
