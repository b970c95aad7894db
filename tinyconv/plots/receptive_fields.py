"""Figures 7 and 9: theoretical receptive fields (Araujo et al., Distill 2019) and effective
ones (Luo et al., NeurIPS 2016)."""

import numpy as np
from matplotlib.figure import Figure

from ._style import FIELD_COLOURS, INK, box, grey


def receptive_field_growth(x, fields, units):
    """The input box of a unit of each layer on one image, and the table of ``r`` (size),
    ``S`` (jump) and ``P`` (padding) per layer (Araujo et al., Distill 2019).

    Parameters
    ----------
    x : (H, W, C_0) image to draw on.
    fields : :func:`~tinyconv.receptive_fields` of the model (the table shows the spatial ones).
    units : ``(l, (row, col))`` per box to outline, e.g. the centre unit of each conv and
        pool layer (:func:`tinyconv.units.centre_unit`).
    """
    table_fields = [f for f in fields[1:] if f.spatial]
    fig = Figure(figsize=(11.0, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.15))
    left.imshow(grey(x), cmap=INK, vmin=0, vmax=1)
    lo, hi = [-1.5, -1.5], [x.shape[0] + 0.5, x.shape[1] + 0.5]   # 1 px margin around all
    for n, (l, (row, col)) in enumerate(units):
        rf = fields[l]
        r0, r1, c0, c1 = rf.box(row, col, clip=False)
        colour = FIELD_COLOURS[n % len(FIELD_COLOURS)]
        box(left, (r0, r1, c0, c1), colour, linewidth=2.0, linestyle=("-", "--")[n % 2],
            label=f"{rf.name} unit ({row}, {col}): r = {rf.size[0]}")
        lo = [min(lo[0], r0 - 1.5), min(lo[1], c0 - 1.5)]
        hi = [max(hi[0], r1 + 0.5), max(hi[1], c1 + 0.5)]
    box(left, (0, x.shape[0], 0, x.shape[1]), "black", linewidth=0.8,
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
              pair(f.jump), pair(f.pad)] for f in table_fields]
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


def effective_receptive_fields(fields, erfs, n_examples):
    """Effective vs theoretical receptive field (Luo et al., NeurIPS 2016).

    For each layer's central unit ``y_(l),idx,k``, its
    :func:`~tinyconv.effective_receptive_field` (mean ``|d y_(l),idx,k / d x|`` over the
    examples and, as in Luo et al., over the features ``k``) divided by its maximum, with the
    analytic box of :func:`~tinyconv.receptive_field` drawn on it. Below, the profile along
    the box's central row. For a first convolution the average is the mean ``|filter|`` (no
    nonlinearity lies between the unit and the input); deeper, the gradient concentrates in
    the middle of the box.

    Parameters
    ----------
    fields : :func:`~tinyconv.receptive_fields` of the model.
    erfs : list of ``(l, (row, col), k, erf)``, ``erf`` the ``(H, W)`` effective receptive
        field of that unit; ``k`` the feature index, the features averaged, or None when
        averaged over all.
    n_examples : how many examples were averaged (for the title).
    """
    H, W = erfs[0][3].shape
    fig = Figure(figsize=(3.7 * len(erfs) + 0.9, 6.5), layout="constrained")
    axes = fig.subplots(2, len(erfs), squeeze=False, height_ratios=(2.2, 1))
    for n, (l, (row, col), k, erf) in enumerate(erfs):
        erf = erf / (erf.max() or 1.0)
        field = fields[l]
        layer = field.name
        edges = field.box(row, col, clip=False)
        top, bottom = axes[0, n], axes[1, n]
        im = top.imshow(erf, cmap="magma", vmin=0, vmax=1)
        box(top, edges, "#00e5ff", linewidth=1.5)
        top.set_xlim(-0.5, W - 0.5)
        top.set_ylim(H - 0.5, -0.5)
        r = edges[1] - edges[0]
        which = ("mean over all k" if k is None else f"k = {k}" if np.ndim(k) == 0
                 else f"mean over {len(k)} features")
        inner, area, (h, w) = central_share(erf, edges)
        top.set_title(f"{layer}, unit ({row}, {col}), {which}\nbox: r = {r} px; its central "
                      f"{h}×{w}: {inner:.0%}\nof the total (flat: {area:.0%})", fontsize=10)
        top.set_xlabel("column (px)", fontsize=8)
        top.set_ylabel("row (px)", fontsize=8)
        r_in = (edges[0] + edges[1] - 1) // 2
        bottom.plot(np.arange(W), erf[min(max(r_in, 0), H - 1)], color="black")
        for c in (edges[2] - 0.5, edges[3] - 0.5):
            bottom.axvline(c, color="#00a0b0", linestyle="--")
        bottom.set_xlim(-0.5, W - 0.5)
        bottom.set_ylim(0, 1.05)
        bottom.set_xlabel("column (px)", fontsize=8)
        bottom.set_ylabel(f"row {r_in}", fontsize=8)
        for ax in (top, bottom):
            ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=axes[0, :], shrink=0.9, label="mean |∂y/∂x| ÷ its max")
    fig.suptitle(f"Effective receptive field (Luo et al. 2016): mean |gradient| of the "
                 f"central unit over {n_examples} digits and its features,\nagainst the "
                 "theoretical box (cyan; below, dashed: its edges)")
    return fig


def central_share(erf, edges):
    """How concentrated ``erf`` is in the box ``edges = (r0, r1, c0, c1)``: the share of its
    total inside the box's central part (a quarter of each side cut off, about half of each
    side kept), the share of the box's area that part has (what a flat field would give),
    and that part's ``(h, w)`` -> ``(share, area share, (h, w))``. The box is clipped to the
    image for both shares."""
    r0, r1, c0, c1 = edges
    qr, qc = (r1 - r0) // 4, (c1 - c0) // 4
    H, W = erf.shape
    rows = slice(max(r0 + qr, 0), min(r1 - qr, H))
    cols = slice(max(c0 + qc, 0), min(c1 - qc, W))
    inside = (min(r1, H) - max(r0, 0)) * (min(c1, W) - max(c0, 0))
    part = erf[rows, cols]
    return (float(part.sum() / (erf.sum() or 1.0)), part.size / inside,
            (r1 - r0 - 2 * qr, c1 - c0 - 2 * qc))
