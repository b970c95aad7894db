"""Figures 4 and 5: units sent back to the input, beside the patches under them.

Both draw :class:`~tinyconv.projection.Projection` results that the caller computed with
:func:`~tinyconv.projection.project_top`.
"""

from matplotlib.figure import Figure

from ..receptive_field import receptive_field
from ._style import DIVERGING, INK, RULE_NAMES, bare, box, per_example_scale, show_tiles


def projections(model, X, results):
    """Projections of ``MaxAct_(l),k`` beside the input patches under them.

    For each :class:`~tinyconv.projection.Projection` (one unit ``(l, k)``, its top examples
    each projected from its strongest ``y_(l),idx,k``), projection and input are both cropped
    to the unit's receptive field (Zeiler & Fergus 2014, Fig. 2; the lecture's "Saliency Maps
    and Corresponding Patches"). Each projection is divided by its own largest ``|value|``.

    Parameters
    ----------
    X : (N, H, W, C_0) the data set the examples index.
    results : list of :class:`~tinyconv.projection.Projection`, one row each.
    """
    fig = Figure(figsize=(6.4, 3.0 * len(results) + 0.6), layout="constrained")
    axes = fig.subplots(len(results), 2, squeeze=False)
    for (left, right), result in zip(axes, results, strict=True):
        rf = receptive_field(model, result.layer)
        idx, loc = result.examples, result.locations
        seen = per_example_scale(rf.patches(result.maps, loc)[..., 0])   # (n, r_h, r_w)
        im = show_tiles(left, seen, cmap=DIVERGING, vmin=-1, vmax=1)
        show_tiles(right, rf.patches(X[idx], loc)[..., 0], cmap=INK, vmin=0, vmax=1)
        left.set_title(f"{rf.name}, k = {result.k}: {RULE_NAMES[result.rule]} projections",
                       fontsize=10)
        right.set_title(f"input patches ({rf.size[0]}×{rf.size[1]} px)", fontsize=10)
        for ax in (left, right):
            bare(ax)
    fig.colorbar(im, ax=axes[:, 0], location="left", shrink=0.8,
                 label="projection ÷ its max |value|")
    top = max(len(r.examples) for r in results)
    fig.suptitle(f"What the top {top} examples of each unit have in common: the projection "
                 "(left)\nand the receptive field's input patch (right), same order")
    return fig


def compare_rules(model, X, results):
    """Gradient, deconvnet and guided backprop for the same units and images.

    Rows: the examples of each unit; columns: the input, then the projection of the unit's
    strongest ``y_(l),idx,k`` with each rule. They differ only in how a ReLU passes the
    signal back (Springenberg et al. 2015, Fig. 1). The unit's receptive field is outlined;
    each map is divided by its own max ``|value|``.

    Parameters
    ----------
    X : (N, H, W, C_0) the data set the examples index.
    results : list with one tuple per unit of :class:`~tinyconv.projection.Projection`, the
        same unit and examples under each rule (e.g. gradient, deconvnet, guided).
    """
    rows = []
    for same_unit in results:
        first = same_unit[0]
        rf = receptive_field(model, first.layer)
        maps = [per_example_scale(r.maps.sum(axis=-1)) for r in same_unit]   # each (n, H, W)
        for j, (i, (r, c)) in enumerate(zip(first.examples, first.locations, strict=True)):
            rows.append((rf.name, first.k, i, rf.box(int(r), int(c)), X[i, :, :, 0],
                         [m[j] for m in maps]))
    rules = [r.rule for r in results[0]]
    fig = Figure(figsize=(7.0, 1.45 * len(rows) + 0.9), layout="constrained")
    axes = fig.subplots(len(rows), 1 + len(rules), squeeze=False)
    for ax_row, (name, k, i, field, image, maps) in zip(axes, rows, strict=True):
        ax_row[0].imshow(image, cmap=INK, vmin=0, vmax=1)
        for ax, m in zip(ax_row[1:], maps, strict=True):
            im = ax.imshow(m, cmap=DIVERGING, vmin=-1, vmax=1)
        for ax in ax_row:
            bare(ax)
            box(ax, field, "#2ca02c", linewidth=1.2)
        ax_row[0].set_ylabel(f"{name}, k = {k}\ndigit #{i}", fontsize=9)
    for ax, title in zip(axes[0], ("input", *(RULE_NAMES[r] for r in rules)), strict=True):
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=axes, shrink=0.6, label="value ÷ its max |value|")
    fig.suptitle("One unit y_(l),idx,k sent back to the input three ways\n"
                 "(green: its receptive field)")
    return fig
