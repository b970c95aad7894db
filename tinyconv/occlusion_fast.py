"""Occlusion's fast path: recompute only the units each window can reach.

A window over input rows ``[o, o + h)`` changes, in layer ``l``, only the units whose
receptive field meets it — its *projective field*. With the receptive field of ``y_(l)``
(:mod:`tinyconv.receptive_field`: unit ``u`` sees rows ``[u S - P, u S - P + r)``) those are
the units

    ceil((o - r + 1 + P) / S)  <=  u  <=  floor((o + h - 1 + P) / S)

cut to the map. Going up layer by layer, each occluded copy carries just a *patch* of
``y_(l)``: that block of units (one block size for every window of a batch), recomputed by the
layer's own :meth:`~tinyconv.layers.Layer.forward_unpadded` on the block of ``y_(l-1)`` it
reads, cut from the clean map padded once with the layer's ``pad_value``. Everything outside
the patch is the clean activation. After the last spatial layer the patches are pasted into
copies of the clean map and the remaining layers run as usual.

The path asks each layer, never its type:

* ``axes(in_shape)`` — per axis ``Geometry(size, stride, pad, dilation)``, or None once the
  layer mixes every position (Flatten, Dense): the fast path stops there;
* ``output_shape(in_shape)``;
* ``pad_value`` — what its padding stands for (0 for a convolution, -inf for a max-pool);
* ``pointwise`` — output unit ``(idx, k)`` depends on input unit ``(idx, k)`` alone (ReLU):
  the patch goes through by itself;
* ``forward_unpadded(x)`` — the layer on an input already padded, caching nothing;
* ``conv_kernel`` — optional: the HWIO weights when the layer is a convolution
  ``y = conv(x, W) + b``. A stride-1 one then carries a small patch by its *change*
  (:func:`advance_change`), one GEMM instead of im2col + GEMM over the whole block.

A new layer type declares these (the defaults of :class:`~tinyconv.layers.Layer`: identity
geometry, ``pad_value = 0``, not pointwise, no kernel, ``forward_unpadded = forward``) and
needs nothing here.
"""

from dataclasses import dataclass, field

import numpy as np

from .layer import _kernels
from .receptive_field import receptive_fields


@dataclass
class Step:
    """One spatial layer ``l`` of a :class:`Plan`.

    Attributes
    ----------
    layer : the model's layer (only its ``forward_unpadded`` is called).
    axes : per axis :class:`~tinyconv.layers.Geometry`.
    field : :class:`~tinyconv.receptive_field.ReceptiveField` of ``y_(l)``.
    padded : (H_(l-1) + pads, W_(l-1) + pads, C_(l-1)) the clean input, padded with the
        layer's ``pad_value`` as far as the layer reads (None for a pointwise layer).
    clean : (H_l, W_l, C_l) the clean output ``y_(l)``.
    unrolled : the matrices of :func:`unrolled_conv`, by patch size.
    """

    layer: object
    axes: tuple
    field: object
    padded: np.ndarray
    clean: np.ndarray
    unrolled: dict = field(default_factory=dict)     # (h, w) -> matrix, see unrolled_conv


@dataclass
class Plan:
    """The clean pass of one image, shared by every batch of its windows.

    ``steps``: one :class:`Step` per leading spatial layer; ``top``: (H_n, W_n, C_n) the clean
    output of the last of them; ``rest``: the layers after it, up to ``upto``; ``output``:
    (1, ...) the clean ``y_(upto)``.
    """

    steps: list
    top: np.ndarray
    rest: list
    output: np.ndarray

    def finish(self, patch, start):
        """Paste each patch (B, h, w, C) at ``start`` (B, 2) into a copy of the clean ``top``
        and run the remaining layers -> ``y_(upto)`` of the B occluded copies."""
        y = np.repeat(self.top[None], len(patch), axis=0)         # (B, H_n, W_n, C_n)
        paste(y, patch, start)
        for layer in self.rest:
            y = layer.forward(y, check=False)
        return y


def clean_plan(model, x, upto):
    """The clean activations of ``x`` (H, W, C_0) up to ``upto``, padded once per layer."""
    ys = model.activations(x[None], upto=upto)                   # clean y_(0) ... y_(upto)
    fields = receptive_fields(model)
    steps = []
    for l, layer in enumerate(model.layers[:upto], 1):
        axes = layer.axes(model.output_shapes[l - 1])
        if axes is None:
            break
        padded = None
        if not layer.pointwise:
            # padding before each axis from the geometry; after it, as far as the last output
            # unit reads: (H_l - 1) s + d (size - 1) + 1 padded rows in all
            widths = [(g.pad, max(0, (n_out - 1) * g.stride + g.dilation * (g.size - 1) + 1
                                  - g.pad - n_in))
                      for g, n_in, n_out in zip(axes, ys[l - 1].shape[1:3], ys[l].shape[1:3],
                                                strict=True)]
            padded = np.pad(ys[l - 1][0], (*widths, (0, 0)), constant_values=layer.pad_value)
        steps.append(Step(layer, axes, fields[l], padded, ys[l][0]))
    n = len(steps)
    return Plan(steps, ys[n][0], model.layers[n:upto], ys[upto])


