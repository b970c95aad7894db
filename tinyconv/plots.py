"""Figures for the lecture's techniques; every function returns a matplotlib ``Figure``.

These are recipes: each one calls the toolkit (:func:`~tinyconv.max_activating`,
:func:`~tinyconv.project`, :func:`~tinyconv.occlusion`, :func:`~tinyconv.receptive_field`,
:class:`~tinyconv.MaxPool2D`) and draws what comes back; no technique is re-implemented here.
Figures are built as ``matplotlib.figure.Figure`` objects, without pyplot, so importing this
module selects no backend and keeps no global state: save with ``fig.savefig("f.png")``, or
let a notebook display the returned figure.

==========================================  ==============================================
function                                    shows
==========================================  ==============================================
:func:`filters`                             first-layer filters (Zeiler & Fergus, Fig. 2)
:func:`extreme_examples`                    maximally / minimally activating 8s
:func:`maxact_montages`                     ``MaxAct_(l),k`` patches (Z&F Fig. 2, right)
:func:`projections`                         deconvnet projections beside their patches
:func:`compare_rules`                       gradient vs deconvnet vs guided backprop
:func:`occlusion_figure`                    occlusion sensitivity (Z&F Fig. 7)
:func:`receptive_field_growth`              the receptive field of every layer
:func:`pooling_switches`                    max-pooling switches and unpooling (Z&F §2.1)
:func:`effective_receptive_fields`          effective vs theoretical field (Luo et al.)
==========================================  ==============================================

Colour conventions: signed values use a diverging map centred at 0 (``RdBu_r``: red
positive, blue negative, white 0); images of digits are ink on paper (``gray_r``).
"""

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .layers import Conv2D, MaxPool2D
from .max_activation import max_activating
from .occlusion import occlusion
from .projection import project
from .receptive_field import receptive_field, receptive_fields
from .training import predict

DIVERGING = "RdBu_r"
INK = mpl.colormaps["gray_r"].with_extremes(bad="white")
GAP = "#6f9fd8"   # the lines between the tiles of a mosaic
FIELD_COLOURS = ("#e41a1c", "#ff7f00", "#4daf4a", "#377eb8", "#984ea3", "#a65628", "#f781bf")
RULE_NAMES = {"gradient": "gradient", "deconvnet": "deconvnet", "guided": "guided backprop"}


# --------------------------------------------------------------------------- small helpers


def conv_layers(model):
    """Names of the model's :class:`~tinyconv.Conv2D` layers, first to deepest."""
    return [layer.name for layer in model.layers if isinstance(layer, Conv2D)]


def strongest_feature(model, x, layer):
    """``argmax_k sum_idx y_(l),idx,k`` for one image ``x`` of shape ``(H, W, C_0)``: the
    feature map with the largest total activation (Zeiler & Fergus 2014, §4.2)."""
    y = model.forward(x[None], upto=layer)[0]                   # (H_l, W_l, C_l)
    return int(y.reshape(-1, y.shape[-1]).sum(axis=0).argmax())


def example_of(model, X, labels, digit):
    """Index of the first example of class ``digit`` that ``model`` classifies correctly
    (the first of the class if none is); ``ValueError`` if the class is absent."""
    where = np.flatnonzero(np.asarray(labels) == digit)
    if len(where) == 0:
        raise ValueError(f"digit: none of the {len(labels)} labels is {digit}")
    right = where[predict(model, X[where]).argmax(axis=1) == digit]
    return int(right[0] if len(right) else where[0])


def centre_unit(model, layer):
    """``(row, col) = (H_l // 2, W_l // 2)``, the central unit of a spatial layer."""
    H_l, W_l = model.output_shapes[model.index(layer)][:2]
    return H_l // 2, W_l // 2


