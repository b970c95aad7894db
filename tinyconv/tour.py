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

import html
import sys
import time
from pathlib import Path

import numpy as np

from . import plots
from .checks import check_int
from .data import load_mnist, to_float
from .effective_rf import effective_receptive_field
from .files import atomic_write
from .layers import Conv2D, MaxPool2D, ReLU
from .max_activation import max_activating
from .occlusion import occlusion
from .plots.measures import hf_share, positive_share
from .plots.projections import rule_rows
from .plots.receptive_fields import central_share
from .pretrained import load_model, pretrained
from .projection import project_top
from .receptive_field import receptive_field, receptive_fields
from .training import predict
from .units import centre_unit, conv_layers, strongest_feature

DPI = 110
TOP = 9                 # examples per MaxAct montage (3 x 3, as in Zeiler & Fergus Fig. 2)
FEATURES = 6            # feature maps per layer in the MaxAct figure
RULE_IMAGES = 3         # images per unit in the gradient / deconvnet / guided figure
ERF_EXAMPLES = 100      # digits averaged for the effective receptive field
ERF_FEATURES = 16       # features averaged per layer (evenly spaced; one backward pass each)
OCCLUSION_SIZES = (4, 8)
RULES = ("gradient", "deconvnet", "guided")   # the columns of figure 5
INDEX = "index.html"

# --------------------------------------------------------------------------- arguments


def check_arguments(model, out_dir, digit, layer, feature, examples):
    """Validate the tour's arguments before any work; returns ``(out, digit, layer name,
    feature, examples)``. Raises ``ValueError`` / ``TypeError`` naming the argument."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir: {str(out)!r} is a file; the tour needs a directory "
                         "(it is created if missing)")
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


def check_model(model):
    """The tour needs an MNIST classifier with at least one convolution."""
    if model.input_shape != (28, 28, 1) or model.output_shapes[-1] != (10,):
        raise ValueError(f"model: expected (28, 28, 1) digits in and 10 classes out, got "
                         f"{model.input_shape} -> {model.output_shapes[-1]}")
    if not plots.conv_layers(model):
        raise ValueError("model: the tour needs a model with at least one Conv2D layer")


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
    hf = np.median([hf_share(r["maps"]) for r in rows], axis=0)
    return {rule: (float(p), float(h)) for rule, p, h in zip(rules, pos, hf, strict=True)}


def announcer(progress, stream=None):
    """``say(text)``: one line on stderr when ``progress`` is True (None: when stderr is a
    terminal, as the progress bars decide), nothing otherwise."""
    stream = stream or sys.stderr
    on = stream.isatty() if progress is None else bool(progress)

    def say(text):
        if on:
            print(text, file=stream, flush=True)
    return say


# --------------------------------------------------------------------------- writing


def write_png(fig, path, dpi=DPI):
    """Save ``fig`` as ``path`` through :func:`~tinyconv.files.atomic_write`."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


