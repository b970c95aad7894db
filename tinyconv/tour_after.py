"""Figures 11-16 of the tour: the methods that came after Zeiler & Fergus, and their sanity
checks.

::

    entries = after_figures(model, X, y, logits, i, "conv3", "relu3", rankings["conv3"], say)
    fig, caption = entries[0][2]()              # (name, heading, make, how-to, command)

The results come from :mod:`tinyconv.gallery` and :func:`tinyconv.sanity.sanity_checks`,
the drawings from :mod:`tinyconv.plots.methods` and :mod:`tinyconv.plots.sanity`; like
:mod:`tinyconv.tour`, this module only chooses what to show — the tour's digit (the one it
occludes in figure 6) and its MaxAct ranking of the deepest convolution (figure 3) — and writes
each caption from the numbers of the run. The tour's copies are cheaper than the demos' (fewer
ascent steps, fewer digits for the sanity checks) so that the tour stays quick; each caption
says what was used and the command under it does the full run.
"""

from inspect import signature

import numpy as np

from . import gallery
from .layers import softmax
from .measures import ink_share
from .plots import methods as method_plots
from .plots import sanity as sanity_plots
from .sanity import CONTROLS, sanity_checks
from .tour_page import COMMAND, HOWTO

CLASS_STEPS = 60         # ascent steps per class model (the demo's: gallery's default)
PREFERRED_UNITS = 4      # units of the deepest convolution in figure 13 (demos/fig13: 6)
PREFERRED_STEPS = 60     # ascent steps per unit (the demo's: gallery's default)
SANITY_DIGITS = 4        # held-out digits of the sanity checks (demos/fig14: 8; sanity: 100)
SIMILARITY = "spearman_abs"   # the measure of figures 14 and 15 (Adebayo et al.'s rank one)
SANITY_COMMAND = ("python demos/fig14_sanity.py out.png   (the first 8 held-out digits; on 100, "
                  "with a model trained on permuted labels too: tinyconv sanity --out DIR)")


def sanity_digits(y, i, n=SANITY_DIGITS):
    """The digits of the tour's sanity checks: example ``i`` (figure 6's, drawn in the grid)
    and the first ``n - 1`` others of ``y`` -> ``(n,)`` indices (fewer if ``y`` is short)."""
    others = [j for j in range(len(y)) if j != i][:n - 1]
    return np.array([i, *others])


def demo_default(f, name="steps"):
    """The default of argument ``name`` of ``f`` (a :mod:`tinyconv.gallery` function): what
    the demos use, for the captions that compare the tour's cheaper setting with it."""
    return signature(f).parameters[name].default


def short_name(title):
    """``"SmoothGrad (n = 50, σ = 15 %)"`` -> ``"SmoothGrad"``: a map's name in a caption."""
    return title.split("  ")[0].split(" (")[0].split(":")[0]


def listing(values, fmt="{:.2f}"):
    """``{name: number}`` -> ``"gradient 0.08, guided backprop 0.88"`` (NaN as "n/a")."""
    return ", ".join(f"{sanity_plots.NAMES.get(n, n)} "
                     f"{'n/a' if v is None or not np.isfinite(v) else fmt.format(v)}"
                     for n, v in values.items())