def _show_tiles(ax, images, cols=3, **imshow):
    """Draw ``(n, h, w)`` images as one ``cols``-wide mosaic on ``ax``, separated by thin
    lines (drawn in points, so equally thin for 5×5 and 24×24 patches)."""
    n, h, w = images.shape
    rows = -(-n // cols)
    mosaic = np.full((rows * h, cols * w), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        mosaic[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    im = ax.imshow(mosaic, interpolation="nearest", **imshow)
    for r in range(1, rows):
        ax.axhline(r * h - 0.5, color=GAP, linewidth=1.5)
    for c in range(1, cols):
        ax.axvline(c * w - 0.5, color=GAP, linewidth=1.5)
    _bare(ax)
    return im


def _per_example_scale(a):
    """Divide each ``a[i]`` by its own ``max |a[i]|`` (left at 0 when it is all zeros)."""
    m = np.abs(a).reshape(len(a), -1).max(axis=1).reshape(-1, *([1] * (a.ndim - 1)))
    return a / np.where(m > 0, m, 1)


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def _box(ax, box, colour, label=None, **kw):
    """Draw the half-open input box ``(r0, r1, c0, c1)`` on image axes (pixel centres at ints)."""
    r0, r1, c0, c1 = box
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                           edgecolor=colour, label=label, **kw))


def _ranking(model, X, layer, ks, top, rankings, progress):
    """A :class:`~tinyconv.MaxActivation` of ``layer`` covering features ``ks``: one of
    ``rankings`` if it does (and keeps ``top`` examples), else a fresh ranking."""
    l, enough = model.index(layer), min(top, len(X))
    for r in rankings or ():
        if r.layer == l and set(ks) <= set(r.features.tolist()) and r.indices.shape[1] >= enough:
            return r
    return max_activating(model, X, l, k=list(ks), top=top, progress=progress)


def _row(ranking, k, top):
    """Examples and locations of feature ``k`` in ``ranking``: ``(top,)``, ``(top, 2)``."""
    j = int(np.flatnonzero(ranking.features == k)[0])
    return ranking.indices[j, :top], ranking.locations[j, :top]


# --------------------------------------------------------------------------- 1. filters


def filters(model, layer=None, channel=0, cols=8):
    """The filters ``W[:, :, channel, k]`` of a convolution, one small image each.

    Zeiler & Fergus 2014, Fig. 2 (layer 1). One diverging scale, symmetric about 0 and shared
    by every filter, so that a filter's contrast can be compared with the others'.

    Parameters
    ----------
    layer : a Conv2D layer's name or number (default: the first convolution).
    channel : the input channel to show (MNIST has one).
    """
    layer = conv_layers(model)[0] if layer is None else layer
    l = model.index(layer)
    conv = model.layers[l - 1] if l > 0 else None
    if not isinstance(conv, Conv2D):
        raise ValueError(f"layer: expected a Conv2D layer, got {model.names[l]!r}")
    W = conv.params["W"][:, :, channel, :]                          # (kh, kw, C_out)
    vmax = float(np.abs(W).max()) or 1.0
    C_out = W.shape[-1]
    rows = -(-C_out // cols)
    fig = Figure(figsize=(1.2 * cols + 1.2, 1.3 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        _bare(ax)
        if k >= C_out:
            ax.set_axis_off()
            continue
        im = ax.imshow(W[:, :, k], cmap=DIVERGING, vmin=-vmax, vmax=vmax)
        ax.set_title(f"k = {k}", fontsize=9)
    fig.colorbar(im, ax=axes, label="weight (0 = white)", shrink=0.9)
    kh, kw = W.shape[:2]
    fig.suptitle(f"{model.names[l]}: the {C_out} learned {kh}×{kw} filters "
                 "(red: positive weight, blue: negative)")
    return fig


# --------------------------------------------------------------------------- 2. extreme 8s


def extreme_examples(model, X, labels, digit=8, n=16, cols=4, progress=None):
    """The true ``digit``\\ s with the highest and with the lowest predicted probability.

    Ranks the examples labelled ``digit`` by ``softmax(y_(L))_digit`` with
    :func:`~tinyconv.max_activating` at the classifier head, ``descending=True`` and
    ``False`` (the lecture: "Do we have a problem with certain 8s?"). Each image is titled
    with its probability; the least probable ones also with the predicted class.
    """
    mine = np.flatnonzero(np.asarray(labels) == digit)
    if len(mine) == 0:
        raise ValueError(f"digit: none of the {len(labels)} labels is {digit}")
    X_d = X[mine]
    L = len(model.layers)
    fig = Figure(figsize=(2 * 1.25 * cols + 0.8, 1.45 * -(-min(n, len(mine)) // cols) + 1.0),
                 layout="constrained")
    halves = fig.subfigures(1, 2, wspace=0.04)
    for half, descending in zip(halves, (True, False), strict=True):
        ranked = max_activating(model, X_d, L, k=digit, top=n, descending=descending,
                                progress=progress)
        idx, p = ranked.indices[0], ranked.values[0]
        predicted = predict(model, X_d[idx]).argmax(axis=1)
        axes = half.subplots(-(-len(idx) // cols), cols, squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, i, p_i, c in zip(axes.flat, idx, p, predicted, strict=False):
            ax.imshow(X_d[i, :, :, 0], cmap=INK, vmin=0, vmax=1)
            text = f"p = {p_i:.3f}" if c == digit else f"p = {p_i:.3f} → {c}"
            ax.set_title(text, fontsize=9, color="black" if c == digit else "#c00000")
        which = "highest" if descending else "lowest"
        half.suptitle(f"{which} p({digit})", fontsize=11)
    fig.suptitle(f"The {len(mine)} {digit}s of the data ranked by the model's probability of "
                 f"'{digit}' (red: misclassified, → predicted class)")
    return fig


# --------------------------------------------------------------------------- 3. MaxAct


def maxact_montages(model, X, layers=None, features=6, top=9, rankings=None, progress=None):
    """For each layer and feature ``k``: the ``top`` examples of ``MaxAct_(l),k``, each
    cropped to the receptive field of its strongest unit (Zeiler & Fergus 2014, Fig. 2).

    Parameters
    ----------
    layers : spatial layers to show (default: every convolution).
    features : ``n`` (the first ``n`` features of each layer) or a list of feature indices.
    rankings : optional list of :class:`~tinyconv.MaxActivation` already computed (reused
        when one covers the layer and features; otherwise the data set is ranked here).
    """
    layers = conv_layers(model) if layers is None else list(layers)
    wanted = {}
    for layer in layers:
        C = model.output_shapes[model.index(layer)][-1]
        wanted[layer] = list(range(min(features, C))) if isinstance(features, int) \
            else list(features)
    cols = max(len(ks) for ks in wanted.values())
    fig = Figure(figsize=(1.7 * cols + 0.6, 1.95 * len(layers) + 0.7), layout="constrained")
    axes = fig.subplots(len(layers), cols, squeeze=False)
    for row, layer in zip(axes, layers, strict=True):
        ranking = _ranking(model, X, layer, wanted[layer], top, rankings, progress)
        rf = receptive_field(model, layer)
        for ax in row:
            _bare(ax)
            ax.set_frame_on(False)
        for ax, k in zip(row, wanted[layer], strict=False):
            idx, loc = _row(ranking, k, top)
            patches = rf.patches(X[idx], loc)[..., 0]                # (top, r_h, r_w)
            _show_tiles(ax, patches, cmap=INK, vmin=0, vmax=1)
            ax.set_title(f"k = {k}", fontsize=9)
        size = rf.size[0] if rf.size[0] == rf.size[1] else f"{rf.size[0]}×{rf.size[1]}"
        row[0].set_ylabel(f"{layer}\nr = {size} px", fontsize=10)
    fig.suptitle(f"MaxAct: the top {top} examples of each feature map, cropped to the "
                 "receptive field\nof its strongest unit (r = field size in input pixels)")
    return fig


# --------------------------------------------------------------------------- 4. projections


def projections(model, X, units, top=9, rule="deconvnet", rankings=None, progress=None):
    """Deconvnet projections of ``MaxAct_(l),k`` beside the input patches under them.

    For each unit ``(layer, k)`` the ``top`` examples are ranked, the strongest
    ``y_(l),idx,k`` of each is sent back to the input with :func:`~tinyconv.project`, and
    projection and input are both cropped to the unit's receptive field (Zeiler & Fergus
    2014, Fig. 2; the lecture's "Saliency Maps and Corresponding Patches"). Each projection
    is divided by its own largest ``|value|``.
    """
    units = list(units)
    fig = Figure(figsize=(6.4, 3.0 * len(units) + 0.6), layout="constrained")
    axes = fig.subplots(len(units), 2, squeeze=False)
    for (left, right), (layer, k) in zip(axes, units, strict=True):
        ranking = _ranking(model, X, layer, [k], top, rankings, progress)
        idx, loc = _row(ranking, k, top)
        rf = receptive_field(model, layer)
        back = project(model, X[idx], layer, k, idx=loc, rule=rule)   # (top, H, W, C_0)
        seen = _per_example_scale(rf.patches(back, loc)[..., 0])
        im = _show_tiles(left, seen, cmap=DIVERGING, vmin=-1, vmax=1)
        _show_tiles(right, rf.patches(X[idx], loc)[..., 0], cmap=INK, vmin=0, vmax=1)
        left.set_title(f"{layer}, k = {k}: {RULE_NAMES[rule]} projections", fontsize=10)
        right.set_title(f"input patches ({rf.size[0]}×{rf.size[1]} px)", fontsize=10)
        for ax in (left, right):
            _bare(ax)
    fig.colorbar(im, ax=axes[:, 0], location="left", shrink=0.8,
                 label="projection ÷ its max |value|")
    fig.suptitle(f"What the top {top} examples of each unit have in common: the projection "
                 "(left)\nand the receptive field's input patch (right), same order")
    return fig


# --------------------------------------------------------------------------- 5. three rules


def compare_rules(model, X, units, n=3, rankings=None, progress=None):
    """Gradient, deconvnet and guided backprop for the same units and images.

    Rows: the ``n`` top examples of each unit ``(layer, k)``; columns: the input, then
    :func:`~tinyconv.project` of the unit's strongest ``y_(l),idx,k`` with each rule. They
    differ only in how a ReLU passes the signal back (Springenberg et al. 2015, Fig. 1).
    The unit's receptive field is outlined; each map is divided by its own max ``|value|``.
    """
    rules = ("gradient", "deconvnet", "guided")
    rows = []
    for layer, k in units:
        ranking = _ranking(model, X, layer, [k], n, rankings, progress)
        idx, loc = _row(ranking, k, n)
        maps = [_per_example_scale(project(model, X[idx], layer, k, idx=loc, rule=rule)
                                   .sum(axis=-1)) for rule in rules]   # each (n, H, W)
        rf = receptive_field(model, layer)
        for j, (i, (r, c)) in enumerate(zip(idx, loc, strict=True)):
            rows.append((layer, k, i, rf.box(int(r), int(c)), X[i, :, :, 0],
                         [m[j] for m in maps]))
    fig = Figure(figsize=(7.0, 1.45 * len(rows) + 0.9), layout="constrained")
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for ax_row, (layer, k, i, box, image, maps) in zip(axes, rows, strict=True):
        ax_row[0].imshow(image, cmap=INK, vmin=0, vmax=1)
        for ax, m in zip(ax_row[1:], maps, strict=True):
            im = ax.imshow(m, cmap=DIVERGING, vmin=-1, vmax=1)
        for ax in ax_row:
            _bare(ax)
            _box(ax, box, "#2ca02c", linewidth=1.2)
        ax_row[0].set_ylabel(f"{layer}, k = {k}\ndigit #{i}", fontsize=9)
    for ax, title in zip(axes[0], ("input", *(RULE_NAMES[r] for r in rules)), strict=True):
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=axes, shrink=0.6, label="value ÷ its max |value|")
    fig.suptitle("One unit y_(l),idx,k sent back to the input three ways\n"
                 "(green: its receptive field)")
    return fig


# --------------------------------------------------------------------------- 6. occlusion


def occlusion_figure(model, x, label, sizes=(4, 8), layer=None, progress=None):
    """Occlusion sensitivity of one image (Zeiler & Fergus 2014, Fig. 7).

    Panels: (a) the image; (b, c) the relative decrease of ``p(label)`` when a square of each
    size in ``sizes``, set to 0 (the background of a digit), covers a pixel
    (:attr:`Occlusion.pixels`: mean over the windows covering it); (d) the strongest feature
    map ``k`` of ``layer`` (default: the deepest convolution; :func:`strongest_feature`),
    each unit drawn at the centre of its receptive field; (e) the relative decrease of its
    total activation; (f) the most probable class with the square at each position — a
    callable ``target`` returning the argmax class, read from :attr:`Occlusion.occluded`.

    Parameters
    ----------
    x : (H, W, C_0) one image; label : its class.
    """
    if len(sizes) != 2:
        raise ValueError(f"sizes: expected two window sizes, got {sizes!r}")
    layer = conv_layers(model)[-1] if layer is None else layer
    k = strongest_feature(model, x, layer)
    sweeps = [occlusion(model, x, label, s, relative=True, progress=progress) for s in sizes]
    p = float(sweeps[0].original)
    size = sizes[-1]
    feature = occlusion(model, x, (layer, k), size, relative=True, progress=progress)
    argmax = occlusion(model, x, lambda y: y.argmax(axis=1), size, progress=progress)
    outline = x[:, :, 0] if x.shape[-1] == 1 else x.mean(axis=-1)

    fig = Figure(figsize=(11.5, 7.4), layout="constrained")
    axes = fig.subplots(2, 3)
    a = axes[0, 0]
    a.imshow(outline, cmap=INK, vmin=0, vmax=1)
    a.set_title(f"(a) input, p({label}) = {p:.3f}", fontsize=10)
    for ax, letter, s, sweep in zip(axes[0, 1:], "bc", sizes, sweeps, strict=True):
        vmax = float(np.nanmax(np.abs(sweep.pixels))) or 1.0
        im = ax.imshow(sweep.pixels, cmap=DIVERGING, vmin=-vmax, vmax=vmax)
        fig.colorbar(im, ax=ax, shrink=0.85, label=f"relative decrease of p({label})")
        ax.set_title(f"({letter}) {s}×{s} square: drop in p({label})", fontsize=10)
    # (d) the map drawn over the image: each unit a jump-sized cell at its field's centre
    y = model.forward(x[None], upto=layer)[0, :, :, k]
    rf = receptive_field(model, layer)
    (cy, cx), (sy, sx) = rf.center(0, 0), rf.jump
    im = axes[1, 0].imshow(y, cmap="viridis", extent=(
        cx - sx / 2, cx + (y.shape[1] - 0.5) * sx, cy + (y.shape[0] - 0.5) * sy, cy - sy / 2))
    fig.colorbar(im, ax=axes[1, 0], shrink=0.85, label=f"y_({layer}),idx,{k}")
    axes[1, 0].set_title(f"(d) strongest map of {layer}: k = {k}", fontsize=10)
    vmax = float(np.nanmax(np.abs(feature.pixels))) or 1.0
    im = axes[1, 1].imshow(feature.pixels, cmap=DIVERGING, vmin=-vmax, vmax=vmax)
    fig.colorbar(im, ax=axes[1, 1], shrink=0.85, label=f"relative decrease of Σ_idx y_({layer})")
    axes[1, 1].set_title(f"(e) {size}×{size} square: drop in map {k}", fontsize=10)

    # (f) one cell per window position, drawn at the window's centre, in input pixels
    ax = axes[1, 2]
    labels = argmax.occluded.astype(int)
    st = argmax.stride
    half = (size - 1) / 2
    extent = (argmax.cols[0] + half - st[1] / 2, argmax.cols[-1] + half + st[1] / 2,
              argmax.rows[-1] + half + st[0] / 2, argmax.rows[0] + half - st[0] / 2)
    present = np.unique(labels)                       # one colour per class that occurs
    colours = mpl.colors.ListedColormap([mpl.colormaps["tab10"](c) for c in present])
    im = ax.imshow(np.searchsorted(present, labels), cmap=colours, vmin=-0.5,
                   vmax=len(present) - 0.5, extent=extent, interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, shrink=0.85, ticks=range(len(present)),
                       label="predicted class")
    bar.set_ticklabels([str(c) for c in present])
    ax.set_xlim(-0.5, x.shape[1] - 0.5)
    ax.set_ylim(x.shape[0] - 0.5, -0.5)
    ax.set_title(f"(f) {size}×{size} square: predicted class", fontsize=10)
    for ax in axes.flat[1:]:
        ax.contour(outline, levels=[0.5], colors="black", linewidths=0.7)
    for ax in axes.flat:
        ax.set_xlabel("column (px)", fontsize=8)
        ax.set_ylabel("row (px)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Occlusion: erase a square of the digit (set it to 0, the background) at "
                 "every position and watch the output\n(b, c, e: each pixel the mean over the "
                 "squares covering it; f: each square at its centre; outline: the digit)")
    return fig


# --------------------------------------------------------------------------- 7. RF growth


def receptive_field_growth(model, x, layers=None):
    """The input box of the central unit of each layer on one image, and the table of
    ``r`` (size), ``S`` (jump) and ``P`` (padding) per layer (Araujo et al., Distill 2019).

    Parameters
    ----------
    x : (H, W, C_0) image to draw on.
    layers : spatial layers to outline (default: every convolution and max-pool).
    """
    if layers is None:
        layers = [layer.name for layer in model.layers if isinstance(layer, (Conv2D, MaxPool2D))]
    fields = [f for f in receptive_fields(model)[1:] if f.spatial]
    fig = Figure(figsize=(11.0, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.15))
    left.imshow(x[:, :, 0] if x.shape[-1] == 1 else x.mean(axis=-1), cmap=INK, vmin=0, vmax=1)
    lo, hi = [-1.5, -1.5], [x.shape[0] + 0.5, x.shape[1] + 0.5]   # 1 px margin around all
    for n, layer in enumerate(layers):
        rf = receptive_field(model, layer)
        row, col = centre_unit(model, layer)
        r0, r1, c0, c1 = rf.box(row, col, clip=False)
        colour = FIELD_COLOURS[n % len(FIELD_COLOURS)]
        _box(left, (r0, r1, c0, c1), colour, linewidth=2.0, linestyle=("-", "--")[n % 2],
             label=f"{layer} unit ({row}, {col}): r = {rf.size[0]}")
        lo = [min(lo[0], r0 - 1.5), min(lo[1], c0 - 1.5)]
        hi = [max(hi[0], r1 + 0.5), max(hi[1], c1 + 0.5)]
    _box(left, (0, x.shape[0], 0, x.shape[1]), "black", linewidth=0.8,
         label=f"the image ({x.shape[0]}×{x.shape[1]})")
    left.set_xlim(lo[1], hi[1])
    left.set_ylim(hi[0], lo[0])
    left.set_xlabel("column (px); boxes may reach into the zero padding")
    left.set_ylabel("row (px)")
    left.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2, fontsize=8)
    left.set_title("input box seen by the central unit of each layer", fontsize=10)

    right.set_axis_off()
    def pair(v):                                      # "5" when h == w, else "5×3"
        return str(v[0]) if v[0] == v[1] else f"{v[0]}×{v[1]}"

    cells = [[str(f.layer), f.name, "×".join(map(str, f.output_shape)), pair(f.size),
              pair(f.jump), pair(f.pad)] for f in fields]
    table = right.table(cellText=cells, loc="upper center", cellLoc="center",
                        colWidths=(0.07, 0.15, 0.23, 0.17, 0.19, 0.17),
                        colLabels=["l", "layer", "output", "r (size)", "S (jump)", "P (pad)"])
    table.auto_set_font_size(False)
    table.set_fontsize(11)
    table.scale(1.0, 1.7)
    right.text(0.5, 0.08, "r_l = r_(l−1) + (k_l − 1)·S_(l−1)     S_l = S_(l−1)·s_l     "
               "P_l = P_(l−1) + p_l·S_(l−1)\nk_l, s_l, p_l: kernel (or window), stride and "
               "padding of layer l;\none number where rows and columns agree",
               ha="center", va="center", fontsize=10, transform=right.transAxes)
    right.set_title("r, S, P of every spatial layer (Araujo et al., Distill 2019)", fontsize=10)
    fig.suptitle("Receptive fields grow with depth: unit (row, col) of layer l sees input "
                 "rows [row·S − P, row·S − P + r)")
    return fig


# --------------------------------------------------------------------------- 8. switches


def pooling_switches(x=None, size=2):
    """A worked example of max-pooling with switches and of unpooling through them.

    ``x`` is a small ``(H, W)`` feature map (default: 6×6, the numbers 1…36 shuffled with a
    fixed seed, so there are no ties). :class:`~tinyconv.MaxPool2D` pools it, records in
    ``switches`` where each maximum was, and its ``backward`` — the deconvnet's unpooling
    (Zeiler & Fergus 2014, §2.1) — puts each pooled value back at its switch, zeros elsewhere.
    """
    if x is None:
        x = np.random.default_rng(0).permutation(36).reshape(6, 6) + 1.0
    x = np.asarray(x, dtype=np.float64)
    pool = MaxPool2D(size)
    pooled = pool.forward(x[None, :, :, None])                       # (1, H', W', 1)
    switches = pool.switches[0, :, :, 0]                             # flat row * W + col
    unpooled = pool.backward(pooled)[0, :, :, 0]
    H, W = x.shape
    pooled = pooled[0, :, :, 0]
    wins = np.divmod(switches, W)                                    # (rows, cols) of maxima

    fig = Figure(figsize=(12.5, 3.9), layout="constrained")
    axes = fig.subplots(1, 4, width_ratios=(H, pooled.shape[0], pooled.shape[0], H))
    norm = mpl.colors.Normalize(0, x.max())

    def grid(ax, a, title, fmt="{:g}"):
        im = ax.imshow(a, cmap="Blues", norm=norm)
        for (r, c), v in np.ndenumerate(a):
            text = fmt(v) if callable(fmt) else fmt.format(v)
            ax.text(c, r, text, ha="center", va="center", fontsize=10,
                    color="white" if norm(v) > 0.6 else "black")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(a.shape[1]))
        ax.set_yticks(range(a.shape[0]))
        ax.tick_params(labelsize=7)
        return im

    im = grid(axes[0], x, f"(a) feature map {H}×{W}, {size}×{size} windows")
    for r in range(0, H + 1, size):
        axes[0].axhline(r - 0.5, color="black", linewidth=1.5)
    for c in range(0, W + 1, size):
        axes[0].axvline(c - 0.5, color="black", linewidth=1.5)
    grid(axes[1], pooled, "(b) max-pooled")
    grid(axes[2], pooled,
         "(c) switches: (row, col)\nof each max in (a)", fmt=lambda v: "")
    for (r, c), s in np.ndenumerate(switches):
        axes[2].text(c, r, f"({s // W}, {s % W})", ha="center", va="center", fontsize=9,
                     color="white" if norm(pooled[r, c]) > 0.6 else "black")
    grid(axes[3], unpooled, "(d) unpooled through\nthe switches")
    for ax in (axes[0], axes[3]):
        for r, c in zip(*wins, strict=True):
            for rr, cc in zip(r.ravel(), c.ravel(), strict=True):
                _box(ax, (rr, rr + 1, cc, cc + 1), "#d62728", linewidth=2.2)
    fig.colorbar(im, ax=axes, shrink=0.8, label="value")
    fig.suptitle("Max-pooling keeps the largest value of each window and records where it "
                 "was (red: the switches);\nunpooling puts each value back there, zeros "
                 "elsewhere (the first max in row-major order wins a tie)")
    return fig


# --------------------------------------------------------------------------- 9. effective RF


def effective_receptive_fields(model, X, layers=None, batch_size=250, progress=None):
    """Effective vs theoretical receptive field (Luo et al., NeurIPS 2016).

    For the central unit of each layer, with ``k`` the feature most active there on average,
    ``mean_i |d y_(l),idx,k / d x_i|`` over the examples (:func:`~tinyconv.project`,
    ``rule="gradient"``), each map divided by its maximum; the analytic box of
    :func:`~tinyconv.receptive_field` is drawn on it. Below, the profile along the central
    row: the gradient concentrates in the middle of the box.

    Parameters
    ----------
    X : (N, H, W, C_0) examples, processed ``batch_size`` at a time.
    layers : spatial layers (default: every convolution).
    """
    layers = conv_layers(model) if layers is None else list(layers)
    fig = Figure(figsize=(3.5 * len(layers) + 0.9, 6.2), layout="constrained")
    axes = fig.subplots(2, len(layers), squeeze=False, height_ratios=(2.2, 1))
    H, W = model.input_shape[:2]
    for n, layer in enumerate(layers):
        row, col = centre_unit(model, layer)
        mean_y = sum(model.forward(X[s:s + batch_size], upto=layer)[:, row, col, :].sum(axis=0)
                     for s in range(0, len(X), batch_size)) / len(X)
        k = int(np.argmax(mean_y))
        total = np.zeros((H, W))
        for s in range(0, len(X), batch_size):
            g = project(model, X[s:s + batch_size], layer, k, idx=(row, col), rule="gradient")
            total += np.abs(g).sum(axis=-1).sum(axis=0)
        erf = total / (total.max() or 1.0)
        box = receptive_field(model, layer).box(row, col, clip=False)
        top, bottom = axes[0, n], axes[1, n]
        im = top.imshow(erf, cmap="magma", vmin=0, vmax=1)
        _box(top, box, "#00e5ff", linewidth=1.5)
        top.set_xlim(-0.5, W - 0.5)
        top.set_ylim(H - 0.5, -0.5)
        r = box[1] - box[0]
        top.set_title(f"{layer}, unit ({row}, {col}), k = {k}\ntheoretical r = {r} px (box)",
                      fontsize=10)
        top.set_xlabel("column (px)", fontsize=8)
        top.set_ylabel("row (px)", fontsize=8)
        r_in = (box[0] + box[1] - 1) // 2
        bottom.plot(np.arange(W), erf[min(max(r_in, 0), H - 1)], color="black")
        for c in (box[2] - 0.5, box[3] - 0.5):
            bottom.axvline(c, color="#00a0b0", linestyle="--")
        bottom.set_xlim(-0.5, W - 0.5)
        bottom.set_ylim(0, 1.05)
        bottom.set_xlabel("column (px)", fontsize=8)
        bottom.set_ylabel(f"row {r_in}", fontsize=8)
        for ax in (top, bottom):
            ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=axes[0, :], shrink=0.9, label="mean |∂y/∂x| ÷ its max")
    fig.suptitle(f"Effective receptive field: mean |gradient| of the central unit over "
                 f"{len(X)} digits,\nagainst the theoretical box (cyan; below, dashed: "
                 "its edges) — Luo et al. 2016")
    return fig
