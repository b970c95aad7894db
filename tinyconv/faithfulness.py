"""Deletion and insertion (Petsiuk et al. 2018, "RISE", §3.2): does the map rank the pixels the
model actually uses?

**Deletion**: remove the pixels (set them to the canvas: 0, or a blurred copy of the image)
in the order the map ranks them, most important first, ``step`` pixels at a time, and record
``p(c) = softmax(y_(L))_c`` after each step. A faithful map makes the probability fall fast:
a *small* area under the curve. **Insertion**: start from the canvas and put the pixels back
in the same order: a faithful map makes it rise fast, a *large* area.

Two baselines every map should beat: a random order (:func:`random_maps`) and a map that
knows nothing about the model, the image's Sobel edges (:func:`sobel`).
"""

from dataclasses import dataclass

import numpy as np

from .checks import check_array, check_choice, check_int
from .layers import softmax
from .units import n_classes


@dataclass
class Curve:
    """One deletion or insertion curve per example.

    Attributes
    ----------
    fractions : (S + 1,) the fraction of pixels removed (or inserted) at each point, 0 … 1.
    scores : (N, S + 1) ``p(c)`` of each example's class ``c`` at each point.
    auc : (N,) the area under each curve (trapezoids over ``fractions``).
    """

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray


def sobel(images):
    """Sobel edge magnitude ``sqrt(G_r² + G_c²)`` of ``(N, H, W)`` images, zero padded.

    ``G_c`` is the correlation with ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]``, ``G_r`` with its
    transpose: an edge map that depends only on the image (Adebayo et al. 2018, Fig. 1).
    """
    a = np.pad(np.asarray(images, np.float64), ((0, 0), (1, 1), (1, 1)))
    H, W_in = a.shape[1] - 2, a.shape[2] - 2

    def at(dr, dc):                              # the neighbour (dr, dc) of every pixel
        return a[:, 1 + dr:1 + dr + H, 1 + dc:1 + dc + W_in]
    gc = (at(-1, -1) + 2 * at(0, -1) + at(1, -1)) - (at(-1, 1) + 2 * at(0, 1) + at(1, 1))
    gr = (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1)) - (at(1, -1) + 2 * at(1, 0) + at(1, 1))
    return np.hypot(gr, gc)


def blur(x, sigma=2.0):
    """Gaussian blur of ``(N, H, W, C)`` images (separable, truncated at 3 sigma, zero padded):
    the "blurred canvas" of insertion, which keeps the image's mean shape but no detail."""
    radius = max(1, int(round(3 * sigma)))
    t = np.arange(-radius, radius + 1)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    out = np.asarray(x, np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad)
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(g))
    return out.astype(np.asarray(x).dtype)


def random_maps(shape, seed=0):
    """``(N, H, W)`` uniform noise: ranks the pixels in a random order (the chance baseline)."""
    return np.random.default_rng(seed).random(shape)


def order(maps):
    """Pixel indices ``(N, H*W)`` from most to least important (highest value first; equal
    values in row-major order, so the order is reproducible)."""
    maps = np.asarray(maps, np.float64)
    return np.argsort(-maps.reshape(len(maps), -1), axis=1, kind="stable")


def _canvas(x, canvas, sigma):
    if canvas == "blank":
        return np.zeros_like(x)
    return blur(x, sigma)


def curve(model, x, maps, target, kind="deletion", step=28, canvas="blank", sigma=2.0,
          batch_size=512):
    """The deletion or insertion curve of each example (Petsiuk et al. 2018, §3.2).

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential` with class scores ``y_(L)`` of shape (N, K).
    x : (N, H, W, C_0) images.
    maps : (N, H, W) importance of each pixel (all channels of a pixel go together).
    target : (N,) ints or one int: the class ``c`` whose probability is recorded.
    kind : ``"deletion"`` (image -> canvas) or ``"insertion"`` (canvas -> image).
    step : pixels changed per step; ``S = ceil(H W / step)`` steps.
    canvas : ``"blank"`` (zeros) or ``"blur"`` (:func:`blur` of the image, ``sigma``).
    batch_size : images per forward pass (all the steps of several examples go together).

    Returns
    -------
    :class:`Curve` with ``scores`` of shape ``(N, S + 1)``.
    """
    K = n_classes(model, "curve")
    x = check_array(x, "x", ndim=4)
    N, H, W_in, _ = x.shape
    maps = check_array(maps, "maps", shape=(N, H, W_in))
    target = np.broadcast_to(np.asarray(target), (N,)) if np.ndim(target) == 0 else \
        np.asarray(target)
    if target.shape != (N,) or target.dtype.kind not in "iu" or \
            target.min() < 0 or target.max() >= K:
        raise ValueError(f"target: expected one class index or ({N},) class indices in "
                         f"[0, {K}), got {np.asarray(target)!r:.60}")
    check_choice(kind, "kind", ("deletion", "insertion"))
    check_choice(canvas, "canvas", ("blank", "blur"))
    step = check_int(step, "step", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    P = H * W_in
    S = -(-P // step)
    counts = np.minimum(np.arange(S + 1) * step, P)           # pixels changed at each point
    start, end = (x, _canvas(x, canvas, sigma)) if kind == "deletion" else \
        (_canvas(x, canvas, sigma), x)
    ranking = order(maps)                                     # (N, P)
    # position of each pixel in its example's ranking: pixel p is changed at point s once
    # counts[s] > position[p]
    position = np.empty_like(ranking)
    np.put_along_axis(position, ranking, np.arange(P)[None].repeat(N, 0), axis=1)
    scores = np.empty((N, S + 1))
    per_batch = max(1, batch_size // (S + 1))                 # examples per forward pass
    for i0 in range(0, N, per_batch):
        i1 = min(N, i0 + per_batch)
        # (n, S + 1, P) which pixels are changed -> (n (S + 1), H, W, 1) images
        changed = position[i0:i1, None, :] < counts[None, :, None]
        changed = changed.reshape(i1 - i0, S + 1, H, W_in, 1)
        images = np.where(changed, end[i0:i1, None], start[i0:i1, None])
        p = softmax(model.forward(images.reshape(-1, H, W_in, x.shape[3])))
        p = p.reshape(i1 - i0, S + 1, K)
        scores[i0:i1] = p[np.arange(i1 - i0), :, target[i0:i1]]
    fractions = counts / P
    return Curve(fractions, scores, np.trapezoid(scores, fractions, axis=1))


def deletion(model, x, maps, target, **kw):
    """:func:`curve` with ``kind="deletion"``: lower area = more faithful."""
    return curve(model, x, maps, target, kind="deletion", **kw)


def insertion(model, x, maps, target, canvas="blur", **kw):
    """:func:`curve` with ``kind="insertion"`` onto a blurred canvas (Petsiuk et al.'s choice):
    higher area = more faithful."""
    return curve(model, x, maps, target, kind="insertion", canvas=canvas, **kw)
