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
from dataclasses import dataclass, field

import numpy as np

from .checks import check_array, check_int, check_pair
from .layers import Conv2D, MaxPool2D, softmax
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


def occlusion(model, x, target, size, stride=1, baseline=0.0, relative=False, batch_size=None,
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
    batch_size : at most this many occluded copies per forward pass (the windows are
        split into batches of equal size); None: 1024 with ``fast`` (a copy carries only a
        patch, so all the windows of a small image go at once) and 256 without (a copy is a
        whole image).
    fast : recompute only the units each window can reach (its projective field, from the
        analytic receptive fields) and copy the rest from the clean pass, and skip the windows
        that change nothing; ``False`` runs every occluded copy through the whole model (the
        plain reference, same result to round-off). See :func:`occluded_scores_fast`.
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
    batch_size = (1024 if fast else 256) if batch_size is None else \
        check_int(batch_size, "batch_size", minimum=1)
    base = check_array(np.asarray(baseline, dtype=np.float64), "baseline").astype(x.dtype)
    try:
        base = np.broadcast_to(base, (H, W, C))
    except ValueError:
        raise ValueError(f"baseline: expected a number or an array broadcastable to "
                         f"{(H, W, C)}, got shape {base.shape}") from None
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
                args = (model, x[i], windows[start:start + B], (sh, sw), base, f, upto)
                occluded[i, start:start + B] = \
                    occluded_scores_fast(*args, plan) if fast else occluded_scores(*args)
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


def occluded_scores_fast(model, x, windows, size, base, f, upto, plan=None):
    """:func:`occluded_scores`, recomputing only what each window can change.

    A window changes, in layer ``l``, only the units whose receptive field meets it. Going
    up layer by layer, each occluded copy carries just a *patch* of ``y_(l)`` — a block of
    the same size for every window of the batch, placed where that window reaches — and
    everything outside the patch is the clean activation. :func:`advance` carries a patch
    through one layer (:func:`advance_block` recomputes the units it reaches,
    :func:`advance_change` adds a convolution's change to them); after the last spatial layer
    the patches are pasted into full copies of the clean map and the rest of the model runs
    as usual. A window whose change is zero — it occludes pixels that already equal the
    baseline, or its change died out on the way — scores the original and is dropped.

    Parameters
    ----------
    as :func:`occluded_scores`; plan : :func:`clean_plan` of ``x`` (made here if None), the
        clean pass that every batch of windows of one image shares.
    """
    plan = clean_plan(model, x, upto) if plan is None else plan
    H, W, _ = x.shape
    # layer 0: the patch is the window itself, moved inside the image where it is cut
    start = np.minimum(windows, np.array([H - size[0], W - size[1]]))      # (B, 2)
    clean = gather(x, start, size)                                          # (B, h, w, C)
    occ = gather(np.asarray(base), start, size)
    rows = start[:, 0, None] + np.arange(size[0]) >= windows[:, 0, None]   # (B, h)
    cols = start[:, 1, None] + np.arange(size[1]) >= windows[:, 1, None]   # (B, w)
    patch = np.where((rows[:, :, None] & cols[:, None, :])[..., None], occ, clean)
    # a window that changes nothing (the image already equals the occluder there, like the
    # black background of a digit under a black square) scores the original: only the
    # windows in `alive` go on, and a step may drop more (see advance_change)
    scores = np.full(len(windows), f(plan.output)[0])
    alive = np.flatnonzero((patch != clean).reshape(len(patch), -1).any(axis=1))
    patch, start = patch[alive], start[alive]
    for step in plan.steps:
        if not len(alive):
            return scores
        patch, start, kept = advance(step, patch, start)
        alive = alive if kept is None else alive[kept]
    if len(alive):
        scores[alive] = f(plan.finish(patch, start))
    return scores


@dataclass
class Step:
    """One spatial layer of :func:`clean_plan`: what :func:`advance` needs to carry a patch.

    Attributes
    ----------
    layer : a copy of the layer without padding (same parameters, its own caches).
    geometry : per axis ``(k, s, pad_before, d)``.
    padded : (H + pads, W + pads, C) the clean input ``y_(l-1)``, padded as the layer pads it
        (with -inf for a max-pool: padding never wins a max), so blocks are plain slices.
    pads : ``(pad_top, pad_left)``; shape : ``(H, W)`` of ``y_(l-1)``.
    last : per axis, the last unit of ``y_(l)`` that the output can depend on.
    out : the clean output ``y_(l)`` with a margin of ``k_eff - 1`` zeros on every side, for
        :func:`advance_change` (None for layers that it does not handle).
    """

    layer: object
    geometry: tuple
    padded: np.ndarray
    pads: tuple
    shape: tuple
    last: tuple
    out: np.ndarray = None
    unrolled: dict = field(default_factory=dict)     # (h, w) -> matrix, see unrolled_conv


@dataclass
class Plan:
    """The clean pass of one image, shared by every batch of its windows.

    ``steps``: one :class:`Step` per leading spatial layer; ``top``: (H_l, W_l, C_l) the clean
    output of the last of them; ``rest``: the layers after it, up to ``upto``; ``output``:
    (1, ...) the clean ``y_(upto)``.
    """

    steps: list
    top: np.ndarray
    rest: list
    output: np.ndarray

    def finish(self, patch, start):
        """Paste each patch into a copy of the clean ``top`` and run the remaining layers.

        A patch may hang over the map's edge (see :func:`advance_change`); what lies outside
        is cut off, so the map is padded by the patch size while the patches go in.
        """
        (B, h, w, _), (H, W, _) = patch.shape, self.top.shape
        m = max(0, -start.min(), (start + [h, w] - [H, W]).max())     # the largest overhang
        y = np.repeat(np.pad(self.top, ((m, m), (m, m), (0, 0)))[None], B, axis=0)
        scatter(y, patch, start + m)
        y = np.ascontiguousarray(y[:, m:m + H, m:m + W])                  # (B, H_l, W_l, C_l)
        for layer in self.rest:
            y = layer.forward(y, check=False)
        return y


def clean_plan(model, x, upto):
    """The clean activations of ``x`` (H, W, C), cut and padded once for :func:`advance`."""
    ys = model.activations(x[None], upto=upto)                   # clean y_(0) ... y_(upto)
    layers = model.layers[:upto]
    n = 0
    while n < len(layers) and layers[n].geometry(model.output_shapes[n]) is not None:
        n += 1
    # the units the output can depend on: going down from the last spatial layer (all of
    # it), a layer needs of its input only what its needed units read. A unit outside is
    # never read again, so a window's patch may stop at the needed ones.
    last = [np.array(model.output_shapes[n][:2]) - 1]
    for l in range(n, 0, -1):
        geometry = layers[l - 1].geometry(model.output_shapes[l - 1])
        reach = [u * s - p + d * (k - 1) for u, (k, s, p, d) in zip(last[0], geometry,
                                                                   strict=True)]
        last.insert(0, np.minimum(reach, np.array(model.output_shapes[l - 1][:2]) - 1))
    steps = []
    for l, layer in enumerate(layers[:n]):
        (pt, pb), (pl, pr) = layer.pads(*ys[l].shape[1:3]) if hasattr(layer, "pads") else \
            ((0, 0), (0, 0))                         # ReLU keeps every unit in place
        fill = -np.inf if isinstance(layer, MaxPool2D) else 0.0
        padded = np.pad(ys[l][0], ((pt, pb), (pl, pr), (0, 0)), constant_values=fill)
        valid = copy.deepcopy(layer)     # its own caches and scratch space, never the model's
        if hasattr(valid, "padding"):
            valid.padding = (0, 0)
        geometry = layer.geometry(model.output_shapes[l])
        step = Step(valid, geometry, padded, (pt, pl), ys[l].shape[1:3],
                    tuple(int(v) for v in last[l + 1]))
        if isinstance(layer, Conv2D) and layer.stride == (1, 1):
            m = [d * (k - 1) for k, _, _, d in geometry]
            step.out = np.pad(ys[l + 1][0], ((m[0], m[0]), (m[1], m[1]), (0, 0)))
        steps.append(step)
    return Plan(steps, ys[n][0], layers[n:], ys[upto])


def gather(a, start, size):
    """Blocks ``a[r:r+h, c:c+w]`` for every ``(r, c)`` of ``start``: ``(B, h, w, C)``.

    ``a`` is (H, W, C). A sliding-window view of ``a`` holds every ``h x w`` block without
    copying; indexing it with the corners copies each block whole (C innermost).
    """
    blocks = np.lib.stride_tricks.sliding_window_view(a, size, axis=(0, 1))  # (H', W', C, h, w)
    return blocks.transpose(0, 1, 3, 4, 2)[start[:, 0], start[:, 1]]


def scatter(y, patch, start):
    """Write each ``patch[b]`` into ``y[b]`` at ``start[b]`` (in place)."""
    B, h, w, _ = patch.shape
    r = start[:, 0, None] + np.arange(h)
    c = start[:, 1, None] + np.arange(w)
    y[np.arange(B)[:, None, None], r[:, :, None], c[:, None, :]] = patch


def paste(block, patch, offset):
    """Write each ``patch[b]`` over ``block[b]`` with its corner at ``offset[b]`` (in place),
    cut where it hangs over the block's edge.

    Windows of a batch share few offsets (those of the interior ones are all the same), so
    this loops over the distinct offsets and copies slices.
    """
    (_, th, tw, _), (_, h, w, _) = block.shape, patch.shape
    low = offset.min(axis=0)
    span = int(offset[:, 1].max() - low[1]) + 1
    key = (offset[:, 0] - low[0]) * span + offset[:, 1] - low[1]   # one int per offset
    distinct, group = np.unique(key, return_inverse=True)
    for g, k in enumerate(distinct):
        dr, dc = int(k // span + low[0]), int(k % span + low[1])
        r0, r1, c0, c1 = max(dr, 0), min(dr + h, th), max(dc, 0), min(dc + w, tw)
        if r0 < r1 and c0 < c1:
            b = np.flatnonzero(group == g)
            block[b, r0:r1, c0:c1] = patch[b, r0 - dr:r1 - dr, c0 - dc:c1 - dc]


def advance(step, patch, start):
    """Carry a patch of ``y_(l-1)`` through one layer to a patch of ``y_(l)``.

    Parameters
    ----------
    step : the layer's :class:`Step`.
    patch : (B, h, w, C) changed block of ``y_(l-1)`` per window, at ``start`` (B, 2).

    Returns
    -------
    (patch, start, kept) for ``y_(l)``: every unit that may differ from the clean pass, and
    that the output can depend on (up to ``step.last``), lies inside; ``kept`` is None, or the
    indices of the windows that still change something (the others were dropped).
    """
    if step.geometry == ((1, 1, 0, 1), (1, 1, 0, 1)):
        # one input unit per output unit, in place (ReLU): the patch goes through alone
        return step.layer.forward(patch, check=False), start, None
    (h, w), (H, W) = patch.shape[1:3], step.shape
    inside = start.min() >= 0 and bool(np.all(start + [h, w] <= [H, W]))
    if inside and step.out is not None and unrolled_conv(step, h, w) is not None:
        return advance_change(step, patch, start)
    if not inside and step.padded.shape[:2] != (H, W):
        # a patch that hangs over the map's edge into the layer's padding: there, it is padding
        fill = -np.inf if isinstance(step.layer, MaxPool2D) else 0.0
        rows = (start[:, 0, None] + np.arange(h) >= 0) & (start[:, 0, None] + np.arange(h) < H)
        cols = (start[:, 1, None] + np.arange(w) >= 0) & (start[:, 1, None] + np.arange(w) < W)
        patch = np.where((rows[:, :, None] & cols[:, None, :])[..., None], patch, fill)
    return (*advance_block(step, patch, start), None)


def advance_block(step, patch, start):
    """:func:`advance` by recomputing: cut from the clean (padded) input map the block that
    the reached output units read, paste the patch over it, and run the layer without
    padding on the block."""
    h_in = patch.shape[1:3]
    lo, take = [], []
    for axis, (k, s, p, d) in enumerate(step.geometry):
        k_eff = d * (k - 1) + 1
        o = start[:, axis]
        # units u whose inputs [u s - p, u s - p + k_eff) meet [o, o + h)
        u0 = np.maximum(-((p - k_eff + 1 + o) // -s), 0)          # ceil division
        u1 = np.minimum((o + h_in[axis] - 1 + p) // s, step.last[axis])
        n = max(int((u1 - u0).max()) + 1, 1)
        u0 = np.minimum(u0, step.last[axis] + 1 - n)              # same block size for all
        lo.append(u0)
        take.append((n - 1) * s + k_eff)                          # input rows those units read
    origin = np.stack([lo[0] * step.geometry[0][1], lo[1] * step.geometry[1][1]], axis=1)
    offset = start + np.array(step.pads) - origin                 # of the patch in the block
    if list(h_in) == take and not offset.any():
        block = patch                       # the patch is the whole block (deep layers)
    else:
        block = gather(step.padded, origin, take)                 # (B, th, tw, C), padded coords
        paste(block, patch, offset)
    layer = step.layer
    if isinstance(layer, MaxPool2D) and layer.size == layer.stride:
        # windows that tile the block: the max of the strided slices, one per window cell,
        # and no switches (nothing goes back through them)
        sh, sw = layer.size
        out = block[:, ::sh, ::sw].copy()
        for i, j in np.ndindex(sh, sw):
            np.maximum(out, block[:, i::sh, j::sw], out=out)
    else:
        out = layer.forward(block, check=False)                   # (B, *size_out, C_l)
    return out, np.stack(lo, axis=1)


def advance_change(step, patch, start):
    """:func:`advance` for a stride-1 convolution, through the *change* of its input.

    A convolution is linear: ``conv(clean + delta) = conv(clean) + conv(delta)``, and the
    change ``delta`` is zero outside the ``h x w`` patch. It reaches the
    ``(h + k_eff - 1) x (w + k_eff - 1)`` output units around the patch — the same units,
    relative to the patch, for every window — so one matrix ``T`` (:func:`unrolled_conv`)
    maps the flattened change of every window to the change of those units: one GEMM,
    ``(B, h*w*C_in) @ (h*w*C_in, n_r*n_c*C_out)``. The output patch may hang over the map's
    edge (those units do not exist; the next step cuts them off). Windows whose change is
    zero (it died out on the way, e.g. in a max-pool whose maxima did not move) are dropped:
    returns ``(patch, start, kept)`` for the windows ``kept`` only.
    """
    _, h, w, _ = patch.shape
    T = unrolled_conv(step, h, w)
    delta = patch - gather(step.padded, start + np.array(step.pads), (h, w))   # (B, h, w, C)
    kept = np.flatnonzero(delta.reshape(len(delta), -1).any(axis=1))
    delta, start = delta[kept], start[kept]
    B = len(kept)
    (kh, _, _, dh), (kw, _, _, dw) = step.geometry
    n_r, n_c = h + dh * (kh - 1), w + dw * (kw - 1)
    # output units from (start + pad - k_eff + 1); in step.out, shifted by its margin k_eff - 1
    out_start = start + np.array(step.pads) - [dh * (kh - 1), dw * (kw - 1)]
    clean = gather(step.out, out_start + [dh * (kh - 1), dw * (kw - 1)], (n_r, n_c))
    out = (delta.reshape(B, T.shape[0]) @ T).reshape(clean.shape)         # the change
    out += clean
    return out, out_start, kept


def unrolled_conv(step, h, w):
    """The matrix ``T`` of :func:`advance_change` for an ``h x w`` patch, or None when
    it would cost more than recomputing blocks (a patch of more positions than the kernel
    has taps) or hold more than 2**23 numbers.

    ``T[(a, b, c), (u, v, o)] = W[i, j, c, o]`` where input unit ``(a, b)`` of the patch
    reaches output unit ``(u, v)`` through tap ``(i, j)``: ``u = a + d (kh - 1) - d i``.
    """
    if (h, w) not in step.unrolled:
        W = step.layer.params["W"]
        kh, kw, C_in, C_out = W.shape
        (_, _, _, dh), (_, _, _, dw) = step.geometry
        n_r, n_c = h + dh * (kh - 1), w + dw * (kw - 1)
        T = None
        if h * w <= kh * kw and h * w * C_in * n_r * n_c * C_out <= 2 ** 23:
            T = np.zeros((h, w, C_in, n_r, n_c, C_out), W.dtype)
            a, b = np.arange(h)[:, None], np.arange(w)[None, :]
            for i in range(kh):
                for j in range(kw):
                    T[a, b, :, a + dh * (kh - 1 - i), b + dw * (kw - 1 - j), :] = W[i, j]
            T = T.reshape(h * w * C_in, n_r * n_c * C_out)
        step.unrolled[(h, w)] = T
    return step.unrolled[(h, w)]


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