def write_index(out, entries, intro):
    """``index.html``: one section per figure, each a dict with ``name`` (the PNG),
    ``heading``, ``caption``, ``howto`` (how to read it) and ``command`` (how to re-draw it);
    links relative, images at their native size (the page scrolls, it does not shrink them).
    """
    def section(n, e):
        stem = html.escape(Path(e["name"]).stem)
        return (f'<section id="{stem}">\n'
                f'  <h2>{n}. {html.escape(e["heading"])}</h2>\n'
                f'  <p class="howto"><b>How to read this figure.</b> '
                f'{html.escape(e["howto"])}</p>\n'
                f'  <figure>\n'
                f'    <div class="scroll"><a href="{html.escape(e["name"])}">'
                f'<img src="{html.escape(e["name"])}" alt="{html.escape(e["heading"])}"></a>'
                f'</div>\n'
                f'    <figcaption>{html.escape(e["caption"])}</figcaption>\n'
                f'  </figure>\n'
                f'  <p class="redraw">Re-draw it: '
                f'<code>{html.escape(e["command"])}</code></p>\n</section>')

    sections = "\n".join(section(n, e) for n, e in enumerate(entries, 1))
    nav = "\n".join(f'  <li><a href="#{html.escape(Path(e["name"]).stem)}">{n}. '
                    f'{html.escape(e["heading"])}</a></li>' for n, e in enumerate(entries, 1))
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tinyconv tour: interpreting a CNN on MNIST</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 2rem; line-height: 1.45; color: #222; }}
  section {{ margin: 2.5rem 0; }}
  .scroll {{ overflow-x: auto; }}
  img {{ max-width: none; border: 1px solid #ddd; }}
  figure {{ margin: 0; }}
  figcaption, p {{ max-width: 48rem; }}
  .howto {{ background: #f5f5f0; padding: 0.6rem 0.8rem; border-left: 3px solid #999; }}
  nav ol {{ columns: 2; max-width: 48rem; }}
  code {{ background: #f0f0f0; padding: 0 0.3rem; }}
</style>
</head>
<body>
<h1>tinyconv tour: interpreting a CNN on MNIST</h1>
<p>{html.escape(intro)}</p>
<nav><ol>
{nav}
</ol></nav>
{sections}
</body>
</html>
"""
    path = out / INDEX
    with atomic_write(path, "w") as f:
        f.write(page)
    return path


# --------------------------------------------------------------------------- the tour


def tour(out_dir, digit=8, layer="conv2", feature=3, examples=None, progress=None, model=None):
    """Write every figure of :mod:`tinyconv.plots` and an ``index.html`` into ``out_dir``.

    Parameters
    ----------
    out_dir : directory (created if missing; an existing file is refused).
    digit : the class of figures 2 (most / least probable examples) and 6 (occlusion).
    layer, feature : the unit ``y_(layer),idx,feature`` of figures 4, 5 and 10, shown beside
        the deepest convolution's strongest map on the occluded digit. ``layer`` must have
        feature maps (a conv, ReLU or pool layer).
    examples : use only the first ``examples`` held-out digits (None: all 1,000).
    progress : progress bars and one line per figure (``[4/10] …``) on stderr (True / False;
        None: only on a terminal).
    model : a :class:`~tinyconv.Sequential` MNIST classifier; default ``pretrained("mnist")``.

    Returns
    -------
    list of ``pathlib.Path``: the ten PNGs, then ``index.html`` (written last). Prints
    nothing on stdout.
    """
    shipped = model is None
    model = pretrained("mnist") if shipped else model
    check_model(model)
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
    out.mkdir(parents=True, exist_ok=True)

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
    tour_cmd = "tinyconv tour --out DIR"
    unit_cmd = f"{tour_cmd} --layer conv3 --feature 5   (now: --layer {layer} --feature " \
               f"{feature})"

    def projected(rule, n, which=units):
        return [project_top(model, X, rankings[name], k, n, rule) for name, k in which]

    def fig_filters():
        fig = plots.filters(model, convs[0])
        W = first.params["W"][:, :, 0, :]                              # (kh, kw, C_out)
        blur = float(np.median(hf_share(np.moveaxis(W, -1, 0))))
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
    ]
    written, entries = [], []
    for n, (name, heading, make, howto, command) in enumerate(figures, 1):
        say(f"[{n}/{len(figures)}] {heading} …")
        fig, caption = make()
        written.append(write_png(fig, out / name))
        entries.append(dict(name=name, heading=heading, caption=caption,
                            howto=howto.format(digit=digit), command=command))
    intro = (f"{'The shipped MNIST model' if shipped else 'The model'} on the {len(X):,} "
             "held-out bundled digits "
             f"(accuracy {float(np.mean(p.argmax(axis=1) == y)):.1%}); the unit of figures "
             f"4 and 5: {unit_text}. Each figure is drawn by tinyconv.plots; the line under "
             "it gives the command that re-draws it with another digit or unit.")
    written.append(write_index(out, entries, intro))
    say(f"wrote {len(written) - 1} figures and {out / INDEX}")
    return written


# What each figure is for, in the lecture's notation, ending with what to see.
HOWTO = dict(
    filters=(
        "Each tile is one filter W[:, :, 0, k] of the first convolution (HWIO weights), and "
        "y_(1),idx,k = Σ W · (the 5×5 patch at idx) + b. Red weights reward ink under them, "
        "blue ones punish it, on one scale for all filters. The HF share in the caption says "
        "how far the filters are from noise (white noise ≈ 0.89, a smooth edge ≈ 0). You "
        "should see tiles with a red band beside a blue band: edge detectors, one "
        "orientation each, the clearer the lower that share."),
    extremes=(
        "The classifier's unit y_(L),c for c = {digit}, ranked over every held-out {digit}: "
        "MaxAct at the last layer. Left, the {digit}s the model is surest of (1 − p tiny); "
        "right, the least sure, misclassified ones in red with the class they were given. "
        "You should see well-formed, upright {digit}s on the left and unusual styles "
        "(slanted, broken, thick) on the right."),
    maxact=(
        "One row per convolution l, one column per feature k: the 9 digits i with the "
        "largest max_idx y_(l),idx,k, each cut to the receptive field of that idx. Compare "
        "rows: patches grow with depth. Within a column, you should see what the 9 patches "
        "share — a stroke direction at conv1, a curve or junction at conv2, a part of a "
        "digit at conv3."),
    projections=(
        "For one unit (l, k) and each of its top 9 examples, the strongest y_(l),idx,k is "
        "set to 1, every other activation of layer l to 0, and sent back with the deconvnet "
        "rule. Left, the projection inside the receptive field; right, the input patch in "
        "the same order. You should see that the red parts of the projection lie on the "
        "ink that the patches have in common."),
    rules=(
        "Each row is one example of one unit y_(l),idx,k (green box: its receptive field; "
        "cross: its centre); the three maps send the same one-hot signal back through "
        "ReLUs that pass it by the input's sign (gradient), the signal's sign (deconvnet) "
        "or both (guided), then through the same transposed convolutions, so all three can "
        "end with both signs. Compare along a row, on the row's one scale, and read the "
        "numbers: you should see guided backprop's map the least speckled (lowest HF share) "
        "and the gradient's the most, guided backprop's red lying on the strokes of the "
        "digit."),
    occlusion=(
        "A grey square is replaced by 0 at every position; each pixel of b, c and e shows "
        "(score − score with the square over it) ÷ score, averaged over the squares that "
        "cover it, on one fixed ±100 % scale. d is a post-ReLU map y_(l),idx,k ≥ 0 of the "
        "deepest convolution, f the class predicted with the square at each position. You "
        "should see red only where the square hides strokes the model needs for a {digit} — "
        "as deep a red as the drop is large, the same in every tour — and the class in f "
        "change where c is darkest."),
    fields=(
        "Unit (row, col) of layer l sees the input rows [row·S − P, row·S − P + r) and the "
        "same columns, r, S, P from the table (Araujo et al.). You should see the box grow "
        "with every convolution and jump with every pooling, until the deepest units see "
        "almost the whole digit."),
    switches=(
        "Max-pooling keeps the largest value of each 2×2 window (a → b) and records where "
        "it was (c). Unpooling (d) puts each kept value back at its switch, zeros "
        "elsewhere: the deconvnet's approximate inverse, and exactly the gradient's path. "
        "You should see that d is zero except at the red squares, which hold the values "
        "of b."),
    erf=(
        "Each image is mean_i mean_k |∂y_(l),idx,k / ∂x_i| (k over up to 16 features) for "
        "the central unit idx of "
        "layer l (Luo et al.), scaled to its maximum; the cyan box is the theoretical "
        "field. Below, the profile along the box's middle row. You should see that deeper "
        "fields fade towards the box's edges: the effective field is smaller than the "
        "theoretical one."),
    saliency=(
        "For one unit of conv2 and one of conv3, each of its 9 top examples is a pair: "
        "left, ∂y_(l),idx,k/∂x inside the receptive field (red: more ink there raises the "
        "unit); right, the input patch. You should see the red of each map follow the "
        "strokes of its patch that the 9 patches share."),
)
# --------------------------------------------------------------------------- command line


def add_tour_arguments(parser):
    """Add ``--out``, ``--digit``, ``--layer``, ``--feature``, ``--examples``, ``--model``."""
    parser.add_argument("--out", type=Path, default=Path("tinyconv-tour"), metavar="DIR",
                        help="directory for the PNGs and index.html (default: %(default)s)")
    parser.add_argument("--digit", type=int, choices=range(10), default=8, metavar="0..9",
                        help="digit class of the most/least probable examples and of the "
                             "occlusion figure (default: %(default)s)")
    parser.add_argument("--layer", default="conv2",
                        help="layer of the unit shown by the projection figures, one with "
                             "feature maps (default: %(default)s)")
    parser.add_argument("--feature", type=int, default=3,
                        help="feature map of that layer (default: %(default)s)")
    parser.add_argument("--examples", type=int, default=None, metavar="N",
                        help="use only the first N held-out digits (quicker; default: all)")
    parser.add_argument("--model", default="mnist",
                        help="a saved model (.npz), or 'mnist' for the shipped one "
                             "(default: %(default)s)")


def run_tour(args):
    """Run :func:`tour` from parsed arguments; print each file written, then the page."""
    start = time.perf_counter()
    paths = tour(args.out, digit=args.digit, layer=args.layer, feature=args.feature,
                 examples=args.examples, model=load_model(getattr(args, "model", "mnist")))
    for path in paths[:-1]:
        print(path)
    print(f"{len(paths) - 1} figures in {time.perf_counter() - start:.0f} s; "
          f"open {paths[-1]}")
    return 0