def after_figures(model, X, y, logits, i, layer, cam_layer, ranking, say):
    """Figures 11-16, each ``(file name, heading, make, how-to, command)`` as
    :func:`tinyconv.tour.tour` lists figures 1-10; ``make()`` returns ``(Figure, caption)``.

    Parameters
    ----------
    model : the MNIST classifier; X : (N, 28, 28, 1) held-out digits, y : (N,) labels,
        logits : (N, 10) ``y_(L)`` of ``X`` (the tour's first pass), the yardstick of the
        class models in figure 12.
    i : the tour's digit (figure 6), explained by every map in figure 11 and drawn in the
        cascade grid of figure 14.
    layer : name of the deepest convolution, whose units figure 13 shows; cam_layer : the
        ReLU after it, where Grad-CAM reads its maps in figure 11.
    ranking : the tour's :class:`~tinyconv.MaxActivation` of every feature of ``layer`` over
        ``X`` (top 9 each), reused for figure 13's patches.
    say : ``f(str)``, the tour's progress lines.
    """
    digit = int(y[i])
    chosen = sanity_digits(y, i)
    sanity = {}                  # one run of the checks serves figures 14, 15 and 16

    def checks():
        if not sanity:
            say(f"  sanity checks on {len(chosen)} digits: every map of the trained model "
                "and of its randomised copies, deletion and insertion …")
            # Spearman of |map| only: the figures draw no other measure, and SSIM and HOG
            # would take longer than all the maps of the randomised models
            sanity.update(sanity_checks(model, X[chosen], y[chosen], seed=0,
                                        log=lambda line: say(f"  {line}"),
                                        metrics=[SIMILARITY]))
        return sanity

    def fig_every_map():
        result = gallery.every_map(model, X[i], target=digit, cam_layer=cam_layer)
        ink = X[i].sum(axis=-1)                                          # (H, W)
        shares = ", ".join(f"{short_name(t)} {float(ink_share(m.sum(axis=-1), ink)):.0%}"
                           for t, m in result["signed"])
        ig, cam = result["ig"], result["cam"]
        p = float(softmax(logits[i:i + 1])[0, digit])
        h, w = cam.map.shape[1:]
        return method_plots.every_map(result), (
            f"Held-out digit #{i} (figure 6's {digit}, p({digit}) = {p:.3f}) under nine maps "
            f"of its logit y_{digit}. Share of each map's |value| on the digit's own pixels "
            f"(x > 0; {float(np.mean(ink > 0)):.0%} of the image): {shares}. Integrated "
            "Gradients add up to "
            f"F(x) − F(0) = {float(ig.difference[0]):.3g} within {float(ig.gap[0]):+.2g} "
            f"(completeness). Grad-CAM at {model.names[cam.layer]} has {h}×{w} values, "
            "upsampled bilinearly. Simonyan et al. 2014; Shrikumar et al. 2017; Smilkov et "
            "al. 2017; Sundararajan et al. 2017; Springenberg et al. 2015; Selvaraju et al. "
            "2017; Zeiler & Fergus 2014, Fig. 7.")

    def fig_class_models():
        result = gallery.class_models(model, steps=CLASS_STEPS)
        images = np.stack([r.image for r in result["results"]])        # (10, H, W, C_0)
        p = softmax(model.forward(images))                             # (10, K)
        own = p[np.arange(len(images)), result["classes"]]
        named = int(np.sum(p.argmax(axis=1) == result["classes"]))
        reached = [r.history[-1] for r in result["results"]]
        typical = [np.median(logits[y == c, c]) for c in result["classes"] if np.any(y == c)]
        return method_plots.class_models(result), (
            f"Gradient ascent on each class logit y_c for {CLASS_STEPS} steps (the demo: "
            f"{demo_default(gallery.class_models)}). The model calls {named} of the 10 class "
            f"models by their own class, median p(c) = {float(np.median(own)):.3f}. Their "
            "logits reach "
            f"{min(reached):.1f} to {max(reached):.1f}; the held-out digits of each class "
            f"have a median y_c of {min(typical):.1f} to {max(typical):.1f}. Simonyan et "
            "al. 2013, §2; regularisers of Yosinski et al. 2015.")

    def fig_preferred():
        # top: all the ranking has (fewer than 9 when the tour runs on fewer digits)
        result = gallery.preferred_images(model, X, layer, n=PREFERRED_UNITS,
                                          top=ranking.indices.shape[1],
                                          steps=PREFERRED_STEPS, ranking=ranking)
        ratios = [u["preferred"].history[-1] / u["best"] for u in result["units"]]
        ks = ", ".join(str(u["k"]) for u in result["units"])
        return method_plots.preferred_images(result, layer), (
            f"The {PREFERRED_UNITS} units of {layer} (the demo: "
            f"{demo_default(gallery.preferred_images, 'n')}) with the strongest single "
            f"response on the held-out digits (features {ks}), from the MaxAct ranking of "
            "figure 3. After "
            f"{PREFERRED_STEPS} ascent steps (the demo: {demo_default(gallery.preferred_images)}"
            ") the preferred image drives the "
            f"centre unit to {min(ratios):.1f}–{max(ratios):.1f}× the strongest response "
            "of any held-out digit. The per-unit view of Yosinski et al. 2015's toolbox; "
            "Zeiler & Fergus 2014, Fig. 2.")

    def fig_cascade():
        result = checks()
        first = {m: v[SIMILARITY]["digit"]["mean"][0]
                 for m, v in result["cascade"]["methods"].items() if m not in CONTROLS}
        config, grid = result["config"], result["grid"]
        n = config["examples"]
        return sanity_plots.cascade_grid(result), (
            f"Digit #{i} (class {grid['label']}) under each map as the model is randomised "
            "from the top down. Spearman of |map| on the digit's pixels between the trained "
            f"model and the one whose logits alone are random, mean over {n} held-out digits "
            f"(#{', #'.join(map(str, chosen))}): {listing(first)}. SmoothGrad on "
            f"{config['smoothgrad_n']} copies, "
            f"Integrated Gradients in {config['ig_steps']} steps, occlusion "
            f"{config['occlusion']['size']}×{config['occlusion']['size']} at stride "
            f"{config['occlusion']['stride']}. Adebayo et al. 2018, §3.1 and Fig. 2.")

    def fig_similarity():
        result = checks()
        layers = result["cascade"]["layers"]
        last = {m: v[SIMILARITY]["digit"] for m, v in result["cascade"]["methods"].items()
                if m not in CONTROLS}
        text = ", ".join(f"{sanity_plots.NAMES.get(m, m)} {s['mean'][-1]:.2f} ± "
                         f"{s['se'][-1]:.2f}" for m, s in last.items())
        return sanity_plots.similarity_vs_depth(result, metric=SIMILARITY), (
            f"Once {layers[-1]} is random too (nothing trained is left), Spearman of |map| on "
            f"the digit, mean ± s.e. over {result['config']['examples']} digits: {text}. The "
            "bands are wide with this few digits; tinyconv sanity measures 100, and by SSIM "
            "and HOG too. Adebayo et al. 2018, §3.1.")

    def fig_deletion():
        result = checks()
        auc = {kind: {m: e["auc"]["mean"] for m, e in result["faithfulness"][kind].items()}
               for kind in ("deletion", "insertion")}
        return sanity_plots.deletion_insertion(result), (
            "Area under the mean curve of p(c) over the same digits, per map. Deletion "
            f"(lower is better): {listing(auc['deletion'], '{:.3f}')}. Insertion (higher is "
            f"better): {listing(auc['insertion'], '{:.3f}')}. Petsiuk et al. 2018, §3.2.")

    return [
        ("fig11_every_map.png", "One digit, every map", fig_every_map, HOWTO["every_map"],
         f"{COMMAND} --digit 3   (now: --digit {digit}; python demos/fig11_every_map.py "
         "draws a 3)"),
        ("fig12_class_models.png", "Class models: the image each logit prefers",
         fig_class_models, HOWTO["class_models"],
         f"python demos/fig12_class_models.py   ({demo_default(gallery.class_models)} ascent "
         "steps per class)"),
        ("fig13_preferred_images.png", f"What the top {layer} units want to see",
         fig_preferred, HOWTO["preferred_images"],
         f"python demos/fig13_preferred_images.py   ({demo_default(gallery.preferred_images)} "
         "ascent steps per unit)"),
        ("fig14_cascade.png", "Sanity check: cascading randomisation", fig_cascade,
         HOWTO["cascade"], SANITY_COMMAND),
        ("fig15_similarity.png", "Similarity to the trained model's maps against depth",
         fig_similarity, HOWTO["similarity"], SANITY_COMMAND),
        ("fig16_deletion_insertion.png", "Deletion and insertion", fig_deletion,
         HOWTO["deletion"], SANITY_COMMAND),
    ]
