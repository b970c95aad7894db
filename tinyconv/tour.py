"""The tour: the shipped model, the held-out digits and every figure of :mod:`tinyconv.plots`,
written as PNGs with an ``index.html`` that lays them out with a caption each.

::

    import tinyconv.tour
    paths = tinyconv.tour.tour("tinyconv-tour")        # [.../fig1_kernels.png, …, index.html]

or ``tinyconv tour --out tinyconv-tour`` from a shell. The figures follow the lecture
("Basic methods for Interpretation", "Interpretation by Inverting") and Zeiler & Fergus 2014;
each is computed by the toolkit and drawn by :mod:`tinyconv.plots` — this module only chooses
what to show, names the files and writes the page.
"""

import html
from pathlib import Path

import numpy as np

from . import plots
from .architectures import check_mnist_model
from .checks import check_int
from .data import load_mnist, to_float
from .effective_rf import effective_receptive_field
from .files import atomic_write
from .layers import Conv2D, MaxPool2D
from .max_activation import max_activating
from .occlusion import occlusion
from .pretrained import pretrained
from .projection import project_top
from .receptive_field import receptive_field, receptive_fields
from .training import predict
from .units import centre_unit, conv_layers, strongest_feature, strongest_feature_at

DPI = 110
TOP = 9                 # examples per MaxAct montage (3 x 3, as in Zeiler & Fergus Fig. 2)
FEATURES = 6            # feature maps per layer in the MaxAct figure
RULE_IMAGES = 3         # images per unit in the gradient / deconvnet / guided figure
ERF_EXAMPLES = 500      # digits averaged for the effective receptive field
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


# --------------------------------------------------------------------------- choices


def example_of(model, X, labels, digit):
    """Index of the first example of class ``digit`` that ``model`` classifies correctly
    (the first of the class if none is); ``ValueError`` if the class is absent."""
    where = np.flatnonzero(np.asarray(labels) == digit)
    if len(where) == 0:
        raise ValueError(f"digit: none of the {len(labels)} labels is {digit}")
    right = where[predict(model, X[where]).argmax(axis=1) == digit]
    return int(right[0] if len(right) else where[0])


def occlusion_results(model, x, label, sizes, layer, k, progress=None):
    """What :func:`tinyconv.plots.occlusion_figure` draws for image ``x`` (H, W, C_0): the
    occlusion of ``p(label)`` for each of the two ``sizes``, of map ``k`` of ``layer`` and of
    the argmax class with the larger square, the map ``y_(layer),idx,k`` and its field."""
    sweeps = [occlusion(model, x, label, s, relative=True, progress=progress) for s in sizes]
    feature = occlusion(model, x, (layer, k), sizes[-1], relative=True, progress=progress)
    argmax = occlusion(model, x, lambda y: y.argmax(axis=1), sizes[-1], progress=progress)
    fmap = model.forward(x[None], upto=layer)[0, :, :, k]                 # (H_l, W_l)
    return dict(sweeps=sweeps, feature=feature, argmax=argmax, fmap=fmap,
                field=receptive_field(model, layer), k=k)


def erf_results(model, X, layers):
    """``(l, centre, k, erf)`` per layer for :func:`tinyconv.plots.effective_receptive_fields`:
    the centre unit, the feature most active there on average over ``X``, and the unit's
    :func:`~tinyconv.effective_receptive_field`."""
    results = []
    for layer in layers:
        l = model.index(layer)
        centre = centre_unit(model, l)
        k = strongest_feature_at(model.forward(X, upto=l), centre)
        results.append((l, centre, k, effective_receptive_field(model, X, l, k, centre)))
    return results


# --------------------------------------------------------------------------- writing


