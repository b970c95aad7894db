"""Figures for the methods after Zeiler & Fergus; every function returns a matplotlib Figure.

==========================  ===========================================================
function                    shows
==========================  ===========================================================
:func:`every_map`           one digit under nine maps: gradient, input × gradient,
                            SmoothGrad, Integrated Gradients, deconvnet, guided backprop,
                            Grad-CAM, guided Grad-CAM, occlusion
:func:`class_models`        the image each class logit prefers (Simonyan et al. 2013)
:func:`preferred_images`    per unit: its preferred image beside its MaxAct top-9 patches
                            (the per-unit view of Yosinski et al.'s toolbox, 2015)
==========================  ===========================================================

Built on ``matplotlib.figure.Figure`` without pyplot (no backend, no global state). Signed
maps use ``RdBu_r`` with a colour scale symmetric about 0, one per map (red: the map's value is
positive, i.e. raising the pixel raises the class score); non-negative maps (Grad-CAM) use
``magma`` from 0; images are ink on paper (``gray_r``, 0 white, 1 black).
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ._style import show_tiles

SIGNED, POSITIVE, INK = "RdBu_r", "magma", "gray_r"
GAP = "#6f9fd8"


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def _signed(fig, ax, m, title):
    """Draw an ``(H, W)`` signed map on a scale symmetric about 0, with its colour bar."""
    vmax = float(np.abs(m).max()) or 1.0
    im = ax.imshow(m, cmap=SIGNED, vmin=-vmax, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    _bare(ax)


def every_map(result):
    """One image under nine attribution maps, side by side on one layout.

    ``result`` is :func:`tinyconv.gallery.every_map`'s dict. Each signed map has its own
    colour scale, symmetric about 0; the Grad-CAM panel is ``GradCAM.upsampled`` (bilinear, as
    Captum and the paper). Channels are summed for display (one channel for MNIST).
    """
    x, c, cam, ig = result["x"], result["target"], result["cam"], result["ig"]
    fig = Figure(figsize=(14, 6.2), layout="constrained")
    axes = fig.subplots(2, 5)
    axes[0, 0].imshow(x.sum(axis=-1), cmap=INK, vmin=0, vmax=1)
    axes[0, 0].set_title(f"input, class c = {c}", fontsize=9)
    _bare(axes[0, 0])
    order = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 3), (1, 4)]
    for (r, col), (title, m) in zip(order, result["signed"], strict=True):
        _signed(fig, axes[r, col], np.nan_to_num(m.sum(axis=-1)), title)
    ax = axes[1, 2]
    im = ax.imshow(cam.upsampled[0], cmap=POSITIVE, vmin=0, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
    ax.set_title(f"Grad-CAM at layer {cam.layer} (bilinear)", fontsize=9)
    _bare(ax)
    fig.suptitle(f"One digit, every map: what makes the logit y_{c} large (red: raising the "
                 f"pixel raises it). IG gap {ig.gap[0]:+.2g} of F(x) - F(0) = "
                 f"{ig.difference[0]:.3g}")
    return fig


def class_models(result):
    """The preferred image of each class logit ``y_(L),c`` (Simonyan et al. 2013, §2), from
    :func:`tinyconv.gallery.class_models`'s dict."""
    classes, s = result["classes"], result["settings"]
    cols = min(5, len(classes))
    rows = -(-len(classes) // cols)
    fig = Figure(figsize=(2.3 * cols, 2.6 * rows + 0.5), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        _bare(ax)
        ax.set_frame_on(False)
    for ax, c, r in zip(axes.flat, classes, result["results"], strict=False):
        ax.imshow(r.image.sum(axis=-1), cmap=INK, vmin=0, vmax=1)
        ax.set_frame_on(True)
        ax.set_title(f"c = {c}: y_c {r.history[0]:.1f} → {r.history[-1]:.1f}", fontsize=9)
    fig.suptitle(f"Class models: gradient ascent on each logit from a grey image "
                 f"({s['steps']} steps, L2 decay {s['l2']}, blur σ = {s['blur_sigma']} every "
                 f"{s['blur_every']}, jitter {s['jitter']} px)")
    return fig


def preferred_images(result, layer_name=None):
    """Per unit: the preferred image of the centre unit, cropped to its receptive field,
    beside the MaxAct top patches (each cropped to its own unit's field, Zeiler & Fergus
    2014, Fig. 2), from :func:`tinyconv.gallery.preferred_images`'s dict."""
    units, rf, centre, top = result["units"], result["field"], result["centre"], result["top"]
    r0, r1, c0, c1 = rf.box(*centre, clip=False)
    n = len(units)
    fig = Figure(figsize=(5.2, 2.4 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 2, squeeze=False)
    for (a, b), unit in zip(axes, units, strict=True):
        r = unit["preferred"]
        a.imshow(rf.patches(r.image[None], centre)[0].sum(axis=-1), cmap=INK, vmin=0, vmax=1)
        a.add_patch(Rectangle((-0.5, -0.5), c1 - c0, r1 - r0, fill=False, edgecolor=GAP))
        a.set_title(f"k = {unit['k']}: preferred image", fontsize=9)
        a.set_ylabel(f"y {r.history[0]:.1f} → {r.history[-1]:.1f}", fontsize=8)
        _bare(a)
        show_tiles(b, unit["patches"].sum(axis=-1), cmap=INK, vmin=0, vmax=1)
        b.set_title(f"MaxAct top {top} (max {unit['best']:.1f})", fontsize=9)
    name = layer_name or f"layer {result['layer']}"
    fig.suptitle(f"{name}: what each unit wants to see\n(left: ascent on the centre "
                 f"unit; right: the data set's strongest patches)", fontsize=10)
    return fig
