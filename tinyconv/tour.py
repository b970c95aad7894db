"""The tour: the shipped model, the held-out digits and every figure of :mod:`tinyconv.plots`,
written as PNGs with an ``index.html`` that lays them out with a caption each.

::

    import tinyconv.tour
    paths = tinyconv.tour.tour("tinyconv-tour")        # [.../fig1_kernels.png, …, index.html]

or ``tinyconv tour --out tinyconv-tour`` from a shell. The figures follow the lecture
("Basic methods for Interpretation", "Interpretation by Inverting") and Zeiler & Fergus 2014;
each is computed by the toolkit and drawn by :mod:`tinyconv.plots` — this module only chooses
what to show, names the files and writes the page (with a "how to read this figure"
paragraph and the command that re-draws it, per figure).
"""

from pathlib import Path

import numpy as np

from . import plots
from .architectures import check_mnist_model
from .checks import check_int
from .data import load_mnist, to_float
from .folders import check_folder, staged_folder
from .gallery import ERF_FEATURES, erf_results, occlusion_results
from .layers import Conv2D, MaxPool2D, ReLU
from .max_activation import max_activating
from .measures import hf_share, positive_share
from .plots.projections import rule_rows
from .plots.receptive_fields import central_share
from .plots.writer import FigureWriter
from .pretrained import pretrained
from .progress import announcer
from .projection import project_top
from .receptive_field import receptive_fields
from .tour_after import after_figures
from .tour_page import COMMAND, DPI, HOWTO, INDEX, OUTPUT, write_index
from .training import predict
from .units import centre_unit, conv_layers, strongest_feature

TOP = 9                 # examples per MaxAct montage (3 x 3, as in Zeiler & Fergus Fig. 2)
FEATURES = 6            # feature maps per layer in the MaxAct figure
RULE_IMAGES = 3         # images per unit in the gradient / deconvnet / guided figure
ERF_EXAMPLES = 100      # digits averaged for the effective receptive field
OCCLUSION_SIZES = (4, 8)
RULES = ("gradient", "deconvnet", "guided")   # the columns of figure 5


# --------------------------------------------------------------------------- arguments


def check_arguments(model, out_dir, digit, layer, feature, examples):
    """Validate the tour's arguments before any work; returns ``(out, digit, layer name,
    feature, examples)``. Raises ``ValueError`` / ``TypeError`` naming the argument; an
    ``out_dir`` holding files the tour did not write is refused
    (:func:`tinyconv.folders.check_folder`)."""
    out = Path(out_dir)
    check_folder(out, **OUTPUT)
    if isinstance(digit, bool) or not isinstance(digit, (int, np.integer)) \
            or not 0 <= digit <= 9:
        raise ValueError(f"digit: expected a digit class 0..9, got {digit!r}")
    l = model.index(layer)            # ValueError "layer: expected one of [...]" if unknown
    shape = model.output_shapes[l]
    if l == 0 or len(shape) != 3:
        spatial = [n for n, s in zip(model.names[1:], model.output_shapes[1:], strict=True)
                   if len(s) == 3]
        raise ValueError(f"layer: expected a layer with feature maps ({', '.join(spatial)}), "
                         f"got {model.names[l]!r} whose output is {shape}")
    C = shape[-1]
    if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) \
            or not 0 <= feature < C:
        raise ValueError(f"feature: expected a feature index in [0, {C}) of layer "
                         f"{model.names[l]!r}, got {feature!r}")
    if examples is not None:
        examples = check_int(examples, "examples", minimum=1)
    return out, int(digit), model.names[l], int(feature), examples


# --------------------------------------------------------------------------- choices


def example_of(model, X, labels, digit):
    """Index of the first example of class ``digit`` that ``model`` classifies correctly
    (the first of the class if none is); ``ValueError`` if the class is absent."""
    where = np.flatnonzero(np.asarray(labels) == digit)
    if len(where) == 0:
        raise ValueError(f"digit: none of the {len(labels)} labels is {digit}")
    right = where[predict(model, X[where]).argmax(axis=1) == digit]
    return int(right[0] if len(right) else where[0])