def occluded_scores_fast(*, model, x, windows, size, baseline, score, upto, plan=None):
    """Scores of ``len(windows)`` occluded copies of ``x``, recomputing only what each window
    can change; the same as :func:`tinyconv.occlusion.occluded_scores` up to round-off.

    A window whose change is zero — it occludes pixels that already equal the baseline, or
    its change died out on the way (a max-pool whose maxima did not move) — scores the
    original and is dropped.

    Parameters
    ----------
    model : the :class:`~tinyconv.model.Sequential`. x : (H, W, C_0) image.
    windows : (B, 2) top-left corners inside the image of ``size = (h, w)`` windows (cut at
        the image edge).
    baseline : (H, W, C_0) occluder. score, upto : from
        :func:`tinyconv.occlusion.score_function`.
    plan : :func:`clean_plan` of ``x`` (made here if None), the clean pass that every batch of
        windows of one image shares.

    Returns
    -------
    (B,) scores.
    """
    plan = clean_plan(model, x, upto) if plan is None else plan
    scores = np.full(len(windows), score(plan.output)[0])
    # layer 0: the patch is the window itself, moved inside the image where it is cut
    H, W, _ = x.shape
    start = np.minimum(windows, np.array([H - size[0], W - size[1]]))     # (B, 2)
    clean = gather(x, start, size)                                         # (B, h, w, C_0)
    rows = start[:, 0, None] + np.arange(size[0]) >= windows[:, 0, None]   # (B, h)
    cols = start[:, 1, None] + np.arange(size[1]) >= windows[:, 1, None]   # (B, w)
    patch = np.where((rows[:, :, None] & cols[:, None, :])[..., None],
                     gather(np.asarray(baseline), start, size), clean)
    changed = (patch != clean).reshape(len(patch), -1).any(axis=1)
    # from here on the moved window stands for the cut one (its field holds the cut one's)
    windows = start
    alive = np.flatnonzero(changed)               # the windows still changing something
    patch, start = patch[alive], start[alive]
    for step in plan.steps:
        if not len(alive):
            return scores
        if step.layer.pointwise:
            patch = step.layer.forward_unpadded(patch)
            continue
        patch, start, kept = advance(step, patch, start, windows[alive], size)
        alive = alive[kept]
    if len(alive):
        scores[alive] = score(plan.finish(patch, start))
    return scores


