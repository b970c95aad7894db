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

from .activation_max import activation_maximization
from .grad_cam import grad_cam, guided_grad_cam
from .input_x_gradient import input_x_gradient
from .integrated_gradients import integrated_gradients
from .max_activation import max_activating
from .occlusion import occlusion
from .projection import project
from .receptive_field import receptive_field
from .smoothgrad import smoothgrad

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


def _mosaic(ax, images, cols=3):
    """``(n, h, w)`` images as one ``cols``-wide mosaic on ``ax``, thin lines between."""
    n, h, w = images.shape
    rows = -(-n // cols)
    canvas = np.full((rows * h, cols * w), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    ax.imshow(canvas, cmap=INK, vmin=0, vmax=1, interpolation="nearest")
    for r in range(1, rows):
        ax.axhline(r * h - 0.5, color=GAP, linewidth=1.2)
    for c in range(1, cols):
        ax.axvline(c * w - 0.5, color=GAP, linewidth=1.2)
    _bare(ax)


def every_map(model, x, target=None, cam_layer="relu3", smooth_n=50, ig_steps=64,
              occlusion_size=4, seed=0):
    """One image under nine attribution maps, side by side on one layout.

    Parameters
    ----------
    model : a classifier with ``(N, K)`` logits; x : (H, W, C_0) one image.
    target : the class ``c`` explained (None: the predicted one).
    cam_layer : the layer of Grad-CAM (default the last convolution's rectified output);
        the map shown is ``GradCAM.upsampled`` (bilinear, as Captum and the paper).
    smooth_n, ig_steps : SmoothGrad's copies (σ = 15 %), IG's trapezoid steps (baseline 0).
    occlusion_size : the square of :func:`~tinyconv.occlusion` (``pixels``, relative drop of
        ``p(c)``).

    Channels are summed for display (one channel for MNIST).
    """
    X = x[None]                                                   # (1, H, W, C_0)
    c = int(model.forward(X).argmax()) if target is None else int(target)
    ig = integrated_gradients(model, X, c, steps=ig_steps)
    cam = grad_cam(model, X, c, layer=cam_layer)
    signed = [
        ("gradient  ∂y_c/∂x", project(model, X, -1, c, rule="gradient")),
        ("input × gradient", input_x_gradient(model, X, c)),
        (f"SmoothGrad (n = {smooth_n}, σ = 15 %)", smoothgrad(model, X, c, n=smooth_n,
                                                              seed=seed)),
        (f"Integrated Gradients ({ig_steps} steps)", ig.attributions),
        ("deconvnet", project(model, X, -1, c, rule="deconvnet")),
        ("guided backprop", project(model, X, -1, c, rule="guided")),
        ("guided Grad-CAM", guided_grad_cam(model, X, c, layer=cam_layer)),
        (f"occlusion {occlusion_size}×{occlusion_size}: drop in p(c)",
         occlusion(model, X, c, occlusion_size, relative=True).pixels[..., None]),
    ]
    fig = Figure(figsize=(14, 6.2), layout="constrained")
    axes = fig.subplots(2, 5)
    axes[0, 0].imshow(x.sum(axis=-1), cmap=INK, vmin=0, vmax=1)
    axes[0, 0].set_title(f"input, class c = {c}", fontsize=9)
    _bare(axes[0, 0])
    order = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 3), (1, 4)]
    for (r, col), (title, m) in zip(order, signed, strict=True):
        _signed(fig, axes[r, col], np.nan_to_num(m[0].sum(axis=-1)), title)
    ax = axes[1, 2]
    im = ax.imshow(cam.upsampled[0], cmap=POSITIVE, vmin=0, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
    ax.set_title(f"Grad-CAM at {model.names[cam.layer]} (bilinear)", fontsize=9)
    _bare(ax)
    fig.suptitle(f"One digit, every map: what makes the logit y_{c} large (red: raising the "
                 f"pixel raises it). IG gap {ig.gap[0]:+.2g} of F(x) - F(0) = "
                 f"{ig.difference[0]:.3g}")
    return fig


def class_models(model, classes=range(10), steps=150, lr=0.04, l2=0.01, blur_every=4,
                 blur_sigma=0.6, jitter=1, seed=0):
    """The preferred image of each class logit ``y_(L),c`` (Simonyan et al. 2013, §2), by
    :func:`~tinyconv.activation_maximization` with Yosinski et al.'s regularisers."""
    classes = list(classes)
    cols = min(5, len(classes))
    rows = -(-len(classes) // cols)
    fig = Figure(figsize=(2.3 * cols, 2.6 * rows + 0.5), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        _bare(ax)
        ax.set_frame_on(False)
    for ax, c in zip(axes.flat, classes, strict=False):
        r = activation_maximization(model, -1, c, steps=steps, lr=lr, l2=l2,
                                    blur_every=blur_every, blur_sigma=blur_sigma,
                                    jitter=jitter, seed=seed)
        ax.imshow(r.image.sum(axis=-1), cmap=INK, vmin=0, vmax=1)
        ax.set_frame_on(True)
        ax.set_title(f"c = {c}: y_c {r.history[0]:.1f} → {r.history[-1]:.1f}", fontsize=9)
    fig.suptitle(f"Class models: gradient ascent on each logit from a grey image ({steps} "
                 f"steps, L2 decay {l2}, blur σ = {blur_sigma} every {blur_every}, jitter "
                 f"{jitter} px)")
    return fig


def preferred_images(model, X, layer="conv3", n=6, top=9, steps=120, lr=0.03, l2=0.01,
                     blur_every=4, blur_sigma=0.5, jitter=1, seed=0):
    """For the ``n`` units of ``layer`` with the largest top activation on ``X``: the preferred
    image of the centre unit, cropped to its receptive field, beside the MaxAct top-``top``
    patches (each cropped to its own unit's field, Zeiler & Fergus 2014, Fig. 2)."""
    l = model.index(layer)
    ranking = max_activating(model, X, l, top=top)
    best = np.argsort(-ranking.values[:, 0])[:n]                  # rows of the ranking
    rf = receptive_field(model, l)
    H_l, W_l = model.output_shapes[l][:2]
    centre = (H_l // 2, W_l // 2)
    r0, r1, c0, c1 = rf.box(*centre, clip=False)
    fig = Figure(figsize=(5.2, 2.4 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 2, squeeze=False)
    for (a, b), j in zip(axes, best, strict=True):
        k = int(ranking.features[j])
        r = activation_maximization(model, l, k, idx=centre, steps=steps, lr=lr, l2=l2,
                                    blur_every=blur_every, blur_sigma=blur_sigma,
                                    jitter=jitter, seed=seed)
        a.imshow(rf.patches(r.image[None], centre)[0].sum(axis=-1), cmap=INK, vmin=0, vmax=1)
        a.add_patch(Rectangle((-0.5, -0.5), c1 - c0, r1 - r0, fill=False, edgecolor=GAP))
        a.set_title(f"k = {k}: preferred image", fontsize=9)
        a.set_ylabel(f"y {r.history[0]:.1f} → {r.history[-1]:.1f}", fontsize=8)
        _bare(a)
        patches = rf.patches(X[ranking.indices[j]], ranking.locations[j])     # (top, r, r, C)
        _mosaic(b, patches.sum(axis=-1))
        b.set_title(f"MaxAct top {top} (max {ranking.values[j, 0]:.1f})", fontsize=9)
    fig.suptitle(f"{model.names[l]}: what each unit wants to see\n(left: ascent on the centre "
                 f"unit; right: the data set's strongest patches)", fontsize=10)
    return fig