def relu_after(model, layer):
    """The name of the ReLU that rectifies ``layer``'s output (``layer`` itself if it is a
    ReLU): where a "feature map" ``y_(l),idx,k >= 0`` is read. ``ValueError`` if none does."""
    l = model.index(layer)
    if isinstance(model.layers[l - 1], ReLU):
        return model.names[l]
    if l < len(model.layers) and isinstance(model.layers[l], ReLU):
        return model.names[l + 1]
    raise ValueError(f"layer: no ReLU follows {model.names[l]!r}")


def distinctive(ranking, n):
    """The ``n`` features of ``ranking`` with the highest mean top-``TOP`` score (the maps
    whose best examples respond most), best first -> ``(features, scores)``."""
    scores = ranking.values.mean(axis=1)                                  # (K,)
    order = np.argsort(-scores, kind="stable")[:n]
    return ranking.features[order], scores[order]


def saliency_units(convs, most_distinctive, k_deep, layer, feature):
    """The units ``(name, k)`` of the saliency figure: one of each of the last two
    convolutions ``convs`` — the tour's own ``(layer, feature)`` where ``layer`` is one of
    them, else the deepest one's map ``k_deep`` (the occluded digit's strongest) and the
    other's most distinctive map (``most_distinctive``: one ``k`` per convolution)."""
    pick = {n: int(k) for n, k in zip(convs, most_distinctive, strict=True)}
    pick = {n: pick[n] for n in convs[-2:]}
    pick[convs[-1]] = int(k_deep)
    if layer in pick:
        pick[layer] = int(feature)
    return list(pick.items())


def rule_summary(model, X, results):
    """Median share of positive pixels and median HF share per rule over the rows of
    :func:`tinyconv.plots.compare_rules` -> ``{rule: (positive, hf)}``."""
    rows = rule_rows(model, X, results)
    rules = [r.rule for r in results[0]]
    pos = np.median([positive_share(r["maps"]) for r in rows], axis=0)
    hf = np.nanmedian([hf_share(r["maps"]) for r in rows], axis=0)
    return {rule: (float(p), float(h)) for rule, p, h in zip(rules, pos, hf, strict=True)}


# --------------------------------------------------------------------------- the tour


