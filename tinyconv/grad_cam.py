"""Grad-CAM and guided Grad-CAM: which locations of a layer's maps the class score uses.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, §3 eqs. (1)-(2). At a spatial layer ``l`` with maps ``y_(l),k``:

    α_k = 1/(H_l W_l) Σ_idx d y_(L),c / d y_(l),idx,k        (the map's importance, eq. 1)
    L_c = ReLU(Σ_k α_k y_(l),k)                               (an H_l x W_l map, eq. 2)

The map lives at the layer's resolution; two ways bring it to the input's ``H x W``:

* ``upsampled`` — bilinear interpolation with half-pixel centres (``align_corners=False``),
  what Captum's ``LayerAttribution.interpolate(…, "bilinear")`` and the paper's figures use;
* ``spread`` — receptive-field aware: each unit's value is spread over the input box it sees
  (:func:`~tinyconv.receptive_field`) and every pixel takes the mean over the boxes covering
  it (0 where none does), so a value lands exactly where its unit looks.

Guided Grad-CAM (§3.1) multiplies guided backprop by the upsampled map, channel by channel.
The gradient at layer ``l`` comes from the layers' own backward, run from ``L`` down to ``l``.
"""

import functools
from dataclasses import dataclass

import numpy as np

from .receptive_field import receptive_field
from .units import check_target, class_backward, class_signal, is_spatial, n_classes


@dataclass
class GradCAM:
    """Result of :func:`grad_cam`.

    Attributes
    ----------
    map : (N, H_l, W_l) ``L_c`` at the layer's resolution.
    upsampled : (N, H, W) ``map`` bilinearly interpolated to the input (as Captum).
    spread : (N, H, W) ``map`` spread over the receptive fields and averaged per pixel.
    weights : (N, C_l) the ``α_k``. layer : ``l``. target : (N,) int64 classes ``c``.
    """

    map: np.ndarray
    upsampled: np.ndarray
    spread: np.ndarray
    weights: np.ndarray
    layer: int
    target: np.ndarray


def grad_cam_layer(model, layer):
    """``l`` of a Grad-CAM layer: ``layer`` checked, or (None) the last layer with locations."""
    if layer is None:
        return max(l for l in range(1, len(model.layers) + 1) if is_spatial(model, l))
    l = model.index(layer)
    if l == 0 or not is_spatial(model, l):
        raise ValueError(f"layer: Grad-CAM needs a layer l >= 1 with spatial locations "
                         f"(H_l, W_l, C_l); {model.names[l]!r} outputs {model.output_shapes[l]}")
    return l


@functools.lru_cache(maxsize=64)
def bilinear_matrix(n_in, n_out):
    """``(n_out, n_in)`` matrix of 1-D linear interpolation with half-pixel centres.

    Output pixel ``o`` sits at input coordinate ``s = (o + 1/2) n_in / n_out - 1/2`` (clamped
    at 0); it takes ``1 - t`` of input ``floor(s)`` and ``t = s - floor(s)`` of the next one
    (the last input pixel repeats past the edge). Made once per size pair and kept (read-only):
    a call on a batch should not pay for it again.
    """
    s = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lo = np.floor(s).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    t = s - lo
    A = np.zeros((n_out, n_in))
    np.add.at(A, (np.arange(n_out), lo), 1 - t)
    np.add.at(A, (np.arange(n_out), hi), t)
    A.flags.writeable = False
    return A


def separable(A_h, maps, A_w):
    """``(N, H_l, W_l)`` maps -> ``(N, H, W)`` by a linear map on rows, then one on columns:
    ``A_h @ map @ A_w^T`` for each map, with ``A_h (H, H_l)`` and ``A_w (W, W_l)``."""
    return (A_h @ maps @ A_w.T).astype(maps.dtype)        # (N, H, W_l), then (N, H, W)


def bilinear_upsample(maps, H, W):
    """``(N, H_l, W_l)`` maps -> ``(N, H, W)``: rows, then columns, each a linear
    interpolation (:func:`bilinear_matrix`); the same numbers as torch's
    ``F.interpolate(mode="bilinear", align_corners=False)``."""
    return separable(bilinear_matrix(maps.shape[1], H), maps, bilinear_matrix(maps.shape[2], W))