def write_png(fig, path, dpi=DPI):
    """Save ``fig`` as ``path`` through :func:`~tinyconv.files.atomic_write`."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


def write_index(out, entries, intro):
    """``index.html``: one section per figure ``(file, heading, caption)``, links relative."""
    sections = "\n".join(
        f'<section id="{html.escape(Path(name).stem)}">\n'
        f"  <h2>{n}. {html.escape(heading)}</h2>\n"
        f"  <figure>\n"
        f'    <a href="{html.escape(name)}"><img src="{html.escape(name)}" '
        f'alt="{html.escape(heading)}"></a>\n'
        f"    <figcaption>{html.escape(caption)}</figcaption>\n"
        f"  </figure>\n</section>"
        for n, (name, heading, caption) in enumerate(entries, 1))
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tinyconv tour: interpreting a CNN on MNIST</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
         padding: 0 1rem; line-height: 1.45; color: #222; }}
  section {{ margin: 2.5rem 0; }}
  img {{ max-width: 100%; border: 1px solid #ddd; }}
  figure {{ margin: 0; }}
  figcaption, p {{ max-width: 48rem; }}
  nav a {{ margin-right: 0.8rem; }}
</style>
</head>
<body>
<h1>tinyconv tour: interpreting a CNN on MNIST</h1>
<p>{html.escape(intro)}</p>
<nav>{" ".join(f'<a href="#{html.escape(Path(name).stem)}">{n}</a>'
              for n, (name, _, _) in enumerate(entries, 1))}</nav>
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
    layer, feature : the unit ``y_(layer),idx,feature`` of figures 4 and 5, shown beside the
        deepest convolution's strongest map on the occluded digit. ``layer`` must have
        feature maps (a conv, ReLU or pool layer).
    examples : use only the first ``examples`` held-out digits (None: all 1,000).
    progress : progress bars on stderr (True / False; None: only on a terminal).
    model : a :class:`~tinyconv.Sequential` MNIST classifier; default ``pretrained("mnist")``.

    Returns
    -------
    list of ``pathlib.Path``: the nine PNGs, then ``index.html`` (written last). Prints nothing.
    """
    shipped = model is None
    model = pretrained("mnist") if shipped else model
    check_mnist_model(model, need_conv=True)
    out, digit, layer, feature, examples = check_arguments(model, out_dir, digit, layer,
                                                           feature, examples)
    images, labels = load_mnist("bundled-test")
    X, y = to_float(images), labels
    if examples is not None:
        X, y = X[:examples], y[:examples]
    if not np.any(y == digit):
        raise ValueError(f"examples: the first {len(y)} held-out digits include no {digit}; "
                         "use more examples or another digit")
    out.mkdir(parents=True, exist_ok=True)

    # choices shared by several figures: the tour decides every unit the plots draw
    i = example_of(model, X, y, digit)
    x = X[i]
    convs = [model.names[l] for l in conv_layers(model)]
    deepest = convs[-1]
    k_deep = int(strongest_feature(model.forward(x[None], upto=deepest))[0])
    units = list(dict.fromkeys([(layer, feature), (deepest, k_deep)]))
    # one MaxAct ranking per layer serves figures 3, 4 and 5
    rankings = {}
    for name in dict.fromkeys(convs + [u[0] for u in units]):
        C = model.output_shapes[model.index(name)][-1]
        ks = sorted(set(range(min(FEATURES, C))) | {k for n, k in units if n == name})
        rankings[name] = max_activating(model, X, name, k=ks, top=TOP, progress=progress)
    montages = [rankings[n].select(range(min(FEATURES, len(rankings[n].features))))
                for n in convs]
    # figure 2: one full ranking of the digit's examples gives both ends
    mine = y == digit
    p = predict(model, X)
    extremes = max_activating(model, X[mine], len(model.layers), k=digit, top=None,
                              progress=progress)
    wrong = int(np.sum(mine & (p.argmax(axis=1) != digit)))
    n_digit = int(np.sum(mine))
    unit_text = " and ".join(f"{n} feature {k}" for n, k in units)
    n_erf = min(ERF_EXAMPLES, len(X))
    first = model.layers[model.index(convs[0]) - 1]
    fields = receptive_fields(model)
    outlined = [(l, centre_unit(model, l)) for l, layer_ in enumerate(model.layers, 1)
                if isinstance(layer_, (Conv2D, MaxPool2D))]

    def projected(rule, n):
        return [project_top(model, X, rankings[name], k, n, rule) for name, k in units]

    figures = [
        ("fig1_kernels.png", "First-layer filters",
         lambda: plots.filters(model, convs[0]),
         f"The {first.out_channels} filters of {convs[0]} "
         f"({first.kernel[0]}×{first.kernel[1]}), on one colour scale centred at 0: a red "
         "weight adds the pixel under it to the unit's response, a blue one subtracts it. "
         "Compare each filter with the conv1 row of figure 3: the patches that drive it "
         "hardest. Zeiler & Fergus 2014, Fig. 2 (layer 1)."),
        (f"fig2_extreme_{digit}s.png", f"Maximally and minimally activating {digit}s",
         lambda: plots.extreme_examples(X[mine], extremes, p[mine].argmax(axis=1)),
         f"All {n_digit} held-out {digit}s ranked by the model's probability of '{digit}' "
         f"(max_activating at the classifier head, descending and ascending). {wrong} of "
         f"them are misclassified (red, with the predicted class). The lecture asks: do we "
         f"have a problem with certain {digit}s? The least probable ones show which "
         "writing styles the model has not learned."),
        ("fig3_maxact.png", "MaxAct: what each feature map responds to",
         lambda: plots.maxact_montages(model, X, montages, TOP),
         f"For the first {FEATURES} feature maps of each convolution, the {TOP} held-out "
         "digits whose strongest response in the map is largest (MaxAct), each cropped to "
         "the receptive field of the unit that responded. Deeper units see larger patches "
         "and respond to larger structures: stroke pieces, then stroke combinations, then "
         "parts of digits. Zeiler & Fergus 2014, Fig. 2 (right)."),
        ("fig4_projections.png", "Deconvnet projections and their patches",
         lambda: plots.projections(model, X, projected("deconvnet", TOP)),
         f"For {unit_text} (the map of {deepest} that responds most to the {digit} of "
         "figure 6): the top examples' strongest unit sent back to the input with the "
         "deconvnet (transposed convolutions, unpooling through the switches, rectified "
         "signal), cropped to the receptive field (left), beside the input patch (right). "
         "The projection shows which pixels of the patch the unit used. The lecture's "
         "'saliency maps and corresponding patches'; Zeiler & Fergus 2014, §2.1."),
        ("fig5_rules.png", "Gradient, deconvnet and guided backprop",
         lambda: plots.compare_rules(model, X, list(zip(
             *(projected(rule, RULE_IMAGES) for rule in RULES), strict=True))),
         "The same units and images, sent back three ways: the gradient (the ReLU passes "
         "the signal where its input was positive), the deconvnet (where the signal "
         "itself is positive) and guided backprop (both). Only the ReLU rule differs; "
         "convolutions and max-pooling go back the same way in all three (Springenberg et "
         "al. 2015, Fig. 1)."),
        (f"fig6_occlusion_{digit}.png", f"Occlusion of a {digit}",
         lambda: plots.occlusion_figure(x, digit, **occlusion_results(
             model, x, digit, OCCLUSION_SIZES, deepest, k_deep, progress)),
         f"Held-out digit #{i}, the first {digit} the model classifies correctly. A square "
         "of 0s (the background) is slid over it one pixel at a time; red marks where "
         f"hiding the digit lowers p({digit}) (b, c, squares of {OCCLUSION_SIZES[0]} and "
         f"{OCCLUSION_SIZES[1]} px) or the total activation of {deepest} map {k_deep}, the "
         "map that responds most to this digit (d, e); (f) shows the most probable class "
         "with the square at each position. Zeiler & Fergus 2014, Fig. 7."),
        ("fig7_receptive_fields.png", "Receptive fields grow with depth",
         lambda: plots.receptive_field_growth(x, fields, outlined),
         "The input pixels that the central unit of each convolution and pooling layer can "
         "see, and the size r, jump S and padding P of every layer's field, computed from "
         "the kernels, strides and paddings alone (Araujo et al., Distill 2019). Fields of "
         "deep units reach into the zero padding around the image."),
        ("fig8_switches.png", "Max-pooling switches and unpooling",
         lambda: plots.pooling_switches(),
         "A worked example: 2×2 max-pooling keeps the largest value of each window and "
         "records in its switches where it was; unpooling — the deconvnet's inverse of "
         "pooling, and the gradient of max-pooling — puts each value back at its switch "
         "and zeros elsewhere. Zeiler & Fergus 2014, §2.1 and Fig. 1."),
        ("fig9_effective_rf.png", "Effective vs theoretical receptive field",
         lambda: plots.effective_receptive_fields(fields, erf_results(model, X[:n_erf], convs),
                                                  n_erf),
         f"The mean absolute gradient of the central unit of each convolution over {n_erf} "
         "held-out digits, against the theoretical box of figure 7: the pixels near the "
         "middle of the field matter most, those near its edge hardly at all (Luo et al., "
         "'Understanding the Effective Receptive Field in Deep CNNs', NeurIPS 2016)."),
    ]
    written, entries = [], []
    for name, heading, make, caption in figures:
        written.append(write_png(make(), out / name))
        entries.append((name, heading, caption))
    intro = (f"{'The shipped MNIST model' if shipped else 'The model'} on the {len(X):,} "
             "held-out bundled digits "
             f"(accuracy {float(np.mean(p.argmax(axis=1) == y)):.1%}); the unit of figures "
             f"4 and 5: {unit_text}. Each figure is drawn by tinyconv.plots and can be "
             "rebuilt alone by the script of the same number in demos/.")
    written.append(write_index(out, entries, intro))
    return written