def tour(out_dir, digit=8, layer="conv2", feature=3, examples=None, progress=None, model=None):
    """Write every figure of :mod:`tinyconv.plots` and an ``index.html`` into ``out_dir``:
    figures 1-10 follow the lecture, 11-16 (:mod:`tinyconv.tour_after`) the methods after it.

    Parameters
    ----------
    out_dir : directory (created if missing). It is replaced whole: the tour fills a fresh
        hidden folder beside it and swaps it in at the end (:mod:`tinyconv.folders`), so a
        tour killed or failing midway leaves the older tour (or nothing) in place, never old
        captions under new figures, and two tours into one folder leave one whole tour.
        Refused before any work: a file, or a folder holding files the tour did not write
        (your own ``index.html``, notes; an empty folder is fine). The folder's record of
        what the tour wrote is the hidden ``.tinyconv.json``.
    digit : the class of figures 2 (most / least probable examples), 6 (occlusion), 11, 14.
    layer, feature : the unit ``y_(layer),idx,feature`` of figures 4, 5 and 10, shown beside
        the deepest convolution's strongest map on the occluded digit. ``layer`` must have
        feature maps (a conv, ReLU or pool layer).
    examples : use only the first ``examples`` held-out digits (None: all 1,000).
    progress : progress bars and one line per figure (``[4/16] …``) on stderr (True / False;
        None: only on a terminal).
    model : a :class:`~tinyconv.Sequential` MNIST classifier; default ``pretrained("mnist")``.

    Returns
    -------
    list of ``pathlib.Path`` in ``out_dir``: the PNGs, one per figure, then ``index.html``
    (written last). Prints nothing on stdout.
    """
    shipped = model is None
    model = pretrained("mnist") if shipped else model
    check_mnist_model(model, need_conv=True)
    out, digit, layer, feature, examples = check_arguments(model, out_dir, digit, layer,
                                                           feature, examples)
    say = announcer(progress)
    images, labels = load_mnist("bundled-test")
    X, y = to_float(images), labels
    if examples is not None:
        X, y = X[:examples], y[:examples]
    if not np.any(y == digit):
        raise ValueError(f"examples: the first {len(y)} held-out digits include no {digit}; "
                         "use more examples or another digit")

    # choices shared by several figures: the tour decides every unit the plots draw
    say(f"classifying the {len(X):,} held-out digits (the first pass compiles the numba "
        "kernels) …")
    p = predict(model, X)
    i = example_of(model, X, y, digit)
    x = X[i]
    convs = [model.names[l] for l in conv_layers(model)]
    deepest = convs[-1]
    deepest_map = relu_after(model, deepest)       # feature maps are read after the ReLU
    k_deep = int(strongest_feature(model.forward(x[None], upto=deepest_map))[0])
    units = list(dict.fromkeys([(layer, feature), (deepest, k_deep)]))
    # one MaxAct ranking per layer (of every feature) serves figures 3, 4, 5 and 10
    say(f"ranking the {len(X):,} digits by every feature map of {', '.join(convs)} "
        "(MaxAct) …")
    rankings = {name: max_activating(model, X, name, k=None, top=TOP, progress=progress)
                for name in convs}
    for name, k in units:
        if name not in rankings:
            rankings[name] = max_activating(model, X, name, k=k, top=TOP, progress=progress)
    chosen = [distinctive(rankings[n], FEATURES) for n in convs]
    montages = [rankings[n].select(ks) for n, (ks, _) in zip(convs, chosen, strict=True)]
    salient = saliency_units(convs, [int(ks[0]) for ks, _ in chosen], k_deep, layer, feature)
    # figure 2: one full ranking of the digit's examples gives both ends
    mine = y == digit
    say(f"ranking the {int(mine.sum())} {digit}s by p({digit}) …")
    extremes = max_activating(model, X[mine], len(model.layers), k=digit, top=None,
                              progress=progress)
    logits = model.forward(X[mine])
    wrong = int(np.sum(mine & (p.argmax(axis=1) != digit)))
    n_digit = int(np.sum(mine))
    unit_text = " and ".join(f"{n} feature {k}" for n, k in units)
    n_erf = min(ERF_EXAMPLES, len(X))
    first = model.layers[model.index(convs[0]) - 1]
    fields = receptive_fields(model)
    outlined = [(l, centre_unit(model, l)) for l, layer_ in enumerate(model.layers, 1)
                if isinstance(layer_, (Conv2D, MaxPool2D))]
    tour_cmd = COMMAND
    unit_cmd = f"{tour_cmd} --layer conv3 --feature 5   (now: --layer {layer} --feature " \
               f"{feature})"

    def projected(rule, n, which=units):
        return [project_top(model, X, rankings[name], k, n, rule) for name, k in which]

    def fig_filters():
        fig = plots.filters(model, convs[0])
        W = first.params["W"][:, :, 0, :]                              # (kh, kw, C_out)
        blur = float(np.nanmedian(hf_share(np.moveaxis(W, -1, 0))))
        return fig, (
            f"The {first.out_channels} filters of {convs[0]} ({first.kernel[0]}×"
            f"{first.kernel[1]}), on one colour scale centred at 0 "
            f"(±{float(np.abs(W).max()):.2g}): a red weight adds the pixel under it to the "
            "unit's response, a blue one subtracts it. Median HF share (the "
            f"share of a filter's energy that a 3×3 box blur removes; white noise ≈ 0.89, a "
            f"smooth edge ≈ 0): {blur:.2f}. Zeiler & Fergus 2014, Fig. 2 (layer 1).")

    def fig_extremes():
        fig = plots.extreme_examples(X[mine], extremes, p[mine].argmax(axis=1),
                                     logits=logits)
        return fig, (
            f"All {n_digit} held-out {digit}s ranked by the model's probability p of "
            f"'{digit}' (max_activating at the classifier head, descending and ascending); "
            "near p = 1 each title gives 1 − p, the distance from certainty, in scientific "
            f"notation. {wrong} of them are misclassified (red, with the predicted class). "
            f"The lecture asks: do we have a problem with certain {digit}s?")

    def fig_maxact():
        fig = plots.maxact_montages(model, X, montages, TOP,
                                    scores=[s for _, s in chosen], score_name="mean top-9")
        return fig, (
            f"For each convolution, the {FEATURES} feature maps whose {TOP} best examples "
            "respond most (highest mean of the top-9 strongest responses, printed as 'mean "
            f"top-9'), each shown as its {TOP} held-out digits (MaxAct) cropped to the "
            "receptive field of the unit that responded. Zeiler & Fergus 2014, Fig. 2 "
            "(right).")

    def fig_projections():
        results = projected("deconvnet", TOP)
        fig = plots.projections(model, X, results)
        return fig, (
            f"For {unit_text} (the map of {deepest} that responds most to the {digit} of "
            "figure 6): the top examples' strongest unit sent back to the input with the "
            "deconvnet (transposed convolutions, unpooling through the switches, rectified "
            "signal), cropped to the receptive field, each ÷ its own max |value| (left), "
            "beside the input patch (right). HF share: the share of a map's energy a 3×3 "
            "blur removes (≈ 0.89 for pixel noise). Zeiler & Fergus 2014, §2.1.")

    def fig_rules():
        results = list(zip(*(projected(rule, RULE_IMAGES) for rule in RULES), strict=True))
        fig = plots.compare_rules(model, X, results)
        stats = rule_summary(model, X, results)
        numbers = "; ".join(f"{plots.RULE_NAMES[r]} {pos:.0%} positive, HF {hf:.2f}"
                            for r, (pos, hf) in stats.items())
        return fig, (
            "The same units and images, sent back three ways and cropped to the unit's "
            "receptive field: the gradient (the ReLU passes the signal where its forward "
            "input was positive), the deconvnet (where the signal itself is positive) and "
            "guided backprop (both). Each row shares one symmetric scale. Medians over the "
            f"{len(units) * RULE_IMAGES} rows: {numbers}. Only the ReLU rule differs "
            "(Springenberg et al. 2015, Fig. 1).")

    def fig_occlusion():
        results = occlusion_results(model, x, digit, OCCLUSION_SIZES, deepest_map, k_deep,
                                    progress)
        fig = plots.occlusion_figure(x, digit, **results)
        drop = float(np.nanmax(results["sweeps"][-1].pixels))
        return fig, (
            f"Held-out digit #{i}, the first {digit} the model classifies correctly. A square "
            "of 0s (the background) is slid over it one pixel at a time; red marks where "
            f"hiding the digit lowers p({digit}) (b, c: squares of {OCCLUSION_SIZES[0]} and "
            f"{OCCLUSION_SIZES[1]} px; largest drop with {OCCLUSION_SIZES[1]} px: {drop:.0%}) "
            f"or the total Σ_idx of {deepest_map} map {k_deep} (d: the post-ReLU map with the "
            "largest total on this digit; e). b, c and e share one fixed scale, −100 % (blue) "
            "to +100 % (red). (f) the most probable class with the square at each position, "
            "one colour per class (legend). Zeiler & Fergus 2014, Fig. 7.")

    def fig_fields():
        return plots.receptive_field_growth(x, fields, outlined), (
            "The input pixels that the central unit of each convolution and pooling layer can "
            "see, and the size r, jump S and padding P of every layer's field, computed from "
            "the kernels, strides and paddings alone (Araujo et al., Distill 2019).")

    def fig_switches():
        return plots.pooling_switches(), (
            "A worked example: 2×2 max-pooling keeps the largest value of each window and "
            "records in its switches where it was (c, a plain table of coordinates); "
            "unpooling — the deconvnet's inverse of pooling, and the gradient of max-pooling "
            "— puts each value back at its switch and zeros elsewhere. Zeiler & Fergus "
            "2014, §2.1 and Fig. 1.")

    def fig_erf():
        say(f"  averaging |gradient| of the central units over {n_erf} digits and up to "
            f"{ERF_FEATURES} features per layer (one backward pass per feature) …")
        erfs = erf_results(model, X[:n_erf], convs)
        fig = plots.effective_receptive_fields(fields, erfs, n_erf)
        shares = ", ".join(
            "{} {:.0%} (uniform: {:.0%})".format(
                model.names[l], *central_share(e, fields[l].box(*c, clip=False))[:2])
            for l, c, _, e in erfs)
        return fig, (
            f"The mean absolute gradient of the central unit of each convolution over {n_erf} "
            f"held-out digits and over {ERF_FEATURES} evenly spaced features of each layer "
            "(all of conv1's), as Luo et al. average over units rather than pick one, "
            "against the theoretical box of figure 7. For conv1 it is the mean |filter|: no "
            "nonlinearity lies between the unit and the pixels, so nothing concentrates it. "
            "Deeper, the gradient concentrates in the middle of the field. Share of the mean "
            f"|gradient| in the central part of the box (a quarter of each side cut off): "
            f"{shares}. "
            "(Luo et al., 'Understanding the Effective Receptive Field in Deep CNNs', NeurIPS "
            "2016.)")

    def fig_saliency():
        results = projected("gradient", TOP, salient)
        fig = plots.saliency_patches(model, X, results)
        text = " and ".join(f"{n} feature {k}" for n, k in salient)
        return fig, (
            f"For {text}: the {TOP} held-out digits whose strongest unit y_(l),idx,k is "
            "largest (MaxAct), each as the unit's sensitivity map ∂y_(l),idx,k/∂x (the "
            "gradient) inside its receptive field, beside the input patch under that field. "
            "The maps of one unit share one symmetric scale. The lecture's 'Saliency Maps "
            "and Corresponding Patches'; Zeiler & Fergus 2014, Fig. 2; Simonyan et al. 2014.")

    figures = [
        ("fig1_kernels.png", "First-layer filters", fig_filters, HOWTO["filters"],
         "python demos/fig1_kernels.py"),
        (f"fig2_extreme_{digit}s.png", f"Maximally and minimally activating {digit}s",
         fig_extremes, HOWTO["extremes"], f"{tour_cmd} --digit 3   (now: --digit {digit})"),
        ("fig3_maxact.png", "MaxAct: what each feature map responds to", fig_maxact,
         HOWTO["maxact"], "python demos/fig3_maxact.py"),
        ("fig4_projections.png", "Deconvnet projections and their patches", fig_projections,
         HOWTO["projections"], unit_cmd),
        ("fig5_rules.png", "Gradient, deconvnet and guided backprop", fig_rules,
         HOWTO["rules"], unit_cmd),
        (f"fig6_occlusion_{digit}.png", f"Occlusion of {'an' if digit == 8 else 'a'} {digit}",
         fig_occlusion,
         HOWTO["occlusion"], f"{tour_cmd} --digit 3   (now: --digit {digit})"),
        ("fig7_receptive_fields.png", "Receptive fields grow with depth", fig_fields,
         HOWTO["fields"], f"{tour_cmd} --digit 3   (the digit drawn under the boxes)"),
        ("fig8_switches.png", "Max-pooling switches and unpooling", fig_switches,
         HOWTO["switches"], "python demos/fig8_switches.py"),
        ("fig9_effective_rf.png", "Effective vs theoretical receptive field", fig_erf,
         HOWTO["erf"], "python demos/fig9_effective_rf.py"),
        ("fig10_saliency.png", "Saliency maps and corresponding patches", fig_saliency,
         HOWTO["saliency"], unit_cmd),
        *after_figures(model, X, y, p, i, deepest, deepest_map, rankings[deepest], say),
    ]
    written, entries = [], []
    with staged_folder(out, **OUTPUT) as stage:   # out is replaced whole, at the end
        # figure n is drawn to PNG in a second process while figure n + 1 is computed
        with FigureWriter() as writer:
            for n, (name, heading, make, howto, command) in enumerate(figures, 1):
                say(f"[{n}/{len(figures)}] {heading} …")
                fig, caption = make()
                writer.write(fig, stage / name, DPI)
                written.append(out / name)
                entries.append(dict(name=name, heading=heading, caption=caption,
                                    howto=howto.format(digit=digit), command=command))
        intro = (f"{'The shipped MNIST model' if shipped else 'The model'} on the {len(X):,} "
                 "held-out bundled digits "
                 f"(accuracy {float(np.mean(p.argmax(axis=1) == y)):.1%}); the unit of "
                 f"figures 4 and 5: {unit_text}. Each figure is drawn by tinyconv.plots; the "
                 "line under it gives the command that re-draws it with another digit or unit.")
        write_index(stage.folder, entries, intro)
        written.append(out / INDEX)
    say(f"wrote {len(written) - 1} figures and {out / INDEX}")
    return written