def spread_matrix(boxes, n):
    """``(n, n_l)`` matrix of one axis of the receptive-field spread: ``boxes`` holds the
    half-open input interval ``(lo, hi)`` of each of the ``n_l`` units along the axis; input
    pixel ``p`` takes the mean of the units whose interval holds it (a zero row if none)."""
    A = np.zeros((n, len(boxes)))
    for u, (lo, hi) in enumerate(boxes):
        A[lo:hi, u] = 1
    return A / np.maximum(A.sum(axis=1, keepdims=True), 1)


def receptive_field_spread(model, l, maps):
    """``(N, H_l, W_l)`` maps of layer ``l`` -> ``(N, H, W)``: each unit's value spread over
    its receptive-field box, averaged over the boxes that cover each pixel (0 if none).

    A box is a row interval times a column interval, so the boxes covering pixel ``(r, c)``
    are the pairs of a row interval holding ``r`` and a column interval holding ``c``: the
    mean over them is :func:`separable` with one :func:`spread_matrix` per axis.
    """
    rf = receptive_field(model, l)
    H, W = model.input_shape[:2]
    H_l, W_l = maps.shape[1:]
    rows = [rf.box(row, 0)[:2] for row in range(H_l)]            # (r0, r1) of each row
    cols = [rf.box(0, col)[2:] for col in range(W_l)]            # (c0, c1) of each column
    return separable(spread_matrix(rows, H), maps, spread_matrix(cols, W))


def grad_cam(model, x, target=None, layer=None):
    """Grad-CAM of the class logit ``y_(L),c`` at layer ``l`` (Selvaraju et al. 2017, §3).

    Parameters
    ----------
    model : :class:`~tinyconv.Sequential` with class scores ``(N, K)`` at the output.
    x : (N, H, W, C_0) input.
    target : a class index ``c``, ``(N,)`` ints, or None for each example's predicted class.
    layer : name or number ``l`` of a layer with locations; None takes the last one.

    Returns
    -------
    :class:`GradCAM`: ``map (N, H_l, W_l)``; ``upsampled (N, H, W)`` is the *bilinear* one
    (Captum's ``LayerAttribution.interpolate(…, "bilinear")``); ``spread (N, H, W)`` the
    receptive-field-aware one.
    """
    n_classes(model, "grad_cam")
    l = grad_cam_layer(model, layer)
    # two passes that meet at y_(l) keep every layer's cache for the backward, as
    # model.activations(x) would, without writing the activations below l that are not used
    y = model.forward(x, upto=l)                                  # y_(l): (N, H_l, W_l, C_l)
    logits = model.forward(y, start=l)                            # y_(L): (N, K)
    target = check_target(target, logits)
    dy = class_signal(logits, target)
    dy = model.backward(dy, stop=l, param_grads=False)            # d y_(L),c / d y_(l)
    weights = dy.mean(axis=(1, 2))                                # α_k: (N, C_l)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", y, weights), 0)   # (N, H_l, W_l)
    H, W = model.input_shape[:2]
    return GradCAM(cam, bilinear_upsample(cam, H, W), receptive_field_spread(model, l, cam),
                   weights, l, target)


def guided_grad_cam(model, x, target=None, layer=None):
    """Guided Grad-CAM: guided backprop of ``y_(L),c`` times the upsampled Grad-CAM map
    (Selvaraju et al. 2017, §3.1; the bilinear map, as Captum's ``GuidedGradCam`` with
    ``interpolate_mode="bilinear"``).

    Returns
    -------
    (N, H, W, C_0) array: ``guided[..., ch] * grad_cam(...).upsampled`` for each channel.
    """
    cam = grad_cam(model, x, target, layer)
    guided, _, _ = class_backward(model, x, cam.target, rule="guided", what="guided_grad_cam")
    return guided * cam.upsampled[..., None]
