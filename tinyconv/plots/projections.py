"""Figures 4, 5 and 10: units sent back to the input, beside the patches under them.

Each draws :class:`~tinyconv.projection.Projection` results that the caller computed with
:func:`~tinyconv.projection.project_top`.
"""

import numpy as np
from matplotlib.figure import Figure

from ..measures import hf_share, positive_share
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
        left.set_title(f"{rf.name}, k = {result.k}: {RULE_NAMES[result.rule]} projections\n"
                       f"HF share (median) {np.nanmedian(hf_share(seen)):.2f}", fontsize=10)
        right.set_title(f"input patches ({rf.size[0]}×{rf.size[1]} px)", fontsize=10)
        for ax in (left, right):
            bare(ax)
    fig.colorbar(im, ax=axes[:, 0], location="left", shrink=0.8,
                 label="projection ÷ its max |value|")
    top = max(len(r.examples) for r in results)
    fig.suptitle(f"What the top {top} examples of each unit have in common: the projection "
                 "(left)\nand the receptive field's input patch (right), same order")
    return fig


def rule_rows(model, X, results):
    """The rows of :func:`compare_rules`: per unit and example, the input, the unit's field
    and the three maps cropped to it on one shared scale (each row ÷ its max ``|value|``)."""
    rows = []
    for same_unit in results:
        first = same_unit[0]
        rf = receptive_field(model, first.layer)
        # each rule's maps cropped to the field, (n, r_h, r_w); the rules share a scale
        crops = np.stack([rf.patches(r.maps, first.locations)[..., 0] for r in same_unit])
        crops = per_example_scale(crops.transpose(1, 0, 2, 3))          # (n, rules, r_h, r_w)
        for j, (i, (r, c)) in enumerate(zip(first.examples, first.locations, strict=True)):
            rows.append(dict(name=rf.name, k=first.k, i=int(i), unit=(int(r), int(c)),
                             field=rf.box(int(r), int(c)), centre=rf.center(int(r), int(c)),
                             image=X[i, :, :, 0], maps=crops[j]))
    return rows