def projective_field(field, windows, size):
    """The units of ``y_(l)`` that can see each window, per axis ``first <= u <= last``.

    Parameters
    ----------
    field : the :class:`~tinyconv.receptive_field.ReceptiveField` of ``y_(l)``.
    windows : (B, 2) input corners of ``size = (h, w)`` windows.

    Returns
    -------
    first, last : (B, 2) ints, cut to the ``H_l x W_l`` map (``first > last``: no unit).
    """
    r, S, P = (np.array(v) for v in (field.size, field.jump, field.pad))
    first = np.maximum(-((r - 1 - P - windows) // S), 0)                   # ceil division
    last = np.minimum((windows + np.array(size) - 1 + P) // S,
                      np.array(field.output_shape[:2]) - 1)
    return first, last


def advance(step, patch, start, windows, size):
    """Carry the patches of ``y_(l-1)`` through a spatial layer to patches of ``y_(l)``.

    Parameters
    ----------
    step : the layer's :class:`Step`.
    patch : (B, h, w, C) block of ``y_(l-1)`` per window, at ``start`` (B, 2); every unit
        that differs from the clean pass lies inside.
    windows : (B, 2) the windows' input corners, ``size`` their extent.

    Returns
    -------
    (patch, start, kept): the blocks of ``y_(l)`` for the windows ``kept`` (indices into the
    B): those that some unit of ``y_(l)`` sees, and that still change something.
    """
    first, last = projective_field(step.field, windows, size)
    reach = np.flatnonzero((first <= last).all(axis=1))          # windows some unit can see
    first, last, patch, start = first[reach], last[reach], patch[reach], start[reach]
    if not len(reach):
        return patch, start, reach
    # one block size for the batch: the largest field, moved back inside the map at the edge
    n = np.maximum((last - first).max(axis=0, initial=0) + 1, 1)              # (2,)
    first = np.minimum(first, np.array(step.clean.shape[:2]) - n)
    stride = np.array([g.stride for g in step.axes])
    pad = np.array([g.pad for g in step.axes])
    take = [(m - 1) * g.stride + g.dilation * (g.size - 1) + 1 for m, g in
            zip(n, step.axes, strict=True)]                      # padded input rows they read
    T = unrolled_conv(step, *patch.shape[1:3]) if (stride == 1).all() else None
    if T is None:
        origin = first * stride                                  # in padded coordinates
        block = gather(step.padded, origin, take)                # (B, th, tw, C_(l-1))
        paste(block, patch, start + pad - origin)
        return step.layer.forward_unpadded(block), first, reach  # (B, n_r, n_c, C_l)
    # a window whose change is zero here (it died in a max-pool whose maxima did not move)
    # changes nothing above: it is dropped
    delta = patch - gather(step.padded, start + pad, patch.shape[1:3])     # (B, h, w, C)
    kept = np.flatnonzero(delta.reshape(len(delta), -1).any(axis=1))
    first = first[kept]
    return advance_change(step, delta[kept], start[kept], T, first, n), first, reach[kept]


def gather(a, start, size):
    """Blocks ``a[r:r+h, c:c+w]`` for every ``(r, c)`` of ``start`` (B, 2): ``(B, h, w, C)``.

    ``a`` is (H, W, C). A sliding-window view of ``a`` holds every ``h x w`` block without
    copying; indexing it with the corners copies each block whole (C innermost).
    """
    blocks = np.lib.stride_tricks.sliding_window_view(a, tuple(size), axis=(0, 1))
    return blocks.transpose(0, 1, 3, 4, 2)[start[:, 0], start[:, 1]]    # (H', W', C, h, w)


def advance_change(step, delta, start, T, first, n):
    """The block ``first + [0, n)`` of ``y_(l)`` for a stride-1 convolution, through the
    *change* ``delta`` (B, h, w, C_(l-1)) of its input at ``start``.

    A convolution is linear up to its bias: ``conv(clean + delta) = conv(clean) +
    conv(delta)``, and ``delta`` is zero outside the ``h x w`` patch. It reaches the
    ``(h + k_eff - 1) x (w + k_eff - 1)`` output units around the patch — the same units,
    relative to the patch, for every window — so one matrix ``T`` maps the flattened change of
    every window to the change of those units: one GEMM, ``(B, h*w*C_in) @ (h*w*C_in,
    n_r*n_c*C_out)``, added to the clean block where it falls inside it.
    """
    (B, h, w, _), pad = delta.shape, np.array([g.pad for g in step.axes])
    reach = [m + g.dilation * (g.size - 1) for m, g in zip((h, w), step.axes, strict=True)]
    change = (delta.reshape(B, T.shape[0]) @ T).reshape(B, *reach, step.clean.shape[2])
    out = gather(step.clean, first, n)                                     # a copy
    # the output units reached start k_eff - 1 before the patch (in output coordinates)
    paste(out, change, start + pad - (np.array(reach) - [h, w]) - first, add=True)
    return out


def unrolled_conv(step, h, w):
    """The matrix ``T`` of :func:`advance_change` for an ``h x w`` patch, or None when the
    layer is no convolution (``conv_kernel`` is None), when ``T`` would cost more than
    recomputing blocks (a patch of more positions than the kernel has taps) or hold more than
    2**23 numbers.

    ``T[(a, b, c), (u, v, o)] = W[i, j, c, o]`` where input unit ``(a, b)`` of the patch
    reaches output unit ``(u, v)`` through tap ``(i, j)``: ``u = a + d (kh - 1) - d i``.
    """
    if (h, w) not in step.unrolled:
        W, T = step.layer.conv_kernel, None
        if W is not None:
            kh, kw, C_in, C_out = W.shape
            dh, dw = (g.dilation for g in step.axes)
            n_r, n_c = h + dh * (kh - 1), w + dw * (kw - 1)
            if h * w <= kh * kw and h * w * C_in * n_r * n_c * C_out <= 2 ** 23:
                T = np.zeros((h, w, C_in, n_r, n_c, C_out), W.dtype)
                a, b = np.arange(h)[:, None], np.arange(w)[None, :]
                for i, j in np.ndindex(kh, kw):
                    T[a, b, :, a + dh * (kh - 1 - i), b + dw * (kw - 1 - j), :] = W[i, j]
                T = T.reshape(h * w * C_in, n_r * n_c * C_out)
        step.unrolled[(h, w)] = T
    return step.unrolled[(h, w)]


def paste(block, patch, offset, add=False):
    """Write each ``patch[b]`` over ``block[b]`` with its corner at ``offset[b]`` (in place),
    cut where it hangs over the block's edge (``add``: add it instead).

    ``block`` (B, th, tw, C), ``patch`` (B, h, w, C), ``offset`` (B, 2): every window's patch
    at its own corner, one pass over the batch (the kernel
    :func:`tinyconv.kernels.blocks.paste`; its plain-NumPy twin says the same in a loop).
    """
    if len(offset):
        _kernels().paste(block, patch, offset, add)
