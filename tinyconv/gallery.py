"""The results behind the figures that need more than one technique: the tour's occlusion
(figure 6) and effective receptive fields (figure 9), and the after-Zeiler-&-Fergus figures:
every map of one digit, the class models, and each unit's preferred image beside its MaxAct
patches.

Each function runs techniques and returns arrays (in plain dicts); the drawing lives in
:mod:`tinyconv.plots.methods`, which takes these dicts, so that a figure never decides what
to compute and a script can reuse the numbers without matplotlib.
"""

import numpy as np

from .activation_max import maximize_features
from .effective_rf import effective_receptive_field
from .grad_cam import grad_cam, guided_grad_cam
from .input_x_gradient import input_x_gradient
from .integrated_gradients import integrated_gradients
from .max_activation import max_activating
from .occlusion import occlusion
from .projection import project
from .receptive_field import receptive_field
from .smoothgrad import smoothgrad
from .units import centre_unit

ERF_FEATURES = 16       # features averaged per layer (evenly spaced; one backward pass each)


def occlusion_results(model, x, label, sizes, layer, k, progress=None):
    """What :func:`tinyconv.plots.occlusion_figure` draws for image ``x`` (H, W, C_0): the
    occlusion of ``p(label)`` for each of the two ``sizes``, of the total of map ``k`` of
    ``layer`` (pass a ReLU's output, so the total is of non-negative units) and of the argmax
    class with the larger square, the map ``y_(layer),idx,k`` and its field."""
    sweeps = [occlusion(model, x, label, s, relative=True, progress=progress) for s in sizes]
    feature = occlusion(model, x, (layer, k), sizes[-1], relative=True, progress=progress)
    argmax = occlusion(model, x, lambda y: y.argmax(axis=1), sizes[-1], progress=progress)
    fmap = model.forward(x[None], upto=layer)[0, :, :, k]                 # (H_l, W_l)
    return dict(sweeps=sweeps, feature=feature, argmax=argmax, fmap=fmap,
                field=receptive_field(model, layer), k=k)


def erf_results(model, X, layers, features=ERF_FEATURES):
    """``(l, centre, ks, erf)`` per layer for
    :func:`tinyconv.plots.effective_receptive_fields`: the centre unit and its
    :func:`~tinyconv.effective_receptive_field` averaged over ``X`` and over ``features``
    evenly spaced features ``ks`` of the layer (all of them when it has no more), as Luo et
    al. 2016 average over units rather than choose one; each feature costs a backward pass."""
    results = []
    for layer in layers:
        l = model.index(layer)
        centre = centre_unit(model, l)
        C = model.output_shapes[l][-1]
        ks = np.unique(np.linspace(0, C - 1, min(features, C)).round().astype(np.int64))
        results.append((l, centre, ks, effective_receptive_field(model, X, l, ks, centre)))
    return results


def every_map(model, x, target=None, cam_layer="relu3", smooth_n=50, ig_steps=64,
              occlusion_size=4, seed=0):
    """One image under nine attribution maps.

    Parameters
    ----------
    model : a classifier with ``(N, K)`` logits; x : (H, W, C_0) one image.
    target : the class ``c`` explained (None: the predicted one).
    cam_layer : Grad-CAM's layer (default the last convolution's rectified output).
    smooth_n, ig_steps : SmoothGrad's copies (σ = 15 %, Smilkov et al. 2017), IG's trapezoid
        steps from a zero baseline (Sundararajan et al. 2017).
    occlusion_size : the square of :func:`~tinyconv.occlusion` (relative drop of ``p(c)``,
        Zeiler & Fergus 2014, §4.2).

    Returns
    -------
    dict with ``x`` (H, W, C_0), ``target`` c, ``signed``: a list of ``(title, (H, W, C_0)
    map)`` for the eight signed maps, ``cam`` (:class:`~tinyconv.grad_cam.GradCAM`) and
    ``ig`` (:class:`~tinyconv.integrated_gradients.IntegratedGradients`).
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
    return {"x": x, "target": c, "signed": [(t, m[0]) for t, m in signed], "cam": cam, "ig": ig}


def class_models(model, classes=range(10), steps=150, lr=0.04, l2=0.01, blur_every=4,
                 blur_sigma=0.6, jitter=1, seed=0):
    """The preferred image of each class logit ``y_(L),c`` (Simonyan et al. 2013, §2), by
    :func:`~tinyconv.activation_max.maximize_features` (every class in one batch) with
    Yosinski et al. 2015's regularisers.

    Returns
    -------
    dict with ``classes`` (list of c), ``results`` (one
    :class:`~tinyconv.activation_max.ActivationMaximization` per class) and ``settings``.
    """
    classes = list(classes)
    settings = dict(steps=steps, lr=lr, l2=l2, blur_every=blur_every, blur_sigma=blur_sigma,
                    jitter=jitter, seed=seed)
    results = maximize_features(model, -1, classes, **settings)      # the ten ascents at once
    return {"classes": classes, "results": results, "settings": settings}


def preferred_images(model, X, layer="conv3", n=6, top=9, steps=120, lr=0.03, l2=0.01,
                     blur_every=4, blur_sigma=0.5, jitter=1, seed=0, ranking=None):
    """For the ``n`` units of ``layer`` with the largest top activation on ``X``
    (N, H, W, C_0): the preferred image of the centre unit ``y_(l),centre,k`` (Yosinski et al.
    2015) and the MaxAct top-``top`` patches under each unit's receptive field (Zeiler &
    Fergus 2014, Fig. 2).

    ``ranking``: a :func:`~tinyconv.max_activating` ranking of every feature of ``layer``
    over ``X`` with at least ``top`` examples each, when the caller already has one (the tour
    ranks each convolution once for several figures); None ranks ``X`` here.

    Returns
    -------
    dict with ``layer`` l, ``centre`` (row, col), ``field`` (its receptive field), and
    ``units``: per unit a dict ``k``, ``preferred`` (an ActivationMaximization), ``patches``
    (top, r, r, C_0) and ``best`` (the strongest MaxAct value).
    """
    l = model.index(layer)
    if ranking is None:
        ranking = max_activating(model, X, l, top=top)
    elif ranking.layer != l or ranking.indices.shape[1] < top \
            or len(ranking.features) != model.output_shapes[l][-1]:
        raise ValueError(f"ranking: expected a ranking of every feature of layer {l} with at "
                         f"least {top} examples each, got layer {ranking.layer}, "
                         f"{len(ranking.features)} features, {ranking.indices.shape[1]} "
                         "examples each")
    best = np.argsort(-ranking.values[:, 0])[:n]                  # rows of the ranking
    rf = receptive_field(model, l)
    centre = centre_unit(model, l)
    ks = [int(ranking.features[j]) for j in best]
    preferred = maximize_features(model, l, ks, idx=centre, steps=steps, lr=lr, l2=l2,
                                  blur_every=blur_every, blur_sigma=blur_sigma, jitter=jitter,
                                  seed=seed)
    units = [{"k": k, "preferred": r, "best": float(ranking.values[j, 0]),
              "patches": rf.patches(X[ranking.indices[j, :top]], ranking.locations[j, :top])}
             for j, k, r in zip(best, ks, preferred, strict=True)]
    return {"layer": l, "centre": centre, "field": rf, "units": units, "top": top}