def compare_rules(model, X, results):
    """Gradient, deconvnet and guided backprop for the same units and images.

    Rows: the examples of each unit; columns: the input with the unit's receptive field
    (box) and its centre (cross), then the projection of the unit's strongest
    ``y_(l),idx,k`` with each rule, cropped to the field. The rules differ only in how a ReLU
    passes the signal back (Springenberg et al. 2015, Fig. 1). The three maps of a row share
    one symmetric scale (the row ÷ its max ``|value|``), so their strengths can be compared.
    Under each map: the share of its non-zero pixels that are positive and its HF share
    (:func:`~tinyconv.measures.hf_share`); the column titles give the medians.

    Parameters
    ----------
    X : (N, H, W, C_0) the data set the examples index.
    results : list with one tuple per unit of :class:`~tinyconv.projection.Projection`, the
        same unit and examples under each rule (e.g. gradient, deconvnet, guided).
    """
    rows = rule_rows(model, X, results)
    rules = [r.rule for r in results[0]]
    stats = np.array([[positive_share(row["maps"]), hf_share(row["maps"])]
                      for row in rows])                                   # (rows, 2, rules)
    fig = Figure(figsize=(2.0 * (1 + len(rules)) + 1.2, 2.1 * len(rows) + 1.0),
                 layout="constrained")
    axes = fig.subplots(len(rows), 1 + len(rules), squeeze=False)
    for ax_row, row, (pos, hf) in zip(axes, rows, stats, strict=True):
        ax_row[0].imshow(row["image"], cmap=INK, vmin=0, vmax=1)
        box(ax_row[0], row["field"], "#2ca02c", linewidth=1.5)
        ax_row[0].plot(row["centre"][1], row["centre"][0], "+", color="#2ca02c",
                       markersize=10, markeredgewidth=2)
        for ax, m, p, h in zip(ax_row[1:], row["maps"], pos, hf, strict=True):
            im = ax.imshow(m, cmap=DIVERGING, vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xlabel(f"+ {p:.0%}   HF {h:.2f}", fontsize=9)
        for ax in ax_row:
            bare(ax)
        ax_row[0].set_ylabel(f"{row['name']}, k = {row['k']}\nunit {row['unit']}\n"
                             f"digit #{row['i']}", fontsize=9)
    medians = np.median(stats, axis=0)                                    # (2, rules)
    for ax, rule, (p, h) in zip(axes[0, 1:], rules, medians.T, strict=True):
        ax.set_title(f"{RULE_NAMES[rule]}\nmedian + {p:.0%}, HF {h:.2f}", fontsize=10)
    axes[0, 0].set_title("input, field, unit", fontsize=10)
    fig.colorbar(im, ax=axes[:, 1:], shrink=0.5,
                 label="value ÷ the row's max |value| (one scale per row)")
    fig.suptitle("One unit y_(l),idx,k sent back to the input three ways, cropped to its "
                 "receptive field (green)\n+: share of non-zero pixels that are positive; "
                 "HF: share of energy a 3×3 blur removes")
    return fig


def saliency_patches(model, X, results, cols=3):
    """Saliency maps and corresponding patches (the lecture; Zeiler & Fergus 2014, Fig. 2).

    For each unit ``(l, k)``: its top examples (``MaxAct_(l),k``), each drawn as a pair —
    the sensitivity map ``d y_(l),idx,k / d x`` (:func:`~tinyconv.project` with
    ``rule="gradient"``) restricted to the unit's receptive field, beside the input patch
    under that field. The maps of one unit share one symmetric scale: the largest
    ``|value|`` over its examples.

    Parameters
    ----------
    X : (N, H, W, C_0) the data set the examples index.
    results : list of :class:`~tinyconv.projection.Projection` (one per unit), each best
        with ``rule="gradient"`` and 9 examples.
    """
    rows_per_unit = [-(-len(r.examples) // cols) for r in results]
    fig = Figure(figsize=(2.3 * cols + 1.6, 1.25 * sum(rows_per_unit) + 1.2 * len(results)),
                 layout="constrained")
    subfigs = fig.subfigures(len(results), 1, squeeze=False)[:, 0]
    for sub, result, n_rows in zip(subfigs, results, rows_per_unit, strict=True):
        rf = receptive_field(model, result.layer)
        maps = rf.patches(result.maps, result.locations)[..., 0]          # (n, r_h, r_w)
        patches = rf.patches(X[result.examples], result.locations)[..., 0]
        scale = float(np.abs(maps).max()) or 1.0
        axes = sub.subplots(n_rows, 2 * cols, squeeze=False, gridspec_kw=dict(wspace=0.02))
        for ax in axes.flat:
            bare(ax)
            ax.set_axis_off()
        for j, (m, patch) in enumerate(zip(maps, patches, strict=True)):
            r, c = divmod(j, cols)
            left, right = axes[r, 2 * c], axes[r, 2 * c + 1]
            im = left.imshow(m, cmap=DIVERGING, vmin=-scale, vmax=scale,
                             interpolation="nearest")
            right.imshow(patch, cmap=INK, vmin=0, vmax=1, interpolation="nearest")
            for ax in (left, right):
                ax.set_axis_on()
                bare(ax)
            left.set_title(f"#{result.examples[j]}", fontsize=7, loc="left")
        sub.colorbar(im, ax=axes, shrink=0.8, label=f"∂y/∂x, ±{scale:.2g}")
        sub.suptitle(f"{rf.name}, k = {result.k}: the top {len(maps)} examples, each "
                     f"(sensitivity map | input patch), {rf.size[0]}×{rf.size[1]} px",
                     fontsize=10)
    fig.suptitle("Saliency maps and corresponding patches: ∂y_(l),idx,k / ∂x inside the "
                 "receptive field\n(red: brighter ink here raises the unit; blue: lowers it)")
    return fig
